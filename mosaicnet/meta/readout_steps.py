"""The readout's inner SGD steps as one autograd operation on compiled kernels.

:func:`mosaicnet.meta.maml.adapt_readout` differentiates its inner steps with
autograd: each step gathers the trace rows at the units' peak times
(``(tasks, units, S, n_rec)``, about 4 MB at meta-batch 8) and its backward
writes two outer products of that size, adds them, copies them into one
gradient per step and scatters all of them into the trace. With ten steps that
memory traffic, not arithmetic, is most of the meta-gradient's extra cost.

:func:`readout_steps` computes the same steps (``readout_kernels.c``) reading
the trace rows in place, and their reverse-mode derivative with respect to the
starting readout, the trace and the learning rates by hand. It is first order
(the meta-gradient of the readout-only path differentiates the closed-form
inner gradient once; a second derivative is refused); the peak times are
constants, as in :func:`~mosaicnet.meta.maml.adapt_readout`. Where it cannot
run (no compiler, ``MOSAICNET_NATIVE=0``, a GPU, ``torch.func.vmap`` or nested
``torch.func.grad``) the caller keeps the autograd steps, which compute the
same function (tested against each other in float64).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import torch

from mosaicnet.native_build import NativeLibrary
from mosaicnet.network.fused_recurrence import transform_levels
from mosaicnet.network.native_kernels import storage_tensor

__all__ = ["KERNELS", "readout_steps", "readout_steps_available"]

_POINTER = ctypes.c_void_p
_LONG = ctypes.c_long
#: The compiled forward and backward of the inner steps, per floating-point type.
KERNELS = NativeLibrary(
    Path(__file__).with_name("readout_kernels.c"),
    {
        "readout_steps_forward": [
            _LONG, _LONG, _LONG, _LONG, _LONG, _LONG, _POINTER, _POINTER, _POINTER, _POINTER,
            _POINTER, _POINTER, _POINTER, _POINTER, ctypes.c_int,
        ],
        "readout_steps_backward": [
            _LONG, _LONG, _LONG, _LONG, _LONG, _LONG, _POINTER, _POINTER, _POINTER, _POINTER,
            _POINTER, _POINTER, _POINTER, _POINTER, _POINTER, _POINTER, _POINTER, ctypes.c_int,
        ],
    },
    fallback="the readout's inner steps run as torch operations",
)  # fmt: skip


def readout_steps_available(*tensors: torch.Tensor) -> bool:
    """True where :func:`readout_steps` can run on ``tensors`` (the trace, readout, rates)."""
    grad_levels, batched = transform_levels(*tensors)
    if batched or grad_levels > 1:
        return False
    if any(t.device.type != "cpu" for t in tensors):
        return False
    return KERNELS.functions(tensors[0].dtype) is not None


def readout_steps(
    w_start: torch.Tensor,
    trace: torch.Tensor,
    rates: torch.Tensor,
    times: torch.Tensor,
    target: torch.Tensor,
    inside: torch.Tensor | None,
) -> torch.Tensor:
    """``K`` inner SGD steps of each task's readout, differentiable (first order).

    Parameters
    ----------
    w_start
        ``(B, n_rec, n_out)`` readout each task starts from.
    trace
        ``(B, S, T, n_rec)`` support readout traces.
    rates
        ``(B, K)`` learning rate of each task's step ``k`` (curvature scale applied).
    times
        ``(B, K, n_out, S)`` peak time of unit ``c`` on sample ``s`` at step ``k``.
    target
        ``(B, n_out, S)`` one-hot labels, unit-major.
    inside
        ``(B, n_out)`` bool: the units the softmax normalises over; None: all.

    Returns
    -------
    torch.Tensor
        ``(B, n_rec, n_out)``: the adapted readouts.
    """
    grad_levels, _ = transform_levels(w_start, trace, rates)
    functions = KERNELS.functions(trace.dtype)
    if functions is None:
        raise RuntimeError(f"compiled readout steps unavailable: {KERNELS.failure}")
    return _ReadoutSteps.apply(
        w_start, trace, rates, times, target, inside, functions, grad_levels == 1
    )[0]


def _plain(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tensor`` unwrapped from torch.func, contiguous, in ``dtype``."""
    tensor = storage_tensor(tensor)
    return tensor.to(dtype).contiguous() if dtype is not None else tensor.contiguous()


class _ReadoutSteps(torch.autograd.Function):
    @staticmethod
    def forward(
        w_start: torch.Tensor, trace: torch.Tensor, rates: torch.Tensor, times: torch.Tensor,
        target: torch.Tensor, inside: torch.Tensor | None, functions: Any, transformed: bool,
    ) -> tuple[torch.Tensor, ...]:  # fmt: skip
        with torch._C._DisableFuncTorch():
            dtype = trace.dtype
            trace, rates = _plain(trace), _plain(rates, dtype)
            times, target = _plain(times, torch.int64), _plain(target, dtype)
            n_tasks, n_samples, n_times, n_rec = trace.shape
            n_steps, n_units = times.shape[1], times.shape[2]
            weights = trace.new_empty((n_tasks, n_steps + 1, n_units, n_rec))
            weights[:, 0] = storage_tensor(w_start).transpose(-1, -2)
            prob = trace.new_empty((n_tasks, n_steps, n_units, n_samples))
            grad = trace.new_empty((n_tasks, n_steps, n_units, n_rec))
            mask = None if inside is None else _plain(inside, torch.uint8)
            functions.readout_steps_forward(
                n_tasks, n_steps, n_units, n_samples, n_times, n_rec, trace.data_ptr(),
                times.data_ptr(), target.data_ptr(), 0 if mask is None else mask.data_ptr(),
                rates.data_ptr(), weights.data_ptr(), prob.data_ptr(), grad.data_ptr(),
                torch.get_num_threads(),
            )  # fmt: skip
            adapted = weights[:, n_steps].transpose(-1, -2).contiguous()
            return adapted, weights, prob, grad

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        _, trace, rates, times, target, _, functions, transformed = inputs
        _, *saved = output
        ctx.mark_non_differentiable(*saved)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(trace, rates, times, target, *saved)
        ctx.functions = functions
        ctx.transformed = transformed

    @staticmethod
    def backward(ctx: Any, grad_adapted: torch.Tensor | None, *_: Any) -> tuple[Any, ...]:
        # torch.func.grad always differentiates with create_graph; plain autograd asks
        # for a graph of the backward only to differentiate it again, which this is not.
        if torch.is_grad_enabled() and not ctx.transformed:
            raise RuntimeError(
                "the compiled readout steps have a first-order backward only; for second "
                "derivatives call adapt_readout without compiled=True"
            )
        nothing = (None,) * 8
        if grad_adapted is None:
            return nothing
        trace, rates, times, target, weights, prob, grad = ctx.saved_tensors
        with torch.no_grad(), torch._C._DisableFuncTorch():
            dtype = trace.dtype
            trace, rates = _plain(trace), _plain(rates, dtype)
            times, target = _plain(times, torch.int64), _plain(target, dtype)
            weights, prob, grad = _plain(weights), _plain(prob), _plain(grad)
            n_tasks, n_samples, n_times, n_rec = trace.shape
            n_steps, n_units = times.shape[1], times.shape[2]
            # The kernel turns dloss/dw_K into dloss/dw_0 in place: a copy, unit-major.
            grad_w = storage_tensor(grad_adapted).transpose(-1, -2).to(dtype).contiguous()
            grad_trace = torch.zeros_like(trace)
            grad_rates = trace.new_empty((n_tasks, n_steps))
            work = trace.new_empty((n_tasks, 2 * n_units * n_samples + n_units * n_rec))
            ctx.functions.readout_steps_backward(
                n_tasks, n_steps, n_units, n_samples, n_times, n_rec, trace.data_ptr(),
                times.data_ptr(), target.data_ptr(), rates.data_ptr(), weights.data_ptr(),
                prob.data_ptr(), grad.data_ptr(), grad_w.data_ptr(), grad_trace.data_ptr(),
                grad_rates.data_ptr(), work.data_ptr(), torch.get_num_threads(),
            )  # fmt: skip
        return grad_w.transpose(-1, -2), grad_trace, grad_rates, None, None, None, None, None
