"""The output directory of a protocol: never overwrite results silently, resume the rest.

A protocol is named by its script's file name (:func:`protocol_name`): a copy of
``drift.py`` saved as ``drift_pcm.py`` writes to ``results/drift_pcm``
(:func:`default_output_dir`) and records ``drift_pcm`` in its manifest, so it
never resumes, or refuses to run because of, the original's results.

A protocol writes only these names in its ``--out`` directory::

    protocol.json   which protocol, with which parameters and data (written first)
    results.json    every number of the run (written last: its presence means done)
    results.md      the Markdown tables
    figures/        PNG figures
    runs/           training runs (mosaicnet.meta.run_directory run directories)

Rules (:func:`prepare_output_dir`):

- ``results.json`` present: refuse unless ``overwrite`` (results are a user's
  work and are never replaced silently);
- ``protocol.json`` present without ``results.json`` (an interrupted run): resume
  when protocol, parameters and data are the same (finished training runs are
  reused, unfinished ones continue from their checkpoint); refuse otherwise;
- ``overwrite``: delete the names above (only those), then start afresh.

Other files in the directory are left alone, so a sweep's trial directory (which
holds the trial's private ``tmp/`` and ``build/``) works as an output directory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mosaicnet.errors import RunDirectoryError
from mosaicnet.meta.config import write_text_atomic
from mosaicnet.protocols_support.reporting import RESULTS_JSON, RESULTS_MD, json_ready

MANIFEST = "protocol.json"
FIGURES = "figures"
RUNS = "runs"
OWNED = (MANIFEST, RESULTS_JSON, RESULTS_MD, FIGURES, RUNS)


def protocol_name(script: str | Path) -> str:
    """A protocol's name: its script's file name without ``.py`` (pass ``__file__``)."""
    return Path(script).stem


def default_output_dir(script: str | Path) -> Path:
    """``results/<protocol name>``, relative to the working directory."""
    return Path("results") / protocol_name(script)


def prepare_output_dir(
    out_dir: str | Path,
    *,
    protocol: str,
    parameters: dict[str, Any],
    data: str | Path | None,
    overwrite: bool = False,
) -> Path:
    """Create or check ``out_dir`` for a run of ``protocol``; return it as a Path.

    ``parameters`` (JSON values) and ``data`` (as the user gave it, ``None`` for
    the synthetic default) are recorded in ``protocol.json``; an unfinished run
    resumes only with the same protocol, parameters and data.

    Raises
    ------
    RunDirectoryError
        ``out_dir`` is a file; holds results and ``overwrite`` is false; holds an
        unfinished run with other parameters or data; or holds some of the
        protocol's names without a ``protocol.json`` (not a protocol output).
    """
    from mosaicnet.writable import check_writable_dir

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file; choose a directory")
    check_writable_dir(out, what="protocol output folder")
    manifest = {
        "protocol": protocol,
        "parameters": json_ready(parameters),
        "data": None if data is None else str(data),
    }
    if out.is_dir():
        present = [name for name in OWNED if (out / name).exists()]
        if present and overwrite:
            if not (out / MANIFEST).is_file():
                raise RunDirectoryError(
                    f"--out {out} holds {present} but no {MANIFEST}: it is not the output "
                    "of a mosaicnet protocol, so --overwrite will not delete anything there; "
                    "choose another directory"
                )
            for name in present:
                path = out / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        elif (out / RESULTS_JSON).exists():
            raise RunDirectoryError(
                f"--out {out} already holds results ({RESULTS_JSON}); pass --overwrite to "
                "replace them, or choose another --out"
            )
        elif (out / MANIFEST).is_file():
            stored = _read_manifest(out / MANIFEST)
            if stored != json.loads(json.dumps(manifest)):
                raise RunDirectoryError(
                    f"--out {out} holds an unfinished run with other settings "
                    f"({_difference(stored, manifest)}); pass the same settings to resume "
                    "it, --overwrite to start again, or choose another --out"
                )
        elif present:
            raise RunDirectoryError(
                f"--out {out} holds {present} but no {MANIFEST}: it is not the output of a "
                "mosaicnet protocol; choose another directory"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / FIGURES).mkdir(exist_ok=True)
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return out


def start_run(
    script: str | Path,
    parameters: Mapping[str, Any],
    quick_changes: Mapping[str, Any],
    smoke_changes: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None,
    out_dir: str | Path,
    quick: bool,
    smoke: bool,
    data: str | Path | None,
    overwrite: bool,
    progress: bool,
    check: Callable[[SimpleNamespace], Any] | None = None,
) -> tuple[SimpleNamespace, list[dict[str, Any]], str, Path, Path]:
    """The start of a protocol's ``run()``: its parameters, its data, then its output folder.

    Applies the setting (``smoke_changes`` for ``--smoke``, ``quick_changes`` for
    ``--quick``) and ``params`` with
    :func:`~mosaicnet.protocols_support.parameters.resolve_parameters` (which
    prints every replacement the setting makes), checks the parameters (the shared
    checks, then ``check(p)``) and finds the data, and only then prepares
    ``out_dir`` (:func:`prepare_output_dir`, the script's file name as protocol):
    a typo must not cost earlier results (``overwrite``) or block the corrected rerun.

    Returns
    -------
    p, replaced, setting, data_dir, out
        The resolved parameters, what the setting replaced (for
        ``replaced_by_setting``), ``"full"``, ``"quick"`` or ``"smoke"``, the data
        directory and the output folder.
    """
    from mosaicnet.meta.run_setup import resolve_data_dir
    from mosaicnet.protocols_support.parameters import (
        check_parameters,
        json_parameters,
        resolve_parameters,
    )

    setting, changes = (
        ("smoke", smoke_changes) if smoke else ("quick", quick_changes) if quick else ("full", {})
    )
    p, replaced = resolve_parameters(parameters, setting=setting, changes=changes, params=params)
    check_parameters(p)
    if check is not None:
        check(p)
    data_dir = resolve_data_dir(data, progress=progress)
    out = prepare_output_dir(
        out_dir, protocol=protocol_name(script), overwrite=overwrite, data=data,
        parameters={**json_parameters(p), "setting": setting},
    )  # fmt: skip
    return p, replaced, setting, data_dir, out


def results_head(
    script: str | Path,
    question: str,
    setting: str,
    p: SimpleNamespace,
    replaced: list[dict[str, Any]],
    data_dir: Path,
) -> dict[str, Any]:
    """The keys every ``results.json`` starts with, from what :func:`start_run` returned.

    ``protocol``, ``question``, ``setting``, ``parameters`` (as JSON values),
    ``replaced_by_setting`` and ``data``.
    """
    from mosaicnet.protocols_support.parameters import json_parameters

    return {
        "protocol": protocol_name(script), "question": question, "setting": setting,
        "parameters": json_parameters(p), "replaced_by_setting": replaced, "data": str(data_dir),
    }  # fmt: skip


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RunDirectoryError(
            f"{path} is damaged ({error}); pass --overwrite to start again"
        ) from error


def _difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    wanted = json.loads(json.dumps(wanted))
    notes = []
    for key in ("protocol", "data"):
        if stored.get(key) != wanted.get(key):
            notes.append(f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}")
    old, new = stored.get("parameters", {}), wanted["parameters"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            notes.append(f"{name}: {old.get(name)!r} -> {new.get(name)!r}")
    return ", ".join(notes) or "unknown difference"
