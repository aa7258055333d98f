"""``mosaicnet drift``: chip-in-the-loop few-shot accuracy against read time (device drift)."""

from __future__ import annotations

import argparse
import json
import math

HELP_ORDER = 46


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``drift`` command."""
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
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory of `mosaicnet train`")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="directory with shd_test.h5 (default: the data the run was trained on)",
    )
    parser.add_argument(
        "--other-data",
        action="store_true",
        help="allow --data to hold other files than the run was trained on",
    )
    parser.add_argument(
        "--times",
        default="1s,1h,1d,30d",
        help="comma-separated read times after programming (default 1s,1h,1d,30d)",
    )
    parser.add_argument(
        "--tasks", type=int, default=100, help="meta-test tasks per class kind (default 100)"
    )
    parser.add_argument(
        "--brian-device",
        default="cython",
        metavar="DEVICE",
        help="numpy, cython (= runtime, default), cpp_standalone, cuda_standalone or genn",
    )
    parser.add_argument("--inner-steps", type=int, help="inner steps (default: as trained)")
    parser.add_argument("--seed", type=int, default=0, help="seed of tasks and device noise")
    parser.add_argument(
        "--protocol", choices=("separate", "mixed"), default="separate", help="as `evaluate`"
    )
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
    from mosaicnet.meta.chip_evaluation import check_brian_device, drift_curve
    from mosaicnet.meta.read_time import parse_read_times
    from mosaicnet.meta.run_data import data_for_run

    times = parse_read_times(args.times)  # bad input fails before anything is built
    check_brian_device(args.brian_device)
    data = data_for_run(args.run_dir, args.data, allow_other=args.other_data)
    curve = drift_curve(
        args.run_dir,
        times_s=times,
        data_dir=data,
        brian_device=args.brian_device,
        tasks=args.tasks,
        inner_steps=args.inner_steps,
        noise=not args.no_noise,
        drift_compensation=args.drift_compensation,
        seed=args.seed,
        protocol=args.protocol,
        progress=not (args.quiet or args.json),
    )
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

    def cell(mean: float, half: float) -> str:
        if math.isnan(mean):
            return "n/a"
        return f"{100 * mean:.1f} %" + ("" if math.isnan(half) else f" +- {100 * half:.1f}")

    compensation = "on" if curve["drift_compensation"] else "off"
    lines = [
        f"run {curve['run']} on Brian2 {curve['brian_device']}, {curve['device_model']} devices, "
        f"{curve['n_way']}-way {curve['k_shot']}-shot, {curve['inner_steps']} inner step(s), "
        f"noise {'on' if curve['noise'] else 'off'}, drift compensation {compensation}",
        f"{'read time':<10} {'seen (N-way)':<18} {'unseen (N-way)':<18} "
        f"{'seen (20-unit)':<16} unseen (20-unit)",
    ]
    for index, label in enumerate(curve["labels"]):
        cells = [
            cell(curve[f"accuracy_{kind}"][index], curve[f"ci95_{kind}"][index])
            for kind in ("seen", "unseen", "seen_20way", "unseen_20way")
        ]
        lines.append(f"{label:<10} {cells[0]:<18} {cells[1]:<18} {cells[2]:<16} {cells[3]}")
    if "figure" in curve:
        lines.append(f"figure: {curve['figure']}")
    return "\n".join(lines)
