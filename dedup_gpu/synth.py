"""Edited copies of real photos, for the demo, the tests and the benchmarks.

Each edit family mimics what happens to images in the wild: crops, colour edits, greyscale, JPEG
re-saves, downscales, mirroring and text captions. Seeded: the same seed gives the same copies.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random], Image.Image]

CAPTIONS = (
    "when the build finally passes",
    "SALE 50% OFF",
    "me, on a Monday",
    "do not repost",
    "#tbt summer",
    "caption this",
)


def crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """Keep 50-90% of the area at a random position."""
    width, height = image.size
    area = rng.uniform(0.5, 0.9)
    aspect = rng.uniform(0.8, 1.25)
    crop_w = min(width, max(16, round((area * width * height * aspect) ** 0.5)))
    crop_h = min(height, max(16, round(area * width * height / crop_w)))
    left = rng.randint(0, width - crop_w)
    top = rng.randint(0, height - crop_h)
    return image.crop((left, top, left + crop_w, top + crop_h))


def colour(image: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast and saturation each changed by up to +-35%."""
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.65, 1.35))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.65, 1.35))
    return ImageEnhance.Color(image).enhance(rng.uniform(0.65, 1.35))


def greyscale(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def jpeg(image: Image.Image, rng: random.Random) -> Image.Image:
    """A JPEG re-save at quality 15-40 (the saved copy uses this quality too)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(15, 40))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def resize(image: Image.Image, rng: random.Random) -> Image.Image:
    """A downscale to 1/2-1/4 of each side (never below 64 px)."""
    factor = rng.uniform(0.25, 0.5)
    size = (max(64, round(image.width * factor)), max(64, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def mirror(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(image)


def caption(image: Image.Image, rng: random.Random) -> Image.Image:
    """A meme-style caption drawn over the top or bottom of the picture."""
    image = image.copy()
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, image.height // 12))
    text = rng.choice(CAPTIONS)
    box = draw.textbbox((0, 0), text, font=font)
    text_w, text_h = box[2] - box[0], box[3] - box[1]
    x = max(0, (image.width - text_w) // 2)
    y = image.height // 20 if rng.random() < 0.5 else image.height - text_h - image.height // 10
    draw.text(
        (x, y),
        text,
        font=font,
        fill="white",
        stroke_width=max(1, text_h // 12),
        stroke_fill="black",
    )
    return image


EDITS: dict[str, Edit] = {
    "crop": crop,
    "colour": colour,
    "greyscale": greyscale,
    "jpeg": jpeg,
    "resize": resize,
    "mirror": mirror,
    "caption": caption,
}


def load_rgb(path: str | Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def write_edited_copies(
    original: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    families: tuple[str, ...] = tuple(EDITS),
) -> dict[str, Path]:
    """Save one edited copy of `original` per family into `out_dir`; returns family -> path.

    Copies are JPEGs (quality 90, or the family's own quality for `jpeg`) named
    `<original stem>__<family>.jpg`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image = load_rgb(original)
    stem = Path(original).stem
    written = {}
    for index, family in enumerate(families):
        rng = random.Random(f"{seed}:{stem}:{family}:{index}")
        edited = EDITS[family](image, rng)
        target = out_dir / f"{stem}__{family}.jpg"
        quality = rng.randint(15, 40) if family == "jpeg" else 90
        edited.save(target, "JPEG", quality=quality)
        written[family] = target
    return written
