"""Load + bin throughput: vectorised SpikeDataset vs a per-sample Python loop.

Writes a synthetic file of SHD's training-set size (8156 samples, Cramer et al. 2022)
into a temporary directory, then times two ways of turning it into batches of binned
spike counts (100 bins over 1.4 s x 700 channels, batches of 100 samples, all samples):

* baseline: open the file, read each sample's ``times`` / ``units`` row on its own and
  histogram it with ``np.histogram2d`` (what a straightforward loader does);
* mosaicnet: ``load_shd`` once (flat event arrays) and ``SpikeDataset.binned`` per batch
  (one scatter-add over every event of the batch).

Both produce identical tensors (first batch compared, total spike count checked). Each is
timed from opening the file to its last batch, best of 3. Prints samples/s of each and
the ratio; the goal is a ratio >= 10. Run: ``python benchmarks/bench_data_loading.py``
(``--samples N`` for a quicker, smaller run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from mosaicnet.data import load_shd, write_synthetic_shd

N_BINS = 100
WINDOW_S = 1.4
N_CHANNELS = 700
# 100 samples x 100 bins x 700 channels float32 = 28 MB per batch: batches are consumed
# and freed as in a training loop, not all kept (all of SHD binned would be 2.3 GB).
BATCH = 100
REPEATS = 3  # best of 3: the machine is shared, the minimum is the least disturbed run
SHD_TRAIN_SAMPLES = 8156  # Cramer et al. 2022, SHD training split


def baseline_batches(path: Path, n_samples: int) -> Iterator[torch.Tensor]:
    """Per-sample loop: read one row, histogram it, stack per batch."""
    import tables

    edges_t = np.linspace(0.0, WINDOW_S, N_BINS + 1)
    edges_c = np.arange(N_CHANNELS + 1)
    with tables.open_file(str(path)) as h5:
        times, units = h5.root.spikes.times, h5.root.spikes.units
        for start in range(0, n_samples, BATCH):
            rows = []
            for i in range(start, min(start + BATCH, n_samples)):
                t, u = times[i], units[i]
                keep = t < WINDOW_S  # same rule as mosaicnet: drop t >= window
                hist, _, _ = np.histogram2d(t[keep], u[keep], bins=(edges_t, edges_c))
                rows.append(torch.from_numpy(hist.astype(np.float32)))
            yield torch.stack(rows)


def mosaicnet_batches(path: Path, n_samples: int) -> Iterator[torch.Tensor]:
    """Load once into flat arrays, bin every batch in one vectorised pass."""
    ds = load_shd(path)
    for start in range(0, n_samples, BATCH):
        batch = np.arange(start, min(start + BATCH, n_samples))
        yield ds.binned(batch, n_bins=N_BINS, window_s=WINDOW_S)


def consume(batches: Iterator[torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    """Time a loader from opening the file to its last batch; return a checksum too."""
    t0 = time.perf_counter()
    total, first = 0.0, None
    for batch in batches:
        total += float(batch.sum())
        first = batch if first is None else first
    return time.perf_counter() - t0, total, first


def best_of(loader, path: Path, n_samples: int) -> tuple[float, float, torch.Tensor]:
    runs = [consume(loader(path, n_samples)) for _ in range(REPEATS)]
    return min(runs, key=lambda run: run[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=SHD_TRAIN_SAMPLES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train, _ = write_synthetic_shd(tmp, seed=0, n_train=args.samples, n_test=20, progress=True)
        print(f"generated {args.samples} samples in {time.perf_counter() - t0:.1f} s "
              f"({train.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
        t_slow, sum_slow, first_slow = best_of(baseline_batches, train, args.samples)
        t_fast, sum_fast, first_fast = best_of(mosaicnet_batches, train, args.samples)
    assert torch.equal(first_slow, first_fast), "the two loaders disagree on the first batch"
    assert sum_slow == sum_fast, "the two loaders count different numbers of spikes"
    rate_slow, rate_fast = args.samples / t_slow, args.samples / t_fast
    print(f"per-sample loop (tables rows + np.histogram2d): {rate_slow:10.0f} samples/s")
    print(f"mosaicnet load_shd + binned (vectorised):        {rate_fast:10.0f} samples/s")
    print(f"speed-up: {rate_fast / rate_slow:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
