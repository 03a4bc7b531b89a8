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


class VerifyMethod(str, enum.Enum):
    """How verification aligned or compared a pair (the report's `method`). A str enum, so
    reports and comparisons keep the plain names."""

    keypoints = "keypoints"  # ORB matches, a similarity transform (crop, scale, rotation)
    keypoints_mirrored = "keypoints-mirrored"
    affine = "affine"  # ... an affine transform: a copy stretched along one axis
    affine_mirrored = "affine-mirrored"
    homography = "homography"  # ... a perspective transform: a photo of a print or a screen
    homography_mirrored = "homography-mirrored"
    whole_frame = "whole-frame"  # one frame stretched onto the other (tiny or blurred copies)
    whole_frame_mirrored = "whole-frame-mirrored"
    template = "template"  # the smaller picture found inside the larger by correlation
    layout = "layout"  # plain images: colour and intensity layout after alignment
    none = "none"  # no alignment found, or the images could not be read again

    @property
    def mirrored(self) -> bool:
        return self.value.endswith("-mirrored")


class VerifyOutcome(str, enum.Enum):
    """What verification concluded about a candidate pair."""

    accepted = "accepted"  # a copy: grouped
    rejected = "rejected"  # a look-alike or another record: never grouped together
    unverified = "unverified"  # too little to decide either way: listed for review, not grouped


@dataclass(frozen=True)
class Verdict:
    """Why a candidate pair was kept or rejected; the report carries it next to the pair."""

    outcome: VerifyOutcome
    method: VerifyMethod
    reason: str
    inliers: int = 0  # keypoint matches consistent with the fitted transform
    agreement: float = 0.0  # share of informative blocks (text windows, documents) that agree
    blocks: int = 0  # informative blocks compared (text windows for documents compared as text)
    document: bool = False  # both images carry text records (pages, cards...): stricter rule

    @property
    def accepted(self) -> bool:
        return self.outcome is VerifyOutcome.accepted

    def to_dict(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "outcome": self.outcome.value,
            "method": self.method.value,
            "inliers": self.inliers,
            "agreement": round(self.agreement, 4),
            "blocks": self.blocks,
            "document": self.document,
            "reason": self.reason,
        }
