"""Stage 6: duplicate groups without chaining, and the choice of the copy to keep.

Groups are stars. Images are visited most central first: the image with the largest sum of
candidate scores to the others (in a family of copies, most often the original: every copy is
one edit away from it, two edits from each other). Each image not yet placed becomes the centre
of a group and takes every unplaced image paired with it. So every member of a group matched
the centre itself, never only a chain of intermediate images (A~B~C~D never puts A and D
together). With verification the embedding's choice of centre is checked too: a member found to
be a copy of images its centre turned down (the original, where the most central image is a
stretched or noisy copy) is checked against the rest of its group and takes the centre if it
is a copy of more of them. The copy to keep is then chosen among the group's members by the
keep policy; choosing centres by the policy instead would make a letterboxed or captioned copy
(more pixels) the image every other copy must match. Ties are broken by the keep policy and
then by path, so the result never depends on input or dict order.
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


# Candidates an image is offered before it stops trying: each copy found adds two more, so a
# family of near copies goes on until every copy is in, while look-alikes cost a few checks each.
REJECTION_BUDGET = 6
BEST_BY_SCORE = 2  # an image's best-scoring candidates are always offered
LAST_CHANCES = 3  # checks against a group's centre a lone image gets once grouping settles
# Rounds in which a member confirmed as a copy of images its centre turned down is checked against
# the rest of its group, to become the centre if it is a copy of more of them.
CHALLENGE_ROUNDS = 3
# An image found different from members of a group on evidence that may be outvoted
# (Verification.outvotable) still joins it when it was confirmed a copy of this many times as
# many of its members (the centre included).
OUTVOTING = 2


@dataclass(frozen=True)
class Verification:
    """What grouping needs of verification: `check` says which pairs are copies; `apart`, which
    of the pairs turned down are known to be different (an undecidable pair is not);
    `outvotable`, which of those were found different on evidence an image's copies may outvote
    (two pictures two edits apart disagree block by block, where a record whose text differs is
    another record; none by default); `priority` ranks each image's candidates, likeliest
    copies first; `progress` hears (verified, expected)."""

    check: PairCheck
    apart: PairCheck | None = None
    outvotable: PairCheck | None = None
    priority: Callable[[Pairs], np.ndarray] | None = None
    progress: Callable[[int, int], None] | None = None


def build_groups(
    contents: Sequence[ContentGroup],
    infos: Sequence[ImageInfo],
    pairs: Pairs,
    threshold: float,
    policy: KeepPolicy = KeepPolicy.largest,
    *,
    check: PairCheck | Verification | None = None,
    verdicts: dict[tuple[int, int], Verdict] | None = None,
    budget: int = REJECTION_BUDGET,
) -> list[Group]:
    """Groups over `contents` (row i of the embeddings is contents[i]) from scored `pairs`.

    With `check`, only pairs it accepts become edges, and only the edges the grouping would use
    (centre -> member) are checked, a batch a round: a rejected edge is removed and the grouping
    redone, until every edge used has been accepted. Work is bounded per image: each image's
    candidates are taken in `priority` order (default: score), and an image is offered the
    first `budget` of them plus two for each copy it found, so a family of copies of any size
    is completed while a cluster of look-alikes costs a few checks per image. `verdicts` (keyed
    by row pair) explain members.
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
    verification = (
        Verification(check) if callable(check) and not isinstance(check, Verification) else check
    )
    accepted = np.ones(len(candidates), dtype=bool)
    known = np.zeros(len(candidates), dtype=bool)
    if verification is None:
        known[:] = True
    apart = np.zeros(len(candidates), dtype=bool)
    soft = np.zeros(len(candidates), dtype=bool)  # found apart, but copies may outvote it
    lists = (
        _CandidateLists(candidates, len(contents), budget, verification.priority)
        if verification is not None
        else None
    )
    challenged = np.zeros(len(contents), dtype=bool)
    promoted = np.zeros(len(contents), dtype=np.int64)  # > 0: a challenger that won, visited first
    challenge_rounds = 0
    verified = 0
    while True:
        offered = lists.offered() if lists is not None else np.ones(len(candidates), bool)
        eligible = accepted & (known | offered)
        usable = candidates.select(eligible)
        slots = np.flatnonzero(eligible)
        conflicts = candidates.select(apart & ~soft)
        disputed = candidates.select(apart & soft)
        # Centres are chosen over every candidate not turned down, so they stay put as images
        # are offered more of their lists; only offered edges may join a member to one.
        visit = _central_first(candidates.select(accepted), rank, promoted)
        centre = _star_assignment(
            len(contents), visit, usable, conflicts, disputed, candidates.select(accepted & known)
        )
        in_use = [
            centre[b] == a or centre[a] == b
            for a, b in zip(usable.left.tolist(), usable.right.tolist(), strict=True)
        ]
        used = slots[np.array(in_use, dtype=bool)] if in_use else slots
        unchecked = used[~known[used]]
        if lists is not None and not len(unchecked):
            unchecked = lists.second_chances(centre, accepted & ~known)
        if verification is None or lists is None:
            break
        challenge = None
        if not len(unchecked) and challenge_rounds < CHALLENGE_ROUNDS:
            challenge = _challenge(candidates, centre, accepted, known, challenged)
            unchecked = challenge.slots
            challenge_rounds += 1
        if not len(unchecked) and (challenge is None or not len(challenge.challengers)):
            break
        if len(unchecked):
            result = np.asarray(verification.check(candidates.select(unchecked)), dtype=bool)
            accepted[unchecked] = result
            known[unchecked] = True
            turned = unchecked[~result]
            if len(turned):
                apart[turned] = (
                    np.asarray(verification.apart(candidates.select(turned)), dtype=bool)
                    if verification.apart is not None
                    else True
                )
                if verification.outvotable is not None:
                    soft[turned] = apart[turned] & np.asarray(
                        verification.outvotable(candidates.select(turned)), dtype=bool
                    )
            lists.record(unchecked, result)
            verified += len(unchecked)
        if challenge is not None:
            confirmed = accepted & known
            won = challenge.winners(candidates, confirmed)
            promoted[won] = _copies_confirmed(candidates.select(confirmed), len(contents))[won]
            lifted = challenge.lifted(candidates, confirmed, won)
            apart[lifted[soft[lifted]]] = False
        if verification.progress is not None:
            waiting = int((accepted & ~known & lists.offered()).sum())
            verification.progress(verified, verified + waiting)

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
            matched = keep_file.path if unit == hub else centre_path
            duplicates.extend(
                _near_copies(
                    files_in_order[unit], infos[unit], score_of[edge], matched, edge, verdicts
                )
            )
        groups.append(_group(keep_file, infos[kept_unit], duplicates))
    return _largest_first(groups)


def _near_copies(
    files: Sequence[ImageFile],
    info: ImageInfo,
    score: float,
    matched: str,
    edge: tuple[int, int],
    verdicts: dict[tuple[int, int], Verdict] | None,
) -> list[Member]:
    verdict = verdicts.get(edge) if verdicts is not None else None
    return [
        replace(_member(file, info, min(score, 1.0), False, matched), verdict=verdict)
        for file in files
    ]


def _group(keep_file: ImageFile, keep_info: ImageInfo, duplicates: list[Member]) -> Group:
    duplicates.sort(key=lambda m: (not m.exact, -m.score, m.path))
    keep = _member(keep_file, keep_info, 1.0, True, keep_file.path)
    return Group(keep=keep, duplicates=tuple(duplicates))


def _largest_first(groups: list[Group]) -> list[Group]:
    return sorted(groups, key=lambda g: (-len(g.duplicates), g.keep.path))


class _CandidateLists:
    """Each image's candidates in the order they are tried, and how far down its list each image
    is offered: `budget` places, and two more for each copy it found while it has met fewer than
    `budget` rejections, one more after that. An image whose first check
    turned up no copy has its list ranked again, once, by `priority` (signature similarity, which
    knows a rescan from another fill of a form better than the embedding does), so that its
    likeliest copies are tried before the rest of its budget is spent. Images whose best
    candidates are copies never need the (dearer) signatures."""

    def __init__(
        self,
        candidates: Pairs,
        count: int,
        budget: int,
        priority: Callable[[Pairs], np.ndarray] | None,
    ):
        self.candidates = candidates
        self.budget = budget
        self.priority = priority
        self.order = candidates.score.astype(np.float64)
        self.copies = np.zeros(count, dtype=np.int64)
        self.turned_down = np.zeros(count, dtype=np.int64)
        self.spent_before_ranking = np.zeros(count, dtype=np.int64)
        self.ranked = np.zeros(count, dtype=bool)
        self.chances = np.zeros(count, dtype=np.int64)  # last chances given to lone images
        self.count = count
        self._place()
        # Places by embedding score alone, kept: an image is always offered its best-scoring
        # candidates too, whatever the signatures say (they can undervalue a small copy).
        self.score_left, self.score_right = self.place_left, self.place_right

    def _place(self) -> None:
        self.place_left, self.place_right = _places_in_lists(
            self.candidates, self.order, self.count
        )

    def _families(self) -> np.ndarray:
        return self.copies >= np.maximum(2, self.turned_down)

    def offered(self) -> np.ndarray:
        """Per candidate pair: whether it is within reach of either image's list."""
        # While an image meets copies and few rejections, each copy lets it go two places further
        # (a family of any size completes in a few rounds); once it has met `budget` rejections,
        # one place per copy found: the rest of its list is look-alikes.
        growing = self.turned_down < self.budget + self.spent_before_ranking
        reach = self.budget + self.copies * (1 + growing) + self.spent_before_ranking
        return (
            (self.place_left < reach[self.candidates.left])
            | (self.place_right < reach[self.candidates.right])
            | (self.score_left < BEST_BY_SCORE)
            | (self.score_right < BEST_BY_SCORE)
        )

    def second_chances(self, centre: list[int], untried: np.ndarray) -> np.ndarray:
        """Once the grouping has settled: for the centre of each group of one, or of a splinter
        group, its likeliest untried candidate (in its list's order) that is the centre of a
        larger group (or alone too, for an image alone), so that no copy misses its original
        because its list was spent on look-alikes or it paired off with a sibling copy first.
        Where no such centre is left untried (the centre turned it down), its likeliest untried
        member of a larger group: a copy of it may challenge the centre (see `_challenge`).
        One check per such centre a round, LAST_CHANCES rounds at most."""
        centres = np.asarray(centre, dtype=np.int64)  # int even when empty
        rows = np.arange(self.count)
        size = np.bincount(centres, minlength=self.count)
        seeking = (centres == rows) & (self.chances < LAST_CHANCES)
        seekers, found = self._likeliest(centres, size, untried, seeking, to_centres=True)
        served = np.zeros(self.count, dtype=bool)
        served[seekers] = True
        more_seekers, members = self._likeliest(
            centres, size, untried, seeking & ~served, to_centres=False
        )
        np.add.at(self.chances, np.concatenate([seekers, more_seekers]), 1)
        return np.unique(np.concatenate([found, members]))

    def _likeliest(
        self,
        centres: np.ndarray,
        size: np.ndarray,
        untried: np.ndarray,
        seeking: np.ndarray,
        to_centres: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each seeker's likeliest untried candidate in a larger group, the group's centre or
        (not `to_centres`) one of its members: (seekers, slots), one slot per seeker."""
        seekers, slots = [], []
        for ends, others in (
            (self.candidates.left, self.candidates.right),
            (self.candidates.right, self.candidates.left),
        ):
            larger = (size[centres[others]] > size[ends]) | (
                (size[ends] == 1) & (size[centres[others]] == 1)
            )
            placed = (centres[others] == others) == to_centres
            fits = np.flatnonzero(untried & seeking[ends] & placed & larger)
            seekers.append(ends[fits])
            slots.append(fits)
        seeker, found = np.concatenate(seekers), np.concatenate(slots)
        order = np.lexsort((-self.order[found], seeker))  # likeliest first, as ranked
        first = np.unique(seeker[order], return_index=True)[1]
        return seeker[order][first], found[order][first]

    def record(self, slots: np.ndarray, accepted: np.ndarray) -> None:
        checked = self.candidates.select(slots)
        for ends in (checked.left, checked.right):
            np.add.at(self.copies, ends[accepted], 1)
            np.add.at(self.turned_down, ends[~accepted], 1)
        if self.priority is None:
            return
        crowded = (self.turned_down >= 1) & ~self.ranked & ~self._families()
        if not crowded.any():
            return
        touching = np.flatnonzero(crowded[self.candidates.left] | crowded[self.candidates.right])
        self.order[touching] = self.priority(self.candidates.select(touching))
        self.spent_before_ranking[crowded] = self.turned_down[crowded]
        self.ranked |= crowded
        self._place()


def _places_in_lists(pairs: Pairs, order: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """For each pair, its place (0 = first) in the candidate list of its left and of its right
    image, each list sorted by `order`, highest first (ties by the other image's row)."""
    ends = np.concatenate([pairs.left, pairs.right])
    others = np.concatenate([pairs.right, pairs.left])
    values = np.concatenate([order, order])
    by_list = np.lexsort((others, -values, ends))
    sorted_ends = ends[by_list]
    starts = np.searchsorted(sorted_ends, np.arange(count))
    places = np.empty(len(ends), dtype=np.int64)
    places[by_list] = np.arange(len(ends)) - starts[sorted_ends]
    return places[: len(pairs)], places[len(pairs) :]


def _central_first(pairs: Pairs, rank: np.ndarray, first: np.ndarray) -> list[int]:
    """Rows ordered by `first` (largest first; a challenger that won, see `_challenge`), then by
    their sum of pair scores, largest first, then by keep `rank`."""
    centrality = np.zeros(len(rank), dtype=np.float64)
    np.add.at(centrality, pairs.left, pairs.score.astype(np.float64))
    np.add.at(centrality, pairs.right, pairs.score.astype(np.float64))
    # Rounded so that the order of summation (input order) cannot change the order of visits.
    return np.lexsort((rank, -np.round(centrality, 6), -first)).tolist()


def _copies_confirmed(confirmed: Pairs, count: int) -> np.ndarray:
    copies = np.zeros(count, dtype=np.int64)
    np.add.at(copies, confirmed.left, 1)
    np.add.at(copies, confirmed.right, 1)
    return copies


@dataclass(frozen=True)
class _Challenge:
    """Members checked against the rest of their group (`slots`), each to become its centre if it
    is confirmed a copy of more of the group and of the images its centre turned down than the
    centre is of the group."""

    slots: np.ndarray
    challengers: np.ndarray
    centres: np.ndarray  # each image's centre when the challenge was made
    outsiders: np.ndarray  # image * count + centre, for images a centre turned down

    def winners(self, candidates: Pairs, confirmed: np.ndarray) -> np.ndarray:
        count = len(self.centres)
        held = np.zeros(count, dtype=np.int64)
        challenging = np.zeros(count, dtype=bool)
        challenging[self.challengers] = True
        for ends, others in _both_ways(candidates):
            group = self.centres[ends]
            mine = (
                confirmed
                & challenging[ends]
                & (
                    (self.centres[others] == group)
                    | np.isin(others * count + group, self.outsiders)
                )
            )
            np.add.at(held, ends[mine], 1)
        size = np.bincount(self.centres, minlength=count)
        return self.challengers[held[self.challengers] > size[self.centres[self.challengers]] - 1]

    def lifted(self, candidates: Pairs, confirmed: np.ndarray, won: np.ndarray) -> np.ndarray:
        """Slots of the old centres' refusals that a winner outvoted: it was confirmed a copy of
        both the old centre and the image turned down, so that refusal was between two copies of
        it (two edits apart), not a sign that they are different pictures."""
        count = len(self.centres)
        winner_of = np.full(count, -1, dtype=np.int64)
        winner_of[self.centres[won]] = won
        vouched = (
            np.minimum(candidates.left, candidates.right)[confirmed] * count
            + np.maximum(candidates.left, candidates.right)[confirmed]
        )
        lifted = np.zeros(len(candidates), dtype=bool)
        for old, other in _both_ways(candidates):
            winner = winner_of[old]
            refused = (
                ~confirmed
                & (winner >= 0)
                & (winner != other)
                & np.isin(other * count + old, self.outsiders)
            )
            pair = np.minimum(winner, other) * count + np.maximum(winner, other)
            lifted |= refused & np.isin(pair, vouched)
        return np.flatnonzero(lifted)


def _both_ways(pairs: Pairs) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    return ((pairs.left, pairs.right), (pairs.right, pairs.left))


def _challenge(
    candidates: Pairs,
    centre: list[int],
    accepted: np.ndarray,
    known: np.ndarray,
    challenged: np.ndarray,
) -> _Challenge:
    """A challenge to the centre of each group where a member was confirmed a copy of images
    the centre turned down: the original, where the centre is a stretched or noisy copy that
    looks most like the rest to the embedding, is a copy of them all. In each group the member
    confirmed a copy of the most such images is checked against the rest of its group, once per
    image (marked in `challenged`)."""
    centres = np.asarray(centre, dtype=np.int64)
    count = len(centres)
    confirmed = accepted & known
    turned = known & ~accepted
    outsiders = np.unique(
        np.concatenate(
            [
                others[turned & (centres[ends] == ends) & (centres[others] != ends)] * count
                + ends[turned & (centres[ends] == ends) & (centres[others] != ends)]
                for ends, others in _both_ways(candidates)
            ]
        )
    )
    found = np.zeros(count, dtype=np.int64)
    for ends, others in _both_ways(candidates):
        group = centres[ends]
        crossing = (
            confirmed
            & (group != ends)
            & (centres[others] != group)
            & np.isin(others * count + group, outsiders)
        )
        np.add.at(found, ends[crossing], 1)
    rows = np.flatnonzero((found > 0) & ~challenged)
    copies = _copies_confirmed(candidates.select(confirmed), count)
    order = np.lexsort((rows, -copies[rows], -found[rows], centres[rows]))
    challengers = rows[order][np.unique(centres[rows][order], return_index=True)[1]]
    challenged[challengers] = True
    chosen = np.zeros(count, dtype=bool)
    chosen[challengers] = True
    slots = [
        np.flatnonzero(chosen[ends] & (centres[others] == centres[ends]) & accepted & ~known)
        for ends, others in _both_ways(candidates)
    ]
    return _Challenge(np.unique(np.concatenate(slots)), challengers, centres, outsiders)


def _star_assignment(
    count: int,
    visit: Sequence[int],
    pairs: Pairs,
    conflicts: Pairs,
    disputed: Pairs,
    confirmed: Pairs,
) -> list[int]:
    """centre[i]: the centre of i's group (i itself for a centre or a lone image).

    Each unplaced image, in `visit` order, takes the unplaced images it is paired with directly,
    so there is no chaining; an image is not taken into a group holding an image it was
    verified not to be a copy of (`conflicts`: two crops of one photo may both match it, two
    different records may not). A `disputed` finding (two pictures that disagree block by
    block) keeps it out only while it is not `confirmed` a copy of OUTVOTING times as many of
    the group: a stretched and a mirrored copy, two edits apart, often disagree though both
    match the centre and the rest.
    """
    position = np.empty(count, dtype=np.int64)
    position[np.asarray(visit, dtype=np.int64)] = np.arange(len(visit))
    neighbours: list[list[int]] = [[] for _ in range(count)]
    for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True):
        neighbours[a].append(b)
        neighbours[b].append(a)
    apart, doubted, copy_of = (
        _neighbour_sets(count, found) for found in (conflicts, disputed, confirmed)
    )

    def fits(other: int, group: set[int]) -> bool:
        if apart[other] & group:
            return False
        against = len(doubted[other] & group)
        return not against or len(copy_of[other] & group) >= OUTVOTING * against

    centre = [-1] * count
    for unit in visit:
        if centre[unit] >= 0:
            continue
        centre[unit] = unit
        group = {unit}
        # In visit order, not input order, so that conflicts resolve the same way every time.
        # An image in conflict is tried again once the rest have joined: more of its copies may
        # be in by then.
        waiting = []
        for other in sorted(neighbours[unit], key=lambda row: position[row]):
            if centre[other] >= 0:
                continue
            if fits(other, group):
                centre[other] = unit
                group.add(other)
            else:
                waiting.append(other)
        for other in waiting:
            if centre[other] < 0 and fits(other, group):
                centre[other] = unit
                group.add(other)
    return centre


def _neighbour_sets(count: int, pairs: Pairs) -> list[set[int]]:
    sets: list[set[int]] = [set() for _ in range(count)]
    for a, b in zip(pairs.left.tolist(), pairs.right.tolist(), strict=True):
        sets[a].add(b)
        sets[b].add(a)
    return sets


def cross_groups(
    contents: Sequence[ContentGroup],
    infos: Sequence[ImageInfo],
    pairs: Pairs,
    threshold: float,
    policy: KeepPolicy = KeepPolicy.largest,
    *,
    reference_paths: set[str],
    check: PairCheck | None = None,
    verdicts: dict[tuple[int, int], Verdict] | None = None,
) -> list[Group]:
    """Copies across two sets (train/test leakage): one group per image of the reference set
    (`reference_paths`, kept) holding the images of the other set that copy it.

    Pairs within one set are ignored. A file byte-identical to a reference image joins it as an
    exact copy; any other image joins its best-scoring reference match that `check` accepts
    (the next best is tried when one is turned down), so a leak is reported once, never chained.
    """
    key = keep_key(policy)
    reference_files = [
        sorted(
            (f for f in group.files if f.path in reference_paths), key=lambda f, i=info: key(f, i)
        )
        for group, info in zip(contents, infos, strict=True)
    ]
    query_files = [
        sorted((f for f in group.files if f.path not in reference_paths), key=lambda f: f.path)
        for group in contents
    ]
    is_reference = np.array([bool(files) for files in reference_files], dtype=bool)
    pure_query = np.array(
        [bool(q) and not r for q, r in zip(query_files, reference_files, strict=True)], dtype=bool
    )
    strong = pairs.score >= threshold
    # Orient every cross pair as (query content, reference content).
    forward = strong & pure_query[pairs.left] & is_reference[pairs.right]
    backward = strong & pure_query[pairs.right] & is_reference[pairs.left]
    queries = np.concatenate([pairs.left[forward], pairs.right[backward]])
    targets = np.concatenate([pairs.right[forward], pairs.left[backward]])
    scores = np.concatenate([pairs.score[forward], pairs.score[backward]])
    target_rank = [
        key(files[0], info) if files else ()
        for files, info in zip(reference_files, infos, strict=True)
    ]
    options: dict[int, list[tuple[float, int]]] = {}
    for query, target, score in zip(
        queries.tolist(), targets.tolist(), scores.tolist(), strict=True
    ):
        options.setdefault(query, []).append((score, target))
    for choices in options.values():
        choices.sort(key=lambda choice: (-choice[0], target_rank[choice[1]]))
    chosen = dict.fromkeys(options, 0)  # query content -> index into its options
    accepted: dict[tuple[int, int], bool] = {}
    while True:
        unchecked = []
        for query, position in chosen.items():
            if position < len(options[query]):
                target = options[query][position][1]
                edge = (min(query, target), max(query, target))
                if edge not in accepted:
                    unchecked.append((edge, options[query][position][0]))
        if not unchecked:
            break
        edges = list(dict.fromkeys(edge for edge, _ in unchecked))
        edge_score = dict(unchecked)
        if check is None:
            results = [True] * len(edges)
        else:
            batch = Pairs(
                np.array([a for a, _ in edges], dtype=np.int64),
                np.array([b for _, b in edges], dtype=np.int64),
                np.array([edge_score[edge] for edge in edges], dtype=np.float32),
            )
            results = check(batch).tolist()
        accepted.update(zip(edges, results, strict=True))
        for query, position in chosen.items():
            while position < len(options[query]):
                target = options[query][position][1]
                edge = (min(query, target), max(query, target))
                if not accepted.get(edge, True):
                    position += 1
                    continue
                break
            chosen[query] = position

    joined: dict[int, list[tuple[int, float]]] = {}
    for query, position in chosen.items():
        if position < len(options[query]):
            score, target = options[query][position]
            joined.setdefault(target, []).append((query, score))
    groups: list[Group] = []
    for target in np.flatnonzero(is_reference).tolist():
        exact_copies = query_files[target]
        if not exact_copies and target not in joined:
            continue
        keep_file = reference_files[target][0]
        duplicates = [
            _member(file, infos[target], 1.0, True, keep_file.path) for file in exact_copies
        ]
        for query, score in joined.get(target, []):
            edge = (min(query, target), max(query, target))
            duplicates.extend(
                _near_copies(
                    query_files[query], infos[query], score, keep_file.path, edge, verdicts
                )
            )
        groups.append(_group(keep_file, infos[target], duplicates))
    return _largest_first(groups)
