"""`dedup-gpu eval` on a tiny folder: the benchmark it builds, its figures against the labels, and
the files it writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import skimage_photo
from typer.testing import CliRunner

from dedup_gpu.cli import app
from dedup_gpu.evaluate import Benchmark, Ranking, Scorer
from dedup_gpu.synth import LabelledImage


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
    copies = [x for x in labels if x["family"] not in ("original", "rescan")]
    assert len(copies) == 3 * 17  # every photo family once per original

    rows = {row["name"]: row for row in results["results"]}
    assert set(rows) == {"sscd-onnx + verification", "sscd-onnx", "phash", "dhash", "pdq"}
    pipeline, hashes = rows["sscd-onnx + verification"], [rows[n] for n in ("phash", "pdq")]
    assert pipeline["joined"] >= 0.9
    assert pipeline["pair_precision"] >= 0.9
    assert pipeline["lookalike_precision"] >= rows["sscd-onnx"]["lookalike_precision"]
    assert 0 < pipeline["verify_share"] < 1
    for row in hashes:  # hashes cannot follow crops and rotations
        assert row["joined"] < pipeline["joined"]
        assert row["joined_by_family"]["crop"] < 1.0
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
