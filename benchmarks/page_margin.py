"""How far apart a rescan and another fill of one form are, for the page comparison.

    python benchmarks/page_margin.py --seeds 1 2 3 [--out /tmp/page-margin]

For each seed, writes the forms and pages look-alike sets (`dedup_gpu.lookalikes`), aligns every
pair of pages from one template or document as verification does, and counts their differing
text windows (`verify.text_differences`). Prints, per seed, the most differing windows of any
page and its own rescan, and the fewest of any two different pages; verification accepts a pair
with at most `VerifySettings.text_differences`.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from dedup_gpu import verify
from dedup_gpu.lookalikes import write_lookalikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", default="/tmp/page-margin")
    args = parser.parse_args()
    settings = verify.VerifySettings()
    print(f"limit: at most {settings.text_differences} differing windows")
    for seed in args.seeds:
        labels = write_lookalikes(
            Path(args.out) / f"seed{seed}", seed=seed, size="full", sets=["forms", "pages"]
        )
        paths = [str(label.path) for label in labels]
        sources = [label.source for label in labels]
        thumbnails = verify.load_thumbnails(paths)
        same, other = [], []
        for i, j in itertools.combinations(range(len(paths)), 2):
            if sources[i].rsplit("_", 1)[0] != sources[j].rsplit("_", 1)[0]:
                continue  # another template or document: the block grid already tells them apart
            a, b = thumbnails[i], thumbnails[j]
            if a is None or b is None:
                continue
            fits = [f for f in verify.alignments(a, b, settings) if f.matrix is not None]
            if not fits:
                continue
            [text] = verify.text_differences([(a, b, fits[0].matrix)], settings)
            (same if sources[i] == sources[j] else other).append(text.differing)
        print(
            f"seed {seed}: page and its rescan, most differing windows {sorted(same)[-5:]} "
            f"({len(same)} pairs); different pages, fewest {sorted(other)[:5]} "
            f"({len(other)} pairs)"
        )


if __name__ == "__main__":
    main()
