"""Stage 8: act on a report safely: move, link or delete duplicates, and undo it.

Every change is written to a journal (JSON lines, flushed and fsynced) before it is made, and
made so that a crash leaves either the old state or the new one at each path: links and copies
are made under a temporary name and renamed into place. `undo_journal` reads the journal and
puts back every file whose bytes can be recovered, checking each against its recorded digest,
whether apply finished or was killed half way. A kept copy is never touched, and a duplicate
whose size, mtime or digest differs from the report's is skipped.

Only local files are changed. A duplicate that is an object-store object, a URL, a member of a
tar shard or a row of a table is skipped with the reason; so is a local duplicate whose kept
copy is not a local file, unless it is moved (a link needs a local target, and undo restores a
deleted copy from its kept copy). The export lists name those duplicates for other tools.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from . import storage
from .atomic import fsync_folder
from .errors import BadArgumentError, OutputError
from .exact import content_digest
from .lines import lines_of
from .report import ReportedFile, SavedReport
from .roots import has_parent_step, is_inside, outside_reason
from .storage import StorageError

JOURNAL_FORMAT = "dedup-gpu-journal"
JOURNAL_VERSION = 1


class Action(str, enum.Enum):
    move = "move"  # to --to, keeping the folder structure below the files' common folder
    hardlink = "hardlink"  # replace a byte-identical duplicate by a hard link to the kept copy
    symlink = "symlink"  # replace a byte-identical duplicate by a symbolic link to the kept copy
    delete = "delete"


@dataclass(frozen=True)
class Change:
    """One planned change to one duplicate."""

    action: str
    path: str  # the duplicate, absolute
    keep: str  # its group's kept copy, absolute
    target: str | None  # move: where it goes
    bytes: int
    mtime: float
    digest: str
    exact: bool  # byte-identical to the kept copy (so the kept copy can restore it)


@dataclass
class ApplyResult:
    action: str
    dry_run: bool
    journal: str | None
    planned: list[Change] = field(default_factory=list)
    done: list[Change] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason)


@dataclass
class UndoResult:
    restored: list[str] = field(default_factory=list)
    already_in_place: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason)


def plan_changes(
    report: SavedReport,
    action: Action | str,
    *,
    to: str | None = None,
    remove: frozenset[str] | None = None,
    allow_outside_roots: bool = False,
) -> tuple[list[Change], list[tuple[str, str]]]:
    """The changes `apply` would make, and the duplicates it would skip with the reason.

    `remove` (from reviewer decisions) limits the changes to those duplicates; without it every
    duplicate is planned. A duplicate (or, for links, its kept copy) outside the report's
    scanned roots is skipped unless `allow_outside_roots`; one whose path has a `..` step
    always is. Nothing is read here but the report and the files' metadata.
    """
    action = _action(action)
    if action is Action.move and not to:
        raise BadArgumentError("--action move needs --to DIR", hint="name the folder to move into")
    if action is not Action.move and to:
        raise BadArgumentError(f"--to applies to --action move, not {action.value}")
    kept = {storage.absolute(path) for path in report.kept_paths()}
    entries = [(duplicate, group.keep) for group in report.groups for duplicate in group.duplicates]
    root = _common_folder(
        [os.path.abspath(d.path) for d, _ in entries if storage.is_local(d.path)]
        + sorted(path for path in kept if storage.is_local(path))
    )
    # Resolved to real files: a kept copy may be a symlink to a duplicate, or a duplicate a
    # second name (hard link, symlink) for a kept copy. Removing it would remove the only bytes.
    kept_files = {found for path in kept if (found := _file_id(path)) is not None}
    changes: list[Change] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for duplicate, keep in entries:
        path = storage.absolute(duplicate.path)
        if remove is not None and duplicate.path not in remove and path not in remove:
            continue
        reason = (
            _not_local(duplicate.path, keep.path, action)
            or _outside(duplicate.path, keep.path, action, report.roots, allow_outside_roots)
            or _refusal(duplicate, path, kept, seen, action)
        )
        if not reason and _file_id(path) in kept_files:
            reason = "it is a kept copy under another name (a link to it, or it a link to it)"
        if reason:
            skipped.append((duplicate.path, reason))
            continue
        seen.add(path)
        target = None
        if action is Action.move:
            target = os.path.join(os.path.abspath(to or ""), os.path.relpath(path, root))
        changes.append(
            Change(
                action=action.value,
                path=path,
                keep=storage.absolute(keep.path),
                target=target,
                bytes=duplicate.bytes,
                mtime=duplicate.mtime,
                digest=duplicate.digest or "",
                exact=duplicate.exact,
            )
        )
    return changes, skipped


def _not_local(path: str, keep: str, action: Action) -> str:
    """Why a duplicate that is not a local file, or whose kept copy is not, is skipped."""
    if not storage.is_local(path):
        return (
            f"it is {storage.where(path)}; dedup-gpu only changes local files: use the export "
            "lists (dedup-gpu export) to remove it where it lives"
        )
    if action is not Action.move and not storage.is_local(keep):
        return (
            f"its kept copy {keep} is {storage.where(keep)}, not a local file: a link needs a "
            "local kept copy, and undo could not restore a deleted copy from it (use move)"
        )
    return ""


def _outside(path: str, keep: str, action: Action, roots: Sequence[str] | None, allow: bool) -> str:
    """Why a duplicate (or the kept copy a link would point at) is outside what may be touched."""
    checked = [(path, "it")]
    if action in (Action.hardlink, Action.symlink):
        checked.append((keep, "its kept copy"))
    for named, what in checked:
        reason = outside_reason(named, roots, what)
        if reason and (has_parent_step(named) or not allow):
            return reason
    return ""


def _refusal(
    duplicate: ReportedFile, path: str, kept: set[str], seen: set[str], action: Action
) -> str:
    if path in kept:
        return "it is the kept copy of a group: kept copies are never touched"
    if path in seen:
        return "listed twice in the report; acted on once"
    if not duplicate.digest:
        return "the report records no digest for it (made before version 5): scan again"
    if action in (Action.hardlink, Action.symlink) and not duplicate.exact:
        return (
            f"not byte-identical to the kept copy: a {action.value} would change what the path "
            "shows (use move, or review and delete)"
        )
    return ""


def apply_report(
    report: SavedReport,
    action: Action | str,
    *,
    to: str | None = None,
    remove: frozenset[str] | None = None,
    journal: str | None = None,
    yes: bool = False,
    allow_outside_roots: bool = False,
) -> ApplyResult:
    """Apply `action` to the report's duplicates: a dry run (nothing changes) unless `yes`.

    Each duplicate is checked against the report just before it is changed (size, mtime and
    BLAKE2b digest; for links and deletes the kept copy too) and skipped when it differs. The
    journal (default: beside the report) is created new, never overwritten; it records the
    folders apply acted under, outside which undo puts nothing back.
    """
    action = _action(action)
    changes, skipped = plan_changes(
        report, action, to=to, remove=remove, allow_outside_roots=allow_outside_roots
    )
    result = ApplyResult(action.value, dry_run=not yes, journal=None, skipped=skipped)
    result.planned = changes
    if not yes:
        return result
    journal = journal or default_journal_path(report.path)
    result.journal = journal
    keep_checked: dict[str, str] = {}
    with _Journal.create(journal, report, action, to, _acted_under(report, changes)) as log:
        for number, change in enumerate(changes):
            reason = _changed_since_report(change, keep_checked, action)
            try:
                status = os.stat(change.path)
            except OSError as error:
                reason = reason or f"cannot read it: {error.strerror or error}"
            if reason:
                result.skipped.append((change.path, reason))
                continue
            log.write(
                {
                    "type": "intent",
                    "seq": number,
                    **asdict(change),
                    "mode": status.st_mode & 0o7777,
                    "atime": status.st_atime,
                    # To the nanosecond: float seconds lose the last digits of a file's times.
                    "atime_ns": status.st_atime_ns,
                    "mtime_ns": status.st_mtime_ns,
                }
            )
            try:
                _perform(change)
            except OSError as error:
                result.skipped.append((change.path, _os_reason(error, change)))
                log.write({"type": "failed", "seq": number, "reason": _os_reason(error, change)})
                continue
            log.write({"type": "done", "seq": number})
            result.done.append(change)
        log.write({"type": "finished", "done": len(result.done), "skipped": len(result.skipped)})
    return result


def _acted_under(report: SavedReport, changes: Sequence[Change]) -> list[str]:
    """The report's local roots, and the folder of each change outside them (the user allowed
    those with --allow-outside-roots): what undo may write to."""
    roots = [root for root in report.roots or () if storage.is_local(root)]
    for change in changes:
        read_from = () if change.action == Action.move.value else (change.keep,)
        for path in (change.path, *read_from):
            if not is_inside(path, roots):
                roots.append(os.path.dirname(path))
    return roots


def default_journal_path(report_path: str) -> str:
    """`<report stem>.apply-<UTC time>.jsonl` beside the report."""
    stem, _ = os.path.splitext(os.path.abspath(report_path))
    return f"{stem}.apply-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"


def _changed_since_report(change: Change, keep_checked: dict[str, str], action: Action) -> str:
    reason = _differs(change.path, change.bytes, change.mtime, change.digest, "it")
    if reason:
        return reason
    if _same_file(change.path, change.keep):
        return "it is its kept copy under another name (a link to it, or it a link to it)"
    if storage.is_local(change.keep) and not os.path.exists(change.keep):
        # Moved or deleted since the report: this duplicate may now be the only copy here.
        return f"its kept copy {change.keep} no longer exists"
    if action is not Action.move and change.exact:
        # Undo restores an exact duplicate from the kept copy, so that copy must hold its bytes.
        if change.keep not in keep_checked:
            keep_checked[change.keep] = _digest_or_reason(change.keep)
        if keep_checked[change.keep] != change.digest:
            return f"its kept copy {change.keep} no longer holds the same bytes"
    if action is Action.move and change.target and os.path.lexists(change.target):
        return f"{change.target} already exists; nothing is overwritten"
    return ""


def _differs(path: str, size: int, mtime: float, digest: str, name: str) -> str:
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return f"{name} no longer exists"
    except OSError as error:
        return f"cannot read {name}: {error.strerror or error}"
    if not os.path.isfile(path) or os.path.islink(path):
        return f"{name} is no longer a regular file"
    if status.st_size != size:
        return f"{name} changed since the report: {status.st_size} bytes, not {size}"
    if abs(status.st_mtime - mtime) > 1e-3:
        return "it was modified since the report (mtime differs)"
    if _digest_or_reason(path) != digest:
        return "its content changed since the report (digest differs)"
    return ""


def _digest_or_reason(path: str) -> str:
    try:
        return content_digest(path)
    except StorageError as error:
        return f"unreadable: {error}"
    except OSError as error:
        return f"unreadable: {error.strerror or error}"


def _perform(change: Change) -> None:
    if change.action == Action.move.value:
        assert change.target is not None
        _move(change.path, change.target)
    elif change.action == Action.hardlink.value:
        _replace_with(change.path, lambda temp: os.link(change.keep, temp))
    elif change.action == Action.symlink.value:
        _replace_with(change.path, lambda temp: os.symlink(change.keep, temp))
    else:
        os.unlink(change.path)
        fsync_folder(os.path.dirname(change.path))


def _move(source: str, target: str) -> None:
    """Rename, or across filesystems copy (fsynced, digest-checked by the caller's records) and
    then remove the source: the target exists in full before the source goes."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "the target already exists", target)
    try:
        os.link(source, target)  # fails rather than overwrite, unlike rename
        os.unlink(source)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        _replace_with(target, lambda temp: _synced_copy(source, temp), must_not_exist=True)
        os.unlink(source)
    fsync_folder(os.path.dirname(target))
    fsync_folder(os.path.dirname(source))


def _replace_with(path: str, make: Any, *, must_not_exist: bool = False) -> None:
    """Make the replacement under a temporary name beside `path`, then rename it over `path`
    (with `must_not_exist`, only if nothing has appeared there meanwhile)."""
    temp = _temp_name(path)
    try:
        make(temp)
        if must_not_exist and os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "the target already exists", path)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)  # gone after a successful rename; a partial copy otherwise
    fsync_folder(os.path.dirname(path))


def _synced_copy(source: str, temp: str, mode: int | None = None) -> None:
    shutil.copy2(source, temp)
    if mode is not None:
        os.chmod(temp, mode)
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())


def _temp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.dedup-gpu-{secrets.token_hex(4)}.tmp")


def _os_reason(error: OSError, change: Change) -> str:
    if error.errno == errno.EXDEV and change.action == Action.hardlink.value:
        return (
            f"cannot hard-link across filesystems ({change.path} and its kept copy "
            f"{change.keep} are on different devices): use --action symlink or move"
        )
    return f"{change.action} failed: {error.strerror or error}"


# Undo


def undo_journal(journal: str, *, allow_outside_roots: bool = False) -> UndoResult:
    """Put back every file the journal records as changed (or about to be), byte for byte.

    Safe to run twice, and after a crash of apply or of undo itself: each file's state is
    looked at before anything is done to it. The journal is untrusted input: an entry that is
    malformed, has a `..` step, or (unless `allow_outside_roots`) lies outside the folders its
    apply acted under (the header's roots, and --to for a move's copies) is not acted on.
    """
    header, intents = _read_journal(journal)
    result = UndoResult()
    temporaries = _Temporaries()
    for entry in reversed(intents):
        path = entry.get("path")
        problem = _untrusted(entry, header, allow_outside_roots)
        if problem:
            result.failed.append((str(path), problem))
            continue
        try:
            state = _restore(entry, temporaries)
        except OSError as error:
            result.failed.append((path, f"cannot restore: {error.strerror or error}"))
            continue
        if state == "restored":
            result.restored.append(path)
        elif state == "in place":
            result.already_in_place.append(path)
        else:
            result.failed.append((path, state))
    try:
        with open(journal, "a", encoding="utf-8", errors="backslashreplace") as handle:
            _write_line(
                handle,
                {
                    "type": "undone",
                    "at": _now(),
                    "restored": len(result.restored),
                    "failed": len(result.failed),
                },
            )
    except OSError as error:
        raise OutputError(
            f"files were restored, but the journal {journal} could not record it: "
            f"{error.strerror or error}",
            hint="undo can be run again safely",
        ) from error
    return result


def _untrusted(entry: dict[str, Any], header: dict[str, Any], allow: bool) -> str:
    """Why undo must not act on a journal entry, or ""."""
    fields = {"path": str, "keep": str, "digest": str, "action": str, "exact": bool}
    if not all(isinstance(entry.get(name), kind) for name, kind in fields.items()) or (
        entry["action"] not in {action.value for action in Action}
        or not isinstance(entry.get("target"), str | None)
        or (entry["action"] == Action.move.value and not entry.get("target"))
    ):
        return "its journal entry is malformed; nothing done"
    roots = header.get("roots")
    roots = roots if isinstance(roots, list) and all(isinstance(r, str) for r in roots) else None
    to = header.get("to")
    checked = [(entry["path"], "it", roots)]
    if entry["action"] == Action.move.value:
        checked.append((entry["target"], "its moved copy", [to] if isinstance(to, str) else None))
    else:
        checked.append((entry["keep"], "its kept copy", roots))
    for path, what, under in checked:
        reason = outside_reason(path, under, what, kind="journal")
        if reason and (has_parent_step(path) or not allow):
            return reason
    return ""


def _restore(entry: dict[str, Any], temporaries: _Temporaries) -> str:
    """'restored', 'in place', or a one-line reason it could not be."""
    path, digest = entry["path"], entry["digest"]
    for beside in (path, entry.get("target") or ""):
        if beside:
            _remove_leftover_temporaries(temporaries.beside(beside), entry)
    if _holds(path, digest) and not os.path.islink(path) and not _same_file(path, entry["keep"]):
        if entry["action"] == Action.move.value:
            target = entry["target"]
            if target and _holds(target, digest):
                # Apply was stopped between making the target (link or copy) and removing the
                # source; the target did not exist before (apply checks), so it is ours.
                os.unlink(target)
        return "in place"
    if entry["action"] == Action.move.value:
        target = entry["target"]
        if not target or not _holds(target, digest):
            return f"its moved copy {target} is missing or changed; nothing restored"
        if os.path.lexists(path):
            return f"{path} exists with other content; left as it is"
        _move(target, path)
    else:
        source = _source_of(entry)
        if source is None:
            return (
                "deleted, and it was not byte-identical to its kept copy: its bytes are gone"
                if entry["action"] == Action.delete.value
                else f"its kept copy {entry['keep']} no longer holds its bytes"
            )
        if os.path.lexists(path) and not (os.path.islink(path) or _same_file(path, source)):
            return f"{path} exists with other content; left as it is"
        mode = entry.get("mode", 0o644)

        def copy_back(temp: str) -> None:
            _synced_copy(source, temp, mode)
            # Its own times before it is renamed into place: killed after the rename, undo left
            # the kept copy's mtime on it, and the next undo found it "in place".
            _set_recorded_times(temp, entry)

        _replace_with(path, copy_back)
    _set_recorded_times(path, entry)
    fsync_folder(os.path.dirname(path))
    return "restored" if _holds(path, digest) else "restored, but its digest differs"


def _set_recorded_times(path: str, entry: dict[str, Any]) -> None:
    times_ns = (entry.get("atime_ns"), entry.get("mtime_ns"))
    if all(isinstance(value, int) and not isinstance(value, bool) for value in times_ns):
        os.utime(path, ns=times_ns)  # type: ignore[arg-type]
    else:  # a journal written before times were kept to the nanosecond
        os.utime(path, (entry.get("atime", entry["mtime"]), entry["mtime"]))


# `_temp_name`'s names: the name of the file a temporary stands beside is group `name`.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.dedup-gpu-[0-9a-f]{8}\.tmp", re.DOTALL)


class _Temporaries:
    """apply's temporaries (`_temp_name`) found on disk, by the path they stand beside. Each
    folder is listed once per undo, not once per journal entry (a folder of many copies)."""

    def __init__(self) -> None:
        self._by_folder: dict[str, dict[str, list[str]]] = {}

    def beside(self, path: str) -> list[str]:
        folder, name = os.path.split(path)
        if folder not in self._by_folder:
            try:
                names = os.listdir(folder or ".")
            except OSError:
                names = []
            found: dict[str, list[str]] = {}
            for candidate in names:
                match = _TEMPORARY.fullmatch(candidate)
                if match:
                    found.setdefault(match["name"], []).append(os.path.join(folder, candidate))
            self._by_folder[folder] = found
        return self._by_folder[folder].get(name, [])


def _remove_leftover_temporaries(temporaries: list[str], entry: dict[str, Any]) -> None:
    """Remove what an apply killed mid-step left beside an entry's file or its move target: its
    `temporaries`, made as a link to the kept copy or a copy of the entry's bytes but not yet
    renamed, or an undo killed mid-copy left beside the file it was putting back. Only one that
    is provably ours (a symlink, the kept copy's inode, the entry's digest, or the start of the
    bytes a copy was made from: for a move the file or its moved copy, for an exact copy its
    kept copy) is removed; anything else of that name is left alone."""
    if entry["action"] == Action.move.value:
        copied_from = [entry["path"], entry["target"]]  # apply's copy into --to; undo's back
    else:
        copied_from = [entry["keep"]] if entry["exact"] else []  # undo's copy from the kept copy
    for temp in temporaries:
        if (
            os.path.islink(temp)
            or _same_file(temp, entry["keep"])
            or _holds(temp, entry["digest"])
            or any(_starts(source, temp) for source in copied_from)
        ):
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _starts(path: str, part: str) -> bool:
    """Whether the regular file `part` holds the first bytes of the regular file `path`."""
    try:
        if not (os.path.isfile(path) and os.path.isfile(part)) or os.path.islink(part):
            return False
        if os.path.getsize(part) > os.path.getsize(path):
            return False
        with open(path, "rb") as whole, open(part, "rb") as start:
            while chunk := start.read(1 << 20):
                if whole.read(len(chunk)) != chunk:
                    return False
        return True
    except OSError:
        return False


def _source_of(entry: dict[str, Any]) -> str | None:
    """Where an exact duplicate's bytes can be copied back from: its kept copy."""
    if entry["exact"] and _holds(entry["keep"], entry["digest"]):
        return entry["keep"]
    return None


def _holds(path: str, digest: str) -> bool:
    try:
        return os.path.isfile(path) and content_digest(path) == digest
    except OSError:
        return False


def _file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names, links followed; None when not a local file."""
    if not storage.is_local(path):
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _read_journal(journal: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The journal's header and its intent entries, after checking the header."""
    try:
        with open(journal, encoding="utf-8") as handle:
            lines = lines_of(handle.read())
    except OSError as error:
        raise BadArgumentError(
            f"cannot read the journal {journal}: {error.strerror or error}",
            hint="give the .jsonl file apply wrote (its path was printed)",
        ) from error
    entries = []
    for number, line in enumerate(lines, start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # a last line cut short by a crash: its change was never begun
            raise BadArgumentError(f"{journal} line {number} is not JSON") from None
    header = entries[0] if entries and isinstance(entries[0], dict) else {}
    if header.get("format") != JOURNAL_FORMAT:
        raise BadArgumentError(
            f"{journal} is not a dedup-gpu apply journal",
            hint="give the .jsonl file apply wrote",
        )
    if header.get("version") != JOURNAL_VERSION:
        raise BadArgumentError(f"{journal} is a version {header.get('version')} journal")
    intents = [e for e in entries if isinstance(e, dict) and e.get("type") == "intent"]
    return header, intents


class _Journal:
    """Append-only JSON lines, each flushed and fsynced before the change it announces."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    @classmethod
    @contextlib.contextmanager
    def create(
        cls, path: str, report: SavedReport, action: Action, to: str | None, roots: list[str]
    ) -> Iterator[_Journal]:
        try:
            # A name that is not valid UTF-8 is written as JSON's escape of its surrogates.
            handle = open(path, "x", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        except FileExistsError as error:
            raise OutputError(
                f"the journal {path} already exists", hint="give a new --journal path"
            ) from error
        except OSError as error:
            raise OutputError(
                f"cannot create the journal {path}: {error.strerror or error}"
            ) from error
        with handle:
            journal = cls(handle)
            journal.write(
                {
                    "format": JOURNAL_FORMAT,
                    "version": JOURNAL_VERSION,
                    "type": "apply",
                    "report": os.path.abspath(report.path),
                    "report_created": report.created,
                    "action": action.value,
                    "to": os.path.abspath(to) if to else None,
                    "roots": [os.path.abspath(root) for root in roots],
                    "started": _now(),
                    "pid": os.getpid(),
                }
            )
            fsync_folder(os.path.dirname(os.path.abspath(path)))
            yield journal

    def write(self, entry: dict[str, Any]) -> None:
        _write_line(self._handle, entry)


def _write_line(handle: IO[str], entry: dict[str, Any]) -> None:
    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError as error:
        choices = ", ".join(a.value for a in Action)
        raise BadArgumentError(
            f"unknown action {action!r}", hint=f"use one of {choices}"
        ) from error


def _common_folder(paths: list[str]) -> str:
    if not paths:
        return os.sep
    return (
        os.path.dirname(paths[0])
        if len(paths) == 1
        else os.path.commonpath([os.path.dirname(p) for p in paths])
    )


__all__ = [
    "Action",
    "ApplyResult",
    "Change",
    "UndoResult",
    "apply_report",
    "default_journal_path",
    "plan_changes",
    "undo_journal",
]
