"""The setup every tutorial notebook starts with: the repository, the figure folder, the data.

The first code cell of each notebook in this folder is::

    from tutorial_setup import OUT, tutorial_data

Jupyter starts a notebook's kernel in the notebook's folder, so this module is
found there on a fresh clone, once the package is installed (``pip install -e .``
from the repository root).

``ROOT``
    The repository root (the folder holding ``setup.py``).
``OUT``
    Where the notebooks write figures and runs: ``results/notebooks`` (ignored by
    git), or the folder named by the environment variable ``MOSAICNET_NOTEBOOK_OUT``
    (the tests point it at a temporary folder).
:func:`tutorial_data`
    The data folder: the synthetic default, generated on first use, or a folder of
    real SHD files.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT / "setup.py").is_file():
    raise RuntimeError(
        f"tutorial_setup.py expects to sit in the notebooks/ folder of a mosaicnet clone, "
        f"but {ROOT} holds no setup.py; open the notebooks from the repository's notebooks/"
    )
if importlib.util.find_spec("mosaicnet") is None:
    raise ModuleNotFoundError(
        f"the tutorials need the mosaicnet package: install it into this kernel's "
        f"environment with `pip install -e {ROOT}` and restart the kernel"
    )

OUT = Path(os.environ.get("MOSAICNET_NOTEBOOK_OUT", ROOT / "results" / "notebooks"))
OUT.mkdir(parents=True, exist_ok=True)

#: The synthetic default data of the repository (see data/README.md).
SYNTHETIC_DATA = ROOT / "data" / "synthetic"


def tutorial_data(folder: str | os.PathLike | None = None) -> Path:
    """The folder of ``shd_train.h5`` and ``shd_test.h5`` the tutorials read.

    Parameters
    ----------
    folder
        A folder holding the real Spiking Heidelberg Digits (``mosaicnet data
        download shd --to data/shd``); a relative path is taken from the repository
        root, as on the command line. ``None``: the synthetic default in
        ``data/synthetic``, written on first use (a few seconds).

    Raises
    ------
    FileNotFoundError
        ``folder`` lacks one of the two files (the message names it).
    """
    from mosaicnet.data import ensure_synthetic_shd

    if folder is None:
        ensure_synthetic_shd(SYNTHETIC_DATA)
        return SYNTHETIC_DATA
    # Relative to the root, not to the kernel's folder (notebooks/), as the README writes it.
    path = ROOT / folder
    for name in ("shd_train.h5", "shd_test.h5"):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} does not exist; put shd_train.h5 and shd_test.h5 in {path} "
                "or call tutorial_data() for the synthetic default"
            )
    return path
