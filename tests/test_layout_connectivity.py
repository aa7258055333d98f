"""Small-world connection masks on a Mosaic and pruning of trained weights."""

import math

import numpy as np
import pytest
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.layout import (
    PRUNE_THRESHOLD,
    Layout,
    SmallWorldPrior,
    connection_probabilities,
    prune_weights,
    sample_small_world_mask,
    synapse_mask,
)

# Two-sided binomial bound: |k - M p| <= Z * sqrt(M p (1 - p)) + 1. With Z = 5 a
# correct sampler fails one check with probability < 6e-7 (normal approximation;
# the +1 covers the discreteness when M p is small).
Z = 5.0


def _within_binomial_bound(hits: int, trials: int, p: float) -> bool:
    return abs(hits - trials * p) <= Z * math.sqrt(trials * p * (1.0 - p)) + 1.0


def test_empirical_probability_per_hop_count_matches_decay_prior():
    layout = Layout(8, 8, 4)
    prior = SmallWorldPrior(p_local=0.8, decay=0.25)
    # Pool 4 independent masks so rare long-range pairs still get a usable count.
    masks = [sample_small_world_mask(layout, prior, rng=seed) for seed in range(4)]
    off_diagonal = ~np.eye(layout.n_neurons, dtype=bool)
    hops = layout.neuron_hops
    checked = 0
    for h in np.unique(hops):
        candidates = (hops == h) & off_diagonal
        trials = 4 * int(candidates.sum())
        hits = sum(int(m[candidates].sum()) for m in masks)
        p = 0.8 * 0.25**h
        assert _within_binomial_bound(hits, trials, p), (h, hits, trials, p)
        checked += 1
    assert checked == len(np.unique(hops))


def test_hop_table_is_a_step_function_over_hop_classes():
    layout = Layout(6, 6, 3)
    prior = SmallWorldPrior(hop_table={0: 0.6, 1: 0.3, 2: 0.02})
    mask = sample_small_world_mask(layout, prior, rng=np.random.default_rng(7))
    off_diagonal = ~np.eye(layout.n_neurons, dtype=bool)
    for cls, p in enumerate((0.6, 0.3, 0.02)):
        candidates = (layout.hop_classes == cls) & off_diagonal
        trials = int(candidates.sum())
        assert _within_binomial_bound(int(mask[candidates].sum()), trials, p), cls
    probs = prior.probability(np.array([0, 1, 3, 27]))
    np.testing.assert_allclose(probs, [0.6, 0.3, 0.02, 0.02])


def test_max_hops_and_self_connections():
    layout = Layout(4, 4, 2)
    prior = SmallWorldPrior(p_local=1.0, decay=1.0, max_hops=1)
    mask = sample_small_world_mask(layout, prior, rng=0)
    np.testing.assert_array_equal(mask, (layout.neuron_hops <= 1) & ~np.eye(32, dtype=bool))
    assert not mask.diagonal().any()
    with_self = sample_small_world_mask(
        layout, SmallWorldPrior(p_local=1.0, allow_self=True), rng=0
    )
    assert with_self.diagonal().all()
    probs = connection_probabilities(layout, SmallWorldPrior(p_local=0.5, decay=0.5))
    assert probs[0, 0] == 0.0 and probs[0, 1] == 0.5 and probs[0, 2] == 0.25


def test_same_seed_same_mask_different_seed_different_mask():
    layout = Layout(4, 4, 4)
    a = sample_small_world_mask(layout, rng=3)
    b = sample_small_world_mask(layout, rng=np.random.default_rng(3))
    c = sample_small_world_mask(layout, rng=4)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_prior_round_trips_through_dict():
    prior = SmallWorldPrior(max_hops=5, allow_self=True, hop_table={0: 0.5, 1: 0.1})
    assert SmallWorldPrior.from_dict(prior.to_dict()) == prior


@pytest.mark.parametrize(
    "kwargs",
    [
        {"p_local": 1.5},
        {"decay": -0.1},
        {"max_hops": -1},
        {"allow_self": "yes"},
        {"hop_table": {1: 0.2}},
        {"hop_table": {0: 0.2, -1: 0.1}},
        {"hop_table": {0: 2.0}},
    ],
)
def test_bad_prior_parameters_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        SmallWorldPrior(**kwargs)


def test_unseeded_sampling_is_refused():
    with pytest.raises(ConfigError, match="rng"):
        sample_small_world_mask(Layout(2, 2, 2), rng=None)


def test_prune_numpy_uses_published_threshold():
    assert PRUNE_THRESHOLD == 5e-4
    w = np.array([[1e-4, -6e-4], [0.0, 5e-4]])
    np.testing.assert_array_equal(prune_weights(w), [[0.0, -6e-4], [0.0, 5e-4]])
    np.testing.assert_array_equal(synapse_mask(w), [[True, True], [False, True]])
    np.testing.assert_array_equal(synapse_mask(w, 5e-4), [[False, True], [False, True]])


def test_prune_torch_keeps_gradient_of_surviving_weights():
    w = torch.tensor([[1e-4, -6e-4], [0.3, -2e-4]], dtype=torch.float64, requires_grad=True)
    pruned = prune_weights(w)
    (pruned**2).sum().backward()
    torch.testing.assert_close(
        pruned.detach(), torch.tensor([[0.0, -6e-4], [0.3, 0.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        w.grad, torch.tensor([[0.0, -1.2e-3], [0.6, 0.0]], dtype=torch.float64)
    )
    with pytest.raises(ConfigError):
        prune_weights(w, threshold=-1.0)
