"""``mosaicnet drift``: chip-in-the-loop few-shot accuracy against read time (device drift)."""

from __future__ import annotations

import argparse
import json

from mosaicnet.cli.evaluate_commands import add_run_arguments, percent_cell

HELP_ORDER = 46


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``drift`` command."""
    from mosaicnet.meta.evaluation_options import (
        DRIFT_READ_TIMES_S,
        PROTOCOLS,
        EvaluationOptions,
    )
    from mosaicnet.meta.read_time import format_read_time
    from mosaicnet.network.brian_backends import BACKENDS

    defaults = EvaluationOptions()
    times = ",".join(format_read_time(t).replace(" ", "") for t in DRIFT_READ_TIMES_S)
    parser = subparsers.add_parser(
        "drift",
        help="few-shot accuracy on the Brian2 chip at several read times after programming",
        description=(
            "Program a trained run into the Brian2 network's memristors once, then run the "
            "chip-in-the-loop meta-test (support set in Brian2, readout update written as "
            "conductance changes, query set in Brian2) at each read time. Prints accuracy "
            "on seen and unseen classes against read time."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--times",
        default=times,
        help=f"comma-separated read times after programming, in the order to report them "
        f"(default {times})",
    )
    parser.add_argument(
        "--tasks", type=int, help=f"meta-test tasks per class kind (default {defaults.tasks})"
    )
    parser.add_argument(
        "--backend",
        metavar="BACKEND",
        help=f"Brian2 backend: {', '.join(BACKENDS)} (runtime = cython; default "
        f"{defaults.backend})",
    )
    # The former name of --backend, kept so that old commands still work.
    parser.add_argument("--brian-device", dest="backend", help=argparse.SUPPRESS)
    parser.add_argument("--inner-steps", type=int, help="inner steps (default: as trained)")
    parser.add_argument(
        "--seed", type=int, help=f"seed of tasks and device noise (default {defaults.seed})"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, help="as `evaluate`")
    parser.add_argument(
        "--no-noise", action="store_true", help="no programming, write or read noise"
    )
    parser.add_argument(
        "--drift-compensation",
        action="store_true",
        help="global drift compensation of each pathway's gain",
    )
    parser.add_argument("--figure", metavar="PATH", help="write accuracy vs read time here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_drift)


def run_drift(args: argparse.Namespace) -> int:
    """Evaluate the chip at every read time; print the table or JSON, write the figure."""
    from mosaicnet.meta.chip_evaluation import drift_curve
    from mosaicnet.meta.evaluation_options import EvaluationOptions
    from mosaicnet.meta.read_time import parse_read_times
    from mosaicnet.meta.run_data import data_for_run
    from mosaicnet.network.brian_backends import check_backend

    # Bad input fails before anything is built.
    times = parse_read_times(args.times)
    given = {
        key: getattr(args, key)
        for key in ("tasks", "inner_steps", "seed", "protocol", "backend")
        if getattr(args, key) is not None
    }
    options = EvaluationOptions(
        **given,
        noise=not args.no_noise,
        drift_compensation=args.drift_compensation,
        progress=not (args.quiet or args.json),
    )
    check_backend(options.backend)
    data = data_for_run(args.run_dir, args.data, allow_other=args.other_data)
    curve = drift_curve(args.run_dir, options, times_s=times, data_dir=data)
    if args.figure:
        from mosaicnet.meta.drift_figure import plot_drift_curve

        curve["figure"] = str(plot_drift_curve(curve, args.figure))
    if args.json:
        print(json.dumps(curve, allow_nan=True))
    else:
        print(format_curve(curve))
    return 0


def format_curve(curve: dict) -> str:
    """The text table of a drift curve."""
    compensation = "on" if curve["drift_compensation"] else "off"
    lines = [
        f"run {curve['run']} on Brian2 {curve['backend']}, {curve['device_model']} devices, "
        f"{curve['n_way']}-way {curve['k_shot']}-shot, {curve['inner_steps']} inner step(s), "
        f"noise {'on' if curve['noise'] else 'off'}, drift compensation {compensation}",
        f"{'read time':<10} {'seen (N-way)':<18} {'unseen (N-way)':<18} "
        f"{'seen (20-unit)':<16} unseen (20-unit)",
    ]
    for index, label in enumerate(curve["labels"]):
        cells = [
            percent_cell(curve[f"accuracy_{kind}"][index], curve[f"ci95_{kind}"][index])
            for kind in ("seen", "unseen", "seen_20way", "unseen_20way")
        ]
        lines.append(f"{label:<10} {cells[0]:<18} {cells[1]:<18} {cells[2]:<16} {cells[3]}")
    if "figure" in curve:
        lines.append(f"figure: {curve['figure']}")
    return "\n".join(lines)
