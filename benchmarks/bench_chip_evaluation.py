"""Tasks per second: Brian2 chip-in-the-loop evaluation vs torch evaluation of the same tasks.

Target (issue 8): the Brian2 evaluation runs at least 1/3 of the torch evaluation's
tasks per second. Both evaluate the SAME meta-test tasks (same seed -> same task
streams) of one trained run:

* torch: :func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch` (the clone, batched
  over tasks), timed end to end;
* Brian2: :func:`mosaicnet.meta.chip_evaluation.evaluate_on_chip` (support set in
  Brian2, readout update written as conductance changes, query set in Brian2 on
  per-task readout copies). Reported twice: the evaluation itself (its
  ``wall_seconds``, i.e. what every further read time or task costs) and end to
  end including building/compiling the network once.

The chip is measured with and without device noise (``--noise both``): torch
evaluates the network without any device model, so "no noise" (drift only; the
devices are read once per program run) is the like-for-like comparison, and
"read noise" shows the price of the chip's read noise. The chip evaluation reads
every device of a copy (2 x 1.3e5 at the published size) once per program run
(``BrianNetwork(read_every="run")``: one read per task's support set and one per
its query set); reading at every sample instead made the noisy evaluation 5x
slower (ratio 0.16 on the same machine under load).

Setting (default): the published network size, 8 x 8 x 4 = 256 Mosaic neurons,
234 inputs (stride 3), 100 time bins, 5-way 5-shot with 5 queries per class, the
``pcm_aihwkit`` device model, trained for one outer step on synthetic SHD-layout
data (the speed does not depend on how well the run is trained). ``--small``
uses 2 x 4 x 4 = 32 neurons and 50 bins for a quick look.

Measured on this project's 2-core machine (quiet, load ~1; 32 tasks, published
size, cpp_standalone, 2026-11-28, commit e06ffa8): torch 9.17 tasks/s; Brian2
without noise 4.14 tasks/s (ratio 0.45, target met); Brian2 with read noise,
one read per run, 3.40 tasks/s (ratio 0.37, target met). Building the program
once took 44-60 s (excluded from the ratio: it is paid once per session, for any
number of tasks and read times). Earlier, with one read per sample and a load
average of ~35: torch 1.19, no noise 1.35 (1.13), read noise 0.19 tasks/s (0.16).

Run: ``python benchmarks/bench_chip_evaluation.py [--backend cpp_standalone]
[--tasks 16] [--small] [--noise on|off|both]``; prints one table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1 / 3


def make_run(root: Path, *, small: bool) -> tuple[Path, Path]:
    """Synthetic data and a run trained for one step; returns (run_dir, data_dir)."""
    from mosaicnet.data import write_synthetic_shd
    from mosaicnet.meta.config import TrainConfig
    from mosaicnet.meta.training import train

    data = root / "shd"
    write_synthetic_shd(data, seed=1, n_train=400, n_test=300)
    sizes = dict(rows=2, cols=4, neurons_per_tile=4, n_bins=50) if small else {}
    config = TrainConfig(
        iterations=1, meta_batch=4, device_model="pcm_aihwkit", dtype="float64", **sizes
    )
    train(config, root / "run", data_dir=data, progress=False)
    return root / "run", data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", "--brian-device", dest="backend", default="cpp_standalone",
        help="Brian2 backend of the chip (default cpp_standalone)",
    )  # fmt: skip
    parser.add_argument("--tasks", type=int, default=16, help="tasks per class kind")
    parser.add_argument("--small", action="store_true", help="a 32-neuron network")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--noise",
        choices=("on", "off", "both"),
        default="both",
        help="device noise of the chip (default both: two Brian2 builds)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from mosaicnet.meta.chip_evaluation import evaluate_on_chip
    from mosaicnet.meta.evaluation_options import EvaluationOptions
    from mosaicnet.meta.torch_evaluation import evaluate_on_torch

    settings = {"on": [True], "off": [False], "both": [False, True]}[args.noise]
    with tempfile.TemporaryDirectory(prefix="bench_chip_") as tmp:
        run, data = make_run(Path(tmp), small=args.small)
        options = EvaluationOptions(
            tasks=args.tasks, seed=0, progress=False, backend=args.backend, read_time_s="1d"
        )
        # Warm-up: imports, dataset cache, torch kernels; not timed.
        evaluate_on_torch(run, options, data_dir=data, tasks=1)
        tic = time.perf_counter()
        reference = evaluate_on_torch(run, options, data_dir=data)
        torch_s = time.perf_counter() - tic
        chips = []
        for noise in settings:
            tic = time.perf_counter()
            chip = evaluate_on_chip(run, options, data_dir=data, noise=noise)
            chips.append((noise, chip, time.perf_counter() - tic))

    n = reference["tasks"]
    torch_rate = n / torch_s
    print(
        f"{n} tasks ({reference['n_way']}-way {reference['k_shot']}-shot), "
        f"{'32' if args.small else '256'} neurons, Brian2 backend {args.backend}"
    )
    print(f"{'torch evaluation (no device noise)':<44} {torch_rate:8.2f} tasks/s")
    records = []
    for noise, chip, total_s in chips:
        assert chip["tasks"] == n
        rate, total_rate = n / chip["wall_seconds"], n / total_s
        ratio = rate / torch_rate
        label = "read noise, one read per run" if noise else "no noise, drift only"
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(
            f"{'Brian2 chip in the loop, ' + label:<44} {rate:8.2f} tasks/s   ratio "
            f"{ratio:.2f} (target >= {TARGET_RATIO:.2f}: {verdict})"
        )
        print(
            f"{'  incl. building once (' + format(chip['build_seconds'], '.0f') + ' s)':<44} "
            f"{total_rate:8.2f} tasks/s   ratio {total_rate / torch_rate:.2f}"
        )
        records.append(
            {
                "noise": noise,
                "brian2_tasks_per_s": rate,
                "ratio": ratio,
                "brian2_tasks_per_s_incl_build": total_rate,
                "build_seconds": chip["build_seconds"],
            }
        )
    print(
        json.dumps(
            {
                "tasks": n,
                "backend": args.backend,
                "small": args.small,
                "torch_tasks_per_s": torch_rate,
                "chip": records,
            }
        )
    )


if __name__ == "__main__":
    main()
