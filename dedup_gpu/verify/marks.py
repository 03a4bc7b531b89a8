"""A small mark on a flat ground (a minimal design's dot or triangle, a logo alone on a plain
card) covers one or two of the layout grid's blocks, too few to tell a copy from a look-alike
with another mark in the same place. Its shape tells them apart, at the grey thumbnail's
resolution (320 px, where the layout rendering has 96): in each picture the mark is where the
grey departs from the ground (the layout rendering's median, the trimmed padding being ground)
by at least half of its strongest departure; b's is carried into a's frame by the layout's
alignment, and the two must cover each other, judged both ways. A light mark on a dark ground
is not a dark one on a light ground, whatever an edit's brightness change, so their polarity
must agree as well.

Hand-written: OpenCV does the warps; what a mark is and how two are compared is this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import transforms
from .thumbnails import Thumbnail

# Grey levels a pixel must depart from the ground, at least, to be part of a mark: well above
# the noise and JPEG ringing of a flat colour.
MIN_DEPARTURE = 12.0
DEPARTURE_SHARE = 0.5  # ... and this share of the picture's strongest departure (its 99.5th %)
FRAME_SLACK = 0.06  # share of a side a corner may land off a corner in a frame-to-frame map


@dataclass(frozen=True)
class MarkComparison:
    """How well the marks of two pictures, aligned, cover each other."""

    overlap: float  # intersection over union of the two marks, the lower of the two frames'
    pixels: int  # grey-thumbnail pixels of the smaller mark
    same_polarity: bool  # both lighter, or both darker, than their ground
    # The alignment carries frame onto frame (a re-save, a turn, a stretch), not a zoom: a crop
    # about a mark and a look-alike with a larger mark look the same on a flat ground.
    frame_to_frame: bool


def compare_marks(a: Thumbnail, b: Thumbnail, b_to_a: np.ndarray) -> MarkComparison | None:
    """The marks of a and b compared under `b_to_a` (a map between the layout renderings);
    None when either has no mark to speak of."""
    marks = [_mark(a), _mark(b)]
    if any(mark is None for mark in marks):
        return None
    (mask_a, light_a), (mask_b, light_b) = marks  # type: ignore[misc]
    # Grey thumbnail pixels of b -> of a: into b's rendering, across, and out of a's.
    grey_b_to_a = (
        transforms.inverse(a.to_rendering(a.colour.shape[:2]))
        @ b_to_a
        @ b.to_rendering(b.colour.shape[:2])
    )
    overlaps = [
        _covering(mask_a, mask_b, grey_b_to_a),
        _covering(mask_b, mask_a, transforms.inverse(grey_b_to_a)),
    ]
    return MarkComparison(
        overlap=min(overlaps),
        pixels=int(min(mask_a.sum(), mask_b.sum())),
        same_polarity=light_a == light_b,
        frame_to_frame=_frame_to_frame(b_to_a, b.colour.shape[:2], a.colour.shape[:2]),
    )


def _frame_to_frame(b_to_a: np.ndarray, b_shape: tuple[int, int], a_shape: tuple[int, int]) -> bool:
    """Whether `b_to_a` takes each corner of b's frame of (height, width) `b_shape` to within
    FRAME_SLACK of a corner of a's: the whole picture, turned, mirrored or stretched to fit."""
    (b_height, b_width), (a_height, a_width) = b_shape, a_shape
    corners_b = np.array([[0, 0, 1], [b_width, 0, 1], [0, b_height, 1], [b_width, b_height, 1]])
    carried = (b_to_a @ corners_b.T.astype(np.float64)).T
    carried = carried[:, :2] / carried[:, 2:]
    corners_a = np.array([[0, 0], [a_width, 0], [0, a_height], [a_width, a_height]], np.float64)
    slack = FRAME_SLACK * np.array([a_width, a_height])
    nearest = np.abs(carried[:, None, :] - corners_a[None, :, :]) <= slack
    return bool(np.all(nearest.all(axis=2).any(axis=1)))


def _mark(image: Thumbnail) -> tuple[np.ndarray, bool] | None:
    """The mark's mask over the (trimmed) grey thumbnail and whether it is lighter than the
    ground; None when nothing departs from the ground by MIN_DEPARTURE."""

    import cv2

    def make() -> tuple[np.ndarray, bool] | None:
        # The rendering shows the whole frame, ground included where the grey was trimmed.
        ground = float(np.median(cv2.cvtColor(image.colour, cv2.COLOR_RGB2GRAY)))
        departure = image.grey.astype(np.float32) - ground
        strength = float(np.percentile(np.abs(departure), 99.5))
        if strength < MIN_DEPARTURE:
            return None
        mask = np.abs(departure) >= max(MIN_DEPARTURE, DEPARTURE_SHARE * strength)
        if not mask.any():
            return None
        return mask, bool(departure[mask].mean() > 0)

    return image.derived("mark", make)


def _covering(mask: np.ndarray, other: np.ndarray, other_to_mask: np.ndarray) -> float:
    """Intersection over union of `mask` and `other` carried into its frame by `other_to_mask`;
    the other's mark falling outside this frame counts against it."""
    import cv2

    size = (mask.shape[1], mask.shape[0])
    source = other.astype(np.float32)
    if transforms.is_affine(other_to_mask):
        carried = cv2.warpAffine(source, other_to_mask[:2], size, flags=cv2.INTER_LINEAR)
        scale = abs(float(np.linalg.det(other_to_mask[:2, :2])))
    else:
        carried = cv2.warpPerspective(source, other_to_mask, size, flags=cv2.INTER_LINEAR)
        scale = abs(float(np.linalg.det(other_to_mask[:2, :2])))  # near enough for a print
    inside = carried >= 0.5
    # The other's mark in this frame's pixels, wherever it lands: what did not land is missed.
    missed = max(0.0, float(other.sum()) * scale - float(inside.sum()))
    union = float((mask | inside).sum()) + missed
    return float((mask & inside).sum()) / union if union else 0.0
