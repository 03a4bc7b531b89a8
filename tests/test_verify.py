"""Verification: a copy survives the re-check, a look-alike does not, and the report says why."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import skimage_photo
from PIL import Image, ImageDraw, ImageFilter
from typer.testing import CliRunner

from dedup_gpu import verify
from dedup_gpu.cli import app
from dedup_gpu.errors import BadArgumentError
from dedup_gpu.index import Pairs
from dedup_gpu.lookalikes import write_form_fills, write_lookalikes
from dedup_gpu.pipeline import scan
from dedup_gpu.synth import FAMILIES, load_rgb

TRUE_EDITS = ("crop", "rotate", "caption", "banner", "jpeg", "mirror", "downscale", "colour")


def _check(
    paths: list[Path], pairs: list[tuple[int, int]], score: float = 0.9
) -> list[verify.Verdict]:
    checker = verify.Verifier([str(p) for p in paths], workers=0)
    left, right = zip(*pairs, strict=True)
    return checker.check(
        Pairs(
            np.array(left, dtype=np.int64),
            np.array(right, dtype=np.int64),
            np.full(len(pairs), score, dtype=np.float32),
        )
    )


def _soft_picture(seed: int) -> Image.Image:
    """Blurred discs on a gradient: no corners, so no keypoints."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:300, 0:400]
    ground = np.stack([60 + 120 * y / 300, 60 + 120 * x / 400, 60 + 60 * (x + y) / 700], axis=-1)
    picture = Image.fromarray(ground.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(3):
        cx, cy, r = rng.uniform(80, 320), rng.uniform(60, 240), rng.uniform(40, 90)
        colour = tuple(int(c) for c in rng.uniform(60, 230, 3))
        draw.ellipse((cx - r, cy - 0.9 * r, cx + r, cy + 0.9 * r), fill=colour)
    return picture.filter(ImageFilter.GaussianBlur(6))


@pytest.mark.parametrize("photo", ["chelsea.png", "coffee.png", "astronaut.png"])
def test_edited_copies_of_a_photo_pass_verification(tmp_path: Path, photo: str) -> None:
    original = tmp_path / photo
    shutil.copyfile(skimage_photo(photo), original)
    image = load_rgb(original)
    paths = [original]
    for family in TRUE_EDITS:
        edited = FAMILIES[family].edit(image, random.Random(f"test:{photo}:{family}"))
        target = tmp_path / f"{family}.png"
        edited.save(target)
        paths.append(target)
    verdicts = _check(paths, [(0, i) for i in range(1, len(paths))])
    for family, verdict in zip(TRUE_EDITS, verdicts, strict=True):
        assert verdict.accepted, f"{family}: {verdict.reason}"
    mirrored = verdicts[TRUE_EDITS.index("mirror")]
    assert mirrored.method.endswith("mirrored")


@pytest.mark.parametrize(
    ("photo", "shot"),
    [("motorcycle_left.png", 0), ("motorcycle_left.png", 3), ("hubble_deep_field.jpg", 0)],
)
def test_a_photo_of_a_print_that_a_stretch_half_explains_is_aligned_by_its_perspective(
    tmp_path: Path, photo: str, shot: int
) -> None:
    # RANSAC's tolerance lets an affine map explain nearly as many matches as the perspective of
    # a print photographed at an angle, and the affine map then leaves a quarter of the blocks
    # misaligned. Once it is rejected, the perspective is compared as well.
    original = load_rgb(skimage_photo(photo))
    paths = [tmp_path / "print.png", tmp_path / "photo_of_print.jpg"]
    original.save(paths[0])
    FAMILIES["perspective"].edit(original, random.Random(f"persp:{photo}:{shot}")).save(
        paths[1], quality=85
    )
    (verdict,) = _check(paths, [(0, 1)])
    assert verdict.accepted, verdict.reason
    assert verdict.method is verify.VerifyMethod.homography, verdict.reason


@pytest.fixture(scope="module")
def lookalikes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lookalikes")
    images = write_lookalikes(folder, seed=0, size="tiny")
    return {image.path.name: image.path for image in images}


@pytest.fixture(scope="module")
def pages_and_forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # At the benchmark's resolution: at "tiny" (75 dpi) text is too small for any page to be
    # accepted on its text (see test_records_too_small_to_read_are_left_for_review_not_merged).
    folder = tmp_path_factory.mktemp("pages")
    images = write_lookalikes(folder, seed=0, size="full", sets=["forms", "pages"])
    return {image.path.name: image.path for image in images}


def test_consecutive_video_frames_are_rejected(lookalikes: dict[str, Path]) -> None:
    frames = sorted(path for name, path in lookalikes.items() if name.startswith("frames"))
    assert len(frames) >= 3
    verdicts = _check(frames, [(0, 1), (1, 2), (0, 2)])
    for verdict in verdicts:
        assert not verdict.accepted, verdict.reason


def test_a_rescan_of_a_page_is_accepted_and_the_next_page_is_not(
    pages_and_forms: dict[str, Path],
) -> None:
    pages = sorted(
        path
        for name, path in pages_and_forms.items()
        if name.startswith("pages") and "__" not in name
    )
    rescan = next(p for name, p in pages_and_forms.items() if name.startswith(pages[0].stem + "__"))
    own, following = _check([pages[0], rescan, pages[1]], [(0, 1), (0, 2)])
    assert own.accepted, own.reason
    assert own.document
    assert not following.accepted, following.reason


def test_another_fill_of_a_form_is_rejected_and_its_own_rescan_is_not(
    pages_and_forms: dict[str, Path],
) -> None:
    # Two fills of one template agree on nearly every block of the layout; only the filled-in
    # values differ, and the text comparison must see them. Every fill of one template against
    # every other fill and rescan: none is accepted, and the fills' own rescans are (one in
    # nine is not: a binarised rescan whose blotted letters read as two changed windows).
    paths = sorted(path for name, path in pages_and_forms.items() if name.startswith("forms_t0"))
    pairs = [(i, j) for i in range(len(paths)) for j in range(i + 1, len(paths))]
    verdicts = _check(paths, pairs)
    own_accepted = 0
    for (i, j), verdict in zip(pairs, verdicts, strict=True):
        assert verdict.document, verdict.reason
        if paths[i].stem.split("__")[0] == paths[j].stem.split("__")[0]:
            own_accepted += verdict.accepted
            assert "text windows differ" in verdict.reason
        else:
            assert not verdict.accepted, (paths[i].name, paths[j].name, verdict.reason)
    fills = sum("__" not in path.name for path in paths)
    assert own_accepted >= fills - 1, (own_accepted, fills)


def test_a_form_scanned_to_black_and_white_is_still_its_own_record_only(
    pages_and_forms: dict[str, Path], tmp_path: Path
) -> None:
    # Office scanners reduce text pages to pure black and white: light strokes vanish, dark ones
    # thicken. The page must still match its own record and still not another fill.
    fills = sorted(
        path
        for name, path in pages_and_forms.items()
        if name.startswith("forms_t1") and "__" not in name
    )
    original = Image.open(fills[0]).convert("RGB")
    scans = {"black and white": [], "grey": []}
    for attempt in range(60):
        scanned = np.asarray(FAMILIES["rescan"].edit(original, random.Random(attempt)))
        kind = "black and white" if set(np.unique(scanned)) <= {0, 255} else "grey"
        if len(scans[kind]) < 2:
            path = tmp_path / f"scan{attempt}.png"
            Image.fromarray(scanned).save(path)
            scans[kind].append(path)
    assert all(len(paths) == 2 for paths in scans.values())
    copies = scans["black and white"] + scans["grey"]
    paths = [fills[0], fills[1], *copies]
    verdicts = _check(paths, [(0, 2 + i) for i in range(4)] + [(1, 2 + i) for i in range(4)])
    for own in verdicts[:4]:
        assert own.accepted and own.document, own.reason
    for other in verdicts[4:]:
        assert not other.accepted, other.reason


def test_a_crop_too_smooth_for_keypoints_is_found_inside_its_original(tmp_path: Path) -> None:
    # The embedding score is below the fallback threshold: only verification can join them.
    original, other = tmp_path / "soft.png", tmp_path / "other.png"
    _soft_picture(0).save(original)
    _soft_picture(1).save(other)
    crop = tmp_path / "crop.jpg"
    _soft_picture(0).crop((150, 90, 370, 270)).save(crop, quality=85)
    found, unrelated = _check([original, crop, other], [(0, 1), (2, 1)], score=0.4)
    assert found.accepted and found.method == "template", found.reason
    assert not unrelated.accepted, unrelated.reason


def test_a_plain_image_is_judged_by_its_layout_never_by_the_embedding_score(
    tmp_path: Path,
) -> None:
    # A horizontal ramp and its mirror image: no keypoints at all. Whatever the embedding says,
    # the verdict comes from the colour layout, and it is the same at any score.
    gradient = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (192, 1))
    Image.fromarray(gradient).convert("RGB").save(tmp_path / "a.png")
    Image.fromarray(gradient[:, ::-1]).convert("RGB").save(tmp_path / "b.png")
    verdicts = [
        verify.Verifier([str(tmp_path / "a.png"), str(tmp_path / "b.png")], workers=0).check(
            Pairs(np.array([0]), np.array([1]), np.array([score], np.float32))
        )[0]
        for score in (0.40, 0.95)
    ]
    for verdict in verdicts:
        assert verdict.method == "layout"
        assert verdict.accepted, verdict.reason
        # A ramp's mirror image is also the ramp turned half round: either alignment is right.
        assert "mirrored" in verdict.reason or "turned 180" in verdict.reason
    assert verdicts[0].reason == verdicts[1].reason


def test_verify_on_without_opencv_is_an_argument_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify.mode, "opencv_available", lambda: False)
    with pytest.raises(BadArgumentError, match="OpenCV"):
        verify.resolve_mode("on")
    assert verify.resolve_mode("auto") is False
    with pytest.raises(BadArgumentError, match="unknown --verify"):
        verify.resolve_mode("sometimes")


def test_scan_groups_frames_without_verification_but_not_with_it(
    tmp_path: Path, lookalikes: dict[str, Path]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, path in lookalikes.items():
        if name.startswith("frames"):
            shutil.copyfile(path, folder / name)
    shutil.copyfile(skimage_photo("chelsea.png"), folder / "chelsea.png")
    image = load_rgb(folder / "chelsea.png")
    FAMILIES["crop"].edit(image, random.Random(1)).save(folder / "chelsea_crop.jpg")

    unverified = scan([str(folder)], model="sscd-onnx", verify="off", threshold=0.3)
    merged = [g for g in unverified.report.groups if g.keep.path.startswith(str(folder / "fr"))]
    assert merged, "the frames should look alike to the embedding alone"

    verified = scan([str(folder)], model="sscd-onnx", verify="on")
    groups = [[g.keep.path, *(m.path for m in g.duplicates)] for g in verified.report.groups]
    assert groups == [[str(folder / "chelsea.png"), str(folder / "chelsea_crop.jpg")]]
    duplicate = verified.report.groups[0].duplicates[0]
    assert duplicate.verdict is not None and duplicate.verdict.accepted
    report = verified.report.to_dict()
    assert report["verification"]["mode"] == "on"
    assert report["verification"]["pairs_rejected"] >= 1
    for rejected in report["rejected_pairs"]:
        assert all(Path(p).name.startswith("frames") for p in rejected["paths"])
        assert rejected["verification"]["accepted"] is False
        assert "blocks agree" in rejected["verification"]["reason"]
    assert report["timings_s"]["verify"] > 0


def test_grouping_checks_only_the_edges_it_uses(tmp_path: Path) -> None:
    from dedup_gpu.group import build_groups
    from dedup_gpu.records import ContentGroup, ImageFile, ImageInfo

    # Five images that all pair up: a star around image 0 needs four checks, not ten.
    contents = [
        ContentGroup(files=(ImageFile(f"/img{i}.jpg", 100 - i, 0.0),), digest=None)
        for i in range(5)
    ]
    infos = [ImageInfo(100 - i, 100) for i in range(5)]
    left, right = np.triu_indices(5, 1)
    pairs = Pairs(left.astype(np.int64), right.astype(np.int64), np.full(10, 0.9, np.float32))
    checked: list[tuple[int, int]] = []

    def check(batch: Pairs) -> np.ndarray:
        keys = list(zip(batch.left.tolist(), batch.right.tolist(), strict=True))
        checked.extend(keys)
        return np.array([key != (0, 1) for key in keys])  # 1 is a look-alike of 0

    groups = build_groups(contents, infos, pairs, 0.5, check=check)
    assert len(checked) == len(set(checked)) < 10
    assert [g.keep.path for g in groups] == ["/img0.jpg"]
    assert sorted(m.path for m in groups[0].duplicates) == ["/img2.jpg", "/img3.jpg", "/img4.jpg"]


def test_scan_cli_takes_verify_off_and_reports_unverified_duplicates(photo_dir: Path) -> None:
    shutil.copyfile(photo_dir / "coffee.png", photo_dir / "coffee_copy.png")
    image = load_rgb(photo_dir / "coffee.png")
    image.resize((200, 133)).save(photo_dir / "coffee_small.jpg")
    report_path = photo_dir.parent / "report.json"
    result = CliRunner().invoke(
        app, ["scan", str(photo_dir), "--verify", "off", "-q", "-o", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["verification"]["mode"] == "off"
    near = [d for g in report["groups"] for d in g["duplicates"] if not d["exact"]]
    assert near and all(d["verification"] is None for d in near)


def test_a_letterboxed_copy_verifies_against_a_framed_copy(tmp_path: Path) -> None:
    # Neither is the original: a group kept around one padded copy must still take the other.
    image = load_rgb(skimage_photo("coffee.png"))
    padded = []
    for family, seed in (("letterbox", 1), ("border", 2)):
        target = tmp_path / f"{family}.png"
        FAMILIES[family].edit(image, random.Random(seed)).save(target)
        padded.append(target)
    (verdict,) = _check(padded, [(0, 1)])
    assert verdict.accepted, verdict.reason


def test_a_bright_photo_in_a_border_is_a_photo_and_matches_its_original(tmp_path: Path) -> None:
    # A pale clock face in soft light: framed, it no longer runs off the picture's edges, so
    # it looked like a sheet lying on a table, was taken for a page (its light evened out, it
    # reads as paper and strokes) and the pair was held to the text comparison of records,
    # which turned it down. A flat frame round an upright picture is not a table.
    original = skimage_photo("clock_motion.png")
    framed = tmp_path / "clock__border.png"
    FAMILIES["border"].edit(load_rgb(original), random.Random(3)).save(framed)
    checker = verify.Verifier([str(original), str(framed)], workers=0)
    (verdict,) = checker.check(Pairs(np.array([0]), np.array([1]), np.array([0.9], np.float32)))
    assert verdict.accepted and not verdict.document, verdict.reason

    # A page in a flat frame is still a page.
    pages = write_lookalikes(tmp_path / "pages", seed=0, size="tiny", sets=["pages"])
    first = next(page.path for page in pages if "__" not in page.path.name)
    framed_page = FAMILIES["border"].edit(load_rgb(first), random.Random(3))
    assert verify.Thumbnail(np.asarray(framed_page)).document


@pytest.mark.parametrize(
    ("photo", "seed"),
    [
        ("hubble_deep_field.jpg", 0),
        ("hubble_deep_field.jpg", 1),
        ("brick.png", 2),
        ("grass.png", 0),
    ],
)
def test_meme_text_over_a_detailed_photo_is_an_addition_not_a_difference(
    tmp_path: Path, lookalikes: dict[str, Path], photo: str, seed: int
) -> None:
    # Over stars, bricks or grass the letters' blocks hold detail on both sides and disagree:
    # a fifth of the picture's blocks, enough to turn a true copy down. They are left out.
    original = tmp_path / "original.png"
    load_rgb(skimage_photo(photo)).save(original)
    copy = tmp_path / "meme.jpg"
    FAMILIES["meme"].edit(load_rgb(original), random.Random(f"meme:{photo}:{seed}")).save(
        copy, quality=85
    )
    (verdict,) = _check([original, copy], [(0, 1)])
    assert verdict.accepted, verdict.reason

    # Text over one of two consecutive video frames does not make them one picture.
    frames = sorted(path for name, path in lookalikes.items() if name.startswith("frames"))
    captioned = tmp_path / "frame_meme.jpg"
    FAMILIES["meme"].edit(load_rgb(frames[0]), random.Random(seed)).save(captioned, quality=85)
    for verdict in _check([captioned, *frames[1:3]], [(0, 1), (0, 2)]):
        assert not verdict.accepted, verdict.reason


def test_meme_text_over_a_plain_picture_is_an_addition_and_no_reason_to_merge(
    tmp_path: Path,
) -> None:
    # On a flat design or an object on white the letters and their outlines cross the
    # picture's own edges, and their white and black pulled the fitted colour edit off
    # everywhere else. They are left out of the fit and their blocks count as an overlay.
    paths = _plain_set(tmp_path, ("flat", "object"), ("meme",))
    names = [path.name for path in paths]
    pairs = [
        (names.index(f"{name}.png"), names.index(f"{name}__meme.png"))
        for name in ("flat_00", "object_00")
    ]
    for verdict in _check(paths, pairs):
        assert verdict.accepted, verdict.reason
    # (Two distractors of the tiny set, bottles 32 degrees of hue apart, are not asserted: see
    # test_a_bottle_is_not_another_bottle_of_another_colour.)
    assert [pair for pair in _wrongly_accepted(paths) if pair.count("_other") < 2] == []


def test_a_picture_shown_inside_a_screenshot_is_compared_over_the_picture(
    tmp_path: Path,
) -> None:
    # Grass shown at half the width of a browser page: compared over the page's frame it filled
    # a quarter of the blocks, too few for a detailed picture. The comparison spans the
    # picture the other covers, at the coarser side's resolution.
    original = tmp_path / "grass.png"
    load_rgb(skimage_photo("grass.png")).save(original)
    screenshot = tmp_path / "grass__pip.jpg"
    FAMILIES["pip"].edit(load_rgb(original), random.Random("pip:grass.png:0")).save(
        screenshot, quality=85
    )
    (verdict,) = _check([original, screenshot], [(0, 1)])
    assert verdict.accepted, verdict.reason
    assert verdict.blocks >= 100, verdict.reason


def test_padding_is_trimmed_before_comparison() -> None:
    grey = np.zeros((120, 200), dtype=np.uint8)
    grey[10:110, 40:160] = np.random.default_rng(0).integers(0, 255, (100, 120))
    # The bars go, plus two lines along each inner edge (where JPEG rings).
    assert verify.trim_padding(grey).shape == (96, 116)
    grey[::60, 5] = grey[3, ::60] = 40  # compression noise: a few stray pixels in the bars
    assert verify.trim_padding(grey).shape == (96, 116)
    plain = np.random.default_rng(1).integers(0, 255, (50, 60)).astype(np.uint8)
    assert verify.trim_padding(plain).shape == plain.shape


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain pictures of three kinds, each with a distinct look-alike (another gradient, another
    flat design, the same kind of note with another time) and a re-save, a crop, a colour edit
    and a turn of the first gradient."""
    from dedup_gpu.plain_art import plain_pictures

    folder = tmp_path_factory.mktemp("plain")
    wanted = ("gradient_00", "flat_00", "page_00")
    for picture in plain_pictures(0, "tiny"):
        if picture.name.removesuffix("_other") in wanted:
            picture.image.save(folder / f"{picture.name}.png")
    gradient = load_rgb(folder / "gradient_00.png")
    for family in ("jpeg", "crop", "colour", "turn"):
        edited = FAMILIES[family].edit(gradient, random.Random(f"plain:{family}"))
        edited.save(folder / f"gradient_00__{family}.png")
    return folder


def test_different_plain_pictures_are_never_grouped_and_copies_of_a_gradient_are(
    plain_folder: Path,
) -> None:
    report = scan([str(plain_folder)], model="sscd-onnx", verify="on").report
    groups = [
        {Path(g.keep.path).stem, *(Path(m.path).stem for m in g.duplicates)} for g in report.groups
    ]
    for name in ("gradient_00", "flat_00", "page_00"):
        assert not any({name, f"{name}_other"} <= group for group in groups), groups
    [gradient] = [group for group in groups if "gradient_00" in group]
    assert {f"gradient_00__{f}" for f in ("jpeg", "crop", "turn")} <= gradient
    # The strong colour edit clips this saturated gradient beyond what the layout's colour
    # model explains: it is left out (never put with another picture), a known gap.
    assert not any("gradient_00__colour" in group and group != gradient for group in groups)
    for group in report.groups:
        for member in group.duplicates:
            assert member.verdict is not None and member.verdict.accepted, member.path


def test_pictures_too_plain_to_tell_are_left_unverified_and_listed(tmp_path: Path) -> None:
    # Two nearly blank pictures of slightly different greys: no detail, no layout. Whatever the
    # embedding says, verification cannot call them copies or different: they are listed for a
    # person (report and CSV), and not grouped.
    rng = np.random.default_rng(0)
    for name, level in (("blank_a", 200), ("blank_b", 206)):
        pixels = np.clip(level + rng.normal(0, 1.0, (240, 320, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    (verdict,) = _check([tmp_path / "blank_a.png", tmp_path / "blank_b.png"], [(0, 1)])
    assert verdict.outcome is verify.VerifyOutcome.unverified, verdict.reason
    assert "too plain" in verdict.reason

    report_path, csv_path = tmp_path / "report.json", tmp_path / "report.csv"
    result = CliRunner().invoke(
        app,
        [
            "scan",
            str(tmp_path),
            "--threshold",
            "0.01",
            "-q",
            "-o",
            str(report_path),
            "--csv",
            str(csv_path),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["groups"] == []
    [pair] = report["unverified_pairs"]
    assert sorted(Path(p).name for p in pair["paths"]) == ["blank_a.png", "blank_b.png"]
    assert pair["verification"]["outcome"] == "unverified"
    assert report["verification"]["pairs_unverified"] == 1
    rows = csv_path.read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["unverified-1", "unverified"]] * 2


def _plain_set(folder: Path, kinds: tuple[str, ...], families: tuple[str, ...]) -> list[Path]:
    """The tiny set's plain originals and distractors of `kinds`, and `families` copies of each
    original."""
    from dedup_gpu.plain_art import plain_pictures

    paths = []
    for picture in plain_pictures(0, "tiny"):
        if not picture.name.startswith(kinds):
            continue
        image = picture.image.convert("RGB")
        paths.append(folder / f"{picture.name}.png")
        image.save(paths[-1])
        if not picture.name.endswith("_other"):
            for family in families:
                edited = FAMILIES[family].edit(image, random.Random(f"{picture.name}:{family}"))
                paths.append(folder / f"{picture.name}__{family}.png")
                edited.save(paths[-1])
    return paths


def _wrongly_accepted(paths: list[Path]) -> list[str]:
    pairs = [(i, j) for i in range(len(paths)) for j in range(i + 1, len(paths))]

    def source(path: Path) -> str:
        return path.stem.split("__")[0]

    return [
        f"{paths[i].name} ~ {paths[j].name}: {verdict.reason}"
        for (i, j), verdict in zip(pairs, _check(paths, pairs), strict=True)
        if verdict.accepted and source(paths[i]) != source(paths[j])
    ]


def test_two_minimal_designs_are_never_taken_for_each_other(tmp_path: Path) -> None:
    # A small mark on a flat ground: nearly every block is ground, and grounds of similar
    # colours agree. Only the mark can say whether two designs are one, so a pair whose few
    # telling blocks agree is left undecided, never accepted.
    paths = _plain_set(tmp_path, ("minimal",), ("blur", "crop", "mirror", "jpeg"))
    assert _wrongly_accepted(paths) == []


def _mark_on_ground(
    size: tuple[int, int], ground: tuple, mark: str, colour: tuple, at: tuple[float, float, float]
) -> Image.Image:
    """A minimal design: one small mark (disc, ring or cross; centre x, y and radius as shares
    of the width) on a flat ground."""
    image = Image.new("RGB", size, ground)
    draw = ImageDraw.Draw(image)
    x, y, r = at[0] * size[0], at[1] * size[1], at[2] * size[0]
    if mark == "disc":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    elif mark == "ring":
        draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=round(r / 3))
    else:
        draw.rectangle((x - r, y - r / 3, x + r, y + r / 3), fill=colour)
        draw.rectangle((x - r / 3, y - r, x + r / 3, y + r), fill=colour)
    return image


def test_a_mark_on_a_flat_ground_is_not_another_mark_on_another_ground(tmp_path: Path) -> None:
    # Nearly every block of such a design is ground, and a brightness shift relates one flat
    # ground to any other: a dark disc on pink and a pink ring on a dark ground, or a dark
    # cross on pale blue in greyscale, agree in all blocks but the few the marks cover. Those
    # few decide: two designs, or a design and another's greyscale copy, are never one picture.
    designs = {
        "disc_on_pink": _mark_on_ground(
            (1024, 1024), (230, 93, 199), "disc", (36, 22, 28), (0.49, 0.425, 0.087)
        ),
        "ring_on_dark": _mark_on_ground(
            (1280, 800), (36, 25, 35), "ring", (230, 42, 168), (0.49, 0.42, 0.058)
        ),
        "cross_on_blue": _mark_on_ground(
            (1600, 900), (168, 219, 237), "cross", (37, 89, 69), (0.495, 0.46, 0.048)
        ),
    }
    paths = []
    for name, image in designs.items():
        paths.append(tmp_path / f"{name}.png")
        image.save(paths[-1])
        for family in ("jpeg", "greyscale"):
            paths.append(tmp_path / f"{name}__{family}.png")
            FAMILIES[family].edit(image, random.Random(f"{name}:{family}")).save(paths[-1])
    assert _wrongly_accepted(paths) == []


def _assert_copies_known_and_designs_apart(
    folder: Path, designs: dict[str, Image.Image], families: tuple[str, ...]
) -> list[Path]:
    """Writes each design and its copies in `families`; each copy must be accepted against its
    design and no two designs' images against each other. Returns the paths written."""
    paths = []
    for name, image in designs.items():
        paths.append(folder / f"{name}.png")
        image.save(paths[-1])
        for family in families:
            paths.append(folder / f"{name}__{family}.png")
            FAMILIES[family].edit(image, random.Random(f"{name}:{family}")).save(paths[-1])
    step = 1 + len(families)
    originals_and_copies = [
        (start, start + copy) for start in range(0, len(paths), step) for copy in range(1, step)
    ]
    verdicts = _check(paths, originals_and_copies)
    for (_, j), verdict in zip(originals_and_copies, verdicts, strict=True):
        assert verdict.accepted, f"{paths[j].name}: {verdict.reason}"
    assert _wrongly_accepted(paths) == []
    return paths


def test_a_small_mark_on_a_flat_ground_is_known_again_by_its_shape(tmp_path: Path) -> None:
    # A logo alone on a plain card covers one or two blocks of the layout grid: its re-saves,
    # mirrored and downscaled copies were all left for review ("too plain to compare"). Its
    # shape decides: a copy's mark covers the original's, a ring, a cross or a smaller disc of
    # the same colours in the same place does not, and no such look-alike is merged.
    ground, ink, at = (36, 25, 35), (230, 93, 199), (0.49, 0.42, 0.07)
    designs = {
        "disc": _mark_on_ground((1024, 768), ground, "disc", ink, at),
        "ring": _mark_on_ground((1024, 768), ground, "ring", ink, at),
        "cross": _mark_on_ground((1024, 768), ground, "cross", ink, at),
        "small_disc": _mark_on_ground((1024, 768), ground, "disc", ink, (0.49, 0.42, 0.05)),
    }
    families = ("jpeg", "mirror", "downscale", "noise", "webp")
    _assert_copies_known_and_designs_apart(tmp_path, designs, families)


def test_a_short_note_and_its_jpeg_resave_are_one_page(tmp_path: Path) -> None:
    # A mostly white page with a few lines of smooth type has as few grey pixels as a fax
    # (under 1% of the page), but they are its letters' edges, a fifth of its ink: the pair is
    # compared by its text and accepted, not left for review as two faxes would be.
    from dedup_gpu.synth import font

    note = Image.new("RGB", (900, 1200), (252, 252, 250))
    draw = ImageDraw.Draw(note)
    for line, text in enumerate(("Call Maria back", "re: invoice 4471", "before 16:30, Tue")):
        draw.text((90, 120 + 60 * line), text, font=font(34), fill=(25, 25, 30))
    paths = [tmp_path / "note.png", tmp_path / "note__jpeg.jpg"]
    note.save(paths[0])
    note.save(paths[1], quality=30)
    (verdict,) = _check(paths, [(0, 1)])
    assert verdict.accepted, verdict.reason
    assert verdict.document, verdict.reason


def test_a_ring_or_a_monogram_on_a_pale_card_is_a_picture_not_a_page(tmp_path: Path) -> None:
    # A dark ring, or two letters in a ring, on a pale ground is mostly light ground with thin
    # dark strokes: it was read as a page, compared as a record and its own JPEG re-save turned
    # down. Its ink is one compact mark, not text, so it is a picture and known by its mark.
    from dedup_gpu.synth import font

    ground, ink = (214, 235, 190), (20, 95, 20)
    monogram = Image.new("RGB", (1600, 900), ground)
    draw = ImageDraw.Draw(monogram)
    draw.ellipse((870, 370, 1036, 536), outline=ink, width=10)
    draw.text((953, 453), "MB", font=font(70), fill=ink, anchor="mm")
    designs = {
        "ring": _mark_on_ground((1600, 900), ground, "ring", ink, (0.45, 0.42, 0.035)),
        "monogram": monogram,
    }
    families = ("jpeg", "mirror", "downscale", "webp", "noise")
    paths = _assert_copies_known_and_designs_apart(tmp_path, designs, families)
    assert not any(t.document for t in verify.load_thumbnails([str(p) for p in paths], workers=0))


def test_a_pale_tinted_card_keeps_its_colour_across_re_saves(tmp_path: Path) -> None:
    # A cream card's chroma lies at the grey threshold: a JPEG or WebP re-save or a colour
    # edit moved most of its pixels below it, the card was taken for a greyscale copy of a
    # coloured one and a true copy left for review. Only clearly less colour than the other
    # side makes a side grey; a real greyscale copy is still left for review.
    from dedup_gpu.synth import font

    paths = []
    for ground in ((232, 227, 217), (240, 232, 220)):
        card = Image.new("RGB", (900, 600), ground)
        draw = ImageDraw.Draw(card)
        draw.ellipse((330, 180, 570, 420), outline=(60, 50, 40), width=18)
        draw.text((450, 300), "AM", font=font(60), fill=(60, 50, 40), anchor="mm")
        name = f"card_{ground[0]}"
        paths.append(tmp_path / f"{name}.png")
        card.save(paths[-1])
        for family in ("jpeg", "webp", "colour", "greyscale"):
            paths.append(tmp_path / f"{name}__{family}.png")
            FAMILIES[family].edit(card, random.Random(family)).save(paths[-1])
    pairs = [(start, start + copy) for start in (0, 5) for copy in range(1, 5)]
    for (_, j), verdict in zip(pairs, _check(paths, pairs), strict=True):
        if "greyscale" in paths[j].name:
            assert verdict.outcome is verify.VerifyOutcome.unverified, verdict.reason
            assert "greyscale" in verdict.reason
        else:
            assert verdict.accepted, f"{paths[j].name}: {verdict.reason}"


def test_one_meme_text_over_two_different_pictures_is_no_evidence_they_are_one(
    tmp_path: Path,
) -> None:
    # Memes share their text ("TOP TEXT / BOTTOM TEXT"), photographers their watermark. Over
    # two soft pictures with no keypoints of their own, the letters were all keypoints matched
    # and all the blocks that agreed: "aligned by keypoints, 90% of 41 blocks agree". Text in
    # one place on both sides says nothing about what lies under it and is left out.
    paths = []
    for seed in (0, 1, 2):
        picture = _soft_picture(seed)
        paths.append(tmp_path / f"soft_{seed}.png")
        picture.save(paths[-1])
        paths.append(tmp_path / f"soft_{seed}__meme.jpg")
        FAMILIES["meme"].edit(picture, random.Random(3)).save(paths[-1], quality=90)
    originals_and_memes = [(0, 1), (2, 3), (4, 5)]
    for verdict in _check(paths, originals_and_memes):
        assert verdict.accepted, verdict.reason
    assert _wrongly_accepted(paths) == []


def _note(lines: tuple[str, ...]) -> Image.Image:
    from dedup_gpu.synth import font

    note = Image.new("RGB", (1200, 900), (252, 252, 250))
    draw = ImageDraw.Draw(note)
    for line, text in enumerate(lines):
        draw.text((120, 150 + 90 * line), text, font=font(56), fill=(25, 25, 30))
    return note


def test_two_letterboxed_notes_with_another_time_are_two_records(tmp_path: Path) -> None:
    # Black bars round a short note (a still of a video, a scan with its bed showing) hide its
    # paper: it was compared as a photo, and two such notes, one time changed, were merged as
    # "100% of 44 blocks agree". Tested without its bars it is a page, and its text decides.
    lines = ("Call Maria back", "re: invoice 4471", "before 16:30, Tue")
    paths = []
    for name, text in (("note", lines), ("other_note", (*lines[:2], "before 18:30, Tue"))):
        paths.append(tmp_path / f"{name}.png")
        _note(text).save(paths[-1])
        boxed = Image.new("RGB", (1600, 900), (0, 0, 0))
        boxed.paste(_note(text), (200, 0))
        paths.append(tmp_path / f"{name}__letterbox.jpg")
        boxed.save(paths[-1], quality=85)
    thumbnails = verify.load_thumbnails([str(p) for p in paths], workers=0)
    assert all(t is not None and t.document for t in thumbnails)
    boxed_notes, *mixed = _check(paths, [(1, 3), (0, 3), (1, 2)])
    assert "text windows differ" in boxed_notes.reason
    for verdict in (boxed_notes, *mixed):
        assert verdict.outcome is verify.VerifyOutcome.rejected, verdict.reason


def test_a_bottle_is_not_another_bottle_of_another_colour(tmp_path: Path) -> None:
    # Objects on white: the same bottle shape in another colour is another product. Mostly
    # white pixels must not make the comparison colour-blind, and a crop found by template
    # search in a smooth picture must be confirmed by the colour layout.
    paths = _plain_set(tmp_path, ("object", "gradient"), ("crop", "colour", "stretch", "blur"))
    # Every pair with an original or one of its copies on one side. (Two distractors, a navy
    # bottle and a teal one 32 degrees of hue apart in another place, are still taken for a
    # crop and hue edit of each other, which turns hue by up to 30: not asserted here.)
    wrong = [pair for pair in _wrongly_accepted(paths) if pair.count("_other") < 2]
    assert wrong == []


def _sphere_on_white(colour: tuple[int, int, int], radius: float, centre_x: float) -> Image.Image:
    """A studio shot: a shaded ball with a highlight on a white sweep, 480 x 360."""
    y, x = np.mgrid[0:360, 0:480].astype(np.float32)
    pixels = np.repeat((250 - 12 * (y / 360) ** 2)[..., None], 3, axis=2)
    nx, ny = (x - centre_x) / radius, (y - 180) / radius
    inside = nx**2 + ny**2 < 1
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    light = np.array([-0.5, -0.7, 0.5]) / np.linalg.norm([-0.5, -0.7, 0.5])
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    shine = np.clip(nx * 0.0 + ny * -0.4 + nz * 0.92, 0, 1) ** 40
    ball = np.array(colour, np.float32) * (0.3 + 0.75 * diffuse)[..., None] + 200 * shine[..., None]
    pixels = np.where(inside[..., None], ball, pixels)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.8)
    )


def test_two_balls_of_other_colours_are_not_one_and_a_recoloured_copy_is(tmp_path: Path) -> None:
    # The block grid compares grey levels, and two renders of one shape on white agree there
    # block for block. A colour edit turns hues by at most tens of degrees; a blue ball and a
    # green one are two products, letterboxed or not.
    blue = _sphere_on_white((40, 70, 200), 95, 230)
    green = _sphere_on_white((40, 170, 60), 95, 230)
    pictures = {
        "blue": blue,
        "green": green,
        "blue__colour": FAMILIES["colour"].edit(blue, random.Random("blue:colour")),
        "blue__letterbox": FAMILIES["letterbox"].edit(blue, random.Random("blue:letterbox")),
        "green__letterbox": FAMILIES["letterbox"].edit(green, random.Random("green:letterbox")),
    }
    paths = []
    for name, picture in pictures.items():
        paths.append(tmp_path / f"{name}.png")
        picture.save(paths[-1])
    two_products, recoloured, two_letterboxed = _check(paths, [(0, 1), (0, 2), (3, 4)])
    assert not two_products.accepted, two_products.reason
    assert not two_letterboxed.accepted, two_letterboxed.reason
    assert "hues are turned" in two_letterboxed.reason
    assert recoloured.accepted, recoloured.reason


def test_a_greyscale_copy_of_a_ball_on_white_is_left_for_review_not_merged(
    tmp_path: Path,
) -> None:
    # A ball on white is a silhouette and its colour. In grey, the blue ball's copy matches the
    # green ball's shape and shading as well as its own original's: nothing tells the two
    # products apart, so the pair is neither merged nor called different, but listed for review.
    # Two greyscale copies are one picture only if their grey levels are the same.
    blue = _sphere_on_white((40, 70, 200), 95, 230)
    green = _sphere_on_white((40, 170, 60), 95, 230)
    blue_grey = FAMILIES["greyscale"].edit(blue, random.Random(0))
    pictures = {
        "blue": blue,
        "green": green,
        "blue__greyscale": blue_grey,
        "green__greyscale": FAMILIES["greyscale"].edit(green, random.Random(0)),
    }
    paths = []
    for name, picture in pictures.items():
        paths.append(tmp_path / f"{name}.png")
        picture.save(paths[-1])
    paths.append(tmp_path / "blue__greyscale__jpeg.jpg")
    blue_grey.save(paths[-1], quality=70)
    other_product, own_original, two_greys, resaved = _check(
        paths, [(2, 1), (2, 0), (2, 3), (2, 4)]
    )
    for verdict in (other_product, own_original, two_greys):
        assert verdict.outcome is verify.VerifyOutcome.unverified, verdict.reason
    assert "greyscale" in other_product.reason
    assert resaved.accepted, resaved.reason


def test_among_256_pages_of_one_form_each_pages_own_rescan_is_among_its_first_six(
    tmp_path: Path,
) -> None:
    # Grouping tries 6 of an image's candidates before it gives up on look-alikes. Among fills
    # of one form the embedding ranks a fill's own rescan below dozens of other fills, so the
    # signatures must put it first: rescans that register to a later anchor page than their
    # fills are laid out in one frame with them, and the boxes every fill writes in count for
    # nothing.
    labels = sorted(write_form_fills(tmp_path, seed=1, count=128, size="tiny"), key=str)
    paths, sources = [str(i.path) for i in labels], [i.source for i in labels]
    left, right = np.triu_indices(len(paths), 1)
    every_pair = Pairs(
        left.astype(np.int64), right.astype(np.int64), np.full(len(left), 0.9, np.float32)
    )
    priority = verify.Verifier(paths, workers=0).priorities(every_pair, 6)
    found = 0
    for row, source in enumerate(sources):
        mine = np.flatnonzero((left == row) | (right == row))
        others = np.where(left[mine] == row, right[mine], left[mine])
        own = mine[[sources[other] == source for other in others]][0]
        found += int((priority[mine] > priority[own]).sum() < 6)
    assert found >= 0.98 * len(paths), f"{found} of {len(paths)} have their copy among six"
