"""Turn flat spike events into binned count tensors and spatial-sampling views.

The functions work on the flat (CSR-like) event arrays of
:class:`mosaicnet.data.shd.SpikeDataset`. In numpy (:func:`bin_events`,
:func:`spatial_views`) every spike of every requested sample is mapped to one linear
cell index and all of them are accumulated into the output tensor in a single
scatter-add, so the cost is a few vectorised passes over the events, never a Python
loop per sample. :func:`bin_recordings`, what the task sampler uses for every
training step, does the same in one compiled pass (``binning_kernels.c``, built by
:mod:`mosaicnet.native_build`): each output row is read from its recording's events
and written once, with no gathered copy of the events and no index arrays; it falls
back to :func:`bin_events` where no compiler works or ``MOSAICNET_NATIVE=0``.

Time binning follows the published preprocessing (EIS-Hub/meta-mosaic; docs/data.md,
'Binning'): ``n_bins`` equal bins over ``[0, window_s)``, 100 over 1.4 s by default.
Two bugs of that code are avoided on purpose:

* bin ``b`` is ``floor(t * n_bins / window_s)``, so spikes in the first
  ``window_s / n_bins`` seconds land in bin 0 (the published digitize-based code left
  bin 0 always empty);
* spikes at ``t >= window_s`` are dropped and counted (the published code crashed on
  them); callers receive the count as the second return value.

Spatial sampling (the talk's "spatial sampling at regular intervals"): with stride k a
view keeps channels ``offset, offset + k, ...`` and puts channel ``c`` in column
``c // k``; every view is ``ceil(n_channels / k)`` wide, the shorter ones zero-padded on
the right (k = 3 on 700 channels gives 234/233/233 channels in 234 columns).
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import numpy as np
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.native_build import NativeLibrary

KERNEL_SOURCE = Path(__file__).with_name("binning_kernels.c")


def check_binning(
    n_channels: int,
    *,
    n_bins: int,
    window_s: float,
    stride: int,
    offset: int | np.ndarray = 0,
) -> int:
    """Validate binning parameters and return the view width ``ceil(n_channels / stride)``.

    Raises
    ------
    ConfigError
        ``n_bins < 1``, ``window_s`` not a positive finite number of seconds,
        ``stride`` outside ``1..n_channels`` or ``offset`` (an integer, or an array of
        one per sample) outside ``0..stride-1``.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ConfigError(f"n_bins must be an integer >= 1, got {n_bins!r}.")
    if not (isinstance(window_s, int | float) and math.isfinite(window_s) and window_s > 0):
        raise ConfigError(f"window_s must be a positive number of seconds, got {window_s!r}.")
    if int(stride) != stride or not 1 <= stride <= n_channels:
        raise ConfigError(
            f"stride (spatial sampling interval k) must be an integer in 1..{n_channels} "
            f"(the number of channels), got {stride!r}."
        )
    if isinstance(offset, np.ndarray):
        if offset.size and (
            not np.issubdtype(offset.dtype, np.integer) or offset.min() < 0
            or offset.max() >= stride
        ):  # fmt: skip
            raise ConfigError(
                f"offsets must be integers in 0..{int(stride) - 1} for stride {stride}, "
                f"got values from {offset.min()!r} to {offset.max()!r} ({offset.dtype})."
            )
    elif int(offset) != offset or not 0 <= offset < stride:
        raise ConfigError(
            f"offset must be an integer in 0..{int(stride) - 1} for stride {stride}, "
            f"got {offset!r}."
        )
    return -(-int(n_channels) // int(stride))


def _time_bins(times: np.ndarray, n_bins: int, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (mask of spikes inside the window, their bin index)."""
    inside = times < window_s
    scaled = times[inside].astype(np.float64) * (n_bins / window_s)
    # A time just below window_s can round up to n_bins in floating point; it belongs
    # to the last bin, not outside.
    bins = np.minimum(scaled.astype(np.int64), n_bins - 1)
    return inside, bins


def _scatter_counts(
    rows: np.ndarray,
    cells: np.ndarray,
    n_rows: int,
    row_shape: tuple[int, ...],
    dtype: torch.dtype,
) -> torch.Tensor:
    """Count events per (row, cell) into a zero tensor of shape ``(n_rows, *row_shape)``.

    Accumulates straight into the output tensor (``index_put_`` with ``accumulate``):
    no int64 count array of the output's size is ever made, so binning all of SHD
    (8156 x 100 x 700 cells) needs the output tensor and one index per event only.
    """
    cells_per_row = int(np.prod(row_shape))
    out = torch.zeros((n_rows, *row_shape), dtype=dtype)
    if rows.size == 0:
        return out
    linear = torch.from_numpy(rows * cells_per_row + cells)
    # A 0-d "1" broadcasts over all events: no per-event array of ones is allocated.
    out.view(-1).index_put_((linear,), torch.ones((), dtype=dtype), accumulate=True)
    return out


def bin_events(
    times: np.ndarray,
    units: np.ndarray,
    rows: np.ndarray,
    n_rows: int,
    *,
    n_channels: int,
    n_bins: int = 100,
    window_s: float = 1.4,
    stride: int = 1,
    offset: int | np.ndarray = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """Bin flat events of many samples into spike counts, one vectorised pass.

    Parameters
    ----------
    times : np.ndarray
        Spike times in seconds (``>= 0``), one per event.
    units : np.ndarray
        Channel of each event, ``0 <= unit < n_channels``.
    rows : np.ndarray
        Output row (sample position) of each event, ``0 <= row < n_rows``, any order.
    n_rows : int
        Number of output rows.
    n_channels : int
        Number of input channels.
    n_bins, window_s, stride, dtype
        As in :meth:`mosaicnet.data.SpikeDataset.binned`.
    offset : int or np.ndarray
        The spatial view: one for all rows, or one per row (``(n_rows,)`` integers).

    Returns
    -------
    counts : torch.Tensor
        ``(n_rows, n_bins, ceil(n_channels / stride))`` spike counts.
    dropped : int
        Spikes of the selected channels at ``t >= window_s``, left out of ``counts``.
    """
    width = check_binning(
        n_channels, n_bins=n_bins, window_s=window_s, stride=stride, offset=offset
    )
    times, rows, units = np.asarray(times), np.asarray(rows, dtype=np.int64), np.asarray(units)
    if stride > 1:
        # Select on the stored dtype (uint16 in SHD files), and widen only what is kept.
        wanted = offset[rows] if isinstance(offset, np.ndarray) else offset
        selected = np.flatnonzero(units % stride == wanted)
        times, units, rows = times[selected], units[selected], rows[selected]
    units64 = units.astype(np.int64, copy=False)
    inside, bins = _time_bins(times, n_bins, window_s)
    dropped = int(inside.size - np.count_nonzero(inside))
    cells = bins * width + units64[inside] // stride
    counts = _scatter_counts(rows[inside], cells, n_rows, (n_bins, width), dtype)
    return counts, dropped


def spatial_views(
    times: np.ndarray,
    units: np.ndarray,
    rows: np.ndarray,
    n_rows: int,
    *,
    n_channels: int,
    stride: int = 3,
    n_bins: int = 100,
    window_s: float = 1.4,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """Bin flat events into every spatial-sampling view at once.

    Returns
    -------
    views : torch.Tensor
        ``(n_rows, stride, n_bins, ceil(n_channels / stride))``; ``views[:, j]`` equals
        :func:`bin_events` with ``offset=j``.
    dropped : int
        Spikes at ``t >= window_s`` (over all views), left out of ``views``.
    """
    width = check_binning(n_channels, n_bins=n_bins, window_s=window_s, stride=stride)
    times, rows = np.asarray(times), np.asarray(rows, dtype=np.int64)
    inside, bins = _time_bins(times, n_bins, window_s)
    dropped = int(inside.size - np.count_nonzero(inside))
    units64 = np.asarray(units)[inside].astype(np.int64, copy=False)
    column, view = np.divmod(units64, stride)  # channel c -> view c % k, column c // k
    cells = (view * n_bins + bins) * width + column
    out = _scatter_counts(rows[inside], cells, n_rows, (stride, n_bins, width), dtype)
    return out, dropped


def gather_events(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the flat event arrays of rows ``[starts[i], ends[i])``, and each one's row.

    No per-row Python loop: a global arange shifted by each row's start minus its
    running offset in the output.
    """
    lengths = ends - starts
    rows = np.repeat(np.arange(starts.size, dtype=np.int64), lengths)
    flat = np.arange(rows.size, dtype=np.int64) + np.repeat(
        starts - (np.cumsum(lengths) - lengths), lengths
    )
    return flat, rows


def bin_recordings(
    times: np.ndarray,
    units: np.ndarray,
    offsets: np.ndarray,
    indices: np.ndarray,
    views: np.ndarray,
    *,
    n_channels: int,
    n_bins: int = 100,
    window_s: float = 1.4,
    stride: int = 1,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """Bin recording ``indices[i]`` in spatial view ``views[i]`` into row ``i``.

    The compiled pass where it can run (``float32`` or ``float64`` output, float32
    times, uint16 units: what :class:`~mosaicnet.data.shd.SpikeDataset` stores),
    else :func:`bin_events` on the gathered events; both give the same counts.

    Parameters
    ----------
    times, units, offsets : np.ndarray
        The dataset's flat events: recording ``j`` owns
        ``times[offsets[j]:offsets[j + 1]]`` and the same slice of ``units``.
    indices : np.ndarray
        ``(n,)`` recordings, in ``0..len(offsets) - 2``, repeats allowed.
    views : np.ndarray
        ``(n,)`` spatial view (offset) of each row, ``0 <= view < stride``.
    n_channels, n_bins, window_s, stride, dtype
        As in :meth:`mosaicnet.data.SpikeDataset.binned`.

    Returns
    -------
    counts : torch.Tensor
        ``(n, n_bins, ceil(n_channels / stride))`` spike counts.
    dropped : int
        Spikes of the selected channels at ``t >= window_s``, left out of ``counts``.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    views = np.asarray(views).reshape(-1)
    width = check_binning(n_channels, n_bins=n_bins, window_s=window_s, stride=stride, offset=views)
    views = np.ascontiguousarray(views, dtype=np.int64)
    starts = np.ascontiguousarray(offsets[indices])
    ends = np.ascontiguousarray(offsets[indices + 1])
    kernel = _kernel(dtype) if times.dtype == np.float32 and units.dtype == np.uint16 else None
    if kernel is None or not (times.flags.c_contiguous and units.flags.c_contiguous):
        flat, rows = gather_events(starts, ends)
        return bin_events(
            times[flat], units[flat], rows, indices.size, n_channels=n_channels,
            n_bins=n_bins, window_s=window_s, stride=stride, offset=views, dtype=dtype,
        )  # fmt: skip
    out = torch.empty((indices.size, n_bins, width), dtype=dtype)
    dropped = np.empty(indices.size, dtype=np.int64)
    # The window compared in float32, as numpy compares float32 times with a Python
    # float (NEP 50); the bin scale in float64, as _time_bins computes it.
    kernel(
        times.ctypes.data, units.ctypes.data, starts.ctypes.data, ends.ctypes.data,
        views.ctypes.data, indices.size, n_bins, width, stride, float(np.float32(window_s)),
        n_bins / window_s, out.data_ptr(), dropped.ctypes.data, torch.get_num_threads(),
    )  # fmt: skip
    return out, int(dropped.sum())


_POINTER = ctypes.c_void_p
#: The compiled ``bin_recordings`` (binning_kernels.c), per output type.
KERNELS = NativeLibrary(
    KERNEL_SOURCE,
    {
        "bin_recordings": [
            _POINTER, _POINTER, _POINTER, _POINTER, _POINTER, ctypes.c_long, ctypes.c_long,
            ctypes.c_long, ctypes.c_long, ctypes.c_float, ctypes.c_double, _POINTER, _POINTER,
            ctypes.c_int,
        ],
    },
    fallback="binning runs in numpy",
)  # fmt: skip


def _kernel(dtype: torch.dtype) -> ctypes._CFuncPtr | None:
    """The compiled ``bin_recordings`` writing ``dtype``, or None (numpy path)."""
    functions = KERNELS.functions(dtype)
    return None if functions is None else functions.bin_recordings
