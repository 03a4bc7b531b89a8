"""The scan end to end: sources -> exact -> decode -> embed -> search -> group -> report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data import DEFAULT_MAX_PIXELS, iterate_batches
from .device import resolve_device
from .encoders import can_use_cuda, default_model, get_spec, load_encoder
from .encoders.base import Encoder
from .errors import BadArgumentError
from .exact import group_identical
from .group import KeepPolicy, build_groups
from .index import Pairs, find_pairs
from .progress import progress_bars
from .records import ContentGroup, FileError, ImageInfo, Verdict
from .report import RejectedPair, Report, count_summary
from .sources import discover
from .verify import THUMBNAIL_SIZE, Verifier, VerifySettings, resolve_mode


@dataclass
class ScanResult:
    """The report plus what produced it: row i of `embeddings` is `contents[i]`."""

    report: Report
    contents: list[ContentGroup]
    infos: list[ImageInfo]
    embeddings: np.ndarray
    pairs: Pairs  # every pair at or above the threshold, before verification and grouping
    verdicts: dict[tuple[int, int], Verdict]  # verification of pairs (rows of `embeddings`)


@dataclass
class EmbeddedImages:
    contents: list[ContentGroup]
    infos: list[ImageInfo]
    embeddings: np.ndarray
    errors: list[FileError]
    thumbnails: list[bytes | None]  # for verification; None where none was kept


def embed_contents(
    contents: Sequence[ContentGroup],
    encoder: Encoder,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    thumbnail_size: int | None = None,
    thumbnail_budget: int = 0,
) -> EmbeddedImages:
    """Decode and embed one file per distinct content; undecodable contents become errors.

    With `thumbnail_size`, a JPEG thumbnail of each image made from the same decode is kept,
    up to `thumbnail_budget` bytes in all, so verification need not decode those files again.
    """
    dim = encoder.spec.embedding_dim
    assert dim is not None
    embeddings = np.zeros((len(contents), dim), dtype=np.float32)
    infos: list[ImageInfo | None] = [None] * len(contents)
    errors: list[FileError] = []
    thumbnails: list[bytes | None] = [None] * len(contents)
    kept_bytes = 0
    paths = [group.representative.path for group in contents]
    with progress_bars(progress and bool(paths)) as bars:
        task = bars.add_task(f"embedding with {encoder.spec.name}", total=len(paths))
        for batch in iterate_batches(
            paths,
            encoder.spec.input_size,
            batch_size=batch_size,
            workers=workers,
            pin_memory=encoder.device.type == "cuda",
            max_pixels=max_pixels,
            thumbnail_size=thumbnail_size,
        ):
            if len(batch.indices):
                rows = batch.indices.numpy()
                embeddings[rows] = encoder.embed(batch.pixels)
                for row, thumbnail in zip(rows.tolist(), batch.thumbnails, strict=True):
                    if thumbnail is not None and kept_bytes + len(thumbnail) <= thumbnail_budget:
                        thumbnails[row] = thumbnail
                        kept_bytes += len(thumbnail)
                for row, width, height in zip(
                    rows.tolist(), batch.widths.tolist(), batch.heights.tolist(), strict=True
                ):
                    infos[row] = ImageInfo(width=width, height=height)
            for row, reason in batch.failures:
                errors.extend(FileError(file.path, reason) for file in contents[row].files)
            bars.advance(task, len(batch.indices) + len(batch.failures))
    ok = [row for row, info in enumerate(infos) if info is not None]
    return EmbeddedImages(
        contents=[contents[row] for row in ok],
        infos=[infos[row] for row in ok],  # type: ignore[misc]
        embeddings=embeddings[ok],
        errors=errors,
        thumbnails=[thumbnails[row] for row in ok],
    )


def open_encoder(
    model: str | None = None,
    device: str = "auto",
    *,
    weights: str | None = None,
    progress: bool = False,
) -> Encoder:
    """Load `model` (default: `default_model()`) on `device`.

    With device "auto", a model whose runtime cannot use the GPU here (onnxruntime without its
    CUDA provider) runs on the CPU rather than failing; an explicit cuda device still fails.
    """
    spec = get_spec(model or default_model())
    torch_device = resolve_device(device)
    if device.strip().lower() == "auto" and not can_use_cuda(spec):
        torch_device = torch.device("cpu")
    return load_encoder(spec, torch_device, weights=weights, progress=progress)


def scan(
    paths: Sequence[str],
    *,
    from_list: str | None = None,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    threshold: float | None = None,
    keep: KeepPolicy | str = KeepPolicy.largest,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    encoder: Encoder | None = None,
    verify: str = "auto",
    thumbnail_budget_mb: int = 2000,
) -> ScanResult:
    """Find exact and near-duplicate images under `paths`; see README.md for every option.

    Bad files never raise: each becomes an entry in `report.errors`. Bad arguments, an unusable
    device or model raise a DedupError before any file is read.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise BadArgumentError(f"--batch-size must be at least 1, not {batch_size}")
    if workers is not None and workers < 0:
        raise BadArgumentError(f"--workers must be 0 or more, not {workers}")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise BadArgumentError(f"--threshold must be a cosine score in [-1, 1], not {threshold}")
    try:
        policy = KeepPolicy(keep)
    except ValueError as error:
        choices = ", ".join(p.value for p in KeepPolicy)
        raise BadArgumentError(f"unknown keep policy {keep!r}", hint=f"use {choices}") from error
    verifying = resolve_mode(verify)
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    if encoder is None:
        encoder = open_encoder(model, device, weights=weights, progress=progress)
    threshold = default_threshold(encoder, verifying) if threshold is None else threshold
    timings["load_model"] = time.perf_counter() - tick

    tick = time.perf_counter()
    found = discover(paths, from_list=from_list)
    timings["discover"] = time.perf_counter() - tick

    tick = time.perf_counter()
    exact = group_identical(found.files, progress=progress)
    timings["hash"] = time.perf_counter() - tick

    tick = time.perf_counter()
    embedded = embed_contents(
        exact.groups,
        encoder,
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        progress=progress,
        thumbnail_size=THUMBNAIL_SIZE if verifying else None,
        thumbnail_budget=thumbnail_budget_mb * 1_000_000,
    )
    timings["decode_and_embed"] = time.perf_counter() - tick

    tick = time.perf_counter()
    gpu = (encoder.device.index or 0) if encoder.device.type == "cuda" else None
    pairs = find_pairs(embedded.embeddings, threshold, gpu=gpu)
    timings["search"] = time.perf_counter() - tick

    tick = time.perf_counter()
    verifier = None
    if verifying:
        verifier = Verifier(
            [content.representative.path for content in embedded.contents],
            thumbnails=embedded.thumbnails,
            settings=VerifySettings(fallback_threshold=encoder.spec.default_threshold),
            device=encoder.device,
            workers=workers,
            max_pixels=max_pixels,
            progress=progress,
        )
    groups = build_groups(
        embedded.contents,
        embedded.infos,
        pairs,
        threshold,
        policy,
        check=verifier,
        verdicts=verifier.verdicts if verifier else None,
    )
    timings["verify"] = verifier.seconds if verifier else 0.0
    timings["group"] = time.perf_counter() - tick - timings["verify"]
    verdicts = verifier.verdicts if verifier else {}
    rejected = [
        RejectedPair(
            embedded.contents[left].representative.path,
            embedded.contents[right].representative.path,
            score,
            verdicts[(left, right)],
        )
        for left, right, score in zip(
            pairs.left.tolist(), pairs.right.tolist(), pairs.score.tolist(), strict=True
        )
        if (left, right) in verdicts and not verdicts[(left, right)].accepted
    ]

    errors = sorted([*found.errors, *exact.errors, *embedded.errors], key=lambda e: e.path)
    timings["total"] = time.perf_counter() - started
    report = Report(
        model=encoder.spec.name,
        model_info=encoder.describe(),
        threshold=float(threshold),
        keep_policy=policy.value,
        device=str(encoder.device),
        groups=groups,
        errors=errors,
        verification={
            "mode": "on" if verifying else "off",
            "pairs_checked": len(verdicts),
            "pairs_rejected": len(rejected),
            "seconds": round(timings["verify"], 3),
        },
        rejected=rejected,
        counts=count_summary(
            groups,
            errors,
            files_found=len(found.files),
            images_scanned=sum(len(group.files) for group in embedded.contents),
            distinct_contents=len(embedded.contents),
            aliases_skipped=found.aliases_skipped,
        ),
        timings_s=timings,
    )
    return ScanResult(
        report=report,
        contents=embedded.contents,
        infos=embedded.infos,
        embeddings=embedded.embeddings,
        pairs=pairs,
        verdicts=verdicts,
    )


def default_threshold(encoder: Encoder, verifying: bool) -> float:
    """The model's screening threshold when verification decides, else its own threshold."""
    spec = encoder.spec
    if verifying and spec.screen_threshold is not None:
        return spec.screen_threshold
    return spec.default_threshold
