"""The torch surrogate-gradient clone of the Brian2 network, built from the same spec.

The clone computes, step by step, what :mod:`mosaicnet.network.brian_network`
simulates, in the order of Brian2's schedule inside one time step:

1. ``groups``: exact integration of the neuron equations over one ``dt``
   (no input arrives between steps, so the linear equations are solved
   exactly). The update constants are not typed here: :func:`exact_linear_update`
   asks Brian2's own ``exact`` state updater for the update code of the
   spec's equations and reads the constants off it with sympy. With an
   exponential synaptic current this gives ``I' = a_II I`` and
   ``v' = a_vI I + a_vv v`` with the OLD ``I`` (as Brian2 does).
2. ``thresholds``: ``z_t = H(v - threshold)`` (strict ``>``), with a
   surrogate derivative in the backward pass (:mod:`mosaicnet.network.surrogate`).
3. ``synapses``: ``v += x_t @ W_in + z_t @ (W_rec * mask)`` (into ``I``
   instead of ``v`` with a synaptic current); the readout gets ``z_t @ W_out``.
4. ``resets``: ``v -= threshold * z_t`` (subtractive reset).

So an input spike in bin ``t`` can make a neuron fire in step ``t + 1`` at the
earliest: in Brian2 the threshold is tested before the synapses of the same
step deliver. The readout is non-spiking: its potential after step ``t`` is
``v_out[t] = kappa * v_out[t-1] + z_t @ W_out`` with ``kappa`` from the readout
equation, i.e. ``v_out = trace @ W_out`` where ``trace`` is the same leaky
filter applied to the spikes (:meth:`TorchClone.readout_trace`). The readout is
thus linear in ``W_out`` given the trace, which MAML's inner loop uses.

In float64 with ideal devices and no noise, clone and Brian2 produce identical
spike trains and readout traces equal to ~1e-13 (sums of synaptic inputs are
added in a different order); :mod:`mosaicnet.network.equivalence` checks it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.network.spec import NetworkSpec, check_input_shape, input_spikes
from mosaicnet.network.surrogate import PUBLISHED_SLOPE, spike_function

#: Names of the weight tensors in a parameter dict, in spec order.
PARAM_NAMES: tuple[str, ...] = ("w_in", "w_rec", "w_out")


@dataclass(frozen=True)
class LinearUpdate:
    """One exact integration step of linear, homogeneous neuron equations.

    Attributes
    ----------
    variables
        State variables, in the order of the equations.
    matrix
        ``(n, n)`` float64: ``new[k] = sum_j matrix[k, j] * old[j]``.
    code
        Brian2's abstract update code the matrix was read from.
    """

    variables: tuple[str, ...]
    matrix: np.ndarray
    code: str

    def coefficient(self, target: str, source: str) -> float:
        """``d new[target] / d old[source]``."""
        return float(self.matrix[self.variables.index(target), self.variables.index(source)])


def exact_linear_update(equations: str, namespace: Mapping[str, Any], dt: Any) -> LinearUpdate:
    """Derive the exact one-step update of linear equations from Brian2's integrator.

    Parameters
    ----------
    equations
        Brian2 equation string (e.g. :meth:`NeuronParameters.recurrent_equations`).
    namespace
        Values of the constants the equations use (Brian2 quantities or floats).
    dt
        Time step (Brian2 time).

    Returns
    -------
    LinearUpdate

    Notes
    -----
    The constants are evaluated in float64 with Python's ``math`` functions
    (the C library's ``exp``, as Brian2's C++ code uses), in the expression
    order Brian2 prints them in, so they equal Brian2's to the last bit in
    the checked configurations.
    """
    from brian2 import Equations
    from brian2.parsing.sympytools import str_to_sympy
    from brian2.stateupdaters.exact import linear

    eqs = Equations(equations)
    # Definition order (diff_eq_names is a set, whose order varies between runs).
    names = tuple(name for name in eqs.keys() if name in eqs.diff_eq_names)
    code = linear(eqs, {})
    updates: dict[str, sympy.Expr] = {}
    for line in code.splitlines():
        target, _, expression = (part.strip() for part in line.partition("="))
        if target.startswith("_") and target[1:] in names:
            updates[target[1:]] = str_to_sympy(expression)
    values = {"dt": _si(dt)}
    values.update({name: _si(value) for name, value in namespace.items()})
    matrix = np.zeros((len(names), len(names)))
    for row, target in enumerate(names):
        expression = updates[target]
        by_name = {str(symbol): symbol for symbol in expression.free_symbols}
        states = {by_name[name] for name in names if name in by_name}
        constant_part = expression.subs({symbol: 0 for symbol in states})
        if constant_part != 0:
            raise ConfigError(
                f"the equations of {target} have a drive that does not scale with the state "
                f"({constant_part}); the clone supports homogeneous linear neuron equations"
            )
        for col, source in enumerate(names):
            if source not in by_name:
                continue
            coefficient = sympy.diff(expression, by_name[source])
            if coefficient.free_symbols & states:
                raise ConfigError(f"the update of {target} is not linear in {source}")
            matrix[row, col] = _evaluate(coefficient, values, target, source)
    return LinearUpdate(variables=names, matrix=matrix, code=code)


def _si(value: Any) -> float:
    """A Brian2 quantity or number as a float in SI units (as Brian2 passes it to code)."""
    return float(np.asarray(value, dtype=np.float64))


def _evaluate(expression: sympy.Expr, values: dict[str, float], target: str, source: str) -> float:
    missing = sorted(str(s) for s in expression.free_symbols if str(s) not in values)
    if missing:
        raise ConfigError(
            f"the update of {target} refers to {', '.join(missing)}, which the spec's "
            "neuron parameters do not define"
        )
    symbols = sorted(expression.free_symbols, key=str)
    function = sympy.lambdify(symbols, expression, modules="math")
    try:
        value = float(function(*(values[str(s)] for s in symbols)))
    except (ZeroDivisionError, OverflowError, ValueError) as error:
        raise ConfigError(
            f"the exact update coefficient d{target}/d{source} cannot be evaluated for these "
            f"parameters ({error})"
        ) from error
    if not math.isfinite(value):
        raise ConfigError(f"the exact update coefficient d{target}/d{source} is {value}")
    return value


class TorchClone:
    """Spike-exact torch version of the network of a :class:`NetworkSpec`.

    Parameters
    ----------
    spec
        The network; the clone keeps its sizes, neuron parameters and mask.
    dtype
        ``torch.float32`` for training, ``torch.float64`` for equivalence checks.
    device
        Torch device of the constants (mask, readout filter).
    surrogate
        Surrogate derivative name (:data:`mosaicnet.network.surrogate.SURROGATES`).
    surrogate_slope
        Its sharpness (published fast sigmoid: 10).

    Notes
    -----
    All methods are pure functions of their arguments (parameters are passed
    in, never stored), so they compose with ``torch.func.grad`` and
    ``torch.func.vmap``.

    Examples
    --------
    >>> clone = TorchClone(spec)                      # doctest: +SKIP
    >>> params = clone.init_params()                  # doctest: +SKIP
    >>> z, v_out = clone.forward(params, x)           # doctest: +SKIP
    >>> logits = v_out.max(dim=1).values              # doctest: +SKIP
    """

    def __init__(
        self,
        spec: NetworkSpec,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        surrogate: str = "fast_sigmoid",
        surrogate_slope: float = PUBLISHED_SLOPE,
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.spec = spec
        self.dtype = dtype
        self.device = torch.device(device)
        self.surrogate = surrogate
        self.surrogate_slope = float(surrogate_slope)
        self._spike = spike_function(surrogate, surrogate_slope)
        neuron = spec.neuron
        self.threshold = float(neuron.threshold)
        self.dt_s = _si(neuron.dt)
        self.has_synaptic_current = neuron.tau_syn is not None
        self.recurrent_update = exact_linear_update(
            neuron.recurrent_equations(), neuron.namespace(), neuron.dt
        )
        self.readout_update = exact_linear_update(
            neuron.readout_equations(), neuron.namespace(), neuron.dt
        )
        #: Per-step decay of the membrane (``a_vv``).
        self.alpha = self.recurrent_update.coefficient("v", "v")
        #: Per-step decay of the readout (``kappa``).
        self.kappa = self.readout_update.coefficient("v", "v")
        if self.has_synaptic_current:
            self.a_vi = self.recurrent_update.coefficient("v", "I")
            self.a_ii = self.recurrent_update.coefficient("I", "I")
        self.rec_mask = torch.as_tensor(spec.rec_mask, dtype=torch.bool, device=self.device)
        self._mask_float = self.rec_mask.to(dtype)

    # ------------------------------------------------------------------ sizes
    @property
    def n_in(self) -> int:
        return int(self.spec.n_in)

    @property
    def n_rec(self) -> int:
        return int(self.spec.n_rec)

    @property
    def n_out(self) -> int:
        return int(self.spec.n_out)

    def __repr__(self) -> str:
        current = "with synaptic current" if self.has_synaptic_current else "delta synapses"
        return (
            f"TorchClone(n_in={self.n_in}, n_rec={self.n_rec}, n_out={self.n_out}, {current}, "
            f"dtype={self.dtype}, surrogate={self.surrogate!r} slope {self.surrogate_slope})"
        )

    # ------------------------------------------------------------- parameters
    def init_params(self) -> dict[str, torch.Tensor]:
        """Copies of the spec's weights as tensors ``{"w_in", "w_rec", "w_out"}``.

        Leaf tensors without ``requires_grad``; set it (or use ``torch.func``)
        to train them.
        """
        return {
            name: torch.tensor(getattr(self.spec, name), dtype=self.dtype, device=self.device)
            for name in PARAM_NAMES
        }

    def to_spec(self, params: Mapping[str, torch.Tensor]) -> NetworkSpec:
        """A new spec with these weights (float64; ``w_rec`` masked)."""
        missing = [name for name in PARAM_NAMES if name not in params]
        if missing:
            raise ConfigError(f"params lack {', '.join(missing)}; expected {PARAM_NAMES}")
        arrays = {
            name: params[name].detach().to("cpu", torch.float64).numpy().copy()
            for name in PARAM_NAMES
        }
        arrays["w_rec"] = arrays["w_rec"] * self.spec.rec_mask
        return self.spec.copy_with(**arrays)

    # ----------------------------------------------------------------- forward
    def encode(self, x: Any) -> torch.Tensor:
        """Check the input shape and apply the shared input encoding (0/1, clone dtype)."""
        x = torch.as_tensor(x, device=self.device)
        check_input_shape(tuple(x.shape), self.n_in)
        return input_spikes(x).to(self.dtype)

    def recurrent_spikes(self, params: Mapping[str, torch.Tensor], x: Any) -> torch.Tensor:
        """Spikes of the recurrent layer, ``(B, T, n_rec)`` 0/1 in the clone's dtype.

        Parameters
        ----------
        params
            Needs ``"w_in"`` ``(n_in, n_rec)`` and ``"w_rec"`` ``(n_rec, n_rec)``;
            ``w_rec`` is multiplied by :attr:`rec_mask`.
        x
            ``(B, T, n_in)`` input; encoded with
            :func:`mosaicnet.network.spec.input_spikes`.
        """
        x = self.encode(x)
        w_in = params["w_in"]
        # Dense product with the masked weights: on CPU it beat a gather/scatter
        # over the synapse list even at the Mosaic's 2 % density (torch 2.x).
        w_rec = params["w_rec"] * self._mask_float
        # Input synapses do not depend on the network state: all steps in one
        # matrix product instead of one small product per step.
        drive = x @ w_in
        threshold = self.threshold
        v = drive.new_zeros(drive.shape[0], drive.shape[2])
        current = v if self.has_synaptic_current else None
        spikes = []
        # unbind, not drive[:, t]: the backward of T indexing ops would build T
        # full-size gradient tensors; unbind's backward stacks them once.
        for drive_t in drive.unbind(dim=1):
            # 'groups': exact integration, old current into v (Brian2's order).
            if current is not None:
                v, current = self.a_vi * current + self.alpha * v, self.a_ii * current
            else:
                v = self.alpha * v
            # 'thresholds'
            z = self._spike(v - threshold)
            # 'synapses'
            delivered = torch.addmm(drive_t, z, w_rec)  # drive_t + z @ w_rec
            if current is not None:
                current = current + delivered
            else:
                v = v + delivered
            # 'resets'
            v = v - threshold * z
            spikes.append(z)
        return torch.stack(spikes, dim=1)

    def readout_trace(self, z: torch.Tensor) -> torch.Tensor:
        """The readout's leaky filter of the spikes: ``trace[t] = kappa trace[t-1] + z[t]``.

        ``(B, T, n_rec)`` in, ``(B, T, n_rec)`` out; the same recursion (and the
        same float operations) as Brian2's readout state update.
        """
        trace = torch.zeros_like(z[..., 0, :])
        traces = []
        for z_t in z.unbind(dim=-2):
            trace = self.kappa * trace + z_t
            traces.append(trace)
        return torch.stack(traces, dim=-2)

    def readout(self, w_out: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
        """Readout potential ``trace @ w_out``, ``(B, T, n_out)``; index ``t``: after step ``t``."""
        return trace @ w_out

    def forward(
        self, params: Mapping[str, torch.Tensor], x: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Recurrent spikes ``(B, T, n_rec)`` and readout potential ``(B, T, n_out)``."""
        z = self.recurrent_spikes(params, x)
        return z, self.readout(params["w_out"], self.readout_trace(z))

    __call__ = forward
