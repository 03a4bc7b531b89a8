"""The prepared GPU check runs end to end: its dry run (CPU, toy sizes) is what CI can check of
a script that otherwise runs only in a GPU machine's short window."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).parents[1]


def test_the_gpu_checks_dry_run_runs_every_step_and_logs_its_figures(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [
            "bash",
            str(REPOSITORY / "benchmarks" / "gpu_check.sh"),
            "--dry-run",
            str(tmp_path / "log"),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    log = (tmp_path / "log" / "gpu_check.log").read_text(encoding="utf-8")
    assert log.endswith("every step passed\n")
    for step in (
        "versions",
        "CUDA tests",
        "make 8 JPEGs",
        "throughput, decode cpu",
        "exact self-join",
    ):
        assert f"=== {step}" in log and "FAILED" not in log
    assert "cuda available: False" in log
    assert "(c) full pipeline:" in log and "(c) / min(a, b) =" in log
    assert "20,000 rows, torch tiled join:" in log
    assert "sampled rows: the same" in log  # the join agreed with float32 brute force
    assert not [name for name in os.listdir(tmp_path) if name.startswith("gpu-check.")]  # tidied


def test_the_gpu_check_says_so_when_it_fails(tmp_path: Path) -> None:
    # A step that fails (here: no images to measure) is named, the later steps still run, and
    # the exit status is 1, so a window's one run is never cut short by its first failure.
    environment = {
        **os.environ,
        "PYTHON": sys.executable,
        "GPU_CHECK_ROWS": "2000",
        "GPU_CHECK_IMAGES": "0",
    }
    done = subprocess.run(
        ["bash", str(REPOSITORY / "benchmarks" / "gpu_check.sh"), "--dry-run", str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )
    log = (tmp_path / "gpu_check.log").read_text(encoding="utf-8")
    assert done.returncode == 1, log[-3000:]
    assert (
        "=== make 0 JPEGs: FAILED" in log
        or "=== throughput, decode cpu, autocast auto: FAILED" in log
    )
    assert "=== exact self-join: passed" in log  # the steps after a failure still ran
    assert log.rstrip().splitlines()[-1].startswith("FAILED: ")
