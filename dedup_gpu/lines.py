"""Lines of the text files dedup-gpu reads (journals, path lists, JSON-lines manifests).

Split at line feeds only (a carriage return before one is dropped). `str.splitlines()` also
ends a line at U+2028, U+2029, U+0085, form feeds and other separators, which are legal in file
names and which JSON writes unescaped: one such name made a whole apply journal unreadable.
"""

from __future__ import annotations


def lines_of(text: str) -> list[str]:
    """`text`'s lines, without their line ends; no empty last line for a final line feed."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
