"""Search finds exactly the pairs above the threshold; grouping never chains and keeps the best."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from dedup_gpu.group import KeepPolicy, build_groups
from dedup_gpu.index import Pairs, find_pairs, nearest_neighbour_scores
from dedup_gpu.records import ContentGroup, ImageFile, ImageInfo


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered_embeddings(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 64))
    sizes = rng.integers(1, 6, size=40)
    sizes[0] = 60  # one cluster far larger than k
    rows = [
        centre + rng.normal(scale=0.15, size=(size, 64))
        for centre, size in zip(centres, sizes, strict=True)
    ]
    return unit_rows(np.concatenate(rows))


def brute_force(embeddings: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    scores = embeddings @ embeddings.T
    left, right = np.nonzero(np.triu(scores >= threshold, k=1))
    return set(zip(left.tolist(), right.tolist(), strict=True))


@pytest.mark.parametrize("chunk", [7, 8192])
def test_pairs_match_brute_force_even_for_clusters_larger_than_k(chunk: int) -> None:
    embeddings = clustered_embeddings()
    pairs = find_pairs(embeddings, 0.8, k=4, chunk=chunk)

    found = set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
    assert found == brute_force(embeddings, 0.8)
    assert len(found) > 60 * 59 // 2  # the big cluster alone has 1770 pairs
    assert np.all(pairs.left < pairs.right)
    expected = np.sum(embeddings[pairs.left] * embeddings[pairs.right], axis=1)
    np.testing.assert_allclose(pairs.score, expected, atol=1e-5)


def test_nearest_neighbour_scores_skip_self() -> None:
    embeddings = unit_rows(np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32))
    np.testing.assert_allclose(nearest_neighbour_scores(embeddings), [0.8, 0.8, 0.6], atol=1e-6)
    assert len(find_pairs(embeddings[:1], 0.5)) == 0


def test_faiss_is_imported_with_a_detected_openblas_core_type() -> None:
    code = (
        "import os; from dedup_gpu.index import import_faiss, openblas_coretype; "
        "import_faiss(); print(os.environ.get('OPENBLAS_CORETYPE'), openblas_coretype())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    shown, detected = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == detected  # set before faiss loaded its OpenBLAS (None where not needed)


def content(path: str, size: int = 1000, mtime: float = 0.0, twins: int = 0) -> ContentGroup:
    files = [ImageFile(path, size, mtime)] + [
        ImageFile(f"{path}.copy{i}", size, mtime + 1 + i) for i in range(twins)
    ]
    return ContentGroup(tuple(files), digest="d" if twins else None)


def pairs_of(*triples: tuple[int, int, float]) -> Pairs:
    left, right, score = zip(*triples, strict=True)
    return Pairs(np.array(left), np.array(right), np.array(score, dtype=np.float32))


def test_groups_do_not_chain_through_intermediate_images() -> None:
    # Six frames of a slow pan: each is alike only to the next one. Single-linkage clustering
    # would put all six in one group; here every member matched its group's centre directly.
    contents = [content(f"frame{i}.jpg") for i in range(6)]
    infos = [ImageInfo(400 - 10 * i, 300) for i in range(6)]
    chain = [(i, i + 1, 0.9) for i in range(5)]
    groups = build_groups(contents, infos, pairs_of(*chain), 0.8)

    paired = {frozenset((f"frame{a}.jpg", f"frame{b}.jpg")) for a, b, _ in chain}
    assert len(groups) == 2
    for group in groups:
        centres = {m.matched for m in group.duplicates} - {group.keep.path}
        assert len(centres) <= 1  # one centre (and possibly the centre matched to the kept copy)
        for member in group.duplicates:
            assert frozenset((member.path, member.matched)) in paired
            assert member.score == pytest.approx(0.9)


def test_the_original_is_the_centre_even_when_an_edited_copy_is_kept() -> None:
    # A letterboxed copy has the most pixels, so it is kept; but a crop of the original only
    # matches the original. Centred on the original, all three are one group, and the
    # crop-to-letterbox pair is never even asked about.
    contents = [content("original.jpg"), content("letterboxed.jpg"), content("crop.jpg")]
    infos = [ImageInfo(400, 400), ImageInfo(712, 400), ImageInfo(200, 200)]
    pairs = pairs_of((0, 1, 0.9), (0, 2, 0.7), (1, 2, 0.5))
    asked: list[tuple[int, int]] = []

    def check(batch: Pairs) -> np.ndarray:
        keys = list(zip(batch.left.tolist(), batch.right.tolist(), strict=True))
        asked.extend(keys)
        return np.array([key != (1, 2) for key in keys], dtype=bool)

    [group] = build_groups(contents, infos, pairs, 0.4, check=check)
    assert group.keep.path == "letterboxed.jpg"
    assert {(m.path, m.matched) for m in group.duplicates} == {
        ("original.jpg", "letterboxed.jpg"),
        ("crop.jpg", "original.jpg"),
    }
    assert sorted(asked) == [(0, 1), (0, 2)]


def test_keep_policies_and_byte_identical_copies() -> None:
    contents = [
        content("small.jpg", size=10, mtime=5),
        content("big.png", size=99, mtime=9, twins=1),
    ]
    infos = [ImageInfo(100, 100), ImageInfo(800, 600)]
    pairs = pairs_of((0, 1, 0.95))

    largest = build_groups(contents, infos, pairs, 0.8, KeepPolicy.largest)[0]
    assert largest.keep.path == "big.png"
    assert [(m.path, m.exact, m.score) for m in largest.duplicates] == [
        ("big.png.copy0", True, 1.0),
        ("small.jpg", False, pytest.approx(0.95)),
    ]
    assert largest.reclaimable_bytes == 99 + 10
    assert build_groups(contents, infos, pairs, 0.8, KeepPolicy.oldest)[0].keep.path == "small.jpg"
    assert (
        build_groups(contents, infos, pairs, 0.8, KeepPolicy.newest)[0].keep.path == "big.png.copy0"
    )


def test_grouping_does_not_depend_on_input_order() -> None:
    rng = np.random.default_rng(3)
    embeddings = clustered_embeddings(seed=3)
    contents = [
        content(f"img{i:03d}.jpg", size=int(s))
        for i, s in enumerate(rng.integers(100, 200, len(embeddings)))
    ]
    infos = [ImageInfo(100, 100)] * len(contents)  # equal pixels: bytes then path decide

    def summary(order: np.ndarray):
        pairs = find_pairs(embeddings[order], 0.8)
        groups = build_groups([contents[i] for i in order], [infos[i] for i in order], pairs, 0.8)
        return sorted((g.keep.path, tuple(sorted(m.path for m in g.duplicates))) for g in groups)

    assert summary(np.arange(len(contents))) == summary(rng.permutation(len(contents)))
