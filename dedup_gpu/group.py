"""Stage 6: duplicate groups without chaining, and the choice of the copy to keep.

Images are visited best-to-keep first (by the keep policy). Each image not yet placed becomes
the kept copy of a group and takes every unplaced image that scores at or above the threshold
against it. So every duplicate in a group matches the kept copy itself, never only a chain of
intermediate images (A~B and B~C never puts A and C together unless A~C). Ties are broken by
path, so the result never depends on input or dict order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .index import Pairs
from .records import ContentGroup, ImageFile, ImageInfo


class KeepPolicy(str, enum.Enum):
    largest = "largest"  # most pixels, then most bytes, then shortest path
    oldest = "oldest"  # earliest modification time, then as largest
    newest = "newest"  # latest modification time, then as largest


@dataclass(frozen=True)
class Member:
    path: str
    width: int
    height: int
    bytes: int
    mtime: float
    score: float  # cosine against the kept copy; 1.0 for the kept copy and byte-identical copies
    exact: bool  # byte-identical to the kept copy


@dataclass(frozen=True)
class Group:
    keep: Member
    duplicates: tuple[Member, ...]

    @property
    def reclaimable_bytes(self) -> int:
        return sum(member.bytes for member in self.duplicates)


def keep_key(policy: KeepPolicy) -> Callable[[ImageFile, ImageInfo], tuple]:
    """Sort key where smaller means better to keep."""

    def largest(file: ImageFile, info: ImageInfo) -> tuple:
        return (-info.pixels, -file.size, len(file.path), file.path)

    if policy is KeepPolicy.largest:
        return largest
    if policy is KeepPolicy.oldest:
        return lambda file, info: (file.mtime, *largest(file, info))
    return lambda file, info: (-file.mtime, *largest(file, info))


def _member(file: ImageFile, info: ImageInfo, score: float, exact: bool) -> Member:
    return Member(
        path=file.path,
        width=info.width,
        height=info.height,
        bytes=file.size,
        mtime=file.mtime,
        score=float(score),
        exact=exact,
    )


def build_groups(
    contents: Sequence[ContentGroup],
    infos: Sequence[ImageInfo],
    pairs: Pairs,
    threshold: float,
    policy: KeepPolicy = KeepPolicy.largest,
) -> list[Group]:
    """Groups over `contents` (row i of the embeddings is contents[i]) from scored `pairs`."""
    key = keep_key(policy)
    files_in_order = [
        sorted(group.files, key=lambda f, i=info: key(f, i))
        for group, info in zip(contents, infos, strict=True)
    ]
    visit = sorted(range(len(contents)), key=lambda i: key(files_in_order[i][0], infos[i]))

    strong = pairs.score >= threshold
    left, right, score = pairs.left[strong], pairs.right[strong], pairs.score[strong]
    neighbours: list[list[tuple[int, float]]] = [[] for _ in contents]
    for a, b, s in zip(
        np.concatenate([left, right]).tolist(),
        np.concatenate([right, left]).tolist(),
        np.concatenate([score, score]).tolist(),
        strict=True,
    ):
        neighbours[a].append((b, s))

    placed = np.zeros(len(contents), dtype=bool)
    groups: list[Group] = []
    for unit in visit:
        if placed[unit]:
            continue
        placed[unit] = True
        info = infos[unit]
        keep_file, *identical = files_in_order[unit]
        duplicates = [_member(file, info, 1.0, exact=True) for file in identical]
        for other, other_score in neighbours[unit]:
            if placed[other]:
                continue
            placed[other] = True
            duplicates.extend(
                _member(file, infos[other], min(other_score, 1.0), exact=False)
                for file in files_in_order[other]
            )
        if duplicates:
            duplicates.sort(key=lambda m: (not m.exact, -m.score, m.path))
            groups.append(
                Group(keep=_member(keep_file, info, 1.0, exact=True), duplicates=tuple(duplicates))
            )
    groups.sort(key=lambda g: (-len(g.duplicates), g.keep.path))
    return groups
