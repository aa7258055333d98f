"""Protocol scripts: the flagship's smoke run end to end, output-directory rules, helpers.

The flagship (``protocols/fewshot_mosaic_vs_fc.py``) runs in its ``--smoke`` setting
(two tiny networks, two outer steps, two tasks per kind, Brian2 numpy backend) on
the synthetic default data; the ``--quick`` runs of every protocol are marked
slow (minutes each).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mosaicnet.errors import ConfigError, RunDirectoryError

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ROOT / "protocols"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_protocol(name: str):
    """Import ``protocols/<name>.py`` as a module (the scripts are not a package)."""
    key = f"protocol_under_test_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, PROTOCOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def default_data(tmp_path_factory) -> Path:
    """The synthetic default data (generated once for this module, as a user gets it)."""
    from mosaicnet.data import ensure_synthetic_shd

    path = tmp_path_factory.mktemp("data")
    ensure_synthetic_shd(path)
    return path


@pytest.fixture(scope="module")
def flagship_smoke(tmp_path_factory, default_data):
    """One smoke run of the flagship through its command line; (out dir, exit code, stdout)."""
    out = tmp_path_factory.mktemp("flagship") / "out"
    module = load_protocol("fewshot_mosaic_vs_fc")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = module.main(
            ["--smoke", "--data", str(default_data), "--out", str(out), "--no-progress"]
        )
    return out, code, printed.getvalue()


def check_accuracy_summary(summary: dict, tasks: int) -> None:
    for kind in ("seen", "unseen"):
        accuracy = summary[f"accuracy_{kind}"]
        assert 0.0 <= accuracy <= 1.0
        assert summary[f"tasks_{kind}"] == tasks
        # Half-width of a 95 % CI of a mean of values in [0, 1] over n tasks is at
        # most 1.96 * 0.5 * sqrt(n / (n - 1)) / sqrt(n) (maximal sample std).
        half = summary[f"ci95_{kind}"]
        bound = 1.96 * 0.5 * math.sqrt(tasks / (tasks - 1)) / math.sqrt(tasks)
        assert half is None or 0.0 <= half <= bound + 1e-12


def test_flagship_smoke_writes_documented_results(flagship_smoke, default_data):
    out, code, _ = flagship_smoke
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    for key in ("protocol", "question", "setting", "parameters", "data", "networks",
                "fc_on_mosaic", "figures", "timing_s"):  # fmt: skip
        assert key in results, key
    assert results["setting"] == "smoke"
    assert results["data"] == str(default_data)
    tasks = results["parameters"]["EVAL_TASKS"]
    for name in ("mosaic", "fc"):
        net = results["networks"][name]
        assert net["brian2"]["backend"].startswith("brian2")
        check_accuracy_summary(net["brian2"], tasks)
        check_accuracy_summary(net["torch"], tasks)
        assert Path(out / net["run"] / "config.json").is_file()
    # The smoke setting: a 2 x 2 x 4 Mosaic and 8 dense neurons.
    assert results["networks"]["mosaic"]["hardware"]["neurons"] == 16
    assert results["networks"]["fc"]["hardware"]["neurons"] == 8


def test_flagship_smoke_ran_with_the_parameters_it_records(flagship_smoke):
    """results.json's parameters are what the runs were trained and evaluated with."""
    from mosaicnet.protocols_support.parameters import json_value

    out, _, _ = flagship_smoke
    module = load_protocol("fewshot_mosaic_vs_fc")
    results = json.loads((out / "results.json").read_text())
    p = results["parameters"]
    # The script's constants with exactly the smoke changes, quantities as Brian2 text.
    assert p == {
        name: json_value(module.SMOKE.get(name, v)) for name, v in module.PARAMETERS.items()
    }
    assert p["READ_TIME"] == "1.0 * second" and p["BACKEND"] == "numpy"
    for name in ("mosaic", "fc"):
        net = results["networks"][name]
        config = json.loads((out / net["run"] / "config.json").read_text())
        assert config["layout"] == name
        assert (config["iterations"], config["meta_batch"]) == (p["ITERATIONS"], p["META_BATCH"])
        assert (config["n_way"], config["k_shot"]) == (p["N_WAY"], p["K_SHOT"])
        assert config["neuron_model"] == p["NEURON_MODEL"]
        assert net["final_training"]["iteration"] == p["ITERATIONS"]  # trained to the end
        assert net["brian2"]["backend"] == "brian2-numpy"
        assert net["brian2"]["read_time_s"] == 1.0
        assert net["torch"]["tasks_seen"] == net["brian2"]["tasks_seen"] == p["EVAL_TASKS"]
    # The manifest names the protocol by its file name and records the setting.
    manifest = json.loads((out / "protocol.json").read_text())
    assert manifest["protocol"] == results["protocol"] == "fewshot_mosaic_vs_fc"
    assert manifest["parameters"] == {**p, "setting": "smoke"}


def test_flagship_smoke_shows_and_records_what_the_setting_replaced(flagship_smoke):
    out, _, printed = flagship_smoke
    module = load_protocol("fewshot_mosaic_vs_fc")
    results = json.loads((out / "results.json").read_text())
    replaced = {change["name"]: change for change in results["replaced_by_setting"]}
    changed = {n for n, v in module.SMOKE.items() if v != module.PARAMETERS[n]}
    assert set(replaced) == changed and "ITERATIONS" in changed
    assert replaced["ITERATIONS"] == {
        "name": "ITERATIONS",
        "script": module.ITERATIONS,
        "smoke": module.SMOKE["ITERATIONS"],
    }
    assert replaced["BACKEND"] == {"name": "BACKEND", "script": "cython", "smoke": "numpy"}
    assert "--smoke replaces ITERATIONS = 1000 of the script with 2" in printed
    # The table and where the results are are printed too.
    assert (out / "results.md").read_text().strip() in printed
    assert str(out / "results.json") in printed


def test_flagship_hardware_costs_match_the_trained_weights(flagship_smoke):
    from mosaicnet.network.spec import NetworkSpec

    out, _, _ = flagship_smoke
    results = json.loads((out / "results.json").read_text())
    for name in ("mosaic", "fc"):
        hardware = results["networks"][name]["hardware"]
        spec = NetworkSpec.load(out / "runs" / name / "spec.npz")
        nonzero = sum(int(np.count_nonzero(w)) for w in (spec.w_in, spec.w_rec, spec.w_out))
        assert hardware["memristors"] == 2 * nonzero  # one differential pair per weight
        assert hardware["recurrent_synapses"] == int(np.count_nonzero(spec.w_rec))
        split = ("synapses_intra_tile", "synapses_one_hop", "synapses_multi_hop")
        assert sum(hardware[k] for k in split) == hardware["recurrent_synapses"]
    # The dense baseline sits in one crossbar: no routing at all.
    fc = results["networks"]["fc"]["hardware"]
    assert fc["synapses_one_hop"] == fc["synapses_multi_hop"] == 0
    assert fc["hops_per_spike"] in (0.0, None)
    # On 2 x 2 tiles, a dense network has synapses leaving every tile.
    mosaic = results["networks"]["mosaic"]["hardware"]
    assert mosaic["synapses_one_hop"] + mosaic["synapses_multi_hop"] > 0
    # Energy per inference: counts on the layout and on one crossbar; no routing on the
    # crossbar, and terms without a published figure are left out and named.
    for name in ("mosaic", "fc"):
        energy = results["networks"][name]["energy"]
        assert energy["one_crossbar"]["counts"]["routing_hops"] == 0
        for placement in energy.values():
            counts = placement["counts"]
            assert counts["device_reads"] == 2 * counts["synaptic_events"]
            assert placement["energy_total_J"] is None
            assert "energy_per_device_read_J" in placement["missing"]
    assert results["networks"]["fc"]["energy"]["layout"]["counts"]["routing_hops"] == 0
    assert "energy / inference (J)" in (out / "results.md").read_text()


def test_flagship_figures_and_table_are_written(flagship_smoke):
    out, _, _ = flagship_smoke
    results = json.loads((out / "results.json").read_text())
    expected = {"accuracy", "layout", "raster_mosaic", "raster_fc", "training"}
    assert set(results["figures"]) == expected
    for relative in results["figures"].values():
        path = out / relative
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert path.stat().st_size > 5_000  # a drawn figure, not an empty canvas
    table = (out / "results.md").read_text()
    mosaic = results["networks"]["mosaic"]["brian2"]
    from mosaicnet.protocols_support.reporting import percent_ci

    assert percent_ci(mosaic["accuracy_seen"], mosaic["ci95_seen"]) in table
    assert "| Mosaic 16 |" in table and "| FC 8 |" in table


def test_flagship_refuses_existing_results_and_resumes_runs(flagship_smoke, default_data, capsys):
    out, _, _ = flagship_smoke
    module = load_protocol("fewshot_mosaic_vs_fc")
    argv = ["--smoke", "--data", str(default_data), "--out", str(out), "--no-progress"]
    before = (out / "results.json").read_text()
    assert module.main(argv) == 2
    assert "already holds results" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before

    # An interrupted protocol (no results.json yet) resumes: the finished runs and
    # their cached evaluations are reused, not recomputed.
    checkpoint = out / "runs" / "mosaic" / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    (out / "results.json").unlink()
    assert module.main(argv) == 0
    assert checkpoint.stat().st_mtime_ns == stamp
    again = json.loads((out / "results.json").read_text())
    assert (
        again["networks"]["mosaic"]["brian2"] == json.loads(before)["networks"]["mosaic"]["brian2"]
    )

    # Other settings on an unfinished run are refused, not mixed in.
    (out / "results.json").unlink()
    assert module.main([*argv, "--set", "ITERATIONS=3"]) == 2
    assert "ITERATIONS: 2 -> 3" in capsys.readouterr().err


def test_a_copied_script_gets_its_own_results_folder(
    flagship_smoke, default_data, tmp_path, monkeypatch
):
    """A copy of the flagship saved under another name writes results/<its name>: it neither
    resumes nor refuses because of the original's results in the same working directory."""
    monkeypatch.chdir(tmp_path)
    original = tmp_path / "results" / "fewshot_mosaic_vs_fc"
    shutil.copytree(flagship_smoke[0], original)  # a finished run of the original
    before = {path: path.read_bytes() for path in original.rglob("*") if path.is_file()}
    copy = tmp_path / "my_fewshot.py"
    shutil.copy(PROTOCOLS / "fewshot_mosaic_vs_fc.py", copy)
    spec = importlib.util.spec_from_file_location("copied_protocol_under_test", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.main(["--smoke", "--data", str(default_data), "--no-progress"]) == 0
    out = tmp_path / "results" / "my_fewshot"
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "my_fewshot"
    assert json.loads((out / "protocol.json").read_text())["protocol"] == "my_fewshot"
    assert (out / "runs" / "mosaic" / "config.json").is_file()
    after = {path: path.read_bytes() for path in original.rglob("*") if path.is_file()}
    assert after == before


def test_flagship_rejects_unknown_parameter(tmp_path, capsys):
    module = load_protocol("fewshot_mosaic_vs_fc")
    code = module.main(["--smoke", "--out", str(tmp_path / "o"), "--set", "ITERATONS=3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown protocol parameter 'ITERATONS'" in err and "ITERATIONS" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "assignment, match",
    [
        ("ITERATIONS=-1", "iterations must be an integer >= 1"),
        ("READ_TIME=-1*second", "negative"),
        ("READ_TIME=2", "READ_TIME = 2 has no unit"),
        ("READ_TIME=2*mV", "not in the units of its default"),
        ("EVAL_TASKS=0", "EVAL_TASKS must be an integer >= 1"),
        ("BACKEND=nest", "unknown backend 'nest'"),
        ("DEVICE_MODEL=flash", "unknown device preset 'flash'"),
        ("NEURON_MODEL=lfi", "unknown neuron model 'lfi'"),
    ],
)
def test_rejected_settings_never_cost_earlier_results(tmp_path, capsys, assignment, match):
    """With --overwrite, a bad --set or --data is refused before anything is deleted, and
    nothing of the refused setting is recorded (so the corrected rerun is not blocked)."""
    module = load_protocol("fewshot_mosaic_vs_fc")
    out = tmp_path / "o"
    out.mkdir()
    kept = {name: f"earlier {name}" for name in ("results.json", "results.md", "protocol.json")}
    for name, text in kept.items():
        (out / name).write_text(text)
    argv = ["--smoke", "--out", str(out), "--overwrite", "--no-progress"]
    assert module.main([*argv, "--set", assignment]) == 2
    assert match in capsys.readouterr().err
    assert module.main([*argv, "--data", str(tmp_path / "typo")]) == 2
    assert "typo" in capsys.readouterr().err
    for name, text in kept.items():
        assert (out / name).read_text() == text


# ----------------------------------------------------------------------------- helpers
def test_resolve_parameters_layers_and_coerces(capsys):
    from brian2 import ms, second

    from mosaicnet.protocols_support.parameters import resolve_parameters

    defaults = {"A": 1, "B": 0.5, "C": "x", "D": (1, 2), "T": 1 * second}
    p, replaced = resolve_parameters(
        defaults, setting="quick", changes={"A": 5, "C": "x", "B": 0.25},
        params={"B": 2, "D": [3], "T": "1*hour"},
    )  # fmt: skip
    assert vars(p) == {"A": 5, "B": 2.0, "C": "x", "D": (3,), "T": 3600 * second}
    assert isinstance(p.B, float)
    # Only what the setting changed and --set did not override is a replacement.
    assert replaced == [{"name": "A", "script": 1, "quick": 5}]
    assert capsys.readouterr().out == "--quick replaces A = 1 of the script with 5\n"
    assert vars(resolve_parameters(defaults)[0]) == defaults
    assert resolve_parameters(defaults, params={"T": 20 * ms})[0].T == 20 * ms
    with pytest.raises(ConfigError, match="must be like its default"):
        resolve_parameters(defaults, params={"A": "many"})
    with pytest.raises(ConfigError, match="unknown protocol parameter 'E'"):
        resolve_parameters(defaults, params={"E": 1})
    with pytest.raises(
        ConfigError, match=r"unknown protocol parameter 'E' \(in the script's QUICK"
    ):
        resolve_parameters(defaults, setting="quick", changes={"E": 1})
    with pytest.raises(ConfigError, match="T = 3 has no unit.*second"):
        resolve_parameters(defaults, params={"T": 3})
    with pytest.raises(ConfigError, match="not in the units"):
        resolve_parameters(defaults, params={"T": "3*mV"})


def test_lists_of_quantities_take_brian2_text():
    from brian2 import second

    from mosaicnet.protocols_support.parameters import json_value, resolve_parameters

    defaults = {"TIMES": [1 * second, 60 * second]}
    p, _ = resolve_parameters(defaults, params={"TIMES": "[1*second, 1*hour, 30*day]"})
    assert p.TIMES == [1 * second, 3600 * second, 2592000 * second]
    assert json_value(p.TIMES) == ["1.0 * second", "3600.0 * second", "2592000.0 * second"]
    with pytest.raises(ConfigError, match=r"TIMES\[1\] = 3 has no unit"):
        resolve_parameters(defaults, params={"TIMES": ["1*second", 3]})


def test_parameters_of_collects_the_uppercase_constants_in_order():
    from mosaicnet.protocols_support.parameters import parameters_of

    namespace = {"json": json, "SEED": 0, "lower": 1, "Path": Path, "_HIDDEN": 2, "RATES": [1]}
    namespace["LOAD"] = load_protocol
    assert parameters_of(namespace) == {"SEED": 0, "RATES": [1]}
    assert list(parameters_of(namespace)) == ["SEED", "RATES"]


def test_parse_assignment_reads_json_then_text():
    from mosaicnet.protocols_support.parameters import parse_assignment

    assert parse_assignment("ITERATIONS=50") == ("ITERATIONS", 50)
    assert parse_assignment("TIMES=[1, 3600]") == ("TIMES", [1, 3600])
    assert parse_assignment("DEVICE=pcm_aihwkit") == ("DEVICE", "pcm_aihwkit")
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_assignment("ITERATIONS")


def test_percent_ci_and_table_formatting():
    from mosaicnet.protocols_support.reporting import markdown_table, percent_ci

    assert percent_ci(0.5432, 0.0412) == "54.3 ± 4.1"
    assert percent_ci(0.5, float("nan")) == "50.0"
    assert percent_ci(None, None) == "n/a"
    table = markdown_table(["a", "b"], [[1, "x"], [2, "y"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]
    with pytest.raises(ValueError, match="2 cells"):
        markdown_table(["a"], [[1, 2]])


def test_results_json_has_no_nan(tmp_path):
    from mosaicnet.protocols_support.reporting import write_results

    path = write_results(tmp_path, {"a": float("nan"), "b": np.float32(0.25), "c": np.arange(2)})
    assert json.loads(path.read_text()) == {"a": None, "b": 0.25, "c": [0, 1]}


def test_output_dir_overwrite_deletes_only_protocol_files(tmp_path):
    from mosaicnet.protocols_support.output import prepare_output_dir

    out = tmp_path / "out"
    prepare_output_dir(out, protocol="p", parameters={"A": 1}, data=None)
    (out / "results.json").write_text("{}")
    (out / "runs" / "r").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="--overwrite"):
        prepare_output_dir(out, protocol="p", parameters={"A": 1}, data=None)
    prepare_output_dir(out, protocol="p", parameters={"A": 2}, data=None, overwrite=True)
    assert not (out / "results.json").exists() and not (out / "runs").exists()
    assert (out / "notes.txt").read_text() == "mine"

    # A directory with protocol names but no manifest is someone else's: never deleted.
    foreign = tmp_path / "foreign"
    (foreign / "runs").mkdir(parents=True)
    with pytest.raises(RunDirectoryError, match="not the output"):
        prepare_output_dir(foreign, protocol="p", parameters={}, data=None, overwrite=True)
    assert (foreign / "runs").is_dir()


# ----------------------------------------------------------------------------- every protocol
#: Documented top-level keys of each protocol's results.json (module docstrings).
RESULT_KEYS = {
    "fewshot_mosaic_vs_fc": {"networks", "fc_on_mosaic"},
    "inner_steps": {"points"},
    "drift": {"read_times_s", "networks"},
    "layout_lambda": {"points"},
    "learning_rates": {"studies"},
    "retraining": {"networks"},
    "neuron_models": {"models"},
}
COMMON_KEYS = {
    "protocol", "question", "setting", "parameters", "replaced_by_setting", "data", "figures",
    "timing_s",
}  # fmt: skip


def check_protocol_results(name: str, out: Path, results: dict) -> None:
    """Keys, accuracies in [0, 1] and drawn figures of any protocol's results."""
    stored = json.loads((out / "results.json").read_text())
    assert stored["protocol"] == results["protocol"] == name
    assert COMMON_KEYS | RESULT_KEYS[name] <= set(stored)
    assert (out / "results.md").read_text().startswith("# ")
    for relative in stored["figures"].values():
        assert (out / relative).read_bytes()[:8] == PNG_MAGIC

    def accuracies(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "figures":  # names such as "accuracy_vs_read_time" are paths
                    continue
                if key.startswith("accuracy_") and value is not None:
                    yield value
                else:
                    yield from accuracies(value)
        elif isinstance(node, list):
            for value in node:
                yield from accuracies(value)

    values = list(accuracies(stored))
    assert values and all(0.0 <= v <= 1.0 for v in values)


def check_specific(name: str, results: dict) -> None:
    """What each protocol promises beyond the common keys."""
    p = results["parameters"]
    if name == "inner_steps":
        assert [pt["inner_steps"] for pt in results["points"]] == p["INNER_STEPS"]
        # "refine": the first step at INNER_LR for every k; without INNER_LR the
        # TrainConfig schedule 1 / k.
        for pt in results["points"]:
            expected = p["INNER_LR"] if p["INNER_LR"] is not None else 1.0 / pt["inner_steps"]
            assert pt["inner_lr"] == pytest.approx(expected)
    elif name == "drift":
        for net in results["networks"].values():
            assert len(net["curve"]) == len(results["read_times_s"])
            assert [s["read_time_s"] for s in net["curve"]] == results["read_times_s"]
    elif name == "layout_lambda":
        assert [pt["layout_lambda"] for pt in results["points"]] == p["LAMBDAS"]
        for pt in results["points"]:
            hw = pt["hardware"]
            split = hw["synapses_intra_tile"] + hw["synapses_one_hop"] + hw["synapses_multi_hop"]
            assert split == hw["recurrent_synapses"]
    elif name == "learning_rates":
        for study in results["studies"].values():
            assert len(study["trials"]) == p["N_TRIALS"]
            for trial in study["trials"]:
                assert p["LR_IN_RANGE"][0] <= trial["lr_in"] <= p["LR_IN_RANGE"][1]
                assert p["LR_OUT_RANGE"][0] <= trial["lr_out"] <= p["LR_OUT_RANGE"][1]
            if study["importance"] is not None:
                assert set(study["importance"]) == {"lr_in", "lr_out"}
                assert sum(study["importance"].values()) == pytest.approx(1.0)
    elif name == "neuron_models":
        assert list(results["models"]) == [Path(m).stem for m in p["NEURON_MODELS"]]
        for name_, entry in results["models"].items():
            assert f"neuron model {name_!r}" in entry["code"]  # the Brian2 code is reported
            assert entry["firing_rate_hz"] > 0
            for where in ("torch", "brian2"):
                assert entry[where]["tasks_seen"] == entry[where]["tasks_unseen"] == p["EVAL_TASKS"]
    elif name == "retraining":
        nets = results["networks"]
        total = p["ITERATIONS"] + p["RETRAIN_ITERATIONS"]
        assert nets["base"]["outer_steps"] == p["ITERATIONS"]
        assert nets["retrained"]["outer_steps"] == nets["scratch"]["outer_steps"] == total
        assert nets["retrained"]["trained_steps"] == p["TARGET_STEPS"]


def test_drift_protocol_compares_the_two_trainings_on_the_routing_limited_mosaic():
    """Claim (c) is about the Mosaic the flagship trains: both networks keep MAX_HOPS,
    and they differ only in when device noise starts."""
    from types import SimpleNamespace

    module = load_protocol("drift")
    p = SimpleNamespace(**module.PARAMETERS)
    standard, aware = (module.train_config(p, hardware_aware=h) for h in (False, True))
    assert standard.max_hops == aware.max_hops == module.MAX_HOPS == 1
    assert (standard.noise_start, aware.noise_start) == (module.ITERATIONS, 0)
    assert standard.device_model == aware.device_model == module.DEVICE_MODEL
    quick = SimpleNamespace(**{**module.PARAMETERS, **module.QUICK})
    assert module.train_config(quick, hardware_aware=True).max_hops is None


@pytest.mark.parametrize(
    ("name", "config_of"),
    [
        ("fewshot_mosaic_vs_fc", lambda m, p: m.train_config(p, "mosaic")),
        ("inner_steps", lambda m, p: m.train_config(p, p.INNER_STEPS[-1])),
        ("drift", lambda m, p: m.train_config(p, hardware_aware=True)),
        (
            "learning_rates",
            lambda m, p: m.train_config(p, 10 if p.INNER_STEPS[-1] > 1 else 1, 1.0, 1e-3),
        ),
    ],
)
def test_claim_protocols_train_the_inner_loop_they_name(name, config_of):
    """The claim protocols train the recommended inner loop (prototype start, ten
    curvature-scaled steps) on the routing-limited Mosaic, and the talk's inner loop is one
    --set away: what READOUT_INIT, INNER_STEP_SCALE and INNER_LR say reaches TrainConfig."""
    from types import SimpleNamespace

    module = load_protocol(name)
    p = SimpleNamespace(**module.PARAMETERS)
    config = config_of(module, p)
    assert (config.readout_init, config.inner_step_scale) == ("prototype", "curvature")
    assert (config.inner_steps, config.resolved_inner_lr, config.max_hops) == (10, 1.0, 1)
    if name in ("fewshot_mosaic_vs_fc", "drift"):  # tested with more steps than trained
        assert config.test_inner_steps == 100
    talk = {"READOUT_INIT": "meta", "INNER_STEP_SCALE": "none"}
    talk["INNER_STEPS"] = [1] if name in ("inner_steps", "learning_rates") else 1
    config = config_of(module, SimpleNamespace(**{**module.PARAMETERS, **talk}))
    assert (config.readout_init, config.inner_step_scale, config.inner_steps) == ("meta", "none", 1)


OTHER_PROTOCOLS = [
    "inner_steps", "drift", "layout_lambda", "learning_rates", "retraining", "neuron_models",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHER_PROTOCOLS)
def test_protocol_smoke_run(name, tmp_path, default_data):
    module = load_protocol(name)
    out = tmp_path / "out"
    results = module.run({}, out, False, smoke=True, data=default_data, progress=False)
    check_protocol_results(name, out, results)
    check_specific(name, results)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fewshot_mosaic_vs_fc", *OTHER_PROTOCOLS])
def test_protocol_quick_run(name, tmp_path, default_data):
    """The --quick setting of every protocol (minutes each on 2 free cores)."""
    module = load_protocol(name)
    out = tmp_path / "out"
    results = module.run({}, out, True, data=default_data, progress=False)
    check_protocol_results(name, out, results)
    check_specific(name, results)
    if name == "fewshot_mosaic_vs_fc":
        # The README main job shows few-shot learning: on the chip, unseen-class accuracy
        # above chance by more than its 95 % CI over the tasks, and a Mosaic that routes
        # fewer hops per spike than the FC network placed on tiles.
        chance = 1 / module.N_WAY
        mosaic = results["networks"]["mosaic"]
        chip = mosaic["brian2"]
        assert chip["accuracy_unseen"] - chip["ci95_unseen"] > chance
        assert mosaic["hardware"]["synapses_multi_hop"] == 0
        assert mosaic["hardware"]["hops_per_spike"] < results["fc_on_mosaic"]["hops_per_spike"]


@pytest.mark.parametrize("name", ["fewshot_mosaic_vs_fc", *OTHER_PROTOCOLS])
def test_every_constant_is_a_parameter_a_sweep_can_change(name):
    """The UPPERCASE constants above PARAMETERS are the parameters, with units as Brian2
    quantities (no _S suffixes); QUICK and SMOKE change only those; sweeps see them all."""
    from brian2 import Quantity, second

    from mosaicnet.sweeps.objectives import Protocol

    module = load_protocol(name)
    source = (PROTOCOLS / f"{name}.py").read_text(encoding="utf-8")
    block = source[: source.index("PARAMETERS = parameters_of(globals())")]
    constants = re.findall(r"^([A-Z][A-Z0-9_]*)(?:: [^=]+)? = ", block, flags=re.MULTILINE)
    assert list(module.PARAMETERS) == constants
    assert not [n for n in constants if n.endswith("_S")]
    assert "BACKEND" in constants  # the Brian2 backend of every protocol
    for value in module.PARAMETERS.values():
        if isinstance(value, Quantity):
            assert value.has_same_dimensions(second)
    # --smoke starts from --quick; both change only parameters.
    assert set(module.QUICK) <= set(module.SMOKE) <= set(module.PARAMETERS)
    path = PROTOCOLS / f"{name}.py"
    assert Protocol().parameter_names({"protocol": str(path)}) == set(constants)


def test_retraining_continues_from_the_base_run(tmp_path, default_data):
    """continue_training starts from the base run's weights and counts its steps."""
    import torch

    from mosaicnet.meta.config import TrainConfig
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.protocols_support.runs import continue_training, train_or_resume

    config = TrainConfig(rows=2, cols=2, iterations=2, meta_batch=2, checkpoint_every=1)
    base = train_or_resume(config, tmp_path / "base", data=default_data, progress=False)
    more = config.with_changes(iterations=3, inner_steps=3)
    retrained = continue_training(base, tmp_path / "re", more, data=default_data, progress=False)
    records = RunDirectory(retrained).read_metrics()
    assert [r["iteration"] for r in records] == [1, 2, 3]
    # The first two steps are the base run's (copied), the third is new training.
    assert records[:2] == RunDirectory(base).read_metrics()
    state = RunDirectory(retrained).load_checkpoint()
    assert state["iteration"] == 3
    base_params = RunDirectory(base).load_checkpoint()["params"]
    assert not torch.equal(state["params"]["w_in"], base_params["w_in"])
    with pytest.raises(RunDirectoryError, match="more iterations"):
        continue_training(base, tmp_path / "x", config, data=default_data, progress=False)


@pytest.mark.parametrize("name", ["fewshot_mosaic_vs_fc", *OTHER_PROTOCOLS[:-1]])
def test_protocols_take_the_neuron_model_and_its_constants(name):
    """NEURON_MODEL / NEURON_CONSTANTS reach the training configuration."""
    from mosaicnet.protocols_support.parameters import (
        resolve_parameters,
        train_config_from_parameters,
    )

    module = load_protocol(name)
    assert module.PARAMETERS["NEURON_MODEL"] == "lif"  # the published model by default
    p, _ = resolve_parameters(
        module.PARAMETERS,
        params={"NEURON_MODEL": "alif", "NEURON_CONSTANTS": {"tau_a": "1400*ms"}},
    )
    config = train_config_from_parameters(p)
    assert config.neuron_parameters().model.name == "alif"
    assert config.neuron_constants == {"tau_a": "1.4000000000000001 * second"}


def test_neuron_constants_may_be_written_as_brian2_quantities():
    from brian2 import ms

    from mosaicnet.protocols_support.parameters import (
        json_parameters,
        resolve_parameters,
        train_config_from_parameters,
    )

    module = load_protocol("fewshot_mosaic_vs_fc")
    defaults = {**module.PARAMETERS, "NEURON_CONSTANTS": {"tau_mem": 300 * ms}}
    p, _ = resolve_parameters(defaults)
    stored = json_parameters(p)  # stored as JSON in protocol.json and results.json
    json.dumps(stored)
    assert stored["NEURON_CONSTANTS"] == {"tau_mem": "0.3 * second"}
    model = train_config_from_parameters(p).neuron_parameters().model
    assert model.constants["tau_mem"] == 300 * ms


def test_learning_rate_study_records_a_diverged_trial_and_goes_on(
    tmp_path, default_data, monkeypatch
):
    """One trial whose training diverges is a failed trial, not the end of the study."""
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    from mosaicnet.errors import TrainingDiverged
    from mosaicnet.protocols_support import runs

    real = runs.train_or_resume

    def diverge_once(config, run_dir, **kwargs):
        if run_dir.name == "trial_001" and run_dir.parent.name == "steps_1":
            raise TrainingDiverged("meta-training diverged at step 1 (test)")
        return real(config, run_dir, **kwargs)

    monkeypatch.setattr(runs, "train_or_resume", diverge_once)
    module = load_protocol("learning_rates")
    results = module.run({}, tmp_path / "out", False, smoke=True, data=default_data,
                         progress=False)  # fmt: skip
    trials = results["studies"]["1"]["trials"]
    assert len(trials) == module.SMOKE["N_TRIALS"]
    assert "diverged at step 1" in trials[1]["diverged"]
    assert trials[1]["accuracy_unseen"] is None
    assert all(t["diverged"] is None and t["accuracy_unseen"] is not None
               for t in trials[:1] + trials[2:])  # fmt: skip
    assert all(t["diverged"] is None for t in results["studies"]["3"]["trials"])
    assert (tmp_path / "out" / results["figures"]["landscape"]).stat().st_size > 0
