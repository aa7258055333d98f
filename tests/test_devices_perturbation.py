"""Training-time device perturbation in torch: straight-through gradient, same model as numpy."""

import math

import numpy as np
import pytest
import torch
from torch.func import grad, vmap

from mosaicnet.devices import PowerLawDriftDevice, get_device_model, list_presets, program_weights
from mosaicnet.devices.perturbation import perturb_weights
from mosaicnet.errors import ConfigError

DAY_S = 86400.0
NOISY = ["pcm_nandakumar", "pcm_aihwkit", "rram_hfox"]


def generator(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("preset", list_presets())
def test_gradient_is_the_identity(preset):
    weights = torch.randn(6, 7, generator=generator(0), dtype=torch.float64) * 0.1
    weights.requires_grad_(True)
    upstream = torch.randn(6, 7, generator=generator(1), dtype=torch.float64)
    perturbed = perturb_weights(weights, preset, t_read_s=(1.0, DAY_S), generator=generator(2))
    perturbed.backward(upstream)
    torch.testing.assert_close(weights.grad, upstream, rtol=0, atol=0)
    if preset != "ideal":
        assert not torch.allclose(perturbed, weights)


def test_gradient_is_the_identity_under_torch_func_grad():
    weights = torch.randn(5, 4, generator=generator(0)) * 0.1
    coefficients = torch.arange(20.0).reshape(5, 4)

    def loss(w):
        perturbed = perturb_weights(
            w, "pcm_aihwkit", t_read_s=(1.0, DAY_S), generator=generator(3),
            drift_compensation=True,
        )  # fmt: skip
        return (perturbed * coefficients).sum()

    torch.testing.assert_close(grad(loss)(weights), coefficients, rtol=0, atol=0)


def test_ideal_device_leaves_weights_unchanged():
    weights = torch.randn(8, 8, generator=generator(0), dtype=torch.float64)
    out = perturb_weights(weights, "ideal", t_read_s=(1.0, 1e7), generator=generator(1))
    torch.testing.assert_close(out, weights, rtol=0, atol=1e-15)


def test_fresh_noise_every_call_and_reproducible_from_the_generator():
    weights = torch.randn(10, 10, generator=generator(0)) * 0.1
    shared = generator(5)
    first = perturb_weights(weights, "rram_hfox", t_read_s=DAY_S, generator=shared)
    second = perturb_weights(weights, "rram_hfox", t_read_s=DAY_S, generator=shared)
    assert not torch.equal(first, second)
    again = perturb_weights(weights, "rram_hfox", t_read_s=DAY_S, generator=generator(5))
    torch.testing.assert_close(again, first, rtol=0, atol=0)


def test_vmap_with_different_randomness_samples_one_chip_per_batch_element():
    weights = torch.randn(4, 3, generator=generator(0)) * 0.1

    def perturb(w):
        return perturb_weights(w, "pcm_nandakumar", t_read_s=(1.0, DAY_S), generator=generator(1))

    batch = vmap(perturb, randomness="different")(weights.expand(5, 4, 3))
    assert batch.shape == (5, 4, 3)
    assert all(not torch.equal(batch[0], batch[k]) for k in range(1, 5))


@pytest.mark.parametrize("preset", NOISY)
def test_same_distribution_as_programming_and_reading_in_numpy(preset):
    """Entries of weight 0.4 (w_scale 1) read at one day, torch vs numpy, n = 20000 each.

    Two-sample bounds at 5 standard errors: means within
    5 sqrt(s1^2/n + s2^2/n); Kolmogorov-Smirnov distance below
    2.7 sqrt(2/n) (asymptotic false-alarm rate 1.4e-6).
    """
    n = 20_000
    weights = np.full(n + 1, 0.4)
    weights[0] = 1.0  # sets w_scale = 1
    model = get_device_model(preset)
    numpy_read = program_weights(weights, model, rng=0).read_weights(DAY_S, rng=1)[1:]
    torch_read = perturb_weights(
        torch.tensor(weights), model, t_read_s=DAY_S, generator=generator(2)
    ).numpy()[1:]
    bound = 5 * math.sqrt((numpy_read.var() + torch_read.var()) / n)
    assert abs(numpy_read.mean() - torch_read.mean()) <= bound
    grid = np.sort(np.concatenate([numpy_read, torch_read]))
    cdf_numpy = np.searchsorted(np.sort(numpy_read), grid, side="right") / n
    cdf_torch = np.searchsorted(np.sort(torch_read), grid, side="right") / n
    assert np.abs(cdf_numpy - cdf_torch).max() <= 2.7 * math.sqrt(2 / n)
    # and the comparison is not vacuous: one day of drift is visible in both
    assert abs(numpy_read.mean() - 0.4) > bound


def test_read_time_is_log_uniform_in_the_range():
    """A pure drift device reveals the sampled time: w_read = w (t / t0)^-nu."""
    nu = 0.05
    model = PowerLawDriftDevice(
        g_min_siemens=0.0, g_max_siemens=1e-5, t0_s=1.0, nu_mean=nu, read_noise=False
    )
    t_min, t_max = 10.0, 1e6
    batch = 4000
    weights = torch.ones(batch, 1, dtype=torch.float64)
    reads = vmap(
        lambda w: perturb_weights(w, model, t_read_s=(t_min, t_max), generator=generator(7)),
        randomness="different",
    )(weights)
    log_t = -torch.log(reads[:, 0]).numpy() / nu
    assert log_t.min() >= math.log(t_min) - 1e-9 and log_t.max() <= math.log(t_max) + 1e-9
    width = math.log(t_max) - math.log(t_min)
    # Uniform on [a, b]: mean (a+b)/2, sd width/sqrt(12); mean within 5 standard errors.
    assert abs(log_t.mean() - (math.log(t_min) + width / 2)) <= 5 * width / math.sqrt(12 * batch)
    # and its spread is that of a uniform, not of a point (sd within 10 %).
    assert abs(log_t.std() / (width / math.sqrt(12)) - 1) < 0.1


def test_drift_compensation_in_training_matches_evaluation():
    model = PowerLawDriftDevice(
        g_min_siemens=0.0, g_max_siemens=1e-5, t0_s=1.0, nu_mean=0.07, read_noise=False
    )
    weights = torch.randn(20, 20, generator=generator(0), dtype=torch.float64)
    drifted = perturb_weights(weights, model, t_read_s=DAY_S)
    torch.testing.assert_close(drifted, weights * DAY_S**-0.07)
    compensated = perturb_weights(weights, model, t_read_s=DAY_S, drift_compensation=True)
    torch.testing.assert_close(compensated, weights)


def test_weights_beyond_a_fixed_scale_saturate():
    weights = torch.tensor([0.5, 3.0, -3.0], dtype=torch.float64)
    out = perturb_weights(weights, "ideal", t_read_s=1.0, w_scale=1.0)
    torch.testing.assert_close(out, torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize(
    "t_read_s", [-1.0, (10.0, 1.0), (0.0, 10.0), (1.0, 2.0, 3.0), float("nan")]
)
def test_bad_read_times_are_rejected(t_read_s):
    with pytest.raises(ConfigError, match="t_read_s|read-time range"):
        perturb_weights(torch.zeros(3), "pcm_aihwkit", t_read_s=t_read_s)
