"""Acting on a report never loses a file: dry runs touch nothing, changed files are skipped, kept
copies are never touched, and undo restores every byte, even after apply is killed mid-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import skimage_photo
from PIL import Image
from typer.testing import CliRunner

from dedup_gpu.cli import app
from dedup_gpu.exact import content_digest

runner = CliRunner()


def apply(report: Path, action: str, *options: object):
    return runner.invoke(app, ["apply", str(report), "--action", action, *map(str, options)])


def tree_state(root: Path) -> dict[str, tuple[str, int, float]]:
    """Every regular file under root: relative path -> (digest, mode, mtime)."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            status = path.stat()
            state[str(path.relative_to(root))] = (
                content_digest(str(path)),
                status.st_mode & 0o7777,
                round(status.st_mtime, 3),
            )
    return state


def entry(path: Path, *, score: float = 1.0, exact: bool = True, matched: str = "") -> dict:
    with Image.open(path) as image:
        width, height = image.size
    status = path.stat()
    return {
        "path": str(path),
        "matched": matched,
        "score": score,
        "exact": exact,
        "verification": None,
        "width": width,
        "height": height,
        "bytes": status.st_size,
        "mtime": status.st_mtime,
        "digest": content_digest(str(path)),
    }


def write_report(
    path: Path,
    groups: list[tuple[Path, list[tuple[Path, bool]]]],
    roots: list[Path] | None = None,
) -> Path:
    """A report as scan writes it: (kept copy, [(duplicate, is byte-identical)]) per group;
    its scanned roots are `roots`, by default the folder holding every file named."""
    files = [
        str(file) for keep, duplicates in groups for file in (keep, *(d for d, _ in duplicates))
    ]
    if roots is None:
        roots = [Path(os.path.commonpath([os.path.dirname(file) for file in files]))]
    data = {
        "version": 7,
        "created": "2026-11-22T10:00:00+00:00",
        "model": "sscd-onnx",
        "threshold": 0.5,
        "roots": [str(root) for root in roots],
        "groups": [
            {
                "keep": {k: v for k, v in entry(keep).items() if k in KEPT_FIELDS},
                "duplicates": [
                    entry(dup, score=1.0 if exact else 0.8, exact=exact, matched=str(keep))
                    for dup, exact in duplicates
                ],
            }
            for keep, duplicates in groups
        ],
        "errors": [],
    }
    path.write_text(json.dumps(data))
    return path


KEPT_FIELDS = {"path", "width", "height", "bytes", "mtime", "digest"}


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, Path]:
    """An archive with exact copies and a re-saved copy in two folders, and its report."""
    root = tmp_path / "archive"
    (root / "2019" / "trip").mkdir(parents=True)
    (root / "2020").mkdir()
    originals = {}
    for name in ("astronaut.png", "coffee.png"):
        originals[name] = root / "2019" / name
        shutil.copyfile(skimage_photo(name), originals[name])
    exact_a = root / "2020" / "astronaut copy.png"
    exact_b = root / "2019" / "trip" / "coffee (1).png"
    shutil.copyfile(originals["astronaut.png"], exact_a)
    shutil.copyfile(originals["coffee.png"], exact_b)
    resaved = root / "2020" / "coffee.jpg"
    Image.open(originals["coffee.png"]).save(resaved, quality=80)
    os.chmod(exact_a, 0o640)
    report = write_report(
        tmp_path / "report.json",
        [
            (originals["astronaut.png"], [(exact_a, True)]),
            (originals["coffee.png"], [(exact_b, True), (resaved, False)]),
        ],
    )
    return root, report


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(archive, tmp_path: Path) -> None:
    root, report = archive
    before = tree_state(root)

    result = apply(report, "move", "--to", str(tmp_path / "trash"))

    assert result.exit_code == 0, result.output
    assert "would move" in result.output and "3 file(s) would be changed" in result.output
    assert "Add --yes to act" in result.output
    assert tree_state(root) == before
    assert not (tmp_path / "trash").exists()
    assert not list(tmp_path.glob("*.jsonl"))


def test_move_keeps_the_folder_structure_and_undo_restores_every_byte(
    archive, tmp_path: Path
) -> None:
    root, report = archive
    before = tree_state(root)
    trash = tmp_path / "trash"

    moved = apply(report, "move", "--to", str(trash), "--yes")

    assert moved.exit_code == 0, moved.output
    assert "3 file(s) changed" in moved.output
    assert sorted(str(p.relative_to(trash)) for p in trash.rglob("*") if p.is_file()) == [
        "2019/trip/coffee (1).png",
        "2020/astronaut copy.png",
        "2020/coffee.jpg",
    ]
    assert set(tree_state(root)) == {"2019/astronaut.png", "2019/coffee.png"}  # keeps untouched
    assert tree_state(root)["2019/coffee.png"] == before["2019/coffee.png"]
    [journal] = tmp_path.glob("report.apply-*.jsonl")  # beside the report
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines[0]["format"] == "dedup-gpu-journal" and lines[-1]["type"] == "finished"
    assert [line["type"] for line in lines[1:-1]] == ["intent", "done"] * 3

    undone = runner.invoke(app, ["undo", str(journal)])

    assert undone.exit_code == 0, undone.output
    assert "3 restored" in undone.output
    assert tree_state(root) == before  # same paths, bytes, permissions and mtimes
    again = runner.invoke(app, ["undo", str(journal)])  # running it twice is harmless
    assert again.exit_code == 0 and "3 already in place" in again.output
    assert tree_state(root) == before


@pytest.mark.parametrize("action", ["move", "delete"])
def test_names_with_line_separators_in_them_are_moved_and_restored(
    action: str, tmp_path: Path
) -> None:
    # JSON writes U+2028, U+0085 and the other separators str.splitlines() ends lines at
    # unescaped: one such name made the whole journal unreadable ("line 2 is not JSON"), and
    # nothing could be undone.
    root = tmp_path / "archive"
    root.mkdir()
    original = root / "coffee.png"
    shutil.copyfile(skimage_photo("coffee.png"), original)
    copies = []
    for separator in ("\u2028", "\u2029", "\x85", "\x0c", "\x1c", "\x1e", "\r"):
        copies.append(root / f"coffee{separator}copy {ord(separator):04x}.png")
        shutil.copyfile(original, copies[-1])
    report = write_report(tmp_path / "report.json", [(original, [(c, True) for c in copies])])
    before = tree_state(root)

    journal = tmp_path / "journal.jsonl"
    options = ["--to", tmp_path / "trash"] if action == "move" else []
    applied = apply(report, action, *options, "--journal", journal, "--yes")
    assert applied.exit_code == 0, applied.output
    assert set(tree_state(root)) == {"coffee.png"}

    undone = runner.invoke(app, ["undo", str(journal)])

    assert undone.exit_code == 0, undone.output
    assert f"{len(copies)} restored" in undone.output
    assert tree_state(root) == before


@pytest.mark.parametrize("action", ["move", "delete"])
def test_a_duplicate_whose_kept_copy_is_gone_is_left_alone(
    archive, tmp_path: Path, action: str
) -> None:
    # The kept copy was moved away after the scan: moving its duplicates to the trash would
    # leave no copy in the archive.
    root, report = archive
    os.rename(root / "2019" / "coffee.png", tmp_path / "coffee elsewhere.png")
    before = tree_state(root)
    options = ["--to", tmp_path / "trash"] if action == "move" else []
    result = apply(report, action, *options, "--journal", tmp_path / "j.jsonl", "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.count("its kept copy") == 2 and "no longer exists" in result.output
    after = tree_state(root)
    assert after["2019/trip/coffee (1).png"] == before["2019/trip/coffee (1).png"]
    assert after["2020/coffee.jpg"] == before["2020/coffee.jpg"]
    assert "2020/astronaut copy.png" not in after  # its kept copy is there: acted on


def test_undo_restores_modification_times_to_the_nanosecond(archive, tmp_path: Path) -> None:
    root, report = archive
    copy = root / "2020" / "astronaut copy.png"
    os.utime(copy, ns=(1_700_000_000_123_456_789, 1_700_000_000_987_654_321))
    data = json.loads(report.read_text())
    data["groups"][0]["duplicates"][0]["mtime"] = copy.stat().st_mtime
    report.write_text(json.dumps(data))
    journal = tmp_path / "j.jsonl"
    moved = apply(report, "move", "--to", tmp_path / "trash", "--journal", journal, "--yes")
    assert moved.exit_code == 0, moved.output
    assert runner.invoke(app, ["undo", str(journal)]).exit_code == 0
    assert copy.stat().st_mtime_ns == 1_700_000_000_987_654_321


@pytest.mark.parametrize("action", ["delete", "move", "symlink", "hardlink"])
def test_a_kept_copy_that_is_a_link_to_its_duplicate_never_costs_the_real_file(
    tmp_path: Path, action: str
) -> None:
    # Two index runs, one folder holding a symlink to a file in the other: the group kept the
    # symlink and listed its target as an exact duplicate, and delete removed the only bytes
    # (a symlink action would make the link point at itself).
    real = tmp_path / "photos" / "astronaut.png"
    real.parent.mkdir()
    shutil.copyfile(skimage_photo("astronaut.png"), real)
    link = tmp_path / "links" / "astronaut.png"
    link.parent.mkdir()
    link.symlink_to(real)
    second_name = tmp_path / "photos" / "astronaut (hard link).png"
    os.link(real, second_name)
    report = write_report(tmp_path / "report.json", [(link, [(real, True), (second_name, True)])])
    digest = content_digest(str(real))
    options = ["--to", tmp_path / "trash"] if action == "move" else []

    result = apply(report, action, *options, "--journal", tmp_path / "j.jsonl", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.count("a kept copy under another name") == 2, result.output
    assert not os.path.islink(real) and content_digest(str(real)) == digest
    assert os.path.realpath(link) == str(real)


def test_files_changed_since_the_report_are_skipped_and_left_alone(archive, tmp_path: Path) -> None:
    root, report = archive
    edited = root / "2020" / "astronaut copy.png"
    edited.write_bytes(edited.read_bytes() + b"\0")  # size differs
    touched = root / "2019" / "trip" / "coffee (1).png"
    os.utime(touched, (1_600_000_000, 1_600_000_000))  # same bytes, other mtime
    swapped = root / "2020" / "coffee.jpg"
    stat = swapped.stat()
    data = bytearray(swapped.read_bytes())
    data[-3] ^= 0xFF  # same size and mtime, other content
    swapped.write_bytes(bytes(data))
    os.utime(swapped, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    before = tree_state(root)

    result = apply(report, "move", "--to", str(tmp_path / "t"), "--yes")

    assert result.exit_code == 0, result.output
    assert "0 file(s) changed" in result.output
    assert "changed since the report: " in result.output
    assert "modified since the report (mtime differs)" in result.output
    assert "content changed since the report (digest differs)" in result.output
    assert tree_state(root) == before


def test_hardlinks_replace_exact_copies_only_and_undo_makes_them_separate_again(
    archive, tmp_path: Path
) -> None:
    root, report = archive
    before = tree_state(root)

    result = apply(report, "hardlink", "--journal", str(tmp_path / "j.jsonl"), "--yes")

    assert result.exit_code == 0, result.output
    assert "2 file(s) changed" in result.output
    assert "coffee.jpg: not byte-identical to the kept copy" in result.output
    assert os.path.samefile(root / "2020" / "astronaut copy.png", root / "2019" / "astronaut.png")
    assert tree_state(root)["2020/coffee.jpg"] == before["2020/coffee.jpg"]

    assert runner.invoke(app, ["undo", str(tmp_path / "j.jsonl")]).exit_code == 0
    assert tree_state(root) == before
    assert not os.path.samefile(
        root / "2020" / "astronaut copy.png", root / "2019" / "astronaut.png"
    )


def test_undo_removes_the_link_an_apply_killed_mid_step_left_and_nothing_else(
    archive, tmp_path: Path
) -> None:
    # Killed between making a copy's replacement link and renaming it over the copy, apply
    # leaves `.NAME.dedup-gpu-XXXXXXXX.tmp` beside it (once in ~10 CI runs of the kill -9 test).
    # Undo removes it, since it is provably apply's (the kept copy's inode); a file of that name
    # holding other bytes is the user's and stays.
    root, report = archive
    before = tree_state(root)
    assert apply(report, "hardlink", "--journal", str(tmp_path / "j.jsonl"), "--yes").exit_code == 0
    copy, kept = root / "2020" / "astronaut copy.png", root / "2019" / "astronaut.png"
    left_over = copy.parent / ".astronaut copy.png.dedup-gpu-0123abcd.tmp"
    os.link(kept, left_over)
    users = copy.parent / ".astronaut copy.png.dedup-gpu-89abcdef.tmp"
    users.write_bytes(b"not ours")

    assert runner.invoke(app, ["undo", str(tmp_path / "j.jsonl")]).exit_code == 0
    assert not left_over.exists()
    assert users.read_bytes() == b"not ours"
    users.unlink()
    assert tree_state(root) == before


def test_symlinks_point_at_the_kept_copy_and_undo_restores_files(archive, tmp_path) -> None:
    root, report = archive
    before = tree_state(root)
    journal = tmp_path / "links.jsonl"

    result = apply(report, "symlink", "--journal", str(journal), "--yes")

    assert result.exit_code == 0, result.output
    link = root / "2019" / "trip" / "coffee (1).png"
    assert link.is_symlink() and os.readlink(link) == str(root / "2019" / "coffee.png")
    assert runner.invoke(app, ["undo", str(journal)]).exit_code == 0
    assert not link.is_symlink() and tree_state(root) == before


def test_a_hardlink_across_filesystems_is_reported_clearly(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    elsewhere = Path(other / f"dedup-gpu-test-{os.getpid()}")
    elsewhere.mkdir()
    try:
        keep = elsewhere / "coffee.png"
        shutil.copyfile(skimage_photo("coffee.png"), keep)
        copy = tmp_path / "coffee copy.png"
        shutil.copyfile(keep, copy)
        report = write_report(tmp_path / "report.json", [(keep, [(copy, True)])])
        before = tree_state(tmp_path)

        result = apply(report, "hardlink", "--journal", str(tmp_path / "j.jsonl"), "--yes")

        assert result.exit_code == 0, result.output
        assert "cannot hard-link across filesystems" in result.output
        assert "use --action symlink or move" in result.output
        after = tree_state(tmp_path)
        assert after["coffee copy.png"] == before["coffee copy.png"]
    finally:
        shutil.rmtree(elsewhere)


def test_delete_needs_a_journal_and_undo_restores_what_bytes_allow(archive, tmp_path) -> None:
    root, report = archive
    before = tree_state(root)
    refused = apply(report, "delete", "--yes")
    assert refused.exit_code == 2 and "needs --journal FILE" in refused.output
    assert tree_state(root) == before

    journal = tmp_path / "deleted.jsonl"
    deleted = apply(report, "delete", "--journal", str(journal), "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "1 near-duplicate(s) were deleted for good" in deleted.output
    assert set(tree_state(root)) == {"2019/astronaut.png", "2019/coffee.png"}

    undone = runner.invoke(app, ["undo", str(journal)])
    # The two exact copies come back from their kept copies; the re-saved JPEG had bytes of its
    # own, and undo says so rather than pretending.
    assert undone.exit_code == 1
    assert "2 restored" in undone.output and "1 could not be restored" in undone.output
    assert "its bytes are gone" in undone.output
    after = tree_state(root)
    assert {k: v for k, v in before.items() if k != "2020/coffee.jpg"} == after


def test_reviewer_decisions_limit_what_is_removed_and_keeps_are_never_touched(
    archive, tmp_path: Path
) -> None:
    root, report = archive
    created = json.loads(report.read_text())["created"]
    decisions = tmp_path / "decisions.json"
    decisions.write_text(
        json.dumps(
            {
                "format": "dedup-gpu-decisions",
                "version": 1,
                "report": str(report),
                "report_created": created,
                "remove": [str(root / "2020" / "coffee.jpg"), str(root / "2019" / "coffee.png")],
                "keep": [str(root / "2020" / "astronaut copy.png")],
            }
        )
    )
    before = tree_state(root)

    result = apply(
        report, "move", "--to", str(tmp_path / "t"), "--decisions", str(decisions), "--yes"
    )

    assert result.exit_code == 0, result.output
    assert "1 file(s) changed" in result.output
    after = tree_state(root)
    assert "2020/coffee.jpg" not in after  # the one ticked duplicate moved
    assert after["2019/coffee.png"] == before["2019/coffee.png"]  # a keep, listed or not
    assert after["2020/astronaut copy.png"] == before["2020/astronaut copy.png"]  # un-ticked

    decisions.write_text(json.dumps({**json.loads(decisions.read_text()), "report_created": "x"}))
    other = apply(report, "delete", "--decisions", str(decisions))
    assert other.exit_code == 2 and "another report" in other.output


def test_a_report_with_relative_paths_applied_elsewhere_touches_nothing_and_says_why(
    archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, report = archive
    data = json.loads(report.read_text())
    for group in data["groups"]:
        for item in [group["keep"], *group["duplicates"]]:
            item["path"] = os.path.relpath(item["path"], tmp_path)  # as `scan archive` writes
    report.write_text(json.dumps(data))
    before = tree_state(root)
    monkeypatch.chdir(root)  # not the folder the scan ran in

    result = apply(report, "move", "--to", str(tmp_path / "t"), "--yes")

    assert result.exit_code == 0, result.output
    assert "0 file(s) changed" in result.output and "no longer exists" in result.output
    assert "relative to the folder scan ran in" in result.output
    assert tree_state(root) == before

    monkeypatch.chdir(tmp_path)
    assert "3 file(s) changed" in apply(report, "move", "--to", "t", "--yes").output


def test_bad_arguments_are_refused_before_anything_is_touched(archive, tmp_path) -> None:
    root, report = archive
    before = tree_state(root)
    cases = [
        (["apply", str(report), "--action", "move", "--yes"], "needs --to"),
        (["apply", str(report), "--action", "shred", "--yes"], "unknown action"),
        (["apply", str(tmp_path / "missing.json"), "--action", "delete"], "no report at"),
        (["undo", str(report)], "not a dedup-gpu apply journal"),
    ]
    for arguments, message in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.output, (arguments, result.output)
    assert tree_state(root) == before


SLOW_APPLY = """
import sys, time
import dedup_gpu.actions as actions
perform = actions._perform
def slowly(change):
    perform(change)
    time.sleep(0.05)
actions._perform = slowly
from dedup_gpu.report import read_report
actions.apply_report(read_report(sys.argv[1]), sys.argv[2], to=sys.argv[3] or None,
                     journal=sys.argv[4], yes=True)
"""


@pytest.mark.parametrize("action", ["move", "hardlink"])
def test_kill_9_during_apply_then_undo_restores_the_tree(action: str, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    keep = root / "original.png"
    shutil.copyfile(skimage_photo("coffee.png"), keep)
    copies = []
    for number in range(40):
        copy = root / f"sub{number % 4}" / f"copy {number:02d}.png"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(keep, copy)
        copies.append((copy, True))
    report = write_report(tmp_path / "report.json", [(keep, copies)])
    before = tree_state(root)
    journal = tmp_path / "apply.jsonl"
    target = str(tmp_path / "trash") if action == "move" else ""

    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_APPLY, str(report), action, target, str(journal)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count('"type": "done"') >= 8:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines = journal.read_text().splitlines()
    assert 8 <= sum('"done"' in line for line in lines) < 40  # killed mid-way
    assert not any('"finished"' in line for line in lines)

    undone = runner.invoke(app, ["undo", str(journal)])

    assert undone.exit_code == 0, undone.output
    assert tree_state(root) == before
    assert not any(path.is_symlink() for path in root.rglob("*"))
    if action == "hardlink":
        assert all(not os.path.samefile(copy, keep) for copy, _ in copies)


@pytest.mark.slow
def test_from_a_real_scan_to_audit_export_apply_and_undo(photo_dir: Path, tmp_path) -> None:
    """The whole story on real photos: scan, review, audit the cost, export lists, move, undo."""
    shutil.copyfile(photo_dir / "chelsea.png", photo_dir / "chelsea (copy).png")
    Image.open(photo_dir / "astronaut.png").crop((40, 40, 480, 480)).save(
        photo_dir / "astronaut cropped.jpg", quality=90
    )
    report = tmp_path / "report.json"
    scanned = runner.invoke(
        app, ["scan", str(photo_dir), "--out", str(report), "--device", "cpu", "--quiet"]
    )
    assert scanned.exit_code == 0, scanned.output
    before = tree_state(photo_dir)

    reviewed = runner.invoke(app, ["review", str(report), "--html", str(tmp_path / "r.html")])
    assert reviewed.exit_code == 0, reviewed.output
    assert "2 groups, 4 files" in reviewed.output
    assert len(list((tmp_path / "r_files").glob("*.jpg"))) == 4

    audited = runner.invoke(
        app,
        [
            "audit",
            str(report),
            "--price-per-gb-month",
            "0.18",
            "--currency",
            "hkd",
            "--json",
            str(tmp_path / "audit.json"),
        ],
    )
    assert audited.exit_code == 0, audited.output
    assert "HKD" in audited.output and "png" in audited.output and "jpg" in audited.output
    totals = json.loads((tmp_path / "audit.json").read_text())["totals"]
    duplicates_bytes = (photo_dir / "chelsea (copy).png").stat().st_size + (
        photo_dir / "astronaut cropped.jpg"
    ).stat().st_size
    assert totals["duplicates"] == 2 and totals["reclaimable_bytes"] == duplicates_bytes

    exported = runner.invoke(
        app,
        [
            "export",
            str(report),
            "--keep-list",
            str(tmp_path / "keep.txt"),
            "--remove-list",
            str(tmp_path / "remove.txt"),
            "--csv",
            str(tmp_path / "files.csv"),
        ],
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "remove.txt").read_text().splitlines() == sorted(
        [str(photo_dir / "astronaut cropped.jpg"), str(photo_dir / "chelsea (copy).png")]
    )

    moved = apply(report, "move", "--to", str(tmp_path / "dupes"), "--yes")
    assert moved.exit_code == 0, moved.output
    assert sorted(p.name for p in (tmp_path / "dupes").iterdir()) == [
        "astronaut cropped.jpg",
        "chelsea (copy).png",
    ]
    [journal] = tmp_path.glob("report.apply-*.jsonl")
    assert runner.invoke(app, ["undo", str(journal)]).exit_code == 0
    assert tree_state(photo_dir) == before


def test_no_output_option_overwrites_an_image_being_read(photo_dir: Path, tmp_path) -> None:
    # `--out` naming the kept copy of a group wrote the report over it. Every output (scan and
    # groups --out/--csv, export lists, audit --json, the review page) is refused when it is an
    # input image under any of its names, before any work.
    shutil.copyfile(photo_dir / "chelsea.png", photo_dir / "chelsea (copy).png")
    second_name = tmp_path / "also chelsea.png"
    os.link(photo_dir / "chelsea.png", second_name)
    before = tree_state(photo_dir)
    scan_options = ["--device", "cpu", "--quiet"]
    for option, target in (("--out", photo_dir / "chelsea.png"), ("--csv", second_name)):
        refused = runner.invoke(app, ["scan", str(photo_dir), option, str(target), *scan_options])
        assert refused.exit_code == 2, refused.output
        assert "refusing to write" in refused.output and "one of the images read" in refused.output
        assert tree_state(photo_dir) == before

    report = tmp_path / "report.json"
    scanned = runner.invoke(app, ["scan", str(photo_dir), "--out", str(report), *scan_options])
    assert scanned.exit_code == 0, scanned.output
    kept = photo_dir / "chelsea.png"
    for arguments in (
        ["export", str(report), "--keep-list", str(kept)],
        ["export", str(report), "--csv", str(second_name)],
        ["audit", str(report), "--json", str(kept)],
        ["review", str(report), "--html", str(second_name)],
    ):
        refused = runner.invoke(app, arguments)
        assert refused.exit_code == 2, (arguments, refused.output)
        assert "one of the images read" in refused.output, refused.output
    catalog = tmp_path / "catalog"
    indexed = runner.invoke(app, ["index", str(photo_dir), "--catalog", str(catalog), "--quiet"])
    assert indexed.exit_code == 0, indexed.output
    refused = runner.invoke(app, ["groups", "--catalog", str(catalog), "--out", str(kept)])
    assert refused.exit_code == 2 and "one of the images read" in refused.output
    assert tree_state(photo_dir) == before


def test_a_copy_cut_short_in_the_move_target_is_removed_by_undo(archive, tmp_path: Path) -> None:
    # A move across filesystems copies to a temporary beside the target, then renames it. Killed
    # mid-copy, apply left the partial copy in --to, and undo called the file "already in place"
    # and left the partial copy there for good.
    root, report = archive
    before = tree_state(root)
    trash, journal = tmp_path / "trash", tmp_path / "j.jsonl"
    script = (
        "import errno, os, signal, sys\n"
        "from dedup_gpu import actions\n"
        "from dedup_gpu.cli import app\n"
        "def no_link(*_):\n"
        "    raise OSError(errno.EXDEV, 'cross-device link')\n"
        "def cut_short(source, temp, mode=None):\n"
        "    with open(source, 'rb') as whole, open(temp, 'wb') as part:\n"
        "        part.write(whole.read(1000))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.link = no_link\n"
        "actions._synced_copy = cut_short\n"
        "app(sys.argv[1:])\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, "apply", str(report), "--action", "move", "--to",
         str(trash), "--journal", str(journal), "--yes"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [p for p in trash.rglob("*") if p.is_file()]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")

    undone = runner.invoke(app, ["undo", str(journal)])

    assert undone.exit_code == 0, undone.output
    assert not leftovers[0].exists()
    assert tree_state(root) == before


def test_a_name_that_is_not_utf8_survives_scan_report_review_apply_and_undo(
    photo_dir: Path, tmp_path: Path
) -> None:
    # One byte 0xff in one name discarded a finished scan: "cannot write report.json: 'utf-8'
    # codec can't encode character '\udcff'", exit 2 after all the embedding.
    odd = os.path.join(os.fsencode(photo_dir), b"chelsea \xff copy.png")
    shutil.copyfile(photo_dir / "chelsea.png", odd)
    report, table = tmp_path / "report.json", tmp_path / "report.csv"
    before = tree_state(photo_dir)
    scanned = runner.invoke(
        app, ["scan", str(photo_dir), "--out", str(report), "--csv", str(table), "--device", "cpu"]
    )
    assert scanned.exit_code == 0, scanned.output
    assert "chelsea \\udcff copy.png" in scanned.output  # shown as its escape
    [group] = json.loads(report.read_text(encoding="utf-8"))["groups"]
    [duplicate] = group["duplicates"]
    assert os.fsencode(duplicate["path"]) == odd  # the JSON escape reads back as the bytes
    assert "chelsea \\udcff copy.png" in table.read_text(encoding="utf-8")
    reviewed = runner.invoke(app, ["review", str(report), "--html", str(tmp_path / "r.html")])
    assert reviewed.exit_code == 0, reviewed.output

    journal = tmp_path / "j.jsonl"
    moved = apply(report, "move", "--to", tmp_path / "trash", "--journal", journal, "--yes")
    assert moved.exit_code == 0, moved.output
    assert not os.path.exists(odd)
    undone = runner.invoke(app, ["undo", str(journal)])
    assert undone.exit_code == 0 and "1 restored" in undone.output, undone.output
    assert tree_state(photo_dir) == before


def test_apply_and_undo_act_only_inside_the_folders_that_were_scanned(
    photo_dir: Path, tmp_path: Path
) -> None:
    # A report is a file anyone can edit. An entry naming a file outside the scanned folder (or
    # climbing out with '..') with the right digest was deleted; a journal entry was restored
    # wherever it said. The report now records the scanned roots, the journal the folders apply
    # acted under, and both refuse the rest unless told --allow-outside-roots.
    shutil.copyfile(photo_dir / "chelsea.png", photo_dir / "chelsea (copy).png")
    report = tmp_path / "report.json"
    scanned = runner.invoke(
        app, ["scan", str(photo_dir), "--out", str(report), "--device", "cpu", "--quiet"]
    )
    assert scanned.exit_code == 0, scanned.output
    data = json.loads(report.read_text())
    assert data["roots"] == [str(photo_dir)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    only_copy, climbing = elsewhere / "rocket.jpg", elsewhere / "rocket again.jpg"
    for planted in (only_copy, climbing):
        shutil.copyfile(photo_dir / "rocket.jpg", planted)
    sneaked_in = [
        entry(only_copy, matched=str(photo_dir / "rocket.jpg")),
        {**entry(climbing), "path": f"{photo_dir}/../elsewhere/{climbing.name}"},
    ]
    data["groups"].append(
        {
            "keep": {k: v for k, v in entry(photo_dir / "rocket.jpg").items() if k in KEPT_FIELDS},
            "duplicates": sneaked_in,
        }
    )
    report.write_text(json.dumps(data))
    before = tree_state(photo_dir)

    journal = tmp_path / "deleted.jsonl"
    deleted = apply(report, "delete", "--journal", journal, "--yes")

    assert deleted.exit_code == 0, deleted.output
    assert "1 file(s) changed" in deleted.output
    assert "lies outside the folders that were scanned" in deleted.output
    assert "--allow-outside-roots" in deleted.output
    assert "'..' step inside its path" in deleted.output
    assert only_copy.exists() and climbing.exists()
    assert not (photo_dir / "chelsea (copy).png").exists()

    # The journal names where its apply acted; an entry edited to point elsewhere is refused.
    lines = journal.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    [intent] = [e for e in entries if e.get("type") == "intent"]
    planted_path = elsewhere / "planted.png"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(
        "\n".join(
            json.dumps({**e, "path": str(planted_path)} if e is intent else e) for e in entries
        )
        + "\n"
    )
    refused = runner.invoke(app, ["undo", str(tampered)])
    assert refused.exit_code == 1, refused.output
    assert "outside the folders its apply acted under" in refused.output
    assert not planted_path.exists()

    undone = runner.invoke(app, ["undo", str(journal)])
    assert undone.exit_code == 0 and "1 restored" in undone.output, undone.output
    assert tree_state(photo_dir) == before

    # Told to, apply acts outside the roots too, but never on a path that climbs with '..'.
    journal = tmp_path / "outside.jsonl"
    allowed = apply(report, "delete", "--journal", journal, "--yes", "--allow-outside-roots")
    assert allowed.exit_code == 0, allowed.output
    assert not only_copy.exists() and climbing.exists()
    assert "'..' step inside its path" in allowed.output
    undone = runner.invoke(app, ["undo", str(journal)])
    assert undone.exit_code == 0 and "2 restored" in undone.output, undone.output
    assert only_copy.exists() and tree_state(photo_dir) == before


def test_a_report_without_recorded_roots_is_acted_on_only_when_told(archive, tmp_path) -> None:
    root, report = archive
    data = json.loads(report.read_text())
    del data["roots"]
    data["version"] = 6  # as dedup-gpu wrote reports before it recorded the scanned roots
    report.write_text(json.dumps(data))
    before = tree_state(root)

    refused = apply(report, "move", "--to", tmp_path / "trash", "--yes")

    assert refused.exit_code == 0, refused.output
    assert "0 file(s) changed" in refused.output and "records no folders" in refused.output
    assert tree_state(root) == before
    allowed = apply(report, "move", "--to", tmp_path / "trash", "--yes", "--allow-outside-roots")
    assert "3 file(s) changed" in allowed.output, allowed.output


def test_a_malformed_journal_entry_is_refused_and_the_rest_undone(archive, tmp_path) -> None:
    root, report = archive
    before = tree_state(root)
    journal = tmp_path / "moved.jsonl"
    assert apply(report, "move", "--to", tmp_path / "trash", "--journal", journal, "--yes")
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    intents = [e for e in entries if e.get("type") == "intent"]
    left_out = intents[0].pop("path")  # undo died on it with an internal error
    intents[1]["digest"], intents[1]["target"] = 12, None
    journal.write_text("\n".join(json.dumps(e) for e in entries) + "\n")

    undone = runner.invoke(app, ["undo", str(journal)])

    assert undone.exit_code == 1, undone.output
    assert "1 restored" in undone.output and "malformed" in undone.output
    restored = {
        k: v
        for k, v in before.items()
        if not (left_out.endswith(k) or intents[1]["path"].endswith(k))
    }
    assert tree_state(root) == restored
