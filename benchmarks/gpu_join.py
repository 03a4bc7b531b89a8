"""The exact self-join at GPU scale, checked against brute force on a sample of rows.

    python benchmarks/gpu_join.py [--n 1000000 --n 10000000] [--device cuda] [--threshold 0.30]
        [--sample 2000] [--time-limit 240]

For each N: N synthetic 512-d unit embeddings (float16, as a catalog stores them) with a noisy
copy planted after every tenth row (cosine about 0.9), made on the device. Times the torch tiled
join `scan` uses (`tiled_join.self_join`) and, where faiss-gpu is installed, FAISS's GPU search
through `index.search_pairs`; then, for `--sample` random rows, finds every partner at or above
the threshold by brute force in float32 on the device and checks that each join gave exactly
those pairs. Prints one line per join and per check; exits 1 if a check fails.

An N is skipped (and said so) once the joins so far predict it would run past --time-limit
seconds: the join's cost grows as N^2.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def planted_rows(count: int, dim: int, device: torch.device) -> np.ndarray:
    """`count` unit rows, float16, a noisy copy after every tenth one; made on `device`."""
    generator = torch.Generator(device=device).manual_seed(0)
    rows = torch.empty((count, dim), dtype=torch.float16)
    step = 1 << 20
    for start in range(0, count, step):
        stop = min(count, start + step)
        block = torch.randn((stop - start, dim), generator=generator, device=device)
        sources = torch.arange(0, stop - start - 1, 10, device=device)
        block[sources + 1] = block[sources] + 0.5 * torch.randn(
            (len(sources), dim), generator=generator, device=device
        )
        block = torch.nn.functional.normalize(block, dim=1)
        rows[start:stop] = block.half().cpu()
    return rows.numpy()


def brute_force_partners(
    rows: np.ndarray, sample: np.ndarray, threshold: float, device: torch.device
) -> set[tuple[int, int]]:
    """Every (low, high) pair holding a sampled row and scoring >= threshold, in float32."""
    queries = torch.from_numpy(rows[sample]).to(device).float()
    found: set[tuple[int, int]] = set()
    step = 1 << 20
    for start in range(0, len(rows), step):
        block = torch.from_numpy(rows[start : start + step]).to(device).float()
        scores = queries @ block.T
        query, column = torch.nonzero(scores >= threshold, as_tuple=True)
        for q, c in zip(query.tolist(), column.tolist(), strict=True):
            other, mine = start + c, int(sample[q])
            if other != mine:
                found.add((min(mine, other), max(mine, other)))
    return found


def sampled_pairs(left: np.ndarray, right: np.ndarray, sample: np.ndarray) -> set[tuple[int, int]]:
    chosen = np.isin(left, sample) | np.isin(right, sample)
    return set(zip(left[chosen].tolist(), right[chosen].tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="rows; give it again for more")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threshold", type=float, default=0.30)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--time-limit", type=float, default=240.0)
    args = parser.parse_args()
    device = torch.device(args.device)

    from dedup_gpu import tiled_join
    from dedup_gpu.index import SearchSettings, import_faiss, search_pairs

    faiss = import_faiss()
    faiss_gpu = device.type == "cuda" and hasattr(faiss, "StandardGpuResources")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {device} ({name}); torch {torch.__version__}; faiss {faiss.__version__} "
        f"({'with' if faiss_gpu else 'without'} GPU support)",
        flush=True,
    )
    threshold, exact, gpu = args.threshold, SearchSettings(kind="exact"), device.index or 0

    def torch_join(rows: np.ndarray):
        return tiled_join.self_join(rows, threshold, device=device)

    def faiss_join(rows: np.ndarray):
        return search_pairs(rows, threshold, search=exact, gpu=gpu)[0]

    joins = {"torch tiled join": torch_join} | ({"faiss-gpu": faiss_join} if faiss_gpu else {})
    failed = False
    seconds_per_pair = None
    for count in args.n or [1_000_000, 10_000_000]:
        pairs_to_score = count * (count - 1) / 2
        if seconds_per_pair is not None and seconds_per_pair * pairs_to_score > args.time_limit:
            print(
                f"{count:,} rows: skipped, predicted "
                f"{seconds_per_pair * pairs_to_score:.0f} s > --time-limit {args.time_limit:.0f} s"
            )
            continue
        started = time.perf_counter()
        rows = planted_rows(count, args.dim, device)
        print(f"{count:,} x {args.dim} rows made in {time.perf_counter() - started:.1f} s")
        rng = np.random.default_rng(1)
        sample = np.sort(rng.choice(count, size=min(args.sample, count), replace=False))
        expected = brute_force_partners(rows, sample, args.threshold, device)

        for label, join in joins.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            pairs = join(rows)
            elapsed = time.perf_counter() - started
            seconds_per_pair = max(seconds_per_pair or 0.0, elapsed / pairs_to_score)
            got = sampled_pairs(pairs.left, pairs.right, sample)
            same = got == expected
            failed |= not same
            print(
                f"{count:,} rows, {label}: {elapsed:.1f} s "
                f"({pairs_to_score / elapsed / 1e9:,.2f} G pairs/s), {len(pairs):,} pairs "
                f">= {args.threshold}; {len(sample):,} sampled rows: "
                + (
                    f"the same {len(expected):,} pairs as float32 brute force"
                    if same
                    else f"DIFFERS from brute force: {len(got - expected)} extra, "
                    f"{len(expected - got)} missing"
                ),
                flush=True,
            )
        del rows  # before the next N's rows are made
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
