"""The built-in demo: real photos bundled with scikit-image, edited copies made on the fly, an
exact copy and two broken files, so one command shows every kind of finding."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import BadArgumentError, ModelUnavailableError
from .report import Report
from .synth import EDITS, write_edited_copies

MARKER = ".dedup-gpu-demo"
# Photographs among scikit-image's bundled data (no download needed); each is a distinct original.
DEMO_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "moon.png",
    "page.png",
    "motorcycle_left.png",
)


def skimage_data_dir() -> Path:
    try:
        import skimage
    except ImportError as error:
        raise ModelUnavailableError(
            "the demo needs scikit-image's bundled photos, and scikit-image is not installed",
            hint="pip install 'dedup-gpu[demo]'",
        ) from error
    return Path(skimage.__file__).parent / "data"


def build_demo_folder(target: str | Path, seed: int = 0) -> Path:
    """Fill `target` with originals, one edited copy per edit family, an exact copy and two
    broken files. Refuses a non-empty folder that the demo did not make."""
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not (target / MARKER).exists():
        raise BadArgumentError(
            f"{target} exists, is not empty and was not made by the demo; nothing was written",
            hint="pass --dir with a new or empty folder",
        )
    source = skimage_data_dir()
    originals, copies, broken = target / "originals", target / "copies", target / "broken"
    for folder in (originals, copies, broken):
        folder.mkdir(parents=True, exist_ok=True)
    (target / MARKER).write_text("made by `dedup-gpu demo`; safe to delete\n")
    for name in DEMO_PHOTOS:
        shutil.copyfile(source / name, originals / name)
        write_edited_copies(originals / name, copies, seed=seed)
    shutil.copyfile(originals / "chelsea.png", copies / "chelsea (copy).png")
    whole = (originals / "rocket.jpg").read_bytes()
    (broken / "rocket_truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (broken / "notes.jpg").write_text("this is a text file with an image extension\n")
    return target


@dataclass(frozen=True)
class DemoScore:
    copies: int
    joined: int  # edited copies in the same group as their original
    wrong_pairs: int  # kept copy -> duplicate pairs from different originals


def original_name(path: str) -> str:
    stem = Path(path).stem
    return stem.split("__")[0].removesuffix(" (copy)")


def score_demo(report: Report, folder: str | Path) -> DemoScore:
    group_of: dict[str, int] = {}
    wrong = 0
    for number, group in enumerate(report.groups):
        group_of[os.path.normpath(group.keep.path)] = number
        for member in group.duplicates:
            group_of[os.path.normpath(member.path)] = number
            wrong += original_name(member.path) != original_name(group.keep.path)
    folder = Path(folder)
    joined = copies = 0
    for name in DEMO_PHOTOS:
        original = os.path.normpath(folder / "originals" / name)
        for family in EDITS:
            copy = os.path.normpath(folder / "copies" / f"{Path(name).stem}__{family}.jpg")
            copies += 1
            joined += copy in group_of and group_of[copy] == group_of.get(original)
    return DemoScore(copies=copies, joined=joined, wrong_pairs=wrong)
