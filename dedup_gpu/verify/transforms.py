"""Plane transforms as 3 x 3 homogeneous matrices (float64): composition, inversion, mirrors,
scaling between pixel grids, and the checks that keep a fitted transform plausible for a copy.

A matrix maps pixel centres (x, y) of one image to those of another. Similarity and affine maps
have the last row (0, 0, 1); a homography (a photo of a print or a screen) does not."""

from __future__ import annotations

import numpy as np

IDENTITY = np.eye(3)


def from_affine(matrix: np.ndarray) -> np.ndarray:
    """A 2 x 3 affine matrix (OpenCV's form) as 3 x 3."""
    return np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])


def then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The map `second(first(x))`."""
    return second @ first


def inverse(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.inv(matrix)


def is_affine(matrix: np.ndarray) -> bool:
    return bool(np.allclose(matrix[2], (0.0, 0.0, 1.0), atol=1e-12))


def mirror(width: int) -> np.ndarray:
    """Maps points of a mirrored image of `width` pixels to the unmirrored image (and back)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def grid_scale(source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Pixel centres of a (height, width) grid onto another grid covering the same picture."""
    sy, sx = target[0] / source[0], target[1] / source[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [n, 2] mapped by `matrix` (perspective division included)."""
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def local_scale(matrix: np.ndarray, point: tuple[float, float]) -> float:
    """How much `matrix` enlarges lengths near `point`: the root of its Jacobian's determinant."""
    return float(np.sqrt(abs(np.linalg.det(_jacobian(matrix, *point)))))


def similarity_scale(matrix: np.ndarray) -> float:
    return float(np.hypot(matrix[0, 0], matrix[1, 0]))


def plausible_affine(matrix: np.ndarray, max_stretch: float) -> bool:
    """An affine map a copy may have gone through: orientation kept (mirrors are fitted
    separately), overall scale within 1/16..16, and one axis stretched against the other by at
    most `max_stretch` (singular values' ratio), which also bounds the shear."""
    linear = matrix[:2, :2]
    if np.linalg.det(linear) <= 0:
        return False
    high, low = np.linalg.svd(linear, compute_uv=False)
    return bool(1 / 16 < np.sqrt(high * low) < 16 and high / low <= max_stretch)


def plausible_homography(
    matrix: np.ndarray, size: tuple[int, int], max_stretch: float, max_foreshortening: float
) -> bool:
    """A perspective map a photo of a print or a screen may show: the (height, width) frame of the
    source maps to a convex quadrilateral in front of the camera (no point at infinity inside it),
    orientation kept, every local stretch at most `max_stretch`, and the local scale at the four
    corners within `max_foreshortening` of each other (how much nearer one edge of the print was
    to the camera than the other)."""
    height, width = size
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], float)
    depth = corners @ matrix[2, :2] + matrix[2, 2]
    if not np.all(depth > 0):  # (normalised so that the source frame is in front, see fits)
        return False
    mapped = apply(matrix, corners)
    edges = np.roll(mapped, -1, axis=0) - mapped
    following = np.roll(edges, -1, axis=0)
    # The source corners turn one way all round (y points down); a copy's must turn the same way:
    # a crossed or folded quadrilateral is no view of a flat print, a reversed one is a mirror.
    if not np.all(edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0] > 0):
        return False
    scales = []
    for x, y in corners:
        high, low = np.linalg.svd(_jacobian(matrix, x, y), compute_uv=False)
        if low <= 0 or high / low > max_stretch:
            return False
        scales.append(float(np.sqrt(high * low)))
    return bool(
        min(scales) > 1 / 16
        and max(scales) < 16
        and max(scales) / min(scales) <= max_foreshortening
    )


def _jacobian(matrix: np.ndarray, x: float, y: float) -> np.ndarray:
    w = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2]
    u = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    v = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return np.array(
        [
            [
                (matrix[0, 0] * w - u * matrix[2, 0]) / w**2,
                (matrix[0, 1] * w - u * matrix[2, 1]) / w**2,
            ],
            [
                (matrix[1, 0] * w - v * matrix[2, 0]) / w**2,
                (matrix[1, 1] * w - v * matrix[2, 1]) / w**2,
            ],
        ]
    )
