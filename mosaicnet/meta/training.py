"""Meta-training runs: checkpoints, resume, metrics log, progress.

A run trains into a run directory (its files: :mod:`mosaicnet.meta.run_directory`)
from the data, network and seeds :mod:`mosaicnet.meta.run_setup` builds.

Checkpoints and specs are written atomically (temporary file + ``os.replace``), so
a run killed at any moment leaves the previous checkpoint intact. ``resume``
continues from it and, with the same configuration, ends bitwise identical to an
uninterrupted run: the checkpoint holds the Adam state, the torch and numpy
global RNG states, the device-noise generator and the position in the task
stream (task ``i`` of the sampler depends only on the seed and ``i``).

An existing run directory is never overwritten unless asked (``overwrite``); the
metrics log is truncated to the checkpoint on resume, so it never holds steps
that the parameters do not reflect.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mosaicnet.errors import ConfigError, RunDirectoryError, TrainingDiverged
from mosaicnet.meta.adam import AdamState, adam_step
from mosaicnet.meta.allocator import reuse_freed_memory
from mosaicnet.meta.config import TrainConfig, write_text_atomic
from mosaicnet.meta.divergence import DivergenceMonitor
from mosaicnet.meta.maml import MetaBatch, init_meta_params, meta_gradient, network_params
from mosaicnet.meta.run_data import record_training_data, recorded_data, same_data
from mosaicnet.meta.run_directory import (
    BEST_FILE,
    BEST_SPEC_FILE,
    CHECKPOINT_FILE,
    INITIAL_SPEC_FILE,
    METRICS_FILE,
    SPEC_FILE,
    RunDirectory,
)
from mosaicnet.meta.run_lock import run_lock
from mosaicnet.meta.run_setup import (
    STREAM_NOISE,
    STREAM_TASKS,
    STREAM_VALIDATION,
    STREAM_WEIGHTS,
    build_layout,
    build_spec,
    compute_device,
    few_shot_config,
    load_split,
    make_clone,
    resolve_data_dir,
    stream_seed,
    to_meta_batch,
    torch_dtype,
)


# ----------------------------------------------------------------------------- training
@dataclass
class TrainState:
    """Everything a training step changes (what a checkpoint holds)."""

    iteration: int
    params: dict[str, torch.Tensor]
    adam: AdamState
    noise: Any  # DeviceNoise or None
    next_task_id: int


def apply_pruning(state: TrainState, threshold: float) -> int:
    """Zero recurrent weights with ``|w| < threshold`` AND their Adam moments.

    Clearing the moments keeps the optimizer consistent with the forward pass: a
    pruned weight gets zero gradient (the forward multiplies by the mask), and with
    zero moments Adam leaves it at zero, so pruned synapses stay pruned. Returns
    the number of zero recurrent weights.
    """
    keep = (state.params["w_rec"].abs() >= threshold).to(state.params["w_rec"].dtype)
    state.params["w_rec"] = state.params["w_rec"] * keep
    state.adam.exp_avg["w_rec"] = state.adam.exp_avg["w_rec"] * keep
    state.adam.exp_avg_sq["w_rec"] = state.adam.exp_avg_sq["w_rec"] * keep
    return int((state.params["w_rec"] == 0).sum())


def _rng_state() -> dict[str, Any]:
    # mosaicnet draws only from its own seeded generators; the global torch and numpy
    # states are saved too so that any library drawing from them resumes identically.
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _checkpoint_state(state: TrainState, config: TrainConfig) -> dict[str, Any]:
    return {
        "iteration": state.iteration,
        # On the CPU: a checkpoint written on a GPU loads anywhere.
        "params": {k: v.detach().to("cpu", copy=True) for k, v in state.params.items()},
        "optimizer": state.adam.to("cpu").state_dict(),
        "rng": _rng_state(),
        "noise": state.noise.state_dict() if state.noise is not None else None,
        "next_task_id": state.next_task_id,
        "config": json.dumps(config.to_dict(), sort_keys=True),
    }


def trained_spec(spec, clone, params: dict[str, torch.Tensor], config: TrainConfig):
    """The spec holding ``params`` (recurrent weights pruned as in the forward pass)."""
    from mosaicnet.meta.maml import prune_recurrent

    weights = network_params({k: v.detach() for k, v in params.items()})
    weights["w_rec"] = prune_recurrent(weights["w_rec"], config.prune_threshold)
    return clone.to_spec(weights)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run: RunDirectory
    config: TrainConfig
    iterations: int
    last_metrics: dict[str, Any]


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Meta-train the network of ``config`` into ``run_dir``.

    Parameters
    ----------
    config
        The run's configuration. With ``resume`` it must equal the stored one
        except for ``iterations`` (a run can be extended).
    run_dir
        Run directory (see module docstring).
    data_dir
        Directory with ``shd_train.h5``; ``None`` uses the synthetic default.
    resume
        Continue from the run's checkpoint.
    overwrite
        Start again in an existing run directory.
    progress
        Show a tqdm progress bar with loss and accuracy.

    Raises
    ------
    RunDirectoryError
        The directory exists (without ``resume``/``overwrite``), has no checkpoint
        to resume, its checkpoint is corrupt, or another process is training into
        it (:mod:`mosaicnet.meta.run_lock`).
    ConfigError
        Bad parameters, an unknown device preset, or a resumed configuration that
        differs from the stored one.
    TrainingDiverged
        The loss diverged (:mod:`mosaicnet.meta.divergence`); the message names the
        step and what the run directory kept.
    """
    if resume and overwrite:
        raise ConfigError(
            "resume and overwrite (--resume, --overwrite) contradict each other; pass one"
        )
    # A model from a file is recorded as its code: the run must not depend on the file.
    config = config.with_recorded_neuron_model()
    if config.device_model is not None:  # fail before touching the run directory
        from mosaicnet.devices import get_device_model

        get_device_model(config.device_model)
    compute_device(config.torch_device)  # a GPU that is not there fails here too
    # Large tensors are freed and allocated again at every step (mosaicnet.meta.allocator).
    reuse_freed_memory()
    # One training per run directory at a time (mosaicnet.meta.run_lock).
    with run_lock(run_dir):
        return _train(
            config, run_dir, data_dir=data_dir, resume=resume, overwrite=overwrite,
            progress=progress,
        )  # fmt: skip


def _train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
) -> TrainResult:
    """The body of :func:`train`, run while holding the run directory's lock."""
    from tqdm.auto import tqdm

    from mosaicnet.data.tasks import TaskSampler
    from mosaicnet.meta.hardware import DeviceNoise
    from mosaicnet.meta.validation import make_validation, training_recordings

    data_path = resolve_data_dir(data_dir, progress=progress)
    dataset = load_split(data_path, "train")
    validation_seed = stream_seed(config.seed, STREAM_VALIDATION)
    train_recordings, validation_recordings = training_recordings(dataset, config, validation_seed)
    sampler = TaskSampler(
        dataset, few_shot_config(config, meta_train=True), split="meta-train",
        seed=stream_seed(config.seed, STREAM_TASKS), recordings=train_recordings,
    )  # fmt: skip
    from mosaicnet.data import check_binning

    n_in = check_binning(
        dataset.n_channels, n_bins=config.n_bins, window_s=config.window_s,
        stride=config.spatial_stride,
    )  # fmt: skip
    dtype = torch_dtype(config)

    if resume:
        run = RunDirectory.open(run_dir)
        _check_resume_config(run.load_config(), config, run)
        record = recorded_data(run.path)
        if record is not None and not same_data(record, data_path):
            raise ConfigError(
                f"cannot resume {run.path} on {data_path}: the run was trained on "
                f"{record['directory']}, which holds other files; resume it on its own data "
                "(that data_dir / --data, or none)"
            )
        checkpoint = run.load_checkpoint()
        spec = run.load_spec(initial=True)
    else:
        run = RunDirectory.create(run_dir, overwrite=overwrite)
        checkpoint = None
        spec = build_spec(config, n_in)
        spec.save(run.file(INITIAL_SPEC_FILE), overwrite=True)
        record_training_data(run.path, data_path)
    run.save_config(config)
    if spec.n_in != n_in:
        raise ConfigError(
            f"the run's network has {spec.n_in} inputs but {data_path} with stride "
            f"{config.spatial_stride} gives {n_in}; use the data the run was trained on"
        )

    clone = make_clone(spec, config)
    params = {k: v.to(dtype) for k, v in init_meta_params(clone.init_params(), config).items()}
    noise = (
        DeviceNoise(
            config.device_model, config.read_time_min_s, config.read_time_max_s,
            stream_seed(config.seed, STREAM_NOISE),
        )
        if config.device_model is not None
        else None
    )  # fmt: skip
    state = TrainState(0, params, AdamState.zeros_like(params), noise, 0)
    torch.manual_seed(config.seed)
    np.random.seed(stream_seed(config.seed, STREAM_WEIGHTS))  # noqa: NPY002 (see _rng_state)
    if checkpoint is not None:
        _restore(state, checkpoint, run)
        run.truncate_metrics(state.iteration)
    else:
        run.file(METRICS_FILE).write_text("", encoding="utf-8")

    layout_cost = None
    if config.layout == "mosaic" and config.layout_lambda > 0:
        layout_cost = build_layout(config).cost_tensor(dtype=dtype, device=clone.device)
    validation = None
    if config.validation_every:
        validation = make_validation(dataset, config, validation_recordings, validation_seed)
    best = run.load_best() if checkpoint is not None else None
    monitor = DivergenceMonitor(config.divergence_window, config.divergence_factor)
    if checkpoint is not None:
        monitor.replay(r["loss"] for r in run.read_metrics() if "loss" in r)
    last_checkpoint = state.iteration

    last: dict[str, Any] = {}
    bar = tqdm(
        total=config.iterations, initial=state.iteration, disable=not progress,
        desc="meta-training", unit="step",
    )  # fmt: skip
    try:
        while state.iteration < config.iterations:
            started = time.perf_counter()
            tasks = sampler.tasks(range(state.next_task_id, state.next_task_id + config.meta_batch))
            batch = to_meta_batch(tasks, clone.device)
            last = _step(state, batch, clone, config, layout_cost)
            if monitor.update(last["loss"]) or not math.isfinite(last["grad_norm"]):
                # The diverged step is neither logged nor checkpointed: the run keeps
                # the state of its last checkpoint, which resume would start from.
                message = _divergence_message(run, last, monitor, last_checkpoint, best)
                raise TrainingDiverged(message)
            done = state.iteration >= config.iterations
            if validation is not None and (done or state.iteration % config.validation_every == 0):
                last.update(validation.score(state.params, clone, config))
                if best is None or last["val_acc"] > best["val_acc"]:
                    best = {"iteration": state.iteration, "val_acc": last["val_acc"]}
                    _write_best(run, state, spec, clone, config, best)
            last["seconds"] = round(time.perf_counter() - started, 4)
            run.append_metrics(last)
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['acc']:.2f}")
            if done or state.iteration % config.checkpoint_every == 0:
                _write_checkpoint(run, state, spec, clone, config)
                last_checkpoint = state.iteration
    finally:
        bar.close()
    if checkpoint is not None and not last:
        last = (run.read_metrics() or [{}])[-1]
    return TrainResult(run, config, state.iteration, last)


def clip_gradients(
    gradients: dict[str, torch.Tensor], max_norm: float | None
) -> tuple[dict[str, torch.Tensor], float]:
    """Scale ``gradients`` so their global L2 norm is at most ``max_norm``; return the old norm."""
    norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in gradients.values())))
    if max_norm is not None and norm > max_norm:
        factor = max_norm / norm
        gradients = {name: g * factor for name, g in gradients.items()}
    return gradients, norm


def _step(state: TrainState, batch: MetaBatch, clone, config: TrainConfig, layout_cost) -> dict:
    """One outer step: meta-gradient, clipping, Adam, pruning; returns the metrics record.

    A step whose loss or gradient is not finite changes nothing (the caller stops
    the run on its record).
    """
    iteration = state.iteration
    prune = iteration >= config.prune_start
    offsets = None
    noisy = state.noise is not None and iteration >= config.noise_start
    if noisy:
        offsets = state.noise.offsets(state.params)
    gradients, loss, metrics = meta_gradient(
        state.params, batch, clone, config, layout_cost=layout_cost, offsets=offsets, prune=prune
    )
    gradients, grad_norm = clip_gradients(gradients, config.grad_clip)
    lr = config.outer_lr_at(iteration)
    record = {"iteration": iteration + 1, "loss": float(loss), "noise": noisy}
    record.update({"grad_norm": grad_norm, "outer_lr": lr})
    if not (math.isfinite(grad_norm) and torch.isfinite(loss)):
        record.update({k: float(v) for k, v in metrics.items()})
        return record
    state.params, state.adam = adam_step(state.params, gradients, state.adam, lr)
    zeros = apply_pruning(state, config.prune_threshold) if prune else None
    state.iteration += 1
    state.next_task_id += config.meta_batch
    record.update({k: float(v) for k, v in metrics.items()})
    n_rec = state.params["w_rec"].numel()
    if zeros is not None:
        record["w_rec_zero_fraction"] = zeros / n_rec
    for key, value in state.params.items():
        if key.startswith("log_inner_lr."):
            record["inner_lr." + key.split(".", 1)[1]] = float(torch.exp(value))
    return record


def _write_best(run: RunDirectory, state: TrainState, spec, clone, config, best: dict) -> None:
    # Spec first, then the record naming it: a kill in between leaves a newer spec
    # under an older record, never a record without its spec.
    trained_spec(spec, clone, state.params, config).save(run.file(BEST_SPEC_FILE), overwrite=True)
    write_text_atomic(run.file(BEST_FILE), json.dumps(best, sort_keys=True) + "\n")


def _divergence_message(
    run: RunDirectory, record: dict, monitor: DivergenceMonitor, checkpoint: int, best
) -> str:
    step = record["iteration"]
    if not (math.isfinite(record["loss"]) and math.isfinite(record["grad_norm"])):
        what = f"the loss ({record['loss']}) or gradient norm ({record['grad_norm']}) is not finite"
    else:
        what = (
            f"the mean loss of the last {monitor.window} steps rose to {monitor.mean:.3f}, "
            f"from its best {monitor.best_mean:.3f}"
        )
    kept = f"{run.path} keeps its checkpoint of step {checkpoint}"
    if best is not None:
        kept += (
            f" and the best validated network (step {best['iteration']}, validation accuracy "
            f"{best['val_acc']:.3f}) in {BEST_SPEC_FILE}, which evaluation reads"
        )
    return (
        f"meta-training diverged at step {step}: {what}. {kept}. Start a new run with a "
        "lower outer_lr, grad_clip set, outer_lr_schedule='cosine' or, with several inner "
        "steps, inner_step_scale='curvature'"
    )


def _write_checkpoint(run: RunDirectory, state: TrainState, spec, clone, config) -> None:
    # Spec first: a kill between the two leaves an older checkpoint with a newer spec,
    # which resume then rewrites; never a checkpoint whose spec is missing.
    spec_now = trained_spec(spec, clone, state.params, config)
    try:
        spec_now.save(run.file(SPEC_FILE), overwrite=True)
        run.save_checkpoint(_checkpoint_state(state, config))
    except OSError as error:
        # Writes are atomic (temporary file + os.replace): the previous files stand.
        raise RunDirectoryError(
            f"writing the checkpoint of step {state.iteration} into {run.path} failed "
            f"({error.strerror or error}); the last checkpoint written before it is kept. Free "
            "space (or fix the folder), then continue with resume=True (`mosaicnet train --resume`)"
        ) from None


def _restore(state: TrainState, checkpoint: dict[str, Any], run: RunDirectory) -> None:
    try:
        if set(checkpoint["params"]) != set(state.params):
            raise KeyError(f"parameters {sorted(checkpoint['params'])}")
        for name, value in checkpoint["params"].items():
            if value.shape != state.params[name].shape or value.dtype != state.params[name].dtype:
                raise ValueError(f"{name} is {tuple(value.shape)} {value.dtype}")
        # Checkpoints are read onto the CPU; the run continues on its configured device.
        device = next(iter(state.params.values())).device
        state.params = {name: value.to(device) for name, value in checkpoint["params"].items()}
        state.adam = AdamState.from_state_dict(checkpoint["optimizer"]).to(device)
        _set_rng_state(checkpoint["rng"])
        if state.noise is not None:
            state.noise.load_state_dict(checkpoint["noise"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise RunDirectoryError(
            f"checkpoint {run.file(CHECKPOINT_FILE)} does not match the run's network "
            f"({error}); start the run again with overwrite=True (--overwrite)"
        ) from error
    broken = sorted(name for name, value in state.params.items() if not torch.isfinite(value).all())
    if broken:
        raise RunDirectoryError(
            f"checkpoint {run.file(CHECKPOINT_FILE)} holds NaN or infinite weights in "
            f"{', '.join(broken)} (written at step {int(checkpoint['iteration'])}); resuming "
            "would continue from them. Start the run again with overwrite=True (--overwrite; "
            "the best validated network, if any, stays in spec_best.npz)"
        )
    state.iteration = int(checkpoint["iteration"])
    state.next_task_id = int(checkpoint["next_task_id"])


def _check_resume_config(stored: TrainConfig, given: TrainConfig, run: RunDirectory) -> None:
    a, b = stored.to_dict(), given.to_dict()
    # The number of steps, the compute device, the tasks per pass (memory, not the
    # result) and the test-time inner steps (not used in training) may change.
    free = ("iterations", "torch_device", "tasks_per_pass", "test_inner_steps")
    differing = sorted(k for k in a if k not in free and a[k] != b.get(k))
    if differing:
        detail = ", ".join(f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in differing)
        raise ConfigError(
            f"cannot resume {run.path} with a different configuration ({detail}); only "
            "the number of iterations, the compute device, the tasks per pass and "
            "test_inner_steps may change on resume. Start a new run for other settings"
        )
