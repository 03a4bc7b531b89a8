"""Search finds exactly the pairs above the threshold; grouping never chains and keeps the best."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dedup_gpu.errors import BadArgumentError, OutputError
from dedup_gpu.group import KeepPolicy, build_groups
from dedup_gpu.index import (
    Pairs,
    SearchSettings,
    SimilarityIndex,
    default_nlist,
    find_pairs,
    nearest_neighbour_scores,
)
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


@pytest.mark.parametrize("lead", [0.05, 0.145])
def test_a_mirrored_copy_a_stretched_copy_turned_down_still_joins_its_original(
    lead: float,
) -> None:
    # A stretched copy looks most like every other copy to the embedding (by `lead` over the
    # original), so it is visited first and becomes the centre; but it is two edits from the
    # mirrored copy, and verification turns that pair down. The original is a copy of both.
    # With a small lead the original is the most central once that pair is gone, and the
    # mirrored copy, confirmed a copy of more of the group than turned it down, joins it; with a
    # large lead the stretched copy stays the centre until the original, found to be a copy of
    # the image it turned down, is checked against the rest and takes the centre from it.
    from dedup_gpu.group import Verification

    names = ["original", "stretched", "mirrored", *(f"edit{i}" for i in range(7))]
    contents = [content(f"{name}.jpg") for name in names]
    infos = [ImageInfo(800, 600)] + [ImageInfo(400, 300)] * (len(names) - 1)

    def score(a: int, b: int) -> float:
        return 0.85 + lead if 1 in (a, b) else 0.86 if 0 in (a, b) else 0.85

    pairs = _everything_pairs(len(names), score)
    asked: list[tuple[int, int]] = []

    def check(batch: Pairs) -> np.ndarray:
        keys = list(zip(batch.left.tolist(), batch.right.tolist(), strict=True))
        asked.extend(keys)
        return np.array([key != (1, 2) for key in keys], dtype=bool)

    def pictures(batch: Pairs) -> np.ndarray:  # compared block by block, not as records
        return np.ones(len(batch), dtype=bool)

    [group] = build_groups(
        contents, infos, pairs, 0.5, check=Verification(check, outvotable=pictures)
    )
    assert group.keep.path == "original.jpg"
    assert {m.matched for m in group.duplicates} == {"original.jpg"}
    assert {m.path for m in group.duplicates} == {f"{name}.jpg" for name in names[1:]}
    assert len(asked) <= 2 * len(names)  # the stretched copy's star, then the original's

    # Had the two been records whose text differs, no number of copies would outvote that.
    groups = build_groups(contents, infos, pairs, 0.5, check=Verification(check))
    assert "mirrored.jpg" not in {m.path for m in groups[0].duplicates}


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


# Persistent, id-keyed and approximate (IVF) search.


def copies_among_clusters(seed: int = 0, count: int = 3000, dim: int = 48) -> np.ndarray:
    """Rows around 60 centres, with every fifth row followed by an edited copy of it (cosine
    0.75 to 0.98): copies sit in their source's cluster, as real near-duplicates do."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng.normal(size=(60, dim)))
    rows = unit_rows(
        centres[rng.integers(0, 60, count)] + rng.normal(scale=0.12, size=(count, dim))
    )
    sources = np.arange(0, count - 1, 5)
    noise = rng.normal(size=(len(sources), dim))
    noise -= np.sum(noise * rows[sources], axis=1, keepdims=True) * rows[sources]
    cosine = rng.uniform(0.75, 0.98, len(sources))[:, None]
    rows[sources + 1] = cosine * rows[sources] + np.sqrt(1 - cosine**2) * unit_rows(noise)
    return unit_rows(rows)


def pair_set(pairs: Pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))


IVF = SearchSettings(kind="ivf", nlist=32, nprobe=6)


def test_ivf_finds_nearly_every_pair_and_only_real_ones() -> None:
    embeddings = copies_among_clusters().astype(np.float16)  # as the catalog stores them
    exact = brute_force(embeddings.astype(np.float32), 0.8)
    assert len(exact) > 400

    index = SimilarityIndex.build(embeddings, settings=IVF)
    pairs = index.pairs_above(0.8)

    assert index.kind == "ivf"
    assert index.describe() == {"kind": "ivf", "nlist": 32, "nprobe": 6, "trained_on": 2048}
    found = pair_set(pairs)
    assert found <= exact  # a listed pair is a real one
    assert len(found & exact) >= 0.99 * len(exact)
    wide = embeddings.astype(np.float32)
    real = np.sum(wide[pairs.left] * wide[pairs.right], axis=1)
    np.testing.assert_allclose(pairs.score, real, atol=1e-3)  # fp16 codes decode exactly
    # One list probed misses pairs whose rows were filed apart: the settings are in effect.
    one_list = SimilarityIndex.build(embeddings, settings=replace(IVF, nprobe=1))
    assert len(one_list.pairs_above(0.8)) < len(found)


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_pairs_come_back_in_the_ids_the_rows_were_given(kind: str) -> None:
    embeddings = copies_among_clusters(seed=1)
    ids = np.random.default_rng(1).permutation(len(embeddings)) * 7 + 1000
    index = SimilarityIndex.build(embeddings, ids, settings=replace(IVF, kind=kind, nprobe=32))

    pairs = index.pairs_above(0.9)
    expected = {tuple(sorted((int(ids[a]), int(ids[b])))) for a, b in brute_force(embeddings, 0.9)}
    assert pair_set(pairs) == expected
    assert np.all(pairs.left < pairs.right)
    scores, found = index.knn(embeddings[:3], 1)
    assert found[:, 0].tolist() == ids[:3].tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-3)


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_a_saved_index_loads_and_finds_the_same_pairs(kind: str, tmp_path: Path) -> None:
    embeddings = copies_among_clusters(seed=2).astype(np.float16)
    ids = np.arange(len(embeddings), dtype=np.int64) + 10**12  # ids need not be row numbers
    index = SimilarityIndex.build(embeddings, ids, settings=replace(IVF, kind=kind))
    before = index.pairs_above(0.85)
    path = tmp_path / "search.faiss"
    index.save(str(path))
    index.save(str(path))  # replacing an existing file

    loaded = SimilarityIndex.load(str(path))  # no embeddings: rows are read back from the index
    after = loaded.pairs_above(0.85)

    assert [p.name for p in tmp_path.iterdir()] == ["search.faiss"]  # no temporary file left
    assert loaded.kind == kind and len(loaded) == len(embeddings)
    assert pair_set(after) == pair_set(before) and len(before) > 300
    np.testing.assert_allclose(after.score, before.score, atol=1e-6)
    if kind == "ivf":
        assert loaded.describe() == {"kind": "ivf", "nlist": 32, "nprobe": 6, "trained_on": None}
        assert SimilarityIndex.load(str(path), nprobe=32).describe()["nprobe"] == 32


def test_saving_where_it_cannot_be_written_and_loading_junk_are_typed_errors(
    tmp_path: Path,
) -> None:
    index = SimilarityIndex.build(unit_rows(np.eye(3, 8, dtype=np.float32) + 0.1))
    with pytest.raises(OutputError):
        index.save(str(tmp_path / "missing-folder" / "search.faiss"))
    (tmp_path / "junk.faiss").write_bytes(b"not an index")
    with pytest.raises(BadArgumentError):
        SimilarityIndex.load(str(tmp_path / "junk.faiss"))
    with pytest.raises(BadArgumentError):
        SimilarityIndex.load(str(tmp_path / "absent.faiss"))


@pytest.mark.parametrize("kind", ["exact", "ivf"])
@pytest.mark.parametrize("reload", [False, True])
def test_added_rows_are_found_and_removed_rows_are_not(
    kind: str, reload: bool, tmp_path: Path
) -> None:
    embeddings = copies_among_clusters(seed=3)
    expected = brute_force(embeddings, 0.9)
    first, later = embeddings[:2000], embeddings[2000:]
    index = SimilarityIndex.build(first, settings=replace(IVF, kind=kind, nprobe=32))
    if reload:  # the catalog's path: later rows go into an index read from disk
        index.save(str(tmp_path / "search.faiss"))
        index = SimilarityIndex.load(str(tmp_path / "search.faiss"))
    assert pair_set(index.pairs_above(0.9)) == {p for p in expected if p[1] < 2000}

    index.add(later, np.arange(2000, len(embeddings)))
    assert len(index) == len(embeddings)
    assert pair_set(index.pairs_above(0.9)) == expected

    source, copy = min(p for p in expected if p[0] >= 2000)  # both arrived later
    index.remove(np.array([copy, 5, 10**9]))  # an id never added is ignored
    remaining = {p for p in expected if not {copy, 5} & set(p)}
    assert len(index) == len(embeddings) - 2
    assert pair_set(index.pairs_above(0.9)) == remaining
    # Searching with given queries: the removed copy is no longer a match for its source.
    pairs = index.pairs_above(0.9, queries=embeddings[[source]], query_ids=np.array([source]))
    assert pair_set(pairs) == {p for p in remaining if source in p}


def test_auto_picks_exact_below_the_row_limit_and_ivf_at_it() -> None:
    embeddings = copies_among_clusters(seed=4, count=2000)
    settings = SearchSettings(nlist=16, ivf_min_rows=2000)
    assert settings.resolve(1999) == "exact" and settings.resolve(2000) == "ivf"
    assert SimilarityIndex.build(embeddings[:1999], settings=settings).kind == "exact"
    assert SimilarityIndex.build(embeddings, settings=settings).kind == "ivf"
    assert SearchSettings(kind="exact").resolve(10**9) == "exact"
    assert SearchSettings(kind="ivf").resolve(10) == "ivf"
    # The default list count: a power of two near 4 sqrt(N), with >= 39 training rows per list.
    assert [default_nlist(n) for n in (0, 100, 2000, 10**6)] == [1, 2, 32, 4096]


@pytest.mark.parametrize(
    "settings",
    [
        {"kind": "hnsw"},
        {"kind": "IVF"},
        {"nprobe": 0},
        {"nlist": 0},
        {"ivf_min_rows": -1},
    ],
)
def test_bad_search_settings_are_refused_with_a_hint(settings: dict) -> None:
    with pytest.raises(BadArgumentError) as caught:
        SearchSettings(**settings)
    assert caught.value.hint


def test_too_many_lists_for_the_rows_is_refused() -> None:
    with pytest.raises(BadArgumentError):
        SimilarityIndex.build(copies_among_clusters(count=100), settings=replace(IVF, nlist=200))


@pytest.mark.parametrize("kind", ["exact", "ivf"])
def test_float16_rows_and_queries_give_the_float32_answer(kind: str) -> None:
    halves = copies_among_clusters(seed=5).astype(np.float16)
    settings = replace(IVF, kind=kind, nprobe=32)  # every list: the same pairs as exact search
    from_halves = SimilarityIndex.build(halves, settings=settings)
    from_floats = SimilarityIndex.build(halves.astype(np.float32), settings=settings)

    by_rows = from_halves.pairs_above(0.9)
    by_queries = from_halves.pairs_above(
        0.9, queries=halves[:1500], query_ids=np.arange(1500), chunk=256
    )
    expected = brute_force(halves.astype(np.float32), 0.9)
    assert pair_set(by_rows) == pair_set(from_floats.pairs_above(0.9)) == expected
    assert pair_set(by_queries) == {p for p in expected if p[0] < 1500}
    np.testing.assert_allclose(by_rows.score, from_floats.pairs_above(0.9).score, atol=1e-6)


def test_find_pairs_can_search_approximately_and_stays_in_row_numbers() -> None:
    embeddings = copies_among_clusters(seed=6)
    ids = np.arange(len(embeddings))
    exact = find_pairs(embeddings, 0.9)
    approximate = find_pairs(embeddings, 0.9, search=replace(IVF, nprobe=32))
    assert pair_set(exact) == pair_set(approximate) == brute_force(embeddings[ids], 0.9)


def _everything_pairs(count: int, score_of) -> Pairs:
    left, right = np.triu_indices(count, 1)
    scores = np.array([score_of(a, b) for a, b in zip(left, right, strict=True)], np.float32)
    return Pairs(left.astype(np.int64), right.astype(np.int64), scores)


def _images(count: int) -> tuple[list[ContentGroup], list[ImageInfo]]:
    contents = [
        ContentGroup(files=(ImageFile(f"/img{i:04d}.jpg", 1000 + i, 0.0),), digest=None)
        for i in range(count)
    ]
    return contents, [ImageInfo(100, 100)] * count


def test_a_family_of_300_near_copies_groups_completely_in_a_few_rounds() -> None:
    from dedup_gpu.group import Verification

    contents, infos = _images(300)
    pairs = _everything_pairs(300, lambda a, b: 0.9)
    checked: list[int] = []

    def check(batch: Pairs) -> np.ndarray:
        checked.append(len(batch))
        return np.ones(len(batch), dtype=bool)  # every one is a copy of every other

    groups = build_groups(contents, infos, pairs, 0.5, check=Verification(check))
    assert len(groups) == 1 and len(groups[0].duplicates) == 299
    assert sum(checked) == 299  # only the centre's edges: one check per member
    assert len(checked) <= 6  # rounds grow with the log of the family, not its size


@pytest.mark.parametrize("count", [100, 500])
def test_a_cluster_of_look_alikes_costs_a_bounded_number_of_checks_per_image(count: int) -> None:
    # `count` records that all look alike (every pair a candidate), each with one true copy:
    # rows 2k and 2k+1. The embedding ranks the true copy low among the look-alikes; the
    # priority (a stand-in for the signatures) ranks it first.
    from dedup_gpu.group import Verification

    size = 2 * count
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.80, 0.98, size=(size, size))

    def score(a: int, b: int) -> float:
        return 0.7 if a // 2 == b // 2 else float(noise[a, b])

    contents, infos = _images(size)
    pairs = _everything_pairs(size, score)
    checked: list[int] = []

    def check(batch: Pairs) -> np.ndarray:
        checked.append(len(batch))
        return batch.left // 2 == batch.right // 2

    def priority(batch: Pairs) -> np.ndarray:
        return np.where(batch.left // 2 == batch.right // 2, 3.0, 2.0 + batch.score / 10)

    groups = build_groups(contents, infos, pairs, 0.5, check=Verification(check, priority=priority))
    found = sorted(
        (int(g.keep.path[4:8]) // 2, *(int(m.path[4:8]) // 2 for m in g.duplicates)) for g in groups
    )
    assert found == [(k, k) for k in range(count)]  # every record with its copy, nothing else
    assert len(pairs) == size * (size - 1) // 2
    assert sum(checked) / size <= 6  # checks per image stay below the budget
    assert len(checked) <= 20  # and so do the rounds
