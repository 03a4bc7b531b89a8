"""Stage 2: exact copies by content hash, so identical bytes are decoded and embedded once.

Only files that share their size with another file are read and hashed; a file of unique size
cannot have a byte-identical twin.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .progress import progress_bars
from .records import ContentGroup, FileError, ImageFile

_CHUNK = 1 << 20


def content_digest(path: str) -> str:
    """BLAKE2b-256 of the file's bytes, as hex."""
    digest = new_digest()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def new_digest() -> hashlib.blake2b:
    """The content hash used everywhere (reports, catalogs): BLAKE2b-256."""
    return hashlib.blake2b(digest_size=32)


@dataclass
class ExactResult:
    groups: list[ContentGroup]  # one per distinct content, in the order of their first file
    errors: list[FileError]


def group_identical(files: Sequence[ImageFile], *, progress: bool = False) -> ExactResult:
    """Split `files` into groups of byte-identical content; unreadable files become errors."""
    by_size: dict[int, list[ImageFile]] = defaultdict(list)
    for file in files:
        by_size[file.size].append(file)
    to_hash = [f for f in files if len(by_size[f.size]) > 1]

    digests: dict[str, str] = {}
    errors: list[FileError] = []
    with progress_bars(progress and bool(to_hash)) as bars:
        task = bars.add_task("hashing same-size files", total=len(to_hash))
        for file in to_hash:
            try:
                digests[file.path] = content_digest(file.path)
            except OSError as error:
                errors.append(FileError(file.path, f"cannot read file: {error.strerror}"))
            bars.advance(task)

    members: dict[tuple[int, str | None, str], list[ImageFile]] = {}
    for file in files:
        if file.path in digests:
            key = (file.size, digests[file.path], "")
        elif len(by_size[file.size]) > 1:
            continue  # hashing failed; already reported
        else:
            key = (file.size, None, file.path)
        members.setdefault(key, []).append(file)
    groups = [ContentGroup(files=tuple(group), digest=key[1]) for key, group in members.items()]
    return ExactResult(groups=groups, errors=errors)
