"""Device presets, the weight <-> conductance mapping, programming, reading, saving."""

import dataclasses
import json

import numpy as np
import pytest

from mosaicnet.devices import (
    AihwkitPCM,
    ConductancePair,
    DeviceModel,
    GlobalDriftCompensation,
    HfOxRRAM,
    IdealDevice,
    NandakumarPCM,
    PowerLawDriftDevice,
    ProgrammedArray,
    conductances_to_weights,
    device_model_from_dict,
    get_device_model,
    list_presets,
    program_conductances,
    program_weights,
    weights_to_conductances,
)
from mosaicnet.errors import ConfigError, DataFormatError

PRESETS = list_presets()
DAY_S = 86400.0


def random_weights(seed=0, shape=(12, 9)):
    return np.random.default_rng(seed).normal(size=shape) * 0.1


# ----------------------------------------------------------------- registry
def test_presets_are_the_published_models():
    assert PRESETS == ["ideal", "pcm_nandakumar", "pcm_aihwkit", "rram_hfox"]
    classes = [type(get_device_model(name)) for name in PRESETS]
    assert classes == [IdealDevice, NandakumarPCM, AihwkitPCM, HfOxRRAM]


def test_published_constants_in_si_units():
    nandakumar = get_device_model("pcm_nandakumar")
    assert (nandakumar.g_min_siemens, nandakumar.g_max_siemens) == (0.1e-6, 12e-6)
    assert (nandakumar.t0_s, nandakumar.nu_mean, nandakumar.read_sigma_slope) == (38.6, 0.04, 0.03)
    assert nandakumar.read_sigma_offset_siemens == 0.13e-6
    aihwkit = get_device_model("pcm_aihwkit")
    assert (aihwkit.g_max_siemens, aihwkit.t0_s, aihwkit.t_read_s) == (25e-6, 20.0, 250e-9)
    rram = get_device_model("rram_hfox")
    assert (rram.g_min_siemens, rram.g_max_siemens) == (9.0e-6, 88.19e-6)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="pcm_nandakumar, pcm_aihwkit, rram_hfox"):
        get_device_model("pcm_ibm")


def test_preset_lookup_is_forgiving_and_takes_overrides():
    model = get_device_model("PCM-AIHWKIT", n_levels=32, read_noise=False)
    assert isinstance(model, AihwkitPCM)
    assert (model.n_levels, model.read_noise) == (32, False)
    with pytest.raises(ConfigError, match="no parameter.*g_maximum"):
        get_device_model("ideal", g_maximum=1.0)


def test_model_instances_pass_through():
    model = PowerLawDriftDevice(g_min_siemens=0.0, g_max_siemens=5e-6, t0_s=1.0, nu_mean=0.1)
    assert get_device_model(model) is model
    assert model.name == "PowerLawDriftDevice"


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"g_min_siemens": 5e-6, "g_max_siemens": 5e-6}, "must be smaller than g_max"),
        ({"g_min_siemens": 6e-6, "g_max_siemens": 5e-6}, "must be smaller than g_max"),
        ({"g_min_siemens": -1e-6}, "negative"),
        ({"t0_s": 0.0}, "t0_s"),
        ({"n_levels": 1}, "n_levels"),
        ({"g_max_siemens": float("nan")}, "finite"),
        ({"nu_std": -0.1}, "nu_std"),
    ],
)
def test_invalid_parameters_are_rejected_by_name(parameters, message):
    base = {"g_min_siemens": 0.0, "g_max_siemens": 10e-6, "t0_s": 1.0, "nu_mean": 0.05}
    with pytest.raises(ConfigError, match=message):
        PowerLawDriftDevice(**{**base, **parameters})


def test_rram_acceptance_range_must_have_a_published_fit():
    assert HfOxRRAM(acceptance_range_percent=0.2).acceptance_range_percent == 0.2
    with pytest.raises(ConfigError, match=r"\[0.2, 2.0\]"):
        HfOxRRAM(acceptance_range_percent=1.0)


# ------------------------------------------------------------------ mapping
def test_round_trip_is_exact_for_the_ideal_device():
    model = get_device_model("ideal")
    weights = random_weights()
    pair = weights_to_conductances(weights, model)
    assert pair.w_scale == np.abs(weights).max()
    back = conductances_to_weights(pair.g_plus, pair.g_minus, model, pair.w_scale)
    np.testing.assert_allclose(back, weights, rtol=0, atol=4 * np.finfo(float).eps)
    chip = program_weights(weights, model, rng=0)
    for t_s in (0.0, 3600.0, 30 * DAY_S):
        np.testing.assert_allclose(chip.read_weights(t_s, rng=1), weights, atol=1e-16)


def test_one_device_of_each_pair_idles_at_g_min():
    model = get_device_model("pcm_nandakumar")
    pair = weights_to_conductances(np.array([0.3, -0.6, 0.0]), model, w_scale=0.6)
    np.testing.assert_allclose(pair.g_plus, [0.1e-6 + 0.5 * 11.9e-6, 0.1e-6, 0.1e-6])
    np.testing.assert_allclose(pair.g_minus, [0.1e-6, 12e-6, 0.1e-6])


@pytest.mark.parametrize("preset", ["ideal", "pcm_aihwkit"])
def test_quantised_round_trip_within_half_a_level(preset):
    n_levels = 16
    model = get_device_model(preset, n_levels=n_levels)
    weights = random_weights(seed=3, shape=(40, 40))
    pair = weights_to_conductances(weights, model, w_scale=0.5)
    step = (model.g_max_siemens - model.g_min_siemens) / (n_levels - 1)
    for g in (pair.g_plus, pair.g_minus):
        levels = (g - model.g_min_siemens) / step
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
    back = conductances_to_weights(pair.g_plus, pair.g_minus, model, pair.w_scale)
    half_level_w = 0.5 / (2 * (n_levels - 1))
    assert np.abs(back - weights).max() <= half_level_w * (1 + 1e-9)
    assert np.abs(back - weights).max() > 0.5 * half_level_w  # quantisation did act


def test_bad_weights_are_named():
    model = get_device_model("ideal")
    weights = random_weights()
    weights[2, 5] = np.nan
    with pytest.raises(ConfigError, match=r"non-finite.*\(2, 5\)"):
        program_weights(weights, model, rng=0)
    with pytest.raises(ConfigError, match="beyond w_scale"):
        weights_to_conductances(np.array([0.5, -2.0]), model, w_scale=1.0)
    clipped = weights_to_conductances(np.array([0.5, -2.0]), model, w_scale=1.0, clip=True)
    assert clipped.g_minus[1] == model.g_max_siemens
    with pytest.raises(ConfigError, match="w_scale"):
        weights_to_conductances(np.array([0.5]), model, w_scale=-1.0)


def test_all_zero_weights_map_to_g_min_pairs():
    model = get_device_model("rram_hfox")
    pair = weights_to_conductances(np.zeros((3, 3)), model)
    assert pair.w_scale == 1.0
    assert np.all(pair.g_plus == model.g_min_siemens) and np.all(
        pair.g_minus == model.g_min_siemens
    )


# -------------------------------------------------------------- programming
@pytest.mark.parametrize("preset", PRESETS)
def test_conductances_stay_inside_the_device_range(preset):
    model = get_device_model(preset)
    # Full-range weights push devices to both bounds, where noise would leave the range.
    weights = np.concatenate([np.linspace(-1, 1, 401), np.full(200, 1.0), np.full(200, -1.0)])
    chip = program_weights(weights, model, rng=0)
    states = [chip.g_plus, chip.g_minus]
    rng = np.random.default_rng(1)
    for t_s in (0.0, 1.0, 3600.0, DAY_S, 30 * DAY_S, 1e9):
        states.extend(chip.read_conductances(t_s, rng=rng))
    for g in states:
        assert g.min() >= model.g_min_siemens and g.max() <= model.g_max_siemens


@pytest.mark.parametrize("preset", PRESETS)
def test_read_twice_differs_only_by_read_noise(preset):
    model = get_device_model(preset)
    chip = program_weights(random_weights(shape=(100, 100)), model, rng=0)
    clean_1 = chip.read_conductances(DAY_S, read_noise=False)
    clean_2 = chip.read_conductances(DAY_S, read_noise=False)
    np.testing.assert_array_equal(clean_1[0], clean_2[0])  # drift kept, not redrawn
    rng = np.random.default_rng(2)
    noisy_1 = chip.read_conductances(DAY_S, rng=rng)[0]
    noisy_2 = chip.read_conductances(DAY_S, rng=rng)[0]
    if model.read_noise:
        difference = noisy_1 - noisy_2
        assert np.any(difference != 0)  # fresh read noise at every read
        # Same drifted mean: |mean difference| < 5 standard errors (n = 10^4 devices).
        assert abs(difference.mean()) < 5 * difference.std() / np.sqrt(difference.size)
    else:
        np.testing.assert_array_equal(noisy_1, clean_1[0])


@pytest.mark.parametrize("preset", ["pcm_nandakumar", "pcm_aihwkit", "rram_hfox"])
def test_drift_grows_monotonically_with_time(preset):
    model = get_device_model(preset)
    chip = program_weights(random_weights(shape=(50, 50)), model, rng=0)
    times = [0.0, 1.0, 30.0, 3600.0, DAY_S, 30 * DAY_S, 3e8]
    reads = np.stack([chip.read_conductances(t, read_noise=False)[0] for t in times])
    distance = np.abs(reads - reads[0])
    assert np.all(np.diff(distance, axis=0) >= -1e-18)
    # Every device off its lower clamp has moved by the last read.
    free = (chip.g_plus > model.g_min_siemens) & (reads[-1] > model.g_min_siemens)
    assert free.sum() > 1000 and np.all(distance[-1][free] > 0)
    if preset.startswith("pcm"):
        assert np.all(np.diff(reads, axis=0) <= 1e-18)  # power-law drift only lowers G


def test_no_drift_before_t0_for_power_law_devices():
    model = get_device_model("pcm_aihwkit", read_noise=False)
    chip = program_weights(random_weights(), model, rng=0)
    at_prog = chip.read_conductances(0.0)[0]
    np.testing.assert_array_equal(at_prog, chip.g_plus)
    np.testing.assert_array_equal(chip.read_conductances(1.0)[0], at_prog)
    np.testing.assert_array_equal(chip.read_conductances(model.t0_s)[0], at_prog)
    assert np.all(
        chip.read_conductances(model.t0_s * 2)[0][chip.g_plus > 0] < at_prog[chip.g_plus > 0]
    )


def test_drift_parameters_are_drawn_once_per_device():
    model = get_device_model("pcm_aihwkit")
    chip = program_weights(random_weights(shape=(60, 60)), model, rng=0)
    # Per-device exponents: a spread, not one value, and |nu| >= 0 by construction.
    assert chip.drift_plus.std() > 0.005 and chip.drift_plus.min() >= 0
    # The read uses exactly these exponents: G(t) = G_prog (t / t0)^(-nu) for t >= t0.
    read = chip.read_conductances(DAY_S, read_noise=False)[0]
    np.testing.assert_allclose(read, chip.g_plus * (DAY_S / 20.0) ** (-chip.drift_plus), rtol=1e-12)


def test_bad_times_are_rejected():
    model = get_device_model("pcm_nandakumar")
    chip = program_weights(random_weights(), model, rng=0, t_prog_s=100.0)
    with pytest.raises(ConfigError, match="t_s=-1.*>= 0"):
        chip.read_conductances(-1.0)
    with pytest.raises(ConfigError, match="precedes the programming"):
        chip.read_conductances(50.0)
    with pytest.raises(ConfigError, match="t_prog_s"):
        program_weights(random_weights(), model, rng=0, t_prog_s=-5.0)
    chip.read_conductances(100.0, rng=0)  # reading at the programming time is fine


def test_reprogramming_part_of_an_array_keeps_the_rest():
    model = get_device_model("pcm_aihwkit")
    weights = random_weights()
    chip = program_weights(weights, model, rng=0)
    mask = np.zeros(weights.shape, bool)
    mask[:3] = True
    updated = chip.reprogram(-weights, t_prog_s=DAY_S, rng=1, mask=mask)
    assert updated.w_scale == chip.w_scale
    np.testing.assert_array_equal(updated.g_plus[~mask], chip.g_plus[~mask])
    np.testing.assert_array_equal(updated.drift_minus[~mask], chip.drift_minus[~mask])
    assert np.all(updated.t_prog_s[mask] == DAY_S) and np.all(updated.t_prog_s[~mask] == 0)
    # The sign flipped where reprogrammed: the big device moved to the other side.
    flipped = np.abs(weights) > 0.05 * chip.w_scale
    new_w = updated.read_weights(DAY_S, read_noise=False)
    assert np.all(np.sign(new_w[mask & flipped]) == -np.sign(weights[mask & flipped]))
    with pytest.raises(ConfigError, match="precedes the programming"):
        updated.read_weights(DAY_S - 1.0)


# ------------------------------------------------------------ compensation
def test_global_drift_compensation_undoes_a_uniform_drift():
    model = PowerLawDriftDevice(
        g_min_siemens=0.0, g_max_siemens=10e-6, t0_s=1.0, nu_mean=0.06, read_noise=False
    )
    weights = random_weights()
    chip = program_weights(weights, model, rng=0)
    drifted = chip.read_weights(30 * DAY_S)
    np.testing.assert_allclose(drifted, weights * (30 * DAY_S) ** -0.06, rtol=1e-12)
    compensation = GlobalDriftCompensation.calibrate(chip)
    np.testing.assert_allclose(compensation.apply(drifted), weights, rtol=1e-12)
    assert compensation.factor(np.zeros(3)) == 1.0


def test_compensation_reduces_the_weight_error_of_pcm():
    model = get_device_model("pcm_aihwkit")
    weights = random_weights(shape=(64, 64))
    chip = program_weights(weights, model, rng=0)
    rng = np.random.default_rng(1)
    compensation = GlobalDriftCompensation.calibrate(chip, rng=rng)
    read = chip.read_weights(30 * DAY_S, rng=rng)
    plain_error = np.abs(read - weights).mean()
    assert np.abs(compensation.apply(read) - weights).mean() < 0.6 * plain_error


# ---------------------------------------------------------------- save/load
@dataclasses.dataclass(frozen=True, kw_only=True)
class LinearDecayDevice(DeviceModel):
    """A user model: G(t) = G_prog (1 - rate ln(t/t0)); exercises the subclass registry."""

    g_min_siemens: float = 0.0
    g_max_siemens: float = 4e-6
    t0_s: float = 1.0
    rate: float = 0.01

    def programming_sigma(self, g_target, ops):
        return 0.02 * g_target

    def sample_drift_parameter(self, g_target, xi, ops):
        return self.rate * (1.0 + 0.1 * xi)

    def drift_law(self, g_prog, parameter, t_eff_s, ops):
        return g_prog * (1.0 - parameter * ops.log(t_eff_s / self.t0_s))

    def read_sigma(self, g_drifted, g_prog, t_eff_s, ops):
        return 0.01 * g_drifted


@pytest.mark.parametrize(
    "model", [get_device_model(name) for name in PRESETS] + [LinearDecayDevice(n_levels=8)]
)
def test_programmed_arrays_round_trip_through_npz_and_dict(model, tmp_path):
    chip = program_weights(random_weights(), model, rng=0, t_prog_s=10.0)
    path = chip.save(tmp_path / "chip")
    assert path.name == "chip.npz" and path.exists()
    for loaded in (ProgrammedArray.load(path), ProgrammedArray.from_dict(chip.to_dict())):
        assert loaded.model == model and loaded.w_scale == chip.w_scale
        for key in ("g_plus", "g_minus", "drift_plus", "drift_minus", "t_prog_s"):
            np.testing.assert_array_equal(getattr(loaded, key), getattr(chip, key))
        np.testing.assert_array_equal(
            loaded.read_weights(DAY_S, rng=5), chip.read_weights(DAY_S, rng=5)
        )
    json.dumps(model.to_dict())  # the model description is plain JSON


def test_loading_reports_unreadable_or_foreign_files(tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"not an npz")
    with pytest.raises(DataFormatError, match="bogus.npz"):
        ProgrammedArray.load(bogus)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataFormatError, match="not a saved ProgrammedArray"):
        ProgrammedArray.load(tmp_path / "other.npz")
    with pytest.raises(ConfigError, match="unknown device model class 'Nope'"):
        device_model_from_dict({"class": "Nope", "parameters": {}})


def test_programming_is_reproducible_from_the_seed():
    model = get_device_model("rram_hfox")
    weights = random_weights()
    first = program_weights(weights, model, rng=42)
    second = program_weights(weights, model, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(first.g_plus, second.g_plus)
    np.testing.assert_array_equal(first.drift_minus, second.drift_minus)
    assert not np.array_equal(first.g_plus, program_weights(weights, model, rng=43).g_plus)


def test_program_conductances_accepts_explicit_targets():
    model = get_device_model("pcm_nandakumar")
    targets = ConductancePair(g_plus=np.full(5, 6e-6), g_minus=np.full(5, 0.1e-6), w_scale=2.0)
    chip = program_conductances(targets, model, rng=0)
    np.testing.assert_array_equal(chip.g_plus, 6e-6)  # no programming noise in this preset
    np.testing.assert_allclose(chip.read_weights(0.0, read_noise=False), 2.0 * 5.9 / 11.9)
