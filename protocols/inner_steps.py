"""Few-shot accuracy against the number of inner-loop steps, trained and tested with each.

Question
--------
The published setting adapts the readout with ONE gradient step, the hardware's
constraint. Does accuracy grow with more inner steps when the network is
meta-trained and tested with the same number of steps? The talk reports that it
does ("Increasing inner loop gradient steps increases performance!"; NICE 2024
abstract on real SHD, unseen classes: 49.09 +- 8.17 % with one step, 67.97 +-
1.99 % with ten).

Work reproduced: K. C. Raghunathan et al., "Hardware-aware few-shot learning on
a memristor-based small-world architecture", NICE 2024 (talk; code
EIS-Hub/meta-mosaic); Mosaic: T. Dalgaty et al., Nature Communications 15, 142
(2024).

What runs
---------
For every ``k`` in ``INNER_STEPS``: meta-train a Mosaic network (routing limited
to ``MAX_HOPS``) with ``k`` inner steps (by default each task class's readout
column starts at its support prototype, ``READOUT_INIT = "prototype"``, and every
step is stable and curvature-scaled at the dimensionless rate ``INNER_LR``,
``INNER_STEP_SCALE = "curvature"``; ``"refine"`` takes the published plain step of
``INNER_LR`` first, then ``k - 1`` curvature-scaled refinement steps at
``INNER_REFINE_LR``; the published ``1/k`` schedule is ``INNER_STEP_SCALE =
"none"`` with ``INNER_LR = None`` and ``READOUT_INIT = "meta"``, unstable at ten
steps, see ``docs/training.md``), then
meta-test it with ``k`` steps on seen and unseen classes (95 % CIs over tasks),
on the torch clone or, with ``EVALUATE_ON="brian2"``, chip in the loop on the
Brian2 network. The inner loop touches only the readout, so extra steps cost
almost nothing in training time (``train_seconds`` in the results).

Run::

    python protocols/inner_steps.py --quick
    python protocols/inner_steps.py --data ~/shd --set EVALUATE_ON='"brian2"'

``results.json`` keys: ``protocol``, ``question``, ``setting``, ``parameters``,
``data``, ``points`` (one per k: ``inner_steps``, ``inner_lr``, ``run``,
``evaluation`` with ``accuracy_seen``, ``ci95_seen``, ``accuracy_unseen``,
``ci95_unseen``, ``*_20way``, ``train_seconds``), ``figures``, ``timing_s``,
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
INNER_STEPS = [1, 2, 3, 5, 10]  # inner-loop SGD steps on the readout (trained and tested)
MOSAIC_ROWS = 8  # published Mosaic: 8 x 8 tiles x 4 neurons
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
MAX_HOPS = 1  # routing limit, as in fewshot_mosaic_vs_fc.py (None: the dense published Mosaic)
N_WAY = 5
K_SHOT = 5
N_QUERY = 5
ITERATIONS = 1000  # outer steps per network (published: 5000 of 256 tasks)
META_BATCH = 16
OUTER_LR = 1e-3
INNER_STEP_SCALE = "curvature"  # "none" (plain steps), "curvature" or "refine"
# "curvature": the dimensionless rate of every step (stable below 2); "none" and
# "refine": the rate of the (first) plain step; None: the 1/k schedule of TrainConfig.
INNER_LR = 1.0
INNER_REFINE_LR = 1.0  # dimensionless rate of the refinement steps of "refine"
READOUT_INIT = "prototype"  # "meta" (published: the meta-learned readout) or "prototype"
DEVICE_MODEL = "rram_hfox"  # hardware-aware training and the chip's devices
# Recurrent neurons: a preset or a .json/.py file of Brian2 code, and constants
# to change as Brian2 quantities, e.g. {"tau_mem": 300 * ms} (the lif preset's:
# tau_mem = 420*ms, thr = 2; mosaicnet.network.neuron_presets; docs/neuron_models.md).
NEURON_MODEL = "lif"
NEURON_CONSTANTS: dict[str, Any] = {}
EVAL_TASKS = 100  # tasks per kind (seen, unseen)
EVALUATE_ON = "torch"  # "torch" (clone) or "brian2" (chip in the loop)
BACKEND = "cython"  # Brian2 backend: numpy, cython, cpp_standalone, cuda_standalone
READ_TIME = 1 * second  # between programming and a Brian2 evaluation

PARAMETERS = parameters_of(globals())  # the constants above: what --set and sweeps change

# ----------------------------------------------------------------------------- --quick, --smoke
# What each setting replaces; a run prints every replacement and records it in
# results.json ("replaced_by_setting"), and --set NAME=VALUE wins over both.
#: --quick: three step counts on a 4 x 4 x 4 Mosaic (64 neurons), short training; no
#: routing limit (on a Mosaic this small it left held-out classes at chance,
#: docs/results.md).
QUICK = {
    "INNER_STEPS": [1, 3, 10], "MOSAIC_ROWS": 4, "MOSAIC_COLS": 4, "ITERATIONS": 40,
    "META_BATCH": 8, "EVAL_TASKS": 20, "MAX_HOPS": None,
}  # fmt: skip
#: --smoke: --quick made a pipeline check of seconds (not science).
SMOKE = {
    **QUICK, "INNER_STEPS": [1, 3], "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2, "ITERATIONS": 2,
    "META_BATCH": 2, "EVAL_TASKS": 2,
}  # fmt: skip

QUESTION = (
    "Does few-shot accuracy grow with the number of inner-loop steps when the network is "
    "meta-trained and tested with that number?"
)


def train_config(p: SimpleNamespace, inner_steps: int):
    """The training configuration for ``inner_steps`` inner steps."""
    from mosaicnet.protocols_support.parameters import train_config_from_parameters

    return train_config_from_parameters(
        p, inner_steps=inner_steps, outer_lr=p.OUTER_LR, inner_step_scale=p.INNER_STEP_SCALE,
        inner_lr=p.INNER_LR, inner_refine_lr=p.INNER_REFINE_LR, max_hops=p.MAX_HOPS,
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
    """Run the protocol into ``out_dir``; return what ``results.json`` holds.

    Arguments as :func:`protocols.fewshot_mosaic_vs_fc.run` (see the module docstring).
    """
    from mosaicnet.protocols_support import figures
    from mosaicnet.protocols_support.evaluation import evaluate
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
    for k in p.INNER_STEPS:
        config = train_config(p, int(k))
        run_dir = out / RUNS / f"steps_{k}"
        tic = time.perf_counter()
        train_or_resume(config, run_dir, data=data_dir, progress=progress)
        train_s = time.perf_counter() - tic
        result = evaluate(
            run_dir, on=p.EVALUATE_ON, data=data_dir, tasks=p.EVAL_TASKS, backend=p.BACKEND,
            read_time_s=seconds(p.READ_TIME), seed=p.SEED, progress=progress,
        )  # fmt: skip
        points.append({
            "inner_steps": int(k), "inner_lr": config.resolved_inner_lr,
            "run": str(Path(RUNS) / f"steps_{k}"), "evaluation": result,
            "train_seconds": train_s,
        })  # fmt: skip

    steps = [pt["inner_steps"] for pt in points]
    paths = {
        "accuracy_vs_inner_steps": figures.plot_accuracy_curves(
            out / FIGURES / "accuracy_vs_inner_steps.png",
            steps,
            figures.seen_unseen_series([pt["evaluation"] for pt in points]),
            title=f"trained and tested with k inner steps ({p.EVALUATE_ON}), "
            f"95 % CI over {p.EVAL_TASKS} tasks",
            xlabel="inner steps k",
            xticks=steps,
            xticklabels=[str(s) for s in steps],
            chance=1.0 / p.N_WAY,
        )
    }
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

    rows = [
        [pt["inner_steps"], number(pt["inner_lr"]), *seen_unseen_cells(pt["evaluation"]),
         f"{pt['train_seconds']:.0f}"]
        for pt in results["points"]
    ]  # fmt: skip
    table = markdown_table(
        ["inner steps", "inner lr", "seen (%)", "unseen (%)", "train time (s)"], rows
    )
    return (
        f"# Accuracy vs inner steps ({results['setting']} setting)\n\n"
        f"Mosaic {p.MOSAIC_ROWS} x {p.MOSAIC_COLS} x {p.NEURONS_PER_TILE}"
        f"{f' (at most {p.MAX_HOPS} hop per synapse)' if p.MAX_HOPS is not None else ''}, "
        f"inner loop {p.INNER_STEP_SCALE!r} from the {p.READOUT_INIT!r} readout, "
        f"{p.N_WAY}-way {p.K_SHOT}-shot, {p.ITERATIONS} outer steps of "
        f"{p.META_BATCH} tasks ({p.DEVICE_MODEL}-aware), evaluated on "
        f"{p.EVALUATE_ON}; mean ± 95 % CI over {p.EVAL_TASKS} tasks per kind; chance "
        f"{100 / p.N_WAY:.0f} %. Train time includes resuming/reusing runs.\n\n{table}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
