"""What a catalog saves: a scan, then the same images indexed, indexed again, grouped from the
catalog at two thresholds, and one upload checked; every step timed, groups compared.

    python benchmarks/catalog_runs.py FOLDER [--catalog DIR] [--model sscd-onnx]

FOLDER is any folder of images, e.g. the benchmark `dedup-gpu eval` builds
(`dedup-gpu-eval/benchmark`). The catalog folder is deleted first.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import time
from pathlib import Path


def membership(report) -> set[tuple[str, frozenset[str]]]:
    return {
        (os.path.abspath(g.keep.path), frozenset(os.path.abspath(m.path) for m in g.duplicates))
        for g in report.groups
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--catalog", default="/tmp/dedup-gpu-catalog-benchmark")
    parser.add_argument("--model", default="sscd-onnx")
    args = parser.parse_args()

    from dedup_gpu.ingest import check_images, index_catalog
    from dedup_gpu.pipeline import groups_from_catalog, open_encoder, scan

    shutil.rmtree(args.catalog, ignore_errors=True)
    encoder = open_encoder(args.model, "cpu")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; model {args.model} on CPU")

    def timed(label: str, run):
        started = time.perf_counter()
        value = run()
        print(f"{label}: {time.perf_counter() - started:.1f} s")
        return value

    scanned = timed("scan", lambda: scan([args.folder], encoder=encoder)).report
    first = timed(
        "index, first run", lambda: index_catalog([args.folder], args.catalog, encoder=encoder)
    )
    print(f"  added {first.added}, failed {first.failed}, images {first.images}")
    again = timed(
        "index, nothing changed",
        lambda: index_catalog([args.folder], args.catalog, encoder=encoder),
    )
    print(f"  added {again.added}, unchanged {again.unchanged}")
    grouped = timed("groups (verification on)", lambda: groups_from_catalog(args.catalog)).report
    print(
        f"  same groups as the scan: {membership(grouped) == membership(scanned)} "
        f"({len(grouped.groups)} groups, {grouped.counts['duplicates']} duplicates)"
    )
    strict = timed(
        "groups --threshold 0.6 --verify off",
        lambda: groups_from_catalog(args.catalog, threshold=0.6, verify="off"),
    ).report
    print(f"  {len(strict.groups)} groups, {strict.counts['duplicates']} duplicates")
    upload = sorted(Path(args.folder).rglob("*.jpg"))[0]
    results = timed(
        f"check one upload ({upload.name})",
        lambda: check_images([str(upload)], args.catalog, encoder=encoder),
    )
    print(f"  verdict {results[0].verdict}")
    catalog_bytes = sum(p.stat().st_size for p in Path(args.catalog).rglob("*") if p.is_file())
    print(f"catalog size on disk: {catalog_bytes / 1e6:.1f} MB")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
