"""Where an image's bytes live, and reading them from there.

Every stage that reads an image's bytes (hashing, decoding, verification, review thumbnails) goes
through `read_bytes`, so an image path may be:

- a local file: ``photos/a.jpg``. A local file whose whole name exists on disk is always a plain
  file, even when its name holds a '#';
- an object or URL that fsspec opens: ``s3://bucket/a.jpg``, ``gs://...``, ``az://...``,
  ``https://host/a.jpg``. Credentials come only from each backend's usual environment variables
  and configuration files (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
  AWS_ENDPOINT_URL, ~/.aws/config; and fsspec's own configuration), never from arguments. The
  backends are optional packages: s3fs, gcsfs, adlfs (http needs only aiohttp);
- a member of an uncompressed tar shard (the WebDataset layout img2dataset writes):
  ``data/000000.tar#000000012.jpg`` or ``s3://b/000000.tar#000000012.jpg``. A shard's headers are
  read once per process to learn each member's offset and size; a member is then one ranged read;
- a row of a Parquet or Arrow (IPC) table with a column of encoded image bytes (a Hugging Face
  datasets export: a ``binary`` column, or a struct ``{bytes: binary, path: string}``):
  ``train.parquet#12`` (row 12, counting from 0) or, when discovery was given a name column,
  ``train.parquet#cat_001.jpg``. The Parquet row group holding the row is read, and the last two
  read are kept, so consecutive rows of a batch cost one read.

A path names a member when it holds a '#' right after a container's name (``.tar``,
``.parquet``, ``.arrow``, any case) and something after that '#'; the first such '#' splits, so
member names may hold '#' themselves.

Which column holds a table's images, and whether its members are row numbers or names, is
recorded per table when discovery lists it (`list_table`); DataLoader workers forked later
inherit it. A process that reads rows of a table it never listed (a review page made from a
report, say) uses `configure`'s defaults: the image column is the table's only image column, a
member made of digits is a row number, and any other member is looked up among the table's text
columns (the first in which it occurs exactly once).

Fork safety: open filesystems, Parquet readers and their locks belong to the process that
opened them; a forked worker (DataLoader) notices the new process id and opens its own, and
fsspec itself resets its event loop after a fork. Listings and tar indexes are plain data, so
workers inherit them and never re-read a shard's headers.

Everything that cannot be read raises `StorageError`, whose message is a one-line reason.
"""

from __future__ import annotations

import bisect
import email.utils
import os
import posixpath
import re
import tarfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import DedupError, first_line

TAR_EXTENSIONS = (".tar",)
TABLE_EXTENSIONS = (".parquet", ".arrow")
CONTAINER_EXTENSIONS = TAR_EXTENSIONS + TABLE_EXTENSIONS

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"}
_TAR_BLOCK = 16 << 20  # read-ahead while a remote shard's headers are scanned
_KEPT_BLOCKS = 2  # Parquet row groups (or Arrow tables) kept per process


class StorageError(DedupError):
    """Bytes that cannot be read from where they live; the message is the one-line reason."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing  # the file, object, member or row does not exist


class NoImageColumnError(StorageError):
    """A table without any column of image bytes (img2dataset's metadata Parquet files)."""


# Path syntax


def is_url(path: str) -> bool:
    """True for ``scheme://...`` paths (object stores, http), read through fsspec."""
    return _URL.match(path) is not None


def protocol(path: str) -> str | None:
    match = _URL.match(path)
    return match.group(1).lower() if match else None


def container_kind(path: str) -> str | None:
    """The kind of container `path` names by its extension ("tar", "table"), or None."""
    lowered = path.lower()
    if lowered.endswith(TAR_EXTENSIONS):
        return "tar"
    if lowered.endswith(TABLE_EXTENSIONS):
        return "table"
    return None


def split_member(path: str) -> tuple[str, str] | None:
    """(container, member) when `path` names a member of a tar shard or a row of a table; None
    for a plain file or URL. A local path that exists as a whole is never split."""
    if "#" not in path:
        return None
    if not is_url(path) and os.path.lexists(path):
        return None
    start = 0
    while (mark := path.find("#", start)) != -1:
        container, member = path[:mark], path[mark + 1 :]
        if member and container_kind(container) is not None:
            return container, member
        start = mark + 1
    return None


def is_local(path: str) -> bool:
    """True for a plain local file: not a URL and not a member of a container."""
    return not is_url(path) and split_member(path) is None


def where(path: str) -> str:
    """Where a non-local path lives, in words: "inside a tar shard", "in an object store"..."""
    parts = split_member(path)
    if parts is not None:
        return "inside a tar shard" if container_kind(parts[0]) == "tar" else "a row of a table"
    scheme = protocol(path)
    if scheme in ("http", "https"):
        return "a web URL"
    if scheme is not None:
        return "in an object store" if scheme in _OBJECT_STORES else f"a {scheme}:// URL"
    return "a local file"


def absolute(path: str) -> str:
    """`path` made absolute where that means something: a local file or a local container
    (its '#member' kept); URLs are returned as they are."""
    if is_url(path):
        return path
    parts = split_member(path)
    if parts is not None:
        return f"{os.path.abspath(parts[0])}#{parts[1]}"
    return os.path.abspath(path)


def join(folder_of: str, relative: str) -> str:
    """`relative` (a manifest entry) resolved against the folder of `folder_of` (the manifest);
    absolute paths and URLs are returned as they are."""
    if is_url(relative) or os.path.isabs(relative):
        return relative
    if is_url(folder_of):
        return posixpath.join(posixpath.dirname(folder_of), relative)
    return os.path.join(os.path.dirname(folder_of), relative)


# Per-process state: open handles are never shared with a forked child.


class _ProcessState:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.filesystems: dict[str, Any] = {}
        self.tables: dict[str, _TableFile] = {}


_state = _ProcessState()


def _here() -> _ProcessState:
    global _state
    if _state.pid != os.getpid():
        _state = _ProcessState()
    return _state


if hasattr(os, "register_at_fork"):  # a lock held by another thread at fork would never free
    os.register_at_fork(after_in_child=lambda: _here())


@dataclass
class _TableOptions:
    image_column: str | None = None
    name_column: str | None = None


_defaults = _TableOptions()
_listed: dict[str, _TableOptions] = {}  # container -> the options it was listed with
# container -> (signature, name column, name -> row)
_names: dict[str, tuple[Any, str, dict[str, int]]] = {}
_tar_indexes: dict[str, tuple[Any, TarListing, dict[str, TarMember]]] = {}
_table_listings: dict[tuple[str, str | None, str | None], tuple[Any, TableListing]] = {}
_blocks: OrderedDict[tuple[str, Any, int, str], Any] = OrderedDict()
_row_sizes: dict[str, tuple[Any, dict[str, int]]] = {}  # container -> rows its listing found
_remote_mtimes: dict[str, float] = {}  # remote container -> its modification time


def configure(*, image_column: str | None = None, name_column: str | None = None) -> None:
    """Defaults for tables this process reads without having listed them (see the module
    docstring): the image column, and the column whose values name rows."""
    _defaults.image_column = image_column
    _defaults.name_column = name_column


def clear_caches() -> None:
    """Forget every listing, index, open filesystem and cached block (tests; long sessions
    whose objects changed)."""
    global _state
    _state = _ProcessState()
    _listed.clear()
    _names.clear()
    _tar_indexes.clear()
    _table_listings.clear()
    _blocks.clear()
    _row_sizes.clear()
    _remote_mtimes.clear()


# Errors


def _reason(error: BaseException, what: str = "", missing: str = "not found") -> StorageError:
    """A StorageError with a one-line reason for an exception raised by a backend."""
    if isinstance(error, StorageError):
        return error
    cause = error.__cause__
    if (
        isinstance(error, FileNotFoundError)
        and (isinstance(cause, OSError) or hasattr(cause, "status"))
        and not _not_found(cause)
    ):
        return _reason(cause, what, missing)  # fsspec's http calls every failure "not found"
    detail = first_line(error)
    if isinstance(error, FileNotFoundError) or _not_found(error):
        if "bucket" in detail.lower():
            return StorageError(f"no such bucket ({detail})", missing=True)
        return StorageError(missing, missing=True)
    if isinstance(error, PermissionError) or getattr(error, "status", None) in (401, 403):
        return StorageError(f"access denied ({detail})")
    if isinstance(error, IsADirectoryError):
        return StorageError("a folder or prefix, not a file")
    if isinstance(error, OSError) and error.strerror:
        return StorageError(f"{what or 'cannot read'}: {error.strerror}")
    return StorageError(f"{what or 'cannot read'}: {type(error).__name__}: {detail}")


def _not_found(error: BaseException) -> bool:
    return isinstance(error, FileNotFoundError) or getattr(error, "status", None) in (404, 410)


# fsspec


def filesystem(url: str) -> Any:
    """The fsspec filesystem for `url`'s protocol, opened with the backend's default
    credentials, once per process."""
    scheme = protocol(url)
    if scheme is None:
        raise StorageError(f"not a URL: {url}")
    state = _here()
    fs = state.filesystems.get(scheme)
    if fs is None:
        try:
            import fsspec

            fs = fsspec.filesystem(scheme, skip_instance_cache=True)
        except ImportError as error:
            raise StorageError(
                f"{scheme}:// paths need an fsspec backend that is not installed "
                f"({first_line(error)}): pip install 'dedup-gpu[remote]'"
            ) from error
        except ValueError as error:
            raise StorageError(f"unknown protocol {scheme}:// ({first_line(error)})") from error
        state.filesystems[scheme] = fs
    return fs


@dataclass(frozen=True)
class RemoteEntry:
    """An object or URL: its size (None when the server did not say) and modification time."""

    path: str
    size: int | None
    mtime: float
    folder: bool = False  # a prefix (listed recursively) rather than an object


def remote_entry(url: str) -> RemoteEntry:
    """What `url` is: an object (with its size and time) or a prefix to list."""
    fs = filesystem(url)
    try:
        info = fs.info(url)
    except Exception as error:
        raise _reason(error, "cannot open", "no such object, prefix or URL") from error
    if info.get("type") == "directory":
        return RemoteEntry(url, None, 0.0, folder=True)
    return RemoteEntry(url, _size(info), _mtime(info))


def list_prefix(url: str) -> list[RemoteEntry]:
    """Every object under the prefix `url`, recursively, sorted by path; paths keep `url`'s
    protocol spelling."""
    fs = filesystem(url)
    scheme = url.split("://", 1)[0]
    try:
        found = fs.find(url, detail=True, withdirs=False)
    except Exception as error:
        raise _reason(error, "cannot list", "no such prefix") from error
    entries = [
        RemoteEntry(f"{scheme}://{name.split('://', 1)[-1]}", _size(info), _mtime(info))
        for name, info in found.items()
        if info.get("type", "file") == "file" and not name.endswith("/")
    ]
    return sorted(entries, key=lambda entry: entry.path)


def _size(info: dict[str, Any]) -> int | None:
    size = info.get("size")
    return int(size) if size is not None else None


def _mtime(info: dict[str, Any]) -> float:
    for key in ("LastModified", "last_modified", "mtime", "updated", "Last-Modified", "created"):
        value = info.get(key)
        if value:
            return _timestamp(value)
    return 0.0


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _read_url(url: str, start: int | None = None, end: int | None = None) -> bytes:
    fs = filesystem(url)
    try:
        data = fs.cat_file(url, start=start, end=end)
    except Exception as error:
        raise _reason(error, missing="no such object or URL") from error
    if start is not None and end is not None and len(data) > end - start:
        data = data[start:end]  # a server that ignored the Range header sent everything
    return bytes(data)


# Reading


def read_bytes(path: str) -> bytes:
    """The bytes of the image at `path` (any form in the module docstring)."""
    parts = split_member(path)
    if parts is not None:
        container, member = parts
        if container_kind(container) == "tar":
            return _read_tar_member(container, member)
        return _read_table_row(container, member)
    if is_url(path):
        return _read_url(path)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError as error:
        raise StorageError("no such file", missing=True) from error
    except OSError as error:
        raise StorageError(f"cannot read file: {error.strerror or error}") from error


@dataclass(frozen=True)
class Stat:
    size: int
    mtime: float


def stat(path: str) -> Stat:
    """Size in bytes and modification time of the image at `path` (a tar member's own time; a
    table row's table's time)."""
    parts = split_member(path)
    if parts is not None:
        container, member = parts
        if container_kind(container) == "tar":
            found = _tar_member(container, member)
            return Stat(found.size, found.mtime)
        listed = _row_sizes.get(container)
        if listed is not None and listed[0] == _signature(container) and member in listed[1]:
            return Stat(listed[1][member], container_mtime(container))
        return Stat(len(_read_table_row(container, member)), container_mtime(container))
    if is_url(path):
        entry = remote_entry(path)
        if entry.folder:
            raise StorageError("a prefix, not an object")
        size = entry.size if entry.size is not None else len(_read_url(path))
        return Stat(size, entry.mtime)
    try:
        status = os.stat(path)
    except FileNotFoundError as error:
        raise StorageError("no such file", missing=True) from error
    except OSError as error:
        raise StorageError(f"cannot read file: {error.strerror or error}") from error
    return Stat(status.st_size, status.st_mtime)


def exists(path: str) -> bool:
    """False only when `path` is known to be gone; True when it exists or cannot be told."""
    if is_local(path):
        return os.path.lexists(path)
    try:
        stat(path)
    except StorageError as error:
        return not error.missing
    return True


def container_mtime(container: str) -> float:
    """The modification time of a tar shard or table (remote ones looked up once)."""
    if is_url(container):
        if container not in _remote_mtimes:
            _remote_mtimes[container] = remote_entry(container).mtime
        return _remote_mtimes[container]
    try:
        return os.stat(container).st_mtime
    except OSError as error:
        raise _reason(error) from error


def _signature(container: str) -> Any:
    """What tells a local container changed since it was indexed; remote ones are trusted."""
    if is_url(container):
        return None
    try:
        status = os.stat(container)
    except OSError as error:
        raise _reason(error) from error
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _read_range(container: str, offset: int, size: int) -> bytes:
    if is_url(container):
        data = _read_url(container, offset, offset + size)
    else:
        try:
            with open(container, "rb") as handle:
                handle.seek(offset)
                data = handle.read(size)
        except OSError as error:
            raise _reason(error) from error
    if len(data) != size:
        raise StorageError(f"the container ends inside this member ({len(data)} of {size} bytes)")
    return data


# Tar shards


@dataclass(frozen=True)
class TarMember:
    name: str
    offset: int  # of its data in the shard
    size: int
    mtime: float


@dataclass(frozen=True)
class TarListing:
    members: tuple[TarMember, ...]  # regular files, in shard order (a repeated name: the last)
    damaged: str | None = None  # why reading stopped early, when it did


def list_tar(container: str) -> TarListing:
    """The regular-file members of an uncompressed tar shard, from its headers (read once per
    process; a local shard is read again when it changes)."""
    return _tar_index(container)[0]


def _tar_member(container: str, name: str) -> TarMember:
    listing, members = _tar_index(container)
    member = members.get(name)
    if member is None:
        if listing.damaged:
            raise StorageError(f"no member {name} in the readable part of the tar shard")
        raise StorageError(f"no member {name} in the tar shard", missing=True)
    return member


def _read_tar_member(container: str, name: str) -> bytes:
    member = _tar_member(container, name)
    try:
        return _read_range(container, member.offset, member.size)
    except StorageError as error:
        raise StorageError(f"cannot read tar member: {error}", missing=error.missing) from error


def _tar_index(container: str) -> tuple[TarListing, dict[str, TarMember]]:
    signature = _signature(container)
    cached = _tar_indexes.get(container)
    if cached is not None and cached[0] == signature:
        return cached[1], cached[2]
    with _here().lock:
        cached = _tar_indexes.get(container)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        listing = _scan_tar(container)
        members = {member.name: member for member in listing.members}
        _tar_indexes[container] = (signature, listing, members)
    return listing, members


def _scan_tar(container: str) -> TarListing:
    try:
        if is_url(container):
            handle = filesystem(container).open(
                container, "rb", block_size=_TAR_BLOCK, cache_type="readahead"
            )
        else:
            handle = open(container, "rb")  # noqa: SIM115 (closed below)
    except Exception as error:
        raise _reason(error, "cannot open tar shard") from error
    with handle:
        try:
            archive = tarfile.open(fileobj=handle, mode="r:")  # noqa: SIM115
        except tarfile.ReadError as error:
            text = first_line(error)
            if text == "empty file":
                raise StorageError("empty file (0 bytes)") from error
            raise StorageError(
                "not a tar shard, or one damaged at its start (compressed shards such as "
                ".tar.gz are not read: decompress them)"
            ) from error
        except Exception as error:
            raise _reason(error, "cannot read tar shard") from error
        members: dict[str, TarMember] = {}
        damaged = None
        try:
            for info in archive:
                if info.isfile() and not info.issparse():  # a sparse member is not one range
                    members.pop(info.name, None)  # a name appended again: the last one counts
                    members[info.name] = TarMember(
                        info.name, info.offset_data, info.size, float(info.mtime)
                    )
            # tarfile stops quietly at a damaged header after the first: what follows the last
            # member must be the end-of-archive zeros.
            handle.seek(archive.offset)
            if any(handle.read(tarfile.BLOCKSIZE)):
                damaged = f"unreadable header at byte {archive.offset}"
        except Exception as error:  # tarfile, the backend and Python report damage variously
            damaged = first_line(error)
        try:
            end = handle.seek(0, os.SEEK_END)
        except Exception:
            end = None
    if end is not None:
        cut = [m for m in members.values() if m.offset + m.size > end]
        if cut:
            damaged = f"the shard ends inside member {cut[0].name}"
            members = {name: m for name, m in members.items() if m.offset + m.size <= end}
    return TarListing(tuple(members.values()), damaged)


# Tables (Parquet, Arrow IPC)


class _TableFile:
    """An open Parquet file, read a row group at a time, or an Arrow IPC file (memory-mapped
    when local), read whole."""

    def __init__(self, container: str, signature: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.container = container
        self.signature = signature
        self.lock = threading.Lock()
        self.parquet: Any = None
        self.table: Any = None
        try:
            if container.lower().endswith(".parquet"):
                source = (
                    filesystem(container).open(container, "rb") if is_url(container) else container
                )
                self.parquet = pq.ParquetFile(source)
                self.schema = self.parquet.schema_arrow
                metadata = self.parquet.metadata
                counts = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            else:
                self.table = _read_arrow(container)
                self.schema = self.table.schema
                counts = [self.table.num_rows]
        except StorageError:
            raise
        except (pa.ArrowException, OSError, ValueError) as error:
            raise StorageError(f"cannot read table: {first_line(error)}") from error
        self.starts = [0]
        for count in counts:
            self.starts.append(self.starts[-1] + count)
        self.rows = self.starts[-1]

    @property
    def blocks(self) -> int:
        return len(self.starts) - 1

    def block_of(self, row: int) -> int:
        return bisect.bisect_right(self.starts, row) - 1

    def read_block(self, block: int, columns: list[str]) -> Any:
        import pyarrow as pa

        try:
            with self.lock:  # a remote file object is not safe for concurrent reads
                if self.parquet is not None:
                    return self.parquet.read_row_group(block, columns=columns)
                return self.table.select(columns)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise StorageError(f"cannot read table: {first_line(error)}") from error


def _read_arrow(container: str) -> Any:
    import pyarrow as pa

    if is_url(container):
        source = pa.BufferReader(_read_url(container))
    else:
        source = pa.memory_map(container)
    try:
        return pa.ipc.open_file(source).read_all()
    except pa.ArrowInvalid:
        source.seek(0)
        return pa.ipc.open_stream(source).read_all()


def _table(container: str) -> _TableFile:
    signature = _signature(container)
    state = _here()
    table = state.tables.get(container)
    if table is None or table.signature != signature:
        with state.lock:
            table = state.tables.get(container)
            if table is None or table.signature != signature:
                table = _TableFile(container, signature)
                state.tables[container] = table
    return table


def _image_kind(field_type: Any) -> str | None:
    """The kind of image column this type makes ("binary" or "struct"), or None."""
    import pyarrow as pa

    def binary(kind: Any) -> bool:
        return (
            pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind)
            or getattr(pa.types, "is_binary_view", lambda _: False)(kind)
        )

    if binary(field_type):
        return "binary"
    if pa.types.is_struct(field_type):
        index = field_type.get_field_index("bytes")
        if index >= 0 and binary(field_type.field(index).type):
            return "struct"
    return None


def image_columns(schema: Any) -> list[str]:
    """The columns of `schema` that hold image bytes: binary, or a struct with binary `bytes`."""
    return [field.name for field in schema if _image_kind(field.type) is not None]


def _choose_column(table: _TableFile, image_column: str | None) -> str:
    names = table.schema.names
    if image_column is not None:
        if image_column not in names:
            raise StorageError(f"no column {image_column!r} (columns: {', '.join(names)})")
        if _image_kind(table.schema.field(image_column).type) is None:
            kind = table.schema.field(image_column).type
            raise StorageError(f"column {image_column!r} holds {kind}, not image bytes")
        return image_column
    found = image_columns(table.schema)
    if not found:
        raise NoImageColumnError(f"no column of image bytes (columns: {', '.join(names)})")
    if len(found) > 1:
        raise StorageError(
            f"several columns of image bytes ({', '.join(found)}): choose one with image_column"
        )
    return found[0]


def _image_bytes(column: Any) -> Any:
    """The encoded bytes of an image column (a struct's `bytes` field), nulls kept."""
    import pyarrow.compute as pc

    if _image_kind(column.type) == "struct":
        return pc.struct_field(column, "bytes")
    return column


@dataclass(frozen=True)
class TableListing:
    """A table's rows as members: (member, image size) for the usable ones; (member, reason)
    for rows that cannot be used. Rows are named by number unless a name column was given."""

    image_column: str
    rows: tuple[tuple[str, int], ...]
    errors: tuple[tuple[str, str], ...]
    mtime: float


def list_table(
    container: str, *, image_column: str | None = None, name_column: str | None = None
) -> TableListing:
    """The rows of a Parquet or Arrow table with their image sizes (the image column is read
    once, a row group at a time), recorded for later reads of its rows in this process and the
    workers it forks. Raises StorageError for the table as a whole: unreadable, no such column,
    several image columns (NoImageColumnError when it has none at all)."""
    key = (container, image_column, name_column)
    signature = _signature(container)
    cached = _table_listings.get(key)
    if cached is not None and cached[0] == signature:
        _listed[container] = _TableOptions(cached[1].image_column, name_column)
        _row_sizes[container] = (signature, dict(cached[1].rows))
        return cached[1]
    import pyarrow.compute as pc

    table = _table(container)
    column = _choose_column(table, image_column)
    if name_column is not None and name_column not in table.schema.names:
        raise StorageError(
            f"no column {name_column!r} for names (columns: {', '.join(table.schema.names)})"
        )
    mtime = container_mtime(container)
    rows: list[tuple[str, int]] = []
    errors: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    wanted = [column] + ([name_column] if name_column and name_column != column else [])
    for block in range(table.blocks):
        part = table.read_block(block, wanted)
        images = part.column(column)
        lengths = pc.binary_length(_image_bytes(images)).to_pylist()
        paths = (
            pc.struct_field(images, "path").to_pylist()
            if _image_kind(images.type) == "struct" and images.type.get_field_index("path") >= 0
            else None
        )
        labels = part.column(name_column).to_pylist() if name_column else None
        for offset, length in enumerate(lengths):
            row = table.starts[block] + offset
            member = str(row)
            if labels is not None:
                label = labels[offset]
                if label is None or str(label) == "":
                    errors.append((member, f"row {row} has no name in column {name_column!r}"))
                    continue
                if str(label) in names:
                    errors.append(
                        (
                            member,
                            f"row {row}'s name {str(label)!r} repeats row {names[str(label)]}'s; "
                            f"names in {name_column!r} must be unique within a file",
                        )
                    )
                    continue
                member = str(label)
                names[member] = row
            if length is None:
                stored_as = paths[offset] if paths is not None else None
                errors.append(
                    (
                        member,
                        f"no image bytes in this row (it refers to {stored_as!r}, which is not "
                        "read)"
                        if stored_as
                        else "no image bytes in this row (null)",
                    )
                )
            elif length == 0:
                errors.append((member, "empty image (0 bytes)"))
            else:
                rows.append((member, int(length)))
    listing = TableListing(column, tuple(rows), tuple(errors), mtime)
    _table_listings[key] = (signature, listing)
    _row_sizes[container] = (signature, dict(rows))
    _listed[container] = _TableOptions(column, name_column)
    if name_column is not None:
        _names[container] = (signature, name_column, names)
    return listing


def _row_of(table: _TableFile, member: str, options: _TableOptions) -> int:
    if options.name_column is not None:
        names = _name_index(table, options.name_column)
        if member not in names:
            raise StorageError(
                f"no row named {member!r} in column {options.name_column!r}", missing=True
            )
        return names[member]
    if member.isdigit():
        row = int(member)
        if row >= table.rows:
            raise StorageError(f"no row {row}: the table has {table.rows} rows", missing=True)
        return row
    return _find_named_row(table, member)


def _name_index(table: _TableFile, column: str) -> dict[str, int]:
    cached = _names.get(table.container)
    if cached is not None and cached[:2] == (table.signature, column):
        return cached[2]
    if column not in table.schema.names:
        raise StorageError(f"no column {column!r} for names")
    names: dict[str, int] = {}
    for block in range(table.blocks):
        values = table.read_block(block, [column]).column(column).to_pylist()
        for offset, value in enumerate(values):
            if value is not None and str(value) and str(value) not in names:
                names[str(value)] = table.starts[block] + offset
    _names[table.container] = (table.signature, column, names)
    return names


def _find_named_row(table: _TableFile, member: str) -> int:
    """A row named by a value of one of the table's text columns (a report read in a process
    that never listed the table with its name column): the first column in which `member`
    occurs exactly once, remembered for the table's next names."""
    import pyarrow as pa

    guessed = _names.get(table.container)
    if guessed is not None and guessed[0] == table.signature and member in guessed[2]:
        return guessed[2][member]
    text_columns = [
        field.name
        for field in table.schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    ]
    for column in text_columns:
        rows = []
        for block in range(table.blocks):
            values = table.read_block(block, [column]).column(column).to_pylist()
            rows += [table.starts[block] + i for i, value in enumerate(values) if value == member]
        if len(rows) == 1:
            _name_index(table, column)
            return rows[0]
    raise StorageError(f"no row {member!r}: not a row number nor a unique name", missing=True)


def _read_table_row(container: str, member: str) -> bytes:
    table = _table(container)
    options = _listed.get(container) or _TableOptions(_defaults.image_column, _defaults.name_column)
    column = _choose_column(table, options.image_column)
    row = _row_of(table, member, options)
    block = table.block_of(row)
    key = (container, table.signature, block, column)
    lock = _here().lock
    with lock:
        images = _blocks.get(key)
        if images is not None:
            _blocks.move_to_end(key)
    if images is None:
        images = _image_bytes(table.read_block(block, [column]).column(column))
        with lock:
            _blocks[key] = images
            while len(_blocks) > _KEPT_BLOCKS:
                _blocks.popitem(last=False)
    value = images[row - table.starts[block]].as_py()
    if value is None:
        raise StorageError("no image bytes in this row (null)")
    if not value:
        raise StorageError("empty image (0 bytes)")
    return bytes(value)
