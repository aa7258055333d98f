"""Which data a run was trained on, and the data later commands use for it.

``train`` writes ``data.json`` into the run directory: the data folder and a
content fingerprint (size and BLAKE2b digest) of ``shd_train.h5`` and
``shd_test.h5``. :func:`data_for_run` is how everything after training finds
its data: without a folder it takes the run's own (and checks that its files
are still the ones trained on); a folder with other files is refused unless
the caller allows it explicitly (``allow_other``; ``--other-data`` on the command
line), and
evaluations record the folder they used. Runs written before this record
existed keep the old default (the synthetic data).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mosaicnet.errors import ConfigError, DataFormatError, RunDirectoryError

#: The record in a run directory.
DATA_RECORD = "data.json"
#: The files a data folder is identified by.
DATA_FILES = ("shd_train.h5", "shd_test.h5")


def data_fingerprint(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{file name: {"bytes", "blake2b"}}`` of the data files present in ``directory``."""
    files = {}
    for name in DATA_FILES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        files[name] = {"bytes": path.stat().st_size, "blake2b": digest.hexdigest()}
    return files


def record_training_data(run_path: str | os.PathLike, data_path: str | os.PathLike) -> None:
    """Write the run's ``data.json`` (the folder, absolute, and its fingerprint)."""
    from mosaicnet.meta.config import write_text_atomic

    record = {"directory": str(Path(data_path).resolve()), "files": data_fingerprint(data_path)}
    write_text_atomic(Path(run_path) / DATA_RECORD, json.dumps(record, indent=2) + "\n")


def recorded_data(run_path: str | os.PathLike) -> dict[str, Any] | None:
    """The run's data record, or ``None`` for a run trained before records existed."""
    path = Path(run_path) / DATA_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["directory"], record["files"]  # noqa: B018 (both keys must be there)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunDirectoryError(
            f"{path} is not a data record ({error}); it is written by `mosaicnet train`"
        ) from None
    return record


def same_data(record: dict[str, Any], directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds the files of ``record`` (by content)."""
    return data_fingerprint(directory) == record["files"]


def data_for_run(
    run_path: str | os.PathLike,
    data_dir: str | os.PathLike | None,
    *,
    allow_other: bool = False,
    progress: bool = False,
) -> Path:
    """The data folder to use with a trained run (see the module docstring).

    Raises
    ------
    RunDirectoryError
        No folder given and the run's own folder is gone.
    DataFormatError
        No folder given and the run's folder no longer holds the files it was
        trained on.
    ConfigError
        A folder with other files than the run's, without ``allow_other``.
    """
    from mosaicnet.meta.run_setup import resolve_data_dir

    record = recorded_data(run_path)
    if data_dir is None:
        if record is None:
            return resolve_data_dir(None, progress=progress)
        path = Path(record["directory"])
        if not path.is_dir():
            raise RunDirectoryError(
                f"run {run_path} was trained on {path}, which no longer exists; pass data_dir "
                "(--data) with the folder that holds that data now"
            )
        if not same_data(record, path):
            raise DataFormatError(
                f"the files in {path} changed since run {run_path} was trained on them; pass "
                f"data_dir={str(path)!r} and allow_other=True (--data {path} --other-data) "
                "to use them anyway"
            )
        return path
    path = resolve_data_dir(data_dir, progress=progress)
    if record is not None and not allow_other and not same_data(record, path):
        raise ConfigError(
            f"run {run_path} was trained on {record['directory']}, and {path} holds other "
            f"files; omit data_dir (--data) to use the run's own data, or pass "
            f"allow_other=True (--other-data) to use {path} anyway"
        )
    return path
