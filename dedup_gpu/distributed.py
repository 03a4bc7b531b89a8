"""A scan across a Ray cluster: embedding on every GPU (or CPU) of the cluster, and a duplicate
search partitioned by k-means. Ray is imported only when one of these runs.

Embedding (`embed_contents_on_ray`). The distinct contents are cut into chunks. One Ray actor per
GPU (`num_gpus=1`), or CPU actors on a cluster without GPUs, loads the encoder itself (by model
name and weights path: a loaded model is never shipped) and runs `pipeline.embedded_batches` over
each chunk it is handed, writing one shard per chunk to a shared folder (a path every node
mounts, or an fsspec URL such as s3://bucket/prefix) and returning the shard's location. The
driver reads each shard as it arrives. The result is what `pipeline.embed_contents` returns on
one machine: same row order, float16-rounded embeddings, image sizes, digests, one-line errors,
thumbnails within the budget. A worker that dies is restarted and its chunk retried (Ray's actor
restarts and task retries); a chunk that fails for good becomes an error for each of its files,
with the reason, and the run goes on.

Search (`partitioned_pairs`). k-means (faiss.Kmeans) cuts the rows into partitions; each row is
filed under its `overlap` nearest centroids, each partition is self-joined exactly (the tiled
join) as a Ray task, and the pairs are unioned, as in SemDeDup. Every pair returned is an exact
pair with its exact score; a pair is missed only when its two rows share none of their
`overlap` nearest centroids (benchmarks/partitioned_recall.py measures how often).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from . import storage
from .data import DEFAULT_MAX_PIXELS
from .encoders import get_spec
from .errors import BadArgumentError, ClusterError, DeviceUnavailableError, first_line
from .index import Pairs, check_rows, unique_pairs
from .pipeline import EmbeddedImages
from .records import ContentGroup, FileError, ImageInfo

logger = logging.getLogger(__name__)

RAY_HINT = 'pip install "dedup-gpu[ray]"'
SHARD_VERSION = 1
# Contents per chunk (one Ray task, one shard) at most: 10k images are a few seconds of a GPU's
# time, ~10 MB of embeddings; fewer for small scans, so every worker gets about 4 chunks.
MAX_CHUNK = 10_000
CHUNKS_PER_WORKER = 4
# Restarts of a worker that died (per run), and retries of a chunk (its worker killed, a shard
# write that failed). A chunk that kills its worker every time (a file that crashes a decoder)
# fails for good after MAX_RETRIES, and the restarted worker goes on with other chunks.
MAX_RESTARTS = 16
MAX_RETRIES = 2
# Workers load the model (a first download included) within this time, or are not used.
READY_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10.0
DEFAULT_OVERLAP = 2
# k-means: iterations, and sampled rows per partition it trains on (faiss subsamples above 256).
_KMEANS_ITERATIONS = 20
_KMEANS_ROWS_PER_CENTROID = 256
_ASSIGN_CHUNK = 65_536


# Ray itself


def import_ray() -> ModuleType:
    """`import ray`, or a ClusterError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ClusterError("Ray is not installed; --ray needs it", hint=RAY_HINT) from error
    return ray


def _endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT or ray://HOST:PORT address; None for "auto" and "local"."""
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadArgumentError(
            f"--ray {address!r} is not a Ray address",
            hint="use HOST:PORT of the head node (port 6379 unless `ray start --head --port` "
            "said otherwise), auto (the cluster this machine belongs to), or local",
        )
    return host, int(port)


def is_local_address(address: str) -> bool:
    """Whether `address` can only be a cluster on this machine ("local", or a loopback host)."""
    endpoint = _endpoint(address)
    if endpoint is None:
        return address == "local"
    host = endpoint[0].lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A ClusterError at once when nothing answers at `address` (ray.init itself would retry for
    minutes and then exit the process)."""
    endpoint = _endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {reason}",
            hint="start one with `ray start --head` on the head node, and check the address "
            "(HOST:PORT of its GCS port, 6379 by default) and that this machine can reach it",
        ) from None


@contextlib.contextmanager
def ray_connection(address: str) -> Iterator[ModuleType]:
    """Ray, connected to `address` (disconnected afterwards); an existing connection is used
    as it is."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    check_reachable(address)
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        options["include_dashboard"] = False
    try:
        ray.init(address=address, **options)
    except (Exception, SystemExit) as error:  # ray exits when it gives up on the GCS
        raise ClusterError(
            f"cannot connect to the Ray cluster at {address}: {first_line(error)}",
            hint="check the address (the head's GCS port), that this machine runs the cluster's "
            "Ray and Python versions, and for a cluster with token authentication "
            "RAY_AUTH_MODE=token with its token in RAY_AUTH_TOKEN (`ray get-auth-token`)",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def validate_options(
    *,
    ray_address: str | None = None,
    shard_dir: str | None = None,
    partitions: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    actors: int | None = None,
    against: Sequence[str] | None = None,
    devices: str | None = None,
) -> None:
    """Refuse bad distributed options before any file is read: Ray missing, an address that
    does not parse or answer, a missing or unusable shard folder, bad partition counts."""
    if partitions is not None:
        if not _is_int(partitions) or partitions < 1:
            raise BadArgumentError(f"--partitions must be at least 1, not {partitions!r}")
        if not _is_int(overlap) or not 1 <= overlap <= partitions:
            raise BadArgumentError(
                f"--overlap must be from 1 to --partitions ({partitions}), not {overlap!r}",
                hint=f"each row is searched in its {DEFAULT_OVERLAP} nearest partitions by default",
            )
        if against:
            raise BadArgumentError(
                "--partitions applies to a scan of one set, not to --against",
                hint="leave --partitions out: --against searches the reference set exactly",
            )
    if actors is not None and (not _is_int(actors) or actors < 1):
        raise BadArgumentError(f"the number of Ray workers must be at least 1, not {actors!r}")
    if ray_address is None:
        if shard_dir is not None or actors is not None:
            raise BadArgumentError(
                "--shard-dir and --ray-workers need --ray ADDRESS",
                hint="pass the Ray cluster's address, or leave them out",
            )
        return
    import_ray()
    if devices is not None:
        raise BadArgumentError(
            "--devices applies to one machine; on a Ray cluster every GPU has a worker of its own",
            hint="leave --devices out with --ray",
        )
    is_local = is_local_address(ray_address)  # also checks the address's form
    if shard_dir is None and not is_local:
        raise BadArgumentError(
            f"--ray {ray_address} needs --shard-dir: a folder that every node and this machine "
            "can read and write",
            hint="an s3:// (or gs://, abfs://) URL, or a path on storage every node mounts",
        )
    if shard_dir is not None:
        _filesystem(shard_dir)
    check_reachable(ray_address)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path) for a folder path or URL; a BadArgumentError when fsspec or
    the filesystem's package is missing."""
    try:
        import fsspec
    except ImportError as error:
        raise ClusterError(
            "fsspec is not installed; --shard-dir needs it", hint=RAY_HINT
        ) from error
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:
        raise BadArgumentError(
            f"--shard-dir {url}: {first_line(error)}",
            hint="a local path, or a URL of an installed fsspec filesystem (pip install s3fs "
            "for s3://, gcsfs for gs://, adlfs for abfs://)",
        ) from None


# Shards


@dataclass
class Shard:
    """One chunk's results: `rows` are positions in the contents the scan embedded."""

    meta: dict[str, Any]
    rows: np.ndarray  # int64 [n]: contents embedded
    paths: list[str]  # the file each row was read from (absolute, or a URL or member)
    embeddings: np.ndarray  # float16 [n, dim]
    widths: np.ndarray  # int64 [n]
    heights: np.ndarray  # int64 [n]
    digests: list[str | None]
    thumbnails: list[bytes | None]
    failures: list[tuple[int, str]]  # (row, one-line reason): contents that could not be used


def _pack(items: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one uint8 blob and their lengths (-1 for None)."""
    lengths = np.array([-1 if item is None else len(item) for item in items], dtype=np.int64)
    blob = np.frombuffer(b"".join(item for item in items if item is not None), dtype=np.uint8)
    return blob, lengths


def _unpack(blob: np.ndarray, lengths: np.ndarray) -> list[bytes | None]:
    data = blob.tobytes()
    out: list[bytes | None] = []
    start = 0
    for length in lengths.tolist():
        if length < 0:
            out.append(None)
        else:
            out.append(data[start : start + length])
            start += length
    return out


def _encode_shard(shard: Shard) -> bytes:
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps(shard.meta).encode(), dtype=np.uint8),
        "rows": np.asarray(shard.rows, dtype=np.int64),
        "embeddings": np.asarray(shard.embeddings, dtype=np.float16),
        "widths": np.asarray(shard.widths, dtype=np.int64),
        "heights": np.asarray(shard.heights, dtype=np.int64),
        "failed_rows": np.array([row for row, _ in shard.failures], dtype=np.int64),
    }
    for name, items in (
        ("paths", [os.fsencode(path) for path in shard.paths]),
        ("digests", [None if d is None else d.encode() for d in shard.digests]),
        ("thumbnails", shard.thumbnails),
        ("reasons", [reason.encode(errors="surrogateescape") for _, reason in shard.failures]),
    ):
        arrays[f"{name}_blob"], arrays[f"{name}_lengths"] = _pack(items)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _decode_shard(data: bytes) -> Shard:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:

        def unpacked(name: str) -> list[bytes | None]:
            return _unpack(arrays[f"{name}_blob"], arrays[f"{name}_lengths"])

        meta = json.loads(arrays["meta"].tobytes())
        if meta.get("version") != SHARD_VERSION:
            raise ValueError(f"shard format {meta.get('version')}, expected {SHARD_VERSION}")
        reasons = unpacked("reasons")
        return Shard(
            meta=meta,
            rows=arrays["rows"],
            paths=[os.fsdecode(path or b"") for path in unpacked("paths")],
            embeddings=arrays["embeddings"],
            widths=arrays["widths"],
            heights=arrays["heights"],
            digests=[None if d is None else d.decode() for d in unpacked("digests")],
            thumbnails=unpacked("thumbnails"),
            failures=[
                (int(row), (reason or b"").decode(errors="surrogateescape"))
                for row, reason in zip(arrays["failed_rows"].tolist(), reasons, strict=True)
            ],
        )


def write_shard(url: str, shard: Shard) -> None:
    """Write `shard` to `url` (a path or fsspec URL). On a local file system it is written
    beside and renamed into place, so a reader never sees half a shard; object stores make an
    object visible only once it is complete."""
    fs, path = _filesystem(url)
    data = _encode_shard(shard)
    if _is_local(fs):
        temp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        return
    with fs.open(path, "wb") as handle:
        handle.write(data)


def read_shard(url: str) -> Shard:
    """A shard written by `write_shard` (by a Ray worker of `embed_contents_on_ray`)."""
    fs, path = _filesystem(url)
    with fs.open(path, "rb") as handle:
        return _decode_shard(handle.read())


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


# The Ray worker (an actor; the class is made remote where it is used)


class EmbedWorker:
    """Loads the encoder once and embeds the chunks it is given, one shard each."""

    def __init__(
        self,
        model: str,
        weights: str | None,
        device: str,
        batch_size: int,
        workers: int | None,
        max_pixels: int,
        thumbnail_size: int | None,
        decode: str,
        compile_model: bool,
        columns: dict[str, str | None] | None = None,
    ) -> None:
        # Table rows named by a column must be read back by that column, as the driver listed
        # them: a worker never lists the tables itself.
        storage.configure(**(columns or {}))
        self.options: dict[str, Any] = {
            "batch_size": batch_size,
            "workers": workers,
            "max_pixels": max_pixels,
            "thumbnail_size": thumbnail_size,
            "decode": decode,
        }
        self.model, self.weights, self.device = model, weights, device
        self.compile_model = compile_model
        self.encoder: Any = None

    def _load(self) -> Any:
        if self.encoder is None:
            from .pipeline import open_encoder

            self.encoder = open_encoder(
                self.model, self.device, weights=self.weights, compile_model=self.compile_model
            )
        return self.encoder

    def ready(self, run_url: str, token: str, sample_paths: list[str]) -> dict[str, Any]:
        """Loads the model and checks what the run needs of this node: the shard folder (the
        driver's token is there, and a file can be written) and the images."""
        from . import __version__

        node = socket.gethostname()
        try:
            encoder = self._load()
        except Exception as error:
            reason = f"{type(error).__name__}: {first_line(error)}"
            return {"node": node, "error": f"cannot load {self.model}: {reason}"}
        try:
            fs, folder = _filesystem(run_url)
            with fs.open(f"{folder}/{_TOKEN_FILE}", "rb") as handle:
                seen = handle.read().decode()
            if seen != token:
                raise ClusterError("it holds another run's token")
            probe = f"{folder}/.probe-{node}-{os.getpid()}"
            with fs.open(probe, "wb") as handle:
                handle.write(b"ok")
            with contextlib.suppress(Exception):
                fs.rm(probe)
        except Exception as error:
            reason = f"{type(error).__name__}: {first_line(error)}"
            return {"node": node, "error": f"cannot use the shard folder {run_url}: {reason}"}
        if sample_paths and not any(storage.exists(path) for path in sample_paths):
            return {"node": node, "error": f"cannot see the images (no {sample_paths[0]})"}
        return {
            "node": node,
            "dedup_gpu": __version__,
            "model": encoder.describe(),
            "error": None,
        }

    def ping(self) -> bool:
        return True

    def embed_chunk(
        self, number: int, rows: list[int], paths: list[str], url: str, thumbnail_budget: int
    ) -> dict[str, Any]:
        """Embed `paths` (contents `rows`) and write them to the shard at `url`."""
        from .pipeline import embedded_batches

        started = time.perf_counter()
        encoder = self._load()
        dim = int(encoder.spec.embedding_dim or 0)
        found_rows: list[int] = []
        found_paths: list[str] = []
        embeddings: list[np.ndarray] = []
        widths: list[int] = []
        heights: list[int] = []
        digests: list[str | None] = []
        thumbnails: list[bytes | None] = []
        failures: list[tuple[int, str]] = []
        kept = 0
        for batch in embedded_batches(paths, encoder, digests=True, **self.options):
            embeddings.append(batch.embeddings)
            for local, info, thumbnail, digest in zip(
                batch.rows, batch.infos, batch.thumbnails, batch.digests, strict=True
            ):
                found_rows.append(rows[local])
                found_paths.append(paths[local])
                widths.append(info.width)
                heights.append(info.height)
                digests.append(digest)
                if thumbnail is not None and kept + len(thumbnail) <= thumbnail_budget:
                    kept += len(thumbnail)
                else:
                    thumbnail = None
                thumbnails.append(thumbnail)
            failures.extend((rows[local], reason) for local, reason in batch.failures)
        shard = Shard(
            meta={
                "version": SHARD_VERSION,
                "chunk": number,
                "node": socket.gethostname(),
                "model": encoder.spec.name,
                "weights_sha256": encoder.weights_sha256,
                "device": str(encoder.device),
            },
            rows=np.array(found_rows, dtype=np.int64),
            paths=found_paths,
            embeddings=(
                np.concatenate(embeddings) if embeddings else np.empty((0, dim), np.float16)
            ),
            widths=np.array(widths, dtype=np.int64),
            heights=np.array(heights, dtype=np.int64),
            digests=digests,
            thumbnails=thumbnails,
            failures=failures,
        )
        write_shard(url, shard)
        return {
            "url": url,
            "images": len(found_rows) + len(failures),
            "seconds": time.perf_counter() - started,
            "node": shard.meta["node"],
        }


_TOKEN_FILE = "_run-token"


# Embedding on the cluster


@dataclass
class RayEmbeddedImages(EmbeddedImages):
    """What `pipeline.embed_contents` returns, plus where it ran."""

    shards: list[str] = field(default_factory=list)  # the shard of each chunk that was written
    workers: list[dict[str, Any]] = field(default_factory=list)  # each worker's node and model
    timings: dict[str, float] = field(default_factory=dict)  # connect, start_workers, embed


def embed_contents_on_ray(
    contents: Sequence[ContentGroup],
    *,
    address: str,
    model: str,
    weights: str | None = None,
    device: str = "auto",
    shard_dir: str | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    thumbnail_size: int | None = None,
    thumbnail_budget: int = 0,
    progress: bool = False,
    decode: str = "auto",
    compile_model: bool = False,
    columns: dict[str, str | None] | None = None,
    actors: int | None = None,
    chunk_size: int | None = None,
    expect_weights_sha256: str | None = None,
    run_id: str | None = None,
) -> RayEmbeddedImages:
    """`pipeline.embed_contents` on a Ray cluster (see the module's docstring).

    `address`: the cluster (HOST:PORT, ray://HOST:PORT, auto, local). `shard_dir`: the folder or
    URL the shards go to, in a sub-folder of this run (`run_id`, default a new one), kept after
    the run; None only for a cluster on this machine, which then uses a temporary folder removed
    afterwards. `actors`: Ray workers (default: one per GPU of the cluster; without GPUs, one
    per node); `workers`: decoding processes in each (default: as a scan on that node).
    `chunk_size`: contents per chunk and shard (default: about 4 chunks per worker, at most
    10,000), rounded up to whole batches so that every image is embedded in the same batch as
    on one machine.
    `expect_weights_sha256`: the weights the driver loaded; workers with others are refused.
    With `thumbnail_size`, thumbnails are kept in row order until `thumbnail_budget` bytes, as on
    one machine, when they all fit; otherwise each chunk keeps its share of the budget.
    """
    validate_options(ray_address=address, shard_dir=shard_dir, actors=actors)
    if chunk_size is not None and (not _is_int(chunk_size) or chunk_size < 1):
        raise BadArgumentError(f"chunk_size must be at least 1, not {chunk_size!r}")
    contents = list(contents)
    if not contents:
        dim = get_spec(model).embedding_dim or 0
        return RayEmbeddedImages([], [], np.zeros((0, dim), np.float32), [], [])
    # Workers run in another folder: local paths travel absolute; URLs and members as they are.
    paths = [storage.absolute(group.representative.path) for group in contents]
    timings: dict[str, float] = {}
    temporary = shard_dir is None
    if shard_dir is None:
        shard_dir = tempfile.mkdtemp(prefix="dedup-gpu-shards-")
    fs, root = _filesystem(shard_dir)
    run_id = run_id or time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    run_path = f"{root.rstrip('/')}/{run_id}"
    run_url = fs.unstrip_protocol(run_path) if not _is_local(fs) else run_path
    try:
        token = secrets.token_hex(8)
        try:
            fs.makedirs(run_path, exist_ok=True)
            with fs.open(f"{run_path}/{_TOKEN_FILE}", "wb") as handle:
                handle.write(token.encode())
        except Exception as error:
            raise ClusterError(
                f"cannot write to the shard folder {shard_dir}: {first_line(error)}",
                hint="check the path or URL and this machine's credentials for it",
            ) from None
        tick = time.perf_counter()
        with ray_connection(address) as ray:
            timings["connect"] = time.perf_counter() - tick
            return _embed_on_cluster(
                ray,
                contents,
                paths,
                model=model,
                weights=weights,
                device=device,
                run_url=run_url,
                token=token,
                batch_size=batch_size,
                workers=workers,
                max_pixels=max_pixels,
                thumbnail_size=thumbnail_size,
                thumbnail_budget=thumbnail_budget,
                progress=progress,
                decode=decode,
                compile_model=compile_model,
                columns=columns,
                actors=actors,
                chunk_size=chunk_size,
                expect_weights_sha256=expect_weights_sha256,
                timings=timings,
            )
    finally:
        if temporary:
            shutil.rmtree(shard_dir, ignore_errors=True)


def _worker_layout(
    ray: ModuleType, device: str, actors: int | None
) -> tuple[int, dict[str, Any], str]:
    """How many actors, their resources, and the device they load the model on."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    wants_cuda = device.strip().lower().startswith("cuda")
    if wants_cuda and not gpus:
        raise DeviceUnavailableError(
            f"--device {device} was requested but the Ray cluster has no GPUs",
            hint="use --device auto (CPU workers on a cluster without GPUs), or add GPU nodes",
        )
    if gpus and device.strip().lower() != "cpu":
        count = min(actors or gpus, gpus)
        # Ray shows each GPU actor only its own GPU, as cuda:0.
        return count, {"num_gpus": 1, "num_cpus": 1}, "cuda" if wants_cuda else "auto"
    nodes = [
        node
        for node in ray.nodes()
        if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= 1
    ]
    if not nodes:
        raise ClusterError("the Ray cluster has no node with a CPU to run workers on")
    total = int(sum(node["Resources"]["CPU"] for node in nodes))
    smallest = int(min(node["Resources"]["CPU"] for node in nodes))
    count = min(actors or len(nodes), total)
    return count, {"num_cpus": max(1, min(total // count, smallest))}, "cpu"


def _embed_on_cluster(
    ray: ModuleType,
    contents: list[ContentGroup],
    paths: list[str],
    *,
    model: str,
    weights: str | None,
    device: str,
    run_url: str,
    token: str,
    batch_size: int,
    workers: int | None,
    max_pixels: int,
    thumbnail_size: int | None,
    thumbnail_budget: int,
    progress: bool,
    decode: str,
    compile_model: bool,
    columns: dict[str, str | None] | None,
    actors: int | None,
    chunk_size: int | None,
    expect_weights_sha256: str | None,
    timings: dict[str, float],
) -> RayEmbeddedImages:
    from . import __version__
    from .progress import progress_bars

    spec = get_spec(model)
    count, resources, worker_device = _worker_layout(ray, device, actors)
    count = max(1, min(count, len(paths)))
    if workers is None and "num_gpus" not in resources:
        # CPU workers sharing a node share its cores: each decodes with its own share of them.
        from .data import default_workers

        workers = min(default_workers(), int(resources["num_cpus"]))
    tick = time.perf_counter()
    worker_class = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RETRIES)(EmbedWorker)
    started = [
        worker_class.options(**resources).remote(
            model,
            weights,
            worker_device,
            batch_size,
            workers,
            max_pixels,
            thumbnail_size,
            decode,
            compile_model,
            columns,
        )
        for _ in range(count)
    ]
    try:
        described = _start_workers(ray, started, run_url, token, paths[:3], count, resources)
        for info in described:
            _check_worker(info, spec.name, expect_weights_sha256, __version__)
        pool = [actor for actor, info in zip(started, described, strict=True) if info is not None]
        if "num_gpus" in resources and any(
            info is not None and info["model"]["device"] == "cpu" for info in described
        ):
            logger.warning(
                "Ray workers hold a GPU each but run %s on the CPU: this model's runtime cannot "
                "use their GPU (for sscd-onnx: pip install 'dedup-gpu[onnx-gpu]' on the nodes)",
                model,
            )
        timings["start_workers"] = time.perf_counter() - tick

        tick = time.perf_counter()
        size = chunk_size or min(MAX_CHUNK, -(-len(paths) // (len(pool) * CHUNKS_PER_WORKER)))
        # Whole batches: every image is embedded in the same batch as on one machine.
        size = -(-max(1, size) // batch_size) * batch_size
        chunks = [
            list(range(start, min(start + size, len(paths))))
            for start in range(0, len(paths), size)
        ]
        with progress_bars(progress and bool(paths)) as bars:
            task = bars.add_task(
                f"embedding with {model} on {len(pool)} Ray workers", total=len(paths)
            )
            shards, results, failed = _run_chunks(
                ray,
                pool,
                chunks,
                paths,
                run_url,
                thumbnail_budget,
                lambda done: bars.advance(task, done),
            )
        timings["embed"] = time.perf_counter() - tick
    finally:
        for actor in started:  # the workers that never became ready too
            with contextlib.suppress(Exception):
                ray.kill(actor)
    embedded = _assemble(contents, results, failed, chunks, spec.embedding_dim, thumbnail_budget)
    embedded.shards = shards
    embedded.workers = [info for info in described if info is not None]
    embedded.timings = timings
    return embedded


def _start_workers(
    ray: ModuleType,
    pool: list[Any],
    run_url: str,
    token: str,
    sample: list[str],
    count: int,
    resources: dict[str, Any],
) -> list[dict[str, Any] | None]:
    """Each worker's account of itself (None: not started in time); a ClusterError when none
    started."""
    pending = {actor.ready.remote(run_url, token, sample): n for n, actor in enumerate(pool)}
    described: list[dict[str, Any] | None] = [None] * len(pool)
    done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=READY_TIMEOUT_S)
    for ref in done:
        try:
            described[pending[ref]] = ray.get(ref)
        except Exception as error:
            described[pending[ref]] = {"node": "?", "error": _ray_reason(error)}
    errors = [info for info in described if info is not None and info["error"]]
    if errors:
        info = errors[0]
        raise ClusterError(
            f"a Ray worker on {info['node']} cannot embed: {info['error']}",
            hint="every node needs dedup-gpu and the model installed, the images at the same "
            "paths as here, and the shard folder (a shared mount or an s3:// URL)",
        )
    if not any(info is not None for info in described):
        raise ClusterError(
            f"no Ray worker started within {READY_TIMEOUT_S:.0f} s ({count} asked for, each "
            f"with {resources})",
            hint="check `ray status`: the cluster may lack free GPUs or CPUs",
        )
    return described


def _check_worker(
    info: dict[str, Any] | None, name: str, weights_sha256: str | None, version: str
) -> None:
    if info is None:
        return
    if info["dedup_gpu"] != version:
        raise ClusterError(
            f"the Ray worker on {info['node']} runs dedup-gpu {info['dedup_gpu']}, this machine "
            f"{version}",
            hint="install the same dedup-gpu version on every node",
        )
    described = info["model"]
    if described["name"] != name or (
        weights_sha256 is not None and described["weights_sha256"] != weights_sha256
    ):
        raise ClusterError(
            f"the Ray worker on {info['node']} loaded {described['name']} with weights "
            f"{described['weights_sha256']}, this machine {name} with {weights_sha256}",
            hint="install the same model version on every node (or pass --weights on a path "
            "every node sees)",
        )


def _ray_reason(error: BaseException) -> str:
    """The one-line reason of a Ray failure: the worker's own exception where there is one."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {first_line(cause)}"
    return first_line(error)


@dataclass
class _ChunkResult:
    number: int
    shard: Shard


def _run_chunks(
    ray: ModuleType,
    pool: list[Any],
    chunks: list[list[int]],
    paths: list[str],
    run_url: str,
    thumbnail_budget: int,
    advance: Any,
) -> tuple[list[str], list[_ChunkResult], dict[int, str]]:
    """Hands the chunks to the workers, one at a time each, and reads each shard as it is
    written (after handing that worker its next chunk). A chunk that failed for good (Ray
    retried it) is returned in `failed` with its reason, not handed on: one that kills its
    worker would kill the next one too. A worker that is not back after dying is not used."""
    from ray.exceptions import RayActorError

    total = max(1, len(paths))
    queue = deque(range(len(chunks)))
    idle = list(range(len(pool)))
    in_flight: dict[Any, tuple[int, int]] = {}  # ref -> (actor, chunk)
    written: list[tuple[int, dict[str, Any]]] = []  # (chunk, what its worker returned)
    shards: list[str] = []
    results: list[_ChunkResult] = []
    failed: dict[int, str] = {}
    while queue or in_flight or written:
        while queue and idle:
            actor, number = idle.pop(), queue.popleft()
            rows = chunks[number]
            url = f"{run_url}/chunk-{number:06d}.npz"
            share = thumbnail_budget * len(rows) // total  # each chunk's share of the budget
            ref = (
                pool[actor]
                .embed_chunk.options(max_task_retries=MAX_RETRIES, retry_exceptions=True)
                .remote(number, rows, [paths[row] for row in rows], url, share)
            )
            in_flight[ref] = (actor, number)
        for number, done in written:
            results.append(_ChunkResult(number, _read_chunk(done, chunks[number], number)))
            shards.append(done["url"])
            advance(done["images"])
        written = []
        if not in_flight:
            for number in queue:  # every worker is gone
                failed[number] = "no Ray worker was left to embed it"
            advance(sum(len(chunks[number]) for number in queue))
            break
        [ref], _ = ray.wait(list(in_flight), num_returns=1)
        actor, number = in_flight.pop(ref)
        try:
            written.append((number, ray.get(ref)))
        except RayActorError as error:
            logger.warning("chunk %d failed: its Ray worker died: %s", number, first_line(error))
            failed[number] = (
                f"its Ray worker died on each of {MAX_RETRIES + 1} tries (killed, out of memory, "
                "or a crash while decoding)"
            )
            advance(len(chunks[number]))
            if not _answers(ray, pool[actor]):
                logger.warning("Ray worker %d is gone", actor)
                continue
        except Exception as error:  # the task failed every retry
            logger.warning("chunk %d failed: %s", number, _ray_reason(error))
            failed[number] = f"its Ray task failed {MAX_RETRIES + 1} times: {_ray_reason(error)}"
            advance(len(chunks[number]))
        idle.append(actor)
    return shards, results, failed


def _read_chunk(done: dict[str, Any], rows: list[int], number: int) -> Shard:
    """The shard a worker wrote for chunk `number`, checked to hold that chunk's rows."""
    try:
        shard = read_shard(done["url"])
    except Exception as error:
        raise ClusterError(
            f"cannot read the shard {done['url']} that the Ray worker on {done['node']} "
            f"wrote: {first_line(error)}",
            hint="the shard folder must be shared by every node and this machine (a shared "
            "mount or an s3:// URL)",
        ) from None
    got = set(shard.rows.tolist()) | {row for row, _ in shard.failures}
    if got != set(rows):
        raise ClusterError(f"the shard {done['url']} does not hold chunk {number}'s images")
    return shard


def _answers(ray: ModuleType, actor: Any) -> bool:
    """Whether a worker that died is back (restarted, model loaded again on its next chunk)."""
    try:
        ray.get(actor.ping.remote(), timeout=READY_TIMEOUT_S)
    except Exception:
        return False
    return True


def _assemble(
    contents: list[ContentGroup],
    results: list[_ChunkResult],
    failed: dict[int, str],
    chunks: list[list[int]],
    dim: int | None,
    thumbnail_budget: int,
) -> RayEmbeddedImages:
    """The shards in row order, as `embed_contents` builds its result."""
    results.sort(key=lambda result: result.number)
    if dim is None:
        dim = next((r.shard.embeddings.shape[1] for r in results if len(r.shard.rows)), 0)
    embeddings = np.zeros((len(contents), dim), dtype=np.float32)
    infos: list[ImageInfo | None] = [None] * len(contents)
    thumbnails: list[bytes | None] = [None] * len(contents)
    reasons: dict[int, str] = {}
    for result in results:
        shard = result.shard
        if len(shard.rows):
            embeddings[shard.rows] = shard.embeddings
        for row, width, height, digest, thumbnail in zip(
            shard.rows.tolist(),
            shard.widths.tolist(),
            shard.heights.tolist(),
            shard.digests,
            shard.thumbnails,
            strict=True,
        ):
            infos[row] = ImageInfo(width=width, height=height)
            if contents[row].digest is None:  # a unique size was not hashed before
                contents[row] = replace(contents[row], digest=digest)
            thumbnails[row] = thumbnail
        reasons.update(shard.failures)
    for number, reason in failed.items():
        reasons.update((row, f"not embedded: {reason}") for row in chunks[number])
    # The budget, in row order, as on one machine.
    kept_bytes = 0
    for row, thumbnail in enumerate(thumbnails):
        if thumbnail is None:
            continue
        if kept_bytes + len(thumbnail) <= thumbnail_budget:
            kept_bytes += len(thumbnail)
        else:
            thumbnails[row] = None
    errors = [
        FileError(file.path, reasons[row])
        for row in sorted(reasons)
        for file in contents[row].files
    ]
    return RayEmbeddedImages.of_decoded(contents, infos, embeddings, errors, thumbnails)


# Partitioned search


@dataclass
class Partitioning:
    """Each row's `overlap` nearest k-means centroids, and each partition's rows (sorted)."""

    members: list[np.ndarray]  # int64 rows of each partition
    trained_on: int  # rows k-means was trained on


def partition_rows(
    embeddings: np.ndarray, partitions: int, overlap: int, *, seed: int = 0, gpu: int | None = None
) -> Partitioning:
    """k-means (spherical, faiss.Kmeans) over a sample of the rows; each row filed under its
    `overlap` nearest centroids by cosine."""
    from .index import faiss_gpu_count, import_faiss

    faiss = import_faiss()
    count, dim = embeddings.shape
    partitions = min(partitions, count)
    overlap = min(overlap, partitions)
    rng = np.random.default_rng(seed)
    sample_size = min(count, _KMEANS_ROWS_PER_CENTROID * partitions)
    sample_rows = np.sort(rng.choice(count, sample_size, replace=False))
    sample = np.ascontiguousarray(embeddings[sample_rows], dtype=np.float32)
    kmeans = faiss.Kmeans(
        dim,
        partitions,
        niter=_KMEANS_ITERATIONS,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=_KMEANS_ROWS_PER_CENTROID,
        min_points_per_centroid=1,
        gpu=gpu is not None and faiss_gpu_count() > gpu,
    )
    kmeans.train(sample)
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(dim)
    index.add(centroids)
    labels = np.empty((count, overlap), dtype=np.int64)
    for start in range(0, count, _ASSIGN_CHUNK):
        block = np.ascontiguousarray(embeddings[start : start + _ASSIGN_CHUNK], dtype=np.float32)
        labels[start : start + len(block)] = index.search(block, overlap)[1]
    flat = labels.ravel()
    rows = np.repeat(np.arange(count, dtype=np.int64), overlap)
    order = np.argsort(flat, kind="stable")  # stable: rows stay sorted within a partition
    sizes = np.bincount(flat, minlength=partitions)
    members = np.split(rows[order], np.cumsum(sizes)[:-1])
    return Partitioning(members=members, trained_on=sample_size)


def join_partition(
    rows: np.ndarray, ids: np.ndarray, threshold: float, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact self-join of one partition's rows, as (left, right, score) in `ids`."""
    from . import tiled_join

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            device = "cpu"
    pairs = tiled_join.self_join(rows, threshold, ids=ids, device=device)
    return pairs.left, pairs.right, pairs.score


def _lossless_float16(embeddings: np.ndarray, chunk: int = _ASSIGN_CHUNK) -> bool:
    """Whether the rows are float16 values already (a scan's are), so they travel at half size."""
    if embeddings.dtype == np.float16:
        return True
    for start in range(0, len(embeddings), chunk):
        block = np.asarray(embeddings[start : start + chunk])
        if not np.array_equal(block.astype(np.float16).astype(block.dtype), block):
            return False
    return True


def partitioned_pairs(
    embeddings: np.ndarray,
    threshold: float,
    *,
    partitions: int,
    overlap: int = DEFAULT_OVERLAP,
    address: str | None = None,
    gpu: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Pairs, dict[str, Any]]:
    """Pairs of rows (unit length) scoring >= threshold, searched within k-means partitions:
    `partitions` of them, each row in its `overlap` nearest. Each partition is joined exactly,
    as Ray tasks on the cluster at `address` (GPU tasks where it has GPUs), or one after another
    here when `address` is None (on GPU `gpu` if given). Every pair found is an exact pair with
    its exact score; pairs whose rows share none of their nearest centroids are missed.
    Returns the pairs and the report's account of the search."""
    validate_options(partitions=partitions, overlap=overlap)
    check_rows(embeddings, "embeddings")
    from . import tiled_join
    from .progress import progress_bars

    started = time.perf_counter()
    count = len(embeddings)
    info: dict[str, Any] = {
        "kind": "partitioned",
        "method": (
            f"k-means partitions, each row in its {overlap} nearest; exact join within each "
            "partition (pairs whose rows share no partition are missed)"
        ),
        "partitions": int(min(partitions, max(count, 1))),
        "overlap": int(min(overlap, partitions, max(count, 1))),
        "runs_on": f"Ray cluster {address}" if address else "this machine",
    }
    if count < 2:
        return Pairs.empty(), {**info, "largest_partition": count, "trained_on": 0}
    split = partition_rows(embeddings, partitions, overlap, seed=seed, gpu=gpu)
    sizes = [len(rows) for rows in split.members]
    info.update(
        largest_partition=int(max(sizes)),
        trained_on=split.trained_on,
        # Row pairs compared, as a share of exact search's.
        work_vs_exact=round(sum(s * (s - 1) for s in sizes) / (count * (count - 1)), 4),
        partition_seconds=round(time.perf_counter() - started, 3),
    )
    order = sorted(range(len(sizes)), key=lambda p: -sizes[p])  # biggest first: they take longest
    order = [p for p in order if sizes[p] >= 2]
    travel = np.float16 if _lossless_float16(embeddings) else np.float32
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    with progress_bars(progress) as bars:
        task = bars.add_task(f"searching {len(order)} partitions", total=len(order))
        if address is None:
            device = f"cuda:{gpu}" if gpu is not None else "cpu"
            info["join"] = tiled_join.describe(_torch_device(device))["method"]
            for p in order:
                rows = split.members[p]
                found.append(join_partition(embeddings[rows], rows, threshold, device))
                bars.advance(task)
        else:
            with ray_connection(address) as ray:
                info["join"] = _join_on_ray(
                    ray, embeddings, split.members, order, threshold, travel, found, bars, task
                )
    if found:
        left, right, score = (np.concatenate(parts) for parts in zip(*found, strict=True))
        pairs = unique_pairs(left, right, score)
    else:
        pairs = Pairs.empty()
    return pairs, info


def _torch_device(name: str) -> Any:
    import torch

    return torch.device(name)


def _join_on_ray(
    ray: ModuleType,
    embeddings: np.ndarray,
    members: list[np.ndarray],
    order: list[int],
    threshold: float,
    travel: Any,
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    bars: Any,
    task: Any,
) -> str:
    """Each partition's join as a Ray task, biggest first, a bounded number in flight; a
    partition whose task fails for good is joined here instead. Returns how they ran."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    slots = max(1, gpus or int(resources.get("CPU", 1)))
    remote = ray.remote(join_partition).options(
        num_gpus=1 if gpus else 0, num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=True
    )
    queue = deque(order)
    in_flight: dict[Any, int] = {}
    while queue or in_flight:
        while queue and len(in_flight) < 2 * slots:
            p = queue.popleft()
            rows = members[p]
            block = np.ascontiguousarray(embeddings[rows], dtype=travel)
            in_flight[remote.remote(block, rows, threshold, "cuda" if gpus else "cpu")] = p
        [ref], _ = ray.wait(list(in_flight), num_returns=1)
        p = in_flight.pop(ref)
        try:
            found.append(ray.get(ref))
        except Exception as error:
            logger.warning(
                "partition %d failed on the cluster (%s); joining it here", p, _ray_reason(error)
            )
            rows = members[p]
            found.append(join_partition(embeddings[rows], rows, threshold, "cpu"))
        bars.advance(task)
    where = f"{gpus} GPUs" if gpus else f"{slots} CPUs"
    return f"tiled join (float32 re-scoring) as Ray tasks on {where}"
