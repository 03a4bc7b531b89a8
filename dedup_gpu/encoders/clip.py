"""CLIP image towers through open_clip: `clip:<model>[:<pretrained tag or checkpoint path>]`.

Pretrained tags are fetched by open_clip into its Hugging Face hub cache; a local checkpoint file
(open_clip's state-dict formats: .pt, .bin, .safetensors) can be given as the tag or with
--weights. Images are resized whole to the tower's input size (no centre crop: a crop would hide
edits at the borders) and normalised with the model's own mean and std.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from ..errors import ModelUnavailableError, first_line
from .base import Encoder, EncoderSpec, TorchEncoder
from .weights import sha256_of


class _ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)


def _checkpoint(spec: EncoderSpec, weights: str | None) -> str | None:
    if weights is not None:
        return weights
    if spec.pretrained and os.path.isfile(spec.pretrained):
        return spec.pretrained
    return None


def availability(spec: EncoderSpec, weights: str | None = None) -> str | None:
    import open_clip

    if spec.arch not in open_clip.list_models():
        return f"open_clip has no model {spec.arch!r}"
    if _checkpoint(spec, weights) is not None:
        return None
    if not spec.pretrained:
        return "no pretrained tag or checkpoint given (random weights are useless for duplicates)"
    config = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    if not config:
        tags = ", ".join(tag for arch, tag in open_clip.list_pretrained() if arch == spec.arch)
        return f"open_clip has no pretrained tag {spec.pretrained!r} for {spec.arch} ({tags})"
    hub = config.get("hf_hub", "").rstrip("/")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(hub, filename), str):
                return None
        return f"downloads on first use from the Hugging Face hub ({hub})"
    return f"downloads on first use from {config.get('url', 'its publisher')}"


def load(spec: EncoderSpec, device: torch.device, weights: str | None, progress: bool) -> Encoder:
    import open_clip

    problem = availability(spec, weights)
    if problem and not problem.startswith("downloads on first use"):
        raise ModelUnavailableError(f"{spec.name}: {problem}")
    checkpoint = _checkpoint(spec, weights)
    try:
        model = open_clip.create_model(
            spec.arch, pretrained=checkpoint or spec.pretrained, device="cpu"
        )
    except Exception as error:  # open_clip raises bare RuntimeError/OSError from hub and loaders
        raise ModelUnavailableError(
            f"cannot load {spec.name}: {first_line(error)}",
            hint="offline? pass a local open_clip checkpoint: --weights PATH, or set "
            "HF_HUB_OFFLINE=1 with the model already in the Hugging Face cache",
        ) from error
    visual = model.visual
    size = visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    resolved = replace(spec, input_size=size, mean=mean, std=std, embedding_dim=None)
    digest = sha256_of(checkpoint) if checkpoint else None  # type: ignore[arg-type]
    return TorchEncoder(resolved, device, _ImageTower(model), weights_sha256=digest)
