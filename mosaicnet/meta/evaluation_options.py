"""How a trained run is meta-tested: one options object for the torch and the chip evaluation.

:class:`EvaluationOptions` is what ``mosaicnet evaluate``, ``mosaicnet drift``,
the protocols and the sweeps hand to :func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch`
and :mod:`mosaicnet.meta.chip_evaluation`. The defaults live here and nowhere
else; a bad value fails when the object is made, with a message that names the
field.

>>> options = EvaluationOptions(tasks=20, backend="numpy", read_time_s="1d")
>>> options.read_time_s
86400.0
>>> options.with_changes(noise=False).noise
False
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mosaicnet.errors import ConfigError
from mosaicnet.meta.config import check_torch_device
from mosaicnet.meta.read_time import parse_read_time
from mosaicnet.meta.readout_range import AUTO, default_readout_headroom

#: Meta-test protocols (:mod:`mosaicnet.meta.torch_evaluation`).
PROTOCOLS: tuple[str, ...] = ("separate", "mixed")

#: Read times of a drift curve (:func:`mosaicnet.meta.chip_evaluation.drift_curve`):
#: 1 s, 1 h, 1 day, 30 days after programming.
DRIFT_READ_TIMES_S: tuple[float, ...] = (1.0, 3600.0, 86400.0, 30 * 86400.0)

#: Options only the chip (Brian2) evaluation uses; the torch evaluation has no devices.
CHIP_ONLY: tuple[str, ...] = ("backend", "read_time_s", "noise", "drift_compensation")

# Another name users know for the default runtime backend.
_BACKEND_ALIASES = {"runtime": "cython"}


@dataclass(frozen=True)
class EvaluationOptions:
    """Options of a few-shot meta-test, on the torch clone or on the Brian2 chip.

    Attributes
    ----------
    tasks
        Tasks per kind (seen, unseen) with ``protocol="separate"``, else in total.
    protocol
        ``"separate"`` (seen-class and held-out-class tasks) or ``"mixed"``.
    inner_steps
        Inner steps at test time; ``None``: the run's ``test_inner_steps``, else as
        trained (:meth:`for_run`).
    seed
        Seed of the task streams and (chip) of every device random stream.
    readout_headroom
        Readout conductance range over ``max |w_out|``
        (:mod:`mosaicnet.meta.readout_range`); ``"auto"`` (default): 2 where tasks
        start from the meta readout, 1 with the prototype start (:meth:`for_run`);
        ``None``: unbounded (torch only).
    tasks_per_run
        Tasks simulated together (torch: 16; Brian2: by backend, see
        :mod:`mosaicnet.meta.chip_evaluation`); memory grows with it.
    progress
        Show a progress bar over tasks.
    backend
        Brian2 backend of the chip: one of
        :data:`mosaicnet.network.brian_backends.BACKENDS` (``"runtime"`` is
        taken as ``"cython"``).
    read_time_s
        Time since programming at which the chip is read: seconds, or text such
        as ``"30d"`` (stored in seconds).
    noise
        Programming, write and read noise of the device model (drift stays).
    drift_compensation
        Global drift compensation of every pathway's gain.
    torch_device
        Where the torch clone runs (torch evaluation only): ``"cpu"`` or
        ``"cuda[:N]"``, whatever device the run was trained on.
    """

    tasks: int = 100
    protocol: str = "separate"
    inner_steps: int | None = None
    seed: int = 0
    readout_headroom: float | str | None = AUTO
    tasks_per_run: int | None = None
    progress: bool = True
    backend: str = "cython"
    read_time_s: float = 1.0
    noise: bool = True
    drift_compensation: bool = False
    torch_device: str = "cpu"

    def __post_init__(self) -> None:
        from mosaicnet.network.brian_backends import BACKENDS

        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "tasks", _positive_int(self.tasks, "tasks"))
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.inner_steps is not None:
            set_(self, "inner_steps", _positive_int(self.inner_steps, "inner_steps"))
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        set_(self, "seed", int(self.seed))
        if self.readout_headroom is not None and self.readout_headroom != AUTO:
            headroom = self.readout_headroom
            if isinstance(headroom, bool) or not isinstance(headroom, numbers.Real):
                raise ConfigError(
                    f"readout_headroom must be {AUTO!r} or a number >= 1, got {headroom!r}"
                )
            if not math.isfinite(headroom) or headroom < 1:
                raise ConfigError(
                    f"readout_headroom must be {AUTO!r} or a number >= 1, got {headroom!r}"
                )
            set_(self, "readout_headroom", float(headroom))
        if self.tasks_per_run is not None:
            set_(self, "tasks_per_run", _positive_int(self.tasks_per_run, "tasks_per_run"))
        backend = _BACKEND_ALIASES.get(self.backend, self.backend)
        if backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend {self.backend!r}; choose one of "
                f"{', '.join((*BACKENDS, *_BACKEND_ALIASES))}"
            )
        set_(self, "backend", backend)
        set_(self, "read_time_s", parse_read_time(self.read_time_s))
        check_torch_device(self.torch_device)
        for name in ("progress", "noise", "drift_compensation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def for_run(self, config: Any) -> EvaluationOptions:
        """These options resolved for a run's ``TrainConfig``.

        ``readout_headroom="auto"`` becomes the run's default range, and
        ``inner_steps=None`` the run's ``test_inner_steps`` (None where the run
        tests with its training steps).
        """
        options = self
        if options.inner_steps is None and getattr(config, "test_inner_steps", None):
            options = dataclasses.replace(options, inner_steps=config.test_inner_steps)
        if options.readout_headroom != AUTO:
            return options
        return dataclasses.replace(
            options, readout_headroom=default_readout_headroom(config.readout_init)
        )

    def with_changes(self, **changes: Any) -> EvaluationOptions:
        """A copy with some fields changed (validated like a new object)."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown evaluation option(s) {unknown}; choose from {', '.join(field_names())}"
            )
        return dataclasses.replace(self, **changes)


def field_names() -> tuple[str, ...]:
    """Names of the fields of :class:`EvaluationOptions`, in order."""
    return tuple(field.name for field in dataclasses.fields(EvaluationOptions))


def resolve_options(
    options: EvaluationOptions | None, changes: Mapping[str, Any]
) -> EvaluationOptions:
    """``options`` (default: the defaults) with ``changes`` applied: what evaluation functions take.

    Lets ``evaluate_on_torch(run, tasks=20)`` and
    ``evaluate_on_torch(run, EvaluationOptions(tasks=20))`` mean the same.
    """
    if options is not None and not isinstance(options, EvaluationOptions):
        raise ConfigError(
            f"options must be an EvaluationOptions, got {type(options).__name__}; pass single "
            "options as keyword arguments instead"
        )
    base = options if options is not None else EvaluationOptions()
    return base.with_changes(**changes) if changes else base


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
