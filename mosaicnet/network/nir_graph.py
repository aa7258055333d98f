"""Export a network to NIR and import it back (Neuromorphic Intermediate Representation).

NIR (package ``nir``, optional extra ``mosaicnet[nir]``; Pedersen et al., Nat.
Commun. 15, 8122, 2024) describes a spiking network as a graph of
continuous-time nodes. A :class:`~mosaicnet.network.spec.NetworkSpec` becomes::

    input -> w_in (Linear) -> recurrent (LIF | CubaLIF) -> w_out (Linear) -> readout (LI) -> output
                                  ^            |
                                  +-- w_rec <--+   (Linear)

NIR's ``Linear`` holds ``weight`` as ``(out, in)``, the transpose of the spec's
``[pre, post]`` matrices. The neuron nodes get the continuous-time parameters
of the model's Brian2 equations (:func:`neuron_node_parameters`), with each
input spike a unit-area Dirac pulse, as Brian2's ``on_pre: v_post += w`` is:

``lif`` (``dv/dt = -v / tau_mem``, synapses into ``v``)
    ``nir.LIF(tau=tau_mem, r=tau_mem, v_leak=0, v_threshold=thr)``: a spike of
    weight ``w`` moves ``v`` by ``r w / tau = w``.
``cuba_lif`` (``dv/dt = -v / tau_mem + I / tau_syn``, ``dI/dt = -I / tau_syn``, synapses into ``I``)
    ``nir.CubaLIF(tau_syn, tau_mem, r=tau_mem / tau_syn, w_in=tau_syn, v_leak=0, v_threshold=thr)``:
    a spike moves ``I`` by ``w_in w / tau_syn = w``; ``r I / tau_mem = I / tau_syn``.
readout (``dv/dt = -v / tau_out``)
    ``nir.LI(tau=tau_out, r=tau_out, v_leak=0)``.

Times are in seconds. Any model whose equations have this structure maps
(other constants, a leak potential, a reset to a value); the others (an
adaptation variable, a refractory period, a threshold that moves) raise a
:class:`~mosaicnet.errors.ConfigError` naming what NIR lacks.

What NIR does not say is recorded in the graph's ``metadata`` (keys
``mosaicnet_*``, :data:`METADATA_NOTES`): the subtractive reset (NIR's nodes
reset to ``v_reset``), the time step and Brian2's order inside it, the input
encoding, the decision (max over time of the readout potential), and where the
weights come from (ideal, or read from the programmed chip at a read time).

``time_step`` exports for discrete-time frameworks that treat a spike as a
value of 1 in one step and integrate with forward Euler at a fixed step
(snnTorch's importer: 0.1 ms): one spec step becomes one such step, and each
time constant ``tau' = time_step / (1 - decay)`` with the exact per-step decay
of the spec, so that the framework's Euler step reproduces it.

:func:`from_nir` reads a graph of this shape back into a spec that runs in
Brian2 and in the torch clone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from mosaicnet.errors import ConfigError, DataFormatError
from mosaicnet.meta.readout_range import DEFAULT_READOUT_HEADROOM

if TYPE_CHECKING:
    from mosaicnet.network.neuron_model import NeuronModel
    from mosaicnet.network.spec import NetworkSpec

#: Format of the ``mosaicnet_*`` metadata this module writes.
NIR_METADATA_FORMAT = 1

#: Node names of an exported graph, in signal order.
NODE_NAMES = ("input", "w_in", "recurrent", "w_rec", "w_out", "readout", "output")

#: What NIR's node definitions leave open, as the metadata records it.
METADATA_NOTES = {
    "mosaicnet_step_order": (
        "per time step dt, as Brian2 schedules it: integrate the equations over dt, "
        "threshold, deliver this step's synaptic input, reset; an input spike in step t "
        "can make a neuron spike in step t+1 at the earliest"
    ),
    "mosaicnet_input_encoding": (
        "input x[t, c] per time bin; a bin with any spike is one spike (counts clipped to 1)"
    ),
    "mosaicnet_decision": (
        "logit of a readout unit = max over time of its LI potential; class = argmax"
    ),
}


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise ConfigError(
            "NIR export needs the package nir: pip install 'mosaicnet[nir]' (or pip install nir)"
        ) from None
    return nir


# ---------------------------------------------------------------------------
# The neuron model as NIR parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NeuronNode:
    """A neuron model in NIR's terms (continuous time, SI units, Dirac input spikes).

    Attributes
    ----------
    kind
        ``"LIF"`` or ``"CubaLIF"``.
    parameters
        Scalars of the node: ``tau``, ``r``, ``v_leak``, ``v_threshold``,
        ``v_reset`` (LIF) or ``tau_syn``, ``tau_mem``, ``r``, ``w_in``,
        ``v_leak``, ``v_threshold``, ``v_reset`` (CubaLIF).
    reset
        ``"subtract"`` (``v -= v_threshold``, which NIR cannot say) or ``"value"``
        (``v = v_reset``, NIR's own reset).
    weight_unit
        The model's ``weight_unit`` in SI units (1 where it has none): NIR
        weights are the spec's times it.
    """

    kind: str
    parameters: dict[str, float]
    reset: str
    weight_unit: float


def neuron_node_parameters(model: NeuronModel, dt: Any) -> NeuronNode:
    """The NIR node of a recurrent neuron model, or a :class:`ConfigError` naming what NIR lacks.

    Parameters
    ----------
    model
        The recurrent neurons (:class:`~mosaicnet.network.neuron_model.NeuronModel`).
    dt
        The spec's time step (Brian2 time); the model is checked at it.

    Raises
    ------
    ConfigError
        A refractory period, state variables other than a membrane (and a
        synaptic current feeding it), a threshold other than ``membrane > constant``,
        or a reset other than ``membrane -= threshold`` / ``membrane = constant``.
    """
    from mosaicnet.network.neuron_brian import _comparison, check_model
    from mosaicnet.network.neuron_update import ASSIGNMENT, affine_row, si_value, to_sympy

    label = f"neuron model {model.name!r} cannot be exported to NIR"
    brian = check_model(model, dt)
    if model.refractory is not None:
        raise ConfigError(
            f"{label}: it has a refractory period ({model.refractory}), and NIR's LIF and "
            "CubaLIF have none"
        )
    values = {"dt": si_value(dt), **{k: si_value(v) for k, v in model.constants.items()}}
    states = list(brian.states)
    symbols = [sympy.Symbol(name) for name in states]
    membrane = model.membrane
    if membrane not in states:
        raise ConfigError(f"{label}: its membrane {membrane!r} is not a state variable")
    # The continuous-time system dx/dt = M x + b: what NIR's equations are.
    matrix, offset = np.zeros((len(states), len(states))), np.zeros(len(states))
    for row, name in enumerate(states):
        coefficients = affine_row(to_sympy(str(brian.equations[name].expr.code)), symbols, values)
        if coefficients is None:
            raise ConfigError(
                f"{label}: d{name}/dt is not linear in the state, and NIR's neurons are linear "
                "between spikes"
            )
        matrix[row], offset[row] = coefficients
    v = states.index(membrane)
    lhs, operator, rhs = _comparison(model.threshold)
    distance = affine_row(to_sympy(lhs) - to_sympy(rhs), symbols, values)
    expected = np.eye(len(states))[v]
    if operator != ">" or distance is None or not np.array_equal(distance[0], expected):
        raise ConfigError(
            f"{label}: its threshold {model.threshold!r} is not '{membrane} > constant', and "
            f"NIR's threshold is a constant v_threshold that {membrane} must exceed (no "
            "adaptive threshold)"
        )
    threshold = -distance[1]
    leak = -matrix[v, v]
    if not leak > 0:
        raise ConfigError(f"{label}: d{membrane}/dt has no leak (-{membrane} / tau), NIR's LIF has")
    tau_mem = 1.0 / leak
    weight_unit = values.get("weight_unit", 1.0)
    targets = {model.input_target, model.recurrent_target}

    def node(kind: str, parameters: dict[str, float]) -> NeuronNode:
        # The reset is checked last: a model with adaptation fails on its states first.
        reset, v_reset = _reset_kind(model, membrane, threshold, values, label, ASSIGNMENT)
        common = {"v_leak": offset[v] * tau_mem, "v_threshold": threshold, "v_reset": v_reset}
        return NeuronNode(kind, {**parameters, **common}, reset, weight_unit)

    if len(states) == 1:
        if targets != {membrane}:
            raise ConfigError(f"{label}: its synapses target {sorted(targets)}, not {membrane}")
        # A Dirac spike of weight w moves v by r w / tau: r = tau gives w.
        return node("LIF", {"tau": tau_mem, "r": tau_mem})
    if len(states) == 2:
        current = states[1 - v]
        i = states.index(current)
        decay = -matrix[i, i]
        if (
            targets == {current}
            and matrix[i, v] == 0.0
            and offset[i] == 0.0
            and decay > 0
            and matrix[v, i] != 0.0
        ):
            tau_syn = 1.0 / decay
            # dI/dt = (-I + w_in S) / tau_syn: w_in = tau_syn makes a spike add w to I;
            # dv/dt = (v_leak - v + r I) / tau_mem: r = tau_mem * (coefficient of I).
            parameters = {
                "tau_syn": tau_syn,
                "tau_mem": tau_mem,
                "r": tau_mem * matrix[v, i],
                "w_in": tau_syn,
            }
            return node("CubaLIF", parameters)
    raise ConfigError(
        f"{label}: its state variables {tuple(states)} are neither a membrane alone (NIR's LIF) "
        "nor a membrane fed by a decaying synaptic current that the synapses drive (NIR's "
        "CubaLIF); NIR has no node for adaptation variables or other couplings"
    )


def _reset_kind(
    model: NeuronModel,
    membrane: str,
    threshold: float,
    values: dict[str, float],
    label: str,
    assignment: Any,
) -> tuple[str, float]:
    """``("subtract", 0)`` for ``v -= thr``, ``("value", c)`` for ``v = c``; else an error."""
    from mosaicnet.network.neuron_update import to_sympy, translate

    statements = [assignment.match(line).groups() for line in model.reset_statements()]
    if len(statements) == 1 and statements[0][0] == membrane:
        _, op, expression = statements[0]
        parsed = to_sympy(expression)
        if not parsed.free_symbols - {sympy.Symbol(k) for k in values}:
            amount = float(translate(parsed)(values))
            if op == "-=" and amount == threshold:
                return "subtract", 0.0
            if op == "=":
                return "value", amount
    raise ConfigError(
        f"{label}: its reset {model.reset!r} is neither '{membrane} -= threshold' nor "
        f"'{membrane} = constant'; NIR's neurons only set {membrane} to v_reset at a spike"
    )


def _per_step(node: NeuronNode, dt_s: float, time_step: float) -> dict[str, float]:
    """Parameters for a discrete-time framework stepping by ``time_step`` (module docstring)."""
    p = dict(node.parameters)

    def stretched(tau: float) -> float:
        # Forward Euler at time_step decays by 1 - time_step / tau': equal to exp(-dt / tau).
        return time_step / -math.expm1(-dt_s / tau)

    if node.kind == "LIF":
        tau = stretched(p["tau"])
        # A spike of value 1 for one step: v += r * time_step / tau * w = w.
        return {**p, "tau": tau, "r": tau / time_step}
    tau_mem, tau_syn = stretched(p["tau_mem"]), stretched(p["tau_syn"])
    a_mem, a_syn = math.exp(-dt_s / p["tau_mem"]), math.exp(-dt_s / p["tau_syn"])
    # The exact step moves v by `coupling * I` per step (Brian2's exact solution of the
    # two linear equations); the framework's Euler step moves it by I: the coupling
    # goes into the spike's current, w_in.
    rate_mem, rate_syn = 1.0 / p["tau_mem"], 1.0 / p["tau_syn"]
    coupling = p["r"] / p["tau_mem"] * (a_mem - a_syn) / (rate_syn - rate_mem)
    return {
        **p,
        "tau_mem": tau_mem,
        "tau_syn": tau_syn,
        "r": tau_mem / time_step,
        "w_in": coupling * tau_syn / time_step,
    }


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def read_time_seconds(value: Any) -> float:
    """A read time in seconds: a Brian2 time, Brian2 text (``30*day``) or ``30d``-style text."""
    from brian2 import Quantity, second

    from mosaicnet.meta.read_time import parse_read_time
    from mosaicnet.network.quantities import parse_quantity

    if isinstance(value, str) and any(c in value for c in "*/("):
        value = parse_quantity(value, name="read time")
    if isinstance(value, Quantity):
        if not value.has_same_dimensions(second):
            raise ConfigError(f"read time {value!r} is not a time; write e.g. 30*day or 30d")
        value = float(value / second)
    return parse_read_time(value)


def chip_weights(
    spec: NetworkSpec,
    read_time_s: float,
    *,
    seed: int = 0,
    noise: bool = True,
    drift_compensation: bool = False,
    readout_headroom: float = DEFAULT_READOUT_HEADROOM,
) -> dict[str, np.ndarray]:
    """The spec's weights as read from its chip at ``read_time_s`` (the evaluation's chip).

    :func:`~mosaicnet.meta.chip_evaluation.chip_as_evaluated`: the spec programmed
    into its device model at ``t = 0`` with this seed and noise (and global drift
    compensation when asked), read at ``read_time_s`` with drift and without read
    noise: a static graph holds one weight per synapse, and read noise is a new
    draw at every read.
    """
    from mosaicnet.meta.chip_evaluation import chip_as_evaluated
    from mosaicnet.meta.evaluation_options import EvaluationOptions

    options = EvaluationOptions(
        read_time_s=read_time_s, seed=seed, noise=noise, drift_compensation=drift_compensation,
        readout_headroom=readout_headroom,
    )  # fmt: skip
    chip = chip_as_evaluated(spec, options)
    weights = {
        name: array.read_weights(read_time_s, read_noise=False) for name, array in chip.items()
    }
    weights["w_rec"] = weights["w_rec"] * spec.rec_mask
    return weights


def to_nir(
    spec: NetworkSpec,
    read_time: Any = None,
    *,
    seed: int = 0,
    noise: bool = True,
    drift_compensation: bool = False,
    readout_headroom: float = DEFAULT_READOUT_HEADROOM,
    readout: bool = True,
    time_step: Any = None,
) -> Any:
    """The network as a ``nir.NIRGraph`` (see the module docstring).

    Parameters
    ----------
    spec
        The network.
    read_time
        ``None``: the spec's own (ideal) weights. A time since programming (a
        Brian2 time, ``"30*day"`` or ``"30d"``): the weights as read from the
        chip programmed by the evaluation's rule at that time (:func:`chip_weights`
        with ``seed``, ``noise``, ``drift_compensation`` and ``readout_headroom``,
        which should be the run's: :meth:`EvaluationOptions.for_run`).
    readout
        Include ``w_out`` and the LI readout; ``False`` ends the graph at the
        recurrent spikes (for importers without an LI node, such as snnTorch 1.0).
    time_step
        ``None``: continuous time, the spec's physical time constants. A
        Brian2 time (or seconds): the graph for a discrete-time framework with
        this fixed step (snnTorch's importer: ``0.1*ms``), module docstring.

    Raises
    ------
    ConfigError
        A neuron model NIR cannot express, or a missing ``nir`` package.
    """
    nir = _nir()
    from brian2 import second

    dt_s = float(spec.neuron.dt / second)
    node = neuron_node_parameters(spec.neuron.model, spec.neuron.dt)
    tau_out = float(spec.neuron.tau_out / second)
    step_s = None
    if time_step is not None:
        if hasattr(time_step, "dim") and not time_step.has_same_dimensions(second):
            raise ConfigError(f"time_step must be a time (e.g. 0.1*ms), got {time_step!r}")
        step_s = float(time_step / second) if hasattr(time_step, "dim") else float(time_step)
        if not step_s > 0:
            raise ConfigError(f"time_step must be a positive time, got {time_step!r}")
    metadata: dict[str, Any] = {
        "mosaicnet_format": NIR_METADATA_FORMAT,
        "mosaicnet_dt_s": dt_s,
        "mosaicnet_neuron_model": spec.neuron.model.name,
        "mosaicnet_neuron_model_json": json.dumps(spec.neuron.model.to_dict()),
        "mosaicnet_reset": (
            "subtract: at a spike the membrane loses v_threshold (v -= v_threshold); NIR's "
            "v_reset (0) is not used"
            if node.reset == "subtract"
            else "value: at a spike the membrane is set to v_reset (NIR's reset)"
        ),
        "mosaicnet_method": spec.neuron.model.method,
        "mosaicnet_spikes": (
            "unit-area Dirac pulses, continuous time in seconds"
            if step_s is None
            else f"value 1 for one step of {step_s!r} s; one step is one spec step of {dt_s!r} s"
        ),
        "mosaicnet_layout_json": json.dumps(spec.layout),
        "mosaicnet_rec_mask": spec.rec_mask.astype(np.uint8),
        **METADATA_NOTES,
    }
    if step_s is not None:
        metadata["mosaicnet_time_step_s"] = step_s
    if read_time is None:
        weights = {name: getattr(spec, name) for name in ("w_in", "w_rec", "w_out")}
        metadata["mosaicnet_weights"] = "ideal: the spec's weights"
    else:
        t_s = read_time_seconds(read_time)
        weights = chip_weights(
            spec, t_s, seed=seed, noise=noise, drift_compensation=drift_compensation,
            readout_headroom=readout_headroom,
        )  # fmt: skip
        metadata["mosaicnet_weights"] = (
            f"read from the chip ({spec.device_model} devices) at {t_s!r} s after programming: "
            f"seed {seed}, programming noise {'on' if noise else 'off'}, drift compensation "
            f"{'on' if drift_compensation else 'off'}, no read noise"
        )
        metadata["mosaicnet_read_time_s"] = t_s
    metadata["mosaicnet_device_model"] = spec.device_model
    parameters = node.parameters if step_s is None else _per_step(node, dt_s, step_s)
    n_rec, n_out = spec.n_rec, spec.n_out

    def full(value: float, n: int) -> np.ndarray:
        return np.full(n, float(value))

    arrays = {key: full(value, n_rec) for key, value in parameters.items()}
    recurrent = nir.LIF(**arrays) if node.kind == "LIF" else nir.CubaLIF(**arrays)
    unit = node.weight_unit
    nodes = {
        "input": nir.Input(input_type={"input": np.array([spec.n_in])}),
        "w_in": nir.Linear(weight=np.ascontiguousarray(weights["w_in"].T) * unit),
        "recurrent": recurrent,
        "w_rec": nir.Linear(weight=np.ascontiguousarray(weights["w_rec"].T) * unit),
    }
    edges = [
        ("input", "w_in"),
        ("w_in", "recurrent"),
        ("recurrent", "w_rec"),
        ("w_rec", "recurrent"),
    ]
    if readout:
        tau = tau_out if step_s is None else step_s / -math.expm1(-dt_s / tau_out)
        nodes["w_out"] = nir.Linear(weight=np.ascontiguousarray(weights["w_out"].T))
        nodes["readout"] = nir.LI(
            tau=full(tau, n_out),
            r=full(tau if step_s is None else tau / step_s, n_out),
            v_leak=full(0.0, n_out),
        )
        nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
        edges += [("recurrent", "w_out"), ("w_out", "readout"), ("readout", "output")]
    else:
        nodes["output"] = nir.Output(output_type={"output": np.array([n_rec])})
        edges.append(("recurrent", "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(graph: Any, path: Any, *, overwrite: bool = False) -> Any:
    """Write ``graph`` with ``nir.write``; an existing file is replaced only with ``overwrite``."""
    from pathlib import Path

    nir = _nir()
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(
            f"{path} exists; pass overwrite=True (--overwrite) or choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)
    return path


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


def _scalar(node: Any, name: str, label: str) -> float:
    values = np.unique(np.asarray(getattr(node, name), dtype=np.float64))
    if values.size != 1:
        raise ConfigError(
            f"{label}: {name} differs between neurons ({values.size} values); a mosaicnet "
            "population shares one value of every constant"
        )
    return float(values[0])


def _metadata(graph: Any, key: str) -> Any:
    value = (graph.metadata or {}).get(key)
    if isinstance(value, bytes):
        value = value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    return value


def _chain(graph: Any) -> dict[str, str]:
    """Node names of the supported shape (module docstring), or a :class:`DataFormatError`."""
    nir = _nir()
    nodes, edges = graph.nodes, [tuple(edge) for edge in graph.edges]
    shape = (
        "input -> Linear/Affine -> LIF/CubaLIF (with a Linear/Affine loop onto itself) -> "
        "Linear/Affine -> LI -> output"
    )

    def after(name: str) -> list[str]:
        return [b for a, b in edges if a == name]

    def before(name: str) -> list[str]:
        return [a for a, b in edges if b == name]

    dense = (nir.Linear, nir.Affine)
    try:
        (source,) = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
        (w_in,) = after(source)
        (recurrent,) = after(w_in)
        loops = [n for n in after(recurrent) if after(n) == [recurrent]]
        (w_rec,) = [n for n in loops if isinstance(nodes[n], dense)]
        (w_out,) = [n for n in after(recurrent) if n != w_rec]
        (readout,) = after(w_out)
        (sink,) = after(readout)
    except ValueError:
        raise DataFormatError(f"the NIR graph is not of the shape {shape}") from None
    names = {"w_in": w_in, "recurrent": recurrent, "w_rec": w_rec, "w_out": w_out}
    if (
        not all(isinstance(nodes[names[k]], dense) for k in ("w_in", "w_rec", "w_out"))
        or not isinstance(nodes[recurrent], nir.LIF | nir.CubaLIF)
        or not isinstance(nodes[readout], nir.LI)
        or not isinstance(nodes[sink], nir.Output)
        or sorted(before(recurrent)) != sorted([w_in, w_rec])
    ):
        raise DataFormatError(f"the NIR graph is not of the shape {shape}")
    return {**names, "readout": readout}


def _weights(node: Any, name: str) -> np.ndarray:
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise ConfigError(f"{name} has a non-zero bias; mosaicnet's synapses have none")
    return np.asarray(node.weight, dtype=np.float64).T


def from_nir(graph: Any, *, dt: Any = None) -> NetworkSpec:
    """A :class:`~mosaicnet.network.spec.NetworkSpec` from a NIR graph of the exported shape.

    Parameters
    ----------
    graph
        A ``nir.NIRGraph`` (``nir.read(path)``): input -> Linear/Affine (zero
        bias) -> LIF or CubaLIF with a Linear/Affine loop onto itself ->
        Linear/Affine -> LI -> output, every population with one value per
        constant.
    dt
        The time step (Brian2 time). NIR has none: default the one a mosaicnet
        export recorded (``mosaicnet_dt_s``); required for other graphs.

    Returns
    -------
    NetworkSpec
        Ideal devices (the graph's weights are effective weights), the
        exported layout and recurrent mask where the metadata holds them (else
        one fully connected tile and the non-zero recurrent weights). A graph
        written by :func:`to_nir` comes back with its neuron model as exported
        (reset included); other graphs get the LIF or CubaLIF with NIR's reset
        to ``v_reset``, or a subtractive reset where ``mosaicnet_reset`` says so.
    """
    from brian2 import second

    from mosaicnet.layout import Layout
    from mosaicnet.network.neuron_model import NeuronModel
    from mosaicnet.network.spec import NetworkSpec, NeuronParameters, _layout_neurons

    names = _chain(graph)
    nodes = graph.nodes
    cell, li = nodes[names["recurrent"]], nodes[names["readout"]]
    label = f"NIR node {names['recurrent']!r}"
    if dt is None:
        recorded = _metadata(graph, "mosaicnet_dt_s")
        if recorded is None:
            raise ConfigError(
                "NIR graphs have no time step and this one records none (mosaicnet_dt_s); "
                "pass dt= (e.g. 14*ms, one input bin)"
            )
        dt = float(recorded) * second
    dt_s = float(dt / second)
    step = _metadata(graph, "mosaicnet_time_step_s")
    reset_note = str(_metadata(graph, "mosaicnet_reset") or "")

    def tau_of(value: float) -> float:
        # Inverse of the per-step stretching of a time_step export.
        return value if step is None else -dt_s / math.log1p(-float(step) / value)

    def gain(r: float, tau: float) -> float:
        # What one input spike of weight 1 adds (Dirac: r / tau; one-step value 1: r step / tau).
        return r / tau if step is None else r * float(step) / tau

    p = {k: _scalar(cell, k, label) for k in ("r", "v_leak", "v_threshold", "v_reset")}
    constants: dict[str, Any] = {"thr": p["v_threshold"]}
    leak = "(v_leak - v)" if p["v_leak"] != 0 else "-v"
    if p["v_leak"] != 0:
        constants["v_leak"] = p["v_leak"]
    if reset_note.startswith("subtract"):
        reset = "v -= thr"
    else:
        reset, constants["v_reset"] = "v = v_reset", p["v_reset"]
    if isinstance(cell, _nir().LIF):
        tau = _scalar(cell, "tau", label)
        constants["tau_mem"] = tau_of(tau) * second
        equations = f"dv/dt = {leak} / tau_mem : 1"
        targets, scale = "v", gain(p["r"], tau)
    else:
        tau_mem, tau_syn = _scalar(cell, "tau_mem", label), _scalar(cell, "tau_syn", label)
        w_in = _scalar(cell, "w_in", label)
        constants["tau_mem"], constants["tau_syn"] = (
            tau_of(tau_mem) * second,
            tau_of(tau_syn) * second,
        )
        equations = f"dv/dt = {leak} / tau_mem + I / tau_syn : 1\ndI/dt = -I / tau_syn : 1"
        targets = "I"
        if step is None:
            # I_nir jumps by w_in w / tau_syn and drives v with r / tau_mem; this model's
            # current drives v with 1 / tau_syn: I = I_nir r tau_syn / tau_mem.
            scale = w_in * p["r"] / tau_mem
        else:
            # Per step: the current gains w_in step / tau_syn' w, v gains r step / tau_mem' I;
            # this model's exact step moves v by `coupling` per unit of current.
            ts, tm = float(constants["tau_syn"] / second), float(constants["tau_mem"] / second)
            coupling = (math.exp(-dt_s / tm) - math.exp(-dt_s / ts)) / ts / (1 / ts - 1 / tm)
            scale = gain(w_in, tau_syn) * gain(p["r"], tau_mem) / coupling
    model = NeuronModel(
        name=f"nir_{type(cell).__name__.lower()}",
        equations=equations,
        threshold="v > thr",
        reset=reset,
        constants=constants,
        input_target=targets,
        recurrent_target=targets,
        source="imported from a NIR graph",
    )
    exported = _metadata(graph, "mosaicnet_neuron_model_json")
    if exported is not None:
        # A mosaicnet export: its own model, where the graph still holds its parameters.
        original = NeuronModel.from_dict(json.loads(exported), origin="mosaicnet_neuron_model_json")
        ours = neuron_node_parameters(model, dt)
        theirs = neuron_node_parameters(original, dt)
        if ours.kind == theirs.kind and all(
            math.isclose(ours.parameters[k], theirs.parameters[k], rel_tol=1e-9, abs_tol=1e-12)
            for k in ours.parameters
        ):
            scale *= ours.weight_unit / theirs.weight_unit
            model = original
    tau_li = _scalar(li, "tau", "NIR node readout")
    if _scalar(li, "v_leak", "NIR node readout") != 0:
        raise ConfigError("the NIR readout LI has a v_leak; mosaicnet's readout leaks to 0")
    w_in = _weights(nodes[names["w_in"]], "w_in") * scale
    w_rec = _weights(nodes[names["w_rec"]], "w_rec") * scale
    w_out = _weights(nodes[names["w_out"]], "w_out") * gain(_scalar(li, "r", "readout"), tau_li)
    n_rec = w_rec.shape[0]
    layout = _metadata(graph, "mosaicnet_layout_json")
    layout = json.loads(layout) if layout is not None else None
    if layout is None or _layout_neurons(layout) != n_rec:
        layout = Layout.fully_connected(n_rec).to_dict()
    mask = _metadata(graph, "mosaicnet_rec_mask")
    mask = np.asarray(mask, dtype=bool) if mask is not None else np.zeros((n_rec, n_rec), bool)
    if mask.shape != (n_rec, n_rec):
        mask = np.zeros((n_rec, n_rec), bool)
    mask = mask | (w_rec != 0)
    return NetworkSpec(
        n_in=w_in.shape[0],
        layout=layout,
        n_out=w_out.shape[1],
        w_in=w_in,
        w_rec=w_rec,
        w_out=w_out,
        rec_mask=mask,
        neuron=NeuronParameters(model=model, tau_out=tau_of(tau_li) * second, dt=dt),
    )


def read_nir(path: Any, *, dt: Any = None) -> NetworkSpec:
    """:func:`from_nir` of the graph in a NIR file (``nir.read``)."""
    from pathlib import Path

    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"NIR file {path} does not exist")
    try:
        graph = nir.read(path)
    except (OSError, KeyError, ValueError) as error:
        raise DataFormatError(f"{path} is not a NIR file ({error})") from None
    return from_nir(graph, dt=dt)
