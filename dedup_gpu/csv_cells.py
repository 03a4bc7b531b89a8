"""Text cells of the CSVs dedup-gpu writes, safe to open in a spreadsheet.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by
Excel, LibreOffice and Google Sheets (CSV injection): a file named `=HYPERLINK(...).jpg` would
become a live link. Such a cell is written with a leading apostrophe, the usual neutralisation
(OWASP); a program reading the CSV back drops one apostrophe before those characters. A text
that already begins with apostrophes before one of them (a file named `'=x.jpg`) gets one more,
so that reading it back gives the name itself, not `=x.jpg`.
"""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text: str) -> str:
    """`text` as a CSV cell no spreadsheet runs as a formula."""
    return f"'{text}" if text.lstrip("'").startswith(_FORMULA_STARTS) else text


def read_text_cell(cell: str) -> str:
    """A cell `text_cell` wrote, back as the text it holds."""
    if cell.startswith("'") and cell.lstrip("'").startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell
