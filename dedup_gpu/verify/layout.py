"""Plain images (gradients, flat art, minimal designs, objects on white, planets on black) give
too few keypoints to align, and the embedding rates two different ones as alike as copies
(SSCD scores distinct smooth wallpapers 0.88-0.95). They are compared by their colour and
intensity layout instead:

1. the small colour renderings of both are aligned: the whole frame in any of the eight turns
   and mirrors, stretched to fit, or either picture placed inside the other (crops, padding),
   plain or mirrored; the most promising few are refined by ECC, which handles small rotations
   and stretches and ignores brightness and contrast;
2. a global colour change of the kind an edit makes is fitted (YCrCb: luma by a gain and an
   offset, chroma turned and scaled about grey, a small cast), bounded so that an edit cannot
   turn one gradient into another of other hues;
3. what is left over is compared block by block. A re-save, crop, colour edit or turn of a
   gradient leaves little but compression noise; another gradient, another flat design or the
   same motif elsewhere leaves regions unexplained. Blocks with fine detail on one side only are
   overlays (a caption, a meme's text, a logo added), which copies may carry; such detail on
   both sides, each where the other has none, is two different motifs.

Hand-written: OpenCV gives the template search, ECC and the warps; the colour model and the
decision are this module's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..records import VerifyOutcome
from . import transforms
from .marks import MarkComparison, compare_marks
from .overlays import text_sides
from .settings import VerifySettings
from .thumbnails import Thumbnail

GRID = 8  # the overlap is compared on a GRID x GRID grid of blocks
MAX_STRETCH = 1.45  # aspect change a copy may have gone through (an edit stretching it 1.4x)
MAX_TURN = math.radians(12)  # rotation ECC may add to an alignment (copies turn 2-10 degrees)
CROP_SHARES = np.geomspace(1.0, 0.25, 10)  # a placed picture's share of the other's area
PLACEMENTS_KEPT = 2  # best placements kept per direction and mirroring
REFINED = 2  # most promising alignments refined by ECC and compared in full
PRESCORE_SIZE = 32  # px, longest side the candidates are ranked at before refining
_OUTSIDE = -1e6  # far below any YCrCb value, so a warp touching the border shows it
_VALID = -256.0  # chroma is centred on grey, so real values stay above -128
HUE_CHROMA = 12.0  # chroma (YCrCb units) from which a pixel's hue is worth comparing
HUE_MIN_PIXELS = 40  # rendering pixels coloured on both sides, at least, to compare hues
FLAT_LUMA = 2.0  # luma spread (YCrCb units) at the level of noise: a flat picture
# A side with next to no coloured pixels is grey only if its chroma (root mean square) is below
# this share of the other side's: a greyscale copy keeps a few percent of its original's (JPEG
# noise), a desaturated copy (x0.6) of a pale tint keeps 60%.
GREY_CHROMA_SHARE = 0.5
# The trimmed colour fit must keep this share of the untrimmed pixels' contrast.
TRIM_KEEPS_CONTRAST = 0.25


@dataclass(frozen=True)
class LayoutComparison:
    """How well b's colour layout, aligned and colour-fitted, explains a's over their overlap."""

    matrix: np.ndarray  # 3 x 3, b's layout pixels -> a's
    alignment: str  # how, in words ("whole frame, mirrored", "placed inside, turned 90")
    agreement: float  # share of the compared blocks whose leftover is within tolerance
    blocks: int  # blocks of the overlap compared (overlays on the overlay side left out)
    contradicting: int  # disagreeing blocks that no overlay explains
    overlay_a: int  # disagreeing blocks with fine detail in a only (a caption added to a)
    overlay_b: int  # ... in b only
    # Colour spread (0-255 units) of the overlap, on its flatter side: how much layout there is.
    # A flat patch of one picture is explained by any flat colour of the other.
    spread: float
    colour_change: str  # the fitted edit, in words
    # Sides with next to no colour (0, 1 or 2), and the fitted luma edit's gain and offset.
    grey_sides: int = 0
    luma_gain: float = 1.0
    luma_offset: float = 0.0
    hue_turn: float = 0.0
    evidence: int = 0  # agreeing blocks that stand out from the overlap's colour or hold detail
    telling_contradicting: int = 0  # ... and disagreeing ones that do, no overlay explaining them
    # Where too few blocks stand out (a small mark on a flat ground): the marks' shapes compared.
    marks: MarkComparison | None = None


@dataclass(frozen=True)
class _Candidate:
    matrix: np.ndarray
    words: str


def _ycc(rgb: np.ndarray) -> np.ndarray:
    """YCrCb float32, 0..255, chroma centred on 0."""
    import cv2

    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[..., 1:] -= 128.0
    return ycc


def _dihedral(shape: tuple[int, int], turns: int, mirrored: bool) -> tuple[np.ndarray, tuple]:
    """The map from pixels of an image of `shape` to the same image mirrored (first) and turned
    `turns` quarter turns clockwise, and the shape it then has."""
    height, width = shape
    matrix = transforms.mirror(width) if mirrored else np.eye(3)
    for _ in range(turns % 4):
        # A quarter turn clockwise: (x, y) -> (height - 1 - y, x); the frame becomes w x h.
        turn = np.array([[0.0, -1.0, height - 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = turn @ matrix
        height, width = width, height
    return matrix, (height, width)


def _words(what: str, turns: int, mirrored: bool) -> str:
    parts = [
        what,
        *(["mirrored"] if mirrored else []),
        *([f"turned {90 * turns}"] if turns else []),
    ]
    return ", ".join(parts)


def from_thumbnail(b: Thumbnail, a: Thumbnail, b_to_a: np.ndarray) -> np.ndarray:
    """A map between the (trimmed) grey thumbnails as a map between the colour renderings,
    which show the whole, untrimmed frame."""
    to_a = a.to_rendering(a.colour.shape[:2])
    return to_a @ b_to_a @ transforms.inverse(b.to_rendering(b.colour.shape[:2]))


def candidate_alignments(a: Thumbnail, b: Thumbnail) -> list[_Candidate]:
    """Maps of b's layout pixels onto a's worth refining: `whole_frames` and `placements`."""
    return whole_frames(a, b) + placements(a, b)


def whole_frames(a: Thumbnail, b: Thumbnail) -> list[_Candidate]:
    """b's whole frame onto a's in each of the eight turns and mirrors whose shape fits a's
    (within MAX_STRETCH), stretched to fit."""
    found = []
    a_shape, b_shape = a.colour.shape[:2], b.colour.shape[:2]
    for mirrored in (False, True):
        for turns in range(4):
            to_turned, turned = _dihedral(b_shape, turns, mirrored)
            aspect = (a_shape[1] / a_shape[0]) / (turned[1] / turned[0])
            if abs(math.log(aspect)) <= math.log(MAX_STRETCH):
                stretch = transforms.grid_scale(turned, a_shape)
                found.append(
                    _Candidate(stretch @ to_turned, _words("whole frame", turns, mirrored))
                )
    return found


def placements(a: Thumbnail, b: Thumbnail) -> list[_Candidate]:
    """The best placements of b inside a (a crop) and of a inside b (a padded or framed copy),
    plain and mirrored."""
    found = []
    a_shape, b_shape = a.colour.shape[:2], b.colour.shape[:2]
    # Placements are searched at half size (ECC refines the chosen ones at full size), in the
    # half-size renderings' pixels, then mapped to the full renderings'.
    a_half, b_half = _half(a), _half(b)
    chroma = _colourful(a_half) and _colourful(b_half)
    to_a = transforms.grid_scale(a_half.shape[:2], a_shape)
    from_b = transforms.inverse(transforms.grid_scale(b_half.shape[:2], b_shape))
    for mirrored in (False, True):
        b_seen = np.ascontiguousarray(b_half[:, ::-1]) if mirrored else b_half
        unmirror = transforms.mirror(b_half.shape[1]) if mirrored else np.eye(3)
        for matrix in _placements(b_seen, a_half, chroma):  # b inside a (b is a crop of a)
            words = _words("placed inside", 0, mirrored)
            found.append(_Candidate(to_a @ matrix @ unmirror @ from_b, words))
        for matrix in _placements(a_half, b_seen, chroma):  # a inside b (a's picture, padded)
            words = _words("placed around", 0, mirrored)
            found.append(_Candidate(to_a @ transforms.inverse(matrix) @ unmirror @ from_b, words))
    return found


def _half(image: Thumbnail) -> np.ndarray:
    """The YCrCb rendering at half size, for the placement search."""
    import cv2

    return image.derived(
        "layout-half",
        lambda: cv2.resize(_rendering(image), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    )


def _colourful(ycc: np.ndarray) -> bool:
    return bool(np.abs(ycc[..., 1:]).mean() >= 4.0)


def _rendering(image: Thumbnail) -> np.ndarray:
    """The thumbnail's colour rendering in YCrCb (computed once per thumbnail)."""
    return image.derived("layout-ycc", lambda: _ycc(image.colour))


def _text(image: Thumbnail) -> np.ndarray | None:
    """... the share of each of its pixels covered by text drawn over the picture (overlays.py),
    or None when there is none."""
    import cv2

    def make() -> np.ndarray | None:
        mask = image.outlined_text()
        if mask is None:
            return None
        # The rendering shows the whole frame, the mask the trimmed thumbnail inside it.
        top, left, whole = image.trimmed
        framed = np.zeros(whole, np.float32)
        framed[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
        height, width = image.colour.shape[:2]
        return cv2.resize(framed, (width, height), interpolation=cv2.INTER_AREA)

    return image.derived("layout-text", make)


def _grey(image: Thumbnail) -> np.ndarray:
    """... its luma, blurred by a pixel: what placements and ECC work on."""
    import cv2

    return image.derived(
        "layout-grey", lambda: cv2.GaussianBlur(_rendering(image)[..., 0], (0, 0), 1.0)
    )


def _placements(small: np.ndarray, large: np.ndarray, chroma: bool) -> list[np.ndarray]:
    """The PLACEMENTS_KEPT best spots (small -> large pixel maps) of `small` inside `large`
    (YCrCb renderings) over the scales of CROP_SHARES. Luma is matched by normalised
    cross-correlation about the mean, which ignores brightness and contrast; chroma, when both
    have colour, by correlation about grey, which ignores saturation but not where along a
    gradient the crop came from (luma alone cannot tell that for a linear ramp)."""
    import cv2

    (lh, lw), (sh, sw) = large.shape[:2], small.shape[:2]
    luma_large = np.ascontiguousarray(large[..., 0])
    chroma_large = np.ascontiguousarray(large[..., 1:])
    spots = []
    for share in CROP_SHARES:
        scale = float(np.sqrt(share * lh * lw / (sh * sw)))
        size = (round(sw * scale), round(sh * scale))
        if size[0] > lw or size[1] > lh or min(size) < 5:
            continue
        template = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
        luma = np.ascontiguousarray(template[..., 0])
        scores = np.zeros((lh - size[1] + 1, lw - size[0] + 1), np.float32)
        parts = 0
        if luma.std() >= 1.0:
            scores += cv2.matchTemplate(luma_large, luma, cv2.TM_CCOEFF_NORMED)
            parts += 1
        if chroma:
            hue = np.ascontiguousarray(template[..., 1:])
            scores += cv2.matchTemplate(chroma_large, hue, cv2.TM_CCORR_NORMED)
            parts += 1
        if not parts:
            continue
        _, peak, _, (x, y) = cv2.minMaxLoc(scores / parts)
        sx, sy = size[0] / sw, size[1] / sh
        spots.append(
            (
                float(peak),
                np.array([[sx, 0.0, x + 0.5 * sx - 0.5], [0.0, sy, y + 0.5 * sy - 0.5], [0, 0, 1]]),
            )
        )
    spots.sort(key=lambda spot: -spot[0])
    return [matrix for _, matrix in spots[:PLACEMENTS_KEPT]]


@functools.lru_cache(maxsize=64)
def _sample_points(shape: tuple[int, int]) -> np.ndarray:
    """Every fourth pixel centre of a frame of `shape`, homogeneous [n, 3] (renderings come in
    a handful of shapes, and every candidate alignment of a pair asks for them)."""
    ys, xs = np.mgrid[0.0 : shape[0] : 4, 0.0 : shape[1] : 4]
    points = np.column_stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    points.flags.writeable = False
    return points


def _covered(shape: tuple[int, int], other: tuple[int, int], matrix: np.ndarray) -> float:
    """Share of a frame of `shape` that `matrix` maps inside the frame `other`."""
    mapped = _sample_points(tuple(shape)) @ matrix.T
    x, y = mapped[:, 0] / mapped[:, 2], mapped[:, 1] / mapped[:, 2]
    inside = (x >= -0.5) & (x <= other[1] - 0.5) & (y >= -0.5) & (y <= other[0] - 0.5)
    return float(inside.mean())


@dataclass(frozen=True)
class _Overlap:
    """A pair seen from its target, the picture the other covers more of, so the comparison runs
    over the overlap in the target's frame."""

    target: Thumbnail
    other: Thumbnail
    target_to_other: np.ndarray
    other_covered: float  # share of the other's frame that falls inside the target's


def _target_first(a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray) -> _Overlap:
    """The pair under `b_to_a`, seen from whichever picture the other covers more of."""
    a_shape, b_shape = a.colour.shape[:2], b.colour.shape[:2]
    a_to_b = transforms.inverse(b_to_a)
    b_in_a, a_in_b = _covered(b_shape, a_shape, b_to_a), _covered(a_shape, b_shape, a_to_b)
    if b_in_a >= a_in_b:
        return _Overlap(b, a, b_to_a, a_in_b)
    return _Overlap(a, b, a_to_b, b_in_a)


def _warped(image: np.ndarray, target_to_image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`image` seen from the target's frame of (height, width) `shape`, through an affine map or,
    for a keypoint fit of a photographed print, a homography; _OUTSIDE where it does not reach."""
    import cv2

    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    border = (_OUTSIDE,) * image.shape[2] if image.ndim == 3 else _OUTSIDE
    size = (shape[1], shape[0])
    if transforms.is_affine(target_to_image):
        return cv2.warpAffine(image, target_to_image[:2], size, flags=flags, borderValue=border)
    return cv2.warpPerspective(image, target_to_image, size, flags=flags, borderValue=border)


def _prescore(a: Thumbnail, b: Thumbnail, candidate: _Candidate, settings: VerifySettings) -> float:
    """How well b's colours, edited as `_fit_colour` allows, explain a's under `candidate`, at
    PRESCORE_SIZE: a cheap rank for choosing the alignments to compare in full (higher is
    better; minus infinity when they barely overlap or no plausible edit relates them)."""
    overlap = _target_first(a, b, candidate.matrix)
    small = _prescore_rendering(overlap.target)
    to_small = transforms.grid_scale(overlap.target.colour.shape[:2], small.shape[:2])
    mapped = _warped(
        _rendering(overlap.other),
        overlap.target_to_other @ transforms.inverse(to_small),
        small.shape[:2],
    )
    mask = np.all(mapped > _VALID, axis=2)
    if mask.mean() < 0.5:
        return -math.inf
    sides = _sides(mapped[mask], small[mask], settings)
    fit = _fit_edit(sides, settings, np.ones(len(sides.source), dtype=bool))
    if fit.pixels is None:
        return -math.inf
    channels = slice(0, 1) if fit.luma_only else slice(0, 3)
    leftover = np.sqrt(((small[mask] - fit.pixels)[:, channels] ** 2).sum(axis=1))
    # The share of the target's frame explained, times how much of the other's frame the
    # overlap spans: a gradient's every part looks like a crop of it, the whole frame wins.
    explained = (leftover <= 2 * settings.layout_tolerance).sum() / mask.size
    return float(explained * np.sqrt(overlap.other_covered))


def _prescore_rendering(image: Thumbnail) -> np.ndarray:
    """The YCrCb rendering at PRESCORE_SIZE (computed once per thumbnail)."""
    import cv2

    def make() -> np.ndarray:
        ycc = _rendering(image)
        k = min(1.0, PRESCORE_SIZE / max(ycc.shape[:2]))
        return cv2.resize(ycc, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)

    return image.derived("layout-prescore", make)


def refine(a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray) -> np.ndarray:
    """`b_to_a` refined by ECC on the blurred luma of both renderings, as an affine map; the start
    stands where ECC fails or would turn or stretch the picture beyond what a copy's edit does.
    The picture the other covers is ECC's template, so every pixel it compares has a partner."""
    import cv2

    overlap = _target_first(a, b, b_to_a)
    target, other, start = overlap.target, overlap.other, overlap.target_to_other
    template, searched = _grey(target), _grey(other)
    if template.std() < 0.5 or searched.std() < 0.5:
        return b_to_a
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    try:
        _, found = cv2.findTransformECC(
            template, searched, start[:2].astype(np.float32), cv2.MOTION_AFFINE, criteria, None, 1
        )
    except cv2.error:
        return b_to_a
    refined = transforms.from_affine(found.astype(np.float64))
    change = refined @ transforms.inverse(start)
    turn = abs(math.atan2(change[1, 0] - change[0, 1], change[0, 0] + change[1, 1]))
    if turn > MAX_TURN or not transforms.plausible_affine(change, MAX_STRETCH):
        return b_to_a
    return refined if target is b else transforms.inverse(refined)


# YCrCb (chroma centred on grey) to RGB, as OpenCV defines YCrCb for 8-bit images.
_TO_RGB = np.array([[1.0, 1.403, 0.0], [1.0, -0.714, -0.344], [1.0, 0.0, 1.773]])
_TO_YCC = np.linalg.inv(_TO_RGB)


def _clipped(ycc: np.ndarray) -> np.ndarray:
    """YCrCb pixels [n, 3] as they would be after clipping to the 0..255 RGB cube, as an edit
    that brightens or saturates a picture clips its highlights."""
    return np.clip(ycc @ _TO_RGB.T, 0.0, 255.0) @ _TO_YCC.T


def _saturated(ycc: np.ndarray) -> np.ndarray:
    """Which pixels [n] touch the ends of the RGB range (clipped by an edit, or pure black or
    white to begin with)."""
    rgb = ycc @ _TO_RGB.T
    return np.any((rgb <= 3.0) | (rgb >= 252.0), axis=1)


@dataclass(frozen=True)
class _ColourFit:
    pixels: np.ndarray | None  # the destination's pixels as the fitted edit predicts them
    words: str  # the fitted edit (or why there is none), for the report
    luma_only: bool  # one side has next to no colour (a greyscale copy): chroma not compared
    gain: float = 1.0  # the luma edit: destination luma = gain * source luma + offset (+ lean)
    offset: float = 0.0
    hue_turn: float = 0.0  # degrees the chroma is turned


@dataclass(frozen=True)
class _Sides:
    """The pixels [n, 3] an edit is fitted between, and what every fit between them asks."""

    source: np.ndarray
    destination: np.ndarray
    at_ends: np.ndarray  # [n] pixels at the ends of the RGB range on either side
    grey_sides: int  # sides with next to no coloured pixels: 1 for a greyscale copy

    @property
    def grey(self) -> bool:
        return self.grey_sides > 0


def _chroma(pixels: np.ndarray) -> float:
    """Root mean square chroma (distance from grey) of YCrCb pixels [n, 3]."""
    return float(np.sqrt((pixels[:, 1:] ** 2).sum(axis=1).mean()))


def _sides(
    source: np.ndarray,
    destination: np.ndarray,
    settings: VerifySettings,
    saturated: tuple[np.ndarray, np.ndarray] | None = None,
    judged: np.ndarray | None = None,
) -> _Sides:
    """`saturated`: `_saturated` of source and destination, where the caller has them.
    `judged`: the pixels (bool [n]) that say whether a side is grey (default: all)."""
    ends_s, ends_d = saturated or (_saturated(source), _saturated(destination))

    # Greyscale when one side has next to no coloured pixels: not by its mean chroma, which a
    # coloured object on a white ground (mostly grey pixels) would pass ...
    def coloured_share(pixels: np.ndarray) -> float:
        return float((np.abs(pixels[:, 1:]).sum(axis=1) > 3 * settings.layout_grey_chroma).mean())

    if judged is None or not judged.any():
        judged = np.ones(len(source), dtype=bool)
    seen = (source[judged], destination[judged])
    # ... and only when it has clearly less colour than the other side: a pale tint lying at
    # the threshold falls below it in one re-save and above it in another, but keeps its colour.
    strength = [_chroma(pixels) for pixels in seen]
    grey_sides = sum(
        coloured_share(pixels) < 0.01
        and own < max(settings.layout_grey_chroma, GREY_CHROMA_SHARE * other)
        for pixels, own, other in zip(seen, strength, strength[::-1], strict=True)
    )
    return _Sides(source, destination, ends_s | ends_d, grey_sides)


def _fit_colour(
    sides: _Sides, settings: VerifySettings, fitted: np.ndarray | None = None
) -> _ColourFit:
    """`_fit_edit`, then again without the pixels it explains worst (a caption or meme text
    over a fifth of the picture would otherwise pull the fit off everywhere else). Where the
    worst-explained pixels were the picture's content, not an overlay on it (a minimal design's
    one mark: what is left is its flat ground, which any brightness shift or hue turn fits),
    the first fit stands. `fitted`: the pixels the edit may be fitted on (default: all)."""
    if fitted is None or fitted.sum() < 0.5 * len(fitted):
        fitted = np.ones(len(sides.source), dtype=bool)
    fit = _fit_edit(sides, settings, fitted)
    if fit.pixels is None:
        return fit
    channels = slice(0, 1) if fit.luma_only else slice(0, 3)
    error = ((sides.destination - fit.pixels)[:, channels] ** 2).sum(axis=1)
    kept = fitted & (error <= np.quantile(error[fitted], 1 - settings.layout_fit_trim))
    if not _keeps_contrast(sides.source[kept], sides.source, colour=not sides.grey):
        return fit
    trimmed = _fit_edit(sides, settings, kept)
    return trimmed if trimmed.pixels is not None else fit


def _keeps_contrast(kept: np.ndarray, pixels: np.ndarray, *, colour: bool) -> bool:
    """Whether the `kept` pixels [n, 3] keep TRIM_KEEPS_CONTRAST of the luma spread of all
    `pixels` and, where `colour` is fitted, of their chroma's spread about grey: whether a fit
    of an edit has as much tone (and colour) to go on."""

    # (`kept` is never empty: it holds the pixels below a quantile of the fit's errors.)
    if kept[:, 0].std() < TRIM_KEEPS_CONTRAST * pixels[:, 0].std():
        return False
    return not colour or _chroma(kept) >= TRIM_KEEPS_CONTRAST * _chroma(pixels)


def _fit_edit(sides: _Sides, settings: VerifySettings, kept: np.ndarray) -> _ColourFit:
    """`destination`'s YCrCb pixels [n, 3] predicted from `source`'s by an edit of the kind
    colour edits make. Brightness, contrast, saturation and hue edits are affine in RGB before
    clipping: luma scales and shifts (leaning a little on chroma, as a hue turn moves luma),
    chroma scales and turns about grey, and a white-balance change adds a small cast; the
    prediction is clipped as the edit clipped. Pixels at the ends of the range are left out of
    the fit (their edit was clipped). A side with next to no colour is a greyscale copy: only
    luma is compared."""
    source, destination, grey = sides.source, sides.destination, sides.grey
    usable = kept & ~sides.at_ends
    # ... unless that leaves too few, or leaves out all the picture's tones (a black mark on a
    # flat ground): any brightness shift relates a flat ground to another.
    if usable.sum() < 0.3 * kept.sum() or (
        source[usable, 0].std() <= FLAT_LUMA < source[kept, 0].std()
    ):
        usable = kept
    src, dst = source[usable].astype(np.float64), destination[usable].astype(np.float64)
    chroma_s, chroma_d = src[:, 1] + 1j * src[:, 2], dst[:, 1] + 1j * dst[:, 2]
    spread = src[:, 0].std()
    # A flat picture (luma spread at the level of noise) has no contrast to scale.
    gain = float(np.cov(dst[:, 0], src[:, 0])[0, 1] / spread**2) if spread > FLAT_LUMA else 1.0
    if not 1 / settings.layout_max_gain <= gain <= settings.layout_max_gain:
        # Flattening a picture to a third of its contrast explains anything by anything.
        return _ColourFit(None, f"luma x{gain:.2f}", luma_only=grey)
    lean = np.zeros(2)
    if not grey:  # what luma is left may lean on chroma (fitted second: the two correlate)
        leftover = dst[:, 0] - gain * src[:, 0]
        centred = src[:, 1:] - src[:, 1:].mean(axis=0)
        lean = np.linalg.lstsq(centred, leftover - leftover.mean(), rcond=None)[0]
        lean = np.clip(lean, -settings.layout_max_lean, settings.layout_max_lean)
    offset = float(np.mean(dst[:, 0] - gain * src[:, 0] - src[:, 1:] @ lean))
    predicted = source.astype(np.float64).copy()
    predicted[:, 0] = gain * source[:, 0] + source[:, 1:] @ lean + offset
    luma = f"luma x{gain:.2f} {offset:+.0f}"
    if grey:
        predicted[:, 1:] = 0.0
        predicted = _clipped(predicted)
        predicted[:, 1:] = destination[:, 1:]
        return _ColourFit(predicted, f"{luma}, greyscale", True, gain, offset)
    # Saturation and hue edits scale and turn chroma about grey (zero), not about its mean, so
    # the factor is fitted through the origin; what is left on average is a cast.
    factor = complex(
        np.sum(chroma_d * np.conj(chroma_s)) / max(np.sum(np.abs(chroma_s) ** 2), 1e-9)
    )
    turn = math.degrees(abs(np.angle(factor)))
    saturation = abs(factor)
    cast = complex(np.mean(chroma_d - factor * chroma_s))
    if turn > settings.layout_max_hue_turn:
        return _ColourFit(None, f"hue turned {turn:.0f} degrees", luma_only=False)
    if not 1 / settings.layout_max_gain <= saturation <= 2 * settings.layout_max_gain:
        return _ColourFit(None, f"saturation x{saturation:.2f}", luma_only=False)
    if abs(cast) > settings.layout_max_cast:
        return _ColourFit(None, f"a colour cast of {abs(cast):.0f}", luma_only=False)
    mapped = factor * (source[:, 1] + 1j * source[:, 2]) + cast
    predicted[:, 1], predicted[:, 2] = mapped.real, mapped.imag
    words = f"{luma}, hue {turn:.0f} deg, saturation x{saturation:.2f}"
    return _ColourFit(_clipped(predicted), words, False, gain, offset, turn)


def compare(
    a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray, settings: VerifySettings, words: str = ""
) -> LayoutComparison | None:
    """b's colour layout mapped onto a's frame (or a's onto b's, whichever the other covers), a
    colour edit fitted, and the leftover compared block by block; None when the two barely
    overlap or no plausible colour edit relates them."""
    import cv2

    overlap = _target_first(a, b, b_to_a)
    target, other, target_to_other = overlap.target, overlap.other, overlap.target_to_other
    ycc_t = _rendering(target)
    shape = ycc_t.shape[:2]
    warped = _warped(_rendering(other), target_to_other, shape)
    mask = np.all(warped > _VALID, axis=2)
    if mask.mean() < 0.5:
        return None
    # Text drawn over either side (overlays.py) is no part of the colour edit.
    text_t, text_o = _text(target), _text(other)
    if text_o is not None:
        text_o = np.maximum(_warped(text_o, target_to_other, shape), 0)
    drawn = np.zeros(shape, bool)
    for text in (text_t, text_o):
        if text is not None:
            drawn |= text > 0
    # The edit is predicted towards the side with more clipped pixels: clipping can be applied
    # to a prediction, not undone.
    seen_t, seen_o = ycc_t[mask], warped[mask]
    ends_t, ends_o = _saturated(seen_t), _saturated(seen_o)
    towards_target = ends_t.mean() >= ends_o.mean()
    # Whether a side is grey is judged away from the overlap's edge, where resampling mixes in
    # the other picture's surroundings (a coloured frame round a grey photo).
    core = cv2.erode(
        mask.astype(np.uint8),
        np.ones((5, 5), np.uint8),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    )[mask]
    core = core > 0
    sides = (
        _sides(seen_o, seen_t, settings, (ends_o, ends_t), core)
        if towards_target
        else _sides(seen_t, seen_o, settings, (ends_t, ends_o), core)
    )
    fit = _fit_colour(sides, settings, ~drawn[mask])
    if fit.pixels is None:
        return None
    actual = ycc_t.copy() if towards_target else warped.copy()
    explained = actual.copy()  # outside the overlap: the image itself, so blurs see no edge
    explained[mask] = fit.pixels
    if not towards_target:
        actual[~mask] = explained[~mask] = ycc_t[~mask]
    channels = slice(0, 1) if fit.luma_only else slice(0, 3)
    squared = ((actual - explained)[..., channels] ** 2).sum(axis=2)

    def fine_detail(image: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(image, (0, 0), 1.5)
        return ((image - smooth)[..., channels] ** 2).sum(axis=2)

    weight = mask.astype(np.float32)

    def per_block(values: np.ndarray) -> np.ndarray:
        return cv2.resize(values.astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA)

    coverage = per_block(weight)
    inside = coverage >= 0.9
    if inside.sum() < GRID * GRID // 4:
        return None
    safe = np.maximum(coverage, 1e-6)
    residual = np.sqrt(per_block(squared * weight) / safe)[inside]
    seen_other = np.where(mask[..., None], warped, ycc_t)
    detail_t = np.sqrt(per_block(fine_detail(ycc_t) * weight) / safe)[inside]
    detail_o = np.sqrt(per_block(fine_detail(seen_other) * weight) / safe)[inside]
    # An edge a fraction of a pixel off leaves a leftover in proportion to its contrast.
    allowed = settings.layout_tolerance + settings.layout_edge_share * np.maximum(
        detail_t, detail_o
    )
    agree = residual <= allowed
    has_t, has_o = detail_t >= settings.layout_detail, detail_o >= settings.layout_detail
    # A disagreeing block is an overlay where one side's fine detail far outweighs the other's:
    # text over a flat sky, or over a photo's softer texture. Two motifs are alike in detail.
    ratio = settings.layout_overlay_ratio
    overlay_t = ~agree & has_t & (detail_t >= ratio * detail_o)
    overlay_o = ~agree & has_o & (detail_o >= ratio * detail_t)
    # ... and wherever text was drawn over one side only (a meme's letters over an object's
    # edge, where both sides have detail).
    # Text in one place on both sides (one caption over two pictures) agrees whatever lies under
    # it: its blocks are left out, neither agreeing nor differing.
    shared = np.zeros(agree.shape, bool)
    if text_t is not None or text_o is not None:
        zero = np.zeros(shape, np.float32)
        on_t = per_block(zero if text_t is None else text_t)[inside]
        on_o = per_block(zero if text_o is None else text_o)[inside]
        only_t, only_o, shared = text_sides(
            on_t, on_o, settings.overlay_text_cover, settings.overlay_text_ratio
        )
        overlay_t |= ~agree & only_t
        overlay_o |= ~agree & only_o
        agree &= ~shared
        overlay_t &= ~shared
        overlay_o &= ~shared
    contradicted = ~agree & ~overlay_t & ~overlay_o & ~shared
    contradicting = int(contradicted.sum())
    overlay_a, overlay_b = (
        (int(overlay_o.sum()), int(overlay_t.sum()))
        if target is b
        else (int(overlay_t.sum()), int(overlay_o.sum()))
    )
    compared = int(inside.sum()) - max(overlay_a, overlay_b) - int(shared.sum())
    pixels = seen_t[:, channels]
    # Blocks that say something about the layout: their colour stands out from the overlap's
    # ground (its median colour, which large shapes of another picture do not drag along as
    # they drag the mean), or they hold detail. On a flat ground with a small mark only the
    # mark's blocks do.
    means = np.stack([per_block(ycc_t[..., c] * weight) / safe for c in range(3)], axis=-1)[inside][
        :, channels
    ]
    standing_out = (
        np.linalg.norm(means - np.median(pixels, axis=0), axis=1) > 2 * settings.layout_tolerance
    )
    telling = standing_out | has_t | has_o
    evidence = int((agree & telling).sum())
    return LayoutComparison(
        matrix=b_to_a,
        alignment=words,
        agreement=float(agree.sum() / max(compared, 1)),
        blocks=compared,
        contradicting=contradicting,
        overlay_a=overlay_a,
        overlay_b=overlay_b,
        spread=float(
            min(
                np.sqrt(pixels.var(axis=0).sum()),
                np.sqrt(seen_o[:, channels].var(axis=0).sum()),
            )
        ),
        colour_change=fit.words,
        grey_sides=sides.grey_sides,
        luma_gain=fit.gain,
        luma_offset=fit.offset,
        hue_turn=fit.hue_turn,
        evidence=evidence,
        telling_contradicting=int((contradicted & telling).sum()),
        marks=compare_marks(a, b, b_to_a) if evidence < settings.layout_min_evidence else None,
    )


def best_comparison(
    a: Thumbnail, b: Thumbnail, settings: VerifySettings
) -> LayoutComparison | None:
    """The comparison under the alignment that explains a by b best. The whole frame is tried
    first (most copies keep it: re-saves, colour edits, turns, captions); only if that is not
    accepted are the placements searched (crops, padding, frames). In each stage candidates are
    ranked cheaply (`_prescore`) and the REFINED best compared in full, before and after ECC;
    a stage whose best candidate explains too little of the frame is not compared at all. None
    when no alignment overlaps."""
    best: tuple[tuple, LayoutComparison | None] = ((-1,), None)
    for stage in (whole_frames, placements):
        scored = [(_prescore(a, b, c, settings), c) for c in stage(a, b)]
        scored.sort(key=lambda item: -item[0])
        for score, candidate in scored[:REFINED]:
            if score < settings.layout_hopeless:
                break
            # The start too: ECC drifts as often as it helps on sharp, flat-coloured shapes.
            for matrix in (candidate.matrix, refine(a, b, candidate.matrix)):
                found = compare(a, b, matrix, settings, candidate.words)
                if found is None:
                    continue
                outcome, _ = decide(found, settings)
                rank = (outcome is VerifyOutcome.accepted, found.agreement, -found.contradicting)
                if rank > best[0]:
                    best = (rank, found)
        if best[0][0] is True:
            break
    return best[1]


def decide(comparison: LayoutComparison, settings: VerifySettings) -> tuple[VerifyOutcome, str]:
    """Accepted when the leftover is within tolerance nearly everywhere and what disagrees is an
    overlay on one side only; rejected when regions disagree with no overlay to explain them, or
    when each side has fine detail where the other has none (two different motifs); unverified
    when the overlap is too plain for its layout to tell anything."""
    summary = (
        f"{comparison.agreement:.0%} of {comparison.blocks} blocks agree (need "
        f"{settings.layout_agreement:.0%}); aligned by {comparison.alignment}; "
        f"{comparison.colour_change}"
    )
    if comparison.spread < settings.layout_min_spread:
        return VerifyOutcome.unverified, (
            f"too plain to compare: colour varies by {comparison.spread:.1f} over the overlap"
        )
    if comparison.overlay_a > 1 and comparison.overlay_b > 1:
        return VerifyOutcome.rejected, (
            f"each has detail the other lacks ({comparison.overlay_a} and "
            f"{comparison.overlay_b} blocks); {summary}"
        )
    allowed = max(
        settings.layout_contradictions,
        round(settings.layout_contradiction_share * comparison.blocks),
    )
    if comparison.contradicting > allowed:
        return VerifyOutcome.rejected, f"{comparison.contradicting} blocks differ; {summary}"
    # A flat ground agrees with any flat ground of a similar colour: only the blocks that stand
    # out (a motif, a gradient's bands) say whether the layouts are one. Too few of them and
    # the pair is undecided, unless what little stands out disagrees.
    if comparison.evidence < settings.layout_min_evidence:
        if comparison.contradicting > 1 and comparison.contradicting >= comparison.evidence:
            return VerifyOutcome.rejected, (
                f"the few blocks that stand out differ ({comparison.contradicting} differ, "
                f"{comparison.evidence} agree); {summary}"
            )
        shape = _same_mark(comparison, settings)
        if shape is None:
            return VerifyOutcome.unverified, (
                f"too plain to compare: {comparison.evidence} blocks stand out and agree (need "
                f"{settings.layout_min_evidence}); {summary}"
            )
        summary = f"{shape}; {summary}"
    # Most blocks of a small mark on a flat ground are ground, which agrees with any ground of a
    # similar colour: of the blocks that say something, nearly all must agree too. Where the
    # marks' shapes were compared, the few blocks they cover may differ a little more: a hard
    # JPEG washes a thin mark's colour out unevenly, and the fitted edit bounds what is left.
    telling = comparison.evidence + comparison.telling_contradicting
    share = (
        settings.mark_telling_disagreement
        if comparison.evidence < settings.layout_min_evidence
        else settings.layout_telling_disagreement
    )
    if comparison.telling_contradicting > max(1, share * telling):
        return VerifyOutcome.rejected, (
            f"{comparison.telling_contradicting} of the {telling} blocks that stand out differ; "
            f"{summary}"
        )
    if comparison.agreement < settings.layout_agreement:
        return VerifyOutcome.rejected, f"only {summary}"
    return colours_unknown(comparison, settings) or (VerifyOutcome.accepted, summary)


def _same_mark(comparison: LayoutComparison, settings: VerifySettings) -> str | None:
    """Words for a small mark that its copy covers closely enough to stand for the blocks that
    say too little (marks.py), under a colour edit modest enough that a look-alike mark in other
    colours is not taken for it (on the benchmark a ring cropped and turned 35 degrees in hue
    was another design's ring); None otherwise."""
    marks = comparison.marks
    gain = comparison.luma_gain
    if (
        marks is None
        or not marks.frame_to_frame
        or not marks.same_polarity
        or marks.pixels < settings.mark_min_pixels
        or marks.overlap < settings.mark_min_overlap
        or not 1 / settings.mark_max_gain <= gain <= settings.mark_max_gain
        or comparison.hue_turn > settings.mark_max_hue_turn
    ):
        return None
    return f"their marks cover each other ({marks.overlap:.0%} of {marks.pixels} px)"


def colours_unknown(
    comparison: LayoutComparison, settings: VerifySettings
) -> tuple[VerifyOutcome, str] | None:
    """Whether a plain picture's layout agreement says nothing for want of colour: a plain
    picture and its recoloured look-alike (the same bottle in green and in purple) differ in
    their colours alone, and a greyscale copy cannot show them. Unverified when one side is
    greyscale and the other is not; when both are, unless their grey levels are the same (a
    re-save of one grey picture, not greyscale copies of two colourings)."""
    if comparison.grey_sides == 1:
        return VerifyOutcome.unverified, (
            f"one is greyscale: a plain picture's colours, which it no longer shows, are what "
            f"tell it from a recoloured look-alike ({comparison.colour_change})"
        )
    if comparison.grey_sides == 2 and (
        abs(comparison.luma_gain - 1) > settings.grey_max_gain_change
        or abs(comparison.luma_offset) > settings.grey_max_offset
    ):
        return VerifyOutcome.unverified, (
            f"both are greyscale and their grey levels differ ({comparison.colour_change}): "
            "they may be greyscale copies of two colourings of one picture"
        )
    return None


def hue_turn(a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray) -> float | None:
    """Degrees by which the hues of b, aligned by `b_to_a` (a map between the grey thumbnails),
    are turned from a's where both are coloured: the chroma-weighted circular mean of the
    difference. None when too little of the overlap is coloured on both sides (a greyscale
    copy, a grey picture), for then hue says nothing."""
    overlap = _target_first(a, b, from_thumbnail(b, a, b_to_a))
    target, other, target_to_other = overlap.target, overlap.other, overlap.target_to_other
    ycc_t = _rendering(target)
    warped = _warped(_rendering(other), target_to_other, ycc_t.shape[:2])
    seen = np.all(warped > _VALID, axis=2)
    chroma_t = np.hypot(ycc_t[..., 1], ycc_t[..., 2])
    chroma_o = np.hypot(warped[..., 1], warped[..., 2])
    coloured = seen & (chroma_t >= HUE_CHROMA) & (chroma_o >= HUE_CHROMA)
    if coloured.sum() < HUE_MIN_PIXELS:
        return None
    turn = np.arctan2(ycc_t[..., 1], ycc_t[..., 2]) - np.arctan2(warped[..., 1], warped[..., 2])
    weight = np.minimum(chroma_t, chroma_o)[coloured]
    mean = math.atan2(
        float((weight * np.sin(turn[coloured])).sum()),
        float((weight * np.cos(turn[coloured])).sum()),
    )
    return abs(math.degrees(mean))


def page_alignments(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> list[np.ndarray]:
    """For pages too bare for keypoints: the REFINED most promising layout alignments, refined,
    as maps between the (untrimmed) grey thumbnails, for the page comparison to judge."""
    candidates = candidate_alignments(a, b)
    ranked = sorted(candidates, key=lambda c: -_prescore(a, b, c, settings))[:REFINED]
    to_a = transforms.grid_scale(a.colour.shape[:2], a.shape)
    from_b = transforms.inverse(transforms.grid_scale(b.colour.shape[:2], b.shape))
    return [to_a @ refine(a, b, candidate.matrix) @ from_b for candidate in ranked]
