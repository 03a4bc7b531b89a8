"""Reading records: two copies of one record say the same numbers in the same places, however
OCR cut their lines into words; another record of the form says another date or amount there."""

from __future__ import annotations

import numpy as np

from dedup_gpu.verify import VerifySettings
from dedup_gpu.verify.reading import Word, compare_readings, read_alike

# The scan, as OCR read it: (text, x0, y0, x1, y1) in the scan's pixels.
SCAN = [
    ("Invoice no.", 100, 100, 260, 120),
    ("T2021-1655", 300, 100, 460, 120),
    ("Date", 100, 140, 160, 160),
    ("21/10/2024", 300, 140, 460, 160),
    ("TILL 5 OP 25", 100, 180, 300, 200),
    ("3 @ 4.94", 100, 220, 220, 240),
    ("Total due", 100, 260, 240, 280),
    ("$12,635.31", 300, 260, 460, 280),
]
# A phone photo of it: the page at 0.7 of the size, 40 px in from the left and 25 down.
PHOTO_TO_SCAN = np.array([[1 / 0.7, 0, -40 / 0.7], [0, 1 / 0.7, -25 / 0.7], [0, 0, 1]])
SHAPE = (400, 600)


def words(rows: list[tuple[str, float, float, float, float]]) -> tuple[Word, ...]:
    return tuple(Word(text, (x0, y0, x1, y1), 0.99) for text, x0, y0, x1, y1 in rows)


def photographed(rows: list[tuple[str, float, float, float, float]]) -> tuple[Word, ...]:
    """`rows` as they land on the photo (scan pixels -> photo pixels)."""
    return tuple(
        Word(text, (40 + 0.7 * x0, 25 + 0.7 * y0, 40 + 0.7 * x1, 25 + 0.7 * y1), 0.95)
        for text, x0, y0, x1, y1 in rows
    )


def compared(photo_rows: list[tuple[str, float, float, float, float]]):
    return compare_readings(words(SCAN), photographed(photo_rows), PHOTO_TO_SCAN, SHAPE, (300, 460))


def test_a_photo_that_reads_like_its_scan_is_one_record_however_ocr_cut_the_words() -> None:
    # The photo's OCR joined "Date" to its value, split the till line, dropped the spaces
    # round "@" and the thousands comma: the same numbers, in the same places.
    found = compared(
        [
            ("Invoice no.", 100, 100, 260, 120),
            ("T2021-1655", 300, 100, 460, 120),
            ("Date 21/10/2024", 100, 140, 460, 160),
            ("TILL 5 OP", 100, 180, 250, 200),
            ("25", 260, 180, 300, 200),
            ("3@4.94", 100, 220, 220, 240),
            ("Total due", 100, 260, 240, 280),
            ("$12635.31", 300, 260, 460, 280),
        ]
    )
    assert found.differing == () and found.unmatched == ()
    assert found.agreeing == 7  # 20211655 | 21102024 | 5, 25 | 3, 494 | 1263531
    assert read_alike(found, VerifySettings())


def test_another_date_and_amount_in_the_same_places_is_another_record() -> None:
    other_record = {"21/10/2024": "16/06/2024", "$12,635.31": "$2,661.91"}
    found = compared([(other_record.get(text, text), *box) for text, *box in SCAN])
    assert ("21102024", "16062024") in found.differing
    assert ("1263531", "266191") in found.differing
    assert not read_alike(found, VerifySettings())
    assert 'read differently ("21102024" against "16062024")' in found.describe()


def test_a_lost_lone_digit_is_forgiven_but_a_date_read_on_one_page_only_is_not() -> None:
    # OCR drops a short word now and then (a quantity "3"); a date it did not read on one copy
    # could be the field in which two records differ, so such a pair is not accepted.
    lone_digit_lost = compared(
        [row if row[0] != "3 @ 4.94" else ("@ 4.94", *row[1:]) for row in SCAN]
    )
    assert lone_digit_lost.unmatched == ("3",)
    assert read_alike(lone_digit_lost, VerifySettings())

    date_unread = compared([row for row in SCAN if row[0] != "21/10/2024"])
    assert date_unread.unmatched == ("21102024",)
    assert not read_alike(date_unread, VerifySettings())


def test_words_outside_the_other_copy_are_not_compared() -> None:
    # A crop of the page (its top half) says nothing of the total it does not show.
    top = [row for row in SCAN if row[2] < 200]
    found = compare_readings(
        words(SCAN), photographed(top), PHOTO_TO_SCAN, SHAPE, (0.7 * 200 + 25, 460)
    )
    assert found.unmatched == () and found.differing == ()
    assert found.agreeing == 4  # T2021-1655, the date, 5 and 25 on the till line


def test_a_page_with_too_few_numbers_is_not_decided_by_them() -> None:
    # Two numbers read alike on two cards could be all the two share: too little to be sure.
    rows = [
        ("Date", 100, 140, 160, 160),
        ("21/10/2024", 300, 140, 460, 160),
        ("No 7", 100, 180, 160, 200),
    ]
    found = compare_readings(words(rows), words(rows), np.eye(3), SHAPE, SHAPE)
    assert found.agreeing == 2 and not found.differing
    assert not read_alike(found, VerifySettings())
