"""MAML as pure functions of parameters and tasks, all tasks of a meta-batch processed together.

The published method (EIS-Hub/meta-mosaic ``train.py``; Raghunathan et al., NICE
2024; docs/meta_learning.md, 'MAML on the readout'): the inner loop takes ``k`` steps on the readout
``w_out`` only, from the support set of one task; the outer loss is evaluated on
the task's query set with the adapted readout and differentiated, through the
inner steps (second order), with respect to all network weights; tasks of a
meta-batch are processed together.

Nothing here mutates a module or holds state: parameters are a flat ``dict`` of
tensors (``w_in``, ``w_rec``, ``w_out`` and, with a learned inner learning rate,
``log_inner_lr.<name>``) and every function returns new tensors.

The readout-only fast path
--------------------------
With the inner loop on the readout only, the recurrent spikes of a task do not
depend on the inner loop, and the readout is linear in ``w_out`` given the
readout's filtered spike trace (``v_out = trace @ w_out``, see
:meth:`mosaicnet.network.torch_clone.TorchClone.readout`). So the recurrent layer
runs ONCE for the support and query sets of all tasks together (one batch:
the recurrent weights are shared), and every inner step works on the readout
alone: a ``(samples x T x n_rec) @ (n_rec x n_out)`` product to find each unit's
peak time, then small batched products on the trace rows at those peaks
(:func:`adapt_readout`). The readout functions take the task dimension as a
leading batch dimension, so all tasks of a meta-batch take each inner step
together in one batched product (no loop over tasks, and none of ``vmap``'s
per-operation overhead). This is exact: it computes the same function as
re-running the network at every inner step (:func:`meta_loss` with
``fast_readout=False``, checked in the tests), at a cost that barely grows with
the number of inner steps.

The general path (inner loop on all weights, or ``fast_readout=False``) maps a
per-task function over the tasks with ``torch.func.vmap``, with the inner
gradients from ``torch.func.grad``.

Labels
------
Readout units are indexed by GLOBAL label (``n_out = 20`` for SHD) and the losses
use global labels over all units, as published. Predictions come in two kinds:
:func:`predict` (the standard N-way prediction: argmax over the task's N
classes) and :func:`predict_all_units` (the published metric: argmax over all
units).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.func import grad, vmap

from mosaicnet.meta.losses import (
    RATE_SCALE,
    cross_entropy,
    firing_rate_penalty,
    l2_penalty,
    max_over_time,
)

if TYPE_CHECKING:
    from mosaicnet.meta.config import TrainConfig
    from mosaicnet.network.torch_clone import TorchClone

#: Network weights, in the order of the spec.
NETWORK_KEYS: tuple[str, ...] = ("w_in", "w_rec", "w_out")
#: Prefix of learned (log) inner learning rates in the parameter dict.
LOG_LR_PREFIX = "log_inner_lr."

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class MetaBatch:
    """The tensors of a meta-batch that the losses need (a view of a ``TaskBatch``).

    Attributes
    ----------
    support_x, query_x
        ``(B, S, T, C)`` and ``(B, Q, T, C)`` binary inputs (already clipped to 0/1):
        ``bool`` (:func:`mosaicnet.meta.run_setup.to_meta_batch`), or 0/1 in any dtype;
        the losses convert them to the weights' dtype one pass at a time.
    support_y, query_y
        ``(B, S)``, ``(B, Q)`` task-local labels ``0..N-1``.
    classes
        ``(B, N)`` global labels of the task-local classes.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor

    @property
    def n_tasks(self) -> int:
        """Number of tasks B."""
        return int(self.classes.shape[0])

    def split(self, tasks: int | None) -> tuple[MetaBatch, ...]:
        """Consecutive parts of at most ``tasks`` tasks each (views; ``None``: this batch)."""
        if tasks is None or tasks >= self.n_tasks:
            return (self,)
        parts = zip(
            *(
                tensor.split(tasks)
                for tensor in (
                    self.support_x,
                    self.support_y,
                    self.query_x,
                    self.query_y,
                    self.classes,
                )
            ),
            strict=True,
        )
        return tuple(MetaBatch(*part) for part in parts)


# ------------------------------------------------------------------------- parameters
def adapted_names(config: TrainConfig) -> tuple[str, ...]:
    """Names of the weights the inner loop adapts: ``("w_out",)`` or all three."""
    return ("w_out",) if config.inner_params == "readout" else NETWORK_KEYS


def init_meta_params(network_params: Mapping[str, torch.Tensor], config: TrainConfig) -> Params:
    """Meta-parameters: copies of the network weights plus learned inner lrs if asked.

    A learned inner learning rate (Meta-SGD style, one per adapted layer) is stored
    as its logarithm, initialised at ``log(config.resolved_inner_lr)``, so it stays
    positive whatever the optimizer does.
    """
    params = {name: network_params[name].detach().clone() for name in NETWORK_KEYS}
    if config.learn_inner_lr:
        dtype = params["w_out"].dtype
        for name in adapted_names(config):
            params[LOG_LR_PREFIX + name] = torch.tensor(
                math.log(config.resolved_inner_lr), dtype=dtype, device=params["w_out"].device
            )
    return params


def inner_learning_rates(params: Mapping[str, torch.Tensor], config: TrainConfig) -> dict[str, Any]:
    """Inner learning rate per adapted layer: learned (a tensor) or from the config (float)."""
    rates: dict[str, Any] = {}
    for name in adapted_names(config):
        key = LOG_LR_PREFIX + name
        rates[name] = torch.exp(params[key]) if key in params else config.resolved_inner_lr
    return rates


def network_params(params: Mapping[str, torch.Tensor]) -> Params:
    """The three weight matrices of ``params`` (drops learned learning rates)."""
    return {name: params[name] for name in NETWORK_KEYS}


def prune_recurrent(w_rec: torch.Tensor, threshold: float) -> torch.Tensor:
    """``w_rec`` with entries ``|w| < threshold`` set to zero, as a product with a mask.

    Because the mask is a constant of the forward pass, pruned entries receive a zero
    gradient; :func:`mosaicnet.meta.training.apply_pruning` zeroes the same entries in
    the stored parameters and their optimizer state, so the optimizer and the forward
    pass always agree on which synapses exist (the published code pruned only the
    copy the gradient was taken at, while its optimizer kept the pruned weights).
    """
    if threshold <= 0:
        return w_rec
    return w_rec * (w_rec.abs() >= threshold).to(w_rec.dtype)


def effective_weights(
    params: Mapping[str, torch.Tensor],
    *,
    prune_threshold: float,
    offsets: Mapping[str, torch.Tensor] | None = None,
) -> Params:
    """Weights the forward pass uses: pruned, then perturbed by device offsets.

    ``offsets`` (from :mod:`mosaicnet.meta.hardware`) are constants computed outside
    the differentiated function: ``w + offset`` in the forward pass with the gradient
    of ``w`` is the straight-through estimator of hardware-aware training. Pruned
    (zero) recurrent weights get no offset: no device is programmed for them.
    """
    weights = network_params(params)
    weights["w_rec"] = prune_recurrent(weights["w_rec"], prune_threshold)
    if offsets:
        for name, offset in offsets.items():
            exists = (weights[name] != 0).to(weights[name].dtype)
            weights[name] = weights[name] + offset * exists
    return weights


# ------------------------------------------------------------------------- readout core
def global_labels(local_y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Global label of each task-local label: ``classes[local_y]`` (any leading dims)."""
    return classes.gather(-1, local_y)


def task_units(classes: torch.Tensor, n_units: int) -> torch.Tensor:
    """``(..., n_units)`` bool: True at the readout units of the task's classes."""
    units = torch.arange(n_units, device=classes.device)
    return (classes.unsqueeze(-1) == units).any(dim=-2)


def loss_logits(logits: torch.Tensor, classes: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The logits a cross-entropy normalises over (``TrainConfig.loss_units``).

    ``"all"``: unchanged. ``"task"``: units outside the task's classes are set to
    the most negative finite value, so the softmax gives them zero probability and
    no gradient (finite, so no ``inf - inf`` appears in second-order gradients).
    ``logits`` ``(..., S, n_out)``, ``classes`` ``(..., N)``.
    """
    if config.loss_units == "all":
        return logits
    inside = task_units(classes, logits.shape[-1]).unsqueeze(-2)
    return logits.masked_fill(~inside, torch.finfo(logits.dtype).min)


def start_readout(
    w_out: torch.Tensor, support_trace: torch.Tensor, support_y: torch.Tensor,
    classes: torch.Tensor, config: TrainConfig, *, meta_training: bool = False,
) -> torch.Tensor:  # fmt: skip
    """The readout a task's inner loop starts from (``TrainConfig.readout_init``).

    ``"meta"``: ``w_out`` itself; ``"prototype"`` and ``"meta+prototype"``:
    :func:`prototype_readout`, the latter adding the prototypes to the meta-learned
    columns of the task's meta-training classes instead of replacing them (the
    held-out classes' columns were never trained as their class: they are replaced).
    In ``meta_training`` tasks the last ``config.pseudo_novel_classes`` classes of
    each task (random ones: a task's classes come in random order) are treated as
    held-out ones, so that meta-training meets the mix of kept and replaced columns
    that tasks over all classes meet at test time.
    """
    if config.readout_init == "meta":
        return w_out
    keep_meta = None
    if config.readout_init == "meta+prototype":
        held_out = torch.as_tensor(config.held_out_classes, device=classes.device)
        keep_meta = ~torch.isin(classes, held_out)
        novel = config.pseudo_novel_classes if meta_training else 0
        if novel:
            position = torch.arange(classes.shape[-1], device=classes.device)
            keep_meta = keep_meta & (position < classes.shape[-1] - novel)
    return prototype_readout(w_out, support_trace, support_y, classes, keep_meta=keep_meta)


def prototype_readout(
    w_out: torch.Tensor, support_trace: torch.Tensor, support_y: torch.Tensor,
    classes: torch.Tensor, *, keep_meta: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """The readout with each task class's column set to its support prototype.

    ``TrainConfig.readout_init = "prototype"``: column ``classes[j]`` becomes
    ``m_j / |m_j|^2``, ``m_j`` the readout trace of the support recordings of local
    class ``j`` averaged over time and recordings; the other columns are kept.
    ``keep_meta`` (``(..., N)`` bool, ``"meta+prototype"``): where True the
    prototype is added to the column instead, so what meta-training stored in a
    seen class's column stays.
    ``w_out`` ``(..., n_rec, n_out)`` (or shared ``(n_rec, n_out)``),
    ``support_trace`` ``(..., S, T, n_rec)``, ``support_y`` ``(..., S)`` local labels,
    ``classes`` ``(..., N)``; returns ``(..., n_rec, n_out)``. Differentiable.
    """
    n_way, n_out = classes.shape[-1], w_out.shape[-1]
    dtype = support_trace.dtype
    member = (support_y.unsqueeze(-1) == torch.arange(n_way, device=support_y.device)).to(dtype)
    mean_trace = support_trace.mean(dim=-2)  # (..., S, n_rec)
    counts = member.sum(dim=-2).clamp_min(1.0).unsqueeze(-1)  # (..., N, 1)
    proto = member.transpose(-1, -2) @ mean_trace / counts  # (..., N, n_rec)
    proto = proto / (proto * proto).sum(dim=-1, keepdim=True).clamp_min(1e-12)
    units = torch.nn.functional.one_hot(classes, n_out).to(dtype)  # (..., N, n_out)
    replaced = units if keep_meta is None else units * (~keep_meta).unsqueeze(-1).to(dtype)
    keep = 1.0 - replaced.sum(dim=-2).unsqueeze(-2)  # (..., 1, n_out)
    return w_out * keep + proto.transpose(-1, -2) @ units


def peak_times(w_out: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
    """Time of each readout unit's peak potential, ``(..., S, n_out)`` (not differentiated)."""
    with torch.no_grad():
        *leading, n_samples, n_steps, n_rec = trace.shape
        # (S T) x n_rec rows against the (shared or per-task) readout: one product per
        # task, without broadcasting the readout over the samples. Unit-major, so that
        # the argmax runs along contiguous time.
        rows = trace.detach().reshape(*leading, n_samples * n_steps, n_rec)
        potential = w_out.detach().transpose(-1, -2) @ rows.transpose(-1, -2)
        times = potential.unflatten(-1, (n_samples, n_steps)).argmax(dim=-1)
        return times.transpose(-1, -2)


def _flat_rows(trace: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Row numbers in ``trace.reshape(-1, n_rec)`` of sample ``s`` at ``times[..., s, u]``."""
    *leading, n_samples, n_steps, _ = trace.shape
    sample = torch.arange(math.prod(leading) * n_samples, device=times.device)
    return times + n_steps * sample.reshape(*leading, n_samples, 1)


def trace_at(trace: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Rows of ``trace`` ``(..., S, T, n_rec)`` at ``times`` ``(..., S, U)``.

    Returns ``(..., S, U, n_rec)``: ``out[..., s, u] = trace[..., s, times[..., s, u]]``.
    """
    flat = _flat_rows(trace, times)
    return _rows(trace, flat.reshape(-1)).reshape(*times.shape, trace.shape[-1])


def _unit_rows(trace: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Like :func:`trace_at` but unit-major: ``(..., U, S, n_rec)`` for batched products."""
    flat = _flat_rows(trace, times).transpose(-1, -2)
    return _rows(trace, flat.reshape(-1)).reshape(*flat.shape, trace.shape[-1])


def _rows(trace: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of ``trace.reshape(-1, n_rec)``.

    Whole rows: a contiguous copy per row, and a backward that adds rows back
    (cheaper than an element-wise gather and scatter). As an embedding lookup,
    whose backward adds into one zeroed gradient, where ``index_select``'s adds
    into a copy of it (measured: 6 ms of a 0.13 s outer step).
    """
    return torch.nn.functional.embedding(index, trace.reshape(-1, trace.shape[-1]))


def logits_from_rows(w_out: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``logits[..., s, c] = rows[..., s, c, :] . w_out[..., :, c]`` (potential at the peak)."""
    return (rows * w_out.transpose(-1, -2).unsqueeze(-3)).sum(dim=-1)


def readout_logits(w_out: torch.Tensor, trace: torch.Tensor) -> torch.Tensor:
    """Logits of the published readout: ``max_t (trace @ w_out)``, shape ``(..., S, n_out)``.

    ``trace @ w_out`` is the readout potential (:meth:`TorchClone.readout`); the
    readout is linear in ``w_out`` given the trace of the recurrent spikes. Leading
    task dimensions are allowed (``w_out`` ``(..., n_rec, n_out)`` or shared).

    Computed as the product of ``w_out`` with the trace at each unit's peak time
    (:func:`peak_times`, found without gradient tracking): value and gradients of
    any order equal those of ``max_t`` of the full product, whose gradient also
    reaches only the peak time, but the differentiated expression holds only the
    ``(S, n_out, n_rec)`` rows at the peaks instead of the ``(S, T, n_out)`` product.
    """
    return logits_from_rows(w_out, trace_at(trace, peak_times(w_out, trace)))


def readout_step(
    w_out: torch.Tensor,
    rows: torch.Tensor,
    target: torch.Tensor,
    lr: float | torch.Tensor,
    *,
    first_order: bool = False,
    identity_jacobian: bool = False,
    inside: torch.Tensor | None = None,
) -> torch.Tensor:
    """One inner SGD step on the readout, from the trace rows at the units' peaks.

    The inner loss is the cross-entropy over all units with global labels (mean
    over the S support samples). The published inner loss also has a firing-rate
    term; it does not depend on ``w_out`` (the spikes are fixed), so its gradient
    is zero and it is left out. The gradient is written in closed form: with
    ``p = softmax(logits)`` and one-hot labels ``y``, ``dL/dlogits = (p - y) / S``
    and ``logits[s, c] = rows[c, s] . w_out[:, c]``, so
    ``dL/dw_out[:, c] = rows[c]^T (p - y)[:, c] / S``, written with
    differentiable operations, so second-order MAML differentiates
    through it (it equals ``torch.func.grad`` of the loss; tested).

    Parameters
    ----------
    w_out
        ``(..., n_rec, n_out)`` readout.
    rows
        ``(..., n_out, S, n_rec)`` unit-major trace rows at each unit's peak time.
    target
        ``(..., n_out, S)`` one-hot labels, unit-major.
    lr
        Learning rate (float or scalar tensor).
    first_order
        Treat the gradient as a constant of the outer differentiation (FOMAML).
    identity_jacobian
        Evaluate the gradient at a detached readout: the step's Jacobian with
        respect to the readout it starts from is the identity, while its
        dependence on the trace rows (and so on the recurrent weights) is kept
        (``TrainConfig.inner_readout_jacobian = "identity"``).
    inside
        ``(..., n_out, 1)`` bool: the units the softmax normalises over
        (``TrainConfig.loss_units = "task"``); ``None``: all units (published).
        Units outside get zero probability, so a zero gradient.
    """
    # The per-unit products are matrix-vector products, batched over tasks and
    # units: as matmuls their (second-order) backward is a few more matmuls, where
    # element-wise products and sums made a dozen passes over the rows per step
    # (measured: ten steps with their double backward 7x faster).
    evaluated_at = w_out.detach() if identity_jacobian else w_out
    columns = evaluated_at.transpose(-1, -2).unsqueeze(-1)  # (..., n_out, n_rec, 1)
    logits = (rows @ columns).squeeze(-1)  # (..., n_out, S)
    if inside is not None:
        logits = logits.masked_fill(~inside, torch.finfo(logits.dtype).min)
    delta = (torch.softmax(logits, dim=-2) - target) / logits.shape[-1]
    gradient = (delta.unsqueeze(-2) @ rows).squeeze(-2)  # (..., n_out, n_rec)
    if first_order:
        gradient = gradient.detach()
    return w_out - lr * gradient.transpose(-1, -2)


def curvature_scale(rows: torch.Tensor) -> torch.Tensor:
    """Curvature scale of the inner loss of each task: ``mean |r|^2`` over its trace rows.

    ``rows`` are the unit-major support trace rows at the readout's peaks,
    ``(..., n_out, S, n_rec)``; the result has the leading task dimensions. The
    cross-entropy of a readout that is linear in ``w_out`` has the Hessian
    ``sum_s r_s r_s^T p(1 - p) / S`` per unit, and its largest eigenvalue, measured by
    power iteration on meta-training checkpoints of the speech dev set, is 0.84-1.11
    times this mean (``docs/training.md``). Dividing the inner learning rate by it
    makes the rate dimensionless (``lr * lambda_max`` about ``lr``), whatever the
    network size, firing rate or stage of training. Never zero (a silent task has
    zero gradient anyway).
    """
    return (rows * rows).sum(dim=-1).mean(dim=(-2, -1)).clamp_min(1e-12)


def adapt_readout(
    w_out: torch.Tensor,
    support_trace: torch.Tensor,
    support_y: torch.Tensor,
    classes: torch.Tensor,
    config: TrainConfig,
    *,
    inner_lr: float | torch.Tensor | None = None,
    steps: int | None = None,
    meta_training: bool = False,
    compiled: bool = False,
) -> torch.Tensor:
    """Adapt the readout of a task (or of a batch of tasks): SGD steps on the support set.

    Pure function of its inputs, differentiable (second order through the steps
    unless ``config.first_order``), usable under ``vmap``, and on traces recorded
    from any simulator (the Brian2 chip-in-the-loop evaluation reuses it). Leading
    task dimensions are processed together: ``support_trace`` ``(B, S, T, n_rec)``,
    ``support_y`` ``(B, S)``, ``classes`` ``(B, N)`` with a shared ``w_out`` give
    ``(B, n_rec, n_out)``.

    Two passes make extra steps cheap: the first runs the steps without gradient
    tracking only to find each step's peak times (one ``(S T) x n_rec x n_out``
    product per step); the second gathers the trace rows at all of them at once
    and repeats the steps on those small rows, so the differentiated graph never
    holds a full ``(S, T, ...)`` tensor per step and its backward scatters into
    the trace once. Both passes run :func:`readout_step` on equal values, so the
    peaks found first are those of the second. Without gradient tracking (at test
    time) the first pass's readout is the result. With ``compiled`` the second pass
    is :func:`mosaicnet.meta.readout_steps.readout_steps`, which reads the trace
    rows in place.

    Parameters
    ----------
    w_out
        ``(n_rec, n_out)`` readout weights before adaptation (or ``(..., n_rec, n_out)``).
    support_trace
        ``(..., S, T, n_rec)`` readout trace of the support recordings
        (:meth:`TorchClone.readout_trace` of their recurrent spikes).
    support_y
        ``(..., S)`` task-local labels.
    classes
        ``(..., N)`` global labels of the task-local classes.
    config
        Supplies the number of steps, the learning rate and ``first_order``.
    inner_lr
        Overrides ``config.resolved_inner_lr`` (e.g. a learned rate).
    steps
        Overrides ``config.inner_steps``.
    meta_training
        A meta-training task (:func:`start_readout`); False at test time.
    compiled
        Differentiate the steps with the compiled kernels
        (:func:`mosaicnet.meta.readout_steps.readout_steps`, first order only) where
        they can run; the meta-gradient's readout path asks for it. Not with
        ``first_order``, the ``"identity"`` Jacobian or a readout of another shape.

    Returns
    -------
    torch.Tensor
        The adapted readout ``w_out'``, ``(..., n_rec, n_out)``.
    """
    lr = config.resolved_inner_lr if inner_lr is None else inner_lr
    n_steps = config.inner_steps if steps is None else int(steps)
    w_out = start_readout(
        w_out, support_trace, support_y, classes, config, meta_training=meta_training
    )
    n_units = w_out.shape[-1]
    units = torch.arange(n_units, device=support_y.device).unsqueeze(-1)
    # One-hot global labels, unit-major: target[..., c, s] = (label of s == c).
    target = (global_labels(support_y, classes).unsqueeze(-2) == units).to(w_out.dtype)
    inside = task_units(classes, n_units).unsqueeze(-1) if config.loss_units == "task" else None

    # Row gathers below view the trace as (rows, n_rec): make that a view, not a copy.
    support_trace = support_trace.contiguous()
    with torch.no_grad():
        w, trace = w_out.detach(), support_trace.detach()
        lr_value = lr.detach() if isinstance(lr, torch.Tensor) else lr
        times, scales = [], []
        for step in range(n_steps):
            times.append(peak_times(w, trace))
            step_rows = _unit_rows(trace, times[-1])
            scales.append(step_scale(step_rows, config, step))
            step_lr = step_learning_rate(lr_value, scales[-1], config, step)
            w = readout_step(w, step_rows, target, step_lr, inside=inside)

    if not torch.is_grad_enabled() or n_steps == 0:
        # Nothing to differentiate: the steps above computed the adapted readout.
        return w if n_steps else w_out
    if compiled and _compiled_steps_apply(w_out, support_trace, lr, config):
        return _compiled_steps(w_out, support_trace, lr, times, scales, target, inside, config)
    rows = _unit_rows(support_trace, torch.cat(times, dim=-1))  # (..., steps*n_out, S, n_rec)
    # split, not slicing: the backward of one split is one concatenation, whereas
    # every slice's backward would fill a zero tensor of the full size.
    for step, step_rows in enumerate(rows.split(n_units, dim=-3)):
        # The scales are constants of the differentiation (like the peak times); a
        # learned rate keeps its gradient.
        w_out = readout_step(
            w_out, step_rows, target, step_learning_rate(lr, scales[step], config, step),
            first_order=config.first_order,
            identity_jacobian=config.inner_readout_jacobian == "identity", inside=inside,
        )  # fmt: skip
    return w_out


def _compiled_steps_apply(
    w_out: torch.Tensor, trace: torch.Tensor, lr: float | torch.Tensor, config: TrainConfig
) -> bool:
    """Whether :func:`_compiled_steps` computes these steps (see ``adapt_readout``)."""
    from mosaicnet.meta.readout_steps import readout_steps_available

    if config.first_order or config.inner_readout_jacobian != "full":
        return False
    if trace.dim() != 4 or w_out.shape[-2] != trace.shape[-1]:
        return False
    lr_tensors = (lr,) if isinstance(lr, torch.Tensor) else ()
    return readout_steps_available(trace, w_out, *lr_tensors)


def _compiled_steps(
    w_out: torch.Tensor, trace: torch.Tensor, lr: float | torch.Tensor, times: list[torch.Tensor],
    scales: list[torch.Tensor | None], target: torch.Tensor, inside: torch.Tensor | None,
    config: TrainConfig,
) -> torch.Tensor:  # fmt: skip
    """The differentiated steps of :func:`adapt_readout` on the compiled kernels."""
    from mosaicnet.meta.readout_steps import readout_steps

    n_tasks = trace.shape[0]
    rates = []
    for step, scale in enumerate(scales):
        rate = step_learning_rate(lr, scale, config, step)
        rate = rate.to(trace.dtype) if isinstance(rate, torch.Tensor) else trace.new_tensor(rate)
        rates.append(rate.reshape(-1).expand(n_tasks))
    # (B, S, n_out) per step -> (B, K, n_out, S), unit-major as the kernel reads them.
    unit_times = torch.stack(times, dim=1).transpose(-1, -2)
    w_start = w_out.expand(n_tasks, *w_out.shape[-2:])
    units = None if inside is None else inside.squeeze(-1).expand(n_tasks, -1)
    return readout_steps(
        w_start, trace, torch.stack(rates, dim=-1), unit_times, target.expand(n_tasks, -1, -1),
        units,
    )  # fmt: skip


def step_scale(rows: torch.Tensor, config: TrainConfig, step: int) -> torch.Tensor | None:
    """The curvature scale step ``step`` divides its rate by, ``(..., 1, 1)``, or None.

    ``"curvature"`` scales every step; ``"refine"`` every step after the first
    (see ``TrainConfig.inner_step_scale``). ``rows`` are the unit-major support
    rows at the step's peak times; call without gradient tracking.
    """
    mode = config.inner_step_scale
    if mode == "curvature" or (mode == "refine" and step > 0):
        return curvature_scale(rows)[..., None, None]
    return None


def step_learning_rate(
    lr: float | torch.Tensor, scale: torch.Tensor | None, config: TrainConfig, step: int
) -> float | torch.Tensor:
    """Learning rate of inner step ``step``: plain, or dimensionless over the curvature scale."""
    if scale is None:
        return lr
    if config.inner_step_scale == "refine":
        return config.inner_refine_lr / scale
    return lr / scale


def predict(w_out: torch.Tensor, query_trace: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """N-way prediction: the task's class whose readout unit peaks highest (GLOBAL label).

    Parameters
    ----------
    w_out
        ``(n_rec, n_out)`` (adapted) readout weights.
    query_trace
        ``(Q, T, n_rec)`` readout trace of the queries.
    classes
        ``(N,)`` global labels of the task's classes.

    Returns
    -------
    torch.Tensor
        ``(Q,)`` predicted global labels, each one of ``classes``.
    """
    logits = readout_logits(w_out, query_trace)
    task_logits = logits.index_select(-1, classes)
    return classes.gather(-1, task_logits.argmax(dim=-1))


def predict_all_units(w_out: torch.Tensor, query_trace: torch.Tensor) -> torch.Tensor:
    """Published prediction: argmax over ALL readout units (a global label)."""
    return readout_logits(w_out, query_trace).argmax(dim=-1)


# ------------------------------------------------------------------------- meta loss
def meta_loss(
    params: Mapping[str, torch.Tensor],
    batch: MetaBatch,
    clone: TorchClone,
    config: TrainConfig,
    *,
    layout_cost: torch.Tensor | None = None,
    offsets: Mapping[str, torch.Tensor] | None = None,
    fast_readout: bool = True,
    prune: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The MAML outer loss of a meta-batch and metrics (a pure function of ``params``).

    Differentiate it with ``torch.func.grad(meta_loss, has_aux=True)`` or ordinary
    autograd. Per task (mean over tasks)::

        CE(query, adapted weights) + lambda_fr (target - rate(query spikes))^2
        + l2 * sum over matrices mean(adapted w^2)

    plus ``layout_lambda * mean(S * W_rec^2)`` on the (pruned) recurrent weights.

    Parameters
    ----------
    params
        Meta-parameters (:func:`init_meta_params`).
    batch
        The tasks.
    clone
        The torch clone of the network (supplies the recurrent dynamics).
    config
        Hyperparameters.
    layout_cost
        The Mosaic's cost matrix S as a tensor, or ``None`` for no layout loss.
    offsets
        Device-perturbation offsets per weight name (straight-through), or ``None``.
    fast_readout
        With a readout-only inner loop, run the recurrent layer once (default). False
        recomputes the whole network at every inner step (the reference the fast path
        is tested against; always used for ``inner_params="all"``).
    prune
        Apply ``config.prune_threshold`` to the recurrent weights (False before the
        configured ``prune_start``).

    Returns
    -------
    (loss, metrics)
        Scalar loss; metrics are detached tensors: ``ce``, ``rate``, ``rate_term``,
        ``l2_term``, ``layout_term``, ``acc`` (N-way query accuracy after adaptation),
        ``acc_all_units`` (published 20-unit accuracy), ``acc_support_before``
        (N-way support accuracy before adaptation) and, on the fast path,
        ``inner_step_curvature`` (``lr * rho`` of the first inner step, about
        ``lr * lambda_max``: above 2 a plain inner step is unstable).
    """
    threshold = config.prune_threshold if prune else 0.0
    weights = effective_weights(params, prune_threshold=threshold, offsets=offsets)
    rates = inner_learning_rates(params, config)
    extra = {}
    if config.inner_params == "readout" and fast_readout:
        ce, l2_task, rate, q_logits, s_logits, step_curvature = _readout_path(
            weights, rates, batch, clone, config
        )
        extra["inner_step_curvature"] = step_curvature
    else:
        ce, l2_task, rate, q_logits, s_logits = _general_path(weights, rates, batch, clone, config)
    rate_term = config.lambda_fr * (config.target_rate - rate) ** 2
    loss = (ce + rate_term + l2_task).mean()
    layout_term = torch.zeros((), dtype=ce.dtype, device=ce.device)
    if layout_cost is not None and config.layout_lambda > 0:
        layout_term = config.layout_lambda * (layout_cost * weights["w_rec"] ** 2).mean()
        loss = loss + layout_term
    with torch.no_grad():
        metrics = {
            "ce": ce.mean().detach(),
            "rate": rate.mean().detach(),
            "rate_term": rate_term.mean().detach(),
            "l2_term": l2_task.mean().detach(),
            "layout_term": layout_term.detach(),
            **_accuracies(q_logits.detach(), s_logits.detach(), batch),
            **extra,
        }
    return loss, metrics


def _accuracies(
    q_logits: torch.Tensor, s_logits: torch.Tensor, batch: MetaBatch
) -> dict[str, torch.Tensor]:
    """N-way and all-unit query accuracy, N-way support accuracy before adaptation."""

    def n_way(logits: torch.Tensor, local_y: torch.Tensor) -> torch.Tensor:
        index = batch.classes.unsqueeze(1).expand(-1, logits.shape[1], -1)
        task_logits = logits.gather(-1, index)
        return (task_logits.argmax(-1) == local_y).float().mean()

    q_global = global_labels(batch.query_y, batch.classes)
    return {
        "acc": n_way(q_logits, batch.query_y),
        "acc_all_units": (q_logits.argmax(-1) == q_global).float().mean(),
        "acc_support_before": n_way(s_logits, batch.support_y),
    }


def _readout_path(weights: Params, rates: dict, batch: MetaBatch, clone, config: TrainConfig):
    """Fast path: the recurrent layer once per recording, inner steps on the readout alone.

    The readout part needs no ``vmap``: :func:`adapt_readout` and
    :func:`readout_logits` take the task dimension as a leading batch dimension,
    so every inner step of all tasks is one batched product.
    """
    n_tasks = batch.support_x.shape[0]
    # Shared recurrent weights: all tasks' support recordings go through as one
    # batch, their queries as another. Two passes rather than one over both: the
    # backward of splitting one pass's outputs would copy and zero-fill full-size
    # gradients. Boolean spikes as they are: the input drive reads them as events.
    s_z = clone.recurrent_spikes(weights, batch.support_x.flatten(0, 1))
    q_z = clone.recurrent_spikes(weights, batch.query_x.flatten(0, 1))
    s_trace, q_trace = (clone.readout_trace(z).unflatten(0, (n_tasks, -1)) for z in (s_z, q_z))
    q_z = q_z.unflatten(0, (n_tasks, -1))
    w_out = weights["w_out"]
    adapted = adapt_readout(
        w_out,
        s_trace,
        batch.support_y,
        batch.classes,
        config,
        inner_lr=rates["w_out"],
        meta_training=True,
        compiled=True,
    )
    with torch.no_grad():
        # lr * rho: about lr * lambda_max of the first inner step (curvature_scale);
        # above 2 the plain step is unstable. With the curvature scale it is inner_lr.
        lr_value = rates["w_out"]
        start = start_readout(
            w_out, s_trace, batch.support_y, batch.classes, config, meta_training=True
        )
        rho = curvature_scale(_unit_rows(s_trace, peak_times(start, s_trace))).mean()
        step_curvature = lr_value if config.inner_step_scale == "curvature" else lr_value * rho
    q_logits = readout_logits(adapted, q_trace)  # (B, Q, n_out)
    log_p = torch.log_softmax(loss_logits(q_logits, batch.classes, config), dim=-1)
    q_labels = global_labels(batch.query_y, batch.classes)
    ce = -log_p.gather(-1, q_labels.unsqueeze(-1)).squeeze(-1).mean(dim=-1)
    l2 = l2_penalty([weights["w_in"], weights["w_rec"]], config.l2)
    l2 = l2 + config.l2 * (adapted * adapted).mean(dim=(-2, -1))
    rate = RATE_SCALE * q_z.sum(dim=-2).mean(dim=(1, 2))
    s_logits = readout_logits(start.detach(), s_trace)
    return ce, l2, rate, q_logits, s_logits, torch.as_tensor(step_curvature).detach()


def _general_path(weights: Params, rates: dict, batch: MetaBatch, clone, config: TrainConfig):
    """Reference path: the network re-runs on the support set at every inner step."""
    names = adapted_names(config)
    # The inner loop never regrows pruned or absent recurrent synapses.
    exists = {name: (weights[name] != 0).to(weights[name].dtype) for name in names}
    step_grad = grad(_general_inner_loss, has_aux=True)

    def task(s_x, s_y, q_x, q_y, classes):
        current = dict(weights)
        s_x, q_x = s_x.to(weights["w_in"].dtype), q_x.to(weights["w_in"].dtype)
        s_labels = global_labels(s_y, classes)
        if config.readout_init != "meta":  # readout-only (TrainConfig checks)
            trace = clone.readout_trace(clone.recurrent_spikes(current, s_x))
            current["w_out"] = start_readout(
                current["w_out"], trace, s_y, classes, config, meta_training=True
            )
        s_logits = None
        for step in range(config.inner_steps):
            task_rates = dict(rates)
            if config.inner_step_scale != "none":  # readout-only (TrainConfig checks)
                with torch.no_grad():
                    trace = clone.readout_trace(clone.recurrent_spikes(current, s_x))
                    rows = _unit_rows(trace, peak_times(current["w_out"], trace))
                    scale = step_scale(rows, config, step)
                if scale is not None:
                    task_rates["w_out"] = step_learning_rate(
                        rates["w_out"], scale[0, 0], config, step
                    )
            adapted = {name: current[name] for name in names}
            if config.inner_readout_jacobian == "identity":  # readout-only (TrainConfig checks)
                adapted = {name: w.detach() for name, w in adapted.items()}
            fixed = {name: w for name, w in current.items() if name not in names}
            gradient, logits = step_grad(adapted, fixed, s_x, s_labels, classes, clone, config)
            s_logits = logits if s_logits is None else s_logits
            for name in names:
                g = gradient[name].detach() if config.first_order else gradient[name]
                step = g * exists[name] if name == "w_rec" else g
                current[name] = current[name] - task_rates[name] * step
        z_q, v_q = clone.forward(current, q_x)
        q_logits = max_over_time(v_q)
        ce = cross_entropy(loss_logits(q_logits, classes, config), global_labels(q_y, classes))
        l2 = l2_penalty([current[name] for name in NETWORK_KEYS], config.l2)
        rate = RATE_SCALE * z_q.sum(dim=-2).mean()
        return ce, l2, rate, q_logits, s_logits

    return vmap(task)(batch.support_x, batch.support_y, batch.query_x, batch.query_y, batch.classes)


def _general_inner_loss(
    adapted: Params, fixed: Params, s_x: torch.Tensor, labels: torch.Tensor,
    classes: torch.Tensor, clone, config,
) -> torch.Tensor:  # fmt: skip
    """Published inner loss: CE on the support set plus the firing-rate term (and logits)."""
    z, v_out = clone.forward({**fixed, **adapted}, s_x)
    logits = max_over_time(v_out)
    loss = cross_entropy(loss_logits(logits, classes, config), labels) + firing_rate_penalty(
        z, config.target_rate, config.lambda_fr
    )
    return loss, logits.detach()


def meta_gradient(
    params: Mapping[str, torch.Tensor],
    batch: MetaBatch,
    clone: TorchClone,
    config: TrainConfig,
    **kwargs: Any,
) -> tuple[Params, torch.Tensor, dict[str, torch.Tensor]]:
    """Gradient of :func:`meta_loss` with respect to every meta-parameter.

    The tasks go through the network ``config.tasks_per_pass`` at a time. The loss
    is a mean over tasks plus terms of the shared weights alone, so the loss of the
    whole batch is the task-weighted mean of its parts' losses, and so are its
    gradient and metrics: accumulating them gives the one-pass values to rounding,
    with the memory of one part.

    Returns ``(gradients, loss, metrics)``; keyword arguments go to :func:`meta_loss`.
    """
    params = dict(params)

    def loss_of(p: Params, part: MetaBatch) -> tuple[torch.Tensor, tuple[torch.Tensor, dict]]:
        loss, metrics = meta_loss(p, part, clone, config, **kwargs)
        return loss, (loss.detach(), metrics)

    gradient_of = grad(loss_of, has_aux=True)
    gradients = metrics = loss = None
    for part in batch.split(config.tasks_per_pass):  # each part's graph is freed in turn
        weight = part.n_tasks / batch.n_tasks
        part_gradients, (part_loss, part_metrics) = gradient_of(params, part)
        gradients = _add_weighted(gradients, part_gradients, weight)
        metrics = _add_weighted(metrics, part_metrics, weight)
        loss = weight * part_loss if loss is None else loss + weight * part_loss
    return gradients, loss, metrics


def _add_weighted(
    total: dict[str, torch.Tensor] | None, part: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """``total + weight * part`` key by key (``weight * part`` when ``total`` is None)."""
    if total is None:
        return {key: weight * value for key, value in part.items()}
    return {key: total[key] + weight * value for key, value in part.items()}
