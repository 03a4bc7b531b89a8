"""Stage 1: find candidate image files from paths, folders, object-store prefixes, URLs, tar
shards, tables of image bytes, path lists and manifests.

Local folders are walked recursively and in sorted order, following symlinks but never the same
folder twice (a symlink loop is reported, not followed). A local file is a candidate when its
extension is a common image extension or, failing that, when its first bytes carry a known image
signature.

Beyond local files (see storage.py for how each is read):

- ``s3://bucket/prefix/`` (any fsspec URL: gs://, az://...) is listed recursively like a folder,
  sorted by key; an object URL is one file. Objects found under a prefix are candidates by their
  extension only (sniffing their first bytes would cost a request each); one named directly is
  always tried. ``http(s)://`` URLs are single files, never listed.
- A ``.tar`` file is a WebDataset shard (the layout img2dataset writes) and is always expanded:
  when named directly and also when found while walking a folder or listing a prefix, because an
  img2dataset output folder is exactly a folder of such shards. Each regular member with an
  image extension becomes one candidate ``shard.tar#member``; other members (the ``.json`` and
  ``.txt`` sidecars) are ignored. Compressed shards (``.tar.gz``) are not expanded.
- A ``.parquet`` or ``.arrow`` file with a column of image bytes (``binary``, or a struct
  ``{bytes, path}`` as Hugging Face datasets exports) becomes one candidate per row,
  ``file.parquet#<row>`` or, with `name_column`, ``file.parquet#<name>``. The column is
  `image_column`, or the table's only column of image bytes. A table found while walking that
  has no column of image bytes at all is skipped quietly (img2dataset writes such metadata files
  beside its shards); named directly, it is an error.
- `from_list` is a plain text file of paths or URLs, one a line, or, by its extension, a
  ``.csv`` or ``.jsonl`` manifest whose `image_column` (default: the first of path, url, image,
  file, filepath, image_url) gives a path or URL per row. Relative paths in a text list are
  relative to the working folder, as they always were; relative paths in a CSV or JSONL
  manifest are relative to the manifest's own folder, as in dataset manifests.

Every path, object, member, row or argument that cannot be used becomes a FileError with a
one-line reason; nothing raises for them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from stat import S_ISBLK, S_ISCHR, S_ISFIFO, S_ISREG, S_ISSOCK

from . import storage
from .csv_cells import read_text_cell
from .errors import BadArgumentError
from .lines import lines_of
from .records import FileError, ImageFile
from .storage import StorageError

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
    """True when the file's first bytes match a known image signature. Opened without blocking,
    so a FIFO that took a file's place is not waited on."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not S_ISREG(os.fstat(handle.fileno()).st_mode):
            return False
        head = handle.read(32)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def _kind(status: os.stat_result) -> str:
    mode = status.st_mode
    for test, name in ((S_ISFIFO, "a FIFO"), (S_ISSOCK, "a socket"), (S_ISCHR, "a device")):
        if test(mode):
            return name
    return "a block device" if S_ISBLK(mode) else "not a file"


def read_path_list(list_file: str) -> list[str]:
    """Paths from a text file, one a line; blank lines and lines starting with '#' are skipped."""
    with open(list_file, encoding="utf-8", newline="") as handle:
        lines = lines_of(handle.read())
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
MANIFEST_COLUMNS = ("path", "url", "image", "file", "filepath", "image_url")
_REMOTE_THREADS = 16  # objects looked up at once (a request each)


def is_image_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def read_manifest(
    list_file: str, image_column: str | None = None
) -> tuple[list[str], list[FileError]]:
    """Paths from a path list: a CSV or JSONL manifest by its extension (`image_column` names
    the column; relative paths are relative to the manifest), else plain text, one a line. The
    file may be local or a URL. Returns the paths and the problems found in the file."""
    is_csv = list_file.lower().endswith(".csv")
    is_manifest = list_file.lower().endswith(MANIFEST_EXTENSIONS)
    kind = "manifest" if is_manifest else "path list"
    try:
        if storage.is_url(list_file):
            text = storage.read_bytes(list_file).decode("utf-8-sig")
        elif is_manifest:
            with open(list_file, encoding="utf-8-sig", newline="") as handle:
                text = handle.read()
        else:
            return read_path_list(list_file), []
    except (OSError, UnicodeDecodeError, StorageError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        return [], [FileError(list_file, f"cannot read {kind}: {reason}")]
    if not is_manifest:
        lines = lines_of(text)
        return [line for line in lines if line.strip() and not line.lstrip().startswith("#")], []
    if is_csv:
        return _csv_paths(list_file, text, image_column)
    return _jsonl_paths(list_file, text, image_column)


def _csv_paths(
    list_file: str, text: str, image_column: str | None
) -> tuple[list[str], list[FileError]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [name for name in reader.fieldnames or [] if name is not None]
    column = image_column if image_column in columns else None
    if image_column is None:
        column = _path_column(columns)
    if column is None:
        return [], [FileError(list_file, _no_column(image_column, columns))]
    paths: list[str] = []
    errors: list[FileError] = []
    try:
        for row in reader:
            value = row.get(column)
            if value is None or not value.strip():
                errors.append(
                    FileError(list_file, f"line {reader.line_num}: no path in {column!r}")
                )
            else:  # our own CSVs neutralise formula-like cells: read them back whole
                paths.append(storage.join(list_file, read_text_cell(value.strip())))
    except csv.Error as error:
        errors.append(FileError(list_file, f"line {reader.line_num}: not CSV ({error})"))
    return paths, errors


def _jsonl_paths(
    list_file: str, text: str, image_column: str | None
) -> tuple[list[str], list[FileError]]:
    paths: list[str] = []
    errors: list[FileError] = []
    for number, line in enumerate(lines_of(text), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(FileError(list_file, f"line {number}: not JSON ({error.msg})"))
            continue
        if not isinstance(row, dict):
            errors.append(FileError(list_file, f"line {number}: not a JSON object"))
            continue
        keys = [key for key in row if isinstance(key, str)]
        column = image_column if image_column is not None else _path_column(keys)
        value = row.get(column) if column is not None else None
        if column is None or column not in row:
            errors.append(FileError(list_file, f"line {number}: {_no_column(image_column, keys)}"))
        elif not isinstance(value, str) or not value.strip():
            errors.append(FileError(list_file, f"line {number}: no path in {column!r}"))
        else:
            paths.append(storage.join(list_file, value.strip()))
    return paths, errors


def _path_column(columns: Sequence[str]) -> str | None:
    """The first column named like a path column (path, url, image...), any case."""
    lowered = {name.strip().lower(): name for name in columns}
    for name in MANIFEST_COLUMNS:
        if name in lowered:
            return lowered[name]
    return None


def _no_column(image_column: str | None, columns: Sequence[str]) -> str:
    found = ", ".join(columns) or "none"
    if image_column is not None:
        return f"no column {image_column!r} (columns: {found})"
    return (
        f"no column of paths (looked for {', '.join(MANIFEST_COLUMNS)}; columns: {found}): "
        "name it with image_column"
    )


class _Walker:
    def __init__(self, image_column: str | None = None, name_column: str | None = None) -> None:
        self.scan = SourceScan()
        self.image_column = image_column
        self.name_column = name_column
        self._seen_files: set[tuple[int, int]] = set()
        self._seen_members: set[tuple[object, ...]] = set()
        self._seen_urls: set[str] = set()
        self.remote: dict[str, storage.RemoteEntry | StorageError] = {}

    def add(self, path: str) -> None:
        if storage.is_url(path):
            self.add_remote(path)
        elif os.path.isdir(path):
            self.walk(path)
        elif os.path.lexists(path):
            self.add_file(path, explicit=True)
        elif (parts := storage.split_member(path)) is not None and os.path.lexists(parts[0]):
            self.add_member(path)
        else:
            self.scan.errors.append(FileError(path, "no such file or folder"))

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
        if not S_ISREG(stat.st_mode):
            # A FIFO, socket or device: opening a FIFO to read it waits for a writer forever.
            if explicit or is_image_name(path):
                self.scan.errors.append(FileError(path, f"not a regular file ({_kind(stat)})"))
            return
        if storage.container_kind(path) is not None:
            self._seen_files.add(key)
            self.expand(path, explicit=explicit, alias=key)
            return
        if not explicit and not is_image_name(path):
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

    # Object stores and URLs

    def look_up(self, urls: Sequence[str]) -> None:
        """Look up many objects at once (a request each), before they are added in order."""
        wanted = [url for url in urls if url not in self.remote]
        if len(wanted) < 2:
            return

        def one(url: str) -> storage.RemoteEntry | StorageError:
            try:
                return storage.remote_entry(url)
            except StorageError as error:
                return error

        with ThreadPoolExecutor(min(_REMOTE_THREADS, len(wanted))) as pool:
            self.remote.update(zip(wanted, pool.map(one, wanted), strict=True))

    def add_remote(self, url: str) -> None:
        if storage.split_member(url) is not None:
            self.add_member(url)
            return
        entry = self.remote.pop(url, None)
        try:
            if entry is None:
                entry = storage.remote_entry(url)
            if isinstance(entry, StorageError):
                raise entry
            if not entry.folder:
                self.add_object(entry, explicit=True)
                return
            listed = storage.list_prefix(url)
        except StorageError as error:
            self.scan.errors.append(FileError(url, str(error)))
            return
        for found in listed:
            self.add_object(found, explicit=False)

    def add_object(self, entry: storage.RemoteEntry, *, explicit: bool) -> None:
        if entry.path in self._seen_urls:
            self.scan.aliases_skipped += 1
            return
        self._seen_urls.add(entry.path)
        if storage.container_kind(entry.path) is not None:
            self.expand(entry.path, explicit=explicit, alias=None, mtime=entry.mtime)
            return
        if not explicit and not is_image_name(entry.path):
            return
        size = entry.size
        if size is None:  # a server that does not say: the bytes tell
            try:
                size = len(storage.read_bytes(entry.path))
            except StorageError as error:
                self.scan.errors.append(FileError(entry.path, str(error)))
                return
        if size == 0:
            self.scan.errors.append(FileError(entry.path, "empty file (0 bytes)"))
            return
        self.scan.files.append(ImageFile(path=entry.path, size=size, mtime=entry.mtime))

    # Containers: tar shards and tables

    def expand(
        self,
        container: str,
        *,
        explicit: bool,
        alias: tuple[int, int] | None,
        mtime: float | None = None,
    ) -> None:
        try:
            if storage.container_kind(container) == "tar":
                self.expand_tar(container, alias)
            else:
                self.expand_table(container, alias, mtime)
        except storage.NoImageColumnError as error:
            if explicit:
                self.scan.errors.append(FileError(container, str(error)))
        except StorageError as error:
            self.scan.errors.append(FileError(container, str(error)))

    def expand_tar(self, container: str, alias: tuple[int, int] | None) -> None:
        listing = storage.list_tar(container)
        for member in listing.members:
            if not is_image_name(member.name):
                continue
            path = f"{container}#{member.name}"
            if not self.first_time(alias or container, member.name):
                continue
            if member.size == 0:
                self.scan.errors.append(FileError(path, "empty file (0 bytes)"))
                continue
            self.scan.files.append(ImageFile(path=path, size=member.size, mtime=member.mtime))
        if listing.damaged:
            self.scan.errors.append(
                FileError(
                    container,
                    f"damaged tar shard: {listing.damaged}; the members before the damage "
                    "were read",
                )
            )

    def expand_table(
        self, container: str, alias: tuple[int, int] | None, mtime: float | None
    ) -> None:
        listing = storage.list_table(
            container, image_column=self.image_column, name_column=self.name_column
        )
        for member, reason in listing.errors:
            self.scan.errors.append(FileError(f"{container}#{member}", reason))
        for member, size in listing.rows:
            if self.first_time(alias or container, member):
                path = f"{container}#{member}"
                self.scan.files.append(ImageFile(path=path, size=size, mtime=listing.mtime))

    def add_member(self, path: str) -> None:
        """One member named directly (``shard.tar#m``, ``table.parquet#12``)."""
        container, member = storage.split_member(path) or (path, "")
        try:
            if storage.container_kind(container) == "table":
                storage.list_table(
                    container, image_column=self.image_column, name_column=self.name_column
                )
            found = storage.stat(path)
            alias: object = container
            if not storage.is_url(container):
                status = os.stat(container)
                alias = (status.st_dev, status.st_ino)
        except (StorageError, OSError) as error:
            self.scan.errors.append(FileError(path, _one_line(error)))
            return
        if not self.first_time(alias, member):
            return
        if found.size == 0:
            self.scan.errors.append(FileError(path, "empty file (0 bytes)"))
            return
        self.scan.files.append(ImageFile(path=path, size=found.size, mtime=found.mtime))

    def first_time(self, container: object, member: str) -> bool:
        key = (container, member)
        if key in self._seen_members:
            self.scan.aliases_skipped += 1
            return False
        self._seen_members.add(key)
        return True


def _one_line(error: BaseException) -> str:
    if isinstance(error, StorageError):
        return str(error)
    return f"cannot read: {getattr(error, 'strerror', None) or error}"


def discover(
    paths: Sequence[str],
    from_list: str | None = None,
    *,
    image_column: str | None = None,
    name_column: str | None = None,
) -> SourceScan:
    """Find candidate images under `paths` (files, folders, URLs, object-store prefixes, tar
    shards, tables) and in the `from_list` file (a text list, or a CSV/JSONL manifest).

    `image_column` names the column of image bytes in tables and the column of paths in
    manifests (default: detected); `name_column` names the table column whose values name rows
    (default: rows are named by their number). Paths keep the spelling the user gave: a relative
    folder yields relative file paths. Missing paths, unreadable folders, objects, members and
    rows, and symlink loops become FileErrors; nothing raises for them.
    """
    walker = _Walker(image_column=image_column, name_column=name_column)
    requested: list[str] = list(paths)
    if from_list is not None:
        listed, problems = read_manifest(from_list, image_column)
        requested.extend(listed)
        walker.scan.errors.extend(problems)
    unique = _unique(requested)
    walker.look_up([p for p in unique if storage.is_url(p) and storage.split_member(p) is None])
    for path in unique:
        walker.add(path)
    return walker.scan


def unreadable_roots(scan: SourceScan, roots: Sequence[str]) -> list[FileError]:
    """The errors of `scan` that are about one of the `roots` themselves: a path given by name
    that is missing or could not be read at all (a typo, an unmounted drive, a missing bucket),
    as opposed to a bad file found under it."""
    named = set(roots)
    return [error for error in scan.errors if error.path in named]


def refuse_unreadable_roots(errors: Sequence[FileError], *, hint: str = "") -> None:
    """Raise for the first root a run was given that could not be read at all."""
    if not errors:
        return
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise BadArgumentError(
        f"cannot read {errors[0].path}: {errors[0].reason}{more}",
        hint=hint or "check the spelling, and that the drive, share or bucket is there",
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
