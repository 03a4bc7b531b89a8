"""Output files replaced whole: written to a temporary file beside the target, then renamed over
it, so a crash leaves the old file or the new one, never half of one. Shared by every stage that
writes files (report, review page, exports, search index, actions)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from typing import IO

from .errors import OutputError


def write_file(path: str, write: Callable[[str], None], *, durable: bool = True) -> None:
    """Let `write` fill a temporary file in the output's folder, then rename it over `path`;
    file and rename are fsynced, so after a crash the old file or the whole new one is there
    (`durable=False` skips the syncs, for files that can be made again, such as thumbnails).

    The result keeps an existing file's permissions (a new one gets the umask's, not mkstemp's
    private 0600), and a symlink at `path` is replaced, not followed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        existing = os.lstat(path).st_mode if os.path.lexists(path) else None
        if existing is not None and stat.S_ISREG(existing):
            mode = stat.S_IMODE(existing)
        else:
            mode = _new_file_mode()
        handle, temporary = tempfile.mkstemp(prefix=".dedup-gpu-", suffix=".tmp", dir=folder)
        os.close(handle)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from error
    try:
        write(temporary)
        os.chmod(temporary, mode)
        if durable:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, (OSError, UnicodeEncodeError)):
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise OutputError(f"cannot write {path}: {reason}") from error
        raise
    if durable:
        fsync_folder(folder)


def write_text(path: str, fill: Callable[[IO[str]], None]) -> None:
    """`write_file` for text: `fill` writes UTF-8 to an open handle (no newline translation).

    A file name that is not valid UTF-8 reaches Python with its bad bytes as lone surrogates
    (`\udcff` for the byte 0xff); they are written as that escape, `\udcff`, which in JSON
    reads back as the same name (and in a CSV cell is that text)."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", errors="backslashreplace", newline="") as out:
            fill(out)

    write_file(path, write)


def write_bytes(path: str, content: bytes, *, durable: bool = True) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "wb") as out:
            out.write(content)

    write_file(path, write, durable=durable)


def fsync_folder(folder: str) -> None:
    """Make a rename or unlink in `folder` durable: the entry is on disk only once it is synced."""
    try:
        handle = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the data itself is already synced
    finally:
        os.close(handle)


def _new_file_mode() -> int:
    # os.umask can only be read by setting it; this runs once per output, never in threads
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
