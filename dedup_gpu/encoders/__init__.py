"""Encoders: a registry of image models that map images to L2-normalised embeddings."""

from .base import Encoder, EncoderSpec
from .registry import (
    availability,
    can_use_cuda,
    default_model,
    get_spec,
    is_ready,
    list_encoders,
    load_encoder,
)
from .weights import WeightsSource, cache_dir

__all__ = [
    "Encoder",
    "EncoderSpec",
    "WeightsSource",
    "availability",
    "cache_dir",
    "can_use_cuda",
    "default_model",
    "get_spec",
    "is_ready",
    "list_encoders",
    "load_encoder",
]
