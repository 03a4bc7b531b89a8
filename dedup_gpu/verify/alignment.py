"""Ways to lay one image over the other: keypoint fits (similarity, plain and mirrored), the whole
frame stretched, and the smaller picture searched for inside the larger. Each is an Alignment:
a 3 x 3 map from b's thumbnail pixels to a's, and the method that found it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import VerifyMethod
from . import transforms
from .settings import (
    TEMPLATE_MATCH,
    TEMPLATE_MIN_SHARE,
    TEMPLATE_PEAK,
    TEMPLATE_SIZE,
    VerifySettings,
)
from .thumbnails import Keypoints, Thumbnail


@dataclass(frozen=True)
class Alignment:
    matrix: np.ndarray | None  # 3 x 3, maps points of image b to image a (thumbnail pixels)
    method: VerifyMethod
    inliers: int


def _matches(a: Keypoints, b: Keypoints) -> tuple[np.ndarray, np.ndarray] | None:
    """Matched points (b's, a's) that pass Lowe's ratio test, or None when there are none."""
    import cv2

    if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = [
        pair[0]
        for pair in matcher.knnMatch(b.descriptors, a.descriptors, k=2)
        if len(pair) == 2 and pair[0].distance < 0.8 * pair[1].distance
    ]
    if not good:
        return None
    source = b.points[[m.queryIdx for m in good]]
    target = a.points[[m.trainIdx for m in good]]
    return source, target


def fit_similarity(
    a: Keypoints, b: Keypoints, settings: VerifySettings
) -> tuple[np.ndarray | None, int]:
    """The similarity transform (crop, scale, rotation) from b's keypoints to a's, by RANSAC,
    and its inliers; matrix None when there is no consistent fit."""
    found = keypoint_fits(a, b, settings, shapes=None)
    return (found[0].matrix, found[0].inliers) if found else (None, 0)


def keypoint_fits(
    a: Keypoints,
    b: Keypoints,
    settings: VerifySettings,
    shapes: tuple[tuple[int, int], tuple[int, int]] | None,
    mirrored: bool = False,
    always: bool = False,
) -> list[Alignment]:
    """RANSAC fits of b's matched keypoints onto a's: the similarity transform first (crop,
    scale, rotation); then, when `shapes` (b's and a's thumbnail shapes) are given and the
    similarity leaves matches unexplained, an affine transform (a copy stretched along one axis)
    and a homography (a photo of a print or a screen), each kept only if it is plausible for a
    copy (transforms.plausible_*) and explains clearly more matches than the similarity did.
    Empty when nothing fits; the similarity's inliers are then reported by `rejected_inliers`."""
    import cv2

    matched = _matches(a, b)
    if matched is None or len(matched[0]) < settings.min_inliers:
        return []
    source, target = matched
    methods = (
        (
            VerifyMethod.keypoints_mirrored,
            VerifyMethod.affine_mirrored,
            VerifyMethod.homography_mirrored,
        )
        if mirrored
        else (VerifyMethod.keypoints, VerifyMethod.affine, VerifyMethod.homography)
    )
    matrix, inlier_mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000
    )
    found: list[Alignment] = []
    similarity_inliers = 0
    if matrix is not None:
        similarity_inliers = int(inlier_mask.sum())
        matrix = transforms.from_affine(matrix)
        if _enough(similarity_inliers, len(source), settings) and (
            1 / 16 < transforms.similarity_scale(matrix) < 16  # degenerate fits on texture
        ):
            found.append(Alignment(matrix, methods[0], similarity_inliers))
    if shapes is None or len(source) < settings.min_perspective_inliers:
        return found
    explained = similarity_inliers >= settings.confident_inliers and (
        similarity_inliers >= 0.5 * len(source)
    )
    if explained and not always:
        return found  # the similarity explains most matches: try the others if it fails
    b_shape, _ = shapes
    # Asked again after the similarity failed the comparison (`always`), a fit explaining about
    # as many matches will do; otherwise it must explain clearly more to be worth comparing.
    needed = max(
        settings.min_perspective_inliers,
        0.9 * similarity_inliers if always else 1.15 * similarity_inliers + 3,
    )
    matrix, inlier_mask = cv2.estimateAffine2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000
    )
    if matrix is not None:
        inliers = int(inlier_mask.sum())
        matrix = transforms.from_affine(matrix)
        if (
            inliers >= needed
            and _enough(inliers, len(source), settings)
            and transforms.plausible_affine(matrix, settings.max_stretch)
        ):
            found.append(Alignment(matrix, methods[1], inliers))
            # Asked again, a perspective explaining as many matches as the stretch is worth its
            # comparison: RANSAC's tolerance lets an affine fit half a mild perspective.
            needed = max(needed, inliers if always else 1.1 * inliers + 2)
    matrix, inlier_mask = cv2.findHomography(source, target, cv2.RANSAC, 4.0, maxIters=2000)
    if matrix is not None and abs(matrix[2, 2]) > 1e-9:
        matrix = matrix / matrix[2, 2]
        inliers = int(inlier_mask.sum())
        if (
            inliers >= needed
            and _enough(inliers, len(source), settings)
            and transforms.plausible_homography(
                matrix, b_shape, settings.max_stretch, settings.max_foreshortening
            )
        ):
            found.append(Alignment(matrix, methods[2], inliers))
    return found


def _enough(inliers: int, matches: int, settings: VerifySettings) -> bool:
    return inliers >= settings.min_inliers and inliers >= settings.min_inlier_ratio * matches


def alignments(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> list[Alignment]:
    """Ways to map b's thumbnail onto a's worth comparing: the keypoint fits (similarity, and
    affine or perspective where they explain more; plain and mirrored) and, for frames of the
    same shape, the whole frame stretched (for copies too small or too blurred for keypoints).
    The mirror image is tried when the plain fit is weak."""
    shapes = (b.shape, a.shape)
    found = keypoint_fits(a.keypoints, b.keypoints, settings, shapes)
    best = max((fit.inliers for fit in found), default=_similarity_inliers(a, b, settings))
    if best < settings.confident_inliers:
        mirrored = mirrored_alignments(a, b, settings)
        best = max([best, *(fit.inliers for fit in mirrored)])
        found.extend(mirrored)
    if not found and same_aspect(a, b):
        found.extend(whole_frame(a, b, best))
    if not found:
        found.append(Alignment(None, VerifyMethod.none, best))
    return found


def _similarity_inliers(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> int:
    """Inliers of the best similarity fit even when too few to count (for the report)."""
    import cv2

    matched = _matches(a.keypoints, b.keypoints)
    if matched is None or len(matched[0]) < 2:
        return 0
    _, mask = cv2.estimateAffinePartial2D(*matched, method=cv2.RANSAC, ransacReprojThreshold=4.0)
    return 0 if mask is None else int(mask.sum())


def perspective_alignments(
    a: Thumbnail, b: Thumbnail, settings: VerifySettings, *, after_affine: bool = False
) -> list[Alignment]:
    """The perspective and the affine fit of b onto a, where plausible and explaining about as
    many matches as the similarity: for pairs a strong similarity fit left rejected (a stretch
    or a photo of a print that RANSAC's tolerance let the simpler map half fit). A perspective
    is kept only where it explains as many matches as the affine map. `after_affine`: an
    affine fit was compared and rejected already, so only a perspective is worth another
    comparison (another draw of the affine fit would only be a second chance)."""
    shapes = (b.shape, a.shape)
    wanted = (VerifyMethod.homography, *(() if after_affine else (VerifyMethod.affine,)))
    return [
        fit
        for fit in keypoint_fits(a.keypoints, b.keypoints, settings, shapes, always=True)
        if fit.method in wanted
    ]


def mirrored_alignments(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> list[Alignment]:
    """The keypoint fits of b's mirror image onto a, as maps from b itself."""
    unmirror = transforms.mirror(b.shape[1])
    return [
        Alignment(fit.matrix @ unmirror, fit.method, fit.inliers)
        for fit in keypoint_fits(a.keypoints, b.mirrored, settings, (b.shape, a.shape), True)
        if fit.matrix is not None
    ]


def mirrored_alignment(a: Thumbnail, b: Thumbnail, settings: VerifySettings) -> Alignment:
    """The best keypoint fit of b's mirror image onto a (matrix None when there is none)."""
    found = mirrored_alignments(a, b, settings)
    if not found:
        return Alignment(None, VerifyMethod.keypoints_mirrored, 0)
    return max(found, key=lambda fit: fit.inliers)


def whole_frame(a: Thumbnail, b: Thumbnail, inliers: int = 0) -> list[Alignment]:
    """b's frame stretched onto a's, plain and mirrored."""
    (ah, aw), (bh, bw) = a.shape, b.shape
    stretch = np.array([[aw / bw, 0.0, 0.0], [0.0, ah / bh, 0.0], [0.0, 0.0, 1.0]])
    return [
        Alignment(stretch, VerifyMethod.whole_frame, inliers),
        Alignment(stretch @ transforms.mirror(bw), VerifyMethod.whole_frame_mirrored, inliers),
    ]


def template_alignment(a: Thumbnail, b: Thumbnail) -> Alignment:
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
        return Alignment(None, VerifyMethod.template, 0)
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
        return Alignment(None, VerifyMethod.template, 0)
    small_to_large = np.array([[scale, 0.0, x], [0.0, scale, y], [0.0, 0.0, 1.0]])
    matrix = transforms.inverse(small_to_large) if swapped else small_to_large
    return Alignment(matrix, VerifyMethod.template, 0)


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


def same_aspect(a: Thumbnail, b: Thumbnail) -> bool:
    (ah, aw), (bh, bw) = a.shape, b.shape
    return abs(np.log((aw / ah) / (bw / bh))) < 0.05
