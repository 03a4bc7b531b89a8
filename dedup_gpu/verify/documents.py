"""Text records: telling a page from a photo, its pen strokes, and the stroke-by-stroke
comparison that tells a rescan of a record (same strokes, thickened, thinned or greyed) from
another record of the same template (another date, name or amount)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import transforms
from .settings import (
    BILEVEL_EDGES,
    CARD_LIGHT_SHARE,
    CARD_TEXT_LINES,
    CARD_TEXT_ROWS,
    CARD_TEXT_SHARE,
    FRAME_FLAT_SHARE,
    FRAME_FLATNESS,
    FRAME_RING,
    FRAME_SQUARENESS,
    LONE_MARK_ELONGATION,
    LONE_MARK_PIECES,
    MIN_TEXT_STROKES,
    REFINE_SCALE,
    RULE_LENGTH,
    SHEET_BRIGHT_SHARE,
    SPECK,
    STROKE,
    TEXT_TOLERANCE,
    TEXT_WINDOW,
)

if TYPE_CHECKING:
    from .settings import VerifySettings
    from .thumbnails import Thumbnail
    from .verifier import Mapper


def looks_like_document(
    rgb: np.ndarray, grey: np.ndarray | None = None, *, frame_depth: int = 0
) -> bool:
    """A paper page or a card, alone or photographed lying on something. Mostly near-white
    paper, little colour, and the rest thin dark strokes (text, rules, boxes) rather than shaded
    areas. Text pages and forms, scanned, faxed or generated, pass; photos, including bright
    ones and objects on white, do not. When the whole picture is not a page, each four-sided
    bright region in it (a sheet or a card on a table, `_sheets`) that is nearly all bright is
    squared up, its uneven light evened out, and tested the same way; a picture in a digital
    frame is tested without its frame."""
    import cv2

    if grey is None:  # `grey`: the same image in grey, when the caller has it already
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if _is_page(rgb, grey) or _is_card(grey):
        return True
    sheets = _sheets(grey)
    frames = [corners for corners in sheets if _framed(rgb, corners)]
    if frames and frame_depth < 2:
        # A picture in a digital frame (a border, a letterbox, a window on a flat ground) is
        # tested as the picture: the frame would make any bright area in it a sheet on a table.
        outer = max(frames, key=lambda corners: float(np.prod(np.ptp(corners, axis=0))))
        left, top = np.floor(outer.min(axis=0)).astype(int) + 2
        right, bottom = np.ceil(outer.max(axis=0)).astype(int) - 2
        if min(bottom - top, right - left) >= 16:
            picture = np.ascontiguousarray(rgb[max(top, 0) : bottom, max(left, 0) : right])
            return looks_like_document(picture, frame_depth=frame_depth + 1)
    for corners in sheets:
        flat_grey = _squared_up(grey, corners)
        # Evening out the light would flatten any picture into paper and strokes: the sheet
        # must be paper before that, nearly all of it at least half as bright as its paper (a
        # shadow over a page darkens it less; a photo's shaded areas are darker).
        if (flat_grey >= 0.5 * np.percentile(flat_grey, 95)).mean() < SHEET_BRIGHT_SHARE:
            continue
        # Light falling off across a photographed sheet: divide by the paper's own level (the
        # grey with the ink closed over, smoothed), so the sheet reads as evenly white.
        closed = cv2.morphologyEx(flat_grey, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
        level = cv2.GaussianBlur(closed.astype(np.float32), (0, 0), 8.0)
        even = np.clip(flat_grey.astype(np.float32) * (235.0 / np.maximum(level, 1.0)), 0, 255)
        even = even.astype(np.uint8)
        if _is_page(_squared_up(rgb, corners), even) or _is_card(even):
            return True
    return False


def _framed(rgb: np.ndarray, corners: np.ndarray) -> bool:
    """Whether the region `corners` is an upright rectangle (within 1.5% of the picture's
    size) on a flat colour: nearly all of a ring FRAME_RING pixels wide round it within 12
    levels of its median in every channel. A sheet photographed on a table is seen at an angle
    or on a surface with grain and light falling off across it; a picture in a border or in a
    screenshot's window is not."""
    import cv2

    rows, columns = rgb.shape[:2]
    top_left, top_right, bottom_right, bottom_left = corners
    slack_x, slack_y = FRAME_SQUARENESS * columns, FRAME_SQUARENESS * rows
    if (
        abs(top_left[0] - bottom_left[0]) > slack_x
        or abs(top_right[0] - bottom_right[0]) > slack_x
        or abs(top_left[1] - top_right[1]) > slack_y
        or abs(bottom_left[1] - bottom_right[1]) > slack_y
    ):
        return False
    inside = np.zeros((rows, columns), np.uint8)
    cv2.fillConvexPoly(inside, np.round(corners).astype(np.int32), 1)
    # The ring round the region, leaving out its edge (a drop shadow, JPEG ringing): a frame,
    # or the window or page a picture is shown in, is flat right round it.
    edge = cv2.dilate(inside, np.ones((5, 5), np.uint8))
    ring = cv2.dilate(inside, np.ones((2 * FRAME_RING + 5,) * 2, np.uint8)) & ~edge
    surround = rgb[ring.astype(bool)].astype(np.int16)
    if len(surround) < 0.01 * rows * columns:
        return False
    off = np.abs(surround - np.median(surround, axis=0)).max(axis=1)
    return bool((off <= FRAME_FLATNESS).mean() >= FRAME_FLAT_SHARE)


def _paper_level(pixels: np.ndarray) -> int:
    """The 90th percentile of grey `pixels` (uint8), from a histogram: a sort of every pixel
    costs more than the rest of the page test."""
    return int(np.searchsorted(np.cumsum(np.bincount(pixels, minlength=256)), 0.9 * pixels.size))


def _is_card(grey: np.ndarray) -> bool:
    """A record that is not a plain page: an ID card, a badge, a label, a receipt with a logo.
    Coloured bands, a portrait or a pattern rule out `_is_page`, but most of the picture is
    still light ground carrying lines of thin dark text. What decides such records is their
    text, as on a page: two ID cards of one design differ only in a few fields."""
    import cv2

    ground = _paper_level(grey.ravel())
    if ground < 170:
        return False
    light = grey >= ground - 40
    if light.mean() < CARD_LIGHT_SHARE:
        return False
    # Thin dark detail (black-hat, narrower than 7 px at thumbnail size) touching the ground.
    thin = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, np.ones((7, 7), np.uint8)) > 60
    touching = cv2.dilate(light.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    text = thin & touching
    if text.mean() < CARD_TEXT_SHARE:
        return False
    # A card carries many lines of text, or (dithered by a fax) fine detail down much of its
    # height; a caption or meme text over a picture on a light ground is a band or two (an
    # addition to the picture, not a record). Lines: runs of rows with text in them.
    rows = (text.mean(axis=1) > 0.01).astype(np.int8)
    lines = int(rows[0]) + int((np.diff(rows) == 1).sum())
    return lines >= CARD_TEXT_LINES or bool(rows.mean() >= CARD_TEXT_ROWS)


def _sheets(grey: np.ndarray) -> list[np.ndarray]:
    """The corners (float32 [4, 2], x y, clockwise from top left) of bright four-sided regions
    covering a sixth to nearly all of the picture and running off at most one of its edges: a
    sheet, a receipt or a card photographed on a table. One brightness cut cannot find every
    sheet (a white page on a light table, a pink card on wood, a shadow across it), so several
    are tried: every 5th percentile from the 40th to the 85th and Otsu's; and the outline of
    the largest closed contour of edges (a sheet barely brighter than the table). Each region is
    kept once."""
    import cv2

    otsu, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    percentiles = np.percentile(grey, np.arange(40, 90, 5))
    levels = {round(float(level)) for level in percentiles} | {round(otsu)}
    found: list[np.ndarray] = []
    near = 0.02 * max(grey.shape)
    outlined = _outlined_quadrilateral(grey)
    for corners in [outlined, *(_bright_quadrilateral(grey, level) for level in sorted(levels))]:
        if corners is not None and not any(np.abs(corners - f).max() < near for f in found):
            found.append(corners)
    return found


def _bright_quadrilateral(grey: np.ndarray, level: float) -> np.ndarray | None:
    """`_sheets` for one brightness `level`: the largest region at least that bright, if it is
    a sheet's shape; else None."""
    import cv2

    bright = (grey >= level).astype(np.uint8)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright)
    if count <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    left, top, width, height, area = (int(value) for value in stats[largest])
    if not grey.size / 6 <= area <= 0.95 * grey.size:
        return None
    if _edges_run_off(grey.shape, left, top, width, height) > 1:
        return None
    region = (labels == largest).astype(np.uint8)
    # Fill the ink inside the sheet.
    region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    # A sheet seen at an angle is a convex quadrilateral; a sky or a white wall is not.
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(contours, key=cv2.contourArea)
    hull = cv2.convexHull(outline)
    hull_area = cv2.contourArea(hull)
    if hull_area <= 0 or cv2.contourArea(outline) < 0.92 * hull_area:
        return None
    return _corners_of(hull)


def _outlined_quadrilateral(grey: np.ndarray) -> np.ndarray | None:
    """The convex outline of the largest contour of edges (Canny), if it is four-sided, covers
    a sixth of the picture or more and runs off at most one of its edges; else None."""
    import cv2

    edges = cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), 20, 60)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    if cv2.contourArea(hull) < grey.size / 6:
        return None
    if _edges_run_off(grey.shape, *cv2.boundingRect(hull)) > 1:
        return None
    return _corners_of(hull)


def _edges_run_off(shape: tuple[int, ...], left: int, top: int, width: int, height: int) -> int:
    """How many of the picture's edges a region's bounding box touches. A sheet photographed on
    a table shows the table round it: a bright region running off two or more edges of the
    picture is a sky, a wall or a page filling the frame."""
    rows, columns = shape[:2]
    return (top <= 1) + (left <= 1) + (top + height >= rows - 1) + (left + width >= columns - 1)


def _corners_of(hull: np.ndarray) -> np.ndarray | None:
    """A convex outline's four corners, clockwise from the top left; None unless it is
    four-sided."""
    import cv2

    corners = cv2.approxPolyDP(hull, 0.04 * cv2.arcLength(hull, True), True)
    if len(corners) != 4:
        return None
    points = corners.reshape(4, 2).astype(np.float32)
    # Smallest x + y, smallest y - x, largest x + y, largest y - x.
    total, difference = points.sum(axis=1), points[:, 1] - points[:, 0]
    order = [np.argmin(total), np.argmin(difference), np.argmax(total), np.argmax(difference)]
    return points[order] if len(set(order)) == 4 else None


def _squared_up(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The quadrilateral `corners` of `image` warped to an upright rectangle as large as its
    sides, less a 3% margin all round (the sheet's edge, its shadow)."""
    import cv2

    top_left, top_right, bottom_right, bottom_left = corners
    width = max(np.linalg.norm(top_right - top_left), np.linalg.norm(bottom_right - bottom_left))
    height = max(np.linalg.norm(bottom_left - top_left), np.linalg.norm(bottom_right - top_right))
    width, height = max(8, round(float(width))), max(8, round(float(height)))
    inset_x, inset_y = 0.03 * width, 0.03 * height
    target = np.array(
        [
            [-inset_x, -inset_y],
            [width - 1 + inset_x, -inset_y],
            [width - 1 + inset_x, height - 1 + inset_y],
            [-inset_x, height - 1 + inset_y],
        ],
        np.float32,
    )
    matrix = cv2.getPerspectiveTransform(corners, target)
    return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR)


def _is_page(rgb: np.ndarray, grey: np.ndarray) -> bool:
    """The page test of `looks_like_document` over the whole of `rgb` (and its `grey`)."""
    import cv2

    count = grey.size
    if not count:
        return False
    paper = _paper_level(grey.ravel())
    if paper < 170:  # a grey or dark background is not paper
        return False
    on_paper = grey >= paper - 40
    if on_paper.sum() < 0.6 * count:
        return False
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # uint8 is safe: the largest channel is never below the smallest.
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    if (chroma > 60).sum() > 0.08 * count:
        return False
    off_paper = ~on_paper
    if not off_paper.any():
        return False  # a blank sheet, a white frame, a sky: nothing says document
    # Off the paper, a page has ink strokes a few pixels wide, nearly all next to paper; a
    # photo's darker regions are broad shaded areas. Grow the paper by 2 px and see what is left.
    grown = cv2.dilate(on_paper.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    broad = (off_paper & ~grown).sum() / off_paper.sum()
    return bool(broad < 0.35) and not _lone_mark(off_paper)


def _lone_mark(ink: np.ndarray) -> bool:
    """Whether the ink on a page-like picture (bool) is one compact mark (a ring, a monogram, a
    logo alone on a card), not text: a page's text is many pieces, or, blurred into words,
    a few pieces strung along lines."""
    import cv2

    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    pieces = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= SPECK]
    if not 0 < len(pieces) <= LONE_MARK_PIECES:
        return False
    left, top = pieces[:, cv2.CC_STAT_LEFT].min(), pieces[:, cv2.CC_STAT_TOP].min()
    right = (pieces[:, cv2.CC_STAT_LEFT] + pieces[:, cv2.CC_STAT_WIDTH]).max()
    bottom = (pieces[:, cv2.CC_STAT_TOP] + pieces[:, cv2.CC_STAT_HEIGHT]).max()
    sides = sorted((int(right - left), int(bottom - top)))
    return sides[1] < LONE_MARK_ELONGATION * max(sides[0], 1)


def ink_map(grey: np.ndarray) -> np.ndarray:
    """The pen strokes of a page (text, rules, ticks), uint8 0..255: a black-hat filter keeps dark
    detail narrower than STROKE and drops the paper tone, shaded fills and header bars, which
    rescanning lightens, darkens or binarises away. Scaled by its own strong strokes, so contrast
    changes cancel."""
    import cv2

    blurred = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
    strokes = cv2.morphologyEx(blurred, cv2.MORPH_BLACKHAT, np.ones((STROKE, STROKE), np.uint8))
    strong = max(float(np.percentile(strokes, 99.5)), 1.0)
    return np.clip(strokes * (255.0 / strong), 0, 255).astype(np.uint8)


def is_bilevel(grey: np.ndarray) -> bool:
    """A black-and-white page (a fax, a bitonal scan, dithered or not): almost no pixel is a
    shade between ink and paper, and few against its ink. Its strokes are broken and thickened
    anew at each size it is sampled at, so two such copies are never accepted on their text
    alone. A page rendered with smooth type (a short note on white) has as few grey pixels on
    the page, but its letters' edges are 16-30% of its ink; a fax's, re-saved as a JPEG of
    quality 50, at most 5% (verify_eval seed 1)."""
    histogram = np.bincount(grey.ravel(), minlength=256)
    shades, ink = int(histogram[48:208].sum()), int(histogram[:48].sum())
    return bool(shades < 0.01 * grey.size and shades <= BILEVEL_EDGES * (shades + ink))


def shrunk_ink(ink: np.ndarray) -> np.ndarray:
    """Strokes averaged down by REFINE_SCALE and blurred a little: smooth enough for ECC."""
    import cv2

    small = cv2.resize(
        ink.astype(np.float32), None, fx=REFINE_SCALE, fy=REFINE_SCALE, interpolation=cv2.INTER_AREA
    )
    return cv2.GaussianBlur(small, (0, 0), 0.75)


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], **options) -> np.ndarray:
    """`image` resampled through `matrix` (3 x 3, image pixels -> output pixels) onto an output
    of (height, width) `size`: an affine warp where the map is affine, else a perspective one."""
    import cv2

    height, width = size
    if transforms.is_affine(matrix):
        return cv2.warpAffine(image, matrix[:2], (width, height), **options)
    return cv2.warpPerspective(image, matrix, (width, height), **options)


def refine_alignment(a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray) -> np.ndarray:
    """`b_to_a` (3 x 3, document pixels) corrected to a fraction of a pixel: the keypoint fit
    comes from 320 px thumbnails, a few pixels off at DOCUMENT_SIZE, while telling strokes apart
    needs them within one. OpenCV's ECC (enhanced correlation coefficient) fits the remaining
    error (affine, or a homography where the fit is one) on the strokes shrunk by REFINE_SCALE;
    where it does not converge (mostly different pages) the keypoint fit stands."""
    import cv2

    target, moving = a.shrunk_ink(), b.shrunk_ink()
    # Pixel centres at full size x and shrunk u relate as x = k u + (k - 1) / 2, k = 1 / scale.
    k = 1.0 / REFINE_SCALE
    to_full = np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2], [0.0, 0.0, 1.0]])
    shrunk_b_to_a = transforms.inverse(to_full) @ b_to_a @ to_full
    mapped = warp(moving, shrunk_b_to_a, target.shape)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    perspective = not transforms.is_affine(b_to_a)
    motion = cv2.MOTION_HOMOGRAPHY if perspective else cv2.MOTION_AFFINE
    start = np.eye(3, dtype=np.float32) if perspective else np.eye(2, 3, dtype=np.float32)
    try:
        _, found = cv2.findTransformECC(target, mapped, start, motion, criteria, None, 1)
    except cv2.error:
        return b_to_a
    correction = found.astype(np.float64)
    if not perspective:
        correction = transforms.from_affine(correction)
    # ECC's warp takes a pixel of a to the pixel of mapped b that matches it (shrunk).
    a_to_mapped = to_full @ correction @ transforms.inverse(to_full)
    return transforms.inverse(a_to_mapped) @ b_to_a


def to_detail(image: Thumbnail) -> np.ndarray:
    """The map from (trimmed) thumbnail pixels to the pixels of the detail rendering."""
    return image.to_rendering(image.detail_shape)


@dataclass(frozen=True)
class TextComparison:
    """Two pages compared stroke by stroke (`text_differences`)."""

    differing: int  # text windows where one page has a stroke the other lacks
    windows: int  # text windows both pages cover
    resolution: float  # the coarser rendering's side against the finer's (1.0: alike)
    bilevel: bool  # both pages are black and white only (faxes, bitonal scans)
    text_height: float  # px, the typical character's height in the compared rendering


def text_differences(
    pairs: Sequence[tuple[Thumbnail, Thumbnail, np.ndarray]],
    settings: VerifySettings,
    mapper: Mapper = map,
) -> list[TextComparison]:
    """A TextComparison for each pair of documents (a, b, b->a map).

    b's pen strokes are mapped onto a's document rendering, the keypoint alignment is refined to
    a fraction of a pixel (`refine_alignment`), and each TEXT_WINDOW square is compared stroke by
    stroke: a window differs when `text_unmatched_pixels` or more of one side's sure strokes
    (rules and specks left out, `characters`) have no trace of ink on the other side within
    TEXT_TOLERANCE pixels. A rescan's strokes land on the
    same strokes whether the scanner thickened, thinned or greyed them; another value in a field
    leaves strokes over blank paper or between the other's letters. Only windows that both pages
    cover count. Pages are compared at the coarser of the two renderings' resolutions. OpenCV
    does the work (it releases the GIL, so pairs run on `mapper`'s threads);
    a GPU does not pay for this: only pairs of near-identical pages get here.
    """
    return list(mapper(lambda pair: _text_windows(*pair, settings), pairs))


def _text_windows(
    a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray, settings: VerifySettings
) -> TextComparison:
    import cv2

    to_a = to_detail(a) @ b_to_a @ transforms.inverse(to_detail(b))
    # How wide one of b's pixels lands on a, mid-page: above 1 where b is the coarser rendering
    # (a fax kept at its own size, a photo in which the page fills part of the frame).
    height, width = b.detail_shape
    resolution = transforms.local_scale(to_a, (width / 2, height / 2))
    if resolution > 1.0:
        # Compared at the coarser of the two renderings (a fax kept at its own size): strokes
        # enlarged from a coarse page are blurred wider than any tolerance a sharp one allows.
        a, b, to_a = b, a, transforms.inverse(to_a)
        resolution = 1.0 / resolution
    to_a = refine_alignment(a, b, to_a)
    ink_a, ink_b = a.ink(), b.ink()
    height, width = ink_a.shape
    mapped = warp(ink_b, to_a, ink_a.shape, borderValue=0)
    covered = warp(np.ones_like(ink_b), to_a, ink_a.shape, flags=cv2.INTER_NEAREST, borderValue=0)
    near = np.ones((2 * TEXT_TOLERANCE + 1,) * 2, np.uint8)
    rows, columns = height // TEXT_WINDOW, width // TEXT_WINDOW

    def window_sums(mask: np.ndarray) -> np.ndarray:
        """Pixels set in each TEXT_WINDOW square, counted exactly (an integral image read at
        the window corners: one pass over the page)."""
        inside = mask[: rows * TEXT_WINDOW, : columns * TEXT_WINDOW].astype(np.uint8)
        corners = cv2.integral(inside)[::TEXT_WINDOW, ::TEXT_WINDOW]
        return np.diff(np.diff(corners, axis=0), axis=1)

    # Sure strokes, rules and specks left out, found in each page's own frame (where its rules
    # run straight across and down) once per page, then b's carried onto a with the ink.
    threshold = round(255 * settings.stroke_ink)
    sure_a = a.characters(threshold, ink_a)
    sure_b = warp(b.characters(threshold, ink_b).astype(np.uint8), to_a, ink_a.shape) > 0
    strokes, unmatched = [], []
    for sure, other in ((sure_a, mapped), (sure_b, ink_a)):
        traced = cv2.dilate((other >= round(255 * settings.trace_ink)).astype(np.uint8), near)
        strokes.append(window_sums(sure))
        unmatched.append(window_sums(sure & (traced == 0)))
    text = (window_sums(covered) == TEXT_WINDOW**2) & (strokes[0] + strokes[1] >= MIN_TEXT_STROKES)
    # A window differs when one side has a stroke the other lacks: enough pixels of it to be
    # part of a character (a changed digit), counted, not as a share of the window's strokes
    # (a bold figure's many strokes would hide the change).
    differ = text & (
        (unmatched[0] >= settings.text_unmatched_pixels)
        | (unmatched[1] >= settings.text_unmatched_pixels)
    )
    return TextComparison(
        int(differ.sum()),
        int(text.sum()),
        resolution,
        a.bilevel and b.bilevel,
        max(a.text_height, b.text_height * resolution),
    )


def text_height(glyphs: np.ndarray) -> float:
    """The median height (px) of a page's characters (`characters` of its sure strokes), gaps
    of a pixel closed (a fax breaks letters up), as connected components."""
    import cv2

    closed = cv2.morphologyEx(glyphs.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(closed)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    heights = heights[heights >= 3]
    return float(np.median(heights)) if heights.size else 0.0


def characters(strokes: np.ndarray) -> np.ndarray:
    """Of a page's sure strokes (bool), those that can belong to characters: rules (runs longer
    than RULE_LENGTH across or down, which a table repeats on every fill) and specks (dust, a
    fax's noise: components under SPECK pixels) are left out. Rules still count as ink a stroke
    may lie on; only the strokes that are compared drop them."""
    import cv2

    mask = strokes.astype(np.uint8)
    across = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, RULE_LENGTH), np.uint8))
    down = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((RULE_LENGTH, 1), np.uint8))
    mask &= ~(across | down) & 1
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= SPECK
    keep[0] = False
    return keep[labels]
