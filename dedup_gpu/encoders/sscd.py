"""Meta's SSCD copy-detection descriptor (ResNet-50, `sscd_disc_mixup`) as TorchScript.

The file is downloaded on first use into the user cache (see weights.py) or given with
--weights. It takes ImageNet-normalised float NCHW input and returns 512-d descriptors.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import ModelUnavailableError, first_line
from .base import Encoder, EncoderSpec, TorchEncoder
from .weights import availability as weights_availability
from .weights import local_or_fetch


def availability(spec: EncoderSpec, weights: str | None = None) -> str | None:
    assert spec.download is not None
    return weights_availability(spec.download, weights)


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            # torch 2.13 marks TorchScript deprecated; Meta publishes SSCD only in that format.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as error:
        raise ModelUnavailableError(
            f"{path} is not a loadable TorchScript file: {first_line(error)}",
            hint="pass the sscd_disc_mixup.torchscript.pt file published by Meta",
        ) from error


def load(spec: EncoderSpec, device: torch.device, weights: str | None, progress: bool) -> Encoder:
    assert spec.download is not None
    path, digest = local_or_fetch(spec.download, weights, progress=progress)
    return TorchEncoder(spec, device, load_torchscript(path), weights_sha256=digest)
