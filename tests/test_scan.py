"""End to end, as a user runs it: real photos and edited copies, scanned with the offline SSCD
model through the real CLI; bad files reported; the report a user reads."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import PHOTOS, write_bad_files
from PIL import Image, ImageOps
from typer.testing import CliRunner

from dedup_gpu import scan
from dedup_gpu.cli import app
from dedup_gpu.synth import EDITS, write_edited_copies

runner = CliRunner()


def original_of(path: str) -> str:
    return Path(path).stem.split("__")[0]


@pytest.fixture
def collection(photo_dir: Path) -> Path:
    """Originals plus one edited copy per family of each, in a separate folder."""
    for photo in sorted(photo_dir.iterdir()):
        write_edited_copies(photo, photo_dir.parent / "copies", seed=7)
    return photo_dir.parent


@pytest.mark.slow
def test_edited_copies_group_with_their_original_and_different_photos_do_not(
    collection: Path,
) -> None:
    report = scan([str(collection)], model="sscd-onnx", device="cpu").report

    assert report.model == "sscd-onnx"
    assert report.counts["images_scanned"] == len(PHOTOS) * (1 + len(EDITS))
    assert report.errors == []
    kept = {original_of(g.keep.path): g for g in report.groups}
    assert len(report.groups) == len(PHOTOS)  # one group per original photo
    for name in PHOTOS:
        group = kept[Path(name).stem]
        assert group.keep.path == str(collection / "photos" / name)  # the original is largest
        families = sorted(Path(m.path).stem.split("__")[1] for m in group.duplicates)
        assert families == sorted(EDITS), name
        assert all(original_of(m.path) == Path(name).stem for m in group.duplicates)
        assert all(report.threshold <= m.score <= 1.0 and not m.exact for m in group.duplicates)


@pytest.mark.slow
def test_cli_reports_bad_files_and_exact_copies_and_exits_zero(
    photo_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    expected_errors = write_bad_files(photo_dir / "bad")
    shutil.copyfile(photo_dir / "coffee.png", photo_dir / "coffee (1).png")
    monkeypatch.chdir(tmp_path)

    result = runner.invoke(
        app,
        [
            "scan",
            "photos",
            "--out",
            "report.json",
            "--csv",
            "report.csv",
            "--max-pixels",
            "10000000",
            "--quiet",
            "--device",
            "cpu",
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["version"] == 7
    assert report["model"] == "sscd-onnx"
    assert set(report) >= {"version", "model", "threshold", "counts", "groups", "errors"}
    errors = {os.path.basename(e["path"]): e["reason"] for e in report["errors"]}
    assert set(errors) == set(expected_errors)
    for name, word in expected_errors.items():
        assert word in errors[name], (name, errors[name])
    assert all(e["path"].startswith("photos" + os.sep) for e in report["errors"])  # as given

    [group] = report["groups"]
    assert group["keep"]["path"] == os.path.join("photos", "coffee.png")  # same size: shorter path
    [duplicate] = group["duplicates"]
    assert duplicate["exact"] is True and duplicate["score"] == 1.0
    assert duplicate["matched"] == group["keep"]["path"]
    coffee_hash = hashlib.blake2b((photo_dir / "coffee.png").read_bytes(), digest_size=32)
    assert group["keep"]["digest"] == duplicate["digest"] == coffee_hash.hexdigest()
    assert report["counts"]["exact_duplicates"] == 1
    assert report["counts"]["reclaimable_bytes"] == (photo_dir / "coffee.png").stat().st_size
    assert report["counts"]["errors"] == len(expected_errors)

    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [row["role"] for row in rows] == ["keep", "duplicate"]
    assert rows[1]["matched"] == rows[0]["path"]
    assert "duplicate groups" in result.output and "skipped with errors" in result.output


def test_cuda_on_a_machine_without_cuda_is_one_clear_error(photo_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["scan", str(photo_dir), "--device", "cuda", "--quiet"])

    assert result.exit_code == 2
    assert "error: --device cuda was requested but no CUDA GPU is usable" in result.output
    assert "hint:" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["scan"], "no images given"),
        (["scan", ".", "--model", "nonsense"], "unknown model 'nonsense'"),
        (["scan", ".", "--threshold", "3"], "--threshold must be a cosine score"),
        # At 0 or below every pair is a candidate: with --verify off, one group of everything.
        (["scan", ".", "--threshold", "-0.5"], "--threshold must be a cosine score above 0"),
        (["scan", ".", "--threshold", "0"], "--threshold must be a cosine score above 0"),
        # ... and 0 pixels would call every image a decompression bomb.
        (["scan", ".", "--max-pixels", "0"], "--max-pixels must be at least 1"),
        (["scan", ".", "--device", "tpu"], "unknown device 'tpu'"),
        (["scan", ".", "--out", "."], "is a folder"),
    ],
)
def test_bad_arguments_get_one_line_and_a_hint(arguments: list[str], message: str) -> None:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_index_and_check_refuse_out_of_range_options_before_touching_the_catalog(
    photo_dir: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    for arguments, message in (
        (["index", str(photo_dir), "--max-pixels", "-5"], "--max-pixels must be at least 1"),
        (["check", str(photo_dir / "chelsea.png"), "--threshold", "-1"], "above 0"),
    ):
        result = runner.invoke(app, [*arguments, "--catalog", str(catalog)])
        assert result.exit_code == 2, result.output
        assert message in result.output
    assert not catalog.exists()


def test_a_root_that_cannot_be_read_fails_the_scan_instead_of_passing_it(
    photo_dir: Path, tmp_path: Path
) -> None:
    # `scan A --against /typo` exited 0 with an empty report: a CI leak check passed.
    out = tmp_path / "r.json"
    for arguments in (
        [str(tmp_path / "nonexistent")],
        [str(photo_dir), "--against", str(tmp_path / "typo")],
    ):
        result = runner.invoke(app, ["scan", *arguments, "--out", str(out), "--quiet"])
        assert result.exit_code == 2, result.output
        assert "cannot read" in result.output and "no such file or folder" in result.output
        assert not out.exists()


def test_more_workers_than_cpus_are_capped_with_a_warning(
    photo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # --workers 1000 started 200 decoding processes on 2 cores. (The warning goes to stderr
    # through logging, which pytest captures here.)
    result = runner.invoke(
        app, ["scan", str(photo_dir), "--workers", "1000", "--out", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 0, result.output
    cpus = os.cpu_count()
    assert f"--workers 1000 is more than the {cpus} CPUs here; using {cpus}" in caplog.text


def test_keep_policy_from_the_command_line(photo_dir: Path, tmp_path: Path) -> None:
    older = photo_dir / "chelsea.png"
    newer = photo_dir / "chelsea-resaved.png"
    shutil.copyfile(older, newer)
    os.utime(older, (1_000_000, 1_000_000))
    out = tmp_path / "r.json"

    for policy, kept in (("oldest", older), ("newest", newer)):
        result = runner.invoke(
            app, ["scan", str(photo_dir), "--keep", policy, "--out", str(out), "--quiet"]
        )
        assert result.exit_code == 0, result.output
        [group] = json.loads(out.read_text())["groups"]
        assert group["keep"]["path"] == str(kept)


def test_from_list_scans_only_the_listed_files(photo_dir: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photo_dir / 'rocket.jpg'}\n{photo_dir / 'coffee.png'}\n")
    result = scan([], from_list=str(listing))
    assert result.report.counts["images_scanned"] == 2


def test_models_command_lists_the_offline_default() -> None:
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "sscd-onnx (default)" in result.output
    assert "ready" in result.output
    assert "clip:ViT-B-32:laion2b_s34b_b79k" in result.output


@pytest.mark.slow
def test_demo_finds_every_edited_copy(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--quiet"])
    assert result.exit_code == 0, result.output
    # scikit-image's text page is read as a page; its downscaled copy's letters are 4 px high,
    # too small to tell one figure from another, so that pair is left for review, not joined.
    assert "edited copies joined to their original: 83/84" in result.output
    assert "pairs joining different photos: 0" in result.output
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert any(
        "page__resize" in " ".join(pair["paths"]) and "too small" in pair["verification"]["reason"]
        for pair in report["unverified_pairs"]
    )

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    refused = runner.invoke(app, ["demo", "--dir", str(tmp_path / "mine"), "--quiet"])
    assert refused.exit_code == 2
    assert "was not made by the demo" in refused.output
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["thesis.txt"]


def test_an_unwritable_report_path_is_one_clear_error(photo_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the report folder should be")

    result = runner.invoke(
        app,
        ["scan", str(photo_dir), "--out", str(blocker / "r.json"), "-q"],
        env={"COLUMNS": "300"},
    )

    assert result.exit_code == 2
    assert f"{blocker} is a file, not a folder" in result.output
    assert "model:" not in result.output  # refused before any model loading or scanning
    assert blocker.read_text().startswith("a file")


def test_a_report_that_cannot_be_written_is_a_typed_error(tmp_path: Path) -> None:
    from dedup_gpu.errors import OutputError
    from dedup_gpu.report import Report, write_json

    report = Report(
        model="m",
        model_info={},
        threshold=0.5,
        keep_policy="largest",
        device="cpu",
        groups=[],
        errors=[],
    )
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        write_json(report, str(tmp_path / "file" / "r.json"))


def test_the_command_line_max_pixels_default_is_the_decoders() -> None:
    import inspect

    from dedup_gpu import cli
    from dedup_gpu.data import DEFAULT_MAX_PIXELS

    assert inspect.signature(cli.scan).parameters["max_pixels"].default == DEFAULT_MAX_PIXELS


def test_hostile_names_are_escaped_on_the_terminal_and_neutralised_in_csv(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name with a CSI sequence cleared the screen when printed; one with a newline forged a
    # line of output; a bidirectional override reversed a name's end; `[bold]` was markup; a
    # cell starting with "=" is run as a formula by spreadsheets.
    names = {
        "clear": "chelsea \x1b[2J\x1b[H.png",
        "newline": "chelsea\nkeep safe.png.png",
        "reversed": "chelsea \u202egnp.exe",
        "markup": "chelsea [bold]x.png",
        "formula": "=HYPERLINK(evil).png",
    }
    for name in names.values():
        shutil.copyfile(photo_dir / "chelsea.png", photo_dir / name)
    monkeypatch.chdir(photo_dir)  # relative paths, as the user typed them
    csv_path = tmp_path / "report.csv"
    files = ["chelsea.png", *names.values()]
    result = runner.invoke(app, ["scan", *files, "--csv", str(csv_path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    shown = result.output
    assert "\x1b[2J" not in shown and "\\x1b[2J\\x1b[H" in shown
    assert "\u202e" not in shown and "\\u202egnp.exe" in shown
    assert "chelsea\\x0akeep" in shown
    assert "\nkeep safe.png" not in shown
    assert "chelsea [bold]x.png" in shown  # shown as written, not taken for markup
    rows = list(csv.DictReader(csv_path.open(newline="")))
    assert "'=HYPERLINK(evil).png" in {row["path"] for row in rows}
    assert not any(row["path"].startswith("=") for row in rows)


def test_csv_cells_that_spreadsheets_would_run_get_an_apostrophe() -> None:
    from dedup_gpu.csv_cells import read_text_cell, text_cell

    for text in ("=1+1", "+1", "-photo.jpg", "@SUM(A1)", "\tx", "\rx"):
        assert text_cell(text) == f"'{text}"
        assert read_text_cell(text_cell(text)) == text
    for text in ("photo.jpg", "/archive/=x.jpg", "'quoted.jpg"):
        assert text_cell(text) == text == read_text_cell(text)


def _rewrite_when_read_begins(monkeypatch, rewrite) -> None:
    """Run `rewrite(paths about to be read)` once, after the scan has listed (and hashed) the
    files and just before it reads them to embed: a camera or a sync client still writing."""
    import dedup_gpu.pipeline as pipeline

    real = pipeline.embedded_batches

    def rewritten_first(paths, *arguments, **options):
        rewrite(list(paths))
        return real(paths, *arguments, **options)

    monkeypatch.setattr(pipeline, "embedded_batches", rewritten_first)


def test_a_file_rewritten_during_a_scan_is_an_error_not_an_old_size_beside_a_new_digest(
    photo_dir: Path, monkeypatch
) -> None:
    # It was reported with the size it had when listed and the digest of the bytes read later.
    growing = photo_dir / "rocket.jpg"
    original_size = growing.stat().st_size
    _rewrite_when_read_begins(
        monkeypatch, lambda _: growing.write_bytes(growing.read_bytes() + b"\0" * 1000)
    )

    report = scan([str(photo_dir)], model="sscd-distilled-onnx", device="cpu", workers=0).report

    reasons = {Path(e.path).name: e.reason for e in report.errors}
    assert reasons == {
        "rocket.jpg": f"changed while it was being scanned ({original_size:,} bytes when "
        f"listed, {original_size + 1000:,} when read); scan it again once it is written"
    }
    assert report.counts["images_scanned"] == len(PHOTOS) - 1
    grouped = [m for g in report.groups for m in (g.keep, *g.duplicates)]
    assert "rocket.jpg" not in {Path(m.path).name for m in grouped}
    for member in grouped:  # what is reported is what was read
        data = Path(member.path).read_bytes()
        assert member.bytes == len(data)
        assert member.digest == hashlib.blake2b(data, digest_size=32).hexdigest()


def test_a_twin_rewritten_in_place_after_hashing_is_named_and_its_copy_not_called_changed(
    photo_dir: Path, monkeypatch
) -> None:
    # Same size, same modification time, other bytes: only the hash can tell.
    twins = [photo_dir / "chelsea.png", photo_dir / "chelsea again.png"]
    with Image.open(twins[0]) as image:
        image.save(twins[0], compress_level=0)
        edited = io.BytesIO()
        ImageOps.mirror(image).save(edited, "PNG", compress_level=9)
    shutil.copyfile(twins[0], twins[1])
    other_bytes = edited.getvalue().ljust(twins[0].stat().st_size, b"\0")  # after IEND: ignored
    rewritten: list[Path] = []

    def rewrite_in_place(paths: list[str]) -> None:
        [read] = [twin for twin in twins if str(twin) in paths]  # the one copy that is read
        listed = read.stat()
        read.write_bytes(other_bytes)
        os.utime(read, ns=(listed.st_atime_ns, listed.st_mtime_ns))
        rewritten.append(read)

    _rewrite_when_read_begins(monkeypatch, rewrite_in_place)

    report = scan([str(photo_dir)], model="sscd-distilled-onnx", device="cpu", workers=0).report

    [read] = rewritten
    [other] = [twin for twin in twins if twin != read]
    reasons = {e.path: e.reason for e in report.errors}
    assert reasons[str(read)].startswith("changed while it was being scanned (other bytes")
    assert reasons[str(other)].startswith(f"not embedded: {read}, byte-identical to it when")
    assert not [g for g in report.groups if "chelsea" in g.keep.path]
