"""Characteristic path length: mosaicnet's bit-parallel BFS vs networkx.

Builds a small-world Mosaic mask (seeded), computes the mean shortest path length
of its largest connected component with
:func:`mosaicnet.layout.metrics.mean_shortest_path_length` and with
``networkx.average_shortest_path_length`` in the same process, checks that the
two agree, and prints both times and their ratio.

Run: ``python benchmarks/bench_layout_paths.py [--rows 8 --cols 8 --neurons-per-tile 32]``
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np

from mosaicnet.layout import Layout, SmallWorldPrior, sample_small_world_mask
from mosaicnet.layout.metrics import mean_shortest_path_length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--neurons-per-tile", type=int, default=16)
    args = parser.parse_args()

    layout = Layout(args.rows, args.cols, args.neurons_per_tile)
    mask = sample_small_world_mask(layout, SmallWorldPrior(), rng=0)
    undirected = (mask | mask.T) & ~np.eye(layout.n_neurons, dtype=bool)
    graph = nx.from_numpy_array(undirected.astype(np.uint8))
    component = max(nx.connected_components(graph), key=len)
    nodes = np.array(sorted(component))
    sub = undirected[np.ix_(nodes, nodes)]

    start = time.perf_counter()
    ours = mean_shortest_path_length(sub)
    t_ours = time.perf_counter() - start

    start = time.perf_counter()
    reference = nx.average_shortest_path_length(graph.subgraph(component))
    t_nx = time.perf_counter() - start

    print(f"graph: {len(nodes)} nodes, {int(sub.sum()) // 2} undirected edges")
    print(f"mosaicnet   {t_ours:8.3f} s   L = {ours:.6f}")
    print(f"networkx    {t_nx:8.3f} s   L = {reference:.6f}")
    print(f"speed-up    {t_nx / t_ours:8.1f} x  (agree: {np.isclose(ours, reference)})")


if __name__ == "__main__":
    main()
