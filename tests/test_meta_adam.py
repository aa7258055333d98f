"""The outer-loop Adam equals torch.optim.Adam (same constants, same update)."""

from __future__ import annotations

import torch

from mosaicnet.meta.adam import AdamState, adam_step


def test_adam_step_matches_torch_adam():
    gen = torch.Generator().manual_seed(0)
    params = {"a": torch.randn(4, 3, generator=gen, dtype=torch.float64),
              "b": torch.randn(5, generator=gen, dtype=torch.float64)}  # fmt: skip
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    reference = torch.optim.Adam(list(leaves.values()), lr=1e-2, foreach=False)
    state = AdamState.zeros_like(params)
    for _ in range(5):
        grads = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
        params, state = adam_step(params, grads, state, 1e-2)
        for name, leaf in leaves.items():
            leaf.grad = grads[name].clone()
        reference.step()
    assert state.step == 5
    for name, leaf in leaves.items():
        torch.testing.assert_close(params[name], leaf.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(
            state.exp_avg_sq[name], reference.state[leaf]["exp_avg_sq"], rtol=1e-12, atol=0
        )


def test_zero_gradient_with_zero_moments_leaves_weight_unchanged():
    """What keeps pruned weights pruned: no gradient and cleared moments mean no step."""
    params = {"w": torch.tensor([0.0, 1.0])}
    state = AdamState(3, {"w": torch.tensor([0.0, 0.5])}, {"w": torch.tensor([0.0, 0.1])})
    new, _ = adam_step(params, {"w": torch.tensor([0.0, 0.2])}, state, 0.1)
    assert new["w"][0] == 0.0 and new["w"][1] != 1.0


def test_state_round_trip():
    params = {"w": torch.ones(2)}
    _, state = adam_step(params, {"w": torch.ones(2)}, AdamState.zeros_like(params), 0.1)
    again = AdamState.from_state_dict(state.state_dict())
    assert again.step == 1 and torch.equal(again.exp_avg["w"], state.exp_avg["w"])
