"""Every pair of records of one template, verified: are two records ever taken for one?

    python benchmarks/record_pairs.py --seed 0 [--size full|single|tiny] [--work DIR]

Writes the document records of `dedup_gpu.document_kinds` (receipts, invoices, ID cards, letters,
lab reports; each record with a rescan, a phone photo and a fax) once under --work, then
verifies every pair of images of one template, not only those the embedding would propose: the
hardest case an archive has. Prints per kind the pairs of different records accepted (wrong
merges) and, per pair of copy families, how many pairs of one record were accepted and how many
left unverified (for review). The pairs accepted wrongly are listed at the end.
"""

from __future__ import annotations

import argparse
import collections
import re
import time
from pathlib import Path

import numpy as np

from dedup_gpu.document_kinds import DOCUMENT_KINDS, write_documents
from dedup_gpu.index import Pairs
from dedup_gpu.verify import Verifier

NAME = re.compile(r"(?P<template>.+?_t\d+)_r(?P<record>\d+)(?:__(?P<family>[a-z_]+))?\.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="full", choices=("full", "single", "tiny"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/record-pairs"))
    args = parser.parse_args()
    folder = args.work / f"{args.size}-seed{args.seed}"
    if not folder.exists():
        write_documents(folder, seed=args.seed, size=args.size)
    paths = sorted(str(path) for path in folder.iterdir() if NAME.match(path.name))
    names = [NAME.match(Path(path).name) for path in paths]
    pairs = [
        (i, j)
        for i in range(len(paths))
        for j in range(i + 1, len(paths))
        if names[i]["template"] == names[j]["template"]
    ]
    left, right = (np.array(side) for side in zip(*pairs, strict=True))
    started = time.perf_counter()
    verdicts = Verifier(paths).check(Pairs(left, right, np.full(len(pairs), 0.9, np.float32)))
    seconds = time.perf_counter() - started

    wrong: collections.Counter = collections.Counter()
    different: collections.Counter = collections.Counter()
    same: dict = collections.defaultdict(collections.Counter)
    listed = []
    for (i, j), verdict in zip(pairs, verdicts, strict=True):
        kind = names[i]["template"].rsplit("_t", 1)[0]
        if names[i]["record"] == names[j]["record"]:
            families = "+".join(sorted(n["family"] or "original" for n in (names[i], names[j])))
            same[families][verdict.outcome.value] += 1
        else:
            different[kind] += 1
            if verdict.accepted:
                wrong[kind] += 1
                listed.append((Path(paths[i]).name, Path(paths[j]).name, verdict.reason))
    print(f"{len(paths)} images, {len(pairs)} pairs of one template, verified in {seconds:.1f} s")
    for kind in DOCUMENT_KINDS:
        print(f"  {kind:11s} different records accepted: {wrong[kind]} of {different[kind]}")
    print(f"  all kinds   different records accepted: {sum(wrong.values())} of {different.total()}")
    print("one record's copies (accepted / unverified / rejected):")
    for families, outcomes in sorted(same.items()):
        total = sum(outcomes.values())
        print(
            f"  {families:26s} {outcomes['accepted']:3d} / {outcomes['unverified']:3d} / "
            f"{outcomes['rejected']:3d} of {total}"
        )
    for first, second, reason in listed:
        print(f"wrong: {first} ~ {second}: {reason}")


if __name__ == "__main__":
    main()
