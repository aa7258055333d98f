"""Brian2 quantities as text: read ``"700*ms"`` safely, write them back exactly.

Neuron constants travel through JSON files, the command line (``--set
tau_a=700*ms``) and protocol scripts. :func:`parse_quantity` reads the text a
Brian2 user writes (a number times units, with ``*``, ``/``, ``**`` and
parentheses) without ``eval``-ing arbitrary code; :func:`format_quantity`
writes a value so that :func:`parse_quantity` gives back the same float64 in SI
units, bit for bit.
"""

from __future__ import annotations

import ast
import functools
import operator
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError

_BINARY = {ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


@functools.cache
def brian_units() -> dict[str, Any]:
    """Brian2's unit objects by name (``ms``, ``mV``, ``second``, ``siemens``, ...)."""
    import brian2.units.allunits as allunits
    import brian2.units.stdunits as stdunits
    from brian2.units.fundamentalunits import Unit

    names: dict[str, Any] = {}
    for module in (allunits, stdunits):
        for name in dir(module):
            value = getattr(module, name)
            if isinstance(value, Unit):
                names[name] = value
    return names


@functools.cache
def _readable_units() -> dict[str, Any]:
    """The names :func:`parse_quantity` reads: Brian2's units, and ``minute``, ``hour``, ``day``.

    Brian2 has no units longer than a second; memristor drift is read hours to
    months after programming (``--set READ_TIME=30*day`` in a protocol).
    """
    units = dict(brian_units())
    units["minute"] = 60 * units["second"]
    units["hour"] = 60 * units["minute"]
    units["day"] = 24 * units["hour"]
    return units


def parse_quantity(text: str | float | int, *, name: str = "value") -> Any:
    """A Brian2 quantity (or a float) from text such as ``"700*ms"`` or ``"0.5"``.

    Parameters
    ----------
    text
        Brian2 notation: numbers, unit names (``ms``, ``mV``, ``second``, ...;
        also ``minute``, ``hour``, ``day``)
        and ``* / ** + -``; quantities pass through, numbers (and
        dimensionless quantities) become floats.
    name
        What the value is, for error messages.

    Raises
    ------
    ConfigError
        Anything else: unknown names, function calls, attribute access.
    """
    from brian2 import Quantity

    if isinstance(text, bool):
        raise ConfigError(f"{name} = {text!r} is not a number or a Brian2 quantity")
    if isinstance(text, Quantity):
        if text.shape != ():
            raise ConfigError(f"{name} = {text!r} is not a scalar")
        return float(np.asarray(text)) if text.is_dimensionless else text
    if isinstance(text, int | float | np.floating | np.integer):
        return float(text)
    if not isinstance(text, str):
        raise ConfigError(f"{name} = {text!r} is not a number or a Brian2 quantity")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ConfigError(
            f"{name} = {text!r} is not a Brian2 quantity ({error.msg}); write e.g. 700*ms"
        ) from None
    value = _evaluate(tree.body, text, name)
    return float(value) if isinstance(value, int) else value


def _evaluate(node: ast.AST, text: str, name: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name):
        units = _readable_units()
        if node.id not in units:
            raise ConfigError(
                f"{name} = {text!r}: {node.id!r} is not a Brian2 unit (e.g. ms, mV, nA, second)"
            )
        return units[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in (*_BINARY, ast.Add, ast.Sub):
        left, right = _evaluate(node.left, text, name), _evaluate(node.right, text, name)
        op = {ast.Add: operator.add, ast.Sub: operator.sub, **_BINARY}[type(node.op)]
        try:
            return op(left, right)
        except Exception as error:  # Brian2 raises DimensionMismatchError for 1*ms + 1*mV
            raise ConfigError(f"{name} = {text!r}: {error}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, text, name))
    raise ConfigError(
        f"{name} = {text!r}: only numbers, Brian2 units and * / ** + - are allowed "
        "(e.g. 700*ms, 2.5*mV, 0.3)"
    )


def format_quantity(value: Any) -> str:
    """Text that :func:`parse_quantity` reads back to exactly ``value``.

    Dimensionless values are written as plain numbers; quantities as their SI
    value times SI base units (``0.7 * second``), so no decimal rounding of a
    scaled unit (``700. * msecond``) enters.
    """
    from brian2 import Quantity

    if isinstance(value, Quantity) and not value.is_dimensionless:
        if value.shape != ():
            raise ConfigError(f"{value!r} is not a scalar; neuron constants are scalars")
        from brian2.units.fundamentalunits import get_unit

        # get_unit gives the SI unit of scale 1 (volt, siemens, second2, or a
        # product of base units); any of them reads back through brian_units().
        unit = repr(get_unit(value.dim))
        if unit not in brian_units():
            unit = value.dim._str_representation(python_code=True)
        return f"{float(np.asarray(value))!r} * {unit}"
    return repr(float(value))
