"""Stage 5: similarity search. All pairs scoring at or above a threshold, through FAISS
inner-product k-NN in query chunks, so memory stays at chunk x k and no N x N matrix is built.

A query whose k-th neighbour still clears the threshold may have more; those few rows are finished
with an exact range search, so big clusters of copies are never truncated at k.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .errors import IndexBackendError


def openblas_coretype() -> str | None:
    """An OPENBLAS_CORETYPE for this CPU, or None if OpenBLAS's own detection is fine.

    faiss-cpu bundles an OpenBLAS that misdetects some virtualised CPUs as generic and then runs
    5-7x slower; naming the core type from /proc/cpuinfo's flags avoids that.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags_line = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return None
    flags = set(flags_line.split(":", 1)[-1].split())
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def import_faiss() -> ModuleType:
    """Import faiss, first setting OPENBLAS_CORETYPE (it is read once, when faiss loads)."""
    if "faiss" not in sys.modules and "OPENBLAS_CORETYPE" not in os.environ:
        coretype = openblas_coretype()
        if coretype:
            os.environ["OPENBLAS_CORETYPE"] = coretype
    try:
        import faiss
    except ImportError as error:
        raise IndexBackendError(
            "FAISS is not installed",
            hint="pip install 'dedup-gpu[cpu]' (faiss-cpu), or 'dedup-gpu[gpu]' (faiss-gpu)",
        ) from error
    return faiss


def faiss_gpu_count() -> int:
    faiss = import_faiss()
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


@dataclass(frozen=True)
class Pairs:
    """Unordered pairs (left < right) of embedding rows with their cosine score."""

    left: np.ndarray  # int64
    right: np.ndarray  # int64
    score: np.ndarray  # float32, in [-1, 1]; higher is more similar

    def __len__(self) -> int:
        return int(self.left.shape[0])

    def select(self, which: np.ndarray) -> Pairs:
        """The pairs at `which` (a boolean mask or row numbers)."""
        return Pairs(self.left[which], self.right[which], self.score[which])

    @staticmethod
    def empty() -> Pairs:
        return Pairs(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))


class SimilarityIndex:
    """Exact inner-product index over L2-normalised rows, on a GPU when one is asked for and
    faiss-gpu can use it, else on the CPU."""

    def __init__(self, embeddings: np.ndarray, gpu: int | None = None):
        faiss = import_faiss()
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        count, dim = self.embeddings.shape
        self.cpu_index = faiss.IndexFlatIP(dim)
        self.cpu_index.add(self.embeddings)
        self.search_index = self.cpu_index
        self.on_gpu = False
        if gpu is not None and faiss_gpu_count() > gpu:
            self._resources = faiss.StandardGpuResources()
            self.search_index = faiss.index_cpu_to_gpu(self._resources, gpu, self.cpu_index)
            self.on_gpu = True
        # faiss-gpu's k-NN kernels support k up to 2048.
        self.max_k = min(count, 2048 if self.on_gpu else count)

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, self.max_k))
        scores, ids = self.search_index.search(np.ascontiguousarray(queries, np.float32), k)
        return scores, ids

    def pairs_above(self, threshold: float, *, k: int = 32, chunk: int = 8192) -> Pairs:
        """Every pair (i < j) with cosine >= threshold, in bounded memory."""
        count = len(self)
        if count < 2:
            return Pairs.empty()
        k = min(k + 1, self.max_k)  # +1: each row finds itself
        lefts, rights, scores = [], [], []
        for start in range(0, count, chunk):
            rows = np.arange(start, min(start + chunk, count), dtype=np.int64)
            row_scores, row_ids = self.knn(self.embeddings[rows], k)
            overflow = (row_scores[:, -1] >= threshold) & (k < count)
            keep = (row_scores >= threshold) & (row_ids >= 0) & ~overflow[:, None]
            lefts.append(np.broadcast_to(rows[:, None], row_ids.shape)[keep])
            rights.append(row_ids[keep])
            scores.append(row_scores[keep])
            for row in rows[overflow]:
                _lims, range_scores, range_ids = self.cpu_index.range_search(
                    self.embeddings[row : row + 1], threshold
                )
                lefts.append(np.full(len(range_ids), row, dtype=np.int64))
                rights.append(range_ids.astype(np.int64))
                scores.append(range_scores)
        return _unique_pairs(np.concatenate(lefts), np.concatenate(rights), np.concatenate(scores))


def _unique_pairs(left: np.ndarray, right: np.ndarray, score: np.ndarray) -> Pairs:
    distinct = left != right
    left, right, score = left[distinct], right[distinct], score[distinct]
    low, high = np.minimum(left, right), np.maximum(left, right)
    # Each pair is usually found from both ends; keep one, with the higher of the two scores
    # (float rounding can differ by direction on GPU).
    order = np.lexsort((-score, high, low))
    low, high, score = low[order], high[order], score[order]
    first = np.ones(len(low), dtype=bool)
    first[1:] = (low[1:] != low[:-1]) | (high[1:] != high[:-1])
    return Pairs(
        low[first].astype(np.int64),
        high[first].astype(np.int64),
        np.minimum(score[first], 1.0).astype(np.float32),
    )


def find_pairs(
    embeddings: np.ndarray,
    threshold: float,
    *,
    gpu: int | None = None,
    k: int = 32,
    chunk: int = 8192,
) -> Pairs:
    """All pairs of rows of `embeddings` (unit length) whose cosine is at least `threshold`."""
    return SimilarityIndex(embeddings, gpu=gpu).pairs_above(threshold, k=k, chunk=chunk)


def nearest_neighbour_scores(embeddings: np.ndarray, *, gpu: int | None = None) -> np.ndarray:
    """Each row's best score against any other row (for histograms and threshold choice)."""
    index = SimilarityIndex(embeddings, gpu=gpu)
    if len(index) < 2:
        return np.empty(0, np.float32)
    scores, ids = index.knn(index.embeddings, 2)
    own = ids[:, 0] == np.arange(len(index))
    return np.where(own, scores[:, 1], scores[:, 0]).astype(np.float32)
