"""Chip-in-the-loop few-shot evaluation on the Brian2 network, at any read time after programming.

The user's question: does the meta-trained network still learn new classes from a
few examples when it runs on the (simulated) memristive chip, and for how long
while the devices drift? The procedure (docs/evaluation.md, 'Chip in the loop'):

1. **Program** the run's trained weights (``spec.npz``, pruned as trained) into
   differential pairs of the run's device model at ``t = 0``: programming noise,
   one drift parameter per device
   (:func:`mosaicnet.network.chip_programming.program_spec`, the same chip the
   protocols record rasters on for the same seed).
   The readout pairs get a weight scale of ``readout_headroom * max |w_out|`` so
   that the few-shot updates have conductance range to grow into; an update
   beyond it saturates the pair, as on a chip, and the summary reports the
   fraction of written readout weights that saturated (``readout_clipped_fraction``).
2. **Read time** ``t``: every device is read at ``t`` by the Brian2 synapses
   themselves (drift, and read noise, are part of the simulated model:
   :mod:`mosaicnet.devices.brian_form`). With read noise, each copy of the
   network reads its devices afresh at the start of every program run
   (``BrianNetwork(read_every="run")``): one read per task's support set and
   one per task's query set on standalone backends (a copy runs one task's
   samples back to back), one per sample on runtime backends (a copy per
   sample). Training draws one device read per outer step in the same spirit:
   a read serves a batch of work, not a single spike.
3. **Per task**, on the Brian2 network: run the support recordings and record
   the recurrent spikes; read the chip's readout weights ``w_chip`` (the
   effective weights of the Brian2 readout synapses at ``t``, read once per
   read time; with read noise, one noisy read); compute the
   inner-loop update from the RECORDED spikes with the rule and number of steps
   of training (:func:`mosaicnet.meta.maml.adapt_readout` on the readout trace of
   the recorded spikes, starting from ``w_chip``, as training starts from the
   device-perturbed readout); write the adapted weights as new conductances of
   the changed readout pairs (:meth:`ProgrammedArray.reprogram`: write noise,
   new drift parameters, programming time ``t``); run the query recordings in
   Brian2 with those devices and classify from the Brian2 readout potential
   (logit of a unit = its peak potential). Seen and unseen classes are scored
   separately with the metrics of :mod:`mosaicnet.meta.torch_evaluation`.

Timing convention (drift): the chip is programmed at ``t = 0`` and read at
``t = read_time_s``; the readout update of a task is written at ``t_prog = t``
and the queries run right after, so the rewritten readout pairs have not
drifted (their drift starts at ``t``) while the input and recurrent pairs have
drifted for ``t``. Every task starts from the same chip state: tasks are
evaluated on separate copies of the programmed chip (Brian2 copies of the
network), so no task sees another task's update.

Global drift compensation (``drift_compensation=True``; V. Joshi et al., Nat.
Commun. 11, 2473, 2020, as in IBM aihwkit, see
:mod:`mosaicnet.devices.compensation` and
:func:`mosaicnet.network.chip_programming.compensated_chip`): each pathway's
periphery gain is scaled by ``sum |w|`` of a calibration read right after
programming over ``sum |w|`` of a calibration read at ``t``. In Brian2 the gain
is the synapse group's shared ``w_scale``, so the compensated weight is
``factor * w_read`` inside the simulation. The rewritten readout is read at its
own programming time and is not compensated (its factor would be 1). Documented
behaviour, tested: the compensated effective weights of each pathway at ``t``
have the same ``sum |w|`` as right after programming (exactly without read
noise), which removes the common drift scale; device-to-device drift differences remain.

``noise=False`` switches off programming noise, write noise of the updates and
read noise; drift (including its per-device spread) stays, it is what the read
time is about. With the ``ideal`` device model and ``noise=False`` the
predictions equal those of the torch evaluation task by task (the clone is
spike-exact in float64; train with ``"dtype": "float64"`` for bitwise-equal
recurrent spikes).

Batching without recompilation: the Brian2 network is built ONCE per call
(:func:`drift_curve`: once for all read times) with ``copies x sequential``
samples per run. Query samples are laid out task-major, so that every copy of
the network holds the queries of one task, and before a query run each copy's
readout synapses get that task's reprogrammed devices: runtime backends set the
synaptic variables; standalone backends pass them as ``run_args`` of the
compiled program (Brian2 >= 2.6). Support and query recordings are each
simulated once, as in the torch evaluation. Cost: a read touches every device
of a copy (2 x 1.3e5 at the published size); reading once per run instead of
once per sample is what keeps the standalone evaluation with read noise within
the speed target (``benchmarks/bench_chip_evaluation.py``).

Options (tasks, backend, read time, noise, ...) are one
:class:`~mosaicnet.meta.evaluation_options.EvaluationOptions`, shared with the
torch evaluation; every function here also takes single options as keyword
arguments (``evaluate_on_chip(run, backend="numpy", tasks=20)``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.meta.evaluation_options import (
    DRIFT_READ_TIMES_S,
    EvaluationOptions,
    resolve_options,
)
from mosaicnet.meta.read_time import format_read_time, parse_read_time, parse_read_times
from mosaicnet.meta.readout_range import AUTO
from mosaicnet.network.brian_network import BrianNetwork
from mosaicnet.network.chip_programming import (
    STREAM_WRITE,
    brian_seed,
    calibration_sums,
    compensated_chip,
    program_spec,
    random_stream,
)

__all__ = [
    "ChipSession",
    "chip_as_evaluated",
    "drift_curve",
    "evaluate_on_chip",
    "write_readout",
]

# Runtime backends: synapses per network (all copies). Beyond ~4e6 the runtime
# backends spend more time in memory traffic than batching gains (the Brian2
# network module uses the same bound for its own batching).
_RUNTIME_SYNAPSES_PER_RUN = 4_000_000
# Standalone backends: tasks per program run (each run has a fixed start-up cost).
_STANDALONE_TASKS_PER_RUN = 16


# ---------------------------------------------------------------------------
# Writing updates
# ---------------------------------------------------------------------------


def _writer(array: Any, noise: bool) -> Any:
    """``array`` whose model writes without programming noise when ``noise`` is off.

    The programming-noise switch only matters while writing; reads use the
    drift and read laws, so the written array is handed back with the original
    model (which the Brian2 network checks against the spec's).
    """
    if noise:
        return array
    return dataclasses.replace(array, model=array.model.with_parameters(programming_noise=False))


def write_readout(
    programmed: Any,
    weights: np.ndarray,
    *,
    changed: np.ndarray,
    t_prog_s: float,
    rng: np.random.Generator,
    noise: bool = True,
) -> tuple[Any, int]:
    """Write adapted readout weights into the ``changed`` pairs at ``t_prog_s``.

    Returns the new array and how many written weights exceeded the pair's
    range (``|w| > w_scale``) and saturated.
    """
    clipped = int((np.abs(weights[changed]) > programmed.w_scale).sum())
    written = _writer(programmed, noise).reprogram(
        weights, t_prog_s=t_prog_s, rng=rng, mask=changed, clip=True
    )
    return dataclasses.replace(written, model=programmed.model), clipped


def _chip_options(options: EvaluationOptions) -> EvaluationOptions:
    """``options`` if a chip can follow them, else a :class:`ConfigError` saying why."""
    if options.readout_headroom is None:
        raise ConfigError(
            "readout_headroom=None (an unbounded readout) has no chip equivalent: a "
            "readout pair holds a bounded range; give a number >= 1"
        )
    return options


def chip_as_evaluated(spec: Any, options: EvaluationOptions) -> dict[str, Any]:
    """The run's chip as the evaluation reads it at ``options.read_time_s``, before any update.

    :func:`~mosaicnet.network.chip_programming.program_spec` with the options'
    seed, noise and readout headroom, and with drift compensation the gains
    rescaled at the read time: what :class:`ChipSession` programs into its
    network, and what the protocols' recordings
    (:func:`mosaicnet.protocols_support.recordings.record_test_samples`) run on.
    """
    options = _chip_options(options)
    if options.readout_headroom == AUTO:
        raise ConfigError(
            'readout_headroom="auto" depends on the run: resolve it with '
            "options.for_run(config) before programming the chip"
        )
    chip = program_spec(
        spec, seed=options.seed, noise=options.noise, readout_headroom=options.readout_headroom
    )
    if not options.drift_compensation:
        return chip
    references = calibration_sums(chip, seed=options.seed, noise=options.noise)
    views, _ = compensated_chip(
        chip, references, options.read_time_s, seed=options.seed, noise=options.noise
    )
    return views


# ---------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------


def _batch_plan(
    backend: str, spec: Any, n_query: int, tasks: int, tasks_per_run: int | None
) -> tuple[int, int, int]:
    """``(tasks_per_run, copies, sequential)`` of the chip network.

    Runtime backends vectorise over copies: one copy per query sample (the
    copies of one task share its readout), by default as many tasks as fit
    :data:`_RUNTIME_SYNAPSES_PER_RUN`. Standalone backends: one copy per task
    with its queries run back to back, :data:`_STANDALONE_TASKS_PER_RUN` tasks.
    """
    from mosaicnet.network.brian_backends import RUNTIME_BACKENDS

    runtime = backend in RUNTIME_BACKENDS
    if tasks_per_run is not None:
        fit = tasks_per_run
    elif runtime:
        per_copy = spec.n_in * spec.n_rec + int(spec.rec_mask.sum()) + spec.n_rec * spec.n_out
        fit = max(1, _RUNTIME_SYNAPSES_PER_RUN // max(per_copy * n_query, 1))
    else:
        fit = _STANDALONE_TASKS_PER_RUN
    per_run = min(tasks, fit)
    if runtime:
        return per_run, per_run * n_query, 1
    return per_run, per_run, n_query


class ChipSession:
    """A trained run programmed into a Brian2 chip, ready to be evaluated at read times.

    The network is built (and, standalone, compiled) once in the constructor;
    :meth:`evaluate` runs the chip-in-the-loop meta-test at one read time and
    may be called for any number of read times. Use as a context manager or
    call :meth:`close`. Parameters: see :func:`evaluate_on_chip`.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        options: EvaluationOptions | None = None,
        *,
        data_dir: str | os.PathLike | None = None,
        **changes: Any,
    ) -> None:
        import torch

        from mosaicnet.meta.maml import inner_learning_rates
        from mosaicnet.meta.run_data import data_for_run
        from mosaicnet.meta.run_directory import RunDirectory
        from mosaicnet.meta.run_setup import load_split
        from mosaicnet.network.brian_backends import check_backend
        from mosaicnet.network.torch_clone import TorchClone

        options = _chip_options(resolve_options(options, changes))
        self.options = options
        self.backend = check_backend(options.backend)
        self.run_dir = Path(run_dir)
        run = RunDirectory.open(run_dir)
        config = run.load_config()
        options = self.options = options.for_run(config)
        if options.inner_steps is not None:
            config = config.with_changes(inner_steps=options.inner_steps)
        self.config = config
        self.spec = run.load_spec()
        learned = run.load_checkpoint()["params"] if config.learn_inner_lr else {}
        rate = inner_learning_rates(learned, config)["w_out"]
        # The chip's host computes in float64, Brian2's precision.
        self.inner_lr = float(rate)
        self.clone = TorchClone(self.spec, dtype=torch.float64)
        self.tasks = options.tasks
        self.noise = options.noise
        self.drift_compensation = options.drift_compensation
        self.seed = options.seed
        self.protocol = options.protocol
        self.readout_headroom = options.readout_headroom
        self.progress = options.progress
        # The run's own data unless a folder is given (mosaicnet.meta.run_data).
        self.data_path = data_for_run(
            run.path, data_dir, allow_other=True, progress=options.progress
        )
        self.dataset = load_split(self.data_path, "test")
        self.splits = (
            [("meta-test-seen", self.tasks), ("meta-test-unseen", self.tasks)]
            if options.protocol == "separate"
            else [("meta-test", self.tasks)]
        )

        self.chip = program_spec(
            self.spec, seed=self.seed, noise=self.noise, readout_headroom=self.readout_headroom
        )
        # Calibration reads right after programming (the compensation's reference).
        self.references = calibration_sums(self.chip, seed=self.seed, noise=self.noise)
        n_query = config.n_query_total
        self.tasks_per_run, copies, sequential = _batch_plan(
            self.backend, self.spec, n_query, self.tasks, options.tasks_per_run
        )
        self.copies_per_task = copies // self.tasks_per_run
        if self.backend in ("numpy", "cython"):
            import brian2

            # Runtime read noise comes from Brian2's global generator: seed it.
            brian2.seed(brian_seed(self.seed))
        tic = time.perf_counter()
        self.network = BrianNetwork(
            self.spec,
            config.n_bins,
            backend=self.backend,
            copies=copies,
            sequential=sequential,
            record=("recurrent", "readout"),
            programmed=self._views(options.read_time_s)[0],
            read_noise=self.noise,
            read_every="run",
            t_read_s=options.read_time_s,
            seed=brian_seed(self.seed),
        )
        self.build_seconds = time.perf_counter() - tic

    # ----------------------------------------------------------------- pieces
    def _views(self, t_read_s: float) -> tuple[dict[str, Any], dict[str, float]]:
        """The chip's arrays as the network holds them at ``t_read_s`` (compensated or not)."""
        if not self.drift_compensation:
            return dict(self.chip), dict.fromkeys(self.chip, 1.0)
        return compensated_chip(
            self.chip, self.references, t_read_s, seed=self.seed, noise=self.noise
        )

    def read_at(self, read_time_s: str | float) -> dict[str, float]:
        """Put the chip in its state at a read time (every copy: the programmed readout).

        Returns the compensation factors per pathway (1 without compensation).
        After it, ``self.network.weights_as_read()`` is what the host reads.
        """
        t_read = parse_read_time(read_time_s)
        views, factors = self._views(t_read)
        # Only pathways whose device state changed are rewritten: a standalone
        # program then receives just those (and the read time) as run_args.
        changed = {
            name: array
            for name, array in views.items()
            if name == "w_out" or array is not self.network.programmed.get(name)
        }
        self.network.program(changed, t_read_s=t_read)
        return factors

    def _run(self, x: Any) -> Any:
        return self.network.run(np.asarray(x, dtype=np.float64))

    # --------------------------------------------------------------- evaluate
    def evaluate(self, read_time_s: str | float) -> dict[str, Any]:
        """The chip-in-the-loop meta-test at one read time; the summary dict."""
        import torch
        from tqdm.auto import tqdm

        from mosaicnet.meta.maml import adapt_readout
        from mosaicnet.meta.torch_evaluation import TaskOutcome, meta_test_batches, summarize

        t_read = parse_read_time(read_time_s)
        factors = self.read_at(t_read)
        network = self.network
        # The host reads the chip's readout once: every task starts from this state.
        w_chip = network.weights_as_read()["w_out"]
        w_start = torch.as_tensor(w_chip, dtype=torch.float64)
        readout_base = self.chip["w_out"]
        config, n_support = self.config, self.config.n_support
        outcomes: list[TaskOutcome] = []
        clipped = written = 0
        spike_count, neuron_steps = 0, 0
        started = time.perf_counter()
        total = sum(n for _, n in self.splits)
        label = f"chip {self.backend} @ {format_read_time(t_read)}"
        with tqdm(total=total, disable=not self.progress, desc=label, unit="task") as bar:
            for split_index, (split, n) in enumerate(self.splits):
                batches = meta_test_batches(
                    self.dataset, config, split=split, tasks=n, seed=self.seed,
                    batch_size=self.tasks_per_run,
                )  # fmt: skip
                for batch in batches:
                    n_tasks = batch.n_tasks
                    support = self._run(batch.support_x.flatten(0, 1))
                    spike_count += int(support.recurrent_spikes.sum())
                    neuron_steps += support.recurrent_spikes.size
                    spikes = torch.as_tensor(support.recurrent_spikes, dtype=torch.float64)
                    traces = self.clone.readout_trace(spikes).unflatten(0, (n_tasks, n_support))
                    per_task = []
                    for b in range(n_tasks):
                        adapted = adapt_readout(
                            w_start, traces[b], batch.support_y[b], batch.classes[b], config,
                            inner_lr=self.inner_lr,
                        ).numpy()  # fmt: skip
                        changed = adapted != w_chip
                        rng = random_stream(
                            self.seed, STREAM_WRITE, split_index, int(batch.task_ids[b])
                        )
                        array, n_clipped = write_readout(
                            readout_base, adapted, changed=changed, t_prog_s=t_read, rng=rng,
                            noise=self.noise,
                        )  # fmt: skip
                        clipped += n_clipped
                        written += int(changed.sum())
                        per_task.append(array)
                    # Copies of tasks missing from a last, short batch: any readout will do.
                    per_task += [readout_base] * (self.tasks_per_run - n_tasks)
                    # With compensation too: rewritten pairs are read at their programming
                    # time, not drifted, so their gain stays the programmed scale.
                    network.program_copies(
                        "w_out", [a for a in per_task for _ in range(self.copies_per_task)]
                    )
                    query = self._run(batch.query_x.flatten(0, 1))
                    spike_count += int(query.recurrent_spikes.sum())
                    neuron_steps += query.recurrent_spikes.size
                    logits = torch.as_tensor(query.readout.max(axis=1)).unflatten(0, (n_tasks, -1))
                    for b in range(n_tasks):
                        classes = batch.classes[b]
                        task_logits = logits[b].index_select(-1, classes)
                        outcomes.append(
                            TaskOutcome(
                                task_id=int(batch.task_ids[b]),
                                split=split,
                                classes=classes.tolist(),
                                labels=classes[batch.query_y[b]].tolist(),
                                predicted=classes[task_logits.argmax(dim=-1)].tolist(),
                                predicted_all_units=logits[b].argmax(dim=-1).tolist(),
                                seen=batch.query_seen[b].tolist(),
                            )
                        )
                    bar.update(n_tasks)
        wall = time.perf_counter() - started
        result = summarize(outcomes)
        result.update(
            {
                "simulator": "brian2",
                "backend": self.backend,
                "run": str(self.run_dir),
                "data": str(self.data_path),
                "protocol": self.protocol,
                "n_way": config.n_way,
                "k_shot": config.k_shot,
                "n_query": config.n_query,
                "inner_steps": config.inner_steps,
                "inner_lr": self.inner_lr,
                "seed": self.seed,
                "read_time_s": t_read,
                "read_time": format_read_time(t_read),
                "device_model": self.spec.device_model,
                "noise": self.noise,
                "drift_compensation": self.drift_compensation,
                "compensation_factors": factors,
                "readout_headroom": self.readout_headroom,
                "readout_clipped_fraction": clipped / written if written else 0.0,
                "firing_rate_hz": spike_count / neuron_steps / self.network.dt_s,
                "build_seconds": self.build_seconds,
                "wall_seconds": wall,
                "tasks_per_second": len(outcomes) / wall if wall > 0 else math.nan,
                "predictions": [o.predicted for o in outcomes],
                "task_details": [asdict(o) for o in outcomes],
            }
        )
        return result

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Release the network (and a standalone build directory)."""
        self.network.close()

    def __enter__(self) -> ChipSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def evaluate_on_chip(
    run_dir: str | os.PathLike,
    options: EvaluationOptions | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Chip-in-the-loop few-shot meta-test of a trained run on the Brian2 network.

    Parameters
    ----------
    run_dir
        A training run (:class:`mosaicnet.meta.run_directory.RunDirectory`).
    options
        :class:`~mosaicnet.meta.evaluation_options.EvaluationOptions`, all of
        whose fields apply: ``backend`` (``"numpy"``, ``"cython"``,
        ``"cpp_standalone"``, ``"cuda_standalone"`` (needs a GPU); ``"genn"``
        is refused with the reason), ``read_time_s`` (the time since
        programming at which the chip is used), ``tasks``, ``inner_steps``
        (default: as trained, the learning rate as in
        :func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch`), ``noise``,
        ``drift_compensation`` (module docstring), ``seed`` (of the task
        streams, the torch evaluation's tasks for the same seed, and of every
        device random stream), ``protocol``, ``readout_headroom`` (module
        docstring), ``tasks_per_run`` (default: runtime backends as many as fit
        4e6 synapses, standalone 16) and ``progress``.
    data_dir
        Directory with ``shd_test.h5``; ``None`` uses the run's own data.
    **changes
        Fields of ``options`` to change, e.g. ``backend="numpy"``.

    Returns
    -------
    dict
        The keys of :func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch`
        (``accuracy_seen``, ``accuracy_unseen``, ``ci95_*``, ``*_20way``, ``tasks``,
        ``predictions``, ``task_details``, ...) with ``simulator="brian2"`` and
        the Brian2 ``backend``, plus ``read_time_s``, ``noise``,
        ``drift_compensation``, ``compensation_factors``,
        ``readout_clipped_fraction``, ``firing_rate_hz`` (recurrent layer,
        support and query runs), ``build_seconds``, ``wall_seconds`` and
        ``tasks_per_second``.
    """
    options = resolve_options(options, changes)
    with ChipSession(run_dir, options, data_dir=data_dir) as session:
        return session.evaluate(options.read_time_s)


#: Per-time series that :func:`drift_curve` collects from each summary.
CURVE_KEYS: tuple[str, ...] = tuple(
    f"{metric}_{kind}{suffix}"
    for metric in ("accuracy", "ci95")
    for kind in ("seen", "unseen")
    for suffix in ("", "_20way")
)


def drift_curve(
    run_dir: str | os.PathLike,
    options: EvaluationOptions | None = None,
    *,
    times_s: Iterable[str | float] | str | float = DRIFT_READ_TIMES_S,
    data_dir: str | os.PathLike | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Chip-in-the-loop accuracy against read time: ONE programmed chip read at each time.

    The network is built once; each read time reuses it (new read time and
    device state, no recompilation), so the points differ only by drift (and
    by the read noise drawn). ``times_s``: the read times, in the order given
    (numbers of seconds or text such as ``"30d"``, a list or one
    comma-separated string); ``options.read_time_s`` is not used. Other
    options as :func:`evaluate_on_chip`.

    Returns
    -------
    dict
        ``times_s`` and, per time, the lists :data:`CURVE_KEYS` (``accuracy_seen``,
        ``accuracy_unseen``, ``ci95_seen``, ...), ``summaries`` (the full
        :func:`evaluate_on_chip` dict per time) and the shared settings.
    """
    times = parse_read_times(times_s if not isinstance(times_s, int | float) else [times_s])
    options = resolve_options(options, changes).with_changes(read_time_s=times[0])
    summaries = []
    with ChipSession(run_dir, options, data_dir=data_dir) as session:
        for t_read in times:
            summaries.append(session.evaluate(t_read))
    first = summaries[0]
    curve: dict[str, Any] = {
        "times_s": list(times),
        "labels": [format_read_time(t) for t in times],
        **{key: [s[key] for s in summaries] for key in CURVE_KEYS},
    }
    shared = ("simulator", "backend", "run", "protocol", "n_way", "k_shot", "n_query",
              "inner_steps", "inner_lr", "seed", "device_model", "noise", "drift_compensation",
              "readout_headroom", "build_seconds")  # fmt: skip
    curve.update({key: first[key] for key in shared})
    curve["tasks"] = first["tasks"]
    curve["firing_rate_hz"] = [s["firing_rate_hz"] for s in summaries]
    curve["compensation_factors"] = [s["compensation_factors"] for s in summaries]
    curve["summaries"] = summaries
    return curve
