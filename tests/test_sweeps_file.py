"""Sweep files: parsing, search spaces, and clear errors for bad files (no cluster needed)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="the dist extra (optuna) is not installed")

import sweep_targets  # noqa: E402, F401  (registers synthetic-quadratic)

from mosaicnet.cli import main  # noqa: E402
from mosaicnet.errors import ConfigError  # noqa: E402
from mosaicnet.sweeps.sweep_file import load_sweep, parse_sweep, storage_url  # noqa: E402


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


QUADRATIC = """
    [study]
    n_trials = 4
    [target]
    kind = "synthetic-quadratic"
    [sampler]
    kind = "random"
    seed = 3
    [params]
    sleep_s = 0.0
    [space]
    x = { low = -3.0, high = 3.0 }
    y = { values = [-2, 0, 2] }
"""


def test_toml_file_is_read_with_paths_relative_to_the_file(tmp_path):
    spec = load_sweep(write(tmp_path / "quad.toml", QUADRATIC))
    assert spec.name == "quad"  # the file's stem
    assert spec.target.kind == "synthetic-quadratic"
    assert spec.objective == "loss" and spec.direction == "minimize"
    assert spec.n_trials == 4 and spec.retries == 1
    assert spec.sampler == "random" and spec.sampler_seed == 3
    assert spec.fixed == {"sleep_s": 0.0}
    assert spec.parameter_names == ["x", "y"]
    assert spec.out_dir == (tmp_path / "quad_sweep").resolve()
    x, y = spec.space
    assert (x.kind, x.low, x.high, x.log) == ("float", -3.0, 3.0, False)
    assert (y.kind, y.values) == ("int", (-2, 0, 2))


def test_json_file_with_the_same_structure(tmp_path):
    data = {
        "study": {"n_trials": 2, "name": "j"},
        "target": {"kind": "synthetic-quadratic", "optimum": {"a": 0.5}},
        "space": {"a": {"low": 0.0, "high": 1.0}},
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    spec = load_sweep(path)
    assert spec.name == "j" and spec.target.options == {"optimum": {"a": 0.5}}
    assert spec.sampler == "tpe"  # the default sampler


def test_distributions_keep_lists_categorical_except_on_a_grid():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    base = {
        "target": {"kind": "synthetic-quadratic"},
        "study": {"n_trials": 3},
        "space": {
            "x": {"values": [1.0, 2.0, 4.0], "log": True},
            "y": {"low": 1, "high": 9, "step": 2},
        },
    }
    tpe = parse_sweep(base)
    dists = tpe.distributions()
    # A sampler must propose only listed values, so a list stays categorical.
    assert isinstance(dists["x"], CategoricalDistribution)
    assert dists["y"] == IntDistribution(1, 9, step=2)
    grid = parse_sweep({**base, "sampler": {"kind": "grid"}, "study": {}})
    dists = grid.distributions()
    # On a grid the distribution only records where points lie: ordered numbers.
    assert dists["x"] == FloatDistribution(1.0, 4.0, log=True)
    assert dists["y"] == IntDistribution(1, 9)
    assert grid.n_trials == 3 * 5  # default: every grid point once
    points = grid.grid()
    assert len(points) == 15 and len({json.dumps(p, sort_keys=True) for p in points}) == 15
    assert {p["y"] for p in points} == {1, 3, 5, 7, 9}


def test_float_grid_with_step_includes_the_upper_end():
    spec = parse_sweep(
        {
            "target": {"kind": "synthetic-quadratic"},
            "sampler": {"kind": "grid"},
            "space": {"x": {"low": 0.0, "high": 0.3, "step": 0.1}, "y": [0.0]},
        }
    )
    assert [round(p["x"], 12) for p in spec.grid()] == [0.0, 0.1, 0.2, 0.3]


def test_plain_storage_path_becomes_an_sqlite_url_relative_to_the_file(tmp_path):
    text = QUADRATIC.replace("n_trials = 4", 'n_trials = 4\nstorage = "db/s.db"')
    spec = load_sweep(write(tmp_path / "s.toml", text))
    assert spec.storage == f"sqlite:///{(tmp_path / 'db' / 's.db').resolve()}"
    assert storage_url("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"space": {"x": [1.0], "y": [2.0], "z": [3.0]}}, "unknown parameter(s) ['z']"),
        ({"params": {"speed": 1}}, "unknown parameter(s) ['speed'] in [params]"),
        ({"space": {}}, "search space is empty"),
        ({"target": {"kind": "train+evaluate+fly"}}, "unknown target kind 'train+evaluate+fly'"),
        ({"target": {}}, "[target] needs `kind`"),
        ({"study": {"n_trial": 3}}, "unknown key(s) ['n_trial'] in [study]"),
        ({"sampler": {"kind": "annealing"}}, "'annealing' is not one of"),
        ({"space": {"x": {"low": 2.0, "high": 1.0}, "y": [0]}}, "the range is empty"),
        ({"space": {"x": {"low": 0.0, "high": 1.0, "log": True}, "y": [0]}}, "needs low > 0"),
        ({"space": {"x": {"values": []}, "y": [0]}}, "non-empty list"),
        ({"space": {"x": [1.0], "y": [0]}, "params": {"x": 2.0}}, "both fixed"),
        ({"space": {"x": [1.0]}}, "needs parameter(s) ['y']"),
        ({"study": {"n_trials": 0}}, "n_trials must be an integer >= 1"),
        ({"study": {}}, "needs n_trials"),
        ({"study": {"direction": "up", "n_trials": 2}}, "direction must be one of"),
    ],
)
def test_bad_sweep_files_raise_config_errors_that_name_the_problem(change, message):
    data = {
        "study": {"n_trials": 2},
        "target": {"kind": "synthetic-quadratic"},
        "sampler": {"kind": "random"},
        "space": {"x": {"low": -1.0, "high": 1.0}, "y": [0.0, 1.0]},
    }
    data.update(change)
    with pytest.raises(ConfigError) as info:
        parse_sweep(data, source="bad.toml")
    assert message in str(info.value)
    assert "bad.toml" in str(info.value)


def test_grid_smaller_than_n_trials_and_grid_without_steps_are_rejected():
    base = {"target": {"kind": "synthetic-quadratic"}, "sampler": {"kind": "grid"}}
    with pytest.raises(ConfigError, match="exceeds the grid's 2 points"):
        parse_sweep({**base, "study": {"n_trials": 3}, "space": {"x": [0.0, 1.0], "y": [0.0]}})
    with pytest.raises(ConfigError, match="needs a list of values or a range with a step"):
        parse_sweep({**base, "space": {"x": {"low": 0.0, "high": 1.0}, "y": [0.0]}})


def test_train_evaluate_parameters_are_checked_against_train_config(tmp_path):
    base = {"study": {"n_trials": 2}, "target": {"kind": "train+evaluate"}}
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['inner_lrr'\]"):
        parse_sweep({**base, "space": {"inner_lrr": {"low": 0.1, "high": 1.0}}})
    # A value TrainConfig rejects fails before any trial runs, naming the dimension.
    with pytest.raises(ConfigError, match=r"space.layout = 'hex'.*layout must be one of"):
        parse_sweep({**base, "space": {"layout": ["mosaic", "hex"]}})
    with pytest.raises(ConfigError, match="does not exist"):
        parse_sweep({**base, "target": {**base["target"], "config": "missing.json"}, "space": {
            "inner_lr": [0.5]}}, base_dir=tmp_path)  # fmt: skip
    spec = parse_sweep(
        {
            **base,
            "params": {"iterations": 3, "eval_tasks": 4},
            "space": {"inner_lr": {"low": 0.01, "high": 10.0, "log": True}},
        }
    )
    assert spec.objective == "accuracy_unseen" and spec.direction == "maximize"


def test_protocol_targets_are_found_by_name_and_checked(tmp_path):
    protocols = tmp_path / "protocols"
    protocols.mkdir()
    write(
        protocols / "drift_accuracy.py",
        """
        PARAMETERS = {"read_time_s": 1.0, "seed": 0}

        def run(params, out_dir, quick):
            return {"accuracy": 1.0 / (1.0 + params["read_time_s"])}
        """,
    )
    write(protocols / "no_entry.py", "X = 1\n")
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    base = {
        "study": {"n_trials": 2, "objective": "accuracy"},
        "space": {"read_time_s": {"low": 1.0, "high": 1e4, "log": True}},
    }
    # Found in protocols/ of a parent of the sweep file's directory.
    spec = parse_sweep(
        {**base, "target": {"kind": "protocol", "protocol": "drift_accuracy", "quick": True}},
        base_dir=sweeps,
    )
    assert spec.target.options == {
        "protocol": str((protocols / "drift_accuracy.py").resolve()),
        "quick": True,
        "data": None,
    }
    assert spec.direction == "maximize"
    # A misspelt name: the message lists the scripts found (here and in ./protocols).
    with pytest.raises(ConfigError, match=r"unknown protocol 'drift_acuracy'.*drift_accuracy"):
        parse_sweep(
            {**base, "target": {"kind": "protocol", "protocol": "drift_acuracy"}}, base_dir=sweeps
        )
    with pytest.raises(ConfigError, match="has no function run"):
        parse_sweep(
            {**base, "target": {"kind": "protocol", "protocol": "no_entry"}}, base_dir=sweeps
        )
    # `data` only for a run() that takes it (this one does not).
    with pytest.raises(ConfigError, match="takes no `data` argument"):
        parse_sweep(
            {**base, "target": {"kind": "protocol", "protocol": "drift_accuracy", "data": "."}},
            base_dir=sweeps,
        )
    bad = {**base, "space": {"read_time": [1.0, 2.0]}}
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['read_time'\]"):
        parse_sweep({**bad, "target": {"kind": "protocol", "protocol": "drift_accuracy"}},
                    base_dir=sweeps)  # fmt: skip


def test_cli_reports_a_bad_sweep_file_as_one_line_and_exit_2(tmp_path, capsys):
    path = write(tmp_path / "bad.toml", QUADRATIC.replace("y = {", "velocity = {"))
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) ['velocity']" in err and str(path) in err
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write(tmp_path / "broken.toml", "[study\n")
    assert main(["sweep", str(tmp_path / "broken.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_cli_names_the_missing_extra_when_optuna_is_absent(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a)
    )
    path = write(tmp_path / "quad.toml", QUADRATIC)
    assert main(["sweep", str(path)]) == 2
    assert "pip install 'mosaicnet[dist]'" in capsys.readouterr().err
