"""The readout's leaky trace of the spikes as one autograd operation.

``trace[t] = kappa * trace[t - 1] + z[t]`` over ``T`` steps is, in the reference
(:meth:`mosaicnet.network.torch_clone.TorchClone.readout_trace`), ``2 T`` small
recorded operations whose backward stacks ``T`` gradients. Here the forward
makes the same two float operations per step (so the trace is bit-identical),
writing into one time-major buffer. Its backward is the reverse recursion
``g_z[t] = g[t] + kappa * g_z[t + 1]``, itself one operation whose backward is
the forward recursion again: both are linear, so derivatives of any order
(MAML differentiates the backward under ``torch.func.grad``) stay two loops.
On the CPU each loop is one call of the compiled kernels
(:mod:`mosaicnet.network.native_kernels`), where they can be built.
"""

from __future__ import annotations

from typing import Any

import torch

from mosaicnet.network import native_kernels
from mosaicnet.network.native_kernels import storage_tensor

__all__ = ["leaky_trace"]


def leaky_trace(z: torch.Tensor, kappa: float) -> torch.Tensor:
    """``trace[:, t] = kappa * trace[:, t - 1] + z[:, t]`` (zero start), ``z`` ``(B, T, N)``.

    Returns a contiguous ``(B, T, N)`` tensor. Not for ``torch.func.vmap`` (no
    batching rule): the reference loop serves there.
    """
    return _LeakyTrace.apply(z, float(kappa))


def _recursion(values: torch.Tensor, kappa: float, *, reverse: bool) -> torch.Tensor:
    """``out[t] = kappa * out[t -/+ 1] + values[t]`` along dim 1 of ``(B, T, N)``, zero start."""
    kernels = None
    if values.device.type == "cpu":
        kernels = native_kernels.load_kernels(values.dtype)
    if kernels is not None:
        # One pass per sample in the compiled kernel, the same two roundings per step.
        with torch._C._DisableFuncTorch():
            values = storage_tensor(values)
            if values.stride(-1) != 1:
                values = values.contiguous()
            n_batch, n_steps, n_units = values.shape
            out = values.new_empty((n_batch, n_steps, n_units))
            kernels.leaky_recursion(
                n_batch, n_steps, n_units, values.data_ptr(), values.stride(0),
                values.stride(1), kappa, int(reverse), out.data_ptr(), torch.get_num_threads(),
            )  # fmt: skip
            return out
    steps = values.transpose(0, 1)  # (T, B, N) views: one block of memory per step
    out = torch.empty(steps.shape, dtype=values.dtype, device=values.device)
    order = range(steps.shape[0] - 1, -1, -1) if reverse else range(steps.shape[0])
    previous = None
    for step in order:
        if previous is None:
            out[step] = steps[step]
        else:
            # The reference's two roundings (product, then sum), not a fused multiply-add.
            torch.mul(previous, kappa, out=out[step])
            out[step].add_(steps[step])
        previous = out[step]
    # Batch-major and contiguous: its consumers (readout products) would copy a view.
    return out.transpose(0, 1).contiguous()


class _LeakyTrace(torch.autograd.Function):
    @staticmethod
    def forward(z: torch.Tensor, kappa: float) -> torch.Tensor:
        return _recursion(z, kappa, reverse=False)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.kappa = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _ReverseLeakyTrace.apply(grad, ctx.kappa), None


class _ReverseLeakyTrace(torch.autograd.Function):
    """The transpose of :class:`_LeakyTrace`: the gradient of the trace's input."""

    @staticmethod
    def forward(grad: torch.Tensor, kappa: float) -> torch.Tensor:
        return _recursion(grad, kappa, reverse=True)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.kappa = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _LeakyTrace.apply(grad, ctx.kappa), None
