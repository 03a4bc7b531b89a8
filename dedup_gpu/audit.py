"""Storage audit of a saved report: how much removing the duplicates would free, where, and in
which formats, with an optional yearly cost at a given storage price.

A gigabyte here is 10^9 bytes, the unit cloud storage is priced in (not 2^30).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .errors import BadArgumentError
from .report import ReportedFile, SavedReport, human_bytes

BYTES_PER_GB = 1_000_000_000
GB_DEFINITION = "1 GB = 10^9 bytes"
ROOT_FOLDER = "."  # files directly in the common root
NO_EXTENSION = "(none)"
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class AuditRow:
    """Duplicates under one top-level folder or of one format."""

    name: str
    duplicates: int
    reclaimable_bytes: int
    share: float  # of all reclaimable bytes, 0 to 1
    yearly_cost: float | None  # None when no price was given

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duplicates": self.duplicates,
            "reclaimable_bytes": self.reclaimable_bytes,
            "share": self.share,
            "yearly_cost": self.yearly_cost,
        }


@dataclass(frozen=True)
class Audit:
    report: str
    report_created: str
    root: str  # common folder of every file in a group; by_folder names are relative to it
    groups: int
    files_in_groups: int
    duplicates: int
    exact_duplicates: int
    near_duplicates: int
    reclaimable_bytes: int
    by_folder: tuple[AuditRow, ...]
    by_format: tuple[AuditRow, ...]
    price_per_gb_month: float | None
    currency: str
    yearly_cost: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "report_created": self.report_created,
            "root": self.root,
            "totals": {
                "groups": self.groups,
                "files_in_groups": self.files_in_groups,
                "duplicates": self.duplicates,
                "exact_duplicates": self.exact_duplicates,
                "near_duplicates": self.near_duplicates,
                "reclaimable_bytes": self.reclaimable_bytes,
                "yearly_cost": self.yearly_cost,
            },
            "price_per_gb_month": self.price_per_gb_month,
            "currency": self.currency,
            "gb": GB_DEFINITION,
            "by_folder": [row.to_dict() for row in self.by_folder],
            "by_format": [row.to_dict() for row in self.by_format],
        }


def yearly_cost(size: int, price_per_gb_month: float) -> float:
    return size / BYTES_PER_GB * price_per_gb_month * 12


def audit_report(
    report: SavedReport, *, price_per_gb_month: float | None = None, currency: str = "USD"
) -> Audit:
    price = _check_price(price_per_gb_month)
    currency = _check_currency(currency)
    duplicates = [member for group in report.groups for member in group.duplicates]
    every_path = [group.keep.path for group in report.groups] + [d.path for d in duplicates]
    root = _common_root(every_path)
    total = sum(member.bytes for member in duplicates)
    exact = sum(1 for member in duplicates if member.exact)
    return Audit(
        report=report.path,
        report_created=report.created,
        root=root,
        groups=len(report.groups),
        files_in_groups=len(every_path),
        duplicates=len(duplicates),
        exact_duplicates=exact,
        near_duplicates=len(duplicates) - exact,
        reclaimable_bytes=total,
        by_folder=_rows(duplicates, lambda member: _top_folder(member.path, root), total, price),
        by_format=_rows(duplicates, lambda member: _extension(member.path), total, price),
        price_per_gb_month=price,
        currency=currency,
        yearly_cost=None if price is None else yearly_cost(total, price),
    )


def _check_price(price: float | None) -> float | None:
    if price is None:
        return None
    try:
        value = float(price)
    except (TypeError, ValueError) as error:
        raise BadArgumentError(
            f"price per GB-month {price!r} is not a number", hint="for example 0.023"
        ) from error
    if not math.isfinite(value) or value < 0:
        raise BadArgumentError(
            f"price per GB-month must be a finite number of 0 or more, not {price!r}",
            hint="for example --price-per-gb-month 0.023",
        )
    return value


def _check_currency(currency: str) -> str:
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if not _CURRENCY.fullmatch(code):
        raise BadArgumentError(
            f"currency {currency!r} is not a three-letter code",
            hint="use an ISO 4217 code such as USD, EUR or HKD",
        )
    return code


def _common_root(paths: list[str]) -> str:
    if not paths:
        return ""
    try:
        return os.path.commonpath([os.path.dirname(path) for path in paths])
    except ValueError:
        # absolute and relative paths mixed, or different drives: no shared root to strip
        return ""


def _top_folder(path: str, root: str) -> str:
    relative = os.path.relpath(path, root) if root else path
    parts = os.path.normpath(relative).split(os.sep)
    return parts[0] if len(parts) > 1 else ROOT_FOLDER


def _extension(path: str) -> str:
    extension = os.path.splitext(os.path.basename(path))[1]
    return extension[1:].lower() if len(extension) > 1 else NO_EXTENSION


def _rows(
    duplicates: Iterable[ReportedFile], key: Any, total: int, price: float | None
) -> tuple[AuditRow, ...]:
    counts: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for member in duplicates:
        name = key(member)
        counts[name] = counts.get(name, 0) + 1
        sizes[name] = sizes.get(name, 0) + member.bytes
    rows = [
        AuditRow(
            name=name,
            duplicates=counts[name],
            reclaimable_bytes=sizes[name],
            share=sizes[name] / total if total else 0.0,
            yearly_cost=None if price is None else yearly_cost(sizes[name], price),
        )
        for name in counts
    ]
    return tuple(sorted(rows, key=lambda row: (-row.reclaimable_bytes, row.name)))


# Terminal output


def _money(value: float | None, currency: str) -> str:
    return "" if value is None else f"{value:,.2f} {currency}"


def audit_table(audit: Audit) -> list[Table]:
    """The totals, then reclaimable space by top-level folder and by format."""
    priced = audit.price_per_gb_month is not None
    totals = Table(title=f"dedup-gpu audit of {escape(audit.report)}", show_header=False)
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("duplicate groups", f"{audit.groups:,}")
    totals.add_row("files in groups", f"{audit.files_in_groups:,}")
    totals.add_row(
        "duplicates",
        f"{audit.duplicates:,} ({audit.exact_duplicates:,} exact, {audit.near_duplicates:,} near)",
    )
    totals.add_row(
        "reclaimable", f"{human_bytes(audit.reclaimable_bytes)} ({audit.reclaimable_bytes:,} B)"
    )
    if priced:
        totals.add_row(
            "storage price",
            f"{audit.price_per_gb_month:g} {audit.currency} per GB-month ({GB_DEFINITION})",
        )
        totals.add_row("yearly cost of the duplicates", _money(audit.yearly_cost, audit.currency))
    tables = [totals]
    for title, label, rows in (
        (
            f"by top-level folder under {escape(audit.root or '(no common folder)')}",
            "folder",
            audit.by_folder,
        ),
        ("by format", "format", audit.by_format),
    ):
        table = Table(title=title)
        table.add_column(label)
        table.add_column("duplicates", justify="right")
        table.add_column("reclaimable", justify="right")
        table.add_column("share", justify="right")
        if priced:
            table.add_column(f"per year ({audit.currency})", justify="right")
        for row in rows:
            # Text, not a str: a folder named like "[red]" is a name, not rich markup
            cells: list[Text | str] = [
                Text(row.name),
                f"{row.duplicates:,}",
                human_bytes(row.reclaimable_bytes),
                f"{row.share:.1%}",
            ]
            if priced:
                cells.append(_money(row.yearly_cost, audit.currency))
            table.add_row(*cells)
        tables.append(table)
    return tables


def print_audit(audit: Audit, console: Console) -> None:
    for table in audit_table(audit):
        console.print(table)
