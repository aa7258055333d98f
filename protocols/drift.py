"""Few-shot accuracy on the drifting chip: standard vs hardware-aware training, 1 s .. 30 days.

Question
--------
Memristor conductances relax after programming, so the weights a network was
trained with are not the weights the chip computes with an hour, a day or a
month later. Does training with the device model in the forward pass
(hardware-aware training) keep few-shot accuracy on the chip higher over time
than standard training with ideal weights? The talk motivates RRAM-aware
training with exactly this drift ("Conductance drift on RRAMs").

Work reproduced: K. C. Raghunathan et al., "Hardware-aware few-shot learning on
a memristor-based small-world architecture", NICE 2024 (talk; code
EIS-Hub/meta-mosaic); Mosaic: T. Dalgaty et al., Nature Communications 15, 142
(2024); device models: see ``mosaicnet.devices`` (HfOx RRAM of IBM aihwkit by
default).

What runs
---------
Two Mosaic networks meta-trained on the same tasks: "standard" (no device
perturbation while training) and "hardware-aware" (device noise and drift at a
log-uniformly drawn read time in every forward pass). Both are programmed into
the same device model and evaluated chip in the loop on the Brian2 network,
ONE programmed chip per network read at every time of ``READ_TIMES`` (the
points differ only by drift and read noise). Optionally also with global drift
compensation (``DRIFT_COMPENSATION``).

Run::

    python protocols/drift.py --quick

``results.json`` keys: ``protocol``, ``question``, ``setting``, ``parameters``,
``data``, ``read_times_s``, ``networks`` -> ``standard`` / ``hardware_aware`` ->
{``run``, ``curve`` (one summary per read time: ``accuracy_seen``,
``ci95_seen``, ``accuracy_unseen``, ``ci95_unseen``, ``*_20way``, ...)},
``figures``, ``timing_s``,
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

hour = 3600 * second  # Brian2 has no hour or day; --set reads both (READ_TIMES=[1*day])
day = 24 * hour

# ----------------------------------------------------------------------------- parameters
SEED = 0
READ_TIMES = [1 * second, 1 * hour, 1 * day, 30 * day]  # after programming
DEVICE_MODEL = "rram_hfox"  # the chip's devices (mosaicnet.devices.list_presets())
# Recurrent neurons: a preset or a .json/.py file of Brian2 code, and constants
# to change as Brian2 quantities, e.g. {"tau_mem": 300 * ms} (the lif preset's:
# tau_mem = 420*ms, thr = 2; mosaicnet.network.neuron_presets; docs/neuron_models.md).
NEURON_MODEL = "lif"
NEURON_CONSTANTS: dict[str, Any] = {}
READ_TIME_MIN = 1 * second  # hardware-aware training draws read times in this range
READ_TIME_MAX = 30 * day
DRIFT_COMPENSATION = False  # global drift compensation of every pathway's gain
MOSAIC_ROWS = 8
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
MAX_HOPS = 1  # routing limit, as in fewshot_mosaic_vs_fc.py (None: the dense published Mosaic)
N_WAY = 5
K_SHOT = 5
N_QUERY = 5
# The inner loop, as in fewshot_mosaic_vs_fc.py (the talk: INNER_STEPS = 1,
# INNER_STEP_SCALE = "none", READOUT_INIT = "meta").
INNER_STEPS = 10
INNER_STEP_SCALE = "curvature"  # "none", "curvature" or "refine" (docs/training.md)
INNER_LR = 1.0
READOUT_INIT = "prototype"  # "meta" (published) or "prototype"
# Inner steps at meta-test, on the recorded traces (no extra simulation): the
# readout's adaptation to new voices goes on improving well past the ten training
# steps (docs/results.md, 'Test-time inner steps'). None: as trained.
TEST_INNER_STEPS: int | None = 100
ITERATIONS = 1000
META_BATCH = 16
OUTER_LR = 1e-3
EVAL_TASKS = 100  # tasks per kind (seen, unseen) at each read time
BACKEND = "cython"  # Brian2 backend: numpy, cython, cpp_standalone, cuda_standalone

PARAMETERS = parameters_of(globals())  # the constants above: what --set and sweeps change

# ----------------------------------------------------------------------------- --quick, --smoke
# What each setting replaces; a run prints every replacement and records it in
# results.json ("replaced_by_setting"), and --set NAME=VALUE wins over both.
#: --quick: a 4 x 4 x 4 Mosaic (64 neurons), short training, 20 tasks per point; no
#: routing limit (on a Mosaic this small it left held-out classes at chance,
#: docs/results.md).
QUICK = {
    "MOSAIC_ROWS": 4, "MOSAIC_COLS": 4, "ITERATIONS": 40, "META_BATCH": 8, "EVAL_TASKS": 20,
    "MAX_HOPS": None,
}  # fmt: skip
#: --smoke: --quick made a pipeline check of seconds (not science).
SMOKE = {
    **QUICK, "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2, "ITERATIONS": 2, "META_BATCH": 2,
    "EVAL_TASKS": 2, "READ_TIMES": [1 * second, 30 * day], "BACKEND": "numpy",
}  # fmt: skip

QUESTION = (
    "Does hardware-aware training keep few-shot accuracy on the drifting chip higher than "
    "standard training, from 1 s to 30 days after programming?"
)
NETWORKS = ("standard", "hardware_aware")


def train_config(p: SimpleNamespace, hardware_aware: bool):
    """Training configuration; both carry the device model so the chip is the same.

    The standard network keeps the device model in its spec (it is programmed into
    the same devices) but never sees device noise while training: the
    perturbation starts after the last iteration (``noise_start``).
    """
    from mosaicnet.protocols_support.parameters import seconds, train_config_from_parameters

    return train_config_from_parameters(
        p, inner_steps=p.INNER_STEPS, inner_step_scale=p.INNER_STEP_SCALE, inner_lr=p.INNER_LR,
        outer_lr=p.OUTER_LR, max_hops=p.MAX_HOPS,
        noise_start=0 if hardware_aware else p.ITERATIONS,
        read_time_min_s=seconds(p.READ_TIME_MIN), read_time_max_s=seconds(p.READ_TIME_MAX),
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
    from mosaicnet.protocols_support import figures
    from mosaicnet.protocols_support.evaluation import drift_curve_brian
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
    times = [seconds(t) for t in p.READ_TIMES]
    networks: dict[str, Any] = {}
    timing: dict[str, float] = {}
    for name in NETWORKS:
        run_dir = out / RUNS / name
        tic = time.perf_counter()
        train_or_resume(
            train_config(p, name == "hardware_aware"), run_dir, data=data_dir, progress=progress
        )
        timing[f"train_{name}"] = time.perf_counter() - tic
        tic = time.perf_counter()
        curve = drift_curve_brian(
            run_dir, data=data_dir, times_s=times, tasks=p.EVAL_TASKS, backend=p.BACKEND,
            drift_compensation=p.DRIFT_COMPENSATION, seed=p.SEED, progress=progress,
        )  # fmt: skip
        timing[f"brian2_{name}"] = time.perf_counter() - tic
        networks[name] = {"run": str(Path(RUNS) / name), "curve": curve["summaries"]}

    series, styles = {}, {}
    for colour, name in zip(("#1f77b4", "#d62728"), NETWORKS, strict=True):
        label = name.replace("_", "-")
        for kind in ("seen", "unseen"):
            series[f"{label}, {kind}"] = figures.accuracy_with_ci(networks[name]["curve"], kind)
            styles[f"{label}, {kind}"] = (colour, "-" if kind == "seen" else "--")
    paths = {
        "accuracy_vs_read_time": figures.plot_accuracy_curves(
            out / FIGURES / "accuracy_vs_read_time.png",
            times,
            series,
            title=f"chip in the loop on Brian2 ({p.DEVICE_MODEL}), 95 % CI over "
            f"{p.EVAL_TASKS} tasks",
            xlabel="read time after programming",
            logx=True,
            xticks=times,
            xticklabels=[_time_label(t) for t in times],
            chance=1.0 / p.N_WAY,
            styles=styles,
        )  # fmt: skip
    }
    results = {
        **results_head(__file__, QUESTION, setting, p, replaced, data_dir),
        "read_times_s": times, "networks": networks, "figures": relative_paths(paths, out),
        "timing_s": {**timing, "total": time.perf_counter() - started},
    }  # fmt: skip
    write_report(out, results, markdown_report(p, results))
    return results


def _time_label(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def markdown_report(p: SimpleNamespace, results: dict[str, Any]) -> str:
    """The Markdown table of a run's resolved parameters ``p`` and results."""
    from mosaicnet.protocols_support.reporting import markdown_table, seen_unseen_cells

    rows = []
    for name in NETWORKS:
        for t, s in zip(results["read_times_s"], results["networks"][name]["curve"], strict=True):
            rows.append([name.replace("_", "-"), _time_label(t), *seen_unseen_cells(s)])
    table = markdown_table(["training", "read time", "seen (%)", "unseen (%)"], rows)
    return (
        f"# Accuracy vs read time on the drifting chip ({results['setting']} setting)\n\n"
        f"Mosaic {p.MOSAIC_ROWS} x {p.MOSAIC_COLS} x {p.NEURONS_PER_TILE}"
        f"{f' (at most {p.MAX_HOPS} hop per synapse)' if p.MAX_HOPS is not None else ''}, "
        f"{p.DEVICE_MODEL} devices, {p.ITERATIONS} outer steps of {p.META_BATCH} "
        f"tasks, {p.INNER_STEPS} inner step(s) in training, "
        f"{p.TEST_INNER_STEPS or p.INNER_STEPS} at test, chip in the loop on Brian2 ({p.BACKEND})"
        f"{', drift compensation' if p.DRIFT_COMPENSATION else ''}; mean ± 95 % CI over "
        f"{p.EVAL_TASKS} tasks per kind; chance {100 / p.N_WAY:.0f} %.\n\n{table}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
