"""Chip-in-the-loop few-shot evaluation on the Brian2 network, under drift.

One tiny run is trained once per module (2 x 2 tiles of 4 neurons, 30 bins, float64,
two outer steps on synthetic SHD); a second run holds the same trained weights with
the ``pcm_aihwkit`` device model, i.e. the same network programmed into drifting
PCM. Default tests use Brian2's numpy backend (nothing to compile); the compiled
backends, whose point is not to recompile, are checked in the slow tests.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from mosaicnet.cli import main
from mosaicnet.cli.drift_commands import format_curve
from mosaicnet.errors import BackendUnavailableError, ConfigError
from mosaicnet.meta import chip_evaluation
from mosaicnet.meta.chip_evaluation import (
    ChipSession,
    drift_curve,
    evaluate_on_chip,
)
from mosaicnet.meta.config import TrainConfig, save_config
from mosaicnet.meta.evaluation_options import EvaluationOptions
from mosaicnet.meta.run_directory import SPEC_FILE, RunDirectory
from mosaicnet.meta.torch_evaluation import evaluate_on_torch

MONTH = "30d"
TINY = dict(
    rows=2, cols=2, neurons_per_tile=4, n_bins=30, spatial_stride=10, meta_batch=2,
    n_way=3, k_shot=2, n_query=2, checkpoint_every=2, outer_lr=3e-3, dtype="float64",
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def ideal_run(tmp_path_factory, data_dir):
    """A trained tiny run with ideal devices (float64, so Brian2 and torch spike alike)."""
    root = tmp_path_factory.mktemp("runs")
    save_config(TrainConfig(**TINY), root / "tiny.json")
    run = root / "ideal"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet",
            "--iterations", "2", "--config", str(root / "tiny.json")]  # fmt: skip
    assert main(args) == 0
    return run


@pytest.fixture(scope="module")
def pcm_run(ideal_run):
    """The same trained weights, programmed into PCM (aihwkit model: drift, noise)."""
    run = ideal_run.parent / "pcm"
    shutil.copytree(ideal_run, run)
    directory = RunDirectory.open(run)
    spec = directory.load_spec().copy_with(device_model="pcm_aihwkit")
    spec.save(directory.file(SPEC_FILE), overwrite=True)
    return run


def test_ideal_devices_without_noise_predict_as_torch_task_by_task(ideal_run, data_dir):
    common = dict(data_dir=data_dir, tasks=3, seed=5, progress=False)
    torch_result = evaluate_on_torch(ideal_run, **common)
    # Headroom 4: no adapted readout weight saturates, so the chip holds exactly the
    # weights torch uses (saturation is the one intended difference between them).
    chip = evaluate_on_chip(ideal_run, backend="numpy", noise=False, readout_headroom=4.0, **common)
    assert chip["readout_clipped_fraction"] == 0.0
    # The same tasks (same seed -> same task streams), and the same answers.
    for ours, theirs in zip(chip["task_details"], torch_result["task_details"], strict=True):
        for key in ("task_id", "split", "classes", "labels", "seen"):
            assert ours[key] == theirs[key]
    assert chip["predictions"] == torch_result["predictions"]
    assert [d["predicted_all_units"] for d in chip["task_details"]] == [
        d["predicted_all_units"] for d in torch_result["task_details"]
    ]
    # Not a degenerate network: queries of one task get different answers somewhere.
    assert any(len(set(p)) > 1 for p in chip["predictions"])
    # Same summary keys as torch (users switch backends without changing scripts).
    assert set(torch_result) <= set(chip)
    assert chip["simulator"] == "brian2" and chip["backend"] == "numpy"
    assert torch_result["simulator"] == "torch" and torch_result["backend"] == "torch"
    assert chip["read_time_s"] == 1.0 and chip["tasks"] == torch_result["tasks"] == 6
    for key in ("accuracy_seen", "accuracy_unseen", "accuracy_seen_20way"):
        assert chip[key] == torch_result[key]


def _abs_sums(weights):
    return {name: float(np.abs(w).sum()) for name, w in weights.items()}


def _count_builds(monkeypatch) -> list:
    built = []
    original = chip_evaluation.BrianNetwork.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("backend"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(chip_evaluation.BrianNetwork, "__init__", counting)
    return built


def test_drift_changes_the_chip_inside_brian2(pcm_run, data_dir, monkeypatch):
    built = _count_builds(monkeypatch)
    with ChipSession(
        pcm_run, data_dir=data_dir, backend="numpy", tasks=2, noise=False, progress=False
    ) as session:
        second = session.evaluate("1s")
        read_second = session.network.weights_as_read()
        month = session.evaluate(MONTH)
        read_month = session.network.weights_as_read()
        chip = session.chip
    assert built == ["numpy"]  # one network for both read times
    for summary in (second, month):
        assert math.isfinite(summary["accuracy_seen"]) and math.isfinite(summary["accuracy_unseen"])
        assert summary["compensation_factors"] == {"w_in": 1.0, "w_rec": 1.0, "w_out": 1.0}
    # The Brian2 synapses read the drifted devices: their weights are those the
    # device model gives at 30 days (drift happens in the simulated model) ...
    for name in ("w_in", "w_rec"):
        expected = chip[name].read_weights(30 * 86400.0, read_noise=False)
        np.testing.assert_allclose(read_month[name], expected, rtol=1e-9, atol=1e-12)
    # ... and PCM drift (nu ~ 0.05 per decade-log, 20 s -> 30 d) shrinks them by ~40 %.
    before, after = _abs_sums(read_second), _abs_sums(read_month)
    for name in ("w_in", "w_rec"):
        assert after[name] < 0.8 * before[name]
    # Weaker synapses: the recurrent layer's activity changes, and with it the run.
    assert month["firing_rate_hz"] != second["firing_rate_hz"]
    assert second["firing_rate_hz"] > 0


def test_global_drift_compensation_restores_each_pathways_scale(pcm_run, data_dir):
    month_s = 30 * 86400.0
    with ChipSession(
        pcm_run, data_dir=data_dir, backend="numpy", tasks=1, noise=False,
        drift_compensation=True, read_time_s=month_s, progress=False,
    ) as session:  # fmt: skip
        result = session.evaluate(month_s)
        factors = session.read_at(month_s)  # the chip state each task starts from
        compensated = session.network.weights_as_read()
        references, chip = session.references, session.chip
    assert factors == result["compensation_factors"]
    nominal = RunDirectory.open(pcm_run).load_spec()
    for name in ("w_in", "w_rec", "w_out"):
        # Documented behaviour: sum |w| of the compensated Brian2 weights at 30 days
        # equals that of the read right after programming (no read noise: exactly) ...
        assert float(np.abs(compensated[name]).sum()) == pytest.approx(references[name], rel=1e-9)
        assert result["compensation_factors"][name] > 1.2
        # ... which brings the weights closer to the programmed ones than drift left them.
        drifted = chip[name].read_weights(month_s, read_noise=False)
        target = getattr(nominal, name)
        assert np.linalg.norm(compensated[name] - target) < np.linalg.norm(drifted - target)
    assert result["drift_compensation"] is True


def test_many_tasks_reuse_one_network(pcm_run, data_dir, monkeypatch):
    """Batches of tasks never build a new network or new Brian2 objects."""
    built = _count_builds(monkeypatch)
    with ChipSession(
        pcm_run, data_dir=data_dir, backend="numpy", tasks=3, tasks_per_run=1,
        protocol="mixed", progress=False,
    ) as session:  # fmt: skip
        objects = {obj.name for obj in session.network.network.objects}
        result = session.evaluate("1h")
        assert {obj.name for obj in session.network.network.objects} == objects
        assert session.copies_per_task == session.network.copies  # one task per run
    assert built == ["numpy"]
    assert result["tasks"] == 3 and result["protocol"] == "mixed"


def test_drift_command_writes_json_and_figure(pcm_run, data_dir, tmp_path, capsys):
    figure = tmp_path / "drift.png"
    # Read times out of order: the curve keeps the order asked for.
    args = ["drift", str(pcm_run), "--data", str(data_dir), "--times", "30d,1s",
            "--tasks", "1", "--seed", "4", "--brian-device", "numpy", "--json",
            "--figure", str(figure)]  # fmt: skip
    assert main(args) == 0
    curve = json.loads(capsys.readouterr().out)
    assert curve["times_s"] == [2592000.0, 1.0] and curve["labels"] == ["30 d", "1 s"]
    assert [s["read_time_s"] for s in curve["summaries"]] == [2592000.0, 1.0]
    # Per-time series are the summaries' values, in the same order.
    for key in ("accuracy_seen", "accuracy_unseen", "ci95_seen", "accuracy_unseen_20way"):
        assert curve[key] == [s[key] for s in curve["summaries"]]
    assert curve["firing_rate_hz"] == [s["firing_rate_hz"] for s in curve["summaries"]]
    # The settings asked for, and those of the run.
    config = RunDirectory.open(pcm_run).load_config()
    assert curve["simulator"] == "brian2" and curve["backend"] == "numpy"
    assert curve["seed"] == 4 and curve["tasks"] == 2 and curve["protocol"] == "separate"
    assert (curve["n_way"], curve["k_shot"]) == (config.n_way, config.k_shot)
    assert curve["device_model"] == "pcm_aihwkit" and curve["noise"] is True
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"
    # The text table names both read times, first the first asked for.
    table = format_curve(curve)
    assert table.index("30 d") < table.index("1 s") and "pcm_aihwkit" in table
    assert str(figure) in table


def test_drift_curve_points_are_the_chip_read_at_each_time(pcm_run, data_dir):
    """Without noise a point of the curve is the evaluation at its read time, in any order."""
    options = EvaluationOptions(backend="numpy", tasks=1, noise=False, seed=2, progress=False)
    curve = drift_curve(pcm_run, options, times_s="30d,1s", data_dir=data_dir)
    alone = evaluate_on_chip(pcm_run, options, data_dir=data_dir, read_time_s="1s")
    last = curve["summaries"][1]
    assert last["read_time_s"] == alone["read_time_s"] == 1.0
    assert last["task_details"] == alone["task_details"]
    assert last["firing_rate_hz"] == alone["firing_rate_hz"]


_TIMING_KEYS = ("build_seconds", "wall_seconds", "tasks_per_second")


def test_evaluate_command_runs_the_chip(pcm_run, data_dir, capsys):
    args = ["evaluate", str(pcm_run), "--data", str(data_dir), "--backend", "numpy",
            "--read-time", "1d", "--tasks", "1", "--seed", "3", "--no-noise",
            "--drift-compensation", "--json"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["simulator"] == "brian2" and result["backend"] == "numpy"
    assert result["read_time_s"] == 86400.0 and result["read_time"] == "1 d"
    assert result["noise"] is False and result["drift_compensation"] is True
    assert result["seed"] == 3 and result["protocol"] == "separate"
    assert set(result["compensation_factors"]) == {"w_in", "w_rec", "w_out"}
    assert result["compensation_factors"]["w_in"] > 1.0
    # One task per kind, each with the run's way, shot and queries.
    config = RunDirectory.open(pcm_run).load_config()
    assert result["tasks"] == 2 and result["tasks_seen"] == result["tasks_unseen"] == 1
    assert (result["n_way"], result["k_shot"], result["n_query"]) == (
        config.n_way, config.k_shot, config.n_query,
    )  # fmt: skip
    assert result["inner_steps"] == config.inner_steps
    assert [len(p) for p in result["predictions"]] == [config.n_way * config.n_query] * 2
    # What the library computes for the same options (the old spelling of the
    # backend flag means the same).
    options = EvaluationOptions(
        backend="numpy", read_time_s="1d", tasks=1, seed=3, noise=False,
        drift_compensation=True, progress=False,
    )  # fmt: skip
    expected = json.loads(json.dumps(evaluate_on_chip(pcm_run, options, data_dir=data_dir)))
    for key in _TIMING_KEYS:
        result.pop(key), expected.pop(key)
    assert result == expected


def test_evaluate_command_torch_and_an_ideal_noise_free_chip_agree(ideal_run, data_dir, capsys):
    base = ["evaluate", str(ideal_run), "--data", str(data_dir), "--tasks", "2", "--json"]
    assert main(base) == 0
    on_torch = json.loads(capsys.readouterr().out)
    assert main([*base, "--backend", "brian2", "--brian-device", "numpy", "--no-noise"]) == 0
    on_chip = json.loads(capsys.readouterr().out)
    assert on_torch["simulator"] == on_torch["backend"] == "torch"
    assert on_chip["simulator"] == "brian2" and on_chip["backend"] == "numpy"
    assert on_chip["predictions"] == on_torch["predictions"]
    for key in ("accuracy_seen", "accuracy_unseen", "tasks", "n_way", "inner_lr"):
        assert on_chip[key] == on_torch[key]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--brian-device", "loihi"], "unknown backend 'loihi'"),
        (["--read-time=-1d"], "negative"),
        (["--read-time", "tomorrow"], "cannot read 'tomorrow'"),
        (["--read-time", "3m"], "ambiguous"),
    ],
)
def test_evaluate_command_rejects_bad_chip_options(pcm_run, data_dir, capsys, extra, message):
    args = ["evaluate", str(pcm_run), "--data", str(data_dir), "--backend", "brian2",
            "--brian-device", "numpy", "--tasks", "1", *extra]  # fmt: skip
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_chip_options_need_a_chip_backend(pcm_run, capsys):
    assert main(["evaluate", str(pcm_run), "--read-time", "1d"]) == 2
    assert "--read-time apply to the chip only" in capsys.readouterr().err


def test_bad_devices_and_times_fail_before_building(pcm_run, capsys):
    with pytest.raises(ConfigError, match="choose one of numpy, cython"):
        EvaluationOptions(backend="spinnaker")
    assert EvaluationOptions(backend="runtime").backend == "cython"
    with pytest.raises(BackendUnavailableError, match="genn"):
        ChipSession(pcm_run, backend="genn")
    with pytest.raises(ConfigError, match="negative"):
        drift_curve(pcm_run, times_s=["1s", -3.0], backend="numpy")
    assert main(["drift", str(pcm_run), "--times", "1s,soon"]) == 2
    assert "cannot read 'soon'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="tasks must be an integer >= 1, got 0"):
        evaluate_on_chip(pcm_run, tasks=0, backend="numpy")


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_cpp_standalone_compiles_once_and_agrees_with_numpy(pcm_run, data_dir, monkeypatch):
    """One compilation for all tasks and read times; per-task readouts via run_args."""
    from mosaicnet.network.brian_backends import StandaloneProject

    builds, runs = [], []
    build, run = StandaloneProject.build, StandaloneProject.run
    monkeypatch.setattr(StandaloneProject, "build", lambda self: builds.append(1) or build(self))
    monkeypatch.setattr(
        StandaloneProject, "run", lambda self, args: runs.append(1) or run(self, args)
    )
    options = dict(data_dir=data_dir, times_s=("1s", MONTH), tasks=3, noise=False,
                   progress=False)  # fmt: skip
    standalone = drift_curve(pcm_run, backend="cpp_standalone", tasks_per_run=2, **options)
    runtime = drift_curve(pcm_run, backend="numpy", **options)
    assert len(builds) == 1
    # Per read time: one read run, then per batch of <= 2 tasks a support and a query run.
    batches_per_time = 2 * math.ceil(3 / 2)
    assert len(runs) == 2 * (1 + 2 * batches_per_time)
    for ours, theirs in zip(standalone["summaries"], runtime["summaries"], strict=True):
        assert ours["predictions"] == theirs["predictions"]
        assert ours["firing_rate_hz"] == pytest.approx(theirs["firing_rate_hz"], rel=1e-12)


@pytest.mark.slow
def test_cython_compiles_nothing_after_the_first_tasks(pcm_run, data_dir, monkeypatch):
    import Cython.Build

    compiled = []
    cythonize = Cython.Build.cythonize

    def counting(*args, **kwargs):
        compiled.append(1)
        return cythonize(*args, **kwargs)

    monkeypatch.setattr(Cython.Build, "cythonize", counting)
    with ChipSession(
        pcm_run, data_dir=data_dir, backend="cython", tasks=4, tasks_per_run=2,
        progress=False,
    ) as session:  # fmt: skip
        session.evaluate("1s")
        after_first = len(compiled)
        session.evaluate(MONTH)
    assert len(compiled) == after_first


_DEVICE_STATE = ("g_plus", "g_minus", "drift_plus", "drift_minus", "t_prog_s")


def _assert_same_chip(ours, theirs):
    assert set(ours) == set(theirs) == {"w_in", "w_rec", "w_out"}
    for name in ours:
        assert ours[name].w_scale == theirs[name].w_scale, name
        for key in _DEVICE_STATE:
            np.testing.assert_array_equal(getattr(ours[name], key), getattr(theirs[name], key))


@pytest.mark.parametrize("compensation", [False, True])
def test_recordings_run_on_the_chip_the_evaluation_scores(pcm_run, data_dir, compensation):
    """Rasters and hops per spike of a protocol come from the chip of its accuracy."""
    from mosaicnet.protocols_support.recordings import record_test_samples

    month = 30 * 86400.0
    recording = record_test_samples(
        pcm_run, data_dir, n_samples=2, backend="numpy", read_time_s=month, seed=7,
        drift_compensation=compensation,
    )  # fmt: skip
    with ChipSession(
        pcm_run, data_dir=data_dir, backend="numpy", tasks=1, seed=7, read_time_s=month,
        drift_compensation=compensation, progress=False,
    ) as session:  # fmt: skip
        # The state every task starts from: the chip as programmed, read at the read time.
        factors = session.read_at(month)
        _assert_same_chip(recording.programmed, session.network.programmed)
    # The readout has the evaluation's conductance range (headroom 2 over max |w_out|,
    # times the compensation gain), not a range of the recording's own.
    nominal = float(np.abs(recording.spec.w_out).max())
    assert recording.programmed["w_out"].w_scale == pytest.approx(
        2.0 * nominal * factors["w_out"], rel=1e-12
    )
    assert (factors["w_out"] > 1.0) is compensation
    assert recording.result.recurrent_spikes.shape[0] == 2
    assert recording.read_time_s == month
    # Figures mark the published decision on the meta readout only where tasks start from it.
    assert recording.readout_init == "meta"
    assert recording.decision(1) == int(recording.result.readout[1].max(axis=0).argmax())
    recording.readout_init = "prototype"
    assert recording.decision(1) is None
    # Another seed, another chip.
    other = record_test_samples(
        pcm_run, data_dir, n_samples=1, backend="numpy", read_time_s=month, seed=8
    )
    assert not np.array_equal(other.programmed["w_in"].g_plus, recording.programmed["w_in"].g_plus)


def test_readout_writes_touch_only_changed_pairs_and_saturate_at_full_range():
    from mosaicnet.devices import program_weights
    from mosaicnet.meta.chip_evaluation import write_readout

    weights = np.array([[0.5, -0.25], [0.1, 0.0]])
    base = program_weights(weights, "pcm_aihwkit", rng=0, w_scale=1.0)
    adapted = np.array([[0.5, 1.5], [-0.3, 0.0]])  # 1.5 is beyond the pair's range
    changed = adapted != weights
    written, clipped = write_readout(
        base, adapted, changed=changed, t_prog_s=86400.0, rng=np.random.default_rng(1),
        noise=False,
    )  # fmt: skip
    assert clipped == 1 and written.model == base.model and written.w_scale == 1.0
    # Unchanged pairs keep their programmed state and programming time ...
    for key in ("g_plus", "g_minus", "drift_plus", "drift_minus", "t_prog_s"):
        np.testing.assert_array_equal(getattr(written, key)[~changed], getattr(base, key)[~changed])
    np.testing.assert_array_equal(written.t_prog_s[changed], 86400.0)
    # ... rewritten ones hold the new weights (noise off: exactly, saturated at w_scale).
    read = written.read_weights(86400.0, read_noise=False)
    np.testing.assert_allclose(read[changed], [1.0, -0.3], rtol=1e-12)
    with_noise, _ = write_readout(
        base, adapted, changed=changed, t_prog_s=86400.0, rng=np.random.default_rng(1)
    )
    assert not np.array_equal(with_noise.g_plus[changed], written.g_plus[changed])


def test_both_evaluations_take_the_runs_test_time_inner_steps(ideal_run, data_dir, tmp_path):
    run = tmp_path / "more_steps"
    shutil.copytree(ideal_run, run)
    directory = RunDirectory.open(run)
    trained = directory.load_config()
    directory.save_config(trained.with_changes(test_inner_steps=trained.inner_steps + 3))
    common = dict(data_dir=data_dir, tasks=1, seed=5, progress=False)
    assert evaluate_on_torch(run, **common)["inner_steps"] == trained.inner_steps + 3
    chip = evaluate_on_chip(run, backend="numpy", noise=False, **common)
    assert chip["inner_steps"] == trained.inner_steps + 3
    assert evaluate_on_torch(run, inner_steps=2, **common)["inner_steps"] == 2
