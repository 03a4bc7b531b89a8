"""Perceptual-hash baselines (pHash, dHash, PDQ) for the evaluation harness.

They get the same images as the deep-embedding pipeline, decoded by the same code (EXIF
orientation, any mode to RGB, bad files as one-line reasons), so a difference in the report comes
from the method and not from decoding. Codes are packed bits; matching is exact Hamming search
with FAISS binary indexes, and scores are 1 - distance / bits so that higher means more similar,
as for cosine scores, and methods with different code lengths can be compared.

imagehash, pdqhash and faiss are imported only when a hash or a search is asked for.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from .data import DEFAULT_MAX_PIXELS, DecodeError, decode_image, default_workers, to_rgb
from .errors import BadArgumentError, ModelUnavailableError, first_line
from .index import Pairs, import_faiss
from .progress import progress_bars
from .records import FileError

# Every image is squashed to one square size before hashing, which decode_image does while
# decoding: JPEGs then decode at a reduced DCT scale (its draft mode), ~3x faster on phone photos.
# pHash and dHash see only 32x32 and 9x8 grey pixels and all three hashes ignore the aspect ratio,
# so this loses nothing they use: against hashing the full-size decode, a 256 decode moves
# pHash/dHash codes by ~0.3 of 64 bits on average. PDQ's reference hasher (pdq/cpp/io/pdqio.cpp in
# facebook/ThreatExchange) squashes images larger than 512x512 to exactly 512x512 too; smaller
# ones are upscaled here as well, because PDQ's filter windows scale with the image: a photo and
# its 1/2-1/4 downscale measured 4-20 bits apart hashed at their own sizes, 0-6 both at 512.
_HASH_DECODE_SIZE = 256
_PDQ_DECODE_SIZE = 512


@dataclass(frozen=True)
class HashMethod:
    """One perceptual hash: its code length, its usual match threshold and how to compute it."""

    name: str
    bits: int
    # Two codes match when their Hamming distance is at most this (inclusive).
    max_distance: int
    description: str
    # Images are resized to a square of this side before hashing (see _HASH_DECODE_SIZE).
    decode_size: int = _HASH_DECODE_SIZE

    @property
    def code_bytes(self) -> int:
        return self.bits // 8

    def hash_image(self, image: Image.Image) -> np.ndarray:
        """Packed uint8 code, shape (bits // 8,), of an already oriented image in any mode.

        The image is resized as decode_image resizes a file for hash_files, so both give the
        same code for the same pixels (up to JPEG draft decoding).
        """
        rgb = to_rgb(image)
        if rgb.size != (self.decode_size, self.decode_size):
            rgb = rgb.resize(
                (self.decode_size, self.decode_size), Image.Resampling.BILINEAR, reducing_gap=3.0
            )
        return self.hash_pixels(np.asarray(rgb, dtype=np.uint8))

    def hash_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Packed uint8 code of an H x W x 3 uint8 RGB array, hashed as it is (no resizing)."""
        bits = _HASHERS[self.name](pixels)
        code = np.packbits(bits.reshape(-1).astype(bool))
        if code.shape != (self.code_bytes,):
            raise ValueError(f"{self.name} gave {bits.size} bits, expected {self.bits}")
        return code

    def require_backend(self) -> None:
        """Raise ModelUnavailableError now if this method's hashing package is not installed."""
        _backend(self.name)


def _backend(name: str) -> ModuleType:
    package = "pdqhash" if name == "pdq" else "imagehash"
    try:
        if package == "pdqhash":
            import pdqhash as module
        else:
            import imagehash as module
    except ImportError as error:
        raise ModelUnavailableError(
            f"{package} is not installed; the {name} baseline needs it",
            hint="pip install imagehash==4.3.2 pdqhash==0.2.8",
        ) from error
    return module


def _phash_bits(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(_backend("phash").phash(Image.fromarray(pixels)).hash)


def _dhash_bits(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(_backend("dhash").dhash(Image.fromarray(pixels)).hash)


def _pdq_bits(pixels: np.ndarray) -> np.ndarray:
    # pdqhash reads the array through a raw C pointer, so it must be contiguous uint8.
    vector, _quality = _backend("pdq").compute(np.ascontiguousarray(pixels, dtype=np.uint8))
    return np.asarray(vector)


_HASHERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "phash": _phash_bits,
    "dhash": _dhash_bits,
    "pdq": _pdq_bits,
}

# Thresholds. pHash/dHash: no library ships an official one; Neal Krawetz's posts that introduced
# them (hackerfactor.com, "Looks Like It" 2011 and "Kind of Like That" 2013) treat a distance up to
# about 10 of 64 bits as a variation of the same picture and more as a different one, and 10 is
# what imagehash users commonly pick. PDQ: 31 of 256 is the distance threshold Meta recommends
# starting from (facebook/ThreatExchange, pdq/README.md, "Matching": "<=31").
_METHODS = (
    HashMethod(
        name="phash",
        bits=64,
        max_distance=10,
        description="imagehash pHash: signs of the 8x8 low-frequency DCT of a 32x32 grey image",
    ),
    HashMethod(
        name="dhash",
        bits=64,
        max_distance=10,
        description="imagehash dHash: signs of horizontal gradients of a 9x8 grey image",
    ),
    HashMethod(
        name="pdq",
        bits=256,
        max_distance=31,
        description="Meta's PDQ: 16x16 DCT of a Jarosz-filtered 64x64 luma image (pdqhash)",
        decode_size=_PDQ_DECODE_SIZE,
    ),
)


def list_hash_methods() -> list[HashMethod]:
    return list(_METHODS)


def get_hash_method(name: str) -> HashMethod:
    """The method called `name` (case-insensitive); BadArgumentError listing the choices if none."""
    for method in _METHODS:
        if method.name == name.strip().lower():
            return method
    choices = ", ".join(method.name for method in _METHODS)
    raise BadArgumentError(f"unknown hash method {name!r}", hint=f"choose one of: {choices}")


@dataclass
class HashedImages:
    """Codes of the files that decoded, in input order, and one FileError per file that did not."""

    paths: list[str]
    codes: np.ndarray  # uint8 [len(paths), bits // 8]
    errors: list[FileError]
    seconds: float  # wall time of hash_files: worker start-up, decoding and hashing

    @property
    def images_per_second(self) -> float:
        return len(self.paths) / self.seconds if self.seconds > 0 else 0.0


# One file's outcome from a worker: (position in the input, code or None, reason or None).
_Outcome = tuple[int, np.ndarray | None, str | None]


def _empty_file_reason(path: str) -> str | None:
    # Pillow calls a 0-byte file "not an image"; say what the scan (sources.py) says instead,
    # for harness callers that pass paths which did not go through discovery.
    try:
        return "empty file (0 bytes)" if os.path.getsize(path) == 0 else None
    except OSError:
        return None


def _hash_chunk(
    method: HashMethod, start: int, paths: Sequence[str], max_pixels: int
) -> list[_Outcome]:
    outcomes: list[_Outcome] = []
    for offset, path in enumerate(paths):
        index = start + offset
        try:
            decoded = decode_image(path, method.decode_size, max_pixels)
            outcomes.append((index, method.hash_pixels(decoded.pixels), None))
        except DecodeError as error:
            outcomes.append((index, None, _empty_file_reason(path) or first_line(error)))
        except Exception as error:  # a decoder or hasher bug on one file must not end the run
            outcomes.append(
                (index, None, f"cannot hash: {type(error).__name__}: {first_line(error)}")
            )
    return outcomes


def _pool_context() -> multiprocessing.context.BaseContext:
    # data.py imports torch, so a spawned worker would spend seconds re-importing it before its
    # first image; fork copies the loaded parent instead. Workers never touch torch or faiss, so
    # their thread pools in the parent do not matter. Elsewhere keep the platform default (macOS
    # defaults to spawn because fork is unsafe with its system frameworks).
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def hash_files(
    paths: Sequence[str],
    method: HashMethod,
    *,
    workers: int | None = None,
    progress: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    chunk_size: int = 16,
) -> HashedImages:
    """Decode and hash `paths` in `workers` processes (0: in this process).

    A file that cannot be decoded or hashed becomes a FileError and the run goes on. Raises
    ModelUnavailableError before any work if the method's package is missing, rather than
    reporting every file as failed.
    """
    method.require_backend()
    # One hash here runs the hasher's own lazy imports (imagehash's pHash imports scipy) once,
    # before the fork, instead of once in every worker.
    method.hash_pixels(np.zeros((16, 16, 3), dtype=np.uint8))
    paths = list(paths)
    if workers is None:
        workers = default_workers()
    if workers < 0:
        raise BadArgumentError(f"workers must be 0 or more, got {workers}")
    started = time.perf_counter()
    chunk_size = max(1, chunk_size)
    starts = range(0, len(paths), chunk_size)
    workers = min(workers, len(starts))
    # Filled by input position, so worker completion order cannot reorder the result.
    slots: list[_Outcome | None] = [None] * len(paths)
    with ExitStack() as stack:
        batches: Iterable[list[_Outcome]]
        if workers == 0:
            batches = (
                _hash_chunk(method, start, paths[start : start + chunk_size], max_pixels)
                for start in starts
            )
        else:
            pool = ProcessPoolExecutor(workers, mp_context=_pool_context())
            # On an error or Ctrl-C, drop the chunks not started instead of finishing them all.
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
            # Submitting forks the workers, here, before the progress bar starts its thread.
            futures = [
                pool.submit(
                    _hash_chunk, method, start, paths[start : start + chunk_size], max_pixels
                )
                for start in starts
            ]
            batches = (future.result() for future in as_completed(futures))
        bars = stack.enter_context(progress_bars(progress))
        task = bars.add_task(f"hashing ({method.name})", total=len(paths))
        for done in batches:
            for outcome in done:
                slots[outcome[0]] = outcome
            bars.advance(task, len(done))
    outcomes = [outcome for outcome in slots if outcome is not None]
    good = [(index, code) for index, code, _ in outcomes if code is not None]
    codes = (
        np.stack([code for _, code in good])
        if good
        else np.empty((0, method.code_bytes), dtype=np.uint8)
    )
    return HashedImages(
        paths=[paths[index] for index, _ in good],
        codes=codes,
        errors=[
            FileError(paths[index], reason or "cannot decode")
            for index, code, reason in outcomes
            if code is None
        ],
        seconds=time.perf_counter() - started,
    )


def _binary_index(codes: np.ndarray) -> tuple[Any, np.ndarray, int]:
    if codes.ndim != 2 or codes.dtype != np.uint8 or codes.shape[1] == 0:
        raise BadArgumentError(
            f"codes must be a 2-D uint8 array of packed bits, got {codes.dtype} {codes.shape}"
        )
    faiss = import_faiss()
    codes = np.ascontiguousarray(codes)
    bits = codes.shape[1] * 8
    index = faiss.IndexBinaryFlat(bits)
    index.add(codes)
    return index, codes, bits


def _scored_pairs(left: np.ndarray, right: np.ndarray, distance: np.ndarray, bits: int) -> Pairs:
    """Pairs with left < right, one per pair, sorted by (left, right)."""
    low = np.minimum(left, right).astype(np.int64)
    high = np.maximum(left, right).astype(np.int64)
    keep = low != high
    low, high, distance = low[keep], high[keep], distance[keep]
    order = np.lexsort((high, low))
    low, high, distance = low[order], high[order], distance[order]
    first = np.ones(len(low), dtype=bool)
    first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    # Hamming distance is symmetric, so a pair found from both ends has one distance.
    score = 1.0 - distance[first].astype(np.float64) / bits
    return Pairs(low[first], high[first], score.astype(np.float32))


def hamming_pairs(codes: np.ndarray, max_distance: int, *, chunk: int = 4096) -> Pairs:
    """Every pair of rows whose Hamming distance is at most `max_distance` (inclusive).

    Exact range search over `chunk` query rows at a time. Memory is bounded by the number of
    matches per chunk, which is large only when many images are copies of one another.
    """
    if max_distance < 0:
        raise BadArgumentError(f"max_distance must be 0 or more, got {max_distance}")
    index, codes, bits = _binary_index(codes)
    count = codes.shape[0]
    if count < 2:
        return Pairs.empty()
    chunk = max(1, chunk)
    lefts, rights, distances = [], [], []
    for start in range(0, count, chunk):
        queries = codes[start : start + chunk]
        # FAISS's binary range search keeps distances strictly below the radius.
        lims, found_distance, found_ids = index.range_search(queries, max_distance + 1)
        rows = start + np.repeat(
            np.arange(len(queries), dtype=np.int64), np.diff(lims).astype(np.int64)
        )
        # Each pair is found from both ends; the query side with the lower row keeps it.
        keep = rows < found_ids
        lefts.append(rows[keep])
        rights.append(found_ids[keep].astype(np.int64))
        distances.append(np.rint(found_distance[keep]).astype(np.int64))
    return _scored_pairs(
        np.concatenate(lefts), np.concatenate(rights), np.concatenate(distances), bits
    )


def hamming_knn_pairs(codes: np.ndarray, k: int, *, chunk: int = 4096) -> Pairs:
    """Each row's `k` nearest other rows by Hamming distance, as unique pairs (left < right).

    Ties at the k-th distance are broken by FAISS's order. A row is never its own neighbour, even
    when more than k rows share its code.
    """
    if k < 1:
        raise BadArgumentError(f"k must be 1 or more, got {k}")
    index, codes, bits = _binary_index(codes)
    count = codes.shape[0]
    if count < 2:
        return Pairs.empty()
    k = min(k, count - 1)
    chunk = max(1, chunk)
    lefts, rights, distances = [], [], []
    for start in range(0, count, chunk):
        queries = codes[start : start + chunk]
        rows = np.arange(start, start + len(queries), dtype=np.int64)
        # One extra so the row itself can be dropped. It may be missing (other rows with the
        # same code tie with it at 0), so drop it by id, then keep the first k that remain.
        found_distance, found_ids = index.search(queries, k + 1)
        other = (found_ids != rows[:, None]) & (found_ids >= 0)
        rank = np.cumsum(other, axis=1)
        keep = other & (rank <= k)
        lefts.append(np.broadcast_to(rows[:, None], found_ids.shape)[keep])
        rights.append(found_ids[keep].astype(np.int64))
        distances.append(found_distance[keep].astype(np.int64))
    return _scored_pairs(
        np.concatenate(lefts), np.concatenate(rights), np.concatenate(distances), bits
    )
