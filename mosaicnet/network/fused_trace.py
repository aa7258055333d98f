"""The readout's leaky trace of the spikes as one autograd operation.

``trace[t] = kappa * trace[t - 1] + z[t]`` over ``T`` steps is, in the reference
(:meth:`mosaicnet.network.torch_clone.TorchClone.readout_trace`), ``2 T`` small
recorded operations whose backward stacks ``T`` gradients. Here the forward
makes the same two float operations per step (so the trace is bit-identical),
writing into one time-major buffer, and the backward is the reverse recursion
``g_z[t] = g[t] + kappa * g_z[t + 1]``. The backward is written in
differentiable torch operations: it is linear in the incoming gradient, so
higher derivatives need nothing more.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["leaky_trace"]


def leaky_trace(z: torch.Tensor, kappa: float) -> torch.Tensor:
    """``trace[..., t, :] = kappa * trace[..., t - 1, :] + z[..., t, :]`` (zero start).

    ``z`` is ``(B, T, N)``; the result has the same shape (a view of time-major
    storage). Not for ``torch.func.vmap`` (no batching rule): the reference loop
    serves there.
    """
    return _LeakyTrace.apply(z, float(kappa))


class _LeakyTrace(torch.autograd.Function):
    @staticmethod
    def forward(z: torch.Tensor, kappa: float) -> torch.Tensor:
        steps = z.transpose(0, 1)  # (T, B, N): contiguous when z came from the fused layer
        trace = torch.empty_like(steps, memory_format=torch.contiguous_format)
        previous = torch.zeros_like(steps[0])
        for step in range(steps.shape[0]):
            # The reference's two roundings (product, then sum), not a fused multiply-add.
            torch.mul(previous, kappa, out=trace[step])
            previous = trace[step].add_(steps[step])
        return trace.transpose(0, 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.kappa = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.transpose(0, 1)
        kappa = ctx.kappa
        if not torch.is_grad_enabled():  # first order: into one buffer
            out = torch.empty_like(grad, memory_format=torch.contiguous_format)
            out[-1] = grad[-1]
            for step in reversed(range(grad.shape[0] - 1)):
                torch.add(grad[step], out[step + 1], alpha=kappa, out=out[step])
            return out.transpose(0, 1), None
        steps = []
        carried = None
        for step in reversed(range(grad.shape[0])):
            carried = grad[step] if carried is None else torch.add(grad[step], carried, alpha=kappa)
            steps.append(carried)
        return torch.stack(steps[::-1], dim=1), None
