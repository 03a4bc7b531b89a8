"""Export a saved report as plain lists (keep.txt, remove.txt), CSV or Parquet, optionally
narrowed by the reviewer's decisions file from the review page.

Without decisions every duplicate is to be removed; with decisions a duplicate is removed only
when the reviewer listed it under "remove", so an unticked or unseen duplicate is kept.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from .atomic import write_file, write_text
from .csv_cells import text_cell
from .errors import BadArgumentError, OutputError
from .output_guard import refuse_overwriting_inputs
from .report import ReportedFile, SavedReport
from .review import DECISIONS_FORMAT, DECISIONS_VERSION  # the page writes them; we read them

COLUMNS = (
    "group",
    "action",
    "role",
    "path",
    "keep_path",
    "score",
    "exact",
    "bytes",
    "width",
    "height",
    "digest",
)


@dataclass(frozen=True)
class Decisions:
    """What a reviewer decided about a report's duplicates."""

    remove: frozenset[str]
    keep: frozenset[str]
    # (path, reason) for each "remove" entry that was not applied
    ignored: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FileAction:
    """One file of a group and what the export (or apply) does with it."""

    group: int  # 1-based, in report order
    file: ReportedFile
    keep_path: str
    remove: bool


@dataclass(frozen=True)
class ExportResult:
    keep_listed: int  # lines written to the keep list (0 when none was asked for)
    remove_listed: int
    rows: int  # rows written to each of the CSV and Parquet files asked for
    written: tuple[str, ...]  # the output paths, in the order written
    skipped: tuple[tuple[str, str], ...]  # (path, reason) left out of the text lists


def _bad_decisions(message: str) -> BadArgumentError:
    return BadArgumentError(
        message, hint="save the decisions again from the review page of this report"
    )


def read_decisions(path: str, report: SavedReport) -> Decisions:
    """Read a decisions file saved by the review page and check it belongs to `report`."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as error:
        raise _bad_decisions(f"no decisions file at {path}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise _bad_decisions(f"cannot read the decisions file {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise _bad_decisions(
            f"{path} is not a JSON decisions file (line {error.lineno}: {error.msg})"
        ) from error
    if not isinstance(data, dict) or data.get("format") != DECISIONS_FORMAT:
        raise _bad_decisions(f"{path} is not a dedup-gpu decisions file")
    if data.get("version") != DECISIONS_VERSION:
        raise _bad_decisions(
            f"{path} is a version {data.get('version')!r} decisions file; this dedup-gpu reads "
            f"version {DECISIONS_VERSION}"
        )
    if data.get("report_created") != report.created:
        raise _bad_decisions(
            f"decisions were made on another report (created {data.get('report_created')!r}), "
            f"not on {report.path} (created {report.created!r})"
        )
    lists = {}
    for name in ("remove", "keep"):
        value = data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _bad_decisions(f'{path}: "{name}" is not a list of paths')
        lists[name] = value
    kept_copies = report.kept_paths()
    duplicates = {member.path for group in report.groups for member in group.duplicates}
    keep = frozenset(lists["keep"])
    remove: set[str] = set()
    ignored: list[tuple[str, str]] = []
    for item in dict.fromkeys(lists["remove"]):  # first occurrence order, no repeats
        if item in kept_copies and item not in duplicates:
            ignored.append((item, "the kept copy of its group is never removed"))
        elif item not in duplicates:
            ignored.append((item, "not a duplicate in this report"))
        elif item in keep:
            # a contradiction; keeping is the choice that cannot lose a file
            ignored.append((item, 'also listed under "keep", so it is kept'))
        else:
            remove.add(item)
    return Decisions(remove=frozenset(remove), keep=keep, ignored=tuple(ignored))


def file_actions(report: SavedReport, decisions: Decisions | None = None) -> list[FileAction]:
    """Every file in a group, kept copy first, with whether it is to be removed."""
    actions = []
    for number, group in enumerate(report.groups, start=1):
        keep_path = group.keep.path
        actions.append(FileAction(number, group.keep, keep_path, remove=False))
        for member in group.duplicates:
            remove = decisions is None or member.path in decisions.remove
            actions.append(FileAction(number, member, keep_path, remove=remove))
    return actions


def _line_problem(path: str) -> str | None:
    if path.splitlines() != [path]:
        return "the path contains a line break, so it cannot be one line of a list"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "the path is not valid UTF-8"
    return None


def _row(action: FileAction) -> dict[str, Any]:
    member = action.file
    duplicate = not member.keep
    return {
        "group": action.group,
        "action": "remove" if action.remove else "keep",
        "role": "duplicate" if duplicate else "keep",
        "path": member.path,
        "keep_path": action.keep_path,
        "score": member.score if duplicate else None,
        "exact": member.exact if duplicate else None,
        "bytes": member.bytes,
        "width": member.width,
        "height": member.height,
        "digest": member.digest,
    }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return text_cell(value)
    return str(value)  # floats as repr: the shortest text that reads back to the same number


def _check_outputs(report: SavedReport, outputs: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    protected = os.path.realpath(report.path) if report.path else ""
    for output in outputs:
        real = os.path.realpath(output)
        if real == protected:
            raise BadArgumentError(
                f"{output} is the report itself; refusing to overwrite it",
                hint="name a new file for the export",
            )
        if real in seen:
            raise BadArgumentError(
                f"{seen[real]} and {output} are the same file", hint="give each output its own name"
            )
        try:
            mode = os.lstat(output).st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISDIR(mode):
            raise OutputError(f"cannot write {output}: it is a folder")
        if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            # a device or pipe would be replaced by the rename, not written to
            raise OutputError(f"cannot write {output}: it is not a regular file")
        seen[real] = output
    refuse_overwriting_inputs(outputs, report.images())


def _write_lines(path: str, lines: list[str]) -> None:
    write_text(path, lambda out: out.writelines(f"{line}\n" for line in lines))


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    def fill(out: IO[str]) -> None:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(row[column]) for column in COLUMNS])

    write_text(path, fill)


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow  # type: ignore[import-untyped]
        import pyarrow.parquet  # type: ignore[import-untyped]
    except ImportError as error:
        raise BadArgumentError(
            "writing Parquet needs pyarrow, which is not installed", hint="pip install pyarrow"
        ) from error
    return pyarrow, pyarrow.parquet


def _write_parquet(path: str, rows: list[dict[str, Any]]) -> None:
    pa, pq = _pyarrow()
    schema = pa.schema(
        [
            ("group", pa.int64()),
            ("action", pa.string()),
            ("role", pa.string()),
            ("path", pa.string()),
            ("keep_path", pa.string()),
            ("score", pa.float64()),
            ("exact", pa.bool_()),
            ("bytes", pa.int64()),
            ("width", pa.int64()),
            ("height", pa.int64()),
            ("digest", pa.string()),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)

    def write(temporary: str) -> None:
        try:
            pq.write_table(table, temporary)
        except pa.ArrowException as error:
            raise OSError(str(error)) from error

    write_file(path, write)


def export_lists(
    report: SavedReport,
    *,
    keep_list: str | None = None,
    remove_list: str | None = None,
    csv_path: str | None = None,
    parquet_path: str | None = None,
    decisions: Decisions | None = None,
) -> ExportResult:
    """Write the outputs asked for. The keep list holds each group's kept copy and the
    duplicates the decisions keep; the remove list the duplicates to remove. CSV and Parquet
    hold one row per file in a group, with its action."""
    outputs = [p for p in (keep_list, remove_list, csv_path, parquet_path) if p is not None]
    if not outputs:
        raise BadArgumentError(
            "nothing to export", hint="give --keep-list, --remove-list, --csv or --parquet"
        )
    _check_outputs(report, outputs)
    if parquet_path is not None:
        _pyarrow()  # fail before writing anything else
    actions = file_actions(report, decisions)
    skipped: dict[str, str] = {}
    keep_lines: list[str] = []
    remove_lines: list[str] = []
    for action in actions:
        problem = _line_problem(action.file.path)
        if problem is not None:
            skipped[action.file.path] = problem
        else:
            (remove_lines if action.remove else keep_lines).append(action.file.path)
    written: list[str] = []
    keep_count = remove_count = 0
    if keep_list is not None:
        keep_lines = sorted(set(keep_lines))
        _write_lines(keep_list, keep_lines)
        keep_count = len(keep_lines)
        written.append(keep_list)
    if remove_list is not None:
        remove_lines = sorted(set(remove_lines))
        _write_lines(remove_list, remove_lines)
        remove_count = len(remove_lines)
        written.append(remove_list)
    rows = [_row(action) for action in actions]
    if csv_path is not None:
        _write_csv(csv_path, rows)
        written.append(csv_path)
    if parquet_path is not None:
        _write_parquet(parquet_path, rows)
        written.append(parquet_path)
    text_lists = keep_list is not None or remove_list is not None
    return ExportResult(
        keep_listed=keep_count,
        remove_listed=remove_count,
        rows=len(rows) if csv_path is not None or parquet_path is not None else 0,
        written=tuple(written),
        skipped=tuple(skipped.items()) if text_lists else (),
    )
