"""Programming the chip and reading it back (mosaicnet.network.chip_programming, numpy runtime)."""

import numpy as np
import pytest
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.network.brian_network import BrianNetwork
from mosaicnet.network.chip_programming import (
    program_chip,
    program_clone_params,
    program_spec,
    read_clone_params,
)
from mosaicnet.network.equivalence import random_input, random_mosaic_spec
from mosaicnet.network.torch_clone import TorchClone

T = 40
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture(scope="module")
def spec():
    return random_mosaic_spec(4)


def _trained_params(spec, seed=0):
    """Stand-in for trained clone weights: the spec's, perturbed (not what Brian2 holds)."""
    clone = TorchClone(spec, dtype=torch.float32)
    params = clone.init_params()
    generator = torch.Generator().manual_seed(seed)
    return {
        name: value * (1 + 0.2 * torch.randn(value.shape, generator=generator))
        for name, value in params.items()
    }


def test_ideal_devices_round_trip_and_brian2_then_runs_the_clone_weights(spec):
    params = _trained_params(spec)
    with BrianNetwork(spec, T, record=("recurrent", "readout")) as network:
        programmed = program_clone_params(network, params, seed=1)
        assert set(programmed) == {"w_in", "w_rec", "w_out"}
        back = read_clone_params(network)
        for name in params:
            expected = params[name].double() * (
                torch.as_tensor(spec.rec_mask) if name == "w_rec" else 1
            )
            torch.testing.assert_close(back[name], expected, rtol=1e-12, atol=1e-12)
        x = random_input(0, 3, T, spec.n_in)
        result = network.run(x)
    clone = TorchClone(spec, dtype=torch.float64)
    z, v_out = clone.forward(back, torch.as_tensor(x))
    np.testing.assert_array_equal(z.numpy().astype(bool), result.recurrent_spikes)
    np.testing.assert_allclose(v_out.numpy(), result.readout, atol=1e-9)
    assert result.recurrent_spikes.mean() > 0.01


def test_pcm_drift_is_computed_in_brian2_at_the_read_time(spec):
    pcm = spec.copy_with(device_model="pcm_aihwkit")
    params = _trained_params(pcm)
    with BrianNetwork(pcm, T, read_noise=False, record=()) as network:
        programmed = program_clone_params(network, params, seed=2, t_read_s=HOUR)
        hour = read_clone_params(network)
        day = read_clone_params(network, t_read_s=DAY)
        assert network.t_read_s == DAY
    for name, chip in programmed.items():
        # the same law, evaluated by numpy on the programmed state
        for t, read in ((HOUR, hour), (DAY, day)):
            expected = chip.read_weights(t, read_noise=False)
            if name == "w_rec":
                expected = expected * spec.rec_mask
            np.testing.assert_allclose(read[name].numpy(), expected, rtol=1e-12, atol=1e-15)
    # PCM conductances decay with time: weights shrink from one hour to one day
    shrink = day["w_in"].abs().sum() / hour["w_in"].abs().sum()
    assert 0.5 < float(shrink) < 0.999
    # and programming noise moved them away from the targets already
    assert not torch.allclose(hour["w_in"], params["w_in"].double(), atol=1e-3)


def test_read_noise_is_drawn_per_sample_and_per_read(spec):
    pcm = spec.copy_with(device_model="pcm_aihwkit")
    with BrianNetwork(pcm, T, copies=2, record=("readout",), t_read_s=HOUR) as network:
        assert network.noisy_reads
        first = read_clone_params(network)["w_out"]
        network.set_read_time(HOUR)  # same time: a new read, new noise
        second = read_clone_params(network)["w_out"]
        assert not torch.equal(first, second)
        x = np.repeat(random_input(1, 1, T, spec.n_in), 4, axis=0)
        result = network.run(x)
    # four identical samples, each read anew: different readouts
    assert not np.allclose(result.readout[0], result.readout[1])
    assert not np.allclose(result.readout[0], result.readout[2])


def test_read_every_run_shares_one_read_per_copy_and_run(spec):
    pcm = spec.copy_with(device_model="pcm_aihwkit")
    kwargs = dict(copies=2, sequential=2, record=("readout",), t_read_s=HOUR)
    with BrianNetwork(pcm, T, read_every="run", **kwargs) as network:
        # eight identical samples: two runs of 2 copies x 2 samples back to back
        result = network.run(np.repeat(random_input(1, 1, T, spec.n_in), 8, axis=0))
    readout = result.readout
    # a copy's back-to-back samples share its read; the state reset makes them equal
    np.testing.assert_array_equal(readout[0], readout[1])
    np.testing.assert_array_equal(readout[6], readout[7])
    # the other copy reads its own devices, and every run reads afresh
    assert not np.allclose(readout[0], readout[2])
    assert not np.allclose(readout[0], readout[4])


def test_read_every_must_be_known(spec):
    with pytest.raises(ConfigError, match="read_every must be one of"):
        BrianNetwork(spec, T, read_every="task")


def test_partial_programming_updates_only_the_readout(spec):
    params = _trained_params(spec)
    with BrianNetwork(spec, T, record=()) as network:
        before = network.weights_as_read()
        program_clone_params(network, {"w_out": params["w_out"]}, names=("w_out",))
        after = network.weights_as_read()
    np.testing.assert_array_equal(after["w_in"], before["w_in"])
    np.testing.assert_array_equal(after["w_rec"], before["w_rec"])
    np.testing.assert_allclose(after["w_out"], params["w_out"].double().numpy(), rtol=1e-12)


def test_bad_sync_requests_are_config_errors(spec):
    params = _trained_params(spec)
    with BrianNetwork(spec, T, record=()) as network:
        with pytest.raises(ConfigError, match="shape"):
            program_clone_params(network, {"w_out": params["w_out"][:3]}, names=("w_out",))
        with pytest.raises(ConfigError, match="unknown pathway"):
            program_clone_params(network, params, names=("w_hidden",))
        with pytest.raises(ConfigError, match="lack 'w_in'"):
            program_clone_params(network, {"w_out": params["w_out"]})
        with pytest.raises(ConfigError, match="precedes the programming"):
            program_clone_params(network, params, t_prog_s=10.0, t_read_s=5.0)
        bad = dict(params, w_in=params["w_in"] * float("nan"))
        with pytest.raises(ConfigError, match="NaN"):
            program_clone_params(network, bad)


def test_one_programming_rule_scales_the_readout_with_headroom(spec):
    pcm = spec.copy_with(device_model="pcm_aihwkit")
    chip = program_spec(pcm, seed=3, readout_headroom=2.5)
    for name in ("w_in", "w_rec"):
        assert chip[name].w_scale == pytest.approx(np.abs(getattr(pcm, name)).max(), rel=1e-12)
    assert chip["w_out"].w_scale == pytest.approx(2.5 * np.abs(pcm.w_out).max(), rel=1e-12)
    # Seeded: the same seed programs the same chip, another seed another one.
    again = program_spec(pcm, seed=3, readout_headroom=2.5)
    other = program_spec(pcm, seed=4, readout_headroom=2.5)
    np.testing.assert_array_equal(again["w_in"].g_plus, chip["w_in"].g_plus)
    assert not np.array_equal(other["w_in"].g_plus, chip["w_in"].g_plus)
    # Without noise, an ideal read right after programming gives the weights back.
    quiet = program_spec(pcm, seed=3, noise=False)
    np.testing.assert_allclose(
        quiet["w_in"].read_weights(0.0, read_noise=False), pcm.w_in, rtol=1e-9, atol=1e-12
    )
    with pytest.raises(ConfigError, match="unknown pathway"):
        program_chip({"w_hidden": pcm.w_in}, "pcm_aihwkit")


def test_a_network_programmed_by_default_holds_the_evaluations_chip(spec):
    pcm = spec.copy_with(device_model="pcm_aihwkit")
    with BrianNetwork(pcm, T, record=(), programming_seed=5) as network:
        held = network.programmed
    expected = program_spec(pcm, seed=5)
    for name in ("w_in", "w_rec", "w_out"):
        assert held[name].w_scale == expected[name].w_scale
        np.testing.assert_array_equal(held[name].g_minus, expected[name].g_minus)
