"""Shared fixtures: real photos from scikit-image's bundled data, and bad files of every kind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# open_clip must fail fast instead of retrying the hub for a minute when offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Distinct real photographs bundled with scikit-image (no download needed).
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "page.png",
)


def skimage_photo(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of distinct real photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copyfile(skimage_photo(name), folder / name)
    return folder


def write_bad_files(folder: Path) -> dict[str, str]:
    """One file of each bad kind; returns file name -> a word its reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    good = skimage_photo("rocket.jpg").read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    png = bytearray(skimage_photo("coins.png").read_bytes())
    data_at = png.index(b"IDAT") + 4
    png[data_at : data_at + 512] = b"\xff" * 512  # a valid header, wrecked compressed pixels
    (folder / "corrupt.png").write_bytes(bytes(png))
    (folder / "notes.png").write_text("not an image at all\n")
    from PIL import Image

    Image.new("L", (5000, 4000)).save(folder / "bomb.png")  # 20 MP; tests set a lower limit
    return {
        "empty.jpg": "empty",
        "truncated.jpg": "truncated",
        "corrupt.png": "corrupt",
        "notes.png": "not an image",
        "bomb.png": "decompression bomb",
    }
