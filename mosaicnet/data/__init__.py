"""Spike data: the SHD reader, binning and spatial-sampling views, the synthetic default.

>>> from mosaicnet.data import load_shd, write_synthetic_shd
>>> train_path, test_path = write_synthetic_shd("data/synthetic")   # doctest: +SKIP
>>> ds = load_shd(test_path)                                        # doctest: +SKIP
>>> x = ds.binned(n_bins=100, window_s=1.4)   # (n, 100, 700) spike counts  # doctest: +SKIP

Modules: :mod:`~mosaicnet.data.shd` (reader, :class:`SpikeDataset`),
:mod:`~mosaicnet.data.binning`, :mod:`~mosaicnet.data.synthetic`,
:mod:`~mosaicnet.data.inspect`, :mod:`~mosaicnet.data.baseline`,
:mod:`~mosaicnet.data.download` and :mod:`~mosaicnet.data.tasks` (few-shot tasks).

The names below are resolved on first use (PEP 562), so ``import mosaicnet.data`` does
not pull in torch or PyTables until a reader or generator is actually needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "SpikeDataset": "shd",
    "load_shd": "shd",
    "SHD_CHANNELS": "shd",
    "bin_events": "binning",
    "spatial_views": "binning",
    "check_binning": "binning",
    "write_synthetic_shd": "synthetic",
    "ensure_synthetic_shd": "synthetic",
    "SyntheticConfig": "synthetic",
    "LABEL_NAMES": "synthetic",
    "inspect_shd": "inspect",
    "nearest_centroid_baseline": "baseline",
}

__all__ = [
    "LABEL_NAMES",
    "SHD_CHANNELS",
    "SpikeDataset",
    "SyntheticConfig",
    "bin_events",
    "check_binning",
    "ensure_synthetic_shd",
    "inspect_shd",
    "load_shd",
    "nearest_centroid_baseline",
    "spatial_views",
    "write_synthetic_shd",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from mosaicnet.data.baseline import nearest_centroid_baseline
    from mosaicnet.data.binning import bin_events, check_binning, spatial_views
    from mosaicnet.data.inspect import inspect_shd
    from mosaicnet.data.shd import SHD_CHANNELS, SpikeDataset, load_shd
    from mosaicnet.data.synthetic import (
        LABEL_NAMES,
        SyntheticConfig,
        ensure_synthetic_shd,
        write_synthetic_shd,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
