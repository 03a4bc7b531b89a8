"""What verification keeps of each image: a grey thumbnail with its padding trimmed, its ORB
keypoints (and its mirror image's, on first use), a small colour rendering for the layout of
plain images, and for text records the pen strokes of a larger rendering. Decoded in DataLoader
worker processes; a thumbnail kept by the embedding pass is used instead of reading the file."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..data import DEFAULT_MAX_PIXELS, decode_image, default_workers
from ..progress import progress_bars
from . import transforms
from .documents import (
    characters,
    ink_map,
    is_bilevel,
    looks_like_document,
    shrunk_ink,
    text_height,
)
from .overlays import outlined_text
from .packed import Packed
from .reading import PageReader, Word
from .settings import DOCUMENT_SIZE, MIN_DETECTION_SIZE, ORB_FEATURES, THUMBNAIL_SIZE

LAYOUT_SIZE = 96  # longest side of the colour rendering that plain images are compared on


@dataclass
class Keypoints:
    points: np.ndarray  # float32 [n, 2], x y in thumbnail pixels
    descriptors: np.ndarray | None  # uint8 [n, 32], None when nothing was found


class Thumbnail:
    """What verification needs of one image: a grey thumbnail, its keypoints (and those of its
    mirror image, found on first use), a small colour rendering, and whether it looks like a
    paper document."""

    def __init__(self, rgb: np.ndarray):
        import cv2

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        self.document = looks_like_document(rgb, grey)
        # Letterbox bars and solid frames are not content: compared against another copy's
        # different padding they would make every block along the picture's edge disagree.
        top, bottom, left, right = (0, 0, 0, 0) if self.document else padding(grey)
        if top or bottom or left or right:
            # A page letterboxed or framed (a note shown in a video, a scan with black bars)
            # is a page: tested without its bars, whose dark share hides its paper. Pages are
            # compared whole, as every page is (their own white margins would be trimmed).
            inside = rgb[top : rgb.shape[0] - bottom, left : rgb.shape[1] - right]
            if looks_like_document(np.ascontiguousarray(inside)):
                self.document = True
                top, bottom, left, right = 0, 0, 0, 0
        self.grey = np.ascontiguousarray(
            grey[top : grey.shape[0] - bottom, left : grey.shape[1] - right]
        )
        # Where the trimmed grey sits in the whole picture, which the larger rendering shows.
        self.trimmed = (top, left, grey.shape)
        # Untrimmed: a flat background looks like padding, and a vertical gradient's rows are
        # each one flat colour; the layout comparison places padding and crops itself instead.
        self.colour = _layout_rendering(rgb)
        self.keypoints = keypoints_of(self._detection_image(self.grey))
        # The pen strokes of a larger rendering, for documents only (see add_detail), packed:
        # a run keeps every page's for its whole length.
        self._ink: Packed | None = None
        self._shrunk_ink: Packed | None = None
        self._characters: dict[int, Packed] = {}
        self.bilevel = False  # the detail rendering is black and white only (a fax)
        self.text_height = 0.0  # px, median character height in the detail rendering
        # Its words, read by OCR at the detail rendering's size once a pair needs them
        # (reading.py); () when nothing could be read.
        self.reading: tuple[Word, ...] | None = None
        self._mirrored: Keypoints | None = None
        self._pyramid: list[np.ndarray] = []
        self._derived: dict[str, Any] = {}

    def add_detail(self, rgb: np.ndarray) -> None:
        """The same image decoded larger (DOCUMENT_SIZE), for the document comparison."""
        import cv2

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        ink = ink_map(grey)
        self._ink = Packed.of(ink)
        # Half precision: ECC needs no more, and it packs to half the size.
        self._shrunk_ink = Packed.of(shrunk_ink(ink).astype(np.float16))
        self.bilevel = is_bilevel(grey)
        self.text_height = text_height(self.characters(128, ink))

    @property
    def has_detail(self) -> bool:
        return self._ink is not None

    @property
    def detail_shape(self) -> tuple[int, int]:
        """(height, width) of the detail rendering."""
        assert self._ink is not None
        return self._ink.shape  # type: ignore[return-value]

    def ink(self) -> np.ndarray:
        """The pen strokes of the detail rendering (uint8 0..255, `ink_map`), unpacked anew."""
        assert self._ink is not None
        return self._ink.unpacked()

    def shrunk_ink(self) -> np.ndarray:
        """The strokes shrunk for `refine_alignment` (float32, REFINE_SCALE), unpacked anew."""
        assert self._shrunk_ink is not None
        return self._shrunk_ink.unpacked().astype(np.float32)

    def characters(self, threshold: int, ink: np.ndarray | None = None) -> np.ndarray:
        """`characters` of the strokes at ink `threshold` and above, found once per threshold:
        every pair the page is in uses the same mask (`ink`: the strokes, when at hand)."""
        if threshold not in self._characters:  # threads may race; both make the same mask
            strokes = self.ink() if ink is None else ink
            self._characters[threshold] = Packed.of(characters(strokes >= threshold))
        return self._characters[threshold].unpacked()

    def to_rendering(self, shape: tuple[int, int]) -> np.ndarray:
        """The map (3 x 3) from this thumbnail's (trimmed) pixels to those of a rendering of
        the whole frame of (height, width) `shape`: the colour layout, the document detail."""
        top, left, whole = self.trimmed
        shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
        return transforms.grid_scale(whole, shape) @ shift

    @property
    def shape(self) -> tuple[int, int]:
        return self.grey.shape  # type: ignore[return-value]

    @property
    def mirrored(self) -> Keypoints:
        if self._mirrored is None:
            flipped = np.ascontiguousarray(self.grey[:, ::-1])
            self._mirrored = keypoints_of(self._detection_image(flipped))
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

    def derived(self, name: str, make: Callable[[], Any]) -> Any:
        """A value computed from this thumbnail once, on first use (threads may race to make it;
        both get equal values)."""
        if name not in self._derived:
            self._derived[name] = make()
        return self._derived[name]

    def outlined_text(self) -> np.ndarray | None:
        """The mask of text drawn over the picture (overlays.py), computed once; None if none."""
        return self.derived("outlined_text", lambda: outlined_text(self.grey))

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
        state["_derived"] = {}
        return state


def add_detail_of(thumbnail: Thumbnail, path: str, max_pixels: int) -> None:
    """`thumbnail.add_detail` from the image at `path`, decoded again at DOCUMENT_SIZE (never
    enlarged): what the text comparison reads."""
    thumbnail.add_detail(_detail_rendering(path, max_pixels))


def _detail_rendering(path: str, max_pixels: int) -> np.ndarray:
    """The image at `path` at DOCUMENT_SIZE (never enlarged), RGB: what pages are compared on."""
    return decode_image(path, DOCUMENT_SIZE, max_pixels, keep_aspect=True).pixels


def read_page(
    path: str, reader: PageReader, max_pixels: int, detail_shape: tuple[int, int]
) -> tuple[Word, ...]:
    """The words on the image at `path`, decoded again as for `add_detail_of`, their boxes in
    the pixels of the detail rendering of (height, width) `detail_shape`."""
    rendering = _detail_rendering(path, max_pixels)
    words = reader.read(rendering)
    if not words:
        return ()
    height, width = rendering.shape[:2]
    sy, sx = detail_shape[0] / height, detail_shape[1] / width
    if (sx, sy) == (1.0, 1.0):
        return words
    return tuple(
        replace(word, box=(word.box[0] * sx, word.box[1] * sy, word.box[2] * sx, word.box[3] * sy))
        for word in words
    )


def padding(grey: np.ndarray, tolerance: int = 10, margin: int = 2) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) lines of uniform bands along the edges of `grey` (letterbox
    bars, borders, frames), as long as at least half of each side remains; zeros otherwise. A line
    counts as padding when nearly all its pixels are within `tolerance` of the band's colour (JPEG
    noise leaves a few off) and the band does not drift (a vertical gradient's rows are each one
    colour, but not one colour all the way down); where a band was found, `margin` more lines go
    too, because compression rings along the band's inner edge."""
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
        if not count or abs(float(np.median(lines[count - 1])) - level) > tolerance / 3:
            return 0
        return count + margin

    top, bottom = band(grey), band(grey[::-1])
    left, right = band(grey.T), band(grey.T[::-1])
    if top + bottom > height // 2 or left + right > width // 2:
        return 0, 0, 0, 0
    return top, bottom, left, right


def trim_padding(grey: np.ndarray, tolerance: int = 10, margin: int = 2) -> np.ndarray:
    """`grey` without the uniform bands along its edges that `padding` finds."""
    top, bottom, left, right = padding(grey, tolerance, margin)
    height, width = grey.shape
    return np.ascontiguousarray(grey[top : height - bottom, left : width - right])


def _layout_rendering(rgb: np.ndarray) -> np.ndarray:
    """`rgb` averaged down to LAYOUT_SIZE on its longest side (uint8): the colour layout that
    plain images (gradients, flat art) are compared by."""
    import cv2

    height, width = rgb.shape[:2]
    scale = LAYOUT_SIZE / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def keypoints_of(detection: tuple[np.ndarray, float]) -> Keypoints:
    import cv2

    image, scale = detection
    cv2.setNumThreads(1)  # runs in worker processes; parallelism comes from the workers
    found, descriptors = cv2.ORB_create(ORB_FEATURES).detectAndCompute(image, None)
    points = np.array([kp.pt for kp in found], dtype=np.float32).reshape(-1, 2)
    return Keypoints(points=(points + 0.5) / scale - 0.5, descriptors=descriptors)


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
                add_detail_of(thumbnail, path, self.max_pixels)
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
    loaded: list[Thumbnail | None] = [None] * len(paths)
    with progress_bars(progress and bool(paths)) as bars:
        task = bars.add_task("verifying: thumbnails", total=len(paths))
        for batch in loader:
            for index, thumbnail in batch:
                loaded[index] = thumbnail
            bars.advance(task, len(batch))
    return loaded
