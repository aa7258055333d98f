"""Layout-loss weight sweep: few-shot accuracy against memristors used and long-range routes.

Question
--------
The layout loss ``lambda * mean(S * W_rec^2)`` (S grows as ``exp(beta * hops)``)
pushes recurrent weights between distant tiles towards zero, where pruning
(``|w| < 5e-4``) removes them. How much accuracy does a stronger layout
constraint cost, and how many memristors and long-range (>= 2 hop) connections
does it save? The talk's claim: constraining the architecture "does not
terminally detriment the performance of the model".

Work reproduced: K. C. Raghunathan et al., "Hardware-aware few-shot learning on
a memristor-based small-world architecture", NICE 2024 (talk, "Mosaic
layout-aware training", ``L = L_CE + lambda L_M``; code EIS-Hub/meta-mosaic);
Mosaic routing cost: T. Dalgaty et al., Nature Communications 15, 142 (2024).

What runs
---------
For every ``lambda`` in ``LAMBDAS``: meta-train a Mosaic network with that
layout weight, count its memristors (two per non-zero weight) and recurrent
synapses by hop class, and meta-test it (torch clone by default, chip in the
loop on Brian2 with ``EVALUATE_ON="brian2"``).

Run::

    python protocols/layout_lambda.py --quick

``results.json`` keys: ``protocol``, ``question``, ``setting``, ``parameters``,
``data``, ``points`` (one per lambda: ``layout_lambda``, ``run``, ``evaluation``
with ``accuracy_seen``, ``ci95_seen``, ``accuracy_unseen``, ``ci95_unseen``,
..., ``hardware`` with ``memristors``, ``recurrent_synapses``,
``synapses_intra_tile``, ``synapses_one_hop``, ``synapses_multi_hop``,
``mean_hops_per_synapse``), ``figures``, ``timing_s``,
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
LAMBDAS = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]  # layout-loss weights (TrainConfig default 1e-4)
BETA = 8.0  # S = exp(BETA * hops) - 1 (published 8)
PRUNE_THRESHOLD = 5e-4  # |w| below this is no synapse (published)
MOSAIC_ROWS = 8
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
N_WAY = 5
K_SHOT = 5
N_QUERY = 5
INNER_STEPS = 1
ITERATIONS = 1000
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
#: --quick: three weights on a 4 x 4 x 4 Mosaic (64 neurons), short training.
QUICK = {
    "LAMBDAS": [0.0, 1e-3, 1e-1], "MOSAIC_ROWS": 4, "MOSAIC_COLS": 4, "ITERATIONS": 40,
    "META_BATCH": 8, "EVAL_TASKS": 20,
}  # fmt: skip
#: --smoke: --quick made a pipeline check of seconds (not science).
SMOKE = {
    **QUICK, "LAMBDAS": [0.0, 1e-1], "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2, "ITERATIONS": 2,
    "META_BATCH": 2, "EVAL_TASKS": 2,
}  # fmt: skip

QUESTION = (
    "How much few-shot accuracy does a stronger layout constraint cost, and how many "
    "memristors and long-range connections does it save?"
)


def train_config(p: SimpleNamespace, layout_lambda: float):
    """The training configuration with layout weight ``layout_lambda``."""
    from mosaicnet.protocols_support.parameters import train_config_from_parameters

    return train_config_from_parameters(
        p, beta=p.BETA, layout_lambda=float(layout_lambda),
        prune_threshold=p.PRUNE_THRESHOLD, inner_steps=p.INNER_STEPS,
        outer_lr=p.OUTER_LR,
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
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.protocols_support import figures
    from mosaicnet.protocols_support.evaluation import evaluate
    from mosaicnet.protocols_support.hardware_costs import hardware_costs
    from mosaicnet.protocols_support.output import FIGURES, RUNS, results_head, start_run
    from mosaicnet.protocols_support.parameters import seconds
    from mosaicnet.protocols_support.reporting import relative_paths, write_report
    from mosaicnet.protocols_support.runs import train_or_resume

    started = time.perf_counter()
    # --quick/--smoke and --set applied (replacements printed), every parameter checked
    # and the data found; only then is the output folder prepared.
    p, replaced, setting, data_dir, out = start_run(
        __file__, PARAMETERS, QUICK, SMOKE, params=params, out_dir=out_dir, quick=quick,
        smoke=smoke, data=data, overwrite=overwrite, progress=progress,
    )  # fmt: skip
    points = []
    for index, value in enumerate(p.LAMBDAS):
        name = f"lambda_{index}"
        run_dir = out / RUNS / name
        train_or_resume(train_config(p, value), run_dir, data=data_dir, progress=progress)
        result = evaluate(
            run_dir, on=p.EVALUATE_ON, data=data_dir, tasks=p.EVAL_TASKS, backend=p.BACKEND,
            read_time_s=seconds(p.READ_TIME), seed=p.SEED, progress=progress,
        )  # fmt: skip
        spec = RunDirectory(run_dir).load_spec()
        points.append({
            "layout_lambda": float(value), "run": str(Path(RUNS) / name),
            "evaluation": result, "hardware": hardware_costs(spec),
        })  # fmt: skip

    labels = [f"λ={pt['layout_lambda']:g}" for pt in points]
    series = figures.seen_unseen_series([pt["evaluation"] for pt in points])
    title = f"layout-loss sweep ({p.EVALUATE_ON}), 95 % CI over {p.EVAL_TASKS} tasks"
    paths = {
        "accuracy_vs_memristors": figures.plot_tradeoff(
            out / FIGURES / "accuracy_vs_memristors.png",
            [pt["hardware"]["memristors"] for pt in points], series, labels,
            title=title, xlabel="memristors used (2 per non-zero weight)",
            chance=1.0 / p.N_WAY,
        ),
        "accuracy_vs_long_range": figures.plot_tradeoff(
            out / FIGURES / "accuracy_vs_long_range.png",
            [pt["hardware"]["synapses_multi_hop"] for pt in points], series, labels,
            title=title, xlabel="recurrent synapses spanning >= 2 hops",
            chance=1.0 / p.N_WAY,
        ),
    }  # fmt: skip
    results = {
        **results_head(__file__, QUESTION, setting, p, replaced, data_dir),
        "points": points, "figures": relative_paths(paths, out),
        "timing_s": {"total": time.perf_counter() - started},
    }  # fmt: skip
    write_report(out, results, markdown_report(p, results))
    return results


def markdown_report(p: SimpleNamespace, results: dict[str, Any]) -> str:
    """The Markdown table of a run's resolved parameters ``p`` and results."""
    from mosaicnet.protocols_support.reporting import markdown_table, number, seen_unseen_cells

    rows = []
    for pt in results["points"]:
        hw = pt["hardware"]
        rows.append([
            f"{pt['layout_lambda']:g}", *seen_unseen_cells(pt["evaluation"]), hw["memristors"],
            hw["recurrent_synapses"], hw["synapses_intra_tile"], hw["synapses_one_hop"],
            hw["synapses_multi_hop"], number(hw["mean_hops_per_synapse"]),
        ])  # fmt: skip
    table = markdown_table(
        ["lambda", "seen (%)", "unseen (%)", "memristors", "recurrent synapses", "intra-tile",
         "1 hop", ">= 2 hops", "hops / synapse"],
        rows,
    )  # fmt: skip
    return (
        f"# Layout-loss weight sweep ({results['setting']} setting)\n\n"
        f"Mosaic {p.MOSAIC_ROWS} x {p.MOSAIC_COLS} x {p.NEURONS_PER_TILE} (beta "
        f"{p.BETA:g}, pruning below {p.PRUNE_THRESHOLD:g}), {p.ITERATIONS} outer "
        f"steps of {p.META_BATCH} tasks, evaluated on {p.EVALUATE_ON}; mean ± 95 % CI "
        f"over {p.EVAL_TASKS} tasks per kind; chance {100 / p.N_WAY:.0f} %.\n\n{table}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
