"""Stage 5, exact search: every pair scoring at or above a threshold, by tiled matrix products.

Rows are multiplied tile by tile in a low-precision type (bfloat16 on CPUs with AMX or
AVX512-BF16, float16 on CUDA, else float32); a tile is scanned only where its best score comes
within the rounding margin of the threshold, and every candidate found there is scored again in
float32. The margin bounds the low-precision error, so the pairs returned are exactly the pairs
a float32 search returns, with float32 scores. Memory: the rows once in the product type, one
tile of scores, and the candidates.

Written here rather than taken from FAISS: its flat index has k-NN and a float32-only CPU range
search, which took ~1.6 h for a million rows on 2 cores; bfloat16 tiles on AMX take minutes, and
the same code runs on a GPU whether or not faiss-gpu is installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .errors import BadArgumentError
from .index import Pairs, check_ids, check_rows, cpu_flags, unique_pairs

# Scores per tile: 2048 x 4096 ran fastest on the AMX CPU measured (mm into a reused buffer
# 2.4 G pairs/s, its row maxima 7 G/s); a GPU wants bigger tiles to fill its SMs.
CPU_TILE = (2048, 4096)
CUDA_TILE = (8192, 16384)
# Rows converted to the product type at a time, and candidate pairs re-scored at a time.
_CONVERT_ROWS = 65_536
_RESCORE_PAIRS = 65_536


@dataclass(frozen=True)
class Precision:
    """The type tiles are multiplied in, and how far its scores can stray from float32's."""

    dtype: torch.dtype
    margin: float

    @classmethod
    def of(cls, dtype: torch.dtype, dim: int) -> Precision:
        # Unit rows rounded to `dtype` (relative error u each) give a dot product off by at most
        # 2u + u^2 (Cauchy-Schwarz); rounding the product adds u, and rounding the floor it is
        # compared with (torch casts the scalar to the tensor's type) u more; accumulating `dim`
        # terms in float32 adds under dim * 2^-24. 5u + dim * 2^-23 covers them all.
        unit_roundoff = float(torch.finfo(dtype).eps) / 2
        return cls(dtype, 5 * unit_roundoff + dim * 2.0**-23)


def product_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA; bfloat16 on a CPU that multiplies it natively; float32 otherwise (where
    torch would emulate bfloat16 more slowly than float32)."""
    if device.type == "cuda":
        return torch.float16
    if {"amx_bf16", "avx512_bf16"} & cpu_flags():
        return torch.bfloat16
    return torch.float32


def describe(device: torch.device, dtype: torch.dtype | None = None) -> dict[str, str]:
    """The report's account of an exact search run here."""
    dtype = dtype or product_dtype(device)
    name = str(dtype).removeprefix("torch.")
    return {
        "kind": "exact",
        "method": f"tiled {name} products on {device.type}, candidates re-scored in float32",
    }


def self_join(
    rows: np.ndarray,
    threshold: float,
    *,
    ids: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    tile: tuple[int, int] | None = None,
) -> Pairs:
    """Every pair of distinct rows (unit length, float16 or float32; a memmap is read in chunks)
    scoring >= threshold, as (low, high) ids (`ids`, default the row numbers)."""
    device = torch.device(device)
    check_rows(rows, "rows")
    ids = np.arange(len(rows), dtype=np.int64) if ids is None else check_ids(ids, len(rows))
    precision = Precision.of(dtype or product_dtype(device), rows.shape[1])
    products = _products(rows, precision.dtype, device)
    found = _candidates(products, products, threshold - precision.margin, _tile(device, tile))
    left, right = _concatenate(found)
    del products
    left, right, score = _rescore(rows, left, rows, right, threshold)
    return unique_pairs(ids[left], ids[right], score)


def cross_join(
    queries: np.ndarray,
    query_ids: np.ndarray,
    stored: np.ndarray,
    stored_ids: np.ndarray,
    threshold: float,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    tile: tuple[int, int] | None = None,
) -> Pairs:
    """Every pair of a query row and a stored row scoring >= threshold, as (low, high) ids; a
    query and a stored row with the same id are the same image and never pair."""
    device = torch.device(device)
    check_rows(stored, "stored rows")
    check_rows(queries, "queries", dim=stored.shape[1])
    query_ids = check_ids(query_ids, len(queries))
    stored_ids = check_ids(stored_ids, len(stored))
    precision = Precision.of(dtype or product_dtype(device), stored.shape[1])
    left_products = _products(queries, precision.dtype, device)
    right_products = _products(stored, precision.dtype, device)
    found = _candidates(
        left_products, right_products, threshold - precision.margin, _tile(device, tile)
    )
    left, right = _concatenate(found)
    del left_products, right_products
    left, right, score = _rescore(queries, left, stored, right, threshold)
    return unique_pairs(query_ids[left], stored_ids[right], score)


def _candidates(
    left: torch.Tensor, right: torch.Tensor, floor: float, tile: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(left row, right row) of every score >= floor; with `left is right`, only row < column."""
    triangle = left is right
    tile_rows, tile_cols = tile
    buffers: dict[tuple[int, int], torch.Tensor] = {}
    with _exact_accumulation(left.device):
        for row_start in range(0, len(left), tile_rows):
            block = left[row_start : row_start + tile_rows]
            for col_start in range(row_start if triangle else 0, len(right), tile_cols):
                other = right[col_start : col_start + tile_cols]
                shape = (len(block), len(other))
                if shape not in buffers:  # fresh outputs cost page faults: ~2x slower on CPU
                    buffers[shape] = torch.empty(shape, dtype=left.dtype, device=left.device)
                scores = torch.mm(block, other.T, out=buffers[shape])
                # Row maxima first: the full comparison below then runs on the few rows with a
                # candidate (a whole-tile max to skip tiles saved nothing where most tiles held
                # one: clustered 200k rows at threshold 0.3).
                hit_rows = torch.nonzero(scores.amax(dim=1) >= floor).squeeze(1)
                if not len(hit_rows):
                    continue
                at_row, at_col = torch.nonzero(scores[hit_rows] >= floor, as_tuple=True)
                rows = (hit_rows[at_row] + row_start).cpu().numpy()
                cols = (at_col + col_start).cpu().numpy()
                if triangle:
                    above = cols > rows
                    rows, cols = rows[above], cols[above]
                yield rows.astype(np.int64), cols.astype(np.int64)


@contextlib.contextmanager
def _exact_accumulation(device: torch.device) -> Iterator[None]:
    """On CUDA, keep cuBLAS from accumulating float16 products in float16 (torch allows it by
    default), which the margin does not cover."""
    if device.type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_fp16_reduced_precision_reduction
    matmul.allow_fp16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_fp16_reduced_precision_reduction = before


def _rescore(
    left_rows: np.ndarray,
    left: np.ndarray,
    right_rows: np.ndarray,
    right: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates whose float32 score is >= threshold, with that score."""
    keep_left, keep_right, keep_score = [], [], []
    for start in range(0, len(left), _RESCORE_PAIRS):
        i, j = left[start : start + _RESCORE_PAIRS], right[start : start + _RESCORE_PAIRS]
        a = np.asarray(left_rows[i], dtype=np.float32)
        b = np.asarray(right_rows[j], dtype=np.float32)
        score = np.einsum("ij,ij->i", a, b)
        passed = score >= threshold
        keep_left.append(i[passed])
        keep_right.append(j[passed])
        keep_score.append(score[passed])
    if not keep_left:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(keep_left), np.concatenate(keep_right), np.concatenate(keep_score)


def _products(rows: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`rows` in the product type on `device`, converted a chunk at a time."""
    products = torch.empty(rows.shape, dtype=dtype, device=device)
    for start in range(0, len(rows), _CONVERT_ROWS):
        chunk = np.ascontiguousarray(rows[start : start + _CONVERT_ROWS])
        products[start : start + len(chunk)] = torch.from_numpy(chunk).to(device).to(dtype)
    return products


def _concatenate(found: Iterator[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    lefts, rights = [], []
    for left, right in found:
        lefts.append(left)
        rights.append(right)
    if not lefts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(lefts), np.concatenate(rights)


def _tile(device: torch.device, tile: tuple[int, int] | None) -> tuple[int, int]:
    if tile is None:
        return CUDA_TILE if device.type == "cuda" else CPU_TILE
    if len(tile) != 2 or min(tile) < 1:
        raise BadArgumentError(f"a tile is two positive sizes, not {tile!r}")
    return tile
