"""`dedup-gpu eval`: a labelled benchmark built from a folder of distinct originals, and how well
each encoder, the full pipeline (with verification) and the perceptual-hash baselines find the
copies in it without merging look-alikes.

Ground truth: two images are duplicates exactly when they share a `source` (an original and its
edited copies; a document page and its rescan; a receipt, invoice, ID card, letter or lab report
and its rescanned, photographed and faxed copies). Every look-alike is its own source.

The benchmark has four categories of source: photos (the folder's originals), plain pictures
(gradients, flat and minimal designs, objects on white, short notes, planets: plain_art.py),
documents (document_kinds.py, and document-like originals) and look-alikes (lookalikes.py, and
the plain distractors). Precision is also given per category, and every wrong pair is listed,
so an engineer can open both images.

Figures, for each method on the same images:
- pair precision and recall over all pairs of images that end up in one group;
- the share of edited copies put in the same group as their original, overall and per family;
- pair precision and predicted pairs per category (a pair counts under the category of each of
  its two images), and copies joined per category and, for documents, per kind and family;
- look-alike precision (pairs among look-alikes, document records and plain distractors, and
  between a plain distractor and a plain picture) and rescan recall (rescans joined to their
  page, for the look-alike forms and pages);
- the wrong pairs themselves (both paths, relative to the benchmark folder);
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
from .synth import FAMILIES, LabelledImage, photo_families, write_copies

RANKING_K = 32  # neighbours per image in the ranked list; above the largest set of copies
LABELS_FILE = "labels.json"
BENCHMARK_SIZES = ("full", "tiny")
CATEGORIES = ("photo", "plain", "document", "lookalike")
MAX_LISTED_WRONG_PAIRS = 5000  # per method: a hash at a loose threshold can make millions


def category_of(kind: str) -> str:
    """The category of an image's kind: "photo", "plain", "document" (a generated document
    record, "document:<kind>", or a document-like original) or "lookalike"."""
    if kind.startswith("lookalike"):
        return "lookalike"
    if kind == "document" or kind.startswith("document:"):
        return "document"
    return "plain" if kind == "plain" else "photo"


def is_hard_negative(kind: str) -> bool:
    """Images made to look like other images that are not their copies: look-alikes (plain
    distractors included) and document records (other records of one template)."""
    return kind.startswith("lookalike") or kind.startswith("document:")


def is_lookalike_pair(first: str, second: str) -> bool:
    """Whether a pair of kinds is a look-alike pair: both hard negatives, or a plain distractor
    with a plain picture (the distractors were made to resemble those)."""
    if is_hard_negative(first) and is_hard_negative(second):
        return True
    return {first, second} == {"lookalike:plain", "plain"}


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
    plain: bool = True,
    documents: bool = True,
    progress: bool = False,
) -> Benchmark:
    """Copy the originals into `folder`, write their edited copies and the generated sets.

    Besides the originals and their copies (photo families, or the document families for
    document-like originals): with `plain`, plain pictures copied with every photo family (kind
    "plain") and, with `lookalikes` too, their distractors ("lookalike:plain"); with
    `documents`, document records and their rescanned, photographed and faxed copies
    ("document:<kind>"); with `lookalikes`, the look-alike sets. `lookalike_size` ("full" or
    "tiny") sizes every generated set. `folder` must be new or empty (or hold a benchmark from
    an earlier run, which is replaced): nothing else is ever deleted.
    """
    from .document_kinds import write_documents
    from .lookalikes import write_lookalikes
    from .plain_art import write_plain_art

    if lookalike_size not in BENCHMARK_SIZES:
        raise BadArgumentError(f"--lookalike-size must be full or tiny, not {lookalike_size!r}")

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
        generated = int(lookalikes) + 2 * int(plain) + int(documents)
        task = bars.add_task("building the benchmark", total=len(files) + generated)
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
        if plain:
            art = write_plain_art(
                folder / "plain", seed=seed, size=lookalike_size, distractors=lookalikes
            )
            bars.advance(task)
            families = photo_families()
            for path in art.originals:
                source = f"plain-{path.stem}"
                images.append(LabelledImage(path, source, "original", "plain"))
                images.extend(
                    write_copies(
                        path,
                        folder / "copies",
                        seed=seed,
                        families=families,
                        source=source,
                        kind="plain",
                    )
                )
            images.extend(art.distractors)
            bars.advance(task)
        if documents:
            images.extend(write_documents(folder / "documents", seed=seed, size=lookalike_size))
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


def load_benchmark(folder: Path) -> Benchmark:
    """A benchmark built earlier (by `build_benchmark` or `dedup-gpu eval`), read back from its
    labels.json, so it can be scored again without being rebuilt.

    Refuses a folder without labels.json, a label whose file is gone, and images in the folder
    that no label names (the scan would find them and they would have no truth).
    """
    labels_path = folder / LABELS_FILE
    if not labels_path.is_file():
        raise BadArgumentError(
            f"{folder} holds no {LABELS_FILE}, so it is not a benchmark",
            hint="give --benchmark the benchmark folder an earlier `dedup-gpu eval` wrote "
            "(OUT/benchmark)",
        )
    try:
        content = json.loads(labels_path.read_text())
        images = [
            LabelledImage(folder / entry["path"], entry["source"], entry["family"], entry["kind"])
            for entry in content["images"]
        ]
        seed = int(content["seed"])
    except (ValueError, KeyError, TypeError) as error:
        raise BadArgumentError(f"{labels_path} is not a benchmark's labels: {error}") from error
    missing = [str(image.path) for image in images if not image.path.is_file()]
    if missing:
        raise BadArgumentError(
            f"{len(missing)} labelled images are missing from {folder}, e.g. {missing[0]}"
        )
    labelled = {str(image.path) for image in images}
    unlabelled = [file.path for file in discover([str(folder)]).files if file.path not in labelled]
    if unlabelled:
        raise BadArgumentError(
            f"{len(unlabelled)} images in {folder} have no label, e.g. {unlabelled[0]}",
            hint="move them out of the benchmark folder, or build a new benchmark",
        )
    return Benchmark(folder=folder, images=images, seed=seed)


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
    pair_precision_by_category: dict[str, float] = field(default_factory=dict)
    predicted_pairs_by_category: dict[str, int] = field(default_factory=dict)
    joined_by_category: dict[str, float] = field(default_factory=dict)
    joined_by_category_and_family: dict[str, dict[str, float]] = field(default_factory=dict)
    joined_by_document_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    wrong_pair_count: int = 0
    wrong_pairs: list[list[str]] = field(default_factory=list)  # the first MAX_LISTED_WRONG_PAIRS
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
            elif is_lookalike_pair(first.kind, second.kind):
                out["look-alikes"].append(score)
            else:
                out["different"].append(score)
        return out

    def grouped(self, groups_of_paths: Sequence[Sequence[str]]) -> dict[str, Any]:
        """Figures for a grouping given as lists of paths."""
        group_of = {path: number for number, paths in enumerate(groups_of_paths) for path in paths}
        predicted = true = lookalike_pairs = lookalike_true = 0
        by_category: dict[str, list[int]] = {name: [0, 0] for name in CATEGORIES}
        wrong: list[list[str]] = []
        wrong_count = 0
        for paths in groups_of_paths:
            labels = [self.by_path[path] for path in paths]
            for i, first in enumerate(labels):
                for second in labels[i + 1 :]:
                    same = first.source == second.source
                    predicted += 1
                    true += same
                    for name in {category_of(first.kind), category_of(second.kind)}:
                        by_category[name][0] += 1
                        by_category[name][1] += same
                    if is_lookalike_pair(first.kind, second.kind):
                        lookalike_pairs += 1
                        lookalike_true += same
                    if not same:
                        wrong_count += 1
                        if len(wrong) < MAX_LISTED_WRONG_PAIRS:
                            wrong.append([self._relative(first), self._relative(second)])
        joined: dict[str, list[bool]] = defaultdict(list)
        joined_in: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        documents: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
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
                joined_in[category_of(image.kind)][image.family].append(together)
                if image.kind.startswith("document:"):
                    documents[image.kind.removeprefix("document:")][image.family].append(together)
            if not together:
                missed.append(self._relative(image))
        everything = [x for values in joined.values() for x in values]
        return {
            "pair_precision": true / predicted if predicted else 1.0,
            "pair_recall": true / self.positives if self.positives else 1.0,
            "predicted_pairs": predicted,
            "joined": float(np.mean(everything)) if everything else 1.0,
            "joined_by_family": _shares(joined),
            "lookalike_precision": lookalike_true / lookalike_pairs if lookalike_pairs else 1.0,
            "lookalike_pairs": lookalike_pairs,
            "rescan_recall": float(np.mean(rescans)) if rescans else None,
            "pair_precision_by_category": {
                name: (hits / count if count else 1.0)
                for name, (count, hits) in by_category.items()
            },
            "predicted_pairs_by_category": {
                name: count for name, (count, _) in by_category.items()
            },
            "joined_by_category": {
                name: float(np.mean([x for values in families.values() for x in values]))
                for name, families in sorted(joined_in.items())
            },
            "joined_by_category_and_family": {
                name: _shares(families) for name, families in sorted(joined_in.items())
            },
            "joined_by_document_kind": {
                kind: _shares(families) for kind, families in sorted(documents.items())
            },
            "wrong_pair_count": wrong_count,
            "wrong_pairs": wrong,
            "missed": missed,
        }

    def _relative(self, image: LabelledImage) -> str:
        return str(image.path.relative_to(self.benchmark.folder))


def _shares(outcomes: dict[str, list[bool]]) -> dict[str, float]:
    """Share of True per key, keys sorted."""
    return {key: float(np.mean(values)) for key, values in sorted(outcomes.items())}


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
        categories: dict[str, int] = defaultdict(int)
        kinds: dict[str, int] = defaultdict(int)
        for image in self.benchmark.images:
            counts[image.family if image.family != "original" else f"original ({image.kind})"] += 1
            categories[category_of(image.kind)] += 1
            kinds[image.kind] += 1
        return {
            "benchmark": {
                "folder": str(self.benchmark.folder),
                "seed": self.benchmark.seed,
                "images": len(self.benchmark.images),
                "by_family": dict(sorted(counts.items())),
                "by_category": {name: categories[name] for name in CATEGORIES},
                "by_kind": dict(sorted(kinds.items())),
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
    originals: Path | None,
    out: Path,
    *,
    benchmark_folder: Path | None = None,
    models: Sequence[str] | None = None,
    baselines: Sequence[str] = ("phash", "dhash", "pdq"),
    seed: int = 0,
    lookalikes: bool = True,
    lookalike_size: str = "full",
    plain: bool = True,
    documents: bool = True,
    device: str = "auto",
    target_precision: float | None = None,
    progress: bool = False,
) -> Evaluation:
    """Build a benchmark from `originals` under `out/benchmark` (or, with `benchmark_folder`,
    reuse one built earlier, unchanged) and score every method on it."""
    from .baselines import get_hash_method
    from .encoders import availability, get_spec, list_encoders

    if (originals is None) == (benchmark_folder is None):
        raise BadArgumentError(
            "give either a folder of originals or --benchmark, not both and not neither"
        )
    if lookalike_size not in BENCHMARK_SIZES:
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
    if benchmark_folder is not None:
        benchmark = load_benchmark(benchmark_folder)
    else:
        assert originals is not None
        benchmark = build_benchmark(
            originals,
            out / "benchmark",
            seed=seed,
            lookalikes=lookalikes,
            lookalike_size=lookalike_size,
            plain=plain,
            documents=documents,
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
    lines += _category_tables(evaluation.results)
    families = sorted({f for row in evaluation.results for f in row.joined_by_family})
    lines += ["", "Share of edited copies joined to their original, by family:"]
    for start in range(0, len(families), FAMILIES_PER_TABLE):  # narrow enough to read
        chunk = families[start : start + FAMILIES_PER_TABLE]
        lines += ["", "| method | " + " | ".join(chunk) + " |", "|---|" + "---|" * len(chunk)]
        for row in evaluation.results:
            cells = [_percent(row.joined_by_family.get(f)) for f in chunk]
            lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    lines += _document_table(evaluation.results)
    lines += _wrong_pair_examples(evaluation.results)
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


FAMILIES_PER_TABLE = 9
WRONG_PAIR_EXAMPLES = 3  # per method in results.md; results.json lists them all


def _category_tables(results: Sequence[MethodResult]) -> list[str]:
    """Pair precision per category, and copies joined per category."""
    lines = [
        "",
        "Pair precision by category of source (a pair counts under the category of each of its "
        "two images; predicted pairs in brackets), and wrong pairs in all:",
        "",
        "| method | " + " | ".join(CATEGORIES) + " | wrong pairs |",
        "|---|" + "---|" * (len(CATEGORIES) + 1),
    ]
    for row in results:
        cells = [
            f"{row.pair_precision_by_category.get(name, 1.0):.2%} "
            f"({row.predicted_pairs_by_category.get(name, 0)})"
            for name in CATEGORIES
        ]
        lines.append(f"| {row.name} | " + " | ".join(cells) + f" | {row.wrong_pair_count} |")
    joined = [name for name in CATEGORIES if any(name in r.joined_by_category for r in results)]
    if joined:
        lines += [
            "",
            "Share of copies joined to their original, by category:",
            "",
            "| method | " + " | ".join(joined) + " |",
            "|---|" + "---|" * len(joined),
        ]
        for row in results:
            cells = [_percent(row.joined_by_category.get(name)) for name in joined]
            lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return lines


def _document_table(results: Sequence[MethodResult]) -> list[str]:
    """Document copies joined to their record, per kind: one cell of three shares per kind."""
    kinds = sorted({kind for row in results for kind in row.joined_by_document_kind})
    if not kinds:
        return []
    from .document_kinds import COPY_FAMILIES

    lines = [
        "",
        f"Document copies joined to their record, by kind ({' / '.join(COPY_FAMILIES)}):",
        "",
        "| method | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for row in results:
        cells = []
        for kind in kinds:
            shares = row.joined_by_document_kind.get(kind, {})
            cells.append(
                " / ".join(f"{shares[f]:.0%}" if f in shares else "-" for f in COPY_FAMILIES)
            )
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return lines


def _wrong_pair_examples(results: Sequence[MethodResult]) -> list[str]:
    rows = [row for row in results if row.wrong_pairs]
    if not rows:
        return []
    lines = ["", "Wrong pairs (a few per method; `wrong_pairs` in results.json lists them):", ""]
    for row in rows:
        examples = ", ".join(f"`{a}` + `{b}`" for a, b in row.wrong_pairs[:WRONG_PAIR_EXAMPLES])
        lines.append(f"- {row.name} ({row.wrong_pair_count}): {examples}")
    return lines


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
