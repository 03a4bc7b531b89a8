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
from dataclasses import dataclass, replace

import numpy as np

from .index import Pairs
from .records import ContentGroup, ImageFile, ImageInfo, Verdict

# Checks candidate pairs; returns True where a pair is a copy (see verify.Verifier).
PairCheck = Callable[[Pairs], np.ndarray]


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
    verdict: Verdict | None = None  # why verification accepted it (None: not verified)


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
    *,
    check: PairCheck | None = None,
    verdicts: dict[tuple[int, int], Verdict] | None = None,
) -> list[Group]:
    """Groups over `contents` (row i of the embeddings is contents[i]) from scored `pairs`.

    With `check`, only pairs it accepts become edges, and only the edges the grouping would use
    (kept copy -> duplicate) are checked: a rejected edge is removed and the grouping redone,
    until every edge used has been accepted. `verdicts` (keyed by row pair) explain members.
    """
    key = keep_key(policy)
    files_in_order = [
        sorted(group.files, key=lambda f, i=info: key(f, i))
        for group, info in zip(contents, infos, strict=True)
    ]
    visit = sorted(range(len(contents)), key=lambda i: key(files_in_order[i][0], infos[i]))
    strong = pairs.score >= threshold
    candidates = Pairs(pairs.left[strong], pairs.right[strong], pairs.score[strong])
    accepted = np.ones(len(candidates), dtype=bool)
    known = np.zeros(len(candidates), dtype=bool) if check else np.ones(len(candidates), bool)
    while True:
        usable = Pairs(
            candidates.left[accepted], candidates.right[accepted], candidates.score[accepted]
        )
        slots = np.flatnonzero(accepted)
        keeper = _star_assignment(len(contents), visit, usable)
        in_use = [
            keeper[b] == a or keeper[a] == b
            for a, b in zip(usable.left.tolist(), usable.right.tolist(), strict=True)
        ]
        used = slots[np.array(in_use, dtype=bool)] if in_use else slots
        unchecked = used[~known[used]]
        if check is None or not len(unchecked):
            break
        batch = Pairs(
            candidates.left[unchecked], candidates.right[unchecked], candidates.score[unchecked]
        )
        accepted[unchecked] = check(batch)
        known[unchecked] = True

    score_of = dict(
        zip(
            zip(usable.left.tolist(), usable.right.tolist(), strict=True),
            usable.score.tolist(),
            strict=True,
        )
    )
    members: dict[int, list[int]] = {}
    for unit in visit:
        if keeper[unit] != unit:
            members.setdefault(keeper[unit], []).append(unit)
    groups: list[Group] = []
    for unit in visit:
        if keeper[unit] != unit:
            continue
        info = infos[unit]
        keep_file, *identical = files_in_order[unit]
        duplicates = [_member(file, info, 1.0, exact=True) for file in identical]
        for other in members.get(unit, []):
            edge = (min(unit, other), max(unit, other))
            verdict = verdicts.get(edge) if verdicts is not None else None
            duplicates.extend(
                replace(
                    _member(file, infos[other], min(score_of[edge], 1.0), exact=False),
                    verdict=verdict,
                )
                for file in files_in_order[other]
            )
        if duplicates:
            duplicates.sort(key=lambda m: (not m.exact, -m.score, m.path))
            groups.append(
                Group(keep=_member(keep_file, info, 1.0, exact=True), duplicates=tuple(duplicates))
            )
    groups.sort(key=lambda g: (-len(g.duplicates), g.keep.path))
    return groups


def _star_assignment(count: int, visit: Sequence[int], pairs: Pairs) -> list[int]:
    """keeper[i]: the kept image of i's group (i itself for a kept or lone image).

    Images are visited best-to-keep first; each unplaced one keeps the unplaced images it is
    paired with directly, so there is no chaining.
    """
    neighbours: list[list[int]] = [[] for _ in range(count)]
    for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True):
        neighbours[a].append(b)
        neighbours[b].append(a)
    keeper = [-1] * count
    for unit in visit:
        if keeper[unit] >= 0:
            continue
        keeper[unit] = unit
        for other in neighbours[unit]:
            if keeper[other] < 0:
                keeper[other] = unit
    return keeper
