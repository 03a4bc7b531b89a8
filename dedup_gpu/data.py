"""Stage 3: read, decode, orient and resize images in DataLoader worker processes.

Workers return uint8 CHW tensors at the encoder's input size; conversion to float and
normalisation happen on the encoder's device, so a batch crosses to the GPU at a quarter of the
float32 size. A file that fails to decode becomes a failure record in its batch, never an
exception, so a batch where every file is bad still flows through.

With `defer_jpegs`, workers only read, hash and parse the header of a JPEG the device can decode
and pass its bytes on; device_decode.py decodes those in batches where the model runs.
"""

from __future__ import annotations

import functools
import gc
import io
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from . import storage
from .exact import new_digest
from .records import ImageInfo

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb error limit (2 x 89.5 MP)

_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_WHITE = (255, 255, 255)


class DecodeError(Exception):
    """The file is not a usable image; the message is the one-line reason for the report."""


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # uint8, H x W x 3, RGB
    info: ImageInfo
    thumbnail: bytes | None = None  # JPEG of the image shrunk to fit the thumbnail size


THUMBNAIL_QUALITY = 90  # verification tolerates far worse; this keeps a thumbnail near 15 KB


def decode_image(
    path: str,
    size: int | None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    keep_aspect: bool = False,
    thumbnail: int | None = None,
    data: bytes | None = None,
) -> DecodedImage:
    """Decode `path` to RGB uint8, EXIF-oriented, resized to size x size when `size` is given
    (with `keep_aspect`, shrunk to fit inside size x size instead, never enlarged). With
    `thumbnail`, also a JPEG of the image shrunk to fit thumbnail x thumbnail, from the same
    decode, so verification need not read the file again. With `data`, the file's bytes already
    read (and hashed) by the caller are decoded instead of reading `path` again.

    JPEGs are decoded at a reduced DCT scale (Pillow's draft mode) when the target is much smaller,
    so a 24-megapixel photo costs little more than a small one. Alpha is composited on white, the
    first frame of an animation is used, and 16-bit and CMYK images are mapped to 8-bit RGB.
    """
    try:
        with warnings.catch_warnings():
            # --max-pixels is checked below; Pillow's own warning threshold (half its hard limit)
            # would only print noise for images the user chose to allow.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if data is None and not storage.is_local(path):  # an object, URL or member
                data = _read_elsewhere(path)
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DecodeError(
                        f"decompression bomb: {width}x{height} pixels exceeds the limit of "
                        f"{max_pixels} (--max-pixels)"
                    )
                orientation = _orientation(image)
                if orientation in _TRANSPOSED_ORIENTATIONS:
                    width, height = height, width
                if getattr(image, "n_frames", 1) > 1:
                    image.seek(0)
                if size is not None and image.format == "JPEG":
                    draft = max(size, thumbnail or 0)
                    image.draft("RGB", (draft, draft))
                image.load()
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
                small = None
                if thumbnail is not None:
                    small = _jpeg(rgb.resize(fit(rgb.size, thumbnail), Image.Resampling.BILINEAR))
                if size is not None:
                    rgb = rgb.resize(
                        fit((rgb.width, rgb.height), size) if keep_aspect else (size, size),
                        Image.Resampling.BILINEAR,
                        reducing_gap=3.0,
                    )
                pixels = np.array(rgb, dtype=np.uint8)  # a writable copy, as torch expects
    except DecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise DecodeError(f"decompression bomb: {error}") from error
    except UnidentifiedImageError as error:
        raise DecodeError("not an image (unrecognised format)") from error
    except FileNotFoundError as error:
        raise DecodeError("file disappeared during the scan") from error
    except PermissionError as error:
        raise DecodeError(f"cannot read file: {error.strerror}") from error
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
        # Pillow reports truncated and corrupt data through these types.
        message = str(error) or type(error).__name__
        if "truncated" in message:
            raise DecodeError(f"truncated image: {message}") from error
        raise DecodeError(f"corrupt image: {message}") from error
    if width < 1 or height < 1:
        raise DecodeError("image has no pixels")
    return DecodedImage(pixels=pixels, info=ImageInfo(width=width, height=height), thumbnail=small)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def fit(dimensions: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) shrunk to fit inside size x size, keeping the aspect; never enlarged."""
    width, height = dimensions
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except OSError:
        raise  # PNG reads EXIF by decoding the whole file: this is a pixel-data error
    except Exception:  # a malformed EXIF block must not cost the whole image
        return 1


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode: alpha composited on white, 16-bit scaled, CMYK converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(array.max(initial=0)), 1e-12)
        grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


@dataclass(frozen=True)
class JpegHeader:
    """What the header of a JPEG the device can decode says: its displayed size, and the EXIF
    orientation still to apply."""

    info: ImageInfo
    orientation: int


_DEVICE_MODES = {"RGB", "L"}  # nvJPEG's RGB output covers YCbCr and greyscale; CMYK goes to Pillow


def jpeg_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> JpegHeader | None:
    """The header of `data` when it is a JPEG the device can decode within `max_pixels`; None
    sends the file to Pillow, which also gives the one-line reason when it is broken."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG" or image.mode not in _DEVICE_MODES:
                    return None
                width, height = image.size
                if width < 1 or height < 1 or width * height > max_pixels:
                    return None
                orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # unreadable or malformed EXIF: Pillow's path decides what it means
        return None
    if orientation not in range(1, 9):
        orientation = 1
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return JpegHeader(ImageInfo(width=width, height=height), orientation)


@dataclass(frozen=True)
class PendingJpeg:
    """A JPEG read and hashed by a worker and left for the device to decode."""

    index: int
    data: torch.Tensor  # uint8 [n], the file's bytes
    header: JpegHeader
    digest: str | None


@dataclass
class Batch:
    """One batch out of the loader: decoded images, JPEGs left for the device to decode, and the
    indices that failed, with reasons."""

    indices: torch.Tensor  # int64 [B], positions in the dataset
    pixels: torch.Tensor  # uint8 [B, 3, S, S]
    widths: torch.Tensor
    heights: torch.Tensor
    failures: list[tuple[int, str]]
    thumbnails: list[bytes | None] = field(default_factory=list)  # aligned with indices
    digests: list[str | None] = field(default_factory=list)  # aligned with indices, when asked
    jpegs: list[PendingJpeg] = field(default_factory=list)  # only with defer_jpegs

    def pin_memory(self) -> Batch:
        self.pixels = self.pixels.pin_memory()
        return self


class LoadedItem(NamedTuple):
    """One file out of a worker: decoded pixels, a JPEG left for the device, or a failure."""

    index: int
    pixels: torch.Tensor | None = None
    info: ImageInfo | None = None
    reason: str | None = None
    thumbnail: bytes | None = None
    digest: str | None = None
    jpeg: PendingJpeg | None = None


# Files up to this size are read once, hashed and decoded from memory; bigger ones (huge TIFFs)
# are hashed as a stream and decoded from disk, so a worker never holds one whole in memory.
WHOLE_READ_LIMIT = 64 << 20


class ImageDataset(Dataset):
    """Decodes `paths[i]` to a uint8 CHW tensor of size x size (plus a JPEG thumbnail when
    `thumbnail_size` is set, and the content hash of the bytes decoded when `digests` is set);
    failures carry their reason. With `defer_jpegs`, a JPEG the device can decode is passed on
    as bytes instead."""

    def __init__(
        self,
        paths: Sequence[str],
        size: int,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        thumbnail_size: int | None = None,
        digests: bool = False,
        defer_jpegs: bool = False,
        listed: Sequence[tuple[int, float]] | None = None,
    ):
        self.paths = list(paths)
        self.listed = list(listed) if listed is not None else None
        self.size = size
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size
        self.digests = digests
        self.defer_jpegs = defer_jpegs

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> LoadedItem:
        path = self.paths[index]
        try:
            listed = self.listed[index] if self.listed is not None else None
            data, digest = (
                _read_and_hash(path, listed) if self.digests or self.defer_jpegs else (None, None)
            )
            digest = digest if self.digests else None
            header = jpeg_header(data, self.max_pixels) if self.defer_jpegs and data else None
            if header is not None:
                assert data is not None
                as_tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                return LoadedItem(index, jpeg=PendingJpeg(index, as_tensor, header, digest))
            decoded = decode_image(
                path, self.size, self.max_pixels, thumbnail=self.thumbnail_size, data=data
            )
        except DecodeError as error:
            return LoadedItem(index, reason=str(error))
        except Exception as error:  # a decoder bug on one file must not end a million-file run
            return LoadedItem(index, reason=f"cannot decode: {type(error).__name__}: {error}")
        tensor = torch.from_numpy(decoded.pixels).permute(2, 0, 1).contiguous()
        return LoadedItem(index, tensor, decoded.info, None, decoded.thumbnail, digest)


def _read_and_hash(path: str, listed: tuple[int, float] | None = None) -> tuple[bytes | None, str]:
    """The file's bytes (None when too big to hold) and their content hash, from one read.
    Objects, URLs and container members (storage.py) are always read whole. With `listed` (the
    size and modification time the file had when it was listed), a file rewritten since is a
    DecodeError: its listed size would be reported beside the digest of other bytes."""
    digest = new_digest()
    if not storage.is_local(path):
        data = _read_elsewhere(path)
        if listed is not None and len(data) != listed[0]:
            raise DecodeError(_changed(listed[0], len(data)))
        digest.update(data)
        return data, digest.hexdigest()
    try:
        with open(path, "rb") as handle:
            now = os.fstat(handle.fileno())
            if listed is not None and (now.st_size, now.st_mtime) != tuple(listed):
                raise DecodeError(_changed(listed[0], now.st_size))
            if now.st_size <= WHOLE_READ_LIMIT:
                data = handle.read()
                digest.update(data)
                return data, digest.hexdigest()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
            return None, digest.hexdigest()
    except FileNotFoundError as error:
        raise DecodeError("file disappeared during the scan") from error
    except OSError as error:
        raise DecodeError(f"cannot read file: {error.strerror or error}") from error


def _changed(listed_size: int, size: int) -> str:
    how = (
        f"{listed_size:,} bytes when listed, {size:,} when read"
        if size != listed_size
        else "modified since it was listed"
    )
    return f"changed while it was being scanned ({how}); scan it again once it is written"


def _read_elsewhere(path: str) -> bytes:
    try:
        return storage.read_bytes(path)
    except storage.StorageError as error:
        raise DecodeError(str(error)) from error


def collate(items: list[LoadedItem]) -> Batch:
    good = [item for item in items if item.pixels is not None]
    if good:
        pixels = torch.stack([item.pixels for item in good])  # type: ignore[misc]
    else:
        pixels = torch.empty((0, 3, 1, 1), dtype=torch.uint8)
    return Batch(
        indices=torch.tensor([item.index for item in good], dtype=torch.int64),
        pixels=pixels,
        widths=torch.tensor([item.info.width for item in good], dtype=torch.int64),  # type: ignore[union-attr]
        heights=torch.tensor([item.info.height for item in good], dtype=torch.int64),  # type: ignore[union-attr]
        failures=[(item.index, item.reason) for item in items if item.reason is not None],
        thumbnails=[item.thumbnail for item in good],
        digests=[item.digest for item in good],
        jpegs=[item.jpeg for item in items if item.jpeg is not None],
    )


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 1)))


def _worker_init(_: int, parent: int) -> None:
    # Each worker decodes one image at a time; extra intra-op threads only fight each other.
    torch.set_num_threads(1)
    # A parent killed with -9 left its workers running for good (blocked handing over batches
    # nobody reads). A watchdog ends this worker within a second of the parent's death.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def iterate_batches(
    paths: Sequence[str],
    size: int,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    pin_memory: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thumbnail_size: int | None = None,
    digests: bool = False,
    defer_jpegs: bool = False,
    listed: Sequence[tuple[int, float]] | None = None,
) -> Iterator[Batch]:
    """Decode `paths` in worker processes and yield Batches in order (with `defer_jpegs`, JPEGs
    the device can decode arrive undecoded in `Batch.jpegs`). With `listed` (each file's size
    and modification time when it was listed), a file rewritten since fails with that reason."""
    dataset = ImageDataset(paths, size, max_pixels, thumbnail_size, digests, defer_jpegs, listed)
    if workers is None:
        workers = default_workers()
    cpus = os.cpu_count() or 1
    if workers > cpus:
        # More decoding processes than CPUs only add memory (each holds a decoder) and switching.
        logger.warning("--workers %d is more than the %d CPUs here; using %d", workers, cpus, cpus)
        workers = cpus
    batches = -(-len(dataset) // batch_size)
    workers = min(workers, batches)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        worker_init_fn=functools.partial(_worker_init, parent=os.getpid()) if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
    )
    yield from _start_workers(loader) if workers > 0 else loader


def _start_workers(loader: DataLoader) -> Iterator[Batch]:
    """The loader's iterator, its worker processes forked with this process's objects out of
    their garbage collector's reach.

    A forked child inherits every object but none of the threads; if its collector frees an
    inherited object whose destructor waits on those threads (an onnxruntime session left over
    from an earlier scan does), the worker hangs for good. Garbage is collected here first, and
    what remains is frozen across the fork, as `gc.freeze` is meant for.
    """
    gc.collect()
    gc.freeze()
    try:
        batches = iter(loader)  # forks the workers
    finally:
        gc.unfreeze()
    return batches
