"""The tutorial notebooks run from top to bottom (nbclient) and are stored without outputs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Seconds one cell may run (the meta-learning notebook trains and runs Brian2).
CELL_TIMEOUT_S = 900


def test_the_four_tutorials_exist():
    names = [path.stem for path in NOTEBOOKS]
    assert names == [
        "01_layout_and_devices",
        "02_brian2_network_and_rasters",
        "03_meta_learning_and_chip_in_the_loop",
        "04_your_own_neuron_model",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    import nbformat

    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} holds outputs; clear them before committing"
            )


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.slow) if p.stem[:2] in ("03", "04") else p
        for p in NOTEBOOKS
    ],
    ids=[p.stem for p in NOTEBOOKS],
)
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # Figures and runs go to a temporary folder; the data is the repository's default.
    monkeypatch.setenv("MOSAICNET_NOTEBOOK_OUT", str(tmp_path))
    # The kernel must be this interpreter (the venv holding mosaicnet).
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )  # fmt: skip
    client.execute()  # raises CellExecutionError naming the failing cell
    pngs = sorted(tmp_path.glob("*.png"))
    assert pngs, "the notebook wrote no figure"
    assert all(p.stat().st_size > 5_000 for p in pngs)
