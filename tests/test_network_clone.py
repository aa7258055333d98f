"""The torch clone: Brian2's integration constants, the readout, surrogate gradients, vmap."""

import numpy as np
import pytest
import torch
from brian2 import ms

from mosaicnet.errors import ConfigError
from mosaicnet.network.neuron_compiler import compile_neuron
from mosaicnet.network.neuron_presets import cuba_lif, neuron_model
from mosaicnet.network.neuron_update import exact_linear_update
from mosaicnet.network.spec import NeuronParameters, random_spec
from mosaicnet.network.surrogate import (
    SURROGATES,
    fast_sigmoid_derivative,
    sigmoid_derivative,
    spike_function,
    triangular_derivative,
)
from mosaicnet.network.torch_clone import TorchClone

LAYOUT = {"kind": "mosaic", "rows": 2, "cols": 2, "neurons_per_tile": 4, "beta": 8.0}
N_IN, N_OUT, T = 12, 4, 40


def _spec(seed=0, model="lif", gain=4.0):
    mask = np.random.default_rng(seed).random((16, 16)) < 0.3
    neuron = NeuronParameters(model=neuron_model(model))
    return random_spec(N_IN, LAYOUT, N_OUT, mask, neuron=neuron, gain=gain, seed=seed)


def _input(seed=1, batch=5, p=0.15):
    return torch.as_tensor(np.random.default_rng(seed).random((batch, T, N_IN)) < p)


def _reference_loop(clone, params, x, a_vv, a_vi, a_ii, threshold):
    """The LIF (a_vi = 0) or current-based LIF written out by hand, in Brian2's step order."""
    x = x.double()
    w_rec = params["w_rec"] * clone.rec_mask
    b, n = x.shape[0], clone.n_rec
    v = torch.zeros(b, n, dtype=torch.float64)
    current = torch.zeros(b, n, dtype=torch.float64)
    vo = torch.zeros(b, clone.n_out, dtype=torch.float64)
    spikes, readout = [], []
    for t in range(x.shape[1]):
        v, current = a_vv * v + a_vi * current, a_ii * current
        vo = clone.kappa * vo
        z = (v > threshold).double()
        inp = x[:, t] @ params["w_in"] + z @ w_rec
        if a_vi:
            current = current + inp
        else:
            v = v + inp
        vo = vo + z @ params["w_out"]
        v = v - threshold * z
        spikes.append(z)
        readout.append(vo)
    return torch.stack(spikes, 1), torch.stack(readout, 1)


def test_constants_are_read_from_brian2_exact_integrator():
    p = NeuronParameters()
    update = exact_linear_update(p.recurrent_equations(), p.namespace(), p.dt)
    # delta synapses: v' = exp(-dt/tau) v; the default is the published 30-step decay
    assert update.matrix.shape == (1, 1) and update.variables == ("v",)
    assert update.coefficient("v", "v") == pytest.approx(np.exp(-1 / 30), rel=1e-15)
    q = NeuronParameters(model=cuba_lif())
    update = exact_linear_update(q.recurrent_equations(), q.namespace(), q.dt)
    dt, tm, ts = 0.014, 0.42, 0.07
    # closed form of dv/dt = -v/tau_m + I/tau_s, dI/dt = -I/tau_s over one step, OLD I into v
    a_vi = (np.exp(-dt / tm) - np.exp(-dt / ts)) * tm / (tm - ts)
    assert update.coefficient("v", "v") == pytest.approx(np.exp(-dt / tm), rel=1e-13)
    assert update.coefficient("v", "I") == pytest.approx(a_vi, rel=1e-12)
    assert update.coefficient("I", "I") == pytest.approx(np.exp(-dt / ts), rel=1e-13)
    assert update.coefficient("I", "v") == 0.0
    assert update.variables == ("v", "I")  # definition order, stable between runs
    assert "exp" in update.code  # Brian2's own abstract code is kept for describe()


@pytest.mark.parametrize("model", ["lif", "cuba_lif", "alif", "adlif", "fast_current"])
def test_constants_equal_brian2_numpy_step_bitwise(model):
    """One Brian2 (numpy) step from unit states gives exactly the compiled matrix."""
    from brian2 import Network, NeuronGroup

    from mosaicnet.network.brian_backends import brian_prefs, runtime_prefs

    neuron_ = cuba_lif(tau_syn=3 * ms) if model == "fast_current" else neuron_model(model)
    compiled = compile_neuron(neuron_, 14 * ms)
    names = compiled.states
    group = NeuronGroup(
        len(names),
        neuron_.equations,
        method=neuron_.method,
        namespace=neuron_.namespace(),
        dt=14 * ms,
    )
    for k, name in enumerate(names):
        setattr(group, name, np.eye(len(names))[k])
    with brian_prefs(runtime_prefs("numpy", True)):
        Network(group).run(14 * ms, namespace={})
    stepped = np.array([np.asarray(getattr(group, name)[:]) for name in names])
    np.testing.assert_array_equal(stepped, compiled.update.matrix)


@pytest.mark.parametrize("model", ["lif", "cuba_lif"])
def test_forward_matches_independent_reference_loop(model):
    spec = _spec(model=model)
    clone = TorchClone(spec, dtype=torch.float64)
    params = clone.init_params()
    x = _input()
    z, v_out = clone.forward(params, x)
    update = clone.neuron.update
    if model == "lif":
        coefficients = (update.coefficient("v", "v"), 0.0, 0.0)
    else:
        coefficients = tuple(
            update.coefficient(*pair) for pair in (("v", "v"), ("v", "I"), ("I", "I"))
        )
    z_ref, v_ref = _reference_loop(clone, params, x, *coefficients, threshold=2.0)
    assert torch.equal(z, z_ref)
    rate = z.mean().item()
    assert 0.02 < rate < 0.4, rate  # a realistic regime, not silent or saturated
    torch.testing.assert_close(v_out, v_ref, rtol=0, atol=1e-12)


def test_readout_is_linear_in_w_out_given_trace():
    clone = TorchClone(_spec(), dtype=torch.float64)
    params = clone.init_params()
    z = clone.recurrent_spikes(params, _input())
    trace = clone.readout_trace(z)
    # the trace is the leaky filter of the spikes
    manual = torch.zeros_like(z[:, 0])
    for t in range(z.shape[1]):
        manual = clone.kappa * manual + z[:, t]
        torch.testing.assert_close(trace[:, t], manual, rtol=0, atol=1e-12)
    w1, w2 = torch.randn(2, clone.n_rec, clone.n_out, dtype=torch.float64)
    torch.testing.assert_close(
        clone.readout(2.0 * w1 - w2, trace),
        2.0 * clone.readout(w1, trace) - clone.readout(w2, trace),
    )
    _, v_out = clone.forward(params, _input())
    torch.testing.assert_close(v_out, trace @ params["w_out"])


def test_counts_are_clipped_to_one_spike_per_bin():
    clone = TorchClone(_spec(), dtype=torch.float64)
    params = clone.init_params()
    x = _input().double()
    counts = x * torch.randint(1, 5, x.shape).double()
    assert counts.max() > 1
    assert torch.equal(clone.recurrent_spikes(params, counts), clone.recurrent_spikes(params, x))


def test_weights_outside_mask_have_no_effect_and_to_spec_round_trips():
    spec = _spec()
    clone = TorchClone(spec, dtype=torch.float64)
    params = clone.init_params()
    noisy = dict(params)
    noisy["w_rec"] = params["w_rec"] + 5.0 * (~clone.rec_mask).double()
    x = _input()
    assert torch.equal(clone.recurrent_spikes(params, x), clone.recurrent_spikes(noisy, x))
    back = clone.to_spec(noisy)
    np.testing.assert_array_equal(back.w_rec, spec.w_rec)  # masked on the way back
    np.testing.assert_array_equal(back.w_in, spec.w_in)
    assert back.rec_mask.sum() == spec.rec_mask.sum()


@pytest.mark.parametrize(
    "shape, match",
    [
        ((T, N_IN), "add a batch axis"),
        ((2, T, N_IN + 1), "13 channels but the network has"),
        ((2, T, 3, N_IN), "4 dims"),
    ],
)
def test_bad_input_shape_is_a_config_error(shape, match):
    clone = TorchClone(_spec())
    with pytest.raises(ConfigError, match=match):
        clone.forward(clone.init_params(), torch.zeros(shape))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown surrogate"):
        TorchClone(_spec(), surrogate="nope")
    with pytest.raises(ConfigError, match="slope"):
        TorchClone(_spec(), surrogate_slope=0.0)
    with pytest.raises(ConfigError, match="equal time constants"):
        NeuronParameters(model=cuba_lif(tau_syn=420 * ms))


# ------------------------------------------------------------------------ surrogate gradients
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_forward_is_strict_heaviside_and_backward_is_its_formula(name):
    spike = spike_function(name, 10.0)
    x = torch.tensor([-1.0, -1e-12, 0.0, 1e-12, 0.3], dtype=torch.float64, requires_grad=True)
    z = spike(x)
    assert z.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # v > threshold, as in Brian2
    (g,) = torch.autograd.grad(z.sum(), x)
    formula = {
        "fast_sigmoid": fast_sigmoid_derivative,
        "sigmoid": sigmoid_derivative,
        "triangular": triangular_derivative,
    }[name]
    torch.testing.assert_close(g, formula(x.detach(), 10.0))
    assert fast_sigmoid_derivative(torch.tensor(0.0), 10.0) == 1.0


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_gradcheck_first_and_second_order(name):
    spike = spike_function(name, 3.0)
    # away from the kinks of |x| (and of the triangle), where finite differences are exact
    x = torch.tensor([-0.9, -0.2, 0.1, 0.25, 0.7], dtype=torch.float64, requires_grad=True)
    derivative = {
        "fast_sigmoid": fast_sigmoid_derivative,
        "sigmoid": sigmoid_derivative,
        "triangular": triangular_derivative,
    }[name]
    assert torch.autograd.gradcheck(lambda v: derivative(v, 3.0), (x,))
    # second order: the backward of the spike function is itself differentiable
    assert torch.autograd.gradgradcheck(spike, (x,))


def _support_query(seed=3):
    rng = np.random.default_rng(seed)
    xs = torch.as_tensor(rng.random((4, T, N_IN)) < 0.15)
    xq = torch.as_tensor(rng.random((4, T, N_IN)) < 0.15)
    ys = torch.as_tensor(rng.integers(0, N_OUT, 4))
    yq = torch.as_tensor(rng.integers(0, N_OUT, 4))
    return xs, ys, xq, yq


def _meta_loss(clone, params, xs, ys, xq, yq, lr=0.5):
    """Query loss after one SGD step on the readout (second order through the step)."""

    def ce(w_out, x, y):
        z = clone.recurrent_spikes(params, x)
        logits = clone.readout(w_out, clone.readout_trace(z)).max(dim=1).values
        return torch.nn.functional.cross_entropy(logits, y)

    inner = torch.func.grad(ce)(params["w_out"], xs, ys)
    return ce(params["w_out"] - lr * inner, xq, yq)


@pytest.mark.parametrize("model", ["lif", "cuba_lif", "alif", "adlif", "lif_refractory"])
def test_second_order_gradient_through_readout_step_matches_finite_differences(model):
    clone = TorchClone(_spec(model=model), dtype=torch.float64)
    params = clone.init_params()
    xs, ys, xq, yq = _support_query()
    grads = torch.func.grad(lambda p: _meta_loss(clone, p, xs, ys, xq, yq))(params)
    for name in ("w_in", "w_rec", "w_out"):
        assert torch.isfinite(grads[name]).all()
    assert grads["w_in"].abs().sum() > 0  # the surrogate carries gradient into the network
    # the spikes do not depend on w_out: the meta-loss is smooth in it, so central
    # differences must match the (second-order) gradient to O(h^2)
    rng = np.random.default_rng(0)
    h = 1e-5
    for _ in range(4):
        i, j = int(rng.integers(clone.n_rec)), int(rng.integers(clone.n_out))
        plus, minus = dict(params), dict(params)
        plus["w_out"] = params["w_out"].clone()
        minus["w_out"] = params["w_out"].clone()
        plus["w_out"][i, j] += h
        minus["w_out"][i, j] -= h
        fd = _meta_loss(clone, plus, xs, ys, xq, yq) - _meta_loss(clone, minus, xs, ys, xq, yq)
        assert float(fd / (2 * h)) == pytest.approx(float(grads["w_out"][i, j]), abs=1e-7)
    # and the first-order-only gradient differs: the second-order term is really there
    first = torch.func.grad(
        lambda w: _meta_loss_first_order(clone, dict(params, w_out=w), xs, ys, xq, yq)
    )(params["w_out"])
    assert not torch.allclose(first, grads["w_out"], atol=1e-9)


def _meta_loss_first_order(clone, params, xs, ys, xq, yq, lr=0.5):
    def ce(w_out, x, y):
        z = clone.recurrent_spikes(params, x)
        logits = clone.readout(w_out, clone.readout_trace(z)).max(dim=1).values
        return torch.nn.functional.cross_entropy(logits, y)

    inner = torch.func.grad(ce)(params["w_out"], xs, ys).detach()
    return ce(params["w_out"] - lr * inner, xq, yq)


def test_vmap_of_grad_over_tasks_equals_a_loop():
    clone = TorchClone(_spec(), dtype=torch.float64)
    params = clone.init_params()
    tasks = [_support_query(seed) for seed in range(3)]
    stacked = [torch.stack(parts) for parts in zip(*tasks, strict=True)]

    def task_grad(xs, ys, xq, yq):
        return torch.func.grad(lambda p: _meta_loss(clone, p, xs, ys, xq, yq))(params)

    batched = torch.func.vmap(task_grad)(*stacked)
    for k, task in enumerate(tasks):
        single = task_grad(*task)
        for name in single:
            torch.testing.assert_close(batched[name][k], single[name], rtol=1e-10, atol=1e-12)


def test_float32_clone_agrees_with_float64_on_spikes_mostly():
    spec = _spec()
    x = _input(batch=8)
    z64, _ = TorchClone(spec, dtype=torch.float64).forward(
        TorchClone(spec, dtype=torch.float64).init_params(), x
    )
    c32 = TorchClone(spec, dtype=torch.float32)
    z32, v32 = c32.forward(c32.init_params(), x)
    assert z32.dtype == torch.float32 and v32.shape == (8, T, N_OUT)
    # float32 rounding can flip a spike that sits within ~1e-7 of threshold, after
    # which the trajectories diverge; most spike bits must still agree
    assert (z32.double() == z64).double().mean() > 0.95
