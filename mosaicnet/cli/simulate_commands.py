"""``mosaicnet simulate`` and ``mosaicnet describe``: run a network spec in Brian2.

``simulate SPEC_OR_RUN`` bins samples of an SHD-layout data set for the network,
simulates them on a Brian2 backend and prints spike statistics per population
(total spikes, mean rate in Hz, fraction of silent neurons); ``--raster`` writes
the combined raster / readout figure of the first simulated sample
(:func:`mosaicnet.network.figures.plot_sample`). ``describe SPEC_OR_RUN`` prints
the Brian2 equations the network runs (:meth:`BrianNetwork.describe`).

``SPEC_OR_RUN`` is a spec file written by ``NetworkSpec.save`` or a training run
directory of ``mosaicnet train`` (its ``spec.npz``; the binning and spatial
stride the run was trained with come from its ``config.json``).

Input preprocessing
-------------------
Each sample is binned into time bins over a window and spatially sampled:
channels ``0, k, 2k, ...`` of the data set's channels (offset 0 of the
published augmentation, docs/data.md, 'Spatial sampling'). One bin is one simulation step.

* Training run: ``n_bins``, ``window_s`` and ``spatial_stride`` of its configuration.
* Spec file: the published window of 1.4 s (EIS-Hub/meta-mosaic: 100 bins over
  1.4 s) cut into bins of the spec's ``dt``: ``n_bins = round(1.4 s / dt)``
  and the window is ``n_bins * dt`` (exactly 1.4 s for the default 14 ms).
  The stride is ``ceil(channels / n_in)`` when that gives exactly ``n_in``
  channels (700 channels: n_in 700 -> 1, 234 -> 3, 70 -> 10), or ``--stride``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mosaicnet.errors import ConfigError, DataFormatError

# Light (no torch): the read-time syntax every command shares.
from mosaicnet.meta.read_time import parse_read_time

if TYPE_CHECKING:  # heavy imports stay inside the command functions
    import numpy as np

    from mosaicnet.meta.config import TrainConfig
    from mosaicnet.network.brian_network import SimulationResult
    from mosaicnet.network.spec import NetworkSpec

HELP_ORDER = 42

#: Window of the published preprocessing, seconds (EIS-Hub/meta-mosaic: 100 bins over 1.4 s).
PUBLISHED_WINDOW_S = 1.4

#: Spiking populations of the network (the readout is non-spiking).
SPIKING_POPULATIONS: tuple[str, ...] = ("input", "recurrent")
READOUT_NOTE = (
    "the readout units are non-spiking leaky integrators: they have no spikes and are "
    "not in spike_counts or mean_rates_hz"
)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` and ``describe`` commands."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a network spec or trained run in Brian2: spike statistics, rasters",
        description=(
            "Bin samples of an SHD-layout data set for the network (one bin per simulation "
            "step, channels 0, K, 2K, ... for spatial stride K), simulate them on a Brian2 "
            "backend with the spec's memristive synapses, and print per population the "
            "total spikes, the mean rate in Hz and the fraction of neurons silent in every "
            "sample. The readout is non-spiking (leaky integrators) and has no spike counts."
        ),
    )
    _add_source_argument(parser)
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="directory with shd_train.h5 / shd_test.h5 (default: for a run, the data it "
        "was trained on; for a spec file, the synthetic default in data/synthetic)",
    )
    parser.add_argument(
        "--other-data",
        action="store_true",
        help="allow --data to hold other files than the run was trained on",
    )
    parser.add_argument(
        "--samples", type=int, default=8, help="number of samples to simulate (default 8)"
    )
    _add_backend_argument(parser)
    _add_read_time_argument(parser)
    parser.add_argument(
        "--raster",
        metavar="PATH",
        help="write the input / recurrent / readout figure of the first simulated sample "
        "(format from the suffix: .png, .pdf, .svg, ...)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--split", choices=("train", "test"), default="test", help="data split (default test)"
    )
    parser.add_argument(
        "--stride",
        type=int,
        help="spatial-sampling stride K (default: the run's, or derived from the spec's n_in)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sample choice, the device programming noise and read noise (default 0)",
    )
    parser.set_defaults(func=run_simulate)

    describe = subparsers.add_parser(
        "describe",
        help="print the Brian2 equations a network spec or trained run runs",
        description=(
            "Build the Brian2 network of a spec (or of a training run's spec) and print its "
            "groups, equations, thresholds, resets, synapse code, device read code and "
            "constants. Standalone backends compile the program first (tens of seconds)."
        ),
    )
    _add_source_argument(describe)
    _add_backend_argument(describe)
    _add_read_time_argument(describe)
    describe.add_argument(
        "--steps",
        type=int,
        help="time steps per sample (default: the run's n_bins, or round(1.4 s / dt))",
    )
    describe.set_defaults(func=run_describe)


def _add_source_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SPEC_OR_RUN",
        help="network spec file (.npz, NetworkSpec.save) or training run directory",
    )


def _add_backend_argument(parser: argparse.ArgumentParser) -> None:
    # Checked by check_backend rather than argparse choices: an unknown or
    # unavailable backend then fails with the package's message and exit status 2.
    parser.add_argument(
        "--backend",
        default="numpy",
        help="Brian2 backend: numpy (default), cython, cpp_standalone, cuda_standalone, genn",
    )


def _add_read_time_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-time",
        metavar="TIME",
        help="time after programming at which the memristors are read: seconds or a "
        "number with a unit (ms, s, min, h, d, w, y), e.g. 3600, 1h, 30d; default: the "
        "spec's read time",
    )


# ---------------------------------------------------------------------------
# Pieces (usable from scripts)
# ---------------------------------------------------------------------------


def load_network(source: str | Path) -> tuple[NetworkSpec, TrainConfig | None]:
    """The spec of a spec file or training run directory, and the run's configuration.

    Returns
    -------
    (spec, config)
        ``config`` is ``None`` for a spec file.

    Raises
    ------
    DataFormatError
        ``source`` does not exist or is not a spec file.
    RunDirectoryError
        A directory that is not a training run, or a run without a spec yet.
    """
    path = Path(source)
    if not path.exists():
        raise DataFormatError(
            f"{path} does not exist; give a network spec file (.npz, written by "
            "NetworkSpec.save) or a training run directory (`mosaicnet train --out DIR`)"
        )
    if path.is_dir():
        from mosaicnet.meta.run_directory import RunDirectory

        run = RunDirectory.open(path)
        return run.load_spec(), run.load_config()
    from mosaicnet.network.spec import NetworkSpec

    return NetworkSpec.load(path), None


def input_stride(n_channels: int, n_in: int, stride: int | None = None) -> int:
    """Spatial-sampling stride that maps ``n_channels`` data channels onto ``n_in`` inputs.

    Taking every ``k``-th channel from offset 0 keeps ``ceil(n_channels / k)``
    channels. Without ``stride`` the stride is ``ceil(n_channels / n_in)``,
    accepted only if it gives exactly ``n_in`` channels.

    Raises
    ------
    ConfigError
        No stride gives ``n_in`` channels, or the given stride gives another count.
    """
    if stride is not None:
        if stride < 1:
            raise ConfigError(f"--stride must be >= 1, got {stride}")
        kept = math.ceil(n_channels / stride)
        if kept != n_in:
            raise ConfigError(
                f"spatial-sampling stride {stride} keeps {kept} of the data's {n_channels} "
                f"channels but the "
                f"network has n_in={n_in} inputs; use a stride that keeps {n_in} channels or "
                "a spec built for this data"
            )
        return stride
    derived = max(1, math.ceil(n_channels / n_in))
    if math.ceil(n_channels / derived) != n_in:
        near = sorted({max(1, derived - 1), derived, derived + 1})
        options = ", ".join(f"stride {k} -> {math.ceil(n_channels / k)}" for k in near)
        raise ConfigError(
            f"the network has n_in={n_in} inputs but no spatial-sampling stride of the "
            f"data's {n_channels} channels gives {n_in} ({options}); build the spec for one "
            "of these counts or pass --stride"
        )
    return derived


def input_binning(spec: NetworkSpec, config: TrainConfig | None) -> tuple[int, float]:
    """``(n_bins, window_s)`` the network's inputs are binned with (see module docstring)."""
    if config is not None:
        return int(config.n_bins), float(config.window_s)
    from brian2 import second

    dt_s = float(spec.neuron.dt / second)
    n_bins = max(1, round(PUBLISHED_WINDOW_S / dt_s))
    return n_bins, n_bins * dt_s


def spike_statistics(result: SimulationResult) -> dict[str, dict[str, float]]:
    """Per spiking population: total spikes, mean rate (Hz), fraction of silent neurons.

    The rate is spikes per neuron per second of simulated time over all
    samples; a neuron is silent if it spiked in none of the samples.

    Returns
    -------
    dict
        ``{"input" | "recurrent": {"neurons", "spikes", "rate_hz", "silent_fraction"}}``
        for the populations the result recorded.
    """
    import numpy as np

    stats: dict[str, dict[str, float]] = {}
    for population, spikes in (
        ("input", result.input_spikes),
        ("recurrent", result.recurrent_spikes),
    ):
        if spikes is None:
            continue
        n_samples, n_steps, n_neurons = spikes.shape
        total = int(np.count_nonzero(spikes))
        duration_s = n_samples * n_steps * result.dt_s
        stats[population] = {
            "neurons": int(n_neurons),
            "spikes": total,
            "rate_hz": total / (n_neurons * duration_s),
            "silent_fraction": float(np.mean(~spikes.any(axis=(0, 1)))),
        }
    return stats


def choose_samples(n_available: int, n_samples: int, seed: int) -> np.ndarray:
    """``n_samples`` distinct sample indices drawn with ``seed``, sorted.

    Raises
    ------
    ConfigError
        ``n_samples`` < 1 or more than the split holds.
    """
    import numpy as np

    if n_samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {n_samples}")
    if n_samples > n_available:
        raise ConfigError(
            f"--samples {n_samples} exceeds the {n_available} samples of the split; ask for "
            "fewer or use the other split"
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_available, size=n_samples, replace=False))


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def run_simulate(args: argparse.Namespace) -> int:
    """Simulate samples of a data split on a Brian2 backend; print statistics."""
    from mosaicnet.network.brian_backends import check_backend

    started = time.perf_counter()
    check_backend(args.backend)  # before any loading: a wrong name fails at once
    read_time_s = None if args.read_time is None else parse_read_time(args.read_time)
    if args.raster is not None:
        from mosaicnet.network.figures import check_figure_path

        check_figure_path(args.raster)
    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {args.samples}")
    spec, config = load_network(args.source)

    from mosaicnet.meta.run_data import data_for_run
    from mosaicnet.meta.run_setup import load_split, resolve_data_dir

    if config is not None:  # a run: its own data unless told otherwise
        data_dir = data_for_run(
            args.source, args.data, allow_other=args.other_data, progress=not args.json
        )
    else:
        data_dir = resolve_data_dir(args.data, progress=not args.json)
    dataset = load_split(data_dir, args.split)
    stride = args.stride if args.stride is not None or config is None else config.spatial_stride
    stride = input_stride(dataset.n_channels, spec.n_in, stride)
    n_bins, window_s = input_binning(spec, config)
    indices = choose_samples(len(dataset), args.samples, args.seed)
    x = dataset.binned(indices, n_bins=n_bins, window_s=window_s, stride=stride).numpy()
    dropped = int(dataset.last_dropped_spikes)

    from mosaicnet.network.brian_backends import RUNTIME_BACKENDS
    from mosaicnet.network.brian_network import simulate

    if args.backend in RUNTIME_BACKENDS:
        import brian2

        # BrianNetwork applies its ``seed`` only to standalone programs; runtime
        # read noise draws from Brian2's global generator, seeded here so that
        # the same --seed gives the same spikes.
        brian2.seed(args.seed)
    options: dict[str, Any] = {"programming_seed": args.seed, "seed": args.seed}
    if read_time_s is not None:
        options["t_read_s"] = read_time_s
    result = simulate(spec, x, backend=args.backend, progress=not args.json, **options)
    stats = spike_statistics(result)
    # Published decision rule: argmax over units of the readout's maximum over time.
    predicted = [int(unit) for unit in result.readout.max(axis=1).argmax(axis=1)]
    labels = [int(label) for label in dataset.labels[indices]]

    raster = None
    if args.raster is not None:
        from mosaicnet.network.figures import plot_sample

        name = dataset.label_names.get(labels[0])
        raster = plot_sample(
            result,
            args.raster,
            sample=0,
            spec=spec,
            predicted=predicted[0],
            title=(
                f"{args.split} sample {int(indices[0])}, label {labels[0]}"
                + (f" ({name})" if name else "")
                + f", predicted {predicted[0]}; backend {args.backend}"
            ),
        )

    from brian2 import second

    report = {
        "spike_counts": {key: int(value["spikes"]) for key, value in stats.items()},
        "mean_rates_hz": {key: value["rate_hz"] for key, value in stats.items()},
        "silent_fraction": {key: value["silent_fraction"] for key, value in stats.items()},
        "neurons": {"input": spec.n_in, "recurrent": spec.n_rec, "readout": spec.n_out},
        "readout": READOUT_NOTE,
        "backend": args.backend,
        "samples": int(len(indices)),
        "sample_indices": [int(i) for i in indices],
        "labels": labels,
        "predicted": predicted,
        "split": args.split,
        "data_file": str(Path(data_dir) / f"shd_{args.split}.h5"),
        "source": str(args.source),
        "stride": stride,
        "n_bins": n_bins,
        "window_s": window_s,
        "dt_s": result.dt_s,
        "read_time_s": (read_time_s if read_time_s is not None else float(spec.read_time / second)),
        "dropped_late_spikes": dropped,
        "wall_time_s": result.wall_s,
        "total_time_s": time.perf_counter() - started,
        "raster": None if raster is None else str(raster),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report, spec))
    return 0


def format_report(report: dict[str, Any], spec: NetworkSpec) -> str:
    """The text form of a ``simulate`` report."""
    layout = spec.layout
    lines = [
        f"network {report['source']}: n_in {spec.n_in}, n_rec {spec.n_rec} "
        f"({layout['rows']} x {layout['cols']} tiles of {layout['neurons_per_tile']}), "
        f"n_out {spec.n_out}; device {spec.device_model} read at {report['read_time_s']:g} s",
        f"data {report['data_file']}: {report['samples']} sample(s) {report['sample_indices']}, "
        f"{report['n_bins']} bins over {report['window_s']:g} s (one simulation step of "
        f"dt = {1e3 * report['dt_s']:g} ms per bin), channels 0, {report['stride']}, "
        f"{2 * report['stride']}, ... (stride {report['stride']}); "
        f"{report['dropped_late_spikes']} spike(s) after the window dropped",
    ]
    bin_s = report["window_s"] / report["n_bins"]
    if not math.isclose(bin_s, report["dt_s"], rel_tol=1e-9):
        # Training runs bin by their configuration, whatever the spec's dt: the
        # network sees one bin per step, so simulated time is steps x dt.
        lines.append(
            f"note: bins are {1e3 * bin_s:g} ms wide but the spec steps {1e3 * report['dt_s']:g} "
            "ms; the network sees one bin per step (times in figures are steps x dt)"
        )
    lines += [
        f"backend {report['backend']}: simulation {report['wall_time_s']:.2f} s "
        f"(total with loading and building {report['total_time_s']:.2f} s)",
        "",
        f"{'population':<11}{'neurons':>8}{'spikes':>10}{'rate (Hz)':>11}{'silent':>9}",
    ]
    for population in SPIKING_POPULATIONS:
        if population not in report["spike_counts"]:
            continue
        lines.append(
            f"{population:<11}{report['neurons'][population]:>8}"
            f"{report['spike_counts'][population]:>10}"
            f"{report['mean_rates_hz'][population]:>11.2f}"
            f"{100 * report['silent_fraction'][population]:>8.1f}%"
        )
    lines.append(
        f"{'readout':<11}{report['neurons']['readout']:>8}{'-':>10}{'-':>11}{'-':>9}   "
        "(non-spiking leaky integrators)"
    )
    lines += [
        "",
        f"labels:    {report['labels']}",
        f"predicted: {report['predicted']}  (argmax over units of the readout maximum in time)",
    ]
    if report["raster"] is not None:
        lines.append(f"wrote {report['raster']}")
    return "\n".join(lines)


def run_describe(args: argparse.Namespace) -> int:
    """Print the Brian2 description of a spec's network."""
    from mosaicnet.network.brian_backends import check_backend

    check_backend(args.backend)
    read_time_s = None if args.read_time is None else parse_read_time(args.read_time)
    spec, config = load_network(args.source)
    n_steps = args.steps if args.steps is not None else input_binning(spec, config)[0]
    if n_steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {n_steps}")

    from mosaicnet.network.brian_network import BrianNetwork

    with BrianNetwork(
        spec, n_steps, backend=args.backend, record=(), t_read_s=read_time_s
    ) as network:
        print(f"spec {args.source}")
        print(network.describe())
    return 0
