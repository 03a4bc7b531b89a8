"""Stage 1: find candidate image files from paths, folders and path lists.

Folders are walked recursively and in sorted order, following symlinks but never the same folder
twice (a symlink loop is reported, not followed). A file is a candidate when its extension is a
common image extension or, failing that, when its first bytes carry a known image signature.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .records import FileError, ImageFile

IMAGE_EXTENSIONS = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".apng",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".ico",
        ".tga",
        ".jp2",
        ".j2k",
        ".jpx",
        ".heic",
        ".heif",
        ".avif",
        ".psd",
        ".pcx",
    ]
)

# Magic numbers for images saved without a usual extension (camera dumps, caches, CMS exports).
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (0, b"II*\x00"),  # TIFF, little-endian
    (0, b"MM\x00*"),  # TIFF, big-endian
    (8, b"WEBP"),
    (4, b"ftypavif"),
    (4, b"ftypheic"),
    (4, b"ftypmif1"),
    (0, b"\x00\x00\x00\x0cjP  "),  # JPEG 2000
    (0, b"8BPS"),  # Photoshop
)


@dataclass
class SourceScan:
    """What discovery found: candidate files in a stable order, and what it had to skip."""

    files: list[ImageFile] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    aliases_skipped: int = 0  # the same file reached twice (hard link, symlink, repeated argument)


def looks_like_image(path: str) -> bool:
    """True when the file's first bytes match a known image signature."""
    with open(path, "rb") as handle:
        head = handle.read(32)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def read_path_list(list_file: str) -> list[str]:
    """Paths from a text file, one a line; blank lines and lines starting with '#' are skipped."""
    with open(list_file, encoding="utf-8") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


class _Walker:
    def __init__(self) -> None:
        self.scan = SourceScan()
        self._seen_files: set[tuple[int, int]] = set()

    def add_file(self, path: str, *, explicit: bool) -> None:
        try:
            stat = os.stat(path)
        except OSError as error:
            reason = (
                "broken symlink" if os.path.islink(path) else f"cannot read file: {error.strerror}"
            )
            self.scan.errors.append(FileError(path, reason))
            return
        key = (stat.st_dev, stat.st_ino)
        if key in self._seen_files:
            self.scan.aliases_skipped += 1
            return
        if not explicit and os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
            try:
                if not looks_like_image(path):
                    return
            except OSError as error:
                self.scan.errors.append(FileError(path, f"cannot read file: {error.strerror}"))
                return
        self._seen_files.add(key)
        if stat.st_size == 0:
            self.scan.errors.append(FileError(path, "empty file (0 bytes)"))
            return
        self.scan.files.append(ImageFile(path=path, size=stat.st_size, mtime=stat.st_mtime))

    def walk(self, root: str) -> None:
        visited_dirs: set[tuple[int, int]] = set()

        def report_unreadable(error: OSError) -> None:
            where = error.filename or root
            self.scan.errors.append(FileError(where, f"cannot read folder: {error.strerror}"))

        for folder, subfolders, filenames in os.walk(
            root, onerror=report_unreadable, followlinks=True
        ):
            try:
                stat = os.stat(folder)
            except OSError:
                subfolders[:] = []
                continue
            visited_dirs.add((stat.st_dev, stat.st_ino))
            kept = []
            for name in sorted(subfolders):
                sub = os.path.join(folder, name)
                try:
                    sub_stat = os.stat(sub)
                except OSError as error:
                    # A dangling or looping symlink (ELOOP) cannot be stat'ed.
                    self.scan.errors.append(FileError(sub, f"cannot read folder: {error.strerror}"))
                    continue
                if (sub_stat.st_dev, sub_stat.st_ino) in visited_dirs:
                    target = os.path.realpath(sub)
                    self.scan.errors.append(
                        FileError(
                            sub, f"symlink loop or alias: {target} is already scanned; not followed"
                        )
                    )
                    continue
                kept.append(name)
            subfolders[:] = kept
            for name in sorted(filenames):
                self.add_file(os.path.join(folder, name), explicit=False)


def discover(paths: Sequence[str], from_list: str | None = None) -> SourceScan:
    """Find candidate image files under `paths` (files or folders) and in the `from_list` file.

    Paths keep the spelling the user gave: a relative folder yields relative file paths.
    Missing paths, unreadable folders and symlink loops become FileErrors; nothing raises for them.
    """
    walker = _Walker()
    requested: list[str] = list(paths)
    if from_list is not None:
        try:
            requested.extend(read_path_list(from_list))
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            walker.scan.errors.append(FileError(from_list, f"cannot read path list: {reason}"))
    for path in _unique(requested):
        if os.path.isdir(path):
            walker.walk(path)
        elif os.path.lexists(path):
            walker.add_file(path, explicit=True)
        else:
            walker.scan.errors.append(FileError(path, "no such file or folder"))
    return walker.scan


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
