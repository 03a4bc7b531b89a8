"""Turn --device auto|cpu|cuda[:N] into a torch.device, with a clear error when CUDA is absent."""

from __future__ import annotations

import re

import torch

from .errors import BadArgumentError, DeviceUnavailableError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(requested: str = "auto") -> torch.device:
    requested = requested.strip().lower()
    if not _DEVICE_PATTERN.match(requested):
        raise BadArgumentError(
            f"unknown device {requested!r}", hint="use auto, cpu, cuda or cuda:N"
        )
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise DeviceUnavailableError(
            f"--device {requested} was requested but no CUDA GPU is usable "
            f"(torch {torch.__version__}, {build}, torch.cuda.is_available() is False)",
            hint="use --device cpu or --device auto, or check the NVIDIA driver with nvidia-smi",
        )
    device = torch.device(requested)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"--device {requested} was requested but only {torch.cuda.device_count()} GPU(s) "
            "are visible",
            hint="check CUDA_VISIBLE_DEVICES",
        )
    return device


def gpu_number(device: torch.device) -> int | None:
    """The CUDA device number FAISS should search on, or None for the CPU."""
    return (device.index or 0) if device.type == "cuda" else None
