"""The network spec: validation, units and lossless save/load."""

import json

import numpy as np
import pytest
import torch
from brian2 import ms, second

from mosaicnet.errors import ConfigError, DataFormatError
from mosaicnet.network.neuron_presets import neuron_model
from mosaicnet.network.spec import NetworkSpec, NeuronParameters, random_spec
from mosaicnet.network.torch_clone import TorchClone

LAYOUT = {"kind": "mosaic", "rows": 2, "cols": 2, "neurons_per_tile": 4, "beta": 8.0}


def _mask(n=16, seed=1):
    return np.random.default_rng(seed).random((n, n)) < 0.3


def test_default_neuron_parameters_reproduce_published_per_step_decay():
    p = NeuronParameters()
    # meta-mosaic: exp(-1/30) per 14 ms input bin
    tau_mem = p.model.constants["tau_mem"]
    assert np.exp(-float(p.dt / tau_mem)) == pytest.approx(np.exp(-1 / 30), rel=1e-12)
    assert p.model.constants["thr"] == 2.0
    assert p.model.name == "lif"


@pytest.mark.parametrize("model", ["lif", "cuba_lif", "alif", "adlif", "lif_refractory"])
def test_save_load_round_trip_is_lossless(tmp_path, model):
    neuron = NeuronParameters(model=neuron_model(model, tau_mem=400 * ms))
    spec = random_spec(10, LAYOUT, 3, _mask(), neuron=neuron, read_time=3600 * second)
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


@pytest.mark.parametrize("bad", [{"tau_out": 5.0}, {"dt": -1 * ms}, {"model": "lif"}])
def test_bad_neuron_parameters(bad):
    with pytest.raises(ConfigError):
        NeuronParameters(**bad)


def _format1_file(path, spec, neuron):
    """A spec file as mosaicnet 0.1 wrote it (format 1: fixed LIF parameters)."""
    meta = spec.to_metadata()
    meta["format_version"] = 1
    meta["neuron"] = neuron
    np.savez(
        path,
        metadata=np.array(json.dumps(meta)),
        **{name: getattr(spec, name) for name in ("w_in", "w_rec", "w_out", "rec_mask")},
    )
    return path


def test_format1_spec_loads_as_the_lif_with_identical_clone_output(tmp_path):
    spec = random_spec(10, LAYOUT, 3, _mask(), gain=4.0)
    old = {"tau_mem_s": 0.42, "tau_out_s": 0.42, "tau_syn_s": None, "threshold": 2.0, "dt_s": 0.014}
    back = NetworkSpec.load(_format1_file(tmp_path / "old.npz", spec, old))
    assert back.neuron.model.name == "lif"
    x = torch.as_tensor(np.random.default_rng(0).random((2, 40, 10)) < 0.2)
    outputs = []
    for s in (spec, back):
        clone = TorchClone(s, dtype=torch.float64)
        outputs.append(clone.forward(clone.init_params(), x))
    for new, old_ in zip(*outputs, strict=True):
        assert torch.equal(new, old_)


def test_format1_spec_with_synaptic_current_keeps_its_equations(tmp_path):
    spec = random_spec(10, LAYOUT, 3, _mask())
    old = {"tau_mem_s": 0.42, "tau_out_s": 0.42, "tau_syn_s": 0.07, "threshold": 2.0, "dt_s": 0.014}
    model = NetworkSpec.load(_format1_file(tmp_path / "old.npz", spec, old)).neuron.model
    assert model.equations.startswith("dv/dt = (I - v) / tau_mem")
    assert (model.input_target, model.recurrent_target) == ("I", "I")
    assert float(model.constants["tau_syn"] / ms) == pytest.approx(70.0)


def test_newer_spec_format_is_refused_with_the_fix(tmp_path):
    spec = random_spec(4, LAYOUT, 2, _mask())
    path = _format1_file(tmp_path / "new.npz", spec, spec.neuron.to_dict())
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["metadata"]))
    meta["format_version"] = 99
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match="upgrade"):
        NetworkSpec.load(path)


def test_load_rejects_foreign_file(tmp_path):
    bogus = tmp_path / "x.npz"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="not a mosaicnet network spec"):
        NetworkSpec.load(bogus)
    with pytest.raises(DataFormatError, match="does not exist"):
        NetworkSpec.load(tmp_path / "missing.npz")


def test_truncated_spec_file_is_a_clear_error(tmp_path, capsys):
    from mosaicnet.cli import main

    path = random_spec(4, LAYOUT, 2, _mask()).save(tmp_path / "net.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="is truncated"):
        NetworkSpec.load(path)
    assert main(["describe", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Brian 2 encountered an unexpected error" not in err and "Traceback" not in err
