"""What a record says: its words read by OCR, and two readings compared under an alignment.

The stroke comparison (documents.py) tells a rescan from another record when both copies are
sharp. A phone photo (perspective, blur, a shadow), a fax (binarised, 100 dpi) or a small scan
breaks and thickens strokes as much as another date or amount would change them, so such pairs
were left for review or turned down. Read, the same copies say the same thing: a photographed
invoice reads "21/10/2024" and "$12,635.31" as its scan does, and another record of the form
reads another date and amount in the same places. So a pair of pages that the strokes cannot
decide is accepted when every number on either page is read alike, in the same place, on the
other, and there are enough of them to be sure (`ReadingComparison`). Readings never turn a pair
down or a verdict the strokes gave into a weaker one: a fax misreads a digit now and then, and
such a pair keeps what the strokes said.

OCR is RapidOCR (PaddleOCR's detection and recognition models as ONNX, bundled in its wheel, run
by onnxruntime), the `ocr` extra; without it pages are compared by their strokes alone.
"""

from __future__ import annotations

import collections
import difflib
import re
import threading
from dataclasses import dataclass

import numpy as np

from . import transforms
from .settings import VerifySettings


@dataclass(frozen=True)
class Word:
    """A run of text OCR found: its characters, its box (x0, y0, x1, y1, in the pixels of the
    rendering read) and how sure the recogniser was (0..1)."""

    text: str
    box: tuple[float, float, float, float]
    confidence: float


class PageReader:
    """Reads pages with RapidOCR, whose models are loaded on first use (never at import) and
    shared by the verifier's threads (one page at a time: onnxruntime uses every core for one)."""

    def __init__(self) -> None:
        self._engine = None
        self._lock = threading.Lock()
        self._failed = False

    @staticmethod
    def installed() -> bool:
        import importlib.util

        return importlib.util.find_spec("rapidocr") is not None

    def read(self, rgb: np.ndarray) -> tuple[Word, ...] | None:
        """The words on an RGB page, or None when no OCR is installed or it failed to start."""
        with self._lock:
            if self._failed:
                return None
            if self._engine is None:
                try:
                    self._engine = _engine()
                except Exception:  # not installed, or its models would not load: strokes only
                    self._failed = True
                    return None
            found = self._engine(np.ascontiguousarray(rgb), use_cls=False)
        if found.boxes is None or found.txts is None:
            return ()
        return tuple(
            Word(
                str(text),
                (
                    float(box[:, 0].min()),
                    float(box[:, 1].min()),
                    float(box[:, 0].max()),
                    float(box[:, 1].max()),
                ),
                float(score),
            )
            for box, text, score in zip(
                np.asarray(found.boxes), found.txts, found.scores, strict=True
            )
        )


def _engine():
    import logging

    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return engine


@dataclass(frozen=True)
class ReadingComparison:
    """Two readings laid over each other: the places where both read a number, alike or not,
    and the numbers one page reads where the other reads none."""

    agreeing: int  # numbers both pages read alike (digits only) in one place
    differing: tuple[tuple[str, str], ...]  # (first's, second's) numbers read differently there
    unmatched: tuple[str, ...]  # numbers read on one page only (inside the other's frame)

    def describe(self) -> str:
        parts = [f"{self.agreeing} numbers read alike"]
        if self.differing:
            first, second = self.differing[0]
            parts.append(f'{len(self.differing)} read differently ("{first}" against "{second}")')
        if self.unmatched:
            parts.append(f"{len(self.unmatched)} read on one page only")
        return ", ".join(parts)


def read_alike(found: ReadingComparison, settings: VerifySettings) -> bool:
    """Whether two readings say one record: enough numbers read alike, none differently, and
    none read on one page only longer than OCR drops now and then (a lone "1", never a date)."""
    return (
        not found.differing
        and found.agreeing >= settings.reading_min_numbers
        and all(len(digits) <= settings.reading_unread_digits for digits in found.unmatched)
    )


def compare_readings(
    first: tuple[Word, ...],
    second: tuple[Word, ...],
    second_to_first: np.ndarray,
    first_shape: tuple[int, int],
    second_shape: tuple[int, int],
) -> ReadingComparison:
    """`second`'s words carried onto `first`'s rendering by `second_to_first` (pixels of the
    renderings read), and the numbers of each line compared with the other's in the same place.
    OCR cuts a line into words differently on two copies ("TILL 5 OP 25" against "TILL 5 OP"
    and "25", "3 @ 4.94" against "3@4.94"), so the words that overlap on one line are read
    together, left to right, as a sequence of numbers (separators left out: "12,635.31" and
    "12635.31" are one number). Numbers neither line placed (an alignment off by a line at the
    foot of a photographed page) are matched by value."""
    mapped = [_mapped_box(word.box, second_to_first) for word in second]
    back = transforms.inverse(second_to_first)
    in_second = [_inside(_mapped_box(word.box, back), second_shape) for word in first]
    in_first = [_inside(box, first_shape) for box in mapped]
    ours = [(word.box, word.text) for word, kept in zip(first, in_second, strict=True) if kept]
    theirs = [
        (box, word.text) for word, box, kept in zip(second, mapped, in_first, strict=True) if kept
    ]
    # Union-find over the words of both pages (ours: 0..n-1, theirs: n..), linked on one line.
    count = len(ours)
    parent = list(range(count + len(theirs)))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for i, (box, _) in enumerate(ours):
        for j, (other, _) in enumerate(theirs):
            if _same_line(box, other):
                parent[root(i)] = root(count + j)
    places: dict[int, tuple[list, list]] = {}
    for i, word in enumerate(ours):
        places.setdefault(root(i), ([], []))[0].append(word)
    for j, word in enumerate(theirs):
        places.setdefault(root(count + j), ([], []))[1].append(word)

    agreeing, differing = 0, []
    left_over: tuple[list[str], list[str]] = ([], [])
    for words_a, words_b in places.values():
        numbers_a, numbers_b = _numbers(words_a), _numbers(words_b)
        matcher = difflib.SequenceMatcher(None, numbers_a, numbers_b, autojunk=False)
        for operation, a0, a1, b0, b1 in matcher.get_opcodes():
            # Digits cut into numbers differently ("20 7946" read as one number or two).
            if "".join(numbers_a[a0:a1]) == "".join(numbers_b[b0:b1]):
                agreeing += max(a1 - a0, b1 - b0)
                continue
            paired = min(a1 - a0, b1 - b0) if operation == "replace" else 0
            for k in range(paired):
                differing.append((numbers_a[a0 + k], numbers_b[b0 + k]))
            left_over[0].extend(numbers_a[a0 + paired : a1])
            left_over[1].extend(numbers_b[b0 + paired : b1])
    # A number one line lacks that the other page reads elsewhere, alike, is one number.
    unplaced_b = collections.Counter(left_over[1])
    unmatched = []
    for number in left_over[0]:
        if unplaced_b[number]:
            unplaced_b[number] -= 1
            agreeing += 1
        else:
            unmatched.append(number)
    unmatched.extend(unplaced_b.elements())
    return ReadingComparison(agreeing, tuple(differing), tuple(unmatched))


_NUMBER = re.compile(r"\d+(?:[.,:/ -]\d+)*")
# OCR reads a digit as the letter it resembles now and then ("3O DAYS"): next to a digit, it is one.
_LETTER_DIGITS = re.compile(r"(?<=\d)[Oo]|[Oo](?=\d)")


def _numbers(words: list[tuple[tuple[float, float, float, float], str]]) -> list[str]:
    """The numbers in `words`, line by line from the top, left to right within a line."""
    if not words:
        return []
    heights = sorted(box[3] - box[1] for box, _ in words)
    line_gap = 0.5 * heights[len(heights) // 2]
    by_height = sorted(words, key=lambda word: (word[0][1] + word[0][3]) / 2)
    lines: list[list] = [[by_height[0]]]
    for word in by_height[1:]:
        centre = (word[0][1] + word[0][3]) / 2
        previous = (lines[-1][-1][0][1] + lines[-1][-1][0][3]) / 2
        if centre - previous > line_gap:
            lines.append([])
        lines[-1].append(word)
    numbers = []
    for line in lines:
        for _, text in sorted(line, key=lambda word: word[0][0]):
            text = _LETTER_DIGITS.sub("0", text)
            numbers.extend(re.sub(r"\D", "", found) for found in _NUMBER.findall(text))
    return numbers


def _mapped_box(
    box: tuple[float, float, float, float], matrix: np.ndarray
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    corners = transforms.apply(matrix, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
    return float(left), float(top), float(right), float(bottom)


def _inside(box: tuple[float, float, float, float], shape: tuple[int, int]) -> bool:
    """Whether the box's centre lies inside a frame of (height, width) `shape`."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return 0 <= x < shape[1] and 0 <= y < shape[0]


def _same_line(
    first: tuple[float, float, float, float], second: tuple[float, float, float, float]
) -> bool:
    """Boxes that overlap across and whose middles are within a third of a line of each other
    (lines of a form are set closer than their height: overlapping down is not enough)."""
    across = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3] - first[1], second[3] - second[1])
    offset = abs((first[1] + first[3]) - (second[1] + second[3])) / 2
    return across > 0 and offset <= height / 3
