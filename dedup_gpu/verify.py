"""Stage 6: verification. Each candidate pair from the k-NN search is re-checked at a higher
resolution before grouping, so that copies (crops, rotations, re-saves, captions, rescans) pass
and look-alikes (another fill of one form, the next page, another shot of one scene) fail.

Two steps per pair:
1. Geometry: ORB keypoints and RANSAC fit a similarity transform (crop, scale, rotation,
   translation; the mirror image is tried when the plain fit is weak). A copy has many
   consistent matches.
2. Content: the two images are aligned by that transform and compared block by block with
   normalised cross-correlation, which ignores brightness, contrast and colour changes. A copy
   agrees almost everywhere they overlap; a different shot of one scene leaves blocks that
   disagree. Photos may differ in a minority of blocks, and detail on one side only (a caption
   or logo drawn over the photo) does not count.
3. Documents (paper-like pages) that pass the block grid are compared once more, stroke by
   stroke at DOCUMENT_SIZE after refining the alignment to a fraction of a pixel, because one
   changed value on a form is a different record while a rescan may thicken, thin or grey every
   stroke.

Thumbnails come from the embedding pass when it kept them, else are decoded again; keypoints run
in DataLoader worker processes; the block statistics are batched in torch on the scan's device.
Hand-written because no library offers copy verification as such: OpenCV gives the keypoints,
RANSAC, ECC alignment and warping, torch the batched block statistics.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .data import DEFAULT_MAX_PIXELS, decode_image, default_workers
from .errors import BadArgumentError
from .index import Pairs
from .progress import progress_bars
from .records import Verdict, VerifyMode

THUMBNAIL_SIZE = 320  # longest side of the images verification looks at
MIN_DETECTION_SIZE = 256  # smaller thumbnails are enlarged to this for keypoint detection
ORB_FEATURES = 500  # matching cost grows with the square of this; 500 finds crops to 30% area
CANVAS = 192  # both images are sampled onto a CANVAS x CANVAS grid for the block comparison
BLOCK = 16  # -> a 12 x 12 grid of blocks
# Documents are compared in more detail: one changed value on a form is a different record, and
# at 320 px a line of text is three pixels high. At DOCUMENT_SIZE body text is about 8 px high.
DOCUMENT_SIZE = 1024
TEXT_WINDOW = 24  # px of the document rendering: two or three characters of body text
TEXT_TOLERANCE = 1  # px a stroke may be from the other page's ink once aligned (resampling)
MIN_TEXT_STROKES = 8  # sure-stroke pixels (both sides) that make a window worth comparing
TEMPLATE_SIZE = 96  # px, longest side of the larger picture when searching for a crop in it
TEMPLATE_MIN_SHARE = 0.2  # smallest share of the larger picture's area searched for a crop
TEMPLATE_PEAK = 0.6  # correlation at search size worth refining
# ... and at thumbnail size before the blocks are compared: a crop scores 0.90-0.99 (eval); two
# smooth pictures can place one inside the other at 0.75 and still agree block by block.
TEMPLATE_MATCH = 0.9
REFINE_SCALE = 0.25  # alignment is refined on strokes shrunk this much: as precise, 4x cheaper
STROKE = 9  # px; ink narrower than this is a stroke (text, rules, ticks), wider is a fill
_OUTSIDE = -1e4

# map(function, items): the builtin, or a thread pool's (OpenCV releases the GIL while it works).
Mapper = Callable[[Callable[..., Any], Iterable[Any]], Iterator[Any]]


@dataclass(frozen=True)
class VerifySettings:
    """Decision thresholds; the values come from `dedup-gpu eval` runs (see docs/benchmarks.md)."""

    min_inliers: int = 8  # RANSAC-consistent keypoint matches for a geometric fit
    min_inlier_ratio: float = 0.25  # share of ratio-test matches that agree with the fit
    confident_inliers: int = 30  # a plain fit this strong: the mirror image is not tried
    ncc_agree: float = 0.5  # a block agrees when its correlation is at least this
    texture_std: float = 0.12  # block spread (in units of the image's own) that counts as detail
    one_sided_std: float = 0.35  # detail this strong on one side only is a disagreement
    photo_agreement: float = 0.8  # share of informative blocks that must agree, photos
    document_screen: float = 0.6  # documents agreeing less than this on the block grid differ
    stroke_ink: float = 0.5  # ink (share of a page's strong strokes) that is surely a stroke
    trace_ink: float = 0.15  # ink that may be a stroke the scanner lightened or blurred
    text_unmatched: float = 0.15  # a text window differs when this share of strokes is unmatched
    text_differences: int = 3  # documents with more differing text windows are other records
    whole_frame_agreement: float = 0.95  # ... when no keypoint fit was found (blur, tiny copies)
    min_blocks: int = 6  # fewer informative blocks than this: too little to judge
    min_keypoints: int = 30  # an image with fewer has too little detail for a keypoint verdict
    fallback_threshold: float = 0.55  # decides pairs too plain to verify; scans pass the model's
    plain_disagreement: float = 0.5  # ... unless compared whole they agree less than this


def opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_mode(mode: VerifyMode | str) -> bool:
    """Whether to verify; `on` without OpenCV is an argument error, `auto` quietly degrades."""
    try:
        mode = VerifyMode(mode)
    except ValueError as error:
        raise BadArgumentError(
            f"unknown --verify mode {mode!r}", hint="use auto, on or off"
        ) from error
    if mode is VerifyMode.off:
        return False
    if opencv_available():
        return True
    if mode is VerifyMode.on:
        raise BadArgumentError(
            "--verify on needs OpenCV, which is not installed",
            hint="pip install opencv-python-headless, or use --verify off",
        )
    return False


@dataclass
class _Keypoints:
    points: np.ndarray  # float32 [n, 2], x y in thumbnail pixels
    descriptors: np.ndarray | None  # uint8 [n, 32], None when nothing was found


class Thumbnail:
    """What verification needs of one image: a grey thumbnail, its keypoints (and those of its
    mirror image, found on first use) and whether it looks like a paper document."""

    def __init__(self, rgb: np.ndarray):
        import cv2

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        self.document = looks_like_document(rgb, grey)
        # Letterbox bars and solid frames are not content: compared against another copy's
        # different padding they would make every block along the picture's edge disagree.
        self.grey = grey if self.document else trim_padding(grey)
        self.keypoints = _keypoints(self._detection_image(self.grey))
        # The pen strokes of a larger rendering, for documents only (see add_detail).
        self.ink: np.ndarray | None = None
        self.shrunk_ink: np.ndarray | None = None  # float32, REFINE_SCALE, for refine_alignment
        self._mirrored: _Keypoints | None = None
        self._pyramid: list[np.ndarray] = []

    def add_detail(self, rgb: np.ndarray) -> None:
        """The same image decoded larger (DOCUMENT_SIZE), for the document comparison."""
        import cv2

        self.ink = ink_map(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        self.shrunk_ink = _shrunk(self.ink)

    @property
    def shape(self) -> tuple[int, int]:
        return self.grey.shape  # type: ignore[return-value]

    @property
    def mirrored(self) -> _Keypoints:
        if self._mirrored is None:
            flipped = np.ascontiguousarray(self.grey[:, ::-1])
            self._mirrored = _keypoints(self._detection_image(flipped))
        return self._mirrored

    def level(self, pixels_per_sample: float) -> tuple[np.ndarray, float]:
        """The pyramid level (float32) whose pixels are about `pixels_per_sample` wide, so
        sampling it needs no further anti-aliasing, and that level's scale (level / image)."""
        import cv2

        if not self._pyramid:  # built whole, then published: threads may ask at once
            pyramid = [self.grey.astype(np.float32)]
            while min(pyramid[-1].shape) >= 16:
                pyramid.append(cv2.pyrDown(pyramid[-1]))
            self._pyramid = pyramid
        depth = int(np.floor(np.log2(max(pixels_per_sample, 1.0))))
        depth = min(depth, len(self._pyramid) - 1)
        return self._pyramid[depth], 0.5**depth

    @staticmethod
    def _detection_image(grey: np.ndarray) -> tuple[np.ndarray, float]:
        """Small copies are enlarged for keypoint detection: ORB ignores a 31-pixel border."""
        import cv2

        scale = max(1.0, MIN_DETECTION_SIZE / max(grey.shape))
        if scale == 1.0:
            return grey, 1.0
        size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
        return cv2.resize(grey, size, interpolation=cv2.INTER_LINEAR), scale

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pyramid"] = []  # rebuilt on demand; keeps worker-to-main transfers small
        return state


def trim_padding(grey: np.ndarray, tolerance: int = 10, margin: int = 2) -> np.ndarray:
    """`grey` without uniform bands along its edges (letterbox bars, borders, frames), as long as
    at least half of each side remains. A line counts as padding when nearly all its pixels are
    within `tolerance` of the band's colour (JPEG noise leaves a few off); where a band was
    found, `margin` more lines go too, because compression rings along the band's inner edge."""
    height, width = grey.shape

    def band(lines: np.ndarray) -> int:
        """How many leading lines are one flat colour, the colour of the first line."""
        level = int(np.median(lines[0]))
        allowed_off = 0.02 * lines.shape[1]
        count = 0
        # Line by line: most pictures have no padding and stop at the first line.
        while count <= len(lines) // 2:  # more than half would not be trimmed anyway
            off = np.count_nonzero(np.abs(lines[count].astype(np.int16) - level) > tolerance)
            if off > allowed_off:
                break
            count += 1
        return count + margin if count else 0

    top, bottom = band(grey), band(grey[::-1])
    left, right = band(grey.T), band(grey.T[::-1])
    if top + bottom > height // 2 or left + right > width // 2:
        return grey
    return np.ascontiguousarray(grey[top : height - bottom, left : width - right])


def looks_like_document(rgb: np.ndarray, grey: np.ndarray | None = None) -> bool:
    """A paper page: mostly near-white paper, little colour, and the rest thin dark strokes
    (text, rules, boxes) rather than shaded areas. Text pages and forms, scanned or generated,
    pass; photos, including bright ones and objects on white, do not."""
    import cv2

    if grey is None:  # `grey`: the same image in grey, when the caller has it already
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # The 90th percentile from a histogram: a sort of every pixel costs more than the rest.
    paper = int(
        np.searchsorted(np.cumsum(np.bincount(grey.ravel(), minlength=256)), 0.9 * grey.size)
    )
    if paper < 170:  # a grey or dark background is not paper
        return False
    on_paper = grey >= paper - 40
    if on_paper.mean() < 0.6:
        return False
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # uint8 is safe: the largest channel is never below the smallest.
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    if (chroma > 60).mean() > 0.08:
        return False
    off_paper = ~on_paper
    if not off_paper.any():
        return False  # a blank sheet or a white frame: nothing says document
    # Off the paper, a page has ink strokes a few pixels wide, nearly all next to paper; a
    # photo's darker regions are broad shaded areas. Grow the paper by 2 px and see what is left.
    grown = cv2.dilate(on_paper.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    broad = (off_paper & ~grown).sum() / off_paper.sum()
    return bool(broad < 0.35)


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


def _keypoints(detection: tuple[np.ndarray, float]) -> _Keypoints:
    import cv2

    image, scale = detection
    cv2.setNumThreads(1)  # runs in worker processes; parallelism comes from the workers
    found, descriptors = cv2.ORB_create(ORB_FEATURES).detectAndCompute(image, None)
    points = np.array([kp.pt for kp in found], dtype=np.float32).reshape(-1, 2)
    return _Keypoints(points=(points + 0.5) / scale - 0.5, descriptors=descriptors)


class _ThumbnailDataset(Dataset):
    def __init__(self, paths: Sequence[str], thumbnails: Sequence[bytes | None], max_pixels: int):
        self.paths = list(paths)
        self.thumbnails = list(thumbnails)
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Thumbnail | None]:
        try:
            path, kept = self.paths[index], self.thumbnails[index]
            if kept is not None:  # made by the embedding pass: no second read of the file
                with Image.open(io.BytesIO(kept)) as image:
                    rgb = np.asarray(image.convert("RGB"))
            else:
                rgb = decode_image(path, THUMBNAIL_SIZE, self.max_pixels, keep_aspect=True).pixels
            thumbnail = Thumbnail(rgb)
            if thumbnail.document:
                thumbnail.add_detail(
                    decode_image(path, DOCUMENT_SIZE, self.max_pixels, keep_aspect=True).pixels
                )
            return index, thumbnail
        except Exception:  # it decoded once for the embedding; treat it as unverifiable
            return index, None


def load_thumbnails(
    paths: Sequence[str],
    *,
    thumbnails: Sequence[bytes | None] | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> list[Thumbnail | None]:
    """Thumbnails and keypoints for `paths`, decoded in worker processes; None where it failed."""
    dataset = _ThumbnailDataset(paths, thumbnails or [None] * len(paths), max_pixels)
    workers = default_workers() if workers is None else workers
    workers = min(workers, len(paths) // 8)
    loader = DataLoader(
        dataset,
        batch_size=16,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=4 if workers > 0 else None,
    )
    thumbnails: list[Thumbnail | None] = [None] * len(paths)
    with progress_bars(progress and bool(paths)) as bars:
        task = bars.add_task("verifying: thumbnails", total=len(paths))
        for batch in loader:
            for index, thumbnail in batch:
                thumbnails[index] = thumbnail
            bars.advance(task, len(batch))
    return thumbnails


@dataclass
class _Alignment:
    matrix: np.ndarray | None  # 2x3, maps points of image b to image a (thumbnail pixels)
    method: str
    inliers: int


def _fit_similarity(
    a: _Keypoints, b: _Keypoints, settings: VerifySettings
) -> tuple[np.ndarray | None, int]:
    import cv2

    if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
        return None, 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = [
        pair[0]
        for pair in matcher.knnMatch(b.descriptors, a.descriptors, k=2)
        if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance
    ]
    if len(good) < settings.min_inliers:
        return None, 0
    source = b.points[[m.queryIdx for m in good]]
    target = a.points[[m.trainIdx for m in good]]
    matrix, inlier_mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000
    )
    if matrix is None:
        return None, 0
    inliers = int(inlier_mask.sum())
    if inliers < settings.min_inliers or inliers < settings.min_inlier_ratio * len(good):
        return None, inliers
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if not 1 / 16 < scale < 16:  # degenerate fits on repeated texture
        return None, inliers
    return matrix, inliers


def _mirror_matrix(width: int) -> np.ndarray:
    """Maps points of a mirrored image of `width` pixels to the unmirrored image (and back)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def _then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The 2x3 affine map `second(first(x))`."""
    full = np.vstack([second, [0, 0, 1]]) @ np.vstack([first, [0, 0, 1]])
    return full[:2]


def _inverse(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]


def alignments(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> list[_Alignment]:
    """Ways to map b's thumbnail onto a's worth comparing: the keypoint fits (plain and mirrored)
    and, for frames of the same shape, the whole frame stretched (for copies too small or too
    blurred for keypoints). The mirror image is tried when the plain fit is weak."""
    found = []
    matrix, inliers = _fit_similarity(a.keypoints, b.keypoints, settings)
    if matrix is not None:
        found.append(_Alignment(matrix, "keypoints", inliers))
    best = inliers
    if matrix is None or inliers < settings.confident_inliers:
        mirrored = mirrored_alignment(a, b, settings)
        best = max(best, mirrored.inliers)
        if mirrored.matrix is not None:
            found.append(mirrored)
    if not found and _same_aspect(a, b):
        found.extend(_whole_frame(a, b, best))
    if not found:
        found.append(_Alignment(None, "none", best))
    return found


def mirrored_alignment(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> _Alignment:
    """The keypoint fit of b's mirror image onto a (matrix None when there is none)."""
    matrix, inliers = _fit_similarity(a.keypoints, b.mirrored, settings)
    if matrix is not None:
        # b's mirrored keypoints live in the mirrored frame: unmirror first, then map.
        matrix = _then(_mirror_matrix(b.shape[1]), matrix)
    return _Alignment(matrix, "keypoints-mirrored", inliers)


def _whole_frame(a: Thumbnail, b: Thumbnail, inliers: int = 0) -> list[_Alignment]:
    """b's frame stretched onto a's, plain and mirrored."""
    (ah, aw), (bh, bw) = a.shape, b.shape
    stretch = np.array([[aw / bw, 0.0, 0.0], [0.0, ah / bh, 0.0]])
    return [
        _Alignment(stretch, "whole-frame", inliers),
        _Alignment(_then(_mirror_matrix(bw), stretch), "whole-frame-mirrored", inliers),
    ]


def template_alignment(a: Thumbnail, b: Thumbnail) -> _Alignment:
    """Where the smaller picture sits inside the larger, found by normalised cross-correlation
    over scales (OpenCV's matchTemplate): for crops too smooth or too repetitive for keypoints
    (an apple on a plain ground, a brick wall). Searched with the larger picture TEMPLATE_SIZE
    wide, then refined at thumbnail size; matrix None when no placement correlates well."""
    import cv2

    swapped = b.grey.size > a.grey.size
    large, small = (b, a) if swapped else (a, b)
    (lh, lw), (sh, sw) = large.shape, small.shape
    k = TEMPLATE_SIZE / max(lh, lw)
    searched = cv2.resize(large.grey, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    best = (-1.0, 0.0, (0, 0))
    # The smaller picture's share of the larger one's area: a crop keeps 20% of it or more.
    for share in np.geomspace(1.0, TEMPLATE_MIN_SHARE, 24):
        scale = float(np.sqrt(share * lh * lw / (sh * sw)))
        size = (round(sw * scale * k), round(sh * scale * k))
        found = _placement(searched, small.grey, size)
        if found is not None and found[0] > best[0]:
            best = (found[0], scale, found[1])
    peak, scale, corner = best
    if peak < TEMPLATE_PEAK:
        return _Alignment(None, "template", 0)
    # Refine at thumbnail size: a few nearby scales, within a few pixels of the coarse spot.
    reach = int(np.ceil(1 / k)) + 2
    left = max(0, round(corner[0] / k) - reach)
    top = max(0, round(corner[1] / k) - reach)
    refined = (-1.0, scale, (corner[0] / k, corner[1] / k))
    for factor in (0.97, 0.985, 1.0, 1.015, 1.03):
        size = (round(sw * scale * factor), round(sh * scale * factor))
        window = large.grey[top : top + size[1] + 2 * reach, left : left + size[0] + 2 * reach]
        found = _placement(window, small.grey, size)
        if found is not None and found[0] > refined[0]:
            spot = found[1]
            refined = (found[0], scale * factor, (left + spot[0], top + spot[1]))
    peak, scale, (x, y) = refined
    if peak < TEMPLATE_MATCH:
        return _Alignment(None, "template", 0)
    small_to_large = np.array([[scale, 0.0, x], [0.0, scale, y]])
    matrix = _inverse(small_to_large) if swapped else small_to_large
    return _Alignment(matrix, "template", 0)


def _placement(
    image: np.ndarray, picture: np.ndarray, size: tuple[int, int]
) -> tuple[float, tuple[int, int]] | None:
    """(correlation, top-left corner) of `picture` resized to `size` (w, h) where it best fits
    inside `image`; None when it does not fit, is too small, or is flat (nothing to correlate)."""
    import cv2

    if size[0] > image.shape[1] or size[1] > image.shape[0] or min(size) < 8:
        return None
    template = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    if template.std() < 2.0:
        return None
    _, peak, _, corner = cv2.minMaxLoc(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED))
    return float(peak), corner


def _same_aspect(a: Thumbnail, b: Thumbnail) -> bool:
    (ah, aw), (bh, bw) = a.shape, b.shape
    return abs(np.log((aw / ah) / (bw / bh))) < 0.05


def _on_canvas(
    image: Thumbnail, canvas_to_image: np.ndarray, canvas: int
) -> tuple[np.ndarray, np.ndarray]:
    """`image` resampled onto the canvas through the affine map canvas -> image pixels, from the
    pyramid level that matches the sampling step, plus the mask of canvas pixels it covers."""
    import cv2

    step = float(np.sqrt(abs(np.linalg.det(canvas_to_image[:, :2]))))
    level, scale = image.level(step)
    to_level = canvas_to_image * scale
    to_level[:, 2] += 0.5 * scale - 0.5  # pixel centres of the coarser level
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    # Outside the image the border value is far below any grey level, so one warp gives both
    # the pixels and (where interpolation touched the border) which canvas pixels are covered.
    pixels = cv2.warpAffine(level, to_level, (canvas, canvas), flags=flags, borderValue=_OUTSIDE)
    covered = (pixels >= 0).astype(np.float32)
    pixels = np.where(covered > 0, pixels, 0).astype(np.float32)
    return cv2.GaussianBlur(pixels, (0, 0), 1.0), covered


def _to_detail(image: Thumbnail) -> np.ndarray:
    """The map from thumbnail pixels to the pixels of the document rendering."""
    assert image.ink is not None
    sy, sx = image.ink.shape[0] / image.shape[0], image.ink.shape[1] / image.shape[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def block_agreement(
    pairs: Sequence[tuple[Thumbnail, Thumbnail, np.ndarray]],
    settings: VerifySettings,
    device: torch.device | str = "cpu",
    *,
    strict: bool = False,
    mapper: Mapper = map,
) -> list[tuple[float, int]]:
    """(share of informative blocks that agree, informative blocks) for each (a, b, b->a map).

    `strict`: detail on one side only counts as a difference, as it must for documents.
    `mapper` resamples the images (e.g. a thread pool's map).

    The canvas spans the frame of the smaller image, so a crop is compared over the crop and a
    downscaled copy at its own resolution. Both images are sampled from the pyramid level that
    matches the canvas and blurred by about a canvas pixel, so JPEG blocks, noise and resampling
    do not count as differences. The block statistics run batched in torch on `device`.
    """
    if not pairs:
        return []
    canvas, block = CANVAS, BLOCK
    jobs = []
    for a, b, b_to_a in pairs:
        if b.grey.size <= a.grey.size:
            target, other, target_to_other = b, a, b_to_a
        else:
            target, other, target_to_other = a, b, _inverse(b_to_a)
        th, tw = target.shape
        canvas_to_target = np.array([[tw / canvas, 0.0, 0.0], [0.0, th / canvas, 0.0]])
        canvas_to_target[:, 2] = [0.5 * tw / canvas - 0.5, 0.5 * th / canvas - 0.5]
        jobs.append((target, canvas_to_target))
        jobs.append((other, _then(canvas_to_target, target_to_other)))
    canvases = np.empty((len(jobs), canvas, canvas), dtype=np.float32)
    masks = np.empty((len(jobs), canvas, canvas), dtype=np.float32)

    def resample(start: int) -> None:
        for slot in range(start, min(start + 16, len(jobs))):
            image, matrix = jobs[slot]
            canvases[slot], masks[slot] = _on_canvas(image, matrix, canvas)

    for _ in mapper(resample, range(0, len(jobs), 16)):  # 16 at a time: fewer hand-offs
        pass
    stacked = torch.from_numpy(canvases).to(device)[:, None]
    covered = torch.from_numpy(masks).to(device)[:, None]
    x, y = stacked[0::2, 0], stacked[1::2, 0]
    weight = ((covered[0::2, 0] > 0.99) & (covered[1::2, 0] > 0.99)).float()

    def pooled(values: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(values[:, None], block)[:, 0]

    weighted_x, weighted_y = x * weight, y * weight
    coverage = pooled(weight)
    safe = coverage.clamp_min(1e-6)
    sum_x, sum_y = pooled(weighted_x), pooled(weighted_y)
    sum_xx, sum_yy = pooled(weighted_x * x), pooled(weighted_y * y)
    mean_x, mean_y = sum_x / safe, sum_y / safe
    std_x = (sum_xx / safe - mean_x**2).clamp_min(0).sqrt()
    std_y = (sum_yy / safe - mean_y**2).clamp_min(0).sqrt()
    ncc = (pooled(weighted_x * y) / safe - mean_x * mean_y) / (std_x * std_y).clamp_min(1e-6)
    # Block spreads in units of each image's own spread over the overlap (from the same block
    # sums), so a contrast change does not move blocks across the texture thresholds below.
    for sums, squares, std in ((sum_x, sum_xx, std_x), (sum_y, sum_yy, std_y)):
        area = coverage.flatten(1).sum(1).clamp_min(1e-6)
        mean = sums.flatten(1).sum(1) / area
        spread = (squares.flatten(1).sum(1) / area - mean**2).clamp_min(0).sqrt()
        std.div_(spread.clamp_min(1.0)[:, None, None])
    both = (std_x >= settings.texture_std) & (std_y >= settings.texture_std)
    # Detail on one side only (a filled-in field, an object that moved) is a disagreement;
    # faint texture on one side only is not (blur, JPEG smoothing).
    one_sided = (torch.maximum(std_x, std_y) >= settings.one_sided_std) & ~both
    covered = coverage > 0.9
    # Photos: only detail on both sides is evidence. Detail on one side only is an overlay
    # (caption, banner, a padding bar against a picture) and a copy may carry those. Documents:
    # a field filled on one page and blank on the other is a different record, so it counts.
    informative = covered & (both | one_sided) if strict else covered & both
    agree = covered & both & (ncc >= settings.ncc_agree)
    counts = informative.flatten(1).sum(1).cpu().numpy()
    agreeing = agree.flatten(1).sum(1).cpu().numpy()
    return [
        (float(ok / total) if total else 0.0, int(total))
        for ok, total in zip(agreeing, counts, strict=True)
    ]


def text_differences(
    pairs: Sequence[tuple[Thumbnail, Thumbnail, np.ndarray]],
    settings: VerifySettings,
    mapper: Mapper = map,
) -> list[tuple[int, int]]:
    """(differing text windows, text windows) for each pair of documents (a, b, b->a map).

    b's pen strokes are mapped onto a's document rendering, the keypoint alignment is refined to
    a fraction of a pixel (`refine_alignment`), and each TEXT_WINDOW square is compared stroke by
    stroke: a window differs when more than `text_unmatched` of one side's sure strokes have no
    trace of ink on the other side within TEXT_TOLERANCE pixels. A rescan's strokes land on the
    same strokes whether the scanner thickened, thinned or greyed them; another value in a field
    leaves strokes over blank paper or between the other's letters. Only windows that both pages
    cover count. OpenCV does the work (it releases the GIL, so pairs run on `mapper`'s threads);
    a GPU does not pay for this: only pairs of near-identical pages get here.
    """
    return list(mapper(lambda pair: _text_windows(*pair, settings), pairs))


def _text_windows(
    a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray, settings: VerifySettings
) -> tuple[int, int]:
    import cv2

    assert a.ink is not None and b.ink is not None
    to_a = _then(_then(_inverse(_to_detail(b)), b_to_a), _to_detail(a))
    to_a = refine_alignment(a, b, to_a)
    height, width = a.ink.shape
    mapped = cv2.warpAffine(b.ink, to_a, (width, height), borderValue=0)
    covered = cv2.warpAffine(
        np.ones_like(b.ink), to_a, (width, height), flags=cv2.INTER_NEAREST, borderValue=0
    )
    near = np.ones((2 * TEXT_TOLERANCE + 1,) * 2, np.uint8)
    rows, columns = height // TEXT_WINDOW, width // TEXT_WINDOW

    def window_means(mask: np.ndarray) -> np.ndarray:
        inside = mask[: rows * TEXT_WINDOW, : columns * TEXT_WINDOW].astype(np.float32)
        return cv2.resize(inside, (columns, rows), interpolation=cv2.INTER_AREA)

    strokes, unmatched = [], []
    for ink, other in ((a.ink, mapped), (mapped, a.ink)):
        sure = ink >= round(255 * settings.stroke_ink)
        traced = cv2.dilate((other >= round(255 * settings.trace_ink)).astype(np.uint8), near)
        strokes.append(window_means(sure))
        unmatched.append(window_means(sure & (traced == 0)))
    text = (window_means(covered) > 0.999) & (
        strokes[0] + strokes[1] >= MIN_TEXT_STROKES / TEXT_WINDOW**2
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.maximum(
            np.nan_to_num(unmatched[0] / strokes[0]), np.nan_to_num(unmatched[1] / strokes[1])
        )
    differ = text & (share > settings.text_unmatched)
    return int(differ.sum()), int(text.sum())


def _shrunk(ink: np.ndarray) -> np.ndarray:
    """Strokes averaged down by REFINE_SCALE and blurred a little: smooth enough for ECC."""
    import cv2

    small = cv2.resize(
        ink.astype(np.float32), None, fx=REFINE_SCALE, fy=REFINE_SCALE, interpolation=cv2.INTER_AREA
    )
    return cv2.GaussianBlur(small, (0, 0), 0.75)


def refine_alignment(a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray) -> np.ndarray:
    """`b_to_a` (2 x 3, document pixels) corrected to a fraction of a pixel: the keypoint fit
    comes from 320 px thumbnails, a few pixels off at DOCUMENT_SIZE, while telling strokes apart
    needs them within one. OpenCV's ECC (enhanced correlation coefficient) fits the remaining
    affine error on the strokes shrunk by REFINE_SCALE; where it does not converge (mostly
    different pages) the keypoint fit stands."""
    import cv2

    assert a.shrunk_ink is not None and b.shrunk_ink is not None
    # Pixel centres at full size x and shrunk u relate as x = k u + (k - 1) / 2, k = 1 / scale.
    k = 1.0 / REFINE_SCALE
    to_full = np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2]])
    shrunk_b_to_a = _then(_then(to_full, b_to_a), _inverse(to_full))
    height, width = a.shrunk_ink.shape
    mapped = cv2.warpAffine(b.shrunk_ink, shrunk_b_to_a, (width, height))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    identity = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(
            a.shrunk_ink, mapped, identity, cv2.MOTION_AFFINE, criteria, None, 1
        )
    except cv2.error:
        return b_to_a
    # ECC's warp takes a pixel of a to the pixel of mapped b that matches it (shrunk).
    a_to_mapped = _then(_then(_inverse(to_full), warp.astype(np.float64)), to_full)
    return _then(b_to_a, _inverse(a_to_mapped))


@dataclass
class _Comparison:
    agreement: float  # share of informative blocks (text windows for documents) that agree
    blocks: int  # informative blocks or text windows compared
    differing: int | None = None  # text windows that differ; None unless compared as text


def _decide(
    alignment: _Alignment,
    comparison: _Comparison,
    document: bool,
    settings: VerifySettings,
) -> tuple[bool, str]:
    agreement, blocks = comparison.agreement, comparison.blocks
    if blocks < settings.min_blocks:
        return False, f"too little detail to compare ({blocks} informative blocks)"
    aligned = f"aligned by {alignment.method}"
    if comparison.differing is not None:
        allowed = settings.text_differences
        counted = f"{comparison.differing} of {blocks} text windows differ (at most {allowed})"
        if comparison.differing <= allowed:
            return True, f"document: {aligned}, {counted}"
        return False, f"document: {aligned}, {counted}"
    if alignment.method.startswith("whole-frame"):
        needed = settings.whole_frame_agreement
    else:
        needed = settings.document_screen if document else settings.photo_agreement
    kind = "document" if document else "photo"
    share = f"{agreement:.0%} of {blocks} blocks agree"
    if agreement >= needed and not document:
        return True, f"{kind}: {aligned}, {share} (need {needed:.0%})"
    return False, f"{kind}: {aligned}, only {share} (need {needed:.0%})"


class Verifier:
    """Checks candidate pairs of images (rows of `paths`), decoding each image at most once.

    Every checked pair's Verdict is kept in `verdicts`, keyed by (left, right) row, so the report
    can explain both the pairs that were grouped and those that were turned down.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        thumbnails: Sequence[bytes | None] | None = None,
        settings: VerifySettings | None = None,
        device: torch.device | str = "cpu",
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = False,
    ):
        self.paths = list(paths)
        # A Sequence, read only for the rows verified (a catalog's fetches them on demand).
        self.kept = thumbnails if thumbnails is not None else [None] * len(self.paths)
        self.settings = settings or VerifySettings()
        self.device = torch.device(device)
        self.workers = workers
        self.max_pixels = max_pixels
        self.progress = progress
        self.verdicts: dict[tuple[int, int], Verdict] = {}
        self.seconds = 0.0
        import cv2

        # OpenCV's thread pool does not survive fork(): a worker forked after this process has
        # used it can deadlock on the pool's lock. Verification forks thumbnail workers after
        # warping in this process, so OpenCV runs single-threaded here (its work here is small).
        cv2.setNumThreads(1)
        self._thumbnails: dict[int, Thumbnail | None] = {}
        self._map: Mapper = map

    def __call__(self, pairs: Pairs) -> np.ndarray:
        """Whether each pair is a verified copy (bool array); verdicts are recorded."""
        return np.array([verdict.accepted for verdict in self.check(pairs)], dtype=bool)

    def check(self, pairs: Pairs) -> list[Verdict]:
        started = time.perf_counter()
        keys = list(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
        new = [key for key in dict.fromkeys(keys) if key not in self.verdicts]
        self._load({row for key in new for row in key})
        # Threads, not processes: the thumbnails live here, and OpenCV's matching, RANSAC and
        # warps release the GIL. The pool is gone again before the next _load forks workers.
        with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
            self._map = pool.map
            try:
                self._check_new(new, dict(zip(keys, pairs.score.tolist(), strict=True)))
            finally:
                self._map = map
        self.seconds += time.perf_counter() - started
        return [self.verdicts[key] for key in keys]

    def _check_new(self, new: list[tuple[int, int]], scores: dict[tuple[int, int], float]) -> None:
        candidates: list[tuple[tuple[int, int], _Alignment]] = []
        aligned = []
        for key in new:
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            if a is None or b is None:
                self.verdicts[key] = Verdict(
                    False, "none", 0, 0.0, 0, False, "could not decode the image again to verify"
                )
                continue
            detail = min(len(a.keypoints.points), len(b.keypoints.points))
            if detail < self.settings.min_keypoints:
                self.verdicts[key] = self._plain_verdict(a, b, scores[key], detail)
                continue
            aligned.append(key)
        fits = self._map(
            lambda key: alignments(
                self._thumbnails[key[0]], self._thumbnails[key[1]], self.settings
            ),
            aligned,
        )
        for key, found in zip(aligned, fits, strict=True):
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            for alignment in found:
                if alignment.matrix is None:
                    self.verdicts[key] = Verdict(
                        False,
                        "none",
                        alignment.inliers,
                        0.0,
                        0,
                        a.document and b.document,  # type: ignore[union-attr]
                        f"no geometric match ({alignment.inliers} consistent keypoints) and "
                        "the frames differ in shape",
                    )
                else:
                    candidates.append((key, alignment))
        self._compare(candidates)
        # A plain fit strong enough that the mirror image was not tried may still be the wrong
        # one (a symmetric subject, mirrored): pairs it left rejected get the mirrored fit too.
        strong_but_rejected = [
            key
            for key in new
            if not self.verdicts[key].accepted
            and self.verdicts[key].method == "keypoints"
            and self.verdicts[key].inliers >= self.settings.confident_inliers
        ]
        self._compare_realigned(strong_but_rejected, mirrored_alignment)
        # Crops too smooth or too repetitive for keypoints get one more try: the smaller picture
        # searched for inside the larger. Pages are left out (a form's other fill would be
        # found), and so are pairs a strong keypoint fit already placed.
        still_rejected = [
            key
            for key in new
            if not self.verdicts[key].accepted
            and not self.verdicts[key].document
            and self.verdicts[key].inliers < self.settings.confident_inliers
            and self._thumbnails[key[0]] is not None
            and self._thumbnails[key[1]] is not None
        ]
        self._compare_realigned(still_rejected, lambda a, b, _: template_alignment(a, b))

    def _compare_realigned(
        self,
        keys: list[tuple[int, int]],
        align: Callable[[Thumbnail, Thumbnail, VerifySettings], _Alignment],
    ) -> None:
        """Pairs aligned once more by `align` (on the thread pool) and compared where it found
        a fit; a verdict only changes if the new one is better."""
        found = self._map(
            lambda key: align(self._thumbnails[key[0]], self._thumbnails[key[1]], self.settings),
            keys,
        )
        self._compare(
            [
                (key, alignment)
                for key, alignment in zip(keys, found, strict=True)
                if alignment.matrix is not None
            ]
        )

    def _compare(self, candidates: list[tuple[tuple[int, int], _Alignment]]) -> None:
        """Block agreement per (pair, alignment); the most convincing verdict of a pair stands."""
        with progress_bars(self.progress and bool(candidates)) as bars:
            task = bars.add_task("verifying: comparing pairs", total=len(candidates))
            for start in range(0, len(candidates), 64):  # canvases of a chunk stay in cache
                chunk = candidates[start : start + 64]
                thumbs = [(self._thumbnails[k[0]], self._thumbnails[k[1]]) for k, _ in chunk]
                scores = self._agreement(
                    [(a, b, al.matrix) for (a, b), (_, al) in zip(thumbs, chunk, strict=True)]
                )
                for (key, alignment), (a, b), comparison in zip(chunk, thumbs, scores, strict=True):
                    document = bool(a.document and b.document)  # type: ignore[union-attr]
                    accepted, reason = _decide(alignment, comparison, document, self.settings)
                    verdict = Verdict(
                        accepted,
                        alignment.method,
                        alignment.inliers,
                        comparison.agreement,
                        comparison.blocks,
                        document,
                        reason,
                    )
                    previous = self.verdicts.get(key)
                    if previous is None or (verdict.accepted, verdict.agreement) > (
                        previous.accepted,
                        previous.agreement,
                    ):
                        self.verdicts[key] = verdict
                bars.advance(task, len(chunk))

    def _agreement(self, pairs: list[tuple[Thumbnail, Thumbnail, np.ndarray]]) -> list[_Comparison]:
        """Block agreement of each pair; pairs of documents that pass it, compared as text."""
        documents = [a.document and b.document for a, b, _ in pairs]
        results = [_Comparison(0.0, 0)] * len(pairs)
        photos = [slot for slot, doc in enumerate(documents) if not doc]
        pages = [slot for slot, doc in enumerate(documents) if doc]
        found = block_agreement(
            [pairs[slot] for slot in photos], self.settings, self.device, mapper=self._map
        )
        for slot, (agreement, blocks) in zip(photos, found, strict=True):
            results[slot] = _Comparison(agreement, blocks)
        # Most pairs of different pages already disagree on the block grid; only pairs that
        # might be one page are compared as text at the (dearer) document resolution.
        coarse = block_agreement(
            [pairs[slot] for slot in pages],
            self.settings,
            self.device,
            strict=True,
            mapper=self._map,
        )
        close = []
        for slot, (agreement, blocks) in zip(pages, coarse, strict=True):
            results[slot] = _Comparison(agreement, blocks)
            if agreement >= self.settings.document_screen:
                close.append(slot)
        fine = text_differences([pairs[slot] for slot in close], self.settings, self._map)
        for slot, (differing, windows) in zip(close, fine, strict=True):
            share = 1.0 - differing / windows if windows else 0.0
            results[slot] = _Comparison(share, windows, differing)
        return results

    def _plain_verdict(self, a: Thumbnail, b: Thumbnail, score: float, keypoints: int) -> Verdict:
        """Smooth images (sky, gradients, flat artwork) and fine textures give too few keypoints
        to align. Frames of one shape are still compared whole; if enough blocks carry detail
        and they clearly disagree (two instances of one texture), the pair is rejected.
        Otherwise the embedding decides, at the stricter threshold used without verification."""
        agreement, blocks = 0.0, 0
        if _same_aspect(a, b):
            frames = [(a, b, alignment.matrix) for alignment in _whole_frame(a, b)]
            agreement, blocks = max(block_agreement(frames, self.settings, self.device))
            if blocks >= self.settings.min_blocks and agreement < self.settings.plain_disagreement:
                return Verdict(
                    False,
                    "whole-frame",
                    0,
                    agreement,
                    blocks,
                    False,
                    f"too few keypoints to align ({keypoints}); compared whole, only "
                    f"{agreement:.0%} of {blocks} blocks agree",
                )
        needed = self.settings.fallback_threshold
        accepted = score >= needed
        relation = ">=" if accepted else "<"
        return Verdict(
            accepted,
            "embedding-only",
            0,
            agreement,
            blocks,
            False,
            f"too little detail to verify ({keypoints} keypoints); embedding score {score:.3f} "
            f"{relation} {needed:.2f}",
        )

    def _load(self, rows: set[int]) -> None:
        missing = sorted(rows - self._thumbnails.keys())
        if not missing:
            return
        loaded = load_thumbnails(
            [self.paths[row] for row in missing],
            thumbnails=[self.kept[row] for row in missing],
            workers=self.workers,
            max_pixels=self.max_pixels,
            progress=self.progress,
        )
        self._thumbnails.update(zip(missing, loaded, strict=True))
