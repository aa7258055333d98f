"""Binning spike events into count tensors and spatial-sampling views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosaicnet.data import SpikeDataset, bin_events
from mosaicnet.errors import ConfigError


def make_dataset(n_samples=12, n_channels=700, seed=0, max_time_s=1.6) -> SpikeDataset:
    """Random recordings of varied length (one empty), some spikes beyond 1.4 s."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 400, n_samples)
    counts[3] = 0
    times = rng.uniform(0.0, max_time_s, counts.sum())
    units = rng.integers(0, n_channels, counts.sum())
    offsets = np.concatenate(([0], np.cumsum(counts)))
    labels = rng.integers(0, 20, n_samples)
    names = {i: f"w{i}" for i in range(20)}
    return SpikeDataset(times, units, offsets, labels, labels % 5, names, n_channels=n_channels)


def reference_counts(ds, index, n_bins, window_s, stride=1, offset=0) -> np.ndarray:
    """Straightforward per-sample histogram, the definition the fast path must match."""
    times, units = ds.sample(index)
    keep = (times < window_s) & (units % stride == offset)
    hist, _, _ = np.histogram2d(
        times[keep].astype(np.float64),
        units[keep] // stride,
        bins=(np.linspace(0.0, window_s, n_bins + 1), np.arange(-(-ds.n_channels // stride) + 1)),
    )
    return hist


@pytest.fixture(scope="module")
def ds() -> SpikeDataset:
    return make_dataset()


def test_binned_matches_per_sample_histogram(ds):
    x = ds.binned(n_bins=100, window_s=1.4)
    assert x.shape == (len(ds), 100, 700) and x.dtype == torch.float32
    for i in range(len(ds)):
        np.testing.assert_array_equal(x[i].numpy(), reference_counts(ds, i, 100, 1.4))


def test_binned_with_stride_and_offset_matches_reference(ds):
    for stride, offset in [(3, 0), (3, 2), (7, 5), (700, 0)]:
        x = ds.binned([0, 5], n_bins=20, window_s=1.0, stride=stride, offset=offset)
        assert x.shape == (2, 20, -(-700 // stride))
        for row, i in enumerate([0, 5]):
            expected = reference_counts(ds, i, 20, 1.0, stride, offset)
            np.testing.assert_array_equal(x[row].numpy(), expected)


def test_indices_select_order_and_repeats(ds):
    full = ds.binned(n_bins=10)
    picked = ds.binned(np.array([7, 2, 7]), n_bins=10)
    assert torch.equal(picked, full[[7, 2, 7]])
    assert ds.binned([], n_bins=10).shape == (0, 10, 700)


def test_first_bin_holds_the_first_interval_and_last_bin_the_last():
    # The published code's bins left bin 0 always empty; here t in [0, 14 ms) is bin 0.
    times = [0.0, 0.0139, 0.014, 1.399999]
    ds = SpikeDataset(times, [5, 5, 5, 5], [0, 4], [0], [0], {0: "a"})
    x = ds.binned(n_bins=100, window_s=1.4)
    assert x[0, 0, 5] == 2 and x[0, 1, 5] == 1 and x[0, 99, 5] == 1
    assert x.sum() == 4


def test_spikes_at_or_after_window_are_dropped_and_counted():
    times = [0.1, 1.4, 1.5, 3.0]
    ds = SpikeDataset(times, [1, 2, 3, 4], [0, 2, 4], [0, 0], [0, 0], {0: "a"})
    x = ds.binned(n_bins=7, window_s=1.4)
    assert x.sum() == 1 and ds.last_dropped_spikes == 3
    ds.binned([0], n_bins=7, window_s=1.4)
    assert ds.last_dropped_spikes == 1  # the counter describes the latest call only
    assert ds.spikes_beyond(1.4).tolist() == [1, 2]


def test_total_counts_are_conserved(ds):
    x = ds.binned(n_bins=100, window_s=1.4)
    kept = ds.spike_counts().sum() - ds.spikes_beyond(1.4).sum()
    assert x.sum().item() == kept
    assert ds.last_dropped_spikes == ds.spikes_beyond(1.4).sum()


def test_views_shape_padding_and_equality_with_offsets(ds):
    v = ds.views([1, 4, 3], stride=3, n_bins=50)
    assert v.shape == (3, 3, 50, 234)
    for offset in range(3):
        expected = ds.binned([1, 4, 3], n_bins=50, stride=3, offset=offset)
        assert torch.equal(v[:, offset], expected)
    # 700 channels, k = 3: offset 0 has 234 channels, offsets 1 and 2 have 233, padded.
    assert v[:, 1:, :, 233].sum() == 0
    # Every kept spike appears in exactly one view.
    assert v.sum() == ds.binned([1, 4, 3], n_bins=50).sum()


def test_views_reject_offset_argument(ds):
    with pytest.raises(TypeError, match="offset"):
        ds.views([0], stride=3, offset=1)


def test_dtype_is_respected(ds):
    assert ds.binned([0], n_bins=5, dtype=torch.int64).dtype == torch.int64
    assert ds.views([0], stride=2, n_bins=5, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("stride", [0, -1, 701, 2.5])
def test_invalid_stride_is_a_config_error(ds, stride):
    with pytest.raises(ConfigError, match=r"stride .* 1\.\.700"):
        ds.binned([0], stride=stride)
    with pytest.raises(ConfigError, match="stride"):
        ds.views([0], stride=stride)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": 3, "offset": 3}, "offset"),
        ({"n_bins": 0}, "n_bins"),
        ({"window_s": 0.0}, "window_s"),
        ({"window_s": float("nan")}, "window_s"),
    ],
)
def test_invalid_binning_parameters(ds, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ds.binned([0], **kwargs)


def test_out_of_range_index_is_an_index_error(ds):
    with pytest.raises(IndexError):
        ds.binned([len(ds)])


def test_bin_events_accepts_unsorted_rows():
    times = np.array([0.5, 0.1, 0.5])
    units = np.array([1, 2, 1])
    rows = np.array([1, 0, 1])
    counts, dropped = bin_events(times, units, rows, 2, n_channels=4, n_bins=2, window_s=1.0)
    assert dropped == 0
    assert counts[0, 0, 2] == 1 and counts[1, 1, 1] == 2 and counts.sum() == 3


def _edge_dataset() -> SpikeDataset:
    """Spikes on and around every bin edge and the window's end, in float32."""
    rng = np.random.default_rng(3)
    edges = np.arange(101) * (1.4 / 100)
    around = np.concatenate([edges, np.nextafter(edges.astype(np.float32), 0), edges + 1e-7])
    times = np.concatenate([around, rng.uniform(0.0, 1.5, 3000)]).astype(np.float32)
    units = rng.integers(0, 700, times.size)
    counts = np.array([times.size // 2, 0, times.size - times.size // 2])
    offsets = np.concatenate(([0], np.cumsum(counts)))
    return SpikeDataset(times, units, offsets, [0, 1, 2], [0, 0, 0], {0: "a", 1: "b", 2: "c"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_binning_matches_numpy_binning(monkeypatch, dtype):
    """The compiled pass the task sampler uses and numpy's scatter give the same counts
    and dropped spikes, spikes on the bin edges and the window's end included."""
    from mosaicnet.data import binning

    if binning._kernel(dtype) is None:
        pytest.skip(f"compiled binning unavailable: {binning.KERNELS.failure}")
    ds = _edge_dataset()
    indices = np.array([2, 0, 1, 0, 2, 2])
    views = np.array([0, 1, 2, 1, 2, 0])
    args = (ds.times, ds.units, ds.offsets, indices, views)
    binning_kw = {"n_channels": 700, "n_bins": 100, "window_s": 1.4, "stride": 3, "dtype": dtype}
    compiled, dropped_c = binning.bin_recordings(*args, **binning_kw)
    monkeypatch.setenv("MOSAICNET_NATIVE", "0")
    assert binning._kernel(dtype) is None
    numpy_path, dropped_n = binning.bin_recordings(*args, **binning_kw)
    assert compiled.dtype == numpy_path.dtype == dtype
    assert torch.equal(compiled, numpy_path) and dropped_c == dropped_n > 0
    assert torch.equal(compiled[1], compiled[3])  # a repeated (recording, view) pair


def test_one_offset_per_sample_equals_one_call_per_offset(ds):
    indices = np.array([0, 5, 5, 7, 11, 3])
    views = np.array([2, 0, 1, 2, 1, 0])
    mixed = ds.binned(indices, n_bins=50, window_s=1.4, stride=3, offset=views)
    dropped = ds.last_dropped_spikes
    for row, (index, view) in enumerate(zip(indices, views, strict=True)):
        single = ds.binned([index], n_bins=50, window_s=1.4, stride=3, offset=int(view))
        assert torch.equal(mixed[row], single[0])
        dropped -= ds.last_dropped_spikes
    assert dropped == 0


@pytest.mark.parametrize(
    ("offset", "message"),
    [(np.array([0, 3]), "offsets must be integers in 0..2"),
     (np.array([0.0, 1.0]), "offsets must be integers"),
     (np.array([0, 1, 2]), "3 views for 2 samples")],
)  # fmt: skip
def test_bad_per_sample_offsets_are_config_errors(ds, offset, message):
    with pytest.raises(ConfigError, match=message):
        ds.binned([0, 1], stride=3, offset=offset)
