"""The device model as Brian2 synaptic variables: reads in Brian2 equal reads in numpy."""

import math

import brian2
import numpy as np
import pytest

from mosaicnet.devices import get_device_model, list_presets, program_weights
from mosaicnet.devices.brian_form import build_brian_form
from mosaicnet.errors import ConfigError

DAY_S = 86400.0
N_PRE, N_POST = 6, 5


@pytest.fixture(autouse=True, scope="module")
def numpy_target():
    previous = brian2.prefs.codegen.target
    brian2.prefs.codegen.target = "numpy"
    # Tests that only check set_state never run their groups; that is intended.
    brian2.BrianLogger.suppress_name("unused_brian_object")
    yield
    brian2.prefs.codegen.target = previous


def build(form, mask):
    """Two small groups joined by synapses with the form's model, where mask is True."""
    pre = brian2.NeuronGroup(mask.shape[0], "v : 1")
    post = brian2.NeuronGroup(mask.shape[1], "v : 1")
    synapses = brian2.Synapses(pre, post, form.synapse_model)
    i, j = np.nonzero(mask)
    synapses.connect(i=i, j=j)
    return brian2.Network(pre, post, synapses), synapses


def programmed(preset, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(N_PRE, N_POST)) * 0.1
    mask = rng.random((N_PRE, N_POST)) < 0.6
    return program_weights(weights, get_device_model(preset), rng=rng), mask


@pytest.mark.parametrize("preset", list_presets())
def test_read_code_gives_the_numpy_drifted_weight(preset):
    chip, mask = programmed(preset)
    form = build_brian_form(chip.model, read_noise=False)
    network, synapses = build(form, mask)
    form.add_reader(synapses, dt=brian2.defaultclock.dt)
    order = (synapses.i[:], synapses.j[:])
    for t_read_s in (0.0, DAY_S):
        form.set_state(synapses, chip, t_read_s=t_read_s)
        synapses.w = np.nan  # the read must set every weight
        network.run(brian2.defaultclock.dt)
        expected = chip.read_weights(t_read_s, read_noise=False)[order]
        np.testing.assert_allclose(synapses.w[:], expected, rtol=1e-12, atol=1e-15)
        g_plus = chip.read_conductances(t_read_s, read_noise=False)[0][order]
        np.testing.assert_allclose(synapses.g_plus_read[:] / brian2.siemens, g_plus, rtol=1e-12)
        # One-shot read between runs gives the same weights.
        synapses.w = np.nan
        form.apply_read(synapses)
        np.testing.assert_allclose(synapses.w[:], expected, rtol=1e-12, atol=1e-15)
    if preset != "ideal":
        assert not np.allclose(chip.read_weights(0.0, read_noise=False)[order], synapses.w[:])


@pytest.mark.parametrize("preset", ["pcm_aihwkit", "rram_hfox"])
def test_read_noise_in_brian_matches_numpy_in_distribution(preset):
    """Per-synapse read noise of 4000 devices: Brian2 vs numpy, same programmed state.

    Mean within 5 sqrt(s1^2/n + s2^2/n); std ratio within 5 sqrt(2/n) of 1 (the
    relative standard error of a normal sample's std is sqrt(1/(2n)) per sample).
    """
    n = 4000
    weights = np.full((1, n), 0.5)
    chip = program_weights(weights, get_device_model(preset), rng=0, w_scale=1.0)
    form = build_brian_form(chip.model)
    _, synapses = build(form, np.ones((1, n), bool))
    form.set_state(synapses, chip, t_read_s=DAY_S)
    form.apply_read(synapses)
    brian_noise = synapses.w[:] - chip.read_weights(DAY_S, read_noise=False)[0]
    numpy_noise = chip.read_weights(DAY_S, rng=1)[0] - chip.read_weights(DAY_S, read_noise=False)[0]
    assert abs(brian_noise.mean() - numpy_noise.mean()) <= 5 * math.sqrt(
        (brian_noise.var() + numpy_noise.var()) / n
    )
    assert abs(brian_noise.std() / numpy_noise.std() - 1) <= 5 * math.sqrt(2 / n)
    assert numpy_noise.std() > 0


def test_form_declares_units_and_namespace():
    form = build_brian_form(get_device_model("pcm_aihwkit"))
    assert "g_plus_prog : siemens" in form.synapse_model
    assert "t_read : second (shared)" in form.synapse_model
    assert float(form.namespace["device_g_max"] / brian2.siemens) == 25e-6
    assert float(form.namespace["device_t0"] / brian2.second) == 20.0
    assert "randn()" in form.read_code
    quiet = build_brian_form(get_device_model("pcm_aihwkit"), read_noise=False)
    assert "randn()" not in quiet.read_code


def test_set_state_rejects_mismatched_input():
    chip, mask = programmed("pcm_nandakumar")
    form = build_brian_form(chip.model)
    _, synapses = build(form, mask)
    with pytest.raises(ConfigError, match="does not fit synapses"):
        form.set_state(synapses, program_weights(np.ones((2, 2)), chip.model), t_read_s=1.0)
    other = build_brian_form(get_device_model("rram_hfox"))
    with pytest.raises(ConfigError, match="programmed with pcm_nandakumar"):
        other.set_state(synapses, chip, t_read_s=1.0)
    later = chip.reprogram(np.zeros((N_PRE, N_POST)), t_prog_s=100.0, rng=0)
    with pytest.raises(ConfigError, match="precedes the programming"):
        form.set_state(synapses, later, t_read_s=50.0)
    with pytest.raises(ConfigError, match="t_read_s"):
        form.set_state(synapses, chip, t_read_s=-1.0)
    form.set_state(synapses, later, t_read_s=100.0)
    with pytest.raises(ConfigError, match="precedes the programming"):
        form.set_read_time(synapses, 10.0)


def test_weight_variable_name_is_configurable():
    form = build_brian_form(get_device_model("rram_hfox"), weight_name="w_syn", read_noise=False)
    assert "w_syn : 1" in form.synapse_model and form.read_code.splitlines()[-1].startswith("w_syn")
    with pytest.raises(ConfigError, match="weight_name"):
        build_brian_form(get_device_model("rram_hfox"), weight_name="t_read")
