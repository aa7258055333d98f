"""A neuron model written as Brian2 code: the recurrent layer's one description.

A :class:`NeuronModel` holds what a Brian2 user writes for
``NeuronGroup(N, model=equations, threshold=..., reset=..., refractory=...,
method=..., namespace=constants)``, plus which state variable each synaptic
pathway increments. The Brian2 network builds its recurrent group from it
verbatim (:mod:`mosaicnet.network.brian_network`), and the torch clone is
compiled from the same text (:mod:`mosaicnet.network.neuron_compiler`):
nothing model-specific is typed twice.

Conventions
-----------
- Synaptic weights are dimensionless. A spike of a pathway adds ``w`` to its
  target variable; if the target has units, the model defines a constant
  ``weight_unit`` with the target's units and the increment is
  ``w * weight_unit``.
- The readout is the spec's non-spiking leaky integrator
  (:class:`~mosaicnet.network.spec.NeuronParameters`), whatever the model.
- Every sample starts from the model's ``initial`` values (0 where not given).
- The surrogate gradient is applied to ``lhs - rhs`` of the threshold
  condition, in SI units: dimensionless models (like the presets,
  :mod:`mosaicnet.network.neuron_presets`) keep the surrogate's slope meaningful.

:func:`mosaicnet.network.neuron_brian.check_model` checks a model against
Brian2 (syntax, names, units, targets, integration method and its stability)
before anything is compiled or trained; :class:`NeuronParameters` calls it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mosaicnet.errors import ConfigError
from mosaicnet.network.quantities import format_quantity, parse_quantity

#: Integration methods a model may name (Brian2's state updaters without noise).
METHODS: tuple[str, ...] = (
    "exact",
    "euler",
    "rk2",
    "rk4",
    "exponential_euler",
    "heun",
    "milstein",
)
#: Keys of :meth:`NeuronModel.to_dict`.
_DICT_KEYS = (
    "name",
    "equations",
    "threshold",
    "reset",
    "refractory",
    "method",
    "input_target",
    "recurrent_target",
    "constants",
    "initial",
    "membrane",
    "source",
)


@dataclass(frozen=True)
class NeuronModel:
    """The recurrent neurons as Brian2 code.

    Parameters
    ----------
    name
        Short name (a preset's name, or the user's).
    equations
        Brian2 model equations (any number of state variables, with units;
        ``(unless refractory)`` flags allowed with ``refractory``).
    threshold
        Brian2 threshold condition, e.g. ``"v > thr + beta*a"``.
    reset
        Brian2 reset statements, one per line (or separated by ``;``).
    constants
        Named constants the code uses: Brian2 quantities or floats (text such
        as ``"700*ms"`` is parsed).
    refractory
        Absolute refractory period (a Brian2 time, or text), or ``None``.
    method
        Brian2 integration method: ``"exact"`` for linear equations, else
        e.g. ``"euler"``, ``"rk4"``, ``"exponential_euler"``.
    input_target, recurrent_target
        State variable incremented by input spikes / recurrent spikes.
    initial
        Initial value of state variables at the start of every sample
        (default 0); quantities, floats or text.
    membrane
        The variable recorded as "membrane" and plotted (default ``v``).
    source
        Where the model comes from (citation), shown by ``describe``.
    """

    name: str
    equations: str
    threshold: str
    reset: str
    constants: Mapping[str, Any] = field(default_factory=dict)
    refractory: Any = None
    method: str = "exact"
    input_target: str = "v"
    recurrent_target: str = "v"
    initial: Mapping[str, Any] = field(default_factory=dict)
    membrane: str = "v"
    source: str = ""

    def __post_init__(self) -> None:
        for attribute in ("name", "equations", "threshold", "reset"):
            value = getattr(self, attribute)
            if not isinstance(value, str):
                raise ConfigError(f"neuron model {attribute} must be a string, got {value!r}")
        if not self.name.strip():
            raise ConfigError("a neuron model needs a name")
        object.__setattr__(self, "equations", textwrap.dedent(self.equations).strip())
        object.__setattr__(self, "reset", _reset_text(self.reset))
        object.__setattr__(self, "threshold", self.threshold.strip())
        if self.method not in METHODS:
            raise ConfigError(
                f"neuron model {self.name!r}: unknown method {self.method!r}; choose one of "
                f"{', '.join(METHODS)} ('exact' needs linear equations)"
            )
        constants = {
            str(key): parse_quantity(value, name=f"constant {key}")
            for key, value in dict(self.constants).items()
        }
        initial = {
            str(key): parse_quantity(value, name=f"initial value of {key}")
            for key, value in dict(self.initial).items()
        }
        object.__setattr__(self, "constants", constants)
        object.__setattr__(self, "initial", initial)
        if self.refractory is not None:
            object.__setattr__(
                self, "refractory", parse_quantity(self.refractory, name="refractory")
            )

    # ----------------------------------------------------------------- access
    def namespace(self) -> dict[str, Any]:
        """The constants, for a Brian2 ``namespace``."""
        return dict(self.constants)

    def reset_statements(self) -> list[str]:
        """The reset, one statement per entry."""
        return [line for line in self.reset.splitlines() if line.strip()]

    def with_constants(self, **changes: Any) -> NeuronModel:
        """A copy with some constants replaced (values: quantities, floats or text).

        Raises
        ------
        ConfigError
            A name the model does not have (the message lists them), or a value
            of other units than the constant it replaces.
        """
        constants = dict(self.constants)
        for key, value in changes.items():
            if key not in constants:
                raise ConfigError(
                    f"neuron model {self.name!r} has no constant {key!r}; its constants are "
                    f"{', '.join(sorted(constants)) or '(none)'}"
                )
            new = parse_quantity(value, name=f"constant {key}")
            if _dimensions(new) != _dimensions(constants[key]):
                raise ConfigError(
                    f"constant {key} = {value!r} has other units than the model's "
                    f"{constants[key]!r}; give it in the same units"
                )
            constants[key] = new
        return replace(self, constants=constants)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the code as text, quantities as exact Brian2 text."""
        return {
            "name": self.name,
            "equations": self.equations,
            "threshold": self.threshold,
            "reset": self.reset,
            "refractory": None if self.refractory is None else format_quantity(self.refractory),
            "method": self.method,
            "input_target": self.input_target,
            "recurrent_target": self.recurrent_target,
            "constants": {k: format_quantity(v) for k, v in self.constants.items()},
            "initial": {k: format_quantity(v) for k, v in self.initial.items()},
            "membrane": self.membrane,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "neuron model") -> NeuronModel:
        """Inverse of :meth:`to_dict`; ``origin`` names the file in errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{origin} must be a JSON object of {', '.join(_DICT_KEYS)}")
        unknown = sorted(set(data) - set(_DICT_KEYS))
        if unknown:
            raise ConfigError(
                f"{origin} has unknown keys {unknown}; a neuron model has {', '.join(_DICT_KEYS)}"
            )
        missing = [key for key in ("name", "equations", "threshold", "reset") if key not in data]
        if missing:
            raise ConfigError(f"{origin} lacks {', '.join(missing)}")
        return cls(**dict(data))

    def code(self) -> str:
        """The model as a Brian2 code block a user can copy."""
        lines = [f"# neuron model {self.name!r}"]
        if self.source:
            lines += [f"# {line}" for line in self.source.splitlines()]
        lines.append(f"eqs = '''\n{self.equations}\n'''")
        lines.append(
            "namespace = {"
            + ", ".join(f"{k!r}: {_display(v)}" for k, v in self.constants.items())
            + "}"
        )
        arguments = [f"threshold={self.threshold!r}", f"reset={self.reset!r}"]
        if self.refractory is not None:
            arguments.append(f"refractory={_display(self.refractory)}")
        arguments.append(f"method={self.method!r}")
        lines.append("NeuronGroup(N, eqs, " + ", ".join(arguments) + ", namespace=namespace)")
        lines.append(
            f"# a spike adds its synapse's weight: input synapses to {self.input_target}, "
            f"recurrent synapses to {self.recurrent_target}"
        )
        if self.initial:
            lines.append(
                "# initial values: "
                + ", ".join(f"{k} = {_display(v)}" for k, v in self.initial.items())
            )
        return "\n".join(lines)


def _reset_text(reset: str) -> str:
    """Reset statements one per line (``;`` separates statements as in Brian2 code)."""
    statements = []
    for line in textwrap.dedent(reset).splitlines():
        statements += [part.strip() for part in line.split(";") if part.strip()]
    return "\n".join(statements)


def _dimensions(value: Any) -> Any:
    from brian2.units.fundamentalunits import get_dimensions

    return get_dimensions(value)


def _display(value: Any) -> str:
    """Readable Brian2 text (``420. * msecond``); :func:`format_quantity` is the exact one."""
    return repr(value) if not isinstance(value, float) else f"{value:g}"


def load_model_file(path: str | Path) -> NeuronModel:
    """A neuron model from a ``.json`` file (:meth:`NeuronModel.to_dict`) or a ``.py`` file.

    A ``.py`` file is run as Python and must define one :class:`NeuronModel`
    (named ``neuron_model``, or the only one it defines).

    Raises
    ------
    ConfigError
        Missing file, other suffix, invalid JSON, or no model in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"neuron model file {path} does not exist")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON ({error})") from None
        return NeuronModel.from_dict(data, origin=str(path))
    if path.suffix == ".py":
        names: dict[str, Any] = {"__name__": "mosaicnet_neuron_model", "__file__": str(path)}
        try:
            exec(compile(path.read_text(), str(path), "exec"), names)  # the user's own code
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(f"running {path} failed: {type(error).__name__}: {error}") from None
        if isinstance(names.get("neuron_model"), NeuronModel):
            return names["neuron_model"]
        models = [value for value in names.values() if isinstance(value, NeuronModel)]
        if len(models) != 1:
            raise ConfigError(
                f"{path} defines {len(models)} NeuronModel objects; name the one to use "
                "neuron_model = NeuronModel(...)"
            )
        return models[0]
    raise ConfigError(
        f"neuron model file {path} must be .json (NeuronModel.to_dict) or .py (defining "
        "neuron_model = NeuronModel(...))"
    )
