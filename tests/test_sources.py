"""Discovery and exact copies: what gets scanned, what gets reported, nothing fatal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skimage_photo

from dedup_gpu.exact import group_identical
from dedup_gpu.sources import discover


def names(scan) -> list[str]:
    return [os.path.basename(f.path) for f in scan.files]


def test_folders_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    shutil.copyfile(skimage_photo("rocket.jpg"), tmp_path / "b" / "deep" / "rocket.JPG")
    shutil.copyfile(skimage_photo("coffee.png"), tmp_path / "a" / "coffee.png")
    shutil.copyfile(skimage_photo("rocket.jpg"), tmp_path / "camera_dump_0001")  # no extension
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "data.bin").write_bytes(os.urandom(64))

    scan = discover([str(tmp_path)])

    assert names(scan) == [
        "camera_dump_0001",
        "coffee.png",
        "rocket.JPG",
    ]  # a folder's own files first
    assert scan.errors == []
    assert all(f.path.startswith(str(tmp_path)) for f in scan.files)


def test_paths_keep_the_spelling_the_user_gave(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pics").mkdir()
    shutil.copyfile(skimage_photo("rocket.jpg"), tmp_path / "pics" / "rocket.jpg")
    monkeypatch.chdir(tmp_path)

    assert [f.path for f in discover(["pics"]).files] == [os.path.join("pics", "rocket.jpg")]
    assert [f.path for f in discover([str(tmp_path / "pics")]).files] == [
        str(tmp_path / "pics" / "rocket.jpg")
    ]


def test_problems_are_reported_not_fatal(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "root"
    (root / "locked").mkdir(parents=True)
    shutil.copyfile(skimage_photo("rocket.jpg"), root / "rocket.jpg")
    (root / "empty.png").write_bytes(b"")
    os.symlink(root, root / "loop")  # a folder symlink pointing back at its parent
    os.symlink(root / "gone.jpg", root / "dangling.jpg")
    os.link(root / "rocket.jpg", root / "rocket_hardlink.jpg")

    real_scandir = os.scandir

    def scandir(path):  # tests run as root, where chmod 000 does not stop reading
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = discover([str(root), str(tmp_path / "missing")])

    reasons = {os.path.basename(e.path): e.reason for e in scan.errors}
    assert names(scan) == ["rocket.jpg"]
    assert scan.aliases_skipped == 1  # the hard link is the same file, listed once
    assert "symlink loop" in reasons["loop"]
    assert "Permission denied" in reasons["locked"]
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["missing"] == "no such file or folder"
    assert reasons["dangling.jpg"] == "broken symlink"


def test_path_list_skips_comments_and_reports_missing_entries(tmp_path: Path) -> None:
    shutil.copyfile(skimage_photo("rocket.jpg"), tmp_path / "rocket.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# exported from the CMS\n{tmp_path / 'rocket.jpg'}\n\n{tmp_path / 'missing.jpg'}\n"
    )

    scan = discover([], from_list=str(listing))

    assert names(scan) == ["rocket.jpg"]
    assert [(os.path.basename(e.path), e.reason) for e in scan.errors] == [
        ("missing.jpg", "no such file or folder")
    ]
    unreadable = discover([], from_list=str(tmp_path / "nope.txt"))
    assert "cannot read path list" in unreadable.errors[0].reason


def test_names_with_line_separators_survive_path_lists_and_manifests(tmp_path: Path) -> None:
    # U+2028, U+0085 and the like are legal in file names; str.splitlines() ends lines there.
    strange = tmp_path / "rocket\u2028launch\x85day.jpg"
    shutil.copyfile(skimage_photo("rocket.jpg"), strange)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{strange}\n", encoding="utf-8")
    manifest = tmp_path / "images.jsonl"
    manifest.write_text(json.dumps({"path": str(strange)}, ensure_ascii=False) + "\n")

    for scan in (discover([], from_list=str(listing)), discover([], from_list=str(manifest))):
        assert names(scan) == [strange.name], scan.errors
        assert scan.errors == []


def test_identical_bytes_form_one_content_and_unique_sizes_are_not_hashed(tmp_path: Path) -> None:
    data = skimage_photo("rocket.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data)
    (tmp_path / "b.jpg").write_bytes(data)
    (tmp_path / "same_size_other.jpg").write_bytes(bytes(reversed(data)))
    shutil.copyfile(skimage_photo("coffee.png"), tmp_path / "unique.png")

    result = group_identical(discover([str(tmp_path)]).files)

    by_first = {os.path.basename(g.files[0].path): g for g in result.groups}
    assert [os.path.basename(f.path) for f in by_first["a.jpg"].files] == ["a.jpg", "b.jpg"]
    assert len(by_first["same_size_other.jpg"].files) == 1
    assert by_first["same_size_other.jpg"].digest != by_first["a.jpg"].digest
    assert by_first["unique.png"].digest is None  # no twin possible, never read
    assert result.errors == []


@pytest.mark.parametrize("explicit", [True, False])
def test_a_named_non_image_is_kept_for_decoding_to_report(tmp_path: Path, explicit: bool) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    target = str(tmp_path / "notes.txt") if explicit else str(tmp_path)
    assert names(discover([target])) == (["notes.txt"] if explicit else [])


def test_a_fifo_in_the_tree_is_skipped_not_waited_on(tmp_path: Path) -> None:
    # Opening a FIFO to read its first bytes waited for a writer forever, holding the scan (and
    # a catalog's lock) hostage. Anything that is not a regular file is skipped before opening;
    # one with an image's name is reported.
    shutil.copyfile(skimage_photo("rocket.jpg"), tmp_path / "rocket.jpg")
    os.mkfifo(tmp_path / "pipe")
    os.mkfifo(tmp_path / "pipe.jpg")
    code = (
        "import sys; from dedup_gpu.sources import discover; "
        "s = discover([sys.argv[1]]); "
        "print(sorted(f.path for f in s.files)); "
        "print(sorted((e.path, e.reason) for e in s.errors))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    files, errors = found.stdout.splitlines()
    assert files == str([str(tmp_path / "rocket.jpg")])
    assert errors == str([(str(tmp_path / "pipe.jpg"), "not a regular file (a FIFO)")])
