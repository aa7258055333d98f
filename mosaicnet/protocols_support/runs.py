"""Training runs inside a protocol's output directory: train, reuse or resume; cached evaluations.

A protocol trains each of its networks into ``<out>/runs/<name>`` with
:func:`mosaicnet.meta.training.train`. Run again on the same output directory
after an interruption (see :mod:`mosaicnet.protocols_support.output`), a finished
run is reused as is and an unfinished one continues from its last checkpoint
(bitwise identical to an uninterrupted run, a property of the training module).

Evaluations are slow on the Brian2 network, so their results are cached next to
the run (``evaluation_<name>.json``) together with the settings that produced
them, and reused only when those settings are identical.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mosaicnet.errors import RunDirectoryError
from mosaicnet.meta.config import TrainConfig, write_text_atomic
from mosaicnet.protocols_support.reporting import json_ready


def train_or_resume(
    config: TrainConfig,
    run_dir: Path,
    *,
    data: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Make ``run_dir`` hold a finished training run of ``config``; return ``run_dir``.

    - no run there: train one (leftovers of a run killed before it wrote its
      configuration are replaced);
    - a finished run of the same configuration: reuse it, no training;
    - an unfinished run of the same configuration: resume it.

    Raises
    ------
    RunDirectoryError
        ``run_dir`` holds a run of another configuration.
    """
    from mosaicnet.meta.run_directory import CONFIG_FILE, RunDirectory
    from mosaicnet.meta.training import train

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        train(config, run_dir, data_dir=data, overwrite=True, progress=progress)
        return run_dir
    run = RunDirectory.open(run_dir)
    stored = run.load_config()
    if stored.to_dict() != config.to_dict():
        differing = sorted(k for k, v in stored.to_dict().items() if config.to_dict()[k] != v)
        raise RunDirectoryError(
            f"{run_dir} holds a run with other settings ({', '.join(differing)}); pass "
            "--overwrite to train it again, or choose another --out"
        )
    if not run.has_checkpoint():
        train(config, run_dir, data_dir=data, overwrite=True, progress=progress)
    elif int(run.load_checkpoint()["iteration"]) < config.iterations:
        train(config, run_dir, data_dir=data, resume=True, progress=progress)
    return run_dir


def cached_evaluation(
    run_dir: Path,
    name: str,
    settings: dict[str, Any],
    compute: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The result of ``compute()`` for ``settings``, cached in ``run_dir/evaluation_<name>.json``.

    The cache is reused only if the stored settings equal ``settings`` and the
    run's weights are unchanged since (the file is newer than ``spec.npz``).
    """
    path = Path(run_dir) / f"evaluation_{name}.json"
    wanted = json.loads(json.dumps(json_ready(settings)))
    spec = Path(run_dir) / "spec.npz"
    if path.is_file() and (not spec.exists() or path.stat().st_mtime >= spec.stat().st_mtime):
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = {}
        if stored.get("settings") == wanted and "result" in stored:
            return stored["result"]
    result = compute()
    record = {"settings": wanted, "result": json_ready(result)}
    write_text_atomic(path, json.dumps(record) + "\n")
    return record["result"]


def continue_training(
    source_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    *,
    data: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Re-train a finished run under a changed configuration, into a new run directory.

    ``run_dir`` starts as a copy of ``source_dir`` (weights, Adam state, task
    position) with ``config`` as its configuration, and training resumes to
    ``config.iterations`` (which counts the source's steps too). Used to ask
    whether re-training a network, e.g. with more inner steps, changes what it
    can do. A finished re-training with the same configuration is reused.

    Raises
    ------
    RunDirectoryError
        The source has not finished, or ``config.iterations`` does not exceed its
        steps.
    """
    import shutil

    from mosaicnet.meta.run_directory import CONFIG_FILE, RUN_FILES, RunDirectory
    from mosaicnet.meta.training import train

    source = RunDirectory.open(source_dir)
    done = int(source.load_checkpoint()["iteration"])
    if done < source.load_config().iterations:
        raise RunDirectoryError(f"{source_dir} has not finished training; finish it first")
    if config.iterations <= done:
        raise RunDirectoryError(
            f"re-training from {source_dir} ({done} steps) needs more iterations than that, "
            f"got {config.iterations}"
        )
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).is_file():
        return train_or_resume(config, run_dir, data=data, progress=progress)
    staging = run_dir.with_name(run_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in RUN_FILES:
        if source.file(name).exists():
            shutil.copy2(source.file(name), staging / name)
    RunDirectory(staging).save_config(config)
    shutil.rmtree(run_dir, ignore_errors=True)
    staging.rename(run_dir)  # the copy appears whole or not at all
    train(config, run_dir, data_dir=data, resume=True, progress=progress)
    return run_dir
