"""The tutorial notebooks: stored clean, one shared setup, and they run to the figures they name.

Each notebook is run from top to bottom (nbclient) from the notebooks/ folder, as
Jupyter runs it; its figures go to a temporary folder.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Seconds one cell may run (the meta-learning notebook trains and runs Brian2).
CELL_TIMEOUT_S = 900
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: How a notebook names a figure it writes: ``OUT / "<name>.png"``.
FIGURE_NAME = re.compile(r'OUT / "([^"/]+\.png)"')
#: Repository files a notebook's text points the reader to.
REPO_FILE = re.compile(r"`((?:docs|protocols)/[\w./]+\.(?:md|py))`")
IDS = [p.stem for p in NOTEBOOKS]
#: Notebooks that train (minutes): run in the slow stage only.
TRAINING = ("03", "04")


def read(path: Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def code_cells(book) -> list:
    return [cell for cell in book.cells if cell.cell_type == "code"]


def figure_names(book) -> list[str]:
    return FIGURE_NAME.findall("\n".join(cell.source for cell in code_cells(book)))


def test_the_four_tutorials_exist():
    names = [path.stem for path in NOTEBOOKS]
    assert names == [
        "01_layout_and_devices",
        "02_brian2_network_and_rasters",
        "03_meta_learning_and_chip_in_the_loop",
        "04_your_own_neuron_model",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_without_outputs(path):
    for cell in code_cells(read(path)):
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name} holds outputs; clear them before committing"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_starts_with_the_shared_setup(path):
    """One setup for all tutorials (notebooks/tutorial_setup.py), not a copy per notebook."""
    book = read(path)
    assert book.cells[0].cell_type == "markdown" and book.cells[0].source.startswith("# ")
    first, *rest = code_cells(book)
    assert re.search(r"^from tutorial_setup import .*\bOUT\b", first.source, re.M), (
        f"the first code cell of {path.name} must import the shared setup from tutorial_setup"
    )
    for cell in rest:
        assert "setup.py" not in cell.source and "MOSAICNET_NOTEBOOK_OUT" not in cell.source, (
            f"{path.name} repeats the setup in a later cell; use tutorial_setup"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_a_tutorial_with_narrative(path):
    """Every code cell follows text that says what it does, and the files it cites exist."""
    book = read(path)
    previous = None
    for cell in book.cells:
        if cell.cell_type == "code" and previous == "code":
            pytest.fail(f"{path.name}: two code cells in a row without text between them")
        previous = cell.cell_type
    assert figure_names(book), f"{path.name} draws no figure"
    text = "\n".join(cell.source for cell in book.cells if cell.cell_type == "markdown")
    cited = REPO_FILE.findall(text)
    assert cited, f"{path.name} points to no documentation"
    missing = [name for name in cited if not (ROOT / name).is_file()]
    assert not missing, f"{path.name} cites files that do not exist: {missing}"


def test_setup_finds_the_repository_and_the_data_folder_and_honours_the_out_variable(
    tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "notebooks"))
    monkeypatch.setenv("MOSAICNET_NOTEBOOK_OUT", str(tmp_path / "figures"))
    monkeypatch.delitem(sys.modules, "tutorial_setup", raising=False)
    import tutorial_setup

    assert tutorial_setup.ROOT == ROOT
    assert tutorial_setup.OUT == tmp_path / "figures" and tutorial_setup.OUT.is_dir()
    data = tmp_path / "shd"
    data.mkdir()
    (data / "shd_train.h5").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="shd_test.h5"):
        tutorial_setup.tutorial_data(data)
    (data / "shd_test.h5").write_bytes(b"")
    assert tutorial_setup.tutorial_data(data) == data


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem[:2] in TRAINING else p for p in NOTEBOOKS],
    ids=IDS,
)
def test_notebook_runs_and_shows_the_figures_it_names(path, tmp_path, monkeypatch):
    from matplotlib.image import imread
    from nbclient import NotebookClient

    # Figures and runs go to a temporary folder; the data is the repository's default.
    monkeypatch.setenv("MOSAICNET_NOTEBOOK_OUT", str(tmp_path))
    # The kernel must be this interpreter (the venv holding mosaicnet).
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    book = read(path)
    client = NotebookClient(
        book, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )  # fmt: skip
    client.execute()  # raises CellExecutionError naming the failing cell

    for name in figure_names(book):
        figure = tmp_path / name
        assert figure.is_file(), f"{path.name} did not write {name}"
        assert figure.read_bytes()[:8] == PNG_MAGIC, f"{name} is not a PNG"
        pixels = imread(figure)
        assert min(pixels.shape[:2]) >= 200, f"{name} is only {pixels.shape[:2]} pixels"
        assert pixels[..., :3].std() > 0.02, f"{name} is (almost) blank"
    for cell in code_cells(book):
        if cell.source.rstrip().splitlines()[-1].startswith("Image("):
            shown = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert shown, f"{path.name}: a figure cell displayed no image"
