"""The fused recurrent layer against the reference loop of the torch clone (float64).

Spikes must be identical, and gradients, MAML meta-gradients and a short seeded
training run equal to rounding, for every model the fused layer takes; models it
cannot take fall back to the reference, and what it does not support (second
derivatives, vmap) fails loudly.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from brian2 import ms
from test_network_neuron_models import MILLIVOLT, TWO_COMPARTMENT  # inputs to a dendrite; mV

from mosaicnet.errors import ConfigError
from mosaicnet.meta import training
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.maml import MetaBatch, init_meta_params, meta_gradient
from mosaicnet.native_build import NativeLibrary
from mosaicnet.network import native_kernels
from mosaicnet.network.input_drive import event_driven_drive
from mosaicnet.network.neuron_model import NeuronModel
from mosaicnet.network.neuron_presets import neuron_model
from mosaicnet.network.spec import NeuronParameters, input_spikes, random_spec
from mosaicnet.network.torch_clone import TorchClone

pytestmark = pytest.mark.usefixtures("single_thread")

LAYOUT = {"kind": "mosaic", "rows": 2, "cols": 2, "neurons_per_tile": 4, "beta": 8.0}
N_IN, N_REC, N_OUT, T, BATCH = 12, 16, 6, 30, 3
FUSED_PRESETS = ("lif", "cuba_lif", "alif", "adlif")
RTOL = 1e-10

#: Reset to a value plus a state-dependent increment, and an inclusive threshold: the
#: reset's spike derivative depends on the state (which the presets' does not).
RESET_TO_VALUE = NeuronModel(
    name="lif_reset_to_value",
    equations="dv/dt = -v / tau_mem : 1",
    threshold="v >= thr",
    reset="v = 0\nv += 0.1 * v + 0.05",
    constants={"tau_mem": 420 * ms, "thr": 2.0},
)


def _clone(model, *, seed=0, fused="auto", dtype=torch.float64, gain=4.0) -> TorchClone:
    mask = np.random.default_rng(seed).random((N_REC, N_REC)) < 0.3
    neuron = NeuronParameters(model=neuron_model(model))
    spec = random_spec(N_IN, LAYOUT, N_OUT, mask, neuron=neuron, gain=gain, seed=seed)
    return TorchClone(spec, dtype=dtype, fused=fused)


def _input(seed=1, batch=BATCH, p=0.15) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).random((batch, T, N_IN)) < p)


def _spikes_and_gradients(clone, params, x, spike_weights):
    """Spikes, a loss of spikes and readout, and its gradients w.r.t. w_in and w_rec."""
    z = clone.recurrent_spikes(params, x)
    loss = (z * spike_weights).sum() + (clone.readout(params["w_out"], clone.readout_trace(z))
                                        ** 2).mean()  # fmt: skip
    gradients = torch.autograd.grad(loss, [params["w_in"], params["w_rec"]])
    return z, loss, gradients


def _assert_relative(actual, expected, rtol=RTOL):
    scale = expected.abs().max()
    assert scale > 0
    assert float((actual - expected).abs().max() / scale) < rtol


@pytest.mark.parametrize("model", [*FUSED_PRESETS, RESET_TO_VALUE])
def test_fused_spikes_are_identical_and_gradients_equal_the_reference(model):
    fused = _clone(model, fused=True)
    reference = fused.reference()
    params = {name: w.requires_grad_() for name, w in fused.init_params().items()}
    x = _input()
    spike_weights = torch.randn(BATCH, T, N_REC, generator=torch.Generator().manual_seed(2),
                                dtype=torch.float64)  # fmt: skip
    z_f, loss_f, grads_f = _spikes_and_gradients(fused, params, x, spike_weights)
    z_r, loss_r, grads_r = _spikes_and_gradients(reference, params, x, spike_weights)
    assert 0.02 < float(z_r.detach().mean()) < 0.5  # spiking, not saturated: the test has teeth
    assert torch.equal(z_f, z_r)
    _assert_relative(loss_f.detach(), loss_r.detach())
    for g_f, g_r in zip(grads_f, grads_r, strict=True):
        _assert_relative(g_f, g_r)
    # Synapses outside the (sparse) mask do not exist: no gradient.
    assert torch.all(grads_f[1][~fused.rec_mask] == 0)


def test_float32_training_dtype_gives_the_same_spikes_and_close_gradients():
    fused = _clone("cuba_lif", fused=True, dtype=torch.float32)
    params = {name: w.requires_grad_() for name, w in fused.init_params().items()}
    spike_weights = torch.randn(BATCH, T, N_REC, generator=torch.Generator().manual_seed(2))
    z_f, _, grads_f = _spikes_and_gradients(fused, params, _input(), spike_weights)
    z_r, _, grads_r = _spikes_and_gradients(fused.reference(), params, _input(), spike_weights)
    assert z_f.dtype == torch.float32 and torch.equal(z_f, z_r)
    for g_f, g_r in zip(grads_f, grads_r, strict=True):
        _assert_relative(g_f, g_r, rtol=1e-5)


def _meta_batch(seed=4, n_tasks=2, n_way=3, k_shot=2, n_query=2) -> MetaBatch:
    gen = torch.Generator().manual_seed(seed)
    rates = torch.rand(N_OUT, N_IN, generator=gen) * 0.4

    def draw(classes, per_class):
        labels = torch.arange(n_way).repeat_interleave(per_class)
        p = rates[classes[labels]].unsqueeze(1).expand(-1, T, -1)
        return (torch.rand(p.shape, generator=gen) < p).double(), labels

    parts = [[], [], [], [], []]
    for _ in range(n_tasks):
        classes = torch.randperm(N_OUT, generator=gen)[:n_way]
        s_x, s_y = draw(classes, k_shot)
        q_x, q_y = draw(classes, n_query)
        for part, value in zip(parts, (s_x, s_y, q_x, q_y, classes), strict=True):
            part.append(value)
    return MetaBatch(*(torch.stack(part) for part in parts))


def _maml_config(**changes) -> TrainConfig:
    values = dict(
        n_way=3, k_shot=2, n_query=2, n_out=N_OUT, held_out_classes=(0,), dtype="float64",
        inner_steps=1, inner_lr=0.5, prune_threshold=0.0, layout_lambda=1e-3,
    )  # fmt: skip
    return TrainConfig(**{**values, **changes})


def _count_backward_calls(clone) -> list[int]:
    """Count the fused layer's backward passes (to know the fused path really ran)."""
    calls: list[int] = []
    layer = clone.fused_layer
    original = layer.backward

    def counted(*args):
        calls.append(1)
        return original(*args)

    layer.backward = counted
    return calls


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("inner_steps", [1, 10])
@pytest.mark.parametrize("model", FUSED_PRESETS)
def test_meta_gradient_on_the_fused_layer_equals_the_reference(model, inner_steps, first_order):
    fused = _clone(model, seed=5)
    calls = _count_backward_calls(fused)
    config = _maml_config(inner_steps=inner_steps, inner_lr=0.5 / inner_steps,
                          first_order=first_order)  # fmt: skip
    params = init_meta_params(fused.init_params(), config)
    batch = _meta_batch()
    cost = torch.rand(N_REC, N_REC, generator=torch.Generator().manual_seed(6),
                      dtype=torch.float64)  # fmt: skip
    g_f, loss_f, m_f = meta_gradient(params, batch, fused, config, layout_cost=cost)
    g_r, loss_r, _ = meta_gradient(params, batch, fused.reference(), config, layout_cost=cost)
    assert calls  # the meta-gradient went through the fused backward
    assert m_f["rate"] > 0
    _assert_relative(loss_f, loss_r)
    assert set(g_f) == set(g_r)
    for name in g_f:
        _assert_relative(g_f[name], g_r[name])


def test_the_all_weights_inner_loop_falls_back_to_the_reference():
    # Its inner gradients go through the recurrent layer under vmap and are
    # differentiated again: "auto" must take the reference loop there.
    fused = _clone("lif", seed=5)
    calls = _count_backward_calls(fused)
    config = _maml_config(inner_params="all", inner_lr=0.1)
    params = init_meta_params(fused.init_params(), config)
    batch = _meta_batch()
    g_f, loss_f, _ = meta_gradient(params, batch, fused, config)
    g_r, loss_r, _ = meta_gradient(params, batch, fused.reference(), config)
    assert not calls
    _assert_relative(loss_f, loss_r, rtol=1e-14)
    for name in g_f:
        _assert_relative(g_f[name], g_r[name], rtol=1e-14)


def test_second_derivative_through_the_fused_layer_is_a_clear_error():
    clone = _clone("lif", fused=True)
    params = {name: w.requires_grad_() for name, w in clone.init_params().items()}
    loss = clone.recurrent_spikes(params, _input()).sum()
    with pytest.raises(RuntimeError, match="first-order backward only"):
        torch.autograd.grad(loss, params["w_rec"], create_graph=True)

    def gradient_norm(w_rec):
        def loss_of(w):
            return clone.recurrent_spikes({**params, "w_rec": w}, _input()).sum()

        return torch.func.grad(loss_of)(w_rec).square().sum()

    with pytest.raises(RuntimeError, match="nested torch.func.grad"):
        torch.func.grad(gradient_norm)(params["w_rec"].detach())


def test_under_vmap_auto_takes_the_reference_and_fused_true_refuses():
    x = _input().double()
    auto, forced = _clone("alif"), _clone("alif", fused=True)
    params = auto.init_params()

    def spikes(clone):
        return torch.func.vmap(lambda x_b: clone.recurrent_spikes(params, x_b[None])[0])(x)

    assert torch.equal(spikes(auto), auto.reference().recurrent_spikes(params, x))
    with pytest.raises(RuntimeError, match="torch.func.vmap"):
        spikes(forced)


def test_models_the_fused_layer_cannot_take_use_the_reference():
    assert _clone("lif_refractory").fused_layer is None
    assert _clone("lif").fused_layer is not None
    assert _clone("lif", fused=False).fused_layer is None
    with pytest.raises(ConfigError, match="refractory period.*fused='auto' or False"):
        _clone("lif_refractory", fused=True)
    with pytest.raises(ConfigError, match="fused must be True, False or 'auto'"):
        _clone("lif", fused="yes")


def test_seeded_training_gives_the_same_parameters_fused_and_reference(
    tmp_path, data_dir, monkeypatch
):
    config = TrainConfig(
        rows=2, cols=2, neurons_per_tile=4, n_bins=30, spatial_stride=10, meta_batch=2,
        n_way=3, k_shot=2, n_query=2, checkpoint_every=20, outer_lr=3e-3, iterations=20,
        dtype="float64",
    )  # fmt: skip
    make_clone = training.make_clone
    backward_calls: list[list[int]] = []

    def counting_clone(spec, config):
        clone = make_clone(spec, config)
        backward_calls.append(_count_backward_calls(clone))
        return clone

    monkeypatch.setattr(training, "make_clone", counting_clone)
    fused = training.train(config, tmp_path / "fused", data_dir=data_dir, progress=False)
    assert backward_calls and all(backward_calls)  # the default training ran on the fused layer
    monkeypatch.setattr(training, "make_clone", lambda spec, c: make_clone(spec, c).reference())
    reference = training.train(config, tmp_path / "reference", data_dir=data_dir,
                               progress=False)  # fmt: skip
    params_f = fused.run.load_checkpoint()["params"]
    params_r = reference.run.load_checkpoint()["params"]
    assert fused.iterations == reference.iterations == 20
    assert set(params_f) == set(params_r)
    for name in params_f:
        assert params_f[name].dtype == torch.float64
        _assert_relative(params_f[name], params_r[name])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_readout_trace_is_bit_identical_with_equal_gradients(dtype):
    """The readout trace of the fused path: the reference's values to the bit (Brian2's
    readout recursion), its gradient, and a second derivative (gradgradcheck)."""
    fused = _clone("lif", dtype=dtype)
    reference = fused.reference()
    generator = torch.Generator().manual_seed(4)
    z = (torch.rand(BATCH, T, N_REC, generator=generator) < 0.2).to(dtype).requires_grad_()
    weights = torch.randn(BATCH, T, N_REC, generator=generator, dtype=dtype)
    trace_f, trace_r = fused.readout_trace(z), reference.readout_trace(z)
    assert torch.equal(trace_f, trace_r)
    grad_f, grad_r = (torch.autograd.grad((t * weights).sum(), z)[0] for t in (trace_f, trace_r))
    _assert_relative(grad_f, grad_r, 1e-10 if dtype == torch.float64 else 1e-5)
    if dtype == torch.float64:
        z_small = torch.rand(2, 5, 3, dtype=dtype, generator=generator).requires_grad_()
        assert torch.autograd.gradgradcheck(fused.readout_trace, (z_small,))


@pytest.mark.parametrize("model", FUSED_PRESETS)
def test_event_driven_synapses_at_low_rates_equal_the_reference(model):
    """Below one spike in SPARSE_SPIKE_RATIO the forward adds W_rec rows per spike (and the
    weight gradient gathers rows): spikes identical, gradients equal to rounding."""
    from mosaicnet.network.fused_recurrence import SPARSE_SPIKE_RATIO

    fused = _clone(model, fused=True, gain=2.0)
    reference = fused.reference()
    params = {name: w.requires_grad_() for name, w in fused.init_params().items()}
    x = _input(batch=32, p=0.05)
    spike_weights = torch.randn(32, T, N_REC, generator=torch.Generator().manual_seed(5),
                                dtype=torch.float64)  # fmt: skip
    z_f, loss_f, grads_f = _spikes_and_gradients(fused, params, x, spike_weights)
    z_r, loss_r, grads_r = _spikes_and_gradients(reference, params, x, spike_weights)
    per_step = z_r.detach().sum(dim=(0, 2))
    sparse_steps = (per_step > 0) & (per_step * SPARSE_SPIKE_RATIO <= 32 * N_REC)
    assert int(sparse_steps.sum()) >= T // 3  # most spiking steps take the event-driven path
    assert torch.equal(z_f, z_r)
    _assert_relative(loss_f, loss_r)
    for g_f, g_r in zip(grads_f, grads_r, strict=True):
        _assert_relative(g_f, g_r)


# ---------------------------------------------------------------- compiled kernels
SURROGATE_CASES = [
    (model, "fast_sigmoid")
    for model in [*FUSED_PRESETS, RESET_TO_VALUE, TWO_COMPARTMENT, MILLIVOLT]
] + [("cuba_lif", "sigmoid"), ("alif", "triangular")]


def _layer_records(clone, params, x, native):
    """Forward records, the spikes and the gradients of the fused layer alone."""
    layer = clone.fused_layer
    layer.native = native
    try:
        drive = (input_spikes(x).to(clone.dtype) @ params["w_in"]).detach().requires_grad_()
        w_rec = (params["w_rec"] * clone._mask_float).detach().requires_grad_()
        with torch.no_grad():
            records = layer.forward(drive, w_rec)
        z = layer(drive, w_rec)
        weights = torch.randn(z.shape, generator=torch.Generator().manual_seed(3), dtype=z.dtype)
        grads = torch.autograd.grad((z * weights).sum() + (z.cumsum(1) ** 2).mean(), [drive, w_rec])
    finally:
        layer.native = True
    return records, grads


@pytest.mark.parametrize(("model", "surrogate"), SURROGATE_CASES)
def test_compiled_kernels_equal_the_torch_loop(model, surrogate):
    if native_kernels.load_kernels(torch.float64) is None:
        pytest.skip(f"compiled kernels unavailable: {native_kernels.unavailable_reason()}")
    mask = np.random.default_rng(0).random((N_REC, N_REC)) < 0.3
    neuron = NeuronParameters(model=neuron_model(model))
    spec = random_spec(N_IN, LAYOUT, N_OUT, mask, neuron=neuron, gain=4.0, seed=0)
    clone = TorchClone(spec, dtype=torch.float64, fused=True, surrogate=surrogate)
    assert clone.fused_layer.kernels_for(torch.zeros((), dtype=torch.float64)) is not None
    params = clone.init_params()
    x = _input(p=0.3)
    (spikes_c, spiked_c, sur_c, pre_c), grads_c = _layer_records(clone, params, x, True)
    (spikes_t, spiked_t, sur_t, pre_t), grads_t = _layer_records(clone, params, x, False)
    assert 0.02 < float(spikes_t.mean()) < 0.5
    assert torch.equal(spikes_c, spikes_t) and torch.equal(spiked_c, spiked_t)
    _assert_relative(sur_c, sur_t, rtol=1e-12)
    assert (pre_c is None) == (pre_t is None)
    if pre_t is not None:
        _assert_relative(pre_c, pre_t, rtol=1e-12)
    for g_c, g_t in zip(grads_c, grads_t, strict=True):
        _assert_relative(g_c, g_t, rtol=1e-12)


def _fresh_library(monkeypatch) -> None:
    """A library object that has built nothing yet (this process's is cached)."""
    old = native_kernels.LIBRARY
    fresh = NativeLibrary(old.source, old.signatures, fallback=old.fallback)
    monkeypatch.setattr(native_kernels, "LIBRARY", fresh)
    monkeypatch.setattr(native_kernels, "_kernels", {})


def test_without_compiled_kernels_the_torch_loop_runs(monkeypatch, tmp_path, caplog):
    _fresh_library(monkeypatch)
    monkeypatch.setenv("MOSAICNET_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler")
    clone = _clone("lif", fused=True)
    layer = clone.fused_layer
    with caplog.at_level("WARNING", logger="mosaicnet.native_build"):
        assert layer.kernels_for(torch.zeros((), dtype=torch.float64)) is None
        assert layer.kernels_for(torch.zeros((), dtype=torch.float32)) is None
    assert "no C compiler 'no-such-compiler'" in native_kernels.unavailable_reason()
    # Said once, with what happens instead.
    assert [record.message.count("runs its torch loops") for record in caplog.records] == [1]
    params = {name: w.requires_grad_() for name, w in clone.init_params().items()}
    spike_weights = torch.ones(BATCH, T, N_REC, dtype=torch.float64)
    z_f, _, grads_f = _spikes_and_gradients(clone, params, _input(), spike_weights)
    z_r, _, grads_r = _spikes_and_gradients(clone.reference(), params, _input(), spike_weights)
    assert torch.equal(z_f, z_r)
    for g_f, g_r in zip(grads_f, grads_r, strict=True):
        _assert_relative(g_f, g_r)
    monkeypatch.setenv("MOSAICNET_NATIVE", "0")
    assert native_kernels.unavailable_reason() == "MOSAICNET_NATIVE=0"


def test_compiled_kernels_are_cached_per_source_and_flags(monkeypatch, tmp_path):
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    _fresh_library(monkeypatch)
    monkeypatch.setenv("MOSAICNET_CACHE", str(tmp_path))
    assert native_kernels.load_kernels(torch.float32) is not None
    assert native_kernels.load_kernels(torch.float64) is not None
    built = sorted(path.name for path in tmp_path.iterdir())
    assert len(built) == 2 and built[0].startswith("fused_kernels_double_")
    assert built[1].startswith("fused_kernels_float_")
    assert native_kernels.load_kernels(torch.float16) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_driven_input_drive_equals_the_dense_product(dtype):
    kernels = native_kernels.load_kernels(dtype)
    if kernels is None:
        pytest.skip(f"compiled kernels unavailable: {native_kernels.unavailable_reason()}")
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(4, 20, 30, generator=gen) < 0.05
    x[0, 3] = False  # a step without input: its drive is zero
    x[1, 2, 16:24] = True  # a whole word of the byte scan
    w_in = torch.randn(30, 9, generator=gen, dtype=dtype, requires_grad=True)
    drive = event_driven_drive(x, w_in, kernels, transformed=False)
    expected = x.to(dtype) @ w_in
    rtol = 1e-6 if dtype == torch.float32 else 1e-13
    _assert_relative(drive.detach(), expected.detach(), rtol=rtol)
    assert torch.all(drive[0, 3] == 0)
    # The fused layer hands the gradient over time-major: both layouts.
    for grad in (
        torch.randn(4, 20, 9, generator=gen, dtype=dtype),
        torch.randn(20, 4, 9, generator=gen, dtype=dtype).transpose(0, 1),
    ):
        (g_event,) = torch.autograd.grad(drive, w_in, grad, retain_graph=True)
        (g_dense,) = torch.autograd.grad(expected, w_in, grad, retain_graph=True)
        _assert_relative(g_event, g_dense, rtol=rtol)
    with pytest.raises(TypeError, match="must be boolean"):
        event_driven_drive(x.to(dtype), w_in, kernels, transformed=False)
    with pytest.raises(RuntimeError, match="first-order backward only"):
        drive = event_driven_drive(x, w_in, kernels, transformed=False)
        torch.autograd.grad(drive, w_in, grad, create_graph=True)


def test_compiled_backward_takes_a_time_major_spike_gradient():
    if native_kernels.load_kernels(torch.float64) is None:
        pytest.skip(f"compiled kernels unavailable: {native_kernels.unavailable_reason()}")
    clone = _clone("alif", fused=True)
    layer = clone.fused_layer
    params = clone.init_params()
    drive = input_spikes(_input(p=0.3)).to(clone.dtype) @ params["w_in"]
    w_rec = params["w_rec"] * clone._mask_float
    _, spiked, surrogate, pre_reset = layer.forward(drive, w_rec)
    gen = torch.Generator().manual_seed(6)
    grad = torch.randn(T, BATCH, N_REC, generator=gen, dtype=torch.float64).transpose(0, 1)
    assert not grad.is_contiguous()
    compiled = layer.backward(grad, spiked, surrogate, pre_reset, w_rec)
    layer.native = False
    try:
        expected = layer.backward(grad.contiguous(), spiked, surrogate, pre_reset, w_rec)
    finally:
        layer.native = True
    for actual, reference in zip(compiled, expected, strict=True):
        _assert_relative(actual, reference, rtol=1e-12)
