"""Accuracy figures of the protocols (matplotlib, Agg canvas, written to PNG files).

Every function draws one figure from numbers a protocol measured and writes it
to ``path``. Error bars are 95 % confidence intervals over meta-test tasks. The
figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, not
through ``pyplot``, so plotting leaves no global matplotlib state behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

#: Colours of the standard series (seen / unseen classes, and further series).
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")

Series = Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]]


def accuracy_with_ci(
    evaluations: Sequence[Mapping[str, float | None]], kind: str
) -> tuple[list[float | None], list[float | None]]:
    """One series of a plot: ``(means, half_widths)`` of ``kind`` ("seen"/"unseen") accuracy.

    ``evaluations`` are evaluation summaries (``accuracy_<kind>``,
    ``ci95_<kind>``), one per point or group of the plot.
    """
    return (
        [e[f"accuracy_{kind}"] for e in evaluations],
        [e[f"ci95_{kind}"] for e in evaluations],
    )


def seen_unseen_series(evaluations: Sequence[Mapping[str, float | None]]) -> Series:
    """The standard pair of series: accuracy on seen and on unseen classes, with 95 % CIs."""
    return {
        "seen classes": accuracy_with_ci(evaluations, "seen"),
        "unseen classes": accuracy_with_ci(evaluations, "unseen"),
    }


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def _percent(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else 100.0 * float(v) for v in values], dtype=float)


def plot_accuracy_bars(
    path: str | Path,
    groups: Sequence[str],
    series: Series,
    *,
    title: str,
    chance: float | None = None,
    ylabel: str = "accuracy (%)",
) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series, 95 % CI whiskers.

    ``series`` maps a name (e.g. ``"seen classes"``) to ``(means, half_widths)``
    with one value per group (fractions in [0, 1]; ``None`` = not measured).
    """
    figure = _figure(1.6 + 1.3 * len(groups), 3.6)
    ax = figure.add_subplot()
    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    for k, (name, (means, halves)) in enumerate(series.items()):
        offset = (k - (len(series) - 1) / 2) * width
        heights, errors = _percent(means), _percent(halves)
        ax.bar(
            x + offset, heights, width * 0.95, yerr=errors, capsize=3,
            color=COLORS[k % len(COLORS)], label=name,
        )  # fmt: skip
        for xi, h in zip(x + offset, heights, strict=True):
            if np.isfinite(h):
                ax.annotate(f"{h:.0f}", (xi, h), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")  # fmt: skip
    if chance is not None:
        ax.axhline(100.0 * chance, color="0.4", ls="--", lw=1, label=f"chance ({chance:.0%})")
    ax.set_xticks(x, labels=groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel(ylabel)
    ax.set_title(_wrapped(title), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(figure, path)


def plot_accuracy_curves(
    path: str | Path,
    x: Sequence[float],
    series: Series,
    *,
    title: str,
    xlabel: str,
    logx: bool = False,
    chance: float | None = None,
    ylabel: str = "accuracy (%)",
    xticks: Sequence[float] | None = None,
    xticklabels: Sequence[str] | None = None,
    styles: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """Accuracy against a swept quantity, one line per series with a shaded 95 % CI band.

    ``styles`` optionally maps a series name to ``(colour, linestyle)``; series
    without one take the next standard colour and a solid line.
    """
    figure = _figure(5.2, 3.6)
    ax = figure.add_subplot()
    xs = np.asarray(x, dtype=float)
    for k, (name, (means, halves)) in enumerate(series.items()):
        m, h = _percent(means), _percent(halves)
        colour, linestyle = (styles or {}).get(name, (COLORS[k % len(COLORS)], "-"))
        ax.plot(xs, m, marker="o", ls=linestyle, color=colour, label=name, ms=4)
        band = np.where(np.isfinite(h), h, 0.0)
        ax.fill_between(xs, m - band, m + band, color=colour, alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    if xticks is not None:
        ax.set_xticks(list(xticks), labels=list(xticklabels) if xticklabels else None)
        ax.minorticks_off()
    return _finish_line_plot(figure, ax, path, title, xlabel, ylabel, chance)


def plot_tradeoff(
    path: str | Path,
    cost: Sequence[float],
    series: Series,
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    chance: float | None = None,
) -> Path:
    """Accuracy (with 95 % CI) against a hardware cost, each point annotated with its label."""
    figure = _figure(5.2, 3.6)
    ax = figure.add_subplot()
    xs = np.asarray(cost, dtype=float)
    for k, (name, (means, halves)) in enumerate(series.items()):
        m, h = _percent(means), _percent(halves)
        ax.errorbar(xs, m, yerr=np.where(np.isfinite(h), h, 0.0), fmt="o-", capsize=3,
                    color=COLORS[k % len(COLORS)], label=name, ms=4)  # fmt: skip
        if k == 0:
            for xi, yi, text in zip(xs, m, labels, strict=True):
                ax.annotate(text, (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
    return _finish_line_plot(figure, ax, path, title, xlabel, "accuracy (%)", chance)


def _finish_line_plot(figure, ax, path, title, xlabel, ylabel, chance) -> Path:
    """Chance line, labels, 0-105 % range, title, legend and grid of a line plot; save it."""
    if chance is not None:
        ax.axhline(100.0 * chance, color="0.4", ls="--", lw=1, label=f"chance ({chance:.0%})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(_wrapped(title), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_importances(
    path: str | Path,
    importances: Mapping[str, Mapping[str, float] | None],
    *,
    title: str,
) -> Path:
    """Horizontal bars of parameter importance (fractions), one panel per setting.

    ``importances`` maps a setting (e.g. ``"1 inner step"``) to parameter ->
    importance, or ``None`` when it could not be computed (the panel says so).
    """
    settings = list(importances)
    figure = _figure(3.2 * max(len(settings), 1), 2.6)
    axes = figure.subplots(1, max(len(settings), 1), squeeze=False)[0]
    for ax, setting in zip(axes, settings, strict=False):
        values = importances[setting]
        ax.set_title(setting, fontsize=10)
        if not values:
            ax.text(0.5, 0.5, "not computable", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        names = sorted(values, key=values.get)
        ax.barh(names, [values[n] for n in names], color=COLORS[0])
        ax.set_xlim(0, 1)
        ax.set_xlabel("fANOVA importance")
    figure.suptitle(_wrapped(title), fontsize=10)
    return _save(figure, path)


def plot_training_curves(
    path: str | Path,
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    title: str,
    window: int = 10,
) -> Path:
    """Meta-training loss and query accuracy per outer step (runs' ``metrics.jsonl``).

    Thin lines are the per-step values, thick lines their running mean over
    ``window`` steps (a meta-batch is a small sample of tasks, so single steps
    are noisy). Where a run validated (``val_acc`` in its records), its validation
    accuracy is drawn as dots on the accuracy panel.
    """
    figure = _figure(8.0, 3.2)
    ax_loss, ax_acc = figure.subplots(1, 2)
    for k, (name, records) in enumerate(histories.items()):
        if not records:
            continue
        colour = COLORS[k % len(COLORS)]
        steps = np.array([r["iteration"] for r in records], dtype=float)
        for ax, key, scale in ((ax_loss, "loss", 1.0), (ax_acc, "acc", 100.0)):
            values = scale * np.array([r.get(key, np.nan) for r in records], dtype=float)
            ax.plot(steps, values, color=colour, alpha=0.3, lw=0.8)
            width = max(1, min(window, values.size))
            smooth = np.convolve(values, np.ones(width) / width, mode="valid")
            ax.plot(steps[width - 1 :], smooth, color=colour, lw=2, label=name)
        validated = [r for r in records if r.get("val_acc") is not None]
        if validated:
            ax_acc.plot(
                [r["iteration"] for r in validated], [100.0 * r["val_acc"] for r in validated],
                "o", color=colour, ms=3, mec="black", mew=0.4, label=f"{name}, validation",
            )  # fmt: skip
    ax_loss.set_xlabel("outer step")
    ax_loss.set_ylabel("meta-training loss")
    ax_acc.set_xlabel("outer step")
    ax_acc.set_ylabel("query accuracy after adaptation (%)")
    ax_acc.set_ylim(0, 105)
    ax_acc.legend(fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    figure.suptitle(_wrapped(title), fontsize=10)
    return _save(figure, path)


def plot_seed_comparison(
    path: str | Path,
    comparison: Mapping[str, object],
    *,
    title: str,
    chance: float | None = None,
) -> Path:
    """Accuracy of groups of runs over their training seeds, one panel per metric.

    ``comparison`` is :func:`mosaicnet.protocols_support.seed_comparison.compare_groups`'
    result. Each seed's run is a dot; grey lines join the runs of one seed across
    groups (the comparison is paired by seed); black bars are each group's mean and
    95 % Student-t interval over seeds (not over tasks, unlike the other figures).
    """
    from mosaicnet.protocols_support.seed_comparison import METRIC_TITLES

    groups: Mapping[str, Mapping] = comparison["groups"]  # type: ignore[assignment]
    metrics: Sequence[str] = comparison["metrics"]  # type: ignore[assignment]
    names = list(groups)
    figure = _figure(1.0 + 0.8 * len(names) * len(metrics), 3.4)
    axes = figure.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    x = np.arange(len(names))
    # The axis spans the measured values (seeds differ by a few points, which a
    # 0-100 axis would flatten), down to chance where it is given.
    values = [
        v for g in groups.values() for key in metrics for v in g["accuracy"][key]["values"]
        if np.isfinite(v)
    ]  # fmt: skip
    low = min([*values, 100.0 * chance] if chance is not None else values, default=0.0)
    for ax, key, panel in zip(axes, metrics, METRIC_TITLES, strict=True):
        by_seed: dict[int, list[float]] = {}
        for i, name in enumerate(names):
            statistic = groups[name]["accuracy"][key]
            for seed, value in zip(groups[name]["seeds"], statistic["values"], strict=True):
                by_seed.setdefault(seed, [np.nan] * len(names))[i] = value
            ax.errorbar(
                i + 0.18, statistic["mean"], yerr=statistic["ci95"], fmt="s", color="black",
                capsize=4, ms=5, zorder=3,
            )  # fmt: skip
        for seed_values in by_seed.values():
            ax.plot(x, seed_values, color="0.7", lw=0.8, zorder=1)
            ax.scatter(x, seed_values, c=[COLORS[i % len(COLORS)] for i in x], s=14, zorder=2)
        if chance is not None:
            ax.axhline(100.0 * chance, color="0.4", ls="--", lw=1)
        ax.set_xticks(x, labels=names, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(names) - 0.3)
        ax.set_ylim(max(0.0, low - 5.0), 101.0)  # an interval of few seeds may reach past
        ax.set_title(panel, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    figure.suptitle(_wrapped(title, 40 + 25 * len(metrics)), fontsize=10)
    return _save(figure, path)


def _wrapped(title: str, width: int = 64) -> str:
    """A title broken into lines that fit a default-width figure at font size 10."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) if title else title
