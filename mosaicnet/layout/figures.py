"""Pictures of a Mosaic layout: the tile grid with its connections, S, and weights by tile.

The grid picture follows the Mosaic of Dalgaty et al. ("Mosaic: in-memory
computing and routing for small-world spike-based neuromorphic systems",
Nature Communications 15, 142, 2024): neuron tiles on a grid, each holding its
neurons, with synapses coloured by routing class (inside a tile, one hop, two
or more hops, the hop rule of EIS-Hub/meta-mosaic ``generate_mosaic_mask``).
Every function writes a file (matplotlib, Agg backend) and returns its path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mosaicnet.layout.metrics import as_mask
from mosaicnet.layout.mosaic import Layout

#: Colour and legend label per hop class (0 intra-tile, 1 one hop, 2 two or more hops).
HOP_CLASS_STYLE: tuple[tuple[str, str], ...] = (
    ("tab:green", "inside a tile"),
    ("tab:blue", "1 hop"),
    ("tab:red", ">= 2 hops"),
)

# Fraction of a grid cell taken by a neuron tile; the rest is the routing gap.
_TILE_SIZE = 0.7


def neuron_positions(layout: Layout) -> np.ndarray:
    """Return ``(N, 2)`` drawing coordinates (x, y) of the neurons, tile by tile.

    Tile ``(row, col)`` is a square of side 0.7 at ``(col, row)``; its neurons sit on
    a ``ceil(sqrt(n)) x ceil(sqrt(n))`` sub-grid inside it, in placement order.
    """
    n = layout.neurons_per_tile
    side = math.ceil(math.sqrt(n))
    local = np.arange(n)
    step = _TILE_SIZE / side
    offset = np.stack([(local % side + 0.5) * step, (local // side + 0.5) * step], axis=1)
    tiles = layout.tile_of_neuron
    corner = np.stack([tiles % layout.cols, tiles // layout.cols], axis=1).astype(float)
    return corner + np.tile(offset, (layout.n_tiles, 1))


def plot_tile_grid(
    layout: Layout,
    weights: Any,
    path: str | Path,
    *,
    threshold: float = 0.0,
    title: str | None = None,
) -> Path:
    """Draw the tile grid, its neurons and the synapses of ``weights`` coloured by hop class.

    Parameters
    ----------
    layout
        The Mosaic.
    weights
        ``(N, N)`` weights or boolean mask (``[i, j]``: synapse from i to j).
    path
        Output file (format from the suffix, e.g. ``.png``, ``.pdf``); parent
        folders are created.
    threshold
        Entries with ``|w| < threshold`` are not drawn.
    title
        Figure title (default: the layout description and synapse counts).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    mask = as_mask(layout, weights, threshold)
    np.fill_diagonal(mask, False)  # a self-synapse has no route to draw
    pos = neuron_positions(layout)
    size = max(4.0, min(12.0, 0.9 * max(layout.rows, layout.cols) + 2.0))
    fig, ax = _figure((size * layout.cols / max(layout.rows, layout.cols) + 1.5, size))
    for tile in range(layout.n_tiles):
        row, col = layout.tile_position(tile)
        ax.add_patch(
            Rectangle((col, row), _TILE_SIZE, _TILE_SIZE, facecolor="0.93", edgecolor="0.5", lw=0.8)
        )
    pre, post = np.nonzero(mask)
    classes = layout.hop_classes[pre, post]
    # Draw far connections first so the dense local ones stay visible on top.
    for cls in (2, 1, 0):
        chosen = classes == cls
        colour, label = HOP_CLASS_STYLE[cls]
        segments = np.stack([pos[pre[chosen]], pos[post[chosen]]], axis=1)
        alpha = 0.35 if cls == 2 else 0.6
        ax.add_collection(
            LineCollection(
                segments,
                colors=colour,
                linewidths=0.6,
                alpha=alpha,
                label=f"{label} ({int(chosen.sum())})",
            )
        )
    ax.scatter(
        pos[:, 0], pos[:, 1], s=max(2.0, 60.0 / layout.neurons_per_tile), c="black", zorder=3
    )
    ax.set_xlim(-0.2, layout.cols - 0.1)
    ax.set_ylim(layout.rows - 0.1, -0.2)  # row 0 at the top, as in a matrix
    ax.set_aspect("equal")
    ax.set_xlabel("tile column")
    ax.set_ylabel("tile row")
    ax.set_xticks(np.arange(layout.cols) + _TILE_SIZE / 2, labels=range(layout.cols))
    ax.set_yticks(np.arange(layout.rows) + _TILE_SIZE / 2, labels=range(layout.rows))
    handles, labels = ax.get_legend_handles_labels()
    # Collections were added far-first; list the legend near-first.
    ax.legend(
        handles[::-1],
        labels[::-1],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="synapses",
        fontsize=8,
    )
    ax.set_title(title or f"Mosaic {layout.describe()}, {int(mask.sum())} synapses")
    return _save(fig, path)


def plot_cost_matrix(layout: Layout, path: str | Path, *, title: str | None = None) -> Path:
    """Draw the neuron-level layout cost S on a log colour scale (zeros shown white)."""
    import matplotlib
    from matplotlib.colors import LogNorm

    cost = layout.cost_matrix()
    positive = cost[cost > 0]
    fig, ax = _figure((6.5, 5.5))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    # S = 0 (same tile) has no logarithm: mask it and show it as white.
    shown = np.ma.masked_equal(cost, 0.0)
    if positive.size:
        low, high = float(positive.min()), float(positive.max())
        norm = LogNorm(vmin=low, vmax=high if high > low else low * 10)
        image = ax.imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
        fig.colorbar(image, ax=ax, label="layout cost S (log scale; white: 0, same tile)")
    else:
        ax.imshow(np.zeros_like(cost), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.text(0.5, 0.5, "S = 0 everywhere", transform=ax.transAxes, ha="center")
    ax.set_xlabel("postsynaptic neuron")
    ax.set_ylabel("presynaptic neuron")
    ax.set_title(title or f"Layout cost S, beta = {layout.beta:g}\n{layout.describe()}")
    return _save(fig, path)


def plot_weight_matrix(
    layout: Layout, weights: Any, path: str | Path, *, title: str | None = None
) -> Path:
    """Draw a recurrent weight matrix (diverging colours) with tile boundaries."""
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu().numpy()
    matrix = np.asarray(weights, dtype=np.float64)
    as_mask(layout, matrix)  # shape check with a clear message
    limit = float(np.nanmax(np.abs(matrix))) if matrix.size else 1.0
    limit = limit if limit > 0 else 1.0
    fig, ax = _figure((6.5, 5.5))
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="weight")
    edges = np.arange(1, layout.n_tiles) * layout.neurons_per_tile - 0.5
    if edges.size:
        span = (-0.5, layout.n_neurons - 0.5)
        ax.hlines(edges, *span, colors="0.45", linewidths=0.4)
        ax.vlines(edges, *span, colors="0.45", linewidths=0.4)
    ax.set_xlabel("postsynaptic neuron")
    ax.set_ylabel("presynaptic neuron")
    ax.set_title(title or f"Recurrent weights by tile\n{layout.describe()}")
    return _save(fig, path)


def _figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure and its axes on an Agg canvas: files only, whatever backend the user
    (a notebook, say) has chosen for pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Any, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=150, bbox_inches="tight")
    return target
