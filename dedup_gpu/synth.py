"""Edited copies of real images, for the demo, the tests and the benchmarks.

Each edit family mimics what happens to images in the wild: crops, colour edits, greyscale, JPEG
and WebP re-saves, downscales, mirroring, rotations, captions and banners, frames, blur, noise,
and for document pages a print-and-scan round trip. Seeded: the same seed gives the same bytes.

Two generations live here. `EDITS` and `write_edited_copies` are the original seven families that
the demo and the end-to-end tests use; they are kept bit-for-bit as they
were so their results stay comparable. `FAMILIES` and `write_copies` are the labelled-benchmark
generator: more families with the harder stated parameters, each copy returned with its label.
Families added later (quarter turns, photos of prints, screenshots, stretches, tight crops,
memes; phone photos and faxes of documents) are registered after the earlier ones, which keep
their bytes, and the combos still draw only from the earlier singles.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFile, ImageFilter, ImageFont, ImageOps

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
    return _crop_at_random(image, rng, crop_w, crop_h)


def _crop_at_random(
    image: Image.Image, rng: random.Random, crop_w: int, crop_h: int
) -> Image.Image:
    left = rng.randint(0, image.width - crop_w)
    top = rng.randint(0, image.height - crop_h)
    return image.crop((left, top, left + crop_w, top + crop_h))


def colour(image: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast and saturation each changed by up to +-35%."""
    return _brightness_contrast_saturation(image, rng, 0.65, 1.35)


def _brightness_contrast_saturation(
    image: Image.Image, rng: random.Random, low: float, high: float
) -> Image.Image:
    """Each of the three changed by a factor drawn from [low, high], in that order."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(low, high))
    return image


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


# --- The labelled-benchmark generator -------------------------------------------------------------
#
# The families below carry the stated parameters of the benchmark. They are separate functions from
# the seven above (rather than new defaults for them) because changing those would silently change
# the demo's copies and every quality number measured on them.

JPEG_QUALITY = 90  # how a copy is saved unless its family re-saves it itself
MIN_DOWNSCALED_SIDE = 48  # below this a copy stops being a picture anyone would keep

BANNER_TEXTS = (
    "BREAKING NEWS",
    "Limited offer - shop now",
    "LIVE: press conference",
    "Follow us for more",
    "Only 3 days left!",
    "Weather update",
)
BANNER_COLOURS = (  # (strip, text)
    ((200, 16, 30), (255, 255, 255)),
    ((12, 35, 90), (255, 255, 255)),
    ((0, 0, 0), (255, 214, 0)),
    ((255, 214, 0), (0, 0, 0)),
    ((255, 255, 255), (20, 20, 20)),
)
FRAME_COLOURS = (
    (255, 255, 255),
    (0, 0, 0),
    (128, 128, 128),
    (190, 30, 45),
    (30, 60, 120),
    (230, 220, 200),
)
LETTERBOX_ASPECTS = {"16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0, "9:16": 9 / 16}

# An edit may ask for its copy to be saved differently from its family's default: a re-save hands
# over the exact bytes it made (saving the decoded pixels again would compress them twice), and a
# binarised rescan is saved losslessly. The request travels in the image's `info`.
_SAVE_AS = "dedup_gpu.synth.save_as"  # -> (extension, encoded bytes or None)


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from `parts` that is the same in every process and on every machine.

    Python's hash() of a string is salted per process, so it cannot seed anything reproducible.
    """
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def numpy_rng(rng: random.Random) -> np.random.Generator:
    """A numpy generator drawn from `rng`, so pixel noise follows the same seed as the rest."""
    return np.random.default_rng(rng.getrandbits(64))


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font, so text renders the same everywhere with no downloads."""
    return ImageFont.load_default(size=max(6, int(size)))


def _resaved(image: Image.Image, image_format: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, image_format, quality=quality)
    data = buffer.getvalue()
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    if decoded.mode != "RGB":  # not expected for lossy RGB input; then it is saved like any edit
        return decoded.convert("RGB")
    decoded.info[_SAVE_AS] = ({"JPEG": "jpg", "WEBP": "webp"}[image_format], data)
    return decoded


def crop_region(image: Image.Image, rng: random.Random) -> Image.Image:
    """Keep 30-90% of the area at a random position; the aspect changes by a factor 0.75-1.33."""
    width, height = image.size
    area = rng.uniform(0.3, 0.9)
    aspect_change = math.exp(rng.uniform(math.log(0.75), math.log(4 / 3)))
    # Sides as fractions of the original's; when one would exceed the picture it is clamped and the
    # other takes the whole area, so the kept area stays in range whatever the shape.
    width_share, height_share = math.sqrt(area * aspect_change), math.sqrt(area / aspect_change)
    if width_share > 1:
        width_share, height_share = 1.0, area
    elif height_share > 1:
        width_share, height_share = area, 1.0
    crop_w = min(width, max(1, round(width * width_share)))
    crop_h = min(height, max(1, round(height * height_share)))
    return _crop_at_random(image, rng, crop_w, crop_h)


def colour_and_hue(image: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast and saturation each x0.6-1.4, and the hue rotated by up to +-30 deg."""
    image = _brightness_contrast_saturation(image, rng, 0.6, 1.4)
    hsv = np.array(image.convert("HSV"))
    # Pillow's hue channel runs 0-255 for a full turn; uint8 arithmetic wraps round the circle.
    shift = round(rng.uniform(-30, 30) / 360 * 256)
    hsv[..., 0] = hsv[..., 0] + np.uint8(shift % 256)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def jpeg_resave(image: Image.Image, rng: random.Random) -> Image.Image:
    """A JPEG re-save at quality 10-40; the copy is those very bytes."""
    return _resaved(image, "JPEG", rng.randint(10, 40))


def webp_resave(image: Image.Image, rng: random.Random) -> Image.Image:
    """A lossy WebP re-save at quality 10-40; the copy is those very bytes."""
    return _resaved(image, "WEBP", rng.randint(10, 40))


def downscale(image: Image.Image, rng: random.Random) -> Image.Image:
    """Each side to 1/2-1/6 of its length, aspect kept; the shorter side never goes below 48 px."""
    factor = 1 / rng.uniform(2, 6)
    floor = min(1.0, MIN_DOWNSCALED_SIDE / min(image.size))
    factor = max(factor, floor)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def largest_inner_rectangle(width: float, height: float, degrees: float) -> tuple[float, float]:
    """Width and height of the largest axis-aligned rectangle inside a width x height rectangle
    rotated by `degrees`, both centred on the same point (the best one is always centred)."""
    angle = math.radians(abs(degrees)) % math.pi
    if angle > math.pi / 2:
        angle = math.pi - angle
    sin, cos = math.sin(angle), math.cos(angle)
    if sin < 1e-9:
        return width, height
    # Half sides (a, b) fit when a*cos + b*sin <= width/2 and a*sin + b*cos <= height/2. The best
    # a*b touches one constraint at its own optimum, or both at their intersection.
    candidates = [
        (width / (4 * cos), width / (4 * sin)),
        (height / (4 * sin), height / (4 * cos)),
    ]
    if abs(cos * cos - sin * sin) > 1e-9:
        det = cos * cos - sin * sin
        candidates.append(
            ((width / 2 * cos - height / 2 * sin) / det, (height / 2 * cos - width / 2 * sin) / det)
        )
    best = (0.0, 0.0)
    for half_w, half_h in candidates:
        fits = (
            half_w >= 0
            and half_h >= 0
            and half_w * cos + half_h * sin <= width / 2 + 1e-6
            and half_w * sin + half_h * cos <= height / 2 + 1e-6
        )
        if fits and half_w * half_h > best[0] * best[1]:
            best = (half_w, half_h)
    return 2 * best[0], 2 * best[1]


def rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    """Rotated by 2-10 degrees either way: half the time at the same size with the corners filled
    black or white, half the time cropped to the largest upright rectangle so no fill shows."""
    degrees = rng.uniform(2, 10) * rng.choice((-1, 1))
    if rng.random() < 0.5:
        fill = rng.choice(((0, 0, 0), (255, 255, 255)))
        return image.rotate(degrees, Image.Resampling.BICUBIC, expand=False, fillcolor=fill)
    rotated = image.rotate(degrees, Image.Resampling.BICUBIC, expand=True)
    inner_w, inner_h = largest_inner_rectangle(image.width, image.height, degrees)
    # One pixel less on each side: the rotated edge is resampled and blends with the fill.
    crop_w = max(1, math.floor(inner_w) - 2)
    crop_h = max(1, math.floor(inner_h) - 2)
    left = (rotated.width - crop_w) // 2
    top = (rotated.height - crop_h) // 2
    return rotated.crop((left, top, left + crop_w, top + crop_h))


def _fitted_font(
    text: str, size: int, max_width: int
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    chosen = font(size)
    text_width = chosen.getlength(text)
    if text_width > max_width > 0:
        chosen = font(int(size * max_width / text_width))
    return chosen


def banner(image: Image.Image, rng: random.Random) -> Image.Image:
    """A solid strip 10-25% of the height with a line of text, added above or below (the canvas
    grows), as news channels and ads do."""
    strip_h = max(6, round(image.height * rng.uniform(0.10, 0.25)))
    strip_colour, text_colour = rng.choice(BANNER_COLOURS)
    text = rng.choice(BANNER_TEXTS)
    on_top = rng.random() < 0.5
    canvas = Image.new("RGB", (image.width, image.height + strip_h), strip_colour)
    canvas.paste(image, (0, strip_h if on_top else 0))
    strip_top = 0 if on_top else image.height
    margin = max(1, image.width // 30)
    text_font = _fitted_font(text, round(strip_h * 0.55), image.width - 2 * margin)
    ImageDraw.Draw(canvas).text(
        (margin, strip_top + strip_h / 2), text, font=text_font, fill=text_colour, anchor="lm"
    )
    return canvas


def letterbox(image: Image.Image, rng: random.Random) -> Image.Image:
    """Padded with black or white bars to another aspect: 16:9, 4:3, 1:1 or 9:16."""
    aspect = image.width / image.height
    # Only aspects at least 5% away, so there is always a visible bar.
    targets = [
        name for name, ratio in LETTERBOX_ASPECTS.items() if abs(math.log(ratio / aspect)) > 0.05
    ]
    target = LETTERBOX_ASPECTS[rng.choice(targets)]
    bar = rng.choice(((0, 0, 0), (255, 255, 255)))
    if target > aspect:
        size = (round(image.height * target), image.height)
    else:
        size = (image.width, round(image.width / target))
    canvas = Image.new("RGB", size, bar)
    canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    return canvas


def border(image: Image.Image, rng: random.Random) -> Image.Image:
    """A solid-colour frame 3-10% of the longest side thick around the picture (canvas grows)."""
    thickness = max(1, round(max(image.size) * rng.uniform(0.03, 0.10)))
    return ImageOps.expand(image, border=thickness, fill=rng.choice(FRAME_COLOURS))


def blur(image: Image.Image, rng: random.Random) -> Image.Image:
    """Gaussian blur of radius 0.2-0.6% of the longest side (at least 1 px): 1-4 px at 640 px."""
    radius = max(1.0, rng.uniform(0.002, 0.006) * max(image.size))
    return image.filter(ImageFilter.GaussianBlur(radius))


def sharpen(image: Image.Image, rng: random.Random) -> Image.Image:
    """Unsharp mask of radius 0.1-0.3% of the longest side (at least 1 px), strength 80-250%."""
    radius = max(1.0, rng.uniform(0.001, 0.003) * max(image.size))
    mask = ImageFilter.UnsharpMask(
        radius, percent=rng.randint(80, 250), threshold=rng.randint(0, 3)
    )
    return image.filter(mask)


def _with_noise(pixels: np.ndarray, sigma: float, rng: random.Random) -> np.ndarray:
    noisy = pixels.astype(np.float32)
    noisy += numpy_rng(rng).standard_normal(pixels.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def noise(image: Image.Image, rng: random.Random) -> Image.Image:
    """Gaussian noise of sigma 5-20 (0-255 units), independent per pixel and channel."""
    return Image.fromarray(_with_noise(np.asarray(image), rng.uniform(5, 20), rng), "RGB")


def otsu_threshold(grey: np.ndarray) -> int:
    """The grey level that best splits a page into ink and paper (Otsu: the split that maximises
    the variance between the two classes); pixels above it are paper."""
    counts = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    share = counts / max(1.0, counts.sum())
    below = np.cumsum(share)
    mean_below = np.cumsum(share * np.arange(256))
    total_mean = mean_below[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * below - mean_below) ** 2 / (below * (1 - below))
    return int(np.argmax(np.nan_to_num(between)))


def paper_colour(image: Image.Image) -> tuple[int, int, int]:
    """The page's background colour: its bright end, per channel (text covers the rest)."""
    thumb = np.asarray(image.reduce(max(1, max(image.size) // 256)))
    return tuple(int(np.percentile(thumb[..., channel], 90)) for channel in range(3))


def rescan(image: Image.Image, rng: random.Random) -> Image.Image:
    """A page printed and scanned again: turned up to +-3 deg, scaled 0.9-1.1 and shifted up to 2%
    on the scanner bed (the uncovered bed shows paper-coloured), contrast x0.8-1.25, brightness
    x0.9-1.08, a slight colour cast, optics blur, sensor noise, and with probability 0.3 reduced
    to pure black and white at an Otsu threshold, as office scanners do for text (saved as PNG)."""
    width, height = image.size
    degrees = rng.uniform(-3, 3)
    scale = rng.uniform(0.9, 1.1)
    shift_x = rng.uniform(-0.02, 0.02) * width
    shift_y = rng.uniform(-0.02, 0.02) * height
    paper = paper_colour(image)
    bed = tuple(min(255, max(0, value + rng.randint(-8, 8))) for value in paper)
    # Image.transform wants the inverse map, output pixel -> input pixel: undo the shift, the
    # scale and the turn about the page centre.
    sin, cos = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))
    centre_x, centre_y = width / 2, height / 2
    a, b, d, e = cos / scale, sin / scale, -sin / scale, cos / scale
    origin_x, origin_y = centre_x + shift_x, centre_y + shift_y
    inverse = (
        a,
        b,
        centre_x - a * origin_x - b * origin_y,
        d,
        e,
        centre_y - d * origin_x - e * origin_y,
    )
    scanned = image.transform(
        image.size, Image.Transform.AFFINE, inverse, Image.Resampling.BICUBIC, fillcolor=bed
    )
    scanned = ImageEnhance.Contrast(scanned).enhance(rng.uniform(0.8, 1.25))
    scanned = ImageEnhance.Brightness(scanned).enhance(rng.uniform(0.9, 1.08))
    cast = np.array([rng.uniform(0.96, 1.04) for _ in range(3)], dtype=np.float32)
    radius = max(0.3, rng.uniform(0.0003, 0.0008) * max(width, height))
    scanned = scanned.filter(ImageFilter.GaussianBlur(radius))
    pixels = np.clip(np.asarray(scanned, dtype=np.float32) * cast, 0, 255)
    pixels = _with_noise(pixels, rng.uniform(2, 6), rng)
    if rng.random() < 0.3:
        grey = np.asarray(Image.fromarray(pixels, "RGB").convert("L"))
        ink = grey <= otsu_threshold(grey)
        binary = np.where(ink, 0, 255).astype(np.uint8)
        result = Image.fromarray(np.stack([binary] * 3, axis=-1), "RGB")
        result.info[_SAVE_AS] = ("png", None)
        return result
    return Image.fromarray(pixels, "RGB")


# --- Harder families: what real copies of plain pictures and documents go through ----------------
#
# Added after the families above were measured, as separate functions registered after them, so
# every earlier family keeps its bytes and `combo2`/`combo3` still draw only from the singles.


def turn(image: Image.Image, rng: random.Random) -> Image.Image:
    """Rotated by exactly 90, 180 or 270 degrees (counter-clockwise), as a phone's wrong EXIF
    orientation or a user's rotate button does."""
    quarter_turns = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }
    return image.transpose(quarter_turns[rng.choice((90, 180, 270))])


def stretch(image: Image.Image, rng: random.Random) -> Image.Image:
    """One axis stretched by 1.15-1.4 (either axis), as a careless resize to a fixed box does."""
    factor = rng.uniform(1.15, 1.4)
    if rng.random() < 0.5:
        size = (round(image.width * factor), image.height)
    else:
        size = (image.width, round(image.height * factor))
    return image.resize(size, Image.Resampling.LANCZOS)


def tight_crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """Keep only 30-45% of the area at a random position (aspect changed by 0.75-1.33): the
    detail someone cut out of a wallpaper or a photo, much tighter than most `crop` copies."""
    width, height = image.size
    area = rng.uniform(0.30, 0.45)
    aspect_change = math.exp(rng.uniform(math.log(0.75), math.log(4 / 3)))
    width_share = min(1.0, math.sqrt(area * aspect_change))
    height_share = min(1.0, area / width_share)
    crop_w = min(width, max(1, round(width * width_share)))
    crop_h = min(height, max(1, round(height * height_share)))
    return _crop_at_random(image, rng, crop_w, crop_h)


MEME_LINES = (  # (top, bottom)
    ("ONE DOES NOT SIMPLY", "DELETE THE ORIGINAL"),
    ("WHEN THE CODE WORKS", "ON THE FIRST TRY"),
    ("NOBODY:", "ABSOLUTELY NOBODY:"),
    ("SUCH PICTURE", "VERY COPY WOW"),
    ("IS THIS", "A DUPLICATE?"),
    ("ME AT 3 AM", "STILL SORTING PHOTOS"),
    ("TOP TEXT", "BOTTOM TEXT"),
    ("THEY SAID", "IT WAS A GRADIENT"),
)


def _outlined_line(canvas: Image.Image, text: str, size: int, *, top: bool, margin: int) -> None:
    """One meme line, white with a black outline, centred, as wide as the picture at most."""
    draw = ImageDraw.Draw(canvas)
    text_font = _fitted_font(text, size, canvas.width - 2 * margin)
    stroke = max(1, round(text_font.size / 12)) if hasattr(text_font, "size") else 1
    box = draw.textbbox((0, 0), text, font=text_font, stroke_width=stroke)
    y = margin - box[1] if top else canvas.height - margin - box[3]
    draw.text(
        (canvas.width / 2, y),
        text,
        font=text_font,
        fill="white",
        stroke_width=stroke,
        stroke_fill="black",
        anchor="ma",
    )


def meme(image: Image.Image, rng: random.Random) -> Image.Image:
    """Large meme text, white with a black outline, at the top and at the bottom: letters
    9-14% of the height, each line shrunk to fit the width when longer."""
    canvas = image.copy()
    top, bottom = rng.choice(MEME_LINES)
    size = max(8, round(image.height * rng.uniform(0.09, 0.14)))
    margin = max(1, round(min(image.size) * 0.03))
    _outlined_line(canvas, top, size, top=True, margin=margin)
    _outlined_line(canvas, bottom, size, top=False, margin=margin)
    return canvas


# Web pages and app windows for `pip`: chrome, text and thumbnails drawn around the picture.
_PAGE_WORDS = (
    "the", "of", "and", "to", "in", "photo", "news", "today", "new", "best", "city", "travel",
    "guide", "review", "share", "more", "about", "image", "gallery", "update", "week", "local",
    "report", "world", "read", "comments", "weather", "sport", "video", "post", "home", "team",
    "open", "free", "live", "top", "story", "like", "follow", "trending", "summer", "design",
    "ideas", "life", "food", "music",
)  # fmt: skip
_SITE_COLOURS = ((25, 90, 170), (200, 40, 40), (20, 20, 20), (0, 130, 110), (110, 60, 160))


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_PAGE_WORDS) for _ in range(count))


def _text_lines(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    box: tuple[float, float, float, float],
    size: float,
    colour: tuple[int, int, int],
) -> None:
    """Fill `box` with lines of random words, each line ending short of the right edge."""
    left, top, right, bottom = box
    text_font = font(size)
    y = top
    while y + size <= bottom and right - left > 2 * size:
        line = _words(rng, 12)
        limit = (right - left) * rng.uniform(0.6, 1.0)
        while line and text_font.getlength(line) > limit:
            line = line.rsplit(" ", 1)[0] if " " in line else ""
        draw.text((left, y), line, font=text_font, fill=colour)
        y += size * 1.6


def _thumbnail(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A small made-up picture (a sky-to-ground gradient with a blob): other posts' images."""
    width, height = max(1, size[0]), max(1, size[1])
    top = tuple(rng.randint(40, 230) for _ in range(3))
    bottom = tuple(rng.randint(20, 200) for _ in range(3))
    share = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    pixels = np.array(top, np.float32) * (1 - share) + np.array(bottom, np.float32) * share
    thumb = Image.fromarray(np.broadcast_to(pixels, (height, width, 3)).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(thumb)
    radius = max(1.0, min(width, height) * rng.uniform(0.15, 0.35))
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.8) * height
    draw.ellipse(
        (cx - radius, cy - radius, cx + radius, cy + radius),
        fill=tuple(rng.randint(0, 255) for _ in range(3)),
    )
    return thumb


def _browser_window(picture: Image.Image, rng: random.Random, canvas_w: int) -> Image.Image:
    """A browser showing an article: tabs, address bar, site header, maybe a sidebar, the
    picture in the main column with text around it, maybe a column of other thumbnails."""
    unit = canvas_w / 1280
    dark = rng.random() < 0.3
    chrome_bg, tab_bg = ((53, 54, 58), (35, 36, 40)) if dark else ((222, 225, 230), (255, 255, 255))
    chrome_text = (220, 220, 220) if dark else (60, 60, 60)
    page_bg, page_text = (
        ((28, 28, 30), (200, 200, 200)) if dark else ((255, 255, 255), (70, 70, 70))
    )
    tabs_h, toolbar_h, header_h = round(40 * unit), round(46 * unit), round(64 * unit)
    margin = round(32 * unit)
    sidebar_w = round(canvas_w * rng.uniform(0.14, 0.2)) if rng.random() < 0.5 else 0
    related_w = round(canvas_w * 0.16) if rng.random() < 0.5 else 0
    # The columns must leave room for the picture: drop the side columns that do not fit.
    if sidebar_w + related_w + picture.width + 4 * margin > canvas_w:
        related_w = 0
    if sidebar_w + picture.width + 3 * margin > canvas_w:
        sidebar_w = 0
    content_top = tabs_h + toolbar_h + header_h
    title_h = round(34 * unit)
    picture_top = content_top + margin + 2 * title_h
    below = round(canvas_w * rng.uniform(0.05, 0.15))
    canvas_h = max(round(canvas_w * 0.6), picture_top + picture.height + below)
    canvas = Image.new("RGB", (canvas_w, canvas_h), page_bg)
    draw = ImageDraw.Draw(canvas)

    draw.rectangle((0, 0, canvas_w, tabs_h + toolbar_h), fill=chrome_bg)
    x = 12 * unit
    for tab in range(rng.randint(2, 4)):
        tab_w = rng.uniform(160, 240) * unit
        fill = tab_bg if tab == 0 else chrome_bg
        draw.rounded_rectangle(
            (x, 6 * unit, x + tab_w, tabs_h + 4 * unit), radius=8 * unit, fill=fill
        )
        draw.text(
            (x + 14 * unit, tabs_h / 2 + 3 * unit),
            _words(rng, 3).title(),
            font=font(14 * unit),
            fill=chrome_text,
            anchor="lm",
        )
        x += tab_w + 4 * unit
    middle = tabs_h + toolbar_h / 2
    for index in range(3):  # back, forward, reload
        cx = (24 + 34 * index) * unit
        draw.ellipse(
            (cx - 9 * unit, middle - 9 * unit, cx + 9 * unit, middle + 9 * unit),
            outline=chrome_text,
            width=max(1, round(2 * unit)),
        )
    draw.rounded_rectangle(
        (120 * unit, middle - 15 * unit, canvas_w - 60 * unit, middle + 15 * unit),
        radius=15 * unit,
        fill=tab_bg,
    )
    site = rng.choice(_PAGE_WORDS) + rng.choice(_PAGE_WORDS)
    url = f"https://www.{site}.com/{rng.choice(_PAGE_WORDS)}/{rng.randint(1000, 99999)}"
    draw.text((140 * unit, middle), url, font=font(15 * unit), fill=chrome_text, anchor="lm")

    brand = rng.choice(_SITE_COLOURS)
    header_top = tabs_h + toolbar_h
    draw.rectangle((0, header_top, canvas_w, content_top), fill=brand)
    draw.text(
        (margin, header_top + header_h / 2),
        site.upper(),
        font=font(28 * unit),
        fill=(255, 255, 255),
        anchor="lm",
    )
    x = canvas_w * 0.45
    for _ in range(5):
        link = rng.choice(_PAGE_WORDS).title()
        draw.text(
            (x, header_top + header_h / 2),
            link,
            font=font(16 * unit),
            fill=(235, 235, 235),
            anchor="lm",
        )
        x += 110 * unit

    main_left = margin + (sidebar_w + margin if sidebar_w else 0)
    main_right = canvas_w - margin - (related_w + margin if related_w else 0)
    if sidebar_w:
        _text_lines(
            draw,
            rng,
            (margin, content_top + margin, margin + sidebar_w, canvas_h - margin),
            15 * unit,
            brand if not dark else page_text,
        )
    title_font = font(26 * unit)
    draw.text(
        (main_left, content_top + margin),
        _words(rng, 7).capitalize(),
        font=title_font,
        fill=(20, 20, 20) if not dark else (240, 240, 240),
    )
    draw.text(
        (main_left, content_top + margin + title_h * 1.1),
        f"{rng.randint(1, 28)} {rng.choice(('May', 'June', 'July'))} - {_words(rng, 2)}",
        font=font(15 * unit),
        fill=(130, 130, 130),
    )
    picture_left = main_left + max(0, (main_right - main_left - picture.width) // 2) * (
        rng.random() < 0.5
    )
    canvas.paste(picture, (round(picture_left), picture_top))
    beside = picture_left + picture.width + margin
    if main_right - beside > 120 * unit:
        _text_lines(
            draw,
            rng,
            (beside, picture_top, main_right, picture_top + picture.height),
            16 * unit,
            page_text,
        )
    _text_lines(
        draw,
        rng,
        (main_left, picture_top + picture.height + 14 * unit, main_right, canvas_h - margin),
        16 * unit,
        page_text,
    )
    if related_w:
        y = content_top + margin
        thumb_h = round(related_w * 0.62)
        while y + thumb_h + 40 * unit < canvas_h - margin:
            canvas.paste(_thumbnail(rng, (related_w, thumb_h)), (canvas_w - margin - related_w, y))
            _text_lines(
                draw,
                rng,
                (
                    canvas_w - margin - related_w,
                    y + thumb_h + 6 * unit,
                    canvas_w - margin,
                    y + thumb_h + 40 * unit,
                ),
                13 * unit,
                page_text,
            )
            y += thumb_h + round(56 * unit)
    return canvas


def _viewer_window(picture: Image.Image, rng: random.Random, canvas_w: int) -> Image.Image:
    """A photo app's window: dark frame, title bar with window buttons and the file name, a
    toolbar, the picture centred, a filmstrip of other thumbnails, maybe an info panel."""
    unit = canvas_w / 1280
    frame, bar, text = (32, 33, 36), (48, 49, 53), (215, 215, 215)
    title_h, toolbar_h, strip_h = round(36 * unit), round(44 * unit), round(110 * unit)
    margin = round(28 * unit)
    panel_w = round(canvas_w * 0.2) if rng.random() < 0.5 else 0
    if panel_w + picture.width + 3 * margin > canvas_w:
        panel_w = 0
    content_top = title_h + toolbar_h
    canvas_h = max(round(canvas_w * 0.6), content_top + 2 * margin + picture.height + strip_h)
    canvas = Image.new("RGB", (canvas_w, canvas_h), frame)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, canvas_w, title_h), fill=bar)
    for index, colour in enumerate(((237, 106, 94), (245, 191, 79), (98, 197, 84))):
        cx, cy, r = (20 + 22 * index) * unit, title_h / 2, 7 * unit
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    name = f"IMG_{rng.randint(1000, 9999)}.{rng.choice(('jpg', 'png', 'heic'))}"
    app_name = rng.choice(("Photos", "Image Viewer", "Preview", "Gallery"))
    draw.text(
        (canvas_w / 2, title_h / 2),
        f"{name} - {app_name}",
        font=font(15 * unit),
        fill=text,
        anchor="mm",
    )
    for index in range(rng.randint(4, 7)):
        x = (20 + 44 * index) * unit
        draw.rounded_rectangle(
            (x, title_h + 8 * unit, x + 28 * unit, title_h + 36 * unit),
            radius=6 * unit,
            outline=text,
            width=max(1, round(2 * unit)),
        )
    view_right = canvas_w - (panel_w + margin if panel_w else 0)
    picture_left = (view_right - picture.width) // 2
    picture_top = (
        content_top
        + margin
        + max(0, (canvas_h - content_top - 2 * margin - strip_h - picture.height) // 2)
    )
    canvas.paste(picture, (max(margin, picture_left), picture_top))
    strip_top = canvas_h - strip_h
    draw.rectangle((0, strip_top, view_right, canvas_h), fill=bar)
    thumb_h = round(strip_h * 0.7)
    thumb_w = round(thumb_h * 1.4)
    x = margin
    current = rng.randint(0, 4)
    for index in range(max(1, int((view_right - margin) // (thumb_w + 10 * unit)))):
        y = strip_top + (strip_h - thumb_h) // 2
        if index == current:
            draw.rectangle(
                (x - 3 * unit, y - 3 * unit, x + thumb_w + 3 * unit, y + thumb_h + 3 * unit),
                fill=(60, 130, 230),
            )
        canvas.paste(_thumbnail(rng, (thumb_w, thumb_h)), (round(x), y))
        x += thumb_w + 10 * unit
    if panel_w:
        draw.rectangle((canvas_w - panel_w, content_top, canvas_w, canvas_h), fill=bar)
        _text_lines(
            draw,
            rng,
            (canvas_w - panel_w + margin, content_top + margin, canvas_w - margin, canvas_h),
            15 * unit,
            text,
        )
    return canvas


def picture_in_picture(image: Image.Image, rng: random.Random) -> Image.Image:
    """The picture inside a screenshot: a browser page (tabs, address bar, site header, text,
    maybe a sidebar and other thumbnails) or a photo app (title bar, toolbar, filmstrip), the
    picture scaled to 35-70% of the screenshot's width (screenshots at most 1920 px wide)."""
    share = rng.uniform(0.35, 0.70)
    canvas_w = round(min(1920.0, max(240.0, image.width / share * rng.uniform(0.6, 1.0))))
    shown_w = max(1, round(canvas_w * share))
    shown_h = max(1, round(image.height * shown_w / image.width))
    shown = image.resize((shown_w, shown_h), Image.Resampling.LANCZOS)
    if rng.random() < 0.6:
        return _browser_window(shown, rng, canvas_w)
    return _viewer_window(shown, rng, canvas_w)


# Photos of a flat sheet (a print for `perspective`, a page for `photographed`).

SURFACES = ("wood", "table", "dark", "fabric")


def _value_noise(
    rng: np.random.Generator, size: tuple[int, int], cell: tuple[float, float]
) -> np.ndarray:
    """Smooth noise in about [-1, 1]: random values every `cell` pixels, bicubic in between."""
    width, height = size
    grid_w = max(2, math.ceil(width / cell[0]) + 2)
    grid_h = max(2, math.ceil(height / cell[1]) + 2)
    grid = rng.uniform(-1, 1, (grid_h, grid_w)).astype(np.float32)
    return np.asarray(
        Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )


def surface(kind: str, size: tuple[int, int], rng: random.Random) -> np.ndarray:
    """What a sheet lies on, as float RGB: a wooden table, a plain table top, a dark desk or a
    cloth, each with its own grain so the background is not a flat colour."""
    width, height = size
    noise_rng = numpy_rng(rng)
    scale = max(width, height)
    if kind == "wood":
        base = np.array(rng.choice(((150, 100, 60), (120, 80, 50), (180, 140, 95))), np.float32)
        along = rng.random() < 0.5
        grain = _value_noise(
            noise_rng, size, (scale / 3, scale / 60) if along else (scale / 60, scale / 3)
        )
        rings = np.sin(grain * 9 + _value_noise(noise_rng, size, (scale / 8, scale / 8)) * 3)
        field = 0.12 * rings + 0.08 * _value_noise(noise_rng, size, (scale / 5, scale / 5))
    elif kind == "table":
        base = np.array(rng.choice(((200, 196, 188), (170, 175, 180), (215, 205, 185))), np.float32)
        field = 0.05 * _value_noise(noise_rng, size, (scale / 4, scale / 4))
    elif kind == "dark":
        base = np.array(rng.choice(((40, 40, 44), (25, 30, 38), (55, 45, 40))), np.float32)
        field = 0.15 * _value_noise(noise_rng, size, (scale / 6, scale / 6))
    elif kind == "fabric":
        base = np.array(rng.choice(((70, 90, 130), (120, 50, 50), (90, 110, 80))), np.float32)
        weave = (
            np.sin(np.arange(width, dtype=np.float32) * 2.1)[None, :]
            * np.sin(np.arange(height, dtype=np.float32) * 2.1)[:, None]
        )
        field = 0.06 * weave + 0.1 * _value_noise(noise_rng, size, (scale / 5, scale / 5))
    else:
        raise ValueError(f"unknown surface {kind!r}; known: {', '.join(SURFACES)}")
    return base * (1 + field)[..., None]


def _perspective_coefficients(
    output_corners: Sequence[tuple[float, float]], input_corners: Sequence[tuple[float, float]]
) -> tuple[float, ...]:
    """The 8 coefficients of Pillow's PERSPECTIVE transform, which maps each output pixel back to
    the input pixel it shows, from four corner correspondences."""
    rows, values = [], []
    for (x, y), (u, v) in zip(output_corners, input_corners, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values += [u, v]
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), np.array(values)))


def _sheet_corners(
    width: int, height: int, rng: random.Random, max_shift: float, max_degrees: float
) -> list[tuple[float, float]]:
    """Where the sheet's corners land in a photo taken at an angle, in the sheet's own pixels
    (before the frame is placed): one side foreshortened (the camera tilted towards it), every
    corner jittered, the whole turned a little. No corner moves by more than `max_shift` of the
    side along either axis, before the turn."""
    corners = [[0.0, 0.0], [float(width), 0.0], [float(width), float(height)], [0.0, float(height)]]
    near_side = rng.randrange(4)  # 0 top, 1 right, 2 bottom, 3 left: the side farther away
    keystone = rng.uniform(0.6, 0.9) * max_shift
    ends = ((0, 1), (1, 2), (2, 3), (3, 0))[near_side]
    axis = 0 if near_side in (0, 2) else 1  # the far side shrinks along itself
    side = width if axis == 0 else height
    first, second = ends
    direction = 1 if corners[first][axis] < corners[second][axis] else -1
    corners[first][axis] += direction * keystone * side
    corners[second][axis] -= direction * keystone * side
    jitter = max_shift - keystone
    for corner in corners:
        corner[0] += rng.uniform(-jitter, jitter) * width
        corner[1] += rng.uniform(-jitter, jitter) * height
    degrees = rng.uniform(-max_degrees, max_degrees)
    sin, cos = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))
    cx, cy = width / 2, height / 2
    return [
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in corners
    ]


def _photo_of_sheet(
    sheet: Image.Image,
    rng: random.Random,
    *,
    max_shift: float,
    max_degrees: float,
    hand_shadow: float,
) -> Image.Image:
    """`sheet` lying on a surface, photographed at an angle with a phone: perspective, a soft
    drop shadow, light falling off across the frame (and with probability `hand_shadow` the
    shadow of the phone or a hand over part of it), a colour cast, lens blur, sensor noise and
    the phone's JPEG (quality 70-90; the copy is those bytes)."""
    width, height = sheet.size
    corners = _sheet_corners(width, height, rng, max_shift, max_degrees)
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    quad_w, quad_h = max(xs) - min(xs), max(ys) - min(ys)
    # Background on every side: 4-12% of the sheet's size, independently per side.
    pads = [rng.uniform(0.04, 0.12) * (quad_w if i % 2 == 0 else quad_h) for i in range(4)]
    frame_w, frame_h = quad_w + pads[0] + pads[2], quad_h + pads[1] + pads[3]
    # The photo is about as large as the sheet was (phones shoot big; copies get shrunk).
    scale = max(width, height) * rng.uniform(0.75, 1.0) / max(frame_w, frame_h)
    scale = min(scale, 2400 / max(frame_w, frame_h))
    out_w, out_h = max(8, round(frame_w * scale)), max(8, round(frame_h * scale))
    placed = [
        ((x - min(xs) + pads[0]) * scale, (y - min(ys) + pads[1]) * scale) for x, y in corners
    ]
    originals = [
        (0.0, 0.0),
        (float(width), 0.0),
        (float(width), float(height)),
        (0.0, float(height)),
    ]
    coefficients = _perspective_coefficients(placed, originals)
    rgba = sheet.convert("RGBA")
    warped = rgba.transform(
        (out_w, out_h),
        Image.Transform.PERSPECTIVE,
        coefficients,
        Image.Resampling.BICUBIC,
        fillcolor=(0, 0, 0, 0),
    )
    alpha = np.asarray(warped.getchannel("A"), dtype=np.float32) / 255
    background = surface(rng.choice(SURFACES), (out_w, out_h), rng)
    # The sheet's drop shadow: its outline, offset and blurred, darkens the surface around it.
    offset = (round(rng.uniform(-0.01, 0.02) * out_w), round(rng.uniform(0.0, 0.02) * out_h))
    shadow = Image.fromarray((alpha * 255).astype(np.uint8), "L").transform(
        (out_w, out_h), Image.Transform.AFFINE, (1, 0, -offset[0], 0, 1, -offset[1])
    )
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1.0, 0.012 * max(out_w, out_h))))
    background *= (1 - 0.45 * np.asarray(shadow, dtype=np.float32) / 255)[..., None]
    pixels = np.asarray(warped.convert("RGB"), dtype=np.float32)
    pixels = pixels * alpha[..., None] + background * (1 - alpha[..., None])
    # Light: brighter towards the window, darker away from it.
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xx / out_w - 0.5) * math.cos(angle) + (yy / out_h - 0.5) * math.sin(angle)
    light = 1 + rng.uniform(0.2, 0.5) * ramp
    if rng.random() < hand_shadow:  # a soft-edged shadow over one part of the frame
        shade_angle = rng.uniform(0, 2 * math.pi)
        reach = (xx / out_w - 0.5) * math.cos(shade_angle) + (yy / out_h - 0.5) * math.sin(
            shade_angle
        )
        edge = rng.uniform(0.0, 0.3)
        softness = rng.uniform(0.03, 0.12)
        covered = 1 / (1 + np.exp(-(reach - edge) / softness))
        light *= 1 - rng.uniform(0.25, 0.45) * covered
    cast = np.array([rng.uniform(0.95, 1.05), 1.0, rng.uniform(0.88, 1.0)], np.float32)
    pixels = np.clip(pixels * light[..., None] * cast, 0, 255)
    photo = Image.fromarray(pixels.astype(np.uint8), "RGB")
    radius = max(0.5, rng.uniform(0.0005, 0.0012) * max(out_w, out_h))
    photo = photo.filter(ImageFilter.GaussianBlur(radius))
    noisy = Image.fromarray(_with_noise(np.asarray(photo), rng.uniform(2, 5), rng), "RGB")
    return _resaved(noisy, "JPEG", rng.randint(70, 90))


def photo_of_print(image: Image.Image, rng: random.Random) -> Image.Image:
    """The picture printed with a white margin (3-7% of its longest side), lying on a table or
    a dark desk, photographed at an angle: corners moved by up to 8-15% of the side, turned up
    to 4 degrees, lighting falling off across the frame, blur, noise, JPEG 70-90."""
    margin = max(1, round(max(image.size) * rng.uniform(0.03, 0.07)))
    paper = tuple(rng.randint(240, 255) for _ in range(3))
    printed = ImageOps.expand(image, border=margin, fill=paper)
    return _photo_of_sheet(
        printed, rng, max_shift=rng.uniform(0.08, 0.15), max_degrees=4.0, hand_shadow=0.25
    )


def photographed(image: Image.Image, rng: random.Random) -> Image.Image:
    """A document photographed with a phone: corners moved by up to 4-10% of the side, turned
    up to 3 degrees, on a table, desk or cloth, light falling off across the frame and with
    probability 0.6 a hand's or phone's shadow over part of it, blur, noise, JPEG 70-90."""
    return _photo_of_sheet(
        image, rng, max_shift=rng.uniform(0.04, 0.10), max_degrees=3.0, hand_shadow=0.6
    )


def faxed(image: Image.Image, rng: random.Random) -> Image.Image:
    """A page sent by fax: sampled at about 100 dpi for a 150 dpi page (x0.55-0.75 across,
    and in 'standard' mode half that down the page), levelled so the paper is white, then
    thresholded to black and white (half the time dithered, so tints become dot patterns), with
    speckle, with probability 0.5 a few
    streaks along the scan lines, saved as PNG at the original size (blocky) or the fax's own."""
    width, height = image.size
    across = rng.uniform(0.55, 0.75)
    down = across * (0.5 if rng.random() < 0.5 else 1.0)
    fax_size = (max(8, round(width * across)), max(8, round(height * down)))
    grey = np.asarray(image.convert("L").resize(fax_size, Image.Resampling.BOX), np.float32)
    # The machine's automatic exposure: the paper goes white, whatever its tint.
    paper = max(1.0, float(np.percentile(grey, 90)))
    grey = np.clip(grey * (255 / paper), 0, 255)
    if rng.random() < 0.5:  # photo mode: tints and pictures become dot patterns
        levelled = Image.fromarray(grey.round().astype(np.uint8), "L")
        bitmap = np.asarray(levelled.convert("1"), dtype=bool)
    else:  # text mode: one threshold, moved by the sensor's noise
        grey_pixels = _with_noise(grey, rng.uniform(4, 12), rng)
        threshold = otsu_threshold(grey_pixels) + rng.randint(-10, 25)
        bitmap = grey_pixels > threshold
    paper = bitmap.copy()
    pixel_rng = numpy_rng(rng)
    speckle = pixel_rng.random(paper.shape) < rng.uniform(0.0002, 0.0015)
    paper[speckle] = ~paper[speckle]
    if rng.random() < 0.5:  # a dirty scan head: a few rows dropped out white, or inked black
        for row in pixel_rng.choice(paper.shape[0], size=rng.randint(2, 6), replace=False):
            paper[row, :] = rng.random() < 0.5
    fax = Image.fromarray(np.where(paper, 255, 0).astype(np.uint8), "L")
    final_size = (width, height) if rng.random() < 0.5 else (fax_size[0], round(height * across))
    fax = fax.resize(final_size, Image.Resampling.NEAREST).convert("RGB")
    fax.info[_SAVE_AS] = ("png", None)
    return fax


@dataclass(frozen=True)
class Family:
    """One kind of edited copy in the labelled benchmark."""

    name: str
    description: str  # the stated parameters in plain words, shown in eval reports
    edit: Edit  # (RGB image, random.Random) -> RGB image
    documents: bool = False  # True: applied only to document-like originals (by default)
    extension: str = "jpg"  # "jpg" (quality 90 unless the family re-saves itself), "webp", "png"


# The single edits that combos draw from, in registry order.
_SINGLE_FAMILIES: tuple[Family, ...] = (
    Family(
        "crop",
        "crop keeping 30-90% of the area at a random position, aspect changed by 0.75-1.33",
        crop_region,
    ),
    Family(
        "colour",
        "brightness, contrast and saturation each x0.6-1.4, hue rotated by up to +-30 degrees",
        colour_and_hue,
    ),
    Family("greyscale", "converted to greyscale", greyscale),
    Family("jpeg", "re-saved as JPEG at quality 10-40", jpeg_resave),
    Family("webp", "re-saved as lossy WebP at quality 10-40", webp_resave, extension="webp"),
    Family(
        "downscale",
        "downscaled to 1/2-1/6 of each side, the shorter side at least 48 px",
        downscale,
    ),
    Family("mirror", "mirrored left to right", mirror),
    Family(
        "rotate",
        "rotated 2-10 degrees either way; half with black or white corners at the same size, "
        "half cropped to the largest upright rectangle inside",
        rotate,
    ),
    Family("caption", "a meme-style caption drawn over the top or bottom of the picture", caption),
    Family(
        "banner",
        "a solid strip 10-25% of the height with text added above or below (canvas grows)",
        banner,
    ),
    Family(
        "letterbox",
        "padded with black or white bars to another aspect (16:9, 4:3, 1:1 or 9:16)",
        letterbox,
    ),
    Family(
        "border",
        "a solid-colour frame 3-10% of the longest side thick around the picture",
        border,
    ),
    Family(
        "blur",
        "Gaussian blur of radius 0.2-0.6% of the longest side (at least 1 px)",
        blur,
    ),
    Family(
        "sharpen",
        "unsharp mask of radius 0.1-0.3% of the longest side, strength 80-250%",
        sharpen,
    ),
    Family("noise", "Gaussian noise of sigma 5-20 (0-255 units) per pixel and channel", noise),
)


def _combo(count: int) -> Edit:
    names = tuple(family.name for family in _SINGLE_FAMILIES)

    def edit(image: Image.Image, rng: random.Random) -> Image.Image:
        for name in rng.sample(names, count):  # distinct: never mirror twice
            image = FAMILIES[name].edit(image, rng)
        return image

    edit.__name__ = f"combo{count}"
    edit.__doc__ = f"{count} distinct single-edit families, chosen at random, in sequence."
    return edit


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        *_SINGLE_FAMILIES,
        Family(
            "combo2",
            "2 distinct single-edit families (crop to noise above) chosen at random, "
            "applied in sequence",
            _combo(2),
        ),
        Family(
            "combo3",
            "3 distinct single-edit families (crop to noise above) chosen at random, "
            "applied in sequence",
            _combo(3),
        ),
        Family("turn", "rotated by exactly 90, 180 or 270 degrees, drawn at random", turn),
        Family(
            "perspective",
            "a photo of a print: the picture with a white margin (3-7% of its longest side) on a "
            "table, desk or cloth, photographed at an angle (corners moved by up to 8-15% of the "
            "side, turned up to 4 degrees), light falling off across the frame, soft drop shadow, "
            "blur, noise, JPEG 70-90; background shows all round",
            photo_of_print,
        ),
        Family(
            "pip",
            "picture in picture: shown in a screenshot of a browser page (tabs, address bar, "
            "text, maybe a sidebar and other thumbnails) or a photo app (title bar, filmstrip), "
            "scaled to 35-70% of the screenshot's width",
            picture_in_picture,
        ),
        Family("stretch", "one axis (either) stretched by 1.15-1.4, the other kept", stretch),
        Family(
            "tight_crop",
            "crop keeping 30-45% of the area at a random position, aspect changed by 0.75-1.33",
            tight_crop,
        ),
        Family(
            "meme",
            "meme text, white with a black outline, at the top and the bottom (letters 9-14% of "
            "the height, each line at most the picture's width)",
            meme,
        ),
        Family(
            "rescan",
            "a document page printed and scanned again: turned up to +-3 degrees, scaled "
            "0.9-1.1, shifted up to 2%, paper-coloured bed in the uncovered corners, contrast "
            "and brightness changed, a slight colour cast, blur and sensor noise; 30% binarised "
            "to black and white (saved as PNG)",
            rescan,
            documents=True,
        ),
        Family(
            "photographed",
            "a document photographed with a phone: corners moved by up to 4-10% of the side, "
            "turned up to 3 degrees, on a table, desk or cloth, light falling off across the "
            "frame, 60% with a hand's or phone's shadow over part of it, blur, noise, JPEG 70-90",
            photographed,
            documents=True,
        ),
        Family(
            "faxed",
            "a document sent by fax: sampled at about 100 dpi (x0.55-0.75 across, half that down "
            "the page in standard mode), black and white (half dithered), speckle, some streaks, "
            "PNG at the original size or the fax's own",
            faxed,
            documents=True,
            extension="png",
        ),
    )
}

# Families that still make sense for a text page: it is re-compressed, shrunk and cut like any
# image, but mirroring or captioning a form is not something that happens to one.
_DOCUMENT_EXTRAS = ("jpeg", "downscale", "crop")


def photo_families() -> list[str]:
    """The families `write_copies` applies to a photo: every family not made for documents."""
    return [name for name, family in FAMILIES.items() if not family.documents]


def document_families() -> list[str]:
    """The families `write_copies` applies to a document-like original: the document families
    (rescan) first, then the photo families that also happen to documents."""
    return [name for name, family in FAMILIES.items() if family.documents] + list(_DOCUMENT_EXTRAS)


@dataclass(frozen=True)
class LabelledImage:
    """One image of a labelled benchmark and the truth about it."""

    path: Path
    source: str  # images with equal source are copies of one another (an original and its copies)
    family: str  # "original" for an original, else the family name ("crop", "rescan", "combo2")
    kind: str  # "photo", "document", or "lookalike:<set name>" (see lookalikes.py)


def is_document_like(image: Image.Image) -> bool:
    """True for a paper page (see dedup_gpu.verify.looks_like_document, which decides the same
    way during a scan), judged on a copy at most 1024 px on a side."""
    from .verify import looks_like_document

    rgb = image.convert("RGB")
    rgb.thumbnail((1024, 1024), Image.Resampling.BOX)
    return looks_like_document(np.asarray(rgb))


def save_copy(image: Image.Image, target_stem: Path, family: Family) -> Path:
    """Save an edited copy as `<target_stem>.<ext>` the way its family says; returns the path.

    The extension is the family's, except that a binarised rescan is saved as PNG. A re-save in
    the family's own format is written as the very bytes it made, so a `jpeg` copy has exactly
    the quality it drew; a combo ending in a WebP re-save is still a JPEG, as its name says.
    """
    extension, encoded = family.extension, None
    save_as = image.info.get(_SAVE_AS)
    if save_as is not None:
        wanted_extension, wanted_bytes = save_as
        if wanted_bytes is None:
            extension = wanted_extension
        elif wanted_extension == extension and isinstance(image, ImageFile.ImageFile):
            # Still the decoded re-save itself: any later edit makes a plain Image (which keeps a
            # copy of `info`, so the type is what tells the bytes are still these pixels).
            encoded = wanted_bytes
    target = target_stem.with_name(f"{target_stem.name}.{extension}")
    if encoded is not None:
        target.write_bytes(encoded)
    elif extension == "png":
        image.save(target, "PNG")
    elif extension == "webp":
        image.save(target, "WEBP", quality=JPEG_QUALITY)
    else:
        image.save(target, "JPEG", quality=JPEG_QUALITY)
    return target


def write_copies(
    original: str | Path,
    out_dir: str | Path,
    *,
    seed: int,
    families: Sequence[str] | None = None,
    source: str | None = None,
    kind: str | None = None,
) -> list[LabelledImage]:
    """Write one edited copy of `original` per family into `out_dir` and return their labels.

    Copies are named `<stem>__<family>.<ext>`. `families` defaults to `photo_families()`, or to
    `document_families()` when the original is document-like; families named explicitly are applied
    whatever the original is. `source` defaults to the original's stem and `kind` to "document"
    or "photo". The original is only read, and only the copies are returned.
    """
    original, out_dir = Path(original), Path(out_dir)
    image = load_rgb(original)
    document = is_document_like(image) if families is None or kind is None else False
    chosen = (
        list(families)
        if families is not None
        else (document_families() if document else photo_families())
    )
    unknown = [name for name in chosen if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown edit families {unknown}; known: {', '.join(FAMILIES)}")
    source = source if source is not None else original.stem
    kind = kind if kind is not None else ("document" if document else "photo")
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = []
    for name in chosen:
        family = FAMILIES[name]
        rng = random.Random(f"{seed}:{original.stem}:{name}")
        target = save_copy(family.edit(image, rng), out_dir / f"{original.stem}__{name}", family)
        labels.append(LabelledImage(path=target, source=source, family=name, kind=kind))
    return labels
