"""The layout loss: a differentiable penalty on recurrent weights that cost routing.

Following Dalgaty et al. (Nature Communications 15, 142, 2024) and the public
training code of EIS-Hub/meta-mosaic, the total training loss is
``L = L_CE + lambda * L_M`` with the layout loss::

    L_M = mean(S * W_rec^2)

where S is the neuron-level layout cost of :class:`mosaicnet.layout.Layout`
(0 inside a tile, ``e^beta - 1`` at one hop, saturating at ``e^15``).

Scale: mean versus sum
----------------------
The reference code takes the **mean** over all ``N^2`` entries; the talk writes
a **sum** (``L_M = sum S * W^2``), which is ``N^2`` times larger (65 536 x for
256 neurons). Both are offered (``reduction="mean"`` is the default, as in the
reference code); lambda must be chosen for the reduction in use.

Because S saturates at ``e^15`` (about 3.27e6) for almost every pair on the
default 8 x 8 x 4 Mosaic (all pairs two or more hops apart, ~93 % of them), the
mean penalty is large: for i.i.d. weights of std ``sigma`` it is
``sigma^2 * mean(S)`` (see :meth:`Layout.expected_layout_loss`), about
``3.04e6 * sigma^2`` on the default layout. In the published configuration the
penalty at lambda = 1 was about 3.6e5 (the figure quoted in mosaicnet issue 3;
it corresponds to sigma ~ 0.34), against a cross-entropy of about 3, so at
lambda = 1 the layout term alone drives training.

Recommended range: choose lambda so that ``lambda * L_M`` starts at 0.1-1 x
the cross-entropy, i.e. ``lambda ~ (0.1..1) * L_CE / L_M(init)``; at the
published scale that is lambda in about ``[1e-6, 1e-5]`` with the mean
(with the sum, divide by ``N^2`` as well: about ``[1e-11, 1e-10]`` for 256
neurons). Larger lambda removes long-range synapses faster at the cost of
accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from mosaicnet.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from mosaicnet.layout.mosaic import Layout

Reduction = Literal["mean", "sum"]


def layout_loss(
    w_rec: torch.Tensor,
    cost: torch.Tensor,
    lam: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Return ``lam * mean(cost * w_rec**2)`` (or the sum) as a scalar torch tensor.

    Pure torch operations only, so the function is differentiable and works
    inside ``torch.func.grad`` and ``torch.func.vmap`` (map over a batch of
    weight matrices with ``in_dims=(0, None)``).

    Parameters
    ----------
    w_rec
        Recurrent weights ``(N, N)``, entry ``[i, j]`` from neuron i to neuron j.
    cost
        Layout cost S ``(N, N)``; pass the cached ``Layout.cost_tensor(dtype, device)``
        so it is not rebuilt at each call.
    lam
        Weight lambda of the layout loss in the total loss (see module docstring
        for the recommended range).
    reduction
        ``"mean"`` (reference code, default) or ``"sum"`` (the talk's formula).

    Raises
    ------
    ConfigError
        If the shapes differ or ``reduction`` is unknown.
    """
    if tuple(w_rec.shape) != tuple(cost.shape):
        raise ConfigError(
            f"w_rec has shape {tuple(w_rec.shape)} but the layout cost S has shape "
            f"{tuple(cost.shape)}; the recurrent matrix must match the layout's neuron count"
        )
    penalty = cost * w_rec * w_rec
    if reduction == "mean":
        return lam * penalty.mean()
    if reduction == "sum":
        return lam * penalty.sum()
    raise ConfigError(f"layout loss reduction must be 'mean' or 'sum', got {reduction!r}")


def make_layout_loss(
    layout: Layout,
    lam: float = 1.0,
    *,
    dtype: torch.dtype | None = None,
    device: Any = "cpu",
    reduction: Reduction = "mean",
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``w_rec -> lam * L_M(w_rec)`` with the layout's S cached on ``device``.

    Convenience for training loops: the closure holds the tensor from
    :meth:`Layout.cost_tensor`; every call checks the weight shape against it
    (cheap: shapes are static, also under ``vmap``).
    """
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"layout loss reduction must be 'mean' or 'sum', got {reduction!r}")
    cost = layout.cost_tensor(dtype=dtype, device=device)

    def loss(w_rec: torch.Tensor) -> torch.Tensor:
        return layout_loss(w_rec, cost, lam, reduction)

    return loss
