"""Hardware metrics of a recurrent network placed on a Mosaic.

What the Mosaic (Dalgaty et al., "Mosaic: in-memory computing and routing for
small-world spike-based neuromorphic systems", Nature Communications 15, 142,
2024) pays for a network: memristors in the neuron tiles' crossbars for
intra-tile synapses, routing for synapses between tiles (counted in hops, the
rule of EIS-Hub/meta-mosaic and EIS-Hub/Mosaic ``generate_mosaic_mask``), and
routing traffic when neurons spike. Small-world statistics (clustering, path
length, networkx sigma/omega) say how close the graph is to the small-world
topologies the Mosaic is built for.

Definitions (``mask[i, j]`` is a synapse from neuron i to neuron j, ``H`` the
neuron-level hops of :attr:`Layout.neuron_hops`, ``c_i`` the spike count of
neuron i):

- *synapses* (memristors used): number of non-zero entries of the weight matrix
  (or true entries of a mask), split by hop class: intra-tile (H = 0), one hop
  (H = 1), two or more hops (H >= 2).
- *total routing hops*: ``sum_ij mask_ij * H_ij``, the hops of all synapses.
- *routing hop events*: ``sum_i c_i * sum_j mask_ij * H_ij``; each spike of
  neuron i is delivered to each of its targets along that synapse's route
  (unicast: routes shared by several targets are counted once per target, an
  upper bound on the traffic of a multicast router).
- *hops per spike*: routing hop events divided by ``sum_i c_i``.
- *capacity used*: synapses divided by ``N^2`` (every ordered pair, self included);
  *intra-tile capacity used*: intra-tile synapses divided by
  ``n_tiles * neurons_per_tile^2`` (the size of the tiles' local crossbars).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.layout.connectivity import synapse_mask
from mosaicnet.layout.mosaic import Layout

#: Largest connected component (nodes) on which sigma/omega are computed. networkx
#: rewires the graph ``niter`` times per edge for each of ``nrand`` references;
#: measured on this project's 2-core machine with niter=2, nrand=2 on Watts-Strogatz
#: graphs of degree 6: 64 nodes ~2.5 s (sigma) + 5 s (omega), 128 nodes ~10 s + 29 s.
SIGMA_OMEGA_MAX_NODES: int = 128


@dataclass(frozen=True)
class SmallWorldStats:
    """Small-world statistics of the undirected graph of a connection mask.

    Attributes
    ----------
    n_nodes, n_edges
        Nodes (neurons) and undirected edges (``i-j`` connected in either direction,
        self-connections dropped).
    largest_component
        Nodes in the largest connected component.
    average_clustering
        networkx ``average_clustering`` over all nodes (isolated nodes count 0).
    path_length
        Characteristic (average shortest) path length on the largest connected
        component (0 for a single node).
    sigma, omega
        networkx small-world coefficients on the largest component, or None when
        not requested. sigma > 1 and omega near 0 indicate a small world.
    """

    n_nodes: int
    n_edges: int
    largest_component: int
    average_clustering: float
    path_length: float
    sigma: float | None = None
    omega: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class LayoutMetrics:
    """Memristor, routing and small-world metrics of a network on a layout.

    See the module docstring for the exact definitions. ``spikes``,
    ``routing_hop_events`` and ``hops_per_spike`` are None when no spike counts
    were given; ``hops_per_spike`` is also None when the counts sum to zero.
    """

    n_neurons: int
    n_tiles: int
    synapses: int
    synapses_intra_tile: int
    synapses_one_hop: int
    synapses_multi_hop: int
    total_routing_hops: int
    mean_hops_per_synapse: float
    capacity_used: float
    intra_tile_capacity_used: float
    spikes: float | None = None
    routing_hop_events: float | None = None
    hops_per_spike: float | None = None
    small_world: SmallWorldStats | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (small-world statistics nested, or None)."""
        return asdict(self)


def as_mask(layout: Layout, weights: Any, threshold: float = 0.0) -> np.ndarray:
    """Return the boolean synapse mask of a weight matrix or mask, checked against the layout.

    Accepts numpy arrays, nested lists and torch tensors (detached, moved to CPU).
    Entries with ``w == 0`` or ``|w| < threshold`` are no synapse.
    """
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu().numpy()
    array = np.asarray(weights)
    if array.ndim != 2:
        raise ConfigError(
            f"weights must be a 2-D (N, N) matrix, got shape {array.shape}; "
            f"this layout needs ({layout.n_neurons}, {layout.n_neurons})"
        )
    layout.check_weights(array)
    return np.asarray(synapse_mask(array.astype(np.float64), threshold), dtype=bool)


def outgoing_hops(layout: Layout, weights: Any, threshold: float = 0.0) -> np.ndarray:
    """Return ``sum_j mask_ij * H_ij`` for every neuron i: the hops one spike of i travels."""
    mask = as_mask(layout, weights, threshold)
    return np.where(mask, layout.neuron_hops, 0).sum(axis=1)


def layout_metrics(
    layout: Layout,
    weights: Any,
    *,
    spike_counts: Any = None,
    threshold: float = 0.0,
    small_world: bool = True,
    sigma_omega: bool = False,
    max_nodes: int = SIGMA_OMEGA_MAX_NODES,
    niter: int = 1,
    nrand: int = 2,
    seed: int = 0,
) -> LayoutMetrics:
    """Compute :class:`LayoutMetrics` of a weight matrix or mask on a layout.

    Parameters
    ----------
    layout
        The layout the network is placed on.
    weights
        ``(N, N)`` weights (non-zero entries are synapses) or boolean mask;
        ``[i, j]`` is from neuron i to neuron j.
    spike_counts
        Optional ``(N,)`` non-negative spike counts per neuron (over any recording;
        rates work too) for the routing traffic.
    threshold
        Treat ``|w| < threshold`` as no synapse (e.g. the pruning threshold 5e-4).
    small_world
        Compute clustering and path length (about a second at 2048 neurons; path
        length by :func:`mean_shortest_path_length`).
    sigma_omega
        Also compute networkx sigma and omega (slow; see :func:`small_world_statistics`).
    max_nodes, niter, nrand, seed
        Passed to :func:`small_world_statistics`.

    Raises
    ------
    ConfigError
        If the matrix or the spike counts do not match the layout's size, or the
        spike counts are negative.
    """
    mask = as_mask(layout, weights, threshold)
    hops = layout.neuron_hops
    classes = layout.hop_classes
    synapses = int(mask.sum())
    per_class = [int((mask & (classes == k)).sum()) for k in range(3)]
    fanout_hops = np.where(mask, hops, 0).sum(axis=1)
    total_hops = int(fanout_hops.sum())
    n = layout.neurons_per_tile

    spikes = events = per_spike = None
    if spike_counts is not None:
        counts = _spike_counts(layout, spike_counts)
        spikes = float(counts.sum())
        events = float(counts @ fanout_hops)
        per_spike = events / spikes if spikes > 0 else None

    stats = None
    if small_world:
        stats = small_world_statistics(
            mask, sigma_omega=sigma_omega, max_nodes=max_nodes, niter=niter, nrand=nrand, seed=seed
        )

    return LayoutMetrics(
        n_neurons=layout.n_neurons,
        n_tiles=layout.n_tiles,
        synapses=synapses,
        synapses_intra_tile=per_class[0],
        synapses_one_hop=per_class[1],
        synapses_multi_hop=per_class[2],
        total_routing_hops=total_hops,
        mean_hops_per_synapse=total_hops / synapses if synapses else 0.0,
        capacity_used=synapses / layout.n_neurons**2,
        intra_tile_capacity_used=per_class[0] / (layout.n_tiles * n * n),
        spikes=spikes,
        routing_hop_events=events,
        hops_per_spike=per_spike,
        small_world=stats,
    )


def small_world_statistics(
    mask: Any,
    *,
    sigma_omega: bool = False,
    max_nodes: int = SIGMA_OMEGA_MAX_NODES,
    niter: int = 1,
    nrand: int = 2,
    seed: int = 0,
) -> SmallWorldStats:
    """Clustering, path length and optionally sigma/omega of a connection mask.

    The mask is read as an undirected graph (``i-j`` connected if ``mask[i, j]``
    or ``mask[j, i]``; self-connections dropped). Path length, sigma and omega are
    computed on the largest connected component, because they are undefined on
    a disconnected graph.

    networkx ``sigma``/``omega`` rewire ``nrand`` random and lattice reference
    graphs ``niter`` swaps per edge each and are slow (tens of seconds at 128
    nodes, see :data:`SIGMA_OMEGA_MAX_NODES`); they are computed only when
    ``sigma_omega`` is True and the largest component has at most ``max_nodes``
    nodes, else a ConfigError says so. Their value is random: fix ``seed``.

    Raises
    ------
    ConfigError
        If the mask is not square, or sigma/omega are asked on a component larger
        than ``max_nodes`` or smaller than 4 nodes (networkx needs 4 to rewire).
    """
    import networkx as nx

    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    adjacency = np.asarray(mask) != 0
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ConfigError(f"a connection mask must be square (N, N), got shape {adjacency.shape}")
    adjacency = adjacency | adjacency.T
    np.fill_diagonal(adjacency, False)
    graph = nx.from_numpy_array(adjacency.astype(np.int8))

    nodes = sorted(max(nx.connected_components(graph), key=len))
    component = graph.subgraph(nodes).copy()
    path_length = mean_shortest_path_length(adjacency[np.ix_(nodes, nodes)])
    sigma = omega = None
    if sigma_omega:
        size = component.number_of_nodes()
        if size > max_nodes:
            raise ConfigError(
                f"sigma/omega asked on a {size}-node component, above max_nodes={max_nodes}: "
                "networkx needs minutes there; raise max_nodes knowingly, or use "
                "clustering and path length only (sigma_omega=False)"
            )
        if size < 4 or component.number_of_edges() < 2:
            raise ConfigError(
                f"sigma/omega need a connected component of at least 4 nodes and 2 edges, "
                f"got {size} nodes and {component.number_of_edges()} edges"
            )
        sigma = float(nx.sigma(component, niter=niter, nrand=nrand, seed=seed))
        omega = float(nx.omega(component, niter=niter, nrand=nrand, seed=seed))
    return SmallWorldStats(
        n_nodes=graph.number_of_nodes(),
        n_edges=graph.number_of_edges(),
        largest_component=component.number_of_nodes(),
        average_clustering=float(nx.average_clustering(graph)),
        path_length=float(path_length),
        sigma=sigma,
        omega=omega,
    )


# Number of set bits of every byte value (numpy < 2.0 has no np.bitwise_count).
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.int64)


def _count_bits(words: np.ndarray) -> int:
    return int(_POPCOUNT[words.view(np.uint8)].sum())


def mean_shortest_path_length(adjacency: np.ndarray, max_gather_bytes: int = 64 << 20) -> float:
    """Average shortest-path length (hops in the graph) of a connected undirected graph.

    Equal to networkx ``average_shortest_path_length`` on a connected graph, but a
    breadth-first search from many sources at once: the reached sets are bit
    arrays (one bit per source, packed in 64-bit words) and each BFS level is one
    gather + OR-reduce over the edge list, so 2048 neurons with ~23 000 edges take
    about half a second instead of ~40 s in networkx. Sources are processed in
    blocks of 64-source words that keep the gathered array under ``max_gather_bytes``
    (at least one word per block).

    Parameters
    ----------
    adjacency
        ``(N, N)`` symmetric boolean adjacency of a connected graph, no self-loops.
    max_gather_bytes
        Memory bound of the per-level gathered array (edges x words x 8 bytes).

    Returns
    -------
    float
        Mean over ordered pairs ``i != j`` of the shortest distance; 0 for ``N <= 1``.

    Raises
    ------
    ConfigError
        If the graph is not connected.
    """
    adjacency = np.asarray(adjacency, dtype=bool)
    n = adjacency.shape[0]
    if n <= 1:
        return 0.0
    # Edge list grouped by target v: reached-next[v] = OR over edges (u, v) of frontier[u].
    dst, src = np.nonzero(adjacency.T)
    if np.unique(dst).size != n:
        raise ConfigError("mean_shortest_path_length needs a connected graph (an isolated node)")
    starts = np.searchsorted(dst, np.arange(n))
    # Sources per block: a multiple of 64 (whole words), gathered array bounded.
    words = max(1, min(-(-n // 64), max_gather_bytes // (8 * max(src.size, 1))))
    block = 64 * words
    total = 0
    for first in range(0, n, block):
        sources = np.arange(first, min(first + block, n))
        seeds = np.zeros((n, block), dtype=bool)  # padding columns stay empty
        seeds[sources, np.arange(sources.size)] = True
        reached = np.packbits(seeds, axis=1).view(np.uint64)  # (nodes, words)
        frontier = reached.copy()
        distance = 0
        while True:
            distance += 1
            new = np.bitwise_or.reduceat(frontier[src], starts, axis=0) & ~reached
            count = _count_bits(new)
            if count == 0:
                break
            total += distance * count
            reached |= new
            frontier = new
        if _count_bits(reached) != n * sources.size:
            raise ConfigError("mean_shortest_path_length needs a connected graph")
    return total / (n * (n - 1))


def _spike_counts(layout: Layout, spike_counts: Any) -> np.ndarray:
    if hasattr(spike_counts, "detach"):
        spike_counts = spike_counts.detach().cpu().numpy()
    counts = np.asarray(spike_counts, dtype=np.float64)
    if counts.shape != (layout.n_neurons,):
        raise ConfigError(
            f"spike_counts has shape {counts.shape} but this layout ({layout.describe()}) "
            f"needs one count per neuron, shape ({layout.n_neurons},)"
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ConfigError("spike_counts must be finite and >= 0 (spikes per neuron)")
    return counts
