"""Surrogate-gradient spike functions for the torch clone.

A spike is the Heaviside step of the distance to threshold, ``z = H(v - thr)``;
its derivative is zero almost everywhere, so training replaces it in the
backward pass by a smooth *surrogate derivative* of ``x = v - thr`` (Neftci,
Mostafa & Zenke, IEEE Signal Processing Magazine 36(6), 2019). The forward
pass stays the exact step, so the clone's spikes are those of the Brian2
network.

Available surrogates (``slope`` is the sharpness ``s``):

``"fast_sigmoid"`` (default)
    ``1 / (s |x| + 1)^2``, the derivative of the fast sigmoid ``x / (1 + s|x|)``
    of SuperSpike (Zenke & Ganguli, Neural Computation 30(6), 2018). The
    published configuration uses ``s = 10`` (EIS-Hub/meta-mosaic ``network.py``,
    :data:`PUBLISHED_SLOPE`). Peak 1 at threshold.
``"sigmoid"``
    ``s * sigma(s x) * (1 - sigma(s x))``, the derivative of the logistic
    ``sigma(s x)`` (Zenke & Vogels, Neural Computation 33(4), 2021). Peak ``s / 4``.
``"triangular"``
    ``max(0, 1 - s |x|)``, the piecewise-linear pseudo-derivative of Bellec
    et al. (NeurIPS 2018) with unit height and half-width ``1 / s``.

Every surrogate is a :class:`torch.autograd.Function` written with
``setup_context`` and ``generate_vmap_rule = True``, so it works under
``torch.func.vmap`` and ``torch.func.grad``; its backward is computed with
differentiable torch operations on the saved input, so second-order
gradients (MAML through an inner SGD step) flow through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mosaicnet.errors import ConfigError

#: Sharpness of the fast-sigmoid surrogate in the published code (EIS-Hub/meta-mosaic).
PUBLISHED_SLOPE = 10.0


def fast_sigmoid_derivative(x: torch.Tensor, slope: float) -> torch.Tensor:
    """``1 / (slope * |x| + 1)^2`` (SuperSpike, Zenke & Ganguli 2018)."""
    return 1.0 / (slope * x.abs() + 1.0) ** 2


def sigmoid_derivative(x: torch.Tensor, slope: float) -> torch.Tensor:
    """``slope * sigma(slope x) * (1 - sigma(slope x))`` (Zenke & Vogels 2021)."""
    s = torch.sigmoid(slope * x)
    return slope * s * (1.0 - s)


def triangular_derivative(x: torch.Tensor, slope: float) -> torch.Tensor:
    """``max(0, 1 - slope * |x|)`` (Bellec et al. 2018, unit height)."""
    return torch.clamp(1.0 - slope * x.abs(), min=0.0)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, surrogate backward; subclasses set :attr:`derivative`."""

    generate_vmap_rule = True
    derivative: Callable[[torch.Tensor, float], torch.Tensor]

    @staticmethod
    def forward(x: torch.Tensor, slope: float) -> torch.Tensor:
        # Strict inequality: Brian2's threshold is ``v > threshold``.
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, slope = inputs
        ctx.save_for_backward(x)
        ctx.slope = slope

    @classmethod
    def backward(cls, ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        # Plain torch ops on the saved input: with create_graph=True autograd
        # records them, which is what makes second-order gradients work.
        return grad_output * cls.derivative(x, ctx.slope), None


class FastSigmoidSpike(_SpikeFunction):
    """Spike with the fast-sigmoid surrogate derivative (the default)."""

    derivative = staticmethod(fast_sigmoid_derivative)


class SigmoidSpike(_SpikeFunction):
    """Spike with the logistic-sigmoid surrogate derivative."""

    derivative = staticmethod(sigmoid_derivative)


class TriangularSpike(_SpikeFunction):
    """Spike with the triangular (piecewise-linear) surrogate derivative."""

    derivative = staticmethod(triangular_derivative)


#: Surrogates by name.
SURROGATES: dict[str, type[_SpikeFunction]] = {
    "fast_sigmoid": FastSigmoidSpike,
    "sigmoid": SigmoidSpike,
    "triangular": TriangularSpike,
}


def spike_function(
    name: str = "fast_sigmoid", slope: float = PUBLISHED_SLOPE
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``f(x) = H(x)`` whose backward is the named surrogate derivative.

    Parameters
    ----------
    name
        One of :data:`SURROGATES`.
    slope
        Sharpness ``s`` (> 0; published fast-sigmoid value: 10).

    Raises
    ------
    ConfigError
        Unknown name or non-positive slope.
    """
    if name not in SURROGATES:
        raise ConfigError(
            f"unknown surrogate {name!r}; choose one of {', '.join(sorted(SURROGATES))}"
        )
    slope = float(slope)
    if not slope > 0 or slope == float("inf"):
        raise ConfigError(f"surrogate slope must be a positive finite number, got {slope}")
    function = SURROGATES[name]

    def spike(x: torch.Tensor) -> torch.Tensor:
        return function.apply(x, slope)

    spike.__doc__ = f"H(x) with the {name} surrogate derivative (slope {slope})."
    return spike
