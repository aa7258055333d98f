"""A generic power-law-drift device that users parameterise in physical units."""

from __future__ import annotations

import dataclasses
from typing import Any

from mosaicnet.devices.array_ops import ArrayOps
from mosaicnet.devices.models import DeviceModel
from mosaicnet.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerLawDriftDevice(DeviceModel):
    r"""Device with linear programming/read noise and per-device power-law drift.

    .. math::

        G_\mathrm{prog} &= G_T + (a_p + b_p G_T)\,\xi_p \\
        \nu &= |\nu_\mu + \nu_\sigma \xi_\nu| \quad\text{(drawn once per device)} \\
        G(t) &= G_\mathrm{prog}\,(t/t_0)^{-\nu} \\
        \sigma_\mathrm{read} &= a_r + b_r\,G(t)

    with :math:`\xi` standard normal. This is the phenomenological PCM drift
    law of Ielmini et al. (IEEE Trans. Electron Devices 54, 308, 2007) and
    Nandakumar et al. (J. Appl. Phys. 124, 152135, 2018); use it to describe
    your own device.

    Parameters
    ----------
    prog_sigma_offset_siemens, prog_sigma_slope : float
        ``a_p`` (siemens) and ``b_p`` (dimensionless) of the programming noise.
    nu_mean, nu_std : float
        Mean and standard deviation of the normal variable whose absolute
        value is the drift exponent.
    read_sigma_offset_siemens, read_sigma_slope : float
        ``a_r`` (siemens) and ``b_r`` (dimensionless) of the read noise.
    """

    prog_sigma_offset_siemens: float = 0.0
    prog_sigma_slope: float = 0.0
    nu_mean: float
    nu_std: float = 0.0
    read_sigma_offset_siemens: float = 0.0
    read_sigma_slope: float = 0.0

    def _validate(self) -> None:
        for name in (
            "prog_sigma_offset_siemens",
            "prog_sigma_slope",
            "nu_std",
            "read_sigma_offset_siemens",
            "read_sigma_slope",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{type(self).__name__}: {name}={getattr(self, name)!r} must be >= 0"
                )

    def programming_sigma(self, g_target: Any, ops: ArrayOps) -> Any:
        return self.prog_sigma_offset_siemens + self.prog_sigma_slope * g_target

    def sample_drift_parameter(self, g_target: Any, xi: Any, ops: ArrayOps) -> Any:
        return ops.abs(self.nu_mean + self.nu_std * xi)

    def drift_law(self, g_prog: Any, parameter: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        t0 = ops.constant("device_t0", self.t0_s, "second")
        return g_prog * (t_eff_s / t0) ** (-parameter)

    def read_sigma(self, g_drifted: Any, g_prog: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        return self.read_sigma_offset_siemens + self.read_sigma_slope * g_drifted
