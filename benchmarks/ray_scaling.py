"""Distributed embedding on Ray: images/s with 1 and with 2 Ray workers, and one process alone.

    python benchmarks/ray_scaling.py [FOLDER] [--make N] [--size 1024x768] [--model sscd-onnx]
        [--device auto] [--batch-size 64] [--workers N] [--actors 1,2] [--address ADDRESS]

On the same files, one after the other:
  (a) one process: `pipeline.embed_contents`, as `scan` embeds on one machine (decode workers,
      content hashes and verification thumbnails included);
  (b) `distributed.embed_contents_on_ray` with each number of Ray workers in --actors, on a
      Ray cluster started here (`ray.init(address="local")`: every CPU and GPU of this machine)
      or on the cluster at --address. Each Ray worker is one GPU when the cluster has GPUs
      (so 2 workers need 2 GPUs), else CPU workers sharing the CPUs. Shards go to a temporary
      folder (--shard-dir for a real cluster, which needs a shared one).
Prints a table: wall time with worker start-up (model load) and without it, images/s without
it, the scaling ratio of each worker count to the first, and whether the embeddings equal the
single-process ones (they should, to the bit).

With --make N (default when no FOLDER is given), N JPEGs are first made as throughput.py makes
them (from the photos in $DEV_PHOTOS, default /tmp/devphotos).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="images to measure on (default: --make)")
    parser.add_argument("--make", type=int, default=None, help="make N JPEGs first")
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the JPEGs made")
    parser.add_argument("--model", default="sscd-onnx")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decode processes per worker")
    parser.add_argument("--actors", default="1,2", help="Ray worker counts to measure")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (HOST:PORT)")
    parser.add_argument("--shard-dir", default=None, help="shared shard folder (with --address)")
    args = parser.parse_args()
    counts = [int(part) for part in args.actors.split(",") if part.strip()]
    if args.address and not args.shard_dir:
        parser.error("--address needs --shard-dir: a folder every node of that cluster can write")

    import ray
    import torch

    from dedup_gpu.distributed import embed_contents_on_ray
    from dedup_gpu.exact import group_identical
    from dedup_gpu.pipeline import embed_contents, open_encoder
    from dedup_gpu.sources import discover
    from dedup_gpu.verify import THUMBNAIL_SIZE

    encoder = open_encoder(args.model, args.device)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gpu}; "
        f"model {encoder.spec.name} on {encoder.device}; batch {args.batch_size}; "
        f"torch {torch.__version__}, ray {ray.__version__}"
    )

    with tempfile.TemporaryDirectory(prefix="ray-scaling-") as scratch:
        if args.folder:
            files = discover([args.folder]).files
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from throughput import make_jpegs

            photos = Path(os.environ.get("DEV_PHOTOS", "/tmp/devphotos"))
            width, height = (int(side) for side in args.size.lower().split("x"))
            started = time.perf_counter()
            (Path(scratch) / "images").mkdir()
            made = make_jpegs(args.make or 2000, Path(scratch) / "images", photos, width, height)
            print(
                f"made {len(made)} {width}x{height} JPEGs in {time.perf_counter() - started:.1f} s"
            )
            files = discover([str(Path(scratch) / "images")]).files
        contents = group_identical(files).groups
        images = len(contents)
        print(f"files: {len(files)}, distinct contents: {images}")
        options = {
            "batch_size": args.batch_size,
            "workers": args.workers,
            "thumbnail_size": THUMBNAIL_SIZE,
            "thumbnail_budget": 2_000_000_000,
        }

        started = time.perf_counter()
        alone = embed_contents(contents, encoder, **options)  # type: ignore[arg-type]
        alone_s = time.perf_counter() - started
        rows = [("one process", 1, alone_s, alone_s, images / alone_s, "-")]
        del encoder

        address = args.address or "local"
        if args.address is None:
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=args.address, log_to_driver=False)
        print(f"Ray cluster: {ray.cluster_resources()}")
        shard_dir = args.shard_dir or os.path.join(scratch, "shards")
        rates = {}
        for count in counts:
            started = time.perf_counter()
            spread = embed_contents_on_ray(
                contents,
                address=address,
                model=args.model,
                device=args.device,
                shard_dir=shard_dir,
                actors=count,
                **options,  # type: ignore[arg-type]
            )
            total_s = time.perf_counter() - started
            embed_s = spread.timings["embed"]
            rates[count] = images / embed_s
            same = len(spread.embeddings) == len(alone.embeddings) and np.array_equal(
                spread.embeddings, alone.embeddings
            )
            used = len(spread.workers)
            label = f"Ray, {used} worker{'s' if used != 1 else ''}"
            rows.append((label, used, total_s, embed_s, rates[count], "yes" if same else "NO"))
        ray.shutdown()

    print()
    print(f"{'setup':<16} {'wall s':>8} {'no start s':>10} {'images/s':>9}  identical")
    for label, _, total_s, embed_s, rate, same in rows:
        print(f"{label:<16} {total_s:>8.1f} {embed_s:>10.1f} {rate:>9.1f}  {same}")
    if len(rates) > 1:
        first = counts[0]
        for count in counts[1:]:
            print(
                f"scaling {first} -> {count} Ray workers: {rates[count] / rates[first]:.2f}x "
                "(images/s without worker start-up)"
            )
    print(
        "'no start s' leaves out starting the Ray workers and loading the model in each; "
        "for one process it is the same as the wall time."
    )


if __name__ == "__main__":
    main()
