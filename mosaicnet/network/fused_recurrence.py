"""The recurrent layer as one autograd operation over the whole time loop, with BPTT by hand.

The reference clone (:meth:`mosaicnet.network.torch_clone.TorchClone.recurrent_spikes`)
records about ten small autograd operations per time step and replays them
backwards. For neuron models whose step is affine (linear sub-threshold update,
affine threshold and reset, no refractoriness: :attr:`CompiledNeuron.affine`;
the ``lif``, ``cuba_lif``, ``alif`` and ``adlif`` presets) this module runs the
loop once without recording and differentiates it by hand.

Forward
    The calls the reference makes, in its order (the compiled model's
    ``integrate``, ``threshold_distance`` and ``reset``), without gradient
    tracking. The synapses: at steps with few spikes (on the CPU) the rows of
    ``W_rec`` of the neurons that spiked are added to their samples' input, as
    Brian2 delivers spikes, instead of the reference's dense ``addmm`` of a spike
    matrix that is mostly zeros. The sums then come in another order, so the state
    equals the reference's to rounding; the spikes are identical unless a
    neuron's distance to threshold is within rounding of zero (in float64 never
    seen in the tests, which compare spikes for equality).
What is stored for the backward pass
    The spikes as ``bool`` (one byte per neuron and step) and the surrogate
    derivative at the threshold distance ``d = lhs - rhs`` (one float per neuron
    and step), evaluated in the forward loop while ``d`` is in cache: over all
    steps at once in the backward it cost five passes over a ``(B, T, N)`` array.
    The state has one float per variable (two for ``cuba_lif``, ``alif``,
    ``adlif``) and the backward needs nothing else from it, except for models
    whose reset has a state-dependent spike derivative (a reset to a value,
    ``v = 0``): only those also keep the pre-reset state. Records are time-major
    ``(T, B, N)``, so that each step reads and writes one contiguous block.
Backward (BPTT)
    With ``lambda`` the gradient of the loss with respect to the state after the
    reset of step ``t``, step ``t`` backwards is: through the reset (its state
    Jacobian is the reset matrix where the neuron spiked and the identity
    elsewhere; its spike derivative, which the reference keeps because its reset
    is ``v - thr * z`` with ``z`` not detached, is
    :attr:`AffineForm.reset_spike_matrix`), through the synapses (gradient of the
    input drive and of ``z @ W_rec``), the surrogate derivative of the threshold
    (the reference's own function, :mod:`mosaicnet.network.surrogate`), and the
    transpose of the update matrix. The recurrent weight gradient is one product
    ``Z^T G`` over all steps at the end. Equal to autograd through the reference
    to rounding (tests: 1e-10 relative in float64).

Order of derivatives
    First order only. A second backward pass (``create_graph=True`` and a
    gradient of the gradient, or nested ``torch.func.grad``) raises a
    :class:`RuntimeError` instead of silently dropping terms. That is enough for
    MAML with the inner loop on the readout only
    (:func:`mosaicnet.meta.maml.meta_loss`): the inner steps differentiate the
    readout given the spike traces, never the recurrent layer, and the outer
    (second-order) meta-gradient differentiates the traces once. The inner loop
    on all weights differentiates the layer inside the inner loop and again in
    the outer one: it runs the reference (``TorchClone(fused="auto")`` falls back
    by itself under ``torch.func.vmap`` and nested ``torch.func.grad``).

Sparse inputs and spikes
    Recurrent spikes are rare (0.1-0.5 % of neurons and steps in training at the
    published size): the forward synapses and the recurrent weight gradient
    ``Z^T G`` (the rows of ``G`` at the spikes) are event-driven. On the torch
    loop, below one spike in :data:`SPARSE_SPIKE_RATIO` (dense above). The input
    product ``x @ W_in`` is outside this operation
    (:mod:`mosaicnet.network.input_drive`: event-driven in the compiled kernels,
    dense otherwise; on the CPU torch's sparse and ``embedding_bag`` products were
    slower than the dense one). The backward's ``grad @ W_rec^T`` is dense: the
    gradient reaching the neurons is.

Compiled kernels
    On the CPU, in float32 and float64, the loop runs in the kernels of
    ``fused_kernels.c`` (:mod:`mosaicnet.network.native_kernels`, built once with
    the system's C compiler): the forward's whole time loop in one call (each
    sample's loop on one thread, its state in cache; the synapses always
    event-driven), and per backward step one call between torch's dense
    products ``grad @ W_rec^T``, then ``Z^T G`` in one call. They make the torch loop's
    operations in its order and roundings (no fused multiply-adds), except the
    threshold distance, formed as ``threshold_weights . state - threshold_offset``
    of :class:`~mosaicnet.network.neuron_compiler.AffineForm` rather than by the
    model's expression: equal to rounding (for ``lif`` and ``cuba_lif``, whose
    threshold is ``v > v_th``, exactly). The tests compare both paths: identical
    spikes, records and gradients equal to 1e-12 relative in float64. The torch
    loop runs where the kernels cannot be built, on other devices, and with
    ``FusedRecurrence(..., native=False)`` or ``MOSAICNET_NATIVE=0``.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import torch
from torch._C import _functorch

from mosaicnet.errors import ConfigError
from mosaicnet.network import native_kernels
from mosaicnet.network.native_kernels import Kernels, ModelParameters, storage_tensor
from mosaicnet.network.neuron_compiler import CompiledNeuron
from mosaicnet.network.surrogate import SURROGATES

__all__ = ["FusedRecurrence", "fused_unsupported_reason", "transform_levels"]

#: Spikes are handled as events (rows of W_rec added per spike, rows of the gradient
#: gathered per spike) when fewer than one in this many entries are spikes, else by
#: a dense product.
SPARSE_SPIKE_RATIO = 50


def fused_unsupported_reason(neuron: CompiledNeuron) -> str | None:
    """Why ``neuron`` cannot run on the fused layer, or ``None`` when it can."""
    if neuron.refractory_steps is not None:
        return "it has a refractory period"
    if neuron.affine is None:
        return "its update, threshold or reset is not affine in the state"
    return None


def transform_levels(*tensors: torch.Tensor) -> tuple[int, bool]:
    """``torch.func`` transforms around ``tensors``: (number of ``grad`` levels, any ``vmap``).

    Read from the tensors' functorch wrappers (torch's ``_functorch`` bindings;
    no public API tells this).
    """
    grad_levels, batched = 0, False
    for tensor in tensors:
        levels = 0
        while _functorch.is_functorch_wrapped_tensor(tensor):
            if _functorch.is_batchedtensor(tensor):
                batched = True
            elif _functorch.is_gradtrackingtensor(tensor):
                levels += 1
            tensor = _functorch.get_unwrapped(tensor)
        grad_levels = max(grad_levels, levels)
    return grad_levels, batched


class FusedRecurrence:
    """The fused recurrent layer of one compiled neuron model and surrogate.

    Parameters
    ----------
    neuron
        An affine, non-refractory compiled model (:func:`fused_unsupported_reason`).
    surrogate, slope
        The surrogate derivative (:data:`mosaicnet.network.surrogate.SURROGATES`)
        and its sharpness, as the reference clone uses them.
    native
        Run the time loop's element-wise work in the compiled kernels
        (:mod:`mosaicnet.network.native_kernels`) for float32 and float64 tensors on
        the CPU: ``"auto"`` (default) where they can be built, ``False`` never (the
        torch loop, which computes the same function).

    Raises
    ------
    ConfigError
        The model cannot be fused, or the surrogate is unknown.
    """

    def __init__(
        self, neuron: CompiledNeuron, surrogate: str, slope: float, native: bool | str = "auto"
    ) -> None:
        reason = fused_unsupported_reason(neuron)
        if reason is not None:
            raise ConfigError(
                f"neuron model {neuron.model.name!r} cannot use the fused recurrent layer: "
                f"{reason}; use the reference path (TorchClone(..., fused=False or 'auto'))"
            )
        if surrogate not in SURROGATES:
            raise ConfigError(
                f"unknown surrogate {surrogate!r}; choose one of {', '.join(sorted(SURROGATES))}"
            )
        self.neuron = neuron
        self.derivative = SURROGATES[surrogate].derivative
        self.slope = float(slope)
        form = neuron.affine
        states = neuron.states
        # Python floats: scalar-tensor products without building small tensors.
        self.update = form.update.matrix.tolist()
        self.threshold = form.threshold_weights.tolist()
        self.reset = form.reset_matrix.tolist()
        self.reset_is_identity = bool((form.reset_matrix == np.eye(len(states))).all())
        self.spike_matrix = form.reset_spike_matrix.tolist()
        self.spike_offset = form.reset_spike_offset.tolist()
        #: Whether the reset's spike derivative depends on the state (then it is stored).
        self.keeps_state = bool((form.reset_spike_matrix != 0).any())
        self.input_index = states.index(neuron.model.input_target)
        self.recurrent_index = states.index(neuron.model.recurrent_target)
        self.native = (
            native is not False
            and surrogate in native_kernels.SURROGATE_CODES
            and (len(states) <= native_kernels.MAX_STATES)
        )
        self.parameters = self._kernel_parameters(surrogate) if self.native else None

    def _kernel_parameters(self, surrogate: str) -> ModelParameters:
        """The model as the compiled kernels take it."""
        form = self.neuron.affine
        parameters = ModelParameters(
            n_states=len(self.neuron.states),
            input_index=self.input_index,
            recurrent_index=self.recurrent_index,
            inclusive=int(self.neuron.inclusive),
            surrogate=native_kernels.SURROGATE_CODES[surrogate],
            slope=self.slope,
            weight_unit=self.neuron.weight_unit,
            threshold_offset=form.threshold_offset,
        )
        for field, values in (
            ("update", form.update.matrix),
            ("update_offset", form.update.offset),
            ("threshold", form.threshold_weights),
            ("reset", form.reset_matrix),
            ("reset_offset", form.reset_offset),
            ("spike_matrix", form.reset_spike_matrix),
            ("spike_offset", form.reset_spike_offset),
            ("initial", [self.neuron.initial[name] for name in self.neuron.states]),
        ):
            parameters.set_array(field, np.asarray(values))
        return parameters

    def kernels_for(self, tensor: torch.Tensor) -> Kernels | None:
        """The compiled kernels that run on ``tensor``'s dtype and device, or None."""
        if not self.native or tensor.device.type != "cpu":
            return None
        return native_kernels.load_kernels(tensor.dtype)

    def __call__(self, drive: torch.Tensor, w_rec: torch.Tensor) -> torch.Tensor:
        """Spikes ``(B, T, N)`` 0/1 from the input drive ``(B, T, N)`` and masked ``W_rec``.

        Raises
        ------
        RuntimeError
            Under ``torch.func.vmap`` or nested ``torch.func.grad`` (use the reference).
        """
        grad_levels, batched = transform_levels(drive, w_rec)
        if batched or grad_levels > 1:
            raise RuntimeError(
                "the fused recurrent layer runs neither under torch.func.vmap nor under "
                "nested torch.func.grad (it has a first-order backward only); use "
                "TorchClone(..., fused='auto'), which takes the reference path there"
            )
        return _FusedFunction.apply(drive, w_rec, self, grad_levels == 1)[0]

    # ------------------------------------------------------------------ forward
    def forward(
        self, drive: torch.Tensor, w_rec: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The reference's time loop without autograd.

        Returns spikes (float, ``(B, T, N)``, a view of time-major storage),
        spikes (bool), the surrogate derivative at every step, time-major
        ``(T, B, N)``, and, when :attr:`keeps_state`, the pre-reset state
        ``(n_states, T, B, N)`` (else None).
        """
        kernels = self.kernels_for(drive)
        if kernels is not None:
            # Plain tensors throughout (see storage_tensor), not torch.func's wrappers.
            with torch._C._DisableFuncTorch():
                return self._compiled_forward(kernels, drive, w_rec)
        neuron = self.neuron
        input_target = neuron.model.input_target
        recurrent_target = neuron.model.recurrent_target
        weight_unit = neuron.weight_unit
        # Time-major storage: each step writes one contiguous (B, N) block. Writing
        # into (B, T, N) slices instead costs more than the step's arithmetic.
        n_batch, n_steps, n_rec = drive.shape
        spikes = drive.new_empty((n_steps, n_batch, n_rec))
        surrogate = drive.new_empty((n_steps, n_batch, n_rec))
        pre_reset = None
        if self.keeps_state:
            pre_reset = drive.new_empty((len(neuron.states), *spikes.shape))
        state = neuron.initial_state(drive[:, 0])
        # Event-driven synapses on the CPU; on a GPU finding the spikes would make the
        # host wait for the device at every step.
        event_driven = drive.device.type == "cpu"

        def deliver(target: str, delivered: torch.Tensor) -> None:
            # As TorchClone._deliver (no refractory models here).
            if weight_unit != 1.0:
                delivered = delivered * weight_unit
            state.values[target] = state.values[target] + delivered

        for step, drive_t in enumerate(drive.unbind(dim=1)):
            neuron.integrate(state, None, step * neuron.dt_s)
            distance, equal = neuron.threshold_distance(state)
            z = spikes[step]
            torch.gt(distance, 0, out=z)
            if equal is not None:
                z.add_(equal.to(z.dtype))
            # The backward's only use of the distance: evaluated here, on data in cache,
            # rather than over all steps at once in the backward.
            surrogate[step] = self.derivative(distance, self.slope)
            if input_target == recurrent_target:
                deliver(input_target, _synaptic_input(drive_t, z, w_rec, event_driven))
            else:
                deliver(input_target, drive_t)
                deliver(recurrent_target, _synaptic_input(None, z, w_rec, event_driven))
            if pre_reset is not None:
                for k, name in enumerate(neuron.states):
                    pre_reset[k, step] = state.values[name]
            neuron.reset(state, z, step)
        return spikes.transpose(0, 1), spikes.bool(), surrogate, pre_reset

    def _compiled_forward(
        self, kernels: Kernels, drive: torch.Tensor, w_rec: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` in the compiled kernel: the whole loop in one call."""
        drive, w_rec = storage_tensor(drive).contiguous(), storage_tensor(w_rec).contiguous()
        n_batch, n_steps, n_rec = drive.shape
        shape = (n_steps, n_batch, n_rec)
        spikes = drive.new_empty(shape)
        spiked = torch.empty(shape, dtype=torch.bool)
        surrogate = drive.new_empty(shape)
        pre_reset = drive.new_empty((len(self.neuron.states), *shape)) if self.keeps_state else None
        kernels.forward(
            ctypes.byref(self.parameters), n_batch, n_steps, n_rec, drive.data_ptr(),
            w_rec.data_ptr(), spikes.data_ptr(), spiked.data_ptr(), surrogate.data_ptr(),
            None if pre_reset is None else pre_reset.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        return spikes.transpose(0, 1), spiked, surrogate, pre_reset

    # ----------------------------------------------------------------- backward
    def backward(
        self,
        grad_spikes: torch.Tensor,
        spiked: torch.Tensor,
        surrogate: torch.Tensor,
        pre_reset: torch.Tensor | None,
        w_rec: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """BPTT: gradients of the input drive ``(B, T, N)`` and of ``W_rec`` ``(N, N)``.

        ``grad_spikes`` is ``(B, T, N)``; ``spiked``, ``surrogate`` and
        ``pre_reset`` are the forward's time-major records.
        """
        kernels = self.kernels_for(surrogate)
        if kernels is not None:
            with torch._C._DisableFuncTorch():
                return self._compiled_backward(
                    kernels, grad_spikes, (spiked, surrogate, pre_reset), w_rec
                )
        n_states = len(self.neuron.states)
        weight_unit = self.neuron.weight_unit
        same_target = self.input_index == self.recurrent_index
        grad_spikes = grad_spikes.transpose(0, 1)
        grad_drive = torch.empty_like(surrogate)
        grad_delivered = grad_drive if same_target else torch.empty_like(surrogate)
        w_rec_t = w_rec.t()
        # Gradient of the loss with respect to the state after this step's reset.
        after = [torch.zeros_like(surrogate[0]) for _ in range(n_states)]
        for step in reversed(range(surrogate.shape[0])):
            z = spiked[step]
            # Through the reset: its state Jacobian is the reset matrix where z = 1.
            if self.reset_is_identity:
                before = after
            else:
                before = [
                    torch.where(z, _transposed_product(self.reset, after, col), after[col])
                    for col in range(n_states)
                ]
            # Through the synapses: target += weight_unit * (drive + z @ W_rec).
            to_input, to_recurrent = before[self.input_index], before[self.recurrent_index]
            if weight_unit != 1.0:
                to_input, to_recurrent = to_input * weight_unit, to_recurrent * weight_unit
            grad_drive[step] = to_input
            if not same_target:
                grad_delivered[step] = to_recurrent
            grad_z = torch.addmm(grad_spikes[step], to_recurrent, w_rec_t)
            self._add_reset_spike_gradient(grad_z, after, z, pre_reset, step)
            # In place: grad_z is this step's own tensor.
            grad_distance = grad_z.mul_(surrogate[step])
            integrated = [
                torch.add(before[k], grad_distance, alpha=self.threshold[k])
                if self.threshold[k]
                else before[k]
                for k in range(n_states)
            ]
            # Through the update: the transpose of its matrix.
            after = [_transposed_product(self.update, integrated, k) for k in range(n_states)]
        grad_w_rec = _spike_weighted_sum(spiked.flatten(0, 1), grad_delivered.flatten(0, 1))
        return grad_drive.transpose(0, 1), grad_w_rec

    def _compiled_backward(
        self, kernels: Kernels, grad_spikes: torch.Tensor, records: tuple, w_rec: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`backward` with each step's element-wise work in one kernel call.

        Between two calls torch's dense product ``to_recurrent @ W_rec^T``.
        ``records`` are the forward's ``(spiked, surrogate, pre_reset)``, contiguous
        and time-major; each step's part is addressed by pointer (indexing would
        build views). ``grad_spikes`` ``(B, T, N)`` may have any layout with
        contiguous rows (autograd hands it over time-major or batch-major).
        """
        spiked, surrogate, pre_reset = records
        spiked, surrogate, w_rec = (
            storage_tensor(tensor).contiguous() for tensor in (spiked, surrogate, w_rec)
        )
        grad_spikes = storage_tensor(grad_spikes)
        if grad_spikes.stride(-1) != 1:
            grad_spikes = grad_spikes.contiguous()
        if pre_reset is not None:
            pre_reset = storage_tensor(pre_reset).contiguous()
        n_steps, n_batch, n_rec = surrogate.shape
        step_size = n_batch * n_rec
        item = surrogate.element_size()
        threads = torch.get_num_threads()
        parameters = ctypes.byref(self.parameters)
        grad_drive = torch.empty_like(surrogate)
        same_target = self.input_index == self.recurrent_index
        grad_delivered = grad_drive if same_target else torch.empty_like(surrogate)
        after = surrogate.new_zeros((len(self.neuron.states), n_batch, n_rec))
        before = torch.empty_like(after)
        product = surrogate.new_empty((n_batch, n_rec))
        w_rec_t = w_rec.t()
        z, drive_grad, delivered_grad, surrogates, spikes_grad = (
            tensor.data_ptr()
            for tensor in (spiked, grad_drive, grad_delivered, surrogate, grad_spikes)
        )
        pre = None if pre_reset is None else pre_reset.data_ptr()
        after_pointer, before_pointer = after.data_ptr(), before.data_ptr()

        def step_call(update: int | None, reset: int | None) -> None:
            # The rest of step `update`, then step `reset`'s reset and synapses.
            u = 0 if update is None else update * step_size
            r = 0 if reset is None else reset * step_size
            kernels.backward_step(
                parameters, n_batch, n_rec, after_pointer, before_pointer,
                None if update is None else z + u,
                None if pre is None or update is None else pre + u * item,
                n_steps * step_size,
                spikes_grad + (update or 0) * grad_spikes.stride(1) * item,
                grad_spikes.stride(0), product.data_ptr(), surrogates + u * item,
                None if reset is None else z + r, drive_grad + r * item,
                delivered_grad + r * item, threads,
            )  # fmt: skip

        step_call(None, n_steps - 1)
        for step in reversed(range(n_steps)):
            torch.mm(grad_delivered[step], w_rec_t, out=product)
            step_call(step, step - 1 if step > 0 else None)
        grad_w_rec = w_rec.new_empty((n_rec, n_rec))
        workspace = w_rec.new_empty((threads, n_rec, n_rec))
        # Time-major records: sample b, step t at row t * B + b.
        kernels.spike_weight_gradient(
            n_batch, n_steps, n_rec, n_rec, z, n_rec, step_size, delivered_grad, n_rec,
            step_size, grad_w_rec.data_ptr(), workspace.data_ptr(), threads,
        )  # fmt: skip
        return grad_drive.transpose(0, 1), grad_w_rec

    def _add_reset_spike_gradient(
        self,
        grad_z: torch.Tensor,
        after: list[torch.Tensor],
        z: torch.Tensor,
        pre_reset: torch.Tensor | None,
        step: int,
    ) -> None:
        """Add ``sum_k after[k] * d(reset state k)/dz`` at the recorded spikes to ``grad_z``."""
        for k in range(len(after)):
            per_z = []
            for spike in (0, 1):
                value: torch.Tensor | float = self.spike_offset[spike][k]
                if pre_reset is not None:
                    for j, stored in enumerate(pre_reset):
                        if self.spike_matrix[spike][k][j]:
                            value = value + self.spike_matrix[spike][k][j] * stored[step]
                per_z.append(value)
            if not any(isinstance(value, torch.Tensor) for value in per_z) and (
                per_z[0] == per_z[1]
            ):
                # A constant derivative (``v -= thr``: -thr), whether the neuron spiked or not.
                if per_z[0]:
                    grad_z.add_(after[k], alpha=per_z[0])
                continue
            like = {"dtype": after[k].dtype, "device": after[k].device}
            derivative = torch.where(
                z, torch.as_tensor(per_z[1], **like), torch.as_tensor(per_z[0], **like)
            )
            grad_z.addcmul_(derivative, after[k])


def _synaptic_input(
    drive: torch.Tensor | None, z: torch.Tensor, w_rec: torch.Tensor, event_driven: bool
) -> torch.Tensor:
    """``drive + z @ W_rec`` (``drive`` None: zero) for one step's 0/1 spikes ``z`` ``(B, N)``.

    With ``event_driven`` and few spikes (:data:`SPARSE_SPIKE_RATIO`), the rows of
    ``W_rec`` of the neurons that spiked are added to their samples' inputs, as
    Brian2's synapses deliver spikes; the sums are equal to the dense product's to
    rounding (another order of the same terms).
    """
    if event_driven:
        samples, neurons = z.nonzero(as_tuple=True)
        if samples.numel() * SPARSE_SPIKE_RATIO <= z.numel():
            start = torch.zeros_like(z) if drive is None else drive
            return start.index_add(0, samples, w_rec.index_select(0, neurons))
    return z @ w_rec if drive is None else torch.addmm(drive, z, w_rec)


def _spike_weighted_sum(spiked: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``Z^T G`` for 0/1 spikes ``Z`` ``(R, N)`` and gradients ``G`` ``(R, N)``.

    Row ``i`` of the result sums the rows of ``G`` at the steps neuron ``i``
    spiked. Below a few per cent of spikes gathering those rows beats the dense
    product (``benchmarks/bench_fused.py``); recurrent spikes are usually far
    sparser than that.
    """
    n_spikes = int(spiked.count_nonzero())
    if n_spikes * SPARSE_SPIKE_RATIO > spiked.numel():
        return spiked.to(grad.dtype).t() @ grad
    rows, neurons = spiked.nonzero(as_tuple=True)
    total = grad.new_zeros((spiked.shape[1], grad.shape[1]))
    return total.index_add_(0, neurons, grad.index_select(0, rows))


def _transposed_product(
    matrix: list[list[float]], vectors: list[torch.Tensor], index: int
) -> torch.Tensor:
    """``sum_j matrix[j][index] * vectors[j]``: row ``index`` of ``matrix^T`` times ``vectors``."""
    total = None
    for j, vector in enumerate(vectors):
        coefficient = matrix[j][index]
        if coefficient == 0.0:
            continue
        if total is None:
            total = vector if coefficient == 1.0 else coefficient * vector
        else:
            total = torch.add(total, vector, alpha=coefficient)
    return torch.zeros_like(vectors[0]) if total is None else total


class _FusedFunction(torch.autograd.Function):
    """Autograd wrapper of :class:`FusedRecurrence` (forward and first-order backward)."""

    @staticmethod
    def forward(
        drive: torch.Tensor, w_rec: torch.Tensor, layer: FusedRecurrence, transformed: bool
    ) -> tuple[torch.Tensor, ...]:
        spikes, spiked, surrogate, pre_reset = layer.forward(drive, w_rec)
        return spikes, spiked, surrogate, *(() if pre_reset is None else (pre_reset,))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        _, w_rec, layer, transformed = inputs
        _, spiked, surrogate, *pre_reset = output
        ctx.mark_non_differentiable(spiked, surrogate, *pre_reset)
        # The records are not differentiable: no zero gradients of their size.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(spiked, surrogate, w_rec, *pre_reset)
        ctx.layer = layer
        ctx.transformed = transformed

    @staticmethod
    def backward(ctx: Any, grad_spikes: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        # torch.func.grad always differentiates with create_graph; a second level
        # was refused in FusedRecurrence.__call__. Plain autograd asks for a graph
        # of the backward only to differentiate it again, which this one is not.
        if torch.is_grad_enabled() and not ctx.transformed:
            raise RuntimeError(
                "the fused recurrent layer has a first-order backward only; for second "
                "derivatives through the recurrent layer use TorchClone(..., fused=False)"
            )
        spiked, surrogate, w_rec, *pre_reset = ctx.saved_tensors
        if grad_spikes is None:  # the spikes reached the loss only through the records
            return None, None, None, None
        with torch.no_grad():
            grad_drive, grad_w_rec = ctx.layer.backward(
                grad_spikes, spiked, surrogate, pre_reset[0] if pre_reset else None, w_rec
            )
        return grad_drive, grad_w_rec, None, None
