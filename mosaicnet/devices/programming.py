"""Programming weights into device pairs, and reading them back at a later time.

:func:`program_weights` maps signed weights to target pairs
(:mod:`mosaicnet.devices.mapping`), adds programming noise, draws every
device's drift parameter ONCE and records when it was programmed. The result,
a :class:`ProgrammedArray`, is the state of the chip: reads at any later time
apply drift to these programmed conductances (never to the targets), add fresh
read noise per read, and clamp to ``[G_min, G_max]``.

Times are on one clock, in seconds: ``t_prog_s`` (default 0) is when a device was
programmed and a read at ``t_s`` sees it ``t_s - t_prog_s`` after programming.
With the default ``t_prog_s = 0``, ``t_s`` is simply the time since programming.
Devices may carry different programming times (:meth:`ProgrammedArray.reprogram`
rewrites part of an array later, as a chip-in-the-loop update does).
"""

from __future__ import annotations

import dataclasses
import json
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from mosaicnet.devices.array_ops import NUMPY_OPS
from mosaicnet.devices.mapping import (
    ConductancePair,
    check_w_scale,
    checked_weights,
    conductances_to_weights,
    weights_to_conductances,
)
from mosaicnet.devices.models import DeviceModel, device_model_from_dict
from mosaicnet.devices.registry import get_device_model
from mosaicnet.errors import ConfigError, DataFormatError

#: Version of the dict / npz layout written by :meth:`ProgrammedArray.to_dict`.
FORMAT_VERSION = 1

_ARRAY_KEYS = ("g_plus", "g_minus", "drift_plus", "drift_minus", "t_prog_s")


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, an integer seed, or ``None`` (fresh, unseeded)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ConfigError(f"rng={rng!r} must be a numpy Generator, an integer seed or None")


def check_time(t_s: Any, what: str) -> float:
    """A time in seconds as a float; :class:`ConfigError` if negative or not finite."""
    try:
        value = float(t_s)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{what}={t_s!r} must be a time in seconds") from error
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"{what}={t_s!r} must be a finite time >= 0 seconds")
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class ProgrammedArray:
    """The programmed state of an array of differential pairs.

    Attributes
    ----------
    g_plus, g_minus : numpy.ndarray
        Programmed conductances (siemens) of the two devices of every pair,
        the shape of the weight array.
    drift_plus, drift_minus : numpy.ndarray
        Per-device drift parameters drawn at programming (model-specific: the
        drift exponent ``nu`` for PCM, the relaxation z-score for RRAM).
    t_prog_s : numpy.ndarray
        Time each pair was programmed (seconds), same shape.
    w_scale : float
        Weight of a full-range pair: ``w = w_scale (G+ - G-) / (G_max - G_min)``.
    model : DeviceModel
        The device model the array was programmed with.
    """

    g_plus: np.ndarray
    g_minus: np.ndarray
    drift_plus: np.ndarray
    drift_minus: np.ndarray
    t_prog_s: np.ndarray
    w_scale: float
    model: DeviceModel

    def __post_init__(self) -> None:
        shape = np.shape(self.g_plus)
        for key in _ARRAY_KEYS:
            value = np.asarray(getattr(self, key), dtype=np.float64)
            if key == "t_prog_s":
                if value.shape != shape:
                    try:
                        value = np.broadcast_to(value, shape)
                    except ValueError as error:
                        raise ConfigError(
                            f"t_prog_s of shape {value.shape} does not fit arrays of shape {shape}"
                        ) from error
                if (~np.isfinite(value)).any() or (value < 0).any():
                    raise ConfigError("t_prog_s must hold finite times >= 0 seconds")
            elif value.shape != shape:
                raise ConfigError(f"{key} has shape {value.shape}, g_plus has shape {shape}")
            object.__setattr__(self, key, np.array(value, dtype=np.float64))
        object.__setattr__(self, "w_scale", check_w_scale(self.w_scale))
        if not isinstance(self.model, DeviceModel):
            raise ConfigError(f"model must be a DeviceModel, got {self.model!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the weight array."""
        return self.g_plus.shape

    # ---------------------------------------------------------------- reading
    def elapsed_s(self, t_s: float) -> np.ndarray:
        """Time since programming of every pair for a read at ``t_s`` (seconds)."""
        t = check_time(t_s, "read time t_s")
        elapsed = t - self.t_prog_s
        if (elapsed < 0).any():
            raise ConfigError(
                f"read time t_s={t:g} s precedes the programming of {int((elapsed < 0).sum())} "
                f"pair(s) (latest t_prog_s={float(self.t_prog_s.max()):g} s); read at or after "
                "programming"
            )
        return elapsed

    def read_conductances(
        self,
        t_s: float,
        *,
        rng: np.random.Generator | int | None = None,
        read_noise: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(G+, G-)`` read at time ``t_s``: drift of the programmed state, then read noise.

        Parameters
        ----------
        t_s : float
            Read time (seconds) on the programming clock; ``>= t_prog_s``.
        rng : numpy.random.Generator or int, optional
            Source of the read noise, drawn anew at every call.
        read_noise : bool
            ``False`` gives the noise-free drifted conductances (as does a
            model with ``read_noise=False``).
        """
        elapsed = self.elapsed_s(t_s)
        noisy = read_noise and self.model.read_noise
        generator = as_generator(rng) if noisy else None
        results = []
        for g_prog, parameter in ((self.g_plus, self.drift_plus), (self.g_minus, self.drift_minus)):
            xi = generator.standard_normal(self.shape) if generator is not None else None
            results.append(
                np.asarray(
                    self.model.read_conductance(g_prog, parameter, elapsed, NUMPY_OPS, xi=xi),
                    dtype=np.float64,
                )
            )
        return results[0], results[1]

    def read_weights(
        self,
        t_s: float,
        *,
        rng: np.random.Generator | int | None = None,
        read_noise: bool = True,
    ) -> np.ndarray:
        """Signed weights read at ``t_s`` (see :meth:`read_conductances`)."""
        g_plus, g_minus = self.read_conductances(t_s, rng=rng, read_noise=read_noise)
        return conductances_to_weights(g_plus, g_minus, self.model, self.w_scale)

    # ------------------------------------------------------------ reprogram
    def reprogram(
        self,
        weights: Any,
        *,
        t_prog_s: float,
        rng: np.random.Generator | int | None = None,
        mask: Any = None,
        clip: bool = False,
    ) -> ProgrammedArray:
        """A new array with the pairs selected by ``mask`` (default all) reprogrammed.

        The rewritten pairs get new programming noise, new drift parameters
        and programming time ``t_prog_s``; the others keep their state. The
        array's ``w_scale`` is kept so old and new weights share one scale.
        """
        array = checked_weights(weights)
        if array.shape != self.shape:
            raise ConfigError(f"weights of shape {array.shape} do not fit the array {self.shape}")
        selected = np.ones(self.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
        if selected.shape != self.shape:
            raise ConfigError(f"mask of shape {selected.shape} does not fit the array {self.shape}")
        t_new = check_time(t_prog_s, "t_prog_s")
        fresh = program_weights(
            array, self.model, rng=rng, w_scale=self.w_scale, t_prog_s=t_new, clip=clip
        )
        return ProgrammedArray(
            **{
                key: np.where(selected, getattr(fresh, key), getattr(self, key))
                for key in _ARRAY_KEYS
            },
            w_scale=self.w_scale,
            model=self.model,
        )

    # --------------------------------------------------------------------- io
    def to_dict(self) -> dict[str, Any]:
        """Plain data: the arrays, ``w_scale``, the model description and a format version."""
        data: dict[str, Any] = {key: getattr(self, key).copy() for key in _ARRAY_KEYS}
        data.update(w_scale=self.w_scale, model=self.model.to_dict(), format_version=FORMAT_VERSION)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgrammedArray:
        """Rebuild an array written by :meth:`to_dict`."""
        missing = [key for key in (*_ARRAY_KEYS, "w_scale", "model") if key not in data]
        if missing:
            raise DataFormatError(
                f"programmed-array data lacks {', '.join(missing)}; was it written by "
                "ProgrammedArray.to_dict?"
            )
        version = int(data.get("format_version", FORMAT_VERSION))
        if version != FORMAT_VERSION:
            raise DataFormatError(
                f"programmed-array format version {version} is not supported "
                f"(this mosaicnet reads version {FORMAT_VERSION})"
            )
        return cls(
            **{key: np.asarray(data[key], dtype=np.float64) for key in _ARRAY_KEYS},
            w_scale=float(data["w_scale"]),
            model=device_model_from_dict(data["model"]),
        )

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the array to an ``.npz`` file (no pickles); return the path."""
        target = Path(path)
        data = self.to_dict()
        model_json = json.dumps(data.pop("model"))
        np.savez(target, model_json=np.array(model_json), **data)
        # numpy appends .npz when the name lacks it; return the file actually written.
        return target if target.suffix == ".npz" else target.with_name(target.name + ".npz")

    @classmethod
    def load(cls, path: str | PathLike[str]) -> ProgrammedArray:
        """Read an array written by :meth:`save`."""
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as archive:
                data: dict[str, Any] = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as error:
            raise DataFormatError(f"cannot read programmed array from {source}: {error}") from error
        if "model_json" not in data:
            raise DataFormatError(f"{source} is not a saved ProgrammedArray (no model_json)")
        data["model"] = json.loads(str(data.pop("model_json")))
        try:
            return cls.from_dict(data)
        except DataFormatError as error:
            raise DataFormatError(f"{source}: {error}") from error


def program_conductances(
    targets: ConductancePair,
    model: DeviceModel,
    *,
    rng: np.random.Generator | int | None = None,
    t_prog_s: float = 0.0,
) -> ProgrammedArray:
    """Program target pairs: programming noise, and drift parameters drawn once per device."""
    generator = as_generator(rng)
    t_prog = check_time(t_prog_s, "t_prog_s")
    shape = np.shape(targets.g_plus)
    programmed = {}
    for sign, g_target in (("plus", targets.g_plus), ("minus", targets.g_minus)):
        xi_prog = generator.standard_normal(shape)
        xi_drift = generator.standard_normal(shape)
        programmed[f"g_{sign}"] = model.programmed_conductance(g_target, xi_prog, NUMPY_OPS)
        # Drawn from the target (as the published PCM fit is) and kept for every later read.
        parameter = model.sample_drift_parameter(g_target, xi_drift, NUMPY_OPS)
        programmed[f"drift_{sign}"] = np.broadcast_to(parameter, shape)
    return ProgrammedArray(
        **programmed,
        t_prog_s=np.full(shape, t_prog),
        w_scale=targets.w_scale,
        model=model,
    )


def program_weights(
    weights: Any,
    model: DeviceModel | str,
    *,
    rng: np.random.Generator | int | None = None,
    w_scale: float | None = None,
    t_prog_s: float = 0.0,
    clip: bool = False,
) -> ProgrammedArray:
    """Program signed weights into differential pairs of ``model`` devices.

    Parameters
    ----------
    weights : array_like
        Signed weights (any shape). NaN/inf raise :class:`ConfigError`.
    model : DeviceModel or str
        A model or preset name (:func:`mosaicnet.devices.list_presets`).
    rng : numpy.random.Generator or int, optional
        Source of programming noise and drift parameters.
    w_scale : float, optional
        Weight of a full-range pair; default ``max |w|``. Stored on the result.
    t_prog_s : float
        Programming time (seconds) on the clock later reads use.
    clip : bool
        Saturate weights beyond ``w_scale`` instead of raising.

    Examples
    --------
    >>> import numpy as np
    >>> from mosaicnet.devices import program_weights
    >>> chip = program_weights(np.array([[0.5, -1.0]]), "pcm_aihwkit", rng=0)
    >>> w_day = chip.read_weights(86400.0, rng=1)
    >>> w_day.shape
    (1, 2)
    """
    device = get_device_model(model)
    targets = weights_to_conductances(weights, device, w_scale=w_scale, clip=clip)
    return program_conductances(targets, device, rng=rng, t_prog_s=t_prog_s)
