"""The layout loss lambda * mean(S * W^2): value, gradient, vmap/grad, shapes."""

import numpy as np
import pytest
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.layout import Layout, layout_loss, make_layout_loss


def test_loss_equals_numpy_formula_mean_and_sum():
    layout = Layout(3, 3, 2)
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 0.05, (18, 18))
    cost = layout.cost_matrix()
    cost_t = layout.cost_tensor(torch.float64)
    w_t = torch.tensor(w)
    expected_mean = 0.3 * np.mean(cost * w**2)
    assert layout_loss(w_t, cost_t, 0.3).item() == pytest.approx(expected_mean, rel=1e-12)
    expected_sum = 0.3 * np.sum(cost * w**2)
    assert layout_loss(w_t, cost_t, 0.3, "sum").item() == pytest.approx(expected_sum, rel=1e-12)


def test_gradient_passes_gradcheck_in_float64():
    # beta = 1 keeps S moderate so finite differences are well conditioned.
    layout = Layout(3, 3, 2, beta=1.0)
    cost = layout.cost_tensor(torch.float64)
    w = torch.randn(18, 18, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: layout_loss(x, cost, 0.7), (w,))


def test_vmap_of_grad_matches_analytic_gradient():
    layout = Layout(2, 2, 3)
    cost = layout.cost_tensor(torch.float64)
    batch = torch.randn(5, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    lam = 1e-6
    grads = torch.func.vmap(torch.func.grad(lambda w: layout_loss(w, cost, lam)))(batch)
    expected = 2.0 * lam * cost * batch / 12**2
    torch.testing.assert_close(grads, expected, rtol=1e-12, atol=0.0)


def test_cost_tensor_is_cached_and_make_layout_loss_uses_it():
    layout = Layout(2, 2, 2)
    assert layout.cost_tensor(torch.float32) is layout.cost_tensor(torch.float32)
    assert layout.cost_tensor(torch.float64).dtype == torch.float64
    loss = make_layout_loss(layout, 2.0, dtype=torch.float64)
    w = torch.ones(8, 8, dtype=torch.float64)
    assert loss(w).item() == pytest.approx(2.0 * layout.cost_matrix().mean())


def test_fully_connected_layout_has_zero_loss_and_gradient():
    layout = Layout.fully_connected(16)
    w = torch.randn(16, 16, requires_grad=True)
    value = layout_loss(w, layout.cost_tensor(torch.float32), 1.0)
    value.backward()
    assert value.item() == 0.0 and not w.grad.any()


def test_shape_mismatch_and_bad_reduction_raise_config_error():
    cost = Layout(2, 2, 2).cost_tensor(torch.float32)
    with pytest.raises(ConfigError, match="layout"):
        layout_loss(torch.zeros(9, 9), cost)
    with pytest.raises(ConfigError, match="reduction"):
        layout_loss(torch.zeros(8, 8), cost, reduction="max")
