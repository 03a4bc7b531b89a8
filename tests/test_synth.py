"""The labelled-benchmark copy generator: every edit family makes a sensible RGB copy of any size
of picture, with its stated parameters, the same bytes for the same seed, files named as
documented, and the original never touched."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTOS, skimage_photo
from PIL import Image

from dedup_gpu import synth
from dedup_gpu.lookalikes import write_lookalikes
from dedup_gpu.synth import (
    FAMILIES,
    crop_region,
    document_families,
    is_document_like,
    largest_inner_rectangle,
    load_rgb,
    photo_families,
    rotate,
    write_copies,
)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return load_rgb(skimage_photo("astronaut.png"))


@pytest.fixture(scope="module")
def pictures(astronaut: Image.Image) -> dict[str, Image.Image]:
    """A thumbnail-sized picture and a large one (4 megapixels, as phones shoot)."""
    return {
        "small": astronaut.resize((64, 48)),
        "large": astronaut.resize((2400, 1800), Image.Resampling.BILINEAR),
    }


@pytest.fixture(scope="module")
def document_pages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    labels = write_lookalikes(
        tmp_path_factory.mktemp("documents"), seed=5, size="tiny", sets=("forms", "pages")
    )
    return [label.path for label in labels]


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_returns_an_rgb_picture_of_a_sensible_size(
    pictures: dict[str, Image.Image], family: str, size: str
) -> None:
    original = pictures[size]

    copy = FAMILIES[family].edit(original, random.Random(f"test:{family}"))

    assert copy.mode == "RGB"
    longest = max(original.size)
    assert min(copy.size) >= 8 and max(copy.size) <= 4 * longest, copy.size
    assert np.asarray(copy).std() > 1  # still a picture, not a blank canvas


def test_every_family_says_what_it_does() -> None:
    for name, family in FAMILIES.items():
        assert family.name == name
        assert len(family.description) > 10
        assert family.extension in ("jpg", "webp", "png")
    assert document_families()[0] == "rescan"
    assert "rescan" not in photo_families()
    assert {"crop", "webp", "rotate", "banner", "combo2", "combo3"} <= set(photo_families())


def test_a_combo_applies_that_many_distinct_single_edits(
    monkeypatch: pytest.MonkeyPatch, pictures: dict[str, Image.Image]
) -> None:
    applied: list[str] = []
    singles = [name for name in photo_families() if not name.startswith("combo")]
    for name in singles:

        def record(image: Image.Image, rng: random.Random, name: str = name) -> Image.Image:
            applied.append(name)
            return image

        monkeypatch.setitem(FAMILIES, name, replace(FAMILIES[name], edit=record))

    for seed in range(20):
        applied.clear()
        FAMILIES["combo3"].edit(pictures["small"], random.Random(seed))
        assert len(applied) == 3 and len(set(applied)) == 3
        applied.clear()
        FAMILIES["combo2"].edit(pictures["small"], random.Random(seed))
        assert len(applied) == 2 and len(set(applied)) == 2


def test_crop_keeps_30_to_90_percent_of_the_area(astronaut: Image.Image) -> None:
    picture = astronaut.resize((640, 480))
    kept = []
    for seed in range(40):
        copy = crop_region(picture, random.Random(seed))
        kept.append(copy.width * copy.height / (640 * 480))

    assert all(0.29 <= share <= 0.91 for share in kept), kept
    assert min(kept) < 0.45 and max(kept) > 0.75  # the whole stated range is used


def test_rotate_turns_2_to_10_degrees_and_a_cropped_rotation_shows_no_fill() -> None:
    class RecordingRandom(random.Random):
        def uniform(self, a: float, b: float) -> float:
            value = super().uniform(a, b)
            self.drawn.append(value)
            return value

    white = Image.new("RGB", (320, 240), "white")
    same_size = cropped = 0
    for seed in range(20):
        rng = RecordingRandom(seed)
        rng.drawn = []
        copy = rotate(white, rng)
        assert len(rng.drawn) == 1 and 2 <= rng.drawn[0] <= 10
        if copy.size == white.size:
            same_size += 1
        else:
            cropped += 1
            assert copy.width < 320 and copy.height < 240
            assert np.asarray(copy).min() == 255  # only the picture, no black corners
    assert same_size and cropped  # both kinds happen


def test_largest_inner_rectangle_of_a_square_turned_45_degrees() -> None:
    width, height = largest_inner_rectangle(100, 100, 45)
    assert width == pytest.approx(100 / 2**0.5) and height == pytest.approx(100 / 2**0.5)
    assert largest_inner_rectangle(400, 300, 0) == (400, 300)


def test_documents_are_told_apart_from_photos(document_pages: list[Path]) -> None:
    for page in document_pages:  # generated forms and pages, and their rescans
        assert is_document_like(load_rgb(page)), page.name
    for name in PHOTOS:
        assert not is_document_like(load_rgb(skimage_photo(name))), name


def test_write_copies_names_each_copy_after_its_family_and_leaves_the_original_alone(
    tmp_path: Path,
) -> None:
    original = tmp_path / "chelsea.png"
    original.write_bytes(skimage_photo("chelsea.png").read_bytes())
    before = (original.read_bytes(), original.stat().st_mtime_ns)

    # Copies written next to the original, the easiest place to clobber it.
    labels = write_copies(original, tmp_path, seed=11)

    assert (original.read_bytes(), original.stat().st_mtime_ns) == before
    assert [label.family for label in labels] == photo_families()
    for label in labels:
        extension = "webp" if label.family == "webp" else "jpg"
        assert label.path == tmp_path / f"chelsea__{label.family}.{extension}"
        assert label.path.is_file()
        assert (label.source, label.kind) == ("chelsea", "photo")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["chelsea.png", *(label.path.name for label in labels)]
    )


def test_a_re_save_is_the_copy_itself(tmp_path: Path) -> None:
    labels = write_copies(skimage_photo("coffee.png"), tmp_path, seed=2, families=["jpeg", "webp"])
    jpeg, webp = (Image.open(label.path) for label in labels)

    assert webp.format == "WEBP" and labels[1].path.suffix == ".webp"
    assert jpeg.format == "JPEG"
    # Quality 10-40 scales the standard luminance table (DC entry 16) up; the quality-90 save of
    # an ordinary copy would scale it down to 3.
    assert jpeg.quantization[0][0] >= 20


def test_a_document_gets_rescanned_and_labelled_as_a_document(
    tmp_path: Path, document_pages: list[Path]
) -> None:
    page = next(path for path in document_pages if "__" not in path.name)

    labels = write_copies(page, tmp_path, seed=4, source="report-page-1")

    assert [label.family for label in labels] == document_families()
    assert {label.kind for label in labels} == {"document"}
    assert {label.source for label in labels} == {"report-page-1"}
    assert labels[0].path.stem == f"{page.stem}__rescan"
    assert labels[0].path.suffix in (".jpg", ".png")


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_copies(
    tmp_path: Path,
) -> None:
    def written(seed: int, folder: str) -> dict[str, bytes]:
        labels = write_copies(skimage_photo("chelsea.png"), tmp_path / folder, seed=seed)
        return {label.family: label.path.read_bytes() for label in labels}

    first, again, other = written(1, "first"), written(1, "again"), written(2, "other")

    assert first == again
    unchanged = {family for family in first if first[family] == other[family]}
    assert unchanged <= {"greyscale", "mirror"}  # the only edits with nothing to draw


def test_unknown_families_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown edit families"):
        write_copies(skimage_photo("chelsea.png"), tmp_path, seed=0, families=["sepia"])


def test_the_demo_families_are_unchanged() -> None:
    assert list(synth.EDITS) == [
        "crop",
        "colour",
        "greyscale",
        "jpeg",
        "resize",
        "mirror",
        "caption",
    ]
