"""Seconds and peak memory per MAML outer step: fused recurrent layer vs the reference loop.

Setting (issue 15, the published one): 8 x 8 x 4 = 256 Mosaic neurons, 234
inputs (stride 3), 100 time steps, 20 readout units, meta-batch 8, 5-way 5-shot
with 5 queries per class, second-order MAML with the inner loop on the readout
(the default fast path of :func:`mosaicnet.meta.maml.meta_gradient`), layout
loss on, float32. One step is a meta-gradient and an Adam update.

Four paths: ``reference`` is the implementation before this work (the clone's
step-by-step autograd loop, :meth:`~mosaicnet.network.torch_clone.TorchClone.reference`,
with glibc's default allocator settings); ``reference_reuse`` the same loop with
freed memory kept for reuse (:mod:`mosaicnet.meta.allocator`, what
``mosaicnet train`` sets); ``fused_torch`` the fused recurrent layer and readout
trace (``TorchClone(fused="auto")``, :mod:`mosaicnet.network.fused_recurrence`)
with that setting, its loops in torch operations (``MOSAICNET_NATIVE=0``);
``fused`` the same on the compiled kernels (:mod:`mosaicnet.network.native_kernels`,
the default where a C compiler exists). The allocator and kernel settings are
switched before each step, so all four run interleaved in one process, from the
same parameters on the same meta-batches, repeated; medians (and minima) of
wall-clock time are printed with the ratios (goal: fused >= 4x faster than
reference). Peak memory: each
path runs once more in a fresh subprocess that reports the kernel's high-water
mark of its resident set
(VmHWM, reset just before the step) and its growth during the step.

Run: ``python benchmarks/bench_fused.py`` (``--repeats``, ``--threads``; the
``--rows/--cols/--n-bins/--meta-batch`` options shrink the setting for a smoke
test, ``--data`` names SHD-layout files, default the synthetic data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

GIB = 1024**3
PATHS = ("reference", "reference_reuse", "fused_torch", "fused")
#: Paths that run with glibc keeping freed memory (mosaicnet.meta.allocator), as
#: ``mosaicnet train`` does; "reference" is the implementation before both changes.
REUSE = ("reference_reuse", "fused_torch", "fused")


def use_kernels(path: str) -> None:
    """Compiled kernels on for ``fused`` only (read at each call, see native_kernels)."""
    os.environ["MOSAICNET_NATIVE"] = "1" if path == "fused" else "0"


def build(args: argparse.Namespace, path: str):
    """Config, clone (on ``path``), parameters, layout cost and three meta-batches."""
    from mosaicnet.data import check_binning
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
        rows=args.rows, cols=args.cols, n_bins=args.n_bins, meta_batch=args.meta_batch,
        n_way=5, k_shot=5, n_query=5, inner_steps=args.inner_steps, seed=0,
        tasks_per_pass=None,  # the whole meta-batch in one pass, as the issue measured
    )  # fmt: skip
    dataset = load_split(resolve_data_dir(args.data), "train")
    sampler = TaskSampler(dataset, few_shot_config(config), split="meta-train", seed=0)
    n_in = check_binning(
        dataset.n_channels, n_bins=config.n_bins, window_s=config.window_s,
        stride=config.spatial_stride,
    )  # fmt: skip
    spec = build_spec(config, n_in)
    clone = make_clone(spec, config)
    if path.startswith("reference"):
        clone = clone.reference()
    elif clone.fused_layer is None:
        raise SystemExit(f"neuron model {config.neuron_model!r} cannot use the fused layer")
    params = init_meta_params(clone.init_params(), config)
    cost = build_layout(config).cost_tensor(dtype=torch.float32)
    batches = [to_meta_batch(sampler.sample(config.meta_batch)) for _ in range(3)]
    return config, clone, params, cost, batches


def outer_step(config, clone, params, cost, batch, adam):
    """One meta-gradient and Adam update; returns the new parameters and Adam state."""
    from mosaicnet.meta.adam import adam_step
    from mosaicnet.meta.maml import meta_gradient

    grads, _, _ = meta_gradient(params, batch, clone, config, layout_cost=cost)
    return adam_step(params, grads, adam, config.outer_lr)


def time_paths(args: argparse.Namespace) -> dict[str, list[float]]:
    """Interleaved wall-clock times of one outer step per path."""
    from mosaicnet.meta.adam import AdamState
    from mosaicnet.meta.allocator import default_allocation, reuse_freed_memory

    built = {path: build(args, path) for path in PATHS}
    state = {path: (b[2], AdamState.zeros_like(b[2])) for path, b in built.items()}
    for path in PATHS:  # warm-up: first calls pay one-off costs (allocator, dispatch)
        use_kernels(path)
        config, clone, params, cost, batches = built[path]
        outer_step(config, clone, params, cost, batches[0], state[path][1])
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    for rep in range(args.repeats):
        for path in PATHS:
            config, clone, _, cost, batches = built[path]
            params, adam = state[path]
            if path in REUSE:
                reuse_freed_memory()
            else:
                default_allocation()
            use_kernels(path)
            start = time.perf_counter()
            state[path] = outer_step(config, clone, params, cost, batches[rep % 3], adam)
            times[path].append(time.perf_counter() - start)
        print(f"  repeat {rep + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    return times


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


def memory_of(args: argparse.Namespace, path: str) -> dict[str, int | None]:
    """Peak resident set of one outer step on ``path`` in this (fresh) process, and its growth."""
    from mosaicnet.meta.adam import AdamState
    from mosaicnet.meta.allocator import reuse_freed_memory

    if path in REUSE:
        reuse_freed_memory()
    use_kernels(path)
    config, clone, params, cost, batches = build(args, path)
    adam = AdamState.zeros_like(params)
    outer_step(config, clone, params, cost, batches[1], adam)  # warm-up
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")  # reset VmHWM to the current resident set
    except OSError:
        pass
    before = _status_bytes("VmRSS")
    outer_step(config, clone, params, cost, batches[0], adam)
    peak = _status_bytes("VmHWM")
    growth = peak - before if peak is not None and before is not None else None
    return {"peak_bytes": peak, "growth_bytes": growth}


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The setting's options, to run the same setting in a subprocess."""
    options = []
    for name in ("rows", "cols", "n_bins", "meta_batch", "inner_steps"):
        options += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    if args.threads:
        options += ["--threads", str(args.threads)]
    if args.data:
        options += ["--data", args.data]
    return options


def memory_in_subprocess(args: argparse.Namespace, path: str) -> dict[str, int | None]:
    command = [sys.executable, __file__, "--memory-path", path, *_forwarded(args)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _gib(value: int | None) -> str:
    return f"{value / GIB:8.3f}" if value is not None else f"{'n/a':>8}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default torch's)")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--n-bins", type=int, default=100)
    parser.add_argument("--meta-batch", type=int, default=8)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--data", help="directory with shd_train.h5 (default: synthetic data)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--memory-path", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_path:
        print(json.dumps(memory_of(args, args.memory_path)))
        return

    from mosaicnet.meta.run_setup import resolve_data_dir

    resolve_data_dir(args.data, progress=True)  # the synthetic data once, up front
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {args.rows} x "
          f"{args.cols} x 4 neurons, {args.n_bins} steps, meta-batch {args.meta_batch}, "
          f"5-way 5-shot 5 queries, {args.inner_steps} inner step(s)", flush=True)  # fmt: skip
    memory = {}
    if not args.no_memory:
        memory = {path: memory_in_subprocess(args, path) for path in PATHS}
    times = time_paths(args)
    print()
    print(f"{'path':<16} {'median s':>9} {'min s':>8} {'peak GiB':>8} {'growth GiB':>10}")
    for path in PATHS:
        mem = memory.get(path, {})
        print(f"{path:<16} {statistics.median(times[path]):9.3f} {min(times[path]):8.3f} "
              f"{_gib(mem.get('peak_bytes'))} {_gib(mem.get('growth_bytes')):>10}")  # fmt: skip
    median = {path: statistics.median(times[path]) for path in PATHS}
    fused = median["fused"]
    print(f"\nfused is {median['reference'] / fused:.2f}x faster per outer step than the "
          f"reference (medians; goal >= 4x), {median['reference_reuse'] / fused:.2f}x than the "
          f"reference with the same allocator setting, {median['fused_torch'] / fused:.2f}x than "
          "its torch loops")  # fmt: skip


if __name__ == "__main__":
    main()
