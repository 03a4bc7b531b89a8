"""User stories for `audit` and `export`: write a report the way scan does, run the real code on
it, and check what a user would see in the terminal, the JSON and the exported files."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dedup_gpu.audit import audit_report, audit_table, print_audit
from dedup_gpu.errors import BadArgumentError, OutputError, ReportError
from dedup_gpu.export import COLUMNS, Decisions, export_lists, read_decisions
from dedup_gpu.report import SavedReport, read_report

CREATED = "2025-01-02T03:04:05+00:00"
GB = 1_000_000_000
FORMAT = "dedup-gpu-decisions"


def kept(path: str, size: int) -> dict[str, Any]:
    return {"path": path, "width": 640, "height": 480, "bytes": size, "mtime": 1.0, "digest": None}


def duplicate(path: str, size: int, keep: str, *, exact: bool, score: float = 1.0) -> dict:
    return {
        "path": path,
        "matched": keep,
        "score": 1.0 if exact else score,
        "exact": exact,
        "verification": None,
        "width": 640,
        "height": 480,
        "bytes": size,
        "mtime": 2.0,
        "digest": "ab" * 32 if exact else None,
    }


def write_report(folder: Path, groups: list[dict], created: str = CREATED) -> Path:
    """A version 5 report as `dedup-gpu scan --out` writes it (only the fields readers use)."""
    path = folder / "report.json"
    data = {
        "version": 5,
        "tool": "dedup-gpu 0.1.0",
        "created": created,
        "model": "clip-vit-b32",
        "threshold": 0.92,
        "groups": groups,
        "errors": [],
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


# audit


@pytest.fixture
def photo_report(tmp_path: Path) -> SavedReport:
    """Two groups across the top folders trips/ and family/, in jpg and png; 7 GB reclaimable."""
    root = tmp_path / "photos"
    a, b = f"{root}/trips/a.jpg", f"{root}/family/b.png"
    groups = [
        {
            "keep": kept(a, 3 * GB),
            "duplicates": [
                duplicate(f"{root}/trips/a-copy.jpg", 3 * GB, a, exact=True),
                duplicate(f"{root}/family/a-small.jpg", GB // 2, a, exact=False, score=0.97),
            ],
        },
        {
            "keep": kept(b, 2 * GB),
            "duplicates": [
                duplicate(f"{root}/trips/b.png", 2 * GB, b, exact=True),
                duplicate(f"{root}/family/sub/b2.png", 3 * GB // 2, b, exact=False, score=0.95),
            ],
        },
    ]
    return read_report(str(write_report(tmp_path, groups)))


def test_audit_numbers_by_folder_and_format_with_a_price(photo_report: SavedReport) -> None:
    audit = audit_report(photo_report, price_per_gb_month=0.18, currency="hkd")

    assert audit.root == os.path.join(os.path.dirname(photo_report.path), "photos")
    assert (audit.groups, audit.files_in_groups, audit.duplicates) == (2, 6, 4)
    assert (audit.exact_duplicates, audit.near_duplicates) == (2, 2)
    assert audit.reclaimable_bytes == 7 * GB
    assert audit.currency == "HKD"
    # 7 GB * 0.18 HKD per GB-month * 12 months
    assert audit.yearly_cost == pytest.approx(15.12, abs=1e-9)

    folders = [(r.name, r.duplicates, r.reclaimable_bytes) for r in audit.by_folder]
    assert folders == [("trips", 2, 5 * GB), ("family", 2, 2 * GB)]
    assert [r.share for r in audit.by_folder] == pytest.approx([5 / 7, 2 / 7])
    assert [r.yearly_cost for r in audit.by_folder] == pytest.approx([10.8, 4.32], abs=1e-9)

    # equal bytes: ties are broken by name, so the order never depends on the report's order
    formats = [(r.name, r.duplicates, r.reclaimable_bytes) for r in audit.by_format]
    assert formats == [("jpg", 2, 3.5 * GB), ("png", 2, 3.5 * GB)]
    assert [r.share for r in audit.by_format] == [0.5, 0.5]
    assert [r.yearly_cost for r in audit.by_format] == pytest.approx([7.56, 7.56], abs=1e-9)


def test_audit_prints_tables_and_json(photo_report: SavedReport) -> None:
    audit = audit_report(photo_report, price_per_gb_month=0.18, currency="HKD")
    console = Console(record=True, width=200, color_system=None)
    print_audit(audit, console)
    text = console.export_text()
    for expected in ("trips", "family", "jpg", "png", "HKD", "15.12 HKD", "10.80 HKD", "7.0 GB"):
        assert expected in text
    assert "10^9 bytes" in text
    assert len(audit_table(audit)) == 3

    data = json.loads(json.dumps(audit.to_dict()))
    assert data["currency"] == "HKD"
    assert data["price_per_gb_month"] == 0.18
    assert data["gb"] == "1 GB = 10^9 bytes"
    assert data["totals"]["reclaimable_bytes"] == 7 * GB
    assert [row["name"] for row in data["by_folder"]] == ["trips", "family"]


def test_audit_without_a_price_has_no_cost(photo_report: SavedReport) -> None:
    audit = audit_report(photo_report)
    assert audit.yearly_cost is None and audit.price_per_gb_month is None
    assert all(row.yearly_cost is None for row in audit.by_folder + audit.by_format)
    console = Console(record=True, width=200, color_system=None)
    print_audit(audit, console)
    assert "per year" not in console.export_text()
    json.dumps(audit.to_dict())


def test_audit_root_files_extensionless_files_and_case(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    keep = f"{root}/x.JPG"
    report = read_report(
        str(
            write_report(
                tmp_path,
                [
                    {
                        "keep": kept(keep, 10),
                        "duplicates": [
                            duplicate(f"{root}/x-copy", 10, keep, exact=True),
                            duplicate(f"{root}/[red]/x.jpeg", 30, keep, exact=False, score=0.9),
                            duplicate(f"{root}/[red]/y.JPG", 20, keep, exact=False, score=0.9),
                        ],
                    }
                ],
            )
        )
    )
    audit = audit_report(report)
    assert [(r.name, r.reclaimable_bytes) for r in audit.by_folder] == [("[red]", 50), (".", 10)]
    assert [r.name for r in audit.by_format] == ["jpeg", "jpg", "(none)"]
    console = Console(record=True, width=200, color_system=None)
    print_audit(audit, console)
    assert "[red]" in console.export_text()  # a folder name, not rich markup


def test_audit_of_an_empty_report(tmp_path: Path) -> None:
    audit = audit_report(read_report(str(write_report(tmp_path, []))), price_per_gb_month=1.0)
    assert (audit.duplicates, audit.reclaimable_bytes, audit.yearly_cost) == (0, 0, 0.0)
    assert audit.by_folder == () and audit.by_format == ()


@pytest.mark.parametrize("price", [-0.01, float("nan"), float("inf"), "cheap"])
def test_audit_refuses_a_bad_price(photo_report: SavedReport, price: Any) -> None:
    with pytest.raises(BadArgumentError, match="price per GB-month") as caught:
        audit_report(photo_report, price_per_gb_month=price)
    assert caught.value.hint


@pytest.mark.parametrize("currency", ["HK", "HKDD", "H1D", "$", "", "hk$"])
def test_audit_refuses_a_bad_currency(photo_report: SavedReport, currency: str) -> None:
    with pytest.raises(BadArgumentError, match="three-letter") as caught:
        audit_report(photo_report, price_per_gb_month=0.18, currency=currency)
    assert "ISO 4217" in caught.value.hint


# export


@pytest.fixture
def small_report(tmp_path: Path) -> SavedReport:
    groups = [
        {
            "keep": kept("/p/a.jpg", 100),
            "duplicates": [
                duplicate("/p/a2.jpg", 100, "/p/a.jpg", exact=True),
                duplicate("/p/a3.jpg", 80, "/p/a.jpg", exact=False, score=0.9712345678),
            ],
        },
        {
            "keep": kept("/p/b.png", 50),
            "duplicates": [duplicate("/p/b2.png", 40, "/p/b.png", exact=False, score=0.95)],
        },
    ]
    return read_report(str(write_report(tmp_path, groups)))


def write_decisions(folder: Path, remove: list[str], keep: list[str], **changes: Any) -> str:
    data = {
        "format": "dedup-gpu-decisions",
        "version": 1,
        "report": str(folder / "report.json"),
        "report_created": CREATED,
        "remove": remove,
        "keep": keep,
        **changes,
    }
    path = folder / "decisions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_without_decisions_removes_every_duplicate(
    tmp_path: Path, small_report: SavedReport
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = export_lists(
        small_report,
        keep_list=str(out / "keep.txt"),
        remove_list=str(out / "remove.txt"),
        csv_path=str(out / "files.csv"),
        parquet_path=str(out / "files.parquet"),
    )
    assert (out / "keep.txt").read_text(encoding="utf-8") == "/p/a.jpg\n/p/b.png\n"
    assert (out / "remove.txt").read_text(encoding="utf-8") == "/p/a2.jpg\n/p/a3.jpg\n/p/b2.png\n"
    assert (result.keep_listed, result.remove_listed, result.rows) == (2, 3, 5)
    assert result.skipped == ()
    assert sorted(os.listdir(out)) == ["files.csv", "files.parquet", "keep.txt", "remove.txt"]

    rows = read_csv(out / "files.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["group"], r["action"], r["role"], r["path"]) for r in rows] == [
        ("1", "keep", "keep", "/p/a.jpg"),
        ("1", "remove", "duplicate", "/p/a2.jpg"),
        ("1", "remove", "duplicate", "/p/a3.jpg"),
        ("2", "keep", "keep", "/p/b.png"),
        ("2", "remove", "duplicate", "/p/b2.png"),
    ]
    assert rows[0]["score"] == "" and rows[0]["exact"] == ""
    assert rows[1]["exact"] == "true" and rows[1]["digest"] == "ab" * 32
    assert rows[2]["keep_path"] == "/p/a.jpg"
    assert float(rows[2]["score"]) == 0.9712345678
    assert rows[2]["bytes"] == "80"

    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    table = pyarrow_parquet.read_table(out / "files.parquet")
    assert table.column_names == list(COLUMNS)

    def as_csv(value: Any) -> str:
        if value is None:
            return ""
        return str(value).lower() if isinstance(value, bool) else str(value)

    parquet_rows = [{k: as_csv(v) for k, v in row.items()} for row in table.to_pylist()]
    assert parquet_rows == rows


def test_decisions_that_untick_a_duplicate_keep_it(
    tmp_path: Path, small_report: SavedReport
) -> None:
    path = write_decisions(tmp_path, remove=["/p/a2.jpg", "/p/b2.png"], keep=["/p/a3.jpg"])
    decisions = read_decisions(path, small_report)
    assert decisions == Decisions(
        remove=frozenset({"/p/a2.jpg", "/p/b2.png"}), keep=frozenset({"/p/a3.jpg"})
    )
    export_lists(
        small_report,
        keep_list=str(tmp_path / "keep.txt"),
        remove_list=str(tmp_path / "remove.txt"),
        csv_path=str(tmp_path / "files.csv"),
        decisions=decisions,
    )
    assert (tmp_path / "keep.txt").read_text() == "/p/a.jpg\n/p/a3.jpg\n/p/b.png\n"
    assert (tmp_path / "remove.txt").read_text() == "/p/a2.jpg\n/p/b2.png\n"
    row = next(r for r in read_csv(tmp_path / "files.csv") if r["path"] == "/p/a3.jpg")
    assert (row["action"], row["role"]) == ("keep", "duplicate")


def test_a_duplicate_the_reviewer_never_ticked_is_kept(
    tmp_path: Path, small_report: SavedReport
) -> None:
    decisions = read_decisions(write_decisions(tmp_path, ["/p/b2.png"], []), small_report)
    export_lists(small_report, remove_list=str(tmp_path / "remove.txt"), decisions=decisions)
    assert (tmp_path / "remove.txt").read_text() == "/p/b2.png\n"


def test_a_kept_copy_listed_for_removal_is_ignored(
    tmp_path: Path, small_report: SavedReport
) -> None:
    path = write_decisions(
        tmp_path,
        remove=["/p/a.jpg", "/p/a2.jpg", "/elsewhere.jpg", "/p/b2.png"],
        keep=["/p/b2.png"],
    )
    decisions = read_decisions(path, small_report)
    assert decisions.remove == {"/p/a2.jpg"}
    reasons = dict(decisions.ignored)
    assert list(reasons) == ["/p/a.jpg", "/elsewhere.jpg", "/p/b2.png"]
    assert "kept copy" in reasons["/p/a.jpg"]
    assert "not a duplicate" in reasons["/elsewhere.jpg"]
    assert "keep" in reasons["/p/b2.png"]
    export_lists(
        small_report,
        keep_list=str(tmp_path / "keep.txt"),
        remove_list=str(tmp_path / "remove.txt"),
        decisions=decisions,
    )
    assert (tmp_path / "remove.txt").read_text() == "/p/a2.jpg\n"
    assert "/p/a.jpg\n" in (tmp_path / "keep.txt").read_text()


def test_decisions_for_another_report_are_refused(
    tmp_path: Path, small_report: SavedReport
) -> None:
    path = write_decisions(tmp_path, ["/p/a2.jpg"], [], report_created="2024-12-31T00:00:00+00:00")
    with pytest.raises(BadArgumentError, match="decisions were made on another report") as caught:
        read_decisions(path, small_report)
    assert "\n" not in str(caught.value) and caught.value.hint


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no decisions file"),
        ("{not json", "not a JSON decisions file"),
        ('{"format": "something-else", "version": 1}', "not a dedup-gpu decisions file"),
        ('["a"]', "not a dedup-gpu decisions file"),
        (
            json.dumps({"format": FORMAT, "version": 2, "report_created": CREATED}),
            "version 2",
        ),
        (
            json.dumps(
                {"format": FORMAT, "version": 1, "report_created": CREATED, "remove": "/p/a2.jpg"}
            ),
            '"remove" is not a list',
        ),
    ],
)
def test_unusable_decisions_files_are_refused(
    tmp_path: Path, small_report: SavedReport, content: str | None, message: str
) -> None:
    path = tmp_path / "decisions.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(BadArgumentError, match=message) as caught:
        read_decisions(str(path), small_report)
    assert "\n" not in str(caught.value) and caught.value.hint


def test_a_path_with_a_newline_is_left_out_of_the_lists_only(tmp_path: Path) -> None:
    odd = "/p/two\nlines.jpg"
    report = read_report(
        str(
            write_report(
                tmp_path,
                [
                    {
                        "keep": kept("/p/a.jpg", 10),
                        "duplicates": [duplicate(odd, 10, "/p/a.jpg", exact=True)],
                    }
                ],
            )
        )
    )
    result = export_lists(
        report,
        keep_list=str(tmp_path / "keep.txt"),
        remove_list=str(tmp_path / "remove.txt"),
        csv_path=str(tmp_path / "files.csv"),
    )
    assert (tmp_path / "remove.txt").read_text() == ""
    assert (tmp_path / "keep.txt").read_text() == "/p/a.jpg\n"
    assert result.remove_listed == 0
    assert len(result.skipped) == 1
    assert result.skipped[0][0] == odd and "line break" in result.skipped[0][1]
    assert [r["path"] for r in read_csv(tmp_path / "files.csv")] == ["/p/a.jpg", odd]


def test_export_of_a_missing_report_names_it(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no report at .*nowhere\.json") as caught:
        read_report(str(tmp_path / "nowhere.json"))
    assert "dedup-gpu scan" in caught.value.hint


def test_export_replaces_a_symlink_instead_of_writing_through_it(
    tmp_path: Path, small_report: SavedReport
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("do not touch\n")
    (tmp_path / "keep.txt").symlink_to(precious)
    export_lists(small_report, keep_list=str(tmp_path / "keep.txt"))
    assert precious.read_text() == "do not touch\n"
    assert not (tmp_path / "keep.txt").is_symlink()
    assert (tmp_path / "keep.txt").read_text() == "/p/a.jpg\n/p/b.png\n"


def test_export_refuses_outputs_it_must_not_or_cannot_write(
    tmp_path: Path, small_report: SavedReport
) -> None:
    with pytest.raises(BadArgumentError, match="the report itself"):
        export_lists(small_report, csv_path=small_report.path)
    with pytest.raises(BadArgumentError, match="same file"):
        export_lists(
            small_report, keep_list=str(tmp_path / "x.txt"), remove_list=str(tmp_path / "x.txt")
        )
    with pytest.raises(BadArgumentError, match="nothing to export"):
        export_lists(small_report)
    with pytest.raises(OutputError, match="it is a folder"):
        export_lists(small_report, keep_list=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # nothing left by the refusals
    # Like every output, a list may name a folder that does not exist yet: it is made.
    export_lists(small_report, keep_list=str(tmp_path / "new" / "keep.txt"))
    assert (tmp_path / "new" / "keep.txt").read_text()
    with pytest.raises(OutputError, match=r"cannot write .*keep\.txt") as caught:
        export_lists(small_report, keep_list=str(tmp_path / "report.json" / "keep.txt"))
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_export_to_a_read_only_folder_is_an_output_error(
    tmp_path: Path, small_report: SavedReport
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            export_lists(small_report, remove_list=str(locked / "remove.txt"))
    finally:
        locked.chmod(0o700)


def test_parquet_without_pyarrow_says_how_to_install_it(
    tmp_path: Path, small_report: SavedReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(BadArgumentError, match="pyarrow") as caught:
        export_lists(
            small_report,
            keep_list=str(tmp_path / "keep.txt"),
            parquet_path=str(tmp_path / "files.parquet"),
        )
    assert caught.value.hint == "pip install pyarrow"
    assert not (tmp_path / "keep.txt").exists()  # refused before anything was written
