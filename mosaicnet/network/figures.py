"""Spike rasters and readout traces of a simulated network, in the Brian2 plotting tradition.

The pictures follow the conventions of ``brian2tools.plot_raster`` (the Brian2
team's plotting package; not a dependency): time on the x axis in ms, neuron
index on the y axis, one small dot per spike. A spike in simulation step ``t``
is drawn at ``t * dt``, the time a Brian2 ``SpikeMonitor`` records for it, and
the readout potential recorded after step ``t`` (``StateMonitor(when="end")``)
is drawn at the same time, so all panels of one sample share one time axis.

Figures
-------
input raster
    The spikes the input group emitted (black dots).
recurrent raster
    Recurrent spikes, neurons coloured by their Mosaic tile (a qualitative
    colormap cycling over tiles), tile boundaries as faint horizontal lines.
readout traces
    One line per readout unit (non-spiking leaky integrators: no threshold is
    drawn); the predicted class, if given, is highlighted.
sample figure
    The three panels of one sample stacked over a shared time axis.

Every ``plot_*`` function writes a file (format from the suffix: ``.png``,
``.pdf``, ``.svg``, ...) and returns its path; every ``draw_*`` function draws
into a given matplotlib ``Axes`` and returns it, so the panels compose into a
user's own figures. Figures are built with :class:`matplotlib.figure.Figure` on
the Agg canvas, never through ``pyplot``: plotting changes no global matplotlib
state (backend, current figure) of the caller's session.

Data may be a :class:`~mosaicnet.network.brian_network.SimulationResult` plus a
sample index (and the spec for the tile layout) or raw arrays: boolean spike
rasters ``(T, N)`` or ``(B, T, N)`` and readout traces of the same layout, with
the time step given as ``dt_s`` (seconds) or through the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mosaicnet.errors import ConfigError

if TYPE_CHECKING:  # matplotlib and the network module are imported when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mosaicnet.layout import Layout
    from mosaicnet.network.brian_network import SimulationResult
    from mosaicnet.network.spec import NetworkSpec

#: Qualitative colormap that colours recurrent neurons by tile (cycled over tiles).
#: ``tab10`` rather than ``tab20``: tab20 pairs light and dark shades of one hue,
#: which would make neighbouring tiles hard to tell apart.
TILE_COLORMAP = "tab10"
#: Dot size of a spike, in points (the diameter; ``brian2tools.plot_raster`` uses 2).
SPIKE_MARKER_SIZE = 2.0
#: Spike rasters with more dots than this are rasterised inside vector files
#: (PDF, SVG), which otherwise hold one path per spike and become slow to open.
RASTERIZE_ABOVE = 5000

# Populations of a SimulationResult: key -> attribute.
_ATTRIBUTES = {"input": "input_spikes", "recurrent": "recurrent_spikes", "readout": "readout"}


# ---------------------------------------------------------------------------
# Data: SimulationResult or raw arrays -> one sample
# ---------------------------------------------------------------------------


def _is_result(data: Any) -> bool:
    from mosaicnet.network.brian_network import SimulationResult

    return isinstance(data, SimulationResult)


def sample_array(
    data: SimulationResult | Mapping[str, Any] | np.ndarray, population: str, sample: int = 0
) -> np.ndarray:
    """The ``(T, N)`` array of one population and sample.

    Parameters
    ----------
    data
        A ``SimulationResult``, a mapping ``{"input" | "recurrent" | "readout": array}``
        or one array, ``(T, N)`` or ``(B, T, N)``.
    population
        ``"input"``, ``"recurrent"`` or ``"readout"`` (which array of a result or
        mapping; only named in messages for a bare array).
    sample
        Sample index into the batch axis (ignored for a ``(T, N)`` array if 0).

    Raises
    ------
    ConfigError
        The population was not recorded, the array has the wrong number of
        dimensions, or the sample index is out of range.
    """
    if population not in _ATTRIBUTES:
        raise ConfigError(f"unknown population {population!r}; use one of {tuple(_ATTRIBUTES)}")
    if _is_result(data):
        array = getattr(data, _ATTRIBUTES[population])
        if array is None:
            raise ConfigError(
                f"the simulation result holds no {population!r} recording; simulate with "
                f"record=(..., {population!r})"
            )
    elif isinstance(data, Mapping):
        if population not in data or data[population] is None:
            raise ConfigError(
                f"no {population!r} array given (keys: {sorted(data)}); pass it under "
                f"the key {population!r}"
            )
        array = data[population]
    else:
        array = data
    array = np.asarray(array)
    if array.ndim == 2:
        if sample not in (0, -1):
            raise ConfigError(
                f"the {population} array has shape {array.shape} (one sample, (T, N)); "
                f"sample {sample} does not exist"
            )
        return array
    if array.ndim != 3:
        raise ConfigError(
            f"the {population} array must have shape (T, N) or (B, T, N), got {array.shape}"
        )
    if not -array.shape[0] <= sample < array.shape[0]:
        raise ConfigError(
            f"sample {sample} is out of range: the {population} array holds "
            f"{array.shape[0]} sample(s)"
        )
    return array[sample]


def step_seconds(
    data: object = None, spec: NetworkSpec | None = None, dt_s: float | None = None
) -> float:
    """The simulation time step in seconds: ``dt_s``, else the result's, else the spec's.

    Raises
    ------
    ConfigError
        None of them is given (raw arrays without ``dt_s`` or spec), or the
        value is not a positive finite number.
    """
    if dt_s is None and _is_result(data):
        dt_s = data.dt_s
    if dt_s is None and spec is not None:
        from brian2 import second

        dt_s = float(spec.neuron.dt / second)
    if dt_s is None:
        raise ConfigError(
            "the time step is unknown for raw arrays: pass dt_s (seconds per step) or the "
            "spec (its neuron.dt)"
        )
    value = float(dt_s)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"dt_s must be a positive number of seconds, got {dt_s!r}")
    return value


def tile_of_neurons(
    n_neurons: int,
    spec: NetworkSpec | None = None,
    layout: Layout | Mapping[str, Any] | None = None,
) -> np.ndarray | None:
    """Tile index of each of ``n_neurons`` recurrent neurons, or ``None`` without a layout.

    ``layout`` (a :class:`~mosaicnet.layout.Layout` or its ``to_dict()``) wins
    over the spec's layout.

    Raises
    ------
    ConfigError
        The layout holds a different number of neurons than the raster.
    """
    from mosaicnet.layout import Layout

    source = layout if layout is not None else (spec.layout if spec is not None else None)
    if source is None:
        return None
    resolved = source if isinstance(source, Layout) else Layout.from_dict(dict(source))
    if resolved.n_neurons != n_neurons:
        raise ConfigError(
            f"the layout holds {resolved.n_neurons} neurons ({resolved.rows} x {resolved.cols} "
            f"tiles of {resolved.neurons_per_tile}) but the raster has {n_neurons}; pass the "
            "spec or layout of the simulated network"
        )
    return np.asarray(resolved.tile_of_neuron)


def spike_times_ms(spikes: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(times_ms, indices)`` of every spike of a ``(T, N)`` boolean raster.

    A spike in step ``t`` is at ``t * dt`` (what Brian2's ``SpikeMonitor``
    records). Spikes are ordered by time, then neuron index.
    """
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise ConfigError(f"a spike raster must have shape (T, N), got {spikes.shape}")
    step, index = np.nonzero(spikes)
    return step * (dt_s * 1e3), index


# ---------------------------------------------------------------------------
# Panels: draw into an Axes
# ---------------------------------------------------------------------------


def _raster(spikes: Any) -> np.ndarray:
    raster = np.asarray(spikes)
    if raster.ndim != 2:
        raise ConfigError(f"a spike raster must have shape (T, N), got {raster.shape}")
    return raster.astype(bool, copy=False)


def _scatter_spikes(ax: Axes, spikes: np.ndarray, dt_s: float, colors: Any) -> None:
    times, index = spike_times_ms(spikes, dt_s)
    point_colors = colors(index) if callable(colors) else colors
    ax.scatter(
        times,
        index,
        s=SPIKE_MARKER_SIZE**2,  # scatter sizes are areas in points^2
        c=point_colors,
        marker="o",
        linewidths=0,
        rasterized=times.size > RASTERIZE_ABOVE,
    )
    n_steps, n_neurons = spikes.shape
    ax.set_xlim(0.0, n_steps * dt_s * 1e3)
    # The full population range, so silent neurons at the edges still show as rows.
    ax.set_ylim(-0.5, n_neurons - 0.5)
    ax.set_ylabel("Neuron index")


def draw_input_raster(ax: Axes, spikes: Any, dt_s: float, *, color: str = "black") -> Axes:
    """Draw an input spike raster ``(T, n_in)`` into ``ax``; return ``ax``.

    One dot per spike at (``t * dt`` in ms, channel); the plotted points are
    the offsets of ``ax.collections[-1]``.
    """
    _scatter_spikes(ax, _raster(spikes), dt_s, color)
    ax.set_ylabel("Input channel")
    ax.set_xlabel("Time (ms)")
    return ax


def draw_recurrent_raster(
    ax: Axes, spikes: Any, dt_s: float, tile_of_neuron: np.ndarray | None = None
) -> Axes:
    """Draw a recurrent spike raster ``(T, n_rec)`` coloured by tile; return ``ax``.

    Parameters
    ----------
    ax
        Matplotlib axes.
    spikes
        Boolean ``(T, n_rec)`` raster.
    dt_s
        Time step in seconds.
    tile_of_neuron
        Tile index per neuron (:func:`tile_of_neurons`); ``None`` draws every
        neuron in one colour without boundaries. Tile ``k`` takes colour
        ``k mod 10`` of :data:`TILE_COLORMAP`; tile boundaries are faint
        horizontal lines (one ``LineCollection``, ``ax.collections[-1]``).
    """
    from matplotlib import colormaps

    raster = _raster(spikes)
    if tile_of_neuron is None:
        _scatter_spikes(ax, raster, dt_s, "tab:blue")
    else:
        tiles = np.asarray(tile_of_neuron, dtype=np.int64)
        if tiles.shape != (raster.shape[1],):
            raise ConfigError(
                f"tile_of_neuron has shape {tiles.shape}, the raster {raster.shape}: give one "
                "tile index per neuron"
            )
        palette = colormaps[TILE_COLORMAP]
        rgba = palette(np.arange(palette.N))
        _scatter_spikes(ax, raster, dt_s, lambda index: rgba[tiles[index] % palette.N])
        # A boundary wherever the tile index changes between neighbouring neurons.
        boundaries = np.flatnonzero(np.diff(tiles)) + 0.5
        if boundaries.size:
            ax.hlines(
                boundaries,
                *ax.get_xlim(),
                colors="0.6",
                linewidths=0.5,
                alpha=0.5,
                zorder=0,
            )
    ax.set_xlabel("Time (ms)")
    ax.set_ylabel("Recurrent neuron" + (" (by tile)" if tile_of_neuron is not None else ""))
    return ax


def draw_readout_traces(
    ax: Axes,
    trace: Any,
    dt_s: float,
    *,
    predicted: int | None = None,
) -> Axes:
    """Draw the readout potential ``(T, n_out)``, one line per unit; return ``ax``.

    The readout units do not spike, so no threshold is drawn. With
    ``predicted`` that unit's line is thick and red (legend entry) and the
    others are thin grey; without it every unit has its own colour.
    Lines are ``ax.lines`` in unit order.
    """
    values = np.asarray(trace, dtype=np.float64)
    if values.ndim != 2:
        raise ConfigError(f"a readout trace must have shape (T, n_out), got {values.shape}")
    n_steps, n_out = values.shape
    if predicted is not None and not 0 <= int(predicted) < n_out:
        raise ConfigError(f"predicted class {predicted} is not one of the {n_out} readout units")
    times = np.arange(n_steps) * (dt_s * 1e3)
    from matplotlib import colormaps

    cycle = colormaps["viridis"](np.linspace(0.0, 0.9, max(n_out, 1)))
    for unit in range(n_out):
        if predicted is None:
            style = {"color": cycle[unit], "linewidth": 0.8}
        elif unit == int(predicted):
            style = {
                "color": "tab:red",
                "linewidth": 2.0,
                "zorder": 3,
                "label": f"unit {unit} (predicted)",
            }
        else:
            style = {"color": "0.6", "linewidth": 0.7, "alpha": 0.8}
        ax.plot(times, values[:, unit], **style)
    if predicted is not None:
        ax.legend(loc="upper left", fontsize="small", frameon=False)
    ax.set_xlim(0.0, n_steps * dt_s * 1e3)
    ax.set_xlabel("Time (ms)")
    ax.set_ylabel("Readout v")
    return ax


# ---------------------------------------------------------------------------
# Figures: write files
# ---------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def check_figure_path(path: str | Path) -> Path:
    """Return ``path`` as a Path if matplotlib can write its format; raise otherwise.

    Raises
    ------
    ConfigError
        No suffix, a format matplotlib does not write, or a place where no file
        can be written (below a plain file, a read-only or pseudo file system):
        checked by writing and removing a scratch file in the nearest existing
        folder, so that a long simulation does not end in a failed save.
    """
    import tempfile

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = Path(path)
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = target.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ConfigError(
            f"cannot write a figure to {target}: the suffix {target.suffix!r} is not an image "
            f"format; use one of {', '.join('.' + name for name in sorted(formats))}"
        )
    if target.is_dir():
        raise ConfigError(f"cannot write a figure to {target}: it is a directory")
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write a figure to {target}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(
            f"cannot write a figure to {target}: nothing can be written in {folder} "
            f"({error.strerror}); choose another path"
        ) from None
    return target


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` (parent folders created) and return the path."""
    target = check_figure_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=150)
    return target


def _sample_title(sample: int, label: str | int | None, title: str | None) -> str:
    if title is not None:
        return title
    return f"Sample {sample}" + ("" if label is None else f" (label {label})")


def plot_panel(
    data: SimulationResult | Mapping[str, Any] | np.ndarray,
    path: str | Path,
    population: str,
    *,
    sample: int = 0,
    spec: NetworkSpec | None = None,
    layout: Layout | Mapping[str, Any] | None = None,
    dt_s: float | None = None,
    predicted: int | None = None,
    label: str | int | None = None,
    title: str | None = None,
) -> Path:
    """Write one population of one sample as a single-panel figure to ``path``; return the path.

    Parameters
    ----------
    data
        ``SimulationResult``, mapping with key ``population``, or one array:
        a boolean spike raster ``(T, N)`` / ``(B, T, N)`` for ``"input"`` and
        ``"recurrent"``, float readout traces of that layout for ``"readout"``.
    path
        Output file; the suffix picks the format.
    population
        ``"input"`` (input spike raster), ``"recurrent"`` (recurrent spikes,
        coloured by tile) or ``"readout"`` (readout voltage traces).
    sample
        Sample index.
    spec, layout
        The Mosaic layout that colours recurrent neurons by tile (``layout``
        wins); neither: one colour. The spec also gives the time step.
    dt_s
        Time step in seconds (wins over result and spec; a result carries its own).
    predicted
        Readout unit to highlight (e.g. ``readout.max(axis=0).argmax()``, the
        published decision rule), or ``None``.
    label, title
        Class label shown in the default title, or a title replacing it.
    """
    array = sample_array(data, population, sample)
    dt = step_seconds(data, spec, dt_s)
    figure = _new_figure(7.0, {"input": 3.0, "recurrent": 3.5, "readout": 3.0}[population])
    ax = figure.add_subplot()
    _draw_population(ax, population, array, dt, spec, layout, predicted)
    caption = {
        "input": "input spikes", "recurrent": "recurrent spikes by tile",
        "readout": "readout potential",
    }[population]  # fmt: skip
    ax.set_title(f"{_sample_title(sample, label, title)}: {caption}")
    return save_figure(figure, path)


def _draw_population(ax, population, array, dt, spec, layout, predicted) -> Axes:
    """Draw one population's ``(T, N)`` array with its ``draw_*`` function."""
    if population == "input":
        return draw_input_raster(ax, array, dt)
    if population == "recurrent":
        return draw_recurrent_raster(ax, array, dt, tile_of_neurons(array.shape[1], spec, layout))
    return draw_readout_traces(ax, array, dt, predicted=predicted)


def sample_figure(
    data: SimulationResult | Mapping[str, Any],
    *,
    sample: int = 0,
    spec: NetworkSpec | None = None,
    layout: Layout | Mapping[str, Any] | None = None,
    dt_s: float | None = None,
    predicted: int | None = None,
    label: str | int | None = None,
    title: str | None = None,
) -> Figure:
    """The combined figure of one sample: input / recurrent / readout, shared time axis.

    ``data`` is a ``SimulationResult`` or a mapping with any of the keys
    ``"input"``, ``"recurrent"``, ``"readout"``; populations that were not
    recorded (or not given) are left out. Other arguments as in
    :func:`plot_panel`. Returns the matplotlib ``Figure`` (panels in
    ``figure.axes``, top to bottom); :func:`plot_sample` writes it to a file.

    Raises
    ------
    ConfigError
        Nothing to draw, or the arrays disagree on the number of time steps.
    """
    if _is_result(data):
        present = [key for key, attr in _ATTRIBUTES.items() if getattr(data, attr) is not None]
    elif isinstance(data, Mapping):
        present = [key for key in _ATTRIBUTES if data.get(key) is not None]
    else:
        raise ConfigError(
            "sample_figure needs a SimulationResult or a mapping {'input', 'recurrent', "
            f"'readout'}} -> array, got {type(data).__name__}"
        )
    if not present:
        raise ConfigError("nothing to draw: no input, recurrent or readout recording given")
    arrays = {key: sample_array(data, key, sample) for key in present}
    steps = {key: array.shape[0] for key, array in arrays.items()}
    if len(set(steps.values())) > 1:
        raise ConfigError(f"the recordings disagree on the number of time steps: {steps}")
    dt = step_seconds(data, spec, dt_s)
    heights = {"input": 2.0, "recurrent": 3.0, "readout": 2.0}
    figure = _new_figure(7.5, 1.0 + 0.9 * sum(heights[key] for key in present))
    axes = figure.subplots(
        len(present), 1, sharex=True, height_ratios=[heights[key] for key in present]
    )
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, present, strict=True):
        _draw_population(ax, key, arrays[key], dt, spec, layout, predicted)
    # Shared time axis: only the bottom panel keeps its label.
    for ax in axes[:-1]:
        ax.set_xlabel("")
    figure.suptitle(_sample_title(sample, label, title))
    return figure


def plot_sample(
    data: SimulationResult | Mapping[str, Any],
    path: str | Path,
    *,
    sample: int = 0,
    spec: NetworkSpec | None = None,
    layout: Layout | Mapping[str, Any] | None = None,
    dt_s: float | None = None,
    predicted: int | None = None,
    label: str | int | None = None,
    title: str | None = None,
) -> Path:
    """Write the combined figure of one sample (:func:`sample_figure`); return the path."""
    check_figure_path(path)  # fail before drawing
    figure = sample_figure(
        data,
        sample=sample,
        spec=spec,
        layout=layout,
        dt_s=dt_s,
        predicted=predicted,
        label=label,
        title=title,
    )
    return save_figure(figure, path)
