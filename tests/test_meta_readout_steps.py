"""The compiled inner steps of the readout against the autograd steps they replace."""

from __future__ import annotations

import pytest
import torch

from mosaicnet.meta import readout_steps as compiled
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.maml import _unit_rows, adapt_readout, readout_step

B, S, T, N_REC, N_OUT, K = 3, 6, 7, 5, 4, 3


@pytest.fixture(autouse=True)
def needs_kernels():
    if compiled.KERNELS.functions(torch.float64) is None:
        pytest.skip(f"compiled readout steps unavailable: {compiled.KERNELS.failure}")


def _problem(seed: int, *, masked: bool):
    gen = torch.Generator().manual_seed(seed)
    w_start = torch.randn(B, N_REC, N_OUT, generator=gen, dtype=torch.float64)
    trace = torch.rand(B, S, T, N_REC, generator=gen, dtype=torch.float64)
    rates = torch.rand(B, K, generator=gen, dtype=torch.float64) + 0.2
    times = torch.randint(0, T, (B, K, N_OUT, S), generator=gen)
    labels = torch.randint(0, N_OUT - 1, (B, S), generator=gen)
    target = (labels.unsqueeze(-2) == torch.arange(N_OUT).unsqueeze(-1)).to(torch.float64)
    inside = None
    if masked:  # the last unit is never a label: outside the task's units
        inside = torch.ones(B, N_OUT, dtype=torch.bool)
        inside[:, -1] = False
    return w_start, trace, rates, times, target, inside


def _autograd_steps(w_start, trace, rates, times, target, inside):
    """The steps as adapt_readout's autograd pass takes them (gathered rows, readout_step)."""
    w = w_start
    for k in range(K):
        rows = _unit_rows(trace, times[:, k].transpose(-1, -2))  # (B, n_out, S, n_rec)
        units = None if inside is None else inside.unsqueeze(-1)
        w = readout_step(w, rows, target, rates[:, k, None, None], inside=units)
    return w


@pytest.mark.parametrize("masked", [False, True])
def test_compiled_steps_and_their_gradients_equal_the_autograd_steps(masked):
    """float64: the adapted readout and the gradients with respect to the starting
    readout, the trace and the step rates agree to 1e-12 relative."""
    w_start, trace, rates, times, target, inside = _problem(1, masked=masked)
    probe = torch.randn(B, N_REC, N_OUT, generator=torch.Generator().manual_seed(9),
                        dtype=torch.float64)  # fmt: skip
    results = []
    for steps in (compiled.readout_steps, _autograd_steps):
        leaves = [t.clone().requires_grad_() for t in (w_start, trace, rates)]
        adapted = steps(*leaves, times, target, inside)
        grads = torch.autograd.grad((adapted * probe).sum(), leaves)
        results.append((adapted.detach(), *grads))
    for got, expected in zip(*results, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    assert results[0][2].abs().sum() > 0  # the trace rows do receive gradient


def test_adapt_readout_takes_the_compiled_steps_only_where_asked(monkeypatch):
    calls = []
    original = compiled.readout_steps

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(compiled, "readout_steps", counting)
    w_start, trace, _, _, target, _ = _problem(2, masked=False)
    support_y = target.argmax(dim=-2)  # (B, S) labels 0..N_OUT-2 as task-local classes
    classes = torch.arange(N_OUT).expand(B, -1)
    config = TrainConfig(
        n_way=N_OUT, n_out=N_OUT, held_out_classes=(0,), inner_steps=K, inner_lr=0.5,
        inner_step_scale="curvature", dtype="float64",
    )  # fmt: skip
    w = w_start[0].clone().requires_grad_()
    fast = adapt_readout(w, trace, support_y, classes, config, compiled=True)
    assert calls == [1]
    plain = adapt_readout(w, trace, support_y, classes, config)
    assert calls == [1]
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-14)
    adapt_readout(w, trace, support_y, classes, config.with_changes(first_order=True),
                  compiled=True)  # fmt: skip
    assert calls == [1]  # first-order steps keep the autograd path
    with torch.no_grad():  # nothing to differentiate: the no-grad steps' result
        torch.testing.assert_close(
            adapt_readout(w, trace, support_y, classes, config, compiled=True), plain.detach(),
            rtol=1e-12, atol=1e-14,
        )  # fmt: skip
    assert calls == [1]


def test_a_second_derivative_through_the_compiled_steps_is_refused():
    w_start, trace, rates, times, target, inside = _problem(3, masked=False)
    w_start.requires_grad_()
    adapted = compiled.readout_steps(w_start, trace, rates, times, target, inside)
    with pytest.raises(RuntimeError, match="first-order backward only"):
        torch.autograd.grad(adapted.square().sum(), w_start, create_graph=True)


def test_without_kernels_nothing_claims_them(monkeypatch):
    monkeypatch.setenv("MOSAICNET_NATIVE", "0")
    trace = torch.zeros(B, S, T, N_REC, dtype=torch.float64)
    assert not compiled.readout_steps_available(trace)
