"""Plain pictures: gradients, flat and minimal designs, objects on white, short notes and planets.
A benchmark relies on them being what they claim, on every distractor being a different picture
(never a copy-family edit of another), and on the same seed giving the same bytes."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from dedup_gpu.plain_art import (
    DISTRACTOR_KIND,
    PLAIN_KINDS,
    PlainPicture,
    plain_pictures,
    too_close,
    turns_and_mirrors,
    write_plain_art,
)

TINY_SIZES = {(480, 300), (400, 400), (330, 440)}


@pytest.fixture(scope="module")
def tiny() -> list[PlainPicture]:
    return plain_pictures(seed=4, size="tiny")


def thumbnail(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BOX), np.float32)


def largest_block_difference(first: np.ndarray, second: np.ndarray) -> float:
    """The mean absolute difference (0-255) of the 8 x 8 block where two thumbnails differ most:
    near-identical pictures are close in every block."""
    difference = np.abs(first - second).mean(axis=-1)
    return float(difference.reshape(8, 8, 8, 8).mean(axis=(1, 3)).max())


def test_the_tiny_set_has_two_originals_and_two_distractors_of_every_kind(
    tiny: list[PlainPicture],
) -> None:
    assert Counter((p.kind, p.distractor) for p in tiny) == {
        (kind, role): 2 for kind in PLAIN_KINDS for role in (False, True)
    }
    names = {p.name for p in tiny}
    for picture in tiny:
        assert picture.image.mode == "RGB" and picture.image.size in TINY_SIZES
        if picture.distractor:  # each distractor goes with one original
            assert picture.name.removesuffix("_other") in names


def test_no_two_pictures_are_near_identical_even_turned_or_mirrored(
    tiny: list[PlainPicture],
) -> None:
    thumbs = {p.name: thumbnail(p.image) for p in tiny}
    for first, second in itertools.combinations(tiny, 2):
        if first.name.removesuffix("_other") == second.name.removesuffix("_other"):
            continue  # an original and its own distractor: checked below, at full size
        closest = min(
            largest_block_difference(candidate, thumbs[second.name])
            for candidate in turns_and_mirrors(thumbs[first.name])
        )
        assert closest > 20, (first.name, second.name, closest)


def test_a_distractor_differs_from_its_original_where_it_was_changed(
    tiny: list[PlainPicture],
) -> None:
    by_name = {p.name: p for p in tiny}
    for picture in (p for p in tiny if p.distractor):
        original = by_name[picture.name.removesuffix("_other")]
        if original.image.size != picture.image.size:
            continue
        first = np.asarray(original.image, np.int16)
        second = np.asarray(picture.image, np.int16)
        changed = (np.abs(first - second).max(axis=2) > 40).mean()
        assert changed > 0.001, picture.name
        if picture.kind == "page":  # the same note with one value changed: a few letters
            assert changed < 0.05, picture.name


def test_pages_are_mostly_white_and_planets_mostly_black(tiny: list[PlainPicture]) -> None:
    for picture in tiny:
        grey = np.asarray(picture.image.convert("L"))
        if picture.kind == "page":
            assert (grey > 230).mean() > 0.9, picture.name
        if picture.kind == "planet":
            assert (grey < 20).mean() > 0.4, picture.name
        if picture.kind == "object":  # on white, with the object in the middle
            assert (grey[:5] > 225).all(), picture.name
            assert grey[grey.shape[0] // 2].min() < 200, picture.name


def test_the_closeness_check_sees_through_copy_edits_but_not_far_colours_or_layouts() -> None:
    def ramp(profile: np.ndarray) -> Image.Image:
        rows = np.repeat(profile[None, :], 64, axis=0)
        pixels = np.stack([60 + 150 * rows, np.full((64, 64), 90.0), 140 - 80 * rows], axis=-1)
        return Image.fromarray(pixels.astype(np.uint8), "RGB")

    def thumb(image: Image.Image) -> np.ndarray:
        return np.asarray(image, np.float32)

    xs = np.linspace(0, 1, 64)
    picture = ramp(xs)
    assert too_close(thumb(picture), thumb(picture.transpose(Image.Transpose.ROTATE_90)))
    assert too_close(thumb(picture), thumb(picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert too_close(thumb(picture), thumb(ImageEnhance.Brightness(picture).enhance(1.3)))
    hsv = np.array(picture.convert("HSV"))
    hsv[..., 0] = hsv[..., 0] + np.uint8(100)  # a hue turn of about 140 degrees
    far_hue = Image.fromarray(hsv, "HSV").convert("RGB")
    assert not too_close(thumb(picture), thumb(far_hue))
    tent = ramp(1 - np.abs(2 * xs - 1))  # the same colours, light in the middle
    assert not too_close(thumb(picture), thumb(tent))


def test_a_bottle_drawn_larger_elsewhere_is_one_picture_and_a_bottle_of_another_hue_is_not() -> (
    None
):
    # Objects on white: a verifier takes a bottle and the same bottle larger and elsewhere for
    # a crop of one picture, so the generator must not draw them as two; but a bottle of
    # another colour is another product, however few of the pixels it covers.
    def bottle(colour: tuple[int, int, int], left: int, top: int, side: int) -> np.ndarray:
        picture = Image.new("RGB", (64, 64), (246, 246, 246))
        shape = Image.new("RGB", (8, 16), colour)
        shape.paste((20, 20, 20), (2, 0, 6, 3))  # the cap
        picture.paste(shape.resize((side, 2 * side)), (left, top))
        return np.asarray(picture, np.float32)

    small = bottle((30, 130, 60), 8, 10, 8)
    larger_elsewhere = bottle((30, 130, 60), 16, 20, 16)  # the top-left quarter, enlarged
    assert not too_close(small, larger_elsewhere)  # the whole frames differ...
    assert too_close(small, larger_elsewhere, crops=True)  # ... but one is a crop of the other
    other_hue = bottle((150, 40, 150), 8, 10, 8)  # purple, about 170 degrees of hue away
    assert not too_close(small, other_hue)
    assert not too_close(small, other_hue, crops=True)
    assert too_close(small, bottle((30, 130, 60), 8, 10, 8), crops=True)


def test_written_files_are_labelled_and_the_same_seed_gives_the_same_bytes(
    tmp_path: Path,
) -> None:
    first = write_plain_art(tmp_path / "first", seed=2, size="tiny")
    again = write_plain_art(tmp_path / "again", seed=2, size="tiny")
    alone = write_plain_art(tmp_path / "alone", seed=2, size="tiny", distractors=False)

    assert len(first.originals) == len(first.distractors) == 2 * len(PLAIN_KINDS)
    for one, two in zip(first.originals, again.originals, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.name
    # Leaving the distractors out leaves the originals as they were.
    assert [p.read_bytes() for p in alone.originals] == [p.read_bytes() for p in first.originals]
    assert alone.distractors == []
    sources = [label.source for label in first.distractors]
    assert len(set(sources)) == len(sources)  # every distractor is its own source
    for label in first.distractors:
        assert label.kind == DISTRACTOR_KIND and label.family == "original"
        assert label.path.stem.endswith("_other")
        with Image.open(label.path) as image:
            assert image.format == {".png": "PNG", ".jpg": "JPEG"}[label.path.suffix]
    other = write_plain_art(tmp_path / "other", seed=3, size="tiny")
    assert first.originals[0].read_bytes() != other.originals[0].read_bytes()


def test_unknown_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown size"):
        plain_pictures(seed=0, size="huge")
