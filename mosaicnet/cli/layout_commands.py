"""``mosaicnet layout``: describe a Mosaic layout (hops, cost) and draw it.

The rule and defaults are those of :mod:`mosaicnet.layout` (Dalgaty et al.,
Nature Communications 15, 142, 2024; EIS-Hub/meta-mosaic ``generate_mosaic_mask``).
"""

from __future__ import annotations

import argparse
import json
import math

HELP_ORDER = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``layout`` command."""
    parser = subparsers.add_parser(
        "layout",
        help="describe a Mosaic layout: tiles, routing hops, layout cost; optionally draw it",
        description=(
            "Describe an R x C Mosaic of neuron tiles with N neurons each: routing hops "
            "between tiles (published rule of EIS-Hub/meta-mosaic), the layout cost "
            "S = clip(exp(beta * hops) - 1, 0, e^15), and how neuron pairs split into "
            "intra-tile, 1-hop and >= 2-hop classes."
        ),
    )
    parser.add_argument("--rows", type=int, default=8, help="tile rows (default 8)")
    parser.add_argument("--cols", type=int, default=8, help="tile columns (default 8)")
    parser.add_argument(
        "--neurons-per-tile", type=int, default=4, help="neurons in each tile (default 4)"
    )
    parser.add_argument(
        "--beta", type=float, default=8.0, help="layout cost steepness beta (default 8)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--figure",
        metavar="PATH",
        help="write a picture of the grid with a sample small-world mask (e.g. grid.png)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the sample mask drawn by --figure (default 0)"
    )
    parser.set_defaults(func=run_layout)


def layout_summary(layout) -> dict:
    """Return the JSON-able description printed by ``mosaicnet layout --json``.

    Everything is computed at tile level (each tile pair stands for
    ``neurons_per_tile**2`` neuron pairs of equal hops), so large layouts are cheap.
    """
    import numpy as np

    from mosaicnet.layout import layout_cost

    block = layout.neurons_per_tile**2
    hops, counts = np.unique(layout.hop_matrix, return_counts=True)
    by_class = [int(counts[np.minimum(hops, 2) == k].sum()) * block for k in range(3)]
    return {
        "layout": layout.to_dict(),
        "tiles": layout.n_tiles,
        "neurons": layout.n_neurons,
        "rows": layout.rows,
        "cols": layout.cols,
        "neurons_per_tile": layout.neurons_per_tile,
        "beta": layout.beta,
        "max_hops": layout.max_hops,
        "hop_matrix": layout.hop_matrix.tolist(),
        "tile_pairs_by_hops": {int(h): int(c) for h, c in zip(hops, counts, strict=True)},
        "neuron_pairs_by_class": {
            "intra_tile": by_class[0],
            "one_hop": by_class[1],
            "multi_hop": by_class[2],
        },
        "cost_by_hops": {int(h): float(layout_cost(h, layout.beta)) for h in hops},
        "cost_saturation": math.exp(15.0),
        "saturation_hops": layout.saturation_hops(),
        "mean_cost": layout.mean_cost(),
    }


def run_layout(args: argparse.Namespace) -> int:
    """Print the layout description (plain or JSON) and optionally write the grid figure."""
    from mosaicnet.layout import Layout, sample_small_world_mask
    from mosaicnet.network.figures import check_figure_path

    if args.figure:
        check_figure_path(args.figure)  # before any work
    layout = Layout(args.rows, args.cols, args.neurons_per_tile, args.beta)
    summary = layout_summary(layout)
    figure = None
    if args.figure:
        from mosaicnet.layout.figures import plot_tile_grid

        mask = sample_small_world_mask(layout, rng=args.seed)
        figure = plot_tile_grid(
            layout,
            mask,
            args.figure,
            title=f"Mosaic {layout.describe()}: sample small-world mask (seed {args.seed})",
        )
        summary["figure"] = str(figure)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(_readable(summary))
    return 0


def _readable(summary: dict) -> str:
    pairs = summary["neuron_pairs_by_class"]
    total = sum(pairs.values())
    saturation = summary["saturation_hops"]
    one_hop_cost = summary["cost_by_hops"].get(1)
    lines = [
        f"Mosaic layout: {summary['rows']} x {summary['cols']} tiles x "
        f"{summary['neurons_per_tile']} neurons = {summary['neurons']} neurons",
        f"Routing hops between tiles: 0 (same tile) to {summary['max_hops']} (farthest pair)",
        "Hops from tile 0, by grid row:",
    ]
    cols = summary["cols"]
    row0 = summary["hop_matrix"][0]
    for r in range(summary["rows"]):
        lines.append("  " + " ".join(f"{h:3d}" for h in row0[r * cols : (r + 1) * cols]))
    lines.append(
        "Neuron pairs: "
        + ", ".join(
            f"{label} {pairs[key]} ({100 * pairs[key] / total:.1f}%)"
            for key, label in (
                ("intra_tile", "intra-tile"),
                ("one_hop", "1 hop"),
                ("multi_hop", ">= 2 hops"),
            )
        )
    )
    cost_text = f"Layout cost S (beta = {summary['beta']:g}): 0 inside a tile"
    if one_hop_cost is not None:
        cost_text += f", {one_hop_cost:.6g} at 1 hop"
    if saturation is not None:
        cost_text += (
            f", saturated at e^15 = {summary['cost_saturation']:.6g} for pairs "
            f">= {saturation} hops apart"
        )
    lines.append(cost_text)
    lines.append(f"Mean S over all neuron pairs: {summary['mean_cost']:.6g}")
    if "figure" in summary:
        lines.append(f"Figure written: {summary['figure']}")
    return "\n".join(lines)
