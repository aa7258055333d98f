"""Brian2 (numpy, cython, cpp_standalone) vs the torch clone, and the check-equivalence command.

One cpp_standalone program is compiled for this module and re-run by every
standalone test with new inputs and weights through run_args. Compiling takes
about a minute of CPU (Brian2 builds ~25 C++ files), so the standalone tests are
marked slow: ``python -m pytest tests/test_network_equivalence.py -m slow``.
"""

import json
import os

import numpy as np
import pytest
import torch

from mosaicnet.cli import main
from mosaicnet.errors import BackendUnavailableError
from mosaicnet.network.brian_network import BrianNetwork, simulate
from mosaicnet.network.chip_programming import program_clone_params, read_clone_params
from mosaicnet.network.equivalence import (
    check_equivalence,
    compare_with_clone,
    random_input,
    random_mosaic_spec,
)
from mosaicnet.network.neuron_presets import PRESETS

T = 50


@pytest.fixture(scope="module")
def spec():
    return random_mosaic_spec(0)


@pytest.fixture(scope="module")
def standalone(spec):
    network = BrianNetwork(
        spec,
        T,
        backend="cpp_standalone",
        copies=2,
        sequential=3,
        record=("input", "recurrent", "readout"),
        read_noise=False,
    )
    yield network
    network.close()
    assert not network.project.directory.exists()


def _binary_mtime(network):
    return os.path.getmtime(network.project.directory / "main")


@pytest.mark.slow
def test_cpp_standalone_equals_clone_and_numpy_per_sample(spec, standalone):
    x = random_input(21, 6, T, spec.n_in)
    result = standalone.run(x)
    np.testing.assert_array_equal(result.input_spikes, x)
    rate = result.recurrent_spikes.mean()
    assert 0.02 < rate < 0.4, rate
    mismatches, diff, _ = compare_with_clone(spec, x, result, standalone.weights_as_read())
    assert mismatches == 0
    assert diff < 1e-9
    # batched standalone (2 copies x 3 back to back) == numpy, one sample per run
    single = simulate(spec, x, backend="numpy", copies=1, sequential=1)
    np.testing.assert_array_equal(result.recurrent_spikes, single.recurrent_spikes)
    np.testing.assert_allclose(result.readout, single.readout, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_cpp_standalone_pads_partial_batches_and_leaves_no_run_files(spec, standalone):
    x = random_input(22, 6, T, spec.n_in)
    full = standalone.run(x)
    static = standalone.project.directory / "static_arrays"
    files_before = sorted(os.listdir(static))
    part = standalone.run(x[:4])
    assert part.recurrent_spikes.shape == (4, T, spec.n_rec)
    # copies and samples are independent: the first four results do not change
    np.testing.assert_array_equal(part.recurrent_spikes, full.recurrent_spikes[:4])
    np.testing.assert_array_equal(part.readout, full.readout[:4])
    assert sorted(os.listdir(static)) == files_before  # run_args files are removed


@pytest.mark.slow
def test_cpp_standalone_reprograms_through_run_args_without_recompiling(spec, standalone):
    compiled = _binary_mtime(standalone)
    clone_params = {
        name: torch.as_tensor(getattr(spec, name)) * (1.0 + 0.3 * np.cos(k))
        for k, name in enumerate(("w_in", "w_rec", "w_out"))
    }
    program_clone_params(standalone, clone_params, seed=0)
    weights = read_clone_params(standalone)
    for name, value in clone_params.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-12, atol=1e-12)
    x = random_input(23, 6, T, spec.n_in)
    result = standalone.run(x)
    mismatches, diff, _ = compare_with_clone(
        spec, x, result, {k: v.numpy() for k, v in weights.items()}
    )
    assert mismatches == 0 and diff < 1e-9
    assert _binary_mtime(standalone) == compiled


def test_check_equivalence_numpy_reports_no_mismatch():
    report = check_equivalence(seeds=(3,), backends=("numpy",), n_samples=4, n_steps=40)
    assert len(report.cases) == 2  # the LIF and the current-based LIF
    assert report.spike_mismatches == 0
    assert report.max_readout_diff < 1e-9
    for case in report.cases:
        assert 0.02 < case.firing_fraction < 0.4
    assert "PASS" in report.summary()


def test_cli_check_equivalence_json(capsys):
    code = main(["check-equivalence", "--seed", "2", "--samples", "3", "--steps", "30", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spike_mismatches"] == 0
    assert data["max_readout_diff"] < 1e-9
    assert data["backends"] == ["numpy"]
    assert {case["neuron_model"] for case in data["cases"]} == set(PRESETS)


def test_cli_rejects_unknown_backend_and_bad_sizes(capsys):
    assert main(["check-equivalence", "--backends", "numpy,nest"]) == 2
    assert "unknown backend 'nest'" in capsys.readouterr().err
    assert main(["check-equivalence", "--samples", "0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err


# Every neuron model on numpy, cython and cpp_standalone: the slow test
# test_every_preset_and_a_users_model_equal_brian2_on_all_cpu_backends in
# tests/test_network_neuron_models.py.


@pytest.mark.slow
def test_second_standalone_build_invalidates_the_first(spec):
    x = random_input(1, 2, 20, spec.n_in)
    first = BrianNetwork(spec, 20, backend="cpp_standalone", read_noise=False)
    first.run(x)
    second = BrianNetwork(spec, 20, backend="cpp_standalone", read_noise=False)
    try:
        with pytest.raises(BackendUnavailableError, match="another standalone network"):
            first.run(x)
        np.testing.assert_array_equal(
            second.run(x).recurrent_spikes, simulate(spec, x).recurrent_spikes
        )
    finally:
        first.close()
        second.close()
