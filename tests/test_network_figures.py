"""Spike rasters and readout traces: the plotted points are the recorded spikes.

Raw-array tests draw seeded random rasters; one test draws a real Brian2
simulation of a tiny network (numpy backend, 2 samples).
"""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from mosaicnet.errors import ConfigError
from mosaicnet.layout import Layout
from mosaicnet.network.brian_network import simulate
from mosaicnet.network.figures import (
    TILE_COLORMAP,
    draw_input_raster,
    draw_readout_traces,
    draw_recurrent_raster,
    plot_panel,
    plot_sample,
    sample_figure,
    tile_of_neurons,
)
from mosaicnet.network.spec import NeuronParameters, random_spec

DT_S = 0.014
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _axes():
    figure = Figure()
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _raster(shape, p=0.2, seed=0):
    return np.random.default_rng(seed).random(shape) < p


def _points(ax) -> np.ndarray:
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1
    return np.asarray(scatters[0].get_offsets())


def _expected_points(raster, dt_s):
    step, index = np.nonzero(raster)
    return np.column_stack([step * dt_s * 1e3, index])


def test_input_raster_plots_one_dot_per_spike_at_step_times_in_ms():
    raster = _raster((40, 25))
    ax = draw_input_raster(_axes(), raster, DT_S)
    np.testing.assert_allclose(_points(ax), _expected_points(raster, DT_S))
    assert ax.get_xlim() == pytest.approx((0.0, 40 * DT_S * 1e3))
    assert ax.get_ylim() == pytest.approx((-0.5, 24.5))
    assert "ms" in ax.get_xlabel()


def test_recurrent_raster_colours_by_tile_and_marks_tile_boundaries():
    layout = Layout(3, 4, 3)  # 12 tiles: more than the 10 colours, so the cycle is exercised
    raster = _raster((30, layout.n_neurons), p=0.3, seed=1)
    ax = draw_recurrent_raster(_axes(), raster, DT_S, layout.tile_of_neuron)
    points = _points(ax)
    np.testing.assert_allclose(points, _expected_points(raster, DT_S))
    colours = ax.collections[0].get_facecolors()
    palette = colormaps[TILE_COLORMAP]
    tiles = layout.tile_of_neuron[points[:, 1].astype(int)]
    np.testing.assert_allclose(colours, palette(tiles % palette.N))
    # Neighbouring tiles never share a colour (the cycle is longer than one).
    assert not np.allclose(palette(0), palette(1))
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    y = sorted(segment[0, 1] for segment in lines.get_segments())
    assert y == pytest.approx([k * 3 - 0.5 for k in range(1, 12)])


def test_recurrent_raster_without_layout_has_one_colour_and_no_boundaries():
    raster = _raster((20, 8), seed=2)
    ax = draw_recurrent_raster(_axes(), raster, DT_S)
    assert len(ax.collections) == 1
    assert len({tuple(c) for c in ax.collections[0].get_facecolors()}) == 1


def test_readout_traces_one_line_per_unit_predicted_highlighted_no_threshold():
    trace = np.random.default_rng(3).normal(size=(50, 6)).cumsum(axis=0)
    ax = draw_readout_traces(_axes(), trace, DT_S, predicted=4)
    assert len(ax.lines) == 6  # no threshold line: the readout does not spike
    for unit, line in enumerate(ax.lines):
        np.testing.assert_allclose(line.get_ydata(), trace[:, unit])
        np.testing.assert_allclose(line.get_xdata(), np.arange(50) * DT_S * 1e3)
    widths = [line.get_linewidth() for line in ax.lines]
    assert widths[4] > max(widths[:4] + widths[5:])
    assert ax.lines[4].get_color() == "tab:red"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["unit 4 (predicted)"]
    plain = draw_readout_traces(_axes(), trace, DT_S)
    assert plain.get_legend() is None and len(plain.lines) == 6


def test_single_panel_files_from_raw_arrays(tmp_path):
    batch = _raster((3, 30, 10), seed=4)
    layout = Layout(2, 2, 3)
    recurrent = _raster((3, 30, 12), seed=5)
    trace = np.random.default_rng(6).normal(size=(3, 30, 4))
    written = [
        plot_panel(batch, tmp_path / "in.png", "input", sample=2, dt_s=DT_S),
        plot_panel(recurrent, tmp_path / "sub/rec.png", "recurrent", layout=layout, dt_s=DT_S),
        plot_panel(trace[1], tmp_path / "out.png", "readout", dt_s=DT_S, predicted=0),
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 2000
    pdf = plot_panel(batch[0], tmp_path / "in.pdf", "input", dt_s=DT_S)
    assert pdf.read_bytes()[:5] == b"%PDF-"


@pytest.fixture(scope="module")
def result_and_spec():
    layout = Layout(2, 2, 3)
    spec = random_spec(
        20, layout.to_dict(), 3, np.ones((12, 12), bool), gain=4.0,
        neuron=NeuronParameters(dt=20 * ms), seed=7,
    )  # fmt: skip
    x = _raster((2, 40, 20), p=0.15, seed=8)
    return simulate(spec, x), spec


def test_sample_figure_of_a_simulation_shares_time_and_plots_every_spike(result_and_spec, tmp_path):
    result, spec = result_and_spec
    assert result.recurrent_spikes[1].any(), "the tiny network must spike for this test"
    figure = sample_figure(result, sample=1, spec=spec, predicted=2)
    ax_in, ax_rec, ax_out = figure.axes
    dt = 0.020
    np.testing.assert_allclose(_points(ax_in), _expected_points(result.input_spikes[1], dt))
    np.testing.assert_allclose(_points(ax_rec), _expected_points(result.recurrent_spikes[1], dt))
    assert len(ax_out.lines) == 3
    np.testing.assert_allclose(ax_out.lines[2].get_ydata(), result.readout[1, :, 2])
    assert ax_in.get_shared_x_axes().joined(ax_in, ax_out)
    assert ax_in.get_xlabel() == "" and "ms" in ax_out.get_xlabel()
    path = plot_sample(result, tmp_path / "sample.png", sample=1, spec=spec, predicted=2)
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_sample_figure_from_raw_mapping_draws_the_panels_given():
    spikes = _raster((25, 6), seed=9)
    figure = sample_figure({"recurrent": spikes, "readout": np.zeros((25, 2))}, dt_s=DT_S)
    assert len(figure.axes) == 2
    np.testing.assert_allclose(_points(figure.axes[0]), _expected_points(spikes, DT_S))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: plot_panel(_raster((5, 4)), p / "a.png", "input"), "dt_s"),
        (lambda p: plot_panel(_raster((5, 4)), p / "a.txt", "input", dt_s=DT_S), "suffix"),
        (lambda p: plot_panel(_raster((2, 5, 4)), p / "a.png", "input", sample=2, dt_s=DT_S),
         "sample 2 is out of range"),
        (lambda p: plot_panel(np.zeros((5, 3)), p / "a.png", "readout", dt_s=DT_S, predicted=3),
         "not one of the 3 readout units"),
        (lambda p: plot_panel(_raster((5, 4)), p / "a.png", "input", dt_s=-1.0), "positive"),
        (lambda p: sample_figure({}, dt_s=DT_S), "nothing to draw"),
        (lambda p: sample_figure({"input": np.zeros((5, 2)), "readout": np.zeros((6, 2))},
                                 dt_s=DT_S), "number of time steps"),
    ],
)  # fmt: skip
def test_bad_figure_input_is_a_config_error(tmp_path, call, match):
    with pytest.raises(ConfigError, match=match):
        call(tmp_path)
    assert not (tmp_path / "a.png").exists()


def test_layout_must_match_the_raster():
    with pytest.raises(ConfigError, match="holds 12 neurons"):
        tile_of_neurons(10, layout=Layout(2, 2, 3))
    assert tile_of_neurons(12, layout=Layout(2, 2, 3).to_dict()).tolist() == [
        t for t in range(4) for _ in range(3)
    ]


def test_result_without_a_recording_names_the_missing_population(result_and_spec, tmp_path):
    result, spec = result_and_spec
    partial = type(result)(
        input_spikes=None, recurrent_spikes=result.recurrent_spikes, readout=None,
        membrane=None, backend="numpy", dt_s=result.dt_s, wall_s=0.0,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="record="):
        plot_panel(partial, tmp_path / "a.png", "input")
    assert len(sample_figure(partial, spec=spec).axes) == 1
