"""Layout pictures are written as non-empty image files."""

import numpy as np
import pytest

from mosaicnet.errors import ConfigError
from mosaicnet.layout import Layout, sample_small_world_mask
from mosaicnet.layout.figures import (
    neuron_positions,
    plot_cost_matrix,
    plot_tile_grid,
    plot_weight_matrix,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYOUT = Layout(3, 4, 4)


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_neurons_are_drawn_inside_their_tiles():
    pos = neuron_positions(LAYOUT)
    tiles = LAYOUT.tile_of_neuron
    np.testing.assert_array_equal(np.floor(pos[:, 0]), tiles % LAYOUT.cols)
    np.testing.assert_array_equal(np.floor(pos[:, 1]), tiles // LAYOUT.cols)


def test_grid_picture_is_written(tmp_path):
    mask = sample_small_world_mask(LAYOUT, rng=0)
    out = plot_tile_grid(LAYOUT, mask, tmp_path / "sub" / "grid.png")
    assert out == tmp_path / "sub" / "grid.png" and _is_png(out)


def test_cost_picture_is_written_for_mosaic_and_fully_connected(tmp_path):
    assert _is_png(plot_cost_matrix(LAYOUT, tmp_path / "s.png"))
    assert _is_png(plot_cost_matrix(Layout.fully_connected(16), tmp_path / "s_fc.png"))


def test_weight_picture_is_written_and_checks_size(tmp_path):
    weights = np.random.default_rng(0).normal(0.0, 0.1, (48, 48))
    assert _is_png(plot_weight_matrix(LAYOUT, weights, tmp_path / "w.png"))
    with pytest.raises(ConfigError, match="48"):
        plot_weight_matrix(LAYOUT, weights[:40, :40], tmp_path / "bad.png")
