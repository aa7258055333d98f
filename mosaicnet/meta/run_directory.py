"""The run directory of a meta-training run: its files and how they are read and written.

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

:mod:`mosaicnet.meta.training` writes runs; evaluation, simulation and the
protocols read them through :class:`RunDirectory`. Checkpoints are written
atomically (temporary file + ``os.replace``); torch is imported only to write
or read one, so reading a run's configuration or network does not import it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mosaicnet.errors import DataFormatError, RunDirectoryError
from mosaicnet.meta.config import TrainConfig, load_config, save_config, write_text_atomic
from mosaicnet.meta.run_data import DATA_RECORD
from mosaicnet.meta.run_lock import LOCK_FILE

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

#: Version of the checkpoint layout; :meth:`RunDirectory.load_checkpoint` refuses others.
CHECKPOINT_FORMAT = 1


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
                    f"run directory {run.path} already exists and is not empty; pass "
                    "resume=True (--resume) to continue that run, overwrite=True (--overwrite) "
                    "to start it again, or choose another directory"
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
                "resume it with resume=True (`mosaicnet train --resume`)"
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
        import torch

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
        import torch

        path = self.file(CHECKPOINT_FILE)
        if not path.is_file():
            raise RunDirectoryError(
                f"{path} does not exist: the run has no checkpoint to resume from; start it "
                "again with overwrite=True (--overwrite)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for damaged archives
            raise RunDirectoryError(
                f"checkpoint {path} is corrupt or truncated ({type(error).__name__}: "
                f"{error}); restore a copy, or start the run again with "
                "overwrite=True (--overwrite)"
            ) from error
        required = {"format", "iteration", "params", "optimizer", "rng", "next_task_id"}
        if not isinstance(state, dict) or not required <= set(state):
            raise RunDirectoryError(
                f"checkpoint {path} is not a mosaicnet training checkpoint (missing "
                f"{sorted(required - set(state) if isinstance(state, dict) else required)}); "
                "start the run again with overwrite=True (--overwrite)"
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
