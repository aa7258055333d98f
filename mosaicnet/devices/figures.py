"""Figures of device behaviour: conductance distributions over time, weight error vs time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from mosaicnet.devices.mapping import ConductancePair
from mosaicnet.devices.models import DeviceModel
from mosaicnet.devices.programming import program_conductances
from mosaicnet.devices.registry import get_device_model
from mosaicnet.devices.weight_error import (
    STANDARD_READ_TIMES_S,
    reference_weights,
    weight_error_table,
)


def _figure(**subplots: Any) -> tuple[Any, Any]:
    """A figure on its own Agg canvas and its axes (files only; pyplot's backend, a
    notebook's say, is left alone). ``figsize`` and ``fig.subplots`` arguments."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=subplots.pop("figsize"))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(**subplots)


def plot_conductance_distributions(
    model: str | DeviceModel,
    path: str | PathLike[str],
    *,
    times_s: Sequence[float] = tuple(STANDARD_READ_TIMES_S.values()),
    targets_fraction: Sequence[float] = (0.1, 0.4, 0.7, 1.0),
    n_devices: int = 5000,
    seed: int = 0,
) -> Path:
    """Histograms of read conductances of devices programmed to a few targets, per read time.

    Parameters
    ----------
    model : str or DeviceModel
        Device model or preset name.
    path : path-like
        Output file (format from the suffix, e.g. ``.png``, ``.pdf``).
    times_s : sequence of float
        Read times after programming (seconds), one panel each.
    targets_fraction : sequence of float
        Targets as fractions of the range: ``G_min + f (G_max - G_min)``.
    n_devices : int
        Devices per target.
    seed : int
        Seeds programming and reads.
    """
    device = get_device_model(model)
    rng = np.random.default_rng(seed)
    span = device.g_max_siemens - device.g_min_siemens
    targets = device.g_min_siemens + np.asarray(targets_fraction, dtype=float)[:, None] * span
    g_target = np.broadcast_to(targets, (len(targets), n_devices))
    chip = program_conductances(
        ConductancePair(g_plus=g_target, g_minus=g_target, w_scale=1.0), device, rng=rng
    )
    figure, axes = _figure(
        nrows=len(times_s), ncols=1, figsize=(6.4, 1.7 * len(times_s) + 0.6), sharex=True,
        squeeze=False,
    )  # fmt: skip
    bins = np.linspace(device.g_min_siemens * 1e6, device.g_max_siemens * 1e6, 121)
    for axis, t in zip(axes[:, 0], times_s, strict=True):
        g_read, _ = chip.read_conductances(float(t), rng=rng)
        for row, target in enumerate(targets[:, 0]):
            axis.hist(
                g_read[row] * 1e6,
                bins=bins,
                histtype="stepfilled",
                alpha=0.6,
                label=f"target {target * 1e6:.3g} uS",
            )
            axis.axvline(target * 1e6, color="black", linewidth=0.6, linestyle=":")
        axis.set_ylabel("devices")
        axis.set_title(f"t = {t:g} s after programming", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("read conductance (uS)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    figure.suptitle(f"{device.name}: conductance distributions after programming", fontsize=10)
    figure.tight_layout()
    target_path = Path(path)
    figure.savefig(target_path, dpi=150)
    return target_path


def plot_weight_error_vs_time(
    models: Iterable[str | DeviceModel],
    path: str | PathLike[str],
    *,
    times_s: Sequence[float] | None = None,
    weights: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Relative weight error ``mean|w_read - w| / mean|w|`` vs time, with and without compensation.

    Solid lines: plain reads; dashed: global drift compensation.
    """
    devices = [get_device_model(m) for m in models]
    times = list(np.logspace(0, np.log10(3.2e7), 15) if times_s is None else times_s)
    target = reference_weights(seed) if weights is None else weights
    figure, axis = _figure(figsize=(6.4, 4.0))
    for compensated, style in ((False, "-"), (True, "--")):
        table = weight_error_table(
            devices,
            weights=target,
            times_s=times,
            seed=seed,
            drift_compensation=compensated,
            progress=progress,
        )
        for index, (name, row) in enumerate(table.items()):
            axis.plot(
                times,
                [100 * row[float(t)] for t in times],
                style,
                color=f"C{index}",
                marker="o" if not compensated else None,
                markersize=3,
                label=name + (" (drift compensated)" if compensated else ""),
            )
    axis.set_xscale("log")
    axis.set_xlabel("time since programming (s)")
    axis.set_ylabel("mean |w_read - w| / mean |w| (%)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    target_path = Path(path)
    figure.savefig(target_path, dpi=150)
    return target_path
