"""``mosaicnet check-equivalence``: Brian2 network vs torch clone on random Mosaic networks."""

from __future__ import annotations

import argparse
import json

HELP_ORDER = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check-equivalence`` command."""
    parser = subparsers.add_parser(
        "check-equivalence",
        help="check that the Brian2 network and the torch clone produce identical spikes",
        description=(
            "Build random networks of each neuron model on a small Mosaic (small-world "
            "recurrent mask), simulate random binary inputs in Brian2 (each backend, exact "
            "arithmetic, ideal devices) and in the float64 torch clone compiled from the same "
            "Brian2 code, and report differing spike bits and the largest "
            "readout difference. Exit status 0 when all spikes agree and the readout agrees "
            "within --tolerance, 1 otherwise."
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="first network seed (default 0)")
    parser.add_argument(
        "--networks", type=int, default=1, help="number of random networks (seeds S, S+1, ...)"
    )
    parser.add_argument(
        "--backends",
        default="numpy",
        help="comma-separated Brian2 backends, e.g. numpy,cython,cpp_standalone "
        "(cpp_standalone compiles one program per network: tens of seconds each)",
    )
    parser.add_argument(
        "--neuron-model",
        action="append",
        metavar="NAME_OR_FILE",
        help="neuron model to check: a preset (lif, cuba_lif, alif, adlif, lif_refractory) "
        "or a .json/.py file holding its Brian2 code; repeatable (default: every preset)",
    )
    parser.add_argument("--samples", type=int, default=6, help="input samples per network")
    parser.add_argument("--steps", type=int, default=60, help="time bins per sample")
    parser.add_argument(
        "--tolerance", type=float, default=1e-9, help="largest readout difference allowed"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Run :func:`mosaicnet.network.equivalence.check_equivalence` and print the report."""
    from mosaicnet.errors import ConfigError
    from mosaicnet.network.brian_backends import check_backend
    from mosaicnet.network.equivalence import check_equivalence

    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if not backends:
        raise ConfigError("--backends is empty; give e.g. --backends numpy,cpp_standalone")
    for backend in backends:
        check_backend(backend)
    for name in ("networks", "samples", "steps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be >= 1, got {getattr(args, name)}")
    from mosaicnet.network.neuron_presets import PRESETS, neuron_model

    # Resolve (and check) every model before any simulation starts.
    models = [neuron_model(name) for name in (args.neuron_model or list(PRESETS))]
    report = check_equivalence(
        seeds=range(args.seed, args.seed + args.networks),
        backends=backends,
        models=models,
        n_samples=args.samples,
        n_steps=args.steps,
        progress=not args.json,
    )
    passed = report.passed(args.tolerance)
    if args.json:
        data = report.to_dict()
        data["passed"] = passed
        data["tolerance"] = args.tolerance
        print(json.dumps(data, indent=2))
    else:
        print(report.summary())
    return 0 if passed else 1
