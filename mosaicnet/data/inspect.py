"""Summary statistics of an SHD-layout file, for ``mosaicnet data inspect``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mosaicnet.data.shd import SHD_CHANNELS, load_shd


def _stats(values: np.ndarray) -> dict[str, float]:
    """min / mean / median / max (0 for an empty array), as plain floats for JSON."""
    if values.size == 0:
        return {"min": 0.0, "mean": 0.0, "median": 0.0, "max": 0.0}
    return {
        "min": float(values.min()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


def inspect_shd(path: str | Path, *, n_channels: int = SHD_CHANNELS, window_s: float = 1.4) -> dict:
    """Read an SHD-layout file and summarise it.

    Parameters
    ----------
    path : str or Path
        The ``.h5`` file.
    n_channels : int
        Channel count the file is validated against (700 for SHD).
    window_s : float
        Binning window in seconds; spikes at or after it are reported as
        ``spikes_beyond_window`` (binning drops them).

    Returns
    -------
    dict
        JSON-serialisable: ``path``, ``samples``, ``classes`` (size of the label table),
        ``label_names`` (id -> word, string keys), ``samples_per_class``, ``speakers``
        (number of distinct speakers), ``speaker_ids``, ``samples_per_speaker``,
        ``channels``, ``spike_count`` and ``duration_s`` (min/mean/median/max),
        ``total_spikes``, ``empty_samples``, ``window_s``, ``spikes_beyond_window``,
        ``samples_beyond_window``.
    """
    ds = load_shd(path, n_channels=n_channels)
    counts = ds.spike_counts()
    beyond = ds.spikes_beyond(window_s)
    speaker_ids, per_speaker = np.unique(ds.speakers, return_counts=True)
    per_class = np.bincount(ds.labels, minlength=ds.n_classes)
    return {
        "path": str(ds.path),
        "samples": len(ds),
        "classes": ds.n_classes,
        "label_names": {str(k): v for k, v in sorted(ds.label_names.items())},
        "samples_per_class": {str(k): int(c) for k, c in enumerate(per_class)},
        "speakers": int(speaker_ids.size),
        "speaker_ids": [int(s) for s in speaker_ids],
        "samples_per_speaker": {
            str(int(s)): int(c) for s, c in zip(speaker_ids, per_speaker, strict=True)
        },
        "channels": ds.n_channels,
        "total_spikes": int(counts.sum()),
        "spike_count": _stats(counts),
        "duration_s": _stats(ds.durations()),
        "empty_samples": int(np.count_nonzero(counts == 0)),
        "window_s": float(window_s),
        "spikes_beyond_window": int(beyond.sum()),
        "samples_beyond_window": int(np.count_nonzero(beyond)),
    }
