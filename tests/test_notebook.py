"""The quickstart notebook runs top to bottom and shows what its text promises."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


def _pin_kernel(root: Path) -> None:
    """A `python3` kernelspec for this interpreter, so the kernel imports the same dedup_gpu
    whatever kernelspecs the user or system Jupyter directories hold."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (dedup-gpu tests)",
                "language": "python",
            }
        )
    )


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = nbformat.read(NOTEBOOK, as_version=4)
    code_cells = [cell for cell in source.cells if cell.cell_type == "code"]
    # The committed notebook carries no outputs.
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells)

    _pin_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("DEDUP_GPU_NOTEBOOK_DIR", str(tmp_path / "demo"))
    # ipykernel selects the inline backend only when MPLBACKEND is unset; with e.g. Agg set,
    # plt.show() draws nothing.
    monkeypatch.delenv("MPLBACKEND", raising=False)

    client = nbclient.NotebookClient(
        source, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError at the first cell that fails

    outputs = [output for cell in code_cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 2  # the group grid and the histogram
    printed = "".join(
        output.text
        for output in outputs
        if output.output_type == "stream" and output.name == "stdout"
    )
    groups = re.search(r"^groups\s+([\d,]+)$", printed, re.MULTILINE)
    assert groups, printed
    assert int(groups.group(1).replace(",", "")) > 0
    assert (tmp_path / "demo" / "report.json").is_file()
