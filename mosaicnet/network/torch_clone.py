"""The torch surrogate-gradient clone of the Brian2 network, built from the same spec.

The clone computes, step by step, what :mod:`mosaicnet.network.brian_network`
simulates, in the order of Brian2's schedule inside one time step. The
recurrent neurons are the spec's neuron model compiled from its Brian2 code
(:mod:`mosaicnet.network.neuron_compiler`); nothing model-specific is typed
here:

1. ``groups``: one integration step of the model's equations by Brian2's own
   state updater (``exact`` for linear equations: for the published LIF
   ``v' = exp(-dt / tau_mem) v``).
2. ``thresholds``: ``z_t = H(lhs - rhs)`` of the threshold comparison, with a
   surrogate derivative in the backward pass (:mod:`mosaicnet.network.surrogate`);
   refractory neurons do not spike.
3. ``synapses``: the input target gets ``x_t @ W_in``, the recurrent target
   ``z_t @ (W_rec * mask)`` (the LIF: both into ``v``); the readout gets
   ``z_t @ W_out``.
4. ``resets``: the model's reset statements for the neurons that spiked
   (the LIF: ``v -= thr``).

So an input spike in bin ``t`` can make a neuron fire in step ``t + 1`` at the
earliest: in Brian2 the threshold is tested before the synapses of the same
step deliver. The readout is non-spiking: its potential after step ``t`` is
``v_out[t] = kappa * v_out[t-1] + z_t @ W_out`` with ``kappa`` from the readout
equation, i.e. ``v_out = trace @ W_out`` where ``trace`` is the same leaky
filter applied to the spikes (:meth:`TorchClone.readout_trace`). The readout is
thus linear in ``W_out`` given the trace, which MAML's inner loop uses.

In float64 with ideal devices and no noise, clone and Brian2 produce identical
spike trains and readout traces equal to ~1e-13 (sums of synaptic inputs are
added in a different order); :mod:`mosaicnet.network.equivalence` checks it for
every preset.

This step-by-step loop is the reference. Models with an affine step and no
refractory period (``lif``, ``cuba_lif``, ``alif``, ``adlif``) run by default on
the fused layer of :mod:`mosaicnet.network.fused_recurrence`: the same forward
operations without autograd recording, and a hand-written first-order backward
(BPTT), equal to autograd through this loop to rounding (``fused`` option).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from brian2 import second

from mosaicnet.errors import ConfigError
from mosaicnet.network.fused_recurrence import (
    FusedRecurrence,
    fused_unsupported_reason,
    transform_levels,
)
from mosaicnet.network.fused_trace import leaky_trace
from mosaicnet.network.input_drive import event_driven_drive
from mosaicnet.network.neuron_compiler import CompiledNeuron, NeuronState, compile_neuron
from mosaicnet.network.neuron_update import exact_linear_update
from mosaicnet.network.spec import NetworkSpec, check_input_shape, input_spikes
from mosaicnet.network.surrogate import PUBLISHED_SLOPE, spike_function

__all__ = ["PARAM_NAMES", "TorchClone"]

#: Names of the weight tensors in a parameter dict, in spec order.
PARAM_NAMES: tuple[str, ...] = ("w_in", "w_rec", "w_out")


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
    fused
        Run the recurrent layer on the fused layer
        (:mod:`mosaicnet.network.fused_recurrence`): ``"auto"`` (default) where the
        model allows it (affine, not refractory) and the call is not under
        ``torch.func.vmap`` or nested ``torch.func.grad``, else the reference loop;
        ``True`` insists (an error where it cannot); ``False`` always the reference.

    Notes
    -----
    All methods are pure functions of their arguments (parameters are passed
    in, never stored), so they compose with ``torch.func.grad`` and
    ``torch.func.vmap``. The fused layer has a first-order backward only: a
    second derivative through the recurrent layer with plain autograd
    (``create_graph=True``) raises an error; use ``fused=False`` (or
    :meth:`reference`) there.

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
        fused: bool | str = "auto",
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if not (isinstance(fused, bool) or fused == "auto"):
            raise ConfigError(f"fused must be True, False or 'auto', got {fused!r}")
        self.spec = spec
        self.dtype = dtype
        self.device = torch.device(device)
        self.surrogate = surrogate
        self.surrogate_slope = float(surrogate_slope)
        self._spike = spike_function(surrogate, surrogate_slope)
        neuron = spec.neuron
        self.dt_s = float(neuron.dt / second)
        #: The recurrent neurons compiled from the spec's Brian2 code.
        self.neuron: CompiledNeuron = compile_neuron(neuron.model, neuron.dt)
        self.readout_update = exact_linear_update(
            neuron.readout_equations(), neuron.readout_namespace(), neuron.dt
        )
        #: Per-step decay of the readout (``kappa``).
        self.kappa = self.readout_update.coefficient("v", "v")
        self.rec_mask = torch.as_tensor(spec.rec_mask, dtype=torch.bool, device=self.device)
        self._mask_float = self.rec_mask.to(dtype)
        self.fused = fused
        reason = fused_unsupported_reason(self.neuron)
        if fused is True and reason is not None:
            raise ConfigError(
                f"fused=True, but neuron model {neuron.model.name!r} cannot use the fused "
                f"recurrent layer: {reason}; use fused='auto' or False"
            )
        #: The fused layer, or None where the reference loop always runs.
        self.fused_layer: FusedRecurrence | None = None
        if fused is not False and reason is None:
            self.fused_layer = FusedRecurrence(self.neuron, surrogate, surrogate_slope)

    def reference(self) -> TorchClone:
        """The same clone on the reference loop (``fused=False``); constants shared."""
        clone = copy.copy(self)
        clone.fused = False
        clone.fused_layer = None
        return clone

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
        return (
            f"TorchClone(n_in={self.n_in}, n_rec={self.n_rec}, n_out={self.n_out}, "
            f"neuron model {self.neuron.model.name!r}, "
            f"dtype={self.dtype}, surrogate={self.surrogate!r} slope {self.surrogate_slope}, "
            f"fused={self.fused!r})"
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
        x = torch.as_tensor(x, device=self.device)
        check_input_shape(tuple(x.shape), self.n_in)
        spikes_in = x if x.dtype == torch.bool else input_spikes(x)
        # Dense product with the masked weights: on CPU it beat a gather/scatter
        # over the synapse list even at the Mosaic's 2 % density (torch 2.x).
        w_rec = params["w_rec"] * self._mask_float
        # Input synapses do not depend on the network state: all steps in one
        # product (event-driven where the fused layer's kernels run) instead of
        # one small product per step.
        drive = self._input_drive(spikes_in, params["w_in"], w_rec)
        if self._use_fused(drive, w_rec):
            return self.fused_layer(drive, w_rec)
        neuron = self.neuron
        input_target = neuron.model.input_target
        recurrent_target = neuron.model.recurrent_target
        state = neuron.initial_state(drive[:, 0])
        spikes = []
        # unbind, not drive[:, t]: the backward of T indexing ops would build T
        # full-size gradient tensors; unbind's backward stacks them once.
        for step, drive_t in enumerate(drive.unbind(dim=1)):
            # 'groups': one step of Brian2's state updater (refractory neurons frozen).
            active = neuron.not_refractory(state, step)
            neuron.integrate(state, active, step * self.dt_s)
            # 'thresholds': (condition) and not_refractory
            distance, equal = neuron.threshold_distance(state)
            z = self._spike(distance)
            if equal is not None:
                z = z + equal.to(z.dtype)
            if active is not None:
                z = z * active.to(z.dtype)
                # A spike makes the neuron refractory before its synapses deliver.
                active = active & (z == 0)
            # 'synapses'
            if input_target == recurrent_target:
                self._deliver(state, input_target, torch.addmm(drive_t, z, w_rec), active)
            else:
                self._deliver(state, input_target, drive_t, active)
                self._deliver(state, recurrent_target, z @ w_rec, active)
            # 'resets'
            neuron.reset(state, z, step)
            spikes.append(z)
        return torch.stack(spikes, dim=1)

    def _input_drive(
        self, spikes: torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor
    ) -> torch.Tensor:
        """``spikes @ w_in`` for boolean input spikes: event-driven
        (:mod:`mosaicnet.network.input_drive`) where the fused layer runs on its
        compiled kernels, else the dense product."""
        if self.fused_layer is not None and spikes.dim() == 3:
            grad_levels, batched = transform_levels(spikes, w_in, w_rec)
            kernels = self.fused_layer.kernels_for(w_in)
            if kernels is not None and not batched and grad_levels <= 1:
                return event_driven_drive(spikes, w_in, kernels, transformed=grad_levels == 1)
        return spikes.to(self.dtype) @ w_in

    def _use_fused(self, drive: torch.Tensor, w_rec: torch.Tensor) -> bool:
        """Whether this call runs on the fused layer (see the ``fused`` option)."""
        if self.fused_layer is None:
            return False
        if self.fused is True:
            return True  # the layer itself refuses the transforms it cannot run under
        grad_levels, batched = transform_levels(drive, w_rec)
        return not batched and grad_levels <= 1

    def _deliver(
        self, state: NeuronState, target: str, delivered: torch.Tensor, active: Any
    ) -> None:
        """``target_post += w`` (times ``weight_unit``), dropped where Brian2's
        conditional write blocks it (``(unless refractory)`` targets)."""
        if self.neuron.weight_unit != 1.0:
            delivered = delivered * self.neuron.weight_unit
        if active is not None and target in self.neuron.frozen:
            delivered = delivered * active.to(delivered.dtype)
        state.values[target] = state.values[target] + delivered

    def readout_trace(self, z: torch.Tensor) -> torch.Tensor:
        """The readout's leaky filter of the spikes: ``trace[t] = kappa trace[t-1] + z[t]``.

        ``(B, T, n_rec)`` in, ``(B, T, n_rec)`` out; the same recursion (and the
        same float operations) as Brian2's readout state update.
        """
        if self.fused is not False and z.dim() == 3 and not transform_levels(z)[1]:
            return leaky_trace(z, self.kappa)
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
