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
    faxed,
    is_document_like,
    largest_inner_rectangle,
    load_rgb,
    meme,
    photo_families,
    photo_of_print,
    photographed,
    picture_in_picture,
    rotate,
    stretch,
    tight_crop,
    turn,
    write_copies,
)

# The families measured before the harder ones were added: their bytes must never change, and
# combos draw only from these singles.
EARLIER_SINGLES = (
    "crop", "colour", "greyscale", "jpeg", "webp", "downscale", "mirror", "rotate", "caption",
    "banner", "letterbox", "border", "blur", "sharpen", "noise",
)  # fmt: skip
HARDER_FAMILIES = ("turn", "perspective", "pip", "stretch", "tight_crop", "meme")


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
    assert document_families()[:3] == ["rescan", "photographed", "faxed"]
    assert not {"rescan", "photographed", "faxed"} & set(photo_families())
    assert {"crop", "webp", "rotate", "banner", "combo2", "combo3"} <= set(photo_families())
    # The earlier families keep their place, so reports list them as before.
    assert photo_families() == [*EARLIER_SINGLES, "combo2", "combo3", *HARDER_FAMILIES]


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
        assert set(applied) <= set(EARLIER_SINGLES)  # never the newer families: same bytes
        applied.clear()
        FAMILIES["combo2"].edit(pictures["small"], random.Random(seed))
        assert len(applied) == 2 and len(set(applied)) == 2
        assert set(applied) <= set(EARLIER_SINGLES)


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
    # The only edits with nothing (greyscale, mirror) or little (one of three turns) to draw.
    assert unchanged <= {"greyscale", "mirror", "turn"}


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


def test_turn_rotates_by_a_quarter_half_or_three_quarter_turn_exactly(
    pictures: dict[str, Image.Image],
) -> None:
    original = pictures["small"]
    back = {
        (48, 64): (Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_90),
        (64, 48): (Image.Transpose.ROTATE_180,),
    }
    seen = set()
    for seed in range(12):
        copy = turn(original, random.Random(seed))
        assert copy.size in back  # 90 and 270 swap the sides, 180 keeps them
        undone = [copy.transpose(way) for way in back[copy.size]]
        matches = [np.array_equal(np.asarray(u), np.asarray(original)) for u in undone]
        assert any(matches)  # lossless: exactly the picture, turned
        seen.add((copy.size, matches.index(True)))
    assert len(seen) == 3  # all three turns happen


def test_stretch_changes_the_aspect_by_1_15_to_1_4_along_either_axis(
    astronaut: Image.Image,
) -> None:
    picture = astronaut.resize((400, 300))
    axes = set()
    for seed in range(30):
        copy = stretch(picture, random.Random(seed))
        change = (copy.width / copy.height) / (400 / 300)
        factor = change if change > 1 else 1 / change
        assert 1.15 - 0.01 <= factor <= 1.4 + 0.01, factor
        assert copy.width == 400 or copy.height == 300  # one axis is kept
        axes.add(copy.width == 400)
    assert axes == {True, False}


def test_tight_crop_keeps_30_to_45_percent_of_the_area(astronaut: Image.Image) -> None:
    picture = astronaut.resize((640, 480))
    kept = []
    for seed in range(40):
        copy = tight_crop(picture, random.Random(seed))
        kept.append(copy.width * copy.height / (640 * 480))
    assert all(0.295 <= share <= 0.455 for share in kept), kept
    assert min(kept) < 0.34 and max(kept) > 0.41


def test_meme_text_is_white_outlined_in_black_at_the_top_and_the_bottom(
    astronaut: Image.Image,
) -> None:
    picture = astronaut.resize((480, 360))
    copy = np.asarray(meme(picture, random.Random(3)), np.int16)
    changed = np.abs(copy - np.asarray(picture, np.int16)).max(axis=2) > 60
    height = changed.shape[0]
    top, middle, bottom = (
        changed[: height // 4],
        changed[height // 3 : -height // 3],
        changed[-height // 4 :],
    )
    assert top.mean() > 0.03 and bottom.mean() > 0.03
    assert middle.mean() < 0.01
    letters = copy[changed]
    assert (letters.min(axis=1) > 240).mean() > 0.2 and (letters.max(axis=1) < 30).mean() > 0.2


def test_pip_shows_the_picture_at_35_to_70_percent_of_a_screenshot(astronaut: Image.Image) -> None:
    colour = (255, 0, 254)  # a colour no browser chrome, text or thumbnail has
    picture = Image.new("RGB", (640, 427), colour)
    for seed in range(12):
        screenshot = picture_in_picture(picture, random.Random(seed))
        pixels = np.asarray(screenshot)
        shown = np.all(pixels == colour, axis=2)
        columns, rows = np.flatnonzero(shown.any(axis=0)), np.flatnonzero(shown.any(axis=1))
        share = (columns[-1] - columns[0] + 1) / screenshot.width
        assert 0.34 <= share <= 0.71, share
        assert shown.mean() < 0.6  # around it: window chrome, text, other thumbnails
        outside = pixels[~shown]
        assert outside.std() > 10
        assert rows[0] > 0.04 * screenshot.height  # below a title bar or browser tabs


def test_a_photo_of_a_print_shows_the_print_turned_on_a_background(astronaut: Image.Image) -> None:
    picture = astronaut.resize((640, 480))
    for seed in range(4):
        photo = photo_of_print(picture, random.Random(seed))
        assert photo.info.get("dedup_gpu.synth.save_as", ("",))[0] == "jpg"  # the camera's JPEG
        grey = np.asarray(photo.convert("L"), np.float32)
        # The white margin of the print shows, and so does what it lies on, at every edge.
        assert (grey > 200).mean() > 0.03
        for edge in (grey[:2], grey[-2:], grey[:, :2], grey[:, -2:]):
            assert edge.mean() < 215


def test_sheet_corners_move_by_at_most_the_stated_share() -> None:
    from dedup_gpu.synth import _sheet_corners

    largest = []
    for seed in range(20):
        corners = _sheet_corners(400, 300, random.Random(seed), 0.12, 0.0)
        flat = [(0, 0), (400, 0), (400, 300), (0, 300)]
        shifts = [
            max(abs(x - fx) / 400, abs(y - fy) / 300)
            for (x, y), (fx, fy) in zip(corners, flat, strict=True)
        ]
        assert max(shifts) <= 0.12 + 1e-9
        assert max(shifts) >= 0.2 * 0.12  # always a visible tilt, never a flat scan
        largest.append(max(shifts))
    assert np.mean(largest) > 0.6 * 0.12


def test_a_photographed_page_is_a_jpeg_of_the_page_on_a_surface(document_pages: list[Path]) -> None:
    page = load_rgb(document_pages[0])
    photo = photographed(page, random.Random(1))
    assert photo.info["dedup_gpu.synth.save_as"][0] == "jpg"
    grey = np.asarray(photo.convert("L"), np.float32)
    assert grey[grey.shape[0] // 2, grey.shape[1] // 2 - 20 : grey.shape[1] // 2 + 20].mean() > 120
    assert min(grey[:3, :3].mean(), grey[-3:, -3:].mean()) < 235  # the desk in the corners


def test_a_fax_is_black_and_white_at_about_100_dpi_and_saved_as_png(
    document_pages: list[Path], tmp_path: Path
) -> None:
    page = load_rgb(document_pages[0])
    for seed in range(6):
        fax = faxed(page, random.Random(seed))
        assert set(np.unique(np.asarray(fax)).tolist()) <= {0, 255}
        assert fax.width <= page.width and fax.height <= page.height
        assert 0.5 < (np.asarray(fax) == 255).mean() < 0.999  # paper, with the text left on it
    labels = write_copies(document_pages[0], tmp_path, seed=3, families=["faxed"])
    assert labels[0].path.suffix == ".png"
