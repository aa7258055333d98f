"""Peak memory and seconds per outer step against ``TrainConfig.tasks_per_pass``.

The meta-gradient of a meta-batch is accumulated over passes of ``tasks_per_pass``
tasks (:func:`mosaicnet.meta.maml.meta_gradient`): the same gradient to rounding,
with the arrays of one pass alive at a time. This script measures what that buys
and costs at the published network (256 Mosaic neurons, 234 inputs, 100 steps,
5-way 5-shot, 5 queries, second order, layout loss, float32, one inner step unless
``--inner-steps``):

* time: every setting of one meta-batch interleaved in one process, repeated,
  median and minimum wall-clock seconds per outer step (meta-gradient and Adam);
* memory: each setting once more in a fresh subprocess, reporting the kernel's
  high-water mark of its resident set around one step after a warm-up step
  (:func:`bench_maml.memory_case`), the process with torch, Brian2 and the data
  included, as ``mosaicnet train`` has them.

Run: ``python benchmarks/bench_tasks_per_pass.py`` (``--meta-batches``,
``--passes``, ``--repeats``, ``--inner-steps``). ``--passes`` takes tasks per pass;
``0`` stands for the whole meta-batch in one pass.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_maml  # noqa: E402  (the shared setting and memory probe)

GIB = 1024**3


def _tasks(value: int) -> int | None:
    return None if value == 0 else value


def time_settings(meta_batch: int, passes: list[int], inner_steps: int, repeats: int) -> dict:
    """Interleaved wall-clock seconds per outer step for each tasks-per-pass setting."""
    from mosaicnet.meta.adam import AdamState

    built = {
        tasks: bench_maml.build(5, inner_steps, meta_batch=meta_batch, tasks_per_pass=_tasks(tasks))
        for tasks in passes
    }
    state = {tasks: (b[2], AdamState.zeros_like(b[2])) for tasks, b in built.items()}
    times: dict[int, list[float]] = {tasks: [] for tasks in passes}
    for rep in range(repeats + 1):  # the first round is a warm-up
        for tasks in passes:
            config, clone, _, cost, batches = built[tasks]
            params, adam = state[tasks]
            start = time.perf_counter()
            state[tasks] = bench_maml.outer_step(
                config, clone, params, cost, batches[rep % 3], adam, fast=True
            )
            if rep:
                times[tasks].append(time.perf_counter() - start)
    return times


def memory_in_subprocess(meta_batch: int, tasks: int, inner_steps: int) -> dict:
    """Peak resident set of one step in a fresh process (:func:`bench_maml.memory_case`)."""
    case = json.dumps([meta_batch, tasks, inner_steps])
    command = [sys.executable, __file__, "--memory-case", case]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--passes", type=int, nargs="+", default=[0, 8, 4, 2])
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from mosaicnet.meta.allocator import reuse_freed_memory

    reuse_freed_memory()  # as `mosaicnet train` runs
    if args.memory_case:
        meta_batch, tasks, inner_steps = json.loads(args.memory_case)
        result = bench_maml.memory_case(
            "fast", 5, inner_steps, meta_batch=meta_batch, tasks_per_pass=_tasks(tasks)
        )
        print(json.dumps(result))
        return
    from mosaicnet.meta.run_setup import resolve_data_dir

    resolve_data_dir(None, progress=True)  # generate the synthetic data once, up front
    print(f"{'meta-batch':>10} {'tasks/pass':>10} {'s/step median':>13} {'min':>6} "
          f"{'vs one pass':>11} {'peak GiB':>8}", flush=True)  # fmt: skip
    for meta_batch in args.meta_batches:
        passes = [tasks for tasks in args.passes if tasks < meta_batch]
        memory = {} if args.no_memory else {
            tasks: memory_in_subprocess(meta_batch, tasks, args.inner_steps) for tasks in passes
        }  # fmt: skip
        times = time_settings(meta_batch, passes, args.inner_steps, args.repeats)
        one_pass = statistics.median(times[passes[0]])
        for tasks in passes:
            median = statistics.median(times[tasks])
            peak = f"{memory[tasks]['peak_bytes'] / GIB:8.2f}" if memory else f"{'':>8}"
            label = "all" if tasks == 0 else str(tasks)
            print(f"{meta_batch:>10} {label:>10} {median:13.3f} {min(times[tasks]):6.3f} "
                  f"{median / one_pass:10.2f}x {peak}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
