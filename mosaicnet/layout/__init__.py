"""The Mosaic layout: tiles, routing hops, layout cost and loss, connectivity and metrics.

Implements the layout side of Dalgaty et al., "Mosaic: in-memory computing and
routing for small-world spike-based neuromorphic systems", Nature
Communications 15, 142 (2024), following the rules of the public code
EIS-Hub/meta-mosaic and EIS-Hub/Mosaic (``generate_mosaic_mask``) and
EIS-Hub/routing-aware_training (``distance_mosaic_NT_NT``), re-implemented here.

Modules
-------
``mosaic``
    :class:`Layout` (grid, placement, hop matrix H, cost S, serialisation).
``loss``
    :func:`layout_loss` (``lambda * mean(S * W^2)``, torch, vmap/grad-safe).
``connectivity``
    Small-world prior masks and pruning of trained weights.
``metrics``
    Memristors used, routing hops, hops per spike, small-world statistics.
``figures``
    Grid, S and weight-matrix pictures (imported on demand: matplotlib).
"""

from mosaicnet.layout.connectivity import (
    PRUNE_THRESHOLD,
    SmallWorldPrior,
    connection_probabilities,
    prune_weights,
    sample_small_world_mask,
    synapse_mask,
)
from mosaicnet.layout.loss import layout_loss, make_layout_loss
from mosaicnet.layout.metrics import (
    SIGMA_OMEGA_MAX_NODES,
    LayoutMetrics,
    SmallWorldStats,
    layout_metrics,
    outgoing_hops,
    small_world_statistics,
)
from mosaicnet.layout.mosaic import (
    COST_SATURATION,
    DEFAULT_BETA,
    HOP_CLASS_NAMES,
    Layout,
    layout_cost,
    tile_hop_matrix,
)

__all__ = [
    "COST_SATURATION",
    "DEFAULT_BETA",
    "HOP_CLASS_NAMES",
    "PRUNE_THRESHOLD",
    "SIGMA_OMEGA_MAX_NODES",
    "Layout",
    "LayoutMetrics",
    "SmallWorldPrior",
    "SmallWorldStats",
    "connection_probabilities",
    "layout_cost",
    "layout_loss",
    "layout_metrics",
    "make_layout_loss",
    "outgoing_hops",
    "prune_weights",
    "sample_small_world_mask",
    "small_world_statistics",
    "synapse_mask",
    "tile_hop_matrix",
]
