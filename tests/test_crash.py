"""Killed with kill -9 at any moment, dedup-gpu leaves a user nothing to clean up by hand.

Each test runs the real command line in a subprocess, lets it reach a moment that the test's
seed picks (`random.Random(seed)`: which step of the work, and which occurrence of it), kills it
there with SIGKILL, and then does what a user does next: run `index` again, or `undo` (again).
What the user must see afterwards:

- no process of the killed run still alive a few seconds later (decoding workers included);
- no file lost at the moment of the kill: each one is in its place or in the move target, or
  the journal recorded its deletion before it happened;
- after undo, the tree byte-identical to what it was (paths, bytes, permission bits, mtimes to
  the nanosecond, no temporary left behind) and an empty move target;
- a catalog usable at once: the next `index` succeeds (no lock left behind), embeds only what
  the killed run had not committed, and `groups --catalog` gives the same groups as a catalog
  built without interruption.

The kill points are made reachable deterministically: a small wrapper (`ACTING`, `INDEXING`)
monkeypatches the steps the commands take (a link, a part of a copy, a rename, a journal line,
a batch committed...) to count them, and pauses at the chosen one until the test kills it.
Copies onto another file system are emulated for the archive's `usb` folder (a hard link
between it and anything else fails with EXDEV), so moves there copy, fsync and rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import skimage_photo
from PIL import Image
from test_actions import write_report
from typer.testing import CliRunner

from dedup_gpu.catalog import Catalog
from dedup_gpu.cli import app
from dedup_gpu.ingest import index_catalog
from dedup_gpu.synth import write_edited_copies

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/environ").exists(), reason="looks for surviving processes in /proc"
)

REPOSITORY = Path(__file__).parents[1]
MODEL = "sscd-distilled-onnx"  # the small offline SSCD model, fast on CPU
MARKER_VARIABLE = "DEDUP_GPU_CRASH_TEST"
runner = CliRunner()

# Runs `dedup-gpu ARGUMENTS...` with each step of apply and undo counted; pauses (sleeps until
# killed) at the OCCURRENCE-th step of kind KIND when argv[3] is "KIND:OCCURRENCE".
ACTING = r"""
import errno, os, shutil, sys, time
_marker, progress, pause_at, usb, *arguments = sys.argv[1:]
paused_kind, _, occurrence = pause_at.partition(":")
seen = {}

def step(kind):
    seen[kind] = seen.get(kind, 0) + 1
    if kind == paused_kind and seen[kind] == int(occurrence):
        with open(progress, "w") as note:
            note.write(f"paused after {kind} {occurrence}\n")
        time.sleep(600)

def on_usb(path):
    return os.path.abspath(path).startswith(usb + os.sep)

real_link, real_replace, real_unlink, real_utime = os.link, os.replace, os.unlink, os.utime

def link(source, target, *args, **kwargs):
    if on_usb(source) != on_usb(target):
        raise OSError(errno.EXDEV, "Invalid cross-device link", source)
    real_link(source, target, *args, **kwargs)
    step("link")

def replace(source, target, *args, **kwargs):
    real_replace(source, target, *args, **kwargs)
    step("replace")

def unlink(path, *args, **kwargs):
    real_unlink(path, *args, **kwargs)
    step("unlink")

def utime(path, *args, **kwargs):
    real_utime(path, *args, **kwargs)
    step("utime")

def copyfile(source, target, *, follow_symlinks=True):
    # 64 KiB at a time, each part on disk before the next: a copy can be cut short anywhere.
    with open(source, "rb") as whole, open(target, "wb") as part:
        while chunk := whole.read(1 << 16):
            part.write(chunk)
            part.flush()
            step("part of a copy")
    return target

os.link, os.replace, os.unlink, os.utime = link, replace, unlink, utime
shutil.copyfile = copyfile

from dedup_gpu import actions

write_line, perform, restore = actions._write_line, actions._perform, actions._restore

def _write_line(handle, entry):
    write_line(handle, entry)
    step("journal line")

def _perform(change):
    perform(change)
    step("change made")

def _restore(entry, temporaries):
    state = restore(entry, temporaries)
    step("entry restored")
    return state

actions._write_line, actions._perform, actions._restore = _write_line, _perform, _restore
from dedup_gpu.cli import app
app(arguments)
"""

# The same for `index`: the steps of storing each batch, and of finishing the run.
INDEXING = r"""
import sys, time
_marker, progress, pause_at, *arguments = sys.argv[1:]
paused_kind, _, occurrence = pause_at.partition(":")
seen = {}

def step(kind):
    seen[kind] = seen.get(kind, 0) + 1
    if kind == paused_kind and seen[kind] == int(occurrence):
        with open(progress, "w") as note:
            note.write(f"paused after {kind} {occurrence}\n")
        time.sleep(600)

from dedup_gpu.catalog import Catalog

store, append, search_index = Catalog.store, Catalog._append_rows, Catalog.search_index
tidy, finish_run = Catalog.tidy, Catalog.finish_run

def _store(self, run, images, embeddings):
    step("batch embedded")
    store(self, run, images, embeddings)
    step("batch committed")

def _append_rows(self, run, embeddings):
    first = append(self, run, embeddings)
    step("shard appended")  # fsynced; the rows pointing at it are not committed yet
    return first

def _search_index(self, *args, **kwargs):
    step("all stored")
    return search_index(self, *args, **kwargs)

def _tidy(self):
    step("index saved")
    tidy(self)

def _finish_run(self, *args, **kwargs):
    step("tidied")
    finish_run(self, *args, **kwargs)

Catalog.store, Catalog._append_rows, Catalog.search_index = _store, _append_rows, _search_index
Catalog.tidy, Catalog.finish_run = _tidy, _finish_run
from dedup_gpu.cli import app
app(arguments)
"""

NO_PAUSE = "none:0"


# -- processes ------------------------------------------------------------------------------


@dataclass
class Killed:
    pid: int
    marker: str
    paused: str  # where the run was when it was killed
    children: list[int]  # its child processes at that moment


def _environment(marker: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPOSITORY), MARKER_VARIABLE: marker}


def _run_to_the_end(wrapper: str, *arguments: object) -> subprocess.CompletedProcess[str]:
    marker = f"crash-test-{uuid.uuid4().hex}"
    return subprocess.run(
        [sys.executable, "-c", wrapper, marker, os.devnull, NO_PAUSE, *map(str, arguments)],
        env=_environment(marker),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _kill_at(wrapper: str, pause_at: str, progress: Path, *arguments: object) -> Killed | None:
    """Run the wrapper until it pauses at `pause_at`, then kill -9 it. None: it ended first
    (the step did not occur that often)."""
    marker = f"crash-test-{uuid.uuid4().hex}"
    progress.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-c", wrapper, marker, str(progress), pause_at, *map(str, arguments)],
        env=_environment(marker),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not progress.exists() or not progress.read_text().endswith("\n"):
            if process.poll() is not None:
                assert process.returncode == 0, process.communicate()[1]
                return None
            assert time.monotonic() < deadline, f"never reached {pause_at}"
            time.sleep(0.01)
        children = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL
    return Killed(process.pid, marker, progress.read_text().strip(), children)


def _processes() -> list[tuple[int, int, bytes]]:
    """(pid, parent pid, command line + environment) of every live process but zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            if re.search(r"^State:\s+Z", status, re.MULTILINE):
                continue  # it has ended; only its exit status waits to be collected
            parent = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
            traces = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if parent:
            found.append((int(entry.name), int(parent[1]), traces))
    return found


def _children(pid: int) -> list[int]:
    return [child for child, parent, _ in _processes() if parent == pid]


def _assert_nothing_left_behind(killed: Killed) -> None:
    """No process the killed run started (its children, or anything carrying its marker in its
    command line or environment) is still alive 5 seconds later."""
    deadline = time.monotonic() + 5
    while True:
        alive = [
            pid
            for pid, parent, traces in _processes()
            if parent == killed.pid or killed.marker.encode() in traces
        ]
        if not alive:
            return
        if time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)  # not left to burden the rest of the suite
            pytest.fail(f"{alive} outlived the run killed {killed.paused} by 5 s")
        time.sleep(0.1)


# -- files ----------------------------------------------------------------------------------


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under root that a user would notice changed: each file's bytes, permission
    bits and mtime to the nanosecond, each folder's permission bits, each link's target; hidden
    files (apply's and undo's temporaries) included."""
    state: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        status = path.lstat()
        relative = str(path.relative_to(root))
        if stat.S_ISLNK(status.st_mode):
            state[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(status.st_mode):
            state[relative] = ("folder", stat.S_IMODE(status.st_mode))
        else:
            state[relative] = (_digest(path), stat.S_IMODE(status.st_mode), status.st_mtime_ns)
    return state


def _differences(before: dict, after: dict) -> list[str]:
    return [
        f"{name}: {before.get(name, 'absent')} -> {after.get(name, 'absent')}"
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


def _assert_restored(root: Path, before: dict[str, tuple[object, ...]]) -> None:
    after = tree_state(root)
    assert after == before, _differences(before, after)


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes()).hexdigest()


def _files_in(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if not path.is_dir()] if folder.exists() else []


@dataclass
class Archive:
    root: Path
    usb: Path  # "another file system": moves between it and the trash copy
    keeps: list[Path]
    duplicates: list[Path]
    report: Path

    def duplicates_on_usb(self) -> int:
        return sum(self.usb in path.parents for path in self.duplicates)


def _archive(base: Path, *, near_duplicates: bool) -> Archive:
    """Twelve exact copies of a photo in three folders (one of them `usb`), with their own
    permission bits and modification times, and, for moves, two re-saved copies of another."""
    root = base / "archive"
    usb = root / "usb"
    keep = root / "camera.png"
    keep.parent.mkdir(parents=True)
    shutil.copyfile(skimage_photo("camera.png"), keep)
    os.utime(keep, ns=(1_600_000_000_000_000_001, 1_600_000_000_123_456_789))
    keeps, duplicates = [keep], []
    for number in range(12):
        folder = usb if number % 3 == 2 else root / str(2019 + number % 2)
        folder.mkdir(exist_ok=True)
        copy = folder / f"camera copy {number:02d}.png"
        shutil.copyfile(keep, copy)
        os.chmod(copy, (0o600, 0o640, 0o644, 0o444)[number % 4])
        moment = 1_700_000_000_000_000_000 + number * 86_400_123_456_789
        os.utime(copy, ns=(moment, moment + 987_654_321))
        duplicates.append(copy)
    groups = [(keep, [(copy, True) for copy in duplicates])]
    if near_duplicates:
        rocket = root / "rocket.jpg"
        shutil.copyfile(skimage_photo("rocket.jpg"), rocket)
        resaved = [root / "2020" / "rocket small.jpg", usb / "rocket again.jpg"]
        for copy in resaved:
            Image.open(rocket).save(copy, quality=70)
        keeps.append(rocket)
        duplicates += resaved
        groups.append((rocket, [(copy, False) for copy in resaved]))
    report = write_report(base / "report.json", groups)
    return Archive(root, usb, keeps, duplicates, report)


def _journal_entries(journal: Path) -> list[dict]:
    entries = []
    for line in journal.read_text(encoding="utf-8").split("\n"):
        with contextlib.suppress(json.JSONDecodeError):  # a last line cut short
            entries.append(json.loads(line))
    return entries


def _assert_no_file_lost(
    archive: Archive, before: dict[str, tuple[object, ...]], journal: Path, trash: Path | None
) -> None:
    """At the moment of a kill: every kept copy is untouched, and each duplicate is in its
    place, whole in the move target, or recorded in the journal as about to be deleted."""
    now = tree_state(archive.root)
    for keep in archive.keeps:
        relative = str(keep.relative_to(archive.root))
        assert now[relative] == before[relative], f"the kept copy {keep} was touched"
    announced = {e["path"] for e in _journal_entries(journal) if e.get("type") == "intent"}
    for duplicate in archive.duplicates:
        relative = str(duplicate.relative_to(archive.root))
        digest = before[relative][0]
        if now.get(relative, (None,))[0] == digest:
            continue
        if trash is not None:
            moved = trash / relative
            assert moved.is_file() and _digest(moved) == digest, f"{relative} is lost"
        else:
            assert str(duplicate) in announced, f"{relative} was deleted unannounced"


def _undo_and_check(
    archive: Archive, before: dict[str, tuple[object, ...]], journal: Path, trash: Path | None
) -> None:
    """Undo restores the tree exactly and empties the move target; a second undo is harmless."""
    undone = _run_to_the_end(ACTING, archive.usb, "undo", journal)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    _assert_restored(archive.root, before)
    if trash is not None:
        assert _files_in(trash) == [], "undo left files in the move target"
    again = _run_to_the_end(ACTING, archive.usb, "undo", journal)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 restored" in again.stdout and "0 could not be restored" in again.stdout
    _assert_restored(archive.root, before)


def _apply_arguments(archive: Archive, action: str, journal: Path, trash: Path) -> list[object]:
    arguments: list[object] = ["apply", archive.report, "--action", action]
    if action == "move":
        arguments += ["--to", trash]
    return [*arguments, "--journal", journal, "--yes"]


# -- apply ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "seed"),
    [
        ("move", 1),
        ("move", 2),
        ("move", 3),
        ("move", 4),
        ("delete", 5),
        ("delete", 6),
        ("delete", 7),
    ],
)
def test_apply_killed_at_any_moment_then_undo_restores_the_tree_exactly(
    action: str, seed: int, tmp_path: Path
) -> None:
    archive = _archive(tmp_path, near_duplicates=action == "move")
    before = tree_state(archive.root)
    journal, trash = tmp_path / "apply.jsonl", tmp_path / "trash"
    changes = len(archive.duplicates)
    # How often each step occurs in the whole run: the kill falls on one of them.
    steps = {"journal line": 2 * changes, "unlink": changes, "change made": changes}
    if action == "move":
        on_usb = archive.duplicates_on_usb()
        steps |= {"link": changes - on_usb, "part of a copy": on_usb, "replace": on_usb}
    rng = random.Random(seed)
    kind = rng.choice(sorted(steps))
    pause_at = f"{kind}:{rng.randint(1, steps[kind])}"

    killed = _kill_at(
        ACTING,
        pause_at,
        tmp_path / "progress",
        archive.usb,
        *_apply_arguments(archive, action, journal, trash),
    )

    assert killed is not None, f"apply ended before {pause_at}"
    _assert_nothing_left_behind(killed)
    assert not any(e.get("type") == "finished" for e in _journal_entries(journal))
    _assert_no_file_lost(archive, before, journal, trash if action == "move" else None)
    _undo_and_check(archive, before, journal, trash if action == "move" else None)


# -- undo -----------------------------------------------------------------------------------


UNDO_STEPS = {
    # same file system: link back, unlink the moved copy; from usb: copy, rename, unlink
    "move": ("link", "unlink", "part of a copy", "replace", "utime", "entry restored"),
    # copied back from the kept copy under a temporary name, renamed, its times set
    "delete": ("part of a copy", "replace", "utime", "entry restored"),
}


@pytest.mark.parametrize(
    ("action", "seed"), [("move", 1), ("move", 2), ("delete", 3), ("delete", 4)]
)
def test_undo_killed_again_and_again_then_run_once_more_restores_the_tree_exactly(
    action: str, seed: int, tmp_path: Path
) -> None:
    archive = _archive(tmp_path, near_duplicates=action == "move")
    before = tree_state(archive.root)
    journal, trash = tmp_path / "apply.jsonl", tmp_path / "trash"
    applied = _run_to_the_end(
        ACTING, archive.usb, *_apply_arguments(archive, action, journal, trash)
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert not any(path.exists() for path in archive.duplicates)
    moved_to = trash if action == "move" else None

    # Killed once at each kind of step, in an order and at occurrences the seed picks.
    rng = random.Random(seed)
    kills = 0
    for kind in rng.sample(UNDO_STEPS[action], len(UNDO_STEPS[action])):
        pause_at = f"{kind}:{rng.randint(1, 2)}"
        killed = _kill_at(ACTING, pause_at, tmp_path / "progress", archive.usb, "undo", journal)
        if killed is None:
            break  # that undo ran to the end: nothing left to interrupt
        kills += 1
        _assert_nothing_left_behind(killed)
        _assert_no_file_lost(archive, before, journal, moved_to)
    assert kills >= 2, "undo was hardly interrupted"

    _undo_and_check(archive, before, journal, moved_to)


# -- index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    folder: Path
    images: int
    groups: set[tuple[str, frozenset[str]]]  # from a catalog indexed without interruption


def _membership(report_json: Path) -> set[tuple[str, frozenset[str]]]:
    """Each group as (kept path, duplicate paths): what a user acts on."""
    return {
        (group["keep"]["path"], frozenset(member["path"] for member in group["duplicates"]))
        for group in json.loads(report_json.read_text())["groups"]
    }


def _groups(catalog: Path, out: Path) -> set[tuple[str, frozenset[str]]]:
    grouped = runner.invoke(
        app,
        ["groups", "--catalog", str(catalog), "--out", str(out), "--device", "cpu", "--quiet"],
    )
    assert grouped.exit_code == 0, grouped.output
    return _membership(out)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    """Five photos, two edited copies of each and one exact copy; the groups an uninterrupted
    catalog of them gives."""
    base = tmp_path_factory.mktemp("crash-collection")
    folder = base / "photos"
    (folder / "originals").mkdir(parents=True)
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png"):
        shutil.copyfile(skimage_photo(name), folder / "originals" / name)
        write_edited_copies(
            folder / "originals" / name, folder / "copies", seed=3, families=("crop", "jpeg")
        )
    shutil.copyfile(folder / "originals" / "coffee.png", folder / "copies" / "coffee again.png")
    catalog = base / "uninterrupted"
    clean = index_catalog([str(folder)], catalog, model=MODEL, device="cpu", workers=0)
    groups = _groups(catalog, base / "uninterrupted.json")
    assert len(groups) == 5 and clean.errors == []
    return Collection(folder, clean.images, groups)


def _committed(catalog: Path) -> int:
    try:
        with sqlite3.connect(catalog / "catalog.db", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # killed before the catalog was made


BATCH = 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_killed_at_any_moment_then_run_again_ends_with_the_uninterrupted_groups(
    seed: int, collection: Collection, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    options = ["--catalog", catalog, "-m", MODEL, "--device", "cpu", "--batch-size", BATCH]
    arguments = ["index", collection.folder, *options, "--workers", 2, "--quiet"]
    batches = -(-collection.images // BATCH)
    rng = random.Random(seed)
    kind = rng.choice(
        ["batch embedded", "shard appended", "batch committed", "all stored", "index saved"]
    )
    batch = rng.randint(1, batches) if kind.startswith(("batch", "shard")) else 1
    # What the catalog holds at that moment: a batch counts once its SQLite commit is done.
    expected = {
        "batch embedded": BATCH * (batch - 1),
        "shard appended": BATCH * (batch - 1),
        "batch committed": min(BATCH * batch, collection.images),
    }.get(kind, collection.images)

    killed = _kill_at(INDEXING, f"{kind}:{batch}", tmp_path / "progress", *arguments)

    assert killed is not None, f"index ended before {kind} {batch}"
    if kind.startswith(("batch", "shard")):
        assert len(killed.children) == 2, "the decoding workers were not running"
    _assert_nothing_left_behind(killed)
    committed = _committed(catalog)
    assert committed == expected  # nothing committed is lost; at most the batch in flight is
    with Catalog(catalog) as store, store.reading():
        assert store.embeddings(store.images()).shape == (committed, 512)  # all readable

    resumed = subprocess.run(
        [sys.executable, "-m", "dedup_gpu", *map(str, arguments), "--json"],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert resumed.returncode == 0, resumed.stderr  # not refused: no lock outlived the kill
    summary = json.loads(resumed.stdout)
    assert (summary["added"], summary["unchanged"]) == (collection.images - committed, committed)
    assert (summary["changed"], summary["repaired"], summary["failed"]) == (0, 0, 0)
    assert summary["images"] == collection.images
    with Catalog(catalog) as store:
        assert [run["status"] for run in store.runs()] == ["interrupted", "completed"]
    assert _groups(catalog, tmp_path / "report.json") == collection.groups
