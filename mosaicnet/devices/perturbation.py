"""Hardware-aware training: the device model as a torch forward perturbation.

The forward pass uses the weights as the chip would hold them some time after
programming: mapped to differential pairs, programmed with programming noise,
drift parameters drawn, drifted to a read time drawn log-uniformly from
``[t_min_s, t_max_s]`` (one per call: the whole array is read at once), read
with read noise and mapped back. The backward pass is straight through:
``w + (w_perturbed - w).detach()`` has the perturbed value and the gradient of
the identity, so the optimiser updates the weights as if unperturbed.

This is the evaluation model itself: the mapping (:func:`~mosaicnet.devices.
mapping.target_conductances`) and the device laws (:class:`~mosaicnet.devices.
models.DeviceModel`) are the same functions the numpy programming code calls,
evaluated on tensors through :class:`~mosaicnet.devices.array_ops.TorchOps`.
Every call draws fresh noise, drift parameters and read time, because in
training each forward pass stands for a fresh programming of the chip.

It improves on the published recipe ``w + N(0, 1) * 0.05 * max |w|`` on non-zero
weights (Demirag et al. 2021, YigitDemirag/srnn-pcm) by using the device's own
conductance-dependent noise and drift.

**Randomness under torch.func.** The function has no data-dependent Python
branches, so it runs under ``torch.func.grad`` and ``torch.func.vmap``. Under
``vmap`` pass ``randomness="different"`` (each batch element, e.g. each task of
a meta-batch, gets its own chip sample) or ``"same"``; the default
``"error"`` refuses random operations. A ``torch.Generator`` works under
``vmap(..., randomness="different")`` as of torch 2.x.
"""

from __future__ import annotations

import math
from typing import Any

from mosaicnet.devices.array_ops import TorchOps
from mosaicnet.devices.compensation import compensation_factor
from mosaicnet.devices.mapping import check_w_scale, conductances_to_weights, target_conductances
from mosaicnet.devices.models import DeviceModel
from mosaicnet.devices.registry import get_device_model
from mosaicnet.errors import ConfigError


def read_time_range(t_read_s: float | tuple[float, float]) -> tuple[float, float]:
    """``(t_min_s, t_max_s)`` from a fixed time or a range; :class:`ConfigError` if invalid."""
    if isinstance(t_read_s, tuple | list):
        if len(t_read_s) != 2:
            raise ConfigError(f"t_read_s={t_read_s!r} must be a time or a (t_min_s, t_max_s) pair")
        low, high = (float(v) for v in t_read_s)
    else:
        low = high = float(t_read_s)
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
        raise ConfigError(
            f"read-time range {t_read_s!r} must satisfy 0 <= t_min_s <= t_max_s (seconds)"
        )
    if low == 0 and high > 0:
        raise ConfigError(
            f"read-time range {t_read_s!r}: a log-uniform range needs t_min_s > 0; times "
            "before the model's t0 read as t0 anyway, so use t_min_s = t0"
        )
    return low, high


def perturb_weights(
    weights: Any,
    model: DeviceModel | str,
    *,
    t_read_s: float | tuple[float, float],
    generator: Any = None,
    w_scale: float | None = None,
    drift_compensation: bool = False,
) -> Any:
    """Weights as read from a freshly programmed chip, with a straight-through gradient.

    Parameters
    ----------
    weights : torch.Tensor
        Signed weights (any shape, floating point).
    model : DeviceModel or str
        Device model or preset name.
    t_read_s : float or (float, float)
        Read time after programming (seconds), or a range sampled
        log-uniformly once per call.
    generator : torch.Generator, optional
        Source of all noise; ``None`` uses torch's global generator.
    w_scale : float, optional
        Weight of a full-range pair; default ``max |w|`` of this call (what
        :func:`~mosaicnet.devices.programming.program_weights` would derive).
        Weights beyond ``w_scale`` saturate, as on the chip.
    drift_compensation : bool
        Apply global drift compensation (calibration read right after
        programming), as :class:`~mosaicnet.devices.GlobalDriftCompensation`
        does at evaluation.

    Returns
    -------
    torch.Tensor
        Forward value: the perturbed weights; gradient: identity.
    """
    import torch

    device = get_device_model(model)
    t_min, t_max = read_time_range(t_read_s)
    ops = TorchOps()
    w = weights.detach()
    options = {"dtype": w.dtype, "device": w.device, "generator": generator}

    if w_scale is None:
        largest = w.abs().max()
        scale = largest + (largest == 0)  # an all-zero array maps to G_min pairs at scale 1
    else:
        scale = check_w_scale(w_scale)
    w_stored = torch.clamp(w, -scale, scale)

    if t_min == t_max:
        t_read = torch.full((), t_min, dtype=w.dtype, device=w.device)
    else:
        u = torch.rand((), **options)
        t_read = torch.exp(math.log(t_min) + (math.log(t_max) - math.log(t_min)) * u)

    def normal() -> Any:
        return torch.randn(w.shape, **options)

    targets = target_conductances(w_stored, device, scale, ops)
    state = []
    for g_target in targets:
        g_prog = device.programmed_conductance(g_target, normal(), ops)
        parameter = device.sample_drift_parameter(g_target, normal(), ops)
        state.append((g_prog, parameter))

    def read(t: Any) -> Any:
        g_plus, g_minus = (
            device.read_conductance(
                g_prog, parameter, t, ops, xi=normal() if device.read_noise else None
            )
            for g_prog, parameter in state
        )
        return conductances_to_weights(g_plus, g_minus, device, scale)

    w_read = read(t_read)
    if drift_compensation:
        reference = read(torch.zeros((), dtype=w.dtype, device=w.device)).abs().sum()
        w_read = compensation_factor(reference, w_read) * w_read
    return weights + (w_read - weights).detach()
