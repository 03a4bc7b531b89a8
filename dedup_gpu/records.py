"""Small typed records passed between stages (sources -> exact -> data -> encoders -> index -> group
-> report). Each stage only reads the records of the stages before it."""

from __future__ import annotations

import enum
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


class VerifyMode(str, enum.Enum):
    """Whether candidate pairs are verified before grouping (see verify.py)."""

    auto = "auto"  # verify when OpenCV is installed, else group on the embedding score alone
    on = "on"
    off = "off"


@dataclass(frozen=True)
class Verdict:
    """Why a candidate pair was kept or rejected; the report carries it next to the pair."""

    accepted: bool
    method: str  # "keypoints", "keypoints-mirrored", "whole-frame", "whole-frame-mirrored", "none"
    inliers: int  # keypoint matches consistent with the fitted transform
    agreement: float  # share of informative blocks (text windows, documents) that agree, 0..1
    blocks: int  # informative blocks compared (text windows for documents compared as text)
    document: bool  # both images look like paper documents (stricter rule)
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "method": self.method,
            "inliers": self.inliers,
            "agreement": round(self.agreement, 4),
            "blocks": self.blocks,
            "document": self.document,
            "reason": self.reason,
        }
