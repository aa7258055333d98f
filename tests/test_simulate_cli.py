"""``mosaicnet simulate`` and ``mosaicnet describe`` on a tiny network and synthetic data.

The network has 8 recurrent neurons (2 x 2 tiles of 2), 70 inputs (stride 10 of
the 700 channels) and a 28 ms step (50 bins over 1.4 s); every simulation is a
few samples on the numpy backend.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from brian2 import ms

from mosaicnet.cli import main
from mosaicnet.cli.simulate_commands import choose_samples, input_stride
from mosaicnet.data import load_shd, write_synthetic_shd
from mosaicnet.errors import ConfigError
from mosaicnet.layout import Layout
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.run_directory import SPEC_FILE, RunDirectory
from mosaicnet.network.brian_network import simulate
from mosaicnet.network.spec import NeuronParameters, random_spec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _spec(n_in=70, seed=0):
    layout = Layout(2, 2, 2)
    return random_spec(
        n_in, layout.to_dict(), 4, np.ones((8, 8), bool), gain=4.0,
        neuron=NeuronParameters(dt=28 * ms), seed=seed,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_shd(tmp_path_factory):
    """40 train / 40 test recordings (seed 1): fewer than conftest's ``data_dir``, enough here."""
    out = tmp_path_factory.mktemp("shd")
    write_synthetic_shd(out, seed=1, n_train=40, n_test=40)
    return out


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    return _spec().save(tmp_path_factory.mktemp("spec") / "tiny.npz")


def _json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_json_spike_counts_equal_the_simulation_result(capsys, tiny_shd, spec_file):
    report = _json(capsys, ["simulate", str(spec_file), "--data", str(tiny_shd),
                            "--samples", "3", "--json", "--seed", "5"])  # fmt: skip
    for key in ("spike_counts", "mean_rates_hz", "backend", "samples", "wall_time_s"):
        assert key in report
    assert report["backend"] == "numpy" and report["samples"] == 3
    assert set(report["spike_counts"]) == {"input", "recurrent"}  # the readout does not spike
    assert "non-spiking" in report["readout"]
    assert (report["stride"], report["n_bins"]) == (10, 50)
    assert report["window_s"] == pytest.approx(1.4)

    # The same samples, binned and simulated directly, give the same spikes.
    indices = report["sample_indices"]
    assert len(set(indices)) == 3
    dataset = load_shd(tiny_shd / "shd_test.h5")
    x = dataset.binned(indices, n_bins=50, window_s=1.4, stride=10).numpy()
    result = simulate(_spec(), x, programming_seed=5, seed=5)
    assert report["spike_counts"]["input"] == int(result.input_spikes.sum())
    assert report["spike_counts"]["recurrent"] == int(result.recurrent_spikes.sum())
    assert report["spike_counts"]["recurrent"] > 0
    duration_s = 3 * 50 * 0.028
    assert report["mean_rates_hz"]["recurrent"] == pytest.approx(
        result.recurrent_spikes.sum() / (8 * duration_s)
    )
    silent = float(np.mean(~result.recurrent_spikes.any(axis=(0, 1))))
    assert report["silent_fraction"]["recurrent"] == pytest.approx(silent)
    assert report["labels"] == dataset.labels[indices].tolist()
    assert report["predicted"] == result.readout.max(axis=1).argmax(axis=1).tolist()


def test_seed_chooses_distinct_samples_reproducibly():
    first = choose_samples(40, 5, seed=0)
    assert first.tolist() == choose_samples(40, 5, seed=0).tolist()
    assert first.tolist() == sorted(set(first.tolist())) and first.max() < 40
    assert first.tolist() != choose_samples(40, 5, seed=1).tolist()
    assert choose_samples(40, 40, seed=2).tolist() == list(range(40))


def test_same_seed_same_spikes_with_read_noise(capsys, tiny_shd, tmp_path):
    # aihwkit PCM has programming and read noise: the seed must fix both.
    path = _spec().copy_with(device_model="pcm_aihwkit").save(tmp_path / "noisy.npz")
    argv = ["simulate", str(path), "--data", str(tiny_shd), "--samples", "2", "--json"]
    first, second = _json(capsys, argv), _json(capsys, argv)
    assert first["sample_indices"] == second["sample_indices"]
    assert first["spike_counts"] == second["spike_counts"]


@pytest.mark.slow
def test_cpp_standalone_counts_equal_numpy(capsys, tiny_shd, spec_file):
    base = ["simulate", str(spec_file), "--data", str(tiny_shd), "--samples", "3", "--json"]
    numpy_report = _json(capsys, base)
    cpp_report = _json(capsys, [*base, "--backend", "cpp_standalone"])
    assert cpp_report["backend"] == "cpp_standalone"
    assert cpp_report["spike_counts"] == numpy_report["spike_counts"]
    assert cpp_report["predicted"] == numpy_report["predicted"]


def test_text_report_and_raster_file(capsys, tiny_shd, spec_file, tmp_path):
    raster = tmp_path / "figs" / "sample0.png"
    argv = ["simulate", str(spec_file), "--data", str(tiny_shd), "--samples", "2",
            "--raster", str(raster), "--read-time", "1 h"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert raster.read_bytes()[:8] == PNG_MAGIC and raster.stat().st_size > 5000
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["input"][1] == "70" and lines["recurrent"][1] == "8"
    assert lines["readout"][1] == "4" and "(non-spiking" in lines["readout"]
    assert "read at 3600 s" in out
    assert f"wrote {raster}" in out


def test_training_run_directory_uses_its_spec_and_binning(capsys, tiny_shd, tmp_path):
    run = RunDirectory.create(tmp_path / "run")
    run.save_config(TrainConfig(rows=2, cols=2, neurons_per_tile=2, n_bins=30, spatial_stride=10))
    _spec(seed=3).save(run.file(SPEC_FILE))
    report = _json(capsys, ["simulate", str(run.path), "--data", str(tiny_shd),
                            "--samples", "2", "--json", "--split", "train"])  # fmt: skip
    assert (report["n_bins"], report["stride"]) == (30, 10)
    assert report["data_file"] == str(tiny_shd / "shd_train.h5")
    dataset = load_shd(tiny_shd / "shd_train.h5")
    x = dataset.binned(report["sample_indices"], n_bins=30, window_s=1.4, stride=10).numpy()
    result = simulate(_spec(seed=3), x)
    assert report["spike_counts"]["recurrent"] == int(result.recurrent_spikes.sum())


def test_default_data_is_the_synthetic_default(capsys, spec_file, tmp_path, monkeypatch):
    monkeypatch.setattr("mosaicnet.meta.run_setup.DEFAULT_DATA_DIR", tmp_path / "synthetic")
    report = _json(capsys, ["simulate", str(spec_file), "--samples", "1", "--json"])
    assert report["data_file"] == str(tmp_path / "synthetic" / "shd_test.h5")
    assert (tmp_path / "synthetic" / "shd_train.h5").is_file()


def test_describe_prints_the_brian2_equations(capsys, spec_file):
    assert main(["describe", str(spec_file), "--read-time", "10"]) == 0
    out = capsys.readouterr().out
    assert "dv/dt = -v / tau_mem : 1" in out and "dv/dt = -v / tau_out : 1" in out
    assert "threshold: v > thr" in out and "reset: v -= thr" in out
    assert "neuron model 'lif'" in out
    assert "50 steps per sample" in out and "t_read = 10 s" in out
    assert "syn_rec: Synapses recurrent -> recurrent, 64 synapses per copy" in out


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--backend", "nest"], "unknown backend 'nest'; choose one of numpy, cython"),
        (["--stride", "3"], "stride 3 keeps 234 of the data's 700 channels"),
        (["--samples", "41"], "exceeds the 40 samples"),
        (["--samples", "0"], "--samples must be >= 1"),
        (["--read-time", "soon"], "cannot read 'soon' as a read time"),
        (["--read-time", "3 parsecs"], "unknown unit 'parsecs'"),
        (["--read-time=-1h"], "negative"),
        (["--read-time", "-1s"], "negative"),
        (["--raster", "figure.txt"], "not an image format"),
        (["--raster", "/proc/raster.png"], "nothing can be written in /proc"),
        (["--raster", "/dev/null/raster.png"], "/dev/null is a file, not a folder"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(capsys, tiny_shd, spec_file, extra, match):
    err = _error(capsys, ["simulate", str(spec_file), "--data", str(tiny_shd), *extra])
    assert match in err
    assert err.startswith("mosaicnet simulate: error:")


def test_missing_spec_and_non_run_directory_exit_2(capsys, tiny_shd, tmp_path):
    err = _error(capsys, ["simulate", str(tmp_path / "nope.npz"), "--data", str(tiny_shd)])
    assert "nope.npz does not exist" in err and "training run directory" in err
    err = _error(capsys, ["simulate", str(tmp_path), "--data", str(tiny_shd)])
    assert "is not a training run" in err
    (tmp_path / "junk.npz").write_bytes(b"not a spec")
    err = _error(capsys, ["describe", str(tmp_path / "junk.npz")])
    assert "is not a mosaicnet network spec" in err


def test_channel_count_mismatch_exit_2(capsys, tiny_shd, tmp_path):
    path = _spec(n_in=300).save(tmp_path / "wide.npz")
    err = _error(capsys, ["simulate", str(path), "--data", str(tiny_shd)])
    assert "n_in=300" in err and "stride 3 -> 234" in err and "--stride" in err


def test_missing_data_directory_exit_2(capsys, spec_file, tmp_path):
    err = _error(capsys, ["simulate", str(spec_file), "--data", str(tmp_path / "none")])
    assert "does not exist" in err


@pytest.mark.parametrize("n_in, stride", [(700, 1), (350, 2), (234, 3), (70, 10), (100, 7)])
def test_stride_is_derived_from_the_input_count(n_in, stride):
    assert input_stride(700, n_in) == stride
    assert -(-700 // stride) == n_in  # that stride keeps exactly n_in channels


def test_stride_that_keeps_another_count_is_refused():
    with pytest.raises(ConfigError, match="n_in=300"):
        input_stride(700, 300)
    with pytest.raises(ConfigError, match="keeps 70"):
        input_stride(700, 234, stride=10)
