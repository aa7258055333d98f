"""MAML core: fast readout path vs recompute, second-order gradient vs a sequential reference.

The network here is a tiny pure-torch LIF stand-in with the interface of
``mosaicnet.network.torch_clone.TorchClone`` (recurrent_spikes, readout_trace,
readout, forward), written from docs/model.md, 'The network', so these tests check the
MAML algebra independently of the real clone (tested with it in
``test_meta_training.py``).
"""

from __future__ import annotations

import math

import pytest
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.losses import cross_entropy, firing_rate, max_over_time
from mosaicnet.meta.maml import (
    LOG_LR_PREFIX,
    MetaBatch,
    adapt_readout,
    init_meta_params,
    meta_gradient,
    meta_loss,
    predict,
    predict_all_units,
    prototype_readout,
    prune_recurrent,
    readout_logits,
    readout_step,
    trace_at,
)

DTYPE = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


class TinyLif:
    """Minimal LIF network with a fast-sigmoid surrogate (docs/model.md, 'The network')."""

    def __init__(self, n_in=6, n_rec=12, n_out=8, *, seed=0, thr=1.0, slope=10.0):
        gen = torch.Generator().manual_seed(seed)
        self.alpha = math.exp(-1 / 5)
        self.kappa = math.exp(-1 / 5)
        self.thr = thr
        self.slope = slope
        self.rec_mask = torch.rand(n_rec, n_rec, generator=gen, dtype=DTYPE) < 0.7
        self._params = {
            "w_in": torch.randn(n_in, n_rec, generator=gen, dtype=DTYPE) * 1.2,
            "w_rec": torch.randn(n_rec, n_rec, generator=gen, dtype=DTYPE) * 0.4 * self.rec_mask,
            "w_out": torch.randn(n_rec, n_out, generator=gen, dtype=DTYPE) * 0.3,
        }

    def init_params(self):
        return {k: v.clone() for k, v in self._params.items()}

    def _spike(self, u):
        # Heaviside forward, derivative of u / (1 + slope |u|) = 1 / (1 + slope |u|)^2 backward.
        soft = u / (1 + self.slope * u.abs())
        return (u > 0).to(u.dtype) + soft - soft.detach()

    def recurrent_spikes(self, params, x):
        w_rec = params["w_rec"] * self.rec_mask
        drive = x @ params["w_in"]
        v = torch.zeros_like(drive[..., 0, :])
        z = torch.zeros_like(v)
        out = []
        for t in range(x.shape[-2]):
            v = self.alpha * v + drive[..., t, :] + z @ w_rec - self.thr * z
            z = self._spike(v - self.thr)
            out.append(z)
        return torch.stack(out, dim=-2)

    def readout_trace(self, z):
        trace = torch.zeros_like(z[..., 0, :])
        out = []
        for t in range(z.shape[-2]):
            trace = self.kappa * trace + z[..., t, :]
            out.append(trace)
        return torch.stack(out, dim=-2)

    def readout(self, w_out, trace):
        return trace @ w_out

    def forward(self, params, x):
        z = self.recurrent_spikes(params, x)
        return z, self.readout(params["w_out"], self.readout_trace(z))


def make_batch(n_tasks=3, n_way=3, k_shot=2, n_query=2, n_in=6, T=15, n_out=8, seed=1):
    gen = torch.Generator().manual_seed(seed)
    rates = torch.rand(n_out, n_in, generator=gen) * 0.6  # class-specific input rates

    def draw(classes, per_class):
        labels = torch.arange(n_way).repeat_interleave(per_class)
        glob = classes[labels]
        p = rates[glob].unsqueeze(1).expand(-1, T, -1)
        return (torch.rand(p.shape, generator=gen) < p).to(DTYPE), labels

    sx, sy, qx, qy, cl = [], [], [], [], []
    for _ in range(n_tasks):
        classes = torch.randperm(n_out, generator=gen)[:n_way]
        x, y = draw(classes, k_shot)
        sx.append(x)
        sy.append(y)
        x, y = draw(classes, n_query)
        qx.append(x)
        qy.append(y)
        cl.append(classes)
    return MetaBatch(*(torch.stack(v) for v in (sx, sy, qx, qy, cl)))


def tiny_config(**changes):
    values = dict(
        n_way=3,
        k_shot=2,
        n_query=2,
        n_out=8,
        held_out_classes=(0,),
        dtype="float64",
        inner_steps=3,
        inner_lr=0.5,
        prune_threshold=0.0,
        layout_lambda=0.0,
        inner_step_scale="none",
    )
    values.update(changes)
    return TrainConfig(**values)


def cost_matrix(n):
    gen = torch.Generator().manual_seed(5)
    return torch.rand(n, n, generator=gen, dtype=DTYPE) * 10


@pytest.mark.parametrize(
    ("scale", "jacobian"),
    [("none", "full"), ("curvature", "full"), ("refine", "full"), ("none", "identity")],
)
@pytest.mark.parametrize("learn_lr", [False, True])
@pytest.mark.parametrize(
    ("loss_units", "init"), [("all", "meta"), ("task", "prototype"), ("all", "meta+prototype")]
)
def test_fast_readout_path_equals_recompute_path(learn_lr, scale, jacobian, loss_units, init):
    clone, batch = TinyLif(), make_batch()
    config = tiny_config(
        learn_inner_lr=learn_lr, layout_lambda=1e-3, inner_step_scale=scale,
        inner_readout_jacobian=jacobian, loss_units=loss_units, readout_init=init,
    )  # fmt: skip
    params = init_meta_params(clone.init_params(), config)
    cost = cost_matrix(12)
    g_fast, loss_fast, m_fast = meta_gradient(params, batch, clone, config, layout_cost=cost)
    g_slow, loss_slow, m_slow = meta_gradient(
        params, batch, clone, config, layout_cost=cost, fast_readout=False
    )
    assert m_fast["rate"] > 0  # the network spikes, so the recurrent path is exercised
    torch.testing.assert_close(loss_fast, loss_slow, rtol=1e-12, atol=1e-14)
    assert set(g_fast) == set(g_slow) == set(params)
    for name in params:
        assert g_fast[name].abs().max() > 0, name
        torch.testing.assert_close(g_fast[name], g_slow[name], rtol=1e-10, atol=1e-13)
    for name in ("acc", "acc_all_units", "acc_support_before", "rate"):
        torch.testing.assert_close(m_fast[name], m_slow[name])


def sequential_reference(params, batch, clone, config, *, create_graph=True):
    """MAML outer loss by plain autograd, one task at a time, no torch.func."""
    leaf = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    total = 0.0
    for b in range(batch.n_tasks):
        w = dict(leaf)
        classes = batch.classes[b]
        s_y = classes[batch.support_y[b]]
        q_y = classes[batch.query_y[b]]
        for _ in range(config.inner_steps):
            _, v = clone.forward(w, batch.support_x[b])
            inner = cross_entropy(max_over_time(v), s_y)
            (g,) = torch.autograd.grad(inner, w["w_out"], create_graph=create_graph)
            w["w_out"] = w["w_out"] - config.resolved_inner_lr * g
        z, v = clone.forward(w, batch.query_x[b])
        loss = cross_entropy(max_over_time(v), q_y)
        loss = loss + config.lambda_fr * (config.target_rate - firing_rate(z)) ** 2
        loss = loss + sum(config.l2 * (w[k] ** 2).mean() for k in ("w_in", "w_rec", "w_out"))
        total = total + loss
    total = total / batch.n_tasks
    total.backward()
    return {k: v.grad for k, v in leaf.items()}, total.detach()


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_sequential_reference(first_order):
    clone, batch = TinyLif(seed=3), make_batch(seed=4)
    config = tiny_config(first_order=first_order, inner_steps=2)
    params = init_meta_params(clone.init_params(), config)
    grads, loss, _ = meta_gradient(params, batch, clone, config)
    ref, ref_loss = sequential_reference(params, batch, clone, config, create_graph=not first_order)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for name in params:
        torch.testing.assert_close(grads[name], ref[name], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("tasks_per_pass", [1, 2])
@pytest.mark.parametrize("inner_params", ["readout", "all"])
def test_meta_gradient_in_passes_equals_one_pass(tasks_per_pass, inner_params):
    """Accumulating over passes of fewer tasks (uneven parts too) changes nothing but rounding."""
    clone, batch = TinyLif(seed=3), make_batch(n_tasks=5, seed=4)
    layout_cost = torch.rand(clone.init_params()["w_rec"].shape, dtype=torch.float64)
    one = tiny_config(inner_steps=2, inner_params=inner_params, tasks_per_pass=None)
    params = init_meta_params(clone.init_params(), one)
    expected = meta_gradient(params, batch, clone, one, layout_cost=layout_cost)
    passes = one.with_changes(tasks_per_pass=tasks_per_pass)
    got = meta_gradient(params, batch, clone, passes, layout_cost=layout_cost)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-12, atol=0)
    assert set(got[0]) == set(expected[0]) and set(got[2]) == set(expected[2])
    for name in expected[0]:
        torch.testing.assert_close(got[0][name], expected[0][name], rtol=1e-10, atol=1e-13)
    for name in expected[2]:  # the accuracies are float32 fractions
        torch.testing.assert_close(
            got[2][name].double(), expected[2][name].double(), rtol=1e-6, atol=1e-12
        )


def test_meta_batch_splits_into_consecutive_parts():
    batch = make_batch(n_tasks=5)
    parts = batch.split(2)
    assert [part.n_tasks for part in parts] == [2, 2, 1]
    torch.testing.assert_close(torch.cat([p.query_x for p in parts]), batch.query_x)
    assert batch.split(None) == (batch,) and batch.split(5) == (batch,)


def test_second_order_terms_are_present():
    """First- and second-order gradients differ (the inner step is differentiated)."""
    clone, batch = TinyLif(seed=3), make_batch(seed=4)
    second, _, _ = meta_gradient(
        init_meta_params(clone.init_params(), tiny_config()), batch, clone, tiny_config()
    )
    config = tiny_config(first_order=True)
    first, _, _ = meta_gradient(init_meta_params(clone.init_params(), config), batch, clone, config)
    assert (second["w_in"] - first["w_in"]).abs().max() > 1e-6 * second["w_in"].abs().max()


def test_all_parameter_inner_loop_adapts_recurrent_weights():
    clone, batch = TinyLif(), make_batch()
    readout = tiny_config(inner_steps=1)
    everything = tiny_config(inner_steps=1, inner_params="all", learn_inner_lr=True)
    params = init_meta_params(clone.init_params(), everything)
    assert {LOG_LR_PREFIX + k for k in ("w_in", "w_rec", "w_out")} <= set(params)
    loss_all, _ = meta_loss(params, batch, clone, everything)
    loss_readout, _ = meta_loss(params, batch, clone, readout)
    assert torch.isfinite(loss_all)
    assert not torch.isclose(loss_all, loss_readout)
    grads, _, _ = meta_gradient(params, batch, clone, everything)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads[LOG_LR_PREFIX + "w_rec"].abs() > 0


def test_adapt_readout_lowers_support_loss_and_predicts_task_classes():
    clone, batch = TinyLif(), make_batch(n_tasks=1, k_shot=4)
    config = tiny_config(inner_steps=5, inner_lr=1.0)
    w_out = clone.init_params()["w_out"]
    z = clone.recurrent_spikes(clone.init_params(), batch.support_x[0])
    trace = clone.readout_trace(z)
    classes, y = batch.classes[0], batch.support_y[0]
    before = cross_entropy(readout_logits(w_out, trace), classes[y])
    adapted = adapt_readout(w_out, trace, y, classes, config)
    after = cross_entropy(readout_logits(adapted, trace), classes[y])
    assert after < before
    labels = predict(adapted, trace, classes)
    assert set(labels.tolist()) <= set(classes.tolist())
    everything = predict_all_units(adapted, trace)
    assert everything.shape == labels.shape
    # The N-way prediction is the all-unit one whenever that lands in the task's classes.
    inside = torch.isin(everything, classes)
    assert torch.equal(labels[inside], everything[inside])


def test_pruned_recurrent_weights_get_zero_gradient():
    clone, batch = TinyLif(), make_batch()
    config = tiny_config(prune_threshold=0.2)
    params = init_meta_params(clone.init_params(), config)
    grads, _, _ = meta_gradient(params, batch, clone, config)
    small = params["w_rec"].abs() < 0.2
    assert small.any() and (~small & clone.rec_mask).any()
    assert torch.all(grads["w_rec"][small] == 0)
    assert grads["w_rec"][~small & clone.rec_mask].abs().max() > 0
    assert torch.equal(prune_recurrent(params["w_rec"], 0.2) == 0, small | (params["w_rec"] == 0))


def test_device_offsets_are_straight_through():
    """Offsets change the forward pass but the gradient is taken at the perturbed point."""
    clone, batch = TinyLif(), make_batch()
    config = tiny_config()
    params = init_meta_params(clone.init_params(), config)
    gen = torch.Generator().manual_seed(0)
    offsets = {
        k: 0.05 * torch.randn(params[k].shape, generator=gen, dtype=DTYPE)
        for k in ("w_in", "w_rec", "w_out")
    }
    noisy, _ = meta_loss(params, batch, clone, config, offsets=offsets)
    clean, _ = meta_loss(params, batch, clone, config)
    assert not torch.isclose(noisy, clean)
    g_noisy, _, _ = meta_gradient(params, batch, clone, config, offsets=offsets)
    # Straight-through: gradient w.r.t. w of f(w + offset) equals f's gradient at w + offset
    # (for the data terms; absent recurrent synapses get no offset).
    shifted = {k: params[k] + offsets[k] * (params[k] != 0) for k in offsets}
    g_shift, _, _ = meta_gradient(shifted, batch, clone, config)
    # The L2 term is computed on the perturbed weights in both, so gradients agree.
    for name in offsets:
        torch.testing.assert_close(g_noisy[name], g_shift[name], rtol=1e-10, atol=1e-13)


def test_readout_step_is_gradient_descent_on_the_inner_loss():
    """The closed-form inner step equals SGD with torch.func.grad of CE(max_t trace @ w)."""
    clone, batch = TinyLif(), make_batch(n_tasks=1, k_shot=4)
    w_out = clone.init_params()["w_out"]
    trace = clone.readout_trace(clone.recurrent_spikes(clone.init_params(), batch.support_x[0]))
    labels = batch.classes[0][batch.support_y[0]]

    def loss(w):
        return cross_entropy(max_over_time(trace @ w), labels)

    expected = w_out - 0.7 * torch.func.grad(loss)(w_out)
    times = (trace @ w_out).argmax(dim=-2)
    rows = trace_at(trace, times).transpose(0, 1)  # unit-major (n_out, S, n_rec)
    target = (labels == torch.arange(w_out.shape[1]).unsqueeze(-1)).to(DTYPE)
    torch.testing.assert_close(readout_step(w_out, rows, target, 0.7), expected, rtol=1e-12, atol=0)


def test_batched_adaptation_equals_one_task_at_a_time():
    clone, batch = TinyLif(), make_batch(n_tasks=4)
    config = tiny_config(inner_steps=4)
    w_out = clone.init_params()["w_out"]
    z = clone.recurrent_spikes(clone.init_params(), batch.support_x.flatten(0, 1))
    traces = clone.readout_trace(z).unflatten(0, (4, -1))
    together = adapt_readout(w_out, traces, batch.support_y, batch.classes, config)
    for b in range(4):
        alone = adapt_readout(w_out, traces[b], batch.support_y[b], batch.classes[b], config)
        torch.testing.assert_close(together[b], alone, rtol=1e-12, atol=1e-15)


def test_curvature_scaled_step_does_not_depend_on_the_trace_scale():
    """With inner_step_scale='curvature' the logit change of an inner step is scale-free.

    Scaling every support trace by c scales the plain gradient by c and the curvature
    scale by c^2, so the weight change scales by 1/c and the change of the logits
    (trace . weights) stays the same; the plain step's change grows by c^2.
    """
    clone, batch = TinyLif(seed=2), make_batch(seed=6)
    params = clone.init_params()
    trace = clone.readout_trace(clone.recurrent_spikes(params, batch.support_x.flatten(0, 1)))
    trace = trace.unflatten(0, (batch.n_tasks, -1))
    w_out = torch.zeros_like(params["w_out"])  # logits 0: the peak times do not move with c
    changes = {}
    for scale in ("curvature", "none"):
        config = tiny_config(inner_steps=1, inner_lr=0.5, inner_step_scale=scale)
        for c in (1.0, 7.0):
            adapted = adapt_readout(w_out, c * trace, batch.support_y, batch.classes, config)
            before = readout_logits(w_out, c * trace)
            changes[scale, c] = readout_logits(adapted, c * trace) - before
    torch.testing.assert_close(changes["curvature", 7.0], changes["curvature", 1.0])
    torch.testing.assert_close(changes["none", 7.0], 49.0 * changes["none", 1.0])


def test_curvature_scale_bounds_the_largest_inner_curvature():
    """lr * lambda_max of the inner loss stays below 2 (a stable step) with a scaled lr of 1."""
    from mosaicnet.meta.maml import _unit_rows, curvature_scale, global_labels, peak_times

    clone, batch = TinyLif(seed=4), make_batch(seed=8)
    params = clone.init_params()
    trace = clone.readout_trace(clone.recurrent_spikes(params, batch.support_x[0]))
    rows = _unit_rows(trace, peak_times(params["w_out"], trace))
    labels = global_labels(batch.support_y[0], batch.classes[0])

    def inner(w):
        return cross_entropy(readout_logits(w, trace), labels)

    hessian = torch.autograd.functional.hessian(inner, params["w_out"])
    n = params["w_out"].numel()
    lam_max = torch.linalg.eigvalsh(hessian.reshape(n, n)).max()
    ratio = float(lam_max / curvature_scale(rows))
    assert 0.0 < ratio < 2.0


def test_identity_jacobian_keeps_the_trace_path_and_drops_the_readout_chain():
    """Same forward; gradients differ, and with a zero trace path only the chain is cut."""
    clone, batch = TinyLif(seed=3), make_batch(seed=4)
    full = tiny_config(inner_steps=3, inner_lr=2.0)
    identity = tiny_config(inner_steps=3, inner_lr=2.0, inner_readout_jacobian="identity")
    params = init_meta_params(clone.init_params(), full)
    g_full, loss_full, _ = meta_gradient(params, batch, clone, full)
    g_id, loss_id, _ = meta_gradient(params, batch, clone, identity)
    torch.testing.assert_close(loss_full, loss_id, rtol=0, atol=0)
    assert not torch.allclose(g_full["w_out"], g_id["w_out"])
    assert g_id["w_in"].abs().max() > 0  # the recurrent layer still learns through the traces
    # Identity Jacobian: d loss / d w_out is the mean over tasks of the query loss's
    # gradient at each task's adapted readout (no L2 here, the rate term has none).
    identity = identity.with_changes(l2=0.0)
    g_id, _, _ = meta_gradient(params, batch, clone, identity)
    with torch.no_grad():
        x = torch.cat([batch.support_x.flatten(0, 1), batch.query_x.flatten(0, 1)])
        trace = clone.readout_trace(clone.recurrent_spikes(params, x))
        s_trace, q_trace = (t.unflatten(0, (batch.n_tasks, -1)) for t in trace.chunk(2))
        adapted = adapt_readout(params["w_out"], s_trace, batch.support_y, batch.classes, identity)
    q_labels = batch.classes.gather(-1, batch.query_y)

    def query_loss(w):
        log_p = torch.log_softmax(readout_logits(w, q_trace), dim=-1)
        return -log_p.gather(-1, q_labels.unsqueeze(-1)).mean(dim=(1, 2)).sum() / batch.n_tasks

    expected = torch.func.grad(query_loss)(adapted).sum(dim=0)
    torch.testing.assert_close(g_id["w_out"], expected, rtol=1e-10, atol=1e-12)


def test_task_loss_units_leave_units_outside_the_task_alone():
    """loss_units="task": neither the inner step nor the meta-gradient moves absent units."""
    clone, batch = TinyLif(), make_batch(n_tasks=1, k_shot=4)
    w_out = clone.init_params()["w_out"]
    trace = clone.readout_trace(clone.recurrent_spikes(clone.init_params(), batch.support_x[0]))
    classes, y = batch.classes[0], batch.support_y[0]
    absent = ~torch.isin(torch.arange(w_out.shape[1]), classes)
    assert absent.any()
    task = adapt_readout(w_out, trace, y, classes, tiny_config(loss_units="task", inner_steps=3))
    published = adapt_readout(w_out, trace, y, classes, tiny_config(inner_steps=3))
    assert torch.equal(task[:, absent], w_out[:, absent])
    assert (published[:, absent] != w_out[:, absent]).any()  # all units: pushed down
    # The task's own units still learn, with the softmax over the task's units only:
    # the inner step equals SGD on the cross-entropy of the task's logits.
    local = {int(c): j for j, c in enumerate(classes.tolist())}
    labels = torch.tensor([local[int(c)] for c in classes[y]])

    def loss(w):
        return cross_entropy(max_over_time(trace @ w)[:, classes], labels)

    expected = w_out - 0.7 * torch.func.grad(loss)(w_out)
    one = adapt_readout(
        w_out, trace, y, classes, tiny_config(loss_units="task", inner_steps=1), inner_lr=0.7
    )
    torch.testing.assert_close(one, expected, rtol=1e-12, atol=1e-15)
    # Outer: units absent from every task of the meta-batch get no meta-gradient.
    batch = make_batch(n_tasks=2)
    config = tiny_config(loss_units="task", l2=0.0)  # the L2 term reaches every unit
    params = init_meta_params(clone.init_params(), config)
    grads, _, _ = meta_gradient(params, batch, clone, config)
    never = ~torch.isin(torch.arange(w_out.shape[1]), batch.classes.flatten())
    assert never.any() and torch.all(grads["w_out"][:, never] == 0)
    assert grads["w_out"][:, ~never].abs().max() > 0


def test_prototype_readout_sets_the_task_columns_from_the_support_traces():
    clone, batch = TinyLif(), make_batch(n_tasks=2, k_shot=3)
    w_out = clone.init_params()["w_out"]
    z = clone.recurrent_spikes(clone.init_params(), batch.support_x.flatten(0, 1))
    trace = clone.readout_trace(z).unflatten(0, (2, -1))  # (B, S, T, n_rec)
    start = prototype_readout(w_out, trace, batch.support_y, batch.classes)
    assert start.shape == (2, *w_out.shape)
    for b in range(2):
        classes = batch.classes[b]
        for j, c in enumerate(classes.tolist()):
            m = trace[b][batch.support_y[b] == j].mean(dim=(0, 1))
            torch.testing.assert_close(start[b, :, c], m / (m @ m), rtol=1e-12, atol=1e-15)
        others = ~torch.isin(torch.arange(w_out.shape[1]), classes)
        assert torch.equal(start[b][:, others], w_out[:, others])
    # The potential of a prototype unit is never negative (traces are), so no unit starts
    # with its peak in silence unless its class is silent.
    potential = trace[0] @ start[0][:, batch.classes[0]]
    assert potential.min() >= 0 and potential.amax(dim=1).min() > 0
    # readout_init="prototype" is what adapt_readout starts from.
    config = tiny_config(readout_init="prototype", inner_steps=1)
    adapted = adapt_readout(w_out, trace, batch.support_y, batch.classes, config, inner_lr=0.0)
    torch.testing.assert_close(adapted, start, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="readout-only"):
        tiny_config(readout_init="prototype", inner_params="all")
    # "meta+prototype" adds the prototypes to the columns of meta-training classes,
    # replaces those of held-out classes, and keeps the others.
    held_out = (int(batch.classes[0, 0]),)
    config = tiny_config(readout_init="meta+prototype", inner_steps=1, held_out_classes=held_out)
    both = adapt_readout(w_out, trace, batch.support_y, batch.classes, config, inner_lr=0.0)
    for b in range(2):
        for c in batch.classes[b].tolist():
            meta = 0.0 if c in held_out else w_out[:, c]
            torch.testing.assert_close(both[b][:, c] - meta, start[b][:, c], rtol=1e-12,
                                       atol=1e-14)  # fmt: skip
        others = ~torch.isin(torch.arange(w_out.shape[1]), batch.classes[b])
        assert torch.equal(both[b][:, others], w_out[:, others])
    # Pseudo-novel classes: in meta-training tasks the last class also starts afresh.
    config = tiny_config(readout_init="meta+prototype", inner_steps=1, held_out_classes=(),
                         pseudo_novel_classes=1)  # fmt: skip
    kept = adapt_readout(w_out, trace, batch.support_y, batch.classes, config, inner_lr=0.0)
    trained = adapt_readout(w_out, trace, batch.support_y, batch.classes, config,
                            inner_lr=0.0, meta_training=True)  # fmt: skip
    for b in range(2):
        *firsts, last = batch.classes[b].tolist()
        torch.testing.assert_close(trained[b][:, last], start[b][:, last], rtol=0, atol=0)
        torch.testing.assert_close(kept[b][:, last] - w_out[:, last], start[b][:, last],
                                   rtol=1e-12, atol=1e-14)  # fmt: skip
        assert torch.equal(trained[b][:, firsts], kept[b][:, firsts])
    for bad in ({"readout_init": "prototype"}, {"n_way": 3, "pseudo_novel_classes": 3}):
        with pytest.raises(ConfigError, match="pseudo_novel_classes"):
            tiny_config(**{"readout_init": "meta+prototype", "pseudo_novel_classes": 1, **bad})
