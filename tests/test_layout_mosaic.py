"""The Mosaic layout: hop rule, placement, layout cost S, serialisation, bad input."""

import json
import math
import warnings

import numpy as np
import pytest

from mosaicnet.errors import ConfigError
from mosaicnet.layout import COST_SATURATION, Layout, layout_cost, tile_hop_matrix

# Published example (docs/mosaic.md, 'Hop rule'; EIS-Hub/meta-mosaic generate_mosaic_mask).
ROW0_4x4 = [0, 1, 5, 7, 1, 3, 5, 7, 5, 5, 7, 9, 7, 7, 9, 11]


def test_hop_row_of_tile0_on_4x4_matches_published_example():
    assert Layout(4, 4, 1).hop_matrix[0].tolist() == ROW0_4x4


@pytest.mark.parametrize("rows, cols", [(4, 4), (8, 8), (3, 5), (1, 6), (6, 1)])
def test_hop_matrix_is_symmetric_with_zero_diagonal(rows, cols):
    hops = tile_hop_matrix(rows, cols)
    assert hops.shape == (rows * cols, rows * cols)
    assert hops.dtype == np.int64
    np.testing.assert_array_equal(hops, hops.T)
    np.testing.assert_array_equal(np.diag(hops), 0)
    off_diagonal = hops[~np.eye(rows * cols, dtype=bool)]
    assert off_diagonal.min() >= 1


def test_farthest_pair_on_8x8_is_27_hops():
    layout = Layout(8, 8, 4)
    assert layout.max_hops == 27
    assert layout.hop_matrix[0, 63] == 27
    # Same row, 7 apart: straight route 2 * 7 + 1.
    assert layout.hop_matrix[0, 7] == 15


def test_rectangular_grid_uses_row_major_positions():
    # 2 x 3 grid: tile 4 is at (1, 1), tile 2 at (0, 2).
    hops = tile_hop_matrix(2, 3)
    assert hops[0, 4] == 3  # d = 2, bent route: 2d - 1
    assert hops[0, 2] == 5  # d = 2, same row: 2d + 1
    assert hops[2, 3] == 5  # (0,2)-(1,0): d = 3, bent: 2d - 1
    assert hops[1, 4] == 1  # (0,1)-(1,1): neighbours


def test_neuron_placement_and_neuron_hops_expand_tiles():
    layout = Layout(2, 3, 4)
    assert layout.n_tiles == 6 and layout.n_neurons == 24
    np.testing.assert_array_equal(layout.tile_of_neuron, np.arange(24) // 4)
    np.testing.assert_array_equal(
        layout.neuron_hops, np.kron(layout.hop_matrix, np.ones((4, 4), dtype=np.int64))
    )
    assert layout.tile_position(4) == (1, 1)
    np.testing.assert_array_equal(layout.hop_classes, np.minimum(layout.neuron_hops, 2))


def test_cost_is_zero_in_tile_e_beta_minus_one_at_one_hop_and_saturates():
    layout = Layout(4, 4, 3, beta=8.0)
    cost = layout.cost_matrix()
    hops = layout.neuron_hops
    assert np.all(cost[hops == 0] == 0.0)
    np.testing.assert_allclose(cost[hops == 1], math.exp(8.0) - 1.0, rtol=1e-12)
    assert np.all(cost[hops >= 3] == COST_SATURATION)
    assert cost.max() == pytest.approx(math.exp(15.0), rel=1e-15)
    assert layout.saturation_hops() == 3


def test_cost_with_small_beta_follows_formula_below_saturation():
    hops = np.arange(0, 30)
    expected = np.clip(np.exp(0.5 * hops) - 1.0, 0.0, math.exp(15.0))
    np.testing.assert_allclose(layout_cost(hops, 0.5), expected, rtol=1e-12)


def test_float32_cost_and_huge_beta_do_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning would fail here
        cost32 = Layout(8, 8, 4, beta=100.0).cost_matrix(np.float32)
    assert cost32.dtype == np.float32
    assert np.isfinite(cost32).all()
    assert cost32.max() == np.float32(COST_SATURATION)


def test_mean_cost_at_tile_level_equals_neuron_level_mean():
    layout = Layout(3, 4, 5, beta=1.3)
    assert layout.mean_cost() == pytest.approx(layout.cost_matrix().mean(), rel=1e-12)
    assert layout.expected_layout_loss(0.1) == pytest.approx(0.01 * layout.mean_cost())


def test_fully_connected_baseline_has_zero_hops_and_cost():
    layout = Layout.fully_connected(64)
    assert layout.kind == "fully_connected"
    assert layout.n_neurons == 64 and layout.n_tiles == 1 and layout.max_hops == 0
    assert layout.neuron_hops.shape == (64, 64)
    assert not layout.cost_matrix().any()


def test_dict_round_trip_through_json():
    for layout in (Layout(3, 5, 2, beta=2.5), Layout.fully_connected(64), Layout()):
        data = json.loads(json.dumps(layout.to_dict()))
        assert {"rows", "cols", "neurons_per_tile", "beta", "kind"} <= data.keys()
        assert Layout.from_dict(data) == layout


def test_cached_matrices_are_read_only():
    layout = Layout(2, 2, 2)
    with pytest.raises(ValueError):
        layout.hop_matrix[0, 1] = 99
    with pytest.raises(ValueError):
        layout.cost_matrix()[0, 0] = 1.0


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"rows": 0}, "rows"),
        ({"cols": -2}, "cols"),
        ({"neurons_per_tile": 0}, "neurons_per_tile"),
        ({"neurons_per_tile": 2.5}, "neurons_per_tile"),
        ({"rows": True}, "rows"),
        ({"beta": -1.0}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"kind": "torus"}, "kind"),
    ],
)
def test_bad_layout_parameters_raise_config_error(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        Layout(**kwargs)


def test_fully_connected_kind_requires_one_tile():
    with pytest.raises(ConfigError, match="single tile"):
        Layout(2, 2, 4, kind="fully_connected")


def test_from_dict_reports_missing_keys_and_inconsistent_size():
    with pytest.raises(ConfigError, match="cols"):
        Layout.from_dict({"rows": 2, "neurons_per_tile": 4})
    with pytest.raises(ConfigError, match="n_neurons"):
        Layout.from_dict({"rows": 2, "cols": 2, "neurons_per_tile": 4, "n_neurons": 20})
    with pytest.raises(ConfigError):
        Layout.from_dict([2, 2, 4])


def test_weight_shape_mismatch_is_a_config_error():
    layout = Layout(2, 2, 4)
    layout.check_weights(np.zeros((16, 16)))
    with pytest.raises(ConfigError, match=r"\(16, 16\)"):
        layout.check_weights(np.zeros((15, 16)))
    with pytest.raises(ConfigError):
        layout.check_weights(np.zeros(16))


def test_a_layout_too_large_for_memory_is_refused_with_its_size(capsys):
    from mosaicnet.cli import main

    with pytest.raises(ConfigError, match=r"1,000,000 neurons; .* needs 7,450.6 GiB"):
        Layout(1000, 1000, 1)
    assert main(["layout", "--rows", "1000", "--cols", "1000"]) == 2
    assert "use fewer tiles" in capsys.readouterr().err
