"""What a trial does on a worker, and the study bookkeeping behind retries and resume.

These run in-process (no cluster): trials through :func:`run_trial`, planning
through :func:`plan` on an in-memory Optuna study.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the dist extra (optuna) is not installed")

import sweep_targets  # noqa: E402  (registers synthetic-quadratic)
from optuna.trial import TrialState  # noqa: E402

from mosaicnet.sweeps import runner  # noqa: E402
from mosaicnet.sweeps.objectives import (  # noqa: E402
    BUILD_DIR_ENV,
    RAM_DISK,
    RESULTS_FILE,
    WORKER_FILE,
    run_trial,
)
from mosaicnet.sweeps.sweep_file import parse_sweep  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_synthetic_quadratic_has_its_minimum_at_the_optimum(tmp_path):
    options = {"optimum": {"x": 1.0, "y": -2.0}}
    best = {"x": 1.0, "y": -2.0}
    at_optimum = run_trial("synthetic-quadratic", options, best, str(tmp_path / "a"))
    assert at_optimum["results"] == {"loss": 0.0, "distance": 0.0}
    off = run_trial("synthetic-quadratic", options, {"x": 4.0, "y": 2.0}, str(tmp_path / "b"))
    assert off["results"]["loss"] == pytest.approx(3.0**2 + 4.0**2)
    assert off["results"]["distance"] == pytest.approx(5.0)
    assert off["pid"] == os.getpid()
    stored = json.loads((tmp_path / "b" / RESULTS_FILE).read_text())
    assert stored == off["results"]
    assert json.loads((tmp_path / "b" / WORKER_FILE).read_text())["pid"] == os.getpid()


def test_nested_results_are_flattened_to_dotted_scalar_keys():
    import numpy as np

    from mosaicnet.sweeps.objectives import scalar_results

    raw = {
        "networks": {"mosaic": {"accuracy_unseen": np.float64(0.6), "tiles": 64}},
        "points": [{"steps": 1, "accuracy": 0.4}, {"steps": 10, "accuracy": float("nan")}],
        "figure": "a.png",
        "blob": object(),  # neither a number nor text: left out
    }
    assert scalar_results(raw) == {
        "networks.mosaic.accuracy_unseen": 0.6,
        "networks.mosaic.tiles": 64,
        "points.0.steps": 1,
        "points.0.accuracy": 0.4,
        "points.1.steps": 10,
        "points.1.accuracy": None,  # not finite
        "figure": "a.png",
    }
    assert len(scalar_results({"long": list(range(5000))}, limit=100)) == 100


def test_busy_knob_spends_cpu_time_not_wall_waiting(tmp_path):
    import time

    cpu = time.thread_time()
    run_trial("synthetic-quadratic", {"optimum": {"x": 0.0}}, {"x": 0.0, "busy_s": 0.2},
              str(tmp_path))  # fmt: skip
    # thread_time counts this thread's CPU only; a sleep would leave it near zero.
    assert time.thread_time() - cpu >= 0.2


def test_each_trial_gets_private_temp_and_build_directories_and_brian_is_reset(tmp_path):
    protocol = tmp_path / "where.py"
    protocol.write_text(
        textwrap.dedent(
            """
            import os, tempfile
            from pathlib import Path

            def run(params, out_dir, quick):
                from brian2 import get_device, set_device
                set_device("cpp_standalone", build_on_run=False)
                scratch = Path(tempfile.mkdtemp(prefix="brian_standalone_"))
                build = os.environ["MOSAICNET_BUILD_DIR"]
                from mosaicnet.network.brian_backends import StandaloneProject
                project = StandaloneProject("cpp_standalone").directory
                return {
                    "tmp": str(scratch.parent),
                    "build": build,
                    "project": str(project),
                    "build_exists": os.path.isdir(build),
                    "device": type(get_device()).__name__,
                    "out_dir": str(out_dir),
                }
            """
        ),
        encoding="utf-8",
    )
    options = {"protocol": str(protocol), "quick": True}
    before_tmp, before_env = tempfile.gettempdir(), os.environ.get(BUILD_DIR_ENV)
    first = run_trial("protocol", options, {}, str(tmp_path / "t1"))["results"]
    second = run_trial("protocol", options, {}, str(tmp_path / "t2"))["results"]
    # Brian2's standalone default (tempfile.mkdtemp) lands inside the trial's own directory.
    assert first["tmp"] == str(tmp_path / "t1" / "tmp")
    assert second["tmp"] == str(tmp_path / "t2" / "tmp")
    assert first["build_exists"] and first["build"] != second["build"]
    # On the RAM disk when it has room, else inside the trial's directory.
    on_ram_disk = Path(first["build"]).parent == RAM_DISK
    assert on_ram_disk or first["build"] == str(tmp_path / "t1" / "build")
    assert first["device"] == "CPPStandaloneDevice"
    # mosaicnet's own standalone projects are built in the trial's build directory.
    assert Path(first["project"]).parent == Path(first["build"]).resolve()
    # The worker's own environment is restored, and Brian2 is back on its runtime device.
    assert tempfile.gettempdir() == before_tmp
    assert os.environ.get(BUILD_DIR_ENV) == before_env
    from brian2 import get_device

    assert type(get_device()).__name__ == "RuntimeDevice"
    # Standalone projects are removed after the trial, and so is a RAM-disk build directory.
    assert not list((tmp_path / "t1" / "tmp").glob("brian_standalone_*"))
    assert not Path(first["project"]).exists()
    if on_ram_disk:
        assert not Path(first["build"]).exists()


def test_build_directories_of_dead_workers_are_removed(tmp_path, monkeypatch):
    import subprocess
    import sys

    from mosaicnet.sweeps import objectives

    monkeypatch.setattr(objectives, "RAM_DISK", tmp_path)
    # A process that has exited stands for a killed worker; this one is alive.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"mosaicnet_sweep_{int(dead.stdout)}_00003_abcd1234"
    live = tmp_path / f"mosaicnet_sweep_{os.getpid()}_00004_abcd1234"
    other = tmp_path / "someone_elses_dir"
    for path in (stale, live, other):
        path.mkdir()
    assert objectives.remove_stale_builds() == 1
    assert not stale.exists() and live.is_dir() and other.is_dir()


def _spec(sampler: str = "random", n_trials: int = 4, retries: int = 1):
    data = {
        "study": {"n_trials": n_trials, "retries": retries, "name": "plan"},
        "target": {"kind": "synthetic-quadratic"},
        "sampler": {"kind": sampler},
        "space": {"x": [0.0, 1.0], "y": [-2.0, 0.0]},
    }
    if sampler == "grid":
        del data["study"]["n_trials"]
    return parse_sweep(data)


def _study(spec):
    """An in-memory study and its storage, as :func:`runner.open_study` returns them."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage, direction=spec.direction, sampler=runner.make_sampler(spec)
    )
    return study, storage


def _ask(study, spec, params, attempt=1, **attrs):
    study.enqueue_trial(params, user_attrs={"attempt": attempt, **attrs})
    return study.ask(spec.distributions())


def test_plan_marks_orphaned_trials_failed_and_retries_them_first():
    spec = _spec()
    study, storage = _study(spec)
    done = _ask(study, spec, {"x": 0.0, "y": -2.0})
    study.tell(done, 5.0)
    orphan = _ask(study, spec, {"x": 1.0, "y": 0.0})  # left RUNNING by a stopped client
    queue, fresh, finished = runner.plan(study, storage, spec, spec.n_trials)
    assert finished == 1
    state = study.get_trials()[orphan.number]
    assert state.state == TrialState.FAIL
    assert state.user_attrs["status"] == runner.ORPHANED and state.user_attrs["final"] is False
    # The orphan is re-run with its parameters, without using up an attempt.
    assert [(w.params, w.attempt, w.retry_of) for w in queue] == [
        ({"x": 1.0, "y": 0.0}, 1, orphan.number)
    ]
    assert fresh == spec.n_trials - 1 - 1


def test_lost_trials_are_retried_until_the_retries_are_used_up():
    spec = _spec(retries=1)
    study, storage = _study(spec)
    lost = _ask(study, spec, {"x": 1.0, "y": 0.0})
    runner._fail(study, lost, runner.LOST, False)
    queue, _, _ = runner.plan(study, storage, spec, spec.n_trials)
    assert [(w.attempt, w.retry_of) for w in queue] == [(2, lost.number)]
    # Once a retry exists, the lost trial is not queued again.
    retry = _ask(study, spec, queue[0].params, attempt=2, retry_of=lost.number)
    study.tell(retry, 1.0)
    queue, fresh, done = runner.plan(study, storage, spec, spec.n_trials)
    assert not queue and done == 1 and fresh == spec.n_trials - 1


class _DeadWorkerFuture:
    """What a dask future looks like after its worker died (``KilledWorker``)."""

    status = "error"

    def exception(self):
        from distributed import KilledWorker

        return KilledWorker("trial-0", "tcp://127.0.0.1:1", 1)


def test_record_retries_a_lost_trial_then_marks_it_failed_for_good(tmp_path):
    spec = _spec(retries=1)
    study, storage = _study(spec)
    outcome = runner.SweepOutcome("plan", "memory", tmp_path, 4, 0, 0, 0, 0, None, None, 0, 0)
    first = _ask(study, spec, {"x": 0.0, "y": 0.0})
    retry = runner._record(study, spec, first, runner.Work(dict(first.params)),
                           _DeadWorkerFuture(), tmp_path, outcome)  # fmt: skip
    assert retry is not None and (retry.attempt, retry.retry_of) == (2, first.number)
    second = _ask(study, spec, retry.params, attempt=2, retry_of=first.number)
    again = runner._record(study, spec, second, retry, _DeadWorkerFuture(), tmp_path, outcome)
    assert again is None
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert trials[0].user_attrs["final"] is False and trials[1].user_attrs["final"] is True
    assert "retries exhausted" in trials[1].user_attrs["error"]


def test_grid_plan_runs_only_grid_points_without_a_finished_trial():
    spec = _spec(sampler="grid")
    study, storage = _study(spec)
    queue, fresh, done = runner.plan(study, storage, spec, spec.n_trials)
    assert (len(queue), fresh, done) == (4, 0, 0)
    finished = _ask(study, spec, queue[0].params)
    study.tell(finished, 1.0)
    failed = _ask(study, spec, queue[1].params)  # a trial whose own code raised: final
    runner._fail(study, failed, runner.ERROR, True)
    queue2, _, done = runner.plan(study, storage, spec, spec.n_trials)
    assert done == 2
    assert [w.params for w in queue2] == [w.params for w in list(queue)[2:]]


def test_report_ranks_the_parameter_the_objective_depends_on(tmp_path):
    from mosaicnet.sweeps.report import write_report

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", -3.0, 3.0)
        trial.suggest_float("y", -3.0, 3.0)  # irrelevant to the objective
        return (x - 1.0) ** 2

    study.optimize(objective, n_trials=24)
    report = write_report(study, tmp_path, objective="loss")
    importances = report["importances"]
    assert set(importances) == {"x", "y"}
    assert sum(importances.values()) == pytest.approx(1.0)
    # y carries no signal; with 24 trials fANOVA still attributes some variance to it
    # by chance, but x must dominate clearly (the seeded forest gives x > 0.9).
    assert importances["x"] > 0.8
    for name in ("optimization_history", "param_importances", "slice", "contour"):
        assert Path(report["plots"][name]).stat().st_size > 1000
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 25 and rows[0].startswith("number,state,value,x,y")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["by_state"] == {"COMPLETE": 24}
    assert summary["best"]["value"] == pytest.approx(study.best_value)


def test_a_second_client_is_refused_while_the_first_is_alive(tmp_path):
    from mosaicnet.errors import RunDirectoryError

    spec = _spec()
    study, _ = runner.open_study(spec, f"sqlite:///{tmp_path / 'study.db'}")
    record = runner._client_record()
    # Another live process on this host (our parent) holds the study ...
    import psutil

    parent = psutil.Process(os.getppid())
    study.set_user_attr(
        "client", {**record, "pid": parent.pid, "create_time": parent.create_time()}
    )
    with pytest.raises(RunDirectoryError, match="being run by another `mosaicnet sweep`"):
        runner._claim_study(study)
    # ... but a record left by a process that has exited does not block a resume.
    study.set_user_attr("client", {**record, "pid": parent.pid, "create_time": 1.0})
    assert runner._claim_study(study)["pid"] == os.getpid()


def test_reopening_a_study_with_a_changed_sweep_is_refused(tmp_path):
    from mosaicnet.errors import ConfigError

    url = f"sqlite:///{tmp_path / 'study.db'}"
    runner.open_study(_spec(), url)
    runner.open_study(_spec(n_trials=9, retries=3), url)  # sizes may change on resume
    changed = parse_sweep(
        {
            "study": {"n_trials": 4, "name": "plan"},
            "target": {"kind": "synthetic-quadratic"},
            "sampler": {"kind": "random"},
            "space": {"x": [0.0, 1.0, 2.0], "y": [-2.0, 0.0]},
        }
    )
    with pytest.raises(ConfigError, match="created from a different sweep.*space"):
        runner.open_study(changed, url)


def test_a_one_point_grid_is_recorded_and_then_done():
    # Optuna's GridSampler failed in tell() on enqueued trials once one point was left.
    spec = parse_sweep(
        {
            "study": {"name": "one"},
            "target": {"kind": "synthetic-quadratic"},
            "sampler": {"kind": "grid"},
            "space": {"x": [1.0], "y": [-2.0]},
        }
    )
    study, storage = _study(spec)
    (work,), fresh, done = runner.plan(study, storage, spec, spec.n_trials)
    assert (fresh, done) == (0, 0)
    study.tell(_ask(study, spec, work.params), 0.0)
    queue, fresh, done = runner.plan(study, storage, spec, spec.n_trials)
    assert (list(queue), fresh, done) == ([], 0, 1)


def test_targets_outside_the_package_are_registered_and_unknown_kinds_say_how():
    from mosaicnet.errors import ConfigError
    from mosaicnet.sweeps.objectives import get_target, register_target

    assert isinstance(get_target("synthetic-quadratic"), sweep_targets.SyntheticQuadratic)
    with pytest.raises(ConfigError, match="unknown target kind 'cubic'.*register_target"):
        get_target("cubic")
    with pytest.raises(ConfigError, match="SweepTarget instance"):
        register_target(sweep_targets.SyntheticQuadratic)  # the class, not an instance
