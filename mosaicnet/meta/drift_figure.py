"""Figure of a drift curve: few-shot accuracy on the chip against read time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def plot_drift_curve(curve: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write accuracy (seen and unseen classes, 95 % CI bars) against read time to ``path``.

    Parameters
    ----------
    curve
        The dict of :func:`mosaicnet.meta.chip_evaluation.drift_curve`.
    path
        Output file; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times = np.asarray(curve["times_s"], dtype=np.float64)
    # Read times span seconds to months: a log axis; t = 0 is drawn at the first
    # positive time's decade below so that it stays visible.
    positive = times[times > 0]
    floor = positive.min() / 10 if positive.size else 1.0
    x = np.where(times > 0, times, floor)
    # A figure on its own Agg canvas: pyplot's backend (a notebook's) is left alone.
    figure = Figure(figsize=(5.5, 3.6))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for kind, marker in (("seen", "o"), ("unseen", "s")):
        mean = 100 * np.asarray(curve[f"accuracy_{kind}"], dtype=np.float64)
        half = 100 * np.nan_to_num(np.asarray(curve[f"ci95_{kind}"], dtype=np.float64))
        axis.errorbar(x, mean, yerr=half, marker=marker, capsize=3, label=f"{kind} classes")
    axis.set_xscale("log")
    axis.set_xticks(x)
    axis.set_xticklabels(curve.get("labels") or [f"{t:g} s" for t in times])
    axis.minorticks_off()
    axis.axhline(100 / curve["n_way"], color="0.6", linestyle=":", label="chance")
    axis.set_xlabel("read time after programming")
    axis.set_ylabel(f"{curve['n_way']}-way accuracy (%)")
    compensation = "with" if curve["drift_compensation"] else "without"
    axis.set_title(
        f"Chip in the loop ({curve['device_model']}, {compensation} drift compensation)",
        fontsize=10,
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=150)
    return target
