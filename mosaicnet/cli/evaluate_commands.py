"""``mosaicnet evaluate``: few-shot meta-test of a trained run on a simulation backend.

Backends are listed in :data:`EVALUATION_BACKENDS`: name -> module exposing
``evaluate_run(run_dir, *, data_dir, tasks, inner_steps, seed, protocol,
progress) -> dict`` (the dict of :func:`mosaicnet.meta.torch_evaluation.evaluate_run`).
A backend is added with one entry here and one module; the command line, the
text table and the JSON output are shared.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math

HELP_ORDER = 45

#: Evaluation backends: name -> module with ``evaluate_run``.
EVALUATION_BACKENDS: dict[str, str] = {
    "torch": "mosaicnet.meta.torch_evaluation",
    "brian2": "mosaicnet.meta.chip_evaluation",
}

#: Options of the Brian2 chip-in-the-loop backend only: option -> keyword of its evaluate_run.
BRIAN2_OPTIONS: dict[str, str] = {
    "brian_device": "brian_device",
    "read_time": "read_time_s",
    "no_noise": "noise",
    "drift_compensation": "drift_compensation",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="few-shot meta-test of a trained run: accuracy on seen and unseen classes",
        description=(
            "Meta-test a run: for each task, adapt the readout on the support set (inner "
            "steps as trained unless --inner-steps) and classify the queries. Prints the "
            "N-way accuracy (argmax over the task's classes) and the published 20-unit "
            "accuracy (argmax over all readout units) on seen and unseen classes, with "
            "95 %% confidence intervals over tasks."
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
        help="allow --data to hold other files than the run was trained on (recorded in "
        "the result as 'data')",
    )
    parser.add_argument(
        "--backend",
        choices=sorted(EVALUATION_BACKENDS),
        default="torch",
        help="simulator that runs the network (default torch)",
    )
    parser.add_argument(
        "--tasks", type=int, default=100, help="meta-test tasks per class kind (default 100)"
    )
    parser.add_argument("--inner-steps", type=int, help="inner steps (default: as trained)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the meta-test tasks")
    parser.add_argument(
        "--protocol",
        choices=("separate", "mixed"),
        default="separate",
        help="separate: seen-class tasks and held-out-class tasks (default); mixed: tasks "
        "over all classes, each query scored as seen or unseen",
    )
    brian2 = parser.add_argument_group("brian2 backend (chip in the loop)")
    brian2.add_argument(
        "--brian-device",
        metavar="DEVICE",
        help="numpy, cython (= runtime, default), cpp_standalone, cuda_standalone or genn",
    )
    brian2.add_argument(
        "--read-time",
        metavar="T",
        help="time since programming the chip, e.g. 1s, 2.5h, 1d, 30d (default 1s)",
    )
    brian2.add_argument(
        "--no-noise",
        action="store_true",
        default=None,
        help="no programming, write or read noise (drift stays)",
    )
    brian2.add_argument(
        "--drift-compensation",
        action="store_true",
        default=None,
        help="global drift compensation of each pathway's gain",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Dispatch to the backend and print its result."""
    from mosaicnet.errors import ConfigError

    given = {key: getattr(args, key) for key in BRIAN2_OPTIONS if getattr(args, key) is not None}
    if given and args.backend != "brian2":
        options = ", ".join("--" + key.replace("_", "-") for key in given)
        raise ConfigError(f"{options} apply to --backend brian2 only")
    extra = {BRIAN2_OPTIONS[key]: value for key, value in given.items()}
    if "noise" in extra:
        extra["noise"] = not extra["noise"]
    from mosaicnet.meta.run_data import data_for_run

    data = data_for_run(args.run_dir, args.data, allow_other=args.other_data)
    module = importlib.import_module(EVALUATION_BACKENDS[args.backend])
    result = module.evaluate_run(
        args.run_dir,
        data_dir=data,
        tasks=args.tasks,
        inner_steps=args.inner_steps,
        seed=args.seed,
        protocol=args.protocol,
        progress=not (args.quiet or args.json),
        **extra,
    )
    if args.json:
        print(json.dumps(result, allow_nan=True))
    else:
        print(format_result(result))
    return 0


def format_result(result: dict) -> str:
    """The text table of an evaluation result."""

    def cell(kind: str, suffix: str) -> str:
        mean, half = result[f"accuracy_{kind}{suffix}"], result[f"ci95_{kind}{suffix}"]
        if math.isnan(mean):
            return "n/a"
        ci = "" if math.isnan(half) else f" +- {100 * half:.1f}"
        return f"{100 * mean:.1f} %{ci}"

    lines = [
        f"run {result['run']} on backend {result['backend']}: {result['n_way']}-way "
        f"{result['k_shot']}-shot, {result['inner_steps']} inner step(s) "
        f"(lr {result['inner_lr']:.3g}), protocol {result['protocol']}",
        f"{'classes':<8} {'tasks':>6}  {'N-way accuracy (95 % CI)':<26} "
        "20-unit accuracy (published metric)",
    ]
    if "read_time" in result:  # the brian2 backend: which chip, read when
        lines.insert(
            1,
            f"Brian2 device {result['brian_device']}, {result['device_model']} devices read "
            f"{result['read_time']} after programming (noise "
            f"{'on' if result['noise'] else 'off'}, drift compensation "
            f"{'on' if result['drift_compensation'] else 'off'})",
        )
    for kind in ("seen", "unseen"):
        lines.append(
            f"{kind:<8} {result[f'tasks_{kind}']:>6}  {cell(kind, ''):<26} {cell(kind, '_20way')}"
        )
    return "\n".join(lines)
