"""The device model as Brian2 synaptic variables and read code.

A memristive synapse holds its programmed conductances, drift parameters and
programming time as synaptic variables; its effective weight ``w`` is a plain
variable recomputed by the *read code* from those and the shared read time
``t_read``. Drift is thus part of the simulated model, and it is evaluated
once per read (per-step drift made simulations 10-300x slower in a feasibility
study), by either

* ``form.apply_read(synapses)`` between runs (one-shot; recommended), or
* ``form.add_reader(synapses, dt=...)``, i.e.
  ``synapses.run_regularly(form.read_code, dt=..., when="start")``, inside runs.

The read code is *generated* from the same Python laws the numpy and torch
paths call: :class:`BrianCodeOps` evaluates them on symbols, so nothing about
the device is typed twice. Conductances enter the formulas in siemens and
times in seconds as plain numbers (``g_plus_prog/siemens``), which keeps the
published dimensionless fit coefficients literal; the variables themselves
carry Brian2 units.

Brian2 caveat for ``run_regularly`` (seen with brian2 2.9): when the reader's
``dt`` is 10^4 or more times a run's duration (e.g. a one-step run of 0.1 ms
beside a 1 s reader), the run can be skipped entirely, neurons included, while
the network time still advances: the slow clock's last step rounds to 0
(``Clock.epsilon_dt = 1e-4``) and the network loop may test that clock first.
Keep the reader's ``dt`` well below each run's duration, or use
:meth:`BrianDeviceForm.apply_read` between runs.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from mosaicnet.devices.mapping import conductances_to_weights
from mosaicnet.devices.models import DeviceModel
from mosaicnet.devices.programming import ProgrammedArray, check_time
from mosaicnet.errors import ConfigError

#: Per-synapse and shared variables a form declares besides the effective weight.
SYNAPSE_VARIABLES = (
    "g_plus_prog",
    "g_minus_prog",
    "drift_plus",
    "drift_minus",
    "t_prog",
    "g_plus_read",
    "g_minus_read",
    "w_scale",
    "t_read",
)


class CodeExpr:
    """A Brian2 expression under construction; arithmetic builds the code string.

    Every operation is parenthesised, so precedence never depends on Brian2's
    parser, and literals are written with ``repr`` (exact round trip).
    """

    __slots__ = ("code",)
    # Make numpy scalars defer to our reflected operators instead of wrapping us.
    __array_ufunc__ = None

    def __init__(self, code: str) -> None:
        self.code = code

    @staticmethod
    def lift(value: Any) -> CodeExpr:
        """A :class:`CodeExpr` for an expression or a real number."""
        if isinstance(value, CodeExpr):
            return value
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if math.isinf(number):
                return CodeExpr("inf" if number > 0 else "(-inf)")
            if math.isnan(number):
                raise ConfigError("a device constant is NaN; it cannot go into Brian2 code")
            text = repr(number)
            return CodeExpr(f"({text})" if number < 0 else text)
        raise TypeError(f"cannot write {value!r} into Brian2 code")

    def _binary(self, other: Any, operator: str, reflected: bool = False) -> CodeExpr:
        left, right = (CodeExpr.lift(other), self) if reflected else (self, CodeExpr.lift(other))
        return CodeExpr(f"({left.code} {operator} {right.code})")

    def __add__(self, other: Any) -> CodeExpr:
        return self._binary(other, "+")

    def __radd__(self, other: Any) -> CodeExpr:
        return self._binary(other, "+", reflected=True)

    def __sub__(self, other: Any) -> CodeExpr:
        return self._binary(other, "-")

    def __rsub__(self, other: Any) -> CodeExpr:
        return self._binary(other, "-", reflected=True)

    def __mul__(self, other: Any) -> CodeExpr:
        return self._binary(other, "*")

    def __rmul__(self, other: Any) -> CodeExpr:
        return self._binary(other, "*", reflected=True)

    def __truediv__(self, other: Any) -> CodeExpr:
        return self._binary(other, "/")

    def __rtruediv__(self, other: Any) -> CodeExpr:
        return self._binary(other, "/", reflected=True)

    def __pow__(self, other: Any) -> CodeExpr:
        return self._binary(other, "**")

    def __rpow__(self, other: Any) -> CodeExpr:
        return self._binary(other, "**", reflected=True)

    def __neg__(self) -> CodeExpr:
        return CodeExpr(f"(-{self.code})")

    def __str__(self) -> str:
        return self.code

    def __repr__(self) -> str:
        return f"CodeExpr({self.code!r})"


class BrianCodeOps:
    """:class:`~mosaicnet.devices.array_ops.ArrayOps` that writes Brian2 code.

    Named constants are collected in :attr:`namespace` with their Brian2 units.
    """

    _UNITS = ("siemens", "second", "1")

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {}

    def _call(self, function: str, *arguments: Any) -> CodeExpr:
        return CodeExpr(f"{function}({', '.join(CodeExpr.lift(a).code for a in arguments)})")

    def log(self, x: Any) -> CodeExpr:
        return self._call("log", x)

    def sqrt(self, x: Any) -> CodeExpr:
        return self._call("sqrt", x)

    def abs(self, x: Any) -> CodeExpr:
        return self._call("abs", x)

    def clip(self, x: Any, low: Any, high: Any) -> CodeExpr:
        return self._call(
            "clip", x, -math.inf if low is None else low, math.inf if high is None else high
        )

    def constant(self, name: str, value: float, unit: str) -> CodeExpr:
        import brian2

        if unit not in self._UNITS:
            raise ValueError(f"unit {unit!r} is not one of {self._UNITS}")
        quantity = float(value) if unit == "1" else float(value) * getattr(brian2, unit)
        previous = self.namespace.setdefault(name, quantity)
        if previous is not quantity and not bool(previous == quantity):
            raise ValueError(f"constant {name} given two values: {previous} and {quantity}")
        return CodeExpr(name if unit == "1" else f"({name}/{unit})")


@dataclasses.dataclass(frozen=True)
class BrianDeviceForm:
    """A device model as Brian2 synapse equations, read code and namespace.

    Attributes
    ----------
    model : DeviceModel
        The model the code was generated from.
    synapse_model : str
        Equation lines to add to the ``Synapses`` model: per synapse the
        programmed state ``g_plus_prog``, ``g_minus_prog`` (siemens),
        ``drift_plus``, ``drift_minus`` (1), ``t_prog`` (second), the last read
        ``g_plus_read``, ``g_minus_read`` (siemens) and the effective weight
        (``weight_name``, 1); shared ``w_scale`` (1) and ``t_read`` (second).
    read_statements : tuple of (variable, expression)
        The read, in order: each device's conductance at ``t_read`` (drift,
        then read noise), then the effective weight from the two.
    read_code : str
        The same statements as abstract code, for ``run_regularly``.
    namespace : dict
        Constants with Brian2 units the code refers to (``device_g_min``,
        ``device_g_max``, ``device_t0``). :meth:`set_state` adds them to the
        synapses' own namespace.
    read_noise : bool
        Whether the read code draws read noise (``randn()``, one per device per read).
    weight_name : str
        Name of the effective-weight variable.
    """

    model: DeviceModel
    synapse_model: str
    read_statements: tuple[tuple[str, str], ...]
    read_code: str
    namespace: dict[str, Any]
    read_noise: bool
    weight_name: str

    def _indices(self, synapses: Any, indices: Any) -> tuple[np.ndarray, np.ndarray]:
        if indices is not None:
            i, j = (np.asarray(a, dtype=np.int64) for a in indices)
        else:
            i = np.asarray(synapses.i[:], dtype=np.int64)
            j = np.asarray(synapses.j[:], dtype=np.int64)
        return i, j

    def set_state(
        self,
        synapses: Any,
        programmed: ProgrammedArray,
        *,
        t_read_s: float,
        indices: tuple[Any, Any] | None = None,
    ) -> None:
        """Write a programmed array into ``synapses`` and set the read time.

        Parameters
        ----------
        synapses : brian2.Synapses
            Synapses whose model includes :attr:`synapse_model`.
        programmed : ProgrammedArray
            A dense ``(n_pre, n_post)`` array programmed with :attr:`model`;
            synapse ``k`` takes the pair at ``(synapses.i[k], synapses.j[k])``.
        t_read_s : float
            Read time (seconds) on the programming clock, ``>= t_prog_s`` of
            every connected pair.
        indices : (i, j) arrays, optional
            Pre/post indices of the synapses in order, for devices that
            cannot read them back yet (standalone mode before the first run).

        The effective weight is not touched: it is set by the next read.
        """
        from brian2 import second, siemens

        if programmed.model != self.model:
            raise ConfigError(
                f"the array was programmed with {programmed.model.describe()}, but this Brian2 "
                f"form reads {self.model.describe()}; build the form from programmed.model"
            )
        n_pre, n_post = synapses.source.N, synapses.target.N
        if programmed.shape != (n_pre, n_post):
            raise ConfigError(
                f"programmed array of shape {programmed.shape} does not fit synapses "
                f"{synapses.name} from {n_pre} to {n_post} neurons"
            )
        i, j = self._indices(synapses, indices)
        t_read = check_time(t_read_s, "t_read_s")
        t_prog = programmed.t_prog_s[i, j]
        if (t_prog > t_read).any():
            raise ConfigError(
                f"t_read_s={t_read:g} s precedes the programming (t_prog_s up to "
                f"{float(t_prog.max()):g} s) of {int((t_prog > t_read).sum())} synapse(s)"
            )
        synapses.namespace.update(self.namespace)
        synapses.g_plus_prog = programmed.g_plus[i, j] * siemens
        synapses.g_minus_prog = programmed.g_minus[i, j] * siemens
        synapses.drift_plus = programmed.drift_plus[i, j]
        synapses.drift_minus = programmed.drift_minus[i, j]
        synapses.t_prog = t_prog * second
        synapses.w_scale = programmed.w_scale
        synapses.t_read = t_read * second

    def set_read_time(self, synapses: Any, t_read_s: float) -> None:
        """Change only the read time (seconds); the next read uses it."""
        from brian2 import second

        t_read = check_time(t_read_s, "t_read_s")
        latest = float(np.max(np.asarray(synapses.t_prog[:] / second), initial=0.0))
        if t_read < latest:
            raise ConfigError(
                f"t_read_s={t_read:g} s precedes the programming of a synapse at {latest:g} s"
            )
        synapses.t_read = t_read * second

    def apply_read(self, synapses: Any) -> None:
        """Read now: set the read conductances and the effective weight (one-shot, between runs)."""
        for name, code in self.read_statements:
            getattr(synapses, name).set_item(slice(None), code, namespace=self.namespace)

    def add_reader(
        self,
        synapses: Any,
        *,
        dt: Any,
        when: str = "start",
        order: int = 0,
        name: str | None = None,
    ) -> Any:
        """``synapses.run_regularly(read_code, dt=dt, when=when)``: a read every ``dt``.

        Mind the module-level caveat: keep ``dt`` well below each run's duration.
        """
        return synapses.run_regularly(self.read_code, dt=dt, when=when, order=order, name=name)


def build_brian_form(
    model: DeviceModel, *, read_noise: bool = True, weight_name: str = "w"
) -> BrianDeviceForm:
    """Generate the Brian2 form of ``model``.

    Parameters
    ----------
    model : DeviceModel
        The device model.
    read_noise : bool
        Draw read noise at each read (``randn()``); ignored when the model's
        own ``read_noise`` switch is off.
    weight_name : str
        Name of the effective-weight variable (``"w"``).
    """
    if not weight_name.isidentifier() or weight_name in SYNAPSE_VARIABLES:
        raise ConfigError(
            f"weight_name={weight_name!r} is not a valid Brian2 variable name or clashes with "
            f"the device variables {', '.join(SYNAPSE_VARIABLES)}"
        )
    ops = BrianCodeOps()
    elapsed = CodeExpr("((t_read - t_prog)/second)")
    noisy = read_noise and model.read_noise
    statements = []
    for sign in ("plus", "minus"):
        # One statement per device: Brian2 allows one randn() per expression.
        conductance = model.read_conductance(
            CodeExpr(f"(g_{sign}_prog/siemens)"),
            CodeExpr(f"drift_{sign}"),
            elapsed,
            ops,
            xi=CodeExpr("randn()") if noisy else None,
        )
        statements.append((f"g_{sign}_read", f"{CodeExpr.lift(conductance).code} * siemens"))
    weight = conductances_to_weights(
        CodeExpr("(g_plus_read/siemens)"),
        CodeExpr("(g_minus_read/siemens)"),
        model,
        CodeExpr("w_scale"),
    )
    statements.append((weight_name, CodeExpr.lift(weight).code))
    synapse_model = "\n".join(
        [
            "g_plus_prog : siemens",
            "g_minus_prog : siemens",
            "drift_plus : 1",
            "drift_minus : 1",
            "t_prog : second",
            "g_plus_read : siemens",
            "g_minus_read : siemens",
            f"{weight_name} : 1",
            "w_scale : 1 (shared)",
            "t_read : second (shared)",
        ]
    )
    return BrianDeviceForm(
        model=model,
        synapse_model=synapse_model,
        read_statements=tuple(statements),
        read_code="\n".join(f"{name} = {code}" for name, code in statements),
        namespace=dict(ops.namespace),
        read_noise=noisy,
        weight_name=weight_name,
    )
