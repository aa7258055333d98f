"""The Mosaic layout: a grid of neuron tiles, routing hops between them and the layout cost.

The Mosaic (Dalgaty et al., "Mosaic: in-memory computing and routing for
small-world spike-based neuromorphic systems", Nature Communications 15, 142,
2024) is an R x C grid of *neuron tiles*, each holding ``n`` neurons and a
memristor crossbar for their local (intra-tile) synapses, joined by *routing
tiles* whose memristors forward spikes between neighbouring neuron tiles. A
synapse between two tiles therefore costs routing hops, and the cost grows
with their distance on the grid.

Hop rule
--------
For tiles ``i`` and ``j`` at grid positions ``(i // C, i % C)`` and
``(j // C, j % C)`` with Manhattan distance ``d = |drow| + |dcol|``::

    H = 0          same tile
    H = 1          d == 1 (direct neighbours)
    H = 2d + 1     same row or same column, d >= 2
    H = 2d - 1     otherwise

This is the rule of ``generate_mosaic_mask`` in the public code of
EIS-Hub/meta-mosaic and EIS-Hub/Mosaic, restated as ``distance_mosaic_NT_NT``
in EIS-Hub/routing-aware_training; it is re-implemented here (vectorised) from
that statement, not copied. On a 4 x 4 grid the hops from tile 0 are
``0 1 5 7 | 1 3 5 7 | 5 5 7 9 | 7 7 9 11``; on the default 8 x 8 grid the
farthest pair of tiles is 27 hops apart.

Layout cost
-----------
Neuron ``i`` sits in tile ``i // n``. The neuron-level cost of a synapse is::

    S = clip(exp(beta * kron(H, ones(n, n))) - 1, 0, e^15)

with ``beta = 8`` by default (EIS-Hub/meta-mosaic). S is 0 inside a tile,
``e^beta - 1`` at one hop, and saturates at ``e^15`` (about 3.27e6); with the
default beta every pair two or more hops apart is already saturated.

See :mod:`mosaicnet.layout.loss` for the layout loss built on S and its scale.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mosaicnet.errors import ConfigError

if TYPE_CHECKING:  # torch is imported lazily so that importing the layout stays fast
    import torch

#: Saturation of the layout cost S: ``e^15`` (EIS-Hub/meta-mosaic ``generate_mosaic_mask``).
COST_SATURATION: float = math.exp(15.0)

#: Default cost steepness beta (EIS-Hub/meta-mosaic, the published configuration).
DEFAULT_BETA: float = 8.0

#: Default grid: 8 x 8 tiles of 4 neurons = 256 recurrent neurons (EIS-Hub/meta-mosaic).
#: The Mosaic paper (Dalgaty et al. 2024) used 8 x 8 tiles of 32 neurons = 2048.
DEFAULT_ROWS: int = 8
DEFAULT_COLS: int = 8
DEFAULT_NEURONS_PER_TILE: int = 4

#: Hop classes used for counting and colouring synapses.
HOP_CLASS_NAMES: tuple[str, str, str] = ("intra_tile", "one_hop", "multi_hop")

LayoutKind = Literal["mosaic", "fully_connected"]
_KINDS: tuple[str, ...] = ("mosaic", "fully_connected")

# Any exponent above ln(e^15 + 1) already saturates S; capping the exponent here
# avoids float overflow for large beta * H without changing any value.
_EXPONENT_CAP = 16.0


def tile_hop_matrix(rows: int, cols: int) -> np.ndarray:
    """Return the routing hops between every pair of tiles of a ``rows x cols`` Mosaic.

    Parameters
    ----------
    rows, cols
        Grid size in tiles (positive integers). Tile ``t`` sits at row ``t // cols``,
        column ``t % cols``.

    Returns
    -------
    numpy.ndarray
        ``(rows * cols, rows * cols)`` int64 matrix H, symmetric with a zero diagonal,
        following the published rule in the module docstring.
    """
    rows = _positive_int(rows, "rows")
    cols = _positive_int(cols, "cols")
    tiles = np.arange(rows * cols)
    row, col = tiles // cols, tiles % cols
    drow = np.abs(row[:, None] - row[None, :])
    dcol = np.abs(col[:, None] - col[None, :])
    d = drow + dcol
    straight = (drow == 0) | (dcol == 0)
    # A straight route of length >= 2 pays two extra hops over a bent one in the
    # published rule (2d + 1 vs 2d - 1): kept as published, not "fixed".
    hops = np.where(straight, 2 * d + 1, 2 * d - 1)
    hops = np.where(d == 1, 1, hops)
    hops = np.where(d == 0, 0, hops)
    return hops.astype(np.int64)


def layout_cost(hops: np.ndarray, beta: float, dtype: Any = np.float64) -> np.ndarray:
    """Return ``clip(exp(beta * hops) - 1, 0, e^15)`` elementwise.

    Parameters
    ----------
    hops
        Hop counts (any shape, non-negative).
    beta
        Cost steepness (>= 0).
    dtype
        Floating dtype of the result. The cost is computed in float64 and cast,
        so float32 results hold the same saturated values without overflow.
    """
    beta = _non_negative_float(beta, "beta")
    exponent = np.minimum(beta * np.asarray(hops, dtype=np.float64), _EXPONENT_CAP)
    cost = np.clip(np.expm1(exponent), 0.0, COST_SATURATION)
    return cost.astype(dtype, copy=False)


@dataclass(frozen=True)
class Layout:
    """A Mosaic: ``rows x cols`` neuron tiles with ``neurons_per_tile`` neurons each.

    Neuron ``i`` is placed in tile ``i // neurons_per_tile``; tiles are numbered
    row-major. Matrices indexed by neurons follow the recurrent weight convention
    of the network (``z @ W_rec``): entry ``[i, j]`` is the synapse from
    presynaptic neuron ``i`` to postsynaptic neuron ``j``. Hops and cost are
    symmetric, so the convention matters only for spike traffic
    (:mod:`mosaicnet.layout.metrics`).

    The fully-connected baseline is the same object with a trivial layout
    (:meth:`fully_connected`: one tile, H = 0, S = 0), so every experiment can swap
    one for the other.

    Parameters
    ----------
    rows, cols
        Grid size in tiles (positive integers). Default 8 x 8 (EIS-Hub/meta-mosaic).
    neurons_per_tile
        Neurons per tile (positive). Default 4 (EIS-Hub/meta-mosaic); the Mosaic
        paper used 32.
    beta
        Layout cost steepness (>= 0, finite). Default 8 (EIS-Hub/meta-mosaic).
    kind
        ``"mosaic"`` or ``"fully_connected"`` (the latter requires a single tile).

    Raises
    ------
    ConfigError
        On a non-positive or non-integer size, a negative or non-finite beta, an
        unknown kind, or a ``fully_connected`` layout with more than one tile.

    Examples
    --------
    >>> layout = Layout(4, 4, 2)
    >>> layout.n_neurons, int(layout.hop_matrix[0, 15])
    (32, 11)
    >>> Layout.fully_connected(64).cost_matrix().max()
    np.float64(0.0)
    """

    rows: int = DEFAULT_ROWS
    cols: int = DEFAULT_COLS
    neurons_per_tile: int = DEFAULT_NEURONS_PER_TILE
    beta: float = DEFAULT_BETA
    kind: LayoutKind = "mosaic"
    # Cached torch copies of S keyed by (dtype, device); not part of equality.
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", _positive_int(self.rows, "rows"))
        object.__setattr__(self, "cols", _positive_int(self.cols, "cols"))
        object.__setattr__(
            self, "neurons_per_tile", _positive_int(self.neurons_per_tile, "neurons_per_tile")
        )
        object.__setattr__(self, "beta", _non_negative_float(self.beta, "beta"))
        if self.kind not in _KINDS:
            raise ConfigError(f"layout kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "fully_connected" and self.n_tiles != 1:
            raise ConfigError(
                f"a fully_connected layout is a single tile, got {self.rows} x {self.cols} "
                "tiles; use Layout.fully_connected(n_neurons) or kind='mosaic'"
            )
        _check_fits_in_memory(
            self.n_neurons, f"{self.rows} x {self.cols} x {self.neurons_per_tile}"
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def fully_connected(cls, n_neurons: int, beta: float = DEFAULT_BETA) -> Layout:
        """Return the fully-connected baseline: one tile of ``n_neurons``, H = 0, S = 0.

        The published baseline used 64 neurons (talk, "Experimental Setup").
        ``beta`` is kept only so that the serialised form has the same keys; it has
        no effect because every pair is zero hops apart.
        """
        return cls(1, 1, n_neurons, beta, kind="fully_connected")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        """Rebuild a layout from :meth:`to_dict` output (or any JSON-loaded equivalent).

        Raises
        ------
        ConfigError
            If a key is missing, a value is invalid, or the optional ``n_neurons``
            disagrees with the sizes.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a layout must be a dict from Layout.to_dict(), got {data!r}")
        missing = [key for key in ("rows", "cols", "neurons_per_tile") if key not in data]
        if missing:
            raise ConfigError(
                f"layout dict is missing {', '.join(missing)}; expected the keys of "
                f"Layout.to_dict() (rows, cols, neurons_per_tile, beta, kind), got {data!r}"
            )
        layout = cls(
            data["rows"],
            data["cols"],
            data["neurons_per_tile"],
            data.get("beta", DEFAULT_BETA),
            kind=data.get("kind", "mosaic"),
        )
        if "n_neurons" in data and data["n_neurons"] != layout.n_neurons:
            raise ConfigError(
                f"layout dict says n_neurons={data['n_neurons']!r} but rows x cols x "
                f"neurons_per_tile = {layout.n_neurons}; fix one of them"
            )
        return layout

    def to_dict(self) -> dict[str, Any]:
        """Return a plain JSON-able dict; :meth:`from_dict` inverts it exactly."""
        return {
            "kind": self.kind,
            "rows": self.rows,
            "cols": self.cols,
            "neurons_per_tile": self.neurons_per_tile,
            "beta": self.beta,
            "n_neurons": self.n_neurons,
        }

    # ------------------------------------------------------------------ sizes, placement
    @property
    def n_tiles(self) -> int:
        """Number of neuron tiles, ``rows * cols``."""
        return self.rows * self.cols

    @property
    def n_neurons(self) -> int:
        """Number of neurons, ``rows * cols * neurons_per_tile``."""
        return self.n_tiles * self.neurons_per_tile

    @cached_property
    def tile_of_neuron(self) -> np.ndarray:
        """Tile index of every neuron (``i // neurons_per_tile``), read-only int64 array."""
        return _read_only(np.arange(self.n_neurons, dtype=np.int64) // self.neurons_per_tile)

    def tile_position(self, tile: int) -> tuple[int, int]:
        """Return ``(row, col)`` of a tile on the grid."""
        if not 0 <= tile < self.n_tiles:
            raise ConfigError(f"tile {tile} is outside this layout's 0..{self.n_tiles - 1}")
        return int(tile) // self.cols, int(tile) % self.cols

    # ------------------------------------------------------------------ hops and cost
    @cached_property
    def hop_matrix(self) -> np.ndarray:
        """Tile-level hop matrix H, ``(n_tiles, n_tiles)`` read-only int64."""
        return _read_only(tile_hop_matrix(self.rows, self.cols))

    @cached_property
    def neuron_hops(self) -> np.ndarray:
        """Neuron-level hops ``kron(H, ones(n, n))``, ``(n_neurons, n_neurons)`` read-only int64."""
        n = self.neurons_per_tile
        # np.repeat on both axes equals the Kronecker product with a block of ones.
        return _read_only(np.repeat(np.repeat(self.hop_matrix, n, axis=0), n, axis=1))

    @cached_property
    def hop_classes(self) -> np.ndarray:
        """Neuron-level hop class: 0 intra-tile, 1 one hop, 2 two or more hops (read-only int8)."""
        return _read_only(np.minimum(self.neuron_hops, 2).astype(np.int8))

    @property
    def max_hops(self) -> int:
        """Largest tile-to-tile hop count (0 for a single tile)."""
        return int(self.hop_matrix.max())

    @cached_property
    def _cost64(self) -> np.ndarray:
        return _read_only(layout_cost(self.neuron_hops, self.beta, np.float64))

    def cost_matrix(self, dtype: Any = np.float64) -> np.ndarray:
        """Return the neuron-level layout cost S, ``(n_neurons, n_neurons)``.

        The float64 matrix is computed once and cached (read-only); other dtypes
        are fresh copies cast from it.
        """
        if np.dtype(dtype) == np.float64:
            return self._cost64
        return self._cost64.astype(dtype)

    def cost_tensor(self, dtype: torch.dtype | None = None, device: Any = "cpu") -> torch.Tensor:
        """Return S as a torch tensor, cached per ``(dtype, device)``.

        Pass the result to :func:`mosaicnet.layout.layout_loss` so S is not rebuilt
        at every training step. Treat it as read-only: it is shared between callers.
        """
        import torch

        dtype = torch.get_default_dtype() if dtype is None else dtype
        key = (dtype, str(torch.device(device)))
        if key not in self._tensors:
            # Copy: the cached numpy S is read-only and torch wants writable memory.
            writable = np.array(self._cost64, dtype=np.float64, copy=True)
            self._tensors[key] = torch.from_numpy(writable).to(dtype=dtype, device=device)
        return self._tensors[key]

    def saturation_hops(self) -> int | None:
        """Smallest tile hop count at which S reaches ``e^15``; None if it never does."""
        for hops in np.unique(self.hop_matrix):
            if layout_cost(hops, self.beta) >= COST_SATURATION:
                return int(hops)
        return None

    def mean_cost(self) -> float:
        """Mean of S over all neuron pairs, computed at tile level (exact, cheap).

        Every tile pair stands for ``neurons_per_tile**2`` neuron pairs with the same
        cost, so the neuron-level mean equals the mean of the tile-level cost.
        """
        return float(layout_cost(self.hop_matrix, self.beta).mean())

    def expected_layout_loss(self, weight_std: float) -> float:
        """Return ``E[mean(S * W^2)]`` for i.i.d. zero-mean weights of std ``weight_std``.

        Equal to ``weight_std**2 * mean(S)``: use it to pick the layout-loss weight
        lambda so that ``lambda * L_M`` starts comparable to the cross-entropy
        (see :mod:`mosaicnet.layout.loss`).
        """
        std = _non_negative_float(weight_std, "weight_std")
        return std**2 * self.mean_cost()

    # ------------------------------------------------------------------ checks
    def check_weights(self, weights: Any, name: str = "weights") -> None:
        """Raise ConfigError unless ``weights`` is ``(n_neurons, n_neurons)`` (trailing dims)."""
        shape = tuple(getattr(weights, "shape", np.shape(weights)))
        expected = (self.n_neurons, self.n_neurons)
        if shape[-2:] != expected or len(shape) < 2:
            raise ConfigError(
                f"{name} has shape {shape} but this layout ({self.describe()}) needs "
                f"{expected}; build the matrix for the layout's size or pick the matching layout"
            )

    def describe(self) -> str:
        """One-line human description, e.g. ``8 x 8 tiles x 4 neurons = 256 neurons``."""
        if self.kind == "fully_connected":
            return f"fully connected, {self.n_neurons} neurons"
        return (
            f"{self.rows} x {self.cols} tiles x {self.neurons_per_tile} neurons = "
            f"{self.n_neurons} neurons"
        )


def _read_only(array: np.ndarray) -> np.ndarray:
    # Cached matrices are shared by every caller: forbid in-place edits.
    array.flags.writeable = False
    return array


def _check_fits_in_memory(n_neurons: int, shape: str) -> None:
    """Refuse a layout whose neuron-by-neuron matrices cannot fit in this machine's memory.

    Hops, layout cost and recurrent weights are dense ``n x n`` arrays of 8-byte
    numbers; one of them above half the physical memory cannot be worked with.
    """
    import os

    need = 8 * n_neurons**2
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not available on this system
        return
    if need > memory / 2:
        raise ConfigError(
            f"a {shape} layout has {n_neurons:,} neurons; each of its neuron-by-neuron "
            f"matrices (hops, layout cost, recurrent weights) needs {need / 2**30:,.1f} GiB, "
            f"more than half of this machine's {memory / 2**30:,.1f} GiB; use fewer tiles or "
            "neurons per tile"
        )


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"layout {name} must be a positive integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif float(value).is_integer():
        number = int(value)
    else:
        raise ConfigError(f"layout {name} must be a positive integer, got {value!r}")
    if number <= 0:
        raise ConfigError(f"layout {name} must be a positive integer, got {value!r}")
    return number


def _non_negative_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return number
