"""Groups of runs compared over training seeds: Student-t intervals, pairing by seed, the CLI."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from mosaicnet.cli import main
from mosaicnet.errors import ConfigError
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.training import train
from mosaicnet.protocols_support import seed_comparison
from mosaicnet.protocols_support.seed_comparison import (
    compare_groups,
    markdown_report,
    mean_t_interval,
    student_t_quantile,
)

TINY = dict(
    rows=1, cols=2, neurons_per_tile=4, n_bins=30, spatial_stride=10, meta_batch=2, n_way=3,
    k_shot=2, n_query=2, iterations=2, checkpoint_every=2,
)  # fmt: skip
TASKS = 6

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Two settings (outer rates) x two training seeds, two outer steps each."""
    root = tmp_path_factory.mktemp("seed_runs")
    out = {}
    for name, lr in (("a", 3e-3), ("b", 1e-2)):
        for seed in (0, 1):
            run = root / f"{name}_s{seed}"
            train(TrainConfig(**TINY, outer_lr=lr, seed=seed), run, data_dir=data_dir,
                  progress=False)  # fmt: skip
            out[name, seed] = run
    return out


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_student_t_quantile_matches_scipy(confidence):
    for dof in [*range(1, 41), 100, 999]:
        expected = stats.t.ppf(0.5 + confidence / 2, dof)
        assert student_t_quantile(dof, confidence) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("dof, confidence", [(0, 0.95), (2.5, 0.95), (3, 1.0), (3, 0.0)])
def test_student_t_quantile_rejects_what_has_none(dof, confidence):
    with pytest.raises(ConfigError):
        student_t_quantile(dof, confidence)


def test_mean_t_interval_of_few_values():
    assert all(math.isnan(v) for v in mean_t_interval([]))
    mean, half = mean_t_interval([0.7])
    assert mean == 0.7 and math.isnan(half)
    mean, half = mean_t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3), rel=1e-10)


def test_groups_are_paired_by_training_seed(runs, data_dir, monkeypatch):
    # Runs given out of seed order: the comparison orders them and pairs seed with seed.
    groups = {"a": [runs["a", 1], runs["a", 0]], "b": [runs["b", 0], runs["b", 1]]}
    result = compare_groups(groups, data=data_dir, tasks=TASKS, progress=False)
    assert list(result["groups"]) == ["a", "b"]
    a, b = result["groups"]["a"], result["groups"]["b"]
    assert a["seeds"] == b["seeds"] == [0, 1]
    assert a["runs"] == [str(runs["a", 0]), str(runs["a", 1])]
    difference = result["differences"]["a - b"]
    assert difference["seeds"] == [0, 1]
    for key in result["metrics"]:
        values_a, values_b = a["accuracy"][key]["values"], b["accuracy"][key]["values"]
        assert all(0.0 <= v <= 100.0 for v in values_a + values_b)
        assert difference["accuracy"][key]["values"] == pytest.approx(
            [x - y for x, y in zip(values_a, values_b, strict=True)]
        )
        mean, half = mean_t_interval(values_a)
        assert a["accuracy"][key]["mean"] == pytest.approx(mean)
        assert a["accuracy"][key]["ci95"] == pytest.approx(half)

    # Each run's evaluations are cached in the run: the same comparison again
    # meta-tests nothing.
    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again instead of reading the run's cache")

    monkeypatch.setattr("mosaicnet.meta.torch_evaluation.evaluate_on_torch", no_evaluation)
    assert compare_groups(groups, data=data_dir, tasks=TASKS, progress=False) == result
    table = markdown_report(result)
    assert "| a (seeds 0, 1) |" in table and "a - b, paired by seed (0, 1)" in table


def test_only_seeds_both_groups_hold_are_paired(runs, data_dir):
    result = compare_groups(
        {"a": [runs["a", 0], runs["a", 1]], "b": [runs["b", 1]]}, data=data_dir, tasks=TASKS,
        progress=False,
    )  # fmt: skip
    difference = result["differences"]["a - b"]
    assert difference["seeds"] == [1]
    key = result["metrics"][0]
    a1 = result["groups"]["a"]["accuracy"][key]["values"][1]
    b1 = result["groups"]["b"]["accuracy"][key]["values"][0]
    assert difference["accuracy"][key]["values"] == pytest.approx([a1 - b1])
    assert math.isnan(difference["accuracy"][key]["ci95"])  # one seed: no interval


def test_a_group_holds_one_run_per_seed(runs, data_dir):
    with pytest.raises(ConfigError, match="same seed"):
        compare_groups({"a": [runs["a", 0], runs["b", 0]]}, data=data_dir, progress=False)
    with pytest.raises(ConfigError, match="no runs"):
        compare_groups({"a": []}, data=data_dir, progress=False)


def test_runs_tested_on_other_classes_are_refused(runs, tmp_path, data_dir):
    other = tmp_path / "other_classes"
    config = TrainConfig(**TINY, seed=2, held_out_classes=(1, 2, 3, 4, 5))
    train(config, other, data_dir=data_dir, progress=False)
    with pytest.raises(ConfigError, match="held_out_classes"):
        seed_comparison.compare_groups(
            {"a": [runs["a", 0], runs["a", 1]], "b": [other]}, data=data_dir, progress=False
        )


def test_compare_command_prints_the_table_and_draws_the_figure(runs, data_dir, tmp_path, capsys):
    figure = tmp_path / "figs" / "compare.png"
    args = ["compare", "--group", "a", str(runs["a", 0]), str(runs["a", 1]),
            "--group", "b", str(runs["b", 0]), str(runs["b", 1]),
            "--data", str(data_dir), "--tasks", str(TASKS), "--quiet",
            "--figure", str(figure)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "mean ± 95 % CI over training seeds" in out
    assert "| b (seeds 0, 1) |" in out and f"Figure written: {figure}" in out
    assert figure.stat().st_size > 10_000


@pytest.mark.parametrize(
    "groups, message",
    [
        (["--group", "a"], "names no run directory"),
        (["--group", "a", "x", "--group", "a", "y"], "two groups are named 'a'"),
    ],
)
def test_compare_command_explains_bad_groups(groups, message, capsys):
    assert main(["compare", *groups]) == 2
    assert message in capsys.readouterr().err
