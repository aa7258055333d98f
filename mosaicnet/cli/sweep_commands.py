"""``mosaicnet sweep``: run or resume a hyperparameter / seed sweep (Dask + Optuna).

See :mod:`mosaicnet.sweeps.sweep_file` for the sweep file format and
:mod:`mosaicnet.sweeps.runner` for clusters (LocalCluster, ``--scheduler``,
SLURM through dask-jobqueue), storage and fault tolerance.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import textwrap

HELP_ORDER = 60

_EXAMPLE = """\
example sweep file (TOML):

  [study]
  objective = "accuracy_unseen"
  n_trials = 16
  [target]
  kind = "train+evaluate"
  [params]
  iterations = 100
  [space]
  inner_lr = { low = 0.01, high = 10.0, log = true }
  outer_lr = { low = 1e-4, high = 1e-2, log = true }

Re-running the same command resumes the study. Inspect it with Optuna's tools:
  optuna trials --storage sqlite:///OUT/study.db --study-name NAME
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command."""
    parser = subparsers.add_parser(
        "sweep",
        help="run or resume a parameter sweep on Dask workers, results in an Optuna study",
        # Pre-wrapped: the raw formatter (which keeps the epilog's layout) does not wrap.
        description=textwrap.fill(
            "Run the trials of SWEEP_FILE (a protocol, train+evaluate, or a target "
            "registered with register_target) over a grid or an Optuna sampler. Trials run on a "
            "Dask LocalCluster of worker processes, or on an existing cluster given by "
            "--scheduler (on SLURM, start one with dask-jobqueue). Every finished trial is "
            "stored at once in an Optuna storage (SQLite file in the output directory by "
            "default, or an RDB URL); running the command again resumes the study. A trial "
            "whose worker dies is marked failed and retried. Afterwards fANOVA importances, "
            "Optuna's plots and trials.csv are written to the output directory.",
            width=79,
        ),
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_file", metavar="SWEEP_FILE", help="sweep file (.toml or .json)")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of an existing Dask scheduler (e.g. tcp://host:8786); "
        "default: start a LocalCluster",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="worker processes of the LocalCluster (default 2; ignored with --scheduler)",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage: RDB URL (postgresql://..., sqlite:///...) or SQLite file path; "
        "default: the sweep file's, else OUT/study.db",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="output directory (default: the sweep file's out_dir)"
    )
    parser.add_argument(
        "--n-trials", type=int, metavar="N", help="trials to finish (overrides the sweep file)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run no trials; only write importances, plots and trials.csv of the stored study",
    )
    parser.add_argument("--no-report", action="store_true", help="skip importances and plots")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run the sweep; exit 0 when every trial finished, 1 if some failed or none ran."""
    from mosaicnet.errors import BackendUnavailableError
    from mosaicnet.sweeps.runner import run_sweep, show_report
    from mosaicnet.sweeps.sweep_file import load_sweep

    for module in ("distributed", "optuna", "sklearn"):
        if importlib.util.find_spec(module) is None:
            raise BackendUnavailableError(
                f"`mosaicnet sweep` needs the dist extra (Python package {module!r} is not "
                "installed); install it with `pip install 'mosaicnet[dist]'`"
            )

    spec = load_sweep(args.sweep_file)
    if args.report_only:
        report = show_report(spec, storage=args.storage, out_dir=args.out)
        print(json.dumps(report, indent=2) if args.json else _describe_report(report))
        return 0
    outcome = run_sweep(
        spec,
        scheduler=args.scheduler,
        workers=args.workers,
        storage=args.storage,
        n_trials=args.n_trials,
        out_dir=args.out,
        progress=not args.quiet,
        report=not args.no_report,
    )
    if args.json:
        data = {**dataclasses.asdict(outcome), "finished": outcome.finished}
        print(json.dumps(data, indent=2, default=str))
    else:
        print(_describe(outcome))
    return 0 if outcome.finished and outcome.failed == 0 and outcome.complete > 0 else 1


def _describe(outcome) -> str:
    lines = [
        f"study {outcome.study_name!r} in {outcome.storage}",
        f"  trials: {outcome.complete} complete, {outcome.failed} failed, "
        f"{outcome.retried} retries (of {outcome.n_trials} requested); "
        f"{outcome.started} started by this run in {outcome.wall_s:.1f} s",
    ]
    if outcome.best_value is not None:
        lines.append(f"  best value {outcome.best_value:.6g} at {outcome.best_params}")
    if outcome.report:
        lines.append(_describe_report(outcome.report))
    return "\n".join(lines)


def _describe_report(report: dict) -> str:
    lines = [f"  table: {report['files']['trials']}"]
    if report["importances"]:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in report["importances"].items())
        lines.append(f"  importance (fANOVA): {ranked}")
    else:
        lines.append(f"  importance: not computed ({report['importance_note']})")
    if report["plots"]:
        folder = str(next(iter(report["plots"].values()))).rsplit("/", 1)[0]
        lines.append(f"  plots: {folder}/ ({', '.join(report['plots'])})")
    return "\n".join(lines)
