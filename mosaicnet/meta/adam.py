"""Adam for the outer loop, as a pure function with plain-tensor state.

Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (Algorithm 1),
with the default constants ``beta1 = 0.9``, ``beta2 = 0.999``, ``eps = 1e-8`` of the
paper (also those of ``jax.example_libraries.optimizers.adam`` used by the published
code and of ``torch.optim.Adam``).

Why not ``torch.optim.Adam``: constructing it imports ``torch._dynamo`` (about 5 s
on the project machines, paid by every ``mosaicnet train``), and its state is keyed
by tensor identity; here the state is a dict of named tensors that pruning can
edit and a checkpoint can hold directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

#: Adam constants of Kingma & Ba (2015).
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


@dataclass
class AdamState:
    """Step count and first/second moment estimates per parameter name."""

    step: int = 0
    exp_avg: dict[str, torch.Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def zeros_like(cls, params: Mapping[str, torch.Tensor]) -> AdamState:
        """Fresh state (zero moments) for ``params``."""
        return cls(
            0,
            {k: torch.zeros_like(v) for k, v in params.items()},
            {k: torch.zeros_like(v) for k, v in params.items()},
        )

    def state_dict(self) -> dict:
        """Plain dict for checkpoints."""
        return {
            "step": self.step,
            "exp_avg": {k: v.clone() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.clone() for k, v in self.exp_avg_sq.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> AdamState:
        """Inverse of :meth:`state_dict`."""
        return cls(
            int(state["step"]),
            {k: v.clone() for k, v in state["exp_avg"].items()},
            {k: v.clone() for k, v in state["exp_avg_sq"].items()},
        )

    def to(self, device) -> AdamState:
        """The same state with its moments on ``device``."""
        return AdamState(
            self.step,
            {k: v.to(device) for k, v in self.exp_avg.items()},
            {k: v.to(device) for k, v in self.exp_avg_sq.items()},
        )


def adam_step(
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    state: AdamState,
    lr: float,
) -> tuple[dict[str, torch.Tensor], AdamState]:
    """One Adam update; returns new parameters and new state (inputs untouched).

    ``w <- w - lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected moments.
    """
    step = state.step + 1
    correction1 = 1.0 - BETA1**step
    correction2_sqrt = math.sqrt(1.0 - BETA2**step)
    new_params, exp_avg, exp_avg_sq = {}, {}, {}
    for name, w in params.items():
        g = grads[name]
        m = BETA1 * state.exp_avg[name] + (1.0 - BETA1) * g
        v = BETA2 * state.exp_avg_sq[name] + (1.0 - BETA2) * g * g
        new_params[name] = w - (lr / correction1) * m / (v.sqrt() / correction2_sqrt + EPS)
        exp_avg[name], exp_avg_sq[name] = m, v
    return new_params, AdamState(step, exp_avg, exp_avg_sq)
