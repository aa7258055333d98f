"""``mosaicnet export``: a trained run's network as a NIR file (Neuromorphic Intermediate
Representation)."""

from __future__ import annotations

import argparse

HELP_ORDER = 48


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command."""
    parser = subparsers.add_parser(
        "export",
        help="write a trained run's network as a NIR graph (needs the nir package)",
        description=(
            "Write the trained network of a run (spec_best.npz, else spec.npz) as a NIR graph: "
            "input -> w_in -> LIF/CubaLIF with its recurrent loop -> w_out -> LI readout -> "
            "output. Weights: the trained (ideal) ones, or with --read-time the weights read "
            "from the chip programmed as the evaluation programs it, drift included. What NIR "
            "cannot say (subtractive reset, time step, max-over-time decision) is recorded in "
            "the graph's metadata (docs/nir.md)."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory of `mosaicnet train`")
    parser.add_argument("--nir", required=True, metavar="FILE", help="NIR file to write")
    parser.add_argument(
        "--read-time",
        metavar="T",
        help="time since programming the chip, as Brian2 text (30*day) or 30d (default: "
        "ideal weights, no chip)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the chip's programming noise (default 0)"
    )
    parser.add_argument(
        "--no-noise", action="store_true", help="program the chip without programming noise"
    )
    parser.add_argument(
        "--drift-compensation",
        action="store_true",
        help="global drift compensation of each pathway's gain at the read time",
    )
    parser.add_argument(
        "--time-step",
        metavar="DT",
        help="export for a discrete-time framework with this fixed step, as Brian2 text "
        "(snnTorch's importer: 0.1*ms); default: continuous time",
    )
    parser.add_argument(
        "--no-readout",
        action="store_true",
        help="end the graph at the recurrent spikes (importers without an LI node)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export the run's trained spec and print what was written."""
    from pathlib import Path

    from mosaicnet.errors import ConfigError
    from mosaicnet.meta.evaluation_options import EvaluationOptions
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.network.nir_graph import read_time_seconds, write_nir
    from mosaicnet.network.quantities import parse_quantity

    # Bad input fails before the run is read.
    path = Path(args.nir)
    if path.exists() and not args.overwrite:
        raise ConfigError(f"{path} exists; add --overwrite or choose another file name")
    read_time = None if args.read_time is None else read_time_seconds(args.read_time)
    time_step = None
    if args.time_step is not None:
        time_step = parse_quantity(args.time_step, name="--time-step")
    run = RunDirectory.open(args.run_dir)
    spec = run.load_spec()
    # The readout range of the run's evaluation chip.
    headroom = EvaluationOptions().for_run(run.load_config()).readout_headroom
    graph = spec.to_nir(
        read_time,
        seed=args.seed,
        noise=not args.no_noise,
        drift_compensation=args.drift_compensation,
        readout_headroom=headroom,
        readout=not args.no_readout,
        time_step=time_step,
    )
    write_nir(graph, path, overwrite=args.overwrite)
    nodes = ", ".join(f"{name} ({type(node).__name__})" for name, node in graph.nodes.items())
    print(f"wrote {path}: {nodes}")
    print(f"weights: {graph.metadata['mosaicnet_weights']}")
    return 0
