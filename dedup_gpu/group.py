"""Stage 6: duplicate groups without chaining, and the choice of the copy to keep.

Groups are stars. Images are visited most central first: the image with the largest sum of
candidate scores to the others (in a family of copies, the original: every copy is one edit away
from it, two edits from each other). Each image not yet placed becomes the centre of a group and
takes every unplaced image paired with it. So every member of a group matched the centre itself,
never only a chain of intermediate images (A~B~C~D never puts A and D together). The copy to keep
is then chosen among the group's members by the keep policy; choosing centres by the policy
instead would make a letterboxed or captioned copy (more pixels) the image every other copy must
match. Ties are broken by the keep policy and then by path, so the result never depends on input
or dict order.
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
    score: float  # cosine against `matched`; 1.0 for the kept copy and byte-identical copies
    exact: bool  # byte-identical to the kept copy
    verdict: Verdict | None = None  # why verification accepted it (None: not verified)
    matched: str = ""  # the image it was matched against: the group's centre (or the kept copy)


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


def _member(file: ImageFile, info: ImageInfo, score: float, exact: bool, matched: str) -> Member:
    return Member(
        path=file.path,
        width=info.width,
        height=info.height,
        bytes=file.size,
        mtime=file.mtime,
        score=float(score),
        exact=exact,
        matched=matched,
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
    (centre -> member) are checked: a rejected edge is removed and the grouping redone, until
    every edge used has been accepted. `verdicts` (keyed by row pair) explain members.
    """
    key = keep_key(policy)
    files_in_order = [
        sorted(group.files, key=lambda f, i=info: key(f, i))
        for group, info in zip(contents, infos, strict=True)
    ]
    best_first = sorted(range(len(contents)), key=lambda i: key(files_in_order[i][0], infos[i]))
    rank = np.empty(len(contents), dtype=np.int64)
    rank[best_first] = np.arange(len(contents))
    strong = pairs.score >= threshold
    candidates = pairs.select(strong)
    accepted = np.ones(len(candidates), dtype=bool)
    known = np.zeros(len(candidates), dtype=bool) if check else np.ones(len(candidates), bool)
    while True:
        usable = candidates.select(accepted)
        slots = np.flatnonzero(accepted)
        conflicts = candidates.select(~accepted)  # only a check turns a pair down
        centre = _star_assignment(len(contents), _central_first(usable, rank), usable, conflicts)
        in_use = [
            centre[b] == a or centre[a] == b
            for a, b in zip(usable.left.tolist(), usable.right.tolist(), strict=True)
        ]
        used = slots[np.array(in_use, dtype=bool)] if in_use else slots
        unchecked = used[~known[used]]
        if check is None or not len(unchecked):
            break
        accepted[unchecked] = check(candidates.select(unchecked))
        known[unchecked] = True

    score_of = dict(
        zip(
            zip(usable.left.tolist(), usable.right.tolist(), strict=True),
            usable.score.tolist(),
            strict=True,
        )
    )
    members: dict[int, list[int]] = {}
    for unit, hub in enumerate(centre):
        members.setdefault(hub, []).append(unit)
    groups: list[Group] = []
    for hub, units in members.items():
        if len(units) == 1 and len(files_in_order[hub]) == 1:
            continue  # a lone image
        kept_unit = min(units, key=lambda unit: rank[unit])
        keep_file, *identical = files_in_order[kept_unit]
        duplicates = [
            _member(file, infos[kept_unit], 1.0, True, keep_file.path) for file in identical
        ]
        centre_path = files_in_order[hub][0].path
        for unit in units:
            if unit == kept_unit:
                continue
            # Each member was matched against the centre; the centre itself against the kept copy.
            other = kept_unit if unit == hub else hub
            edge = (min(unit, other), max(unit, other))
            verdict = verdicts.get(edge) if verdicts is not None else None
            matched = keep_file.path if unit == hub else centre_path
            duplicates.extend(
                replace(
                    _member(file, infos[unit], min(score_of[edge], 1.0), False, matched),
                    verdict=verdict,
                )
                for file in files_in_order[unit]
            )
        duplicates.sort(key=lambda m: (not m.exact, -m.score, m.path))
        keep = _member(keep_file, infos[kept_unit], 1.0, True, keep_file.path)
        groups.append(Group(keep=keep, duplicates=tuple(duplicates)))
    groups.sort(key=lambda g: (-len(g.duplicates), g.keep.path))
    return groups


def _central_first(pairs: Pairs, rank: np.ndarray) -> list[int]:
    """Rows ordered by their sum of pair scores, largest first, then by keep `rank`."""
    centrality = np.zeros(len(rank), dtype=np.float64)
    np.add.at(centrality, pairs.left, pairs.score.astype(np.float64))
    np.add.at(centrality, pairs.right, pairs.score.astype(np.float64))
    # Rounded so that the order of summation (input order) cannot change the order of visits.
    return np.lexsort((rank, -np.round(centrality, 6))).tolist()


def _star_assignment(count: int, visit: Sequence[int], pairs: Pairs, conflicts: Pairs) -> list[int]:
    """centre[i]: the centre of i's group (i itself for a centre or a lone image).

    Each unplaced image, in `visit` order, takes the unplaced images it is paired with directly,
    so there is no chaining; an image is not taken into a group holding an image it was
    verified not to be a copy of (two crops of one photo may both match it, two different
    photos may not).
    """
    position = np.empty(count, dtype=np.int64)
    position[np.asarray(visit, dtype=np.int64)] = np.arange(len(visit))
    neighbours: list[list[int]] = [[] for _ in range(count)]
    for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True):
        neighbours[a].append(b)
        neighbours[b].append(a)
    apart: list[set[int]] = [set() for _ in range(count)]
    for a, b in zip(conflicts.left.tolist(), conflicts.right.tolist(), strict=True):
        apart[a].add(b)
        apart[b].add(a)
    centre = [-1] * count
    for unit in visit:
        if centre[unit] >= 0:
            continue
        centre[unit] = unit
        group = {unit}
        # In visit order, not input order, so that conflicts resolve the same way every time.
        for other in sorted(neighbours[unit], key=lambda row: position[row]):
            if centre[other] < 0 and not apart[other] & group:
                centre[other] = unit
                group.add(other)
    return centre
