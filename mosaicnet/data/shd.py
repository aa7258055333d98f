"""Read Spiking Heidelberg Digits (SHD) HDF5 files into compact in-memory event storage.

The file layout is the one published with the dataset (Cramer, Stradmann, Schemmel and
Zenke 2022, "The Heidelberg Spiking Data Sets for the Systematic Evaluation of Spiking
Neural Networks", IEEE TNNLS 33:2744; https://zenkelab.org/datasets/)::

    /spikes/times         VLArray of float, spike times in seconds, one row per sample
    /spikes/units         VLArray of uint16, channel of each spike, 0..699
    /labels               uint16, class id per sample
    /extra/speaker        uint16, speaker id per sample
    /extra/keys           bytes, label id -> word (row i names class i)
    /extra/meta_info/...  per-speaker gender, age, body_height (optional here)

All samples are held as three flat arrays (CSR-like): ``times`` and ``units`` with one
entry per spike of every sample, concatenated, and ``offsets`` (n + 1) so that sample
``i`` owns ``times[offsets[i]:offsets[i + 1]]``. A dense 700 x 1400 raster per sample
would need ~1000x more memory than the events themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mosaicnet.data.binning import (
    bin_recordings,
    check_binning,
    gather_events,
    spatial_views,
)
from mosaicnet.errors import ConfigError, DataFormatError, MosaicnetError

#: Input channels of the SHD cochlea model (Cramer et al. 2022, section III).
SHD_CHANNELS = 700

#: Datasets every SHD-layout file must contain (Cramer et al. 2022, "Data format").
REQUIRED_NODES = ("/spikes/times", "/spikes/units", "/labels", "/extra/speaker", "/extra/keys")

_GZIP_MAGIC = b"\x1f\x8b"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


#: A median spike time above this (seconds) means the times are not seconds: SHD
#: samples last at most ~1.4 s (Cramer et al. 2022), so even a file of much longer
#: recordings would not put half of its spikes beyond 10 s; milliseconds do.
MAX_MEDIAN_SPIKE_TIME_S = 10.0


def _first_bad_sample(offsets: np.ndarray, flat_mask: np.ndarray) -> tuple[int, int]:
    """Return (sample index, number of bad events in the file) for a flat boolean mask."""
    bad = np.flatnonzero(flat_mask)
    # searchsorted maps the flat event position back to the sample that owns it.
    sample = int(np.searchsorted(offsets, bad[0], side="right") - 1)
    return sample, int(bad.size)


class SpikeDataset:
    """Spike recordings of an SHD-layout file, held as flat event arrays.

    Build it with :func:`load_shd`; the constructor validates its arguments the same way
    the reader validates a file, so hand-made datasets obey the same rules.

    Parameters
    ----------
    times : np.ndarray
        Spike times in seconds of all samples, concatenated (float).
    units : np.ndarray
        Channel of each spike, same length as ``times``; ``0 <= unit < n_channels``.
    offsets : np.ndarray
        ``n + 1`` non-decreasing int64 positions; sample ``i`` owns
        ``times[offsets[i]:offsets[i + 1]]``.
    labels, speakers : np.ndarray
        Class id and speaker id per sample (``n`` values each).
    label_names : dict[int, str]
        Label table, class id -> word; its size is :attr:`n_classes`.
    n_channels : int
        Number of input channels (700 for SHD).
    path : Path
        File the data came from (used in error messages).
    meta_info : dict[str, np.ndarray], optional
        Per-speaker arrays from ``/extra/meta_info`` (gender, age, body_height).

    Attributes
    ----------
    last_dropped_spikes : int
        Spikes at ``t >= window_s`` that the most recent :meth:`binned` or :meth:`views`
        call left out (0 before the first call). Set without a warning because long
        recordings are normal in SHD; use :meth:`spikes_beyond` to count per sample.
    """

    def __init__(
        self,
        times: np.ndarray,
        units: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray,
        speakers: np.ndarray,
        label_names: dict[int, str],
        n_channels: int = SHD_CHANNELS,
        path: Path | str = Path("<memory>"),
        meta_info: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.path = Path(path)
        self.times = np.ascontiguousarray(times, dtype=np.float32)
        raw_units = np.asarray(units)
        if raw_units.size and not np.issubdtype(raw_units.dtype, np.integer):
            raise DataFormatError(
                f"{self.path}: spike units must be integers (channel ids), got {raw_units.dtype}."
            )
        # uint16 as in the SHD files: 2 bytes per spike; channel ids < 65536.
        self.units = np.ascontiguousarray(raw_units.astype(np.uint16, copy=False))
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.speakers = np.ascontiguousarray(speakers, dtype=np.int64)
        self.label_names = dict(label_names)
        self.n_channels = int(n_channels)
        self.meta_info = dict(meta_info or {})
        self.last_dropped_spikes = 0
        self._validate(raw_units, np.asarray(times))

    # ------------------------------------------------------------------ validation
    def _validate(self, raw_units: np.ndarray, raw_times: np.ndarray) -> None:
        """Check the invariants every consumer relies on; raise DataFormatError otherwise."""
        where = f"{self.path}"
        n = self.labels.size
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0:
            raise DataFormatError(
                f"{where}: offsets must have {n + 1} entries starting at 0 "
                f"(one per sample plus one); got shape {self.offsets.shape}."
            )
        if np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != self.times.size:
            raise DataFormatError(
                f"{where}: offsets must be non-decreasing and end at the number of spikes "
                f"({self.times.size})."
            )
        if self.units.size != self.times.size:
            raise DataFormatError(
                f"{where}: {self.times.size} spike times but {self.units.size} units."
            )
        if self.speakers.size != n:
            raise DataFormatError(
                f"{where}: {n} labels but {self.speakers.size} speaker ids; the file must "
                "have one speaker id per sample in /extra/speaker."
            )
        if not 1 <= self.n_channels <= 65536:
            raise ConfigError(f"n_channels must be in 1..65536, got {self.n_channels}.")
        if raw_units.size:
            bad_units = (raw_units < 0) | (raw_units >= self.n_channels)
            if bad_units.any():
                sample, count = _first_bad_sample(self.offsets, bad_units)
                first = raw_units[np.flatnonzero(bad_units)[0]]
                raise DataFormatError(
                    f"{where}: sample {sample} has spike unit {first} outside "
                    f"0..{self.n_channels - 1} ({count} such spikes in the file). Give the "
                    "recording's channel count (the n_channels argument of load_shd), or fix "
                    "the file."
                )
        if raw_times.size:
            # NaN compares False, so it is caught too; +inf is not finite.
            bad_times = ~(raw_times >= 0) | ~np.isfinite(raw_times)
            if bad_times.any():
                sample, count = _first_bad_sample(self.offsets, bad_times)
                first = raw_times[np.flatnonzero(bad_times)[0]]
                raise DataFormatError(
                    f"{where}: sample {sample} has spike time {first} (negative, infinite "
                    f"or NaN; {count} such spikes in the file). Spike times must be finite "
                    "seconds >= 0; regenerate or repair the file."
                )
            median = float(np.median(raw_times))
            if median > MAX_MEDIAN_SPIKE_TIME_S:
                raise DataFormatError(
                    f"{where}: the median spike time is {median:g} s (the largest "
                    f"{float(raw_times.max()):g} s), far beyond any spoken digit (SHD "
                    "samples last under 1.4 s): the times look like milliseconds. SHD "
                    "stores seconds; divide the times by 1000 and write the file again."
                )
        bad_labels = (self.labels < 0) | (self.labels >= len(self.label_names))
        if bad_labels.any():
            sample = int(np.flatnonzero(bad_labels)[0])
            raise DataFormatError(
                f"{where}: sample {sample} has label {self.labels[sample]} but the label "
                f"table /extra/keys has {len(self.label_names)} entries "
                f"(0..{len(self.label_names) - 1}). The file's labels and keys disagree."
            )
        if set(self.label_names) != set(range(len(self.label_names))):
            raise DataFormatError(
                f"{where}: label_names must map ids 0..{len(self.label_names) - 1}."
            )

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return int(self.labels.size)

    def __repr__(self) -> str:
        return (
            f"SpikeDataset({str(self.path)!r}, samples={len(self)}, "
            f"classes={self.n_classes}, channels={self.n_channels})"
        )

    @property
    def n_classes(self) -> int:
        """Size of the label table (20 for SHD), not the number of labels present."""
        return len(self.label_names)

    def spike_counts(self) -> np.ndarray:
        """Number of spikes per sample, shape ``(n,)``, int64."""
        return np.diff(self.offsets)

    def durations(self) -> np.ndarray:
        """Time of the last spike of each sample in seconds, shape ``(n,)``; 0 if empty."""
        counts = self.spike_counts()
        out = np.zeros(len(self), dtype=np.float64)
        nonempty = counts > 0
        if nonempty.any():
            # reduceat over the start of every non-empty sample: one vectorised pass.
            starts = self.offsets[:-1][nonempty]
            out[nonempty] = np.maximum.reduceat(self.times.astype(np.float64), starts)
        return out

    def spikes_beyond(self, window_s: float = 1.4) -> np.ndarray:
        """Per-sample number of spikes at ``t >= window_s`` (those binning drops)."""
        late = (self.times >= window_s).astype(np.int64)
        cumulative = np.concatenate(([0], np.cumsum(late)))
        return cumulative[self.offsets[1:]] - cumulative[self.offsets[:-1]]

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(times_s, units)`` of one sample (views into the flat arrays)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        index %= len(self)
        lo, hi = self.offsets[index], self.offsets[index + 1]
        return self.times[lo:hi], self.units[lo:hi]

    def _checked_indices(self, indices) -> np.ndarray:
        """``indices`` as int64 in ``0..len(self) - 1`` (negative ones from the end)."""
        if indices is None:
            return np.arange(len(self), dtype=np.int64)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"sample indices must lie in [0, {len(self)}) for {self.path}")
        return idx % max(len(self), 1)

    def _events(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Gather the events of ``indices``: (times, units, row of each event, n_rows)."""
        if indices is None:
            rows = np.repeat(np.arange(len(self), dtype=np.int64), self.spike_counts())
            return self.times, self.units, rows, len(self)
        idx = self._checked_indices(indices)
        flat, rows = gather_events(self.offsets[idx], self.offsets[idx + 1])
        return self.times[flat], self.units[flat], rows, int(idx.size)

    # ------------------------------------------------------------------ binning
    def binned(
        self,
        indices=None,
        *,
        n_bins: int = 100,
        window_s: float = 1.4,
        stride: int = 1,
        offset=0,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Spike counts per time bin and channel, for many samples in one pass.

        Parameters
        ----------
        indices : array-like of int, optional
            Samples to bin, in this order (repeats allowed). ``None`` means all.
        n_bins : int
            Number of equal bins over ``[0, window_s)``; 100 over 1.4 s as in the
            published preprocessing (EIS-Hub/meta-mosaic, see docs/data.md, 'Binning').
        window_s : float
            Window length in seconds. Spikes at ``t >= window_s`` are **dropped**; their
            total is stored in :attr:`last_dropped_spikes` (no warning is issued).
        stride : int
            Spatial sampling: keep channels ``offset, offset + stride, ...`` (column
            ``channel // stride``). ``stride = 1`` keeps all channels.
        offset : int or array-like of int
            The view, ``0 <= offset < stride``: one for every sample, or one per sample
            of ``indices`` (a task batch mixes views).
        dtype : torch.dtype
            Output dtype; values are integer counts (exact in float32 below 2**24).

        Returns
        -------
        torch.Tensor
            Shape ``(len(indices), n_bins, ceil(n_channels / stride))``; bin ``b`` holds
            spikes with ``b * window_s / n_bins <= t < (b + 1) * window_s / n_bins``, so
            bin 0 holds the first ``window_s / n_bins`` seconds. Offsets whose channel
            count is smaller than the width are zero-padded on the right.
        """
        idx = self._checked_indices(indices)
        if np.ndim(offset) == 0:
            check_binning(self.n_channels, n_bins=n_bins, window_s=window_s, stride=stride,
                          offset=offset)  # fmt: skip
            views = np.full(idx.size, int(offset), dtype=np.int64)
        else:
            views = np.asarray(offset).reshape(-1)
            if views.size != idx.size:
                raise ConfigError(
                    f"offset holds {views.size} views for {idx.size} samples; give one "
                    "offset for all samples or one per sample."
                )
        counts, dropped = bin_recordings(
            self.times, self.units, self.offsets, idx, views, n_channels=self.n_channels,
            n_bins=n_bins, window_s=window_s, stride=stride, dtype=dtype,
        )  # fmt: skip
        self.last_dropped_spikes = dropped
        return counts

    def views(self, indices, *, stride: int = 3, **binning) -> torch.Tensor:
        """All spatial-sampling views of each sample: every offset ``0..stride-1``.

        The augmentation of the published work (take every ``stride``-th channel, each
        offset a separate view; k = 3 gives 234/233/233 channels, zero-padded to 234).

        Parameters
        ----------
        indices : array-like of int or None
            Samples to bin (``None`` = all).
        stride : int
            Number of views (the spatial sampling interval k), ``1 <= stride <= n_channels``.
        **binning
            ``n_bins``, ``window_s`` and ``dtype`` as in :meth:`binned` (not ``offset``).

        Returns
        -------
        torch.Tensor
            Shape ``(len(indices), stride, n_bins, ceil(n_channels / stride))``;
            ``views(i, stride=k)[:, j]`` equals ``binned(i, stride=k, offset=j)``.
        """
        allowed = {"n_bins", "window_s", "dtype"}
        unknown = set(binning) - allowed
        if unknown:
            raise TypeError(
                f"views() got unexpected argument(s) {sorted(unknown)}; it produces every "
                f"offset itself and accepts only {sorted(allowed)} besides stride."
            )
        times, units, rows, n_rows = self._events(indices)
        out, dropped = spatial_views(
            times, units, rows, n_rows, n_channels=self.n_channels, stride=stride, **binning
        )
        self.last_dropped_spikes = dropped
        return out


# ---------------------------------------------------------------------- reading files
def _check_container(path: Path) -> None:
    """Fail early with a helpful message for missing, compressed or non-HDF5 files."""
    if not path.exists():
        raise DataFormatError(
            f"{path}: file not found. Generate the synthetic default with "
            f"mosaicnet.data.write_synthetic_shd({str(path.parent)!r}) or download SHD with "
            f"mosaicnet.data.download.download_shd({str(path.parent)!r})."
        )
    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory; pass the .h5 file inside it.")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[:2] == _GZIP_MAGIC:
        raise DataFormatError(
            f"{path}: is gzip-compressed; decompress it first (`gunzip -k {path}`) and "
            "pass the resulting .h5 file."
        )
    if head != _HDF5_MAGIC:
        raise DataFormatError(
            f"{path}: is not an HDF5 file (no HDF5 signature). Pass an SHD .h5 file such "
            "as shd_train.h5."
        )


def _hdf5_reason(error: BaseException, path: Path) -> str:
    """The one line of an HDF5 error stack a user can act on (not 20 lines of C trace)."""
    import re

    text = str(error)
    truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
    if truncated:
        present, expected = (int(n) for n in truncated.groups())
        return f"the file is truncated: {present} of {expected} bytes; download or copy it again"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and "error back trace" not in line and not line.strip().startswith("File ")
    ]
    return lines[-1] if lines else type(error).__name__


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _read_with_pytables(handle, path: Path) -> tuple | None:
    """The SHD nodes through PyTables (``None`` for a file written with h5py)."""
    import tables

    with handle:
        missing = [name for name in REQUIRED_NODES if name not in handle]
        if missing:
            raise DataFormatError(
                f"{path}: not in the SHD layout, missing {', '.join(missing)}. Expected "
                f"{', '.join(REQUIRED_NODES)} (Cramer et al. 2022)."
            )
        if any(isinstance(handle.get_node(name), tables.UnImplemented) for name in REQUIRED_NODES):
            return None
        times_rows = _read_vlarray(handle.get_node("/spikes/times"))
        units_rows = _read_vlarray(handle.get_node("/spikes/units"))
        labels = np.asarray(handle.get_node("/labels").read()).reshape(-1)
        speakers = np.asarray(handle.get_node("/extra/speaker").read()).reshape(-1)
        keys = np.asarray(handle.get_node("/extra/keys").read()).reshape(-1)
        meta_info: dict[str, np.ndarray] = {}
        if "/extra/meta_info" in handle:
            for leaf in handle.get_node("/extra/meta_info")._f_iter_nodes("Leaf"):
                meta_info[leaf.name] = np.asarray(leaf.read())
    return times_rows, units_rows, labels, speakers, keys, meta_info


def _read_with_h5py(path: Path) -> tuple:
    """The SHD nodes of a file written with h5py: rows, labels, speakers, keys, meta info."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            times_rows = [np.asarray(row) for row in handle["spikes/times"][()]]
            units_rows = [np.asarray(row) for row in handle["spikes/units"][()]]
            labels = np.asarray(handle["labels"][()]).reshape(-1)
            speakers = np.asarray(handle["extra/speaker"][()]).reshape(-1)
            keys = np.asarray(handle["extra/keys"][()]).reshape(-1)
            meta_info = {}
            if "extra/meta_info" in handle:
                group = handle["extra/meta_info"]
                meta_info = {
                    name: np.asarray(group[name][()])
                    for name in group
                    if isinstance(group[name], h5py.Dataset)
                }
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise DataFormatError(f"{path}: cannot be read as an SHD-layout file ({error}).") from None
    return times_rows, units_rows, labels, speakers, keys, meta_info


def _read_vlarray(node) -> list[np.ndarray]:
    """All rows of a variable-length array (one read call, rows as numpy arrays)."""
    return [np.asarray(row) for row in node.read()]


def load_shd(path: str | Path, *, n_channels: int = SHD_CHANNELS) -> SpikeDataset:
    """Read an SHD-layout HDF5 file (real SHD or the synthetic default) into memory.

    Parameters
    ----------
    path : str or Path
        An uncompressed ``shd_train.h5`` / ``shd_test.h5`` or a file in the same layout.
    n_channels : int
        Number of input channels; units must lie in ``0..n_channels-1`` (700 for SHD).

    Returns
    -------
    SpikeDataset
        The samples in file order.

    Raises
    ------
    DataFormatError
        Missing file, gzip or non-HDF5 file, missing SHD datasets, ``times``/``units`` of
        different lengths in a sample, units outside the channel range, negative or NaN
        times, labels outside the label table. The message names the file and sample.
    """
    import tables

    path = Path(path)
    _check_container(path)
    # The HDF5 library prints its error stack for a damaged file; the message below
    # says what matters in one line.
    tables.silence_hdf5_messages(True)
    try:
        handle = tables.open_file(str(path), mode="r")
    except (OSError, tables.exceptions.HDF5ExtError) as error:
        raise DataFormatError(
            f"{path}: cannot be opened as HDF5 ({_hdf5_reason(error, path)})."
        ) from None
    try:
        nodes = _read_with_pytables(handle, path)
    except MosaicnetError:
        raise
    except (tables.exceptions.HDF5ExtError, OSError, ValueError, KeyError, TypeError) as error:
        raise DataFormatError(
            f"{path}: is damaged, reading it failed ({_hdf5_reason(error, path)}); download "
            "or copy it again"
        ) from None
    if nodes is None:
        # Variable-length datasets written with h5py carry none of PyTables' own
        # attributes, and PyTables cannot read them (UnImplemented nodes): h5py,
        # the standard reader of such files (converters, tonic caches), reads them.
        nodes = _read_with_h5py(path)
    times_rows, units_rows, labels, speakers, keys, meta_info = nodes

    n = labels.size
    if len(times_rows) != n or len(units_rows) != n:
        raise DataFormatError(
            f"{path}: {n} labels but {len(times_rows)} rows in /spikes/times and "
            f"{len(units_rows)} in /spikes/units; every sample needs one row in each."
        )
    times_len = np.fromiter((r.size for r in times_rows), dtype=np.int64, count=n)
    units_len = np.fromiter((r.size for r in units_rows), dtype=np.int64, count=n)
    mismatch = np.flatnonzero(times_len != units_len)
    if mismatch.size:
        i = int(mismatch[0])
        raise DataFormatError(
            f"{path}: sample {i} has {times_len[i]} spike times but {units_len[i]} units "
            f"({mismatch.size} such samples); each spike needs one time and one unit. "
            "The file is corrupt; download or generate it again."
        )
    offsets = np.concatenate(([0], np.cumsum(times_len)))
    times = np.concatenate(times_rows) if n else np.zeros(0)
    units = np.concatenate(units_rows) if n else np.zeros(0, dtype=np.uint16)
    if not np.issubdtype(times.dtype, np.floating):
        times = times.astype(np.float64)
    label_names = {i: _decode(k) for i, k in enumerate(keys)}
    return SpikeDataset(
        times,
        units,
        offsets,
        labels.astype(np.int64),
        speakers.astype(np.int64),
        label_names,
        n_channels=n_channels,
        path=path,
        meta_info=meta_info,
    )
