"""The device-model abstraction: one memristor as four published laws that compose.

A :class:`DeviceModel` describes ONE memristive device (one conductance of a
differential pair). A concrete model supplies four element-wise laws, each
written against :class:`mosaicnet.devices.array_ops.ArrayOps` so the same code
runs in numpy, in torch and as generated Brian2 code:

``programming_sigma(g_target)``
    standard deviation (siemens) of the programming (write) noise,
    ``G_prog = G_target + sigma_prog(G_target) * xi``;
``sample_drift_parameter(g_target, xi)``
    the per-device drift parameter, drawn ONCE when the device is programmed
    and kept (a drift exponent ``nu`` for PCM, a relaxation z-score for RRAM);
``drift_law(g_prog, parameter, t_eff)``
    the conductance a time ``t_eff`` after programming, applied to the
    *programmed* conductance;
``read_sigma(g_drifted, g_prog, t_eff)``
    standard deviation (siemens) of the noise of one read.

The base class composes them (:meth:`DeviceModel.programmed_conductance`,
:meth:`DeviceModel.drifted_conductance`, :meth:`DeviceModel.read_conductance`),
applies the switches (``programming_noise``, ``drift``, ``read_noise``), clamps
to ``[g_min, g_max]`` and fixes one convention for early reads:

**Times before t0.** Every published drift/relaxation law is fitted from its
first measurement at ``t0`` after programming on (20 s for the aihwkit PCM
model, 38.6 s for Nandakumar et al., 1 s for the RRAM relaxation fit; before it
the power law diverges and ``ln t`` changes sign). All laws are therefore
evaluated at ``t_eff = max(t, t0)``: a read before ``t0`` sees the device as at
``t0``. For power-law drift this means "no drift before t0"; for the RRAM
relaxation it means the 1 s relaxation is already present at the first read.

Quantisation (``n_levels``) is a device property used by the weight mapping
(:mod:`mosaicnet.devices.mapping`): targets snap to ``n_levels`` equally spaced
conductances in ``[g_min, g_max]`` before programming noise is applied.

Subclasses are registered by class name when they are defined, so a
:class:`~mosaicnet.devices.programming.ProgrammedArray` saved with a user model
can be loaded again once the module defining that model has been imported.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from mosaicnet.devices.array_ops import ArrayOps
from mosaicnet.errors import ConfigError

_MODEL_CLASSES: dict[str, type[DeviceModel]] = {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeviceModel(ABC):
    """One memristive device: conductance range, non-idealities and their switches.

    Parameters
    ----------
    g_min_siemens, g_max_siemens : float
        Conductance range of one device (siemens); ``0 <= g_min < g_max``.
    t0_s : float
        First time after programming (seconds) at which the drift law holds;
        reads before it see the device as at ``t0_s`` (see module docstring).
    n_levels : int or None
        Number of programmable conductance levels (>= 2), or ``None`` for a
        continuous device.
    programming_noise, drift, read_noise : bool
        Switch each non-ideality on or off without changing its parameters.
    """

    g_min_siemens: float
    g_max_siemens: float
    t0_s: float
    n_levels: int | None = None
    programming_noise: bool = True
    drift: bool = True
    read_noise: bool = True

    #: Short name shown in listings; presets use their registry name.
    label: ClassVar[str] = "custom"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Registered by class name (not module path) so a file saved from a
        # script's __main__ can be loaded from another script that defines or
        # imports the same class. A redefinition (notebook re-run) replaces it.
        _MODEL_CLASSES[cls.__name__] = cls

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float | int) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ConfigError(
                        f"{type(self).__name__}: parameter {field.name}={value!r} must be finite"
                    )
        if self.g_min_siemens < 0:
            raise ConfigError(
                f"{type(self).__name__}: g_min_siemens={self.g_min_siemens!r} is negative; "
                "conductances are >= 0 siemens"
            )
        if self.g_min_siemens >= self.g_max_siemens:
            raise ConfigError(
                f"{type(self).__name__}: g_min_siemens={self.g_min_siemens!r} must be smaller "
                f"than g_max_siemens={self.g_max_siemens!r}"
            )
        if self.t0_s <= 0:
            raise ConfigError(
                f"{type(self).__name__}: t0_s={self.t0_s!r} must be a positive time in seconds"
            )
        if self.n_levels is not None and (
            isinstance(self.n_levels, bool)
            or not isinstance(self.n_levels, int)
            or self.n_levels < 2
        ):
            raise ConfigError(
                f"{type(self).__name__}: n_levels={self.n_levels!r} must be an integer >= 2, "
                "or None for a continuous device"
            )
        self._validate()

    def _validate(self) -> None:  # noqa: B027 - an optional hook, empty on purpose
        """Check model-specific parameters; raise :class:`ConfigError` naming the bad one."""

    # ------------------------------------------------------------------ laws
    @abstractmethod
    def programming_sigma(self, g_target: Any, ops: ArrayOps) -> Any:
        """Standard deviation (siemens) of the programming noise at target ``g_target``."""

    @abstractmethod
    def sample_drift_parameter(self, g_target: Any, xi: Any, ops: ArrayOps) -> Any:
        """Per-device drift parameter from a standard-normal draw ``xi`` (once, at programming)."""

    @abstractmethod
    def drift_law(self, g_prog: Any, parameter: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        """Conductance (siemens) at ``t_eff_s >= t0_s`` after programming, before clamping."""

    @abstractmethod
    def read_sigma(self, g_drifted: Any, g_prog: Any, t_eff_s: Any, ops: ArrayOps) -> Any:
        """Standard deviation (siemens) of one read of a device at ``g_drifted``."""

    # ----------------------------------------------------------- composition
    def bounds(self, ops: ArrayOps) -> tuple[Any, Any]:
        """``(g_min, g_max)`` as named constants of ``ops``."""
        return (
            ops.constant("device_g_min", self.g_min_siemens, "siemens"),
            ops.constant("device_g_max", self.g_max_siemens, "siemens"),
        )

    def effective_time(self, t_elapsed_s: Any, ops: ArrayOps) -> Any:
        """``max(t, t0)``: the time at which the drift and read laws are evaluated."""
        return ops.clip(t_elapsed_s, ops.constant("device_t0", self.t0_s, "second"), None)

    def programmed_conductance(self, g_target: Any, xi: Any, ops: ArrayOps) -> Any:
        """``clip(G_target + sigma_prog(G_target) * xi, g_min, g_max)`` (``xi`` standard normal)."""
        if not self.programming_noise:
            return g_target
        g_min, g_max = self.bounds(ops)
        return ops.clip(g_target + self.programming_sigma(g_target, ops) * xi, g_min, g_max)

    def drifted_conductance(
        self, g_prog: Any, parameter: Any, t_elapsed_s: Any, ops: ArrayOps
    ) -> Any:
        """Noise-free read: the drift law at ``max(t, t0)``, clamped to ``[g_min, g_max]``."""
        if not self.drift:
            return g_prog
        g_min, g_max = self.bounds(ops)
        t_eff = self.effective_time(t_elapsed_s, ops)
        return ops.clip(self.drift_law(g_prog, parameter, t_eff, ops), g_min, g_max)

    def read_conductance(
        self, g_prog: Any, parameter: Any, t_elapsed_s: Any, ops: ArrayOps, xi: Any = None
    ) -> Any:
        """One read ``t_elapsed_s`` after programming; ``xi`` (standard normal) or ``None``.

        ``xi=None`` (or ``read_noise=False``) gives the noise-free drifted
        conductance. Otherwise ``clip(G_d + sigma_read * xi, g_min, g_max)``.
        ``xi`` is used exactly once, so a symbolic ``randn()`` draws one number.
        """
        g_drifted = self.drifted_conductance(g_prog, parameter, t_elapsed_s, ops)
        if xi is None or not self.read_noise:
            return g_drifted
        g_min, g_max = self.bounds(ops)
        t_eff = self.effective_time(t_elapsed_s, ops)
        sigma = self.read_sigma(g_drifted, g_prog, t_eff, ops)
        return ops.clip(g_drifted + sigma * xi, g_min, g_max)

    # ------------------------------------------------------ description / io
    @property
    def name(self) -> str:
        """Preset name for presets, class name for user models."""
        return self.label if self.label != "custom" else type(self).__name__

    def parameters(self) -> dict[str, Any]:
        """All constructor parameters (SI units, as in the field names)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def with_parameters(self, **changes: Any) -> DeviceModel:
        """A copy with some parameters changed (e.g. ``n_levels=16`` or ``drift=False``)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} has no parameter(s) {', '.join(unknown)}; "
                f"valid parameters: {', '.join(sorted(valid))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """``{"class": class name, "parameters": {...}}``, JSON-serialisable."""
        return {"class": type(self).__name__, "parameters": self.parameters()}

    def describe(self) -> str:
        """One line: name, conductance range in microsiemens, t0, switches, levels."""
        switches = [
            name
            for name, on in (
                ("programming noise", self.programming_noise),
                ("drift", self.drift),
                ("read noise", self.read_noise),
            )
            if on
        ]
        levels = "continuous" if self.n_levels is None else f"{self.n_levels} levels"
        return (
            f"{self.name}: G in [{self.g_min_siemens * 1e6:g}, {self.g_max_siemens * 1e6:g}] uS, "
            f"t0 {self.t0_s:g} s, {levels}, "
            f"{', '.join(switches) if switches else 'no non-idealities'}"
        )


def device_model_from_dict(data: dict[str, Any]) -> DeviceModel:
    """Rebuild a model written by :meth:`DeviceModel.to_dict`.

    Raises
    ------
    ConfigError
        If the class is unknown (import the module that defines it first) or
        the parameters do not fit it.
    """
    try:
        class_name = data["class"]
        parameters = dict(data["parameters"])
    except (KeyError, TypeError) as error:
        raise ConfigError(
            f"device model description {data!r} lacks 'class' or 'parameters'"
        ) from error
    cls = _MODEL_CLASSES.get(class_name)
    if cls is None:
        raise ConfigError(
            f"unknown device model class {class_name!r}; import the module that defines it "
            f"before loading (known: {', '.join(sorted(_MODEL_CLASSES))})"
        )
    try:
        return cls(**parameters)
    except TypeError as error:
        raise ConfigError(
            f"parameters {sorted(parameters)} do not fit device model {class_name}: {error}"
        ) from error
