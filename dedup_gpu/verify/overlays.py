"""Text drawn over a picture: a meme's or a caption's letters, white with a dark outline.

A copy may carry such text and its original not. Over a detailed photo the letters' blocks have
detail on both sides (the photo's and the text's) and disagree, so the block comparison cannot
tell them from a different picture; found here, they are left out of it (see blocks.py). Found
from one image alone: light blobs the size of letters, each ringed by dark pixels almost all the
way round, several of them. Photographs rarely hold such blobs (highlights fade into their
surroundings), and where the original holds them too (a sign, a printed page) nothing is left
out, as only text on one side of a pair is.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Blocks = TypeVar("Blocks")  # per-block text cover: numpy arrays or torch tensors alike

LIGHT = 215  # grey level of a letter's fill, at least (white text after JPEG and resampling)
OUTLINE_CONTRAST = 110  # an outline pixel is this much darker than LIGHT, at least
OUTLINE_SHARE = 0.7  # share of the ring round a blob that must be outline
RING = 2  # px of the thumbnail round a blob that its outline covers
MAX_LETTER = 0.25  # a letter spans at most this share of the picture's height and width
MIN_LETTER_AREA = 3  # px of fill
MIN_LETTERS = 3  # outlined blobs that make text, at least


def outlined_text(grey: np.ndarray) -> np.ndarray | None:
    """The mask (bool, `grey`'s shape) of outlined letters and their outlines in a grey
    thumbnail, or None when it holds fewer than MIN_LETTERS of them."""
    import cv2

    height, width = grey.shape
    light = (grey >= LIGHT).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(light, connectivity=4)
    if count <= MIN_LETTERS:
        return None
    size = 2 * RING + 1
    # Each pixel near a blob gets that blob's label (the highest, where two are that close).
    near = cv2.dilate(labels.astype(np.float32), np.ones((size, size), np.uint8)).astype(np.int64)
    ring = (light == 0) & (near > 0)
    dark = grey.astype(np.int16) <= LIGHT - OUTLINE_CONTRAST
    around = np.bincount(near[ring], minlength=count)
    outlined = np.bincount(near[ring & dark], minlength=count)
    letter = (
        (stats[:, cv2.CC_STAT_AREA] >= MIN_LETTER_AREA)
        & (stats[:, cv2.CC_STAT_HEIGHT] <= MAX_LETTER * height)
        & (stats[:, cv2.CC_STAT_WIDTH] <= MAX_LETTER * width)
        & (around > 0)
        & (outlined >= OUTLINE_SHARE * np.maximum(around, 1))
    )
    letter[0] = False  # the background
    if int(letter.sum()) < MIN_LETTERS:
        return None
    fill = letter[labels].astype(np.uint8)
    return cv2.dilate(fill, np.ones((size + 2, size + 2), np.uint8)).astype(bool)


def text_sides(first: Blocks, second: Blocks, cover: float, ratio: float) -> tuple[Blocks, ...]:
    """Blocks by the text drawn over each side (`first`, `second`: the share of each block the
    text covers): (text over `first` only, over `second` only, over both in one place). Text
    on one side is an addition a copy may carry; text on both agrees whatever lies under it.
    A block has text when it covers `cover` of it, and on one side only when the other's is
    under `ratio` of that."""
    on_first, on_second = first >= cover, second >= cover
    only_first = on_first & (second < ratio * first)
    only_second = on_second & (first < ratio * second)
    return only_first, only_second, on_first & on_second & ~only_first & ~only_second
