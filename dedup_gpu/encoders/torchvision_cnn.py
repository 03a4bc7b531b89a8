"""torchvision ImageNet classifiers with their classification layer removed: pooled features.

Weights come from torchvision's published files into torch.hub's checkpoint cache (the same place
torchvision itself uses, so files already there are reused) and are checked against the SHA-256
prefix torchvision puts in each file name; or from a local state-dict file with --weights.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import ModelUnavailableError, UnknownModelError, first_line
from .base import Encoder, EncoderSpec, TorchEncoder
from .weights import WeightsSource, local_or_fetch
from .weights import availability as weights_availability

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.\w+$")


def classifier_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def weights_source(arch: str) -> WeightsSource:
    import torchvision

    if arch not in classifier_names():
        raise UnknownModelError(f"torchvision has no classifier named {arch!r}")
    published = torchvision.models.get_model_weights(arch).DEFAULT
    filename = published.url.rsplit("/", 1)[-1]
    match = _HASH_IN_NAME.search(filename)
    return WeightsSource(
        url=published.url, filename=filename, sha256=match.group(1) if match else None
    )


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def availability(spec: EncoderSpec, weights: str | None = None) -> str | None:
    return weights_availability(weights_source(spec.arch), weights, hub_checkpoints())


def strip_classifier(model: torch.nn.Module) -> torch.nn.Module:
    """Replace the last Linear layer (the ImageNet classifier) with Identity: pooled features."""
    last_name = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            last_name = name
    if last_name is None:
        raise ModelUnavailableError("no classification layer found to remove")
    parent_name, _, child = last_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, torch.nn.Identity())
    return model


def load(spec: EncoderSpec, device: torch.device, weights: str | None, progress: bool) -> Encoder:
    import torchvision

    path, digest = local_or_fetch(
        weights_source(spec.arch), weights, hub_checkpoints(), progress=progress
    )
    model = torchvision.models.get_model(spec.arch, weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:  # torch.load raises many types for foreign or damaged files
        raise ModelUnavailableError(
            f"{path} is not a {spec.arch} state dict: {first_line(error)}",
            hint=f"pass the weights file torchvision publishes for {spec.arch}",
        ) from error
    return TorchEncoder(spec, device, strip_classifier(model), weights_sha256=digest)
