"""What partitioning the duplicate search costs in recall: k-means partitions with overlap
(`distributed.partitioned_pairs`, as in SemDeDup) against exact search, with times.

    python benchmarks/partitioned_recall.py [--n 200000] [--dim 512] [--threshold 0.30]
        [--settings 16x1,16x2,64x2,64x3,256x3] [--copy-noise isotropic|cluster] [--seed 0]
        [--address HOST:PORT]

Synthetic float16 embeddings with planted near-duplicates, made as benchmarks/ivf_scale.py makes
them: rows around n/50 cluster centres, n/20 pairs and n/500 groups of 3-10 copies, each copy's
cosine to its source uniform from just above the threshold to 0.99 (isotropic copy noise: the
hard case, whose copies leave their cluster; `cluster`: copies that stay among similar images).

First exact search (`index.search_pairs`, the tiled join `scan` runs) gives every pair at the
threshold; then for each setting PARTITIONSxOVERLAP the partitioned search, on this machine one
partition after another or, with --address, as Ray tasks on that cluster. For each it prints the
time (k-means and assignment included), the share of exact search's row pairs it compares, the
largest partition, recall of exact search's pairs, recall of planted pairs (overall, by cosine
band, and weighted as the eval's real copies score), and checks that every pair it returns is
an exact pair with the same score (it must be: partitions are joined exactly).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ivf_scale import band_recall, eval_weighted_recall, pair_keys, synthesise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.30)
    parser.add_argument(
        "--settings", default="16x1,16x2,64x2,64x3,256x3", help="PARTITIONSxOVERLAP, ..."
    )
    parser.add_argument("--copy-noise", choices=["isotropic", "cluster"], default="isotropic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--address", default=None, help="run the partitions on this Ray cluster")
    args = parser.parse_args()
    settings = [
        tuple(int(part) for part in setting.lower().split("x"))
        for setting in args.settings.split(",")
        if setting.strip()
    ]

    import torch

    from dedup_gpu.distributed import partitioned_pairs
    from dedup_gpu.index import import_faiss, search_pairs

    faiss = import_faiss()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"faiss {faiss.__version__}; "
        f"partitions run on {'Ray cluster ' + args.address if args.address else 'this machine'}"
    )
    count, threshold = args.n, args.threshold
    embeddings = np.zeros((count, args.dim), dtype=np.float16)
    started = time.perf_counter()
    planted = synthesise(embeddings, threshold, args.seed, args.copy_noise)
    print(
        f"data: {count} x {args.dim} float16 ({args.copy_noise} copy noise), "
        f"{len(planted.copies)} planted copies; made in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    exact, described = search_pairs(embeddings, threshold)
    exact_s = time.perf_counter() - started
    exact_keys = pair_keys(exact.left, exact.right, count)
    order = np.argsort(exact_keys)
    exact_keys, exact_scores = exact_keys[order], exact.score[order]
    planted_keys = pair_keys(planted.sources, planted.copies, count)
    print(
        f"exact search at {threshold}: {exact_s:.1f} s, {len(exact):,} pairs "
        f"({described.get('method', described['kind'])})"
    )

    if args.address:  # connected once: the times below leave out connecting
        import ray

        ray.init(address=args.address, log_to_driver=False)
        print(f"Ray cluster: {ray.cluster_resources()}")
    print()
    print(
        f"{'partitions':>10} {'overlap':>7} {'time s':>7} {'speed-up':>8} {'work':>6} "
        f"{'largest':>8} {'exact-pair recall':>17} {'planted recall':>14} {'eval-weighted':>13}"
    )
    details = []
    for partitions, overlap in settings:
        started = time.perf_counter()
        pairs, info = partitioned_pairs(
            embeddings,
            threshold,
            partitions=partitions,
            overlap=overlap,
            address=args.address,
            seed=args.seed,
        )
        elapsed = time.perf_counter() - started
        keys = pair_keys(pairs.left, pairs.right, count)
        at = np.searchsorted(exact_keys, keys)
        inside = (at < len(exact_keys)) & (exact_keys[np.minimum(at, len(exact_keys) - 1)] == keys)
        same_scores = bool(inside.all()) and np.array_equal(exact_scores[at], pairs.score)
        hit = np.isin(planted_keys, keys)
        recall = float(np.isin(exact_keys, keys).mean()) if len(exact_keys) else 1.0
        print(
            f"{partitions:>10} {overlap:>7} {elapsed:>7.1f} {exact_s / elapsed:>7.2f}x "
            f"{info['work_vs_exact']:>6.1%} {info['largest_partition']:>8,} {recall:>17.2%} "
            f"{hit.mean():>14.2%} "
            f"{eval_weighted_recall(hit, planted.cosine, threshold):>13.2%}"
        )
        if not same_scores:
            print("  ERROR: a pair found is not an exact pair with the exact score")
        details.append((partitions, overlap, band_recall(hit, planted.cosine, threshold)))
    if args.address:
        ray.shutdown()
    print()
    print("planted recall by cosine band:")
    for partitions, overlap, bands in details:
        print(f"  {partitions}x{overlap}: {bands}")
    print(
        "work: row pairs compared as a share of exact search's (sum of partition sizes squared "
        "over n squared); speed-up: exact search's time over the partitioned search's here"
    )


if __name__ == "__main__":
    main()
