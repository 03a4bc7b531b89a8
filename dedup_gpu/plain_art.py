"""Plain pictures for the labelled benchmark: the images users most often see merged by mistake.

Smooth gradient wallpapers, flat abstract art, minimal designs (one small mark on a flat ground),
objects on white, mostly-white pages with a line or two of text and planets on black have little
detail: embeddings of two different ones lie close together, and there are few keypoints to tell
them apart. Two roles:

- *originals*: distinct plain pictures that the benchmark copies with every photo family, so it
  measures whether their copies are still found;
- *distractors*: one per original, copied by nothing, that resembles it (another gradient with
  other stops or turned, the same page with another time on it, another planet elsewhere, the
  same design with another mark) and is its own source, so the benchmark measures whether
  different plain pictures are kept apart.

A distractor differs from its original by more than any copy family reaches: in layout or
geometry (another mark, other text, other blob positions, another planet and other stars, a
gradient direction turned by more than 30 degrees together with other stops) or in colour beyond
the `colour` family's +-30 degrees of hue and x0.6-1.4 brightness (hues turned by 80-180 degrees,
or light and dark swapped). No two pictures of one kind (other than an original and its own
distractor, which differ by design) are near-identical: each is compared with those drawn before
it on 64 x 64 thumbnails, under all eight turns and mirrorings and with either cropped from the
other for objects on white (two bottles that differ in size and place only are one picture
cropped), and drawn again when too close.

Everything is drawn with Pillow and numpy (Pillow's bundled font, no downloads) and seeded:
the same seed writes the same bytes.
"""

from __future__ import annotations

import colorsys
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synth import LabelledImage, font, stable_seed

PLAIN_KINDS: tuple[str, ...] = ("gradient", "flat", "minimal", "object", "page", "planet")
DISTRACTOR_KIND = "lookalike:plain"
JPEG_QUALITY = 95  # "high-quality JPEG", as wallpapers and product shots are published

Colour = tuple[int, int, int]
Size = tuple[int, int]


@dataclass(frozen=True)
class _Scale:
    """How big and how many: "full" for benchmarks, "tiny" for CI."""

    per_kind: int  # originals of each kind (and as many distractors)
    sizes: tuple[Size, ...]  # drawn at random, like real wallpapers, photos and screens


_SCALES = {
    "full": _Scale(10, ((1280, 800), (1024, 1024), (900, 1200), (1600, 900))),
    "tiny": _Scale(2, ((480, 300), (400, 400), (330, 440))),
}

THUMBNAIL = 64  # side of the thumbnails on which pictures are compared
_CHECK_SIDE = 160  # longest side at which a design is rendered to make its thumbnail
_NEAR_IDENTICAL = 12.0  # mean abs difference (0-255) of brightness-matched thumbnails in
# every 8 x 8 block: a small mark that differs is a different picture
_SAME_STRUCTURE = 0.92  # grey-level correlation above which two thumbnails have one layout
_SAME_HUE = 45.0  # degrees: closer hues could be one picture after a `colour` edit
_MAX_ATTEMPTS = 60
_SMALL_COLOURED = 0.01  # share of coloured pixels that still gives a picture a hue of its own
_CROP_ZOOMS = (0.8, 0.65, 0.5)  # side of a crop keeping 64%, 42% and 25% of the area


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(f"{seed}:plain:" + ":".join(str(part) for part in parts))


def _np_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed("plain", *parts))


# --- Colour helpers ----------------------------------------------------------------------------


def _hsv(hue: float, saturation: float, value: float) -> Colour:
    """A colour from hue in degrees, saturation and value in [0, 1]."""
    red, green, blue = colorsys.hsv_to_rgb((hue % 360) / 360, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _hue_turned(colour: Colour, degrees: float) -> Colour:
    hue, saturation, value = colorsys.rgb_to_hsv(*(channel / 255 for channel in colour))
    return _hsv(hue * 360 + degrees, saturation, value)


def _far_hue_turn(rng: random.Random) -> float:
    """A hue turn well beyond the `colour` family's +-30 degrees: 80-180 degrees either way."""
    return rng.choice((-1, 1)) * rng.uniform(80, 180)


def _with_dither(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A trace of noise before rounding, as wallpaper exporters add so gradients do not band."""
    noisy = pixels + rng.uniform(-0.8, 0.8, pixels.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def _grid(size: Size) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates as shares of the width and height."""
    width, height = size
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    return np.meshgrid(xs, ys)


def _interpolated(stops: tuple[Colour, ...], positions: tuple[float, ...], t: np.ndarray):
    """Colours along a gradient: each channel interpolated between its stops at `t` in [0, 1]."""
    channels = [
        np.interp(t, positions, [stop[channel] for stop in stops]).astype(np.float32)
        for channel in range(3)
    ]
    return np.stack(channels, axis=-1)


def _supersampled(size: Size, draw: Callable[[ImageDraw.ImageDraw, float], None], ground: Colour):
    """Flat shapes drawn at twice the size and shrunk, so their edges are smooth."""
    width, height = size
    canvas = Image.new("RGB", (2 * width, 2 * height), ground)
    draw(ImageDraw.Draw(canvas), 2.0)
    return canvas.resize(size, Image.Resampling.LANCZOS)


# --- Gradients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gradient:
    size: Size
    style: str  # "linear", "radial" or "blobs"
    stops: tuple[Colour, ...]  # linear and radial: 2-3 colours; blobs: the ground first
    positions: tuple[float, ...]  # where each stop sits along the gradient, 0 to 1
    angle: float = 0.0  # linear: direction of travel from the first stop, degrees
    centre: tuple[float, float] = (0.5, 0.5)  # radial: in shares of the width and height
    reach: float = 0.7  # radial: share of the diagonal at which the last stop is reached
    blobs: tuple[tuple[float, float, float, Colour], ...] = ()  # x, y, radius share, colour


def _gradient_stops(rng: random.Random, count: int, base_hue: float) -> tuple[Colour, ...]:
    """Stops that make a visible gradient: hues a little apart, values clearly apart."""
    hues = [base_hue]
    for _ in range(count - 1):
        hues.append(hues[-1] + rng.choice((-1, 1)) * rng.uniform(25, 110))
    values = [rng.uniform(0.25, 0.55), rng.uniform(0.75, 1.0), rng.uniform(0.4, 1.0)][:count]
    rng.shuffle(values)
    return tuple(
        _hsv(hue, rng.uniform(0.35, 0.9), value) for hue, value in zip(hues, values, strict=True)
    )


def _new_gradient(rng: random.Random, size: Size, index: int, base_hue: float) -> _Gradient:
    style = ("linear", "radial", "blobs", "linear")[index % 4]
    if style == "blobs":
        ground = _hsv(base_hue, rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.9))
        blobs = tuple(
            (
                rng.uniform(0.1, 0.9),
                rng.uniform(0.1, 0.9),
                rng.uniform(0.15, 0.35),
                _hsv(base_hue + rng.uniform(-90, 90), rng.uniform(0.4, 0.9), rng.uniform(0.5, 1)),
            )
            for _ in range(rng.randint(3, 5))
        )
        return _Gradient(size, style, (ground,), (0.0,), blobs=blobs)
    count = rng.choice((2, 3))
    stops = _gradient_stops(rng, count, base_hue)
    positions = (0.0, rng.uniform(0.35, 0.65), 1.0) if count == 3 else (0.0, 1.0)
    if style == "linear":
        return _Gradient(size, style, stops, positions, angle=rng.uniform(0, 360))
    centre = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
    return _Gradient(size, style, stops, positions, centre=centre, reach=rng.uniform(0.5, 0.9))


def _farthest_from_turns_and_mirrors(angle: float) -> float:
    """The direction farthest from every image of `angle` under quarter turns and mirroring
    (those are angle + 90k and 180 - angle + 90k): a mirrored or turned copy never gets close."""
    orbit = np.array([(sign * angle + 90 * k) % 360 for sign in (1, -1) for k in range(4)])
    candidates = np.arange(0, 360, 1.0)
    gaps = np.min(np.abs((candidates[:, None] - orbit[None, :] + 180) % 360 - 180), 1)
    return float(candidates[int(np.argmax(gaps))])


def _gradient_variant(design: _Gradient, rng: random.Random) -> _Gradient:
    turn = _far_hue_turn(rng)
    recoloured = tuple(_hue_turned(stop, turn) for stop in design.stops)
    if design.style == "blobs":
        if rng.random() < 0.5:  # the same palette, blobs elsewhere and of other sizes
            blobs = tuple(
                (rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.35), colour)
                for *_, colour in design.blobs
            )
            return replace(design, blobs=blobs)
        blobs = tuple((x, y, r, _hue_turned(colour, turn)) for x, y, r, colour in design.blobs)
        return replace(design, stops=recoloured, blobs=blobs)
    if design.style == "radial" and rng.random() < 0.5:  # inside out: light and dark swapped
        flipped = tuple(1 - position for position in reversed(design.positions))
        return replace(design, stops=tuple(reversed(design.stops)), positions=flipped)
    if design.style == "linear" and rng.random() < 0.5:  # turned as far as it goes, recoloured
        turned = _farthest_from_turns_and_mirrors(design.angle)
        return replace(design, stops=recoloured, angle=turned)
    return replace(design, stops=recoloured)


def _draw_gradient(design: _Gradient, size: Size, noise: np.random.Generator) -> Image.Image:
    width, height = size
    xs, ys = _grid(size)
    if design.style == "linear":
        radians = math.radians(design.angle)
        # In pixels, so the angle is the one seen on the screen whatever the aspect.
        along = (xs - 0.5) * width * math.cos(radians) + (ys - 0.5) * height * math.sin(radians)
        half = (abs(width * math.cos(radians)) + abs(height * math.sin(radians))) / 2
        pixels = _interpolated(design.stops, design.positions, (along / half + 1) / 2)
    elif design.style == "radial":
        cx, cy = design.centre
        distance = np.hypot((xs - cx) * width, (ys - cy) * height)
        t = np.clip(distance / (design.reach * math.hypot(width, height)), 0, 1)
        pixels = _interpolated(design.stops, design.positions, t)
    else:
        pixels = np.broadcast_to(np.array(design.stops[0], np.float32), (height, width, 3)).copy()
        short = min(width, height)
        for x, y, radius, colour in design.blobs:
            sigma = radius * short
            weight = np.exp(-(((xs - x) * width) ** 2 + ((ys - y) * height) ** 2) / (2 * sigma**2))
            pixels += (np.array(colour, np.float32) - pixels) * (0.9 * weight)[..., None]
    return Image.fromarray(_with_dither(pixels, noise), "RGB")


# --- Flat abstract art -------------------------------------------------------------------------


@dataclass(frozen=True)
class _FlatShape:
    kind: str  # "rect", "ellipse", "triangle", "band" or "quarter"
    box: tuple[float, float, float, float]  # centre x, centre y, half width, half height (shares)
    angle: float
    colour: Colour


@dataclass(frozen=True)
class _Flat:
    size: Size
    ground: Colour
    shapes: tuple[_FlatShape, ...]


_FLAT_SHAPES = ("rect", "ellipse", "triangle", "band", "quarter")


def _flat_shapes(rng: random.Random, palette: list[Colour], count: int) -> tuple[_FlatShape, ...]:
    shapes = []
    for _ in range(count):
        half = rng.uniform(0.15, 0.38)
        shapes.append(
            _FlatShape(
                rng.choice(_FLAT_SHAPES),
                (rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), half, half * rng.uniform(0.5, 1.6)),
                rng.uniform(0, 180),
                rng.choice(palette),
            )
        )
    return tuple(shapes)


def _new_flat(rng: random.Random, size: Size, index: int, base_hue: float) -> _Flat:
    palette = [
        _hsv(base_hue + offset, rng.uniform(0.3, 0.85), rng.uniform(0.35, 0.95))
        for offset in (0, rng.uniform(20, 60), 180 + rng.uniform(-30, 30), rng.uniform(-60, -20))
    ]
    ground = _hsv(base_hue, rng.uniform(0.05, 0.3), rng.choice((rng.uniform(0.85, 0.97), 0.15)))
    return _Flat(size, ground, _flat_shapes(rng, palette, rng.randint(3, 6)))


def _flat_variant(design: _Flat, rng: random.Random) -> _Flat:
    if rng.random() < 0.5:  # the same colours, shapes of their own
        palette = sorted({shape.colour for shape in design.shapes})
        return replace(design, shapes=_flat_shapes(rng, palette, rng.randint(3, 6)))
    turn = _far_hue_turn(rng)
    shapes = tuple(replace(s, colour=_hue_turned(s.colour, turn)) for s in design.shapes)
    return replace(design, ground=_hue_turned(design.ground, turn), shapes=shapes)


def _shape_outline(shape: _FlatShape, width: float, height: float) -> list[tuple[float, float]]:
    cx, cy, half_w, half_h = shape.box
    cx, cy, half_w, half_h = (
        cx * width,
        cy * height,
        half_w * min(width, height),
        half_h * min(width, height),
    )
    if shape.kind == "band":  # a stripe across the whole picture
        half_w = math.hypot(width, height)
        half_h *= 0.35
    if shape.kind == "ellipse":
        points = [
            (half_w * math.cos(t), half_h * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, 96, endpoint=False)
        ]
    elif shape.kind == "triangle":
        points = [(0, -half_h), (half_w, half_h), (-half_w, half_h)]
    elif shape.kind == "quarter":
        points = [(0.0, 0.0)] + [
            (2 * half_w * math.cos(t), 2 * half_w * math.sin(t))
            for t in np.linspace(0, math.pi / 2, 48)
        ]
    else:
        points = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    sin, cos = math.sin(math.radians(shape.angle)), math.cos(math.radians(shape.angle))
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]


def _draw_flat(design: _Flat, size: Size, noise: np.random.Generator) -> Image.Image:
    def draw(canvas: ImageDraw.ImageDraw, factor: float) -> None:
        for shape in design.shapes:
            outline = _shape_outline(shape, size[0] * factor, size[1] * factor)
            canvas.polygon(outline, fill=shape.colour)

    return _supersampled(size, draw, design.ground)


# --- Minimal designs ---------------------------------------------------------------------------

_MARKS = ("circle", "ring", "square", "triangle", "star", "diamond", "cross", "monogram")


@dataclass(frozen=True)
class _Minimal:
    size: Size
    ground: Colour
    mark: str
    colour: Colour
    centre: tuple[float, float]  # near the middle: a crop keeps it
    scale: float  # share of the short side
    letters: str = ""


def _new_minimal(rng: random.Random, size: Size, index: int, base_hue: float) -> _Minimal:
    light = rng.random() < 0.5
    ground = _hsv(base_hue, rng.uniform(0.0, 0.5), rng.uniform(0.85, 0.98) if light else 0.14)
    colour = _hsv(base_hue + rng.uniform(-40, 40), rng.uniform(0.5, 0.95), 0.35 if light else 0.9)
    letters = "".join(rng.choice("ABDEGHKMNPRSTVWZ") for _ in range(2))
    return _Minimal(
        size,
        ground,
        _MARKS[index % len(_MARKS)],
        colour,
        (0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)),
        rng.uniform(0.1, 0.2),
        letters,
    )


def _minimal_variant(design: _Minimal, rng: random.Random) -> _Minimal:
    if rng.random() < 0.6:  # another mark in the same place and colours
        mark = rng.choice([mark for mark in _MARKS if mark != design.mark])
        return replace(design, mark=mark)
    # light and dark swapped: far beyond a brightness edit
    return replace(design, ground=design.colour, colour=design.ground)


def _draw_minimal(design: _Minimal, size: Size, noise: np.random.Generator) -> Image.Image:
    def draw(canvas: ImageDraw.ImageDraw, factor: float) -> None:
        width, height = size[0] * factor, size[1] * factor
        r = design.scale * min(width, height) / 2
        cx, cy = design.centre[0] * width, design.centre[1] * height
        fill = design.colour
        if design.mark == "circle":
            canvas.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif design.mark == "ring":
            canvas.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=round(r / 3))
        elif design.mark == "square":
            canvas.rectangle((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r), fill)
        elif design.mark == "triangle":
            canvas.polygon([(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)], fill)
        elif design.mark == "diamond":
            canvas.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill)
        elif design.mark == "star":
            points = [
                (
                    cx + (r if k % 2 == 0 else 0.42 * r) * math.sin(k * math.pi / 5),
                    cy - (r if k % 2 == 0 else 0.42 * r) * math.cos(k * math.pi / 5),
                )
                for k in range(10)
            ]
            canvas.polygon(points, fill=fill)
        elif design.mark == "cross":
            arm = r / 3
            canvas.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=fill)
            canvas.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=fill)
        else:  # monogram: two letters in a circle
            canvas.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=round(r / 8))
            canvas.text((cx, cy), design.letters, font=font(r), fill=fill, anchor="mm")

    return _supersampled(size, draw, design.ground)


# --- Objects on white --------------------------------------------------------------------------

_OBJECTS = ("sphere", "bottle", "box", "cylinder")


@dataclass(frozen=True)
class _Object:
    size: Size
    shape: str
    colour: Colour
    centre_x: float
    scale: float  # object height as a share of the picture's height
    light_from_left: bool


def _new_object(rng: random.Random, size: Size, index: int, base_hue: float) -> _Object:
    colour = _hsv(base_hue, rng.uniform(0.4, 0.9), rng.uniform(0.45, 0.9))
    return _Object(
        size,
        _OBJECTS[index % len(_OBJECTS)],
        colour,
        0.5 + rng.uniform(-0.08, 0.08),
        rng.uniform(0.35, 0.55),
        rng.random() < 0.5,
    )


def _object_variant(design: _Object, rng: random.Random) -> _Object:
    if rng.random() < 0.6:  # another object, same colour, place and light
        return replace(design, shape=rng.choice([s for s in _OBJECTS if s != design.shape]))
    return replace(design, colour=_hue_turned(design.colour, _far_hue_turn(rng)))


def _object_profile(shape: str, t: np.ndarray) -> np.ndarray:
    """Half width of a turned object (bottle, cylinder) at height t (0 top, 1 bottom), in units
    of its height."""
    if shape == "cylinder":
        return np.full_like(t, 0.3)
    neck, shoulder = 0.09, 0.22  # a bottle: a narrow neck, rounded shoulders, a wide body
    rounding = np.sin(np.clip((t - 0.28) / 0.14, 0, 1) * math.pi / 2)
    return neck + (shoulder - neck) * rounding


def _lit(colour: np.ndarray, normal: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Diffuse shading plus a glossy highlight, for unit normals (..., 3)."""
    diffuse = np.clip((normal * light).sum(axis=-1), 0, 1)
    half_vector = light + np.array([0, 0, 1], np.float32)
    half_vector /= np.linalg.norm(half_vector)
    shine = np.clip((normal * half_vector).sum(axis=-1), 0, 1) ** 40
    return colour * (0.3 + 0.75 * diffuse)[..., None] + 200 * shine[..., None]


def _draw_object(design: _Object, size: Size, noise: np.random.Generator) -> Image.Image:
    width, height = size
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    # A studio sweep: white, a little darker towards the front.
    pixels = np.repeat((252 - 14 * (ys / height) ** 2)[..., None], 3, axis=2)
    object_h = design.scale * height
    cx, base_y = design.centre_x * width, 0.5 * height + object_h / 2
    side = 1 if design.light_from_left else -1
    light = np.array([-0.55 * side, -0.75, 0.5], np.float32)  # from above, to one side
    light /= np.linalg.norm(light)
    # A soft shadow on the floor, thrown away from the light.
    shadow_x = cx + 0.18 * side * object_h
    shadow = np.exp(
        -(((xs - shadow_x) / (0.32 * object_h)) ** 2) - ((ys - base_y) / (0.05 * object_h)) ** 2
    )
    pixels *= (1 - 0.35 * shadow)[..., None]
    colour = np.array(design.colour, np.float32)
    if design.shape == "sphere":
        radius = object_h / 2
        nx, ny = (xs - cx) / radius, (ys - (base_y - radius)) / radius
        inside = nx**2 + ny**2 < 1
        nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
        shaded = _lit(colour, np.stack([nx, ny, nz], axis=-1), light)
        pixels = np.where(inside[..., None], shaded, pixels)
    elif design.shape in ("bottle", "cylinder"):
        t = (ys - (base_y - object_h)) / object_h
        half = _object_profile(design.shape, np.clip(t, 0, 1)) * object_h
        nx = (xs - cx) / np.maximum(half, 1)
        inside = (t >= 0) & (t <= 1) & (np.abs(nx) < 1)
        nz = np.sqrt(np.clip(1 - nx**2, 0, 1))
        body = np.where((t < 0.08)[..., None], colour * 0.45, colour)  # a bottle's darker cap
        if design.shape == "cylinder":
            body = np.broadcast_to(colour, pixels.shape)
        shaded = _lit(body, np.stack([nx, np.zeros_like(nx), nz], axis=-1), light)
        pixels = np.where(inside[..., None], shaded, pixels)
    picture = Image.fromarray(_with_dither(pixels, noise), "RGB")
    if design.shape == "box":  # seen from a little above and to one side: three flat faces
        face = 0.7 * object_h
        # The flank in view is the one turned away from the light.
        depth_x, depth_y = 0.28 * face * side, -0.22 * face
        left, top = cx - face / 2, base_y - face
        front = [(left, top), (left + face, top), (left + face, base_y), (left, base_y)]
        lid = [
            (left, top),
            (left + face, top),
            (left + face + depth_x, top + depth_y),
            (left + depth_x, top + depth_y),
        ]
        edge = left + face if depth_x > 0 else left
        flank = [(edge, top), (edge + depth_x, top + depth_y), (edge + depth_x, base_y + depth_y)]
        flank.append((edge, base_y))
        normals = {"front": (0, 0, 1), "lid": (0, -0.9, 0.44), "flank": (np.sign(depth_x), 0, 0.3)}
        draw = ImageDraw.Draw(picture)
        for name, outline in (("flank", flank), ("lid", lid), ("front", front)):
            normal = np.array(normals[name], np.float32)
            normal /= np.linalg.norm(normal)
            tone = _lit(colour, normal[None, :], light)[0]
            draw.polygon(outline, fill=tuple(int(min(255, c)) for c in tone))
    return picture.filter(ImageFilter.GaussianBlur(max(0.5, width / 1600)))


# --- Mostly white pages with a line or two of text --------------------------------------------

_MESSAGES = (  # (first line, second line or ""); {fields} are drawn per picture
    ("Meeting moved to {time}", "Room {room}"),
    ("Back at {time}", ""),
    ("Gate {gate} closes at {time}", ""),
    ("Order #{number} is ready", "Pick up at desk {desk}"),
    ("Wifi: guest-{desk}{room}", "Password: {code}"),
    ("Lunch on {day}", "at {time}"),
    ("Do not disturb", "until {time}"),
    ("Parcel for flat {room}", "arrived {day}"),
    ("Deadline: {day} {time}", ""),
    ("Server down until {time}", "Call ext. {number}"),
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _message_fields(rng: random.Random) -> dict[str, str]:
    return {
        "time": f"{rng.randint(7, 18)}:{rng.choice(('00', '15', '30', '45'))}",
        "room": f"{rng.randint(1, 6)}{rng.choice('ABCD')}",
        "gate": f"{rng.choice('ABCDEF')}{rng.randint(1, 40)}",
        "number": str(rng.randint(100, 9999)),
        "desk": str(rng.randint(1, 12)),
        "code": "".join(rng.choice("abcdefghkmnpqrstuvwxyz23456789") for _ in range(8)),
        "day": rng.choice(_DAYS),
    }


@dataclass(frozen=True)
class _Page:
    size: Size
    message: int  # which of _MESSAGES
    fields: tuple[tuple[str, str], ...]  # the values filled into it
    paper: Colour
    ink: Colour
    text_size: float  # letter height as a share of the width
    top: float  # share of the height where the first line starts
    centred: bool

    @property
    def lines(self) -> tuple[str, ...]:
        values = dict(self.fields)
        return tuple(line.format(**values) for line in _MESSAGES[self.message] if line)


def _new_page(rng: random.Random, size: Size, index: int, base_hue: float) -> _Page:
    return _Page(
        size,
        index % len(_MESSAGES),
        tuple(sorted(_message_fields(rng).items())),
        _hsv(base_hue, rng.uniform(0.0, 0.05), rng.uniform(0.97, 1.0)),
        _hsv(rng.choice((0, 220)), rng.uniform(0.0, 0.5), rng.uniform(0.05, 0.25)),
        rng.uniform(0.045, 0.07),
        rng.uniform(0.3, 0.42),
        rng.random() < 0.6,
    )


def _page_variant(design: _Page, rng: random.Random) -> _Page:
    """The same note with one value changed (another time, number, room or day): a few letters
    on a white page are all that tells the two apart."""
    text = "".join(_MESSAGES[design.message])
    used = [key for key, _ in design.fields if "{" + key + "}" in text]
    key = rng.choice(used)
    values = dict(design.fields)
    while True:  # every field has many possible values
        fresh = _message_fields(rng)[key]
        if fresh != values[key]:
            values[key] = fresh
            return replace(design, fields=tuple(sorted(values.items())))


def _draw_page(design: _Page, size: Size, noise: np.random.Generator) -> Image.Image:
    width, height = size
    page = Image.new("RGB", size, design.paper)
    draw = ImageDraw.Draw(page)
    text_font = font(design.text_size * width)
    y = design.top * height
    for line in design.lines:
        if design.centred:
            draw.text((width / 2, y), line, font=text_font, fill=design.ink, anchor="ma")
        else:
            draw.text((0.14 * width, y), line, font=text_font, fill=design.ink)
        y += 1.6 * design.text_size * width
    return page


# --- Planets on black --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planet:
    size: Size
    centre: tuple[float, float]
    radius: float  # share of the short side
    dark: Colour
    light: Colour
    banded: bool  # a gas giant's bands, or a rocky world's patches
    tilt: float  # degrees the bands are tilted
    texture: int  # seed of the surface
    stars: int  # seed of the star field
    sun: tuple[float, float]  # where the light comes from, in the picture plane


def _new_planet(rng: random.Random, size: Size, index: int, base_hue: float) -> _Planet:
    return _Planet(
        size,
        (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)),
        rng.uniform(0.15, 0.35),
        _hsv(base_hue, rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.4)),
        _hsv(base_hue + rng.uniform(-30, 30), rng.uniform(0.2, 0.6), rng.uniform(0.75, 1.0)),
        index % 2 == 0,
        rng.uniform(-25, 25),
        rng.getrandbits(32),
        rng.getrandbits(32),
        (rng.choice((-1, 1)) * rng.uniform(0.3, 0.8), rng.uniform(-0.6, 0.2)),
    )


def _planet_variant(design: _Planet, rng: random.Random) -> _Planet:
    """Another planet of the same look: its own surface and stars, elsewhere, bigger or smaller."""
    grow = rng.uniform(1.4, 1.8)
    radius = design.radius * grow if design.radius * grow <= 0.42 else design.radius / grow
    while True:
        centre = (rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75))
        if math.dist(centre, design.centre) > 0.2:
            break
    return replace(
        design,
        centre=centre,
        radius=radius,
        tilt=rng.uniform(-25, 25),
        texture=rng.getrandbits(32),
        stars=rng.getrandbits(32),
    )


def _fractal_noise(rng: np.random.Generator, side: int, exponent: float) -> np.ndarray:
    """A square of cloud-like noise (power spectrum 1/f^exponent) scaled to about [-1, 1]."""
    work = min(side, 256)  # drawn small and enlarged: the finest detail is blurred away anyway
    fy = np.fft.fftfreq(work)[:, None]
    fx = np.fft.rfftfreq(work)[None, :]
    frequency = np.hypot(fx, fy)
    frequency[0, 0] = 1.0
    shape = (work, work // 2 + 1)
    amplitude = frequency ** (-exponent / 2)
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * amplitude
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(work, work))
    field = (field / (3 * field.std())).astype(np.float32)
    return np.asarray(
        Image.fromarray(field, "F").resize((side, side), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )


def _star_field(pixels: np.ndarray, seed: int) -> None:
    """Add 40-90 stars of different brightness and size to a black sky, in place."""
    height, width = pixels.shape[:2]
    short = min(width, height)
    stars = np.random.default_rng(seed)
    for _ in range(int(stars.integers(40, 90))):
        x, y = stars.uniform(0, width), stars.uniform(0, height)
        brightness = stars.uniform(120, 255)
        spread = max(0.45, stars.uniform(0.5, 1.4) * short / 900)
        left, right = int(max(0, x - 4 * spread - 1)), int(min(width, x + 4 * spread + 2))
        top, bottom = int(max(0, y - 4 * spread - 1)), int(min(height, y + 4 * spread + 2))
        yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
        glow = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * spread**2))
        pixels[top:bottom, left:right] += brightness * glow[..., None]


def _planet_disc(design: _Planet, radius: float, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The planet in a `side` x `side` square centred on it: its colours (with the atmosphere's
    glow outside the rim) and its coverage (1 on the disc, 0 off it, antialiased)."""
    coords = (np.arange(side, dtype=np.float32) + 0.5 - side / 2) / radius
    nx, ny = np.meshgrid(coords, coords)
    distance = np.hypot(nx, ny)
    nz = np.sqrt(np.clip(1 - distance**2, 0, 1))
    surface_rng = np.random.default_rng(design.texture)
    if design.banded:  # a gas giant: bands along its (tilted) latitude, swirled
        tilt = math.radians(design.tilt)
        latitude = -nx * math.sin(tilt) + ny * math.cos(tilt)
        swirl = _fractal_noise(surface_rng, side, 2.6)
        frequency = surface_rng.uniform(7, 13)
        second = np.sin(latitude * frequency * 2.3 + surface_rng.uniform(0, 6))
        bands = np.sin(latitude * frequency + 1.5 * swirl) + 0.4 * second
        texture = 0.5 + 0.3 * bands + 0.15 * _fractal_noise(surface_rng, side, 2.0)
    else:  # a rocky world: continents and seas
        continents = _fractal_noise(surface_rng, side, 3.0)
        texture = 1 / (1 + np.exp(-continents * 6)) + 0.12 * _fractal_noise(surface_rng, side, 2)
    dark, light = np.array(design.dark, np.float32), np.array(design.light, np.float32)
    surface = dark + (light - dark) * np.clip(texture, 0, 1)[..., None]
    sun = np.array([design.sun[0], design.sun[1], 1.0], np.float32)
    sun /= np.linalg.norm(sun)
    lit = np.clip(nx * sun[0] + ny * sun[1] + nz * sun[2], 0, 1) ** 0.7
    shaded = surface * (0.04 + 0.96 * lit)[..., None] * (0.55 + 0.45 * nz)[..., None]
    # Off the disc, a thin atmosphere: the light colour, fading within 2.5% of the radius.
    on_disc = np.clip((1 - distance) * radius + 0.5, 0, 1)  # one pixel of antialiasing
    facing = np.clip(nx * sun[0] + ny * sun[1] + 0.5, 0, 1)
    haze = 0.5 * facing * np.exp(-np.clip(distance - 1, 0, None) / 0.025)
    colours = np.where((on_disc > 0)[..., None], shaded, light[None, None, :])
    return colours, np.maximum(on_disc, haze * (on_disc == 0))


def _draw_planet(design: _Planet, size: Size, noise: np.random.Generator) -> Image.Image:
    width, height = size
    short = min(width, height)
    pixels = np.zeros((height, width, 3), np.float32) + 4
    _star_field(pixels, design.stars)
    radius = design.radius * short
    side = max(4, math.ceil(2.3 * radius))
    left = round(design.centre[0] * width - side / 2)
    top = round(design.centre[1] * height - side / 2)
    colours, coverage = _planet_disc(design, radius, side)
    x0, y0 = max(0, left), max(0, top)  # the square cut to the picture's edges
    x1, y1 = min(width, left + side), min(height, top + side)
    if x1 > x0 and y1 > y0:
        part = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        share = coverage[part][..., None]
        pixels[y0:y1, x0:x1] = pixels[y0:y1, x0:x1] * (1 - share) + colours[part] * share
    picture = Image.fromarray(_with_dither(pixels, noise), "RGB")
    return picture.filter(ImageFilter.GaussianBlur(max(0.4, short / 1600)))


# --- Drawing the sets --------------------------------------------------------------------------


# A design is one of the frozen dataclasses above: everything that decides a picture but its
# size in pixels (which `size` only suggests) and its dithering noise.
Design = Any


@dataclass(frozen=True)
class _Kind:
    new: Callable[[random.Random, Size, int, float], Design]  # (rng, size, index, base hue)
    variant: Callable[[Design, random.Random], Design]  # a distractor for an original
    draw: Callable[[Design, Size, np.random.Generator], Image.Image]
    png: float  # probability of saving as PNG rather than JPEG
    checked: bool = True  # compared for near-duplicates (pages differ by text, by construction)
    # ... also with one cropped from the other: two bottles on white that differ in size and
    # place only are one picture to a verifier (a crop of it, recoloured), so such twins are
    # drawn again. Smooth kinds are not: a crop of any gradient is close to a linear ramp.
    crops_checked: bool = False


_KINDS: dict[str, _Kind] = {
    "gradient": _Kind(_new_gradient, _gradient_variant, _draw_gradient, png=0.5),
    "flat": _Kind(_new_flat, _flat_variant, _draw_flat, png=1.0),
    "minimal": _Kind(_new_minimal, _minimal_variant, _draw_minimal, png=1.0),
    "object": _Kind(_new_object, _object_variant, _draw_object, png=0.3, crops_checked=True),
    "page": _Kind(_new_page, _page_variant, _draw_page, png=1.0, checked=False),
    "planet": _Kind(_new_planet, _planet_variant, _draw_planet, png=0.0),
}


def _thumbnail(kind: _Kind, design: Design, seed_parts: tuple[object, ...]) -> np.ndarray:
    """The design drawn small and squeezed to 64 x 64, as float RGB."""
    width, height = design.size
    scale = _CHECK_SIDE / max(width, height)
    small = (max(8, round(width * scale)), max(8, round(height * scale)))
    picture = kind.draw(design, small, _np_rng(*seed_parts, "thumbnail"))
    squeezed = picture.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
    return np.asarray(squeezed, dtype=np.float32)


def turns_and_mirrors(thumb: np.ndarray) -> Iterator[np.ndarray]:
    """The eight images of a square thumbnail under quarter turns and mirroring."""
    for flipped in (thumb, thumb[:, ::-1]):
        for quarter in range(4):
            yield np.rot90(flipped, quarter)


def _hue_and_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.degrees(np.arctan2(math.sqrt(3) * (green - blue), 2 * red - green - blue))
    return hue, rgb.max(axis=-1) - rgb.min(axis=-1)


def _hue_gap(first: np.ndarray | float, second: np.ndarray | float) -> np.ndarray | float:
    """Degrees between hues (floats or arrays), the short way round the circle."""
    return np.abs((first - second + 180) % 360 - 180)


def _mean_hue_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Mean hue difference in degrees over pixels that are coloured in both thumbnails, or, where
    those are few (a small object on white), between the two pictures' dominant hues; 0 when
    either is nearly grey (a greyscale copy could then be either)."""
    hue_a, chroma_a = _hue_and_chroma(first)
    hue_b, chroma_b = _hue_and_chroma(second)
    coloured_a, coloured_b = chroma_a > 25, chroma_b > 25
    coloured = coloured_a & coloured_b
    if coloured.mean() >= 0.1:
        return float(_hue_gap(hue_a, hue_b)[coloured].mean())
    if coloured_a.mean() < _SMALL_COLOURED or coloured_b.mean() < _SMALL_COLOURED:
        return 0.0

    def dominant(hue: np.ndarray, chroma: np.ndarray, where: np.ndarray) -> float:
        angles, weights = np.radians(hue[where]), chroma[where]
        return math.degrees(
            math.atan2((weights * np.sin(angles)).sum(), (weights * np.cos(angles)).sum())
        )

    return float(
        _hue_gap(dominant(hue_a, chroma_a, coloured_a), dominant(hue_b, chroma_b, coloured_b))
    )


def _zoomed(thumb: np.ndarray) -> list[np.ndarray]:
    """What a crop keeping 25-64% of the picture's area could look like, enlarged back to the
    thumbnail's size: windows of each of three sizes at nine places."""
    picture = Image.fromarray(np.clip(thumb, 0, 255).astype(np.uint8), "RGB")
    views = []
    for zoom in _CROP_ZOOMS:
        side = round(THUMBNAIL * zoom)
        for top in (0, (THUMBNAIL - side) // 2, THUMBNAIL - side):
            for left in (0, (THUMBNAIL - side) // 2, THUMBNAIL - side):
                window = picture.crop((left, top, left + side, top + side))
                enlarged = window.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR)
                views.append(np.asarray(enlarged, dtype=np.float32))
    return views


def too_close(first: np.ndarray, second: np.ndarray, *, crops: bool = False) -> bool:
    """Whether two 64 x 64 thumbnails could be one picture after copy edits, under any of the
    eight turns and mirrorings (and, with `crops`, with either cropped from the other):
    near-identical in every 8 x 8 block once brightness is matched, or laid out alike (grey
    levels correlate above 0.92) with hues less than 45 degrees and brightness less than x1.6
    apart."""

    def luminance(rgb: np.ndarray) -> np.ndarray:
        return rgb @ np.array([0.299, 0.587, 0.114], np.float32)

    def one_picture(candidate: np.ndarray, other: np.ndarray) -> bool:
        grey, other_grey = luminance(candidate), luminance(other)
        gain = (other_grey.mean() + 1) / (grey.mean() + 1)
        difference = np.abs(np.clip(candidate * gain, 0, 255) - other).mean(axis=-1)
        blocks = difference.reshape(8, THUMBNAIL // 8, 8, THUMBNAIL // 8).mean(axis=(1, 3))
        if blocks.max() < _NEAR_IDENTICAL:  # alike everywhere, not only on average
            return True
        if grey.std() < 2 and other_grey.std() < 2:
            correlation = 1.0  # both flat: one layout
        elif grey.std() < 2 or other_grey.std() < 2:
            correlation = 0.0
        else:
            correlation = float(np.corrcoef(grey.ravel(), other_grey.ravel())[0, 1])
        return (
            correlation > _SAME_STRUCTURE
            and 1 / 1.6 < gain < 1.6
            and _mean_hue_distance(candidate, other) < _SAME_HUE
        )

    # A crop of one and the other whole, either way round: the `crop` and `tight_crop`
    # families keep 30-50% of the area.
    crops_of_second = _zoomed(second) if crops else []
    for candidate in turns_and_mirrors(first):
        if one_picture(candidate, second):
            return True
        if crops and any(one_picture(view, second) for view in _zoomed(candidate)):
            return True
        if any(one_picture(candidate, view) for view in crops_of_second):
            return True
    return False


@dataclass(frozen=True)
class PlainPicture:
    """One plain picture, before it is written: what it is and which original it goes with."""

    name: str  # file stem: "<kind>_<index>" for an original, "<kind>_<index>_other" else
    kind: str  # one of PLAIN_KINDS
    distractor: bool
    image: Image.Image
    png: bool


def _first_distinct(
    kind: _Kind,
    attempt: Callable[[int], Design],
    kept: list[tuple[int, np.ndarray]],
    owner: int,
    seed_parts: tuple[object, ...],
    *,
    exempt: int | None = None,
) -> Design:
    """The first of attempt(0), attempt(1), ... that is not too close to any picture in `kept`
    (except those of `exempt`), which it then joins as `owner`'s."""
    for number in range(_MAX_ATTEMPTS):
        design = attempt(number)
        if not kind.checked:
            return design
        thumb = _thumbnail(kind, design, seed_parts)
        if not any(
            too_close(thumb, seen, crops=kind.crops_checked)
            for whose, seen in kept
            if whose != exempt
        ):
            kept.append((owner, thumb))
            return design
    raise RuntimeError(f"no distinct picture in {_MAX_ATTEMPTS} attempts ({seed_parts})")


def _new_original(
    seed: int, kind_name: str, index: int, sizes: tuple[Size, ...], base_hue: float, attempt: int
) -> Design:
    rng = _rng(seed, kind_name, index, attempt)
    size = rng.choice(sizes)
    return _KINDS[kind_name].new(rng, size, index, base_hue + rng.uniform(-8, 8))


def _new_distractor(
    seed: int, kind_name: str, index: int, original: Design, attempt: int
) -> Design:
    return _KINDS[kind_name].variant(original, _rng(seed, kind_name, index, "other", attempt))


def plain_pictures(seed: int, size: str = "full") -> list[PlainPicture]:
    """Draw every original and every distractor of `size` ("full": 10 of each kind, "tiny": 2)
    for `seed`: for each kind in turn, original and distractor alternately, each drawn again
    (with the next attempt's random numbers) while it is too close to one drawn before."""
    if size not in _SCALES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(_SCALES)}")
    scale = _SCALES[size]
    pictures = []
    for kind_name, kind in _KINDS.items():
        hue_offset = _rng(seed, kind_name, "hues").uniform(0, 360)
        kept: list[tuple[int, np.ndarray]] = []  # (index of the original, thumbnail)
        for index in range(scale.per_kind):
            # Base hues spread evenly round the circle, so originals of a kind differ in colour.
            base_hue = hue_offset + 360 * index / scale.per_kind
            new = partial(_new_original, seed, kind_name, index, scale.sizes, base_hue)
            design = _first_distinct(kind, new, kept, index, (seed, kind_name, index))
            other = _first_distinct(
                kind,
                partial(_new_distractor, seed, kind_name, index, design),
                kept,
                index,
                (seed, kind_name, index, "other"),
                exempt=index,  # its own original differs from it by design
            )
            png = _rng(seed, kind_name, index, "format").random() < kind.png
            for name, chosen, is_distractor in (
                (f"{kind_name}_{index:02d}", design, False),
                (f"{kind_name}_{index:02d}_other", other, True),
            ):
                noise = _np_rng(seed, kind_name, name)
                image = kind.draw(chosen, chosen.size, noise)
                pictures.append(PlainPicture(name, kind_name, is_distractor, image, png))
    return pictures


@dataclass
class PlainArt:
    """What `write_plain_art` wrote: the originals (to be copied) and the distractors."""

    originals: list[Path]
    distractors: list[LabelledImage]


def write_plain_art(
    out_dir: str | Path, *, seed: int, size: str = "full", distractors: bool = True
) -> PlainArt:
    """Write the plain originals as `<out_dir>/<kind>_<nn>.png|jpg` and, with `distractors`, one
    distractor per original as `<kind>_<nn>_other.png|jpg`, labelled as its own source with kind
    "lookalike:plain". The originals are the same whether or not distractors are written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = PlainArt([], [])
    for picture in plain_pictures(seed, size):
        if picture.distractor and not distractors:
            continue
        path = out_dir / f"{picture.name}.{'png' if picture.png else 'jpg'}"
        if picture.png:
            picture.image.save(path, "PNG")
        else:
            picture.image.save(path, "JPEG", quality=JPEG_QUALITY)
        if picture.distractor:
            source = f"plain-{picture.name}"
            written.distractors.append(LabelledImage(path, source, "original", DISTRACTOR_KIND))
        else:
            written.originals.append(path)
    return written
