"""Stage 2: exact copies by content hash, so identical bytes are decoded and embedded once.

Only files that share their size with another file are read and hashed; a file of unique size
cannot have a byte-identical twin. Local files are read one after another; objects, URLs and
container members (see storage.py) are fetched a few at a time, as each costs a request.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain

from . import storage
from .progress import progress_bars
from .records import ContentGroup, FileError, ImageFile
from .storage import StorageError

_CHUNK = 1 << 20
_REMOTE_READS = 8  # objects fetched at once while hashing


def content_digest(path: str) -> str:
    """BLAKE2b-256 of the file's bytes, as hex. `path` may be any path storage.py reads: a
    local file that cannot be read raises OSError, anything else StorageError."""
    digest = new_digest()
    if not storage.is_local(path):
        digest.update(storage.read_bytes(path))
        return digest.hexdigest()
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

    def hash_one(file: ImageFile) -> str | FileError:
        try:
            return content_digest(file.path)
        except StorageError as error:
            return FileError(file.path, str(error))
        except OSError as error:
            return FileError(file.path, f"cannot read file: {error.strerror}")

    local = [file for file in to_hash if storage.is_local(file.path)]
    elsewhere = [file for file in to_hash if not storage.is_local(file.path)]
    with progress_bars(progress and bool(to_hash)) as bars:
        task = bars.add_task("hashing same-size files", total=len(to_hash))
        with ThreadPoolExecutor(_REMOTE_READS) as pool:
            # Objects are fetched in the background while local files are hashed in turn.
            fetched = pool.map(hash_one, elsewhere)
            outcomes = zip([*local, *elsewhere], chain(map(hash_one, local), fetched), strict=True)
            for file, outcome in outcomes:
                if isinstance(outcome, FileError):
                    errors.append(outcome)
                else:
                    digests[file.path] = outcome
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
