"""Parity of ``pcm_aihwkit`` (:class:`mosaicnet.devices.AihwkitPCM`) with IBM aihwkit.

Optional: skipped unless aihwkit is installed (``pip install -e .[aihwkit]``; it is
not in CI's environment). The reference is aihwkit's ``PCMLikeNoiseModel``
(``aihwkit.inference.noise.pcm``, tested with aihwkit 1.1.0) with its default,
published constants (``G_max = 25 uS``, ``t0 = 20 s``, ``t_read = 250 ns``).
aihwkit works in microsiemens, mosaicnet in siemens.

Two comparisons:

* **Shared draws.** aihwkit draws its normals with ``torch.randn_like``; after
  ``torch.manual_seed`` the same normals are drawn again and passed to mosaicnet's
  element-wise laws, so programming noise, the drift exponents ``nu`` and a read
  (drift + accumulated 1/f read noise) must agree device by device, to float64
  rounding, over the whole range ``[0, G_max]`` and at read times 1 s, 1 h, 1 day
  and 30 days.
* **Independent draws.** mosaicnet's public path (``program_conductances`` with a
  numpy Generator, ``ProgrammedArray.read_conductances``) against aihwkit's
  ``apply_programming_noise_to_conductance``, ``generate_drift_coefficients`` and
  ``apply_drift_noise_to_conductance`` (torch generator), each seeded, with
  ``N`` devices per target conductance: means and standard deviations of the
  programmed conductance, of ``nu``, of the noise-free drifted conductance
  (aihwkit with ``read_noise_scale=0``), of the read-noise residual and of the
  full read, at targets 1, 5, 12.5, 20 and 25 uS and the four read times. Each
  difference must be within 5 standard errors of a difference of two
  independent sample statistics.

Known differences, accounted for here:

* mosaicnet clips every conductance to ``[0, G_max]``; aihwkit clamps only
  below at 0 and lets programming and read noise push a device above ``G_max``.
  aihwkit's samples are therefore clipped to ``[0, G_max]`` before they are
  compared. Below 20 uS the clip changes essentially nothing (``G_max`` is more
  than 4.5 programming sigmas away); at the 25 uS target it does, and the test
  checks that the unclipped aihwkit mean there is indeed detectably higher.
* Time origin: aihwkit's ``t_inference`` counts from ``t0``; mosaicnet's read at
  ``t_inference + t0`` is the same read.
"""

from __future__ import annotations

import numpy as np
import pytest

pcm_noise = pytest.importorskip("aihwkit.inference.noise.pcm")
torch = pytest.importorskip("torch")

from mosaicnet.devices import AihwkitPCM, ConductancePair, program_conductances  # noqa: E402
from mosaicnet.devices.array_ops import NUMPY_OPS  # noqa: E402

US = 1e-6  # siemens per microsiemens
G_MAX_US = 25.0
T0_S = 20.0
#: aihwkit's t_inference: 1 s, 1 h, 1 day, 30 days after t0.
READ_TIMES_S = (1.0, 3600.0, 86400.0, 30 * 86400.0)
TARGETS_US = (1.0, 5.0, 12.5, 20.0, 25.0)
N_DEVICES = 100_000
Z_MAX = 5.0


@pytest.fixture(scope="module")
def reference():
    return pcm_noise.PCMLikeNoiseModel(g_max=G_MAX_US)


@pytest.fixture(scope="module")
def model():
    return AihwkitPCM()


def test_constants_match(reference, model):
    assert model.g_max_siemens == pytest.approx(reference.g_max * US)
    assert model.t0_s == reference.t_0
    assert model.t_read_s == reference.t_read
    assert np.allclose(np.array(model.prog_coeffs_siemens) / US, reference.prog_coeff)
    assert model.prog_coeff_g_max_reference_siemens == pytest.approx(
        reference.prog_coeff_g_max_reference * US
    )


# ------------------------------------------------------------------ shared draws
def _normals_like(tensor, seed):
    torch.manual_seed(seed)
    return torch.randn_like(tensor)


def _clip_us(g):
    return np.clip(np.asarray(g, dtype=np.float64), 0.0, G_MAX_US)


@pytest.fixture(scope="module")
def grid():
    """Targets over the whole range, 0 and G_max included, 20 devices each (uS)."""
    return torch.tensor(np.repeat(np.linspace(0.0, G_MAX_US, 101), 20), dtype=torch.float64)


def test_programming_noise_device_by_device(reference, model, grid):
    xi = _normals_like(grid, 1).numpy()
    torch.manual_seed(1)
    theirs = reference.apply_programming_noise_to_conductance(grid.clone())
    ours = model.programmed_conductance(grid.numpy() * US, xi, NUMPY_OPS)
    np.testing.assert_allclose(ours / US, _clip_us(theirs), rtol=1e-12, atol=1e-12)
    # the clip at G_max is the only difference, and it is hit near G_max
    assert (theirs.numpy() > G_MAX_US).any()


def test_drift_exponents_device_by_device(reference, model, grid):
    xi = _normals_like(grid, 2).numpy()
    torch.manual_seed(2)
    theirs = reference.generate_drift_coefficients(grid.clone()).numpy()
    ours = model.sample_drift_parameter(grid.numpy() * US, xi, NUMPY_OPS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("t_inference", READ_TIMES_S)
def test_read_device_by_device(reference, model, grid, t_inference):
    torch.manual_seed(3)
    g_prog = _clip_us(reference.apply_programming_noise_to_conductance(grid.clone()))
    nu = reference.generate_drift_coefficients(grid.clone())
    g_prog_t = torch.tensor(g_prog, dtype=torch.float64)
    xi = _normals_like(g_prog_t, 4).numpy()
    torch.manual_seed(4)
    theirs = reference.apply_drift_noise_to_conductance(g_prog_t, nu, t_inference)
    ours = model.read_conductance(g_prog * US, nu.numpy(), t_inference + T0_S, NUMPY_OPS, xi=xi)
    np.testing.assert_allclose(ours / US, _clip_us(theirs), rtol=1e-12, atol=1e-12)
    # and without read noise: the drift law alone
    quiet = pcm_noise.PCMLikeNoiseModel(g_max=G_MAX_US, read_noise_scale=0.0)
    theirs_drift = quiet.apply_drift_noise_to_conductance(g_prog_t, nu, t_inference)
    ours_drift = model.read_conductance(g_prog * US, nu.numpy(), t_inference + T0_S, NUMPY_OPS)
    np.testing.assert_allclose(ours_drift / US, _clip_us(theirs_drift), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- independent draws
def _z_scores(a, b):
    """z of the differences of means and of standard deviations of two independent samples."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    z_mean = (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)

    def std_and_var(x):
        s2 = x.var(ddof=1)
        m4 = np.mean((x - x.mean()) ** 4)
        # delta method: Var(s) = Var(s^2) / (4 s^2), Var(s^2) = (m4 - s^4) / n
        return np.sqrt(s2), max(m4 - s2**2, 0.0) / x.size / (4.0 * s2)

    (sa, va), (sb, vb) = std_and_var(a), std_and_var(b)
    z_std = (sa - sb) / np.sqrt(va + vb) if va + vb > 0 else (0.0 if sa == sb else np.inf)
    return float(z_mean), float(z_std)


@pytest.fixture(scope="module")
def samples(reference, model):
    """``{(quantity, target_us, t): (ours_us, theirs_us)}`` from independent seeded draws."""
    quiet = pcm_noise.PCMLikeNoiseModel(g_max=G_MAX_US, read_noise_scale=0.0)
    torch.manual_seed(2018)
    out = {}
    for k, target in enumerate(TARGETS_US):
        g_t = np.full(N_DEVICES, target * US)
        chip = program_conductances(
            ConductancePair(g_plus=g_t, g_minus=np.zeros(N_DEVICES), w_scale=1.0),
            model,
            rng=np.random.default_rng([2019, k]),
        )
        g_target = torch.full((N_DEVICES,), target, dtype=torch.float64)
        g_prog_raw = reference.apply_programming_noise_to_conductance(g_target.clone())
        nu = reference.generate_drift_coefficients(g_target.clone())
        out["g_prog", target, None] = (chip.g_plus / US, _clip_us(g_prog_raw))
        out["g_prog_unclipped", target, None] = (chip.g_plus / US, g_prog_raw.numpy())
        out["nu", target, None] = (chip.drift_plus, nu.numpy())
        # aihwkit reads its programmed state clipped to [0, G_max], as mosaicnet stores it,
        # and its reads are clipped as mosaicnet clips them (the known difference).
        for j, t_inf in enumerate(READ_TIMES_S):
            t_s = t_inf + T0_S
            drift_ours = chip.read_conductances(t_s, read_noise=False)[0] / US
            read_ours = chip.read_conductances(t_s, rng=np.random.default_rng([2020, k, j]))[0] / US
            g_prog_clipped = torch.tensor(_clip_us(g_prog_raw), dtype=torch.float64)
            drift_theirs = _clip_us(
                quiet.apply_drift_noise_to_conductance(g_prog_clipped, nu, t_inf)
            )
            read_theirs = _clip_us(
                reference.apply_drift_noise_to_conductance(g_prog_clipped, nu, t_inf)
            )
            out["drift", target, t_inf] = (drift_ours, drift_theirs)
            out["read_residual", target, t_inf] = (
                read_ours - drift_ours,
                read_theirs - drift_theirs,
            )
            out["read", target, t_inf] = (read_ours, read_theirs)
    return out


def test_statistics_agree_within_5_standard_errors(samples):
    worst = {}
    failures = []
    for (quantity, target, t_inf), (ours, theirs) in samples.items():
        if quantity == "g_prog_unclipped":
            continue
        z_mean, z_std = _z_scores(ours, theirs)
        worst[quantity] = max(worst.get(quantity, 0.0), abs(z_mean), abs(z_std))
        if abs(z_mean) > Z_MAX or abs(z_std) > Z_MAX:
            failures.append(
                f"{quantity} at {target} uS, t_inference={t_inf}: mean {ours.mean():.6g} vs "
                f"{theirs.mean():.6g} (z={z_mean:.2f}), std {ours.std():.6g} vs "
                f"{theirs.std():.6g} (z={z_std:.2f})"
            )
    print("largest |z| per quantity:", {k: round(v, 2) for k, v in sorted(worst.items())})
    assert not failures, "\n".join(failures)


def test_unclipped_aihwkit_differs_at_g_max(samples):
    """The clip is the known difference: at the 25 uS target it is visible."""
    ours, theirs = samples["g_prog_unclipped", G_MAX_US, None]
    z_mean, _ = _z_scores(theirs, ours)
    assert z_mean > Z_MAX
    # and it is negligible where the statistics are compared without it mattering
    for target in TARGETS_US[:-1]:
        ours, theirs = samples["g_prog_unclipped", target, None]
        assert (theirs > G_MAX_US).mean() < 1e-4
