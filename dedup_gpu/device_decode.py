"""Stage 3, on the device: JPEGs decoded in batches where the model runs (nvJPEG on a GPU), then
EXIF-oriented, resized and thumbnailed there, so the host only reads and hashes bytes.

The decode workers (data.py) keep a JPEG's bytes instead of decoding it when `jpeg_header` says
the device can take it; every other format, and every JPEG the device fails on, is decoded by
Pillow on the CPU, one file at a time, so one odd file never costs its batch.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from PIL import Image

from .data import THUMBNAIL_QUALITY, Batch, DecodeError, PendingJpeg, decode_image, fit
from .records import ImageInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceImages:
    """JPEGs decoded on the device: pixels in the order of `indices`, and the files that neither
    the device nor Pillow could decode, with their reasons."""

    indices: list[int]
    pixels: torch.Tensor  # uint8 [B, 3, S, S] on the device
    infos: list[ImageInfo]
    thumbnails: list[bytes | None]
    digests: list[str | None]
    failures: list[tuple[int, str]]


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """`image` (C x H x W) turned the way EXIF `orientation` says it is displayed, as Pillow's
    `ImageOps.exif_transpose` does."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1).flip(-2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return image.rot90(-1, dims=(-2, -1))
    if orientation == 7:  # transverse: a transpose about the other diagonal
        return image.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return image.rot90(1, dims=(-2, -1))
    return image


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 C x H x W resized with antialiased bilinear filtering (as Pillow's BILINEAR)."""
    if tuple(image.shape[-2:]) == (height, width):
        return image
    resized = F.interpolate(
        image[None].float(), size=(height, width), mode="bilinear", antialias=True
    )
    return resized[0].round_().clamp_(0, 255).to(torch.uint8)


@cache
def can_decode_on(device: torch.device) -> bool:
    """Whether torchvision can decode a JPEG on `device` here (nvJPEG on CUDA); probed once."""
    from torchvision.io import decode_jpeg

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "JPEG")
    data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    try:
        decode_jpeg([data], device=device)
    except Exception as error:
        logger.warning(
            "JPEG decoding on %s is unavailable (%s); decoding on the CPU", device, error
        )
        return False
    return True


def decode_on_device(
    pending: Sequence[PendingJpeg],
    device: torch.device,
    size: int,
    *,
    thumbnail_size: int | None = None,
) -> DeviceImages:
    """Decode `pending` JPEGs on `device` in one batch, orient and resize them to size x size,
    and make thumbnails from the same decode. A batch that fails is retried file by file; a file
    the device cannot decode is decoded by Pillow instead."""
    decoded = _decode_all([item.data for item in pending], device)
    indices: list[int] = []
    frames: list[torch.Tensor] = []
    infos: list[ImageInfo] = []
    thumbs: list[bytes | None] = []
    digests: list[str | None] = []
    failures: list[tuple[int, str]] = []
    shrunk: list[torch.Tensor] = []  # thumbnails to encode; full-size frames are let go at once
    for position, item in enumerate(pending):
        image, decoded[position] = decoded[position], None
        if image is None:
            try:
                fallback = decode_image(
                    f"#{item.index}",
                    size,
                    thumbnail=thumbnail_size,
                    data=item.data.numpy().tobytes(),
                )
            except DecodeError as error:
                failures.append((item.index, str(error)))
                continue
            pixels = torch.from_numpy(fallback.pixels).permute(2, 0, 1)
            frames.append(pixels.to(device, non_blocking=True))
            thumbs.append(fallback.thumbnail)
            infos.append(fallback.info)
        else:
            upright = orient(image, item.header.orientation)
            frames.append(resize(upright, size, size))
            if thumbnail_size is not None:
                width, height = fit((upright.shape[2], upright.shape[1]), thumbnail_size)
                shrunk.append(resize(upright, height, width))
            thumbs.append(None)  # filled below, in one batched encode
            infos.append(item.header.info)
        indices.append(item.index)
        digests.append(item.digest)
    if shrunk:
        encoded = iter(_encode_jpegs(shrunk))
        thumbs = [thumb if thumb is not None else next(encoded) for thumb in thumbs]
    if frames:
        pixels = torch.stack(frames)
    else:
        pixels = torch.empty((0, 3, size, size), dtype=torch.uint8, device=device)
    return DeviceImages(indices, pixels, infos, thumbs, digests, failures)


def _decode_all(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    from torchvision.io import ImageReadMode, decode_jpeg

    if not data:
        return []
    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except Exception:
        pass  # the batched call returns nothing when any one file fails: find which
    decoded: list[torch.Tensor | None] = []
    for one in data:
        try:
            decoded.append(decode_jpeg(one, mode=ImageReadMode.RGB, device=device))
        except Exception:
            decoded.append(None)
    return decoded


def _encode_jpegs(small: list[torch.Tensor]) -> list[bytes]:
    from torchvision.io import encode_jpeg

    try:
        encoded = encode_jpeg(small, quality=THUMBNAIL_QUALITY)
    except Exception:  # a torchvision without JPEG encoding on this device: encode on the CPU
        encoded = encode_jpeg([image.cpu() for image in small], quality=THUMBNAIL_QUALITY)
    return [bytes(jpeg.cpu().numpy()) for jpeg in encoded]


def finish_batch(
    batch: Batch, device: torch.device, size: int, *, thumbnail_size: int | None = None
) -> Batch:
    """`batch` with its pending JPEGs decoded on `device` and appended after the images the
    workers decoded; the pixels then live on `device`."""
    if not batch.jpegs:
        return batch
    done = decode_on_device(batch.jpegs, device, size, thumbnail_size=thumbnail_size)
    decoded_by_workers = len(batch.indices) > 0
    pixels = (
        torch.cat([batch.pixels.to(device, non_blocking=True), done.pixels])
        if decoded_by_workers
        else done.pixels
    )
    return Batch(
        indices=torch.cat([batch.indices, torch.tensor(done.indices, dtype=torch.int64)]),
        pixels=pixels,
        widths=torch.cat([batch.widths, torch.tensor([i.width for i in done.infos])]),
        heights=torch.cat([batch.heights, torch.tensor([i.height for i in done.infos])]),
        failures=[*batch.failures, *done.failures],
        thumbnails=[*batch.thumbnails, *done.thumbnails],
        digests=[*batch.digests, *done.digests],
    )
