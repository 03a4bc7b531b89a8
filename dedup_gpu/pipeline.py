"""The scan end to end: sources -> exact -> decode -> embed -> search -> verify -> group ->
report; and the same report made from a catalog's stored embeddings (`groups_from_catalog`)."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .catalog import Catalog, CatalogImages, ensure_same_model
from .data import DEFAULT_MAX_PIXELS, Batch, iterate_batches
from .device import gpu_number, resolve_device, resolve_devices
from .device_decode import can_decode_on, finish_batch
from .encoders import can_use_cuda, default_model, get_spec, load_encoder
from .encoders.base import Encoder, EncoderSpec, compile_encoder
from .errors import BadArgumentError, CatalogError, DeviceUnavailableError
from .exact import group_identical
from .group import REJECTION_BUDGET, Group, KeepPolicy, Verification, build_groups, cross_groups
from .index import Pairs, SearchSettings, search_cross_pairs, search_pairs, unique_pairs
from .output_guard import refuse_overwriting_inputs
from .progress import progress_bars
from .records import ContentGroup, FileError, ImageFile, ImageInfo, Verdict, VerifyOutcome
from .redact import carries_credentials
from .report import RejectedPair, Report, count_summary
from .roots import covering_roots
from .sources import discover, refuse_unreadable_roots, unreadable_roots
from .verify import THUMBNAIL_SIZE, Verifier, resolve_mode

logger = logging.getLogger(__name__)

DECODE_CHOICES = ("auto", "cpu", "device")
# A file hashed with its byte-identical twins, then read again with other bytes.
CHANGED_SINCE_HASHED = (
    "changed while it was being scanned (other bytes than when it was first hashed); scan it "
    "again once it is written"
)


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

    @classmethod
    def of_decoded(
        cls,
        contents: Sequence[ContentGroup],
        infos: Sequence[ImageInfo | None],
        embeddings: np.ndarray,
        errors: list[FileError],
        thumbnails: Sequence[bytes | None],
        **extra: Any,
    ) -> Any:
        """The rows that decoded (their info is not None), in order; `extra` for subclasses."""
        ok = [row for row, info in enumerate(infos) if info is not None]
        return cls(
            contents=[contents[row] for row in ok],
            infos=[infos[row] for row in ok],  # type: ignore[misc]
            embeddings=embeddings[ok],
            errors=errors,
            thumbnails=[thumbnails[row] for row in ok],
            **extra,
        )


@dataclass
class EmbeddedBatch:
    """One decoded and embedded batch; `rows` are positions in the paths that were given."""

    rows: list[int]
    embeddings: np.ndarray  # float16 [len(rows), dim]: the precision catalogs store
    infos: list[ImageInfo]
    thumbnails: list[bytes | None]
    digests: list[str | None]  # content hashes, when asked for
    failures: list[tuple[int, str]]  # (row, one-line reason)


def embedded_batches(
    paths: Sequence[str],
    encoder: Encoder | Sequence[Encoder],
    *,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thumbnail_size: int | None = None,
    digests: bool = False,
    decode: str = "auto",
    listed: Sequence[tuple[int, float]] | None = None,
) -> Iterator[EmbeddedBatch]:
    """Decode `paths` in worker processes and embed them a batch at a time, in order.

    Embeddings are rounded to float16, the precision a catalog keeps, so that a report made
    from a catalog scores every pair exactly as a scan of the same files does.

    With several encoders (replicas of one model on several devices), whole batches go to the
    devices in turn, each device in its own thread, so every image is embedded in the same batch
    as on one device and the results are identical. With `decode` "device" (or "auto" on a GPU),
    JPEGs are decoded on the encoder's device (see device_decode.py). With `listed` (each
    file's size and modification time when it was listed) and `digests`, a file rewritten since
    is a failure, never embedded under its old size.
    """
    encoders = [encoder] if isinstance(encoder, Encoder) else list(encoder)
    if not encoders:
        raise BadArgumentError("no encoder to embed with")
    defer_jpegs = all(decodes_on_device(decode, each.device) for each in encoders)
    size = encoders[0].spec.input_size
    batches = iterate_batches(
        paths,
        size,
        batch_size=batch_size,
        workers=workers,
        pin_memory=any(each.device.type == "cuda" for each in encoders),
        max_pixels=max_pixels,
        thumbnail_size=thumbnail_size,
        digests=digests,
        defer_jpegs=defer_jpegs,
        listed=listed,
    )
    embedders = [BatchShrinkingEmbedder(each) for each in encoders]

    def embed(embedder: BatchShrinkingEmbedder, batch: Batch) -> EmbeddedBatch:
        device = embedder.encoder.device
        if defer_jpegs:
            batch = finish_batch(batch, device, size, thumbnail_size=thumbnail_size)
        rows = batch.indices.tolist()
        embeddings = (
            embedder(batch.pixels).astype(np.float16)
            if rows
            else np.empty((0, embedder.encoder.spec.embedding_dim or 0), dtype=np.float16)
        )
        return EmbeddedBatch(
            rows=rows,
            embeddings=embeddings,
            infos=[
                ImageInfo(width=width, height=height)
                for width, height in zip(batch.widths.tolist(), batch.heights.tolist(), strict=True)
            ],
            thumbnails=batch.thumbnails,
            digests=batch.digests,
            failures=batch.failures,
        )

    if len(embedders) == 1 and embedders[0].encoder.device.type == "cpu":
        # On the CPU the decode workers already run beside the model; a thread adds nothing.
        for batch in batches:
            yield embed(embedders[0], batch)
        return
    yield from _in_device_threads(embedders, batches, embed)


def _in_device_threads(
    embedders: Sequence[BatchShrinkingEmbedder],
    batches: Iterator[Batch],
    embed: Callable[[BatchShrinkingEmbedder, Batch], EmbeddedBatch],
) -> Iterator[EmbeddedBatch]:
    """Batch k embedded by embedders[k % n], each in a thread of its own, results in order.

    The main thread keeps taking batches from the loader (and pinning them) while the devices
    work; two batches per device are in flight, so a device never waits for the next.
    """
    with ExitStack() as stack:
        threads = [
            stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix=f"embed-{number}"))
            for number in range(len(embedders))
        ]
        in_flight: deque[Future[EmbeddedBatch]] = deque()
        for number, batch in enumerate(batches):
            which = number % len(embedders)
            in_flight.append(threads[which].submit(embed, embedders[which], batch))
            if len(in_flight) >= 2 * len(embedders):
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def decodes_on_device(decode: str, device: torch.device) -> bool:
    """Whether JPEGs are decoded on `device` for `decode` "auto" (on a GPU that can), "cpu"
    (never: Pillow in the workers) or "device" (always; an error where torchvision cannot)."""
    if decode not in DECODE_CHOICES:
        raise BadArgumentError(
            f"unknown decode mode {decode!r}", hint=f"use {', '.join(DECODE_CHOICES)}"
        )
    if decode == "cpu":
        return False
    if decode == "device":
        if not can_decode_on(device):
            raise DeviceUnavailableError(
                f"--decode device: torchvision cannot decode JPEGs on {device} here",
                hint="use --decode cpu, or a torchvision built with nvJPEG for this CUDA",
            )
        return True
    return device.type == "cuda" and can_decode_on(device)


class BatchShrinkingEmbedder:
    """`encoder.embed`, retried in halves after an out-of-memory error; the smaller size is kept
    for the rest of the run, so one tight moment costs one retry, not one per batch."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.limit: int | None = None  # the most images embedded at once; None: whole batches

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        parts = []
        start = 0
        while start < len(pixels):
            size = (
                len(pixels) - start if self.limit is None else min(self.limit, len(pixels) - start)
            )
            try:
                parts.append(self.encoder.embed(pixels[start : start + size]))
            except Exception as error:
                if not _out_of_memory(error):
                    raise
                if size == 1:
                    raise DeviceUnavailableError(
                        f"out of memory embedding a single image on {self.encoder.device}",
                        hint="free memory on the device, or use a smaller model or --device cpu",
                    ) from error
                self.limit = size // 2
                _release_cached_memory(self.encoder.device)
                logger.warning(
                    "out of memory on %s with %d images at once; continuing with %d",
                    self.encoder.device,
                    size,
                    self.limit,
                )
                continue
            start += size
        return np.concatenate(parts) if parts else self.encoder.embed(pixels)


def _out_of_memory(error: Exception) -> bool:
    # torch raises its own type; onnxruntime's CUDA provider raises a generic runtime error.
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return "out of memory" in text or "failed to allocate memory" in text


def _release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def embed_contents(
    contents: Sequence[ContentGroup],
    encoder: Encoder | Sequence[Encoder],
    *,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    thumbnail_size: int | None = None,
    thumbnail_budget: int = 0,
    decode: str = "auto",
) -> EmbeddedImages:
    """Decode and embed one file per distinct content; undecodable contents become errors.

    With `thumbnail_size`, a JPEG thumbnail of each image made from the same decode is kept,
    up to `thumbnail_budget` bytes in all, so verification need not decode those files again.
    """
    spec = (encoder if isinstance(encoder, Encoder) else encoder[0]).spec
    dim = spec.embedding_dim
    assert dim is not None
    # Every content ends with its digest, hashed from the bytes decoded: reports record it so
    # that actions can tell whether a file changed since.
    contents = list(contents)
    embeddings = np.zeros((len(contents), dim), dtype=np.float32)
    infos: list[ImageInfo | None] = [None] * len(contents)
    errors: list[FileError] = []
    thumbnails: list[bytes | None] = [None] * len(contents)
    kept_bytes = 0
    paths = [group.representative.path for group in contents]
    with progress_bars(progress and bool(paths)) as bars:
        task = bars.add_task(f"embedding with {spec.name}", total=len(paths))
        for batch in embedded_batches(
            paths,
            encoder,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            thumbnail_size=thumbnail_size,
            digests=True,
            decode=decode,
            listed=[(group.representative.size, group.representative.mtime) for group in contents],
        ):
            failures = list(batch.failures)
            for row, info, embedding, thumbnail, digest in zip(
                batch.rows,
                batch.infos,
                batch.embeddings,
                batch.thumbnails,
                batch.digests,
                strict=True,
            ):
                if contents[row].digest not in (None, digest):  # hashed before, other bytes now
                    failures.append((row, CHANGED_SINCE_HASHED))
                    continue
                embeddings[row] = embedding
                infos[row] = info
                if contents[row].digest is None:  # a unique size was not hashed before
                    contents[row] = replace(contents[row], digest=digest)
                if thumbnail is not None and kept_bytes + len(thumbnail) <= thumbnail_budget:
                    thumbnails[row] = thumbnail
                    kept_bytes += len(thumbnail)
            for row, reason in failures:
                errors += _failed_content(contents[row], reason)
            bars.advance(task, len(batch.rows) + len(batch.failures))
    return EmbeddedImages.of_decoded(contents, infos, embeddings, errors, thumbnails)


def _failed_content(content: ContentGroup, reason: str) -> list[FileError]:
    """The errors of byte-identical files whose one decoded copy failed: the same reason for
    all, except a copy rewritten since hashing, which leaves its unchanged twins unembedded."""
    first, *twins = content.files
    if reason != CHANGED_SINCE_HASHED:
        return [FileError(file.path, reason) for file in content.files]
    return [FileError(first.path, reason)] + [
        FileError(
            twin.path,
            f"not embedded: {first.path}, byte-identical to it when hashed, changed while it was "
            "being scanned; scan it again",
        )
        for twin in twins
    ]


def open_encoder(
    model: str | None = None,
    device: str = "auto",
    *,
    weights: str | None = None,
    progress: bool = False,
    compile_model: bool = False,
) -> Encoder:
    """Load `model` (default: `default_model()`) on `device`, compiled with `torch.compile`
    when `compile_model` is set.

    With device "auto", a model whose runtime cannot use the GPU here (onnxruntime without its
    CUDA provider) runs on the CPU rather than failing; an explicit cuda device still fails.
    """
    spec = get_spec(model or default_model())
    torch_device = resolve_device(device)
    if device.strip().lower() == "auto" and not can_use_cuda(spec):
        torch_device = torch.device("cpu")
    encoder = load_encoder(spec, torch_device, weights=weights, progress=progress)
    return compile_encoder(encoder) if compile_model else encoder


def open_encoders(
    model: str | None = None,
    device: str = "auto",
    *,
    devices: str | None = None,
    weights: str | None = None,
    progress: bool = False,
    compile_model: bool = False,
) -> list[Encoder]:
    """One replica of `model` per device of `devices` (see `device.resolve_devices`), or the
    single encoder of `open_encoder(model, device)` when `devices` is None."""
    if devices is None:
        return [
            open_encoder(
                model, device, weights=weights, progress=progress, compile_model=compile_model
            )
        ]
    if device.strip().lower() != "auto":
        raise BadArgumentError(
            f"--device {device} and --devices {devices} were both given",
            hint="use --devices alone to run on several GPUs",
        )
    spec = get_spec(model or default_model())
    encoders = [
        load_encoder(spec, each, weights=weights, progress=progress)
        for each in resolve_devices(devices)
    ]
    return [compile_encoder(each) for each in encoders] if compile_model else encoders


def validate_options(
    *,
    batch_size: int = 64,
    workers: int | None = None,
    threshold: float | None = None,
    keep: KeepPolicy | str = KeepPolicy.largest,
    max_pixels: int | None = None,
) -> KeepPolicy:
    """Refuse bad arguments before any file is read; returns the keep policy."""
    if batch_size < 1:
        raise BadArgumentError(f"--batch-size must be at least 1, not {batch_size}")
    if workers is not None and workers < 0:
        raise BadArgumentError(f"--workers must be 0 or more, not {workers}")
    # At 0 or below every pair of images is a candidate: one group of everything.
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise BadArgumentError(
            f"--threshold must be a cosine score above 0 and at most 1, not {threshold}",
            hint="the SSCD models screen at 0.30; higher is stricter",
        )
    if max_pixels is not None and max_pixels < 1:
        raise BadArgumentError(f"--max-pixels must be at least 1, not {max_pixels}")
    try:
        return KeepPolicy(keep)
    except ValueError as error:
        choices = ", ".join(p.value for p in KeepPolicy)
        raise BadArgumentError(f"unknown keep policy {keep!r}", hint=f"use {choices}") from error


def scan(
    paths: Sequence[str],
    *,
    from_list: str | None = None,
    against: Sequence[str] | None = None,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    threshold: float | None = None,
    keep: KeepPolicy | str = KeepPolicy.largest,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    encoder: Encoder | Sequence[Encoder] | None = None,
    verify: str = "auto",
    search: SearchSettings | None = None,
    thumbnail_budget_mb: int = 2000,
    devices: str | None = None,
    decode: str = "auto",
    compile_model: bool = False,
    ray_address: str | None = None,
    shard_dir: str | None = None,
    ray_workers: int | None = None,
    partitions: int | None = None,
    overlap: int = 2,
    image_column: str | None = None,
    name_column: str | None = None,
    outputs: Sequence[str] = (),
) -> ScanResult:
    """Find exact and near-duplicate images under `paths`; see README.md for every option.
    `outputs`: the files the caller will write the results to, refused before any embedding
    if one is an image being read.

    With `against` (a second set of paths), only copies across the two sets are reported: each
    group keeps an image of `against` and lists the images of `paths` that copy it.

    With `devices` (e.g. "all" or "0,1"), or several encoders, the images are embedded on
    every device at once, with the same results as on one.

    Bad files never raise: each becomes an entry in `report.errors`. Bad arguments, an unusable
    device or model raise a DedupError before any file is read.
    """
    started = time.perf_counter()
    policy = validate_options(
        batch_size=batch_size,
        workers=workers,
        threshold=threshold,
        keep=keep,
        max_pixels=max_pixels,
    )
    if {ray_address, shard_dir, ray_workers, partitions} != {None}:  # Ray: distributed.py
        from .distributed import validate_options as validate_distributed

        validate_distributed(
            ray_address=ray_address,
            shard_dir=shard_dir,
            partitions=partitions,
            overlap=overlap,
            actors=ray_workers,
            against=against,
            devices=devices,
        )
    verifying = resolve_mode(verify)
    search = search or SearchSettings()
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    if encoder is None:
        encoders = open_encoders(
            model,
            device,
            devices=devices,
            weights=weights,
            progress=progress,
            compile_model=compile_model,
        )
    else:
        encoders = [encoder] if isinstance(encoder, Encoder) else list(encoder)
    encoder = encoders[0]
    for each in encoders:
        decodes_on_device(decode, each.device)  # a bad --decode fails before any file is read
    threshold = default_threshold(encoder.spec, verifying) if threshold is None else threshold
    timings["load_model"] = time.perf_counter() - tick

    tick = time.perf_counter()
    columns = {"image_column": image_column, "name_column": name_column}
    found = discover(paths, from_list=from_list, **columns)
    reference = discover(against, **columns) if against else None
    # A root that cannot be read at all is a mistake to stop at, not an empty set: a leak check
    # of `--against /typo` would otherwise pass with nothing found.
    refuse_unreadable_roots(
        [
            *unreadable_roots(found, paths),
            *(unreadable_roots(reference, against) if reference and against else []),
        ]
    )
    all_files = [*found.files, *(reference.files if reference else [])]
    refuse_overwriting_inputs(outputs, ((file.path, file.size) for file in all_files))
    if any("://" in file.path and carries_credentials(file.path) for file in all_files):
        logger.warning(
            "some source URLs carry credentials (user:password@, a signature or token); they "
            "are redacted in the report, CSV, review page and messages; prefer the environment "
            "or fsspec's configuration"
        )
    timings["discover"] = time.perf_counter() - tick

    tick = time.perf_counter()
    exact = group_identical(all_files, progress=progress)
    timings["hash"] = time.perf_counter() - tick

    tick = time.perf_counter()
    loading: dict[str, Any] = {
        "batch_size": batch_size,
        "workers": workers,
        "max_pixels": max_pixels,
        "progress": progress,
        "thumbnail_size": THUMBNAIL_SIZE if verifying else None,
        "thumbnail_budget": thumbnail_budget_mb * 1_000_000,
        "decode": decode,
    }
    if ray_address is None:
        embedded = embed_contents(exact.groups, encoders, **loading)
    else:
        from .distributed import embed_contents_on_ray

        embedded = embed_contents_on_ray(
            exact.groups,
            address=ray_address,
            model=encoder.spec.name,
            weights=weights,
            device=device,
            shard_dir=shard_dir,
            **loading,
            compile_model=compile_model,
            columns=columns,
            actors=ray_workers,
            expect_weights_sha256=encoder.weights_sha256,
        )
    timings["decode_and_embed"] = time.perf_counter() - tick

    gpu = gpu_number(encoder.device)
    reference_paths = {file.path for file in reference.files} if reference else None
    tick = time.perf_counter()
    if reference_paths is None and partitions is not None:
        from .distributed import partitioned_pairs

        pairs, search_info = partitioned_pairs(
            embedded.embeddings,
            threshold,
            partitions=partitions,
            overlap=overlap,
            address=ray_address,
            gpu=gpu,
            progress=progress,
        )
    elif reference_paths is None:
        pairs, search_info = search_pairs(embedded.embeddings, threshold, search=search, gpu=gpu)
    else:
        pairs, search_info = cross_pairs(
            embedded.contents, embedded.embeddings, reference_paths, threshold, search, gpu
        )
    timings["search"] = time.perf_counter() - tick

    grouped = verify_and_group(
        embedded.contents,
        embedded.infos,
        pairs,
        threshold,
        policy,
        thumbnails=embedded.thumbnails,
        spec=encoder.spec,
        verifying=verifying,
        device=encoder.device,
        workers=workers,
        max_pixels=max_pixels,
        progress=progress,
        reference_paths=reference_paths,
    )
    timings.update(grouped.timings)
    errors = sorted(
        [*found.errors, *(reference.errors if reference else []), *exact.errors, *embedded.errors],
        key=lambda e: e.path,
    )
    timings["total"] = time.perf_counter() - started
    report = Report(
        model=encoder.spec.name,
        model_info=encoder.describe(),
        threshold=float(threshold),
        keep_policy=policy.value,
        device=_devices_used(encoders, embedded),
        groups=grouped.groups,
        errors=errors,
        verification=grouped.verification,
        rejected=grouped.rejected,
        unverified=grouped.unverified,
        counts=count_summary(
            grouped.groups,
            errors,
            files_found=len(all_files),
            images_scanned=sum(len(group.files) for group in embedded.contents),
            distinct_contents=len(embedded.contents),
            aliases_skipped=found.aliases_skipped + (reference.aliases_skipped if reference else 0),
        ),
        timings_s=timings,
        search=search_info,
        against=_against_info(against, reference_paths, embedded.contents),
        digests=_digests(embedded.contents),
        roots=covering_roots([*paths, *(against or [])], (file.path for file in all_files)),
    )
    return ScanResult(
        report=report,
        contents=embedded.contents,
        infos=embedded.infos,
        embeddings=embedded.embeddings,
        pairs=pairs,
        verdicts=grouped.verdicts,
    )


def _devices_used(encoders: Sequence[Encoder], embedded: EmbeddedImages) -> str:
    """Where the images were embedded: this machine's devices, or the Ray workers' devices."""
    workers = getattr(embedded, "workers", None)
    if not workers:
        return ",".join(str(each.device) for each in encoders)
    counts: dict[str, int] = {}
    for worker in workers:
        device = str(worker.get("model", {}).get("device", "?"))
        counts[device] = counts.get(device, 0) + 1
    spread = ", ".join(f"{device} x{count}" for device, count in sorted(counts.items()))
    return f"ray ({len(workers)} workers: {spread})"


def _against_info(
    against: Sequence[str] | None,
    reference_paths: set[str] | None,
    contents: Sequence[ContentGroup],
) -> dict[str, Any] | None:
    if reference_paths is None:
        return None
    files = [file for group in contents for file in group.files]
    in_reference = sum(file.path in reference_paths for file in files)
    return {
        "reference": list(against or []),
        "reference_images": in_reference,
        "query_images": len(files) - in_reference,
    }


def _digests(contents: Sequence[ContentGroup]) -> dict[str, str]:
    return {
        file.path: content.digest
        for content in contents
        if content.digest
        for file in content.files
    }


def cross_pairs(
    contents: Sequence[ContentGroup],
    embeddings: np.ndarray,
    reference_paths: set[str],
    threshold: float,
    search: SearchSettings,
    gpu: int | None,
) -> tuple[Pairs, dict[str, Any]]:
    """Pairs between contents holding a reference file and contents holding any other file:
    the reference set is indexed and the other set searches it (no pairs within one set)."""
    has_reference = np.array(
        [any(f.path in reference_paths for f in group.files) for group in contents], dtype=bool
    )
    has_query = np.array(
        [any(f.path not in reference_paths for f in group.files) for group in contents],
        dtype=bool,
    )
    reference_rows = np.flatnonzero(has_reference)
    query_rows = np.flatnonzero(has_query)
    if not len(reference_rows) or not len(query_rows):
        return Pairs.empty(), {"kind": search.resolve(len(reference_rows))}
    return search_cross_pairs(
        embeddings[query_rows],
        query_rows,
        embeddings[reference_rows],
        reference_rows,
        threshold,
        search=search,
        gpu=gpu,
    )


@dataclass
class Grouped:
    groups: list[Group]
    verdicts: dict[tuple[int, int], Verdict]
    rejected: list[RejectedPair]
    unverified: list[RejectedPair]  # candidates too plain to decide: listed, never grouped
    verification: dict[str, Any]
    timings: dict[str, float]


def verify_and_group(
    contents: Sequence[ContentGroup],
    infos: Sequence[ImageInfo],
    pairs: Pairs,
    threshold: float,
    policy: KeepPolicy,
    *,
    thumbnails: Sequence[bytes | None] | None,
    spec: EncoderSpec,
    verifying: bool,
    device: torch.device,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    reference_paths: set[str] | None = None,
) -> Grouped:
    """Groups from scored pairs, verifying the edges grouping would use; with
    `reference_paths`, only copies across the two sets (see group.cross_groups)."""
    tick = time.perf_counter()
    verifier = None
    if verifying:
        verifier = Verifier(
            [content.representative.path for content in contents],
            thumbnails=thumbnails,
            device=device,
            workers=workers,
            max_pixels=max_pixels,
        )
    verdicts = verifier.verdicts if verifier else {}
    with progress_bars(progress and verifier is not None) as bars:
        task = bars.add_task("verifying pairs", total=None)
        verification = None
        if verifier is not None:
            verification = Verification(
                check=verifier,
                apart=verifier.apart,
                outvotable=verifier.outvotable,
                priority=lambda candidates: verifier.priorities(candidates, REJECTION_BUDGET),
                progress=lambda done, expected: bars.update(task, completed=done, total=expected),
            )
        if reference_paths is None:
            groups = build_groups(
                contents, infos, pairs, threshold, policy, check=verification, verdicts=verdicts
            )
        else:
            groups = cross_groups(
                contents,
                infos,
                pairs,
                threshold,
                policy,
                reference_paths=reference_paths,
                check=verifier,
                verdicts=verdicts,
            )
    verify_seconds = verifier.seconds if verifier else 0.0
    turned_down = {
        outcome: [
            RejectedPair(
                contents[left].representative.path,
                contents[right].representative.path,
                score,
                verdicts[(left, right)],
            )
            for left, right, score in zip(
                pairs.left.tolist(), pairs.right.tolist(), pairs.score.tolist(), strict=True
            )
            if (left, right) in verdicts and verdicts[(left, right)].outcome is outcome
        ]
        for outcome in (VerifyOutcome.rejected, VerifyOutcome.unverified)
    }
    candidates = int((pairs.score >= threshold).sum())
    return Grouped(
        groups=groups,
        verdicts=verdicts,
        rejected=turned_down[VerifyOutcome.rejected],
        unverified=turned_down[VerifyOutcome.unverified],
        verification={
            "mode": "on" if verifying else "off",
            "candidate_pairs": candidates,
            "pairs_checked": len(verdicts),
            "pairs_rejected": len(turned_down[VerifyOutcome.rejected]),
            "pairs_unverified": len(turned_down[VerifyOutcome.unverified]),
            "pairs_not_tried": candidates - len(verdicts) if verifying else 0,
            "rounds": verifier.rounds if verifier else 0,
            "seconds": round(verify_seconds, 3),
        },
        timings={
            "verify": verify_seconds,
            "group": time.perf_counter() - tick - verify_seconds,
        },
    )


def default_threshold(spec: EncoderSpec, verifying: bool) -> float:
    """The model's screening threshold when verification decides, else its own threshold."""
    if verifying and spec.screen_threshold is not None:
        return spec.screen_threshold
    return spec.default_threshold


class _CatalogThumbnails(Sequence):
    """Verification thumbnails of catalog images, fetched only for the rows verified."""

    def __init__(self, sources: Sequence[tuple[Catalog, int]]):
        self.sources = sources

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, row):  # type: ignore[override]
        store, file_id = self.sources[row]
        return store.thumbnail(file_id)


def _contents_by_digest(
    sources: Sequence[tuple[Catalog, CatalogImages]],
) -> tuple[list[ContentGroup], list[ImageInfo], list[tuple[int, int]]]:
    """Catalog images as distinct contents; each content's (source, row) for its embedding."""
    members: dict[str, list[ImageFile]] = {}
    first: dict[str, tuple[int, int]] = {}
    info_of: dict[str, ImageInfo] = {}
    for number, (_, images) in enumerate(sources):
        for row, (file, digest, info) in enumerate(
            zip(images.files, images.digests, images.infos, strict=True)
        ):
            if digest not in members:
                members[digest] = []
                first[digest] = (number, row)
                info_of[digest] = info
            members[digest].append(file)
    contents = [
        ContentGroup(files=tuple(files), digest=digest) for digest, files in members.items()
    ]
    return contents, [info_of[d] for d in members], [first[d] for d in members]


def _usable_images(store: Catalog) -> tuple[CatalogImages, list[FileError]]:
    """The catalog's images whose embedding can be read, and an error for each other file: its
    own recorded error, or a lost embedding (a shard deleted, cut short or overwritten: the
    digests cost one more read of the rows, which are all read next anyway)."""
    lost = store.unreadable_embeddings(check_digests=True)
    images = store.images()
    errors = store.errors() + [
        FileError(
            path,
            "its stored embedding is lost (its shard is missing, cut short or overwritten); "
            f"dedup-gpu catalog repair --catalog {store.directory} embeds it again",
        )
        for path in sorted(lost)
    ]
    return (images.without(lost) if lost else images), errors


def groups_from_catalog(
    catalog: str | os.PathLike[str],
    *,
    against: str | os.PathLike[str] | None = None,
    threshold: float | None = None,
    keep: KeepPolicy | str = KeepPolicy.largest,
    verify: str = "auto",
    search: SearchSettings | None = None,
    device: str = "auto",
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    outputs: Sequence[str] = (),
) -> ScanResult:
    """The report `scan` would give for the catalog's images, from the stored embeddings and
    thumbnails: nothing is decoded or embedded again (documents re-read their pages only to
    verify a candidate pair). With `against` (another catalog of the same model), only copies
    across the two catalogs are reported, each group keeping the `against` catalog's image.
    `outputs`: as for `scan`, refused if one is a catalogued image."""
    started = time.perf_counter()
    policy = validate_options(threshold=threshold, keep=keep)
    verifying = resolve_mode(verify)
    search = search or SearchSettings()
    torch_device = resolve_device(device)
    gpu = gpu_number(torch_device)
    timings: dict[str, float] = {}
    with ExitStack() as stack:
        store = stack.enter_context(Catalog(catalog))
        stack.enter_context(store.reading())
        model = store.model
        if model is None:
            raise CatalogError(
                f"catalog {catalog} holds no images yet",
                hint=f"add some with: dedup-gpu index FOLDER --catalog {catalog}",
            )
        spec = get_spec(model["name"])
        threshold = default_threshold(spec, verifying) if threshold is None else threshold
        tick = time.perf_counter()
        images, errors = _usable_images(store)
        sources: list[tuple[Catalog, CatalogImages]] = [(store, images)]
        reference_paths = None
        if against is not None:
            other = stack.enter_context(Catalog(against))
            stack.enter_context(other.reading())
            if other.model is None:
                raise CatalogError(f"catalog {against} holds no images yet")
            ensure_same_model(other.model, model, str(against))
            reference, reference_errors = _usable_images(other)
            sources.append((other, reference))
            reference_paths = {file.path for file in reference.files}
            errors += reference_errors
        refuse_overwriting_inputs(
            outputs,
            ((file.path, file.size) for _, found in sources for file in found.files),
        )
        contents, infos, origins = _contents_by_digest(sources)
        roots = covering_roots(
            [path for source, _ in sources for path in source.named_paths()],
            (file.path for _, found in sources for file in found.files),
        )
        embeddings = np.empty((len(contents), int(model["embedding_dim"])), dtype=np.float16)
        for number, (source, source_images) in enumerate(sources):
            rows = [i for i, origin in enumerate(origins) if origin[0] == number]
            embeddings[rows] = source.embeddings(
                source_images, np.array([origins[i][1] for i in rows], dtype=np.int64)
            )
        timings["load_catalog"] = time.perf_counter() - tick

        tick = time.perf_counter()
        if reference_paths is None and not len(images):
            pairs, search_info = Pairs.empty(), {"kind": search.resolve(0)}
        elif reference_paths is None and search.resolve(len(images)) == "exact":
            # Exact search needs no stored index: the contents are joined with each other.
            pairs, search_info = search_pairs(embeddings, threshold, search=search, gpu=gpu)
        elif reference_paths is None:
            # The saved IVF index is reused (updated, not retrained, after small changes); the
            # contents search it and files are mapped back to their contents.
            index = store.search_index(images, search, gpu=gpu)
            content_of = np.full(int(images.ids.max(initial=-1)) + 1, -1, dtype=np.int64)
            row_of_digest = {content.digest: row for row, content in enumerate(contents)}
            content_of[images.ids] = [row_of_digest[d] for d in images.digests]
            representatives = images.ids[[origin[1] for origin in origins]]
            found = index.pairs_above(threshold, queries=embeddings, query_ids=representatives)
            # The saved index may hold files left out here (their stored embedding is lost).
            known = np.zeros(len(content_of), dtype=bool)
            known[images.ids] = True
            kept = np.flatnonzero(
                (found.left < len(known))
                & (found.right < len(known))
                & known[np.minimum(found.left, len(known) - 1)]
                & known[np.minimum(found.right, len(known) - 1)]
            )
            pairs = unique_pairs(
                content_of[found.left[kept]], content_of[found.right[kept]], found.score[kept]
            )
            search_info = index.describe()
        else:
            pairs, search_info = cross_pairs(
                contents, embeddings, reference_paths, threshold, search, gpu
            )
        timings["search"] = time.perf_counter() - tick

        thumbnails = _CatalogThumbnails(
            [(sources[n][0], int(sources[n][1].ids[row])) for n, row in origins]
        )
        grouped = verify_and_group(
            contents,
            infos,
            pairs,
            threshold,
            policy,
            thumbnails=thumbnails,
            spec=spec,
            verifying=verifying,
            device=torch_device,
            workers=workers,
            max_pixels=max_pixels,
            progress=progress,
            reference_paths=reference_paths,
        )
    timings.update(grouped.timings)
    errors.sort(key=lambda e: e.path)
    timings["total"] = time.perf_counter() - started
    files = sum(len(content.files) for content in contents)
    report = Report(
        model=spec.name,
        model_info={**model, "catalog": str(catalog)},
        threshold=float(threshold),
        keep_policy=policy.value,
        device=str(torch_device),
        groups=grouped.groups,
        errors=errors,
        verification=grouped.verification,
        rejected=grouped.rejected,
        unverified=grouped.unverified,
        counts=count_summary(
            grouped.groups,
            errors,
            files_found=files + len(errors),
            images_scanned=files,
            distinct_contents=len(contents),
            aliases_skipped=0,
        ),
        timings_s=timings,
        search=search_info,
        against=_against_info([str(against)], reference_paths, contents) if against else None,
        digests=_digests(contents),
        roots=roots,
    )
    return ScanResult(
        report=report,
        contents=contents,
        infos=infos,
        embeddings=embeddings.astype(np.float32),
        pairs=pairs,
        verdicts=grouped.verdicts,
    )
