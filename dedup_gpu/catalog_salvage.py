"""Rebuild a damaged catalog database from every row SQLite can still read.

SQLite has no recovery API in Python's sqlite3 (the shell's `.recover` is not a library call),
so rows are copied table by table in rowid ranges; a range that fails to read is split in two
until the unreadable rows are pinned down, so one bad page costs only the rows on it. The
damaged file is kept beside the new one, never deleted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .catalog import DATABASE, FORMAT_VERSION, SCHEMA, shard_path, take_writer_lock

# Tables in the order they are copied; each keeps its rowid (ids that shards and rows share).
TABLES = ("meta", "runs", "shards", "files", "thumbnails", "forgotten")
_RANGE = 4096  # rows read per query while all is well
_MAX_FAILED_READS = 4096  # per table: a table whose every page fails is given up on


@dataclass
class Salvage:
    """What a salvage kept and lost, table by table."""

    damaged_copy: str  # where the damaged database was moved
    kept: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)  # rows known lost (ranges that failed)
    unreadable_tables: list[str] = field(default_factory=list)  # nothing could be read
    model_lost: bool = False  # the model record was lost: every embedding was dropped


def salvage_database(directory: Path) -> Salvage:
    """Copy the readable rows of `directory`'s catalog.db into a new database that takes its
    place; the damaged file (and its -wal and -shm) is renamed `catalog.db.damaged-<time>`.
    The saved search index is dropped from the new database (rebuilt on the next run)."""
    database = directory / DATABASE
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = directory / f"{DATABASE}.damaged-{stamp}"
    building = directory / f".{DATABASE}.salvage.tmp"
    lock = take_writer_lock(directory)
    try:
        building.unlink(missing_ok=True)
        target = sqlite3.connect(building, isolation_level=None)
        target.executescript(SCHEMA)
        result = Salvage(damaged_copy=str(aside))
        source = _open_damaged(database)
        try:
            target.execute("BEGIN")
            for table in TABLES:
                _copy_table(source, target, table, result)
            _make_consistent(target, directory, result)
            target.execute("COMMIT")
        finally:
            if source is not None:
                source.close()
        target.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{database}{suffix}"):
                os.replace(f"{database}{suffix}", f"{aside}{suffix}")
        os.replace(building, database)
        return result
    finally:
        building.unlink(missing_ok=True)
        lock.release()


def _make_consistent(target: sqlite3.Connection, directory: Path, result: Salvage) -> None:
    """Mend what lost rows leave behind: the format and generation, shard records that files
    still point at (so their rows are not collected as garbage), thumbnails of lost files, and
    the saved search index (its list of forgotten ids may be gone; it is rebuilt)."""
    meta = dict(target.execute("SELECT key, value FROM meta"))
    now = json.dumps(datetime.now(timezone.utc).isoformat(timespec="seconds"))
    for key, value in (("format", str(FORMAT_VERSION)), ("created", now), ("generation", "0")):
        if key not in meta:
            target.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
    generation = _parsed(meta.get("generation"))
    generation = generation + 1 if isinstance(generation, int) else 1
    target.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(generation),))
    target.execute("DELETE FROM meta WHERE key = 'index'")
    model = _parsed(meta.get("model"))
    if not (isinstance(model, dict) and isinstance(model.get("embedding_dim"), int)):
        # Embeddings of an unknown model cannot be compared with anything: index again.
        result.model_lost = True
        target.execute("DELETE FROM files WHERE status = 'ok'")
        target.execute("DELETE FROM shards")
    else:
        row_bytes = 2 * int(model["embedding_dim"])
        recorded = {row[0] for row in target.execute("SELECT id FROM shards")}
        used = [row[0] for row in target.execute("SELECT DISTINCT shard FROM files")]
        for shard in used:
            if shard is None or shard in recorded:
                continue
            path = shard_path(directory, int(shard))
            rows = path.stat().st_size // row_bytes if path.exists() else 0
            target.execute(
                "INSERT INTO shards (id, run, rows) VALUES (?, 0, ?)", (int(shard), rows)
            )
    target.execute("DELETE FROM thumbnails WHERE id NOT IN (SELECT id FROM files)")


def _parsed(value: str | None) -> object:
    try:
        return json.loads(value) if value is not None else None
    except ValueError:
        return None


def _open_damaged(database: Path) -> sqlite3.Connection | None:
    try:
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("SELECT name FROM sqlite_master").fetchall()
        return connection
    except sqlite3.DatabaseError:
        return None  # the schema itself is unreadable: nothing can be copied


def _copy_table(
    source: sqlite3.Connection | None, target: sqlite3.Connection, table: str, result: Salvage
) -> None:
    columns = [row[1] for row in target.execute(f"PRAGMA table_info({table})")]
    present: set[str] = set()
    last = None
    if source is not None:
        try:
            present = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
            last = source.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0]
        except sqlite3.DatabaseError:
            pass  # MAX(rowid) reads the rightmost page only: search the ids instead
    wanted = [column for column in columns if column in present]
    if source is None or not wanted:
        result.unreadable_tables.append(table)
        return
    select = f"SELECT rowid, {', '.join(wanted)} FROM {table} WHERE rowid >= ? AND rowid < ?"
    insert = (
        f"INSERT OR IGNORE INTO {table} (rowid, {', '.join(wanted)}) "
        f"VALUES ({', '.join('?' * (len(wanted) + 1))})"
    )
    # Ids are read in ranges of _RANGE up to the last one; without a known last id the whole
    # span is read at once. A range that fails is split in two until single ids remain.
    top = int(last) + 1 if last is not None else 1 << 40
    pending = [(0, top, last is not None), (-(1 << 62), 0, False)]  # (low, high, chunked)
    kept = lost = failed = 0
    while pending and failed <= _MAX_FAILED_READS:
        low, high, chunked = pending.pop()
        end = min(high, low + _RANGE) if chunked else high
        try:
            rows = source.execute(select, (low, end)).fetchall()
        except sqlite3.DatabaseError:
            failed += 1
            if end - low <= 1:
                lost += 1
            else:
                middle = (low + end) // 2
                pending += [(end, high, chunked)] if end < high else []
                pending += [(middle, end, False), (low, middle, False)]
            continue
        target.executemany(insert, rows)
        kept += len(rows)
        if end < high:
            pending.append((end, high, chunked))
    result.kept[table] = kept
    if lost or failed:
        result.lost[table] = lost
    if failed > _MAX_FAILED_READS and not kept:
        result.unreadable_tables.append(table)


__all__ = ["Salvage", "salvage_database"]
