"""Conductance statistics of each preset against closed forms written from the publications.

For a fixed target conductance, ``n = 20000`` devices are programmed and read
at 1 s, 1 h, 1 day and 1 month. The reference mean and standard deviation are
computed here independently of the package, from the published formulas
(analytically, or by Gauss-Hermite quadrature over the programming noise).

Bounds (5 standard errors; the false-alarm rate of each check is < 1e-6):

* mean: ``|mean - m| <= 5 sigma / sqrt(n)`` with ``sigma`` the closed-form std;
* std: ``|std - sigma| <= 5 sigma sqrt((kurtosis - 1) / (4 n))``, the delta-method
  standard error of a sample standard deviation, with the sample kurtosis
  (for a normal sample this is ``5 sigma / sqrt(2 n)``).

Target conductances sit mid-range, many standard deviations from both clamps,
so clamping does not enter the closed forms.
"""

import math

import numpy as np
import pytest
from scipy.special import ndtr

from mosaicnet.devices import ConductancePair, get_device_model, program_conductances

N_DEVICES = 20_000
DAY_S = 86400.0
TIMES_S = (1.0, 3600.0, DAY_S, 30 * DAY_S)
UNIT = 1e-6  # microsiemens in siemens
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)  # expectation over a standard normal


def expect_normal(function, mean, std):
    """E[f(X)], X ~ N(mean, std^2), by 80-point Gauss-Hermite quadrature."""
    return float(np.sum(WEIGHTS * function(mean + std * NODES)))


def folded_normal_exp_moment(a, mean, std):
    """E[exp(-a |X|)] for X ~ N(mean, std^2), exact."""
    return math.exp(-a * mean + a * a * std * std / 2) * ndtr(mean / std - a * std) + math.exp(
        a * mean + a * a * std * std / 2
    ) * ndtr(-mean / std - a * std)


def nandakumar_moments(g_target, t_s):
    """Nandakumar et al. 2018 / Demirag xbar.py: G_d = G (t/38.6 s)^-0.04, sd 0.03 G_d + 0.13 uS."""
    g_drifted = g_target * (max(t_s, 38.6) / 38.6) ** -0.04
    return g_drifted, 0.03 * g_drifted + 0.13 * UNIT


def aihwkit_pcm_moments(g_target, t_s):
    """aihwkit PCMLikeNoiseModel, t measured from programming, laws at max(t, t0 = 20 s)."""
    g_max = 25 * UNIT
    g = g_target / g_max
    sigma_prog = (0.26348 + 1.9650 * g - 1.1731 * g * g) * UNIT
    mu_nu = min(max(-0.0155 * math.log(g) + 0.0244, 0.049), 0.1)
    sigma_nu = min(max(-0.0125 * math.log(g) - 0.0059, 0.008), 0.045)
    t_eff = max(t_s, 20.0)
    log_ratio = math.log(t_eff / 20.0)
    drift_1 = folded_normal_exp_moment(log_ratio, mu_nu, sigma_nu)  # E[(t/t0)^-nu]
    drift_2 = folded_normal_exp_moment(2 * log_ratio, mu_nu, sigma_nu)  # E[(t/t0)^-2nu]
    accumulated = math.log((t_eff + 250e-9) / (2 * 250e-9))

    def second_moment_factor(g_prog):
        q = np.minimum(0.0088 / np.maximum((np.abs(g_prog) / g_max) ** 0.65, 1e-3), 0.2)
        return g_prog**2 * (1 + q**2 * accumulated)

    mean = g_target * drift_1
    second = drift_2 * expect_normal(second_moment_factor, g_target, sigma_prog)
    return mean, math.sqrt(second - mean**2)


def hfox_moments(g_target, t_s):
    """aihwkit ReRamCMONoiseModel (2 % fit), relaxation at max(t, 1 s), read sd 1 % of G_max."""
    sigma_prog = 0.0112185391 * UNIT + 0.01129027418 * g_target
    log_t = math.log(max(t_s, 1.0))
    sigma_relax = (0.04201137 * log_t + 0.41183342) * UNIT
    sigma_read = 0.01 * 88.19 * UNIT
    mean = g_target - 0.08900206 * UNIT * log_t
    return mean, math.sqrt(sigma_prog**2 + sigma_relax**2 + sigma_read**2)


def ideal_moments(g_target, t_s):
    return g_target, 0.0


CASES = {
    "ideal": (5 * UNIT, ideal_moments),
    "pcm_nandakumar": (6 * UNIT, nandakumar_moments),
    "pcm_aihwkit": (12.5 * UNIT, aihwkit_pcm_moments),
    "rram_hfox": (50 * UNIT, hfox_moments),
}


@pytest.fixture(scope="module", params=list(CASES))
def sampled(request):
    """Reads of N_DEVICES devices programmed to the preset's target, at each time."""
    name = request.param
    g_target, moments = CASES[name]
    model = get_device_model(name)
    targets = np.full(N_DEVICES, g_target)
    rng = np.random.default_rng(20240611)
    chip = program_conductances(
        ConductancePair(g_plus=targets, g_minus=targets, w_scale=1.0), model, rng=rng
    )
    reads = {t: chip.read_conductances(t, rng=rng)[0] for t in TIMES_S}
    return name, reads, {t: moments(g_target, t) for t in TIMES_S}


@pytest.mark.parametrize("t_s", TIMES_S, ids=["1s", "1h", "1day", "1month"])
def test_mean_and_std_match_the_closed_form(sampled, t_s):
    name, reads, expected = sampled
    sample = reads[t_s]
    mean, sigma = expected[t_s]
    if sigma == 0:
        np.testing.assert_array_equal(sample, mean)
        return
    n = sample.size
    assert abs(sample.mean() - mean) <= 5 * sigma / math.sqrt(n), (name, sample.mean(), mean)
    centred = sample - sample.mean()
    kurtosis = np.mean(centred**4) / np.mean(centred**2) ** 2
    std_error = sigma * math.sqrt((kurtosis - 1) / (4 * n))
    assert abs(sample.std(ddof=1) - sigma) <= 5 * std_error, (name, sample.std(ddof=1), sigma)


def test_the_closed_forms_see_drift():
    """Guard against a vacuous comparison: the reference itself changes over a month."""
    for name in ("pcm_nandakumar", "pcm_aihwkit", "rram_hfox"):
        g_target, moments = CASES[name]
        assert moments(g_target, 30 * DAY_S)[0] < moments(g_target, 1.0)[0] - 10 * moments(
            g_target, 1.0
        )[1] / math.sqrt(N_DEVICES)
