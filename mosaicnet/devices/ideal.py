"""The ideal device: weights map to conductances and back exactly, forever."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from mosaicnet.devices.array_ops import ArrayOps
from mosaicnet.devices.models import DeviceModel


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdealDevice(DeviceModel):
    """A device without programming noise, drift or read noise.

    ``G_prog = G_target`` and ``G(t) = G_prog`` at every read. The conductance
    range (0 to 10 uS by default) is arbitrary: with no non-idealities it only
    sets the unit of the conductances, never the weights. Finite levels
    (``n_levels``) still apply, so the ideal device with levels isolates the
    effect of quantisation.
    """

    g_min_siemens: float = 0.0
    g_max_siemens: float = 10e-6
    t0_s: float = 1.0
    programming_noise: bool = False
    drift: bool = False
    read_noise: bool = False

    label: ClassVar[str] = "ideal"

    def programming_sigma(self, g_target: Any, ops: ArrayOps) -> Any:
        return 0.0 * g_target

    def sample_drift_parameter(self, g_target: Any, xi: Any, ops: ArrayOps) -> Any:
        return 0.0 * xi

    def drift_law(self, g_prog: Any, parameter: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        return g_prog

    def read_sigma(self, g_drifted: Any, g_prog: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        return 0.0 * g_drifted
