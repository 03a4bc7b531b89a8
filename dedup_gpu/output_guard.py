"""One check for every file a command writes (reports, CSVs, keep lists, audits, review pages):
it must not be one of the images the command reads. Compared by inode, so a second name for an
image, a hard link or a symlink to it counts as the image."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence

from . import storage
from .errors import OutputError


def refuse_overwriting_inputs(
    outputs: Sequence[str | os.PathLike[str] | None],
    inputs: Iterable[tuple[str, int | None]],
) -> None:
    """Raise OutputError when an existing file among `outputs` is one of `inputs`, given as
    (path, size in bytes or None). Only inputs of an output's size are looked at again, so a
    scan of millions of files costs a handful of stat calls."""
    existing: dict[tuple[int, int], tuple[str, int]] = {}
    for output in outputs:
        if output is None or os.fspath(output) in ("", "-"):
            continue
        try:
            found = os.stat(output)
        except OSError:
            continue  # not there yet (or unreadable: writing it will say so)
        if stat.S_ISREG(found.st_mode):
            existing[(found.st_dev, found.st_ino)] = (os.fspath(output), found.st_size)
    if not existing:
        return
    sizes = {size for _, size in existing.values()}
    for path, size in inputs:
        if (size is not None and size not in sizes) or not storage.is_local(path):
            continue
        try:
            found = os.stat(path)
        except OSError:
            continue
        hit = existing.get((found.st_dev, found.st_ino))
        if hit is not None:
            raise OutputError(
                f"refusing to write {hit[0]}: it is {path}, one of the images read",
                hint="give the output a new file name",
            )
