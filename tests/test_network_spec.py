"""The network spec: validation, units and lossless save/load."""

import numpy as np
import pytest
from brian2 import ms, second

from mosaicnet.errors import ConfigError, DataFormatError
from mosaicnet.network.spec import NetworkSpec, NeuronParameters, random_spec

LAYOUT = {"kind": "mosaic", "rows": 2, "cols": 2, "neurons_per_tile": 4, "beta": 8.0}


def _mask(n=16, seed=1):
    return np.random.default_rng(seed).random((n, n)) < 0.3


def test_default_neuron_parameters_reproduce_published_per_step_decay():
    p = NeuronParameters()
    # meta-mosaic: exp(-1/30) per 14 ms input bin
    assert np.exp(-float(p.dt / p.tau_mem)) == pytest.approx(np.exp(-1 / 30), rel=1e-12)
    assert p.threshold == 2.0


def test_save_load_round_trip_is_lossless(tmp_path):
    spec = random_spec(
        10, LAYOUT, 3, _mask(), neuron=NeuronParameters(tau_syn=5 * ms), read_time=3600 * second
    )
    path = spec.save(tmp_path / "net.npz")
    back = NetworkSpec.load(path)
    for name in ("w_in", "w_rec", "w_out", "rec_mask"):
        np.testing.assert_array_equal(getattr(back, name), getattr(spec, name))
    assert back.neuron == spec.neuron
    assert back.read_time == 3600 * second
    assert back.layout == LAYOUT


def test_save_refuses_to_overwrite(tmp_path):
    spec = random_spec(4, LAYOUT, 2, _mask())
    path = spec.save(tmp_path / "net.npz")
    with pytest.raises(ConfigError, match="exists"):
        spec.save(path)
    spec.save(path, overwrite=True)


def test_weights_outside_mask_rejected():
    spec = random_spec(4, LAYOUT, 2, _mask())
    w_rec = spec.w_rec.copy()
    w_rec[~spec.rec_mask] = 0.1
    with pytest.raises(ConfigError, match="outside rec_mask"):
        spec.copy_with(w_rec=w_rec)


def test_shape_mismatch_with_layout_is_named():
    spec = random_spec(4, LAYOUT, 2, _mask())
    with pytest.raises(ConfigError, match="layout holds 24 neurons but w_rec is 16 x 16"):
        spec.copy_with(layout={**LAYOUT, "rows": 3})


@pytest.mark.parametrize("bad", [{"tau_mem": 5.0}, {"dt": -1 * ms}, {"threshold": 0.0}])
def test_bad_neuron_parameters(bad):
    with pytest.raises(ConfigError):
        NeuronParameters(**bad)


def test_load_rejects_foreign_file(tmp_path):
    bogus = tmp_path / "x.npz"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="not a mosaicnet network spec"):
        NetworkSpec.load(bogus)
    with pytest.raises(DataFormatError, match="does not exist"):
        NetworkSpec.load(tmp_path / "missing.npz")
