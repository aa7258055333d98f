"""Recurrent connectivity on a Mosaic: a small-world prior and pruning of trained weights.

The Mosaic (Dalgaty et al., "Mosaic: in-memory computing and routing for
small-world spike-based neuromorphic systems", Nature Communications 15, 142,
2024) is cheap for dense local connectivity (inside a neuron tile) and pays
routing hops for every long-range synapse, so the networks it suits are
*small-world*: dense clusters with few long-range links. This module samples
such masks, with a connection probability that falls with the routing hops of
:class:`mosaicnet.layout.Layout`, and prunes trained weights to the synapses
that are actually programmed.

Pruning follows the public training code of EIS-Hub/meta-mosaic: recurrent
weights with ``|w| < 5e-4`` are set to zero (no memristor is programmed).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.layout.mosaic import Layout

#: Pruning threshold on ``|w|`` for recurrent weights (EIS-Hub/meta-mosaic training code).
PRUNE_THRESHOLD: float = 5e-4

ArrayLike = TypeVar("ArrayLike")


@dataclass(frozen=True)
class SmallWorldPrior:
    """Connection probability as a function of routing hops between two neurons.

    Without a table, a pair ``h`` hops apart is connected with probability
    ``p_local * decay**h`` (``p_local`` inside a tile, ``h = 0``). With
    ``hop_table`` (a mapping from hop count to probability; it must contain 0)
    the probability of a pair ``h`` hops apart is the entry of the largest key
    ``<= h``: ``{0: 0.8, 1: 0.2, 2: 0.01}`` means 0.8 inside a tile, 0.2 at one
    hop and 0.01 at two or more hops (the Mosaic has no 2-hop pairs, so key 2
    stands for the whole ">= 2 hops" class). ``p_local`` and ``decay`` are
    ignored when a table is given.

    The defaults (``p_local = 0.8``, ``decay = 0.25``) are illustrative, not
    published: on the 8 x 8 x 4 Mosaic they give each neuron about 2.4 partners
    in its own tile, 2.8 at one hop and well under one further away.

    Parameters
    ----------
    p_local
        Probability of a synapse between two neurons of the same tile, in [0, 1].
    decay
        Multiplicative factor per routing hop, in [0, 1].
    max_hops
        Pairs more than ``max_hops`` hops apart are never connected (None: no limit).
    allow_self
        Whether a neuron may synapse onto itself (the diagonal).
    hop_table
        Optional step table ``{hops: probability}`` replacing ``p_local``/``decay``.
    """

    p_local: float = 0.8
    decay: float = 0.25
    max_hops: int | None = None
    allow_self: bool = False
    hop_table: Mapping[int, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "p_local", _probability(self.p_local, "p_local"))
        object.__setattr__(self, "decay", _probability(self.decay, "decay"))
        if self.max_hops is not None:
            if isinstance(self.max_hops, bool) or not isinstance(self.max_hops, numbers.Integral):
                raise ConfigError(
                    f"max_hops must be an integer >= 0 or None, got {self.max_hops!r}"
                )
            if self.max_hops < 0:
                raise ConfigError(f"max_hops must be >= 0 or None, got {self.max_hops!r}")
        if not isinstance(self.allow_self, bool):
            raise ConfigError(f"allow_self must be True or False, got {self.allow_self!r}")
        if self.hop_table is not None:
            object.__setattr__(self, "hop_table", _hop_table(self.hop_table))

    def probability(self, hops: np.ndarray) -> np.ndarray:
        """Return the connection probability for each entry of ``hops`` (float64 array).

        Self-connections are not handled here (they are pairs at 0 hops); see
        :func:`connection_probabilities`.
        """
        hops = np.asarray(hops, dtype=np.int64)
        if self.hop_table is None:
            prob = self.p_local * np.power(self.decay, hops, dtype=np.float64)
        else:
            keys = np.array(sorted(self.hop_table), dtype=np.int64)
            values = np.array([self.hop_table[k] for k in keys], dtype=np.float64)
            # Index of the largest key <= h; key 0 exists, so the index is >= 0.
            prob = values[np.searchsorted(keys, hops, side="right") - 1]
        if self.max_hops is not None:
            prob = np.where(hops > self.max_hops, 0.0, prob)
        return prob

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (hop-table keys become strings, as JSON requires)."""
        return {
            "p_local": self.p_local,
            "decay": self.decay,
            "max_hops": self.max_hops,
            "allow_self": self.allow_self,
            "hop_table": (
                None if self.hop_table is None else {str(k): v for k, v in self.hop_table.items()}
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SmallWorldPrior:
        """Inverse of :meth:`to_dict`."""
        known = {"p_local", "decay", "max_hops", "allow_self", "hop_table"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"unknown small-world prior keys {sorted(unknown)}; expected {sorted(known)}"
            )
        return cls(**dict(data))


def connection_probabilities(layout: Layout, prior: SmallWorldPrior) -> np.ndarray:
    """Return the ``(N, N)`` probability of a synapse from neuron i to neuron j."""
    prob = prior.probability(layout.neuron_hops)
    if not prior.allow_self:
        np.fill_diagonal(prob, 0.0)
    return prob


def sample_small_world_mask(
    layout: Layout,
    prior: SmallWorldPrior | None = None,
    *,
    rng: np.random.Generator | int,
) -> np.ndarray:
    """Sample a recurrent connection mask with a small-world prior.

    Every ordered pair ``(i, j)`` is connected independently with probability
    ``connection_probabilities(layout, prior)[i, j]``, so the mask is directed
    (``mask[i, j]``: synapse from i to j).

    Parameters
    ----------
    layout
        The Mosaic the network is placed on.
    prior
        Connection probability by hops; default :class:`SmallWorldPrior()`.
    rng
        A numpy Generator, or an integer seed for ``numpy.random.default_rng``.

    Returns
    -------
    numpy.ndarray
        ``(N, N)`` boolean mask.
    """
    prior = SmallWorldPrior() if prior is None else prior
    generator = _generator(rng)
    prob = connection_probabilities(layout, prior)
    return generator.random(prob.shape) < prob


def synapse_mask(weights: ArrayLike, threshold: float = 0.0) -> ArrayLike:
    """Return where a synapse exists: ``w != 0`` and ``|w| >= threshold``.

    Works on numpy arrays and torch tensors (returns the same kind, boolean);
    other array-likes (nested lists) are converted to numpy.
    """
    threshold = _threshold(threshold)
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights, dtype=np.float64)
    return (abs(weights) >= threshold) & (weights != 0)


def prune_weights(weights: ArrayLike, threshold: float = PRUNE_THRESHOLD) -> ArrayLike:
    """Set weights with ``|w| < threshold`` to zero: no memristor for them.

    The default threshold 5e-4 is the published one (EIS-Hub/meta-mosaic).
    Works on numpy arrays and torch tensors and returns the same kind; on torch
    it is a product with a constant mask, so gradients flow to the kept weights
    (as when the reference applies pruning in the forward pass) and it works
    under ``torch.func.vmap``/``grad``.
    """
    if not hasattr(weights, "shape"):
        weights = np.asarray(weights, dtype=np.float64)
    return weights * synapse_mask(weights, threshold)


def _generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(
        f"rng must be a numpy Generator or an integer seed, got {rng!r}; "
        "pass e.g. rng=numpy.random.default_rng(0) so the mask is reproducible"
    )


def _probability(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
    return number


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"pruning threshold must be a number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"pruning threshold must be a finite number >= 0, got {value!r}")
    return number


def _hop_table(table: Mapping[Any, Any]) -> dict[int, float]:
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(
            f"hop_table must be a non-empty mapping hops -> probability, got {table!r}"
        )
    parsed: dict[int, float] = {}
    for key, value in table.items():
        try:
            hops = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"hop_table key {key!r} is not a hop count (integer >= 0)") from None
        if hops < 0 or str(hops) != str(key).strip():
            raise ConfigError(f"hop_table key {key!r} is not a hop count (integer >= 0)")
        parsed[hops] = _probability(value, f"hop_table[{hops}]")
    if 0 not in parsed:
        raise ConfigError(
            f"hop_table must give the probability at 0 hops (inside a tile), got keys "
            f"{sorted(parsed)}; add an entry for 0"
        )
    return dict(sorted(parsed.items()))
