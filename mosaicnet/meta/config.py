"""Meta-training configuration: one dataclass, saved as JSON in every run directory.

Every hyperparameter of a run lives in :class:`TrainConfig`; nothing is read from
global state or frozen inside a compiled function (the published code read its
noise switch inside a jitted function, so the noise never switched on). The
defaults are the published configuration of EIS-Hub/meta-mosaic ``train.py``
(Raghunathan et al., NICE 2024) except where a field's comment says why not;
:meth:`TrainConfig.published` returns the published values unchanged.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mosaicnet.errors import ConfigError
from mosaicnet.network.quantities import format_quantity, parse_quantity

#: Classes held out of meta-training (EIS-Hub/meta-mosaic ``train.py``: ``excluded_labels``).
PUBLISHED_HELD_OUT = (11, 12, 4, 3, 0)

#: Inner learning rate of the published code (one SGD step on the readout).
PUBLISHED_INNER_LR = 1.0

CONFIG_FORMAT_VERSION = 1

_LAYOUTS = ("mosaic", "fc")
_INNER_PARAMS = ("readout", "all")
_DTYPES = ("float32", "float64")
_TORCH_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def check_torch_device(name: Any) -> str:
    """``name`` if it names a torch compute device this package runs on, else :class:`ConfigError`.

    Whether the device exists is checked where it is used
    (:func:`mosaicnet.meta.run_setup.compute_device`).
    """
    if not isinstance(name, str) or not _TORCH_DEVICE.fullmatch(name):
        raise ConfigError(f"torch_device must be 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    return name


_LR_SCHEDULES = ("per_step", "fixed")
_INNER_STEP_SCALES = ("none", "curvature", "refine")
_READOUT_JACOBIANS = ("full", "identity")
_LOSS_UNITS = ("all", "task")
_READOUT_INITS = ("meta", "prototype", "meta+prototype")
_OUTER_LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """All hyperparameters of one meta-training run.

    Parameters
    ----------
    seed
        Seed of everything random in the run: initial weights, the recurrent mask,
        the task sampler, the device-noise generator.
    iterations
        Number of outer (meta) steps.
    meta_batch
        Tasks per outer step. Published: 256; the default 16 keeps one CPU step
        under a second (the gradient is a mean over tasks, so a smaller batch only
        adds variance).
    tasks_per_pass
        Tasks whose recordings go through the network together; the meta-gradient
        of a larger meta-batch is accumulated over passes
        (:func:`mosaicnet.meta.maml.meta_gradient`). It is the same gradient (to
        rounding: another order of the same sums), so this sets only peak memory,
        which grows with the recordings alive at once, and speed: each pass adds a
        fixed cost (the time loop's per-step operations). ``None``: the whole
        meta-batch in one pass. Default 4: with the compiled kernels a pass's fixed
        cost is small, so a meta-batch of 8 in two passes takes 1.06x the time of one
        pass for 0.66 instead of 0.76 GiB peak of ``mosaicnet train``, and larger
        meta-batches run in constant memory (measured in ``docs/performance.md``).
    checkpoint_every
        Write a checkpoint every this many iterations (and always at the end).
    n_way, k_shot, n_query
        Few-shot protocol: classes per task, support samples and query samples per
        class (5-way 5-shot as in the talk; queries per class default 5).
    held_out_classes
        Global labels never seen in meta-training (published: 11, 12, 4, 3, 0).
    n_bins, window_s, spatial_stride
        Input preprocessing: ``n_bins`` bins over ``window_s`` seconds (published:
        100 over 1.4 s) and spatial sampling with stride k (published k = 3: 700
        channels become 234 input channels; every offset is one view).
    channel_shift
        Shift augmentation of meta-training tasks: every training recording is moved
        along the input channels by a shift drawn uniformly from
        ``-channel_shift..channel_shift`` columns (of the spatially sampled input),
        zeros filling the emptied edge (:class:`mosaicnet.data.tasks.FewShotConfig`).
        A voice's pitch and formants move its spikes along the cochlear channel
        axis, so shifted recordings stand for other voices; random channel shifts
        are a common SHD augmentation (e.g. T. Nowotny, J. P. Turner and J. C.
        Knight, "Loss shaping enhances exact gradient learning with Eventprop in
        spiking neural networks", Neuromorphic Computing and Engineering, 2025).
        0 (default, as published): no shift. Meta-test tasks are never shifted.
    layout
        ``"mosaic"`` (``rows x cols`` tiles of ``neurons_per_tile``, published 8 x 8
        x 4 with beta 8) or ``"fc"``, the fully-connected baseline of ``fc_neurons``
        neurons (published comparison: 64) with no layout cost.
    p_local, hop_decay
        Small-world prior of the recurrent mask on the Mosaic
        (:class:`mosaicnet.layout.connectivity.SmallWorldPrior`): connection
        probability ``p_local * hop_decay ** hops``. ``None`` (default) connects every
        pair (the published model trains a dense matrix and lets the layout loss and
        pruning sparsify it).
    n_out
        Readout units, indexed by GLOBAL label (20 SHD classes), so both the N-way
        accuracy (argmax over the task's classes) and the published 20-unit accuracy
        exist.
    weight_gain
        Initial weight scale (published 0.5, here divided by sqrt(fan-in), see
        :func:`mosaicnet.network.spec.random_spec`).
    surrogate_slope
        Slope of the fast-sigmoid surrogate derivative ``1/(slope*|v-thr|+1)^2``
        (published 10).
    dtype
        ``"float32"`` for training, ``"float64"`` for exactness checks.
    torch_device
        Where training runs: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
        Device noise, task sampling and initial weights are drawn on the CPU
        whatever the device, so a seed names the same run everywhere; results
        differ between devices only by rounding. A run may be resumed on
        another device.
    inner_steps
        SGD steps of the inner loop (published: 1).
    test_inner_steps
        Inner steps at meta-test (the torch and the chip evaluation; an evaluation's
        own ``inner_steps`` option wins). ``None`` (default): ``inner_steps``. The
        inner loop adapts only the readout, on recorded traces, so test-time steps
        cost no simulation. With the recommended loop (prototype start,
        curvature-scaled steps) the adaptation is far from converged after the ten
        training steps: on the speech dev set, networks trained with 10 steps scored
        higher the more test steps they took, to 80-160 (docs/results.md, 'Test-time
        inner steps'), while training with 40 steps fitted the training voices better
        and new voices worse. The claim protocols test with 100.
    inner_lr
        Inner learning rate, or ``None`` for the default schedule ``inner_lr_schedule``.
    inner_lr_schedule
        How ``inner_lr=None`` is resolved: ``"per_step"`` (default) gives
        ``1 / inner_steps`` (the published 1.0 at one step; the published code with
        ``lr = 1`` at ten steps takes ten full-size steps on a readout whose gradient
        barely shrinks, overshoots and collapses, whereas ``1 / k`` keeps the total
        step length of the published configuration and lets extra steps refine it);
        ``"fixed"`` gives the published 1.0 at any number of steps. Measured on the
        synthetic default data (64-neuron Mosaic, 150 steps of 8 tasks, 5-way 5-shot,
        100 held-out-class tasks): trained and tested with one step at 1.0, 31 %;
        with ten steps at 0.1, 54 % (chance 20 %). A rate tuned for the data can do
        better on held-out classes: a one-step model (learned rate, which stayed near
        1.0) tested with ten steps at that rate reached 56 % there, but its seen-class
        accuracy fell from 66 % to 59 %.
    inner_step_scale, inner_refine_lr
        ``"none"``: the published plain SGD step at every inner step.
        ``"curvature"``: the inner learning rate is dimensionless; each task's step
        is ``inner_lr / rho`` with ``rho`` the mean squared norm of its support trace
        rows at the readout's current peaks (:func:`mosaicnet.meta.maml.curvature_scale`),
        about the largest curvature of the inner loss, so ``inner_lr`` below 2 keeps
        every inner step stable. ``"refine"``: the first step is the plain step at
        ``inner_lr``, every further step is a stable refinement at the dimensionless
        rate ``inner_refine_lr / rho``.
    inner_readout_jacobian
        ``"full"``: the meta-gradient differentiates each inner step with respect
        to the readout it starts from (the published second-order MAML).
        ``"identity"``: that Jacobian is taken as the identity (the step's gradient
        is evaluated at a detached readout), while the step's dependence on the
        support traces, through which the recurrent layer learns, stays exact. The
        full Jacobian of ``k`` steps is a product of ``k`` factors ``I - lr H`` whose
        largest eigenvalue ``lr * lambda_max`` was measured at 13-30 on the speech
        dev set with ten steps of 0.1: far past the stability limit 2, so the
        product explodes along the top curvature directions and the run diverges.
    loss_units
        Which readout units the inner and outer cross-entropies normalise over.
        ``"all"`` (published, EIS-Hub/meta-mosaic): all ``n_out`` units, so every
        unit absent from a task is pushed down by it. The held-out classes are
        absent from every meta-training task, and on the speech dev set this left
        the unit of one held-out class negative throughout the speech of most
        recordings: its peak potential falls in the silence before the first
        spike, where the trace row is zero, so the inner step cannot move it and
        that class is never recognised (docs/results.md, 'Why unseen accuracy
        varies between seeds'). ``"task"``: only the task's N units (the usual
        N-way head of MAML, Finn et al. 2017), so the cross-entropies leave units
        absent from a task alone. Measured worse on the dev set (two seeds): the L2
        term then decays the held-out units' columns to zero, which kills them as
        surely. Predictions are N-way either way.
    readout_init
        Where the inner loop starts the readout units of a task's classes.
        ``"meta"`` (published): their meta-learned columns of ``w_out``.
        ``"prototype"``: each class's column is first set to the prototype of its
        support recordings, ``m / |m|^2`` with ``m`` their readout trace averaged
        over time and recordings (after Proto-MAML, Triantafillou et al.,
        "Meta-Dataset", ICLR 2020), so that the potential of every task unit is
        positive during speech and about 1 where the trace looks like its class:
        no unit starts dead, whatever meta-training did to its column
        (docs/results.md, 'Why unseen accuracy varies between seeds'). The
        meta-gradient flows through the prototypes into the recurrent layer. With
        ten ``"curvature"`` steps at ``inner_lr=1`` it is the inner loop the claim
        protocols use (docs/training.md, 'Stable steps from the prototypes').
        ``"meta+prototype"``: for the meta-training classes the prototype is added
        to the meta-learned column, so that what meta-training stored for a seen
        class is kept; a held-out class's column is replaced as with
        ``"prototype"`` (after the base and novel class weights of generalized
        few-shot learning, Gidaris and Komodakis, "Dynamic Few-Shot Visual
        Learning without Forgetting", CVPR 2018).
    pseudo_novel_classes
        With ``readout_init="meta+prototype"``: in every meta-training task this
        many of the task's classes (random ones) start from their prototype alone,
        as held-out classes do at test time, so that meta-training balances kept
        and replaced columns (the fake novel classes of Gidaris and Komodakis
        2018). 0 (default): none.
    learn_inner_lr
        Learn one inner learning rate per adapted layer (Meta-SGD style, stored as
        its logarithm so it stays positive), initialised at the resolved ``inner_lr``.
    inner_params
        ``"readout"`` (published: only ``w_out`` is adapted) or ``"all"``.
    first_order
        Drop the second-order terms of the MAML gradient (FOMAML). Default False:
        the published gradient is second order.
    outer_lr
        Adam learning rate of the outer loop. Published 1e-4 over many epochs of 256
        tasks; the default 1e-3 suits the short CPU runs this package is demonstrated
        with (hundreds of steps of 16 tasks).
    outer_lr_schedule, outer_lr_warmup, outer_lr_final
        ``"constant"``, or ``"cosine"``: the Adam learning rate rises linearly over
        ``outer_lr_warmup`` steps, then follows a half cosine from ``outer_lr`` to
        ``outer_lr_final * outer_lr`` at the last of ``iterations`` (extending a run on
        resume stretches the rest of the schedule).
    grad_clip
        Largest global L2 norm of the meta-gradient (over all parameters); a larger
        one is scaled down to it before Adam. ``None``: no clipping. Every step logs
        the norm before clipping (``grad_norm``).
    lambda_fr, target_rate
        Firing-rate regulariser ``lambda_fr * (target_rate - rate)^2`` with
        ``rate = 10 * mean spike count per neuron and sample`` over the whole
        sequence (published 0.01 towards 8).
    l2
        L2 coefficient: ``l2 * mean(w^2)`` per weight matrix (published 0.01).
    layout_lambda
        Weight of the layout loss ``mean(S * W_rec^2)``. Published 1 made the layout
        term (~3.6e5) dwarf the cross-entropy (~3). The default 1e-4 makes it start
        at about a tenth of the cross-entropy of 20 classes (ln 20 = 3.0) on the
        default network: initial ``W_rec`` entries have standard deviation
        ``0.5 / sqrt(256)``, and on the 8 x 8 x 4 Mosaic ``mean(S * W^2)`` is then
        about 2970 (:meth:`mosaicnet.layout.Layout.expected_layout_loss`), so the
        term starts at 0.30. Ignored for ``layout="fc"``.
    prune_threshold, prune_start
        Recurrent weights with ``|w| < prune_threshold`` (published 5e-4) are zero in
        the forward pass and in the stored parameters from iteration ``prune_start``
        on; their optimizer state is cleared so they stay pruned.
    device_model
        Device preset for hardware-aware training (``mosaicnet.devices``), or ``None``
        for ideal weights.
    noise_start
        Iteration from which the device perturbation is applied (a schedule: train
        ideal first, then hardware-aware).
    read_time_min_s, read_time_max_s
        Range of the read time after programming, in seconds, from which every
        outer step draws one (log-uniformly when both are positive).
    max_hops
        The Mosaic's routing as a hard constraint: recurrent synapses exist only
        between neurons at most this many hops apart (0: within a tile; 1: also the
        four neighbouring tiles), on top of any small-world prior. ``None``: no limit
        (default: the published dense matrix, which the layout loss and pruning
        alone leave mostly long-range). Measured on the speech dev set (8 x 8 x 4
        Mosaic, 300 outer steps of 8 tasks, plain inner step), ``max_hops=1`` kept 3934
        recurrent synapses, all within one hop, and 12 hops per spike, against 19792
        synapses, 86 % of them two or more hops apart, and 736 hops per spike without
        it, at the same accuracy within the 95 % CIs (tasks over all 20 classes:
        seen 58.7 vs 57.6 %, unseen 73.3 vs 77.4 %; separate tasks: 64.5 vs 64.6 %
        and 68.4 vs 66.8 %). It is not the default because on the synthetic default
        data, with a 4 x 4 x 4 Mosaic and 150 outer steps, it left held-out classes
        at chance (20.1 % vs 34.6 % without it, 100 tasks): a small Mosaic with only
        local routing needs more than that run's training. The flagship protocol
        sets it (``MAX_HOPS``). Ignored for ``layout="fc"``.
    validation_every, validation_tasks, validation_holdout
        Every ``validation_every`` steps (0: never) and at the end, the N-way query
        accuracy on ``validation_tasks`` fixed meta-train-class tasks (ideal weights,
        no device noise) is logged as ``val_acc``, and the network with the best one
        is kept as ``spec_best.npz``. The tasks come from ``validation_holdout``
        recordings per class set apart from meta-training, or, with 0, from the
        training recordings themselves (then the score measures fit, not
        generalisation; it still catches a collapse).
    divergence_window, divergence_factor
        Divergence detection: training stops with :class:`~mosaicnet.errors.TrainingDiverged`
        when the mean loss of the last ``divergence_window`` steps exceeds
        ``divergence_factor`` times the best such mean and is at least 0.5 above it,
        or at once when the loss or the gradient is not finite. The checkpoint of the
        run is then the last one written before the loss began to rise. 0: only the
        non-finite check.
    neuron_model
        The recurrent neurons as Brian2 code: a preset name (``lif``, the published
        model, default; ``cuba_lif``, ``alif``, ``adlif``, ``lif_refractory``, see
        :mod:`mosaicnet.network.neuron_presets`), a ``.json``/``.py`` file holding a
        :class:`~mosaicnet.network.neuron_model.NeuronModel`, or its ``to_dict()``
        (what a run records for a file, see :meth:`with_recorded_neuron_model`).
    neuron_constants
        Constants of the model to change, as Brian2 text or numbers
        (``{"tau_a": "700*ms"}``); :meth:`with_changes` also takes them by name.
    """

    seed: int = 0
    iterations: int = 300
    meta_batch: int = 16
    tasks_per_pass: int | None = 4
    checkpoint_every: int = 50
    n_way: int = 5
    k_shot: int = 5
    n_query: int = 5
    held_out_classes: tuple[int, ...] = PUBLISHED_HELD_OUT
    n_bins: int = 100
    window_s: float = 1.4
    spatial_stride: int = 3
    channel_shift: int = 0
    layout: str = "mosaic"
    rows: int = 8
    cols: int = 8
    neurons_per_tile: int = 4
    beta: float = 8.0
    fc_neurons: int = 64
    p_local: float | None = None
    hop_decay: float | None = None
    n_out: int = 20
    weight_gain: float = 0.5
    surrogate_slope: float = 10.0
    dtype: str = "float32"
    torch_device: str = "cpu"
    inner_steps: int = 1
    test_inner_steps: int | None = None
    inner_lr: float | None = None
    inner_lr_schedule: str = "per_step"
    inner_step_scale: str = "none"
    inner_refine_lr: float = 1.0
    inner_readout_jacobian: str = "full"
    loss_units: str = "all"
    readout_init: str = "meta"
    pseudo_novel_classes: int = 0
    learn_inner_lr: bool = False
    inner_params: str = "readout"
    first_order: bool = False
    outer_lr: float = 1e-3
    outer_lr_schedule: str = "constant"
    outer_lr_warmup: int = 0
    outer_lr_final: float = 0.1
    grad_clip: float | None = None
    lambda_fr: float = 0.01
    target_rate: float = 8.0
    l2: float = 0.01
    layout_lambda: float = 1e-4
    prune_threshold: float = 5e-4
    prune_start: int = 0
    device_model: str | None = None
    noise_start: int = 0
    read_time_min_s: float = 1.0
    read_time_max_s: float = 86400.0
    max_hops: int | None = None
    validation_every: int = 0
    validation_tasks: int = 32
    validation_holdout: int = 0
    divergence_window: int = 25
    divergence_factor: float = 2.0
    neuron_model: str | dict[str, Any] = "lif"
    neuron_constants: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "held_out_classes", tuple(int(c) for c in self.held_out_classes))
        if not isinstance(self.neuron_constants, dict):
            raise ConfigError(
                f"neuron_constants must be a mapping of names to Brian2 values (e.g. "
                f'{{"tau_a": "700*ms"}}), got {self.neuron_constants!r}'
            )
        # Constants are stored as exact Brian2 text so that the config stays JSON.
        constants = {
            str(name): format_quantity(parse_quantity(value, name=f"neuron constant {name}"))
            for name, value in self.neuron_constants.items()
        }
        object.__setattr__(self, "neuron_constants", constants)
        self.validate()

    # -- derived values -----------------------------------------------------------------------
    def neuron_parameters(self) -> Any:
        """The recurrent neurons of the run: the model with its constants, at the bin width.

        Returns a :class:`~mosaicnet.network.spec.NeuronParameters` (checked
        against Brian2; raises :class:`ConfigError` naming the problem).
        """
        from brian2 import second

        from mosaicnet.network.neuron_model import NeuronModel
        from mosaicnet.network.neuron_presets import neuron_model
        from mosaicnet.network.spec import NeuronParameters

        source = self.neuron_model
        if isinstance(source, dict):
            source = NeuronModel.from_dict(source, origin="neuron_model of the configuration")
        model = neuron_model(source, **self.neuron_constants)
        return NeuronParameters(model=model, dt=self.window_s / self.n_bins * second)

    def with_recorded_neuron_model(self) -> TrainConfig:
        """A copy whose ``neuron_model`` is the model's Brian2 code itself, not a file path.

        A run directory then holds everything about its neurons even if the
        user's file moves or changes; presets stay by name.
        """
        from mosaicnet.network.neuron_presets import PRESETS

        if isinstance(self.neuron_model, dict) or self.neuron_model in PRESETS:
            return self
        model = self.neuron_parameters().model.to_dict()
        return replace(self, neuron_model=model, neuron_constants={})

    @property
    def resolved_inner_lr(self) -> float:
        """The inner learning rate actually used (see ``inner_lr`` / ``inner_lr_schedule``)."""
        if self.inner_lr is not None:
            return float(self.inner_lr)
        if self.inner_lr_schedule == "fixed":
            return PUBLISHED_INNER_LR
        return PUBLISHED_INNER_LR / self.inner_steps

    @property
    def n_support(self) -> int:
        """Support samples per task."""
        return self.n_way * self.k_shot

    @property
    def n_query_total(self) -> int:
        """Query samples per task."""
        return self.n_way * self.n_query

    def outer_lr_at(self, iteration: int) -> float:
        """Adam learning rate of outer step ``iteration`` (0-based), per ``outer_lr_schedule``."""
        if self.outer_lr_warmup and iteration < self.outer_lr_warmup:
            return self.outer_lr * (iteration + 1) / self.outer_lr_warmup
        if self.outer_lr_schedule == "constant":
            return self.outer_lr
        span = max(1, self.iterations - 1 - self.outer_lr_warmup)
        progress = min(1.0, max(0, iteration - self.outer_lr_warmup) / span)
        final = self.outer_lr_final * self.outer_lr
        return final + (self.outer_lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the parameter and the allowed values."""
        positive_ints = (
            "iterations", "meta_batch", "checkpoint_every", "n_way", "k_shot", "n_query",
            "n_bins", "spatial_stride", "rows", "cols", "neurons_per_tile", "fc_neurons",
            "n_out", "inner_steps",
        )  # fmt: skip
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        _optional_int(self, "test_inner_steps", 1, "as trained")
        for name in (
            "prune_start", "noise_start", "seed", "outer_lr_warmup", "validation_every",
            "validation_holdout", "divergence_window", "channel_shift", "pseudo_novel_classes",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        non_negative = (
            "beta", "lambda_fr", "target_rate", "l2", "layout_lambda", "prune_threshold",
            "read_time_min_s", "read_time_max_s", "weight_gain",
        )  # fmt: skip
        for name in non_negative:
            _finite(self, name, minimum=0.0)
        for name in ("window_s", "surrogate_slope", "outer_lr", "outer_lr_final"):
            _finite(self, name, minimum=0.0, strict=True)
        _finite(self, "divergence_factor", minimum=1.0, strict=True)
        _finite(self, "inner_refine_lr", minimum=0.0, strict=True)
        if self.grad_clip is not None:
            _finite(self, "grad_clip", minimum=0.0, strict=True)
        if (
            isinstance(self.validation_tasks, bool)
            or not isinstance(self.validation_tasks, int)
            or self.validation_tasks < 1
        ):
            raise ConfigError(
                f"validation_tasks must be an integer >= 1, got {self.validation_tasks!r}"
            )
        _optional_int(self, "tasks_per_pass", 1, "the whole meta-batch in one pass")
        _optional_int(self, "max_hops", 0, "no limit")
        _choice(self, "outer_lr_schedule", _OUTER_LR_SCHEDULES)
        per_task = self.k_shot + self.n_query
        if 0 < self.validation_holdout < per_task:
            raise ConfigError(
                f"validation_holdout={self.validation_holdout} recordings per class cannot "
                f"make a validation task, which draws k_shot + n_query = {per_task} per "
                f"class; set it to at least {per_task}, or 0 to validate on training recordings"
            )
        if self.inner_lr is not None:
            _finite(self, "inner_lr", minimum=0.0, strict=True)
        _choice(self, "layout", _LAYOUTS)
        _choice(self, "inner_params", _INNER_PARAMS)
        _choice(self, "dtype", _DTYPES)
        check_torch_device(self.torch_device)
        _choice(self, "inner_lr_schedule", _LR_SCHEDULES)
        _choice(self, "inner_step_scale", _INNER_STEP_SCALES)
        _choice(self, "inner_readout_jacobian", _READOUT_JACOBIANS)
        _choice(self, "loss_units", _LOSS_UNITS)
        _choice(self, "readout_init", _READOUT_INITS)
        if self.pseudo_novel_classes and (
            self.readout_init != "meta+prototype" or self.pseudo_novel_classes >= self.n_way
        ):
            raise ConfigError(
                f"pseudo_novel_classes={self.pseudo_novel_classes} needs "
                f"readout_init='meta+prototype' and fewer than n_way={self.n_way} classes; "
                "set it to 0 or change readout_init"
            )
        if self.readout_init != "meta" and self.inner_params != "readout":
            raise ConfigError(
                f"readout_init={self.readout_init!r} sets readout columns from the support traces, "
                "which needs a readout-only inner loop; set inner_params='readout'"
            )
        if self.inner_readout_jacobian == "identity" and self.inner_params != "readout":
            raise ConfigError(
                "inner_readout_jacobian='identity' applies to a readout-only inner loop; "
                "set inner_params='readout' or inner_readout_jacobian='full'"
            )
        if self.inner_step_scale != "none" and self.inner_params != "readout":
            raise ConfigError(
                f"inner_step_scale={self.inner_step_scale!r} scales the readout's inner step "
                "and needs inner_params='readout'; set inner_step_scale='none' to adapt all "
                "weights"
            )
        for name in ("learn_inner_lr", "first_order"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.n_way > self.n_out:
            raise ConfigError(
                f"n_way={self.n_way} is larger than the readout (n_out={self.n_out} units): "
                "a task cannot have more classes than there are readout units; lower n_way"
            )
        bad = [c for c in self.held_out_classes if not 0 <= c < self.n_out]
        if bad:
            raise ConfigError(
                f"held_out_classes {bad} are not readout units 0..{self.n_out - 1}; "
                "held-out classes must be global labels of the dataset"
            )
        if not isinstance(self.neuron_model, str | dict):
            raise ConfigError(
                f"neuron_model must be a preset name, a .json/.py file or a model dict, got "
                f"{self.neuron_model!r}"
            )
        # Resolves the model and checks it against Brian2 at the bin width: a bad
        # model fails here, before any data is read or network built.
        self.neuron_parameters()
        if self.read_time_min_s > self.read_time_max_s:
            raise ConfigError(
                f"read_time_min_s={self.read_time_min_s} is larger than "
                f"read_time_max_s={self.read_time_max_s}; give the range lowest first"
            )
        if (self.p_local is None) != (self.hop_decay is None):
            raise ConfigError(
                "p_local and hop_decay define the small-world prior together: give both "
                "or neither (neither = every pair connected)"
            )
        for name in ("p_local", "hop_decay"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.device_model is not None and not isinstance(self.device_model, str):
            raise ConfigError(
                f"device_model must be a preset name or null, got {self.device_model!r}"
            )

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def published(cls, **changes: Any) -> TrainConfig:
        """The published configuration (EIS-Hub/meta-mosaic ``train.py``), with changes.

        Differs from the defaults in: 256 tasks per step, outer Adam lr 1e-4, the
        fixed inner lr 1.0 and the layout weight 1 (see the class docstring for why
        the defaults differ).
        """
        values: dict[str, Any] = {
            "meta_batch": 256,
            "outer_lr": 1e-4,
            "inner_lr_schedule": "fixed",
            "inner_step_scale": "none",
            "outer_lr_schedule": "constant",
            "grad_clip": None,
            "max_hops": None,
            "validation_every": 0,
            "layout_lambda": 1.0,
        }
        values.update(changes)
        return cls(**values)

    def with_changes(self, **changes: Any) -> TrainConfig:
        """A copy with some fields replaced (validated).

        A name that is no field but a constant of the neuron model (``tau_a``)
        changes that constant (``neuron_constants``), e.g. ``tau_a="700*ms"``.
        """
        field_names = {f.name for f in fields(self)}
        unknown = set(changes) - field_names
        if unknown:
            base = replace(self, **{k: v for k, v in changes.items() if k in field_names})
            constants = set(base.neuron_parameters().model.constants)
            if unknown - constants:
                raise ConfigError(
                    f"unknown training parameter(s) {sorted(unknown - constants)}; valid ones "
                    f"are {sorted(field_names)} and the neuron model's constants "
                    f"{sorted(constants)}"
                )
            merged = {**base.neuron_constants, **{name: changes[name] for name in unknown}}
            return replace(base, neuron_constants=merged)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        data = asdict(self)
        data["held_out_classes"] = list(self.held_out_classes)
        data["format_version"] = CONFIG_FORMAT_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming ``source``."""
        data = dict(data)
        version = data.pop("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"{source} has config format {version!r}; this mosaicnet reads format "
                f"{CONFIG_FORMAT_VERSION}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown training parameter(s) {unknown}; valid ones are {sorted(known)}"
            )
        try:
            return cls(**data)
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from error


def _finite(config: TrainConfig, name: str, *, minimum: float, strict: bool = False) -> None:
    value = getattr(config, name)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        relation = ">" if strict else ">="
        raise ConfigError(f"{name} must be a finite number {relation} {minimum}, got {value!r}")


def _optional_int(config: TrainConfig, name: str, minimum: int, none_means: str) -> None:
    """``ConfigError`` unless field ``name`` is None or an integer >= ``minimum``."""
    value = getattr(config, name)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise ConfigError(
            f"{name} must be null ({none_means}) or an integer >= {minimum}, got {value!r}"
        )


def _choice(config: TrainConfig, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(config, name) not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a :class:`TrainConfig` from a JSON file.

    The file may hold any subset of the fields; the others take their defaults.

    Raises
    ------
    ConfigError
        The file is missing, is not JSON, or holds unknown or invalid parameters.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of parameters")
    return TrainConfig.from_dict(data, source=str(path))


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    """Write ``config`` as indented JSON, atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    write_text_atomic(path, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
