"""A sweep's files: the trials table, a JSON summary, importances and plots.

Written into the sweep's output directory after every run (and by
``mosaicnet sweep FILE --report-only``)::

    trials.csv        one row per trial: state, objective, parameters, status,
                      attempt, retry_of, error, worker host/pid/seconds, results
    summary.json      counts, best trial, importances
    importance.json   fANOVA importances (or why they could not be computed)
    plots/*.png       Optuna's plots (history, importances, slice, contour, ...)

The study itself stays in the Optuna storage; these files are views of it.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

from mosaicnet.sweeps.importance import parameter_importances, write_plots

_BOOKKEEPING = ("status", "attempt", "retry_of", "error", "final")
_WORKER = ("seconds", "host", "pid")


def write_trials_csv(study, path: Path) -> Path:
    """One row per trial, parameters and results as columns (no pandas needed).

    Results (``user_attrs["results"]``) become columns ``result.<key>``; a
    completed trial without a ``status`` attribute gets ``complete`` and one
    without ``attempt`` is a first attempt.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    params = sorted({k for t in trials for k in t.params})
    results = sorted({k for t in trials for k in t.user_attrs.get("results") or {}})
    header = ["number", "state", "value", *params, *_BOOKKEEPING, *_WORKER]
    header += [f"result.{k}" for k in results]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t in trials:
            attrs = dict(t.user_attrs)
            if t.state == TrialState.COMPLETE:
                attrs.setdefault("status", "complete")
            attrs.setdefault("attempt", 1)
            worker = attrs.get("worker") or {}
            row: list[Any] = [t.number, t.state.name, t.value]
            row += [t.params.get(k, "") for k in params]
            row += [attrs.get(k, "") for k in _BOOKKEEPING]
            row += [worker.get(k, "") for k in _WORKER]
            row += [(attrs.get("results") or {}).get(k, "") for k in results]
            writer.writerow(["" if v is None else v for v in row])
    return path


def study_summary(study) -> dict[str, Any]:
    """Counts of trials by state and status, and the best trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by_status = Counter(
        t.user_attrs.get(
            "status", "complete" if t.state == TrialState.COMPLETE else t.state.name.lower()
        )
        for t in trials
    )
    summary: dict[str, Any] = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "trials": len(trials),
        "by_state": dict(Counter(t.state.name for t in trials)),
        "by_status": dict(by_status),
        "best": None,
    }
    if any(t.state == TrialState.COMPLETE for t in trials):
        best = study.best_trial
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params}
    return summary


def write_report(study, out_dir: Path, *, objective: str = "objective") -> dict[str, Any]:
    """Write the files of the module docstring; return what was written and the importances."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    importances, how = parameter_importances(study)
    importance_record = {"objective": objective, "method": how, "importances": importances}
    (out_dir / "importance.json").write_text(
        json.dumps(importance_record, indent=2), encoding="utf-8"
    )
    summary = study_summary(study)
    summary["objective"] = objective
    summary["importances"] = importances
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    files = {
        "trials": str(write_trials_csv(study, out_dir / "trials.csv")),
        "summary": str(out_dir / "summary.json"),
        "importance": str(out_dir / "importance.json"),
    }
    plots: dict[str, str] = {}
    if summary["best"] is not None:
        plots = write_plots(
            study, out_dir / "plots", with_importance=importances is not None, objective=objective
        )
    return {"files": files, "plots": plots, "importances": importances, "importance_note": how}
