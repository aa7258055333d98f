"""Energy and latency per inference: hand-computed counts, gaps named, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mosaicnet.errors import ConfigError
from mosaicnet.layout.energy import (
    GAP,
    MOSAIC_PUBLISHED,
    EventFigures,
    cost_per_inference,
    event_counts,
    hardware_cost,
    per_inference_counts,
)
from mosaicnet.network.spec import random_spec

# 1 x 3 tiles of one neuron: hops 0-1 and 1-2 are 1, hops 0-2 are 5 (published rule).
LAYOUT = {"kind": "mosaic", "rows": 1, "cols": 3, "neurons_per_tile": 1, "beta": 8.0}
FIGURES = EventFigures(
    energy_per_device_read_J=1e-12,
    energy_per_routing_hop_J=2e-12,
    energy_per_neuron_update_J=3e-12,
    latency_per_routing_hop_s=1e-6,
    sources={"energy_per_device_read_J": "test"},
)
X = np.array([4.0, 5.0])  # input spikes per channel
Z = np.array([2.0, 1.0, 3.0])  # recurrent spikes per neuron
STEPS = 10


@pytest.fixture
def spec():
    mask = np.zeros((3, 3), bool)
    mask[0, 1] = mask[0, 2] = mask[1, 0] = mask[2, 2] = True  # hops 1, 5, 1, 0
    base = random_spec(2, LAYOUT, 2, mask, seed=0)
    w_in = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])  # fan-out 3, 1
    w_out = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # fan-out 1, 2, 0
    return base.copy_with(w_in=w_in, w_rec=mask * 0.5, w_out=w_out)


def test_counts_by_hand(spec):
    counts = event_counts(spec, X, Z, STEPS)
    assert counts["synaptic_events_input"] == 4 * 3 + 5 * 1
    assert counts["synaptic_events_recurrent"] == 2 * 2 + 1 * 1 + 3 * 1
    assert counts["synaptic_events_readout"] == 2 * 1 + 1 * 2 + 3 * 0
    assert counts["synaptic_events"] == 29
    assert counts["device_reads"] == 58  # two devices per weight
    assert counts["routing_hops"] == 2 * (1 + 5) + 1 * 1 + 3 * 0
    assert counts["neuron_updates"] == (3 + 2) * STEPS
    assert event_counts(spec, X, Z, STEPS, one_crossbar=True)["routing_hops"] == 0


def test_energy_and_latency_by_hand(spec):
    cost = cost_per_inference(spec, X, Z, STEPS, figures=FIGURES)
    assert cost["energy_J"]["device_reads"] == pytest.approx(58e-12)
    assert cost["energy_J"]["routing_hops"] == pytest.approx(13 * 2e-12)
    assert cost["energy_J"]["neuron_updates"] == pytest.approx(50 * 3e-12)
    assert cost["energy_total_J"] == pytest.approx(234e-12)
    # 10 steps of the published 14 ms bin; the longest route is 5 hops.
    assert cost["input_duration_s"] == pytest.approx(0.14)
    assert cost["longest_route_hops"] == 5
    assert cost["latency_s"] == pytest.approx(0.14 + 5e-6)
    assert cost["missing"] == []
    assert cost["sources"]["energy_per_device_read_J"] == "test"
    crossbar = cost_per_inference(spec, X, Z, STEPS, figures=FIGURES, one_crossbar=True)
    assert crossbar["energy_total_J"] == pytest.approx(208e-12)
    assert crossbar["latency_s"] == pytest.approx(0.14)


def test_unpublished_figures_leave_terms_out_and_say_so(spec):
    cost = cost_per_inference(spec, X, Z, STEPS, figures=MOSAIC_PUBLISHED)
    assert cost["energy_total_J"] is None and cost["latency_s"] is None
    assert all(value is None for value in cost["energy_J"].values())
    assert set(cost["missing"]) == {
        "energy_per_device_read_J",
        "energy_per_routing_hop_J",
        "energy_per_neuron_update_J",
        "latency_per_routing_hop_s",
    }
    assert cost["sources"]["energy_per_routing_hop_J"] == GAP
    # On one crossbar there is no routing: that term costs 0, known without a figure.
    both = hardware_cost(spec, X, Z, STEPS)
    assert both["one_crossbar"]["energy_J"]["routing_hops"] == 0.0
    assert both["one_crossbar"]["latency_s"] == pytest.approx(0.14)


def test_bad_inputs_are_config_errors(spec):
    with pytest.raises(ConfigError, match="recurrent_counts"):
        event_counts(spec, X, Z[:2], STEPS)
    with pytest.raises(ConfigError, match=">= 0"):
        event_counts(spec, X, -Z, STEPS)
    with pytest.raises(ConfigError, match="unknown figure"):
        EventFigures.from_dict({"energy_per_spike_J": 1.0})
    with pytest.raises(ConfigError, match="finite"):
        EventFigures(energy_per_device_read_J=-1.0)
    raster = np.zeros((2, 4, 3))
    raster[0, 1, 0] = raster[1, 2, 0] = raster[1, 3, 2] = 1
    np.testing.assert_allclose(per_inference_counts(raster), [1.0, 0.0, 0.5])


@pytest.fixture
def run(tmp_path, data_dir):
    from mosaicnet.meta.config import TrainConfig, save_config
    from mosaicnet.meta.run_directory import CONFIG_FILE, SPEC_FILE
    from mosaicnet.meta.run_setup import build_spec
    from mosaicnet.protocols_support.recordings import split_inputs

    config = TrainConfig(rows=1, cols=2, neurons_per_tile=4, n_bins=10)
    x, _, _ = split_inputs(data_dir, config, 1)
    path = tmp_path / "run"
    path.mkdir()
    build_spec(config, n_in=x.shape[2]).save(path / SPEC_FILE)
    save_config(config, path / CONFIG_FILE)
    return path


def test_cli_prints_a_table_and_json_round_trips(run, data_dir, capsys, single_thread):
    from mosaicnet.cli import main
    from mosaicnet.cli.hardware_cost_commands import simulated_counts
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.protocols_support.recordings import split_inputs

    args = ["hardware-cost", str(run), "--data", str(data_dir), "--samples", "3"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "memristor reads" in text and "routing hops" in text
    assert "Figures not known" in text and "energy_per_device_read_J" in text

    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    directory = RunDirectory.open(run)
    spec = directory.load_spec()
    x, _, _ = split_inputs(data_dir, directory.load_config(), 3)
    expected = hardware_cost(spec, *simulated_counts(spec, x), x.shape[1])
    assert summary["layout"] == json.loads(json.dumps(expected["layout"]))
    assert summary["one_crossbar"] == json.loads(json.dumps(expected["one_crossbar"]))
    assert summary["n_steps"] == 10 and summary["samples"] == 3


def test_cli_takes_figures_from_a_file(run, data_dir, tmp_path, capsys, single_thread):
    from mosaicnet.cli import main

    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps(FIGURES.to_dict()))
    args = ["hardware-cost", str(run), "--data", str(data_dir), "--samples", "2", "--json"]
    assert main([*args, "--figures", str(figures)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"]["missing"] == []
    assert summary["layout"]["energy_total_J"] > 0
    figures.write_text("{not json")
    assert main([*args, "--figures", str(figures)]) == 2
    assert "--figures" in capsys.readouterr().err


def test_cli_missing_run_directory_is_a_clear_error(tmp_path, capsys):
    from mosaicnet.cli import main

    missing = tmp_path / "no-such-run"
    assert main(["hardware-cost", str(missing)]) == 2
    error = capsys.readouterr().err
    assert "hardware-cost: error" in error and "not a training run" in error
