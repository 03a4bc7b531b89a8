"""`dedup-gpu eval` on a tiny folder: the benchmark it builds, its figures against the labels, and
the files it writes."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import skimage_photo
from typer.testing import CliRunner

from dedup_gpu import evaluate
from dedup_gpu.cli import app
from dedup_gpu.document_kinds import COPY_FAMILIES, DOCUMENT_KINDS
from dedup_gpu.evaluate import (
    Benchmark,
    MethodResult,
    Ranking,
    Scorer,
    build_benchmark,
    category_of,
    load_benchmark,
)
from dedup_gpu.plain_art import PLAIN_KINDS
from dedup_gpu.synth import LabelledImage, photo_families

EARLIER_PHOTO_FAMILIES = (
    "crop", "colour", "greyscale", "jpeg", "webp", "downscale", "mirror", "rotate", "caption",
    "banner", "letterbox", "border", "blur", "sharpen", "noise", "combo2", "combo3",
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Benchmark:
    """Two photos, and every generated set at its tiny size."""
    originals = tmp_path_factory.mktemp("originals")
    for name in ("chelsea.png", "coffee.png"):
        shutil.copyfile(skimage_photo(name), originals / name)
    folder = tmp_path_factory.mktemp("eval") / "benchmark"
    return build_benchmark(originals, folder, seed=1, lookalike_size="tiny")


def test_ranking_figures_match_a_hand_computed_example() -> None:
    # Ranked: T F T F, with 3 true pairs in all (one never retrieved).
    ranking = Ranking(
        scores=np.array([0.9, 0.8, 0.7, 0.6]),
        truth=np.array([True, False, True, False]),
        positives=3,
    )
    assert ranking.micro_ap() == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert ranking.recall_at(0.99) == (pytest.approx(1 / 3), pytest.approx(0.9))
    assert ranking.recall_at(0.6) == (pytest.approx(2 / 3), pytest.approx(0.7))


def test_grouped_figures_count_pairs_copies_and_lookalikes(tmp_path: Path) -> None:
    def image(name: str, source: str, family: str, kind: str = "photo") -> LabelledImage:
        return LabelledImage(tmp_path / name, source, family, kind)

    images = [
        image("a.jpg", "a", "original"),
        image("a_crop.jpg", "a", "crop"),
        image("a_blur.jpg", "a", "blur"),
        image("b.jpg", "b", "original"),
        image("form1.png", "f1", "original", "lookalike:forms"),
        image("form1_rescan.png", "f1", "rescan", "lookalike:forms"),
        image("form2.png", "f2", "original", "lookalike:forms"),
    ]
    scorer = Scorer(Benchmark(tmp_path, images, seed=0))
    groups = [
        [str(tmp_path / n) for n in ("a.jpg", "a_crop.jpg")],  # blur missed
        [str(tmp_path / n) for n in ("form1.png", "form1_rescan.png", "form2.png")],  # a merge
    ]
    figures = scorer.grouped(groups)
    assert figures["predicted_pairs"] == 1 + 3
    assert figures["pair_precision"] == pytest.approx(2 / 4)
    assert figures["pair_recall"] == pytest.approx(2 / 4)  # true pairs: a x3, f1 x1
    assert figures["joined_by_family"] == {"blur": 0.0, "crop": 1.0}
    assert figures["lookalike_precision"] == pytest.approx(1 / 3)
    assert figures["rescan_recall"] == 1.0
    assert figures["missed"] == ["a_blur.jpg"]


@pytest.mark.slow
def test_eval_on_a_tiny_folder_writes_results_that_agree_with_the_labels(tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copyfile(skimage_photo(name), originals / name)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(originals),
            "--out",
            str(out),
            "-m",
            "sscd-onnx",
            "--lookalike-size",
            "tiny",
            "--no-plain",  # 288 more images; their labels are checked without a model above
            "--calibrate",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("results.md", "results.json", "precision_recall.png", "scores.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "precision_recall.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    labels = json.loads((out / "benchmark" / "labels.json").read_text())["images"]
    assert results["benchmark"]["images"] == len(labels)
    copies = [x for x in labels if x["kind"] == "photo" and x["family"] != "original"]
    assert len(copies) == 3 * len(photo_families())  # every photo family once per original

    rows = {row["name"]: row for row in results["results"]}
    assert set(rows) == {"sscd-onnx + verification", "sscd-onnx", "phash", "dhash", "pdq"}
    pipeline, hashes = rows["sscd-onnx + verification"], [rows[n] for n in ("phash", "pdq")]
    # Photos: the families measured before the harder ones were added are nearly all found.
    photo_families_joined = pipeline["joined_by_category_and_family"]["photo"]
    earlier = [photo_families_joined[name] for name in EARLIER_PHOTO_FAMILIES]
    assert np.mean(earlier) >= 0.9
    assert pipeline["pair_precision_by_category"]["photo"] >= 0.9
    assert set(pipeline["joined_by_document_kind"]) == set(DOCUMENT_KINDS)
    assert pipeline["lookalike_precision"] >= rows["sscd-onnx"]["lookalike_precision"]
    assert 0 < pipeline["verify_share"] < 1
    for row in hashes:  # hashes cannot follow crops and rotations
        assert row["joined_by_category"]["photo"] < pipeline["joined_by_category"]["photo"]
        assert row["joined_by_family"]["crop"] < 1.0
        assert len(row["wrong_pairs"]) == min(row["wrong_pair_count"], 5000)
    assert 0 < rows["sscd-onnx"]["micro_ap"] <= 1
    calibration = results["calibration"]["sscd-onnx"]
    assert calibration["target_precision"] == 0.999
    assert "Calibration" in (out / "results.md").read_text()


def test_eval_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    shutil.copyfile(skimage_photo("coffee.png"), originals / "coffee.png")
    out = tmp_path / "precious"
    (out / "benchmark").mkdir(parents=True)
    (out / "benchmark" / "thesis.txt").write_text("do not delete")
    result = CliRunner().invoke(app, ["eval", str(originals), "--out", str(out), "-q"])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert (out / "benchmark" / "thesis.txt").read_text() == "do not delete"


def test_the_benchmark_labels_photos_plain_pictures_documents_and_lookalikes(
    tiny_benchmark: Benchmark,
) -> None:
    images = tiny_benchmark.images
    by_source: dict[str, list[LabelledImage]] = defaultdict(list)
    for image in images:
        by_source[image.source].append(image)
        assert image.path.is_file()
    assert {category_of(image.kind) for image in images} == {
        "photo",
        "plain",
        "document",
        "lookalike",
    }
    plain = [image for image in images if image.kind == "plain" and image.family == "original"]
    assert len(plain) == 2 * len(PLAIN_KINDS)
    for original in plain:  # copied with every photo family, all sharing its source
        copies = sorted(i.family for i in by_source[original.source] if i.family != "original")
        assert copies == sorted(photo_families())
    distractors = [image for image in images if image.kind == "lookalike:plain"]
    assert len(distractors) == len(plain)
    for distractor in distractors:  # copied by nothing
        assert by_source[distractor.source] == [distractor]
    records = [i for i in images if i.kind.startswith("document:") and i.family == "original"]
    assert Counter(record.kind for record in records) == {
        f"document:{kind}": 2 for kind in DOCUMENT_KINDS
    }
    for record in records:
        assert sorted(i.family for i in by_source[record.source]) == sorted(
            ["original", *COPY_FAMILIES]
        )
    photos = [image for image in images if image.kind == "photo"]
    assert len(photos) == 2 * (1 + len(photo_families()))

    labels = json.loads((tiny_benchmark.folder / "labels.json").read_text())
    assert len(labels["images"]) == len(images)
    reloaded = load_benchmark(tiny_benchmark.folder)
    assert reloaded.images == images and reloaded.seed == 1


def test_precision_is_given_per_category_and_wrong_pairs_are_listed(tmp_path: Path) -> None:
    def image(name: str, source: str, family: str, kind: str) -> LabelledImage:
        return LabelledImage(tmp_path / name, source, family, kind)

    images = [
        image("a.jpg", "a", "original", "photo"),
        image("a__crop.jpg", "a", "crop", "photo"),
        image("gradient.png", "p", "original", "plain"),
        image("gradient__turn.jpg", "p", "turn", "plain"),
        image("gradient_other.png", "q", "original", "lookalike:plain"),
        image("receipt_r0.png", "r0", "original", "document:receipt"),
        image("receipt_r0__faxed.png", "r0", "faxed", "document:receipt"),
        image("receipt_r1.png", "r1", "original", "document:receipt"),
    ]
    scorer = Scorer(Benchmark(tmp_path, images, seed=0))

    def paths(*names: str) -> list[str]:
        return [str(tmp_path / name) for name in names]

    figures = scorer.grouped(
        [
            paths("a.jpg", "a__crop.jpg"),
            paths("gradient.png", "gradient__turn.jpg", "gradient_other.png"),  # a wrong merge
            paths("receipt_r0.png", "receipt_r0__faxed.png", "receipt_r1.png"),  # another
        ]
    )
    assert figures["predicted_pairs"] == 7
    assert figures["pair_precision"] == pytest.approx(3 / 7)
    # A pair counts under the category of each of its images: gradient + its distractor is a
    # plain pair and a look-alike pair.
    assert figures["predicted_pairs_by_category"] == {
        "photo": 1,
        "plain": 3,
        "document": 3,
        "lookalike": 2,
    }
    assert figures["pair_precision_by_category"] == pytest.approx(
        {"photo": 1.0, "plain": 1 / 3, "document": 1 / 3, "lookalike": 0.0}
    )
    # Look-alike pairs: the distractor with the gradient and its copy, and the receipts.
    assert figures["lookalike_pairs"] == 5
    assert figures["lookalike_precision"] == pytest.approx(1 / 5)
    assert figures["joined_by_family"] == {"crop": 1.0, "faxed": 1.0, "turn": 1.0}
    assert figures["joined_by_category"] == {"document": 1.0, "photo": 1.0, "plain": 1.0}
    assert figures["joined_by_document_kind"] == {"receipt": {"faxed": 1.0}}
    assert figures["wrong_pair_count"] == 4
    assert sorted(map(sorted, figures["wrong_pairs"])) == sorted(
        [
            ["gradient.png", "gradient_other.png"],
            ["gradient__turn.jpg", "gradient_other.png"],
            ["receipt_r0.png", "receipt_r1.png"],
            ["receipt_r0__faxed.png", "receipt_r1.png"],
        ]
    )
    assert figures["rescan_recall"] is None  # no look-alike page was rescanned here


def test_eval_reuses_a_benchmark_folder_as_it_is(
    tiny_benchmark: Benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def perfect_pipeline(benchmark: Benchmark, scorer: Scorer, model: str, **_: object):
        groups: dict[str, list[str]] = defaultdict(list)
        for image in benchmark.images:
            groups[image.source].append(str(image.path))
        figures = scorer.grouped(list(groups.values()))
        return [MethodResult(f"{model} + verification", "pipeline", 0.5, 1.0, **figures)]

    monkeypatch.setattr(evaluate, "evaluate_encoder", perfect_pipeline)
    folder = tiny_benchmark.folder
    before = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--benchmark",
            str(folder),
            "-m",
            "sscd-onnx",
            "--no-baselines",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*")} == before
    assert not (out / "benchmark").exists()  # nothing was built
    results = json.loads((out / "results.json").read_text())
    assert results["benchmark"]["images"] == len(tiny_benchmark.images)
    (row,) = results["results"]
    assert row["pair_precision"] == 1.0 and row["joined"] == 1.0 and row["wrong_pairs"] == []
    assert set(row["pair_precision_by_category"]) == {"photo", "plain", "document", "lookalike"}
    assert set(row["joined_by_document_kind"]) == set(DOCUMENT_KINDS)
    markdown = (out / "results.md").read_text()
    assert "by category" in markdown and "receipt" in markdown


def test_eval_refuses_a_benchmark_folder_without_labels(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-benchmark"
    folder.mkdir()
    shutil.copyfile(skimage_photo("coffee.png"), folder / "coffee.png")

    result = CliRunner().invoke(
        app, ["eval", "--benchmark", str(folder), "-o", str(tmp_path / "o")]
    )

    assert result.exit_code == 2
    assert "labels.json" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["coffee.png"]
    both = CliRunner().invoke(app, ["eval", str(folder), "--benchmark", str(folder)])
    assert both.exit_code == 2 and "not both" in both.output


def test_leaving_sets_out(tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    shutil.copyfile(skimage_photo("coffee.png"), originals / "coffee.png")
    benchmark = build_benchmark(
        originals,
        tmp_path / "benchmark",
        seed=0,
        lookalikes=False,
        documents=False,
        lookalike_size="tiny",
    )
    kinds = Counter(image.kind for image in benchmark.images)
    # Plain pictures stay, with their copies; their distractors are look-alikes, so they go.
    assert set(kinds) == {"photo", "plain"}
    with pytest.raises(evaluate.BadArgumentError, match="full or tiny"):
        build_benchmark(originals, tmp_path / "other", lookalike_size="huge")
