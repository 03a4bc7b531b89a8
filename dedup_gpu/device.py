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


def resolve_devices(requested: str) -> list[torch.device]:
    """Turn --devices all|N,M|cuda:N,cuda:M (or cpu) into distinct torch devices."""
    text = requested.strip().lower()
    if text == "all":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceUnavailableError(
                "--devices all was requested but no CUDA GPU is usable",
                hint="use --device cpu, or check the NVIDIA driver with nvidia-smi",
            )
        return [torch.device("cuda", number) for number in range(count)]
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadArgumentError("--devices is empty", hint="use all, 0,1 or cuda:0,cuda:1")
    devices = [resolve_device(f"cuda:{name}" if name.isdigit() else name) for name in names]
    devices = [torch.device("cuda", 0) if d == torch.device("cuda") else d for d in devices]
    repeated = sorted({str(d) for d in devices if devices.count(d) > 1})
    if repeated:
        raise BadArgumentError(
            f"--devices lists {', '.join(repeated)} more than once",
            hint="name each device once, e.g. --devices 0,1",
        )
    return devices
