"""Inner and outer learning rates at 1 and 10 inner steps, with fANOVA parameter importance.

Question
--------
Which learning rate matters for few-shot accuracy: the inner (adaptation) rate
or the outer (meta) rate, and does that depend on the number of inner steps?
The talk reports, from a hyperparameter search, that the outer rate matters
most with one inner step and the inner rate with ten ("Interesting
relationship between learning rates and no. of inner loop updates").

Work reproduced: K. C. Raghunathan et al., "Hardware-aware few-shot learning on
a memristor-based small-world architecture", NICE 2024 (talk, "Discussion";
code EIS-Hub/meta-mosaic); importance: fANOVA, F. Hutter, H. Hoos and K.
Leyton-Brown, ICML 2014, as implemented in Optuna
(``FanovaImportanceEvaluator``, via :mod:`mosaicnet.sweeps.importance`).

What runs
---------
For each number of inner steps in ``INNER_STEPS``: an Optuna study (seeded
random sampling, log-uniform) over ``lr_in`` in ``LR_IN_RANGE`` and ``lr_out``
in ``LR_OUT_RANGE``, ``N_TRIALS`` trials; each trial meta-trains a Mosaic
network and meta-tests it on unseen classes (the objective, maximised; torch
clone by default). The fANOVA importance of the two rates is computed per
study. Random sampling (not TPE) keeps the samples spread over the whole box,
which the importance analysis needs.

Run::

    python protocols/learning_rates.py --quick

``results.json`` keys: ``protocol``, ``question``, ``setting``, ``parameters``,
``data``, ``studies`` -> "<k>" -> {``trials`` (``lr_in``, ``lr_out``, ``run``,
``accuracy_seen``, ``accuracy_unseen``, ``ci95_*``, ``diverged``: why training
stopped, or None; a diverged trial has no accuracies and counts as a failed Optuna
trial), ``best``, ``importance``
(parameter -> fraction, or None), ``importance_note``}, ``figures``, ``timing_s``,
``replaced_by_setting`` (what ``--quick`` or ``--smoke`` replaced, see ``QUICK``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from brian2 import second

from mosaicnet.protocols_support.parameters import parameters_of

# ----------------------------------------------------------------------------- parameters
SEED = 0
INNER_STEPS = [1, 10]  # the two settings of the talk
# The inner loop (docs/training.md): "curvature" (default, the recommended loop) makes
# the inner rate dimensionless, each step stable below 2, from the support prototypes
# (READOUT_INIT = "prototype"). The talk's loop: INNER_STEP_SCALE = "none",
# READOUT_INIT = "meta", with plain SGD rates over LR_IN_RANGE = [0.01, 10.0].
INNER_STEP_SCALE = "curvature"
READOUT_INIT = "prototype"
# Inner learning rate, log-uniform: for curvature-scaled steps the range spans the
# stable rates (below 2) and a little past them, where ten steps oscillate.
LR_IN_RANGE = [0.03, 3.0]
LR_OUT_RANGE = [1e-4, 1e-2]  # outer (Adam) learning rate, log-uniform
N_TRIALS = 30  # per setting
MOSAIC_ROWS = 8
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
# Routing limit: recurrent synapses only between neurons at most MAX_HOPS hops apart
# (1: own and neighbouring tiles; None: the published dense matrix).
MAX_HOPS: int | None = 1
N_WAY = 5
K_SHOT = 5
N_QUERY = 5
ITERATIONS = 300  # outer steps per trial
META_BATCH = 16
DEVICE_MODEL = "rram_hfox"
# Recurrent neurons: a preset or a .json/.py file of Brian2 code, and constants
# to change as Brian2 quantities, e.g. {"tau_mem": 300 * ms} (the lif preset's:
# tau_mem = 420*ms, thr = 2; mosaicnet.network.neuron_presets; docs/neuron_models.md).
NEURON_MODEL = "lif"
NEURON_CONSTANTS: dict[str, Any] = {}
EVAL_TASKS = 50  # tasks per kind per trial
EVALUATE_ON = "torch"  # "torch" or "brian2"
BACKEND = "cython"  # Brian2 backend: numpy, cython, cpp_standalone, cuda_standalone
READ_TIME = 1 * second  # between programming and a Brian2 evaluation

PARAMETERS = parameters_of(globals())  # the constants above: what --set and sweeps change

# ----------------------------------------------------------------------------- --quick, --smoke
# What each setting replaces; a run prints every replacement and records it in
# results.json ("replaced_by_setting"), and --set NAME=VALUE wins over both.
QUICK = {
    "N_TRIALS": 6, "MOSAIC_ROWS": 4, "MOSAIC_COLS": 4, "ITERATIONS": 15, "META_BATCH": 4,
    "EVAL_TASKS": 10,
}  # fmt: skip
#: --smoke: --quick made a pipeline check of seconds (not science).
SMOKE = {
    **QUICK, "INNER_STEPS": [1, 3], "N_TRIALS": 3, "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2,
    "ITERATIONS": 1, "META_BATCH": 2, "EVAL_TASKS": 2,
}  # fmt: skip

QUESTION = (
    "Which learning rate (inner or outer) matters most for few-shot accuracy at 1 and at 10 "
    "inner steps?"
)


def train_config(p: SimpleNamespace, inner_steps: int, lr_in: float, lr_out: float):
    """Training configuration of one trial."""
    from mosaicnet.protocols_support.parameters import train_config_from_parameters

    return train_config_from_parameters(
        p, inner_steps=inner_steps, inner_lr=lr_in, outer_lr=lr_out,
        inner_step_scale=p.INNER_STEP_SCALE, max_hops=p.MAX_HOPS,
    )  # fmt: skip


def run(
    params: dict[str, Any] | None,
    out_dir: str | Path,
    quick: bool,
    *,
    smoke: bool = False,
    data: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the protocol into ``out_dir``; return what ``results.json`` holds."""
    try:
        import optuna
        import sklearn  # noqa: F401  (Optuna's fANOVA evaluator needs scikit-learn)
    except ImportError as error:
        from mosaicnet.errors import BackendUnavailableError

        raise BackendUnavailableError(
            f"learning_rates.py needs Optuna and scikit-learn ({error}); install them with "
            "`pip install -e '.[dist]'`"
        ) from error

    from mosaicnet.errors import TrainingDiverged
    from mosaicnet.protocols_support import figures
    from mosaicnet.protocols_support.evaluation import evaluate
    from mosaicnet.protocols_support.output import FIGURES, RUNS, results_head, start_run
    from mosaicnet.protocols_support.parameters import seconds
    from mosaicnet.protocols_support.reporting import relative_paths, write_report
    from mosaicnet.protocols_support.runs import train_or_resume
    from mosaicnet.sweeps.importance import parameter_importances

    started = time.perf_counter()
    # --quick/--smoke and --set applied (replacements printed), every parameter checked
    # and the data found; only then is the output folder prepared.
    p, replaced, setting, data_dir, out = start_run(
        __file__, PARAMETERS, QUICK, SMOKE, params=params, out_dir=out_dir, quick=quick,
        smoke=smoke, data=data, overwrite=overwrite, progress=progress,
    )  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies: dict[str, Any] = {}
    for k in p.INNER_STEPS:
        # Seeded sampler: the same parameters on a re-run, so finished trials are reused.
        sampler = optuna.samplers.RandomSampler(seed=p.SEED + int(k))
        study = optuna.create_study(direction="maximize", sampler=sampler)
        trials = []
        for number in range(p.N_TRIALS):
            trial = study.ask()
            lr_in = trial.suggest_float("lr_in", *p.LR_IN_RANGE, log=True)
            lr_out = trial.suggest_float("lr_out", *p.LR_OUT_RANGE, log=True)
            run_dir = out / RUNS / f"steps_{k}" / f"trial_{number:03d}"
            record = {"lr_in": lr_in, "lr_out": lr_out, "run": str(run_dir.relative_to(out))}
            try:
                train_or_resume(train_config(p, int(k), lr_in, lr_out), run_dir,
                                data=data_dir, progress=progress)  # fmt: skip
            except TrainingDiverged as error:
                # A diverged trial is a result of the search (these rates fail), not the
                # end of the study: Optuna records it as failed, the report names it.
                print(f"trial {number} of {k} inner step(s) diverged: {error}", file=sys.stderr)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                trials.append(
                    {
                        **record,
                        "diverged": str(error),
                        **dict.fromkeys(
                            ("accuracy_seen", "ci95_seen", "accuracy_unseen", "ci95_unseen")
                        ),
                    }
                )
                continue
            result = evaluate(
                run_dir, on=p.EVALUATE_ON, data=data_dir, tasks=p.EVAL_TASKS, backend=p.BACKEND,
                read_time_s=seconds(p.READ_TIME), seed=p.SEED, progress=False,
            )  # fmt: skip
            # An undefined accuracy (no unseen task) is a failed trial for Optuna (NaN).
            value = result["accuracy_unseen"]
            study.tell(trial, float("nan") if value is None else value)
            trials.append({
                **record, "diverged": None,
                **{key: result[key] for key in
                   ("accuracy_seen", "ci95_seen", "accuracy_unseen", "ci95_unseen")},
            })  # fmt: skip
        importance, note = parameter_importances(study, seed=p.SEED)
        best = max(trials, key=lambda t: t["accuracy_unseen"] or 0.0)
        studies[str(k)] = {"trials": trials, "best": best, "importance": importance,
                           "importance_note": note}  # fmt: skip

    paths = {
        "importance": figures.plot_importances(
            out / FIGURES / "importance.png",
            {
                f"{k} inner step{'s' if int(k) > 1 else ''}": s["importance"]
                for k, s in studies.items()
            },
            title="fANOVA importance for unseen-class accuracy",
        ),  # fmt: skip
        "landscape": plot_landscape(out / FIGURES / "learning_rate_landscape.png", studies),
    }
    results = {
        **results_head(__file__, QUESTION, setting, p, replaced, data_dir),
        "studies": studies, "figures": relative_paths(paths, out),
        "timing_s": {"total": time.perf_counter() - started},
    }  # fmt: skip
    write_report(out, results, markdown_report(p, results))
    return results


def plot_landscape(path: Path, studies: dict[str, Any]) -> Path:
    """Scatter of the trials in the (lr_in, lr_out) plane coloured by unseen accuracy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(studies), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(studies), squeeze=False)[0]
    for ax, (k, study) in zip(axes, studies.items(), strict=True):
        # Diverged trials (no accuracy) are drawn as crosses.
        failed = [t for t in study["trials"] if t["accuracy_unseen"] is None]
        trials = [t for t in study["trials"] if t["accuracy_unseen"] is not None]
        if failed:
            ax.scatter([t["lr_in"] for t in failed], [t["lr_out"] for t in failed],
                       marker="x", c="r", s=40, label="diverged")  # fmt: skip
            ax.legend(fontsize=8)
        points = ax.scatter(
            [t["lr_in"] for t in trials], [t["lr_out"] for t in trials],
            c=[100 * t["accuracy_unseen"] for t in trials], cmap="viridis", s=40,
            vmin=0, vmax=100, edgecolors="k", linewidths=0.4,
        )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("inner learning rate lr_in")
        ax.set_ylabel("outer learning rate lr_out")
        ax.set_title(f"{k} inner step(s)", fontsize=10)
        figure.colorbar(points, ax=ax, label="unseen accuracy (%)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def markdown_report(p: SimpleNamespace, results: dict[str, Any]) -> str:
    """The Markdown tables of a run's resolved parameters ``p`` and results."""
    from mosaicnet.protocols_support.reporting import markdown_table, number, percent_ci

    rows = []
    for k, study in results["studies"].items():
        imp = study["importance"] or {}
        best = study["best"]
        rows.append([
            k, len(study["trials"]), number(imp.get("lr_in")), number(imp.get("lr_out")),
            number(best["lr_in"]), number(best["lr_out"]),
            percent_ci(best["accuracy_unseen"], best["ci95_unseen"]),
        ])  # fmt: skip
    table = markdown_table(
        ["inner steps", "trials", "importance lr_in", "importance lr_out", "best lr_in",
         "best lr_out", "best unseen (%)"],
        rows,
    )  # fmt: skip
    notes = "".join(
        f"\n- {k} steps: importance {s['importance_note']}"
        for k, s in results["studies"].items()
        if s["importance"] is None
    )
    return (
        f"# Learning rates and inner steps ({results['setting']} setting)\n\n"
        f"Mosaic {p.MOSAIC_ROWS} x {p.MOSAIC_COLS} x {p.NEURONS_PER_TILE}, "
        f"{p.ITERATIONS} outer steps of {p.META_BATCH} tasks per trial, inner loop "
        f"{p.INNER_STEP_SCALE!r} from the {p.READOUT_INIT!r} readout, "
        f"max_hops {p.MAX_HOPS}, random search "
        f"lr_in in {p.LR_IN_RANGE}, lr_out in {p.LR_OUT_RANGE} (log), objective: "
        f"unseen-class accuracy on {p.EVALUATE_ON} over {p.EVAL_TASKS} tasks; importance "
        f"by fANOVA (fractions summing to 1).\n\n{table}{notes}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
