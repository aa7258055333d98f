"""The Brian2 network: structure, batching, input encoding, errors, equality with the clone.

The runtime backends run here; cpp_standalone is in test_network_equivalence.py
(one compiled program shared by its tests).
"""

import numpy as np
import pytest
import torch

from mosaicnet.errors import BackendUnavailableError, ConfigError
from mosaicnet.network.brian_network import BrianNetwork, simulate
from mosaicnet.network.equivalence import compare_with_clone, random_input, random_mosaic_spec

T = 50


@pytest.fixture(scope="module")
def spec():
    return random_mosaic_spec(0)


@pytest.fixture(scope="module")
def spec_current():
    return random_mosaic_spec(1, model="cuba_lif")


def test_only_mask_connections_become_synapses(spec):
    with BrianNetwork(spec, T, copies=3, record=()) as network:
        counts = network.synapse_counts()
        assert counts == {
            "w_in": spec.n_in * spec.n_rec,
            "w_rec": int(spec.rec_mask.sum()),
            "w_out": spec.n_rec * spec.n_out,
        }
        synapses = network.synapses["w_rec"]
        i, j = np.asarray(synapses.i[:]), np.asarray(synapses.j[:])
        assert len(i) == 3 * spec.rec_mask.sum()
        # block-diagonal: copies never connect to each other
        np.testing.assert_array_equal(i // spec.n_rec, j // spec.n_rec)
        rebuilt = np.zeros_like(spec.rec_mask)
        rebuilt[i % spec.n_rec, j % spec.n_rec] = True
        np.testing.assert_array_equal(rebuilt, spec.rec_mask)
        # the spec is sparse: a plain all-to-all layer would not pass this test
        assert spec.rec_mask.mean() < 0.5


def test_describe_prints_equations_threshold_reset_and_synapse_code(spec_current):
    with BrianNetwork(spec_current, T, record=()) as network:
        text = network.describe()
    for fragment in (
        "neuron model 'cuba_lif', method exact",
        "dv/dt = -v / tau_mem + I / tau_syn : 1",
        "dI/dt = -I / tau_syn : 1",
        "threshold: v > thr",
        "reset: v -= thr",
        "on_pre: I_post += w",
        "on_pre: v_post += w",
        "g_plus_prog : siemens",
        "read (effective weight from the devices at t_read):",
        "_I = I*exp(-dt/tau_syn)",
    ):
        assert fragment in text, fragment


@pytest.mark.parametrize("fixture", ["spec", "spec_current"])
def test_numpy_equals_float64_clone(fixture, request):
    spec = request.getfixturevalue(fixture)
    x = random_input(5, 6, T, spec.n_in)
    result = simulate(spec, x, backend="numpy", copies=2, sequential=2, return_network=True)
    with result.network as network:
        weights = network.weights_as_read()
    rate = result.recurrent_spikes.mean()
    assert 0.02 < rate < 0.4, rate  # realistic activity: neither silent nor saturated
    mismatches, diff, _ = compare_with_clone(spec, x, result, weights)
    assert mismatches == 0
    assert diff < 1e-9
    # the effective weights are the devices' read of the spec's weights (ideal device)
    for name, value in weights.items():
        np.testing.assert_allclose(value, getattr(spec, name), rtol=1e-14, atol=1e-15)


def test_batched_evaluation_equals_per_sample_runs(spec_current):
    x = random_input(7, 5, T, spec_current.n_in)
    batched = simulate(spec_current, x, copies=2, sequential=2, record=("recurrent", "readout"))
    single = [
        simulate(spec_current, x[k : k + 1], copies=1, sequential=1) for k in range(x.shape[0])
    ]
    np.testing.assert_array_equal(
        batched.recurrent_spikes, np.concatenate([s.recurrent_spikes for s in single])
    )
    # the same additions in the same order: bitwise equal, not merely close
    np.testing.assert_array_equal(batched.readout, np.concatenate([s.readout for s in single]))
    assert batched.recurrent_spikes.any()


def test_input_spikes_recorded_are_the_clipped_counts(spec):
    rng = np.random.default_rng(2)
    counts = rng.poisson(0.15, (3, T, spec.n_in))
    assert counts.max() > 1
    result = simulate(spec, counts, record=("input", "recurrent"))
    np.testing.assert_array_equal(result.input_spikes, counts > 0)
    same = simulate(spec, (counts > 0).astype(float), record=("recurrent",))
    np.testing.assert_array_equal(result.recurrent_spikes, same.recurrent_spikes)
    assert result.readout is None  # not recorded


def test_membrane_trace_is_recorded_after_each_step_and_predicts_next_spikes(spec):
    """Index t holds v after step t (when='end'); step t+1 decays it, then tests threshold."""
    from mosaicnet.network.torch_clone import TorchClone

    x = random_input(3, 2, T, spec.n_in)
    result = simulate(spec, x, record=("recurrent", "membrane"))
    assert result.membrane.shape == (2, T, spec.n_rec)
    alpha = TorchClone(spec, dtype=torch.float64).neuron.update.coefficient("v", "v")
    predicted = alpha * result.membrane[:, :-1] > spec.neuron.model.constants["thr"]
    np.testing.assert_array_equal(predicted, result.recurrent_spikes[:, 1:])
    assert result.recurrent_spikes.any()
    assert result.firing_rate_hz() == pytest.approx(result.recurrent_spikes.mean() / 0.014)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((T, 20), "add a batch axis"),
        ((2, T, 21), "21 channels but the network has n_in=20"),
        ((0, T, 20), "empty"),
    ],
)
def test_bad_input_shape_is_a_config_error(spec, shape, match):
    with pytest.raises(ConfigError, match=match):
        simulate(spec, np.zeros(shape))


def test_bad_input_values_and_options_are_config_errors(spec):
    x = np.zeros((2, T, spec.n_in))
    x[1, 4, 3] = -1
    with pytest.raises(ConfigError, match="sample 1, bin 4, channel 3"):
        simulate(spec, x)
    with pytest.raises(ConfigError, match="unknown backend 'brian'"):
        simulate(spec, np.zeros((1, T, spec.n_in)), backend="brian")
    with pytest.raises(ConfigError, match="cannot record"):
        simulate(spec, np.zeros((1, T, spec.n_in)), record=("voltage",))
    with BrianNetwork(spec, T, record=()) as network, pytest.raises(ConfigError, match="built"):
        network.run(np.zeros((1, T + 1, spec.n_in)))


def test_genn_is_refused_with_a_reason(spec):
    with pytest.raises(BackendUnavailableError, match="genn"):
        simulate(spec, np.zeros((1, T, spec.n_in)), backend="genn")


def test_cuda_standalone_without_gpu_fails_cleanly(spec):
    """No GPU (or no brian2cuda): a clear error, and Brian2 is left as it was."""
    from brian2 import get_device, prefs
    from brian2.devices.device import RuntimeDevice

    from mosaicnet.network.gpu_backends import visible_gpus

    if visible_gpus():
        pytest.skip("a GPU is visible: cuda_standalone would really build")
    flags = list(prefs["codegen.cpp.extra_compile_args_gcc"])
    with pytest.raises(BackendUnavailableError, match="cuda"):
        simulate(spec, np.zeros((1, T, spec.n_in)), backend="cuda_standalone")
    assert isinstance(get_device(), RuntimeDevice)
    assert list(prefs["codegen.cpp.extra_compile_args_gcc"]) == flags
    assert simulate(spec, np.ones((1, T, spec.n_in))).recurrent_spikes.any()


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["spec", "spec_current"])
def test_cython_equals_numpy_and_clone(fixture, request):
    """Cython compiles each code object once (cached afterwards): slow on a cold cache."""
    spec = request.getfixturevalue(fixture)
    x = random_input(11, 6, T, spec.n_in)
    results = {}
    for backend in ("numpy", "cython"):
        result = simulate(spec, x, backend=backend, copies=3, return_network=True)
        with result.network as network:
            weights = network.weights_as_read()
        mismatches, diff, _ = compare_with_clone(spec, x, result, weights)
        assert mismatches == 0 and diff < 1e-9
        results[backend] = result
    np.testing.assert_array_equal(
        results["numpy"].recurrent_spikes, results["cython"].recurrent_spikes
    )
    np.testing.assert_allclose(results["numpy"].readout, results["cython"].readout, atol=1e-12)


def test_clone_comparison_detects_a_wrong_model(spec):
    """The check can fail: a clone with another time constant mismatches by many spikes."""
    from mosaicnet.network.spec import NeuronParameters

    x = random_input(5, 4, T, spec.n_in)
    result = simulate(spec, x, record=("recurrent", "readout"))
    model = spec.neuron.model
    wrong_model = model.with_constants(tau_mem=model.constants["tau_mem"] * 0.9)
    wrong = spec.copy_with(neuron=NeuronParameters(model=wrong_model))
    weights = {name: getattr(spec, name) for name in ("w_in", "w_rec", "w_out")}
    mismatches, diff, _ = compare_with_clone(wrong, x, result, weights)
    assert mismatches > 50 and diff > 1e-3
