"""Few-shot meta-test of a run, on the Brian2 network or the torch clone, cached per run.

Brian2 ("chip in the loop", :func:`mosaicnet.meta.chip_evaluation.evaluate_on_chip`):
the trained weights are programmed as memristor pairs, support and query sets
run in Brian2, the readout update is computed from the recorded traces and
written back as conductance updates. Torch (:func:`mosaicnet.meta.torch_evaluation.evaluate_run`):
the clone with the trained (ideal) weights, the reference the chip is compared with.

Both return a summary with ``accuracy_seen``, ``ci95_seen``, ``accuracy_unseen``,
``ci95_unseen``, their 20-unit variants (``*_20way``) and task counts; the
per-task details are dropped from what the protocols keep (they stay
reproducible from the seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mosaicnet.protocols_support.runs import cached_evaluation

#: Summary keys kept in results.json.
SUMMARY_KEYS = (
    "accuracy_seen", "ci95_seen", "accuracy_unseen", "ci95_unseen",
    "accuracy_seen_20way", "ci95_seen_20way", "accuracy_unseen_20way", "ci95_unseen_20way",
    "tasks_seen", "tasks_unseen", "inner_steps", "backend",
)  # fmt: skip


def summary_only(result: dict[str, Any]) -> dict[str, Any]:
    """The scalar summary of an evaluation result (see :data:`SUMMARY_KEYS`)."""
    return {k: result[k] for k in SUMMARY_KEYS if k in result}


def evaluate_torch(
    run_dir: Path,
    *,
    data: Path,
    tasks: int,
    inner_steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Meta-test ``run_dir`` on the torch clone (cached); the summary dict."""
    from mosaicnet.meta.torch_evaluation import evaluate_run

    settings = {"backend": "torch", "tasks": tasks, "inner_steps": inner_steps, "seed": seed,
                "data": str(data)}  # fmt: skip

    def compute() -> dict[str, Any]:
        result = evaluate_run(
            run_dir, data_dir=data, tasks=tasks, inner_steps=inner_steps, seed=seed,
            progress=progress,
        )  # fmt: skip
        return summary_only(result)

    name = f"torch_steps{inner_steps or 'trained'}"
    return cached_evaluation(run_dir, name, settings, compute)


def evaluate_brian(
    run_dir: Path,
    *,
    data: Path,
    tasks: int,
    backend: str = "cython",
    read_time_s: float = 1.0,
    inner_steps: int | None = None,
    noise: bool = True,
    drift_compensation: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Meta-test ``run_dir`` on the Brian2 network, chip in the loop (cached); the summary."""
    from mosaicnet.meta.chip_evaluation import evaluate_on_chip

    settings = {
        "backend": f"brian2-{backend}", "tasks": tasks, "read_time_s": read_time_s,
        "inner_steps": inner_steps, "noise": noise, "drift_compensation": drift_compensation,
        "seed": seed, "data": str(data),
    }  # fmt: skip

    def compute() -> dict[str, Any]:
        result = evaluate_on_chip(
            run_dir, data_dir=data, brian_device=backend, read_time_s=read_time_s,
            tasks=tasks, inner_steps=inner_steps, noise=noise,
            drift_compensation=drift_compensation, seed=seed, progress=progress,
        )  # fmt: skip
        summary = summary_only(result)
        summary["backend"] = f"brian2-{backend}"
        summary["read_time_s"] = read_time_s
        return summary

    name = (
        f"brian_{backend}_t{read_time_s:g}_steps{inner_steps or 'trained'}"
        f"{'' if noise else '_nonoise'}{'_comp' if drift_compensation else ''}"
    )
    return cached_evaluation(run_dir, name, settings, compute)
