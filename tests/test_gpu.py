"""The CUDA path: runs where a GPU is present, skips cleanly elsewhere."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from dedup_gpu import scan
from dedup_gpu.encoders import get_spec
from dedup_gpu.encoders.base import TorchEncoder
from dedup_gpu.encoders.torchvision_cnn import strip_classifier

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def random_resnet(device: str) -> TorchEncoder:
    torch.manual_seed(0)
    model = strip_classifier(torchvision.models.resnet18(weights=None))
    return TorchEncoder(
        replace(get_spec("resnet18"), name="resnet18-random"), torch.device(device), model
    )


def test_cuda_embeddings_match_cpu_and_a_scan_runs_on_the_gpu(photo_dir: Path) -> None:
    cpu, cuda = random_resnet("cpu"), random_resnet("cuda")
    cuda.module.load_state_dict(cpu.module.state_dict())

    pixels = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8)
    agreement = np.sum(cpu.embed(pixels) * cuda.embed(pixels.pin_memory()), axis=1)
    assert agreement.min() > 0.99  # autocast (bf16/fp16) against float32

    shutil.copyfile(photo_dir / "rocket.jpg", photo_dir / "rocket (copy).jpg")
    report = scan([str(photo_dir)], encoder=cuda, threshold=0.999).report
    assert report.device.startswith("cuda")
    assert report.errors == []
    assert report.counts["images_scanned"] == len(list(photo_dir.iterdir()))
    assert report.counts["exact_duplicates"] == 1


def test_default_scan_on_cuda_reports_the_device(photo_dir: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    report = scan([str(photo_dir)], model="sscd-onnx", device="cuda").report
    assert report.device.startswith("cuda")


def test_verification_block_statistics_on_cuda_match_the_cpu(tmp_path: Path) -> None:
    import random

    from conftest import skimage_photo

    from dedup_gpu import verify
    from dedup_gpu.synth import FAMILIES, load_rgb

    image = load_rgb(skimage_photo("chelsea.png"))
    image.save(tmp_path / "a.png")
    FAMILIES["crop"].edit(image, random.Random(3)).save(tmp_path / "b.png")
    a, b = verify.load_thumbnails([str(tmp_path / "a.png"), str(tmp_path / "b.png")], workers=0)
    settings = verify.VerifySettings()
    alignment = verify.alignments(a, b, settings)[0]
    pair = [(a, b, alignment.matrix)]
    on_cpu = verify.block_agreement(pair, settings, "cpu")
    on_gpu = verify.block_agreement(pair, settings, "cuda")
    assert on_gpu[0][1] == on_cpu[0][1]
    assert on_gpu[0][0] == pytest.approx(on_cpu[0][0], abs=0.02)
    assert on_gpu[0][0] >= settings.photo_agreement
