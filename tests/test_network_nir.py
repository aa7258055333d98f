"""NIR export and import: nir's own round trip, snnTorch's import, Brian2 on an imported graph."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from brian2 import ms

from mosaicnet.errors import ConfigError
from mosaicnet.network.neuron_presets import neuron_model
from mosaicnet.network.spec import NetworkSpec, NeuronParameters, random_spec
from mosaicnet.network.torch_clone import TorchClone

nir = pytest.importorskip("nir")

from mosaicnet.network import nir_graph  # noqa: E402

LAYOUT = {"kind": "mosaic", "rows": 2, "cols": 2, "neurons_per_tile": 4, "beta": 8.0}
MASK = np.random.default_rng(1).random((16, 16)) < 0.3


def _spec(model: str | object = "lif", **kwargs) -> NetworkSpec:
    neuron = NeuronParameters(model=neuron_model(model))
    return random_spec(10, LAYOUT, 3, MASK, neuron=neuron, **kwargs)


def _input(batch: int = 8, steps: int = 60, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((batch, steps, 10)) < 0.3).astype(np.float64)


@pytest.mark.parametrize("model", ["lif", "cuba_lif"])
def test_nir_write_read_round_trip(tmp_path, model):
    spec = _spec(model)
    graph = spec.to_nir()
    assert list(graph.nodes) == list(nir_graph.NODE_NAMES)
    kind = {"lif": nir.LIF, "cuba_lif": nir.CubaLIF}[model]
    assert isinstance(graph.nodes["recurrent"], kind)
    assert isinstance(graph.nodes["readout"], nir.LI)
    path = nir_graph.write_nir(graph, tmp_path / "net.nir")
    back = nir.read(path)
    assert sorted(map(tuple, back.edges)) == sorted(map(tuple, graph.edges))
    for name in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(back.nodes[name].weight, getattr(spec, name).T)
    assert back.metadata["mosaicnet_reset"].startswith("subtract")
    assert float(back.metadata["mosaicnet_dt_s"]) == 0.014
    assert "max over time" in back.metadata["mosaicnet_decision"]
    # ...and back into a spec: the same network.
    spec_back = NetworkSpec.from_nir(back)
    assert spec_back.neuron == spec.neuron
    assert spec_back.layout == spec.layout
    np.testing.assert_array_equal(spec_back.rec_mask, spec.rec_mask)
    for name in ("w_in", "w_rec", "w_out"):
        np.testing.assert_allclose(getattr(spec_back, name), getattr(spec, name), rtol=1e-12)


def test_lif_parameters_follow_the_dirac_convention():
    node = _spec("lif").to_nir().nodes["recurrent"]
    np.testing.assert_allclose(node.tau, 0.42)
    np.testing.assert_allclose(node.r, 0.42)  # a spike of weight w moves v by r w / tau = w
    np.testing.assert_allclose(node.v_threshold, 2.0)
    cuba = _spec("cuba_lif").to_nir().nodes["recurrent"]
    np.testing.assert_allclose(cuba.w_in, 0.07)
    np.testing.assert_allclose(cuba.r, 0.42 / 0.07)


@pytest.mark.parametrize(
    ("model", "lacks"),
    [
        ("alif", "constant v_threshold"),
        ("adlif", "adaptation"),
        ("lif_refractory", "refractory"),
    ],
)
def test_models_nir_cannot_express_are_refused_by_name(model, lacks):
    with pytest.raises(ConfigError, match=lacks) as error:
        _spec(model).to_nir()
    assert model in str(error.value)


def test_reset_to_a_value_is_nir_s_own_reset():
    model = replace(neuron_model("lif"), reset="v = 0.5")
    graph = _spec(model).to_nir()
    np.testing.assert_allclose(graph.nodes["recurrent"].v_reset, 0.5)
    assert graph.metadata["mosaicnet_reset"].startswith("value")
    assert NetworkSpec.from_nir(graph).neuron.model == model


def test_read_time_exports_the_chip_weights_with_drift():
    spec = _spec("lif", device_model="pcm_nandakumar")
    ideal = spec.to_nir()
    month = spec.to_nir("30*day", noise=False)
    same = spec.to_nir("30d", noise=False)
    expected = nir_graph.chip_weights(spec, 30 * 86400.0, noise=False)
    for name in ("w_in", "w_rec", "w_out"):
        np.testing.assert_array_equal(month.nodes[name].weight, same.nodes[name].weight)
        np.testing.assert_array_equal(month.nodes[name].weight, expected[name].T)
    drifted = np.abs(month.nodes["w_in"].weight).sum() / np.abs(ideal.nodes["w_in"].weight).sum()
    assert drifted < 0.99  # PCM conductances decay: the read weights are smaller
    assert float(month.metadata["mosaicnet_read_time_s"]) == 30 * 86400.0
    assert "pcm_nandakumar" in month.metadata["mosaicnet_weights"]


def test_imported_graph_runs_in_brian2_as_the_original():
    from mosaicnet.network.brian_network import BrianNetwork

    spec = _spec("cuba_lif", gain=1.5)
    imported = NetworkSpec.from_nir(spec.to_nir())
    x = _input(batch=2, steps=30)
    network = BrianNetwork(imported, 30, backend="numpy", read_noise=False)
    result = network.run(x)
    clone = TorchClone(spec, dtype=torch.float64)
    z, v_out = clone.forward(clone.init_params(), x)
    assert result.recurrent_spikes.any()
    np.testing.assert_array_equal(result.recurrent_spikes, z.numpy() > 0)
    np.testing.assert_allclose(result.readout, v_out.numpy(), atol=1e-9)


def test_a_foreign_graph_needs_a_time_step():
    graph = _spec("lif").to_nir()
    graph.metadata = {}
    with pytest.raises(ConfigError, match="no time step"):
        NetworkSpec.from_nir(graph)
    spec = NetworkSpec.from_nir(graph, dt=14 * ms)
    assert spec.neuron.model.reset == "v = v_reset"  # NIR's reset, nothing says otherwise
    assert spec.layout["kind"] == "fully_connected"


def _snntorch_spikes(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    """Recurrent spikes of snnTorch's import of the spec's graph, ``(B, T, n_rec)``."""
    import_nir = pytest.importorskip("snntorch.import_nir")
    graph = spec.to_nir(readout=False, time_step=0.1 * ms)  # snnTorch's fixed step
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints warnings
        network = import_nir.import_from_nir(graph)
    samples = []
    for sample in x:
        for module in network.modules():
            if hasattr(module, "reset_mem"):
                module.reset_mem()
        state, steps = None, []
        with torch.no_grad():
            for x_t in sample:
                out, state = network(torch.tensor(x_t, dtype=torch.float32)[None], state)
                steps.append(out[0].numpy())
        samples.append(steps)
    return np.array(samples) > 0


def _clone_spikes(spec: NetworkSpec, x: np.ndarray) -> np.ndarray:
    clone = TorchClone(spec, dtype=torch.float64)
    return clone.recurrent_spikes(clone.init_params(), x).numpy() > 0


def _identity_loop(spec: NetworkSpec) -> NetworkSpec:
    # snnTorch 1.0 routes the external input through w_rec as well (its recurrent
    # subgraph has the edge input -> w_rec): only an identity loop keeps the topology.
    n = spec.n_rec
    return spec.copy_with(w_rec=np.eye(n), rec_mask=np.eye(n, dtype=bool))


def test_snntorch_spikes_equal_the_clone_where_the_semantics_agree():
    pytest.importorskip("snntorch")
    x = _input()
    # CubaLIF with NIR's reset to 0: the same dynamics; snnTorch's step t is the
    # clone's step t + 1 (Brian2 tests the threshold before this step's synapses).
    model = replace(neuron_model("cuba_lif"), name="cuba_lif_zero", reset="v = 0")
    spec = _identity_loop(_spec(model, gain=2.0))
    ours, theirs = _clone_spikes(spec, x), _snntorch_spikes(spec, x)
    assert ours.mean() > 0.05
    assert not ours[:, 0].any()
    np.testing.assert_array_equal(theirs[:, :-1], ours[:, 1:])


def test_snntorch_differs_after_the_first_subtractive_reset():
    pytest.importorskip("snntorch")
    x = _input()
    spec = _identity_loop(_spec("cuba_lif", gain=2.0))
    ours, theirs = _clone_spikes(spec, x)[:, 1:], _snntorch_spikes(spec, x)[:, :-1]
    for sample_ours, sample_theirs in zip(ours, theirs, strict=True):
        first = int(np.argmax(sample_theirs.any(axis=1)))
        # Identical up to the first spike; then snnTorch resets to 0, not by subtraction.
        np.testing.assert_array_equal(sample_theirs[: first + 1], sample_ours[: first + 1])
    agreement = (ours == theirs).mean()
    assert 0.8 < agreement < 1.0  # measured 0.872 (docs/nir.md)


def test_package_and_cli_work_without_nir(tmp_path):
    code = (
        "import sys; sys.modules['nir'] = None\n"
        "from mosaicnet.cli import build_parser; build_parser()\n"
        "from mosaicnet.network.spec import random_spec\n"
        "import numpy as np\n"
        "layout = {'kind': 'mosaic', 'rows': 1, 'cols': 1, 'neurons_per_tile': 4, 'beta': 8.0}\n"
        "spec = random_spec(3, layout, 2, np.ones((4, 4), bool))\n"
        "try:\n    spec.to_nir()\n"
        "except Exception as error:\n    print(type(error).__name__, error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ConfigError" in result.stdout and "pip install" in result.stdout


def test_export_command_writes_once_and_refuses_to_overwrite(tmp_path, capsys):
    from mosaicnet.cli import main
    from mosaicnet.meta.config import TrainConfig, save_config
    from mosaicnet.meta.run_directory import CONFIG_FILE, SPEC_FILE
    from mosaicnet.meta.run_setup import build_spec

    config = TrainConfig(rows=1, cols=2, neurons_per_tile=4, n_bins=10)
    run = tmp_path / "run"
    run.mkdir()
    build_spec(config, n_in=20).save(run / SPEC_FILE)
    save_config(config, run / CONFIG_FILE)
    out = tmp_path / "net.nir"
    assert main(["export", str(run), "--nir", str(out)]) == 0
    assert "recurrent (LIF)" in capsys.readouterr().out
    assert main(["export", str(run), "--nir", str(out), "--read-time", "30*day"]) == 2
    assert "exists" in capsys.readouterr().err
    code = main(["export", str(run), "--nir", str(out), "--read-time", "30*day", "--overwrite"])
    assert code == 0
    assert float(nir.read(out).metadata["mosaicnet_read_time_s"]) == 30 * 86400.0
    assert main(["export", str(run), "--nir", str(out), "--overwrite", "--read-time", "30*mV"]) == 2
    assert "not a time" in capsys.readouterr().err
