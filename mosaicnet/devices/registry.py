"""Named presets of published device models, and lookup by name."""

from __future__ import annotations

from typing import Any

from mosaicnet.devices.ideal import IdealDevice
from mosaicnet.devices.models import DeviceModel
from mosaicnet.devices.pcm import AihwkitPCM, NandakumarPCM
from mosaicnet.devices.rram import HfOxRRAM
from mosaicnet.errors import ConfigError

_PRESETS: dict[str, type[DeviceModel]] = {
    cls.label: cls for cls in (IdealDevice, NandakumarPCM, AihwkitPCM, HfOxRRAM)
}


def list_presets() -> list[str]:
    """Names accepted by :func:`get_device_model`, in a fixed order (ideal first)."""
    return list(_PRESETS)


def get_device_model(name_or_model: str | DeviceModel, **overrides: Any) -> DeviceModel:
    """Return a device model from a preset name (or pass a model through).

    Parameters
    ----------
    name_or_model : str or DeviceModel
        A preset name from :func:`list_presets` (case and ``-``/``_``
        insensitive), or a model instance (e.g. your own subclass).
    **overrides
        Parameters to change, e.g. ``n_levels=32`` or ``read_noise=False``.

    Raises
    ------
    ConfigError
        For an unknown preset (the message lists the valid ones) or an unknown
        or invalid parameter.
    """
    if isinstance(name_or_model, DeviceModel):
        return name_or_model.with_parameters(**overrides) if overrides else name_or_model
    if not isinstance(name_or_model, str):
        raise ConfigError(
            f"device model must be a preset name or a DeviceModel, got {name_or_model!r}; "
            f"presets: {', '.join(list_presets())}"
        )
    key = name_or_model.strip().lower().replace("-", "_")
    cls = _PRESETS.get(key)
    if cls is None:
        raise ConfigError(
            f"unknown device preset {name_or_model!r}; valid presets: {', '.join(list_presets())}"
        )
    return cls().with_parameters(**overrides) if overrides else cls()
