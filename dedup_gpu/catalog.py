"""The persistent catalog: what has been embedded, so later runs add only what is new.

A catalog is a folder:
- `catalog.db`: SQLite in WAL mode. `files` (one row per image: path, size, mtime, content
  hash, width, height, status, error, where its embedding is), `thumbnails` (the JPEG that
  verification compares, so `groups` need not decode the image again), `runs`, and `meta` (the
  model and preprocessing the embeddings come from, the format version).
- `embeddings/shard-NNNNNN.f16`: raw float16 rows, appended a batch at a time; memory-mapped
  to read. Each run appends to a shard of its own, so rows written by a run that was killed are
  simply never referenced. `shards` records each one's row count and the BLAKE2b digest of
  those rows, so a shard deleted, cut short or overwritten is found (`health()`).
- `index-NNNNNN.faiss`: the FAISS index over every stored embedding, keyed by file id, rewritten
  at the end of a run; `meta` names the current one and the catalog generation it covers.

Crash safety comes from ordering: a batch's rows are written and fsynced to the shard before the
SQLite transaction that refers to them commits, so after a kill -9 at any moment the catalog
holds every batch committed before it and nothing half-written. One writer at a time holds an
flock on `write.lock` (the kernel releases it when the process dies, so a crashed run never
leaves a stale lock); readers hold a shared flock on `read.lock` while they map shards, and
files no longer referenced are deleted only when no reader holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import __version__
from .errors import (
    CatalogBusyError,
    CatalogDamagedError,
    CatalogError,
    CatalogModelMismatchError,
)
from .index import SearchSettings, SimilarityIndex
from .records import FileError, ImageFile, ImageInfo
from .redact import redacted, redacted_urls

FORMAT_VERSION = 1
DATABASE = "catalog.db"
SHARDS = "embeddings"
WRITE_LOCK = "write.lock"
READ_LOCK = "read.lock"
# Small shards are merged once more than this many shards exist (a `check --add` per upload
# makes one each); a shard is rewritten once most of its rows belong to files since changed or
# deleted.
MAX_SHARDS = 64
SMALL_SHARD_ROWS = 65536
# A saved IVF index is retrained once the catalog outgrows the sample it was trained on by this.
RETRAIN_GROWTH = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    pid INTEGER NOT NULL,
    arguments TEXT NOT NULL,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    digest TEXT
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    digest TEXT,
    width INTEGER,
    height INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error TEXT,
    shard INTEGER,
    slot INTEGER,
    run INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_digest ON files (digest);
CREATE TABLE IF NOT EXISTS thumbnails (
    id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL
);
-- ids whose embedding left the catalog since the saved index was written (index.py removes them)
CREATE TABLE IF NOT EXISTS forgotten (id INTEGER PRIMARY KEY);
"""


def quick_check_findings(connection: sqlite3.Connection) -> list[str]:
    """The lines of `PRAGMA quick_check` on `connection` that are findings: none when sound.
    Raises sqlite3.DatabaseError where SQLite cannot even run it."""
    found = [str(row[0]) for row in connection.execute("PRAGMA quick_check(20)")]
    if found == ["ok"]:
        return []
    return [
        line
        for item in found
        for line in item.splitlines()
        if not line.startswith("*** in database")  # a heading, not a finding
    ]


def catalog_key(path: str) -> str:
    """The name a catalog keeps a file under: its path, or for a URL the URL with its credentials
    (userinfo, signed or secret query values) as `***`, so that a catalog never stores a secret
    and a password changed since is still the same file."""
    return redacted(path) if "://" in path else path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class KnownFile:
    """What the catalog recorded about a path, to decide whether it changed."""

    id: int
    size: int
    mtime: float
    status: str


@dataclass(frozen=True)
class StoredImage:
    """One embedded image, ready to be committed with its embedding row."""

    file: ImageFile
    digest: str
    info: ImageInfo
    thumbnail: bytes | None


@dataclass(frozen=True)
class ShardProblem:
    """A shard whose stored rows cannot all be read back as written."""

    shard: int
    path: str
    problem: str  # one line: "missing", "cut short: ...", "its bytes changed: ..."
    files: int  # images whose embedding it held


@dataclass(frozen=True)
class CatalogHealth:
    """What `health()` found: an empty `problems` list means nothing is wrong."""

    database: list[str]  # SQLite's quick_check findings; empty when it is sound
    shards: list[ShardProblem]
    unchecked_shards: int  # shards written before digests were recorded: sizes checked only
    index_missing: bool  # the saved search index that `meta` names is gone (rebuilt on use)

    @property
    def problems(self) -> list[str]:
        found = [f"database: {line}" for line in self.database]
        found += [
            f"{problem.path}: {problem.problem} ({problem.files} embedding(s) lost)"
            for problem in self.shards
        ]
        if self.index_missing:
            found.append("the saved search index is missing (it is rebuilt on the next run)")
        return found


@dataclass
class CatalogImages:
    """Every image with an embedding, in id order: row i of `embeddings()` is `files[i]`."""

    ids: np.ndarray  # int64 file ids
    files: list[ImageFile]
    digests: list[str]
    infos: list[ImageInfo]
    shards: np.ndarray  # int64
    slots: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.files)

    def without(self, paths: set[str]) -> CatalogImages:
        """These images less those at `paths` (e.g. whose stored embedding is lost)."""
        keep = [row for row, file in enumerate(self.files) if file.path not in paths]
        return CatalogImages(
            ids=self.ids[keep],
            files=[self.files[row] for row in keep],
            digests=[self.digests[row] for row in keep],
            infos=[self.infos[row] for row in keep],
            shards=self.shards[keep],
            slots=self.slots[keep],
        )


def _on_read_only_media(directory: Path) -> bool:
    """Whether `directory` is on a file system mounted read-only (an archive mount, a read-only
    share), where no process can write the catalog."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class _Flock:
    """An advisory lock on a file; the kernel drops it when the process dies.

    A forked child (a decoding worker) would share the lock through its copy of the descriptor
    and, orphaned by a parent killed with -9, hold it for good: every later run was refused,
    naming a dead pid. Each child closes its copies of the locks held (never unlocking them:
    that would unlock the parent's too)."""

    held: ClassVar[weakref.WeakSet[_Flock]] = weakref.WeakSet()
    _fork_hook: ClassVar[bool] = False

    def __init__(self, path: Path, *, shared: bool, wait: bool):
        self.handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self.handle, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise
        _Flock.held.add(self)
        if not _Flock._fork_hook:
            os.register_at_fork(after_in_child=_Flock._close_in_child)
            _Flock._fork_hook = True

    @staticmethod
    def _close_in_child() -> None:
        for lock in list(_Flock.held):
            with contextlib.suppress(OSError, ValueError):
                lock.handle.close()

    def release(self) -> None:
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def take_writer_lock(directory: Path) -> _Flock:
    """The catalog's single-writer lock (release() it), or CatalogBusyError naming the holder."""
    path = directory / WRITE_LOCK
    try:
        lock = _Flock(path, shared=False, wait=False)
    except BlockingIOError:
        holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
        raise CatalogBusyError(
            f"catalog {directory} is being written by {holder}; a second writer is refused",
            hint="wait for that run to finish, or use another --catalog",
        ) from None
    except OSError as error:
        raise CatalogError(f"cannot lock catalog {directory}: {error.strerror}") from error
    lock.handle.seek(0)
    lock.handle.truncate()
    lock.handle.write(f"dedup-gpu pid {os.getpid()} since {_now()}\n")
    lock.handle.flush()
    return lock


class Catalog:
    """A catalog folder opened for reading, or for writing by this process alone.

    Use as a context manager; `close()` releases the writer lock.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, write: bool = False, create: bool = False
    ):
        self.directory = Path(directory)
        self.read_only_media = False
        self._writer: _Flock | None = None
        self._shard: int | None = None  # the shard this process appends to
        self._shard_rows = 0
        self._shard_digest = hashlib.blake2b(digest_size=16)  # of the rows appended so far
        database = self.directory / DATABASE
        if not database.exists():
            if not create:
                if self.directory.exists() and any(self.directory.iterdir()):
                    raise CatalogError(
                        f"{self.directory} is not a dedup-gpu catalog (no {DATABASE})"
                    )
                raise CatalogError(
                    f"no catalog at {self.directory}",
                    hint=f"create one with: dedup-gpu index FOLDER --catalog {self.directory}",
                )
            try:
                (self.directory / SHARDS).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise CatalogError(
                    f"cannot create catalog {self.directory}: {error.strerror}"
                ) from error
        if write:
            self._writer = self._take_writer_lock()
        try:
            self.read_only_media = _on_read_only_media(self.directory)
            if write or not self.read_only_media:
                self.db = sqlite3.connect(database, isolation_level=None, timeout=30.0)
                self.db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a killed process loses nothing committed; only a power cut
                # can lose the last commits, and the shard fsync before each commit keeps those
                # coherent.
                self.db.execute("PRAGMA synchronous=NORMAL")
            else:
                # A catalog on a read-only mount or share: no -wal or -shm file can be made, and
                # no writer can change it, so SQLite may read it as an immutable file.
                self.db = sqlite3.connect(
                    f"{database.resolve().as_uri()}?immutable=1",
                    uri=True,
                    isolation_level=None,
                )
            self.db.execute("PRAGMA foreign_keys=ON")
            if write:
                self.db.executescript(SCHEMA)
                columns = {row[1] for row in self.db.execute("PRAGMA table_info(shards)")}
                if "digest" not in columns:  # a catalog made before shard digests
                    self.db.execute("ALTER TABLE shards ADD COLUMN digest TEXT")
            self._check_format(created=write)
        except sqlite3.OperationalError as error:
            # Locked, unreadable or unwritable: the catalog may well be healthy.
            self.close()
            raise CatalogError(
                f"cannot open catalog {self.directory}: {error}",
                hint="check that you may read (and, to add, write) its folder and files",
            ) from error
        except sqlite3.DatabaseError as error:
            self.close()
            raise CatalogDamagedError(
                f"catalog {self.directory} is damaged: {error}", hint=repair_hint(self.directory)
            ) from error
        except BaseException:
            self.close()
            raise

    # -- opening and closing ---------------------------------------------------------------

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None  # type: ignore[assignment]
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def _take_writer_lock(self) -> _Flock:
        return take_writer_lock(self.directory)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold off the deletion of shards and index files while they are being read (on
        read-only media nothing can delete them, and no lock file can be opened)."""
        if self.read_only_media:
            yield
            return
        lock = _Flock(self.directory / READ_LOCK, shared=True, wait=True)
        try:
            yield
        finally:
            lock.release()

    def _check_format(self, *, created: bool) -> None:
        stored = self.get_meta("format")
        if stored is None:
            if not created:
                raise CatalogError(f"catalog {self.directory} was never completed")
            self.set_meta("format", FORMAT_VERSION)
            self.set_meta("created", _now())
            self.set_meta("generation", 0)
        elif int(stored) > FORMAT_VERSION:
            raise CatalogError(
                f"catalog {self.directory} has format {stored}, newer than this dedup-gpu "
                f"({__version__}) reads",
                hint="upgrade dedup-gpu",
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._require_writer()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _require_writer(self) -> None:
        if self._writer is None:
            raise CatalogError("internal: catalog opened read-only is being written")

    # -- metadata --------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    @property
    def generation(self) -> int:
        """Bumped by every change to the set of stored embeddings."""
        return int(self.get_meta("generation") or 0)

    def _bump_generation(self) -> None:
        self.set_meta("generation", self.generation + 1)

    @property
    def model(self) -> dict[str, Any] | None:
        """The model and preprocessing the embeddings come from (None: nothing embedded yet)."""
        return self.get_meta("model")

    def bind_model(self, identity: dict[str, Any]) -> None:
        """Record `identity` on a new catalog; refuse one that differs from what is recorded."""
        recorded = self.model
        if recorded is None:
            with self.transaction():
                self.set_meta("model", identity)
            return
        ensure_same_model(recorded, identity, str(self.directory))

    # -- runs --------------------------------------------------------------------------------

    def begin_run(self, kind: str, arguments: dict[str, Any]) -> int:
        with self.transaction() as db:
            # We hold the writer lock, so a run still marked running died without finishing.
            db.execute(
                "UPDATE runs SET status = 'interrupted' WHERE status = 'running'",
            )
            cursor = db.execute(
                "INSERT INTO runs (kind, started, status, pid, arguments) "
                "VALUES (?, ?, 'running', ?, ?)",
                (kind, _now(), os.getpid(), json.dumps(redacted_urls(arguments))),
            )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run: int, counts: dict[str, int], status: str = "completed") -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, counts = ? WHERE id = ?",
                (_now(), status, json.dumps(counts), run),
            )

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, kind, started, finished, status, pid, arguments, counts FROM runs "
            "ORDER BY id"
        ).fetchall()
        return [
            {
                "id": run,
                "kind": kind,
                "started": started,
                "finished": finished,
                "status": status,
                "pid": pid,
                "arguments": json.loads(arguments),
                "counts": json.loads(counts) if counts else None,
            }
            for run, kind, started, finished, status, pid, arguments, counts in rows
        ]

    def named_paths(self) -> list[str]:
        """Every path an `index` or `check --add` run was given, in order, each once."""
        named: dict[str, None] = {}
        for run in self.runs():
            paths = run["arguments"].get("paths") if isinstance(run["arguments"], dict) else None
            if run["kind"] in ("index", "check") and isinstance(paths, list):
                named.update((str(path), None) for path in paths)
        return list(named)

    # -- files -------------------------------------------------------------------------------

    def known_files(self) -> dict[str, KnownFile]:
        rows = self.db.execute("SELECT path, id, size, mtime, status FROM files")
        return {path: KnownFile(id, size, mtime, status) for path, id, size, mtime, status in rows}

    def unreadable_embeddings(self, *, check_digests: bool = False) -> set[str]:
        """Paths whose stored embedding is gone: its shard deleted, cut short below its slot (a
        disk error, a careless cleanup) or, with `check_digests`, its bytes changed (every
        file of that shard then counts). `index` embeds them again; `groups` skips them."""
        lost: set[str] = set()
        for shard, slots, _ in self._shard_damage(check_digests=check_digests):
            lost.update(
                found
                for (found,) in self.db.execute(
                    "SELECT path FROM files WHERE status = 'ok' AND shard = ? AND slot >= ?",
                    (shard, slots),
                )
            )
        return lost

    def health(self) -> CatalogHealth:
        """Check the database (SQLite's quick_check), each shard's length and digest, and the
        saved index: what `dedup-gpu catalog verify` shows."""
        database = self.quick_check()
        problems: list[ShardProblem] = []
        for shard, slots, problem in self._shard_damage(check_digests=True):
            (files,) = self.db.execute(
                "SELECT COUNT(*) FROM files WHERE status = 'ok' AND shard = ? AND slot >= ?",
                (shard, slots),
            ).fetchone()
            problems.append(ShardProblem(shard, str(self._shard_path(shard)), problem, files))
        unchecked = 0
        if self._has_shard_digests():
            (unchecked,) = self.db.execute(
                "SELECT COUNT(*) FROM shards WHERE digest IS NULL AND rows > 0"
            ).fetchone()
        else:
            (unchecked,) = self.db.execute("SELECT COUNT(*) FROM shards").fetchone()
        state = self.index_state
        index_missing = bool(state) and not (self.directory / str(state.get("file"))).exists()
        return CatalogHealth(database, problems, int(unchecked), index_missing)

    def quick_check(self) -> list[str]:
        """SQLite's `PRAGMA quick_check` findings: empty when the database is sound."""
        try:
            return quick_check_findings(self.db)
        except sqlite3.DatabaseError as error:
            return [str(error)]

    def _has_shard_digests(self) -> bool:
        return "digest" in {row[1] for row in self.db.execute("PRAGMA table_info(shards)")}

    def _shard_damage(self, *, check_digests: bool) -> list[tuple[int, int, str]]:
        """(shard, first unreadable slot, why) for each shard that cannot give back every row
        the files refer to."""
        if self.model is None:
            return []
        row_bytes = 2 * self.embedding_dim  # float16
        digests = self._has_shard_digests()
        recorded = {
            int(shard): (int(rows), digest)
            for shard, rows, digest in self.db.execute(
                "SELECT id, rows, digest FROM shards"
                if digests
                else "SELECT id, rows, NULL FROM shards"
            )
        }
        damaged: list[tuple[int, int, str]] = []
        used = self.db.execute(
            "SELECT shard, MAX(slot) FROM files WHERE status = 'ok' GROUP BY shard"
        ).fetchall()
        for shard, last_slot in used:
            if shard is None or last_slot is None:
                continue
            path = self._shard_path(int(shard))
            try:
                slots = path.stat().st_size // row_bytes
            except OSError:
                damaged.append((int(shard), 0, "missing"))
                continue
            rows, digest = recorded.get(int(shard), (0, None))
            if last_slot >= slots:
                reason = f"cut short: {slots} of {last_slot + 1} rows left"
                damaged.append((int(shard), slots, reason))
            elif check_digests and digest and _digest_of_rows(path, rows * row_bytes) != digest:
                reason = "its bytes changed since they were written (digest differs)"
                damaged.append((int(shard), 0, reason))
        return damaged

    def counts(self) -> dict[str, int]:
        rows = dict(self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status"))
        return {"images": rows.get("ok", 0), "errors": rows.get("error", 0)}

    def store(self, run: int, images: Sequence[StoredImage], embeddings: np.ndarray) -> None:
        """Commit one batch: embeddings first, durably, then the rows that point at them."""
        if not images:
            return
        first_slot = self._append_rows(run, embeddings)
        with self.transaction() as db:
            self._drop_paths(db, [catalog_key(image.file.path) for image in images])
            for offset, image in enumerate(images):
                cursor = db.execute(
                    "INSERT INTO files (path, size, mtime, digest, width, height, status, shard, "
                    "slot, run) VALUES (?, ?, ?, ?, ?, ?, 'ok', ?, ?, ?)",
                    (
                        catalog_key(image.file.path),
                        image.file.size,
                        image.file.mtime,
                        image.digest,
                        image.info.width,
                        image.info.height,
                        self._shard,
                        first_slot + offset,
                        run,
                    ),
                )
                if image.thumbnail is not None:
                    db.execute(
                        "INSERT INTO thumbnails (id, jpeg) VALUES (?, ?)",
                        (cursor.lastrowid, image.thumbnail),
                    )
            db.execute(
                "UPDATE shards SET rows = ?, digest = ? WHERE id = ?",
                (first_slot + len(images), self._shard_digest.hexdigest(), self._shard),
            )
            self._bump_generation()

    def store_errors(self, run: int, failures: Sequence[tuple[ImageFile, str]]) -> None:
        """Record files that could not be used, with their reason (replacing any embedding)."""
        if not failures:
            return
        with self.transaction() as db:
            dropped = self._drop_paths(db, [catalog_key(file.path) for file, _ in failures])
            db.executemany(
                "INSERT INTO files (path, size, mtime, status, error, run) "
                "VALUES (?, ?, ?, 'error', ?, ?)",
                [
                    (catalog_key(file.path), file.size, file.mtime, redacted(reason), run)
                    for file, reason in failures
                ],
            )
            if dropped:
                self._bump_generation()

    def forget(self, paths: Sequence[str]) -> int:
        """Remove `paths` (deleted from disk) from the catalog; returns how many were removed."""
        if not paths:
            return 0
        with self.transaction() as db:
            dropped = self._drop_paths(db, paths)
            if dropped:
                self._bump_generation()
        return len(paths)

    def _drop_paths(self, db: sqlite3.Connection, paths: Sequence[str]) -> int:
        """Delete the rows for `paths`; ids that had embeddings are queued for index removal."""
        dropped = 0
        for chunk in _chunks(list(paths), 500):
            marks = ",".join("?" * len(chunk))
            ids = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM files WHERE status = 'ok' AND path IN ({marks})", chunk
                )
            ]
            db.executemany("INSERT OR IGNORE INTO forgotten (id) VALUES (?)", [(i,) for i in ids])
            db.execute(f"DELETE FROM files WHERE path IN ({marks})", chunk)
            dropped += len(ids)
        return dropped

    def images(self) -> CatalogImages:
        rows = self.db.execute(
            "SELECT id, path, size, mtime, digest, width, height, shard, slot FROM files "
            "WHERE status = 'ok' ORDER BY id"
        ).fetchall()
        return CatalogImages(
            ids=np.array([row[0] for row in rows], dtype=np.int64),
            files=[ImageFile(path=row[1], size=row[2], mtime=row[3]) for row in rows],
            digests=[row[4] for row in rows],
            infos=[ImageInfo(width=row[5], height=row[6]) for row in rows],
            shards=np.array([row[7] for row in rows], dtype=np.int64),
            slots=np.array([row[8] for row in rows], dtype=np.int64),
        )

    def errors(self) -> list[FileError]:
        rows = self.db.execute(
            "SELECT path, error FROM files WHERE status = 'error' ORDER BY path"
        ).fetchall()
        return [FileError(path, error or "unusable") for path, error in rows]

    def files_with_digests(self, digests: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
        """Stored images by content hash: digest -> [(id, path)], for exact-copy lookups."""
        found: dict[str, list[tuple[int, str]]] = {}
        for chunk in _chunks(sorted(set(digests)), 500):
            marks = ",".join("?" * len(chunk))
            for file_id, path, digest in self.db.execute(
                f"SELECT id, path, digest FROM files WHERE status = 'ok' AND digest IN ({marks}) "
                "ORDER BY id",
                chunk,
            ):
                found.setdefault(digest, []).append((file_id, path))
        return found

    def paths_of(self, ids: Iterable[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in _chunks(sorted(set(ids)), 500):
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(f"SELECT id, path FROM files WHERE id IN ({marks})", chunk)
            )
        return found

    def thumbnail(self, file_id: int) -> bytes | None:
        row = self.db.execute("SELECT jpeg FROM thumbnails WHERE id = ?", (file_id,)).fetchone()
        return None if row is None else bytes(row[0])

    # -- embeddings --------------------------------------------------------------------------

    @property
    def embedding_dim(self) -> int:
        model = self.model
        if not model:
            raise CatalogError(f"catalog {self.directory} holds no embeddings yet")
        return int(model["embedding_dim"])

    def _shard_path(self, shard: int) -> Path:
        return shard_path(self.directory, shard)

    def _append_rows(self, run: int, embeddings: np.ndarray) -> int:
        """Append float16 rows to this process's shard and fsync; returns the first slot."""
        self._require_writer()
        if self._shard is None:
            with self.transaction() as db:
                cursor = db.execute("INSERT INTO shards (run) VALUES (?)", (run,))
            self._shard = int(cursor.lastrowid or 0)
            self._shard_rows = 0
            self._shard_digest = hashlib.blake2b(digest_size=16)
        rows = np.ascontiguousarray(embeddings, dtype=np.float16)
        path = self._shard_path(self._shard)
        data = rows.tobytes()
        with open(path, "ab") as handle:
            # A write that failed half-way earlier in this process must not shift the slots.
            handle.truncate(self._shard_rows * rows.shape[1] * 2)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._shard_digest.update(data)  # only once the rows are on disk
        first = self._shard_rows
        self._shard_rows += rows.shape[0]
        return first

    def embeddings(self, images: CatalogImages, rows: np.ndarray | None = None) -> np.ndarray:
        """float16 [len(rows), dim] embeddings of `images` (all of them when rows is None).

        Call inside `reading()` unless this process is the writer.
        """
        dim = self.embedding_dim
        rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), dim), dtype=np.float16)
        shards = images.shards[rows]
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            path = self._shard_path(int(shard))
            try:
                stored = np.memmap(path, dtype=np.float16, mode="r")
            except (OSError, ValueError) as error:
                raise CatalogError(
                    f"catalog {self.directory}: cannot read {path}: {error}"
                ) from error
            stored = stored[: stored.size // dim * dim].reshape(-1, dim)
            slots = images.slots[rows[where]]
            if slots.size and slots.max() >= stored.shape[0]:
                raise CatalogError(f"catalog {self.directory}: {path} is shorter than recorded")
            out[where] = stored[slots]
            del stored
        return out

    def tidy(self) -> None:
        """After a run: forget empty shards, merge or rewrite shards that need it, and delete
        the files nothing refers to any more."""
        self.drop_empty_shards()
        self.compact_if_needed()
        self.collect_garbage()

    def compact_if_needed(self) -> bool:
        """Rewrite the live rows of shards that are mostly dead, and merge the small shards once
        there are too many, into one new shard; True if anything was rewritten. The big shards
        of a healthy catalog are left alone, so a `check --add` per upload stays cheap."""
        self._require_writer()
        stats = self.db.execute(
            "SELECT shards.id, shards.rows, COUNT(files.id) FROM shards "
            "LEFT JOIN files ON files.shard = shards.id AND files.status = 'ok' "
            "GROUP BY shards.id"
        ).fetchall()
        mostly_dead = {shard for shard, rows, live in stats if rows and live / rows < 0.5}
        small = {shard for shard, rows, _ in stats if rows < SMALL_SHARD_ROWS}
        chosen = mostly_dead | (small if len(stats) > MAX_SHARDS else set())
        if len(chosen) < 2 and not mostly_dead:
            return False
        images = self.images().without(self.unreadable_embeddings())  # lost rows stay lost
        rows = np.flatnonzero(np.isin(images.shards, list(chosen)))
        run = int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0])
        self._shard = None
        slots: list[int] = []
        for start in range(0, len(rows), 65536):
            block = rows[start : start + 65536]
            first = self._append_rows(run, self.embeddings(images, block))
            slots.extend(range(first, first + len(block)))
        with self.transaction() as db:
            db.executemany(
                "UPDATE files SET shard = ?, slot = ? WHERE id = ?",
                [
                    (self._shard, slot, file_id)
                    for slot, file_id in zip(slots, images.ids[rows].tolist(), strict=True)
                ],
            )
            if self._shard is not None:
                db.execute(
                    "UPDATE shards SET rows = ?, digest = ? WHERE id = ?",
                    (len(slots), self._shard_digest.hexdigest(), self._shard),
                )
            db.executemany("DELETE FROM shards WHERE id = ?", [(shard,) for shard in chosen])
        return True

    def collect_garbage(self) -> None:
        """Delete shard and index files nothing refers to, unless a reader is reading."""
        self._require_writer()
        try:
            readers = _Flock(self.directory / READ_LOCK, shared=False, wait=False)
        except BlockingIOError:
            return  # a reader may be mapping them; the next writer will clean up
        try:
            referenced = {int(row[0]) for row in self.db.execute("SELECT id FROM shards")}
            for path in (self.directory / SHARDS).glob("shard-*.f16"):
                try:
                    shard = int(path.stem.split("-")[1])
                except (IndexError, ValueError):
                    continue
                if shard not in referenced and shard != self._shard:
                    path.unlink(missing_ok=True)
            state = self.index_state or {}
            for path in self.directory.glob("index-*.faiss"):
                if path.name != state.get("file"):
                    path.unlink(missing_ok=True)
            for path in self.directory.glob(".index-*.tmp"):
                path.unlink(missing_ok=True)
        finally:
            readers.release()

    def drop_empty_shards(self) -> None:
        """Forget shard records (and files) that no stored embedding refers to any more."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM shards WHERE id NOT IN "
                "(SELECT DISTINCT shard FROM files WHERE shard IS NOT NULL) AND id != ?",
                (self._shard or -1,),
            )

    # -- the saved index ---------------------------------------------------------------------

    @property
    def index_state(self) -> dict[str, Any] | None:
        """{"file", "generation", "max_id", "kind", ...} of the saved FAISS index, if any."""
        return self.get_meta("index")

    def index_path(self, generation: int) -> Path:
        return self.directory / f"index-{generation:06d}.faiss"

    def record_index(self, state: dict[str, Any], max_id: int) -> None:
        with self.transaction() as db:
            self.set_meta("index", state)
            db.execute("DELETE FROM forgotten WHERE id <= ?", (max_id,))

    def forgotten_ids(self) -> np.ndarray:
        return np.array([row[0] for row in self.db.execute("SELECT id FROM forgotten")], np.int64)

    def search_index(
        self,
        images: CatalogImages | None,
        settings: SearchSettings,
        *,
        gpu: int | None = None,
        save: bool = False,
    ) -> SimilarityIndex:
        """A FAISS index over the stored images (ids = file ids): the saved one when it is
        current, the saved IVF index brought up to date when only some files changed, else a new
        one. `images` (None: read them only if the saved index will not do) are `self.images()`.
        With `save` (the writer), the result is saved for the next reader."""
        count = len(images) if images is not None else self.counts()["images"]
        kind = settings.resolve(count)
        state = self.index_state
        generation = self.generation
        saved = self.directory / state["file"] if state else None
        usable = (
            state is not None
            and saved is not None
            and state["kind"] == kind
            and saved.exists()
            and settings.nlist in (None, state.get("nlist"))
        )
        if usable and state["generation"] == generation:  # type: ignore[index]
            return SimilarityIndex.load(str(saved), nprobe=settings.nprobe, gpu=gpu)
        if images is None:
            images = self.images()
        if (
            usable
            and kind == "ivf"
            and len(images) <= RETRAIN_GROWTH * int(state.get("built_with_rows", 0))  # type: ignore[union-attr]
        ):
            built_with_rows = int(state["built_with_rows"])  # type: ignore[index]
            index = SimilarityIndex.load(str(saved), nprobe=settings.nprobe)
            index.remove(self.forgotten_ids())
            new_rows = np.flatnonzero(images.ids > int(state["max_id"]))  # type: ignore[index]
            for start in range(0, len(new_rows), 65536):
                block = new_rows[start : start + 65536]
                index.add(self.embeddings(images, block), images.ids[block])
        else:
            built_with_rows = len(images)
            index = SimilarityIndex.build(
                self.embeddings(images), images.ids, settings=settings, gpu=gpu
            )
        if save:
            path = self.index_path(generation)
            index.save(str(path))
            max_id = int(images.ids.max(initial=0))
            self.record_index(
                {
                    **index.describe(),
                    "file": path.name,
                    "generation": generation,
                    "max_id": max_id,
                    "built_with_rows": built_with_rows,
                },
                max_id,
            )
        return index


def shard_path(directory: Path, shard: int) -> Path:
    """Where shard number `shard` of the catalog in `directory` keeps its rows."""
    return directory / SHARDS / f"shard-{shard:06d}.f16"


def repair_hint(directory: str | os.PathLike[str]) -> str:
    return (
        f"dedup-gpu catalog repair --catalog {directory} keeps what can be read and embeds "
        "the rest again"
    )


def refuse_damaged(store: Catalog) -> None:
    """Raise CatalogDamagedError when SQLite's quick_check finds the database damaged: a
    writer must not build on it (rows it cannot read would be forgotten or duplicated)."""
    found = store.quick_check()
    if found:
        more = f" (and {len(found) - 1} more findings)" if len(found) > 1 else ""
        raise CatalogDamagedError(
            f"catalog {store.directory} is damaged: {found[0]}{more}",
            hint=repair_hint(store.directory),
        )


def ensure_same_model(recorded: dict[str, Any], identity: dict[str, Any], where: str) -> None:
    """Raise CatalogModelMismatchError naming what differs between two model identities."""
    differences = [
        f"{key} {recorded.get(key)!r} here, {identity.get(key)!r} in this run"
        for key in sorted(set(recorded) | set(identity))
        if recorded.get(key) != identity.get(key)
    ]
    if differences:
        raise CatalogModelMismatchError(
            f"catalog {where} was built with model {recorded.get('name')!r}; its embeddings "
            f"cannot be mixed with this run's ({'; '.join(differences)})",
            hint=f"use --model {recorded.get('name')} (the catalog's model), or another --catalog",
        )


def model_identity(spec: Any, weights_sha256: str | None) -> dict[str, Any]:
    """What makes two runs' embeddings comparable: the model, its weights and preprocessing."""
    return {
        "name": spec.name,
        "family": spec.family,
        "arch": spec.arch,
        "pretrained": spec.pretrained,
        "onnx_model": spec.onnx_model,
        "weights_sha256": weights_sha256,
        "input_size": spec.input_size,
        "embedding_dim": spec.embedding_dim,
        "mean": list(spec.mean) if spec.mean else None,
        "std": list(spec.std) if spec.std else None,
        "resize": "whole frame, bilinear, EXIF-oriented",
    }


def _digest_of_rows(path: Path, length: int) -> str:
    """BLAKE2b (as `_append_rows` keeps it) of the first `length` bytes of a shard."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as handle:
            while length > 0 and (chunk := handle.read(min(length, 1 << 22))):
                digest.update(chunk)
                length -= len(chunk)
    except OSError as error:
        return f"unreadable: {error}"
    return digest.hexdigest()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
