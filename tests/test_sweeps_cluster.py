"""Sweeps on real Dask clusters of worker processes: completion, resume, killed workers.

Trials use the diagnostic ``synthetic-quadratic`` target (known optimum, a sleep
to keep them running long enough to be killed), so the machinery is tested
without training; ``test_real_train_evaluate_sweep`` (slow) runs the real target.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="the dist extra (optuna) is not installed")
pytest.importorskip("distributed", reason="the dist extra (dask.distributed) is not installed")

import optuna  # noqa: E402
import sweep_targets  # noqa: E402, F401  (registers synthetic-quadratic)
from optuna.trial import TrialState  # noqa: E402

from mosaicnet.cli import main  # noqa: E402
from mosaicnet.sweeps.objectives import WORKER_FILE  # noqa: E402
from mosaicnet.sweeps.runner import LOST, run_sweep  # noqa: E402
from mosaicnet.sweeps.sweep_file import load_sweep  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def quadratic_sweep(path: Path, *, n_trials: int, sleep_s: float, extra: str = "") -> Path:
    path.write_text(
        f"""
[study]
n_trials = {n_trials}
retries = 1
[target]
kind = "synthetic-quadratic"
[sampler]
kind = "random"
seed = 7
[params]
sleep_s = {sleep_s}
[space]
x = {{ low = -3.0, high = 3.0 }}
y = {{ low = -3.0, high = 3.0 }}
{extra}
""",
        encoding="utf-8",
    )
    return path


def load_trials(out_dir: Path, name: str):
    """The study as anyone would read it: with Optuna's own API from the SQLite file."""
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{out_dir / 'study.db'}")
    return study.get_trials()


def quadratic(params: dict) -> float:
    return (params["x"] - 1.0) ** 2 + (params["y"] + 2.0) ** 2


@pytest.fixture(scope="module")
def cluster():
    """A 2-process LocalCluster configured as `mosaicnet sweep` configures its own."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        local = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )  # fmt: skip
    yield local
    local.close()


def test_four_trials_on_two_worker_processes_then_resume_then_extend(tmp_path, capsys, cluster):
    sweep = quadratic_sweep(tmp_path / "quad.toml", n_trials=4, sleep_s=0.3)
    out = tmp_path / "quad_sweep"
    command = ["sweep", str(sweep), "--workers", "2", "--no-report", "--quiet", "--json"]
    assert main(command) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["complete"] == 4 and first["started"] == 4 and first["failed"] == 0
    trials = load_trials(out, "quad")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for trial in trials:
        assert trial.value == pytest.approx(quadratic(trial.params))
        assert trial.user_attrs["results"]["loss"] == trial.value
    # Two worker processes, neither of them this one, shared the trials.
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids

    # The same command again resumes: nothing left to run, nothing started over.
    assert main(command) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["started"] == 0 and again["complete"] == 4
    assert [(t.number, t.value) for t in load_trials(out, "quad")] == [
        (t.number, t.value) for t in trials
    ]

    # Asking for more trials extends the study; the first four are kept as they were.
    # (On the already running test cluster: `--scheduler` instead of a new LocalCluster.)
    assert main([*command, "--n-trials", "6", "--scheduler", cluster.scheduler_address]) == 0
    extended = json.loads(capsys.readouterr().out)
    assert extended["started"] == 2 and extended["complete"] == 6
    now = load_trials(out, "quad")
    assert [(t.number, t.value, t.params) for t in now[:4]] == [
        (t.number, t.value, t.params) for t in trials
    ]


def test_killing_a_worker_mid_trial_loses_only_that_trial_which_is_retried(tmp_path, cluster):
    spec = load_sweep(quadratic_sweep(tmp_path / "kill.toml", n_trials=4, sleep_s=2.5))
    result: dict = {}

    def sweep() -> None:
        result["outcome"] = run_sweep(
            spec, scheduler=cluster.scheduler_address, progress=False, report=False
        )

    thread = threading.Thread(target=sweep)
    thread.start()
    marker = spec.out_dir / "trials" / "00000" / WORKER_FILE
    deadline = time.monotonic() + 60
    while not marker.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.is_file(), "the first trial never started"
    time.sleep(0.3)  # well inside the 2.5 s trial
    victim = json.loads(marker.read_text())["pid"]
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()

    outcome = result["outcome"]
    assert outcome.complete == 4 and outcome.failed == 0 and outcome.retried == 1
    trials = load_trials(spec.out_dir, "kill")
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].number == 0
    assert lost[0].user_attrs["status"] == LOST and lost[0].user_attrs["final"] is False
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].params == lost[0].params and retry[0].user_attrs["attempt"] == 2
    # Every other trial finished normally, with the right value, exactly once.
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4 and len(trials) == 5
    for trial in complete:
        assert math.isclose(trial.value, quadratic(trial.params))


def test_a_trial_that_raises_fails_without_retry_and_the_cli_says_so(tmp_path, cluster, capsys):
    sweep = tmp_path / "err.toml"
    sweep.write_text(
        """
[study]
retries = 3
[target]
kind = "synthetic-quadratic"
optimum = { x = 0.0 }
[sampler]
kind = "grid"
[space]
x = [0.5]
raise_error = [false, true]
""",
        encoding="utf-8",
    )
    code = main(["sweep", str(sweep), "--scheduler", cluster.scheduler_address, "--quiet",
                 "--no-report"])  # fmt: skip
    assert code == 1
    assert "1 complete, 1 failed" in capsys.readouterr().out
    trials = load_trials(tmp_path / "err_sweep", "err")
    assert len(trials) == 2  # the failing grid point is not retried: it would fail again
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].params["raise_error"] is True
    assert failed[0].user_attrs["status"] == "error"
    assert "raise_error was set" in failed[0].user_attrs["error"]
    traceback_file = Path(failed[0].user_attrs["trial_dir"]) / "error.txt"
    assert "Traceback" in traceback_file.read_text()


def test_a_wrong_objective_stops_the_sweep_and_leaves_running_trials_retryable(
    tmp_path, cluster, capsys
):
    sweep = quadratic_sweep(tmp_path / "obj.toml", n_trials=4, sleep_s=0.5, extra="")
    text = sweep.read_text().replace("retries = 1", 'retries = 1\nobjective = "los"')
    sweep.write_text(text.replace("[study]", '[study]\ndirection = "minimize"'))
    code = main(["sweep", str(sweep), "--scheduler", cluster.scheduler_address, "--quiet",
                 "--no-report"])  # fmt: skip
    assert code == 2
    assert "objective 'los' is not among the results" in capsys.readouterr().err
    trials = load_trials(tmp_path / "obj_sweep", "obj")
    # No trial is left RUNNING: the one that finished is failed for good (its results
    # lack the objective), the others in flight are marked for re-running.
    assert all(t.state == TrialState.FAIL for t in trials)
    statuses = sorted(t.user_attrs["status"] for t in trials)
    assert statuses[0] == "error" and set(statuses[1:]) == {"interrupted"}
    assert all(t.user_attrs["final"] is False for t in trials if t.user_attrs["status"] != "error")


@pytest.mark.slow  # the workers import Brian2 first (5-25 s here, by machine load)
def test_protocol_sweep_runs_the_script_on_the_workers(tmp_path, cluster):
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "decay.py").write_text(
        """
import json
import math
import os

PARAMETERS = {"read_time_s": 1.0, "nu": 0.05}


def run(params, out_dir, quick):
    accuracy = 0.9 * (1.0 + params["read_time_s"]) ** (-params["nu"])
    (out_dir / "protocol.json").write_text(json.dumps({"quick": quick, "pid": os.getpid()}))
    return {"accuracy": accuracy, "curve": [accuracy] * 3}
""",
        encoding="utf-8",
    )
    sweep = tmp_path / "decay.toml"
    sweep.write_text(
        """
[study]
objective = "accuracy"
[target]
kind = "protocol"
protocol = "decay"
quick = true
[sampler]
kind = "grid"
[params]
nu = 0.05
[space]
read_time_s = [1.0, 1000.0]
""",
        encoding="utf-8",
    )
    outcome = run_sweep(
        load_sweep(sweep), scheduler=cluster.scheduler_address, progress=False, report=False
    )
    assert outcome.complete == 2
    trials = load_trials(tmp_path / "decay_sweep", "decay")
    for trial in trials:
        expected = 0.9 * (1.0 + trial.params["read_time_s"]) ** -0.05
        assert trial.value == pytest.approx(expected)
        # Nested results are flattened to dotted keys.
        assert trial.user_attrs["results"]["curve.2"] == pytest.approx(expected)
        written = json.loads((Path(trial.user_attrs["trial_dir"]) / "protocol.json").read_text())
        assert written["quick"] is True and written["pid"] != os.getpid()
    assert outcome.best_params == {"read_time_s": 1.0}  # maximised: less drift is better


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from mosaicnet.sweeps import runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT_S", 1.0)
    sweep = quadratic_sweep(tmp_path / "q.toml", n_trials=1, sleep_s=0.0)
    # Port 9 (discard) on the loopback address: nothing listens there.
    code = main(["sweep", str(sweep), "--scheduler", "tcp://127.0.0.1:9", "--quiet"])
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.slow
def test_real_train_evaluate_sweep(tmp_path):
    from mosaicnet.data import write_synthetic_shd

    write_synthetic_shd(tmp_path / "data", n_train=60, n_test=60)
    sweep = tmp_path / "lr.toml"
    sweep.write_text(
        """
[study]
objective = "accuracy_unseen"
[target]
kind = "train+evaluate"
data = "data"
[sampler]
kind = "grid"
[params]
rows = 1
cols = 2
neurons_per_tile = 2
n_bins = 10
iterations = 2
meta_batch = 2
checkpoint_every = 1
n_way = 2
k_shot = 1
n_query = 1
eval_tasks = 2
[space]
inner_lr = [0.5, 2.0]
""",
        encoding="utf-8",
    )
    outcome = run_sweep(load_sweep(sweep), workers=2, progress=False)
    assert outcome.complete == 2 and outcome.failed == 0
    trials = load_trials(tmp_path / "lr_sweep", "lr")
    for trial in trials:
        run = Path(trial.user_attrs["trial_dir"]) / "run"
        config = json.loads((run / "config.json").read_text())
        assert config["inner_lr"] == trial.params["inner_lr"] and config["iterations"] == 2
        evaluation = json.loads((run.parent / "evaluation.json").read_text())
        assert trial.value == evaluation["accuracy_unseen"]
        assert 0.0 <= trial.value <= 1.0
        assert trial.user_attrs["results"]["train_iteration"] == 2
    assert Path(outcome.report["files"]["trials"]).is_file()


@pytest.mark.slow
def test_real_protocol_sweep(tmp_path):
    """The repository's inner_steps protocol as a sweep target, one tiny trial."""
    from mosaicnet.data import write_synthetic_shd

    protocol = Path(__file__).resolve().parents[1] / "protocols" / "inner_steps.py"
    if not protocol.is_file():
        pytest.skip("protocols/inner_steps.py is not in this checkout")
    write_synthetic_shd(tmp_path / "data", n_train=60, n_test=60)
    sweep = tmp_path / "steps.json"
    sweep.write_text(
        json.dumps(
            {
                "study": {"objective": "points.0.evaluation.accuracy_unseen"},
                "target": {
                    "kind": "protocol",
                    "protocol": str(protocol),
                    "quick": True,
                    "data": "data",
                },  # fmt: skip
                "sampler": {"kind": "grid"},
                "params": {
                    "INNER_STEPS": [1],
                    "ITERATIONS": 1,
                    "META_BATCH": 2,
                    "MOSAIC_ROWS": 2,
                    "MOSAIC_COLS": 2,
                    "EVAL_TASKS": 2,
                    "N_WAY": 2,
                    "K_SHOT": 1,
                    "N_QUERY": 1,
                },
                "space": {"SEED": [0]},
            }
        ),
        encoding="utf-8",
    )
    outcome = run_sweep(load_sweep(sweep), workers=1, progress=False, report=False)
    assert outcome.complete == 1 and outcome.failed == 0
    (trial,) = load_trials(tmp_path / "steps_sweep", "steps")
    stored = json.loads((Path(trial.user_attrs["trial_dir"]) / "results.json").read_text())
    # The protocol's own results file is intact, and the objective was read from it.
    assert stored["protocol"] == "inner_steps" and stored["data"] == str(tmp_path / "data")
    assert trial.value == stored["points"][0]["evaluation"]["accuracy_unseen"]
