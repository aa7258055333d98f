"""Signed weights <-> differential conductance pairs, with optional quantisation.

A signed weight is stored on two devices, ``w = w_scale * (G+ - G-) / (G_max - G_min)``
with each ``G`` in ``[G_min, G_max]``. A positive weight raises ``G+`` above
``G_min`` and leaves ``G-`` at ``G_min`` (and the reverse for a negative one), so
the idle device of a pair sits in its lowest, least-drifting state and a
zero weight is two ``G_min`` devices. ``w_scale`` is the weight that maps to a
full-range pair; it is explicit (derive it from ``max |w|`` once and store it
with the programmed array, so later reads and updates use the same scale).

For a device with ``n_levels`` levels each target snaps to the nearest of the
``n_levels`` equally spaced conductances ``G_min + k (G_max - G_min)/(n_levels - 1)``,
so a mapped-and-unmapped weight is within half a level
(``w_scale / (2 (n_levels - 1))``) of the original.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from mosaicnet.devices.array_ops import NUMPY_OPS, ArrayOps
from mosaicnet.devices.models import DeviceModel
from mosaicnet.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ConductancePair:
    """Target conductances of a differential pair array (siemens) and its weight scale."""

    g_plus: np.ndarray
    g_minus: np.ndarray
    w_scale: float


def checked_weights(weights: Any, *, what: str = "weights") -> np.ndarray:
    """``weights`` as a float64 array; :class:`ConfigError` naming the first NaN/inf entry."""
    array = np.asarray(weights, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(
            f"{what} contain {int(bad.sum())} non-finite value(s) (first at index {index}: "
            f"{array[index]!r}); fix the weights before mapping them to conductances"
        )
    return array


def derive_w_scale(weights: Any) -> float:
    """The weight scale ``max |w|`` (1.0 for an all-zero array, which maps to ``G_min`` pairs)."""
    largest = float(np.max(np.abs(checked_weights(weights)), initial=0.0))
    return largest if largest > 0 else 1.0


def check_w_scale(w_scale: Any) -> float:
    """``w_scale`` as a positive finite float, else :class:`ConfigError`."""
    try:
        value = float(w_scale)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"w_scale={w_scale!r} must be a positive number") from error
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"w_scale={w_scale!r} must be a positive finite number")
    return value


def quantise_conductance(g: Any, model: DeviceModel) -> Any:
    """Snap conductances to the model's ``n_levels`` equally spaced levels (identity if None).

    Works on numpy arrays and torch tensors alike (both round half to even).
    """
    if model.n_levels is None:
        return g
    step = (model.g_max_siemens - model.g_min_siemens) / (model.n_levels - 1)
    return model.g_min_siemens + ((g - model.g_min_siemens) / step).round() * step


def target_conductances(
    weights: Any, model: DeviceModel, w_scale: Any, ops: ArrayOps = NUMPY_OPS
) -> tuple[Any, Any]:
    """``(G+, G-)`` targets for weights already inside ``[-w_scale, w_scale]`` (any array module).

    This is the mapping shared by programming (numpy) and the training-time
    perturbation (torch); it does not validate its input.
    """
    span = model.g_max_siemens - model.g_min_siemens
    g_plus = model.g_min_siemens + ops.clip(weights, 0.0, None) / w_scale * span
    g_minus = model.g_min_siemens + ops.clip(-weights, 0.0, None) / w_scale * span
    g_min, g_max = model.g_min_siemens, model.g_max_siemens
    # The clip only removes rounding error of the level grid (one ulp above G_max).
    return (
        ops.clip(quantise_conductance(g_plus, model), g_min, g_max),
        ops.clip(quantise_conductance(g_minus, model), g_min, g_max),
    )


def weights_to_conductances(
    weights: Any, model: DeviceModel, *, w_scale: float | None = None, clip: bool = False
) -> ConductancePair:
    """Map signed weights to target conductance pairs.

    Parameters
    ----------
    weights : array_like
        Signed weights, any shape; NaN or inf raise :class:`ConfigError`.
    model : DeviceModel
        Supplies ``[G_min, G_max]`` and ``n_levels``.
    w_scale : float, optional
        Weight of a full-range pair; default ``max |w|`` (see :func:`derive_w_scale`).
    clip : bool
        Saturate weights beyond ``w_scale`` at the full range instead of
        raising :class:`ConfigError`.
    """
    array = checked_weights(weights)
    scale = derive_w_scale(array) if w_scale is None else check_w_scale(w_scale)
    largest = float(np.max(np.abs(array), initial=0.0))
    if largest > scale:
        if not clip:
            raise ConfigError(
                f"weights reach |w| = {largest:g}, beyond w_scale = {scale:g}, which cannot be "
                "stored in [G_min, G_max]; pass a larger w_scale, or clip=True to saturate them"
            )
        array = np.clip(array, -scale, scale)
    g_plus, g_minus = target_conductances(array, model, scale)
    return ConductancePair(g_plus=g_plus, g_minus=g_minus, w_scale=scale)


def conductances_to_weights(g_plus: Any, g_minus: Any, model: DeviceModel, w_scale: Any) -> Any:
    """``w = w_scale * (G+ - G-) / (G_max - G_min)`` (numpy arrays or torch tensors)."""
    return w_scale * (g_plus - g_minus) / (model.g_max_siemens - model.g_min_siemens)
