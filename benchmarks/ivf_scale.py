"""Similarity search and grouping at a million embeddings: IVF (approximate) against exact search.

    python benchmarks/ivf_scale.py [--n 1000000] [--dim 512] [--threshold 0.30]
        [--kind auto|exact|ivf] [--nprobe N] [--nlist N] [--seed 0] [--sample 5000] [--no-groups]
        [--sweep 16,64,256 [--sweep-sample-only]] [--copy-noise isotropic|cluster]

Synthetic data, stored as float16 in a memory-mapped file as the catalog stores embeddings:
rows drawn around n/50 cluster centres (20,000 at 1M; cluster popularity log-normal, each cluster's
rows at cosine 0.05-0.15 to each other, so distinct rows' nearest neighbours score well below the
threshold), then near-duplicates planted: n/20 sources with one copy each and n/500 groups of 3-10
images (a source and 2-9 copies). A copy's cosine to its source is uniform from just above the
threshold to 0.99; the rest of the copy is a random direction (isotropic: the hard case for IVF,
whose lists follow the clusters) or, with --copy-noise cluster, another row of the source's own
cluster (edits that stay among similar images: the easy case).

Prints the time to build the index (IVF: train + add; exact search builds none), to group (the
self-join over every row, as `scan` and `groups` run it, then `group.build_groups` on the
pairs), the peak RSS of the process, recall of planted pairs by cosine band, and recall against
exact search for a random sample of query rows (exact: brute-force float32 inner products of the
sample with every row), with the count of pairs found that brute force did not find. --sweep
(IVF only) builds once and, for each nprobe listed, searches only the planted and sample rows:
planted recall is then what a full self-join would give; the self-join time printed is
extrapolated from the rows searched.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import tempfile
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Planted:
    sources: np.ndarray  # row of each copy's source
    copies: np.ndarray  # row of each copy
    cosine: np.ndarray  # float32: their cosine, from the float16 rows


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthesise(
    out: np.ndarray, threshold: float, seed: int, copy_noise: str, chunk: int = 65_536
) -> Planted:
    """Fill `out` (float16 [n, dim]) with clustered rows and planted copies."""
    count, dim = out.shape
    rng = np.random.default_rng(seed)
    n_centres = max(1, count // 50)
    centres = unit(rng.standard_normal((n_centres, dim), dtype=np.float32))
    tightness = rng.uniform(0.05, 0.15, n_centres).astype(np.float32)
    popularity = rng.lognormal(0.0, 1.0, n_centres)
    n_pairs, n_groups = count // 20, count // 500
    group_sizes = rng.integers(3, 11, n_groups)
    n_copies = n_pairs + int((group_sizes - 1).sum())
    n_base = count - n_copies
    position = rng.permutation(count)  # copies scattered among the rows, not next to sources
    base_rows, copy_rows = position[:n_base], position[n_base:]
    cluster = rng.choice(n_centres, n_base, p=popularity / popularity.sum())

    def clustered(which: np.ndarray) -> np.ndarray:
        tight = tightness[which][:, None]
        spread = unit(rng.standard_normal((len(which), dim), dtype=np.float32))
        return unit(np.sqrt(tight) * centres[which] + np.sqrt(1 - tight) * spread)

    for start in range(0, n_base, chunk):
        stop = min(start + chunk, n_base)
        out[base_rows[start:stop]] = clustered(cluster[start:stop]).astype(np.float16)

    picked = rng.choice(n_base, n_pairs + n_groups, replace=False)
    source_of = np.concatenate([picked[:n_pairs], np.repeat(picked[n_pairs:], group_sizes - 1)])
    sources = base_rows[source_of]
    cosine = rng.uniform(threshold + 0.002, 0.99, n_copies).astype(np.float32)
    for start in range(0, n_copies, chunk):
        stop = min(start + chunk, n_copies)
        source = out[sources[start:stop]].astype(np.float32)
        if copy_noise == "cluster":
            noise = clustered(cluster[source_of[start:stop]])
        else:
            noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        noise -= np.sum(noise * source, axis=1, keepdims=True) * source
        rho = cosine[start:stop, None]
        rows = unit(rho * source + np.sqrt(1 - rho * rho) * unit(noise))
        out[copy_rows[start:stop]] = rows.astype(np.float16)

    actual = np.empty(n_copies, np.float32)
    for start in range(0, n_copies, chunk):
        stop = min(start + chunk, n_copies)
        a = out[sources[start:stop]].astype(np.float32)
        b = out[copy_rows[start:stop]].astype(np.float32)
        actual[start:stop] = np.sum(a * b, axis=1)
    return Planted(sources.astype(np.int64), copy_rows.astype(np.int64), actual)


def pair_keys(left: np.ndarray, right: np.ndarray, count: int) -> np.ndarray:
    low, high = np.minimum(left, right), np.maximum(left, right)
    return low.astype(np.int64) * count + high


def band_recall(found: np.ndarray, cosine: np.ndarray, threshold: float) -> str:
    """Recall by cosine band [threshold, threshold + 0.1), ... (count in brackets)."""
    edges = [*np.arange(threshold, 0.999, 0.1), 1.0001]
    parts = []
    for low, high in itertools.pairwise(edges):
        inside = (cosine >= low) & (cosine < high)
        if inside.any():
            parts.append(
                f"[{low:.2f},{min(high, 1.0):.2f}) {found[inside].mean():.1%} ({inside.sum()})"
            )
    return "; ".join(parts)


# How the copies of `dedup-gpu eval` score against their originals with sscd-onnx (seed 0: 1,683
# edited copies of the dev photos), counted in cosine bins of 0.05 from 0.25: most real copies
# score far above the threshold, unlike the uniform spread planted here.
EVAL_COPY_SCORE_BINS = np.round(np.arange(0.25, 1.0001, 0.05), 2)
EVAL_COPY_SCORE_COUNTS = np.array([1, 0, 5, 7, 19, 16, 27, 41, 44, 92, 126, 232, 286, 366, 421])


def eval_weighted_recall(found: np.ndarray, cosine: np.ndarray, threshold: float) -> float:
    """Planted-pair recall with each cosine bin weighted by its share of the eval's copies
    (bins below the threshold left out: no search at that threshold could find those)."""
    total, weight = 0.0, 0.0
    for low, high, count in zip(
        EVAL_COPY_SCORE_BINS[:-1], EVAL_COPY_SCORE_BINS[1:], EVAL_COPY_SCORE_COUNTS, strict=True
    ):
        inside = (cosine >= max(low, threshold)) & (cosine < high)
        if count and inside.any():
            total += count * found[inside].mean()
            weight += count
    return total / weight if weight else float("nan")


def exact_neighbours(
    embeddings: np.ndarray, rows: np.ndarray, threshold: float, chunk: int = 16_384
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brute force: (query row, other row, score) for every score >= threshold, and each query's
    best score against any other row."""
    queries = embeddings[rows].astype(np.float32)
    best = np.full(len(rows), -np.inf, np.float32)
    lefts, rights, scores = [], [], []
    for start in range(0, embeddings.shape[0], chunk):
        block = embeddings[start : start + chunk].astype(np.float32)
        products = queries @ block.T
        own = (rows >= start) & (rows < start + len(block))
        products[np.flatnonzero(own), rows[own] - start] = -np.inf
        best = np.maximum(best, products.max(axis=1))
        q, r = np.nonzero(products >= threshold)
        lefts.append(rows[q])
        rights.append(r + start)
        scores.append(products[q, r])
    return np.concatenate(lefts), np.concatenate(rights), best


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.30)
    parser.add_argument("--kind", choices=["auto", "exact", "ivf"], default="auto")
    parser.add_argument("--nprobe", type=int, default=None, help="default: DEFAULT_NPROBE")
    parser.add_argument("--nlist", type=int, default=None, help="default: from the row count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sample", type=int, default=5000, help="query rows checked by brute force"
    )
    parser.add_argument("--sweep", default="", help="comma-separated nprobe values (see above)")
    parser.add_argument(
        "--sweep-sample-only", action="store_true", help="--sweep searches the sample rows only"
    )
    parser.add_argument("--copy-noise", choices=["isotropic", "cluster"], default="isotropic")
    parser.add_argument("--no-groups", action="store_true", help="skip build_groups")
    args = parser.parse_args()

    from dedup_gpu.index import (
        DEFAULT_NPROBE,
        SearchSettings,
        SimilarityIndex,
        import_faiss,
        search_pairs,
    )

    faiss = import_faiss()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, faiss {faiss.__version__}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    count, threshold = args.n, args.threshold
    with tempfile.TemporaryDirectory(prefix="ivf-scale-") as folder:
        embeddings = np.lib.format.open_memmap(
            os.path.join(folder, "embeddings.npy"), "w+", np.float16, (count, args.dim)
        )
        started = time.perf_counter()
        planted = synthesise(embeddings, threshold, args.seed, args.copy_noise)
        print(
            f"data: {count} x {args.dim} float16 ({args.copy_noise} copy noise), "
            f"{len(planted.copies)} planted copies, cosine "
            f"{planted.cosine.min():.3f}-{planted.cosine.max():.3f}; "
            f"made in {time.perf_counter() - started:.1f} s"
        )

        settings = SearchSettings(
            kind=args.kind, nprobe=args.nprobe or DEFAULT_NPROBE, nlist=args.nlist
        )
        rng = np.random.default_rng(args.seed + 1)
        sample = np.sort(rng.choice(count, min(args.sample, count), replace=False))
        build_s = 0.0
        if settings.resolve(count) == "exact":
            # As scan and groups search: the tiled join alone, no index built first.
            if args.sweep:
                parser.error("--sweep needs an IVF index (--kind ivf)")
            started = time.perf_counter()
            pairs, described = search_pairs(embeddings, threshold, search=settings)
            search_s = time.perf_counter() - started
        else:
            started = time.perf_counter()
            index = SimilarityIndex.build(embeddings, settings=settings, seed=args.seed)
            build_s = time.perf_counter() - started
            described = index.describe()
            print(f"build: {build_s:.1f} s; peak RSS {peak_rss_mb():.0f} MB")
            if args.sweep:
                sweep(
                    index,
                    embeddings,
                    planted,
                    sample,
                    threshold,
                    args.sweep,
                    args.sweep_sample_only,
                )
                return
            started = time.perf_counter()
            pairs = index.pairs_above(threshold)
            search_s = time.perf_counter() - started
            del index
        print(
            f"search {described}: self-join at {threshold}: {search_s:.1f} s, {len(pairs)} pairs; "
            f"peak RSS {peak_rss_mb():.0f} MB"
        )
        group_s = 0.0
        if not args.no_groups:
            group_s = group(pairs, count, threshold, args.seed)
        print(
            f"TOTAL build + group: {build_s + search_s + group_s:.1f} s; "
            f"peak RSS so far {peak_rss_mb():.0f} MB"
        )
        exact = exact_sample(embeddings, sample, threshold)
        report_recall(planted, exact, count, threshold, pair_keys(pairs.left, pairs.right, count))
        del embeddings
    print(f"peak RSS at the end (brute-force check included): {peak_rss_mb():.0f} MB")


def group(pairs, count: int, threshold: float, seed: int) -> float:
    """Times build_groups on the pairs, with one synthetic image record per row."""
    from dedup_gpu.group import build_groups
    from dedup_gpu.records import ContentGroup, ImageFile, ImageInfo

    started = time.perf_counter()
    rng = np.random.default_rng(seed + 2)
    sizes = rng.integers(50_000, 5_000_000, count).tolist()
    sides = rng.integers(200, 4000, (count, 2)).tolist()
    contents = [
        ContentGroup((ImageFile(f"/photos/{row:07d}.jpg", size, 1.7e9 + row),), None)
        for row, size in enumerate(sizes)
    ]
    infos = [ImageInfo(width, height) for width, height in sides]
    del sizes, sides
    print(
        f"records: {count} ContentGroup/ImageInfo made in {time.perf_counter() - started:.1f} s; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.perf_counter()
    groups = build_groups(contents, infos, pairs, threshold)
    elapsed = time.perf_counter() - started
    members = sum(len(g.duplicates) for g in groups)
    print(
        f"build_groups: {elapsed:.1f} s, {len(groups)} groups, {members} duplicates; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    return elapsed


@dataclass
class ExactSample:
    rows: np.ndarray  # the sampled query rows
    keys: np.ndarray  # every pair of a sampled row and another row scoring >= threshold
    best: np.ndarray  # each sampled row's best score against any other row
    seconds: float


def exact_sample(embeddings: np.ndarray, rows: np.ndarray, threshold: float) -> ExactSample:
    started = time.perf_counter()
    left, right, best = exact_neighbours(embeddings, rows, threshold)
    keys = np.unique(pair_keys(left, right, embeddings.shape[0]))
    return ExactSample(rows, keys, best, time.perf_counter() - started)


def report_recall(
    planted: Planted, exact: ExactSample, count: int, threshold: float, found: np.ndarray
) -> None:
    """Recall of the pairs found (`found`: their pair_keys) among planted and exact pairs."""
    hit = np.isin(pair_keys(planted.sources, planted.copies, count), found)
    print(f"planted-pair recall: {hit.mean():.2%} of {len(hit)}")
    print(f"  by cosine band: {band_recall(hit, planted.cosine, threshold)}")
    print(
        "  weighted as the eval's copies score (sscd-onnx, seed 0): "
        f"{eval_weighted_recall(hit, planted.cosine, threshold):.2%}"
    )
    recall = np.isin(exact.keys, found).mean() if len(exact.keys) else 1.0
    low, high = found // count, found % count
    touching = found[np.isin(low, exact.rows) | np.isin(high, exact.rows)]
    extra = int(np.sum(~np.isin(touching, exact.keys)))
    print(
        f"recall against exact search for {len(exact.rows)} random query rows: {recall:.2%} of "
        f"{len(exact.keys)} pairs (brute force took {exact.seconds:.1f} s); pairs of those rows "
        f"found that brute force did not find: {extra}"
    )
    quiet = exact.best[~np.isin(exact.rows, np.concatenate([planted.sources, planted.copies]))]
    print(
        f"  best cosine to any other row, for the {len(quiet)} sampled rows outside planted "
        f"groups: median {np.median(quiet):.3f}, 99th percentile {np.percentile(quiet, 99):.3f}, "
        f"{np.mean(quiet >= threshold):.2%} at or above {threshold}"
    )


def sweep(
    index,
    embeddings: np.ndarray,
    planted: Planted,
    sample: np.ndarray,
    threshold: float,
    values: str,
    sample_only: bool,
) -> None:
    count = embeddings.shape[0]
    exact = exact_sample(embeddings, sample, threshold)
    if sample_only:  # enough to time an exact self-join at 1M, not to measure planted recall
        queries = sample
    else:
        queries = np.unique(np.concatenate([planted.sources, planted.copies, sample]))
    for nprobe in (int(value) for value in values.split(",")) if index.kind == "ivf" else [None]:
        if nprobe is not None:
            index.nprobe = nprobe
        started = time.perf_counter()
        pairs = index.pairs_above(threshold, queries=embeddings[queries], query_ids=queries)
        elapsed = time.perf_counter() - started
        print(
            f"{f'nprobe {nprobe}' if nprobe else 'exact'}: {len(queries)} query rows in "
            f"{elapsed:.1f} s "
            f"(self-join of {count} rows extrapolated: {elapsed * count / len(queries):.0f} s); "
            "sample recall below is a lower bound (pairs found only from the other row count "
            "as missed)"
        )
        report_recall(planted, exact, count, threshold, pair_keys(pairs.left, pairs.right, count))


if __name__ == "__main__":
    main()
