"""``mosaicnet evaluate``: few-shot meta-test of a trained run on the torch clone or the chip.

``--backend torch`` (default) runs :func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch`;
``--backend brian2`` or a Brian2 backend name (``numpy``, ``cython``,
``cpp_standalone``, ``cuda_standalone``) runs the chip in the loop,
:func:`mosaicnet.meta.chip_evaluation.evaluate_on_chip` (``brian2``: on the
default Brian2 backend). The options become one
:class:`~mosaicnet.meta.evaluation_options.EvaluationOptions`; its defaults are
the command's.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

HELP_ORDER = 45

#: Options of the chip-in-the-loop evaluation only: command-line dest -> options field.
CHIP_FLAGS: dict[str, str] = {
    "read_time": "read_time_s",
    "no_noise": "noise",
    "drift_compensation": "drift_compensation",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command."""
    from mosaicnet.meta.evaluation_options import PROTOCOLS, EvaluationOptions
    from mosaicnet.meta.read_time import format_read_time
    from mosaicnet.network.brian_backends import BACKENDS

    defaults = EvaluationOptions()
    parser = subparsers.add_parser(
        "evaluate",
        help="few-shot meta-test of a trained run: accuracy on seen and unseen classes",
        description=(
            "Meta-test a run: for each task, adapt the readout on the support set (inner "
            "steps as trained unless --inner-steps) and classify the queries. Prints the "
            "N-way accuracy (argmax over the task's classes) and the published 20-unit "
            "accuracy (argmax over all readout units) on seen and unseen classes, with "
            "95 % confidence intervals over tasks."
        ),
    )
    add_run_arguments(parser, other_data_note=" (recorded in the result as 'data')")
    parser.add_argument(
        "--backend",
        choices=("torch", "brian2", *BACKENDS, "runtime"),
        default="torch",
        metavar="BACKEND",
        help="torch: the clone (default); brian2: the chip in the loop on Brian2's "
        f"{defaults.backend} backend; or the chip on the Brian2 backend named: "
        f"{', '.join(BACKENDS)}",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        help=f"meta-test tasks per class kind (default {defaults.tasks})",
    )
    parser.add_argument("--inner-steps", type=int, help="inner steps (default: as trained)")
    parser.add_argument(
        "--device",
        dest="torch_device",
        metavar="DEVICE",
        help="where the torch clone runs (--backend torch): cpu (default) or cuda[:N]",
    )
    parser.add_argument(
        "--seed", type=int, help=f"seed of the meta-test tasks (default {defaults.seed})"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="separate: seen-class tasks and held-out-class tasks (default); mixed: tasks "
        "over all classes, each query scored as seen or unseen",
    )
    chip = parser.add_argument_group("chip in the loop (a Brian2 backend)")
    # The former name of a Brian2 --backend, kept so that old commands still work.
    chip.add_argument("--brian-device", help=argparse.SUPPRESS)
    chip.add_argument(
        "--read-time",
        metavar="T",
        help="time since programming the chip, e.g. 1s, 2.5h, 1d, 30d (default "
        f"{format_read_time(defaults.read_time_s).replace(' ', '')})",
    )
    chip.add_argument(
        "--no-noise",
        action="store_true",
        default=None,
        help="no programming, write or read noise (drift stays)",
    )
    chip.add_argument(
        "--drift-compensation",
        action="store_true",
        default=None,
        help="global drift compensation of each pathway's gain",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_evaluate)


def add_run_arguments(parser: argparse.ArgumentParser, *, other_data_note: str = "") -> None:
    """``RUN_DIR``, ``--data`` and ``--other-data``: the run a meta-test command tests."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory of `mosaicnet train`")
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="directory with shd_test.h5 (default: the data the run was trained on)",
    )
    parser.add_argument(
        "--other-data",
        action="store_true",
        help="allow --data to hold other files than the run was trained on" + other_data_note,
    )


def percent_cell(mean: float, half: float) -> str:
    """``"54.3 % +- 4.1"`` for an accuracy and its 95 % CI half-width; NaN: ``"n/a"``."""
    if math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.1f} %" + ("" if math.isnan(half) else f" +- {100 * half:.1f}")


def evaluation_options(args: argparse.Namespace) -> tuple[bool, Any]:
    """``(on_chip, EvaluationOptions)`` from the command line; flags the choice cannot use fail."""
    from mosaicnet.errors import ConfigError
    from mosaicnet.meta.evaluation_options import EvaluationOptions

    on_chip = args.backend != "torch"
    chip_only = {key: getattr(args, key) for key in CHIP_FLAGS if getattr(args, key) is not None}
    if args.brian_device is not None:
        chip_only["brian_device"] = args.brian_device
    if chip_only and not on_chip:
        flags = ", ".join("--" + key.replace("_", "-") for key in chip_only)
        raise ConfigError(f"{flags} apply to the chip only; add --backend brian2 (or numpy, ...)")
    fields: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("tasks", "inner_steps", "seed", "protocol", "torch_device")
        if getattr(args, key) is not None
    }
    if on_chip:
        backend = args.brian_device or args.backend
        if backend != "brian2":
            fields["backend"] = backend
        fields.update(
            {CHIP_FLAGS[key]: value for key, value in chip_only.items() if key in CHIP_FLAGS}
        )
        if "noise" in fields:
            fields["noise"] = not fields["noise"]
    fields["progress"] = not (args.quiet or args.json)
    return on_chip, EvaluationOptions(**fields)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate on the torch clone or the chip and print the result."""
    from mosaicnet.meta.run_data import data_for_run

    on_chip, options = evaluation_options(args)  # bad options fail before data is resolved
    data = data_for_run(args.run_dir, args.data, allow_other=args.other_data)
    if on_chip:
        from mosaicnet.meta.chip_evaluation import evaluate_on_chip as evaluate
    else:
        from mosaicnet.meta.torch_evaluation import evaluate_on_torch as evaluate
    result = evaluate(args.run_dir, options, data_dir=data)
    if args.json:
        print(json.dumps(result, allow_nan=True))
    else:
        print(format_result(result))
    return 0


def format_result(result: dict) -> str:
    """The text table of an evaluation result."""

    def cell(kind: str, suffix: str) -> str:
        return percent_cell(result[f"accuracy_{kind}{suffix}"], result[f"ci95_{kind}{suffix}"])

    where = (
        "the torch clone"
        if result["simulator"] == "torch"
        else f"the Brian2 chip (backend {result['backend']})"
    )
    lines = [
        f"run {result['run']} on {where}: {result['n_way']}-way {result['k_shot']}-shot, "
        f"{result['inner_steps']} inner step(s) "
        f"(lr {result['inner_lr']:.3g}), protocol {result['protocol']}",
        f"{'classes':<8} {'tasks':>6}  {'N-way accuracy (95 % CI)':<26} "
        "20-unit accuracy (published metric)",
    ]
    if "read_time" in result:  # the chip: which devices, read when
        lines.insert(
            1,
            f"{result['device_model']} devices read "
            f"{result['read_time']} after programming (noise "
            f"{'on' if result['noise'] else 'off'}, drift compensation "
            f"{'on' if result['drift_compensation'] else 'off'})",
        )
    for kind in ("seen", "unseen"):
        lines.append(
            f"{kind:<8} {result[f'tasks_{kind}']:>6}  {cell(kind, ''):<26} {cell(kind, '_20way')}"
        )
    return "\n".join(lines)
