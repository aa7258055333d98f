"""Brian2's update code of a neuron model as numbers and functions (sympy, no torch).

What the torch compiler (:mod:`mosaicnet.network.neuron_compiler`), the model
checks (:mod:`mosaicnet.network.neuron_brian`) and ``describe`` share:

- :func:`translate`: a Brian2 expression as a Python function that runs on
  floats (the C library's ``math``, as Brian2's C++ code) and, once torch is
  loaded, on tensors; describing or checking a network never imports torch.
- :func:`affine_update`: one integration step as ``new = matrix @ old + offset``
  when it is affine in the state (coefficients evaluated once in float64, in
  the expression order Brian2 prints them in, so they equal Brian2's to the
  last bit in the checked configurations); :func:`exact_linear_update` for
  linear equations (the readout).
- :func:`linearised_step`: the Jacobians the stability check compares.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from mosaicnet.errors import ConfigError

if TYPE_CHECKING:
    from mosaicnet.network.neuron_brian import BrianModel
    from mosaicnet.network.neuron_model import NeuronModel

ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(=|\+=|-=|\*=|/=)\s*(.+?)\s*$")


# ---------------------------------------------------------------------------
# Functions the translated code may call: torch on tensors, math on floats
# ---------------------------------------------------------------------------


def _torch_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (one exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _dispatch(torch_name: str, math_function: Callable) -> Callable:
    def function(*args: Any) -> Any:
        if any(_torch_tensor(arg) for arg in args):
            torch = sys.modules["torch"]
            return getattr(torch, torch_name)(
                *(a if _torch_tensor(a) else torch.as_tensor(a) for a in args)
            )
        return math_function(*args)

    return function


def _int(x: Any) -> Any:
    if _torch_tensor(x):
        return x.to(sys.modules["torch"].get_default_dtype())
    return float(int(x))


def _clip(x: Any, low: Any, high: Any) -> Any:
    if _torch_tensor(x):
        return sys.modules["torch"].clamp(x, min=low, max=high)
    return min(max(x, low), high)


def _exprel(x: Any) -> Any:
    if _torch_tensor(x):
        torch = sys.modules["torch"]
        small = x.abs() < 1e-8
        safe = torch.where(small, torch.ones_like(x), x)
        return torch.where(small, 1 + x / 2, torch.expm1(safe) / safe)
    return 1.0 + x / 2 if abs(x) < 1e-8 else math.expm1(x) / x


#: Names the translated expressions resolve (sympy prints Brian2's functions so).
FUNCTIONS: dict[str, Callable] = {
    "exp": _dispatch("exp", math.exp),
    "log": _dispatch("log", math.log),
    "log10": _dispatch("log10", math.log10),
    "sqrt": _dispatch("sqrt", math.sqrt),
    "sin": _dispatch("sin", math.sin),
    "cos": _dispatch("cos", math.cos),
    "tan": _dispatch("tan", math.tan),
    "sinh": _dispatch("sinh", math.sinh),
    "cosh": _dispatch("cosh", math.cosh),
    "tanh": _dispatch("tanh", math.tanh),
    "arcsin": _dispatch("asin", math.asin),
    "arccos": _dispatch("acos", math.acos),
    "arctan": _dispatch("atan", math.atan),
    "asin": _dispatch("asin", math.asin),
    "acos": _dispatch("acos", math.acos),
    "atan": _dispatch("atan", math.atan),
    "abs": _dispatch("abs", abs),
    "Abs": _dispatch("abs", abs),
    "floor": _dispatch("floor", math.floor),
    "ceiling": _dispatch("ceil", math.ceil),
    "sign": _dispatch("sign", lambda x: float(np.sign(x))),
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
        match = ASSIGNMENT.match(line)
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
    values = {"dt": si_value(dt), **{name: si_value(value) for name, value in namespace.items()}}
    update = affine_update(code, states, values)
    assert update is not None  # Brian2's exact solution of linear equations is affine
    return update


def si_value(value: Any) -> float:
    """A Brian2 quantity or number as a float in SI units (as Brian2 passes it to code)."""
    return float(np.asarray(value, dtype=np.float64))


def affine_row(
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


def update_statements(code: str) -> list[tuple[str, str]]:
    statements = []
    for line in code.splitlines():
        match = ASSIGNMENT.match(line)
        if match is None or match.group(2) != "=":
            raise ConfigError(f"unexpected line in Brian2's update code: {line!r}")
        statements.append((match.group(1), match.group(3)))
    return statements


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
    values.update({name: si_value(value) for name, value in model.constants.items()})
    point = {name: si_value(model.initial.get(name, 0.0)) for name in states}
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
