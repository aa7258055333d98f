"""Few-shot meta-test of a run, on the Brian2 network or the torch clone, cached per run.

Brian2 ("chip in the loop", :func:`mosaicnet.meta.chip_evaluation.evaluate_on_chip`):
the trained weights are programmed as memristor pairs, support and query sets
run in Brian2, the readout update is computed from the recorded traces and
written back as conductance updates. Torch
(:func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch`): the clone with the
trained (ideal) weights, the reference the chip is compared with.

The functions here take the protocols' keyword arguments and build one
:class:`~mosaicnet.meta.evaluation_options.EvaluationOptions` from them, so the
defaults are those of the library.

Both return a summary with ``accuracy_seen``, ``ci95_seen``, ``accuracy_unseen``,
``ci95_unseen``, their 20-unit variants (``*_20way``) and task counts; the
per-task details are dropped from what the protocols keep (they stay
reproducible from the seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mosaicnet.meta.evaluation_options import EvaluationOptions
from mosaicnet.protocols_support.runs import cached_evaluation

_DEFAULTS = EvaluationOptions()

#: Summary keys kept in results.json.
SUMMARY_KEYS = (
    "accuracy_seen", "ci95_seen", "accuracy_unseen", "ci95_unseen",
    "accuracy_seen_20way", "ci95_seen_20way", "accuracy_unseen_20way", "ci95_unseen_20way",
    "tasks_seen", "tasks_unseen", "inner_steps", "inner_lr", "backend", "read_time_s",
    "readout_clipped_fraction", "firing_rate_hz", "compensation_factors", "wall_seconds",
)  # fmt: skip


def summary_only(result: dict[str, Any]) -> dict[str, Any]:
    """The scalar summary of an evaluation result (see :data:`SUMMARY_KEYS`)."""
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def _test_steps(run_dir: Path, inner_steps: int | None) -> int | None:
    """The inner steps an evaluation of ``run_dir`` takes: given, else the run's
    ``test_inner_steps``; None: as trained. Part of every cache key, so that a run
    resumed with other test steps is not answered from an older evaluation."""
    if inner_steps is not None:
        return inner_steps
    from mosaicnet.meta.run_directory import RunDirectory

    return RunDirectory.open(run_dir).load_config().test_inner_steps


def evaluate_torch(
    run_dir: Path,
    *,
    data: Path,
    tasks: int,
    inner_steps: int | None = None,
    seed: int = 0,
    protocol: str = _DEFAULTS.protocol,
    progress: bool = True,
) -> dict[str, Any]:
    """Meta-test ``run_dir`` on the torch clone (cached); the summary dict.

    ``protocol``: ``"separate"`` (seen-class and held-out-class tasks) or
    ``"mixed"`` (tasks over all classes), :data:`~mosaicnet.meta.evaluation_options.PROTOCOLS`.
    """
    from mosaicnet.meta.torch_evaluation import evaluate_on_torch

    inner_steps = _test_steps(run_dir, inner_steps)
    options = EvaluationOptions(
        tasks=tasks, inner_steps=inner_steps, seed=seed, protocol=protocol, progress=progress
    )
    settings = {"backend": "torch", "tasks": tasks, "inner_steps": inner_steps, "seed": seed,
                "data": str(data)}  # fmt: skip
    if protocol != _DEFAULTS.protocol:  # the default's caches keep their settings and name
        settings["protocol"] = protocol

    def compute() -> dict[str, Any]:
        return summary_only(evaluate_on_torch(run_dir, options, data_dir=data))

    name = f"torch_steps{inner_steps or 'trained'}" + (
        "" if protocol == _DEFAULTS.protocol else f"_{protocol}"
    )
    return cached_evaluation(run_dir, name, settings, compute)


def evaluate_brian(
    run_dir: Path,
    *,
    data: Path,
    tasks: int,
    backend: str = _DEFAULTS.backend,
    read_time_s: float = _DEFAULTS.read_time_s,
    inner_steps: int | None = None,
    noise: bool = _DEFAULTS.noise,
    drift_compensation: bool = _DEFAULTS.drift_compensation,
    seed: int = _DEFAULTS.seed,
    progress: bool = True,
) -> dict[str, Any]:
    """Meta-test ``run_dir`` on the Brian2 network, chip in the loop (cached); the summary."""
    from mosaicnet.meta.chip_evaluation import evaluate_on_chip

    inner_steps = _test_steps(run_dir, inner_steps)
    options = EvaluationOptions(
        tasks=tasks, backend=backend, read_time_s=read_time_s, inner_steps=inner_steps,
        noise=noise, drift_compensation=drift_compensation, seed=seed, progress=progress,
    )  # fmt: skip
    backend, read_time_s = options.backend, options.read_time_s

    settings = {
        "backend": f"brian2-{backend}", "tasks": tasks, "read_time_s": read_time_s,
        "inner_steps": inner_steps, "noise": noise, "drift_compensation": drift_compensation,
        "seed": seed, "data": str(data),
    }  # fmt: skip

    def compute() -> dict[str, Any]:
        summary = summary_only(evaluate_on_chip(run_dir, options, data_dir=data))
        summary["backend"] = f"brian2-{backend}"
        summary["read_time_s"] = read_time_s
        return summary

    name = (
        f"brian_{backend}_t{read_time_s:g}_steps{inner_steps or 'trained'}"
        f"{'' if noise else '_nonoise'}{'_comp' if drift_compensation else ''}"
    )
    return cached_evaluation(run_dir, name, settings, compute)


def drift_curve_brian(
    run_dir: Path,
    *,
    data: Path,
    times_s: list[float],
    tasks: int,
    backend: str = _DEFAULTS.backend,
    drift_compensation: bool = _DEFAULTS.drift_compensation,
    seed: int = _DEFAULTS.seed,
    progress: bool = True,
) -> dict[str, Any]:
    """Chip-in-the-loop accuracy of ONE programmed chip read at each of ``times_s`` (cached).

    :func:`mosaicnet.meta.chip_evaluation.drift_curve`; returns ``times_s`` and one
    summary per time (``summaries``, see :data:`SUMMARY_KEYS`).
    """
    from mosaicnet.meta.chip_evaluation import drift_curve

    inner_steps = _test_steps(run_dir, None)
    options = EvaluationOptions(
        tasks=tasks, backend=backend, drift_compensation=drift_compensation, seed=seed,
        inner_steps=inner_steps, progress=progress,
    )  # fmt: skip
    backend = options.backend
    settings = {
        "backend": f"brian2-{backend}", "tasks": tasks, "times_s": list(times_s),
        "drift_compensation": drift_compensation, "seed": seed, "data": str(data),
        "inner_steps": inner_steps,
    }  # fmt: skip

    def compute() -> dict[str, Any]:
        curve = drift_curve(run_dir, options, times_s=times_s, data_dir=data)
        return {
            "times_s": [float(t) for t in curve["times_s"]],
            "summaries": [summary_only(s) for s in curve["summaries"]],
        }

    name = (
        f"brian_{backend}_drift{'_comp' if drift_compensation else ''}"
        f"{'' if inner_steps is None else f'_steps{inner_steps}'}"
    )
    return cached_evaluation(run_dir, name, settings, compute)


def evaluate(
    run_dir: Path, *, on: str, data: Path, tasks: int, inner_steps: int | None = None,
    backend: str = _DEFAULTS.backend, read_time_s: float = _DEFAULTS.read_time_s,
    seed: int = _DEFAULTS.seed, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Meta-test on ``on="torch"`` (the clone) or ``on="brian2"`` (chip in the loop)."""
    if on == "torch":
        return evaluate_torch(
            run_dir, data=data, tasks=tasks, inner_steps=inner_steps, seed=seed,
            progress=progress,
        )  # fmt: skip
    if on == "brian2":
        return evaluate_brian(
            run_dir, data=data, tasks=tasks, backend=backend, read_time_s=read_time_s,
            inner_steps=inner_steps, seed=seed, progress=progress,
        )  # fmt: skip
    from mosaicnet.errors import ConfigError

    raise ConfigError(f"EVALUATE_ON must be 'torch' or 'brian2', got {on!r}")
