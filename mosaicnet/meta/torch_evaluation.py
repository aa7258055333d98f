"""Few-shot meta-test: adapt the readout on each task's support set, score its queries.

The evaluation core, :func:`evaluate_tasks`, needs only a function from input
recordings to readout traces, so the same code scores the torch clone (here,
:func:`evaluate_on_torch`) and the Brian2 network ("chip in the loop": support and
query recorded in Brian2, the readout update computed by
:func:`mosaicnet.meta.maml.adapt_readout` from the recorded traces and written
back through ``write_readout``).

Protocol (docs/evaluation.md, 'Protocols'): meta-test tasks come from the test file. With
``protocol="separate"`` (default) seen-class accuracy comes from tasks over the
meta-trained classes and unseen-class accuracy from tasks over the held-out
classes (the published "5 unseen classes" setting); ``"mixed"`` draws tasks over
all 20 classes and scores each query as seen or unseen. Two accuracies are
reported: the standard N-way accuracy (argmax over the task's classes, the main
figure) and the published 20-unit accuracy (argmax over all readout units).
Confidence intervals are 95 % normal intervals over tasks,
``mean +- 1.96 * std / sqrt(n_tasks)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.evaluation_options import EvaluationOptions, resolve_options
from mosaicnet.meta.maml import adapt_readout, predict, predict_all_units
from mosaicnet.meta.readout_range import clip_readout, readout_range

#: Two-sided 95 % quantile of the standard normal distribution.
Z95 = 1.959963984540054

# Tasks per batch of the clone when the options leave it open: the clone's
# memory grows with it, its speed gain flattens beyond.
_TASKS_PER_BATCH = 16

ReadoutTraces = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TaskOutcome:
    """Predictions for the queries of one meta-test task (all labels GLOBAL)."""

    task_id: int
    split: str
    classes: list[int]
    labels: list[int]
    predicted: list[int]
    predicted_all_units: list[int]
    seen: list[bool]

    def accuracy(self, seen: bool, *, all_units: bool = False) -> float | None:
        """Accuracy on the task's seen (or unseen) queries; None if it has none."""
        predicted = self.predicted_all_units if all_units else self.predicted
        rows = zip(predicted, self.labels, self.seen, strict=True)
        hits = [p == y for p, y, s in rows if s == seen]
        return sum(hits) / len(hits) if hits else None


def mean_ci95(values: Iterable[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % normal confidence interval (NaN if undefined)."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        return float(data[0]), math.nan
    return float(data.mean()), float(Z95 * data.std(ddof=1) / math.sqrt(data.size))


def evaluate_tasks(
    batches: Iterable[Any],
    readout_traces: ReadoutTraces,
    w_out: torch.Tensor,
    config: TrainConfig,
    *,
    inner_lr: float | torch.Tensor | None = None,
    steps: int | None = None,
    write_readout: Callable[[torch.Tensor], torch.Tensor] | None = None,
    split: str = "meta-test",
) -> list[TaskOutcome]:
    """Adapt the readout on every task's support set and predict its queries.

    Parameters
    ----------
    batches
        :class:`mosaicnet.data.tasks.TaskBatch` objects.
    readout_traces
        Maps recordings ``(n, T, C)`` (binned counts, as the sampler gives them) to
        their readout traces ``(n, T, n_rec)``: the torch clone, or a Brian2 run.
    w_out
        ``(n_rec, n_out)`` readout before adaptation.
    config
        Supplies ``inner_steps``, the inner learning rate and ``first_order``.
    inner_lr, steps
        Override the configuration's learning rate and number of inner steps.
    write_readout
        Optional map from the adapted readout to the readout actually used for the
        queries (e.g. programming it into memristors); identity by default.
    split
        Name recorded in each outcome.

    Returns
    -------
    list of TaskOutcome
    """
    outcomes = []
    with torch.no_grad():
        for batch in batches:
            n_tasks, n_support = batch.support_x.shape[:2]
            x = torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)
            traces = readout_traces(x).unflatten(0, (n_tasks, -1)).to(w_out.dtype)
            # All tasks of the batch adapt together (the readout functions take the
            # task dimension first): one product per inner step, not one per task.
            adapted_all = adapt_readout(
                w_out, traces[:, :n_support], batch.support_y, batch.classes, config,
                inner_lr=inner_lr, steps=steps,
            )  # fmt: skip
            for b in range(n_tasks):
                classes = batch.classes[b]
                adapted = adapted_all[b]
                if write_readout is not None:
                    adapted = write_readout(adapted)
                q_trace = traces[b, n_support:]
                outcomes.append(
                    TaskOutcome(
                        task_id=int(batch.task_ids[b]),
                        split=split,
                        classes=batch.classes[b].tolist(),
                        labels=classes[batch.query_y[b]].tolist(),
                        predicted=predict(adapted, q_trace, classes).tolist(),
                        predicted_all_units=predict_all_units(adapted, q_trace).tolist(),
                        seen=batch.query_seen[b].tolist(),
                    )
                )
    return outcomes


def summarize(outcomes: list[TaskOutcome]) -> dict[str, Any]:
    """Accuracies with 95 % CIs on seen and unseen classes, N-way and 20-unit.

    Every task contributes its accuracy on its seen (unseen) queries to the seen
    (unseen) mean, if it has any; ``tasks_seen``/``tasks_unseen`` count them.
    """
    summary: dict[str, Any] = {"tasks": len(outcomes)}
    for kind, flag in (("seen", True), ("unseen", False)):
        for suffix, all_units in (("", False), ("_20way", True)):
            values = [o.accuracy(flag, all_units=all_units) for o in outcomes]
            values = [v for v in values if v is not None]
            mean, half = mean_ci95(values)
            summary[f"accuracy_{kind}{suffix}"] = mean
            summary[f"ci95_{kind}{suffix}"] = half
        summary[f"tasks_{kind}"] = len(values)
    return summary


def torch_readout_traces(clone, weights: dict[str, torch.Tensor], dtype: torch.dtype):
    """A :data:`ReadoutTraces` function running the torch clone with ``weights``."""
    from mosaicnet.meta.run_setup import encode_input

    def traces(x: torch.Tensor) -> torch.Tensor:
        z = clone.recurrent_spikes(weights, encode_input(x, dtype))
        # The readout adaptation runs on the CPU: only the recurrent layer is costly.
        return clone.readout_trace(z).cpu()

    return traces


def meta_test_batches(
    dataset, config: TrainConfig, *, split: str, tasks: int, seed: int, batch_size: int = 16
):
    """Yield ``tasks`` meta-test tasks of ``split`` in batches (seeded)."""
    from mosaicnet.data.tasks import TaskSampler
    from mosaicnet.meta.run_setup import few_shot_config

    n_way = config.n_way
    if split == "meta-test-unseen" and n_way > len(config.held_out_classes):
        raise ConfigError(
            f"n_way={n_way} but only {len(config.held_out_classes)} classes are held out; "
            "unseen-class tasks need n_way <= the number of held-out classes"
        )
    sampler = TaskSampler(dataset, few_shot_config(config), split=split, seed=seed)
    for start in range(0, tasks, batch_size):
        yield sampler.tasks(range(start, min(tasks, start + batch_size)))


def evaluate_on_torch(
    run_dir: str | os.PathLike,
    options: EvaluationOptions | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Meta-test a trained run in torch; return the summary and per-task predictions.

    Parameters
    ----------
    run_dir
        A training run (:class:`mosaicnet.meta.run_directory.RunDirectory`).
    options
        :class:`~mosaicnet.meta.evaluation_options.EvaluationOptions`; the
        torch evaluation uses ``tasks``, ``protocol``, ``inner_steps`` (a
        learned inner learning rate is used as learned, otherwise the run's
        schedule gives the rate), ``seed`` (of the task streams),
        ``readout_headroom`` (the adapted readout saturates at
        ``readout_headroom * max |w_out|``, the conductance range of the chip's
        readout pairs, so that torch and an ideal chip agree; ``None``:
        unbounded), ``tasks_per_run`` (tasks per batch, default 16) and
        ``progress``. The chip's options are ignored.
    data_dir
        Directory with ``shd_test.h5``; ``None`` uses the run's own data.
    **changes
        Fields of ``options`` to change, e.g. ``tasks=20``.

    Returns
    -------
    dict
        :func:`summarize` plus ``simulator`` and ``backend`` (both ``"torch"``),
        ``protocol``, ``inner_steps``, ``readout_clipped_fraction`` (adapted
        readout weights that saturated), ``predictions`` (per task, the
        predicted global labels of its queries) and ``task_details`` (split,
        task id, classes, true labels, both predictions).
    """
    from tqdm.auto import tqdm

    from mosaicnet.meta.maml import inner_learning_rates
    from mosaicnet.meta.run_data import data_for_run
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.meta.run_setup import load_split, make_clone, torch_dtype

    options = resolve_options(options, changes)
    run = RunDirectory.open(run_dir)
    config = run.load_config()
    options = options.for_run(config)
    tasks, protocol, seed = options.tasks, options.protocol, options.seed
    progress, readout_headroom = options.progress, options.readout_headroom
    batch_size = options.tasks_per_run or _TASKS_PER_BATCH
    if options.inner_steps is not None:
        config = config.with_changes(inner_steps=options.inner_steps)
    spec = run.load_spec()
    dtype = torch_dtype(config)
    clone = make_clone(spec, config, device=options.torch_device)
    weights = {k: v.to(dtype) for k, v in clone.init_params().items()}
    w_out = weights["w_out"].cpu()  # the readout is adapted on the CPU (torch_readout_traces)
    learned = {}
    if config.learn_inner_lr:
        learned = run.load_checkpoint()["params"]
    inner_lr = inner_learning_rates(learned, config)["w_out"]

    # The run's own data unless a folder is given (mosaicnet.meta.run_data).
    data_path = data_for_run(run.path, data_dir, allow_other=True, progress=progress)
    dataset = load_split(data_path, "test")
    splits = (
        [("meta-test-seen", tasks), ("meta-test-unseen", tasks)]
        if protocol == "separate"
        else [("meta-test", tasks)]
    )
    traces = torch_readout_traces(clone, weights, dtype)
    saturation = {"clipped": 0, "written": 0}
    write = None
    if readout_headroom is not None:
        limit = readout_range(spec.w_out, readout_headroom)
        w_before = w_out

        def write(adapted: torch.Tensor) -> torch.Tensor:
            clipped, n_clipped = clip_readout(adapted, limit)
            saturation["clipped"] += n_clipped
            saturation["written"] += int((adapted != w_before).sum())
            return clipped

    outcomes: list[TaskOutcome] = []
    total = sum(n for _, n in splits)
    with tqdm(total=total, disable=not progress, desc="meta-test", unit="task") as bar:
        for split, n in splits:
            batches = meta_test_batches(
                dataset, config, split=split, tasks=n, seed=seed, batch_size=batch_size
            )
            for batch in batches:
                outcomes += evaluate_tasks(
                    [batch], traces, w_out, config, inner_lr=inner_lr, split=split,
                    write_readout=write,
                )  # fmt: skip
                bar.update(batch.n_tasks)
    result = summarize(outcomes)
    result.update(
        {
            "simulator": "torch",
            "backend": "torch",
            "run": str(Path(run_dir)),
            "data": str(data_path),
            "protocol": protocol,
            "n_way": config.n_way,
            "k_shot": config.k_shot,
            "n_query": config.n_query,
            "inner_steps": config.inner_steps,
            "inner_lr": float(inner_lr),
            "readout_headroom": readout_headroom,
            "readout_clipped_fraction": (
                saturation["clipped"] / saturation["written"] if saturation["written"] else 0.0
            ),
            "seed": seed,
            "predictions": [o.predicted for o in outcomes],
            "task_details": [asdict(o) for o in outcomes],
        }
    )
    return result
