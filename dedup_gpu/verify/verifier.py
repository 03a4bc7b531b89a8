"""The Verifier: checks candidate pairs of images, decoding each image at most once, and keeps a
Verdict for every pair it checked."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..data import DEFAULT_MAX_PIXELS
from ..index import Pairs
from ..records import Verdict, VerifyMethod, VerifyOutcome
from . import layout, transforms
from .alignment import (
    Alignment,
    alignments,
    mirrored_alignment,
    perspective_alignments,
    template_alignment,
)
from .blocks import block_agreement
from .documents import TextComparison, text_differences, to_detail
from .reading import PageReader, compare_readings, read_alike
from .settings import OUTVOTABLE_BLOCKS, VerifySettings
from .signatures import rank_by_signatures
from .thumbnails import Thumbnail, add_detail_of, load_thumbnails, read_page

# map(function, items): the builtin, or a thread pool's (OpenCV releases the GIL while it works).
Mapper = Callable[[Callable[..., Any], Iterable[Any]], Iterator[Any]]


@dataclass
class _Comparison:
    agreement: float  # share of informative blocks (text windows for documents) that agree
    blocks: int  # informative blocks or text windows compared
    text: TextComparison | None = None  # for documents that reached the text comparison
    screen: tuple[float, int] = (0.0, 0)  # pages: the strict block grid's (agreement, blocks)


def _as_pages(a: Thumbnail | None, b: Thumbnail | None) -> bool:
    """Whether a pair is compared as records, by its text: when either image is a page."""
    return a is not None and b is not None and (a.document or b.document)


def _decide(
    alignment: Alignment,
    comparison: _Comparison,
    document: bool,
    settings: VerifySettings,
    one_page: bool = False,
) -> tuple[VerifyOutcome, str]:
    """The verdict on one alignment of a pair. `one_page`: only one image of the pair is a page
    (its text agreeing must then be confirmed on the block grid)."""
    agreement, blocks = comparison.agreement, comparison.blocks
    rejected, accepted = VerifyOutcome.rejected, VerifyOutcome.accepted
    if blocks < settings.min_blocks:
        return rejected, f"too little detail to compare ({blocks} informative blocks)"
    aligned = f"aligned by {alignment.method.value}"
    if comparison.text is not None:
        text = comparison.text
        # A short note has few text windows, and one changed time in it is one or two of them.
        allowed = min(settings.text_differences, blocks // settings.text_windows_per_difference)
        counted = f"{text.differing} of {blocks} text windows differ (at most {allowed})"
        if text.differing > allowed:
            return rejected, f"document: {aligned}, {counted}"
        # At a fax's or a small scan's resolution, or in a fax's broken black-and-white
        # strokes, another figure in a field (a date, an amount) can leave no stroke that the
        # other copy's blur or noise does not cover: such a pair is left for review.
        if text.text_height < settings.text_min_height:
            return VerifyOutcome.unverified, (
                f"document: {aligned}, {counted}, but its characters are too small "
                f"({text.text_height:.0f} px) to tell its figures apart"
            )
        if text.resolution < settings.text_min_resolution:
            return VerifyOutcome.unverified, (
                f"document: {aligned}, {counted}, but one copy is too coarse "
                f"(x{text.resolution:.2f} the other's size) to tell its figures apart"
            )
        if alignment.method is VerifyMethod.homography:
            return VerifyOutcome.unverified, (
                f"document: {aligned}, {counted}, but a photographed page (seen at an angle) "
                "is too blurred to tell its figures apart"
            )
        if text.bilevel:
            # Each binarisation breaks and thickens strokes anew: two faxes of two records of
            # one form were found with no window differing (record_pairs.py, seed 0).
            return VerifyOutcome.unverified, (
                f"document: {aligned}, {counted}, but both copies are black and white only "
                "(faxes): their broken strokes hide a changed figure"
            )
        screen, screened = comparison.screen
        if one_page and (
            screen < settings.one_page_agreement or screened < 2 * settings.min_blocks
        ):
            # Only one is a page: the text compared (a caption both carry) may be all the two
            # share, so the picture around it must agree block by block as well.
            return VerifyOutcome.unverified, (
                f"document: {aligned}, {counted}, but only one image is a page and only "
                f"{screen:.0%} of {screened} blocks agree (need {settings.one_page_agreement:.0%})"
            )
        return accepted, f"document: {aligned}, {counted}"
    if alignment.method in (VerifyMethod.whole_frame, VerifyMethod.whole_frame_mirrored):
        needed = settings.whole_frame_agreement
    else:
        needed = settings.document_screen if document else settings.photo_agreement
    kind = "document" if document else "photo"
    share = f"{agreement:.0%} of {blocks} blocks agree"
    if agreement >= needed and not document:
        return accepted, f"{kind}: {aligned}, {share} (need {needed:.0%})"
    return rejected, f"{kind}: {aligned}, only {share} (need {needed:.0%})"


class Verifier:
    """Checks candidate pairs of images (rows of `paths`), decoding each image at most once.

    Every checked pair's Verdict is kept in `verdicts`, keyed by (left, right) row, so the report
    can explain both the pairs that were grouped and those that were turned down.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        thumbnails: Sequence[bytes | None] | None = None,
        settings: VerifySettings | None = None,
        device: torch.device | str = "cpu",
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.paths = list(paths)
        # A Sequence, read only for the rows verified (a catalog's fetches them on demand).
        self.kept = thumbnails if thumbnails is not None else [None] * len(self.paths)
        self.settings = settings or VerifySettings()
        self.device = torch.device(device)
        self.workers = workers
        self.max_pixels = max_pixels
        self.rounds = 0  # calls to check: the grouping's rounds of verification
        self.verdicts: dict[tuple[int, int], Verdict] = {}
        self.seconds = 0.0
        import cv2

        # OpenCV's thread pool does not survive fork(): a worker forked after this process has
        # used it can deadlock on the pool's lock. Verification forks thumbnail workers after
        # warping in this process, so OpenCV runs single-threaded here (its work here is small).
        cv2.setNumThreads(1)
        self._thumbnails: dict[int, Thumbnail | None] = {}
        self._map: Mapper = map
        # Per pair of pages whose standing verdict compared their strokes: that alignment and
        # its comparison, for pairs the strokes could not decide to be read (reading.py).
        self._texts: dict[tuple[int, int], tuple[Alignment, TextComparison]] = {}
        self._reader = PageReader()

    def __call__(self, pairs: Pairs) -> np.ndarray:
        """Whether each pair is a verified copy (bool array); verdicts are recorded."""
        return np.array([verdict.accepted for verdict in self.check(pairs)], dtype=bool)

    def apart(self, pairs: Pairs) -> np.ndarray:
        """Of pairs already checked, which were found different: aligned, and their content
        disagrees (detail, strokes). A pair that could not be aligned (two crops of one photo
        that do not overlap), whose colour layouts did not quite agree, or too plain to decide
        is no evidence that the two cannot both be copies of a third."""
        keys = zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)
        return np.array(
            [
                self.verdicts[key].outcome is VerifyOutcome.rejected
                and self.verdicts[key].method not in (VerifyMethod.none, VerifyMethod.layout)
                for key in keys
            ],
            dtype=bool,
        )

    def outvotable(self, pairs: Pairs) -> np.ndarray:
        """Of pairs found `apart`, which were detailed pictures compared block by block (at
        least OUTVOTABLE_BLOCKS informative blocks): two copies two edits apart (stretched and
        mirrored) can disagree so, and the copies both are confirmed copies of may outvote it.
        A pair of records whose text differs cannot be, nor a pair of plain pictures (objects on
        white, on 17-30 blocks), whose few blocks are all the evidence there is."""
        keys = zip(pairs.left.tolist(), pairs.right.tolist(), strict=True)
        return np.array(
            [
                not self.verdicts[key].document
                and (self.verdicts[key].blocks or 0) >= OUTVOTABLE_BLOCKS
                for key in keys
            ],
            dtype=bool,
        )

    def priorities(self, pairs: Pairs, budget: int) -> np.ndarray:
        """A value per candidate pair by which each image's candidates are tried, highest first.
        Images with more than `budget` candidates (look-alike clusters, families of copies)
        rank theirs by signature similarity (signatures.py), which puts a rescan of a form above
        the other fills the embedding prefers; other pairs keep their embedding score."""
        started = time.perf_counter()
        values = pairs.score.astype(np.float64)
        degree = np.bincount(np.concatenate([pairs.left, pairs.right]), minlength=len(self.paths))
        dense = degree > budget
        crowded = dense[pairs.left] | dense[pairs.right]
        if crowded.any():
            rows = set(pairs.left[crowded].tolist()) | set(pairs.right[crowded].tolist())
            self._load(rows)
            ranked = rank_by_signatures(
                self._thumbnails, pairs.select(crowded), degree, self.settings
            )
            values[crowded] = ranked
        self.seconds += time.perf_counter() - started
        return values

    def check(self, pairs: Pairs) -> list[Verdict]:
        started = time.perf_counter()
        self.rounds += 1
        keys = list(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
        new = [key for key in dict.fromkeys(keys) if key not in self.verdicts]
        self._load({row for key in new for row in key})
        # Threads, not processes: the thumbnails live here, and OpenCV's matching, RANSAC and
        # warps release the GIL. The pool is gone again before the next _load forks workers.
        with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
            self._map = pool.map
            try:
                self._check_new(new, dict(zip(keys, pairs.score.tolist(), strict=True)))
            finally:
                self._map = map
        self.seconds += time.perf_counter() - started
        return [self.verdicts[key] for key in keys]

    def _check_new(self, new: list[tuple[int, int]], scores: dict[tuple[int, int], float]) -> None:
        candidates: list[tuple[tuple[int, int], Alignment]] = []
        aligned = []
        self._add_detail(new)
        for key in new:
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            if a is None or b is None:
                self.verdicts[key] = Verdict(
                    outcome=VerifyOutcome.rejected,
                    method=VerifyMethod.none,
                    reason="could not decode the image again to verify",
                )
                continue
            detail = min(len(a.keypoints.points), len(b.keypoints.points))
            if detail < self.settings.min_keypoints:
                self.verdicts[key] = Verdict(
                    outcome=VerifyOutcome.rejected,
                    method=VerifyMethod.none,
                    reason=f"too few keypoints to align ({detail})",
                    document=_as_pages(a, b),
                )
                continue
            aligned.append(key)
        fits = self._map(
            lambda key: alignments(
                self._thumbnails[key[0]], self._thumbnails[key[1]], self.settings
            ),
            aligned,
        )
        for key, found in zip(aligned, fits, strict=True):
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            for alignment in found:
                if alignment.matrix is None:
                    self.verdicts[key] = Verdict(
                        outcome=VerifyOutcome.rejected,
                        method=VerifyMethod.none,
                        reason=f"no geometric match ({alignment.inliers} consistent keypoints) "
                        "and the frames differ in shape",
                        inliers=alignment.inliers,
                        document=_as_pages(a, b),  # type: ignore[arg-type]
                    )
                else:
                    candidates.append((key, alignment))
        self._compare(candidates)
        stretched = {  # by pair and method: a pair has a plain and a mirrored whole frame
            (key, alignment.method): alignment.matrix
            for key, alignment in candidates
            if alignment.method in (VerifyMethod.whole_frame, VerifyMethod.whole_frame_mirrored)
        }
        # A plain fit strong enough that the mirror image was not tried may still be the wrong
        # one (a symmetric subject, mirrored): pairs it left rejected get the mirrored fit too.
        strong_but_rejected = [
            key
            for key in new
            if not self.verdicts[key].accepted
            and self.verdicts[key].method is VerifyMethod.keypoints
            and self.verdicts[key].inliers >= self.settings.confident_inliers
        ]
        self._compare_realigned(strong_but_rejected, mirrored_alignment)
        # ... or a stretch or a perspective the similarity (or the stretch) only half fitted.
        for fitted, after_affine in ((VerifyMethod.keypoints, False), (VerifyMethod.affine, True)):
            self._compare_perspectives(
                [
                    key
                    for key in new
                    if not self.verdicts[key].accepted
                    and self.verdicts[key].method is fitted
                    and self.verdicts[key].inliers >= self.settings.min_perspective_inliers
                ],
                after_affine,
            )
        # Crops too smooth or too repetitive for keypoints get one more try: the smaller picture
        # searched for inside the larger. Pages are left out (a form's other fill would be
        # found), and so are pairs a strong keypoint fit already placed.
        still_rejected = [
            key
            for key in new
            if not self.verdicts[key].accepted
            and not self.verdicts[key].document
            and self.verdicts[key].inliers < self.settings.confident_inliers
            and self._thumbnails[key[0]] is not None
            and self._thumbnails[key[1]] is not None
        ]
        placements = self._compare_realigned(
            still_rejected, lambda a, b, _: template_alignment(a, b)
        )
        self._confirm_placements(
            {
                key: placement.matrix
                for key, placement in placements.items()
                if self.verdicts[key].accepted
                and self.verdicts[key].method is VerifyMethod.template
            }
        )
        # The whole frame stretched, tried where keypoints found nothing, compares the grey
        # block grid, which a small mark on a flat ground barely touches: on the few blocks it
        # covers a cross and a smaller disc agree. Such an accept on few blocks is the colour
        # layout's to confirm, as a template search's is.
        self._confirm_placements(
            {
                key: stretched[key, self.verdicts[key].method]
                for key in new
                if (key, self.verdicts[key].method) in stretched
                and self.verdicts[key].accepted
                and self.verdicts[key].blocks < self.settings.stretched_confirm_blocks
            },
            "whole frame",
        )
        # What keypoints and the block grid could not judge (too few keypoints, or too little
        # detail in every alignment tried) is compared by colour layout, and pages by their text
        # under the layout's alignment. Never a verdict the detail already gave.
        self._compare_layouts(
            [
                key
                for key in new
                if not self.verdicts[key].accepted
                and self._thumbnails[key[0]] is not None
                and self._thumbnails[key[1]] is not None
                and (
                    self.verdicts[key].method is VerifyMethod.none
                    or self.verdicts[key].blocks < self.settings.min_blocks
                )
            ]
        )
        self._read_records(new)

    def _confirm_placements(
        self, placements: dict[tuple[int, int], np.ndarray], words: str = "template search"
    ) -> None:
        """A crop found by template search, or a whole frame stretched onto another
        (`placements`: pair -> b-to-a map; `words`: which), is accepted only if the colour
        layouts agree there too. The search places any smooth picture inside
        another (two gradients correlate everywhere), and smooth blocks then agree on the grid;
        the layout comparison, which fits a colour edit and asks what stands out, is the judge
        of such pictures."""
        placed = list(placements)

        def confirm(key: tuple[int, int]) -> layout.LayoutComparison | None:
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            assert a is not None and b is not None
            to_layout = layout.from_thumbnail(b, a, placements[key])
            at_placement = layout.compare(a, b, to_layout, self.settings, words)
            if at_placement is not None and (
                layout.decide(at_placement, self.settings)[0] is VerifyOutcome.accepted
            ):
                return at_placement
            # The grey placement can be a little off for a colour edit or a stretch: the
            # layout's own search of alignments has the last word.
            return layout.best_comparison(a, b, self.settings) or at_placement

        for key, comparison in zip(placed, self._map(confirm, placed), strict=True):
            if comparison is None:
                outcome, reason = VerifyOutcome.rejected, "no colour edit relates the two there"
            else:
                outcome, reason = layout.decide(comparison, self.settings)
            if outcome is not VerifyOutcome.accepted:
                # As a layout verdict: a smooth picture's layout not matching is no evidence
                # that two copies of a third could not be grouped (see `apart`).
                self.verdicts[key] = replace(
                    self.verdicts[key],
                    outcome=outcome,
                    method=VerifyMethod.layout,
                    reason=f"plain: {reason}",
                )

    def _compare_layouts(self, keys: list[tuple[int, int]]) -> None:
        def pair(key: tuple[int, int]) -> tuple[Thumbnail, Thumbnail]:
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            assert a is not None and b is not None
            return a, b

        pages = [key for key in keys if _as_pages(*pair(key))]
        pictures = [key for key in keys if key not in set(pages)]
        found = self._map(lambda key: layout.best_comparison(*pair(key), self.settings), pictures)
        for key, comparison in zip(pictures, found, strict=True):
            if comparison is None:
                self.verdicts[key] = replace(
                    self.verdicts[key],
                    reason=f"{self.verdicts[key].reason}; no alignment of their colour layouts "
                    "overlaps",
                )
                continue
            outcome, reason = layout.decide(comparison, self.settings)
            self.verdicts[key] = Verdict(
                outcome=outcome,
                method=VerifyMethod.layout,
                reason=f"plain: {reason}",
                agreement=comparison.agreement,
                blocks=comparison.blocks,
            )
        # Pages with too little text for keypoints (a short note on a white page): aligned by
        # their layout, then compared as any pages are, stroke by stroke.
        placed = self._map(lambda key: layout.page_alignments(*pair(key), self.settings), pages)
        self._compare(
            [
                (key, Alignment(matrix, VerifyMethod.layout, 0))
                for key, matrices in zip(pages, placed, strict=True)
                for matrix in matrices
            ]
        )

    def _compare_perspectives(self, keys: list[tuple[int, int]], after_affine: bool) -> None:
        """Rejected pairs aligned once more by their perspective and affine fits and compared;
        the better verdict stands. A perspective must agree more closely here than a first
        fit: a camera that turns between two video frames is a perspective too, and parallax
        leaves 84-88% of such frames' blocks agreeing (verify_eval, both seeds), most
        photographed prints' 89-100%."""
        found = self._map(
            lambda key: perspective_alignments(
                self._thumbnails[key[0]],  # type: ignore[arg-type]
                self._thumbnails[key[1]],  # type: ignore[arg-type]
                self.settings,
                after_affine=after_affine,
            ),
            keys,
        )
        fits = [(key, fit) for key, fits_of in zip(keys, found, strict=True) for fit in fits_of]
        strict = replace(self.settings, photo_agreement=self.settings.perspective_retry_agreement)
        self._compare([item for item in fits if item[1].method is VerifyMethod.homography], strict)
        self._compare([item for item in fits if item[1].method is not VerifyMethod.homography])

    def _compare_realigned(
        self,
        keys: list[tuple[int, int]],
        align: Callable[[Thumbnail, Thumbnail, VerifySettings], Alignment],
    ) -> dict[tuple[int, int], Alignment]:
        """Pairs aligned once more by `align` (on the thread pool) and compared where it found
        a fit; a verdict only changes if the new one is better. Returns the fits found."""
        found = self._map(
            lambda key: align(self._thumbnails[key[0]], self._thumbnails[key[1]], self.settings),
            keys,
        )
        fitted = {
            key: alignment
            for key, alignment in zip(keys, found, strict=True)
            if alignment.matrix is not None
        }
        self._compare(list(fitted.items()))
        return fitted

    def _compare(
        self,
        candidates: list[tuple[tuple[int, int], Alignment]],
        settings: VerifySettings | None = None,
    ) -> None:
        """Block agreement per (pair, alignment); the most convincing verdict of a pair stands."""
        for start in range(0, len(candidates), 64):  # canvases of a chunk stay in cache
            chunk = candidates[start : start + 64]
            thumbs = [(self._thumbnails[k[0]], self._thumbnails[k[1]]) for k, _ in chunk]
            scores = self._agreement(
                [(a, b, al.matrix) for (a, b), (_, al) in zip(thumbs, chunk, strict=True)]
            )
            for (key, alignment), (a, b), comparison in zip(chunk, thumbs, scores, strict=True):
                document = _as_pages(a, b)  # type: ignore[arg-type]
                one_page = a.document != b.document  # type: ignore[union-attr]
                outcome, reason = _decide(
                    alignment, comparison, document, settings or self.settings, one_page
                )
                if outcome is VerifyOutcome.accepted and not document:
                    outcome, reason = self._hues_agree(a, b, alignment, reason, comparison.blocks)
                verdict = Verdict(
                    outcome=outcome,
                    method=alignment.method,
                    reason=reason,
                    inliers=alignment.inliers,
                    agreement=comparison.agreement,
                    blocks=comparison.blocks,
                    document=document,
                )
                previous = self.verdicts.get(key)
                if previous is None or (verdict.accepted, verdict.agreement) > (
                    previous.accepted,
                    previous.agreement,
                ):
                    self.verdicts[key] = verdict
                    if comparison.text is not None:
                        self._texts[key] = (alignment, comparison.text)
                    else:
                        self._texts.pop(key, None)

    def _hues_agree(
        self, a: Thumbnail, b: Thumbnail, alignment: Alignment, reason: str, blocks: int
    ) -> tuple[VerifyOutcome, str]:
        """A picture pair the block grid accepted, held to its colours: the grid compares grey
        levels only, and two renders of one object on white (a blue sphere, a green one) agree
        there block for block. A colour edit turns hue by tens of degrees, never further. Where
        hues cannot be compared (a greyscale side) and the picture has little detail (fewer than
        OUTVOTABLE_BLOCKS informative blocks: an object on white, a logo), its colours would have
        been the evidence: the colour layout says whether the pair can be told at all."""
        assert alignment.matrix is not None
        turn = layout.hue_turn(a, b, alignment.matrix)
        if turn is None and blocks < OUTVOTABLE_BLOCKS:
            to_layout = layout.from_thumbnail(b, a, alignment.matrix)
            comparison = layout.compare(a, b, to_layout, self.settings)
            unknown = (
                None if comparison is None else layout.colours_unknown(comparison, self.settings)
            )
            if unknown is not None:
                return unknown[0], f"{reason}, but {unknown[1]}"
        # A picture with little detail is told by its colours as a plain one is (layout.py).
        limit = (
            self.settings.max_hue_turn
            if blocks >= OUTVOTABLE_BLOCKS
            else self.settings.layout_max_hue_turn
        )
        if turn is None or turn <= limit:
            return VerifyOutcome.accepted, reason
        return VerifyOutcome.rejected, (
            f"{reason}, but its hues are turned by {turn:.0f} degrees "
            f"(an edit turns them {limit:.0f} at most)"
        )

    def _agreement(self, pairs: list[tuple[Thumbnail, Thumbnail, np.ndarray]]) -> list[_Comparison]:
        """Block agreement of each pair; pairs of documents that pass it, compared as text."""
        documents = [_as_pages(a, b) for a, b, _ in pairs]
        results = [_Comparison(0.0, 0)] * len(pairs)
        photos = [slot for slot, doc in enumerate(documents) if not doc]
        pages = [slot for slot, doc in enumerate(documents) if doc]
        found = block_agreement(
            [pairs[slot] for slot in photos], self.settings, self.device, mapper=self._map
        )
        for slot, (agreement, blocks) in zip(photos, found, strict=True):
            results[slot] = _Comparison(agreement, blocks)
        # Most pairs of different pages already disagree on the block grid; only pairs that
        # might be one page are compared as text at the (dearer) document resolution.
        coarse = block_agreement(
            [pairs[slot] for slot in pages],
            self.settings,
            self.device,
            strict=True,
            mapper=self._map,
        )
        close = []
        for slot, (agreement, blocks) in zip(pages, coarse, strict=True):
            results[slot] = _Comparison(agreement, blocks, screen=(agreement, blocks))
            if agreement >= self.settings.document_screen:
                close.append(slot)
        fine = text_differences([pairs[slot] for slot in close], self.settings, self._map)
        for slot, text in zip(close, fine, strict=True):
            share = 1.0 - text.differing / text.windows if text.windows else 0.0
            results[slot] = _Comparison(share, text.windows, text, results[slot].screen)
        return results

    def _read_records(self, keys: list[tuple[int, int]]) -> None:
        """Pairs of pages the strokes could not decide, read (reading.py): a phone photo, a fax
        or a coarse copy (left for review by the strokes), or a pair whose strokes differ in a
        few windows only (a blotted rescan, a photo's blur). Accepted when every number on each
        page reads alike, in the same place, on the other; otherwise the strokes' verdict
        stands. Each page is read once, and only when one of its pairs gets here."""
        if not self.settings.read_text or not PageReader.installed():
            return
        undecided = [
            key
            for key in keys
            if key in self._texts
            and not self.verdicts[key].accepted
            and self.verdicts[key].document
            # A page and a picture (a caption both carry) must agree on the block grid too.
            and all(getattr(self._thumbnails[row], "document", False) for row in key)
            and self._undecided(*self._texts[key])
        ]
        rows = sorted({row for key in undecided for row in key})

        def read(row: int) -> None:
            thumbnail = self._thumbnails[row]
            if thumbnail is not None and thumbnail.reading is None:
                try:
                    thumbnail.reading = read_page(
                        self.paths[row], self._reader, self.max_pixels, thumbnail.detail_shape
                    )
                except Exception:  # unreadable now: the strokes' verdict stands
                    thumbnail.reading = ()

        list(self._map(read, rows))
        for key in undecided:
            a, b = self._thumbnails[key[0]], self._thumbnails[key[1]]
            if a is None or b is None or not a.reading or not b.reading:
                continue
            alignment, text = self._texts[key]
            assert alignment.matrix is not None
            to_a = to_detail(a) @ alignment.matrix @ transforms.inverse(to_detail(b))
            found = compare_readings(a.reading, b.reading, to_a, a.detail_shape, b.detail_shape)
            if read_alike(found, self.settings):
                previous = self.verdicts[key]
                self.verdicts[key] = replace(
                    previous,
                    outcome=VerifyOutcome.accepted,
                    reason=(
                        f"document: aligned by {alignment.method.value}, read by OCR: "
                        f"{found.describe()} ({text.differing} of {text.windows} text windows "
                        "differ in their strokes)"
                    ),
                )

    def _undecided(self, alignment: Alignment, text: TextComparison) -> bool:
        """Whether the strokes of a pair of pages could not tell: one is coarse, photographed,
        black and white or small-lettered, or few of their text windows differ."""
        settings = self.settings
        degraded = (
            text.resolution < settings.text_min_resolution
            or alignment.method in (VerifyMethod.homography, VerifyMethod.homography_mirrored)
            or text.bilevel
            or text.text_height < settings.text_min_height
        )
        return degraded or text.differing <= settings.reading_max_windows

    def _add_detail(self, keys: list[tuple[int, int]]) -> None:
        """The pen strokes of images paired with a page that were not taken for pages
        themselves (a page photographed in poor light, a card on a patterned ground): such a
        pair is compared as records are, by their text, never waved through on its layout."""
        rows = {
            row
            for key in keys
            if _as_pages(self._thumbnails[key[0]], self._thumbnails[key[1]])
            for row in key
            if not self._thumbnails[row].has_detail  # type: ignore[union-attr]
        }

        def add(row: int) -> None:
            try:
                add_detail_of(self._thumbnails[row], self.paths[row], self.max_pixels)  # type: ignore[arg-type]
            except Exception:  # decoded once already; unreadable now: the image is left out
                self._thumbnails[row] = None

        list(self._map(add, sorted(rows)))

    def _load(self, rows: set[int]) -> None:
        missing = sorted(rows - self._thumbnails.keys())
        if not missing:
            return
        loaded = load_thumbnails(
            [self.paths[row] for row in missing],
            thumbnails=[self.kept[row] for row in missing],
            workers=self.workers,
            max_pixels=self.max_pixels,
        )
        self._thumbnails.update(zip(missing, loaded, strict=True))
