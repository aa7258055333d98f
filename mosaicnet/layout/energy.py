"""Energy and latency of one inference, from event counts and per-event figures.

What an inference costs on the hardware is counted per event kind, from the
spikes of a simulation (Brian2 or the torch clone) of test samples:

- *synaptic events*: every spike reaches each non-zero weight of its row
  (input spikes: ``w_in``; recurrent spikes: ``w_rec`` and ``w_out``); each event
  reads one differential pair, so *device reads* = ``DEVICES_PER_WEIGHT`` x
  synaptic events (docs/devices.md, 'Conductance pairs');
- *routing hops*: each recurrent spike travels the hops of every outgoing
  synapse (:func:`mosaicnet.layout.metrics.outgoing_hops`, unicast); zero on one
  crossbar, where every neuron's row reaches every column directly;
- *neuron updates*: every recurrent and readout neuron is updated once per time
  step (the networks are clock-driven at ``dt``).

The energy (J) of a term is its count times the per-event figure of
:class:`EventFigures`; the latency (s) of an inference is the input's duration
(``n_steps * dt``: the network runs in real time) plus the routing delay of the
longest route, when a per-hop latency is given.

Published figures. The per-event figures must come from the Mosaic paper
(Dalgaty et al., "Mosaic: in-memory computing and routing for small-world
spike-based neuromorphic systems", Nature Communications 15, 142, 2024,
doi:10.1038/s41467-023-44365-x) and its supplementary material. None of the
text of the paper available to this project (the article page's introduction
and abstract) states a per-event energy or latency: per device read, per
routing hop, or per neuron update. :data:`MOSAIC_PUBLISHED` therefore holds
``None`` for every figure, and every estimate names the terms it could not price
(``missing``) instead of inventing a number. Pass measured or published figures
as :class:`EventFigures` (or ``mosaicnet hardware-cost --figures FILE``) to get
joules; the counts are always given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError

#: Devices per signed weight (a differential pair G+ / G-).
DEVICES_PER_WEIGHT = 2

#: The terms of an energy estimate, in report order.
ENERGY_TERMS: tuple[str, ...] = ("device_reads", "routing_hops", "neuron_updates")

#: What is known of each figure's source (printed with every estimate).
GAP = (
    "not stated in the available text of Dalgaty et al., Nat. Commun. 15, 142 (2024): "
    "no per-event figure found; term left out"
)


@dataclass(frozen=True)
class EventFigures:
    """Per-event energies (J) and latencies (s); ``None`` where no figure is known.

    Attributes
    ----------
    energy_per_device_read_J
        One memristor read by a spike (one device of a differential pair).
    energy_per_routing_hop_J
        One spike crossing one routing tile.
    energy_per_neuron_update_J
        One neuron's update in one time step.
    latency_per_routing_hop_s
        Delay of one spike crossing one routing tile.
    sources
        Where each given figure is stated (name of the attribute -> citation).
    """

    energy_per_device_read_J: float | None = None
    energy_per_routing_hop_J: float | None = None
    energy_per_neuron_update_J: float | None = None
    latency_per_routing_hop_s: float | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in fields(self):
            if item.name == "sources":
                continue
            value = getattr(self, item.name)
            if value is not None and (not np.isfinite(value) or value < 0):
                raise ConfigError(f"{item.name} must be finite and >= 0, got {value}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EventFigures:
        """From a JSON object with the attribute names (unknown keys are an error)."""
        names = {item.name for item in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        values = {k: (None if v is None else float(v)) for k, v in d.items() if k != "sources"}
        return cls(**values, sources=dict(d.get("sources", {})))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    def source(self, name: str) -> str:
        """The citation of figure ``name``, or the gap when it is ``None``."""
        if getattr(self, name) is None:
            return GAP
        return self.sources.get(name, "given by the user")


#: The Mosaic's published per-event figures: none found (see the module docstring).
MOSAIC_PUBLISHED = EventFigures()


def per_inference_counts(spikes: Any) -> np.ndarray:
    """Mean spikes per neuron and inference of a ``(samples, steps, neurons)`` raster."""
    if hasattr(spikes, "detach"):
        spikes = spikes.detach().cpu().numpy()
    array = np.asarray(spikes, dtype=np.float64)
    if array.ndim != 3 or array.shape[0] == 0:
        raise ConfigError(f"spikes must be (samples >= 1, steps, neurons), got {array.shape}")
    return array.sum(axis=1).mean(axis=0)


def event_counts(
    spec,
    input_counts: Any,
    recurrent_counts: Any,
    n_steps: int,
    *,
    one_crossbar: bool = False,
) -> dict[str, float]:
    """Events of one inference of ``spec`` (see the module docstring).

    Parameters
    ----------
    spec
        :class:`~mosaicnet.network.spec.NetworkSpec`; zero weights are no synapse.
    input_counts, recurrent_counts
        ``(n_in,)`` and ``(n_rec,)`` spikes per neuron in one inference (means over
        samples work: see :func:`per_inference_counts`).
    n_steps
        Time steps of one inference.
    one_crossbar
        Count the network as placed on one crossbar (no routing) instead of its
        spec's layout.
    """
    from mosaicnet.layout import Layout
    from mosaicnet.layout.metrics import outgoing_hops

    x = _counts(input_counts, spec.n_in, "input_counts")
    z = _counts(recurrent_counts, spec.n_rec, "recurrent_counts")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ConfigError(f"n_steps must be an integer >= 1, got {n_steps}")
    fan_in = np.count_nonzero(spec.w_in, axis=1)
    fan_rec = np.count_nonzero(spec.w_rec, axis=1)
    fan_out = np.count_nonzero(spec.w_out, axis=1)
    synaptic = {
        "input": float(x @ fan_in),
        "recurrent": float(z @ fan_rec),
        "readout": float(z @ fan_out),
    }
    if one_crossbar:
        hops = 0.0
    else:
        hops = float(z @ outgoing_hops(Layout.from_dict(dict(spec.layout)), spec.w_rec))
    return {
        "input_spikes": float(x.sum()),
        "recurrent_spikes": float(z.sum()),
        "synaptic_events_input": synaptic["input"],
        "synaptic_events_recurrent": synaptic["recurrent"],
        "synaptic_events_readout": synaptic["readout"],
        "synaptic_events": sum(synaptic.values()),
        "device_reads": DEVICES_PER_WEIGHT * sum(synaptic.values()),
        "routing_hops": hops,
        "neuron_updates": float((spec.n_rec + spec.n_out) * int(n_steps)),
    }


def cost_per_inference(
    spec,
    input_counts: Any,
    recurrent_counts: Any,
    n_steps: int,
    *,
    figures: EventFigures = MOSAIC_PUBLISHED,
    one_crossbar: bool = False,
) -> dict[str, Any]:
    """Energy (J) and latency (s) of one inference, per term, from its event counts.

    Returns
    -------
    dict
        ``placement`` (``"layout"`` or ``"one crossbar"``), ``layout`` (description),
        ``counts`` (:func:`event_counts`), ``energy_J`` per term of
        :data:`ENERGY_TERMS` (``None`` where the figure is unknown), ``energy_total_J``
        (``None`` unless every term is priced), ``input_duration_s`` (``n_steps * dt``),
        ``routing_latency_s`` (longest route's hops x per-hop latency; 0 on one
        crossbar; ``None`` when unknown), ``latency_s`` (input duration + routing
        latency, or ``None``), ``missing`` (figures not known),
        and ``sources`` (figure -> citation or gap).
    """
    from brian2 import second

    from mosaicnet.layout import Layout

    counts = event_counts(spec, input_counts, recurrent_counts, n_steps, one_crossbar=one_crossbar)
    layout = Layout.from_dict(dict(spec.layout))
    per_event = {
        "device_reads": "energy_per_device_read_J",
        "routing_hops": "energy_per_routing_hop_J",
        "neuron_updates": "energy_per_neuron_update_J",
    }
    energy: dict[str, float | None] = {}
    missing: list[str] = []
    for term in ENERGY_TERMS:
        figure = getattr(figures, per_event[term])
        if counts[term] == 0:
            energy[term] = 0.0  # no event: nothing to price
        elif figure is None:
            energy[term] = None
            missing.append(per_event[term])
        else:
            energy[term] = counts[term] * figure
    total = None if any(v is None for v in energy.values()) else sum(energy.values())

    duration = float(int(n_steps) * spec.neuron.dt / second)
    longest = 0 if one_crossbar else _longest_route(layout, spec.w_rec)
    if longest == 0:
        routing_latency: float | None = 0.0
    elif figures.latency_per_routing_hop_s is None:
        routing_latency = None
        missing.append("latency_per_routing_hop_s")
    else:
        routing_latency = longest * figures.latency_per_routing_hop_s
    used = [*per_event.values(), "latency_per_routing_hop_s"]
    return {
        "placement": "one crossbar" if one_crossbar else "layout",
        "layout": (
            f"one crossbar of {spec.n_rec} x {spec.n_rec}" if one_crossbar else layout.describe()
        ),
        "counts": counts,
        "energy_J": energy,
        "energy_total_J": total,
        "input_duration_s": duration,
        "longest_route_hops": int(longest),
        "routing_latency_s": routing_latency,
        "latency_s": None if routing_latency is None else duration + routing_latency,
        "missing": missing,
        "sources": {name: figures.source(name) for name in used},
    }


def hardware_cost(
    spec,
    input_counts: Any,
    recurrent_counts: Any,
    n_steps: int,
    *,
    figures: EventFigures = MOSAIC_PUBLISHED,
) -> dict[str, Any]:
    """The spec on its own layout and the same network on one crossbar.

    ``{"layout": ..., "one_crossbar": ...}``, each a :func:`cost_per_inference`;
    for a fully connected spec both are the same placement.
    """
    return {
        "layout": cost_per_inference(
            spec, input_counts, recurrent_counts, n_steps, figures=figures
        ),
        "one_crossbar": cost_per_inference(
            spec, input_counts, recurrent_counts, n_steps, figures=figures, one_crossbar=True
        ),
    }


def _longest_route(layout, weights: Any) -> int:
    mask = np.asarray(weights) != 0
    return int(np.where(mask, layout.neuron_hops, 0).max(initial=0))


def _counts(values: Any, n: int, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    counts = np.asarray(values, dtype=np.float64)
    if counts.shape != (n,):
        raise ConfigError(f"{name} has shape {counts.shape}, expected ({n},)")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ConfigError(f"{name} must be finite and >= 0 (spikes per neuron)")
    return counts
