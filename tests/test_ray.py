"""A scan on a Ray cluster, as a user runs one: a real cluster started with `ray start --head`
and reached by its address; the same groups, embeddings and errors as on one machine; shards
in the shard folder; a chunk that fails for good costs its files, not the run; the partitioned
search finds only exact pairs; a missing Ray or a dead address is one line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import skimage_photo

from dedup_gpu import scan
from dedup_gpu.distributed import EmbedWorker
from dedup_gpu.errors import BadArgumentError, ClusterError, DedupError
from dedup_gpu.exact import group_identical
from dedup_gpu.index import search_pairs
from dedup_gpu.sources import discover
from dedup_gpu.synth import write_edited_copies

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3() -> str | None:
    """An S3 endpoint (moto's server, here) with a bucket "dedup-shards", in the environment of
    this process and of the Ray cluster started after it; None without moto and s3fs."""
    try:
        import boto3
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError:
        yield None
        return
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    patch = pytest.MonkeyPatch()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        patch.setenv(name, value)
    try:
        boto3.client("s3").create_bucket(Bucket="dedup-shards")
        yield endpoint
    finally:
        patch.undo()
        server.stop()


@pytest.fixture(scope="module")
def cluster(s3: str | None) -> str:
    """A Ray cluster of one node with 2 CPUs, started as a user starts a head node; its
    address. Stopped (its whole process group) afterwards."""
    pytest.importorskip("ray")
    # Whether Ray turns token authentication on depends on ~/.ray; off here, on both sides.
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()
    # A short folder of its own: Ray's socket paths must stay under ~107 characters.
    temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        start_new_session=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("ray start --head did not come up") from None
                time.sleep(0.2)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGINT)  # `ray start --block` stops its processes
        try:
            head.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(5)
        shutil.rmtree(temp, ignore_errors=True)
        patch.undo()


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five photos, a crop and a mirrored copy of each, a byte-identical copy, a corrupt file."""
    folder = tmp_path_factory.mktemp("collection")
    for name in PHOTOS:
        shutil.copyfile(skimage_photo(name), folder / name)
        write_edited_copies(folder / name, folder / "copies", families=("crop", "mirror"))
    shutil.copyfile(folder / "coffee.png", folder / "coffee (1).png")
    good = skimage_photo("rocket.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(good[: len(good) // 3])
    return folder


def groups_of(result) -> list[tuple[str, list[str]]]:
    return sorted(
        (group.keep.path, sorted(member.path for member in group.duplicates))
        for group in result.report.groups
    )


@pytest.mark.slow
def test_a_scan_on_ray_gives_the_groups_embeddings_and_errors_of_one_machine(
    cluster: str, collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(collection.parent)  # relative paths, as a user types them
    paths = [collection.name]
    options = {"model": "sscd-onnx", "device": "cpu", "batch_size": 4}
    alone = scan(paths, workers=0, **options)
    shards = tmp_path / "shards"

    spread = scan(paths, workers=1, ray_address=cluster, shard_dir=str(shards), **options)

    assert len(alone.report.groups) == len(PHOTOS)  # the story holds on one machine
    assert groups_of(spread) == groups_of(alone)
    assert [c.representative.path for c in spread.contents] == [
        c.representative.path for c in alone.contents
    ]
    assert spread.embeddings.dtype == alone.embeddings.dtype
    np.testing.assert_array_equal(spread.embeddings, alone.embeddings)  # float16 values
    assert spread.report.errors == alone.report.errors
    [error] = spread.report.errors
    assert error.path == os.path.join(collection.name, "broken.jpg")
    assert "\n" not in error.reason and "truncated" in error.reason
    assert spread.report.digests == alone.report.digests
    assert spread.report.counts == alone.report.counts
    assert spread.report.to_dict().keys() == alone.report.to_dict().keys()
    written = sorted(shards.glob("run-*/chunk-*.npz"))
    assert len(written) >= 2  # 17 distinct contents in chunks of whole batches of 4
    assert all(path.stat().st_size > 0 for path in written)
    assert not list(shards.glob("run-*/*.tmp"))

    # The same scan with the search partitioned on the cluster: with every row in 2 of 3
    # partitions, these copies still meet their originals.
    partitioned = scan(
        paths,
        workers=1,
        ray_address=cluster,
        shard_dir=str(shards),
        partitions=3,
        overlap=2,
        **options,
    )
    assert groups_of(partitioned) == groups_of(alone)
    search = partitioned.report.search
    assert search["kind"] == "partitioned"
    assert (search["partitions"], search["overlap"]) == (3, 2)
    assert "Ray" in search["join"]


def test_shards_can_go_to_s3(
    cluster: str, s3: str | None, collection: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if s3 is None:
        pytest.skip("needs moto and s3fs")
    import boto3

    monkeypatch.chdir(collection.parent)
    options = {"model": "sscd-onnx", "device": "cpu", "batch_size": 4, "workers": 0}
    alone = scan([collection.name], **options)

    spread = scan(
        [collection.name], ray_address=cluster, shard_dir="s3://dedup-shards/scans", **options
    )

    assert groups_of(spread) == groups_of(alone)
    np.testing.assert_array_equal(spread.embeddings, alone.embeddings)
    assert spread.report.errors == alone.report.errors
    listed = boto3.client("s3").list_objects_v2(Bucket="dedup-shards", Prefix="scans/")
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert len([key for key in keys if key.endswith(".npz")]) >= 2, keys


def test_images_in_an_object_store_are_embedded_by_the_workers(
    cluster: str, s3: str | None, collection: Path
) -> None:
    if s3 is None:
        pytest.skip("needs moto and s3fs")
    import boto3

    from dedup_gpu import storage

    client = boto3.client("s3")
    for path in sorted(collection.rglob("*")):
        if path.is_file():
            key = f"photos/{path.relative_to(collection).as_posix()}"
            client.put_object(Bucket="dedup-shards", Key=key, Body=path.read_bytes())
    storage.clear_caches()
    options = {"model": "sscd-onnx", "device": "cpu", "batch_size": 4, "workers": 0}
    alone = scan(["s3://dedup-shards/photos/"], **options)

    spread = scan(["s3://dedup-shards/photos/"], ray_address=cluster, **options)

    assert len(alone.report.groups) == len(PHOTOS)
    assert groups_of(spread) == groups_of(alone)
    assert all(path.startswith("s3://dedup-shards/photos/") for path in spread.report.digests)
    np.testing.assert_array_equal(spread.embeddings, alone.embeddings)
    assert spread.report.errors == alone.report.errors


def test_table_rows_named_by_numbers_are_read_back_by_name_on_the_workers(
    cluster: str, collection: Path, tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # Names that look like row numbers but are not: row 0 is named "2", row 2 is named "0".
    found = [collection / "coffee.png", collection / "chelsea.png"]
    found.append(collection / "copies" / "coffee__crop.jpg")
    table = pa.table({"id": ["2", "1", "0"], "image": [path.read_bytes() for path in found]})
    pq.write_table(table, tmp_path / "rows.parquet")
    path = str(tmp_path / "rows.parquet")
    options = {"model": "sscd-onnx", "device": "cpu", "batch_size": 4, "workers": 0}
    alone = scan([path], name_column="id", **options)

    spread = scan([path], name_column="id", ray_address=cluster, **options)

    assert groups_of(alone) == [(f"{path}#2", [f"{path}#0"])]  # coffee and its crop
    assert groups_of(spread) == groups_of(alone)
    np.testing.assert_array_equal(spread.embeddings, alone.embeddings)


def test_a_shard_folder_the_workers_do_not_share_is_one_line(
    cluster: str, collection: Path
) -> None:
    from dedup_gpu.distributed import embed_contents_on_ray

    contents = group_identical(discover([str(collection)]).files).groups
    with pytest.raises(ClusterError) as raised:
        # memory:// lives in each process: the workers cannot see what this process wrote.
        embed_contents_on_ray(
            contents, address=cluster, model="sscd-onnx", device="cpu", shard_dir="memory://x"
        )
    assert "cannot use the shard folder memory://" in str(raised.value)
    assert "\n" not in str(raised.value) and "shared mount" in raised.value.hint


@pytest.mark.slow
def test_a_chunk_that_fails_for_good_costs_its_files_not_the_run(
    cluster: str, collection: Path, tmp_path: Path
) -> None:
    from dedup_gpu.distributed import embed_contents_on_ray

    contents = group_identical(discover([str(collection)]).files).groups
    shards = tmp_path / "shards"
    # A folder where chunk 1's shard must go: writing it fails on every retry.
    (shards / "fixed-run" / "chunk-000001.npz").mkdir(parents=True)

    embedded = embed_contents_on_ray(
        contents,
        address=cluster,
        model="sscd-onnx",
        device="cpu",
        shard_dir=str(shards),
        batch_size=2,
        workers=0,
        actors=2,
        chunk_size=4,
        run_id="fixed-run",
    )

    assert len(embedded.workers) == 2  # both CPUs of the cluster embedded
    lost = {file.path for content in contents[4:8] for file in content.files}
    failed = {error.path for error in embedded.errors if "Ray task failed" in error.reason}
    assert failed == lost
    reason = next(e.reason for e in embedded.errors if "Ray task failed" in e.reason)
    assert reason.startswith("not embedded: its Ray task failed 3 times: IsADirectoryError: ")
    assert "\n" not in reason
    broken = str(collection / "broken.jpg")
    expected = [
        content
        for content in contents
        if content.representative.path not in lost and content.representative.path != broken
    ]
    assert [c.representative.path for c in embedded.contents] == [
        c.representative.path for c in expected
    ]
    assert len(embedded.shards) == -(-len(contents) // 4) - 1
    assert embedded.embeddings.shape == (len(expected), 512)


class DiesOnceOnChunk1(EmbedWorker):
    """A worker whose process is killed on chunk 1 the first time, as by the OOM killer."""

    def embed_chunk(self, number, rows, paths, url, thumbnail_budget):  # type: ignore[override]
        marker = Path(url).parent / "died"
        if number == 1 and not marker.exists():
            marker.touch()
            os._exit(1)
        return super().embed_chunk(number, rows, paths, url, thumbnail_budget)


class AlwaysDiesOnChunk1(EmbedWorker):
    """A worker killed by chunk 1 every time, as by a file that crashes a decoder."""

    def embed_chunk(self, number, rows, paths, url, thumbnail_budget):  # type: ignore[override]
        if number == 1:
            os._exit(1)
        return super().embed_chunk(number, rows, paths, url, thumbnail_budget)


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_only_a_chunk_that_kills_it_every_time_is_lost(
    cluster: str, collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.cloudpickle

    import dedup_gpu.distributed as distributed

    # The workers cannot import this test module: its classes travel by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    contents = group_identical(discover([str(collection)]).files).groups
    options = {"address": cluster, "model": "sscd-onnx", "device": "cpu", "batch_size": 2}
    options.update(shard_dir=str(tmp_path), workers=0, actors=2, chunk_size=2)
    try:
        monkeypatch.setattr(distributed, "EmbedWorker", DiesOnceOnChunk1)
        once = distributed.embed_contents_on_ray(contents, **options)  # type: ignore[arg-type]
        monkeypatch.setattr(distributed, "EmbedWorker", AlwaysDiesOnChunk1)
        always = distributed.embed_contents_on_ray(contents, **options)  # type: ignore[arg-type]
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])

    assert list(tmp_path.glob("run-*/died"))  # the worker was killed, and came back
    assert [e.path for e in once.errors] == [str(collection / "broken.jpg")]
    assert len(once.contents) == len(contents) - 1
    lost = {file.path for content in contents[2:4] for file in content.files}
    assert {e.path for e in always.errors} == lost | {str(collection / "broken.jpg")}
    reason = next(e.reason for e in always.errors if e.path in lost)
    assert reason.startswith("not embedded: its Ray worker died on each of 3 tries")
    assert len(always.contents) == len(contents) - 1 - len(contents[2:4])
    np.testing.assert_array_equal(  # the rest as without the failure
        always.embeddings,
        once.embeddings[[c.representative.path not in lost for c in once.contents]],
    )


def test_workers_that_cannot_load_the_model_stop_the_run_with_one_line(
    cluster: str, collection: Path, tmp_path: Path
) -> None:
    from dedup_gpu.distributed import embed_contents_on_ray

    contents = group_identical(discover([str(collection)]).files).groups
    with pytest.raises(ClusterError) as raised:
        embed_contents_on_ray(
            contents,
            address=cluster,
            model="sscd-onnx",
            weights=str(tmp_path / "missing.onnx"),
            device="cpu",
            shard_dir=str(tmp_path / "shards"),
        )
    message = str(raised.value)
    assert message.startswith("a Ray worker on ") and "cannot load sscd-onnx" in message
    assert "\n" not in message and "every node needs dedup-gpu" in raised.value.hint


def test_a_shard_folder_that_cannot_be_written_is_one_line(
    cluster: str, collection: Path, tmp_path: Path
) -> None:
    from dedup_gpu.distributed import embed_contents_on_ray

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    contents = group_identical(discover([str(collection)]).files).groups
    with pytest.raises(ClusterError) as raised:
        embed_contents_on_ray(
            contents, address=cluster, model="sscd-onnx", shard_dir=str(blocker / "shards")
        )
    assert str(raised.value).startswith(f"cannot write to the shard folder {blocker / 'shards'}")
    assert "\n" not in str(raised.value)


def planted_embeddings(
    count: int = 3000, dim: int = 64, copies: int = 150, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit rows (float16 values) around 30 cluster centres, and planted copies at cosine
    0.8-0.99 of random rows; returns the rows and the (source, copy) rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = 0.6 * centres[rng.integers(0, 30, count)] + 0.8 * rng.standard_normal(
        (count, dim)
    ) / np.sqrt(dim)
    sources = rng.choice(count - copies, copies, replace=False)
    copy_rows = np.arange(count - copies, count)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    cosine = rng.uniform(0.8, 0.99, copies)[:, None]
    noise = rng.standard_normal((copies, dim))
    noise -= np.sum(noise * rows[sources], axis=1, keepdims=True) * rows[sources]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    rows[copy_rows] = cosine * rows[sources] + np.sqrt(1 - cosine**2) * noise
    rows = rows.astype(np.float16).astype(np.float32)
    return rows, sources, copy_rows


def pair_set(pairs) -> dict[tuple[int, int], float]:
    return {
        (a, b): s
        for a, b, s in zip(
            pairs.left.tolist(), pairs.right.tolist(), pairs.score.tolist(), strict=True
        )
    }


def test_partitioned_search_finds_planted_pairs_and_only_exact_ones() -> None:
    from dedup_gpu.distributed import partitioned_pairs

    rows, sources, copies = planted_embeddings()
    threshold = 0.7
    exact = pair_set(search_pairs(rows, threshold)[0])
    planted = {(int(min(a, b)), int(max(a, b))) for a, b in zip(sources, copies, strict=True)}
    assert planted <= exact.keys()  # the data are what the test means

    recall = {}
    for overlap in (1, 2):
        pairs, info = partitioned_pairs(rows, threshold, partitions=8, overlap=overlap)
        found = pair_set(pairs)
        assert found.keys() <= exact.keys()  # only true pairs
        assert all(found[key] == exact[key] for key in found)  # with the exact score, bit for bit
        recall[overlap] = len(planted & found.keys()) / len(planted)
        assert info["kind"] == "partitioned"
        assert (info["partitions"], info["overlap"]) == (8, overlap)
        assert info["runs_on"] == "this machine"
        assert 0 < info["work_vs_exact"] < 1
    assert recall[2] >= recall[1]
    assert recall[2] >= 0.97, recall


def test_partitioned_search_on_the_cluster_is_the_same_search(cluster: str) -> None:
    from dedup_gpu.distributed import partitioned_pairs

    rows, _, _ = planted_embeddings(count=1500, copies=80, seed=1)
    here, _ = partitioned_pairs(rows, 0.7, partitions=6, overlap=2)

    there, info = partitioned_pairs(rows, 0.7, partitions=6, overlap=2, address=cluster)

    assert pair_set(there) == pair_set(here)
    assert info["runs_on"] == f"Ray cluster {cluster}"


def test_a_shard_reads_back_as_written(tmp_path: Path) -> None:
    from dedup_gpu.distributed import Shard, read_shard, write_shard

    odd = os.fsdecode(b"/photos/caf\xe9.jpg")  # a Latin-1 name: not UTF-8
    shard = Shard(
        meta={"version": 1, "chunk": 3},
        rows=np.array([5, 7], dtype=np.int64),
        paths=["/photos/a.jpg", odd],
        embeddings=np.arange(8, dtype=np.float16).reshape(2, 4),
        widths=np.array([640, 10]),
        heights=np.array([480, 20]),
        digests=["ab" * 32, "cd" * 32],
        thumbnails=[None, b"\xff\xd8jpeg"],
        failures=[(6, f"cannot decode {odd}: truncated")],
    )
    url = str(tmp_path / "chunk.npz")

    write_shard(url, shard)
    back = read_shard(url)

    assert back.meta == shard.meta and back.paths == shard.paths
    for name in ("rows", "embeddings", "widths", "heights"):
        np.testing.assert_array_equal(getattr(back, name), getattr(shard, name))
    assert back.embeddings.dtype == np.float16
    assert (back.digests, back.thumbnails, back.failures) == (
        shard.digests,
        shard.thumbnails,
        shard.failures,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["chunk.npz"]  # no temporary file left


def test_without_ray_installed_a_ray_scan_is_one_typed_error(
    photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError

    with pytest.raises(ClusterError) as raised:
        scan([str(photo_dir)], ray_address="127.0.0.1:6379", shard_dir=str(photo_dir))

    assert str(raised.value) == "Ray is not installed; --ray needs it"
    assert raised.value.hint == 'pip install "dedup-gpu[ray]"'


def test_an_address_where_nothing_answers_is_one_line_at_once(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    import dedup_gpu.pipeline as pipeline

    def no_reading(*args, **kwargs):
        raise AssertionError("files were read before the address was checked")

    monkeypatch.setattr(pipeline, "discover", no_reading)
    address = f"127.0.0.1:{free_port()}"  # closed again: nothing listens there
    started = time.monotonic()

    with pytest.raises(ClusterError) as raised:
        scan([str(photo_dir)], ray_address=address, shard_dir=str(tmp_path))

    assert time.monotonic() - started < 15
    message = str(raised.value)
    assert message.startswith(f"cannot reach the Ray cluster at {address}: ")
    assert "\n" not in message and "ray start --head" in raised.value.hint


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ray_address": "head.example"}, "is not a Ray address"),
        ({"ray_address": "10.0.0.1:6379"}, "needs --shard-dir"),
        ({"ray_address": "local", "shard_dir": "nosuchfs://bucket/x"}, "--shard-dir nosuchfs://"),
        ({"partitions": 0}, "--partitions must be at least 1"),
        ({"partitions": 4, "overlap": 5}, "--overlap must be from 1 to --partitions (4)"),
        ({"shard_dir": "/tmp/x"}, "need --ray ADDRESS"),
        ({"ray_address": "local", "devices": "0,1"}, "--devices applies to one machine"),
    ],
)
def test_bad_distributed_options_are_refused_before_any_file_is_read(
    options: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dedup_gpu.pipeline as pipeline

    monkeypatch.setattr(pipeline, "open_encoders", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(DedupError) as raised:
        scan(["nowhere"], **options)
    assert isinstance(raised.value, BadArgumentError)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_cli_scans_on_the_cluster_and_refuses_options_without_it(
    cluster: str, collection: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from dedup_gpu.cli import app
    from dedup_gpu.report import read_report

    report_path = tmp_path / "report.json"
    options = ["--device", "cpu", "--batch-size", "4", "--workers", "1", "-q"]
    cluster_options = ["--ray", cluster, "--shard-dir", str(tmp_path / "shards")]
    result = CliRunner().invoke(
        app, ["scan", str(collection), *cluster_options, *options, "--out", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    report = read_report(str(report_path))
    assert len(report.groups) == len(PHOTOS)
    assert report.raw["device"].startswith("ray (") and "cpu x" in report.raw["device"]

    result = CliRunner().invoke(
        app, ["scan", str(collection), "--shard-dir", str(tmp_path / "shards"), *options]
    )
    assert result.exit_code == 2
    assert "--ray" in result.output
