"""Detection quality and speed of each offline encoder on real photos plus edited copies.

    python benchmarks/quality.py ORIGINALS_DIR [--models sscd-onnx,sscd-distilled-onnx]
        [--work DIR] [--seed 0] [--input-size N] [--threshold T]

Makes one edited copy per edit family of every original (dedup_gpu.synth), scans originals and
copies together with the real pipeline, and prints, per model: the share of edited copies put in
the same group as their original (overall and per family), the pair precision of the groups
(kept copy -> duplicate pairs whose two images come from the same original), the lowest
original-to-copy score, the highest score between different originals, and images per second.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dedup_gpu.device import resolve_device
from dedup_gpu.encoders import get_spec, load_encoder
from dedup_gpu.pipeline import scan
from dedup_gpu.synth import EDITS, write_edited_copies


def source_of(path: str) -> str:
    return Path(path).stem.split("__")[0]


def family_of(path: str) -> str | None:
    parts = Path(path).stem.split("__")
    return parts[1] if len(parts) > 1 else None


def build_benchmark(originals: Path, work: Path, seed: int) -> list[Path]:
    if work.exists():
        shutil.rmtree(work)
    (work / "originals").mkdir(parents=True)
    files = sorted(p for p in originals.iterdir() if p.is_file())
    for path in files:
        shutil.copy2(path, work / "originals" / path.name)
        write_edited_copies(path, work / "copies", seed=seed)
    return files


def evaluate(
    model: str, work: Path, input_size: int | None, threshold: float | None, device: str
) -> dict:
    spec = get_spec(model)
    if input_size:
        spec = replace(spec, input_size=input_size)
    encoder = load_encoder(spec, resolve_device(device), progress=False)
    started = time.perf_counter()
    result = scan([str(work)], encoder=encoder, threshold=threshold)
    elapsed = time.perf_counter() - started
    report = result.report

    group_of: dict[str, int] = {}
    predicted = true_pairs = 0
    for number, group in enumerate(report.groups):
        group_of[group.keep.path] = number
        for member in group.duplicates:
            group_of[member.path] = number
            predicted += 1
            true_pairs += source_of(member.path) == source_of(group.keep.path)
    originals = {source_of(p): p for p in map(str, (work / "originals").iterdir())}
    joined: dict[str, list[bool]] = defaultdict(list)
    missed = []
    for copy in sorted(map(str, (work / "copies").iterdir())):
        original = originals[source_of(copy)]
        together = copy in group_of and group_of[copy] == group_of.get(original, -1)
        joined[family_of(copy) or "?"].append(together)
        if not together:
            missed.append(Path(copy).name)

    paths = [c.representative.path for c in result.contents]
    sources = np.array([source_of(p) for p in paths])
    is_original = np.array(["__" not in Path(p).stem for p in paths])
    scores = result.embeddings @ result.embeddings.T
    same = sources[:, None] == sources[None, :]
    positive = scores[same & is_original[:, None] & ~is_original[None, :]]
    different = scores[~same]
    all_joined = [x for values in joined.values() for x in values]
    return {
        "model": report.model,
        "input_size": encoder.spec.input_size,
        "threshold": report.threshold,
        "images": report.counts["images_scanned"],
        "joined": sum(all_joined) / len(all_joined),
        "joined_by_family": {f: sum(v) / len(v) for f, v in sorted(joined.items())},
        "pair_precision": true_pairs / predicted if predicted else 1.0,
        "predicted_pairs": predicted,
        "missed": missed,
        "min_positive": float(positive.min()),
        "p5_positive": float(np.percentile(positive, 5)),
        "max_negative": float(different.max()),
        "images_per_s": report.counts["images_scanned"] / elapsed,
        "embed_images_per_s": report.counts["images_scanned"]
        / report.timings_s["decode_and_embed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("originals", type=Path)
    parser.add_argument("--models", default="sscd-onnx,sscd-distilled-onnx")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dedup-gpu-quality"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    files = build_benchmark(args.originals, args.work, args.seed)
    print(
        f"{len(files)} originals, {len(files) * len(EDITS)} edited copies "
        f"({', '.join(EDITS)}); seed {args.seed}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, python {platform.python_version()}"
    )
    rows = [
        evaluate(m, args.work, args.input_size, args.threshold, args.device)
        for m in args.models.split(",")
    ]
    families = list(rows[0]["joined_by_family"])
    print()
    print(
        "| model | input | threshold | copies joined | pair precision | lowest copy score | "
        "highest different-photo score | images/s (scan) | images/s (decode+embed) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['input_size']} | {row['threshold']:.2f} | "
            f"{row['joined']:.1%} | {row['pair_precision']:.1%} ({row['predicted_pairs']} pairs) | "
            f"{row['min_positive']:.3f} | {row['max_negative']:.3f} | "
            f"{row['images_per_s']:.1f} | {row['embed_images_per_s']:.1f} |"
        )
    for row in rows:
        print(f"{row['model']}: copies not joined to their original: "
              f"{', '.join(row['missed']) or 'none'}")
    print()
    print("| model | " + " | ".join(families) + " |")
    print("|---|" + "---|" * len(families))
    for row in rows:
        print(
            f"| {row['model']} | "
            + " | ".join(f"{row['joined_by_family'][f]:.0%}" for f in families)
            + " |"
        )


if __name__ == "__main__":
    main()
