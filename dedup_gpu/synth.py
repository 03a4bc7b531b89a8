"""Edited copies of real images, for the demo, the tests and the benchmarks.

Each edit family mimics what happens to images in the wild: crops, colour edits, greyscale, JPEG
and WebP re-saves, downscales, mirroring, rotations, captions and banners, frames, blur, noise,
and for document pages a print-and-scan round trip. Seeded: the same seed gives the same bytes.

Two generations live here. `EDITS` and `write_edited_copies` are the original seven families that
the demo and the end-to-end tests use; they are kept bit-for-bit as they
were so their results stay comparable. `FAMILIES` and `write_copies` are the labelled-benchmark
generator: more families with the harder stated parameters, each copy returned with its label.
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
        Family(
            "rescan",
            "a document page printed and scanned again: turned up to +-3 degrees, scaled "
            "0.9-1.1, shifted up to 2%, paper-coloured bed in the uncovered corners, contrast "
            "and brightness changed, a slight colour cast, blur and sensor noise; 30% binarised "
            "to black and white (saved as PNG)",
            rescan,
            documents=True,
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
