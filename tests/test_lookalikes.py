"""Hard negatives: look-alike images that are not copies. A benchmark relies on their labels (each
item its own source, each rescan sharing its page's), and on look-alikes differing only where the
real things differ: two fills of a form only in the filled-in values, two pages of a report only
in the body text and page number."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dedup_gpu.lookalikes import LOOKALIKE_SETS, write_lookalikes
from dedup_gpu.synth import LabelledImage

TINY_ORIGINALS = {
    "forms": 2 * 3,
    "pages": 1 * 3,
    "frames": 1 * 3,
    "scenes": 2 * 2,
    "textures": 3 * 2,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> list[LabelledImage]:
    return write_lookalikes(tmp_path_factory.mktemp("lookalikes"), seed=3, size="tiny")


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def by_name(labels: list[LabelledImage]) -> dict[str, LabelledImage]:
    return {label.path.name: label for label in labels}


def test_the_tiny_set_has_the_documented_counts(tiny: list[LabelledImage]) -> None:
    originals = Counter(label.kind for label in tiny if label.family == "original")
    rescans = Counter(label.kind for label in tiny if label.family == "rescan")

    assert originals == {f"lookalike:{name}": count for name, count in TINY_ORIGINALS.items()}
    assert rescans == {"lookalike:forms": 6, "lookalike:pages": 3}
    assert {label.family for label in tiny} == {"original", "rescan"}
    assert all(label.path.is_file() for label in tiny)


def test_every_item_is_its_own_source_and_a_rescan_shares_its_pages(
    tiny: list[LabelledImage],
) -> None:
    originals = [label for label in tiny if label.family == "original"]
    sources = Counter(label.source for label in originals)
    assert max(sources.values()) == 1  # no two look-alikes are ever labelled copies

    for label in tiny:
        set_name = label.kind.removeprefix("lookalike:")
        assert set_name in LOOKALIKE_SETS and label.source.startswith(f"{set_name}_")
        if label.family == "original":
            extension = ".png" if set_name in ("forms", "pages") else ".jpg"
            assert label.path.name == f"{label.source}{extension}"
        else:
            assert label.path.stem == f"{label.source}__rescan"
            assert label.path.suffix in (".jpg", ".png")
            page = next(item for item in originals if item.source == label.source)
            assert page.kind == label.kind


def test_photo_like_sets_are_jpeg_and_documents_png(tiny: list[LabelledImage]) -> None:
    for label in tiny:
        with Image.open(label.path) as image:
            expected = {".jpg": "JPEG", ".png": "PNG"}[label.path.suffix]
            assert image.format == expected, label.path.name
            if label.kind in ("lookalike:forms", "lookalike:pages"):
                assert image.size == (620, 877)
            else:
                assert image.size == (480, 320)


def test_two_fills_of_a_form_differ_only_in_the_filled_in_values(
    tiny: list[LabelledImage],
) -> None:
    names = by_name(tiny)
    first = pixels(names["forms_t0_0.png"].path)
    second = pixels(names["forms_t0_1.png"].path)
    other_template = pixels(names["forms_t1_0.png"].path)

    changed = np.any(first != second, axis=2)
    height = changed.shape[0]
    assert 0.002 < changed.mean() < 0.06  # some values differ, and only a few percent of the page
    # Logo, company, form number and title are printed, not filled: identical in every fill.
    assert not changed[: height // 6].any()
    # So are the signature lines and the notice at the foot of the page.
    assert not changed[-height // 12 :].any()
    # A different template differs far more than two fills of one template.
    assert np.any(first != other_template, axis=2).mean() > 2 * changed.mean()


def test_consecutive_pages_share_header_and_layout_but_not_their_text(
    tiny: list[LabelledImage],
) -> None:
    names = by_name(tiny)
    first, second = pixels(names["pages_d0_p0.png"].path), pixels(names["pages_d0_p1.png"].path)
    height = first.shape[0]

    assert np.array_equal(first[: height // 12], second[: height // 12])  # the running header
    body = slice(height // 6, height * 5 // 6)
    assert np.any(first[body] != second[body], axis=2).mean() > 0.05
    # Same margins: no ink in the left margin of either page.
    assert (first[:, :40] == 255).all() and (second[:, :40] == 255).all()


def test_frames_move_and_night_shots_are_dark(tiny: list[LabelledImage]) -> None:
    names = by_name(tiny)
    frames = [pixels(names[f"frames_v0_f{index}.jpg"].path) for index in range(3)]
    for before, after in pairwise(frames):
        step = np.abs(before - after).mean()
        assert 2 < step < 60  # the camera pans: a small change, never a cut to another scene

    for scene in ("s0", "s1"):
        day = pixels(names[f"scenes_{scene}_day.jpg"].path).mean()
        night = pixels(names[f"scenes_{scene}_night.jpg"].path).mean()
        assert night < day * 0.6


def test_texture_instances_differ_but_share_their_statistics(tiny: list[LabelledImage]) -> None:
    names = by_name(tiny)
    for kind in ("brick", "wood", "gravel"):
        first = pixels(names[f"textures_{kind}_0.jpg"].path).astype(np.float64)
        second = pixels(names[f"textures_{kind}_1.jpg"].path).astype(np.float64)
        assert np.abs(first - second).mean() > 10, kind  # different patches
        assert np.abs(first.mean(axis=(0, 1)) - second.mean(axis=(0, 1))).max() < 12, kind
        assert first.std() == pytest.approx(second.std(), rel=0.25), kind


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    sets = ("forms", "scenes")
    first = write_lookalikes(tmp_path / "first", seed=9, size="tiny", sets=sets)
    again = write_lookalikes(tmp_path / "again", seed=9, size="tiny", sets=sets)
    other = write_lookalikes(tmp_path / "other", seed=10, size="tiny", sets=sets)

    assert [label.path.name for label in first] == [label.path.name for label in again]
    for one, two in zip(first, again, strict=True):
        assert one.path.read_bytes() == two.path.read_bytes(), one.path.name
    same_name = {label.path.name: label for label in other}
    for label in first:
        if label.path.name in same_name:
            assert label.path.read_bytes() != same_name[label.path.name].path.read_bytes()


def test_unknown_sets_and_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown look-alike sets"):
        write_lookalikes(tmp_path, seed=0, size="tiny", sets=("memes",))
    with pytest.raises(ValueError, match="unknown size"):
        write_lookalikes(tmp_path, seed=0, size="huge")
