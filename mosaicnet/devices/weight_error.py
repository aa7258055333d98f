"""How far read weights wander from the programmed ones: the weight-error-versus-time table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from mosaicnet.devices.compensation import GlobalDriftCompensation
from mosaicnet.devices.mapping import checked_weights
from mosaicnet.devices.models import DeviceModel
from mosaicnet.devices.programming import program_weights
from mosaicnet.devices.registry import get_device_model

#: Read times after programming reported by default (a month is 30 days).
STANDARD_READ_TIMES_S: dict[str, float] = {
    "1 s": 1.0,
    "1 h": 3600.0,
    "1 day": 86400.0,
    "1 month": 30 * 86400.0,
}


def reference_weights(seed: int = 0, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """The fixed test matrix: standard normal times 0.1, from ``numpy.random.default_rng(seed)``."""
    return np.random.default_rng(seed).normal(size=shape) * 0.1


def relative_weight_error(weights_read: Any, weights: Any) -> float:
    """``mean |w_read - w| / mean |w|`` (dimensionless)."""
    target = checked_weights(weights)
    scale = float(np.abs(target).mean())
    if scale == 0:
        raise ValueError("the relative weight error of an all-zero weight array is undefined")
    return float(np.abs(np.asarray(weights_read) - target).mean() / scale)


def weight_error_table(
    models: Iterable[str | DeviceModel],
    *,
    weights: Any = None,
    times_s: Sequence[float] = tuple(STANDARD_READ_TIMES_S.values()),
    seed: int = 0,
    drift_compensation: bool = False,
    progress: bool = False,
) -> dict[str, dict[float, float]]:
    """Relative weight error of each model at each read time.

    Parameters
    ----------
    models : iterable of str or DeviceModel
        Presets or models.
    weights : array_like, optional
        Weights to program; default :func:`reference_weights` of ``seed``.
    times_s : sequence of float
        Read times after programming (seconds).
    seed : int
        Seeds the default weights, the programming and every read.
    drift_compensation : bool
        Apply :class:`GlobalDriftCompensation` (calibrated right after programming).
    progress : bool
        Show a tqdm bar over models x times.

    Returns
    -------
    dict
        ``{model name: {t_s: error}}``.
    """
    target = reference_weights(seed) if weights is None else checked_weights(weights)
    devices = [get_device_model(m) for m in models]
    table: dict[str, dict[float, float]] = {}
    with tqdm(total=len(devices) * len(times_s), disable=not progress, desc="weight error") as bar:
        for index, device in enumerate(devices):
            rng = np.random.default_rng([seed, index])
            chip = program_weights(target, device, rng=rng)
            compensation = (
                GlobalDriftCompensation.calibrate(chip, rng=rng) if drift_compensation else None
            )
            row = {}
            for t in times_s:
                read = chip.read_weights(float(t), rng=rng)
                if compensation is not None:
                    read = compensation.apply(read)
                row[float(t)] = relative_weight_error(read, target)
                bar.update()
            table[device.name] = row
    return table


def format_weight_error_table(
    table: Mapping[str, Mapping[float, float]], *, labels: Mapping[float, str] | None = None
) -> str:
    """A Markdown table, errors in percent, one row per model."""
    names = {t: f"{t:g} s" for row in table.values() for t in row}
    names.update({t: label for label, t in STANDARD_READ_TIMES_S.items() if t in names})
    if labels:
        names.update(labels)
    times = sorted(names)
    lines = [
        "| device | " + " | ".join(names[t] for t in times) + " |",
        "|---|" + "---:|" * len(times),
    ]
    for model, row in table.items():
        cells = [f"{100 * row[t]:.2f} %" if t in row else "" for t in times]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
