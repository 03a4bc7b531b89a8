"""The block comparison: two aligned images sampled onto one canvas and compared block by block by
normalised cross-correlation, which ignores brightness, contrast, colour and greyscale changes.
The block statistics run batched in torch on the scan's device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from . import transforms
from .overlays import text_sides
from .settings import BLOCK, CANVAS, VerifySettings
from .thumbnails import Thumbnail

if TYPE_CHECKING:
    from .verifier import Mapper

_OUTSIDE = -1e4


def on_canvas(
    image: Thumbnail, canvas_to_image: np.ndarray, canvas: int, blur: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """`image` resampled onto the canvas through the map canvas -> image pixels (3 x 3), from the
    pyramid level that matches the sampling step and blurred by `blur` canvas pixels, plus the
    mask of canvas pixels it covers."""
    import cv2

    centre = (canvas / 2 - 0.5, canvas / 2 - 0.5)
    level, scale = image.level(transforms.local_scale(canvas_to_image, centre))
    # Image pixel x is level pixel scale * x + (scale - 1) / 2 (pixel centres of a coarser level).
    to_level = np.array(
        [[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5], [0, 0, 1]]
    )
    canvas_to_level = to_level @ canvas_to_image
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    # Outside the image the border value is far below any grey level, so one warp gives both
    # the pixels and (where interpolation touched the border) which canvas pixels are covered.
    if transforms.is_affine(canvas_to_level):
        pixels = cv2.warpAffine(
            level, canvas_to_level[:2], (canvas, canvas), flags=flags, borderValue=_OUTSIDE
        )
    else:
        pixels = cv2.warpPerspective(
            level, canvas_to_level, (canvas, canvas), flags=flags, borderValue=_OUTSIDE
        )
    covered = (pixels >= 0).astype(np.float32)
    pixels = np.where(covered > 0, pixels, 0).astype(np.float32)
    return cv2.GaussianBlur(pixels, (0, 0), blur), covered


def covered_share(shape: tuple[int, int], other: tuple[int, int], matrix: np.ndarray) -> float:
    """Share of a frame of (height, width) `shape` that `matrix` (its pixels -> the other's)
    maps inside the frame `other`, from an 8 x 8 grid of points."""
    steps = (np.arange(8) + 0.5) / 8
    xs, ys = np.meshgrid(steps * shape[1] - 0.5, steps * shape[0] - 0.5)
    x, y = transforms.apply(matrix, np.stack([xs.ravel(), ys.ravel()], axis=1)).T
    inside = (x >= -0.5) & (x <= other[1] - 0.5) & (y >= -0.5) & (y <= other[0] - 0.5)
    return float(inside.mean())


def text_on_canvas(image: Thumbnail, canvas_to_image: np.ndarray, canvas: int) -> np.ndarray | None:
    """The share of each canvas pixel covered by text drawn over `image` (overlays.py), or None
    when it carries none."""
    import cv2

    mask = image.outlined_text()
    if mask is None:
        return None
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    text = mask.astype(np.float32)
    if transforms.is_affine(canvas_to_image):
        return cv2.warpAffine(text, canvas_to_image[:2], (canvas, canvas), flags=flags)
    return cv2.warpPerspective(text, canvas_to_image, (canvas, canvas), flags=flags)


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

    The canvas spans the frame of the image the other covers (a crop, the picture inside a
    screenshot), or of the smaller one where each covers the other, so a crop is compared over
    the crop and a downscaled copy at its own resolution. Both images are sampled from the
    pyramid level that matches the canvas and blurred by about a canvas pixel, so JPEG blocks,
    noise and resampling do not count as differences. The block statistics run batched in torch
    on `device`.
    """
    if not pairs:
        return []
    canvas, block = CANVAS, BLOCK
    jobs = []
    for a, b, b_to_a in pairs:
        # The canvas spans the picture the other covers: a crop, or the picture shown inside a
        # screenshot, is compared over itself, not over the larger frame around it (where it
        # would fill a few blocks). Where each covers the other, the smaller picture; so too
        # under a perspective, whose foreshortened side samples poorly enlarged (photographed
        # prints: 84% -> 76% accepted with the covered picture's canvas, verify_pairs seed 1).
        a_in_b = covered_share(a.shape, b.shape, transforms.inverse(b_to_a))
        b_in_a = covered_share(b.shape, a.shape, b_to_a)
        covering = abs(a_in_b - b_in_a) > 0.1 and transforms.is_affine(b_to_a)
        b_first = b_in_a > a_in_b if covering else b.grey.size <= a.grey.size
        if b_first:
            target, other, target_to_other = b, a, b_to_a
        else:
            target, other, target_to_other = a, b, transforms.inverse(b_to_a)
        canvas_to_target = transforms.grid_scale((canvas, canvas), target.shape)
        canvas_to_other = target_to_other @ canvas_to_target
        # Both sides blurred to the coarser one's resolution: the picture inside a screenshot
        # is enlarged onto the canvas, and the sharp original's fine texture would disagree.
        centre = (canvas / 2 - 0.5, canvas / 2 - 0.5)
        coarsest = min(
            transforms.local_scale(canvas_to_target, centre),
            transforms.local_scale(canvas_to_other, centre),
        )
        blur = max(1.0, 1.0 / max(coarsest, 1e-3))
        jobs.append((target, canvas_to_target, blur))
        jobs.append((other, canvas_to_other, blur))
    canvases = np.empty((len(jobs), canvas, canvas), dtype=np.float32)
    masks = np.empty((len(jobs), canvas, canvas), dtype=np.float32)
    texts = np.zeros((len(jobs), canvas, canvas), dtype=np.float32)

    def resample(start: int) -> None:
        for slot in range(start, min(start + 16, len(jobs))):
            image, matrix, blur = jobs[slot]
            canvases[slot], masks[slot] = on_canvas(image, matrix, canvas, blur)
            if not strict:
                text = text_on_canvas(image, matrix, canvas)
                if text is not None:
                    texts[slot] = text

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
    if strict:
        informative = covered & (both | one_sided)
    else:
        # Text drawn over one side only (a meme's, a caption's) is an addition, not a
        # difference: its blocks are left out, as one-sided detail is ...
        text = torch.from_numpy(texts).to(device)
        text_x, text_y = pooled(text[0::2]), pooled(text[1::2])
        # Text in one place on both sides (one caption over two pictures, the same watermark)
        # agrees whatever lies under it: evidence of the overlay, not of the picture.
        only_x, only_y, shared = text_sides(
            text_x, text_y, settings.overlay_text_cover, settings.overlay_text_ratio
        )
        overlaid = only_x | only_y
        informative = covered & both & ~overlaid & ~shared
    agree = informative & both & (ncc >= settings.ncc_agree)
    counts = informative.flatten(1).sum(1).cpu().numpy()
    agreeing = agree.flatten(1).sum(1).cpu().numpy()
    return [
        (float(ok / total) if total else 0.0, int(total))
        for ok, total in zip(agreeing, counts, strict=True)
    ]
