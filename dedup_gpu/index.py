"""Stage 5: similarity search. All pairs scoring at or above a threshold, in bounded memory: no
N x N matrix is ever built.

Two kinds of search. "exact" compares every row with every other: by default as a tiled join
in torch (`tiled_join`: low-precision tiles, float32 re-scoring, the same pairs as float32), or
through FAISS's flat index on a GPU with faiss-gpu, and for k-NN (`check`). "ivf" is an inverted
file: rows are filed under their nearest of `nlist` k-means centroids and a query compares
itself only with the rows filed under its `nprobe` nearest centroids; its threshold search runs
FAISS k-NN in query chunks, and a query whose k-th neighbour still clears the threshold is
finished with a range search, so big clusters of copies are never truncated at k. Rows carry
int64 ids, so an index can outlive the arrays it was built from (see `SimilarityIndex.save`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .atomic import fsync_folder
from .errors import BadArgumentError, IndexBackendError, OutputError

SEARCH_KINDS = ("auto", "exact", "ivf")

# Exact search (the tiled join) self-joined 1M rows in 320 s on 2 AMX cores and grows as N^2;
# IVF at nprobe 32 took 571 s there, grows about as N^1.5 and missed 26% of planted copies.
# Extrapolated, IVF only saves time from about 3-4M rows, so auto switches there.
IVF_MIN_ROWS = 4_000_000
# The most lists a 1M-row build + group can search in ~10 minutes on 2 cores (571 s); it found
# 74% of planted pairs there (98.7-100% at cosine >= 0.8): the hoped-for 99% is out of reach.
DEFAULT_NPROBE = 32

# Rows converted to float32 at a time while adding (128 MB at 512-d).
_ADD_CHUNK = 65_536
# k-means gets this many sampled rows per list: faiss warns below 39 and subsamples above 256.
_TRAIN_ROWS_PER_LIST = 64
_MIN_TRAIN_ROWS_PER_LIST = 39
# k-means iterations: 10 instead of faiss's 25 trained 2.7x faster and found 83.8% vs 84.0% and
# 92.8% vs 93.2% of planted pairs (200k rows, 2048 lists, nprobe 16 and 64; a scratch run).
_KMEANS_ITERATIONS = 10
# Overflowing queries are range-searched in batches of this many, to bound the result buffers.
_RANGE_BATCH = 256
# faiss-gpu's k-NN kernels support k (and IVF nprobe) up to 2048.
_GPU_MAX_K = 2048


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags /proc/cpuinfo lists for this CPU (none where it is unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags_line = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(flags_line.split(":", 1)[-1].split())


def openblas_coretype() -> str | None:
    """An OPENBLAS_CORETYPE for this CPU, or None if OpenBLAS's own detection is fine.

    faiss-cpu bundles an OpenBLAS that misdetects some virtualised CPUs as generic and then runs
    5-7x slower; naming the core type from /proc/cpuinfo's flags avoids that.
    """
    flags = cpu_flags()
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
    """Unordered pairs (left < right) of embedding rows (or ids) with their cosine score."""

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


def default_nlist(rows: int) -> int:
    """IVF lists for `rows` rows: the power of two nearest 4 * sqrt(rows), but never so many that
    k-means would get fewer than 39 rows per list (faiss's own minimum)."""
    if rows < 1:
        return 1
    target = 4.0 * np.sqrt(rows)
    nlist = 1 << max(0, round(float(np.log2(target))))
    while nlist > 1 and nlist * _MIN_TRAIN_ROWS_PER_LIST > rows:
        nlist //= 2
    return nlist


@dataclass(frozen=True)
class SearchSettings:
    """How `SimilarityIndex.build` searches: exact, IVF, or chosen by the number of rows."""

    kind: str = "auto"  # "auto" | "exact" | "ivf"
    nprobe: int = DEFAULT_NPROBE  # IVF lists searched per query
    nlist: int | None = None  # IVF lists; None: default_nlist(rows)
    ivf_min_rows: int = IVF_MIN_ROWS  # "auto" picks IVF at or above this many rows

    def __post_init__(self) -> None:
        if self.kind not in SEARCH_KINDS:
            raise BadArgumentError(
                f"unknown search kind {self.kind!r}",
                hint=f"use one of {', '.join(SEARCH_KINDS)}",
            )
        if not _is_int(self.nprobe) or self.nprobe < 1:
            raise BadArgumentError(
                f"nprobe must be a positive integer, not {self.nprobe!r}",
                hint=f"the default is {DEFAULT_NPROBE}; more lists searched finds more pairs",
            )
        if self.nlist is not None and (not _is_int(self.nlist) or self.nlist < 1):
            raise BadArgumentError(
                f"nlist must be a positive integer or None, not {self.nlist!r}",
                hint="leave it unset to choose it from the number of rows",
            )
        if not _is_int(self.ivf_min_rows) or self.ivf_min_rows < 0:
            raise BadArgumentError(
                f"ivf_min_rows must be a non-negative integer, not {self.ivf_min_rows!r}",
                hint=f"the default is {IVF_MIN_ROWS}",
            )

    def resolve(self, rows: int) -> str:
        """The kind of index to build for `rows` rows: "exact" or "ivf"."""
        if self.kind != "auto":
            return self.kind
        return "ivf" if rows >= self.ivf_min_rows else "exact"

    def nlist_for(self, rows: int) -> int:
        return self.nlist if self.nlist is not None else default_nlist(rows)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class SimilarityIndex:
    """Inner-product index over L2-normalised rows with int64 ids, on a GPU when one is asked for
    and faiss-gpu can use it, else on the CPU. Make one with `build` or `load`."""

    def __init__(
        self,
        cpu_index: Any,
        kind: str,
        *,
        gpu: int | None = None,
        trained_on: int | None = None,
        sources: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self._faiss = import_faiss()
        self._cpu = cpu_index
        self._kind = kind
        self._trained_on = trained_on
        # The arrays the rows came from (references, not copies) with a mask of rows still in
        # the index; None when they are unknown (a loaded index), and the self-join then reads
        # the rows back from the index itself.
        self._sources = (
            None
            if sources is None
            else [(rows, ids, np.ones(len(ids), dtype=bool)) for rows, ids in sources]
        )
        self.on_gpu = _faiss_can_use(gpu)
        self._gpu = gpu if self.on_gpu else None
        # Exact threshold joins run as torch tiles on this GPU when faiss-gpu cannot take them.
        self._join_gpu = gpu
        self._gpu_index: Any = None
        self._gpu_ids: np.ndarray | None = None

    # Construction and persistence

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        ids: np.ndarray | None = None,
        *,
        settings: SearchSettings | None = None,
        gpu: int | None = None,
        seed: int = 0,
    ) -> SimilarityIndex:
        """An index over `embeddings` (float16 or float32, [N, d], unit rows; a np.memmap is read
        in chunks), with `ids` (int64 [N], default 0..N-1) as the ids that searches return."""
        faiss = import_faiss()
        settings = settings or SearchSettings()
        check_rows(embeddings, "embeddings")
        count, dim = embeddings.shape
        ids = np.arange(count, dtype=np.int64) if ids is None else check_ids(ids, count)
        kind = settings.resolve(count)
        trained_on: int | None = None
        if kind == "exact":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            nlist = settings.nlist_for(count)
            if count < nlist:
                raise BadArgumentError(
                    f"an IVF index with {nlist} lists needs at least {nlist} rows to train on, "
                    f"got {count}",
                    hint="use a smaller nlist (or leave it unset), or the exact kind",
                )
            index = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(dim),
                dim,
                nlist,
                faiss.ScalarQuantizer.QT_fp16,
                faiss.METRIC_INNER_PRODUCT,
            )
            # Rows themselves, not residuals from their centroid, are encoded: float16 codes then
            # hold float16-stored embeddings exactly, at half IVFFlat's memory.
            index.by_residual = False
            index.cp.seed = seed
            index.cp.niter = _KMEANS_ITERATIONS
            index.train(_training_sample(embeddings, _TRAIN_ROWS_PER_LIST * nlist, seed))
            trained_on = min(count, _TRAIN_ROWS_PER_LIST * nlist)
            index.nprobe = min(settings.nprobe, nlist)
        for start in range(0, count, _ADD_CHUNK):
            stop = min(start + _ADD_CHUNK, count)
            index.add_with_ids(
                np.ascontiguousarray(embeddings[start:stop], dtype=np.float32), ids[start:stop]
            )
        return cls(index, kind, gpu=gpu, trained_on=trained_on, sources=[(embeddings, ids)])

    @classmethod
    def exact(
        cls, embeddings: np.ndarray, ids: np.ndarray | None = None, *, gpu: int | None = None
    ) -> SimilarityIndex:
        """`build` with exact search, whatever the number of rows."""
        return cls.build(embeddings, ids, settings=SearchSettings(kind="exact"), gpu=gpu)

    @classmethod
    def load(
        cls, path: str, *, nprobe: int | None = None, gpu: int | None = None
    ) -> SimilarityIndex:
        """An index written by `save`; `nprobe` overrides the one it was saved with."""
        faiss = import_faiss()
        if not os.path.isfile(path):
            raise BadArgumentError(
                f"no search index at {path}", hint="build one first (SimilarityIndex.build)"
            )
        try:
            index = faiss.read_index(path)
        except RuntimeError as error:
            raise BadArgumentError(
                f"cannot read the search index {path}: {_faiss_message(error)}",
                hint="the file is damaged or not a dedup-gpu index; delete it and build it again",
            ) from error
        kind = _kind_of(faiss, index)
        if kind is None:
            raise BadArgumentError(
                f"{path} holds a {type(index).__name__}, not a dedup-gpu search index",
                hint="delete it and build it again",
            )
        loaded = cls(index, kind, gpu=gpu)
        if kind == "ivf" and nprobe is not None:
            loaded.nprobe = nprobe
        return loaded

    def save(self, path: str) -> None:
        """Write the index to `path` atomically: a reader sees the old file or the new one."""
        folder = os.path.dirname(os.path.abspath(path))
        # A name of our own beside the target (not mkstemp, whose file would be private to its
        # owner): faiss creates it with the usual permissions.
        temp: str | None = os.path.join(
            folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        )
        try:
            try:
                self._faiss.write_index(self._cpu, temp)
            except RuntimeError as error:  # faiss reports failed writes this way
                raise OSError(_faiss_message(error)) from error
            handle = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temp, path)
            temp = None
            fsync_folder(folder)
        except OSError as error:
            raise OutputError(
                f"cannot write the search index {path}: {error}",
                hint="check that the folder exists, is writable and has free space",
            ) from error
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)

    # Changes

    def add(self, embeddings: np.ndarray, ids: np.ndarray) -> None:
        """Add rows with their ids (which should not be in the index already)."""
        check_rows(embeddings, "embeddings", dim=self.dim)
        ids = check_ids(ids, embeddings.shape[0])
        for start in range(0, len(ids), _ADD_CHUNK):
            stop = min(start + _ADD_CHUNK, len(ids))
            self._cpu.add_with_ids(
                np.ascontiguousarray(embeddings[start:stop], dtype=np.float32), ids[start:stop]
            )
        if self._sources is not None:
            self._sources.append((embeddings, ids, np.ones(len(ids), dtype=bool)))
        self._drop_gpu_copy()

    def remove(self, ids: np.ndarray) -> None:
        """Remove the rows with these ids; ids not in the index are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids):
            return
        self._cpu.remove_ids(self._faiss.IDSelectorBatch(ids))
        if self._sources is not None:
            for _rows, source_ids, alive in self._sources:
                alive &= ~np.isin(source_ids, ids)
        self._drop_gpu_copy()

    # Facts

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def ntotal(self) -> int:
        return int(self._cpu.ntotal)

    @property
    def dim(self) -> int:
        return int(self._cpu.d)

    @property
    def nprobe(self) -> int | None:
        """IVF lists searched per query (None for exact search)."""
        return int(self._cpu.nprobe) if self._kind == "ivf" else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self._kind != "ivf":
            raise BadArgumentError("nprobe applies to IVF search only")
        if not _is_int(value) or value < 1:
            raise BadArgumentError(f"nprobe must be a positive integer, not {value!r}")
        self._cpu.nprobe = min(int(value), int(self._cpu.nlist))
        self._drop_gpu_copy()

    @property
    def max_k(self) -> int:
        return min(self.ntotal, _GPU_MAX_K if self.on_gpu else self.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    def describe(self) -> dict[str, Any]:
        """{"kind": "exact"}, or for IVF also nlist, nprobe and the rows k-means was trained on
        (None for a loaded index: faiss does not record it)."""
        if self._kind == "exact":
            return (
                {"kind": "exact"}
                if self.on_gpu
                else _tiled().describe(_join_device(self._join_gpu))
            )
        return {
            "kind": "ivf",
            "nlist": int(self._cpu.nlist),
            "nprobe": self.nprobe,
            "trained_on": self._trained_on,
        }

    # Search

    def knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best-scoring rows for each query: scores (float32) and ids (int64; -1, with
        score -inf, where there are fewer than k rows to return)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise BadArgumentError(
                f"queries must be [n, {self.dim}], got shape {queries.shape}",
                hint="use embeddings from the model the index was built with",
            )
        k = max(1, min(int(k), self.max_k))
        if self.ntotal == 0:
            return (
                np.full((len(queries), k), -np.inf, np.float32),
                np.full((len(queries), k), -1, np.int64),
            )
        scores, ids = self._search_index().search(queries, k)
        if self._gpu_ids is not None:  # the GPU holds the bare flat index: rows, not ids
            ids = np.where(ids >= 0, self._gpu_ids[np.maximum(ids, 0)], -1)
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32, copy=False)
        return scores, ids.astype(np.int64, copy=False)

    def pairs_above(
        self,
        threshold: float,
        *,
        queries: np.ndarray | None = None,
        query_ids: np.ndarray | None = None,
        k: int = 32,
        chunk: int = 8192,
    ) -> Pairs:
        """Every pair (a < b, in id space) with cosine >= threshold, in bounded memory.

        Without `queries`, the index is joined with itself. With them (float16 or float32, each
        with its id in `query_ids`), every pair of a query and a stored row.

        Exact search off faiss-gpu is a tiled join (`tiled_join`), which finds every pair
        whatever k; IVF and faiss-gpu search k neighbours and range-search the rows that fill k.
        """
        if not _is_int(chunk) or chunk < 1 or not _is_int(k) or k < 1:
            raise BadArgumentError(f"k and chunk must be positive integers, got {k} and {chunk}")
        if queries is None:
            if query_ids is not None:
                raise BadArgumentError("query_ids were given without queries")
            batches = self._stored_rows(chunk)
        else:
            check_rows(queries, "queries", dim=self.dim)
            if query_ids is None:
                raise BadArgumentError(
                    "queries need query_ids", hint="pairs are reported as pairs of ids"
                )
            query_ids = check_ids(query_ids, queries.shape[0])
            batches = (
                (queries[start : start + chunk], query_ids[start : start + chunk])
                for start in range(0, len(query_ids), chunk)
            )
        count = self.ntotal
        if count == 0:
            return Pairs.empty()
        if self._kind == "exact" and not self.on_gpu:
            return self._tiled_pairs(threshold, queries, query_ids)
        k = min(k + 1, self.max_k)  # +1: a stored row finds itself
        lefts, rights, scores = [], [], []
        for rows, row_ids in batches:
            rows = np.ascontiguousarray(rows, dtype=np.float32)
            row_scores, found = self.knn(rows, k)
            overflow = (row_scores[:, -1] >= threshold) & (k < count)
            keep = (row_scores >= threshold) & (found >= 0) & ~overflow[:, None]
            lefts.append(np.broadcast_to(row_ids[:, None], found.shape)[keep])
            rights.append(found[keep])
            scores.append(row_scores[keep])
            for at in range(0, int(overflow.sum()), _RANGE_BATCH):
                which = np.flatnonzero(overflow)[at : at + _RANGE_BATCH]
                limits, range_scores, range_ids = self._cpu.range_search(rows[which], threshold)
                lefts.append(np.repeat(row_ids[which], np.diff(limits).astype(np.int64)))
                rights.append(range_ids.astype(np.int64))
                scores.append(range_scores.astype(np.float32))
        if not lefts:
            return Pairs.empty()
        return unique_pairs(np.concatenate(lefts), np.concatenate(rights), np.concatenate(scores))

    # Internals

    def _tiled_pairs(
        self, threshold: float, queries: np.ndarray | None, query_ids: np.ndarray | None
    ) -> Pairs:
        tiled, device = _tiled(), _join_device(self._join_gpu)
        batches = list(self._stored_rows(max(self.ntotal, 1)))
        if len(batches) == 1:  # the usual case: one array, nothing removed; no copy
            stored, stored_ids = batches[0]
        else:
            stored = np.concatenate([rows for rows, _ids in batches])
            stored_ids = np.concatenate([ids for _rows, ids in batches])
        if queries is None:
            return tiled.self_join(stored, threshold, ids=stored_ids, device=device)
        return tiled.cross_join(queries, query_ids, stored, stored_ids, threshold, device=device)

    def _stored_rows(self, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, ids) batches of about `chunk` rows: every row in the index, once."""
        if self._sources is not None:
            for rows, ids, alive in self._sources:
                for start in range(0, len(ids), chunk):
                    stop = min(start + chunk, len(ids))
                    live = alive[start:stop]
                    if live.all():
                        yield rows[start:stop], ids[start:stop]
                    elif live.any():
                        yield rows[start:stop][live], ids[start:stop][live]
        elif self._kind == "exact":
            flat = self._faiss.downcast_index(self._cpu.index)
            stored = self._faiss.rev_swig_ptr(flat.get_xb(), self.ntotal * self.dim)
            stored = stored.reshape(self.ntotal, self.dim)
            ids = self._faiss.vector_to_array(self._cpu.id_map)
            for start in range(0, len(ids), chunk):
                yield stored[start : start + chunk], ids[start : start + chunk]
        else:
            yield from self._ivf_rows(chunk)

    def _ivf_rows(self, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """An IVF index's rows, decoded list by list (float16 codes decode exactly)."""
        faiss, invlists = self._faiss, self._cpu.invlists
        code_size = int(invlists.code_size)
        rows: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        held = 0
        for number in range(int(self._cpu.nlist)):
            size = int(invlists.list_size(number))
            if not size:
                continue
            codes = faiss.rev_swig_ptr(invlists.get_codes(number), size * code_size)
            decoded = self._cpu.sq.decode(codes.reshape(size, code_size))
            if self._cpu.by_residual:  # not written by build(), but readable all the same
                decoded += self._cpu.quantizer.reconstruct(number)
            rows.append(decoded)
            ids.append(faiss.rev_swig_ptr(invlists.get_ids(number), size).copy())
            held += size
            if held >= chunk:
                yield np.concatenate(rows), np.concatenate(ids)
                rows, ids, held = [], [], 0
        if held:
            yield np.concatenate(rows), np.concatenate(ids)

    def _search_index(self) -> Any:
        if self._gpu is None:
            return self._cpu
        if self._gpu_index is None:
            faiss = self._faiss
            self._resources = faiss.StandardGpuResources()
            if self._kind == "exact":
                # The bare flat index goes to the GPU and its row numbers are mapped to ids
                # here, rather than relying on the GPU cloner to handle the id map.
                flat = faiss.downcast_index(self._cpu.index)
                self._gpu_index = faiss.index_cpu_to_gpu(self._resources, self._gpu, flat)
                self._gpu_ids = faiss.vector_to_array(self._cpu.id_map)
            else:
                self._gpu_index = faiss.index_cpu_to_gpu(self._resources, self._gpu, self._cpu)
                self._gpu_index.nprobe = min(int(self._cpu.nprobe), _GPU_MAX_K)
        return self._gpu_index

    def _drop_gpu_copy(self) -> None:
        self._gpu_index = None
        self._gpu_ids = None


def _tiled() -> ModuleType:
    # Imported when first needed: it brings in torch, which most users of this module never need.
    from . import tiled_join

    return tiled_join


def _join_device(gpu: int | None) -> Any:
    import torch

    return torch.device("cuda", gpu) if gpu is not None else torch.device("cpu")


def _kind_of(faiss: ModuleType, index: Any) -> str | None:
    if isinstance(index, faiss.IndexIDMap2) and isinstance(
        faiss.downcast_index(index.index), faiss.IndexFlatIP
    ):
        return "exact"
    if (
        isinstance(index, faiss.IndexIVFScalarQuantizer)
        and index.metric_type == faiss.METRIC_INNER_PRODUCT
    ):
        return "ivf"
    return None


def _training_sample(embeddings: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` random rows as float32, gathered in chunks (no float16 copy of the whole sample)."""
    rows = np.random.default_rng(seed).choice(len(embeddings), min(size, len(embeddings)), False)
    rows.sort()  # in file order: kinder to a memory-mapped array
    sample = np.empty((len(rows), embeddings.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), _ADD_CHUNK):
        sample[start : start + _ADD_CHUNK] = embeddings[rows[start : start + _ADD_CHUNK]]
    return sample


def check_rows(rows: np.ndarray, name: str, *, dim: int | None = None) -> None:
    if getattr(rows, "ndim", 0) != 2 or not np.issubdtype(rows.dtype, np.floating):
        raise BadArgumentError(
            f"{name} must be a 2-D float16 or float32 array, got "
            f"{getattr(rows, 'dtype', type(rows).__name__)} of shape {getattr(rows, 'shape', '?')}"
        )
    if dim is not None and rows.shape[1] != dim:
        raise BadArgumentError(
            f"{name} have {rows.shape[1]} dimensions, the index {dim}",
            hint="use embeddings from the model the index was built with",
        )


def check_ids(ids: np.ndarray, count: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer):
        raise BadArgumentError(
            f"ids must be {count} integers (one per row), got {ids.dtype} of shape {ids.shape}"
        )
    return np.ascontiguousarray(ids, dtype=np.int64)


def _faiss_message(error: BaseException) -> str:
    # faiss's messages carry a C++ stack location after the first line.
    text = str(error).strip()
    for line in text.splitlines():
        if "Error" in line or "error" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(error).__name__


def unique_pairs(left: np.ndarray, right: np.ndarray, score: np.ndarray) -> Pairs:
    """Pairs as (low, high) without self-pairs, each once with its best score (a pair is usually
    found from both ends, and ids mapped to contents can repeat)."""
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


def search_pairs(
    embeddings: np.ndarray,
    threshold: float,
    *,
    ids: np.ndarray | None = None,
    search: SearchSettings | None = None,
    gpu: int | None = None,
    k: int = 32,
    chunk: int = 8192,
) -> tuple[Pairs, dict[str, Any]]:
    """Every pair of rows of `embeddings` (unit length) scoring >= threshold, as `ids` (default
    the row numbers), and the report's account of the search (`SimilarityIndex.describe`).

    Exact search off faiss-gpu builds no FAISS index (which would hold a float32 copy of every
    row): it is the tiled join alone. `k` and `chunk` tune the FAISS k-NN search otherwise.
    """
    search = search or SearchSettings()
    check_rows(embeddings, "embeddings")
    if search.resolve(len(embeddings)) == "exact" and not _faiss_can_use(gpu):
        tiled, device = _tiled(), _join_device(gpu)
        pairs = tiled.self_join(embeddings, threshold, ids=ids, device=device)
        return pairs, tiled.describe(device)
    index = SimilarityIndex.build(embeddings, ids, settings=search, gpu=gpu)
    return index.pairs_above(threshold, k=k, chunk=chunk), index.describe()


def search_cross_pairs(
    queries: np.ndarray,
    query_ids: np.ndarray,
    stored: np.ndarray,
    stored_ids: np.ndarray,
    threshold: float,
    *,
    search: SearchSettings | None = None,
    gpu: int | None = None,
) -> tuple[Pairs, dict[str, Any]]:
    """Every pair of a query and a stored row scoring >= threshold, in id space, and the
    report's account of the search; `search` picks exact or IVF by the number of stored rows."""
    search = search or SearchSettings()
    check_rows(stored, "stored rows")
    if search.resolve(len(stored)) == "exact" and not _faiss_can_use(gpu):
        tiled, device = _tiled(), _join_device(gpu)
        pairs = tiled.cross_join(queries, query_ids, stored, stored_ids, threshold, device=device)
        return pairs, tiled.describe(device)
    index = SimilarityIndex.build(stored, stored_ids, settings=search, gpu=gpu)
    return index.pairs_above(threshold, queries=queries, query_ids=query_ids), index.describe()


def find_pairs(
    embeddings: np.ndarray,
    threshold: float,
    *,
    gpu: int | None = None,
    k: int = 32,
    chunk: int = 8192,
    search: SearchSettings | None = None,
) -> Pairs:
    """All pairs of rows of `embeddings` (unit length) whose cosine is at least `threshold`,
    as row numbers."""
    return search_pairs(embeddings, threshold, search=search, gpu=gpu, k=k, chunk=chunk)[0]


def _faiss_can_use(gpu: int | None) -> bool:
    return gpu is not None and faiss_gpu_count() > gpu


def nearest_neighbour_scores(embeddings: np.ndarray, *, gpu: int | None = None) -> np.ndarray:
    """Each row's best score against any other row (for histograms and threshold choice)."""
    index = SimilarityIndex.exact(embeddings, gpu=gpu)
    if len(index) < 2:
        return np.empty(0, np.float32)
    best = []
    for start in range(0, len(index), 8192):
        rows = np.arange(start, min(start + 8192, len(index)), dtype=np.int64)
        scores, ids = index.knn(embeddings[rows], 2)
        own = ids[:, 0] == rows
        best.append(np.where(own, scores[:, 1], scores[:, 0]))
    return np.concatenate(best).astype(np.float32)
