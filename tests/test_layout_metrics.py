"""Layout metrics on hand-built masks, checked against hand-computed numbers."""

import json

import numpy as np
import pytest
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.layout import Layout, layout_metrics, outgoing_hops, small_world_statistics
from mosaicnet.layout.metrics import mean_shortest_path_length

# 1 x 3 tiles x 2 neurons: neurons 0,1 in tile 0; 2,3 in tile 1; 4,5 in tile 2.
# Tile hops: 0-1 and 1-2 neighbours (1 hop), 0-2 same row d = 2 (2d + 1 = 5 hops).
LAYOUT = Layout(1, 3, 2)
EDGES = [(0, 1), (1, 0), (0, 2), (3, 4), (0, 5), (4, 4)]


def _mask() -> np.ndarray:
    mask = np.zeros((6, 6), dtype=bool)
    for i, j in EDGES:
        mask[i, j] = True
    return mask


def test_counts_hops_and_capacity_on_hand_built_mask():
    m = layout_metrics(LAYOUT, _mask(), small_world=False)
    assert (m.synapses, m.synapses_intra_tile, m.synapses_one_hop, m.synapses_multi_hop) == (
        6,
        3,
        2,
        1,
    )
    # Hops: 0->2 is 1, 3->4 is 1, 0->5 is 5; intra-tile synapses cost none.
    assert m.total_routing_hops == 7
    assert m.mean_hops_per_synapse == pytest.approx(7 / 6)
    assert m.capacity_used == pytest.approx(6 / 36)
    assert m.intra_tile_capacity_used == pytest.approx(3 / 12)
    assert m.spikes is None and m.hops_per_spike is None and m.small_world is None


def test_hops_per_spike_from_spike_counts():
    counts = np.array([2, 0, 0, 3, 0, 1])
    np.testing.assert_array_equal(outgoing_hops(LAYOUT, _mask()), [6, 0, 0, 1, 0, 0])
    m = layout_metrics(LAYOUT, _mask(), spike_counts=counts, small_world=False)
    # Neuron 0: 2 spikes x 6 hops; neuron 3: 3 x 1; neuron 4 only has a self-synapse.
    assert m.routing_hop_events == 15.0
    assert m.spikes == 6.0
    assert m.hops_per_spike == pytest.approx(2.5)
    silent = layout_metrics(LAYOUT, _mask(), spike_counts=np.zeros(6), small_world=False)
    assert silent.routing_hop_events == 0.0 and silent.hops_per_spike is None


def test_weights_threshold_and_torch_input_give_the_same_counts():
    weights = np.where(_mask(), 0.2, 0.0)
    weights[2, 3] = 1e-4  # below the pruning threshold: not a synapse
    from_numpy = layout_metrics(LAYOUT, weights, threshold=5e-4, small_world=False)
    from_torch = layout_metrics(
        LAYOUT, torch.tensor(weights, requires_grad=True), threshold=5e-4, small_world=False
    )
    assert from_numpy == from_torch
    assert from_numpy.synapses == 6
    assert layout_metrics(LAYOUT, weights, small_world=False).synapses == 7


def test_small_world_statistics_of_hand_built_graphs():
    # Undirected edges 0-1, 0-2, 0-5 (a star) and 3-4: no triangles; the star is the
    # largest component, path lengths 1, 1, 1, 2, 2, 2 -> 1.5.
    stats = layout_metrics(LAYOUT, _mask()).small_world
    assert (stats.n_nodes, stats.n_edges, stats.largest_component) == (6, 4, 4)
    assert stats.average_clustering == 0.0
    assert stats.path_length == pytest.approx(1.5)
    # Triangle 0-1-2 with a pendant 3 on node 2: clustering (1 + 1 + 1/3 + 0) / 4,
    # path lengths 1, 1, 2, 1, 2, 1 -> 4/3.
    tri = np.zeros((4, 4), dtype=bool)
    for i, j in [(0, 1), (1, 2), (2, 0), (2, 3)]:
        tri[i, j] = True
    stats = small_world_statistics(tri)
    assert stats.average_clustering == pytest.approx(7 / 12)
    assert stats.path_length == pytest.approx(4 / 3)
    assert stats.sigma is None and stats.omega is None


def test_sigma_omega_on_a_small_world_graph_and_refused_above_max_nodes():
    # A ring lattice of 24 nodes (each linked to 2 neighbours per side) with 2 shortcuts:
    # clustered like a lattice, short paths like a random graph -> sigma > 1.
    n = 24
    ring = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for k in (1, 2):
            ring[i, (i + k) % n] = True
    ring[0, 12] = ring[6, 18] = True
    stats = small_world_statistics(ring, sigma_omega=True, niter=2, nrand=2, seed=0)
    assert stats.sigma is not None and stats.sigma > 1.0
    assert stats.omega is not None and -1.0 <= stats.omega <= 1.0
    with pytest.raises(ConfigError, match="max_nodes"):
        small_world_statistics(ring, sigma_omega=True, max_nodes=10)


def test_metrics_serialise_to_json():
    m = layout_metrics(LAYOUT, _mask(), spike_counts=np.ones(6))
    data = json.loads(json.dumps(m.to_dict()))
    assert data["synapses_multi_hop"] == 1
    assert data["small_world"]["largest_component"] == 4


def test_size_mismatch_and_bad_spike_counts_raise_config_error():
    with pytest.raises(ConfigError, match=r"\(6, 6\)"):
        layout_metrics(LAYOUT, np.ones((5, 5)))
    with pytest.raises(ConfigError, match="spike_counts"):
        layout_metrics(LAYOUT, _mask(), spike_counts=np.ones(5))
    with pytest.raises(ConfigError, match="spike_counts"):
        layout_metrics(LAYOUT, _mask(), spike_counts=-np.ones(6))


@pytest.mark.parametrize("max_gather_bytes", [64 << 20, 1])
def test_vectorised_path_length_equals_networkx(max_gather_bytes):
    # max_gather_bytes=1 forces one 64-source block at a time (3 blocks for 150 nodes).
    import networkx as nx

    for seed in range(3):
        graph = nx.connected_watts_strogatz_graph(150, 4, 0.2, seed=seed)
        adjacency = nx.to_numpy_array(graph) > 0
        assert mean_shortest_path_length(adjacency, max_gather_bytes) == pytest.approx(
            nx.average_shortest_path_length(graph), rel=1e-12
        )
    two_pieces = np.zeros((4, 4), dtype=bool)
    two_pieces[0, 1] = two_pieces[1, 0] = two_pieces[2, 3] = two_pieces[3, 2] = True
    with pytest.raises(ConfigError, match="connected"):
        mean_shortest_path_length(two_pieces)
