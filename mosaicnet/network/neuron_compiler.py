"""The torch form of a neuron model, compiled from its Brian2 code.

:func:`compile_neuron` turns a :class:`~mosaicnet.network.neuron_model.NeuronModel`
into a :class:`CompiledNeuron`: the functions one time step of the torch clone
calls, in Brian2's order inside a step (:mod:`mosaicnet.network.torch_clone`):

``integrate`` ('groups' slot)
    Brian2's own state updater for the model's method
    (:func:`mosaicnet.network.neuron_brian.state_update_code`), translated
    statement by statement (:func:`mosaicnet.network.neuron_update.translate`).
    When the update is affine in the state (always for ``exact`` on linear
    equations; also e.g. Euler on linear equations) it runs as
    ``new[k] = sum_j A[k, j] old[j] + b[k]`` with the coefficients of
    :func:`~mosaicnet.network.neuron_update.affine_update`, which is what made
    the hand-written LIF clone bit-identical to Brian2's ``exact`` integrator.
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

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from mosaicnet.network.neuron_brian import (
    INITIAL_LASTSPIKE_S,
    BrianModel,
    _comparison,
    check_model,
)
from mosaicnet.network.neuron_model import NeuronModel
from mosaicnet.network.neuron_update import (
    ASSIGNMENT,
    AffineUpdate,
    Expression,
    affine_row,
    affine_update,
    si_value,
    to_sympy,
    translate,
    update_statements,
)

__all__ = ["AffineForm", "CompiledNeuron", "NeuronState", "compile_neuron"]

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

    ``reset_spike_matrix[z]`` and ``reset_spike_offset[z]`` (``z`` = 0, 1) give
    the derivative of the reset result with respect to the spike ``z``, as the
    clone's reset expressions (``x + z * e``, ``z * e + (1 - z) * x``, see
    :meth:`CompiledNeuron.reset`) differentiate it at ``z`` = 0 or 1:
    ``d state[k] / dz = reset_spike_matrix[z][k] @ state + reset_spike_offset[z][k]``
    of the state before the reset. A backward pass written by hand needs it: the
    surrogate gradient flows through the reset (for ``v -= thr`` it is ``-thr``).
    """

    update: AffineUpdate
    threshold_weights: np.ndarray
    threshold_offset: float
    reset_matrix: np.ndarray
    reset_offset: np.ndarray
    reset_spike_matrix: np.ndarray
    reset_spike_offset: np.ndarray


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
        self.dt_s = si_value(dt)
        label = f"neuron model {model.name!r}"
        #: Constants in SI units, with dt.
        self.values: dict[str, float] = {"dt": self.dt_s}
        self.values.update({name: si_value(value) for name, value in model.constants.items()})
        self.initial = {name: si_value(model.initial.get(name, 0.0)) for name in self.states}
        self.update = affine_update(brian.update_code, self.states, self.values, label=label)
        self.update_statements = [
            (target, translate(expression))
            for target, expression in update_statements(brian.update_code)
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
                ASSIGNMENT.match(line).groups() for line in model.reset_statements()
            )
        ]
        self.refractory_steps: int | None = None
        if model.refractory is not None:
            # Brian2's timestep(): int((t + 1e-3 dt) / dt).
            self.refractory_steps = int((si_value(model.refractory) + 1e-3 * self.dt_s) / self.dt_s)
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
            for target, expression in self.update_statements:
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
        weights = affine_row(distance, symbols, self.values)
        if weights is None:
            return None
        reset_matrix = np.eye(len(symbols))
        reset_offset = np.zeros(len(symbols))
        current = {symbol: symbol for symbol in symbols}
        for line in self.model.reset_statements():
            target, op, expression = ASSIGNMENT.match(line).groups()
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
            coefficients = affine_row(current[symbol], symbols, self.values)
            if coefficients is None:
                return None
            reset_matrix[row] = coefficients[0]
            reset_offset[row] = coefficients[1]
        spike_derivative = self._reset_spike_derivative(symbols)
        if spike_derivative is None:
            return None
        return AffineForm(
            update=self.update,
            threshold_weights=weights[0],
            threshold_offset=-weights[1],
            reset_matrix=reset_matrix,
            reset_offset=reset_offset,
            reset_spike_matrix=spike_derivative[0],
            reset_spike_offset=spike_derivative[1],
        )

    def _reset_spike_derivative(
        self, symbols: list[sympy.Symbol]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``d(reset result)/dz`` at z = 0 and z = 1 as affine maps of the pre-reset state.

        Each statement of :meth:`reset` is ``x_k <- x_k + z (f . q + c - x_k)`` of
        the current state ``q`` (``f``, ``c`` from its operator and expression), so
        ``q' = (I + z D) q + z c e_k`` with ``D = e_k (f - e_k)^T``, and the
        derivative ``S = dq/dz`` follows ``S' = (I + z D) S + D q + c e_k``. Both
        are carried as affine maps ``(matrix, offset)`` of the state before the
        first statement, for each value of z.
        """
        n = len(symbols)
        matrices, offsets = np.zeros((2, n, n)), np.zeros((2, n))
        for z in (0, 1):
            q_matrix, q_offset = np.eye(n), np.zeros(n)
            s_matrix, s_offset = np.zeros((n, n)), np.zeros(n)
            for line in self.model.reset_statements():
                target, op, expression = ASSIGNMENT.match(line).groups()
                row = affine_row(to_sympy(expression), symbols, self.values)
                if row is None:
                    return None
                coefficients, constant = row
                k = self.states.index(target)
                unit = np.eye(n)[k]
                if op in ("*=", "/="):
                    if np.any(coefficients != 0.0):
                        return None
                    factor = constant if op == "*=" else 1.0 / constant
                    f, c = factor * unit, 0.0
                elif op == "=":
                    f, c = coefficients, constant
                elif op == "+=":
                    f, c = unit + coefficients, constant
                else:
                    f, c = unit - coefficients, -constant
                d = np.outer(unit, f - unit)
                # S' = S + z D S + D q + c e_k, then q' = q + z (D q + c e_k).
                s_matrix = s_matrix + z * d @ s_matrix + d @ q_matrix
                s_offset = s_offset + z * d @ s_offset + d @ q_offset + c * unit
                q_matrix = q_matrix + z * d @ q_matrix
                q_offset = q_offset + z * (d @ q_offset + c * unit)
            matrices[z], offsets[z] = s_matrix, s_offset
        return matrices, offsets


def compile_neuron(model: NeuronModel, dt: Any) -> CompiledNeuron:
    """Compile ``model`` at step ``dt`` (checks it first, see :func:`check_model`)."""
    return CompiledNeuron(model, dt)
