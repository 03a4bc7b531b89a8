"""The pHash, dHash and PDQ baselines: re-saved and downscaled copies of a photo match it, other
photos do not, bad files are reported and skipped, and Hamming search is exact at the threshold."""

from __future__ import annotations

import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTOS, skimage_photo, write_bad_files
from PIL import Image

from dedup_gpu.baselines import (
    HashMethod,
    get_hash_method,
    hamming_knn_pairs,
    hamming_pairs,
    hash_files,
    list_hash_methods,
)
from dedup_gpu.errors import BadArgumentError, ModelUnavailableError
from dedup_gpu.index import Pairs
from dedup_gpu.synth import load_rgb, write_edited_copies

# Photographs only: page.png is a scanned text page, which PDQ is known to hash unstably under
# downscaling (32-50 bits apart at these sizes), so it would test PDQ's limits, not this code.
STORY_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png")
COPIES = ("jpeg", "resize")
METHODS = [method.name for method in list_hash_methods()]


def pair_set(pairs: Pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))


def brute_force_distances(codes: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(codes, axis=1)
    return (bits[:, None, :] != bits[None, :, :]).sum(axis=2)


def distances_of(pairs: Pairs, bits: int) -> np.ndarray:
    return np.rint((1.0 - pairs.score.astype(np.float64)) * bits).astype(int)


@pytest.fixture(scope="module")
def photos_and_copies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Each story photo followed by its JPEG re-save (quality 15-40) and its 1/2-1/4 downscale."""
    folder = tmp_path_factory.mktemp("copies")
    files: list[Path] = []
    for name in STORY_PHOTOS:
        copies = write_edited_copies(skimage_photo(name), folder, families=COPIES)
        files += [skimage_photo(name), *(copies[family] for family in COPIES)]
    return files


@pytest.mark.parametrize("name", METHODS)
def test_resaved_and_downscaled_copies_match_and_other_photos_do_not(
    name: str, photos_and_copies: list[Path]
) -> None:
    method = get_hash_method(name)
    hashed = hash_files([str(path) for path in photos_and_copies], method, workers=2)

    assert hashed.paths == [str(path) for path in photos_and_copies]
    assert hashed.errors == []
    assert hashed.codes.shape == (len(photos_and_copies), method.bits // 8)
    assert hashed.codes.dtype == np.uint8
    assert hashed.seconds > 0

    # Exactly the photo/copy pairs of the same photo, nothing across photos.
    group = 1 + len(COPIES)
    expected = {
        (start + i, start + j)
        for start in range(0, len(photos_and_copies), group)
        for i, j in combinations(range(group), 2)
    }
    pairs = hamming_pairs(hashed.codes, method.max_distance)
    assert pair_set(pairs) == expected
    assert np.all(distances_of(pairs, method.bits) <= method.max_distance)


def test_hashing_a_file_gives_the_same_code_in_and_out_of_worker_processes(
    photos_and_copies: list[Path],
) -> None:
    method = get_hash_method("pdq")
    paths = [str(path) for path in photos_and_copies]
    in_process = hash_files(paths, method, workers=0)
    in_workers = hash_files(paths, method, workers=2, chunk_size=2)
    np.testing.assert_array_equal(in_process.codes, in_workers.codes)

    # A PNG decodes to the same pixels either way, so hash_image on the loaded photo agrees.
    png = next(index for index, path in enumerate(paths) if path.endswith(".png"))
    np.testing.assert_array_equal(method.hash_image(load_rgb(paths[png])), in_process.codes[png])


def test_a_bad_file_becomes_a_file_error_and_the_run_goes_on(tmp_path: Path) -> None:
    expected_words = write_bad_files(tmp_path / "bad")
    bad = [str(tmp_path / "bad" / name) for name in expected_words]
    good = [str(skimage_photo(name)) for name in ("coffee.png", "rocket.jpg")]
    paths = [bad[0], good[0], *bad[1:], good[1], str(tmp_path / "missing.jpg")]

    hashed = hash_files(
        paths, get_hash_method("dhash"), workers=2, max_pixels=10_000_000, progress=True
    )

    assert hashed.paths == good
    assert hashed.codes.shape == (2, 8)
    reasons = {Path(error.path).name: error.reason for error in hashed.errors}
    assert set(reasons) == {*expected_words, "missing.jpg"}
    for name, word in expected_words.items():
        assert word in reasons[name]
    assert all("\n" not in reason for reason in reasons.values())

    nothing = hash_files([], get_hash_method("pdq"), workers=2)
    assert nothing.paths == [] and nothing.errors == [] and nothing.codes.shape == (0, 32)


@pytest.mark.parametrize("name", ["phash", "dhash"])
def test_packed_codes_give_the_same_distances_as_imagehash(name: str) -> None:
    import imagehash

    method = get_hash_method(name)
    hasher = imagehash.phash if name == "phash" else imagehash.dhash
    size = (method.decode_size, method.decode_size)  # so hash_image hashes these very pixels
    images = [load_rgb(skimage_photo(photo)).resize(size) for photo in PHOTOS]
    theirs = [hasher(image) for image in images]
    codes = np.stack([method.hash_image(image) for image in images])

    for code, their in zip(codes, theirs, strict=True):
        np.testing.assert_array_equal(np.unpackbits(code).astype(bool), their.hash.flatten())
    everything = hamming_pairs(codes, method.bits)
    assert len(everything) == len(images) * (len(images) - 1) // 2
    for left, right, distance in zip(
        everything.left, everything.right, distances_of(everything, method.bits), strict=True
    ):
        assert distance == theirs[left] - theirs[right]


def test_packed_pdq_codes_give_the_same_distances_as_pdqhash_vectors() -> None:
    import pdqhash

    method = get_hash_method("pdq")
    size = (method.decode_size, method.decode_size)
    images = [load_rgb(skimage_photo(photo)).resize(size) for photo in PHOTOS[:4]]
    vectors = [np.asarray(pdqhash.compute(np.asarray(image))[0]) for image in images]
    codes = np.stack([method.hash_image(image) for image in images])

    everything = hamming_pairs(codes, method.bits)
    for left, right, distance in zip(
        everything.left, everything.right, distances_of(everything, method.bits), strict=True
    ):
        assert distance == int(np.count_nonzero(vectors[left] != vectors[right]))


def codes_at_distances(*bit_counts: int) -> np.ndarray:
    """64-bit codes whose first `n` bits are set: rows i, j are |n_i - n_j| apart."""
    bits = np.zeros((len(bit_counts), 64), dtype=np.uint8)
    for row, count in enumerate(bit_counts):
        bits[row, :count] = 1
    return np.packbits(bits, axis=1)


@pytest.mark.parametrize("chunk", [1, 2, 4096])
def test_hamming_pairs_includes_the_threshold_distance_and_nothing_beyond(chunk: int) -> None:
    codes = codes_at_distances(0, 10, 11, 21, 40)
    pairs = hamming_pairs(codes, 10, chunk=chunk)

    # 0-10: 10 (on the threshold), 10-11: 1, 11-21: 10, 10-21: 11 (just beyond), 0-11: 11.
    assert pair_set(pairs) == {(0, 1), (1, 2), (2, 3)}
    assert np.all(pairs.left < pairs.right)
    np.testing.assert_allclose(pairs.score, [1 - 10 / 64, 1 - 1 / 64, 1 - 10 / 64])
    assert pairs.score.dtype == np.float32
    assert pair_set(hamming_pairs(codes, 9, chunk=chunk)) == {(1, 2)}


def test_hamming_pairs_finds_exactly_the_brute_force_pairs_among_copies() -> None:
    rng = np.random.default_rng(0)
    originals = rng.integers(0, 2, size=(40, 64), dtype=np.uint8)
    copies = originals[rng.integers(0, 40, size=160)]
    copies ^= (rng.random(copies.shape) < 0.06).astype(np.uint8)  # ~4 flipped bits each
    codes = np.packbits(np.concatenate([originals, copies, originals[:5]]), axis=1)
    distances = brute_force_distances(codes)

    pairs = hamming_pairs(codes, 6, chunk=37)
    left, right = np.nonzero(np.triu(distances <= 6, k=1))
    assert pair_set(pairs) == set(zip(left.tolist(), right.tolist(), strict=True))
    assert len(pairs) == len(set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)))
    np.testing.assert_array_equal(distances_of(pairs, 64), distances[pairs.left, pairs.right])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hamming_knn_pairs_are_exactly_each_rows_k_nearest(k: int) -> None:
    # Set-bit counts 2^a - 1: every pairwise distance 2^a - 2^b is different, so no ties.
    codes = codes_at_distances(0, 1, 3, 7, 15, 31, 63)
    distances = brute_force_distances(codes).astype(float)
    np.fill_diagonal(distances, np.inf)
    expected = {
        (min(row, other), max(row, other))
        for row in range(len(codes))
        for other in np.argsort(distances[row])[:k].tolist()
    }

    pairs = hamming_knn_pairs(codes, k, chunk=2)
    assert pair_set(pairs) == expected
    assert len(pairs) == len(expected)
    np.testing.assert_allclose(pairs.score, 1 - distances[pairs.left, pairs.right] / 64)


def test_hamming_knn_pairs_never_pairs_a_row_with_itself_among_many_equal_codes() -> None:
    # Rows 0-3 share one code (more ties than k), so a row must not be its own neighbour even
    # when faiss lists other rows before it.
    codes = codes_at_distances(5, 5, 5, 5, 7, 30, 34, 64)
    k = 2
    pairs = hamming_knn_pairs(codes, k, chunk=3)
    found = pair_set(pairs)
    distances = brute_force_distances(codes)

    assert np.all(pairs.left < pairs.right)
    assert len(found) == len(pairs)
    for row in range(len(codes)):
        neighbours = sorted(
            (int(distances[row, other]), other)
            for other in range(len(codes))
            if (min(row, other), max(row, other)) in found and other != row
        )
        others = np.delete(distances[row], row)
        kth_nearest = np.sort(others)[k - 1]
        # At least k neighbours, and its k nearest are at the true k nearest distances.
        assert len(neighbours) >= k
        assert [distance for distance, _ in neighbours[:k]] == sorted(others)[:k]
        assert neighbours[k - 1][0] == kth_nearest
    np.testing.assert_array_equal(distances_of(pairs, 64), distances[pairs.left, pairs.right])
    assert (5, 6) in found and (6, 7) in found  # 4 and 30 bits apart: the far rows' nearest


def test_hamming_knn_pairs_with_k_beyond_the_row_count_pairs_everything() -> None:
    codes = codes_at_distances(0, 3, 9)
    assert pair_set(hamming_knn_pairs(codes, 10)) == {(0, 1), (0, 2), (1, 2)}
    assert len(hamming_knn_pairs(codes[:1], 3)) == 0


def test_methods_are_listed_and_an_unknown_name_is_a_typed_error() -> None:
    methods = {method.name: method for method in list_hash_methods()}
    assert {name: (m.bits, m.max_distance) for name, m in methods.items()} == {
        "phash": (64, 10),
        "dhash": (64, 10),
        "pdq": (256, 31),
    }
    assert get_hash_method("PDQ") == methods["pdq"]
    with pytest.raises(BadArgumentError, match="ahash") as raised:
        get_hash_method("ahash")
    assert "phash, dhash, pdq" in raised.value.hint


def test_a_missing_hash_package_fails_before_any_file_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pdqhash", None)  # makes `import pdqhash` fail
    method: HashMethod = get_hash_method("pdq")
    with pytest.raises(ModelUnavailableError, match="pdqhash") as raised:
        hash_files([str(skimage_photo("coffee.png"))], method, workers=0)
    assert "pip install" in raised.value.hint


def test_hamming_search_rejects_codes_that_are_not_packed_bits() -> None:
    with pytest.raises(BadArgumentError, match="uint8"):
        hamming_pairs(np.zeros((3, 64), dtype=np.float32), 10)
    with pytest.raises(BadArgumentError):
        hamming_pairs(codes_at_distances(0, 1), -1)


def test_an_all_black_image_hashes_without_error() -> None:
    # Flat images have no structure to hash; they must still give a code of the right shape.
    for method in list_hash_methods():
        code = method.hash_image(Image.new("L", (40, 30)))
        assert code.shape == (method.bits // 8,) and code.dtype == np.uint8
