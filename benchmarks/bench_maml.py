"""Seconds and memory per MAML outer step: readout-only fast path vs recompute, vs published JAX.

Setting (the published one, EIS-Hub/meta-mosaic): 8 x 8 x 4 = 256 Mosaic neurons,
234 inputs (stride 3), 100 time steps, 20 readout units, meta-batch 8, 5-way
5-shot with 5 queries per class (and 10-shot with 10 queries), second-order MAML,
layout loss on. One "step" is what ``mosaicnet train`` does per outer iteration
minus data loading: the meta-gradient (:func:`mosaicnet.meta.maml.meta_gradient`)
and the Adam update.

Measured here, on synthetic SHD-layout data:

* ``fast``: the default path (the recurrent layer once per recording, inner steps on the
  readout alone) at 1 and 10 inner steps, on the fused recurrent layer
  (``TorchClone(fused="auto")``; ``benchmarks/bench_fused.py`` compares it with
  the reference loop);
* ``naive``: the reference path that re-runs the network at every inner step (the
  baseline the fast path must beat as steps grow), at 1 and 2 inner steps; its
  10-step time is extrapolated linearly from those two (``--naive-steps 10`` runs
  it, slowly);
* the published JAX implementation, measured on these machines by the project
  (constants below, not re-run here: JAX is not a dependency).

Timing: the cases run interleaved in one process, repeated; the minimum is printed
(the machine is shared, the minimum is the least disturbed run) with the median,
for wall-clock time and for the CPU time of this process (``time.process_time``,
summed over its threads): on an oversubscribed machine the wall time also counts
waiting for a core, the CPU time only the work.
Memory: each case runs once more in a fresh subprocess that reports its peak
resident set (``ru_maxrss``: torch's CPU allocator is invisible to tracemalloc) and
the growth over its state just before the first step.

Run: ``python benchmarks/bench_maml.py`` (``--repeats``, ``--threads``, ``--shots``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

#: Published JAX reference (EIS-Hub/meta-mosaic train.py) measured on these machines:
#: (k_shot, inner_steps) -> (seconds per outer step, peak GiB) at meta-batch 8, 5-way.
JAX_REFERENCE = {
    (5, 1): (0.51, 1.26),
    (5, 10): (1.55, 1.70),
    (10, 1): (0.99, None),
    (10, 10): (3.05, None),
}
META_BATCH = 8
N_WAY = 5
GIB = 1024**3


def build(k_shot: int, inner_steps: int, *, seed: int = 0, meta_batch: int = META_BATCH, **changes):
    """Config, clone, parameters, layout cost and a few meta-batches for one case.

    ``changes`` are further :class:`~mosaicnet.meta.config.TrainConfig` fields.
    """
    from mosaicnet.data.tasks import TaskSampler
    from mosaicnet.meta.config import TrainConfig
    from mosaicnet.meta.maml import init_meta_params
    from mosaicnet.meta.run_setup import (
        build_layout,
        build_spec,
        few_shot_config,
        load_split,
        make_clone,
        resolve_data_dir,
        to_meta_batch,
    )

    config = TrainConfig(
        meta_batch=meta_batch, n_way=N_WAY, k_shot=k_shot, n_query=k_shot,
        inner_steps=inner_steps, seed=seed, **changes,
    )  # fmt: skip
    dataset = load_split(resolve_data_dir(None), "train")
    sampler = TaskSampler(dataset, few_shot_config(config), split="meta-train", seed=seed)
    spec = build_spec(config, 234)
    clone = make_clone(spec, config)
    params = init_meta_params(clone.init_params(), config)
    cost = build_layout(config).cost_tensor(dtype=torch.float32)
    batches = [to_meta_batch(sampler.sample(meta_batch)) for _ in range(3)]
    return config, clone, params, cost, batches


def outer_step(config, clone, params, cost, batch, adam, *, fast: bool):
    """One meta-gradient and Adam update; returns the new parameters and Adam state."""
    from mosaicnet.meta.adam import adam_step
    from mosaicnet.meta.maml import meta_gradient

    grads, _, _ = meta_gradient(params, batch, clone, config, layout_cost=cost, fast_readout=fast)
    return adam_step(params, grads, adam, config.outer_lr)


def time_cases(cases, repeats: int) -> dict:
    """Interleaved timing of every case; returns wall times per case."""
    from mosaicnet.meta.adam import AdamState

    built = {case: build(case[1], case[2]) for case in cases}
    state = {case: (b[2], AdamState.zeros_like(b[2])) for case, b in built.items()}
    times: dict = {case: [] for case in cases}
    cpu: dict = {case: [] for case in cases}
    for case in cases:  # warm-up: first calls pay one-off costs (allocator, dispatch)
        config, clone, params, cost, batches = built[case]
        outer_step(config, clone, params, cost, batches[0], state[case][1],
                   fast=case[0] == "fast")  # fmt: skip
    for rep in range(repeats):
        for case in cases:
            config, clone, _, cost, batches = built[case]
            params, adam = state[case]
            start, start_cpu = time.perf_counter(), time.process_time()
            state[case] = outer_step(config, clone, params, cost, batches[rep % 3], adam,
                                     fast=case[0] == "fast")  # fmt: skip
            times[case].append(time.perf_counter() - start)
            cpu[case].append(time.process_time() - start_cpu)
        print(f"  repeat {rep + 1}/{repeats} done", file=sys.stderr, flush=True)
    return times, cpu


def _status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status in bytes (Linux), or None."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_case(path: str, k_shot: int, steps: int, **build_options) -> dict:
    """Run one case once in this (fresh) process; report peak RSS and its growth.

    The peak is the kernel's high-water mark of this process's resident set
    (VmHWM), reset just before the step, so it counts the step and everything
    alive during it; ``ru_maxrss`` is not used because after fork + exec it keeps
    the parent's peak.
    """
    from mosaicnet.meta.adam import AdamState

    config, clone, params, cost, batches = build(k_shot, steps, **build_options)
    adam = AdamState.zeros_like(params)
    outer_step(config, clone, params, cost, batches[1], adam, fast=path == "fast")  # warm-up
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")  # reset VmHWM to the current resident set
    except OSError:
        pass
    before = _status_bytes("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    outer_step(config, clone, params, cost, batches[0], adam, fast=path == "fast")
    peak = _status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_bytes": peak, "growth_bytes": peak - before}


def memory_in_subprocess(case, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--memory-case", json.dumps(list(case))]
    if threads:
        command += ["--threads", str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default torch's)")
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument(
        "--naive-steps", type=int, default=2, help="most inner steps run on the naive path"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from mosaicnet.meta.allocator import reuse_freed_memory

    reuse_freed_memory()  # as `mosaicnet train` runs (mosaicnet.meta.allocator)
    if args.memory_case:
        path, k_shot, steps = json.loads(args.memory_case)
        print(json.dumps(memory_case(path, k_shot, steps)))
        return

    from mosaicnet.meta.run_setup import resolve_data_dir

    resolve_data_dir(None, progress=True)  # generate the synthetic data once, up front
    cases = [("fast", k, s) for k in args.shots for s in (1, 10)]
    cases += [("naive", k, s) for k in args.shots for s in sorted({1, args.naive_steps})]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); meta-batch "
          f"{META_BATCH}, {N_WAY}-way, queries = shots, 256 neurons, 100 steps",
          flush=True)  # fmt: skip
    memory = {}
    if not args.no_memory:
        for case in cases:
            if case[0] == "fast" or case[2] == 1:
                memory[case] = memory_in_subprocess(case, args.threads)
    times, cpu = time_cases(cases, args.repeats)

    print()
    print(f"{'path':<6} {'shots':>5} {'inner':>5} {'wall s min':>10} {'median':>7} "
          f"{'CPU s min':>9} {'peak GiB':>8} {'JAX s':>6}")  # fmt: skip
    for case in cases:
        path, k, s = case
        mem = memory.get(case)
        peak = f"{mem['peak_bytes'] / GIB:8.2f}" if mem else f"{'':8}"
        jax = JAX_REFERENCE.get((k, s), (None, None))[0] if path == "fast" else None
        print(f"{path:<6} {k:>5} {s:>5} {min(times[case]):10.3f} "
              f"{statistics.median(times[case]):7.3f} {min(cpu[case]):9.3f} {peak} "
              f"{jax or '':>6}")  # fmt: skip
    print()
    for label, measured in (("wall", times), ("CPU", cpu)):
        for k in args.shots:
            _report(label, measured, k, args.naive_steps)
    for k in args.shots:
        for s in (1, 10):
            mem, jax_peak = memory.get(("fast", k, s)), JAX_REFERENCE[(k, s)][1]
            if mem and jax_peak:
                print(f"{k}-shot, {s} step(s): peak {mem['peak_bytes'] / GIB:.2f} GiB vs JAX "
                      f"{jax_peak:.2f} GiB ({mem['peak_bytes'] / GIB / jax_peak:.2f}x; goal "
                      "<= 0.5x)")  # fmt: skip


def _report(label: str, measured: dict, k: int, naive_steps: int) -> None:
    """Print the ratios of one time measure (wall or CPU) for one shot count."""

    def best(path: str, steps: int) -> float:
        return min(measured[(path, k, steps)])

    fast1, fast10 = best("fast", 1), best("fast", 10)
    naive1, naive_n = best("naive", 1), best("naive", naive_steps)
    if naive_steps == 10:
        naive10, how = naive_n, "measured"
    else:
        naive10 = naive1 + 9 * (naive_n - naive1) / (naive_steps - 1)
        how = f"extrapolated from 1 and {naive_steps}"
    jax1, jax10 = JAX_REFERENCE[(k, 1)][0], JAX_REFERENCE[(k, 10)][0]
    print(f"{label} {k}-shot: time(10)/time(1) = {fast10 / fast1:.2f} (target <= 1.3); "
          f"naive path {naive10 / naive1:.2f} ({how}); fast vs naive at 10 steps "
          f"{naive10 / fast10:.1f}x; vs published JAX {jax1 / fast1:.2f}x at 1 step (goal "
          f">= 3x), {jax10 / fast10:.2f}x at 10 steps (goal >= 10x)")  # fmt: skip


if __name__ == "__main__":
    main()
