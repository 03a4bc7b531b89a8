"""Small typed records passed between stages (sources -> exact -> data -> encoders -> index -> group
-> report). Each stage only reads the records of the stages before it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFile:
    """One candidate image file; `path` is spelled as the user gave it (absolute if they did)."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class FileError:
    """A file or argument that was skipped, with a one-line reason a person can act on."""

    path: str
    reason: str


@dataclass(frozen=True)
class ContentGroup:
    """Files with byte-identical content; only the first is decoded and embedded."""

    files: tuple[ImageFile, ...]
    digest: str | None  # None when the size was unique, so hashing was not needed

    @property
    def representative(self) -> ImageFile:
        return self.files[0]


@dataclass(frozen=True)
class ImageInfo:
    """What decoding learned about an image: its displayed size after EXIF orientation."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height
