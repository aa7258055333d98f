"""Task sampling per training step: compiled binning against numpy binning.

Every outer step of ``mosaicnet train`` draws a meta-batch of tasks and bins its
recordings from the dataset's flat event lists (``TaskSampler.tasks``), then makes
the inputs binary (``to_meta_batch``). This times that data path at the training
setting (meta-batch 8, 5-way 5-shot, 5 queries per class: 400 recordings, 100 bins
over 1.4 s, spatial stride 3) two ways, interleaved in one process, freed memory
kept as training keeps it (:func:`mosaicnet.meta.allocator.reuse_freed_memory`):

* numpy: ``MOSAICNET_NATIVE=0``, the vectorised scatter (:func:`mosaicnet.data.bin_events`);
* compiled: ``binning_kernels.c`` (:func:`mosaicnet.data.binning.bin_recordings`).

Both draw the same tasks and must give identical batches (checked). Prints the median
milliseconds per step of each and the ratio. Run::

    python benchmarks/bench_task_sampling.py [--data DIR] [--repeats 30]

Without ``--data`` it uses the synthetic default data (generated on first use).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mosaicnet.data import load_shd
from mosaicnet.data.tasks import FewShotConfig, TaskSampler
from mosaicnet.meta.allocator import reuse_freed_memory
from mosaicnet.meta.run_setup import resolve_data_dir, to_meta_batch

META_BATCH = 8


def step(sampler: TaskSampler, first_task: int, native: bool):
    """One training step's data path; returns (seconds, the meta-batch)."""
    os.environ["MOSAICNET_NATIVE"] = "1" if native else "0"
    started = time.perf_counter()
    batch = to_meta_batch(sampler.tasks(range(first_task, first_task + META_BATCH)))
    return time.perf_counter() - started, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="SHD-layout folder (default: synthetic)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    reuse_freed_memory()
    dataset = load_shd(resolve_data_dir(args.data) / "shd_train.h5")
    sampler = TaskSampler(dataset, FewShotConfig(stride=3), seed=0)
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(args.repeats + 2):
        first = repeat * META_BATCH
        results = {native: step(sampler, first, native) for native in (False, True)}
        for field in ("support_x", "query_x"):
            assert torch.equal(getattr(results[False][1], field), getattr(results[True][1], field))
        if repeat >= 2:  # two warm-up rounds: the first compiles or loads the kernel
            for native, (seconds, _) in results.items():
                times[native].append(seconds)
    numpy_ms = 1e3 * statistics.median(times[False])
    compiled_ms = 1e3 * statistics.median(times[True])
    recordings = (
        META_BATCH * sampler.config.n_way * (sampler.config.k_shot + sampler.config.n_query)
    )
    print(f"data: {dataset.path} ({dataset.times.size / len(dataset):.0f} spikes per recording)")
    print(f"one step's data path, {recordings} recordings, median of {args.repeats}:")
    print(f"  numpy binning:    {numpy_ms:6.1f} ms")
    print(f"  compiled binning: {compiled_ms:6.1f} ms")
    print(f"  ratio: {numpy_ms / compiled_ms:.2f}x")


if __name__ == "__main__":
    main()
