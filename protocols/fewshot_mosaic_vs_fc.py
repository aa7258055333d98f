"""Few-shot learning on the Mosaic vs a fully-connected network, evaluated on the Brian2 chip.

Question
--------
Does constraining a recurrent spiking network to the Mosaic -- 256 neurons in
8 x 8 tiles of 4, trained with the layout loss that makes long routes expensive
-- cost few-shot accuracy compared with a fully-connected network of 64 neurons
(a similar number of recurrent parameters), once both are programmed into
memristors and run as a Brian2 network? The talk reports that it does not
("Constrained network architecture does *not* reduce the performance of the
model", better on unseen classes), with 5-way 5-shot tasks, one inner step,
seen and unseen classes scored separately.

Work reproduced: K. C. Raghunathan et al., "Hardware-aware few-shot learning on
a memristor-based small-world architecture", NICE 2024 (talk; code
EIS-Hub/meta-mosaic); the Mosaic architecture: T. Dalgaty et al., "Mosaic:
in-memory computing and routing for small-world spike-based neuromorphic
systems", Nature Communications 15, 142 (2024).

What runs
---------
1. Meta-train both networks with MAML (inner loop on the readout only,
   ``INNER_STEPS`` steps from each class's support prototype: ten by default,
   one plain step from the meta-learned readout in the talk),
   hardware-aware: device noise of ``DEVICE_MODEL`` in the forward pass.
2. Program each trained network into its memristors (differential pairs with
   programming noise and per-device drift) as a Brian2 network.
3. Chip in the loop: every meta-test task's support set runs in Brian2, the
   readout update is computed from the recorded traces and written back, the
   query set runs in Brian2. Seen (meta-trained) and unseen (held-out) classes
   are scored separately, with 95 % confidence intervals over tasks. The torch
   clone with ideal weights is evaluated on the same tasks for comparison.
4. Hardware cost: memristors used, recurrent synapses by hop class, hops per
   spike, and events, energy and latency per inference (from Brian2 recordings
   of test samples).
5. Table (printed, ``results.md``), ``results.json``, figures (accuracies, the
   Mosaic layout, spike rasters, training curves) in ``--out``.

Run::

    python protocols/fewshot_mosaic_vs_fc.py --quick          # minutes on 2 cores
    python protocols/fewshot_mosaic_vs_fc.py --data ~/shd     # real SHD, full setting

``results.json`` keys: ``protocol``, ``question``, ``setting`` (full/quick/smoke),
``parameters``, ``data``, ``networks`` -> ``mosaic`` / ``fc`` -> {``description``,
``run``, ``brian2`` (chip-in-the-loop summary: ``accuracy_seen``, ``ci95_seen``,
``accuracy_unseen``, ``ci95_unseen``, ``*_20way``, ``tasks_seen``,
``tasks_unseen``), ``torch`` (same keys), ``hardware`` (``memristors``,
``recurrent_synapses``, ``synapses_intra_tile`` / ``_one_hop`` / ``_multi_hop``,
``hops_per_spike``, ...), ``energy`` (events, energy and latency per inference on the
network's layout and on one crossbar, :func:`mosaicnet.layout.energy.hardware_cost`;
``None`` where no per-event figure is published), ``final_training``},
``fc_on_mosaic`` (routing cost of the dense network placed on Mosaic tiles),
``figures``, ``timing_s``, ``replaced_by_setting`` (what ``--quick`` or ``--smoke``
replaced, see ``QUICK``).
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
# The Mosaic network (published: 8 x 8 tiles x 4 neurons = 256 neurons, beta 8).
MOSAIC_ROWS = 8
MOSAIC_COLS = 8
NEURONS_PER_TILE = 4
BETA = 8.0  # layout cost S = exp(BETA * hops) - 1
LAYOUT_LAMBDA = 1e-4  # weight of the layout loss mean(S * W_rec^2): TrainConfig default
# Routing limit: recurrent synapses only between neurons at most MAX_HOPS hops apart
# (1: own tile and the four neighbouring tiles); None lets the layout loss and pruning
# alone sparsify a dense matrix, which leaves most synapses two or more hops apart.
MAX_HOPS = 1
# The recurrent neurons: a preset (lif: the published model, tau_mem = 420*ms, thr = 2;
# cuba_lif, alif, adlif, lif_refractory) or a .json/.py file of Brian2 code, and the
# constants to change, as Brian2 quantities, e.g. {"tau_mem": 300 * ms}. The code and
# constants of a preset: print(mosaicnet.network.neuron_presets.lif().code()).
NEURON_MODEL = "lif"
NEURON_CONSTANTS: dict[str, Any] = {}
# The fully-connected baseline (published: 64 neurons).
FC_NEURONS = 64
# Few-shot protocol (published: 5-way 5-shot, one plain inner step of 1.0 on the
# readout from its meta-learned columns). The default inner loop is the one measured
# best on the speech dev set (docs/results.md, "The prototype start with
# curvature-scaled steps"): each task class's readout column starts at its support
# prototype and takes ten stable steps. The talk's setting: INNER_STEPS = 1,
# INNER_STEP_SCALE = "none", READOUT_INIT = "meta".
N_WAY = 5
K_SHOT = 5
N_QUERY = 5  # query samples per class
INNER_STEPS = 10
# How the inner steps scale their rate: "none" (plain SGD steps of rate INNER_LR),
# "curvature" (every step at INNER_LR over the support set's curvature: dimensionless,
# stable below 2) or "refine" (a plain first step, then curvature-scaled ones);
# docs/training.md.
INNER_STEP_SCALE = "curvature"
INNER_LR = 1.0
# Where the inner loop starts a task class's readout column: "meta" (published: its
# meta-learned column) or "prototype" (its support prototype, after Proto-MAML).
READOUT_INIT = "prototype"
# Inner steps at meta-test, on the recorded traces (no extra simulation): the
# readout's adaptation to new voices goes on improving well past the ten training
# steps (docs/results.md, 'Test-time inner steps'). None: as trained.
TEST_INNER_STEPS: int | None = 100
# Meta-training (published: 256 tasks per step, 5000 steps, Adam lr 1e-4).
ITERATIONS = 1000
META_BATCH = 16
OUTER_LR = 1e-3
TORCH_DEVICE = "cpu"  # where torch trains: "cpu" or "cuda" (a CUDA build of torch)
# Hardware: device preset of the memristors (mosaicnet.devices.list_presets()).
DEVICE_MODEL = "rram_hfox"
READ_TIME = 1 * second  # between programming and evaluation
# Meta-test.
EVAL_TASKS = 100  # tasks per kind (seen, unseen)
BACKEND = "cython"  # Brian2 backend: numpy, cython, cpp_standalone, cuda_standalone
RASTER_SAMPLES = 20  # test samples recorded in Brian2 for rasters and hops per spike
# The layout picture draws the strongest recurrent synapses only (all of a dense
# 256-neuron network would cover the grid): this fraction of the non-zero weights.
LAYOUT_FIGURE_FRACTION = 0.1

PARAMETERS = parameters_of(globals())  # the constants above: what --set and sweeps change

# ----------------------------------------------------------------------------- --quick, --smoke
# What each setting replaces; a run prints every replacement and records it in
# results.json ("replaced_by_setting"), and --set NAME=VALUE wins over both.
#: --quick: the README main job (target ~5 minutes on 2 cores on the synthetic data):
# 240 outer steps of 8 tasks with the script's inner loop. On the synthetic data the
# Mosaic's unseen-class accuracy after 240 steps is 62.5 % with it, 44.5 % with ten
# "refine" steps and near chance with one plain step (torch, 100 tasks;
# docs/results.md, "The main job").
QUICK = {"ITERATIONS": 240, "META_BATCH": 8, "EVAL_TASKS": 20, "RASTER_SAMPLES": 8}
#: --smoke: --quick made a pipeline check in well under a minute (not science).
SMOKE = {
    **QUICK, "MOSAIC_ROWS": 2, "MOSAIC_COLS": 2, "NEURONS_PER_TILE": 4, "FC_NEURONS": 8,
    "ITERATIONS": 2, "META_BATCH": 2, "EVAL_TASKS": 2, "RASTER_SAMPLES": 2, "BACKEND": "numpy",
}  # fmt: skip

QUESTION = (
    "Does the Mosaic-constrained network (small-world layout, layout loss) lose few-shot "
    "accuracy against a fully-connected network of similar size, evaluated on the Brian2 "
    "network after programming into memristors?"
)


def train_config(p: SimpleNamespace, layout: str):
    """The :class:`~mosaicnet.meta.config.TrainConfig` of one of the two networks."""
    from mosaicnet.protocols_support.parameters import train_config_from_parameters

    return train_config_from_parameters(
        p, layout=layout, beta=p.BETA, fc_neurons=p.FC_NEURONS, layout_lambda=p.LAYOUT_LAMBDA,
        inner_steps=p.INNER_STEPS, inner_step_scale=p.INNER_STEP_SCALE, inner_lr=p.INNER_LR,
        outer_lr=p.OUTER_LR, max_hops=p.MAX_HOPS,
    )  # fmt: skip


# ----------------------------------------------------------------------------- run
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

    Parameters
    ----------
    params
        Changes to :data:`PARAMETERS` (names as there; quantities as Brian2
        quantities or text), applied after the quick/smoke changes.
    out_dir
        Output directory (refused if it holds results, unless ``overwrite``; an
        unfinished run with the same settings is resumed).
    quick, smoke
        Use the :data:`QUICK` (or :data:`SMOKE`) setting.
    data
        SHD directory (``shd_train.h5``, ``shd_test.h5``); ``None``: the synthetic
        default, generated on first use.
    """
    from mosaicnet.layout import Layout
    from mosaicnet.meta.run_directory import RunDirectory
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
        smoke=smoke, data=data, overwrite=overwrite, progress=progress,
    )  # fmt: skip

    timing: dict[str, float] = {}
    networks: dict[str, dict[str, Any]] = {}
    recordings = {}
    for name in ("mosaic", "fc"):
        run_dir = out / RUNS / name
        tic = time.perf_counter()
        train_or_resume(train_config(p, name), run_dir, data=data_dir, progress=progress)
        timing[f"train_{name}"] = time.perf_counter() - tic

        tic = time.perf_counter()
        chip = evaluate_brian(
            run_dir, data=data_dir, tasks=p.EVAL_TASKS, backend=p.BACKEND,
            read_time_s=seconds(p.READ_TIME), seed=p.SEED, progress=progress,
        )  # fmt: skip
        timing[f"brian2_evaluation_{name}"] = time.perf_counter() - tic
        tic = time.perf_counter()
        reference = evaluate_torch(
            run_dir, data=data_dir, tasks=p.EVAL_TASKS, seed=p.SEED, progress=progress
        )
        timing[f"torch_evaluation_{name}"] = time.perf_counter() - tic

        tic = time.perf_counter()
        recording = record_test_samples(
            run_dir, data_dir, n_samples=p.RASTER_SAMPLES, backend=p.BACKEND,
            read_time_s=seconds(p.READ_TIME), seed=p.SEED,
        )  # fmt: skip
        timing[f"brian2_recording_{name}"] = time.perf_counter() - tic
        recordings[name] = recording
        spec = recording.spec
        metrics = RunDirectory(run_dir).read_metrics()
        networks[name] = {
            "description": Layout.from_dict(dict(spec.layout)).describe(),
            "run": str(Path(RUNS) / name),
            "brian2": chip,
            "torch": reference,
            "hardware": hardware_costs.hardware_costs(spec, recording.spike_counts()),
            "energy": energy_per_inference(recording),
            "firing_rate_hz": recording.result.firing_rate_hz(),
            "final_training": metrics[-1] if metrics else None,
        }

    # The dense baseline placed on Mosaic tiles: what routing it would need there.
    fc = recordings["fc"]
    fc_on_mosaic = hardware_costs.dense_on_mosaic_costs(
        fc.spec, p.NEURONS_PER_TILE, p.BETA, fc.spike_counts()
    )

    # ------------------------------------------------------------------------- figures
    fig_dir = out / FIGURES
    paths: dict[str, Path] = {}
    labels = {n: _short_name(networks[n]["hardware"]) for n in networks}
    groups = [f"{labels[n]}\n{backend}" for backend in ("Brian2", "torch") for n in networks]
    evaluations = [networks[n][key] for key in ("brian2", "torch") for n in networks]
    paths["accuracy"] = figures.plot_accuracy_bars(
        fig_dir / "accuracy_seen_unseen.png",
        groups,
        figures.seen_unseen_series(evaluations),
        title=f"{p.N_WAY}-way {p.K_SHOT}-shot, {_steps_text(p)}, 95 % CI over {p.EVAL_TASKS} tasks",
        chance=1.0 / p.N_WAY,
    )
    mosaic_spec = recordings["mosaic"].spec
    mosaic_layout = Layout.from_dict(dict(mosaic_spec.layout))
    paths["layout"] = plot_layout(
        mosaic_layout,
        mosaic_spec.w_rec,
        fig_dir / "layout_mosaic.png",
        fraction=p.LAYOUT_FIGURE_FRACTION,
        description=networks["mosaic"]["description"],
    )
    for name, recording in recordings.items():
        sample = 0
        label = int(recording.labels[sample])
        paths[f"raster_{name}"] = plot_sample(
            recording.result, fig_dir / f"raster_{name}.png", sample=sample, spec=recording.spec,
            predicted=recording.decision(sample),
            label=recording.label_names.get(label, label),
            title=f"{labels[name]} on Brian2 ({p.BACKEND}), test sample of class "
            f"{recording.label_names.get(label, label)!r}",
        )  # fmt: skip
    paths["training"] = figures.plot_training_curves(
        fig_dir / "training_curves.png",
        {labels[n]: RunDirectory(out / RUNS / n).read_metrics() for n in networks},
        title="meta-training (hardware-aware, " + p.DEVICE_MODEL + ")",
    )

    # ------------------------------------------------------------------------- table
    results = {
        **results_head(__file__, QUESTION, setting, p, replaced, data_dir),
        "networks": networks, "fc_on_mosaic": fc_on_mosaic,
        "figures": relative_paths(paths, out),
        "timing_s": {**timing, "total": time.perf_counter() - started},
    }  # fmt: skip
    write_report(out, results, markdown_report(p, results))
    return results


def energy_per_inference(recording) -> dict[str, Any]:
    """Events, energy and latency of one inference (mean over the recorded samples).

    :func:`mosaicnet.layout.energy.hardware_cost` of the Brian2 recording: the network
    on its layout and on one crossbar; terms without a published figure are ``None``
    and named in ``missing``.
    """
    from mosaicnet.layout.energy import hardware_cost, per_inference_counts

    result = recording.result
    return hardware_cost(
        recording.spec,
        per_inference_counts(result.input_spikes),
        per_inference_counts(result.recurrent_spikes),
        int(result.recurrent_spikes.shape[1]),
    )


def energy_table(results: dict[str, Any]) -> str:
    """Markdown table of the events, energy and latency per inference, with the gaps."""
    from mosaicnet.protocols_support.reporting import markdown_table, number

    def joules(value):
        return "n/a" if value is None else f"{value:.3g}"

    rows, missing = [], set()
    for net in results["networks"].values():
        energy = net.get("energy")
        if not energy:
            continue
        for placement in ("layout", "one_crossbar"):
            cost = energy[placement]
            counts = cost["counts"]
            missing.update(cost["missing"])
            rows.append([
                _short_name(net["hardware"]), cost["layout"].split(" =")[0],
                number(counts["synaptic_events"]), number(counts["device_reads"]),
                number(counts["routing_hops"]), number(counts["neuron_updates"]),
                joules(cost["energy_total_J"]), joules(cost["latency_s"]),
            ])  # fmt: skip
    if not rows:
        return ""
    table = markdown_table(
        ["network", "placed on", "synaptic events", "memristor reads", "routing hops",
         "neuron updates", "energy / inference (J)", "latency / inference (s)"],
        rows,
    )  # fmt: skip
    gaps = (
        "; no published per-event figure for " + ", ".join(sorted(missing)) + " (n/a: term "
        "left out; docs/mosaic.md, 'Energy and latency per inference')"
        if missing
        else ""
    )
    return f"\nPer inference (mean over the recorded test samples){gaps}:\n\n{table}"


def plot_layout(layout, w_rec, path: Path, *, fraction: float, description: str) -> Path:
    """The trained Mosaic with its strongest ``fraction`` of recurrent synapses drawn."""
    import numpy as np

    from mosaicnet.layout.figures import plot_tile_grid

    magnitudes = np.abs(w_rec[w_rec != 0])
    threshold = float(np.quantile(magnitudes, 1.0 - fraction)) if magnitudes.size else 0.0
    return plot_tile_grid(
        layout, w_rec, path, threshold=threshold,
        title=f"trained Mosaic {description}: strongest {fraction:.0%} of "
        f"{magnitudes.size} recurrent synapses (|w| >= {threshold:.3g})",
    )  # fmt: skip


def _short_name(hardware: dict[str, Any]) -> str:
    kind = "FC" if hardware["layout"].startswith("fully") else "Mosaic"
    return f"{kind} {hardware['neurons']}"


def _steps_text(p: SimpleNamespace) -> str:
    """The inner steps in words: in training, and at test where they differ."""
    text = f"{p.INNER_STEPS} inner step(s)"
    if p.TEST_INNER_STEPS is not None and p.TEST_INNER_STEPS != p.INNER_STEPS:
        text += f" in training, {p.TEST_INNER_STEPS} at test"
    return text


def markdown_report(p: SimpleNamespace, results: dict[str, Any]) -> str:
    """The Markdown tables of a run's resolved parameters ``p`` and results."""
    from mosaicnet.protocols_support.parameters import seconds
    from mosaicnet.protocols_support.reporting import (
        markdown_table,
        number,
        percent_ci,
        seen_unseen_cells,
    )

    rows = []
    for net in results["networks"].values():
        hw = _short_name(net["hardware"])
        for key, where in (("brian2", f"Brian2 ({p.BACKEND}), chip in the loop"),
                           ("torch", "torch clone, ideal weights")):  # fmt: skip
            e = net[key]
            rows.append([
                hw, where, *seen_unseen_cells(e),
                percent_ci(e.get("accuracy_seen_20way"), e.get("ci95_seen_20way")),
                percent_ci(e.get("accuracy_unseen_20way"), e.get("ci95_unseen_20way")),
            ])  # fmt: skip
    accuracy = markdown_table(
        ["network", "evaluated on", "seen (%)", "unseen (%)", "seen, 20-unit (%)",
         "unseen, 20-unit (%)"],
        rows,
    )  # fmt: skip
    cost_rows = []
    for net in results["networks"].values():
        hw = net["hardware"]
        cost_rows.append([
            _short_name(hw), hw["memristors"], hw["recurrent_synapses"],
            hw["synapses_intra_tile"], hw["synapses_one_hop"], hw["synapses_multi_hop"],
            number(hw["mean_hops_per_synapse"]), number(hw["hops_per_spike"]),
            number(net["firing_rate_hz"]),
        ])  # fmt: skip
    if results.get("fc_on_mosaic"):
        f = results["fc_on_mosaic"]
        fc = results["networks"]["fc"]["hardware"]
        cost_rows.append([
            f"FC {fc['neurons']} placed on {f['layout'].split(' =')[0]}", fc["memristors"],
            fc["recurrent_synapses"], f["synapses_intra_tile"], f["synapses_one_hop"],
            f["synapses_multi_hop"], number(f["mean_hops_per_synapse"]),
            number(f["hops_per_spike"]), number(results["networks"]["fc"]["firing_rate_hz"]),
        ])  # fmt: skip
    costs = markdown_table(
        ["network", "memristors", "recurrent synapses", "intra-tile", "1 hop", ">= 2 hops",
         "hops / synapse", "hops / spike", "rate (Hz)"],
        cost_rows,
    )  # fmt: skip
    tasks = p.EVAL_TASKS
    return (
        f"# Few-shot: Mosaic vs fully connected ({results['setting']} setting)\n\n"
        f"{p.N_WAY}-way {p.K_SHOT}-shot, {_steps_text(p)}, "
        f"{p.ITERATIONS} outer steps of {p.META_BATCH} tasks, hardware-aware "
        f"({p.DEVICE_MODEL}), read {seconds(p.READ_TIME):g} s after programming. "
        f"Accuracy: mean ± 95 % CI over {tasks} tasks per kind; chance "
        f"{100 / p.N_WAY:.0f} %. Data: {results['data']}.\n\n"
        f"{accuracy}\nHardware cost (memristors: 2 per non-zero weight; hops per spike from "
        f"Brian2 recordings of {p.RASTER_SAMPLES} test samples):\n\n{costs}"
        f"{energy_table(results)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    from mosaicnet.protocols_support.parameters import protocol_main

    return protocol_main(argv, script=__file__, description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())
