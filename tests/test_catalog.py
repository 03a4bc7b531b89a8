"""A catalog as its users live with it: a collection that grows and changes between runs, a run
killed half-way, a second writer, uploads checked at the door, and a test set leaking into a
training set. Real photos, the real small SSCD model, the real CLI."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import skimage_photo
from typer.testing import CliRunner

from dedup_gpu.catalog import Catalog
from dedup_gpu.cli import app
from dedup_gpu.errors import CatalogBusyError, CatalogModelMismatchError
from dedup_gpu.index import SearchSettings
from dedup_gpu.ingest import check_images, index_catalog
from dedup_gpu.pipeline import groups_from_catalog, scan
from dedup_gpu.synth import write_edited_copies

MODEL = "sscd-distilled-onnx"  # the small offline SSCD model: real copy detection, fast on CPU
runner = CliRunner()

ORIGINALS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png")
FAMILIES = ("crop", "colour", "jpeg", "caption")


def membership(report) -> set[tuple[str, frozenset[str]]]:
    """Each group as (kept path, duplicate paths): what a user acts on."""
    return {
        (group.keep.path, frozenset(member.path for member in group.duplicates))
        for group in report.groups
    }


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """Originals and four edited copies of each, plus one exact copy, in two folders."""
    root = tmp_path / "collection"
    originals = root / "originals"
    originals.mkdir(parents=True)
    for name in ORIGINALS:
        shutil.copyfile(skimage_photo(name), originals / name)
        write_edited_copies(originals / name, root / "copies", seed=3, families=FAMILIES)
    shutil.copyfile(originals / "coffee.png", root / "copies" / "coffee-again.png")
    return root


def index(*paths: Path | str, catalog: Path, **options):
    options.setdefault("model", MODEL)
    options.setdefault("device", "cpu")
    options.setdefault("workers", 0)
    return index_catalog([str(p) for p in paths], catalog, **options)


def test_a_second_run_embeds_only_what_changed_and_forgets_deleted_files(
    collection: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    total = len(ORIGINALS) * (1 + len(FAMILIES)) + 1

    first = index(collection, catalog=catalog)
    assert (first.added, first.changed, first.forgotten, first.unchanged) == (total, 0, 0, 0)
    assert first.images == total and first.errors == []

    again = index(collection, catalog=catalog)
    assert (again.added, again.changed, again.forgotten, again.unchanged) == (0, 0, 0, total)

    # A day later: one photo arrives, one is edited in place, one is deleted.
    shutil.copyfile(skimage_photo("hubble_deep_field.jpg"), collection / "originals" / "hubble.jpg")
    edited = collection / "copies" / "rocket__crop.jpg"
    shutil.copyfile(skimage_photo("retina.jpg"), edited)  # a different picture under that name
    os.utime(edited, (time.time() + 5, time.time() + 5))
    (collection / "copies" / "chelsea__jpeg.jpg").unlink()

    later = index(collection, catalog=catalog)
    assert (later.added, later.changed, later.forgotten) == (1, 1, 1)
    assert later.unchanged == total - 2
    assert later.images == total

    report = groups_from_catalog(catalog, device="cpu", workers=0).report
    paths = {m.path for g in report.groups for m in (g.keep, *g.duplicates)}
    assert str(collection / "copies" / "chelsea__jpeg.jpg") not in paths  # forgotten
    rocket = next(g for g in report.groups if g.keep.path.endswith("rocket.jpg"))
    assert str(edited) not in {m.path for m in rocket.duplicates}  # re-embedded: now a retina

    # Another folder indexed into the same catalog does not make the first one's files vanish.
    other = tmp_path / "disks" / "other"
    other.mkdir(parents=True)
    shutil.copyfile(skimage_photo("page.png"), other / "page.png")
    elsewhere = index(other, catalog=catalog)
    assert (elsewhere.added, elsewhere.forgotten) == (1, 0)
    assert elsewhere.images == total + 1

    # A folder found empty (an unmounted disk looks like that) forgets nothing...
    (other / "page.png").unlink()
    unmounted = index(other, catalog=catalog)
    assert unmounted.forgotten == 0 and unmounted.images == total + 1
    assert "no images found here now" in unmounted.errors[0].reason
    # ... until the folder above it is indexed.
    shutil.copyfile(skimage_photo("camera.png"), tmp_path / "disks" / "camera.png")
    pruned = index(tmp_path / "disks", catalog=catalog)
    assert (pruned.added, pruned.forgotten, pruned.images) == (1, 1, total + 1)


def test_a_missing_root_stops_index_and_forgets_nothing_unless_told(
    collection: Path, tmp_path: Path
) -> None:
    # A drive that is not mounted, a typo: index forgot all the root's images and exited 0.
    catalog = tmp_path / "catalog"
    disk = tmp_path / "disk"
    shutil.copytree(collection / "originals", disk)
    total = index(collection, disk, catalog=catalog).images
    shutil.move(disk, tmp_path / "unplugged")
    options = ["--catalog", str(catalog), "--model", MODEL, "--device", "cpu", "--workers", "0"]

    refused = runner.invoke(app, ["index", str(collection), str(disk), *options])

    assert refused.exit_code == 2, refused.output
    assert f"cannot read {disk}: no such file or folder" in refused.output
    assert "nothing was forgotten" in refused.output and "--forget-missing" in refused.output
    with Catalog(catalog) as store:
        assert store.counts()["images"] == total
    told = runner.invoke(app, ["index", str(collection), str(disk), *options, "--forget-missing"])
    assert told.exit_code == 0, told.output
    with Catalog(catalog) as store:
        assert store.counts()["images"] == total - len(ORIGINALS)


def test_an_unreadable_folder_keeps_its_catalogued_images(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder without read and search permission: it cannot be listed, and its files cannot
    # even be looked up, which index took for proof that they were gone. (Simulated: the tests
    # may run as root, whom permissions do not stop.)
    catalog = tmp_path / "catalog"
    total = index(collection, catalog=catalog).images
    locked = str(collection / "copies")
    scandir, lexists = os.scandir, os.path.lexists

    def locked_scandir(path: str = ".") -> object:
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", locked)
        return scandir(path)

    def locked_lexists(path: str) -> bool:
        return not os.fspath(path).startswith(locked + os.sep) and lexists(path)

    monkeypatch.setattr(os, "scandir", locked_scandir)
    monkeypatch.setattr(os.path, "lexists", locked_lexists)
    again = index(collection, catalog=catalog)

    assert again.forgotten == 0 and again.images == total
    assert [e.reason for e in again.errors] == ["cannot read folder: Permission denied"]


def test_groups_from_the_catalog_equal_a_scan_and_a_new_threshold_embeds_nothing(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    index(collection, catalog=catalog)
    scanned = scan([str(collection)], model=MODEL, device="cpu", workers=0).report

    import dedup_gpu.pipeline as pipeline

    def no_model(*_args, **_kwargs):
        raise AssertionError("groups must not load a model")

    monkeypatch.setattr(pipeline, "open_encoder", no_model)
    monkeypatch.setattr(pipeline, "load_encoder", no_model)
    from_catalog = groups_from_catalog(catalog, device="cpu", workers=0).report

    assert membership(from_catalog) == membership(scanned)
    assert len(from_catalog.groups) == len(ORIGINALS)
    scores = {m.path: m.score for g in scanned.groups for m in g.duplicates}
    for group in from_catalog.groups:
        for member in group.duplicates:
            assert member.score == pytest.approx(scores[member.path], abs=2e-3)
    assert from_catalog.verification["pairs_checked"] == scanned.verification["pairs_checked"]
    assert from_catalog.counts["images_scanned"] == scanned.counts["images_scanned"]
    assert from_catalog.search["kind"] == "exact"

    strict = groups_from_catalog(catalog, threshold=0.9, verify="off", device="cpu").report
    assert 0 < strict.counts["near_duplicates"] < from_catalog.counts["near_duplicates"]
    assert all(m.score >= 0.9 for g in strict.groups for m in g.duplicates)


def test_cli_index_then_groups_writes_the_scan_report_format(
    collection: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    first = runner.invoke(
        app, ["index", str(collection), "--catalog", str(catalog), "-m", MODEL, "--workers", "0"]
    )
    assert first.exit_code == 0, first.output
    assert "new images" in first.output and "26" in first.output

    second = runner.invoke(
        app,
        ["index", str(collection), "--catalog", str(catalog), "--workers", "0", "--json", "-q"],
    )
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert summary["added"] == 0 and summary["unchanged"] == 26 and summary["model"] == MODEL

    out = tmp_path / "report.json"
    grouped = runner.invoke(
        app, ["groups", "--catalog", str(catalog), "--out", str(out), "--workers", "0", "-q"]
    )
    assert grouped.exit_code == 0, grouped.output
    report = json.loads(out.read_text())
    assert report["version"] == 7 and report["model"] == MODEL
    assert report["roots"] == [str(collection)]  # what the index runs read
    assert report["search"]["kind"] == "exact" and report["against"] is None
    assert len(report["groups"]) == len(ORIGINALS)
    assert all(os.path.isabs(g["keep"]["path"]) for g in report["groups"])


def test_a_catalog_refuses_a_run_with_another_model(collection: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    index(collection / "originals", catalog=catalog)

    with pytest.raises(CatalogModelMismatchError, match="sscd-distilled-onnx"):
        index(collection / "copies", catalog=catalog, model="sscd-onnx")
    refused = runner.invoke(
        app, ["index", str(collection / "copies"), "--catalog", str(catalog), "-m", "sscd-onnx"]
    )
    assert refused.exit_code == 2
    assert "built with model 'sscd-distilled-onnx'" in refused.output
    assert "--model sscd-distilled-onnx" in refused.output  # the hint
    with Catalog(catalog) as store:
        assert store.counts()["images"] == len(ORIGINALS)  # nothing was added


def test_a_second_writer_is_refused_and_the_catalog_is_left_intact(
    collection: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    index(collection / "originals", catalog=catalog)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dedup_gpu.catalog import Catalog; "
            f"c = Catalog({str(catalog)!r}, write=True); print('holding', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(CatalogBusyError, match=f"pid {holder.pid}"):
            index(collection / "copies", catalog=catalog)
        refused = runner.invoke(
            app, ["index", str(collection / "copies"), "--catalog", str(catalog)]
        )
        assert refused.exit_code == 2
        assert "second writer is refused" in refused.output
        # Readers are not blocked by a writer.
        assert groups_from_catalog(catalog, verify="off", device="cpu").report.counts[
            "images_scanned"
        ] == len(ORIGINALS)
    finally:
        holder.kill()
        holder.wait()
    # The writer died without closing: the kernel released its lock, so the next run proceeds.
    resumed = index(collection / "copies", catalog=catalog)
    assert resumed.added == len(ORIGINALS) * len(FAMILIES) + 1


def _committed(catalog: Path) -> int:
    try:
        with sqlite3.connect(catalog / "catalog.db", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not created yet


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                found.append(int(status.parent.name))
        except OSError:
            continue  # ended meanwhile
    return found


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_kill_9_of_index_leaves_no_worker_behind_and_the_next_run_starts_at_once(
    collection: Path, tmp_path: Path
) -> None:
    # The decoding workers of a killed index ran on for good (orphans of ~400 MB each) and
    # shared its catalog lock: every later index was refused, naming a dead pid.
    many = tmp_path / "many"
    many.mkdir()
    for number, source in enumerate(sorted((collection / "copies").iterdir()) * 4):
        shutil.copyfile(source, many / f"{number:03d}{source.suffix}")
    catalog = tmp_path / "catalog"
    command = [sys.executable, "-m", "dedup_gpu", "index", str(many), "--catalog", str(catalog)]
    command += ["-m", MODEL, "--device", "cpu", "--batch-size", "2", "--workers", "2", "-q"]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (_committed(catalog) < 2 or len(_children(process.pid)) < 2) and process.poll() is None:
        assert time.monotonic() < deadline, "index made no progress"
        time.sleep(0.05)
    workers = _children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"

    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        if time.monotonic() > deadline:
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"workers {workers} outlived their killed parent by 5 s")
        time.sleep(0.1)
    resumed = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_kill_9_at_any_moment_loses_at_most_the_batch_in_flight(
    collection: Path, tmp_path: Path
) -> None:
    total = len(ORIGINALS) * (1 + len(FAMILIES)) + 1
    catalog = tmp_path / "catalog"
    command = [
        sys.executable,
        "-m",
        "dedup_gpu",
        "index",
        str(collection),
        "--catalog",
        str(catalog),
        "-m",
        MODEL,
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--json",
        "-q",
    ]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    committed_before = 0
    # Killed while starting, after the first batches, mid-way and near the end.
    for kill_after_rows in (0, 2, 9, 17):
        process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while _committed(catalog) < kill_after_rows and process.poll() is None:
            assert time.monotonic() < deadline, "index made no progress"
            time.sleep(0.01)
        if kill_after_rows == 0:
            time.sleep(1.0)  # somewhere in start-up: imports, model load, the first decode
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
        committed = _committed(catalog)
        assert committed >= committed_before  # nothing committed is ever lost
        if committed:
            with Catalog(catalog) as store, store.reading():
                images = store.images()
                assert store.embeddings(images).shape == (committed, 512)  # all readable
        committed_before = committed

    resumed = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    summary = json.loads(resumed.stdout)
    # Only what was not committed before the last kill is embedded again.
    assert summary["added"] == total - committed_before
    assert summary["unchanged"] == committed_before
    assert summary["images"] == total
    with Catalog(catalog) as store:
        statuses = [run["status"] for run in store.runs()]
    assert statuses == ["interrupted"] * (len(statuses) - 1) + ["completed"]

    uninterrupted = tmp_path / "uninterrupted"
    index(collection, catalog=uninterrupted)
    after_kills = groups_from_catalog(catalog, device="cpu", workers=0).report
    clean = groups_from_catalog(uninterrupted, device="cpu", workers=0).report
    assert membership(after_kills) == membership(clean)
    assert len(after_kills.groups) == len(ORIGINALS)


def test_check_tells_an_ingest_script_which_uploads_are_copies(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    index(collection / "originals", catalog=catalog)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    crop = uploads / "cropped.jpg"
    shutil.copyfile(collection / "copies" / "astronaut__crop.jpg", crop)
    exact = uploads / "same-bytes.png"
    shutil.copyfile(collection / "originals" / "chelsea.png", exact)
    new = uploads / "new.jpg"
    shutil.copyfile(skimage_photo("hubble_deep_field.jpg"), new)
    broken = uploads / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    arguments = [str(crop), str(exact), str(new), str(broken)]
    # The saved index is current, so checking reads none of the stored rows (in a catalog of a
    # million images that read would cost seconds per upload).
    monkeypatch.setattr(Catalog, "images", lambda self: pytest.fail("check read every row"))

    checked = runner.invoke(
        app, ["check", *arguments, "--catalog", str(catalog), "--json", "--top", "2"]
    )
    monkeypatch.undo()
    assert checked.exit_code == 1, checked.output  # at least one duplicate
    lines = [json.loads(line) for line in checked.stdout.splitlines()]
    assert [line["path"] for line in lines] == arguments  # in the order given
    by_name = {Path(line["path"]).name: line for line in lines}
    assert by_name["cropped.jpg"]["verdict"] == "duplicate"
    best = by_name["cropped.jpg"]["matches"][0]
    assert best["path"].endswith("astronaut.png") and best["duplicate"] and not best["exact"]
    assert best["verification"]["accepted"]
    assert by_name["same-bytes.png"]["verdict"] == "duplicate"
    assert by_name["same-bytes.png"]["matches"][0]["exact"]
    assert by_name["new.jpg"]["verdict"] == "new"
    assert not any(m["duplicate"] for m in by_name["new.jpg"]["matches"])
    assert len(by_name["new.jpg"]["matches"]) == 2  # its nearest neighbours, for context
    assert by_name["broken.jpg"]["verdict"] == "error" and by_name["broken.jpg"]["error"]
    assert not any(line["added"] for line in lines)

    added = check_images([str(new), str(crop)], catalog, add=True, device="cpu", workers=0)
    assert [(r.verdict, r.added) for r in added] == [("new", True), ("duplicate", False)]
    with Catalog(catalog) as store:
        assert store.counts()["images"] == len(ORIGINALS) + 1
    again = runner.invoke(app, ["check", str(new), "--catalog", str(catalog)])
    assert again.exit_code == 1 and "duplicate" in again.output and "exact" in again.output

    fresh = runner.invoke(
        app, ["check", str(collection / "copies" / "rocket__jpeg.jpg"), "--catalog", str(tmp_path)]
    )
    assert fresh.exit_code == 2 and "is not a dedup-gpu catalog" in fresh.output


def test_check_add_with_a_mistyped_catalog_creates_nothing_unless_asked(
    collection: Path, tmp_path: Path
) -> None:
    upload = str(collection / "originals" / "rocket.jpg")
    typo = tmp_path / "archive.catalgo"
    refused = runner.invoke(app, ["check", upload, "--catalog", str(typo), "--add"])
    assert refused.exit_code == 2 and f"no catalog at {typo}" in refused.output
    assert not typo.exists()
    options = ["--model", MODEL, "--device", "cpu"]
    created = runner.invoke(
        app, ["check", upload, "--catalog", str(typo), "--add", "--create", *options]
    )
    assert created.exit_code == 0, created.output
    with Catalog(typo) as store:
        assert store.counts()["images"] == 1


def test_check_judges_uploads_in_order_so_two_copies_in_one_batch_are_not_both_added(
    collection: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    index(collection / "originals" / "rocket.jpg", catalog=catalog)
    first = collection / "copies" / "coffee__colour.jpg"
    second = collection / "copies" / "coffee__crop.jpg"

    results = check_images([str(first), str(second)], catalog, add=True, device="cpu")

    assert [r.verdict for r in results] == ["new", "duplicate"]
    assert results[1].matches[0].path == str(first) and results[1].matches[0].earlier_in_check
    with Catalog(catalog) as store:
        assert store.counts()["images"] == 2
    unreadable = runner.invoke(
        app, ["check", str(tmp_path / "missing.jpg"), "--catalog", str(catalog)]
    )
    assert unreadable.exit_code == 3 and "no such file" in unreadable.output


def _leakage_sets(collection: Path, tmp_path: Path) -> tuple[Path, Path]:
    train, test = tmp_path / "train", tmp_path / "test"
    shutil.copytree(collection / "originals", train)
    shutil.copyfile(collection / "copies" / "chelsea__crop.jpg", train / "chelsea-crop.jpg")
    test.mkdir()
    shutil.copyfile(collection / "copies" / "astronaut__colour.jpg", test / "a.jpg")
    shutil.copyfile(collection / "copies" / "camera__caption.jpg", test / "b.jpg")
    shutil.copyfile(collection / "originals" / "rocket.jpg", test / "c.jpg")  # the same bytes
    shutil.copyfile(skimage_photo("hubble_deep_field.jpg"), test / "d.jpg")  # not in train
    return train, test


def test_scan_against_reports_only_copies_across_the_two_sets(
    collection: Path, tmp_path: Path
) -> None:
    train, test = _leakage_sets(collection, tmp_path)

    report = scan([str(train)], against=[str(test)], model=MODEL, device="cpu", workers=0).report

    assert membership(report) == {
        (str(test / "a.jpg"), frozenset({str(train / "astronaut.png")})),
        (str(test / "b.jpg"), frozenset({str(train / "camera.png")})),
        (str(test / "c.jpg"), frozenset({str(train / "rocket.jpg")})),
    }  # the crop of chelsea within the training set is not a leak
    assert report.against == {
        "reference": [str(test)],
        "reference_images": 4,
        "query_images": len(ORIGINALS) + 1,
    }
    rocket = next(g for g in report.groups if g.keep.path.endswith("c.jpg"))
    assert rocket.duplicates[0].exact

    out = tmp_path / "leaks.json"
    cli = runner.invoke(
        app,
        ["scan", str(train), "--against", str(test), "-m", MODEL, "-o", str(out), "--workers", "0"],
    )
    assert cli.exit_code == 0, cli.output
    assert "copies across the sets" in cli.output
    assert json.loads(out.read_text())["against"]["reference_images"] == 4


def test_groups_against_another_catalog_finds_the_same_leaks(
    collection: Path, tmp_path: Path
) -> None:
    train, test = _leakage_sets(collection, tmp_path)
    index(train, catalog=tmp_path / "train-catalog")
    index(test, catalog=tmp_path / "test-catalog")

    report = groups_from_catalog(
        tmp_path / "train-catalog", against=tmp_path / "test-catalog", device="cpu", workers=0
    ).report
    scanned = scan([str(train)], against=[str(test)], model=MODEL, device="cpu", workers=0)

    assert membership(report) == membership(scanned.report)
    assert report.against["reference_images"] == 4

    index(collection / "originals", catalog=tmp_path / "other-model", model="sscd-onnx")
    mismatch = runner.invoke(
        app,
        [
            "groups",
            "-c",
            str(tmp_path / "train-catalog"),
            "--against",
            str(tmp_path / "other-model"),
        ],
    )
    assert mismatch.exit_code == 2 and "sscd-onnx" in mismatch.output


def test_an_ivf_catalog_groups_like_exact_search_and_is_updated_in_place(
    collection: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    ivf = SearchSettings(kind="ivf", nlist=4, nprobe=4)  # every list searched: exact recall
    first = index(collection / "originals", collection / "copies", catalog=catalog, search=ivf)
    assert first.search["kind"] == "ivf" and first.search["nlist"] == 4

    approximate = groups_from_catalog(catalog, search=ivf, device="cpu", workers=0).report
    exact = groups_from_catalog(
        catalog, search=SearchSettings(kind="exact"), device="cpu", workers=0
    ).report
    assert approximate.search["kind"] == "ivf" and approximate.search["nprobe"] == 4
    assert membership(approximate) == membership(exact)

    with Catalog(catalog) as store:
        trained = store.index_state
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copyfile(collection / "copies" / "rocket__crop.jpg", extra / "another-rocket.jpg")
    index(extra, catalog=catalog, search=ivf)
    with Catalog(catalog) as store:
        updated = store.index_state
    assert updated["built_with_rows"] == trained["built_with_rows"]  # added, not retrained
    assert updated["generation"] > trained["generation"]
    report = groups_from_catalog(catalog, search=ivf, device="cpu", workers=0).report
    rocket = next(g for g in report.groups if g.keep.path.endswith("rocket.jpg"))
    assert str(extra / "another-rocket.jpg") in {m.path for m in rocket.duplicates}


def test_bad_files_are_recorded_with_their_reason_and_retried_only_when_they_change(
    collection: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copyfile(skimage_photo("coffee.png"), folder / "coffee.png")
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "empty.png").write_bytes(b"")
    catalog = tmp_path / "catalog"

    first = index(folder, catalog=catalog)
    assert first.failed == 2 and first.images == 1
    assert {Path(e.path).name for e in first.errors} == {"broken.jpg", "empty.png"}
    second = index(folder, catalog=catalog)
    assert second.failed == 0 and second.unchanged == 2  # not retried while unchanged

    shutil.copyfile(skimage_photo("rocket.jpg"), broken)  # fixed by the user
    os.utime(broken, (time.time() + 5, time.time() + 5))
    third = index(folder, catalog=catalog)
    assert third.changed == 1 and third.images == 2
    report = groups_from_catalog(catalog, device="cpu", workers=0).report
    assert [Path(e.path).name for e in report.errors] == ["empty.png"]


def test_many_small_additions_are_merged_and_deleted_rows_reclaimed(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_gpu.catalog as catalog_module
    from dedup_gpu.pipeline import open_encoder

    monkeypatch.setattr(catalog_module, "MAX_SHARDS", 3)
    catalog = tmp_path / "catalog"
    encoder = open_encoder(MODEL, "cpu")
    uploads = sorted((collection / "originals").iterdir())
    for upload in uploads:  # one upload at a time, as an ingest service would
        (result,) = check_images([str(upload)], catalog, add=True, create=True, encoder=encoder)
        assert result.added
    shards = sorted((catalog / "embeddings").iterdir())
    assert 1 <= len(shards) <= 3
    copies = index(collection / "copies", catalog=catalog, encoder=encoder)
    assert copies.images == len(uploads) + len(ORIGINALS) * len(FAMILIES) + 1

    for path in (collection / "copies").iterdir():  # most of the catalog is deleted
        path.unlink()
    pruned = index(collection, catalog=catalog, encoder=encoder)
    assert pruned.forgotten == len(ORIGINALS) * len(FAMILIES) + 1
    stored_rows = sum(path.stat().st_size for path in (catalog / "embeddings").iterdir()) // 1024
    assert stored_rows == len(uploads)  # 512 float16 values a row: dead rows were reclaimed
    report = groups_from_catalog(catalog, device="cpu", workers=0).report
    assert report.counts["images_scanned"] == len(uploads) and report.groups == []


@pytest.fixture
def read_only_view(tmp_path: Path):
    """A read-only bind mount of a folder (an archive mount, a read-only share); skips where
    this machine may not mount."""
    view = tmp_path / "read-only view"
    view.mkdir()

    def mount(folder: Path) -> Path:
        made = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {made.stderr.decode().strip()}")
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        return view

    yield mount
    subprocess.run(["umount", str(view)], capture_output=True)


def test_a_catalog_on_read_only_media_is_read_not_called_damaged(
    collection: Path, tmp_path: Path, read_only_view
) -> None:
    # groups and check on a read-only mount said "catalog ... is damaged: unable to open
    # database file": SQLite could not make its -shm file, and the read lock could not be
    # opened. Readers now read such a catalog as immutable; a writer is refused, clearly.
    catalog = tmp_path / "catalog"
    index(collection / "originals", catalog=catalog)
    view = read_only_view(catalog)

    grouped = runner.invoke(app, ["groups", "--catalog", str(view), "--quiet"])
    assert grouped.exit_code == 0, grouped.output
    upload = str(collection / "copies" / "coffee-again.png")
    checked = runner.invoke(app, ["check", upload, "--catalog", str(view)])
    assert checked.exit_code == 1 and "exact" in checked.output, checked.output
    refused = runner.invoke(app, ["index", str(collection), "--catalog", str(view)])
    assert refused.exit_code == 2 and "damaged" not in refused.output
    assert "Read-only file system" in refused.output


def test_index_skips_a_name_that_is_not_utf8_with_a_reason(
    collection: Path, tmp_path: Path
) -> None:
    # It was an internal error: SQLite stores text as UTF-8, and the whole run died.
    odd = os.path.join(os.fsencode(collection / "originals"), b"rocket \xff.jpg")
    shutil.copyfile(collection / "originals" / "rocket.jpg", odd)
    run = index(collection / "originals", catalog=tmp_path / "catalog")
    assert run.images == len(ORIGINALS)
    assert [(os.fsencode(e.path), e.reason) for e in run.errors] == [
        (odd, "the name is not valid UTF-8, which a catalog cannot store; rename it")
    ]


def test_index_embeds_again_what_a_lost_or_cut_shard_held(collection: Path, tmp_path: Path) -> None:
    # A shard deleted or truncated (a disk error, a careless cleanup): index said all was well
    # and groups failed until the catalog was rebuilt by hand.
    catalog = tmp_path / "catalog"
    total = index(collection / "originals", catalog=catalog).images
    before = membership(groups_from_catalog(catalog, device="cpu", workers=0).report)
    [shard] = sorted((catalog / "embeddings").iterdir())
    shard.unlink()

    repaired = index(collection / "originals", catalog=catalog)

    assert (repaired.repaired, repaired.added, repaired.changed) == (total, 0, 0)
    assert membership(groups_from_catalog(catalog, device="cpu", workers=0).report) == before
    again = index(collection / "originals", catalog=catalog)
    assert (again.repaired, again.unchanged) == (0, total)


def _damage_page(database: Path, page: int) -> None:
    """Overwrite one 4 KiB page of an SQLite file with garbage, as a bad sector or a stray
    write would."""
    with open(database, "r+b") as handle:
        handle.seek((page - 1) * 4096)
        handle.write(b"\x5a" * 4096)


def _damaged_table_page(catalog: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(catalog / "catalog.db")) as db:
        return int(
            db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        )


@pytest.mark.parametrize("table", ["files", "runs", "thumbnails"])
def test_a_damaged_database_is_refused_named_and_repaired(
    table: str, collection: Path, tmp_path: Path
) -> None:
    # Garbage written into catalog.db: index exited 0 on it and groups died with an internal
    # error ("DatabaseError: database disk image is malformed").
    catalog = tmp_path / "catalog"
    folder = str(collection / "originals")
    assert (
        runner.invoke(app, ["index", folder, "-c", str(catalog), "-m", MODEL, "-q"]).exit_code == 0
    )
    out = tmp_path / "before.json"
    assert (
        runner.invoke(app, ["groups", "-c", str(catalog), "--out", str(out), "-q"]).exit_code == 0
    )
    before = json.loads(out.read_text())["groups"]
    healthy = runner.invoke(app, ["catalog", "verify", "-c", str(catalog)])
    assert healthy.exit_code == 0 and "healthy" in healthy.output
    _damage_page(catalog / "catalog.db", _damaged_table_page(catalog, table))

    indexed = runner.invoke(app, ["index", folder, "-c", str(catalog), "-q"])
    assert indexed.exit_code == 2, indexed.output
    assert "is damaged" in indexed.output and "catalog repair" in indexed.output
    grouped = runner.invoke(app, ["groups", "-c", str(catalog), "--out", str(out), "-q"])
    assert "internal error" not in grouped.output
    verified = runner.invoke(app, ["catalog", "verify", "-c", str(catalog)])
    assert verified.exit_code == 1 and "problem database" in verified.output, verified.output

    repaired = runner.invoke(app, ["catalog", "repair", "-c", str(catalog), "-q"])

    assert repaired.exit_code == 0, repaired.output
    assert "the database was damaged" in repaired.output
    [kept_aside] = catalog.glob("catalog.db.damaged-*")  # never deleted
    assert kept_aside.stat().st_size > 0
    assert runner.invoke(app, ["catalog", "verify", "-c", str(catalog)]).exit_code == 0
    # What the lost rows held comes back with the next index of the folder.
    assert runner.invoke(app, ["index", folder, "-c", str(catalog), "-q"]).exit_code == 0
    assert (
        runner.invoke(app, ["groups", "-c", str(catalog), "--out", str(out), "-q"]).exit_code == 0
    )
    assert json.loads(out.read_text())["groups"] == before


@pytest.mark.parametrize("damage", ["deleted", "cut short", "overwritten"])
def test_a_lost_shard_is_found_skipped_by_groups_and_embedded_again_by_repair(
    damage: str, collection: Path, tmp_path: Path
) -> None:
    # A shard deleted, truncated or with flipped bytes: index said all was well, and groups
    # failed or silently compared damaged embeddings.
    catalog = tmp_path / "catalog"
    total = index(collection / "originals", catalog=catalog).images
    before = membership(groups_from_catalog(catalog, device="cpu", workers=0).report)
    [shard] = sorted((catalog / "embeddings").iterdir())
    if damage == "deleted":
        shard.unlink()
    elif damage == "cut short":
        os.truncate(shard, shard.stat().st_size // 2)
    else:
        with open(shard, "r+b") as handle:
            handle.seek(100)
            handle.write(b"\x00\x7c\x00\x7c")  # two float16 infinities

    verified = runner.invoke(app, ["catalog", "verify", "-c", str(catalog)])
    assert verified.exit_code == 1, verified.output
    assert {"deleted": "missing", "cut short": "cut short", "overwritten": "digest differs"}[
        damage
    ] in verified.output
    report = groups_from_catalog(catalog, device="cpu", workers=0).report
    lost = [e for e in report.errors if "stored embedding is lost" in e.reason]
    assert lost and len(lost) <= total  # named, not compared
    assert not any(e.path in {m.path for g in report.groups for m in g.duplicates} for e in lost)

    repaired = runner.invoke(app, ["catalog", "repair", "-c", str(catalog), "-q"])

    assert repaired.exit_code == 0, repaired.output
    assert f"{len(lost)} lost embedding(s), {len(lost)} embedded again" in repaired.output
    assert runner.invoke(app, ["catalog", "verify", "-c", str(catalog)]).exit_code == 0
    assert membership(groups_from_catalog(catalog, device="cpu", workers=0).report) == before


def test_repair_names_a_lost_image_it_cannot_read_again(collection: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    index(collection / "originals", catalog=catalog)
    [shard] = sorted((catalog / "embeddings").iterdir())
    shard.unlink()
    gone = collection / "originals" / "rocket.jpg"
    gone.rename(tmp_path / "rocket.jpg")  # an unmounted disk, a file moved away

    repaired = runner.invoke(app, ["catalog", "repair", "-c", str(catalog), "-q"])

    assert repaired.exit_code == 1, repaired.output
    assert "still lost" in repaired.output and "rocket.jpg" in repaired.output
    assert "1 still lost" in repaired.output
    report = groups_from_catalog(catalog, device="cpu", workers=0).report
    assert any(e.path == str(gone) for e in report.errors)  # never forgotten
    (tmp_path / "rocket.jpg").rename(gone)
    again = runner.invoke(app, ["catalog", "repair", "-c", str(catalog), "-q"])
    assert again.exit_code == 0 and "1 embedded again" in again.output, again.output


def test_a_file_rewritten_while_index_reads_it_is_stored_as_an_error_and_embedded_next_time(
    collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_gpu.ingest as ingest

    growing = collection / "originals" / "rocket.jpg"
    real = ingest.embedded_batches

    def still_being_written(paths, *arguments, **options):
        growing.write_bytes(growing.read_bytes() + b"\0" * 500)  # after listing, before reading
        return real(paths, *arguments, **options)

    monkeypatch.setattr(ingest, "embedded_batches", still_being_written)
    catalog = tmp_path / "catalog"
    first = index(collection, catalog=catalog)
    [error] = [e for e in first.errors if e.path == str(growing)]
    assert error.reason.startswith("changed while it was being scanned (")
    with Catalog(catalog) as store, store.reading():
        assert str(growing) not in {file.path for file in store.images().files}

    monkeypatch.setattr(ingest, "embedded_batches", real)  # the file is written now
    again = index(collection, catalog=catalog)
    assert (again.changed, again.failed) == (1, 0)
    with Catalog(catalog) as store, store.reading():
        assert str(growing) in {file.path for file in store.images().files}
