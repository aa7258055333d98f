"""Phase-change memory (PCM) presets: Nandakumar et al. 2018 and IBM aihwkit's PCM model.

``pcm_aihwkit`` follows aihwkit's ``PCMLikeNoiseModel`` except in one respect:
conductances are clipped to ``[0, G_max]`` here, aihwkit clamps only at 0 (see
:class:`AihwkitPCM`; checked by ``tests/test_devices_aihwkit_parity.py``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from mosaicnet.devices.array_ops import ArrayOps
from mosaicnet.devices.models import DeviceModel
from mosaicnet.devices.power_law import PowerLawDriftDevice
from mosaicnet.errors import ConfigError


@dataclasses.dataclass(frozen=True, kw_only=True)
class NandakumarPCM(PowerLawDriftDevice):
    r"""PCM after Nandakumar et al. (2018), as used by Demirag et al. (2021).

    .. math::

        G_d &= G_\mathrm{prog}\,\bigl((t - t_p)/38.6\ \mathrm{s}\bigr)^{-0.04} \\
        \sigma_\mathrm{read} &= 0.03\,G_d + 0.13\ \mu\mathrm{S}

    with ``G`` in ``[0.1, 12] uS`` (``G0 = 0.1 uS`` is the reset conductance
    and the lower clamp of a read).

    The drift exponent is the same for every device (``nu_std = 0``). The
    source models programming as a series of SET pulses with stochastic
    increments, a programming *scheme* rather than a target-to-conductance
    law, so this preset assumes an ideal program-and-verify: no programming
    noise unless you set ``prog_sigma_offset_siemens`` / ``prog_sigma_slope``.

    Sources: S. R. Nandakumar et al., "A phase-change memory model for
    neuromorphic computing", J. Appl. Phys. 124, 152135 (2018); constants from
    Y. Demirag et al., "Online training of spiking recurrent neural networks
    with phase-change memory synapses" (arXiv:2108.01804, 2021), public code
    YigitDemirag/srnn-pcm, ``xbar.py`` (``Gmax = 12``, ``G0 = 0.1``,
    ``v = 0.04``, ``T0 = 38.6``, ``m3 = 0.03``, ``c3 = 0.13``).
    """

    g_min_siemens: float = 0.1e-6
    g_max_siemens: float = 12e-6
    t0_s: float = 38.6
    nu_mean: float = 0.04
    nu_std: float = 0.0
    read_sigma_offset_siemens: float = 0.13e-6
    read_sigma_slope: float = 0.03

    label: ClassVar[str] = "pcm_nandakumar"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AihwkitPCM(DeviceModel):
    r"""PCM noise model of IBM aihwkit (``PCMLikeNoiseModel``), fitted on measured PCM.

    With ``g = G / G_max`` (``G_max = 25 uS``):

    .. math::

        \sigma_\mathrm{prog} &= (0.26348 + 1.9650\,g_T - 1.1731\,g_T^2)\ \mu\mathrm{S}
            \cdot G_\mathrm{max}/25\ \mu\mathrm{S} \\
        \nu &= |\mu_\nu + \sigma_\nu \xi|,\quad
            \mu_\nu = \mathrm{clip}(-0.0155 \ln g_T + 0.0244,\ 0.049,\ 0.1),\quad
            \sigma_\nu = \mathrm{clip}(-0.0125 \ln g_T - 0.0059,\ 0.008,\ 0.045) \\
        G(t) &= G_\mathrm{prog}\,(t/t_0)^{-\nu},\quad t_0 = 20\ \mathrm{s} \\
        \sigma_\mathrm{read} &= |G(t)|\,Q\,\sqrt{\ln\frac{t + t_r}{2 t_r}},\quad
            Q = \min\!\left(\frac{0.0088}{\max(g_\mathrm{prog}^{0.65}, 10^{-3})},\ 0.2\right),
            \quad t_r = 250\ \mathrm{ns}

    ``g_T`` in the logarithms is clipped below at 1e-7, as in the source.

    **Time convention.** Here ``t`` is the time since programming, and the
    laws are evaluated at ``max(t, t0)`` (no drift before ``t0``). aihwkit's
    ``t_inference`` counts from ``t0`` instead (it evaluates the laws at
    ``t_inference + t0``): to reproduce aihwkit at ``t_inference``, read at
    ``t = t_inference + 20 s``.

    **Clipping, the one difference from aihwkit.** Every conductance here
    (programmed, drifted, read) is clipped to ``[0, G_max]``; aihwkit clamps
    only at 0 and lets programming and read noise carry a device above
    ``G_max`` (noticeably only for targets within a few ``sigma_prog`` of
    ``G_max``, i.e. above about 20 uS). Otherwise the laws are aihwkit's:
    ``tests/test_devices_aihwkit_parity.py`` (optional, needs the ``aihwkit``
    extra) checks them device by device on shared normal draws and
    statistically on independent ones.

    Sources: S. R. Nandakumar et al., "Phase-change memory models for deep
    learning training and inference", ICECS 2019; M. J. Rasch et al.,
    "Hardware-aware training for large-scale and diverse deep learning
    inference workloads using in-memory computing-based accelerators", Nat.
    Commun. 14, 5282 (2023); public code IBM/aihwkit,
    ``src/aihwkit/inference/noise/pcm.py``.

    Parameters
    ----------
    prog_coeffs_siemens : tuple of 3 floats
        Polynomial coefficients of ``sigma_prog`` in ``g_T`` (siemens).
    prog_coeff_g_max_reference_siemens : float
        ``G_max`` at which those coefficients were fitted (25 uS).
    t_read_s : float
        Duration of one read, the lower cut-off of the 1/f noise (250 ns).
    prog_noise_scale, drift_scale, read_noise_scale : float
        Multipliers of the programming noise, drift exponent and read noise.
    """

    g_min_siemens: float = 0.0
    g_max_siemens: float = 25e-6
    t0_s: float = 20.0
    prog_coeffs_siemens: tuple[float, float, float] = (0.26348e-6, 1.9650e-6, -1.1731e-6)
    prog_coeff_g_max_reference_siemens: float = 25e-6
    t_read_s: float = 250e-9
    prog_noise_scale: float = 1.0
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0

    label: ClassVar[str] = "pcm_aihwkit"

    #: Lower clip of ``g`` inside the logarithms (aihwkit's ``_ZERO_CLIP``).
    _ZERO_CLIP: ClassVar[float] = 1e-7

    def _validate(self) -> None:
        coeffs = tuple(float(c) for c in self.prog_coeffs_siemens)
        if len(coeffs) != 3 or not all(math.isfinite(c) for c in coeffs):
            raise ConfigError(
                f"AihwkitPCM: prog_coeffs_siemens={self.prog_coeffs_siemens!r} must be 3 finite "
                "polynomial coefficients (siemens)"
            )
        # Stored as a tuple even when loaded from JSON (a list), so models compare equal.
        object.__setattr__(self, "prog_coeffs_siemens", coeffs)
        for name in (
            "prog_coeff_g_max_reference_siemens",
            "t_read_s",
            "prog_noise_scale",
            "drift_scale",
            "read_noise_scale",
        ):
            if getattr(self, name) < 0 or (name.endswith("_s") and getattr(self, name) == 0):
                raise ConfigError(f"AihwkitPCM: {name}={getattr(self, name)!r} must be positive")

    def _relative(self, g: Any, ops: ArrayOps) -> Any:
        return g / ops.constant("device_g_max", self.g_max_siemens, "siemens")

    def programming_sigma(self, g_target: Any, ops: ArrayOps) -> Any:
        c0, c1, c2 = self.prog_coeffs_siemens
        g = self._relative(g_target, ops)
        scale = self.prog_noise_scale * self.g_max_siemens / self.prog_coeff_g_max_reference_siemens
        return scale * (c0 + c1 * g + c2 * g * g)

    def sample_drift_parameter(self, g_target: Any, xi: Any, ops: ArrayOps) -> Any:
        log_g = ops.log(ops.clip(self._relative(g_target, ops), self._ZERO_CLIP, None))
        mu = ops.clip(-0.0155 * log_g + 0.0244, 0.049, 0.1)
        sigma = ops.clip(-0.0125 * log_g - 0.0059, 0.008, 0.045)
        return self.drift_scale * ops.abs(mu + sigma * xi)

    def drift_law(self, g_prog: Any, parameter: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        t0 = ops.constant("device_t0", self.t0_s, "second")
        return g_prog * (t_eff_s / t0) ** (-parameter)

    def read_sigma(self, g_drifted: Any, g_prog: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        g = self._relative(ops.abs(g_prog), ops)
        q = ops.clip(0.0088 / ops.clip(g**0.65, 1e-3, None), None, 0.2)
        # ln((t + t_r) / (2 t_r)) < 0 only for t < t_r, which t >= t0 never reaches;
        # the clip keeps the square root real for user models with a tiny t0.
        accumulated = ops.sqrt(
            ops.clip(ops.log((t_eff_s + self.t_read_s) / (2.0 * self.t_read_s)), 0.0, None)
        )
        return self.read_noise_scale * ops.abs(g_drifted) * q * accumulated
