"""Images that do not live in local folders, as users keep them: an S3 bucket (a real
S3-compatible server on loopback, credentials and endpoint from the environment only), web URLs,
WebDataset tar shards as img2dataset writes them, Parquet exports of Hugging Face datasets, and
CSV/JSONL manifests that mix local paths with URLs. Each is scanned with the real small SSCD
model; bad objects, members, rows and arguments are one-line errors, never a crash; actions touch
only local files."""

from __future__ import annotations

import functools
import http.server
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PHOTOS, skimage_photo
from PIL import Image
from typer.testing import CliRunner

from dedup_gpu import storage
from dedup_gpu.actions import plan_changes
from dedup_gpu.cli import app
from dedup_gpu.errors import BadArgumentError
from dedup_gpu.exact import content_digest
from dedup_gpu.ingest import check_images, index_catalog
from dedup_gpu.pipeline import groups_from_catalog, open_encoder, scan
from dedup_gpu.report import read_report, write_json
from dedup_gpu.review import write_review
from dedup_gpu.sources import discover
from dedup_gpu.synth import write_edited_copies

MODEL = "sscd-distilled-onnx"  # the small offline SSCD model: real copy detection, fast on CPU
BUCKET = "archive"
runner = CliRunner()


@pytest.fixture(scope="module")
def encoder():
    return open_encoder(MODEL, "cpu")


@pytest.fixture(autouse=True)
def fresh_storage() -> Iterator[None]:
    storage.clear_caches()
    yield
    storage.clear_caches()


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """An S3-compatible server (moto) on loopback with an empty bucket; dedup-gpu finds it only
    through the standard AWS environment variables. Yields an s3fs filesystem to upload with."""
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its buckets per process: start each test from an empty store.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")
    ).close()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    storage.clear_caches()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    try:
        yield fs
    finally:
        storage.clear_caches()
        server.stop()


def upload(fs, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe_file(
                f"{BUCKET}/{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes()
            )


def membership(report, rename=lambda path: path) -> set[tuple[str, frozenset[str]]]:
    """Each group as (kept path, duplicate paths): what a user acts on."""
    return {
        (rename(group.keep.path), frozenset(rename(m.path) for m in group.duplicates))
        for group in report.groups
    }


def group_sets(report) -> set[frozenset[str]]:
    """Each group as the set of its paths, whichever copy is kept."""
    return {
        frozenset([group.keep.path, *(m.path for m in group.duplicates)]) for group in report.groups
    }


def errors_by_path(report_or_scan) -> dict[str, str]:
    found = {error.path: error.reason for error in report_or_scan.errors}
    assert all("\n" not in reason and reason for reason in found.values()), found
    return found


def crop_of(photo: Path, folder: Path) -> Path:
    return write_edited_copies(photo, folder, seed=3, families=("crop",))["crop"]


def broken_jpeg() -> bytes:
    good = skimage_photo("rocket.jpg").read_bytes()
    return good[:600] + bytes(range(256)) * 8  # a JPEG header, then noise


def write_shard(path: Path, images: list[tuple[str, bytes]], *, start: int = 0) -> list[str]:
    """An img2dataset shard: per sample, the image and its .json and .txt sidecars. Returns the
    image members' names."""
    names = []
    with tarfile.open(path, "w") as tar:
        for number, (extension, data) in enumerate(images, start=start):
            key = f"{number:09d}"
            sample = {
                f"{key}{extension}": data,
                f"{key}.json": json.dumps({"key": key, "status": "success"}).encode(),
                f"{key}.txt": f"caption {number}".encode(),
            }
            for name, content in sample.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mtime = 1_700_000_000
                tar.addfile(info, io.BytesIO(content))
            names.append(f"{key}{extension}")
    return names


def photo_bytes(name: str) -> tuple[str, bytes]:
    return os.path.splitext(name)[1], skimage_photo(name).read_bytes()


# S3


def test_an_s3_prefix_is_scanned_like_a_folder_and_groups_like_the_same_files_on_disk(
    s3, photo_dir: Path, tmp_path: Path, encoder
) -> None:
    mirror = photo_dir  # the same tree is uploaded and scanned on disk
    (mirror / "copies").mkdir()
    shutil.copyfile(mirror / "coffee.png", mirror / "copies" / "coffee (1).png")
    crop = crop_of(mirror / "astronaut.png", mirror / "copies")
    (mirror / "broken.jpg").write_bytes(broken_jpeg())
    (mirror / "notes.txt").write_text("not an image; under a prefix only extensions count")
    upload(s3, mirror, "photos")
    prefix = f"s3://{BUCKET}/photos"

    # A named object or bucket that is not there is a mistake to stop at, not an empty set.
    for missing, reason in (
        (f"{prefix}/gone.jpg", "no such object"),
        ("s3://no-such-bucket/photos/", "no such bucket"),
    ):
        with pytest.raises(BadArgumentError, match=f"cannot read {missing}: {reason}"):
            scan([f"{prefix}/", missing], encoder=encoder, workers=0)
    remote = scan(
        [f"{prefix}/"],
        encoder=encoder,
        workers=2,  # forked decoding workers read the objects themselves
    ).report
    local = scan([str(mirror)], encoder=encoder, workers=0).report

    def on_disk(path: str) -> str:
        return path.replace(prefix, str(mirror), 1)

    assert membership(remote, on_disk) == membership(local)
    assert membership(remote) == {
        (f"{prefix}/coffee.png", frozenset([f"{prefix}/copies/coffee (1).png"])),
        (f"{prefix}/astronaut.png", frozenset([f"{prefix}/copies/{crop.name}"])),
    }
    exact = {m.path: m.exact for g in remote.groups for m in g.duplicates}
    assert exact == {f"{prefix}/copies/coffee (1).png": True, f"{prefix}/copies/{crop.name}": False}
    assert remote.counts["images_scanned"] == len(PHOTOS) + 2

    errors = errors_by_path(remote)
    assert set(errors) == {f"{prefix}/broken.jpg"}
    assert errors[f"{prefix}/broken.jpg"] == errors_by_path(local)[str(mirror / "broken.jpg")]

    # The report keeps the URLs; acting on it changes nothing in the bucket.
    write_json(remote, str(tmp_path / "report.json"))
    changes, skipped = plan_changes(read_report(str(tmp_path / "report.json")), "delete")
    assert changes == []
    assert {path for path, _ in skipped} == {
        f"{prefix}/copies/coffee (1).png",
        f"{prefix}/copies/{crop.name}",
    }
    assert all("in an object store" in r and "only changes local files" in r for _, r in skipped)


def test_a_single_object_url_is_one_file_and_an_unreachable_endpoint_is_one_line(
    s3, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(s3, photo_dir, "photos")
    s3.pipe_file(f"{BUCKET}/photos/empty.jpg", b"")
    url = f"s3://{BUCKET}/photos/rocket.jpg"

    found = discover([url, f"s3://{BUCKET}/photos/empty.jpg"])
    assert [(f.path, f.size) for f in found.files] == [
        (url, (photo_dir / "rocket.jpg").stat().st_size)
    ]
    assert found.files[0].mtime > 0  # the object's LastModified
    assert errors_by_path(found) == {f"s3://{BUCKET}/photos/empty.jpg": "empty file (0 bytes)"}
    assert storage.read_bytes(url) == (photo_dir / "rocket.jpg").read_bytes()
    assert content_digest(url) == content_digest(str(photo_dir / "rocket.jpg"))

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage.clear_caches()
    unreachable = discover([url])
    assert unreachable.files == []
    assert list(errors_by_path(unreachable)) == [url]
    assert unreachable.errors[0].reason.startswith("cannot open: ")


# WebDataset shards


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """An img2dataset output folder: two shards with metadata beside them, a copy, a crop, a
    corrupt and an empty member, and a third shard cut short."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    write_shard(folder / "00000.tar", [photo_bytes(name) for name in PHOTOS])
    pq.write_table(  # img2dataset's per-shard metadata: no image bytes in it
        pa.table({"url": ["http://example.com/a.jpg"], "caption": ["a"], "key": ["000000000"]}),
        folder / "00000.parquet",
    )
    (folder / "00000_stats.json").write_text('{"count": 8}')
    crop = crop_of(skimage_photo("chelsea.png"), tmp_path / "edits")
    write_shard(
        folder / "00001.tar",
        [
            photo_bytes("rocket.jpg"),
            (".jpg", crop.read_bytes()),
            (".jpg", broken_jpeg()),
            (".jpg", b""),
        ],
        start=10_000,
    )
    write_shard(tmp_path / "whole.tar", [photo_bytes("coins.png"), photo_bytes("moon.png")])
    with tarfile.open(tmp_path / "whole.tar") as whole:
        moon = whole.getmember("000000001.png")
    cut = (tmp_path / "whole.tar").read_bytes()[: moon.offset_data + moon.size // 2]
    (folder / "00002.tar").write_bytes(cut)  # a download that stopped inside moon.png
    return folder


def test_webdataset_shards_in_a_folder_are_expanded_and_copies_found_across_shards(
    shards: Path, tmp_path: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = scan(["dataset"], encoder=encoder, workers=0).report

    member = {
        name: f"dataset/00000.tar#{n:09d}{os.path.splitext(name)[1]}"
        for n, name in enumerate(PHOTOS)
    }
    assert group_sets(report) == {
        frozenset([member["rocket.jpg"], "dataset/00001.tar#000010000.jpg"]),
        frozenset([member["chelsea.png"], "dataset/00001.tar#000010001.jpg"]),
    }
    assert report.counts["images_scanned"] == len(PHOTOS) + 2 + 1  # and coins.png of 00002.tar
    errors = errors_by_path(report)
    assert set(errors) == {
        "dataset/00001.tar#000010002.jpg",
        "dataset/00001.tar#000010003.jpg",
        "dataset/00002.tar",
    }
    corrupt = errors["dataset/00001.tar#000010002.jpg"]
    assert any(word in corrupt for word in ("corrupt", "truncated", "not an image")), corrupt
    assert errors["dataset/00001.tar#000010003.jpg"] == "empty file (0 bytes)"
    assert errors["dataset/00002.tar"].startswith("damaged tar shard")
    assert "000000001.png" in errors["dataset/00002.tar"]  # moon.png, where it was cut

    # A shard or a member named directly; a member that is not there; not a tar at all.
    (tmp_path / "fake.tar").write_bytes(b"plain text, not a tar" * 100)
    found = discover(
        [
            "dataset/00001.tar#000010001.jpg",
            "dataset/00001.tar#000010099.jpg",
            "dataset/00001.tar#000010000.json",
            "fake.tar",
        ]
    )
    assert [f.path for f in found.files] == [
        "dataset/00001.tar#000010001.jpg",
        "dataset/00001.tar#000010000.json",  # named directly: tried, like any named file
    ]
    errors = errors_by_path(found)
    assert errors["dataset/00001.tar#000010099.jpg"] == "no member 000010099.jpg in the tar shard"
    assert errors["fake.tar"].startswith("not a tar shard")


def test_shards_in_an_s3_prefix_are_read_member_by_member(s3, shards: Path, encoder) -> None:
    upload(s3, shards, "shards")
    prefix = f"s3://{BUCKET}/shards"

    report = scan([f"{prefix}/"], encoder=encoder, workers=2).report

    assert group_sets(report) == {
        frozenset([f"{prefix}/00000.tar#000000003.jpg", f"{prefix}/00001.tar#000010000.jpg"]),
        frozenset([f"{prefix}/00000.tar#000000001.png", f"{prefix}/00001.tar#000010001.jpg"]),
    }
    assert set(errors_by_path(report)) == {
        f"{prefix}/00001.tar#000010002.jpg",
        f"{prefix}/00001.tar#000010003.jpg",
        f"{prefix}/00002.tar",
    }
    member = f"{prefix}/00001.tar#000010001.jpg"
    storage.clear_caches()  # a member named directly, in a process that never listed its shard
    found = discover([member, f"{prefix}/00001.tar#000010099.jpg"])
    assert [f.path for f in found.files] == [member]
    assert errors_by_path(found) == {
        f"{prefix}/00001.tar#000010099.jpg": "no member 000010099.jpg in the tar shard"
    }
    assert storage.read_bytes(member) == storage.read_bytes(f"{shards / '00001.tar'}#000010001.jpg")


# Parquet and Arrow tables


IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    """A Hugging Face-style export (struct image column, three row groups) and a table with a
    plain binary column."""
    folder = tmp_path / "hf"
    folder.mkdir()
    crop = crop_of(skimage_photo("astronaut.png"), tmp_path / "edits").read_bytes()
    astronaut, chelsea, coffee = (
        skimage_photo(name).read_bytes() for name in ("astronaut.png", "chelsea.png", "coffee.png")
    )
    rows = [
        ({"bytes": astronaut, "path": "astronaut.png"}, "astronaut.png"),
        ({"bytes": chelsea, "path": "chelsea.png"}, "chelsea.png"),
        ({"bytes": coffee, "path": "coffee.png"}, "coffee.png"),
        ({"bytes": chelsea, "path": "chelsea-again.png"}, "chelsea-again.png"),
        ({"bytes": crop, "path": "astronaut-crop.jpg"}, "astronaut-crop.jpg"),
        (None, "missing.png"),
        ({"bytes": b"", "path": "empty.png"}, "empty.png"),
        ({"bytes": None, "path": "elsewhere.jpg"}, "coffee.png"),  # a repeated name, too
    ]
    train = folder / "train-00000-of-00001.parquet"
    pq.write_table(
        pa.table(
            {
                "image": pa.array([r[0] for r in rows], IMAGE),
                "file_name": [r[1] for r in rows],
                "label": list(range(len(rows))),
            }
        ),
        train,
        row_group_size=3,
    )
    plain = folder / "plain.parquet"
    pq.write_table(
        pa.table(
            {"jpeg": [skimage_photo("rocket.jpg").read_bytes(), coffee], "caption": ["r", "c"]}
        ),
        plain,
    )
    return {"train": train, "plain": plain}


def test_parquet_exports_become_one_image_per_row(
    tables: dict[str, Path], tmp_path: Path, encoder
) -> None:
    train, plain = str(tables["train"]), str(tables["plain"])

    report = scan([train, plain], encoder=encoder, workers=2).report  # rows read in workers

    assert group_sets(report) == {
        frozenset([f"{train}#0", f"{train}#4"]),  # the crop
        frozenset([f"{train}#1", f"{train}#3"]),  # the same bytes twice
        frozenset([f"{train}#2", f"{plain}#1"]),  # across files
    }
    assert errors_by_path(report) == {
        f"{train}#5": "no image bytes in this row (null)",
        f"{train}#6": "empty image (0 bytes)",
        f"{train}#7": (
            "no image bytes in this row (it refers to 'elsewhere.jpg', which is not read)"
        ),
    }

    # A review page made later, in a process that never listed the table, reads the rows.
    write_json(report, str(tmp_path / "report.json"))
    storage.clear_caches()
    page = write_review(read_report(str(tmp_path / "report.json")), str(tmp_path / "review.html"))
    assert page.unreadable == [] and page.thumbnails_written == 6


def test_rows_named_by_a_column_and_every_bad_argument_is_one_line(
    tables: dict[str, Path], tmp_path: Path
) -> None:
    train, plain = str(tables["train"]), str(tables["plain"])

    named = discover([train], name_column="file_name")
    assert [f.path for f in named.files] == [
        f"{train}#astronaut.png",
        f"{train}#chelsea.png",
        f"{train}#coffee.png",
        f"{train}#chelsea-again.png",
        f"{train}#astronaut-crop.jpg",
    ]
    assert errors_by_path(named) == {
        f"{train}#missing.png": "no image bytes in this row (null)",
        f"{train}#empty.png": "empty image (0 bytes)",
        f"{train}#7": (
            "row 7's name 'coffee.png' repeats row 2's; names in 'file_name' must be unique "
            "within a file"
        ),
    }
    assert storage.read_bytes(f"{train}#chelsea.png") == skimage_photo("chelsea.png").read_bytes()
    assert storage.stat(f"{train}#coffee.png").size == skimage_photo("coffee.png").stat().st_size
    storage.clear_caches()  # another process: the name is found among the text columns
    assert storage.read_bytes(f"{train}#chelsea.png") == skimage_photo("chelsea.png").read_bytes()
    assert storage.read_bytes(f"{train}#3") == skimage_photo("chelsea.png").read_bytes()

    (tmp_path / "corrupt.parquet").write_bytes(tables["plain"].read_bytes()[:-100])
    two = tmp_path / "two.parquet"
    pq.write_table(pa.table({"a": [b"x"], "b": [b"y"]}), two)
    arrow = tmp_path / "export.arrow"
    with pa.ipc.new_stream(arrow, pa.schema([("image", IMAGE)])) as writer:  # save_to_disk
        writer.write_table(pa.table({"image": pa.array([{"bytes": b"abc", "path": "x"}], IMAGE)}))
    assert [f.path for f in discover([str(arrow)]).files] == [f"{arrow}#0"]
    assert storage.read_bytes(f"{arrow}#0") == b"abc"

    cases = {
        "no such column": (discover([train], image_column="nope"), train, "no column 'nope'"),
        "not bytes": (discover([train], image_column="label"), train, "holds int64"),
        "no names": (discover([plain], name_column="id"), plain, "no column 'id' for names"),
        "corrupt": (
            discover([str(tmp_path / "corrupt.parquet")]),
            str(tmp_path / "corrupt.parquet"),
            "cannot read table",
        ),
        "two columns": (discover([str(two)]), str(two), "several columns of image bytes (a, b)"),
        "no row": (discover([f"{plain}#9"]), f"{plain}#9", "no row 9: the table has 2 rows"),
    }
    for case, (found, path, words) in cases.items():
        assert found.files == [], case
        assert list(errors_by_path(found)) == [path], case
        assert words in found.errors[0].reason, case


def test_the_cli_scans_a_table_by_row_names_and_reviews_it(
    tables: dict[str, Path], tmp_path: Path
) -> None:
    train = str(tables["train"])
    report_path = tmp_path / "report.json"
    arguments = ["scan", train, "--name-column", "file_name", "--device", "cpu", "-q"]
    result = CliRunner().invoke(app, [*arguments, "--out", str(report_path)])
    assert result.exit_code == 0, result.output
    report = read_report(str(report_path))
    groups = {
        frozenset(file.path for file in (group.keep, *group.duplicates)) for group in report.groups
    }
    assert frozenset([f"{train}#astronaut.png", f"{train}#astronaut-crop.jpg"]) in groups
    assert frozenset([f"{train}#chelsea.png", f"{train}#chelsea-again.png"]) in groups
    assert f"{train}#7" in {error.path for error in report.errors}

    storage.clear_caches()  # review runs in a fresh process, told how rows are named
    page = tmp_path / "review.html"
    result = CliRunner().invoke(
        app, ["review", str(report_path), "--html", str(page), "--name-column", "file_name"]
    )
    assert result.exit_code == 0, result.output
    assert "no thumbnail" not in result.output
    assert f"{train}#astronaut-crop.jpg" in page.read_text(encoding="utf-8")


# Manifests and URLs


def test_csv_and_jsonl_manifests_mix_local_paths_and_s3_urls(
    s3, photo_dir: Path, tmp_path: Path, encoder
) -> None:
    data = tmp_path / "data"
    shutil.copytree(photo_dir, data / "photos")
    crop = crop_of(photo_dir / "coffee.png", tmp_path / "edits")
    s3.pipe_file(f"{BUCKET}/m/rocket copy.jpg", (photo_dir / "rocket.jpg").read_bytes())
    s3.pipe_file(f"{BUCKET}/m/coffee-crop.jpg", crop.read_bytes())
    manifest = data / "manifest.csv"
    manifest.write_text(
        "id,url,caption\n"
        "1,photos/rocket.jpg,relative to the manifest\n"
        f"2,s3://{BUCKET}/m/rocket copy.jpg,an exact copy\n"
        f"3,{data / 'photos' / 'coffee.png'},absolute\n"
        f"4,s3://{BUCKET}/m/coffee-crop.jpg,a crop\n"
        "5,,no path\n"
        f"6,s3://{BUCKET}/m/missing.jpg,not there\n"
    )

    report = scan([], from_list=str(manifest), encoder=encoder, workers=0).report

    assert group_sets(report) == {
        frozenset([str(data / "photos" / "rocket.jpg"), f"s3://{BUCKET}/m/rocket copy.jpg"]),
        frozenset([str(data / "photos" / "coffee.png"), f"s3://{BUCKET}/m/coffee-crop.jpg"]),
    }
    errors = errors_by_path(report)
    assert errors == {
        str(manifest): "line 6: no path in 'url'",
        f"s3://{BUCKET}/m/missing.jpg": errors[f"s3://{BUCKET}/m/missing.jpg"],
    }
    assert "no such object" in errors[f"s3://{BUCKET}/m/missing.jpg"]

    wrong_column = discover([], from_list=str(manifest), image_column="image")
    assert wrong_column.files == []
    assert errors_by_path(wrong_column) == {
        str(manifest): "no column 'image' (columns: id, url, caption)"
    }
    no_column = tmp_path / "no-paths.csv"
    no_column.write_text("id,caption\n1,x\n")
    assert "name it with image_column" in discover([], from_list=str(no_column)).errors[0].reason

    jsonl = data / "manifest.jsonl"
    jsonl.write_text(
        json.dumps({"image_url": f"s3://{BUCKET}/m/rocket copy.jpg"})
        + "\n{not json\n"
        + json.dumps({"caption": "no path here"})
        + "\n\n"
        + json.dumps({"path": "photos/chelsea.png"})
        + "\n"
    )
    found = discover([], from_list=str(jsonl))
    assert [f.path for f in found.files] == [
        f"s3://{BUCKET}/m/rocket copy.jpg",
        str(data / "photos" / "chelsea.png"),
    ]
    reasons = [e.reason for e in found.errors]
    assert reasons[0].startswith("line 2: not JSON")
    assert reasons[1].startswith("line 3: no column of paths")
    assert len(reasons) == 2

    # The plain text list takes URLs too.
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# from the CMS\ns3://{BUCKET}/m/coffee-crop.jpg\n{photo_dir / 'coffee.png'}\n"
    )
    assert [f.path for f in discover([], from_list=str(listing)).files] == [
        f"s3://{BUCKET}/m/coffee-crop.jpg",
        str(photo_dir / "coffee.png"),
    ]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web server on loopback serving a folder."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_web_urls_in_a_path_list_are_downloaded_and_a_404_is_one_line(
    web: tuple[str, Path], photo_dir: Path, tmp_path: Path, encoder
) -> None:
    base, root = web
    shutil.copyfile(photo_dir / "rocket.jpg", root / "rocket.jpg")
    shutil.copyfile(photo_dir / "rocket.jpg", root / "rocket-mirror.jpg")
    shutil.copyfile(photo_dir / "camera.png", root / "camera.png")
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"{base}/rocket.jpg\n{base}/rocket-mirror.jpg\n{base}/camera.png\n{base}/gone.jpg\n"
    )

    report = scan([], from_list=str(listing), encoder=encoder, workers=0).report

    assert group_sets(report) == {frozenset([f"{base}/rocket.jpg", f"{base}/rocket-mirror.jpg"])}
    assert list(errors_by_path(report)) == [f"{base}/gone.jpg"]
    assert "no such object" in report.errors[0].reason


def test_credentials_in_urls_are_redacted_in_the_report_csv_page_and_messages(
    web: tuple[str, Path], photo_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Userinfo and signed query strings were written into the JSON, the CSV, the review page
    # and error lines.
    base, root = web
    shutil.copyfile(photo_dir / "rocket.jpg", root / "rocket.jpg")
    shutil.copyfile(photo_dir / "rocket.jpg", root / "rocket-mirror.jpg")
    host = base.removeprefix("http://")
    secrets = ("hunter2", "SIGNATURE123", "T0KEN")
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"http://ada:hunter2@{host}/rocket.jpg\n"
        f"{base}/rocket-mirror.jpg?X-Amz-Signature=SIGNATURE123&X-Amz-Expires=60\n"
        f"{base}/gone.jpg?token=T0KEN\n"
    )
    report, table, page = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.html"
    options = ["--model", "sscd-distilled-onnx", "--device", "cpu", "--workers", "0"]
    scanned = runner.invoke(
        app,
        ["scan", "--from-list", str(listing), "--out", str(report), "--csv", str(table), *options],
    )
    assert scanned.exit_code == 0, scanned.output
    reviewed = runner.invoke(app, ["review", str(report), "--html", str(page)])
    assert reviewed.exit_code == 0, reviewed.output
    for shown in (report.read_text(), table.read_text(), page.read_text(), scanned.output):
        assert not any(secret in shown for secret in secrets)
    [group] = json.loads(report.read_text())["groups"]
    assert {group["keep"]["path"], group["duplicates"][0]["path"]} == {
        f"http://***@{host}/rocket.jpg",
        f"{base}/rocket-mirror.jpg?X-Amz-Signature=***&X-Amz-Expires=60",
    }
    assert "carry credentials" in caplog.text


def test_a_catalog_keeps_urls_without_their_credentials_and_knows_them_again(
    web: tuple[str, Path], photo_dir: Path, tmp_path: Path, encoder
) -> None:
    # The catalog's files table kept each URL as it was indexed, password and signature included.
    base, root = web
    shutil.copyfile(photo_dir / "rocket.jpg", root / "rocket.jpg")
    shutil.copyfile(photo_dir / "rocket.jpg", root / "rocket-mirror.jpg")
    shutil.copyfile(photo_dir / "camera.png", root / "camera.png")
    host = base.removeprefix("http://")

    def listing(password: str, signature: str) -> str:
        listed = tmp_path / f"urls-{len(password)}.txt"
        listed.write_text(
            f"http://ada:{password}@{host}/rocket.jpg\n"
            f"{base}/rocket-mirror.jpg?X-Amz-Signature={signature}&X-Amz-Expires=60\n"
            f"{base}/camera.png\n"
            f"{base}/gone.jpg?token={signature}\n"
        )
        return str(listed)

    catalog = tmp_path / "catalog"
    first = index_catalog([], catalog, from_list=listing("hunter2", "SIG1"), encoder=encoder,
                          workers=0)  # fmt: skip
    assert (first.added, first.failed) == (3, 0), first.errors
    stored = b"".join(path.read_bytes() for path in catalog.rglob("*") if path.is_file())
    assert not any(secret in stored for secret in (b"hunter2", b"SIG1"))
    assert b"http://***@" in stored and b"X-Amz-Signature=***" in stored

    # A changed password and a fresh signature: the same files, nothing embedded again.
    again = index_catalog([], catalog, from_list=listing("s3cret", "SIG2"), encoder=encoder,
                          workers=0)  # fmt: skip
    assert (again.added, again.changed, again.unchanged, again.forgotten) == (0, 0, 3, 0)
    stored = b"".join(path.read_bytes() for path in catalog.rglob("*") if path.is_file())
    assert not any(secret in stored for secret in (b"s3cret", b"SIG2"))

    # A catalog from before kept one with its password: the next index replaces it by its key.
    old, key = f"http://ada:old@{host}/rocket.jpg", f"http://***@{host}/rocket.jpg"
    with sqlite3.connect(catalog / "catalog.db") as db:
        db.execute("UPDATE files SET path = ? WHERE path = ?", (old, key))
    db.close()
    mended = index_catalog([], catalog, from_list=listing("s3cret", "SIG3"), encoder=encoder,
                           workers=0)  # fmt: skip
    assert (mended.added, mended.forgotten, mended.unchanged) == (1, 1, 2)
    stored = b"".join(path.read_bytes() for path in catalog.rglob("*") if path.is_file())
    assert b"ada:old" not in stored

    report = groups_from_catalog(catalog, device="cpu", workers=0).report
    assert group_sets(report) == {
        frozenset([f"http://***@{host}/rocket.jpg",
                   f"{base}/rocket-mirror.jpg?X-Amz-Signature=***&X-Amz-Expires=60"])
    }  # fmt: skip


def test_a_local_file_whose_whole_name_exists_is_a_plain_file_even_with_a_hash(
    tmp_path: Path,
) -> None:
    odd = tmp_path / "frames.tar#0001.jpg"
    shutil.copyfile(skimage_photo("rocket.jpg"), odd)

    found = discover([str(tmp_path)])

    assert [f.path for f in found.files] == [str(odd)]
    assert storage.is_local(str(odd)) and storage.split_member(str(odd)) is None
    assert storage.read_bytes(str(odd)) == skimage_photo("rocket.jpg").read_bytes()
    assert storage.absolute("data/00000.tar#000000001.jpg") == (
        os.path.abspath("data/00000.tar") + "#000000001.jpg"
    )
    assert storage.absolute("s3://b/x.tar#1.jpg") == "s3://b/x.tar#1.jpg"


# Acting on a report, and catalogs


def test_apply_changes_only_local_files_and_says_why_it_skips_the_others(
    tmp_path: Path, encoder
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    shutil.copyfile(skimage_photo("rocket.jpg"), local / "rocket.jpg")
    shutil.copyfile(skimage_photo("rocket.jpg"), local / "rocket copy.jpg")
    with Image.open(skimage_photo("chelsea.png")) as image:  # smaller than the shard's original
        image.resize((image.width // 2, image.height // 2)).save(local / "chelsea-small.jpg")
    shard = tmp_path / "shards" / "00000.tar"
    shard.parent.mkdir()
    write_shard(shard, [photo_bytes("rocket.jpg"), photo_bytes("chelsea.png")])
    report_path = tmp_path / "report.json"
    write_json(scan([str(local), str(shard)], encoder=encoder, workers=0).report, str(report_path))
    saved = read_report(str(report_path))
    assert {g.keep.path for g in saved.groups} == {
        str(local / "rocket.jpg"),
        f"{shard}#000000001.png",  # the larger original is kept, inside the shard
    }

    journal = tmp_path / "delete.jsonl"
    deleted = runner.invoke(
        app, ["apply", str(report_path), "--action", "delete", "--journal", str(journal), "--yes"]
    )

    assert deleted.exit_code == 0, deleted.output
    assert not (local / "rocket copy.jpg").exists()
    assert (local / "chelsea-small.jpg").exists() and shard.exists()
    _, skipped = plan_changes(saved, "delete")
    reasons = dict(skipped)
    assert "inside a tar shard" in reasons[f"{shard}#000000000.jpg"]
    assert "only changes local files" in reasons[f"{shard}#000000000.jpg"]
    assert "is inside a tar shard, not a local file" in reasons[str(local / "chelsea-small.jpg")]
    assert "inside a tar shard" in deleted.output

    moved = runner.invoke(
        app,
        ["apply", str(report_path), "--action", "move", "--to", str(tmp_path / "trash"), "--yes"],
    )
    assert moved.exit_code == 0, moved.output
    assert not (local / "chelsea-small.jpg").exists()
    assert list((tmp_path / "trash").rglob("chelsea-small.jpg"))


def test_a_catalog_indexes_tar_shards_and_checks_uploads_against_their_members(
    tmp_path: Path, encoder
) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    names = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png")
    members = write_shard(shards / "00000.tar", [photo_bytes(name) for name in names])
    catalog = tmp_path / "catalog"
    shard = shards / "00000.tar"

    first = index_catalog([str(shards)], catalog, encoder=encoder, workers=0)
    again = index_catalog([str(shards)], catalog, encoder=encoder, workers=0)

    assert (first.added, first.images, first.errors) == (len(names), len(names), [])
    assert (again.added, again.unchanged, again.forgotten) == (0, len(names), 0)
    upload = crop_of(skimage_photo("coffee.png"), tmp_path / "uploads")
    checked = check_images(
        [str(upload), f"{shard}#{members[0]}"], catalog, encoder=encoder, workers=0
    )
    assert [(r.verdict, r.matches[0].path) for r in checked] == [
        ("duplicate", f"{shard}#{members[2]}"),
        ("duplicate", f"{shard}#{members[0]}"),
    ]
    assert checked[1].matches[0].exact

    write_shard(shard, [photo_bytes(name) for name in names[:-1]])  # the shard loses a sample
    pruned = index_catalog([str(shard)], catalog, encoder=encoder, workers=0)  # the shard alone
    remaining = len(names) - 1
    assert (pruned.forgotten, pruned.unchanged, pruned.images) == (1, remaining, remaining)
    assert pruned.errors == []
