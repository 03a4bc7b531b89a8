"""Stage 7: the versioned JSON report, its CSV twin, and the terminal summary.

Schema (version 7), documented in README.md:
{"version": 7, "tool": "dedup-gpu 0.1.0", "created": ISO-8601, "model": name,
 "model_info": {...}, "threshold": float, "keep_policy": str, "device": str, "roots": [...],
 "counts": {...}, "groups": [{"keep": {path, width, height, bytes, mtime, digest},
 "duplicates": [{path, matched, score, exact, verification, width, height, bytes, mtime,
 digest}]}],
 "verification": {mode, candidate_pairs, pairs_checked, pairs_rejected, pairs_unverified,
                  pairs_not_tried, rounds, seconds},
 "rejected_pairs": [{"paths": [a, b], "score", "verification": {...}}],
 "unverified_pairs": [{"paths": [a, b], "score", "verification": {...}}],
 "errors": [{"path", "reason"}], "timings_s": {...}, "search": {"kind", ...},
 "against": null or {"reference": [...], "reference_images", "query_images"}}
where each "verification" is {accepted, outcome, method, inliers, agreement, blocks, document,
reason}
(null on a duplicate when verification was off).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from . import __version__
from .atomic import write_text
from .csv_cells import text_cell
from .errors import ReportError
from .group import Group, Member
from .records import FileError, Verdict
from .redact import redacted_urls
from .terminal import shown

# 2: verification verdicts on duplicates, "verification", "rejected_pairs"
# 3: groups are centred on their most central image; each duplicate names the image it "matched"
# 4: "search" (exact or IVF, with nprobe); "against" for cross-set (leakage) reports
# 5: each file's "digest" (BLAKE2b-256 of its bytes), so actions can tell a file changed since
# 6: "unverified_pairs" (candidates too plain to decide: listed, never grouped); each verdict's
#    "outcome"; verification counts of candidates, rounds and pairs never tried
# 7: "roots": the folders scanned (roots.py), outside which apply acts only when told to
REPORT_VERSION = 7
OLDEST_READABLE_VERSION = 3


@dataclass(frozen=True)
class RejectedPair:
    """A candidate pair that verification did not group: turned down (a look-alike, another
    record) or, by its verdict's outcome, left unverified (too plain to decide either way)."""

    path_a: str
    path_b: str
    score: float
    verdict: Verdict


@dataclass
class Report:
    model: str
    model_info: dict[str, Any]
    threshold: float
    keep_policy: str
    device: str
    groups: list[Group]
    errors: list[FileError]
    counts: dict[str, int] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    rejected: list[RejectedPair] = field(default_factory=list)
    unverified: list[RejectedPair] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)  # the index: exact, or IVF and nprobe
    # Cross-set reports: only copies between the scanned set and this reference set.
    against: dict[str, Any] | None = None
    digests: dict[str, str] = field(default_factory=dict)  # path -> BLAKE2b-256 of its bytes
    roots: list[str] = field(default_factory=list)  # roots.covering_roots of what was read
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "tool": f"dedup-gpu {__version__}",
            "created": self.created,
            "model": self.model,
            "model_info": self.model_info,
            "threshold": self.threshold,
            "keep_policy": self.keep_policy,
            "device": self.device,
            "roots": self.roots,
            "counts": self.counts,
            "groups": [
                {
                    "keep": _kept(group.keep, self.digests),
                    "duplicates": [_duplicate(member, self.digests) for member in group.duplicates],
                }
                for group in self.groups
            ],
            "verification": self.verification,
            "rejected_pairs": [_pair(pair) for pair in self.rejected],
            "unverified_pairs": [_pair(pair) for pair in self.unverified],
            "errors": [asdict(error) for error in self.errors],
            "timings_s": {name: round(seconds, 3) for name, seconds in self.timings_s.items()},
            "search": self.search,
            "against": self.against,
        }


def _pair(pair: RejectedPair) -> dict[str, Any]:
    return {
        "paths": [pair.path_a, pair.path_b],
        "score": round(pair.score, 6),
        "verification": pair.verdict.to_dict(),
    }


def _kept(member: Member, digests: dict[str, str]) -> dict[str, Any]:
    return {
        "path": member.path,
        "width": member.width,
        "height": member.height,
        "bytes": member.bytes,
        "mtime": member.mtime,
        "digest": digests.get(member.path),
    }


def _duplicate(member: Member, digests: dict[str, str]) -> dict[str, Any]:
    return {
        "path": member.path,
        "matched": member.matched,
        "score": round(member.score, 6),
        "exact": member.exact,
        "verification": member.verdict.to_dict() if member.verdict else None,
        "width": member.width,
        "height": member.height,
        "bytes": member.bytes,
        "mtime": member.mtime,
        "digest": digests.get(member.path),
    }


def count_summary(
    groups: Sequence[Group],
    errors: Sequence[FileError],
    *,
    files_found: int,
    images_scanned: int,
    distinct_contents: int,
    aliases_skipped: int,
) -> dict[str, int]:
    duplicates = [member for group in groups for member in group.duplicates]
    return {
        "files_found": files_found,
        "images_scanned": images_scanned,
        "distinct_contents": distinct_contents,
        "groups": len(groups),
        "duplicates": len(duplicates),
        "exact_duplicates": sum(member.exact for member in duplicates),
        "near_duplicates": sum(not member.exact for member in duplicates),
        "reclaimable_bytes": sum(member.bytes for member in duplicates),
        "errors": len(errors),
        "aliases_skipped": aliases_skipped,
    }


def write_json(report: Report, path: str) -> None:
    data = redacted_urls(report.to_dict())  # credentials in URLs are never written
    write_text(path, lambda out: json.dump(data, out, indent=2, ensure_ascii=False))


class _RedactingWriter:
    """A csv writer whose rows have credentials in URLs redacted."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def writerow(self, row: Sequence[Any]) -> None:
        self.writer.writerow(redacted_urls(list(row)))


CSV_COLUMNS = ("group", "role", "path", "matched", "score", "exact", "width", "height", "bytes")


def write_csv(report: Report, path: str) -> None:
    """One row per file in a group: the kept copy (role=keep) then its duplicates; then, for each
    candidate pair left unverified, a row per image (group "unverified-N", role "unverified",
    `matched` the other image of the pair; sizes are not known there and are left empty)."""

    def write(out: Any) -> None:
        writer = _RedactingWriter(csv.writer(out))
        writer.writerow(CSV_COLUMNS)
        for number, group in enumerate(report.groups, start=1):
            keep = group.keep
            writer.writerow(
                [
                    number,
                    "keep",
                    text_cell(keep.path),
                    "",
                    "",
                    "",
                    keep.width,
                    keep.height,
                    keep.bytes,
                ]
            )
            for member in group.duplicates:
                writer.writerow(
                    [
                        number,
                        "duplicate",
                        text_cell(member.path),
                        text_cell(member.matched),
                        f"{member.score:.6f}",
                        str(member.exact).lower(),
                        member.width,
                        member.height,
                        member.bytes,
                    ]
                )
        for number, pair in enumerate(report.unverified, start=1):
            for path, other in ((pair.path_a, pair.path_b), (pair.path_b, pair.path_a)):
                writer.writerow(
                    [
                        f"unverified-{number}",
                        "unverified",
                        text_cell(path),
                        text_cell(other),
                        f"{pair.score:.6f}",
                        "false",
                        "",
                        "",
                        "",
                    ]
                )

    write_text(path, write)


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def summary_table(report: Report) -> Table:
    counts = report.counts
    table = Table(
        title=f"dedup-gpu: {report.model} on {report.device}, threshold {report.threshold:.3f}",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    scanned = counts.get("images_scanned", 0)
    rate = scanned / report.timings_s["total"] if report.timings_s.get("total") else 0.0
    rows = [
        ("images scanned", f"{scanned:,}"),
        ("duplicate groups", f"{counts.get('groups', 0):,}"),
        (
            "duplicates",
            f"{counts.get('duplicates', 0):,} "
            f"({counts.get('exact_duplicates', 0):,} exact, "
            f"{counts.get('near_duplicates', 0):,} near)",
        ),
        ("bytes freed by removing them", human_bytes(counts.get("reclaimable_bytes", 0))),
        *(
            [
                (
                    "copies across the sets",
                    f"{counts.get('duplicates', 0):,} of {report.against['query_images']:,} "
                    f"images copy one of {report.against['reference_images']:,} reference images",
                )
            ]
            if report.against
            else []
        ),
        ("skipped with errors", f"{counts.get('errors', 0):,}"),
        (
            "look-alike pairs rejected",
            f"{report.verification['pairs_rejected']:,} of "
            f"{report.verification['pairs_checked']:,} verified"
            if report.verification.get("mode") == "on"
            else "not verified (--verify off)",
        ),
        *(
            [
                (
                    "pairs left unverified (too plain to tell)",
                    f"{report.verification['pairs_unverified']:,} (listed in the report, not "
                    "grouped)",
                )
            ]
            if report.verification.get("pairs_unverified")
            else []
        ),
        ("time", f"{report.timings_s.get('total', 0.0):.1f} s ({rate:,.1f} images/s)"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def print_groups(report: Report, console: Console, limit: int = 10) -> None:
    """The first `limit` groups, largest first, then the errors (one line each)."""
    for number, group in enumerate(report.groups[:limit], start=1):
        console.print(
            f"[bold]group {number}[/]  keep [green]{shown(group.keep.path)}[/] "
            f"({group.keep.width}x{group.keep.height}, {human_bytes(group.keep.bytes)})",
            highlight=False,
            soft_wrap=True,
        )
        for member in group.duplicates:
            kind = "exact" if member.exact else f"{member.score:.3f}"
            console.print(f"    {kind:>6}  {shown(member.path)}", highlight=False, soft_wrap=True)
    if len(report.groups) > limit:
        console.print(f"... and {len(report.groups) - limit} more groups (see the report file)")
    for error in report.errors[:limit]:
        console.print(
            f"[yellow]skipped[/] {shown(error.path)}: {shown(error.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    if len(report.errors) > limit:
        console.print(f"... and {len(report.errors) - limit} more skipped files (see the report)")


# Reading a report back (review, audit, apply and export start from the JSON file)


@dataclass(frozen=True)
class ReportedFile:
    """One file of a saved report's group, as the report recorded it."""

    path: str
    bytes: int
    mtime: float
    width: int
    height: int
    digest: str | None  # None in reports older than version 5
    keep: bool  # the group's kept copy
    matched: str = ""  # duplicates: the image it was matched against
    score: float = 1.0  # duplicates: cosine against `matched` (1.0 when byte-identical)
    exact: bool = False  # duplicates: byte-identical to the kept copy
    verification: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReportedGroup:
    keep: ReportedFile
    duplicates: tuple[ReportedFile, ...]


@dataclass(frozen=True)
class ReportedPair:
    """A candidate pair a saved report lists as unverified: too plain to tell either way."""

    path_a: str
    path_b: str
    score: float
    reason: str


@dataclass(frozen=True)
class SavedReport:
    """A report file read back: its groups as typed records, the rest as parsed JSON."""

    path: str
    version: int
    created: str
    model: str
    threshold: float
    groups: tuple[ReportedGroup, ...]
    errors: tuple[FileError, ...]
    raw: dict[str, Any]
    unverified: tuple[ReportedPair, ...] = ()  # reports of version 6 and later
    roots: tuple[str, ...] | None = None  # reports of version 7 and later

    def kept_paths(self) -> set[str]:
        return {group.keep.path for group in self.groups}

    def images(self) -> list[tuple[str, int | None]]:
        """(path, size in bytes where recorded) of every image the report names."""
        named: list[tuple[str, int | None]] = []
        for group in self.groups:
            named += [(item.path, item.bytes) for item in (group.keep, *group.duplicates)]
        for pair in self.unverified:
            named += [(pair.path_a, None), (pair.path_b, None)]
        return named


def read_report(path: str) -> SavedReport:
    """Read a report written by `scan` or `groups` (version 3 or later); a missing, unreadable or
    malformed file raises ReportError naming what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError as error:
        raise ReportError(
            f"no report at {path}", hint="write one with: dedup-gpu scan FOLDER --out report.json"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read the report {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path} is not a JSON report (line {error.lineno}: {error.msg})",
            hint="give the report.json that scan or groups wrote",
        ) from error
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ReportError(
            f"{path} is not a dedup-gpu report (no list of groups)",
            hint="give the report.json that scan or groups wrote",
        )
    version = data.get("version")
    if not isinstance(version, int) or not OLDEST_READABLE_VERSION <= version <= REPORT_VERSION:
        raise ReportError(
            f"{path} is a version {version!r} report; this dedup-gpu reads versions "
            f"{OLDEST_READABLE_VERSION} to {REPORT_VERSION}",
            hint="make the report again with this version of dedup-gpu",
        )
    try:
        groups = tuple(
            ReportedGroup(
                keep=_reported(group["keep"], keep=True),
                duplicates=tuple(_reported(item, keep=False) for item in group["duplicates"]),
            )
            for group in data["groups"]
        )
        errors = tuple(
            FileError(str(item["path"]), str(item["reason"])) for item in data.get("errors", [])
        )
        unverified = tuple(
            ReportedPair(
                str(item["paths"][0]),
                str(item["paths"][1]),
                float(item["score"]),
                str((item.get("verification") or {}).get("reason", "")),
            )
            for item in data.get("unverified_pairs", [])
        )
        roots = data.get("roots")
        if roots is not None and not (
            isinstance(roots, list) and all(isinstance(root, str) for root in roots)
        ):
            raise TypeError("'roots' is not a list of paths")
    except (KeyError, TypeError, ValueError) as error:
        raise ReportError(
            f"{path} has a malformed entry ({type(error).__name__}: {error})",
            hint="make the report again; do not edit it by hand",
        ) from error
    return SavedReport(
        path=path,
        version=version,
        created=str(data.get("created", "")),
        model=str(data.get("model", "")),
        threshold=float(data.get("threshold", 0.0)),
        groups=groups,
        errors=errors,
        raw=data,
        unverified=unverified,
        roots=tuple(roots) if roots is not None else None,
    )


def _reported(item: dict[str, Any], *, keep: bool) -> ReportedFile:
    digest = item.get("digest")
    return ReportedFile(
        path=str(item["path"]),
        bytes=int(item["bytes"]),
        mtime=float(item["mtime"]),
        width=int(item["width"]),
        height=int(item["height"]),
        digest=str(digest) if digest is not None else None,
        keep=keep,
        matched="" if keep else str(item.get("matched", "")),
        score=1.0 if keep else float(item["score"]),
        exact=False if keep else bool(item["exact"]),
        verification=None if keep else item.get("verification"),
    )
