"""Can re-training compensate for multiple inner-loop steps?

Question
--------
A network meta-trained with ONE inner step (the hardware's constraint) is asked
at test time to adapt with several steps, or the other way round. Is it enough
to re-train the already meta-trained network for a while with the new number
of inner steps, instead of meta-training from scratch? This is the last
question of the talk ("Can re-training compensate for multiple gradient
steps?", shown for 3 inner-loop updates).

Work reproduced: K. C. Raghunathan et al., "Hardware-aware few-shot learning on
a memristor-based small-world architecture", NICE 2024 (talk, "Discussion";
code EIS-Hub/meta-mosaic); Mosaic: T. Dalgaty et al., Nature Communications 15,
142 (2024).

What runs
---------
1. ``base``: meta-train with ``BASE_STEPS`` inner steps for ``ITERATIONS``.
2. ``retrained``: continue ``base`` (weights, Adam state, task stream) for
   ``RETRAIN_ITERATIONS`` more outer steps with ``TARGET_STEPS`` inner steps.
3. ``continued``: the control -- continue ``base`` for the same number of steps
   with ``BASE_STEPS`` inner steps (separates "more training" from "training
   with the new step count").
4. ``scratch``: meta-train with ``TARGET_STEPS`` from the start, for
   ``ITERATIONS + RETRAIN_ITERATIONS`` steps.
Each is meta-tested with ``BASE_STEPS`` and with ``TARGET_STEPS`` inner steps
(torch clone by default; ``EVALUATE_ON="brian2"`` for chip in the loop). The
inner learning rate follows ``1 / steps`` at test time as in training.

Run::

    python protocols/retraining.py --quick

``results.json`` keys: ``protocol``, ``question``, ``setting``, ``parameters``,
``data``, ``networks`` -> ``base`` / ``retrained`` / ``continued`` / ``scratch``
-> {``run``, ``trained_steps`` (inner steps of its last training phase),
``outer_steps``, ``evaluations`` -> {"<k>": summary with ``accuracy_seen``,
``ci95_seen``, ``accuracy_unseen``, ``ci95_unseen``, ...}}, ``figures``,
``timing_s``, ``replaced_by_setting`` (what ``--quick`` or ``--smoke`` replaced).
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
BASE_STEPS = 1  # inner steps of the original meta-training (published: 1)
TARGET_STEPS = 3  # inner steps asked for at test time (talk: 3)
ITERATIONS = 1000  # outer steps of the base network
RETRAIN_ITERATIONS = 300  # further outer steps of re-training
MOSAIC_ROWS = 8
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
N_WAY = 5
K_SHOT = 5
N_QUERY = 5
META_BATCH = 16
OUTER_LR = 1e-3
DEVICE_MODEL = "rram_hfox"
# Recurrent neurons: a preset or a .json/.py file of Brian2 code, and constants
# to change as Brian2 quantities, e.g. {"tau_mem": 300 * ms} (the lif preset's:
# tau_mem = 420*ms, thr = 2; mosaicnet.network.neuron_presets; docs/neuron_models.md).
NEURON_MODEL = "lif"
NEURON_CONSTANTS: dict[str, Any] = {}
EVAL_TASKS = 100
EVALUATE_ON = "torch"  # "torch" or "brian2"
BACKEND = "cython"  # Brian2 backend: numpy, cython, cpp_standalone, cuda_standalone
READ_TIME = 1 * second  # between programming and a Brian2 evaluation

PARAMETERS = parameters_of(globals())  # the constants above: what --set and sweeps change

# ----------------------------------------------------------------------------- --quick, --smoke
# What each setting replaces; a run prints every replacement and records it in
# results.json ("replaced_by_setting"), and --set NAME=VALUE wins over both.
QUICK = {
    "MOSAIC_ROWS": 4, "MOSAIC_COLS": 4, "ITERATIONS": 40, "RETRAIN_ITERATIONS": 15,
    "META_BATCH": 8, "EVAL_TASKS": 20,
}  # fmt: skip
#: --smoke: --quick made a pipeline check of seconds (not science).
SMOKE = {
    **QUICK, "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2, "ITERATIONS": 2, "RETRAIN_ITERATIONS": 1,
    "META_BATCH": 2, "EVAL_TASKS": 2,
}  # fmt: skip

QUESTION = (
    "Can re-training a network meta-trained with one inner step, with more inner steps, "
    "match meta-training with more steps from scratch?"
)
NETWORKS = ("base", "retrained", "continued", "scratch")


def train_config(p: SimpleNamespace, inner_steps: int, iterations: int):
    """Training configuration with ``inner_steps`` inner steps and ``iterations`` outer steps."""
    from mosaicnet.protocols_support.parameters import train_config_from_parameters

    return train_config_from_parameters(
        p, iterations=iterations, inner_steps=inner_steps, outer_lr=p.OUTER_LR
    )


def check_base_and_target(p: SimpleNamespace) -> None:
    """Refuse a comparison of a step count with itself (before anything is written)."""
    from mosaicnet.errors import ConfigError

    if p.BASE_STEPS == p.TARGET_STEPS:
        raise ConfigError("BASE_STEPS and TARGET_STEPS are equal: nothing to compare")


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
    from mosaicnet.protocols_support import figures
    from mosaicnet.protocols_support.evaluation import evaluate
    from mosaicnet.protocols_support.output import FIGURES, RUNS, results_head, start_run
    from mosaicnet.protocols_support.parameters import seconds
    from mosaicnet.protocols_support.reporting import relative_paths, write_report
    from mosaicnet.protocols_support.runs import continue_training, train_or_resume

    started = time.perf_counter()
    # --quick/--smoke and --set applied (replacements printed), every parameter checked
    # and the data found; only then is the output folder prepared.
    p, replaced, setting, data_dir, out = start_run(
        __file__, PARAMETERS, QUICK, SMOKE, params=params, out_dir=out_dir, quick=quick,
        smoke=smoke, data=data, overwrite=overwrite, progress=progress, check=check_base_and_target,
    )  # fmt: skip
    base, target = int(p.BASE_STEPS), int(p.TARGET_STEPS)
    total = p.ITERATIONS + p.RETRAIN_ITERATIONS
    plan = {
        "base": (base, p.ITERATIONS),
        "retrained": (target, total),
        "continued": (base, total),
        "scratch": (target, total),
    }
    train_or_resume(train_config(p, *plan["base"]), out / RUNS / "base", data=data_dir,
                    progress=progress)  # fmt: skip
    for name in ("retrained", "continued"):
        continue_training(
            out / RUNS / "base", out / RUNS / name, train_config(p, *plan[name]),
            data=data_dir, progress=progress,
        )  # fmt: skip
    train_or_resume(train_config(p, *plan["scratch"]), out / RUNS / "scratch", data=data_dir,
                    progress=progress)  # fmt: skip

    networks: dict[str, Any] = {}
    for name in NETWORKS:
        run_dir = out / RUNS / name
        evaluations = {
            str(k): evaluate(
                run_dir,
                on=p.EVALUATE_ON,
                data=data_dir,
                tasks=p.EVAL_TASKS,
                inner_steps=k,
                backend=p.BACKEND,
                read_time_s=seconds(p.READ_TIME),
                seed=p.SEED,
                progress=progress,
            )  # fmt: skip
            for k in (base, target)
        }
        networks[name] = {
            "run": str(Path(RUNS) / name), "trained_steps": plan[name][0],
            "outer_steps": plan[name][1], "evaluations": evaluations,
        }  # fmt: skip

    groups = [f"{n}\n(trained k={networks[n]['trained_steps']})" for n in NETWORKS]
    series = {}
    for k in (base, target):
        tested = [networks[n]["evaluations"][str(k)] for n in NETWORKS]
        for kind in ("seen", "unseen"):
            series[f"tested k={k}, {kind}"] = figures.accuracy_with_ci(tested, kind)
    paths = {
        "accuracy": figures.plot_accuracy_bars(
            out / FIGURES / "retraining_accuracy.png",
            groups,
            series,
            title=f"re-training with {target} inner steps ({p.EVALUATE_ON}), 95 % CI over "
            f"{p.EVAL_TASKS} tasks",
            chance=1.0 / p.N_WAY,
        )  # fmt: skip
    }
    results = {
        **results_head(__file__, QUESTION, setting, p, replaced, data_dir),
        "networks": networks, "figures": relative_paths(paths, out),
        "timing_s": {"total": time.perf_counter() - started},
    }  # fmt: skip
    write_report(out, results, markdown_report(p, results))
    return results


def markdown_report(p: SimpleNamespace, results: dict[str, Any]) -> str:
    """The Markdown table of a run's resolved parameters ``p`` and results."""
    from mosaicnet.protocols_support.reporting import markdown_table, seen_unseen_cells

    rows = []
    for name in NETWORKS:
        net = results["networks"][name]
        for k, e in net["evaluations"].items():
            rows.append([
                name, net["trained_steps"], net["outer_steps"], k, *seen_unseen_cells(e)
            ])  # fmt: skip
    table = markdown_table(
        ["network", "trained with k", "outer steps", "tested with k", "seen (%)", "unseen (%)"],
        rows,
    )
    return (
        f"# Re-training for more inner steps ({results['setting']} setting)\n\n"
        f"Mosaic {p.MOSAIC_ROWS} x {p.MOSAIC_COLS} x {p.NEURONS_PER_TILE}, "
        f"{p.META_BATCH} tasks per outer step, {p.DEVICE_MODEL}-aware, evaluated on "
        f"{p.EVALUATE_ON}; mean ± 95 % CI over {p.EVAL_TASKS} tasks per kind; chance "
        f"{100 / p.N_WAY:.0f} %.\n\n{table}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
