"""Similarity search speed and memory on synthetic embeddings with planted near-duplicates.

    python benchmarks/search.py [--n 100000] [--dim 512] [--threshold 0.55] [--raw-openblas]

Planted pairs: every tenth row gets a noisy copy whose cosine to it is about 0.9. Prints the
time of `find_pairs`, the pairs found, the recall of the planted pairs, and the peak resident
memory of the process. --raw-openblas imports faiss before dedup-gpu can set OPENBLAS_CORETYPE,
to show what that setting is worth on this CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.55)
    parser.add_argument("--raw-openblas", action="store_true")
    args = parser.parse_args()
    if args.raw_openblas:
        import faiss  # loaded first: OpenBLAS keeps its own CPU detection

    from dedup_gpu.index import find_pairs, import_faiss

    faiss = import_faiss()
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    sources = np.arange(0, args.n - 1, 10)
    rows[sources + 1] = rows[sources] + 0.45 * rng.standard_normal(
        (len(sources), args.dim), dtype=np.float32
    )
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)

    started = time.perf_counter()
    pairs = find_pairs(rows, args.threshold)
    elapsed = time.perf_counter() - started
    found = set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))
    recall = np.mean([(int(s), int(s) + 1) in found for s in sources])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, faiss {faiss.__version__}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    print(
        f"{args.n} x {args.dim} embeddings: find_pairs at {args.threshold} took "
        f"{elapsed:.1f} s; {len(pairs)} pairs; planted-pair recall {recall:.1%}; "
        f"peak RSS {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
