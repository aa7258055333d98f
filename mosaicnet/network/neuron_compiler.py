"""The torch form of a neuron model, compiled from its Brian2 code.

:func:`compile_neuron` turns a :class:`~mosaicnet.network.neuron_model.NeuronModel`
into a :class:`CompiledNeuron`: the functions one time step of the torch clone
calls, in Brian2's order inside a step (:mod:`mosaicnet.network.torch_clone`):

``integrate`` ('groups' slot)
    Brian2's own state updater for the model's method
    (:func:`mosaicnet.network.neuron_brian.state_update_code`), translated
    statement by statement through sympy. When the update is affine in the
    state (always for ``exact`` on linear equations; also e.g. Euler on linear
    equations) it runs as ``new[k] = sum_j A[k, j] old[j] + b[k]`` with the
    coefficients evaluated once in float64 with the C library's functions
    (:func:`affine_update`), which is what made the hand-written LIF clone
    bit-identical to Brian2's ``exact`` integrator.
``threshold`` ('thresholds')
    ``z = H(lhs - rhs)`` of the threshold comparison (``rhs - lhs`` for ``<``),
    with lhs and rhs evaluated separately so that the sign, hence the spike,
    is exactly Brian2's comparison; the surrogate derivative acts on
    ``lhs - rhs``.
``reset`` ('resets')
    Each reset statement in order, for the neurons that spiked:
    ``x += e`` becomes ``x + z * e``; ``x = e`` becomes ``z * e + (1 - z) * x``
    (exactly ``e`` or ``x`` for a 0/1 ``z``, with the reset's gradient).
Refractoriness
    As Brian2 implements it: ``not_refractory = timestep(t - lastspike, dt) >=
    timestep(refractory, dt)`` at the start of the step; the threshold is
    ``(condition) and not_refractory``; a spike sets ``lastspike``; variables
    flagged ``(unless refractory)`` are neither integrated nor incremented by
    synapses while refractory (Brian2's conditional write), but are reset.

:attr:`CompiledNeuron.affine` exposes the matrices of models whose update,
threshold and reset are all affine, for a fused fast path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.network.neuron_brian import (
    INITIAL_LASTSPIKE_S,
    BrianModel,
    _comparison,
    check_model,
)
from mosaicnet.network.neuron_model import NeuronModel

_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(=|\+=|-=|\*=|/=)\s*(.+?)\s*$")


# ---------------------------------------------------------------------------
# Functions the translated code may call: torch on tensors, math on floats
# ---------------------------------------------------------------------------


def _dispatch(torch_function: Callable, math_function: Callable) -> Callable:
    def function(*args: Any) -> Any:
        if any(isinstance(arg, torch.Tensor) for arg in args):
            return torch_function(
                *(torch.as_tensor(a) if not isinstance(a, torch.Tensor) else a for a in args)
            )
        return math_function(*args)

    return function


def _int(x: Any) -> Any:
    return x.to(torch.get_default_dtype()) if isinstance(x, torch.Tensor) else float(int(x))


def _clip(x: Any, low: Any, high: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.clamp(x, min=low, max=high)
    return min(max(x, low), high)


def _exprel(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        small = x.abs() < 1e-8
        safe = torch.where(small, torch.ones_like(x), x)
        return torch.where(small, 1 + x / 2, torch.expm1(safe) / safe)
    return 1.0 + x / 2 if abs(x) < 1e-8 else math.expm1(x) / x


#: Names the translated expressions resolve (sympy prints Brian2's functions so).
FUNCTIONS: dict[str, Callable] = {
    "exp": _dispatch(torch.exp, math.exp),
    "log": _dispatch(torch.log, math.log),
    "log10": _dispatch(torch.log10, math.log10),
    "sqrt": _dispatch(torch.sqrt, math.sqrt),
    "sin": _dispatch(torch.sin, math.sin),
    "cos": _dispatch(torch.cos, math.cos),
    "tan": _dispatch(torch.tan, math.tan),
    "sinh": _dispatch(torch.sinh, math.sinh),
    "cosh": _dispatch(torch.cosh, math.cosh),
    "tanh": _dispatch(torch.tanh, math.tanh),
    "arcsin": _dispatch(torch.asin, math.asin),
    "arccos": _dispatch(torch.acos, math.acos),
    "arctan": _dispatch(torch.atan, math.atan),
    "asin": _dispatch(torch.asin, math.asin),
    "acos": _dispatch(torch.acos, math.acos),
    "atan": _dispatch(torch.atan, math.atan),
    "abs": _dispatch(torch.abs, abs),
    "Abs": _dispatch(torch.abs, abs),
    "floor": _dispatch(torch.floor, math.floor),
    "ceiling": _dispatch(torch.ceil, math.ceil),
    "sign": _dispatch(torch.sign, lambda x: float(np.sign(x))),
    "int_": _int,
    "clip": _clip,
    "exprel": _exprel,
    "pi": math.pi,
    "E": math.e,
}


def to_sympy(expression: str) -> sympy.Expr:
    """Brian2's sympy form of an expression, with plain symbols.

    Brian2 makes symbols with assumptions (``real=True``); plain ones compare
    equal to the ``sympy.Symbol(name)`` this module builds.
    """
    from brian2.parsing.sympytools import str_to_sympy

    expr = str_to_sympy(expression)
    return expr.xreplace({symbol: sympy.Symbol(symbol.name) for symbol in expr.free_symbols})


@dataclass(frozen=True)
class Expression:
    """A translated Brian2 expression: ``function(**values)`` of its symbols."""

    text: str
    symbols: tuple[str, ...]
    function: Callable
    #: Values of symbols that are Brian2 units (``ms`` in ``10*ms``), in SI.
    units: Mapping[str, float]

    def __call__(self, values: Mapping[str, Any]) -> Any:
        return self.function(
            *(values[name] if name in values else self.units[name] for name in self.symbols)
        )


def translate(expression: str | sympy.Expr, constants: Mapping[str, float] = ()) -> Expression:
    """Translate a Brian2 expression (text or sympy) into a torch/math function.

    ``not_refractory`` is replaced by 1: the refractory freeze is applied by
    the clone as Brian2's conditional write (see the module docstring).
    """
    from mosaicnet.network.quantities import brian_units

    expr = to_sympy(expression) if isinstance(expression, str) else expression
    expr = expr.subs(sympy.Symbol("not_refractory"), 1)
    symbols = tuple(sorted(str(symbol) for symbol in expr.free_symbols))
    units = {name: float(brian_units()[name]) for name in symbols if name in brian_units()}
    try:
        function = sympy.lambdify(
            [sympy.Symbol(name) for name in symbols], expr, modules=[FUNCTIONS]
        )
    except Exception as error:  # pragma: no cover - sympy printing failures are rare
        raise ConfigError(f"cannot translate {expression!r} to torch: {error}") from None
    return Expression(text=str(expr), symbols=symbols, function=function, units=units)


# ---------------------------------------------------------------------------
# Affine updates
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AffineUpdate:
    """One integration step that is affine in the state: ``new = matrix @ old + offset``.

    Attributes
    ----------
    variables
        State variables, in the order of the equations.
    matrix
        ``(n, n)`` float64: ``new[k] = sum_j matrix[k, j] old[j] + offset[k]``.
    offset
        ``(n,)`` float64 (zero for homogeneous equations).
    code
        Brian2's abstract update code the numbers were read from.
    """

    variables: tuple[str, ...]
    matrix: np.ndarray
    offset: np.ndarray
    code: str

    def coefficient(self, target: str, source: str) -> float:
        """``d new[target] / d old[source]``."""
        return float(self.matrix[self.variables.index(target), self.variables.index(source)])


def _final_expressions(code: str, states: tuple[str, ...]) -> dict[str, sympy.Expr]:
    """``{state: new value as a sympy expression of the old state}`` from update code."""
    known: dict[sympy.Symbol, sympy.Expr] = {}
    final: dict[str, sympy.Expr] = {}
    for line in code.splitlines():
        match = _ASSIGNMENT.match(line)
        if match is None or match.group(2) != "=":
            raise ConfigError(f"unexpected line in Brian2's update code: {line!r}")
        target, _, expression = match.groups()
        value = to_sympy(expression).subs(known)
        if target.startswith("_") and target[1:] in states:
            final[target[1:]] = value
        else:
            known[sympy.Symbol(target)] = value
    return final


def affine_update(
    code: str, states: tuple[str, ...], values: Mapping[str, float], *, label: str = "model"
) -> AffineUpdate | None:
    """The update as matrix and offset if it is affine in the state, else ``None``.

    ``values`` are the constants in SI units (``dt`` included). Coefficients
    are evaluated with Python's ``math`` (the C library, as Brian2's C++ code),
    in the expression order Brian2 prints them in.
    """
    final = _final_expressions(code, states)
    symbols = {name: sympy.Symbol(name) for name in states}
    matrix = np.zeros((len(states), len(states)))
    offset = np.zeros(len(states))
    for row, target in enumerate(states):
        expression = final.get(target, symbols[target]).subs(sympy.Symbol("not_refractory"), 1)
        state_symbols = {symbols[name] for name in states}
        constant_part = expression.subs({symbol: 0 for symbol in state_symbols})
        for col, source in enumerate(states):
            coefficient = sympy.diff(expression, symbols[source])
            if coefficient.free_symbols & state_symbols:
                return None
            if coefficient != 0:
                matrix[row, col] = _evaluate(coefficient, values, f"d{target}/d{source}", label)
        if constant_part != 0:
            offset[row] = _evaluate(constant_part, values, f"the drive of {target}", label)
    return AffineUpdate(variables=states, matrix=matrix, offset=offset, code=code)


def _evaluate(expression: sympy.Expr, values: Mapping[str, float], what: str, label: str) -> float:
    missing = sorted(str(s) for s in expression.free_symbols if str(s) not in values)
    if missing:
        raise ConfigError(
            f"{label}: the update coefficient {what} refers to {', '.join(missing)}, which the "
            "model does not define; add it to the model's constants"
        )
    function = translate(expression)
    try:
        value = float(function(values))
    except ValueError as error:
        # math.sqrt of a negative: Brian2's exact solution of a linear system with
        # complex eigenvalues (an oscillating one), which Brian2 itself evaluates to NaN.
        raise ConfigError(
            f"{label}: the update coefficient {what} cannot be evaluated ({error}); for "
            "coupled linear equations with oscillating solutions Brian2's 'exact' method "
            "computes NaN: use method 'exponential_euler' or 'rk4'"
        ) from None
    except (ZeroDivisionError, OverflowError) as error:
        raise ConfigError(
            f"{label}: the update coefficient {what} cannot be evaluated ({error}); "
            "equal time constants make Brian2's exact solution divide by zero: change one"
        ) from None
    if not math.isfinite(value):
        raise ConfigError(f"{label}: the update coefficient {what} is {value}")
    return value


def exact_linear_update(equations: str, namespace: Mapping[str, Any], dt: Any) -> AffineUpdate:
    """The exact one-step update of linear equations, from Brian2's ``exact`` integrator.

    Used for the readout's leaky integrator (and any linear equations).

    Raises
    ------
    ConfigError
        Equations that are not linear, or constants missing from ``namespace``.
    """
    from brian2 import Equations
    from brian2.stateupdaters.base import UnsupportedEquationsException
    from brian2.stateupdaters.exact import linear

    eqs = Equations(equations)
    # Definition order (diff_eq_names is a set, whose order varies between runs).
    states = tuple(name for name in eqs.keys() if name in eqs.diff_eq_names)
    try:
        code = linear(eqs, {})
    except UnsupportedEquationsException as error:
        raise ConfigError(f"equations {equations!r} are not linear ({error})") from None
    code = "\n".join(line for line in code.splitlines() if line.split("=")[0].strip() not in states)
    values = {"dt": _si(dt), **{name: _si(value) for name, value in namespace.items()}}
    update = affine_update(code, states, values)
    assert update is not None  # Brian2's exact solution of linear equations is affine
    return update


def _si(value: Any) -> float:
    """A Brian2 quantity or number as a float in SI units (as Brian2 passes it to code)."""
    return float(np.asarray(value, dtype=np.float64))


# ---------------------------------------------------------------------------
# The compiled neuron
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetStatement:
    """One reset line: ``target op expression``."""

    target: str
    operator: str
    expression: Expression


@dataclass(frozen=True)
class AffineForm:
    """Update, threshold and reset of a model whose step is affine (for fused kernels).

    ``new = matrix @ old + offset`` per neuron (:class:`AffineUpdate`); the
    threshold distance is ``threshold_weights @ state - threshold_offset``;
    each reset row ``k`` sets ``state[k] = reset_matrix[k] @ state + reset_offset[k]``
    for spiking neurons (rows of untouched variables are the identity).
    """

    update: AffineUpdate
    threshold_weights: np.ndarray
    threshold_offset: float
    reset_matrix: np.ndarray
    reset_offset: np.ndarray


@dataclass
class NeuronState:
    """State of the recurrent layer in the clone: variables and refractory bookkeeping."""

    values: dict[str, torch.Tensor]
    #: Step index of each neuron's last spike (refractory models only).
    last_spike: torch.Tensor | None = None


class CompiledNeuron:
    """A neuron model compiled to torch (see the module docstring).

    Parameters
    ----------
    model
        The neuron model.
    dt
        Simulation step (Brian2 time).
    """

    def __init__(self, model: NeuronModel, dt: Any) -> None:
        self.model = model
        brian: BrianModel = check_model(model, dt)
        self.brian = brian
        self.states = brian.states
        self.frozen = brian.frozen
        self.dt_s = _si(dt)
        label = f"neuron model {model.name!r}"
        #: Constants in SI units, with dt.
        self.values: dict[str, float] = {"dt": self.dt_s}
        self.values.update({name: _si(value) for name, value in model.constants.items()})
        self.initial = {name: _si(model.initial.get(name, 0.0)) for name in self.states}
        self.update = affine_update(brian.update_code, self.states, self.values, label=label)
        self._statements = [
            (target, translate(expression)) for target, expression in _statements(brian.update_code)
        ]
        lhs, operator, rhs = _comparison(model.threshold)
        if operator.startswith("<"):
            lhs, rhs = rhs, lhs
        self._lhs, self._rhs = translate(lhs), translate(rhs)
        #: Whether equality spikes (``>=`` / ``<=``).
        self.inclusive = operator.endswith("=")
        self.resets = [
            ResetStatement(target, op, translate(expression))
            for target, op, expression in (
                _ASSIGNMENT.match(line).groups() for line in model.reset_statements()
            )
        ]
        self.refractory_steps: int | None = None
        if model.refractory is not None:
            # Brian2's timestep(): int((t + 1e-3 dt) / dt).
            self.refractory_steps = int((_si(model.refractory) + 1e-3 * self.dt_s) / self.dt_s)
        self.weight_unit = self.values.get("weight_unit", 1.0)
        self.affine = self._affine_form()

    def __repr__(self) -> str:
        return (
            f"CompiledNeuron({self.model.name!r}, states={self.states}, method="
            f"{self.model.method!r}, {'affine' if self.update is not None else 'general'} update"
            f"{', refractory' if self.refractory_steps is not None else ''})"
        )

    # ----------------------------------------------------------------- state
    def initial_state(self, like: torch.Tensor) -> NeuronState:
        """The state at the start of a sample, shaped and typed like ``like`` ``(B, N)``."""
        values = {
            name: like.new_full(like.shape, value) if value else like.new_zeros(like.shape)
            for name, value in self.initial.items()
        }
        last = None
        if self.refractory_steps is not None:
            # Brian2's lastspike starts at -1e4 s: far enough back never to be refractory.
            last = like.new_full(like.shape, INITIAL_LASTSPIKE_S / self.dt_s)
        return NeuronState(values=values, last_spike=last)

    def not_refractory(self, state: NeuronState, step: int) -> torch.Tensor | None:
        """Boolean mask of neurons that may integrate and spike at ``step`` (or None)."""
        if state.last_spike is None:
            return None
        return (step - state.last_spike) >= self.refractory_steps

    # ------------------------------------------------------------- one step
    def integrate(self, state: NeuronState, active: torch.Tensor | None, t: float) -> None:
        """Brian2's state update over one step, in place on ``state.values``."""
        old = state.values
        if self.update is not None:
            new = {}
            matrix, offset = self.update.matrix, self.update.offset
            for row, target in enumerate(self.states):
                value = None
                for col, source in enumerate(self.states):
                    coefficient = matrix[row, col]
                    if coefficient == 0.0:
                        continue
                    term = float(coefficient) * old[source]
                    value = term if value is None else value + term
                if value is None:
                    value = torch.zeros_like(old[target])
                if offset[row] != 0.0:
                    value = value + float(offset[row])
                new[target] = value
        else:
            scope: dict[str, Any] = {**self.values, **old, "t": t}
            new = {}
            for target, expression in self._statements:
                value = expression(scope)
                scope[target] = value
                if target.startswith("_") and target[1:] in old:
                    new[target[1:]] = value
            for name in old:
                new.setdefault(name, old[name])
            for name, value in new.items():
                if not isinstance(value, torch.Tensor):
                    new[name] = torch.full_like(old[name], float(value))
        if active is not None:
            for name in self.frozen:
                new[name] = torch.where(active, new[name], old[name])
        state.values = new

    def threshold_distance(self, state: NeuronState) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``lhs - rhs`` of the threshold and, for ``>=``, the mask of exact equality."""
        scope = {**self.values, **state.values}
        lhs, rhs = self._lhs(scope), self._rhs(scope)
        distance = lhs - rhs
        if not isinstance(distance, torch.Tensor):
            distance = torch.full_like(next(iter(state.values.values())), float(distance))
        equal = (distance == 0).detach() if self.inclusive else None
        return distance, equal

    def reset(self, state: NeuronState, z: torch.Tensor, step: int) -> None:
        """The reset statements for the neurons with ``z == 1``; records the spike step."""
        values = state.values
        for statement in self.resets:
            scope = {**self.values, **values}
            value = statement.expression(scope)
            old = values[statement.target]
            if statement.operator == "+=":
                values[statement.target] = old + z * value
            elif statement.operator == "-=":
                values[statement.target] = old - value * z
            else:
                if statement.operator == "=":
                    new = value
                elif statement.operator == "*=":
                    new = old * value
                else:
                    new = old / value
                # Exactly new where z = 1 and old where z = 0, with the reset's gradient.
                values[statement.target] = z * new + (1 - z) * old
        if state.last_spike is not None:
            state.last_spike = torch.where(z.detach() > 0, float(step), state.last_spike)

    # -------------------------------------------------------- affine form
    def _affine_form(self) -> AffineForm | None:
        if self.update is None or self.refractory_steps is not None:
            return None
        symbols = [sympy.Symbol(name) for name in self.states]
        lhs, operator, rhs = _comparison(self.model.threshold)
        distance = to_sympy(lhs) - to_sympy(rhs)
        if operator.startswith("<"):
            distance = -distance
        weights = _affine_row(distance, symbols, self.values)
        if weights is None:
            return None
        reset_matrix = np.eye(len(symbols))
        reset_offset = np.zeros(len(symbols))
        current = {symbol: symbol for symbol in symbols}
        for line in self.model.reset_statements():
            target, op, expression = _ASSIGNMENT.match(line).groups()
            value = to_sympy(expression).subs(current, simultaneous=True)
            old = current[sympy.Symbol(target)]
            current[sympy.Symbol(target)] = {
                "=": value,
                "+=": old + value,
                "-=": old - value,
                "*=": old * value,
                "/=": old / value,
            }[op]
        for row, symbol in enumerate(symbols):
            coefficients = _affine_row(current[symbol], symbols, self.values)
            if coefficients is None:
                return None
            reset_matrix[row] = coefficients[0]
            reset_offset[row] = coefficients[1]
        return AffineForm(
            update=self.update,
            threshold_weights=weights[0],
            threshold_offset=-weights[1],
            reset_matrix=reset_matrix,
            reset_offset=reset_offset,
        )


def _affine_row(
    expression: sympy.Expr, symbols: list[sympy.Symbol], values: Mapping[str, float]
) -> tuple[np.ndarray, float] | None:
    """Coefficients and constant of an expression affine in ``symbols`` (else None)."""
    row = np.zeros(len(symbols))
    for col, symbol in enumerate(symbols):
        coefficient = sympy.diff(expression, symbol)
        if coefficient.free_symbols & set(symbols):
            return None
        row[col] = float(translate(coefficient)(values)) if coefficient != 0 else 0.0
    constant = expression.subs({symbol: 0 for symbol in symbols})
    return row, float(translate(constant)(values)) if constant != 0 else 0.0


def _statements(code: str) -> list[tuple[str, str]]:
    statements = []
    for line in code.splitlines():
        match = _ASSIGNMENT.match(line)
        if match is None or match.group(2) != "=":
            raise ConfigError(f"unexpected line in Brian2's update code: {line!r}")
        statements.append((match.group(1), match.group(3)))
    return statements


def compile_neuron(model: NeuronModel, dt: Any) -> CompiledNeuron:
    """Compile ``model`` at step ``dt`` (checks it first, see :func:`check_model`)."""
    return CompiledNeuron(model, dt)


def linearised_step(
    model: NeuronModel, brian: BrianModel, dt_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Jacobians at the initial state of one update step and of the exact linearised flow.

    Returns ``(step, flow)``: ``d new / d old`` of Brian2's update code, and
    ``expm(dt J)`` of the equations' Jacobian ``J`` (computed from its
    eigen-decomposition; only its spectral radius is used).
    """
    states = brian.states
    values: dict[str, float] = {"dt": dt_s, "t": 0.0}
    values.update({name: _si(value) for name, value in model.constants.items()})
    point = {name: _si(model.initial.get(name, 0.0)) for name in states}
    symbols = [sympy.Symbol(name) for name in states]
    final = _final_expressions(brian.update_code, states)
    step = np.eye(len(states))
    for row, target in enumerate(states):
        expression = final.get(target, symbols[row]).subs(sympy.Symbol("not_refractory"), 1)
        for col, symbol in enumerate(symbols):
            step[row, col] = float(translate(sympy.diff(expression, symbol))({**values, **point}))
    substituted = dict(brian.equations.get_substituted_expressions(brian.variables))
    jacobian = np.zeros((len(states), len(states)))
    for row, target in enumerate(states):
        rhs = to_sympy(substituted[target].code).subs(sympy.Symbol("not_refractory"), 1)
        for col, symbol in enumerate(symbols):
            jacobian[row, col] = float(translate(sympy.diff(rhs, symbol))({**values, **point}))
    eigenvalues = np.linalg.eigvals(jacobian * dt_s)
    flow = np.diag(np.exp(eigenvalues.real))
    return step, flow
