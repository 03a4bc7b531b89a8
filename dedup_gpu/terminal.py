"""Text from outside (file names, reasons that quote them) as it may be shown on a terminal.

A name holding ESC/CSI sequences could clear the screen, recolour or hide what follows, a
newline could forge a line of output, a bidirectional override could reverse a name's visible
end (`txt.exe` read backwards), and `[red]` would be read as rich markup. Each such character is
written as an escape instead (`\\x1b`, `\\x0a`, `\\u202e`), markup is escaped, and credentials
in URLs are hidden (redact.py).
"""

from __future__ import annotations

import re

from rich.markup import escape

from .redact import redacted

# C0 and C1 controls, DEL, the line and paragraph separators, the bidirectional controls, and
# lone surrogates (a file name's bytes that are not UTF-8).
_UNSHOWABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escaped(text: str) -> str:
    """`text` with each unshowable character written as its escape (the review page shows names
    so too: there a bidirectional override would reverse a name as well)."""
    return _UNSHOWABLE.sub(_escaped, text)


def shown(text: object) -> str:
    """`text` made safe to print through rich: unshowable characters escaped, markup too."""
    return escape(escaped(redacted(str(text))))
