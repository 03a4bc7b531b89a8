"""`dedup-gpu eval`: a labelled benchmark built from a folder of distinct originals, and how well
each encoder, the full pipeline (with verification) and the perceptual-hash baselines find the
copies in it without merging look-alikes.

Ground truth: two images are duplicates exactly when they share a `source` (an original and its
edited copies; a document page and its rescan). Every look-alike is its own source.

Figures, for each method on the same images:
- pair precision and recall over all pairs of images that end up in one group;
- the share of edited copies put in the same group as their original, overall and per family;
- look-alike precision (pairs among look-alikes) and rescan recall (rescans joined to their page);
- micro-average precision over all scored pairs (as in DISC21: one ranked list of every pair a
  method scores, each query's k nearest neighbours, divided by all true pairs), and the recall
  and threshold at 99% and 99.9% precision;
- images per second, and for the pipeline the share of scan time spent verifying.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadArgumentError, ModelUnavailableError
from .group import KeepPolicy, build_groups
from .index import Pairs, SimilarityIndex
from .progress import progress_bars
from .records import ContentGroup, ImageFile, ImageInfo
from .sources import discover
from .synth import FAMILIES, LabelledImage, write_copies

RANKING_K = 32  # neighbours per image in the ranked list; above the largest set of copies
LABELS_FILE = "labels.json"


@dataclass
class Benchmark:
    folder: Path
    images: list[LabelledImage]
    seed: int

    def paths(self) -> list[str]:
        return [str(image.path) for image in self.images]


def build_benchmark(
    originals: Path,
    folder: Path,
    *,
    seed: int = 0,
    lookalikes: bool = True,
    lookalike_size: str = "full",
    progress: bool = False,
) -> Benchmark:
    """Copy the originals into `folder`, write their edited copies and the look-alikes.

    `folder` must be new or empty (or hold a benchmark from an earlier run, which is replaced):
    nothing else is ever deleted.
    """
    from .lookalikes import write_lookalikes

    found = discover([str(originals)])
    if not found.files:
        raise BadArgumentError(f"no images found in {originals}")
    if folder.exists() and any(folder.iterdir()):
        if not (folder / LABELS_FILE).exists():
            raise BadArgumentError(
                f"{folder} is not empty and holds no earlier benchmark",
                hint="give --out a new or empty folder",
            )
        shutil.rmtree(folder)
    (folder / "originals").mkdir(parents=True)
    images: list[LabelledImage] = []
    files = sorted(found.files, key=lambda f: f.path)
    with progress_bars(progress) as bars:
        task = bars.add_task("building the benchmark", total=len(files) + int(lookalikes))
        for number, file in enumerate(files):
            source = f"original-{number:05d}"
            target = folder / "originals" / f"{number:05d}_{Path(file.path).name}"
            shutil.copyfile(file.path, target)
            try:
                copies = write_copies(target, folder / "copies", seed=seed, source=source)
            except Exception as error:  # an original Pillow cannot edit is left out, with a reason
                target.unlink()
                print(f"skipped {file.path}: cannot make edited copies: {error}")
                continue
            kind = copies[0].kind if copies else "photo"
            images.append(LabelledImage(target, source, "original", kind))
            images.extend(copies)
            bars.advance(task)
        if lookalikes:
            images.extend(write_lookalikes(folder / "lookalikes", seed=seed, size=lookalike_size))
            bars.advance(task)
    labels = [
        {"path": str(image.path.relative_to(folder)), **_label_fields(image)} for image in images
    ]
    (folder / LABELS_FILE).write_text(json.dumps({"seed": seed, "images": labels}, indent=1))
    return Benchmark(folder=folder, images=images, seed=seed)


def _label_fields(image: LabelledImage) -> dict[str, str]:
    return {"source": image.source, "family": image.family, "kind": image.kind}


@dataclass
class Ranking:
    """Every scored pair of a method, best first, with whether it is a true pair."""

    scores: np.ndarray
    truth: np.ndarray
    positives: int  # all true pairs in the benchmark, found or not

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        hits = np.cumsum(self.truth)
        precision = hits / np.arange(1, len(hits) + 1)
        recall = hits / max(self.positives, 1)
        return precision, recall

    def micro_ap(self) -> float:
        precision, _ = self.precision_recall()
        return float((precision * self.truth).sum() / max(self.positives, 1))

    def recall_above(self, threshold: float) -> float:
        """Share of all true pairs that score at least `threshold`."""
        return float((self.truth & (self.scores >= threshold)).sum() / max(self.positives, 1))

    def recall_at(self, target: float) -> tuple[float, float | None]:
        """(best recall with precision >= target, the score threshold that gives it)."""
        precision, recall = self.precision_recall()
        ok = np.flatnonzero(precision >= target)
        if not len(ok):
            return 0.0, None
        best = ok[np.argmax(recall[ok])]
        return float(recall[best]), float(self.scores[best])


@dataclass
class MethodResult:
    name: str
    kind: str  # "pipeline" (encoder + verification), "encoder" (embedding alone), "hash"
    threshold: float
    images_per_s: float
    pair_precision: float
    pair_recall: float
    predicted_pairs: int
    joined: float
    joined_by_family: dict[str, float]
    lookalike_precision: float
    lookalike_pairs: int
    rescan_recall: float | None
    micro_ap: float | None = None
    recall_at_99: float | None = None
    threshold_at_99: float | None = None
    recall_at_999: float | None = None
    threshold_at_999: float | None = None
    verify_share: float | None = None
    missed: list[str] = field(default_factory=list)
    curve: tuple[list[float], list[float]] | None = None  # precision, recall (for the plot)
    histogram: dict[str, list[float]] | None = None  # true / false / look-alike pair scores
    ranking: Ranking | None = None


class Scorer:
    """Labels of the benchmark's images and the figures computed from them."""

    def __init__(self, benchmark: Benchmark):
        self.benchmark = benchmark
        self.by_path = {str(image.path): image for image in benchmark.images}
        sizes: dict[str, int] = defaultdict(int)
        for image in benchmark.images:
            sizes[image.source] += 1
        self.positives = sum(n * (n - 1) // 2 for n in sizes.values())
        self.original_of = {
            image.source: str(image.path)
            for image in benchmark.images
            if image.family == "original"
        }

    def ranking(self, paths: Sequence[str], pairs: Pairs) -> Ranking:
        order = np.argsort(-pairs.score, kind="stable")
        sources = np.array([self.by_path[path].source for path in paths])
        truth = sources[pairs.left[order]] == sources[pairs.right[order]]
        return Ranking(pairs.score[order], truth, self.positives)

    def histogram(self, paths: Sequence[str], pairs: Pairs) -> dict[str, list[float]]:
        labels = [self.by_path[path] for path in paths]
        out: dict[str, list[float]] = {"copies": [], "different": [], "look-alikes": []}
        for a, b, score in zip(pairs.left, pairs.right, pairs.score.tolist(), strict=True):
            first, second = labels[a], labels[b]
            if first.source == second.source:
                out["copies"].append(score)
            elif first.kind.startswith("lookalike") and second.kind.startswith("lookalike"):
                out["look-alikes"].append(score)
            else:
                out["different"].append(score)
        return out

    def grouped(self, groups_of_paths: Sequence[Sequence[str]]) -> dict[str, Any]:
        """Figures for a grouping given as lists of paths."""
        group_of = {path: number for number, paths in enumerate(groups_of_paths) for path in paths}
        predicted = true = lookalike_pairs = lookalike_true = 0
        for paths in groups_of_paths:
            labels = [self.by_path[path] for path in paths]
            for i, first in enumerate(labels):
                for second in labels[i + 1 :]:
                    same = first.source == second.source
                    predicted += 1
                    true += same
                    if first.kind.startswith("lookalike") and second.kind.startswith("lookalike"):
                        lookalike_pairs += 1
                        lookalike_true += same
        joined: dict[str, list[bool]] = defaultdict(list)
        rescans: list[bool] = []
        missed = []
        for image in self.benchmark.images:
            if image.family == "original":
                continue
            path, original = str(image.path), self.original_of[image.source]
            together = path in group_of and group_of[path] == group_of.get(original, -1)
            if image.kind.startswith("lookalike"):
                rescans.append(together)
            else:
                joined[image.family].append(together)
            if not together:
                missed.append(str(image.path.relative_to(self.benchmark.folder)))
        everything = [x for values in joined.values() for x in values]
        return {
            "pair_precision": true / predicted if predicted else 1.0,
            "pair_recall": true / self.positives if self.positives else 1.0,
            "predicted_pairs": predicted,
            "joined": float(np.mean(everything)) if everything else 1.0,
            "joined_by_family": {
                family: float(np.mean(values)) for family, values in sorted(joined.items())
            },
            "lookalike_precision": lookalike_true / lookalike_pairs if lookalike_pairs else 1.0,
            "lookalike_pairs": lookalike_pairs,
            "rescan_recall": float(np.mean(rescans)) if rescans else None,
            "missed": missed,
        }


def _rank_figures(ranking: Ranking) -> dict[str, Any]:
    at_99, threshold_99 = ranking.recall_at(0.99)
    at_999, threshold_999 = ranking.recall_at(0.999)
    precision, recall = ranking.precision_recall()
    step = max(1, len(precision) // 2000)  # enough points for a smooth curve in the plot
    return {
        "micro_ap": ranking.micro_ap(),
        "recall_at_99": at_99,
        "threshold_at_99": threshold_99,
        "recall_at_999": at_999,
        "threshold_at_999": threshold_999,
        "curve": (precision[::step].tolist(), recall[::step].tolist()),
    }


def _knn_pairs(embeddings: np.ndarray) -> Pairs:
    return SimilarityIndex.exact(embeddings).pairs_above(-1.0, k=RANKING_K)


def _paths_of_groups(groups) -> list[list[str]]:
    return [[group.keep.path, *(m.path for m in group.duplicates)] for group in groups]


def evaluate_encoder(
    benchmark: Benchmark,
    scorer: Scorer,
    model: str,
    *,
    device: str = "auto",
    threshold: float | None = None,
    progress: bool = False,
) -> list[MethodResult]:
    """Two rows for one encoder: its embedding alone (at its default threshold, no verification)
    and the full pipeline with verification."""
    from .pipeline import open_encoder, scan

    encoder = open_encoder(model, device, progress=progress)
    started = time.perf_counter()
    result = scan(
        [str(benchmark.folder)],
        encoder=encoder,
        threshold=threshold,
        verify="on",
        progress=progress,
        keep=KeepPolicy.largest,
    )
    elapsed = time.perf_counter() - started
    report = result.report
    paths = [content.representative.path for content in result.contents]
    ranked_pairs = _knn_pairs(result.embeddings)
    ranking = scorer.ranking(paths, ranked_pairs)
    images = report.counts["images_scanned"]
    pipeline = MethodResult(
        name=f"{encoder.spec.name} + verification",
        kind="pipeline",
        threshold=report.threshold,
        images_per_s=images / elapsed,
        verify_share=report.timings_s["verify"] / report.timings_s["total"],
        **scorer.grouped(_paths_of_groups(report.groups)),
    )
    plain_threshold = encoder.spec.default_threshold
    plain_groups = build_groups(
        result.contents, result.infos, result.pairs, plain_threshold, KeepPolicy.largest
    )
    plain = MethodResult(
        name=encoder.spec.name,
        kind="encoder",
        threshold=plain_threshold,
        images_per_s=images / (report.timings_s["total"] - report.timings_s["verify"]),
        histogram=scorer.histogram(paths, ranked_pairs),
        ranking=ranking,
        **_rank_figures(ranking),
        **scorer.grouped(_paths_of_groups(plain_groups)),
    )
    return [pipeline, plain]


def evaluate_hash(
    benchmark: Benchmark, scorer: Scorer, method_name: str, *, progress: bool = False
) -> MethodResult:
    from .baselines import get_hash_method, hamming_knn_pairs, hamming_pairs, hash_files

    method = get_hash_method(method_name)
    hashed = hash_files(benchmark.paths(), method, progress=progress)
    ranking = scorer.ranking(hashed.paths, hamming_knn_pairs(hashed.codes, RANKING_K))
    matches = hamming_pairs(hashed.codes, method.max_distance)
    # The same star grouping as the pipeline, so the figures differ only by the scores.
    contents = [
        ContentGroup(files=(ImageFile(path, 0, 0.0),), digest=None) for path in hashed.paths
    ]
    infos = [ImageInfo(1, 1)] * len(contents)
    groups = build_groups(contents, infos, matches, -1.0, KeepPolicy.largest)
    return MethodResult(
        name=method.name,
        kind="hash",
        threshold=float(method.max_distance),
        images_per_s=len(hashed.paths) / max(hashed.seconds, 1e-9),
        ranking=ranking,
        **_rank_figures(ranking),
        **scorer.grouped(_paths_of_groups(groups)),
    )


_NOT_IN_JSON = ("curve", "histogram", "ranking")


@dataclass
class Evaluation:
    benchmark: Benchmark
    results: list[MethodResult]
    unavailable: dict[str, str]  # model -> why it did not run here
    machine: str
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = defaultdict(int)
        for image in self.benchmark.images:
            counts[image.family if image.family != "original" else f"original ({image.kind})"] += 1
        return {
            "benchmark": {
                "folder": str(self.benchmark.folder),
                "seed": self.benchmark.seed,
                "images": len(self.benchmark.images),
                "by_family": dict(sorted(counts.items())),
                "families": {name: family.description for name, family in FAMILIES.items()},
            },
            "machine": self.machine,
            "results": [
                {k: v for k, v in asdict(row).items() if k not in _NOT_IN_JSON}
                for row in self.results
            ],
            "unavailable": self.unavailable,
            "calibration": self.calibration,
        }


def machine_description() -> str:
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gpu}; "
        f"python {platform.python_version()}, torch {torch.__version__}"
    )


def run_evaluation(
    originals: Path,
    out: Path,
    *,
    models: Sequence[str] | None = None,
    baselines: Sequence[str] = ("phash", "dhash", "pdq"),
    seed: int = 0,
    lookalikes: bool = True,
    lookalike_size: str = "full",
    device: str = "auto",
    target_precision: float | None = None,
    progress: bool = False,
) -> Evaluation:
    from .baselines import get_hash_method
    from .encoders import availability, get_spec, list_encoders

    if lookalike_size not in ("full", "tiny"):
        raise BadArgumentError(f"--lookalike-size must be full or tiny, not {lookalike_size!r}")
    if target_precision is not None and not 0.5 <= target_precision < 1.0:
        raise BadArgumentError(f"--target-precision must be in [0.5, 1), not {target_precision}")
    unavailable: dict[str, str] = {}
    if models is None:
        models = []
        for spec in list_encoders():
            problem = availability(spec)
            if problem is None:
                models.append(spec.name)
            else:
                unavailable[spec.name] = problem
    else:
        for name in models:
            get_spec(name)  # an unknown name fails now, before the benchmark is built
    benchmark = build_benchmark(
        originals,
        out / "benchmark",
        seed=seed,
        lookalikes=lookalikes,
        lookalike_size=lookalike_size,
        progress=progress,
    )
    scorer = Scorer(benchmark)
    results: list[MethodResult] = []
    for name in models:
        results.extend(evaluate_encoder(benchmark, scorer, name, device=device, progress=progress))
    for name in baselines:
        try:
            get_hash_method(name).require_backend()
        except ModelUnavailableError as error:  # a missing baseline library is noted, not fatal
            unavailable[name] = f"{error} ({error.hint})"
            continue
        results.append(evaluate_hash(benchmark, scorer, name, progress=progress))
    evaluation = Evaluation(benchmark, results, unavailable, machine_description())
    if target_precision is not None:
        evaluation.calibration = {}
        for row in results:
            if row.kind == "encoder" and row.ranking is not None:
                recall, threshold = row.ranking.recall_at(target_precision)
                screen = get_spec(row.name).screen_threshold
                evaluation.calibration[row.name] = {
                    "target_precision": target_precision,
                    "threshold": threshold,
                    "recall": recall,
                    # how many true pairs reach verification at all
                    "screen_threshold": screen,
                    "recall_at_screen": (
                        None if screen is None else row.ranking.recall_above(screen)
                    ),
                }
    return evaluation


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def markdown(evaluation: Evaluation) -> str:
    """The results as Markdown tables, the way docs/benchmarks.md shows them."""
    info = evaluation.to_dict()["benchmark"]
    lines = [
        "# dedup-gpu eval",
        "",
        f"Benchmark: {info['images']} images in {info['folder']} (seed {info['seed']}); "
        f"machine: {evaluation.machine}.",
        "",
        "| method | threshold | copies joined | hardest family | pair precision | pair recall "
        "| look-alike precision | rescans joined | muAP | recall @ 99% precision | "
        "recall @ 99.9% precision | images/s | verification share |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in evaluation.results:
        hardest = min(row.joined_by_family.items(), key=lambda kv: kv[1], default=("-", 1.0))
        threshold = (
            f"Hamming <= {row.threshold:.0f}" if row.kind == "hash" else f"{row.threshold:.2f}"
        )
        at_99 = _at(row.recall_at_99, row.threshold_at_99)
        at_999 = _at(row.recall_at_999, row.threshold_at_999)
        lines.append(
            f"| {row.name} | {threshold} | {row.joined:.1%} | {hardest[0]} {hardest[1]:.0%} | "
            f"{row.pair_precision:.2%} ({row.predicted_pairs}) | {row.pair_recall:.1%} | "
            f"{row.lookalike_precision:.1%} ({row.lookalike_pairs}) | "
            f"{_percent(row.rescan_recall)} | "
            f"{'n/a' if row.micro_ap is None else f'{row.micro_ap:.3f}'} | {at_99} | {at_999} | "
            f"{row.images_per_s:.1f} | {_percent(row.verify_share)} |"
        )
    families = sorted({f for row in evaluation.results for f in row.joined_by_family})
    lines += [
        "",
        "Share of edited copies joined to their original, by family:",
        "",
        "| method | " + " | ".join(families) + " |",
        "|---|" + "---|" * len(families),
    ]
    for row in evaluation.results:
        cells = [_percent(row.joined_by_family.get(f)) for f in families]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    lines += ["", "Families:", ""]
    lines += [f"- **{name}**: {text}" for name, text in info["families"].items()]
    if evaluation.unavailable:
        lines += ["", "Encoders not available on this machine:", ""]
        lines += [f"- {name}: {why}" for name, why in evaluation.unavailable.items()]
    if evaluation.calibration:
        lines += ["", "Calibration:", ""]
        for name, found in evaluation.calibration.items():
            threshold = found["threshold"]
            lines.append(
                f"- {name}: threshold "
                f"{'none reaches it' if threshold is None else f'{threshold:.3f}'} for "
                f"{found['target_precision']:.1%} precision (recall {found['recall']:.1%})"
            )
            if found.get("screen_threshold") is not None:
                lines.append(
                    f"  - screening threshold {found['screen_threshold']:.2f} (with "
                    f"verification) lets {found['recall_at_screen']:.1%} of true pairs through"
                )
    return "\n".join(lines) + "\n"


def _at(recall: float | None, threshold: float | None) -> str:
    """Recall at a precision target and the score threshold giving it (for hashes the score is
    1 - Hamming distance / bits)."""
    if recall is None:
        return "n/a"
    return f"{recall:.1%}" if threshold is None else f"{recall:.1%} (>= {threshold:.3f})"


def write_outputs(evaluation: Evaluation, out: Path) -> dict[str, Path]:
    """results.md, results.json, precision_recall.png and scores.png under `out`."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = {"markdown": out / "results.md", "json": out / "results.json"}
    written["markdown"].write_text(markdown(evaluation))
    written["json"].write_text(json.dumps(evaluation.to_dict(), indent=2))

    figure, axes = plt.subplots(figsize=(7, 5))
    for row in evaluation.results:
        if row.curve is not None:
            precision, recall = row.curve
            axes.plot(recall, precision, label=f"{row.name} (muAP {row.micro_ap:.3f})")
        elif row.kind == "pipeline":
            axes.scatter(
                [row.pair_recall],
                [row.pair_precision],
                marker="*",
                s=120,
                label=f"{row.name} (operating point)",
                zorder=3,
            )
    axes.set_xlabel("recall (share of all true pairs)")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1.01)
    axes.set_ylim(0, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower left")
    axes.set_title("Precision-recall over all scored pairs")
    written["precision_recall"] = out / "precision_recall.png"
    figure.savefig(written["precision_recall"], dpi=120, bbox_inches="tight")
    plt.close(figure)

    encoders = [row for row in evaluation.results if row.histogram]
    if encoders:
        figure, all_axes = plt.subplots(
            len(encoders), 1, figsize=(7, 3 * len(encoders)), squeeze=False
        )
        for axes, row in zip(all_axes[:, 0], encoders, strict=True):
            assert row.histogram is not None
            bins = np.linspace(-0.2, 1.0, 61)
            for label, scores in row.histogram.items():
                if scores:
                    axes.hist(
                        scores, bins=bins, alpha=0.5, label=f"{label} ({len(scores)})", log=True
                    )
            axes.axvline(row.threshold, color="k", linestyle="--", label="default threshold")
            axes.set_title(f"{row.name}: cosine scores of nearest-neighbour pairs")
            axes.legend(fontsize=7)
        written["scores"] = out / "scores.png"
        figure.savefig(written["scores"], dpi=120, bbox_inches="tight")
        plt.close(figure)
    return written
