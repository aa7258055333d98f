"""Few-shot learning with four neuron models on the Mosaic, torch and chip in the loop.

Question
--------
How do the neuron models a computational neuroscientist would write in Brian2
-- the published LIF, a current-based LIF, an adaptive-threshold LIF and an
adaptive LIF with sub-threshold coupling -- compare at the talk's setting
(5-way 5-shot, one inner step, hardware-aware training on the Mosaic), on
seen and unseen classes, on the torch clone and on the Brian2 network
programmed into memristors? Each model is the same Brian2 code in both
simulators: the torch clone is compiled from it.

Models (:mod:`mosaicnet.network.neuron_presets`): ``lif`` (EIS-Hub/meta-mosaic,
Raghunathan et al., NICE 2024), ``cuba_lif`` (Cramer et al., IEEE TNNLS 2022;
Zenke & Vogels, Neural Computation 2021), ``alif`` (Bellec et al., NeurIPS
2018), ``adlif`` (Bittar & Garner, Front. Neurosci. 2022). Any preset name or a
``.json``/``.py`` file of the user's own model can be listed in
``NEURON_MODELS``; ``NEURON_CONSTANTS`` changes constants per model, as Brian2
quantities (``{"alif": {"tau_a": 1400 * ms}}``) or Brian2 text.

What runs
---------
For each model: meta-train the Mosaic network (``MAX_HOPS``-limited routing,
device noise of ``DEVICE_MODEL``), meta-test on the torch clone and chip in
the loop in Brian2 (seen and unseen classes scored separately, 95 % CIs over
tasks), record test samples in Brian2 for firing rate, memristors and hops per
spike. Table (``results.md``), ``results.json`` and figures (accuracies, one
spike raster per model) in ``--out``.

Run::

    python protocols/neuron_models.py --quick
    python protocols/neuron_models.py --data ../shared/data/tts-digits-dev

``results.json`` keys: ``protocol``, ``question``, ``setting``, ``parameters``,
``data``, ``models`` -> name -> {``code`` (the Brian2 code), ``run``, ``torch``,
``brian2`` (accuracy summaries), ``hardware`` (memristors, synapses by hop
class, hops per spike), ``firing_rate_hz``}, ``figures``, ``timing_s``,
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
NEURON_MODELS = ["lif", "cuba_lif", "alif", "adlif"]
# Constants to change per model, as Brian2 quantities, e.g. {"alif": {"tau_a": 1400 * ms}};
# print(mosaicnet.network.neuron_presets.alif().code()) shows a preset's code and constants.
NEURON_CONSTANTS: dict[str, dict[str, Any]] = {}
MOSAIC_ROWS = 8
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
MAX_HOPS = 1  # routing limit, as in fewshot_mosaic_vs_fc.py
N_WAY = 5
K_SHOT = 5
N_QUERY = 5
INNER_STEPS = 1
ITERATIONS = 300
META_BATCH = 8
DEVICE_MODEL = "rram_hfox"
READ_TIME = 1 * second  # between programming and evaluation
EVAL_TASKS = 100  # tasks per kind (seen, unseen)
BACKEND = "cython"  # Brian2 backend: numpy, cython, cpp_standalone, cuda_standalone
RASTER_SAMPLES = 20

PARAMETERS = parameters_of(globals())  # the constants above: what --set and sweeps change

# ----------------------------------------------------------------------------- --quick, --smoke
# What each setting replaces; a run prints every replacement and records it in
# results.json ("replaced_by_setting"), and --set NAME=VALUE wins over both.
#: --quick: minutes on 2 cores on the synthetic default (a 4 x 4 Mosaic).
QUICK = {
    "MOSAIC_ROWS": 4, "MOSAIC_COLS": 4, "ITERATIONS": 120, "META_BATCH": 8, "EVAL_TASKS": 20,
    "RASTER_SAMPLES": 6, "MAX_HOPS": None,
}  # fmt: skip
#: --smoke: --quick made a pipeline check of seconds (not science).
SMOKE = {
    **QUICK, "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2, "ITERATIONS": 2, "META_BATCH": 2,
    "EVAL_TASKS": 2, "RASTER_SAMPLES": 2, "BACKEND": "numpy",
}  # fmt: skip

QUESTION = (
    "How do the LIF, current-based LIF, adaptive-threshold LIF and adaptive LIF compare in "
    "few-shot accuracy on the Mosaic, on the torch clone and chip in the loop?"
)


def train_config(p: SimpleNamespace, model: str):
    """Training configuration of one model's run."""
    from mosaicnet.protocols_support.parameters import json_value, train_config_from_parameters

    return train_config_from_parameters(
        p, inner_steps=p.INNER_STEPS, max_hops=p.MAX_HOPS, neuron_model=model,
        neuron_constants=json_value(dict(p.NEURON_CONSTANTS.get(model, {}))),
    )  # fmt: skip


def train_configs(p: SimpleNamespace) -> dict[str, Any]:
    """Model name -> training configuration; every model and constant checked."""
    from mosaicnet.errors import ConfigError

    if not p.NEURON_MODELS:
        raise ConfigError("NEURON_MODELS is empty; list presets or model files to compare")
    unknown = sorted(set(p.NEURON_CONSTANTS) - set(p.NEURON_MODELS))
    if unknown:
        raise ConfigError(
            f"NEURON_CONSTANTS names models {unknown} that are not in NEURON_MODELS "
            f"{p.NEURON_MODELS}"
        )
    return {name: train_config(p, name) for name in p.NEURON_MODELS}


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
    from mosaicnet.network.figures import plot_sample
    from mosaicnet.protocols_support import figures, hardware_costs
    from mosaicnet.protocols_support.evaluation import evaluate_brian, evaluate_torch
    from mosaicnet.protocols_support.output import FIGURES, RUNS, results_head, start_run
    from mosaicnet.protocols_support.parameters import seconds
    from mosaicnet.protocols_support.recordings import record_test_samples
    from mosaicnet.protocols_support.reporting import relative_paths, write_report
    from mosaicnet.protocols_support.runs import train_or_resume

    started = time.perf_counter()
    # --quick/--smoke and --set applied (replacements printed), every parameter checked
    # and the data found; only then is the output folder prepared.
    p, replaced, setting, data_dir, out = start_run(
        __file__, PARAMETERS, QUICK, SMOKE, params=params, out_dir=out_dir, quick=quick,
        smoke=smoke, data=data, overwrite=overwrite, progress=progress, check=train_configs,
    )  # fmt: skip
    configs = train_configs(p)

    timing: dict[str, float] = {}
    models: dict[str, dict[str, Any]] = {}
    recordings = {}
    for name, config in configs.items():
        label = Path(name).stem
        run_dir = out / RUNS / label
        tic = time.perf_counter()
        train_or_resume(config, run_dir, data=data_dir, progress=progress)
        timing[f"train_{label}"] = time.perf_counter() - tic
        tic = time.perf_counter()
        reference = evaluate_torch(
            run_dir, data=data_dir, tasks=p.EVAL_TASKS, seed=p.SEED, progress=progress
        )
        chip = evaluate_brian(
            run_dir, data=data_dir, tasks=p.EVAL_TASKS, backend=p.BACKEND,
            read_time_s=seconds(p.READ_TIME), seed=p.SEED, progress=progress,
        )  # fmt: skip
        timing[f"evaluation_{label}"] = time.perf_counter() - tic
        recording = record_test_samples(
            run_dir, data_dir, n_samples=p.RASTER_SAMPLES, backend=p.BACKEND,
            read_time_s=seconds(p.READ_TIME), seed=p.SEED,
        )  # fmt: skip
        recordings[label] = recording
        model = recording.spec.neuron.model
        models[label] = {
            "code": model.code(),
            "run": str(Path(RUNS) / label),
            "torch": reference,
            "brian2": chip,
            "hardware": hardware_costs.hardware_costs(recording.spec, recording.spike_counts()),
            "firing_rate_hz": recording.result.firing_rate_hz(),
        }

    fig_dir = out / FIGURES
    paths: dict[str, Path] = {}
    groups = [f"{name}\n{where}" for where in ("torch", "Brian2") for name in models]
    evaluations = [models[n][key] for key in ("torch", "brian2") for n in models]
    paths["accuracy"] = figures.plot_accuracy_bars(
        fig_dir / "accuracy_by_neuron_model.png", groups,
        figures.seen_unseen_series(evaluations),
        title=f"{p.N_WAY}-way {p.K_SHOT}-shot on the Mosaic, 95 % CI over "
        f"{p.EVAL_TASKS} tasks",
        chance=1.0 / p.N_WAY,
    )  # fmt: skip
    for label, recording in recordings.items():
        sample_label = int(recording.labels[0])
        paths[f"raster_{label}"] = plot_sample(
            recording.result, fig_dir / f"raster_{label}.png", sample=0, spec=recording.spec,
            predicted=recording.decision(0),
            label=recording.label_names.get(sample_label, sample_label),
            title=f"{label} on Brian2 ({p.BACKEND})",
        )  # fmt: skip
    results = {
        **results_head(__file__, QUESTION, setting, p, replaced, data_dir),
        "models": models, "figures": relative_paths(paths, out),
        "timing_s": {**timing, "total": time.perf_counter() - started},
    }  # fmt: skip
    write_report(out, results, markdown_report(p, results))
    return results


def markdown_report(p: SimpleNamespace, results: dict[str, Any]) -> str:
    """The Markdown table of a run's resolved parameters ``p`` and results."""
    from mosaicnet.protocols_support.parameters import seconds
    from mosaicnet.protocols_support.reporting import markdown_table, number, seen_unseen_cells

    rows = []
    for name, entry in results["models"].items():
        hw = entry["hardware"]
        rows.append([
            name, *seen_unseen_cells(entry["torch"]), *seen_unseen_cells(entry["brian2"]),
            number(entry["firing_rate_hz"]), hw["memristors"], hw["synapses_multi_hop"],
            number(hw["hops_per_spike"]),
        ])  # fmt: skip
    table = markdown_table(
        ["neuron model", "torch seen (%)", "torch unseen (%)", "chip seen (%)",
         "chip unseen (%)", "rate (Hz)", "memristors", ">= 2-hop synapses", "hops / spike"],
        rows,
    )  # fmt: skip
    codes = "\n".join(
        f"### {name}\n\n```python\n{entry['code']}\n```\n"
        for name, entry in results["models"].items()
    )
    return (
        f"# Neuron models on the Mosaic ({results['setting']} setting)\n\n"
        f"{p.N_WAY}-way {p.K_SHOT}-shot, {p.INNER_STEPS} inner step(s), "
        f"{p.ITERATIONS} outer steps of {p.META_BATCH} tasks, hardware-aware "
        f"({p.DEVICE_MODEL}), chip read {seconds(p.READ_TIME):g} s after programming on "
        f"Brian2 ({p.BACKEND}). Seen and unseen classes in separate tasks; mean ± 95 % "
        f"CI over {p.EVAL_TASKS} tasks each; chance {100 / p.N_WAY:.0f} %. "
        f"Data: {results['data']}.\n\n{table}\nThe Brian2 code of each model:\n\n{codes}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
