"""``mosaicnet train``: hardware-aware MAML meta-training of the torch clone into a run directory.

Method and defaults: :mod:`mosaicnet.meta` (EIS-Hub/meta-mosaic ``train.py``,
Raghunathan et al., NICE 2024).
"""

from __future__ import annotations

import argparse

HELP_ORDER = 40

# Command-line flags that map one-to-one onto TrainConfig fields.
_FLAG_FIELDS = {
    "iterations": "iterations",
    "meta_batch": "meta_batch",
    "tasks_per_pass": "tasks_per_pass",
    "inner_steps": "inner_steps",
    "layout": "layout",
    "seed": "seed",
    "neuron_model": "neuron_model",
    "torch_device": "torch_device",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="meta-train the network with MAML (hardware-aware, Mosaic layout) into a run dir",
        description=(
            "Meta-train the spiking network's torch clone with MAML: inner loop on the "
            "readout, outer Adam on all weights with the layout loss, pruning and, with "
            "--device-model, memristor programming noise and drift in the forward pass. "
            "The run directory receives config.json, spec.npz, checkpoint.pt and "
            "metrics.jsonl. Parameters not given take the value in --config, else the "
            "defaults of mosaicnet.meta.TrainConfig."
        ),
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="directory with shd_train.h5 (default: synthetic data, generated on first use "
        "into data/synthetic)",
    )
    parser.add_argument("--out", metavar="RUN_DIR", required=True, help="run directory")
    parser.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig fields")
    parser.add_argument("--iterations", type=int, help="outer steps (default 300)")
    parser.add_argument("--meta-batch", type=int, help="tasks per outer step (default 16)")
    parser.add_argument(
        "--tasks-per-pass",
        type=int,
        help="tasks run through the network at once; the meta-gradient is accumulated "
        "over passes (same result, less memory; default 4)",
    )
    parser.add_argument("--inner-steps", type=int, help="inner SGD steps (default 1)")
    parser.add_argument(
        "--layout",
        choices=("mosaic", "fc"),
        help="mosaic: 8x8 tiles x 4 neurons with layout loss (default); fc: fully-connected "
        "64-neuron baseline",
    )
    parser.add_argument(
        "--device-model",
        metavar="PRESET",
        help="device preset for hardware-aware training (see `mosaicnet devices`), or "
        "'none' (default: none)",
    )
    parser.add_argument("--seed", type=int, help="seed of the run (default 0)")
    parser.add_argument(
        "--neuron-model",
        metavar="NAME_OR_FILE",
        help="recurrent neurons: a preset (lif: the published model, default; cuba_lif, alif, "
        "adlif, lif_refractory) or a .json/.py file holding a NeuronModel's Brian2 code; "
        "change its constants with --set NAME=VALUE (e.g. --set tau_a=700*ms)",
    )
    parser.add_argument(
        "--set",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="set any TrainConfig field or neuron-model constant (repeatable; VALUE is "
        "JSON, else a string), e.g. --set max_hops=1 --set grad_clip=1.0 --set tau_mem=300*ms",
    )
    parser.add_argument(
        "--device",
        dest="torch_device",
        metavar="DEVICE",
        help="where torch trains: cpu (default) or cuda[:N] (a CUDA build of torch); a run "
        "may be resumed on another device",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR from its checkpoint"
    )
    group.add_argument(
        "--overwrite", action="store_true", help="start again in an existing RUN_DIR"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train)


def config_from_args(args: argparse.Namespace):
    """The TrainConfig of the command line: run / --config file / defaults, then flags."""
    from mosaicnet.meta.config import TrainConfig, load_config
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.protocols_support.parameters import parse_assignment

    # On resume the run's own configuration is the base; train() rejects any change
    # other than --iterations, naming the differing fields.
    if args.config:
        config = load_config(args.config)
    elif args.resume:
        config = RunDirectory.open(args.out).load_config()
    else:
        config = TrainConfig()
    changes = {
        field: getattr(args, flag)
        for flag, field in _FLAG_FIELDS.items()
        if getattr(args, flag) is not None
    }
    if args.device_model is not None:
        changes["device_model"] = None if args.device_model.lower() == "none" else args.device_model
    for assignment in args.set:
        name, value = parse_assignment(assignment)
        changes[name] = tuple(value) if name == "held_out_classes" else value
    return config.with_changes(**changes) if changes else config


def run_train(args: argparse.Namespace) -> int:
    """Train; print where the run is and its last metrics."""
    import torch

    from mosaicnet.errors import ConfigError
    from mosaicnet.meta.training import train

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    result = train(
        config,
        args.out,
        data_dir=args.data,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    last = result.last_metrics
    summary = ", ".join(
        f"{key} {last[key]:.3f}" for key in ("loss", "acc", "acc_all_units", "rate") if key in last
    )
    print(
        f"trained {result.iterations} steps into {result.run.path}"
        + (f": {summary}" if summary else "")
    )
    return 0
