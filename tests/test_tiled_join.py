"""Exact search by tiled low-precision products returns exactly float32's pairs, tile edges and
near-threshold scores included, on the CPU and (when present) on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dedup_gpu import index as index_module
from dedup_gpu import tiled_join
from dedup_gpu.index import SearchSettings, SimilarityIndex, search_cross_pairs, search_pairs

# Just above the midpoint of two bfloat16 values (0.46875 and 0.4707), so the comparison floor,
# cast to bfloat16 by torch, rounds up: without a margin, pairs just above it would be lost.
THRESHOLD = 0.4698
# Small tiles, not dividing the row count, so joins cross many tiles and ragged edges.
TILE = (96, 160)


def near_threshold_rows(
    count: int = 900, dim: int = 128, seed: int = 0, spread: float = 0.004
) -> np.ndarray:
    """Random float16 unit rows, 150 of them paired at cosines within +-spread of THRESHOLD:
    inside bfloat16's rounding error, so only float32 re-scoring sorts them correctly."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((count, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    picked = rng.permutation(count)[:300]
    sources, copies = picked[:150], picked[150:]
    cosine = THRESHOLD + rng.uniform(-spread, spread, (150, 1))
    noise = rng.standard_normal((150, dim)).astype(np.float32)
    noise -= np.sum(noise * rows[sources], axis=1, keepdims=True) * rows[sources]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows[copies] = cosine * rows[sources] + np.sqrt(1 - cosine**2) * noise
    return rows.astype(np.float16)


def float32_pairs(left: np.ndarray, right: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    scores = left.astype(np.float32) @ right.astype(np.float32).T
    return set(zip(*map(np.ndarray.tolist, np.nonzero(scores >= threshold)), strict=True))


def as_set(pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))


def test_bfloat16_tiles_give_exactly_the_float32_pairs_and_scores() -> None:
    rows = near_threshold_rows()
    expected = {(a, b) for a, b in float32_pairs(rows, rows, THRESHOLD) if a < b}
    assert len(expected) > 40  # about half the planted pairs clear the threshold

    pairs = tiled_join.self_join(rows, THRESHOLD, dtype=torch.bfloat16, tile=TILE)

    assert as_set(pairs) == expected
    float32 = rows.astype(np.float32)
    np.testing.assert_allclose(
        pairs.score, np.sum(float32[pairs.left] * float32[pairs.right], axis=1), atol=1e-6
    )


def test_without_the_rounding_margin_bfloat16_alone_would_get_pairs_wrong(monkeypatch) -> None:
    # The data is hard enough to need the margin: with none, pairs are lost.
    rows = near_threshold_rows(spread=0.001)
    expected = {(a, b) for a, b in float32_pairs(rows, rows, THRESHOLD) if a < b}
    monkeypatch.setattr(
        tiled_join.Precision, "of", classmethod(lambda cls, dtype, dim: cls(dtype, 0.0))
    )
    pairs = tiled_join.self_join(rows, THRESHOLD, dtype=torch.bfloat16, tile=TILE)
    assert as_set(pairs) < expected


def test_ids_name_the_pairs_and_a_query_never_pairs_with_its_own_id() -> None:
    rows = near_threshold_rows(seed=1)
    ids = np.arange(len(rows), dtype=np.int64) * 10 + 7
    queries = np.arange(0, len(rows), 3)

    within = tiled_join.self_join(rows, THRESHOLD, ids=ids, tile=TILE)
    across = tiled_join.cross_join(rows[queries], ids[queries], rows, ids, THRESHOLD, tile=TILE)

    expected = {(a, b) for a, b in float32_pairs(rows, rows, THRESHOLD) if a < b}
    assert as_set(within) == {(ids[a], ids[b]) for a, b in expected}
    touching = {(ids[a], ids[b]) for a, b in expected if a in set(queries) or b in set(queries)}
    assert as_set(across) == touching
    assert np.all(across.left < across.right)


def test_cpus_without_native_bfloat16_multiply_in_float32(monkeypatch) -> None:
    monkeypatch.setattr(tiled_join, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert tiled_join.product_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setattr(tiled_join, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert tiled_join.product_dtype(torch.device("cpu")) == torch.bfloat16
    assert tiled_join.product_dtype(torch.device("cuda")) == torch.float16
    assert tiled_join.Precision.of(torch.float32, 512).margin < 1e-4


def test_exact_search_builds_no_faiss_index_and_says_how_it_searched(monkeypatch) -> None:
    rows = near_threshold_rows(seed=2)

    def no_faiss(*args, **kwargs):
        raise AssertionError("exact search on the CPU should not build a FAISS index")

    monkeypatch.setattr(SimilarityIndex, "build", no_faiss)
    pairs, described = search_pairs(rows, THRESHOLD)
    assert described["kind"] == "exact"
    assert "float32" in described["method"]
    assert as_set(pairs) == {(a, b) for a, b in float32_pairs(rows, rows, THRESHOLD) if a < b}

    stored, queries = np.arange(0, 600), np.arange(600, len(rows))
    across, _ = search_cross_pairs(rows[queries], queries, rows[stored], stored, THRESHOLD)
    crossing = float32_pairs(rows[queries], rows[stored], THRESHOLD)
    assert as_set(across) == {(int(stored[s]), int(queries[q])) for q, s in crossing}


def test_an_exact_index_after_removals_and_additions_joins_its_live_rows_only() -> None:
    rows = near_threshold_rows(seed=3)
    index = SimilarityIndex.build(rows[:500], settings=SearchSettings(kind="exact"))
    index.remove(np.arange(0, 500, 2))
    index.add(rows[500:], np.arange(500, len(rows)))

    live = np.concatenate([np.arange(1, 500, 2), np.arange(500, len(rows))])
    expected = {
        (int(live[a]), int(live[b]))
        for a, b in float32_pairs(rows[live], rows[live], THRESHOLD)
        if a < b
    }
    assert as_set(index.pairs_above(THRESHOLD)) == expected


def test_an_empty_or_single_row_join_finds_nothing() -> None:
    rows = near_threshold_rows(count=400)
    assert len(tiled_join.self_join(rows[:1], THRESHOLD)) == 0
    assert len(tiled_join.self_join(rows[:0], THRESHOLD)) == 0
    assert len(tiled_join.cross_join(rows[:0], np.arange(0), rows, np.arange(400), THRESHOLD)) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_float16_tiles_give_the_cpu_pairs(monkeypatch) -> None:
    monkeypatch.setattr(index_module, "faiss_gpu_count", lambda: 0)  # the torch path, not faiss
    rows = near_threshold_rows(count=3000, dim=512)
    on_cpu, _ = search_pairs(rows, THRESHOLD)
    on_gpu, described = search_pairs(rows, THRESHOLD, gpu=0)
    assert "cuda" in described["method"]
    assert as_set(on_gpu) == as_set(on_cpu)
    np.testing.assert_allclose(on_gpu.score, on_cpu.score, atol=1e-6)
