"""The verifier alone, pair by pair, on a labelled benchmark: no search, no grouping.

    python benchmarks/verify_pairs.py BENCHMARK_DIR copies --kind photo [--every 1]
                                      [--match REGEX] [--families jpeg,crop] [--why]
    python benchmarks/verify_pairs.py BENCHMARK_DIR all-pairs --match REGEX
                                      [--families jpeg,crop] [--set name=value ...]

BENCHMARK_DIR is a folder `dedup-gpu eval` built (with labels.json). `copies` verifies every
(original, copy) pair of one kind (`photo`, `plain`, `document:receipt`, ...; every `--every`th
copy) and prints the share accepted per family: what the verifier can do when grouping offers
it the right pair; `--match` keeps the originals whose path matches, `--families` those
copies. `all-pairs` verifies every pair among the images whose path matches
`--match` (originals, distractors, and the copies of `--families`) and prints, for pairs of one
source and of two, how many were accepted, rejected or left unverified, listing each pair of
two sources that was accepted (a wrong merge, were grouping to offer it). `--set` overrides a
VerifySettings field for a trial. Where grouping's numbers (verify_eval.py) move from one run to
the next as groups form differently, these do not.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import re
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from dedup_gpu.index import Pairs
from dedup_gpu.verify import Verifier, VerifySettings


def settings_from(overrides: list[str]) -> VerifySettings:
    types = {
        field.name: type(getattr(VerifySettings(), field.name)) for field in fields(VerifySettings)
    }
    values = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"unknown setting {name!r}; known: {', '.join(sorted(types))}")
        values[name] = types[name](value)
    return VerifySettings(**values)


def verdicts(folder: Path, pairs: list[tuple[str, str]], settings: VerifySettings) -> list:
    paths = sorted({path for pair in pairs for path in pair})
    row = {path: index for index, path in enumerate(paths)}
    verifier = Verifier([str(folder / path) for path in paths], settings=settings)
    started = time.perf_counter()
    found = verifier.check(
        Pairs(
            np.array([row[a] for a, _ in pairs], dtype=np.int64),
            np.array([row[b] for _, b in pairs], dtype=np.int64),
            np.ones(len(pairs), dtype=np.float32),
        )
    )
    print(
        f"{len(paths)} images, {len(pairs)} pairs verified in {time.perf_counter() - started:.1f} s"
    )
    return found


def copies(
    folder: Path,
    rows: list[dict],
    kind: str,
    every: int,
    settings: VerifySettings,
    match: str = "",
    families: set[str] | None = None,
    why: bool = False,
) -> None:
    pattern = re.compile(match)
    originals = {
        r["source"]: r["path"]
        for r in rows
        if r["family"] == "original" and r["kind"] == kind and pattern.search(r["path"])
    }
    chosen = [
        r
        for r in rows
        if r["kind"] == kind
        and r["family"] != "original"
        and r["source"] in originals
        and (not families or r["family"] in families)
    ][::every]
    found = verdicts(folder, [(originals[r["source"]], r["path"]) for r in chosen], settings)
    accepted = collections.defaultdict(list)
    for r, verdict in zip(chosen, found, strict=True):
        accepted[r["family"]].append(verdict.accepted)
        if why and not verdict.accepted:
            print(f"{verdict.outcome.value}: {Path(r['path']).name}: {verdict.reason}")
    every_pair = [ok for oks in accepted.values() for ok in oks]
    ranked = sorted(accepted.items(), key=lambda item: np.mean(item[1]))
    print(f"{kind}: {np.mean(every_pair):.1%} of {len(every_pair)} (original, copy) pairs accepted")
    print(", ".join(f"{family} {np.mean(oks):.0%}" for family, oks in ranked))


def all_pairs(
    folder: Path, rows: list[dict], match: str, families: set[str], settings: VerifySettings
) -> None:
    pattern = re.compile(match)
    chosen = [
        r
        for r in rows
        if pattern.search(r["path"]) and (r["family"] in families or r["family"] == "original")
    ]
    pairs = list(itertools.combinations(chosen, 2))
    found = verdicts(folder, [(a["path"], b["path"]) for a, b in pairs], settings)
    counts = collections.Counter()
    for (a, b), verdict in zip(pairs, found, strict=True):
        one = a["source"] == b["source"]
        counts[("one source" if one else "two sources", verdict.outcome.value)] += 1
        if verdict.accepted and not one:
            print(f"wrong: {Path(a['path']).name} ~ {Path(b['path']).name}: {verdict.reason}")
    for (which, outcome), count in sorted(counts.items()):
        print(f"{which:12s} {outcome:10s} {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("mode", choices=("copies", "all-pairs"))
    parser.add_argument("--kind", default="photo")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--match", default="")
    parser.add_argument("--families", default="")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--why", action="store_true", help="copies: print each pair turned down")
    args = parser.parse_args()
    rows = json.loads((args.folder / "labels.json").read_text())["images"]
    settings = settings_from(args.overrides)
    families = set(filter(None, args.families.split(",")))
    if args.mode == "copies":
        copies(
            args.folder, rows, args.kind, args.every, settings, args.match, families, args.why
        )
    else:
        all_pairs(args.folder, rows, args.match, families, settings)


if __name__ == "__main__":
    main()
