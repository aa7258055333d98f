"""The input synapses' drive ``x @ W_in``, event-driven in the compiled kernels.

The inputs are spikes: at the published size a few per cent of the ``(B, T, n_in)``
entries are 1. The dense product (and its weight gradient ``x^T G``) does every
multiplication, on a float copy of the spikes; the compiled kernels
(:mod:`mosaicnet.network.native_kernels`, ``input_drive`` and
``spike_weight_gradient`` in ``fused_kernels.c``) read the spikes as bytes, add
the rows of ``W_in`` of the inputs that spiked, as Brian2's synapses deliver
them, and sum the gradient rows at the spikes. The sums come in another order
than the dense product's, so the drive equals it to rounding.

First order only, like the fused recurrent layer it feeds
(:mod:`mosaicnet.network.fused_recurrence`, "Order of derivatives"): a gradient of
the gradient raises an error.
"""

from __future__ import annotations

from typing import Any

import torch

from mosaicnet.network.native_kernels import Kernels, storage_tensor

__all__ = ["event_driven_drive"]


def event_driven_drive(
    spikes: torch.Tensor, w_in: torch.Tensor, kernels: Kernels, transformed: bool
) -> torch.Tensor:
    """``spikes @ w_in`` for boolean input spikes ``(B, T, n_in)`` on the CPU, by the kernels.

    ``transformed``: the call runs under one level of ``torch.func.grad`` (whose
    backward builds a graph that is never differentiated again). The spikes are
    data: no gradient flows to them.
    """
    if spikes.dtype != torch.bool:
        raise TypeError(f"input spikes must be boolean, got {spikes.dtype}")
    return _EventDrive.apply(spikes, w_in, kernels, transformed)


class _EventDrive(torch.autograd.Function):
    """Autograd wrapper of the kernels (forward and first-order backward)."""

    @staticmethod
    def forward(
        x: torch.Tensor, w_in: torch.Tensor, kernels: Kernels, transformed: bool
    ) -> torch.Tensor:
        with torch._C._DisableFuncTorch():
            x, w_in = storage_tensor(x).contiguous(), storage_tensor(w_in).contiguous()
            drive = w_in.new_empty((*x.shape[:-1], w_in.shape[1]))
            kernels.input_drive(
                x.numel() // x.shape[-1], x.shape[-1], w_in.shape[1], x.data_ptr(),
                w_in.data_ptr(), drive.data_ptr(), torch.get_num_threads(),
            )  # fmt: skip
        return drive

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, _, kernels, transformed = inputs
        ctx.save_for_backward(x)
        ctx.kernels = kernels
        ctx.transformed = transformed

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        if torch.is_grad_enabled() and not ctx.transformed:
            raise RuntimeError(
                "the event-driven input drive has a first-order backward only; for second "
                "derivatives through the recurrent layer use TorchClone(..., fused=False)"
            )
        (x,) = ctx.saved_tensors
        grad_w = None
        if ctx.needs_input_grad[1]:
            threads = torch.get_num_threads()
            with torch._C._DisableFuncTorch():
                x_plain = storage_tensor(x).contiguous()
                grad_plain = storage_tensor(grad)
                if grad_plain.stride(-1) != 1:
                    grad_plain = grad_plain.contiguous()
                n_batch, n_steps, n_in = x_plain.shape
                n_rec = grad_plain.shape[-1]
                grad_w = grad_plain.new_empty((n_in, n_rec))
                workspace = grad_plain.new_empty((threads, n_in, n_rec))
                # The gradient comes time-major from the fused layer: any row layout.
                ctx.kernels.spike_weight_gradient(
                    n_batch, n_steps, n_in, n_rec, x_plain.data_ptr(), n_steps * n_in, n_in,
                    grad_plain.data_ptr(), grad_plain.stride(0), grad_plain.stride(1),
                    grad_w.data_ptr(), workspace.data_ptr(), threads,
                )  # fmt: skip
        return None, grad_w, None, None
