"""Fixtures shared by test modules (older modules still define their own copies)."""

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
def small_shd(tmp_path_factory):
    """Synthetic SHD files (300 train / 200 test recordings), written once per session."""
    out = tmp_path_factory.mktemp("small_shd")
    write_synthetic_shd(out, seed=3, n_train=300, n_test=200)
    return out
