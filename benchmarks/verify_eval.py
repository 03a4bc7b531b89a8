"""Verification and grouping alone, on a labelled benchmark embedded once: for tuning.

    python benchmarks/verify_eval.py BENCHMARK_DIR [--model sscd-onnx] [--threshold 0.30]
                                     [--show 20]

BENCHMARK_DIR is a folder `dedup-gpu eval` built (OUT/benchmark, with labels.json). The first
run embeds it (the default pipeline's decoding, model and thumbnails) and keeps the embeddings
and verification thumbnails in BENCHMARK_DIR.<model>.cache.pkl beside it; later runs start from
there, search, verify and group with the code as it is, and print what `dedup-gpu eval` would
for the pipeline row (pair precision and recall, copies joined overall, per category and per
family, look-alike precision, rescans joined), what verification cost (pairs checked per
outcome and method, rounds, seconds, against the embedding's seconds), and the first wrong and
missed copies. Wrong pairs and misses are also written to BENCHMARK_DIR.last.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import pickle
import time
from pathlib import Path

from dedup_gpu.data import DEFAULT_MAX_PIXELS
from dedup_gpu.evaluate import Scorer, category_of, load_benchmark
from dedup_gpu.exact import group_identical
from dedup_gpu.group import KeepPolicy
from dedup_gpu.index import SearchSettings
from dedup_gpu.pipeline import embed_contents, open_encoder, search_pairs, verify_and_group
from dedup_gpu.sources import discover
from dedup_gpu.verify import THUMBNAIL_SIZE


def embedded(folder: Path, model: str, encoder) -> dict:
    cache = folder.parent / f"{folder.name}.{model}.cache.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    started = time.perf_counter()
    exact = group_identical(discover([str(folder)]).files)
    images = embed_contents(
        exact.groups,
        [encoder],
        batch_size=64,
        workers=None,
        max_pixels=DEFAULT_MAX_PIXELS,
        progress=False,
        thumbnail_size=THUMBNAIL_SIZE,
        thumbnail_budget=2_000_000_000,
        decode="cpu",
    )
    found = {
        "contents": images.contents,
        "infos": images.infos,
        "embeddings": images.embeddings,
        "thumbnails": images.thumbnails,
        "embed_seconds": time.perf_counter() - started,
    }
    cache.write_bytes(pickle.dumps(found))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default="sscd-onnx")
    parser.add_argument("--threshold", type=float, default=0.30)
    parser.add_argument("--show", type=int, default=20)
    args = parser.parse_args()
    benchmark = load_benchmark(args.folder)
    encoder = open_encoder(args.model, "cpu")
    cached = embedded(args.folder, args.model, encoder)
    contents = cached["contents"]
    pairs, _ = search_pairs(cached["embeddings"], args.threshold, search=SearchSettings(), gpu=None)
    started = time.perf_counter()
    grouped = verify_and_group(
        contents,
        cached["infos"],
        pairs,
        args.threshold,
        KeepPolicy.largest,
        thumbnails=cached["thumbnails"],
        spec=encoder.spec,
        verifying=True,
        device=encoder.device,
    )
    seconds = time.perf_counter() - started
    scorer = Scorer(benchmark)
    groups = [[g.keep.path, *(m.path for m in g.duplicates)] for g in grouped.groups]
    figures = scorer.grouped(groups)
    print(
        f"{len(contents)} images; verify and group {seconds:.1f} s, embedding "
        f"{cached['embed_seconds']:.1f} s; {json.dumps(grouped.verification)}"
    )
    print(
        f"pair precision {figures['pair_precision']:.4f} ({figures['predicted_pairs']}), "
        f"recall {figures['pair_recall']:.4f}, copies joined {figures['joined']:.4f}, "
        f"look-alike precision {figures['lookalike_precision']:.4f} "
        f"({figures['lookalike_pairs']}), rescans joined {figures['rescan_recall']}"
    )
    for name in ("pair_precision_by_category", "joined_by_category", "joined_by_document_kind"):
        print(name, json.dumps(figures.get(name)))
    for category, families in figures.get("joined_by_category_and_family", {}).items():
        ranked = sorted(families.items(), key=lambda item: item[1])
        print(f"joined, {category}:", ", ".join(f"{f} {share:.0%}" for f, share in ranked))
    kinds = collections.Counter()
    for (left, right), verdict in grouped.verdicts.items():
        pair = sorted(
            category_of(scorer.by_path[contents[row].representative.path].kind)
            for row in (left, right)
        )
        kinds[("-".join(pair), verdict.outcome.value, verdict.method.value)] += 1
    for (pair, outcome, method), count in kinds.most_common(15):
        print(f"checked {count:6d}  {pair:20s} {outcome:10s} {method}")
    wrong = [
        (
            group.keep.path,
            member.path,
            member.score,
            member.verdict.reason if member.verdict else "",
            member.matched,
        )
        for group in grouped.groups
        for member in group.duplicates
        if scorer.by_path[member.path].source != scorer.by_path[group.keep.path].source
    ]
    for keep, path, score, reason, matched in wrong[: args.show]:
        # A member was matched against its group's centre, which may not be the kept copy.
        via = "" if matched == keep else f" (matched {Path(matched).name})"
        print(f"wrong: {Path(keep).name} <- {Path(path).name}{via} {score:.3f} {reason}")
    for path in figures["missed"][: args.show]:
        print(f"missed: {path}")
    out = args.folder.parent / f"{args.folder.name}.last.json"
    out.write_text(json.dumps({"wrong": wrong, "missed": figures["missed"]}, indent=1))


if __name__ == "__main__":
    main()
