"""Groups of training runs compared over their training seeds.

One training run's accuracy has a confidence interval over meta-test tasks, but
networks trained with other seeds differ by more than that interval (on the
speech dev set the unseen accuracy of one setting ranged over 66-80 % between
seeds, docs/results.md). A claim that one setting beats another therefore rests on
several seeds: this module meta-tests every run of each group on the same tasks
(torch clone, cached in the run), and gives each group's mean with a 95 %
Student-t interval over its seeds, and the differences to the first group paired
by training seed (the runs of one seed share initial weights and training tasks).

Accuracies are compared in the talk's meta-test (``mixed``: tasks over all 20
classes, each query scored as seen or unseen) and on separate tasks (``separate``:
seen-class tasks and held-out-class tasks): :data:`METRICS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mosaicnet.errors import ConfigError

__all__ = [
    "METRICS",
    "compare_groups",
    "markdown_report",
    "mean_t_interval",
    "student_t_quantile",
]

#: (meta-test protocol, class kind) of each accuracy compared.
METRICS: tuple[tuple[str, str], ...] = (
    ("mixed", "seen"), ("mixed", "unseen"), ("separate", "seen"), ("separate", "unseen"),
)  # fmt: skip
#: Titles of :data:`METRICS`: tasks over all classes (the talk's meta-test), separate tasks.
METRIC_TITLES = (
    "all classes: seen", "all classes: unseen", "separate tasks: seen", "separate tasks: unseen",
)  # fmt: skip


def _metric_key(protocol: str, kind: str) -> str:
    return f"{protocol}_{kind}"


def _two_sided_probability(t: float, dof: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``dof`` degrees of freedom.

    The closed forms for integer degrees of freedom of Abramowitz & Stegun,
    Handbook of Mathematical Functions (1964), 26.7.3 (odd) and 26.7.4 (even),
    in ``theta = arctan(t / sqrt(dof))``.
    """
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 0:
        term = total = 1.0
        for j in range(2, dof - 1, 2):  # 1 + 1/2 c^2 + 1.3/(2.4) c^4 + ...
            term *= c2 * (j - 1) / j
            total += term
        return math.sin(theta) * total
    if dof == 1:
        return 2.0 / math.pi * theta
    term = total = 1.0
    for j in range(3, dof - 1, 2):  # 1 + 2/3 c^2 + 2.4/(3.5) c^4 + ...
        term *= c2 * (j - 1) / j
        total += term
    return 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def student_t_quantile(dof: int, confidence: float = 0.95) -> float:
    """Two-sided critical value ``t`` of Student's t: ``P(|T| <= t) = confidence``.

    Bisection on the exact distribution function (:func:`_two_sided_probability`)
    to double precision; e.g. 12.706 for one degree of freedom, 2.365 for seven.
    """
    if dof < 1 or int(dof) != dof:
        raise ConfigError(f"degrees of freedom must be a positive integer, got {dof!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence!r}")
    low, high = 0.0, 1.0
    while _two_sided_probability(high, int(dof)) < confidence:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if _two_sided_probability(middle, int(dof)) < confidence:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return 0.5 * (low + high)


def mean_t_interval(values: Iterable[float]) -> tuple[float, float]:
    """Mean and half-width of the 95 % Student-t interval of the mean (NaN if undefined).

    The normal interval over tasks (:func:`mosaicnet.meta.torch_evaluation.mean_ci95`)
    with the t quantile of ``n - 1`` degrees of freedom in place of the normal one: a
    few seeds do not estimate their spread well enough for the latter.
    """
    from mosaicnet.meta.torch_evaluation import Z95, mean_ci95

    data = list(values)
    mean, half = mean_ci95(data)
    if math.isnan(half):
        return mean, half
    return mean, half * student_t_quantile(len(data) - 1) / Z95


def _statistic(values: Sequence[float]) -> dict[str, Any]:
    mean, half = mean_t_interval(values)
    return {"values": [float(v) for v in values], "mean": mean, "ci95": half}


def _check_comparable(runs: Mapping[Path, Any]) -> None:
    """Every run must hold out the same classes and use the same task shape: else the
    seen and unseen classes, or the tasks, differ between the runs compared."""
    shapes = {
        run: (tuple(c.held_out_classes), c.n_way, c.k_shot, c.n_query) for run, c in runs.items()
    }
    first_run, first = next(iter(shapes.items()))
    for run, shape in shapes.items():
        if shape != first:
            raise ConfigError(
                f"{run} and {first_run} are not meta-tested on the same tasks (held-out "
                f"classes, n_way, k_shot, n_query: {shape} against {first}); compare runs "
                "trained with the same held_out_classes and task shape"
            )


def compare_groups(
    groups: Mapping[str, Sequence[str | Path]],
    *,
    data: str | Path | None = None,
    tasks: int = 200,
    inner_steps: int | None = None,
    seed: int = 0,
    allow_other_data: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Meta-test every run of every group; statistics over seeds and paired differences.

    Parameters
    ----------
    groups
        Name -> run directories of ``mosaicnet train``, one per training seed (read
        from each run's configuration). The first group is the one the others are
        compared with.
    data
        Folder with the test file; None: the data each run was trained on.
    tasks
        Meta-test tasks per protocol (``separate``: per class kind).
    inner_steps
        Inner steps at meta-test; None: each run's ``test_inner_steps``, else as trained.
    seed
        Seed of the meta-test tasks: every run is tested on the same tasks.
    allow_other_data
        Allow ``data`` to hold other files than a run was trained on.
    progress
        Show progress bars.

    Returns
    -------
    dict
        ``groups`` -> name -> {``runs``, ``seeds``, ``accuracy`` -> metric ->
        {``values`` (percent, one per seed), ``mean``, ``ci95``}};
        ``differences`` -> ``"A - B"`` -> {``seeds`` (those both groups have),
        ``accuracy`` -> metric -> {``values``, ``mean``, ``ci95``}}; ``metrics``,
        ``tasks``, ``inner_steps``, ``seed``. Metric names: ``<protocol>_<kind>``
        (:data:`METRICS`).

    Raises
    ------
    ConfigError
        No group, an empty group, two runs of one group with the same training
        seed, or runs tested on different classes or task shapes.
    """
    from mosaicnet.meta.run_data import data_for_run
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.protocols_support.evaluation import evaluate_torch

    if not groups:
        raise ConfigError("no group of runs to compare; give at least one")
    configs: dict[Path, Any] = {}
    runs_of: dict[str, dict[int, Path]] = {}  # group -> training seed -> run, by seed
    for name, runs in groups.items():
        if not runs:
            raise ConfigError(f"group {name!r} has no runs; give its run directories")
        seeds: dict[int, Path] = {}
        for run in map(Path, runs):
            config = RunDirectory.open(run).load_config()
            if config.seed in seeds:
                raise ConfigError(
                    f"group {name!r}: {seeds[config.seed]} and {run} were trained with the same "
                    f"seed ({config.seed}); a group holds one run per training seed"
                )
            seeds[config.seed] = run
            configs[run] = config
        runs_of[name] = dict(sorted(seeds.items()))
    _check_comparable(configs)

    # group -> metric -> training seed -> accuracy (percent)
    accuracy: dict[str, dict[str, dict[int, float]]] = {}
    for name, runs in runs_of.items():
        accuracy[name] = {_metric_key(*m): {} for m in METRICS}
        for run_seed, run in runs.items():
            run_data = data_for_run(run, data, allow_other=allow_other_data)
            summaries = {}
            for protocol in dict.fromkeys(p for p, _ in METRICS):
                summaries[protocol] = evaluate_torch(
                    run, data=run_data, tasks=tasks, inner_steps=inner_steps, seed=seed,
                    protocol=protocol, progress=progress,
                )  # fmt: skip
            for protocol, kind in METRICS:
                value = summaries[protocol][f"accuracy_{kind}"]
                accuracy[name][_metric_key(protocol, kind)][run_seed] = (
                    math.nan if value is None else 100.0 * value
                )

    result: dict[str, Any] = {
        "metrics": [_metric_key(*m) for m in METRICS], "tasks": tasks,
        "inner_steps": inner_steps, "seed": seed, "groups": {}, "differences": {},
    }  # fmt: skip
    for name, runs in runs_of.items():
        result["groups"][name] = {
            "runs": [str(r) for r in runs.values()], "seeds": list(runs),
            "accuracy": {
                key: _statistic(list(by_seed.values())) for key, by_seed in accuracy[name].items()
            },
        }  # fmt: skip
    first, *others = runs_of
    for other in others:
        common = sorted(set(runs_of[first]) & set(runs_of[other]))
        result["differences"][f"{first} - {other}"] = {
            "seeds": common,
            "accuracy": {
                key: _statistic([accuracy[first][key][s] - accuracy[other][key][s] for s in common])
                for key in accuracy[first]
            },
        }  # fmt: skip
    return result


def _cell(statistic: Mapping[str, Any], *, signed: bool = False, values: bool = False) -> str:
    form = "{:+.1f}" if signed else "{:.1f}"
    if not statistic["values"]:
        return "n/a"
    text = form.format(statistic["mean"])
    if math.isfinite(statistic["ci95"]):
        text += f" ± {statistic['ci95']:.1f}"
    if values:
        text = ", ".join(form.format(v) for v in statistic["values"]) + f": **{text}**"
    return text


def markdown_report(comparison: Mapping[str, Any]) -> str:
    """The Markdown table of :func:`compare_groups`' result: a row per group, then one per
    difference (each seed's difference, then mean ± CI)."""
    from mosaicnet.protocols_support.reporting import markdown_table

    metrics = comparison["metrics"]
    rows = [
        [f"{name} (seeds {', '.join(map(str, g['seeds']))})",
         *(_cell(g["accuracy"][key]) for key in metrics)]
        for name, g in comparison["groups"].items()
    ]  # fmt: skip
    for name, d in comparison["differences"].items():
        rows.append(
            [f"{name}, paired by seed ({', '.join(map(str, d['seeds'])) or 'none in common'})",
             *(_cell(d["accuracy"][key], signed=True, values=True) for key in metrics)]
        )  # fmt: skip
    steps = comparison["inner_steps"]
    head = (
        f"Accuracy (%), mean ± 95 % CI over training seeds (Student t); torch clone, "
        f"{comparison['tasks']} tasks per protocol, meta-test seed {comparison['seed']}, "
        f"{'the inner steps of each run' if steps is None else f'{steps} inner steps'}.\n\n"
    )
    return head + markdown_table(["runs", *METRIC_TITLES], rows)
