"""What Brian2 makes of a :class:`~mosaicnet.network.neuron_model.NeuronModel`.

Two things, both without building any Brian2 group (so neither touches
Brian2's process-wide device, which a standalone project may hold):

- :func:`check_model`: the model's code checked the way Brian2 checks it
  (equation syntax, names, units, boolean threshold, reset targets, the
  integration method) plus what the clone needs (a threshold that is one
  comparison, synaptic targets that are state variables) and the stability of
  the integration method at the simulation step. Every error names the line of
  the user's code and the fix.
- :func:`state_update_code`: Brian2's abstract code for one integration step
  of the model (from Brian2's own state updaters), which the torch clone is
  compiled from (:mod:`mosaicnet.network.neuron_compiler`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.network.neuron_model import NeuronModel

#: Names the refractory mechanism adds (Brian2) and the clone keeps.
REFRACTORY_NAMES = ("lastspike", "not_refractory")
#: Brian2's initial ``lastspike`` of a refractory group (``NeuronGroup.__init__``).
INITIAL_LASTSPIKE_S = -1e4
_RESET_STATEMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(=|\+=|-=|\*=|/=)\s*(.+?)\s*$")
_COMPARISON = re.compile(r"(?<![<>=!])(>=|<=|>|<)(?!=)")


@dataclass(frozen=True)
class BrianModel:
    """A checked model as Brian2 sees it.

    Attributes
    ----------
    equations
        Brian2 ``Equations`` (refractoriness added as Brian2 adds it).
    states
        Differential state variables, in definition order.
    variables
        Brian2 ``Variable``/``Constant`` objects, functions and units the
        code may refer to (for Brian2's unit checks and state updaters).
    frozen
        State variables flagged ``(unless refractory)``.
    update_code
        Brian2's abstract code of one integration step (``_x = ...`` lines
        and intermediate variables, without the final ``x = _x``).
    """

    equations: Any
    states: tuple[str, ...]
    variables: dict[str, Any]
    frozen: tuple[str, ...]
    update_code: str


def check_model(model: NeuronModel, dt: Any) -> BrianModel:
    """Check a neuron model as Brian2 and the clone need it; raise :class:`ConfigError`.

    Parameters
    ----------
    model
        The model.
    dt
        Simulation step (Brian2 time): the integration method must be stable at it.

    Returns
    -------
    BrianModel
        The model as Brian2 sees it (cached per model and ``dt``).
    """
    key = json.dumps(model.to_dict(), sort_keys=True)
    return _check_model(key, float(np.asarray(dt)))


@functools.lru_cache(maxsize=64)
def _check_model(key: str, dt_s: float) -> BrianModel:
    model = NeuronModel.from_dict(json.loads(key))
    label = f"neuron model {model.name!r}"
    equations = _parse_equations(model, label)
    flagged = tuple(
        name
        for name, eq in equations.items()
        if eq.type == "differential equation" and "unless refractory" in eq.flags
    )
    if flagged and model.refractory is None:
        raise ConfigError(
            f"{label}: {', '.join(flagged)} {'is' if len(flagged) == 1 else 'are'} flagged "
            "(unless refractory) but the model has no refractory period; set refractory "
            "(e.g. refractory='2*ms') or remove the flag"
        )
    if model.refractory is not None:
        _check_refractory(model, label, dt_s)
        from brian2.equations.refractory import add_refractoriness

        equations = add_refractoriness(equations)
    states = tuple(name for name in equations.keys() if name in equations.diff_eq_names)
    if not states:
        raise ConfigError(f"{label}: the equations define no differential equation (dx/dt = ...)")
    variables = _variables(model, equations, dt_s, label)
    _check_equation_units(model, equations, variables, label)
    _check_threshold(model, variables, label)
    _check_reset(model, states, variables, label)
    _check_targets(model, states, equations, label)
    _check_initial(model, states, equations, label)
    code = _update_code(model, equations, variables, label)
    model_check = BrianModel(
        equations=equations, states=states, variables=variables, frozen=flagged, update_code=code
    )
    _check_update_evaluates(model, model_check, dt_s, label)
    _check_stability(model, model_check, dt_s, label)
    return model_check


def state_update_code(model: NeuronModel, dt: Any) -> str:
    """Brian2's abstract code of one integration step of ``model`` (see :class:`BrianModel`)."""
    return check_model(model, dt).update_code


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


def _line_of(model: NeuronModel, variable: str) -> str:
    """The equations line that defines ``variable`` (for error messages)."""
    pattern = re.compile(rf"^\s*(d{variable}\s*/\s*dt|{variable})\s*(=|:)")
    for number, line in enumerate(model.equations.splitlines(), start=1):
        if pattern.match(line):
            return f"equations line {number} ({line.strip()!r})"
    return f"the equations of {variable}"


def _parse_equations(model: NeuronModel, label: str) -> Any:
    from brian2 import Equations

    try:
        equations = Equations(model.equations)
    except Exception as error:  # Brian2 raises EquationError, SyntaxError, ValueError...
        raise ConfigError(
            f"{label}: Brian2 rejects the equations: {error}. Write one equation per line, "
            "e.g. 'dv/dt = -v / tau : 1'"
        ) from None
    for name, eq in equations.items():
        if eq.type == "differential equation" and set(eq.flags) - {"unless refractory"}:
            raise ConfigError(
                f"{label}: {_line_of(model, name)} has flags {sorted(eq.flags)}; the clone "
                "supports only (unless refractory)"
            )
    if equations.stochastic_variables:
        noise = ", ".join(sorted(equations.stochastic_variables))
        raise ConfigError(
            f"{label}: the equations use noise ({noise}); the clone is deterministic: "
            "remove the xi terms (device noise is modelled by the device model)"
        )
    from mosaicnet.devices.brian_form import SYNAPSE_VARIABLES

    taken = sorted(set(equations.names) & {*SYNAPSE_VARIABLES, "w_syn"})
    if taken:
        raise ConfigError(
            f"{label}: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} the name of a "
            "memristive synapse variable (its post-synaptic twin would be ambiguous in "
            "Brian2); rename it in the equations"
        )
    clash = sorted(set(model.constants) & set(equations.names))
    if clash:
        raise ConfigError(
            f"{label}: {', '.join(clash)} {'is' if len(clash) == 1 else 'are'} both a constant "
            "and a variable of the equations; rename one"
        )
    return equations


def _check_refractory(model: NeuronModel, label: str, dt_s: float) -> None:
    from brian2 import Quantity, second

    period = model.refractory
    if not isinstance(period, Quantity) or not period.has_same_dimensions(second):
        raise ConfigError(f"{label}: refractory must be a time (e.g. '2*ms'), got {period!r}")
    if not float(np.asarray(period)) > 0:
        raise ConfigError(f"{label}: refractory must be positive, got {period}")


def _variables(model: NeuronModel, equations: Any, dt_s: float, label: str) -> dict[str, Any]:
    from brian2 import second
    from brian2.core.functions import DEFAULT_CONSTANTS, DEFAULT_FUNCTIONS
    from brian2.core.variables import Constant, Variable
    from brian2.units.fundamentalunits import get_dimensions

    from mosaicnet.network.quantities import brian_units

    variables: dict[str, Any] = dict(brian_units())
    variables.update(DEFAULT_FUNCTIONS)
    variables.update(DEFAULT_CONSTANTS)
    for name, value in model.constants.items():
        variables[name] = Constant(name, float(np.asarray(value)), get_dimensions(value))
    for name in equations.names:
        dtype = bool if equations[name].var_type == "boolean" else np.float64
        variables[name] = Variable(name, dimensions=equations.dimensions[name], dtype=dtype)
    variables["t"] = Variable("t", dimensions=second.dim, dtype=np.float64, scalar=True)
    variables["dt"] = Constant("dt", dt_s, second.dim)
    if model.refractory is not None:
        variables["lastspike"] = Variable("lastspike", dimensions=second.dim, dtype=np.float64)
    return variables


def _unknown(expression: str, variables: dict[str, Any]) -> list[str]:
    from brian2.utils.stringtools import get_identifiers

    return sorted(name for name in get_identifiers(expression) if name not in variables)


def _check_equation_units(
    model: NeuronModel, equations: Any, variables: dict[str, Any], label: str
) -> None:
    from brian2 import second
    from brian2.equations.unitcheck import check_dimensions

    for name, eq in equations.items():
        if eq.expr is None:
            continue
        where = _line_of(model, name)
        unknown = _unknown(eq.expr.code, variables)
        if unknown:
            raise ConfigError(
                f"{label}: {where} uses {', '.join(unknown)}, which is neither a variable of "
                "the equations nor a constant; add it to the model's constants"
            )
        expected = equations.dimensions[name]
        if eq.type == "differential equation":
            expected = expected / second.dim
        try:
            check_dimensions(eq.expr.code, expected, variables)
        except Exception as error:
            raise ConfigError(f"{label}: {where} has inconsistent units: {error}") from None


def _comparison(threshold: str) -> tuple[str, str, str]:
    """``(lhs, operator, rhs)`` of a threshold that is one comparison."""
    if re.search(r"\b(and|or|not)\b", threshold):
        raise ConfigError(
            f"threshold {threshold!r} combines conditions; the clone needs one comparison "
            "(e.g. 'v > thr + beta*a') to apply its surrogate gradient to lhs - rhs"
        )
    parts = _COMPARISON.split(threshold)
    if len(parts) != 3:
        raise ConfigError(
            f"threshold {threshold!r} must be one comparison with >, >=, < or <= (e.g. 'v > thr')"
        )
    return parts[0].strip(), parts[1], parts[2].strip()


def _check_threshold(model: NeuronModel, variables: dict[str, Any], label: str) -> None:
    from brian2.parsing.expressions import parse_expression_dimensions

    where = f"{label}: threshold {model.threshold!r}"
    unknown = _unknown(model.threshold, variables)
    if unknown:
        raise ConfigError(
            f"{where} uses {', '.join(unknown)}, which is neither a variable of the equations "
            "nor a constant; use a state variable or add the constant"
        )
    try:
        _comparison(model.threshold)
    except ConfigError as error:
        raise ConfigError(f"{label}: {error}") from None
    try:
        parse_expression_dimensions(model.threshold, variables)
    except Exception as error:
        raise ConfigError(f"{where} has inconsistent units: {error}") from None


def _check_reset(
    model: NeuronModel, states: tuple[str, ...], variables: dict[str, Any], label: str
) -> None:
    from brian2.equations.unitcheck import check_units_statements

    statements = model.reset_statements()
    if not statements:
        raise ConfigError(
            f"{label}: the reset is empty; a spiking model resets at least one state variable "
            "(e.g. 'v -= thr' or 'v = 0')"
        )
    for number, statement in enumerate(statements, start=1):
        where = f"{label}: reset line {number} ({statement!r})"
        match = _RESET_STATEMENT.match(statement)
        if match is None:
            raise ConfigError(
                f"{where} is not an assignment; write 'x = expr', 'x += expr' or 'x -= expr'"
            )
        target, _, expression = match.groups()
        if target not in states:
            raise ConfigError(
                f"{where} assigns {target!r}, which is not a state variable of the equations "
                f"({', '.join(states)}); a reset may only change state variables"
            )
        unknown = _unknown(expression, variables)
        if unknown:
            raise ConfigError(
                f"{where} uses {', '.join(unknown)}, which is neither a variable of the "
                "equations nor a constant; add it to the model's constants"
            )
        try:
            check_units_statements(statement, variables)
        except Exception as error:
            raise ConfigError(f"{where} has inconsistent units: {error}") from None


def _check_targets(model: NeuronModel, states: tuple[str, ...], equations: Any, label: str) -> None:
    from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions

    for role in ("input_target", "recurrent_target", "membrane"):
        target = getattr(model, role)
        if target not in states:
            raise ConfigError(
                f"{label}: {role} {target!r} is not a state variable of the equations "
                f"({', '.join(states)}); synapses and recordings need a differential variable"
            )
    for role in ("input_target", "recurrent_target"):
        target = getattr(model, role)
        dimensions = equations.dimensions[target]
        if dimensions is DIMENSIONLESS:
            continue
        unit = model.constants.get("weight_unit")
        if unit is None or get_dimensions(unit) is not dimensions:
            raise ConfigError(
                f"{label}: the synaptic target {target!r} has units ({dimensions}); weights are "
                f"dimensionless, so define a constant weight_unit with those units (a spike "
                f"adds w * weight_unit), or write {target} dimensionless"
            )


def _check_initial(model: NeuronModel, states: tuple[str, ...], equations: Any, label: str) -> None:
    from brian2.units.fundamentalunits import get_dimensions

    for name, value in model.initial.items():
        if name not in states:
            raise ConfigError(
                f"{label}: an initial value is given for {name!r}, which is not a state "
                f"variable ({', '.join(states)})"
            )
        if get_dimensions(value) is not equations.dimensions[name]:
            raise ConfigError(
                f"{label}: the initial value {value!r} of {name} does not have its units "
                f"({equations.dimensions[name]})"
            )


def _update_code(model: NeuronModel, equations: Any, variables: dict[str, Any], label: str) -> str:
    from brian2.stateupdaters.base import StateUpdateMethod, UnsupportedEquationsException

    # Without 'dt': the exact updater reads dt as an array variable of a group.
    variables = {name: value for name, value in variables.items() if name != "dt"}
    try:
        code = StateUpdateMethod.apply_stateupdater(equations, variables, model.method)
    except UnsupportedEquationsException as error:
        hint = (
            "; 'exact' integrates linear equations only: name a method such as 'euler', "
            "'rk4' or 'exponential_euler'"
            if model.method == "exact"
            else ""
        )
        raise ConfigError(
            f"{label}: Brian2 cannot integrate the equations with method {model.method!r} "
            f"({error}){hint}"
        ) from None
    except Exception as error:
        raise ConfigError(
            f"{label}: Brian2's {model.method!r} state updater failed on the equations: {error}"
        ) from None
    if not isinstance(code, str):
        raise ConfigError(f"{label}: method {model.method!r} does not produce abstract code")
    # Drop the final 'x = _x' copies: the clone assigns all new values at once.
    lines = [
        line
        for line in code.splitlines()
        if line.strip()
        and not re.match(rf"^\s*({'|'.join(equations.diff_eq_names)})\s*=\s*_\1\s*$", line)
    ]
    return "\n".join(lines)


def _check_update_evaluates(model: NeuronModel, brian: BrianModel, dt_s: float, label: str) -> None:
    """Evaluate one update step at the initial state: NaN, division by zero and
    square roots of negative numbers show up here, not in the middle of training."""
    import math

    from mosaicnet.network.neuron_update import affine_update, translate

    values: dict[str, float] = {"dt": dt_s, "t": 0.0}
    values.update({name: float(np.asarray(value)) for name, value in model.constants.items()})
    if model.method == "exact":
        affine_update(brian.update_code, brian.states, values, label=label)
        return
    scope = {**values, **{n: float(np.asarray(model.initial.get(n, 0.0))) for n in brian.states}}
    for line in brian.update_code.splitlines():
        target, _, expression = (part.strip() for part in line.partition("="))
        try:
            value = float(translate(expression)(scope))
        except (ValueError, ZeroDivisionError, OverflowError) as error:
            value, reason = math.nan, str(error)
        else:
            reason = "not finite"
        if not math.isfinite(value):
            raise ConfigError(
                f"{label}: one {model.method} step from the initial state gives {target} = "
                f"{value} ({reason}) in Brian2's update code {line!r}; check the constants"
            )
        scope[target] = value


def _check_stability(model: NeuronModel, brian: BrianModel, dt_s: float, label: str) -> None:
    """Reject a method whose step amplifies what the equations damp, at ``dt``.

    The one-step update is linearised at the initial state (sympy Jacobian of
    Brian2's update code) and its spectral radius compared with that of the
    exact flow ``expm(dt J)`` of the linearised equations: a step that grows
    (> 1) where the equations do not is numerical instability (e.g. Euler with
    ``dt > 2 tau``). ``exact`` is exact, hence never flagged.
    """
    if model.method == "exact":
        return
    from mosaicnet.network.neuron_update import linearised_step

    step, flow = linearised_step(model, brian, dt_s)
    radius_step = float(np.max(np.abs(np.linalg.eigvals(step))))
    radius_flow = float(np.max(np.abs(np.linalg.eigvals(flow))))
    if radius_step > max(1.0, radius_flow) * (1 + 1e-9):
        raise ConfigError(
            f"{label}: method {model.method!r} is unstable at dt = {dt_s * 1e3:g} ms: one step "
            f"multiplies perturbations of the initial state by up to {radius_step:.3g} where "
            f"the equations shrink or keep them ({radius_flow:.3g}); use method 'exact' (linear "
            "equations), 'exponential_euler' or 'rk4', or a smaller dt"
        )
