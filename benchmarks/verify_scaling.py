"""Does verification's work stay bounded as look-alikes pile up?

    python benchmarks/verify_scaling.py [--n 250 500 1000 2000] [--sets forms plain]
                                        [--work DIR] [--model sscd-onnx]

Two look-alike clusters, each at every size N:
- `forms`: N fills of one form template (lookalikes.write_form_fills), each with one rescan. The
  embedding scores every fill up to 0.98 against every other and its own rescan lower, so every
  pair is a candidate: N^2 / 2 of them.
- `plain`: N distinct plain pictures (gradients, flat and minimal designs, objects on white,
  short notes, planets; plain_art.py, kept only if no earlier one is too close), each with a JPEG
  re-save and a crop. The embedding rates distinct smooth pictures 0.88-0.95 alike.

Each folder is scanned with verification on (the default pipeline). Printed per set and N:
images, candidate pairs, pairs verified (and per image), grouping rounds, seconds embedding and
verifying (and verifying per image), pair precision and recall against the labels. The folders
are written once under --work and reused.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dedup_gpu.evaluate import Benchmark, Scorer
from dedup_gpu.lookalikes import write_form_fills
from dedup_gpu.pipeline import open_encoder, scan
from dedup_gpu.plain_art import plain_pictures, too_close
from dedup_gpu.synth import FAMILIES, LabelledImage, save_copy

PLAIN_COPIES = ("jpeg", "crop")


def plain_set(folder: Path, count: int) -> list[LabelledImage]:
    """`count` distinct plain pictures with their copies, drawn seed after seed."""
    folder.mkdir(parents=True, exist_ok=True)
    labels: list[LabelledImage] = []
    kept: dict[str, list[np.ndarray]] = {}
    seed = 0
    while len(labels) < count * (1 + len(PLAIN_COPIES)):
        for picture in plain_pictures(seed):
            if picture.distractor or len(labels) >= count * (1 + len(PLAIN_COPIES)):
                continue
            thumb = np.asarray(picture.image.convert("RGB").resize((64, 64), Image.Resampling.BOX))
            seen = kept.setdefault(picture.kind, [])
            crops = picture.kind == "object"  # as plain_art checks objects on white
            if any(too_close(thumb, other, crops=crops) for other in seen):
                continue
            seen.append(thumb)
            source = f"s{seed:03d}_{picture.name}"
            path = folder / f"{source}.png"
            picture.image.save(path)
            labels.append(LabelledImage(path, source, "original", "plain"))
            for name in PLAIN_COPIES:
                family = FAMILIES[name]
                edited = family.edit(
                    picture.image.convert("RGB"), random.Random(f"{source}:{name}")
                )
                copy = save_copy(edited, folder / f"{source}__{name}", family)
                labels.append(LabelledImage(copy, source, name, "plain"))
        seed += 1
    return labels


def prepared(work: Path, name: str, count: int) -> Benchmark:
    folder = work / f"{name}-{count}"
    labels_file = folder / "labels.json"
    if labels_file.exists():
        rows = json.loads(labels_file.read_text())
        images = [
            LabelledImage(folder / r["path"], r["source"], r["family"], r["kind"]) for r in rows
        ]
        return Benchmark(folder, images, 0)
    if name == "forms":
        images = write_form_fills(folder, seed=0, count=count)
    else:
        images = plain_set(folder, count)
    rows = [
        {
            "path": str(i.path.relative_to(folder)),
            "source": i.source,
            "family": i.family,
            "kind": i.kind,
        }
        for i in images
    ]
    labels_file.write_text(json.dumps(rows))
    return Benchmark(folder, images, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--sets", nargs="+", default=["forms", "plain"], choices=["forms", "plain"])
    parser.add_argument("--work", type=Path, default=Path("verify-scaling"))
    parser.add_argument("--model", default="sscd-onnx")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, CUDA {'available' if torch.cuda.is_available() else 'absent'}"
    )
    encoder = open_encoder(args.model, "auto")
    print(
        "| set | N | images | candidate pairs | verified | verified / image | rounds | embed s "
        "| verify s | verify ms / image | pair precision | pair recall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        for count in args.n:
            started = time.perf_counter()
            benchmark = prepared(args.work, name, count)
            made = time.perf_counter() - started
            report = scan([str(benchmark.folder)], encoder=encoder, verify="on").report
            figures = Scorer(benchmark).grouped(
                [[g.keep.path, *(m.path for m in g.duplicates)] for g in report.groups]
            )
            images = report.counts["images_scanned"]
            verification, timings = report.verification, report.timings_s
            checked = verification["pairs_checked"]
            print(
                f"| {name} | {count} | {images} | {verification['candidate_pairs']:,} | "
                f"{checked:,} | {checked / images:.2f} | "
                f"{verification['rounds']} | {timings['decode_and_embed']:.1f} | "
                f"{timings['verify']:.1f} | {1000 * timings['verify'] / images:.1f} | "
                f"{figures['pair_precision']:.2%} | {figures['pair_recall']:.2%} |",
                flush=True,
            )
            if made > 1:
                print(f"(made the {name}-{count} folder in {made:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
