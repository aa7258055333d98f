"""Describing a Brian2 network, from a spec file or a trained run, does not import torch.

Each check runs in a fresh interpreter: the test process has torch loaded already.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from mosaicnet.meta.config import TrainConfig, save_config
from mosaicnet.meta.run_directory import CONFIG_FILE, SPEC_FILE
from mosaicnet.meta.run_setup import build_spec

DESCRIBE_WITHOUT_TORCH = """
import sys
from mosaicnet.cli import main
code = main(["describe", sys.argv[1], "--steps", "3"])
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("torch modules:", loaded[:5])
sys.exit(code if code else (3 if loaded else 0))
"""


@pytest.fixture
def spec_and_run(tmp_path):
    config = TrainConfig(rows=1, cols=2, neurons_per_tile=4, n_bins=10)
    spec = build_spec(config, n_in=350)
    spec_file = tmp_path / "net.npz"
    spec.save(spec_file)
    run = tmp_path / "run"
    run.mkdir()
    spec.save(run / SPEC_FILE)
    save_config(config, run / CONFIG_FILE)
    return spec_file, run


@pytest.mark.parametrize("source", ["spec file", "trained run"])
def test_describe_does_not_import_torch(spec_and_run, source):
    path = spec_and_run[0] if source == "spec file" else spec_and_run[1]
    result = subprocess.run(
        [sys.executable, "-c", DESCRIBE_WITHOUT_TORCH, str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Brian2 network" in result.stdout and "dv/dt" in result.stdout  # it described it
