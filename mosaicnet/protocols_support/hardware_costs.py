"""What a trained network costs on the Mosaic: memristors, routing, hops per spike.

Memristors: every non-zero weight of the three weight matrices is one
differential pair, i.e. two devices (docs/devices.md, 'Conductance pairs'; Dalgaty et al., Nature
Communications 15, 142, 2024, store each synapse in the crossbar of a neuron or
routing tile). Pruned weights (zero) need no device. Routing: the recurrent
synapses by hop class and the hops per spike of
:func:`mosaicnet.layout.layout_metrics` (each spike travels the hops of every
outgoing synapse of its neuron; the input and readout synapses sit in the
input/output crossbars and are not routed through the Mosaic).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Devices per signed weight (a differential pair G+ / G-).
DEVICES_PER_WEIGHT = 2


def hardware_costs(spec, spike_counts: np.ndarray | None = None) -> dict[str, Any]:
    """Memristor and routing figures of a network spec (see the module docstring).

    Parameters
    ----------
    spec
        :class:`~mosaicnet.network.spec.NetworkSpec` (trained, pruned weights).
    spike_counts
        Optional ``(n_rec,)`` recurrent spike counts (e.g. from a Brian2 recording)
        for the hops per spike.

    Returns
    -------
    dict
        ``neurons``, ``layout`` (description), ``weights_nonzero`` per matrix and in
        total, ``memristors`` (two per non-zero weight), ``recurrent_synapses``,
        ``synapses_intra_tile`` / ``_one_hop`` / ``_multi_hop``,
        ``mean_hops_per_synapse``, ``hops_per_spike`` (None without spike counts),
        ``spikes``, and ``clustering`` (average clustering of the recurrent graph).
    """
    from mosaicnet.layout import Layout, layout_metrics

    layout = Layout.from_dict(dict(spec.layout))
    names = ("w_in", "w_rec", "w_out")
    nonzero = {name: int(np.count_nonzero(getattr(spec, name))) for name in names}
    metrics = layout_metrics(layout, spec.w_rec, spike_counts=spike_counts, small_world=True)
    clustering = metrics.small_world.average_clustering if metrics.small_world else math.nan
    return {
        "neurons": layout.n_neurons,
        "layout": layout.describe(),
        "weights_nonzero": nonzero,
        "weights_total": sum(nonzero.values()),
        "memristors": DEVICES_PER_WEIGHT * sum(nonzero.values()),
        "recurrent_synapses": metrics.synapses,
        "synapses_intra_tile": metrics.synapses_intra_tile,
        "synapses_one_hop": metrics.synapses_one_hop,
        "synapses_multi_hop": metrics.synapses_multi_hop,
        "mean_hops_per_synapse": metrics.mean_hops_per_synapse,
        "hops_per_spike": metrics.hops_per_spike,
        "spikes": metrics.spikes,
        "clustering": clustering,
    }


def dense_on_mosaic_costs(
    spec, neurons_per_tile: int, beta: float, spike_counts: np.ndarray | None
) -> dict[str, Any] | None:
    """Routing figures of a dense ``spec``'s recurrent weights placed on Mosaic tiles.

    What a fully-connected network would cost if it were placed on a square
    Mosaic of tiles of ``neurons_per_tile`` instead of one big crossbar; ``None``
    when its neurons do not tile a square.
    """
    from mosaicnet.layout import Layout, layout_metrics

    tiles, rest = divmod(spec.n_rec, neurons_per_tile)
    side = math.isqrt(tiles)
    if rest or side * side != tiles:
        return None
    layout = Layout(side, side, neurons_per_tile, beta)
    metrics = layout_metrics(layout, spec.w_rec, spike_counts=spike_counts, small_world=False)
    return {
        "layout": layout.describe(),
        "synapses_intra_tile": metrics.synapses_intra_tile,
        "synapses_one_hop": metrics.synapses_one_hop,
        "synapses_multi_hop": metrics.synapses_multi_hop,
        "mean_hops_per_synapse": metrics.mean_hops_per_synapse,
        "hops_per_spike": metrics.hops_per_spike,
    }
