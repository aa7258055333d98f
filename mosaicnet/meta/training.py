"""Meta-training runs: run directory, checkpoints, resume, metrics log, progress.

A run directory holds::

    config.json        the full TrainConfig of the run
    spec_initial.npz   the network before training (NetworkSpec.save)
    spec.npz           the network at the last checkpoint (pruned weights)
    spec_best.npz      the network with the best validation score (with validation)
    best.json          its step and score
    checkpoint.pt      parameters, Adam state, RNG states, task position
    metrics.jsonl      one JSON object per outer step
    data.json          the data folder and a fingerprint of its files
                       (mosaicnet.meta.run_data: later commands use this data)
    .lock              held while a training runs (mosaicnet.meta.run_lock)

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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosaicnet.errors import ConfigError, DataFormatError, RunDirectoryError, TrainingDiverged
from mosaicnet.meta.adam import AdamState, adam_step
from mosaicnet.meta.config import TrainConfig, load_config, save_config, write_text_atomic
from mosaicnet.meta.divergence import DivergenceMonitor
from mosaicnet.meta.maml import MetaBatch, init_meta_params, meta_gradient, network_params
from mosaicnet.meta.run_data import DATA_RECORD, record_training_data, recorded_data, same_data
from mosaicnet.meta.run_lock import LOCK_FILE, run_lock

CONFIG_FILE = "config.json"
SPEC_FILE = "spec.npz"
INITIAL_SPEC_FILE = "spec_initial.npz"
BEST_SPEC_FILE = "spec_best.npz"
BEST_FILE = "best.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
RUN_FILES = (
    CONFIG_FILE, SPEC_FILE, INITIAL_SPEC_FILE, BEST_SPEC_FILE, BEST_FILE, CHECKPOINT_FILE,
    METRICS_FILE, DATA_RECORD,
)  # fmt: skip

#: Default location of the synthetic default data (generated on first use).
DEFAULT_DATA_DIR = Path("data") / "synthetic"

CHECKPOINT_FORMAT = 1

# Independent random streams derived from the run seed (numpy SeedSequence spawn keys).
_STREAM_WEIGHTS, _STREAM_MASK, _STREAM_NOISE, _STREAM_TASKS, _STREAM_VALIDATION = range(5)


def stream_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for one purpose (weights, mask, noise, tasks) of a run seed."""
    return int(np.random.SeedSequence(seed, spawn_key=(stream,)).generate_state(1)[0])


def torch_dtype(config: TrainConfig) -> torch.dtype:
    """The torch dtype named by ``config.dtype``."""
    return {"float32": torch.float32, "float64": torch.float64}[config.dtype]


# ----------------------------------------------------------------------------- run directory
class RunDirectory:
    """The files of one training run (see module docstring).

    Use :meth:`create` for a new run and :meth:`open` for an existing one.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """Path of one of the run's files."""
        return self.path / name

    @classmethod
    def create(cls, path: str | os.PathLike, *, overwrite: bool = False) -> RunDirectory:
        """Prepare a new run in ``path`` (created if missing).

        Raises
        ------
        RunDirectoryError
            ``path`` is a file, or a non-empty directory and ``overwrite`` is false.
            With ``overwrite`` only the run's own files are deleted, never other
            files a user put there.
        """
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunDirectoryError(f"{run.path} exists and is not a directory; choose another")
        if run.path.is_dir() and any(p.name != LOCK_FILE for p in run.path.iterdir()):
            if not overwrite:
                raise RunDirectoryError(
                    f"run directory {run.path} already exists and is not empty; pass --resume "
                    "to continue that run, --overwrite to start it again, or choose another "
                    "directory"
                )
            for name in RUN_FILES:
                run.file(name).unlink(missing_ok=True)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDirectory:
        """An existing run; :class:`RunDirectoryError` if ``path`` holds none."""
        run = cls(path)
        if not run.file(CONFIG_FILE).is_file():
            raise RunDirectoryError(
                f"{run.path} is not a training run (no {CONFIG_FILE}); train one with "
                f"`mosaicnet train --out {run.path}`"
            )
        return run

    # -- config, spec -------------------------------------------------------------------------
    def load_config(self) -> TrainConfig:
        """The run's configuration."""
        return load_config(self.file(CONFIG_FILE))

    def save_config(self, config: TrainConfig) -> None:
        """Write the configuration (atomically)."""
        save_config(config, self.file(CONFIG_FILE))

    def load_spec(self, *, initial: bool = False, last: bool = False):
        """The trained :class:`~mosaicnet.network.spec.NetworkSpec` of the run.

        The network with the best validation score when the run validated
        (``spec_best.npz``), else the one at the last checkpoint; ``last`` asks for
        the latter in any case, ``initial`` for the network before training.
        """
        from mosaicnet.network.spec import NetworkSpec

        name = INITIAL_SPEC_FILE if initial else self.trained_spec_name(last=last)
        if not self.file(name).is_file():
            raise RunDirectoryError(
                f"{self.file(name)} is missing: the run has not written a checkpoint yet; "
                "resume it with `mosaicnet train --resume`"
            )
        return NetworkSpec.load(self.file(name))

    def trained_spec_name(self, *, last: bool = False) -> str:
        """File name of the trained network :meth:`load_spec` reads."""
        if not last and self.file(BEST_SPEC_FILE).is_file():
            return BEST_SPEC_FILE
        return SPEC_FILE

    def load_best(self) -> dict[str, Any] | None:
        """``{"iteration", "val_acc"}`` of the best validated network, or None."""
        path = self.file(BEST_FILE)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RunDirectoryError(
                f"{path} is damaged ({error}); delete it and {BEST_SPEC_FILE} to keep the "
                "last network, or restore a copy"
            ) from error

    # -- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Write ``state`` with ``torch.save`` to a temporary file, then ``os.replace``."""
        target = self.file(CHECKPOINT_FILE)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".checkpoint.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save({"format": CHECKPOINT_FORMAT, **state}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def has_checkpoint(self) -> bool:
        """Whether a checkpoint file exists."""
        return self.file(CHECKPOINT_FILE).is_file()

    def load_checkpoint(self) -> dict[str, Any]:
        """Read the checkpoint; :class:`RunDirectoryError` if missing or corrupt."""
        path = self.file(CHECKPOINT_FILE)
        if not path.is_file():
            raise RunDirectoryError(
                f"{path} does not exist: the run has no checkpoint to resume from; start it "
                "again with --overwrite"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for damaged archives
            raise RunDirectoryError(
                f"checkpoint {path} is corrupt or truncated ({type(error).__name__}: "
                f"{error}); restore a copy, or start the run again with --overwrite"
            ) from error
        required = {"format", "iteration", "params", "optimizer", "rng", "next_task_id"}
        if not isinstance(state, dict) or not required <= set(state):
            raise RunDirectoryError(
                f"checkpoint {path} is not a mosaicnet training checkpoint (missing "
                f"{sorted(required - set(state) if isinstance(state, dict) else required)}); "
                "start the run again with --overwrite"
            )
        if state["format"] != CHECKPOINT_FORMAT:
            raise RunDirectoryError(
                f"checkpoint {path} has format {state['format']!r}; this mosaicnet reads "
                f"format {CHECKPOINT_FORMAT}"
            )
        return state

    # -- metrics ------------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to the metrics log."""
        with self.file(METRICS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records of the metrics log (empty if there is none)."""
        path = self.file(METRICS_FILE)
        if not path.is_file():
            return []
        records = []
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A last line cut by a kill mid-write is dropped; anything else is damage.
                if number == len(lines):
                    break
                raise DataFormatError(
                    f"{path} line {number} is not JSON; the metrics log is damaged"
                ) from None
        return records

    def truncate_metrics(self, iteration: int) -> None:
        """Keep only the records of steps ``<= iteration`` (rewritten atomically)."""
        kept = [r for r in self.read_metrics() if r.get("iteration", 0) <= iteration]
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        write_text_atomic(self.file(METRICS_FILE), text)


# ----------------------------------------------------------------------------- network
def build_layout(config: TrainConfig):
    """The :class:`~mosaicnet.layout.Layout` of the configuration."""
    from mosaicnet.layout import Layout

    if config.layout == "fc":
        return Layout.fully_connected(config.fc_neurons)
    return Layout(config.rows, config.cols, config.neurons_per_tile, config.beta)


def build_spec(config: TrainConfig, n_in: int):
    """A freshly initialised network spec for the configuration and ``n_in`` inputs.

    The recurrent mask connects every pair (the published model) unless the
    configuration gives a small-world prior (``p_local``, ``hop_decay``) or a
    routing limit (``max_hops``: no synapse between neurons further apart). One
    simulation step is one input bin: ``dt = window_s / n_bins`` (14 ms for the
    published 100 bins over 1.4 s); the neurons are the configuration's neuron
    model (:meth:`TrainConfig.neuron_parameters`), with physical time constants.
    """
    from mosaicnet.layout import SmallWorldPrior, sample_small_world_mask
    from mosaicnet.network.spec import random_spec

    layout = build_layout(config)
    n = layout.n_neurons
    if config.p_local is None:
        mask = np.ones((n, n), dtype=bool)
    else:
        prior = SmallWorldPrior(p_local=config.p_local, decay=config.hop_decay)
        mask = sample_small_world_mask(
            layout, prior, rng=np.random.default_rng(stream_seed(config.seed, _STREAM_MASK))
        )
    if config.max_hops is not None and config.layout == "mosaic":
        mask = mask & (layout.neuron_hops <= config.max_hops)
    return random_spec(
        n_in,
        layout.to_dict(),
        config.n_out,
        mask,
        gain=config.weight_gain,
        seed=stream_seed(config.seed, _STREAM_WEIGHTS),
        device_model=config.device_model or "ideal",
        neuron=config.neuron_parameters(),
    )


def make_clone(spec, config: TrainConfig):
    """The torch clone of ``spec`` with the configuration's dtype and surrogate."""
    from mosaicnet.network.torch_clone import TorchClone

    return TorchClone(
        spec,
        dtype=torch_dtype(config),
        surrogate="fast_sigmoid",
        surrogate_slope=config.surrogate_slope,
    )


def encode_input(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Binned spike counts -> the binary input of the network (counts clipped to 1).

    The encoding is the one both simulators share
    (:func:`mosaicnet.network.spec.input_spikes`).
    """
    from mosaicnet.network.spec import input_spikes

    return input_spikes(x).to(dtype)


# ----------------------------------------------------------------------------- data
def resolve_data_dir(data_dir: str | os.PathLike | None, *, progress: bool = False) -> Path:
    """``data_dir``, or the synthetic default data (generated on first use)."""
    if data_dir is not None:
        path = Path(data_dir)
        if path.is_file():
            raise DataFormatError(
                f"data directory {path} is a file; pass the directory that holds it "
                f"({path.parent}) and shd_test.h5 beside it"
            )
        if not path.is_dir():
            raise DataFormatError(
                f"data directory {path} does not exist; pass a directory holding "
                "shd_train.h5 and shd_test.h5, or omit --data to use the synthetic default"
            )
        return path
    from mosaicnet.data import ensure_synthetic_shd

    ensure_synthetic_shd(DEFAULT_DATA_DIR, progress=progress)
    return DEFAULT_DATA_DIR


def few_shot_config(config: TrainConfig, *, n_way: int | None = None):
    """The :class:`~mosaicnet.data.tasks.FewShotConfig` of a training configuration."""
    from mosaicnet.data.tasks import FewShotConfig

    return FewShotConfig(
        n_way=config.n_way if n_way is None else n_way,
        k_shot=config.k_shot,
        n_query=config.n_query,
        held_out=config.held_out_classes,
        stride=config.spatial_stride,
        n_bins=config.n_bins,
        window_s=config.window_s,
    )


def load_split(data_dir: Path, split: str):
    """Load ``shd_train.h5`` (``"train"``) or ``shd_test.h5`` (``"test"``) of ``data_dir``."""
    from mosaicnet.data import load_shd

    return load_shd(Path(data_dir) / f"shd_{split}.h5")


def to_meta_batch(tasks, dtype: torch.dtype) -> MetaBatch:
    """The :class:`MetaBatch` of a sampler's ``TaskBatch`` (inputs made binary)."""
    return MetaBatch(
        support_x=encode_input(tasks.support_x, dtype),
        support_y=tasks.support_y,
        query_x=encode_input(tasks.query_x, dtype),
        query_y=tasks.query_y,
        classes=tasks.classes,
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
        "params": {k: v.detach().clone() for k, v in state.params.items()},
        "optimizer": state.adam.state_dict(),
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
        raise ConfigError("--resume and --overwrite contradict each other; pass one of them")
    # A model from a file is recorded as its code: the run must not depend on the file.
    config = config.with_recorded_neuron_model()
    if config.device_model is not None:  # fail before touching the run directory
        from mosaicnet.devices import get_device_model

        get_device_model(config.device_model)
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
    validation_seed = stream_seed(config.seed, _STREAM_VALIDATION)
    train_recordings, validation_recordings = training_recordings(dataset, config, validation_seed)
    sampler = TaskSampler(
        dataset, few_shot_config(config), split="meta-train",
        seed=stream_seed(config.seed, _STREAM_TASKS), recordings=train_recordings,
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
                "(that --data, or none)"
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
            stream_seed(config.seed, _STREAM_NOISE),
        )
        if config.device_model is not None
        else None
    )  # fmt: skip
    state = TrainState(0, params, AdamState.zeros_like(params), noise, 0)
    torch.manual_seed(config.seed)
    np.random.seed(stream_seed(config.seed, _STREAM_WEIGHTS))  # noqa: NPY002 (see _rng_state)
    if checkpoint is not None:
        _restore(state, checkpoint, run)
        run.truncate_metrics(state.iteration)
    else:
        run.file(METRICS_FILE).write_text("", encoding="utf-8")

    layout_cost = None
    if config.layout == "mosaic" and config.layout_lambda > 0:
        layout_cost = build_layout(config).cost_tensor(dtype=dtype)
    validation = None
    if config.validation_every:
        validation = make_validation(dataset, config, validation_recordings, validation_seed, dtype)
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
            batch = to_meta_batch(tasks, dtype)
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
            "space (or fix the folder), then continue with `mosaicnet train --resume`"
        ) from None


def _restore(state: TrainState, checkpoint: dict[str, Any], run: RunDirectory) -> None:
    try:
        if set(checkpoint["params"]) != set(state.params):
            raise KeyError(f"parameters {sorted(checkpoint['params'])}")
        for name, value in checkpoint["params"].items():
            if value.shape != state.params[name].shape or value.dtype != state.params[name].dtype:
                raise ValueError(f"{name} is {tuple(value.shape)} {value.dtype}")
        state.params = {name: value.clone() for name, value in checkpoint["params"].items()}
        state.adam = AdamState.from_state_dict(checkpoint["optimizer"])
        _set_rng_state(checkpoint["rng"])
        if state.noise is not None:
            state.noise.load_state_dict(checkpoint["noise"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise RunDirectoryError(
            f"checkpoint {run.file(CHECKPOINT_FILE)} does not match the run's network "
            f"({error}); start the run again with --overwrite"
        ) from error
    broken = sorted(name for name, value in state.params.items() if not torch.isfinite(value).all())
    if broken:
        raise RunDirectoryError(
            f"checkpoint {run.file(CHECKPOINT_FILE)} holds NaN or infinite weights in "
            f"{', '.join(broken)} (written at step {int(checkpoint['iteration'])}); resuming "
            "would continue from them. Start the run again with --overwrite (the best "
            "validated network, if any, stays in spec_best.npz)"
        )
    state.iteration = int(checkpoint["iteration"])
    state.next_task_id = int(checkpoint["next_task_id"])


def _check_resume_config(stored: TrainConfig, given: TrainConfig, run: RunDirectory) -> None:
    a, b = stored.to_dict(), given.to_dict()
    differing = sorted(k for k in a if k != "iterations" and a[k] != b.get(k))
    if differing:
        detail = ", ".join(f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in differing)
        raise ConfigError(
            f"cannot resume {run.path} with a different configuration ({detail}); only "
            "--iterations may change on resume. Start a new run for other settings"
        )
