"""Fixtures shared by test modules.

A module that needs other data keeps its own fixture, named for how it differs
(``tiny_shd`` in test_simulate_cli.py, ``default_data`` in test_protocols.py).
"""

from __future__ import annotations

import pytest
import torch

from mosaicnet.data import write_synthetic_shd


@pytest.fixture
def single_thread():
    """Small tensors: intra-op threads only add contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """Folder of synthetic SHD files (300 train / 200 test recordings, seed 3), written once.

    Tests pass it where a user passes ``--data`` / ``data_dir=``; a test that changes
    the files copies them first (the folder is shared by the whole session).
    """
    out = tmp_path_factory.mktemp("data_dir")
    write_synthetic_shd(out, seed=3, n_train=300, n_test=200)
    return out
