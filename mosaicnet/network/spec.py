"""The network spec: the single description both simulators are built from.

A :class:`NetworkSpec` is plain data: sizes, neuron parameters with physical
units, the Mosaic layout (as its serialised dict), the recurrent connection
mask, the device model and read time, and the three weight matrices. The
Brian2 network (:mod:`mosaicnet.network.brian_network`) and the torch
surrogate clone (:mod:`mosaicnet.network.torch_clone`) are both functions of
it, so nothing about the model is typed twice.

Model: one recurrent layer of spiking neurons and a non-spiking leaky readout.
The recurrent neurons are any :class:`~mosaicnet.network.neuron_model.NeuronModel`
(Brian2 equations, threshold, reset, refractoriness, synaptic targets); the
default is the published LIF of EIS-Hub/meta-mosaic ``network.py``
(:func:`~mosaicnet.network.neuron_presets.lif`)::

    recurrent:  dv/dt = -v / tau_mem : 1, threshold v > thr, reset v -= thr
    readout:    dv/dt = -v / tau_out : 1   (no threshold)
    synapses:   on_pre: <target>_post += w (the model's input / recurrent
                target; v for the LIF; v of the readout)

Weights are dimensionless, in units of the target variable (the LIF's
threshold is 2 in the same units).

Input encoding (both simulators)
--------------------------------
The network input is binary per (time bin, channel): a binned spike count
``x[b, t, c] > 0`` means "input channel ``c`` spikes in bin ``t``" and feeds
its synapses once, however many spikes fell in the bin (counts are clipped
to 1). :func:`input_spikes` is that rule, and both the Brian2 network and the
torch clone call it; :func:`check_input_shape` is the shared shape check.

Defaults and where they come from
---------------------------------
The published code (EIS-Hub/meta-mosaic, used in Raghunathan et al., NICE 2024)
bins SHD into 100 bins over 1.4 s (14 ms per bin) but computes its decay as
``alpha = exp(-dt / tau)`` with ``dt = 1 ms`` and ``tau = 30 ms``, i.e. a decay
of ``exp(-1/30)`` per *bin*. Our parameters are physical: one simulation step
is one input bin, ``dt = 14 ms``, and the published per-bin decay is
reproduced by ``tau_mem = tau_out = 30 * 14 ms = 420 ms``. Threshold 2 is the
published value.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import Quantity, ms, second

from mosaicnet.errors import ConfigError, DataFormatError
from mosaicnet.network.neuron_brian import check_model
from mosaicnet.network.neuron_model import NeuronModel
from mosaicnet.network.neuron_presets import lif

#: Published per-step decay constant (in steps) of meta-mosaic: tau = 30 steps.
PUBLISHED_TAU_STEPS = 30
#: Width of one input bin of the published preprocessing: 1.4 s / 100 bins.
PUBLISHED_BIN = 14 * ms

#: Format of saved specs. 2: the neuron model as Brian2 code (format 1, the fixed
#: LIF with optional synaptic current, still loads).
SPEC_FORMAT_VERSION = 2
#: Formats :meth:`NetworkSpec.load` reads.
READABLE_FORMATS = (1, 2)


@dataclass(frozen=True)
class NeuronParameters:
    """The neurons of a network: the recurrent model, the readout and the time step.

    Parameters
    ----------
    model
        The recurrent neurons as Brian2 code
        (:class:`~mosaicnet.network.neuron_model.NeuronModel`; default the
        published LIF, :func:`~mosaicnet.network.neuron_presets.lif`). It is
        checked against Brian2 at this ``dt`` on construction
        (:func:`~mosaicnet.network.neuron_brian.check_model`).
    tau_out
        Time constant of the leaky readout integrators (default 420 ms: the
        published 30-step decay at 14 ms per step, see module docstring).
    dt
        Simulation time step; one input bin per step (default 14 ms).
    """

    # Quantities are mutable arrays for dataclasses, hence the factories.
    model: NeuronModel = field(default_factory=lif)
    tau_out: Quantity = field(default_factory=lambda: PUBLISHED_TAU_STEPS * PUBLISHED_BIN)
    dt: Quantity = field(default_factory=lambda: PUBLISHED_BIN * 1)

    def __post_init__(self) -> None:
        for name in ("tau_out", "dt"):
            _check_time(name, getattr(self, name))
        if not isinstance(self.model, NeuronModel):
            raise ConfigError(
                f"model must be a NeuronModel (e.g. mosaicnet.network.neuron_presets.lif()), "
                f"got {self.model!r}"
            )
        check_model(self.model, self.dt)

    def recurrent_equations(self) -> str:
        """Brian2 equations of the recurrent neurons (the model's)."""
        return self.model.equations

    @staticmethod
    def readout_equations() -> str:
        """Brian2 equations of the non-spiking readout integrators."""
        return "dv/dt = -v / tau_out : 1"

    def namespace(self) -> dict[str, Any]:
        """Constants the recurrent neurons' code refers to."""
        return self.model.namespace()

    def readout_namespace(self) -> dict[str, Any]:
        """Constants of the readout equations."""
        return {"tau_out": self.tau_out}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; the model as Brian2 code text, times in seconds."""
        return {
            "model": self.model.to_dict(),
            "tau_out_s": float(self.tau_out / second),
            "dt_s": float(self.dt / second),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronParameters:
        """Inverse of :meth:`to_dict`; also reads spec format 1 (see :func:`_format1_model`)."""
        model = NeuronModel.from_dict(d["model"]) if "model" in d else _format1_model(d)
        return cls(model=model, tau_out=d["tau_out_s"] * second, dt=d["dt_s"] * second)


def _format1_model(d: dict[str, Any]) -> NeuronModel:
    """The neuron model of a format-1 spec: the LIF, or its synaptic-current variant.

    Format 1 stored ``tau_mem_s``, ``threshold`` and ``tau_syn_s`` (``None``
    for delta synapses); those were the :func:`lif` preset and an LIF with
    the current entering as ``(I - v) / tau_mem``.
    """
    try:
        tau_mem, threshold, tau_syn = d["tau_mem_s"] * second, d["threshold"], d.get("tau_syn_s")
    except (KeyError, TypeError) as error:
        raise DataFormatError(
            f"the neuron parameters {d!r} are neither format 2 (with a model) nor format 1"
        ) from error
    if tau_syn is None:
        return lif(tau_mem=tau_mem, thr=threshold)
    return NeuronModel(
        name="cuba_lif_format1",
        equations="dv/dt = (I - v) / tau_mem : 1\ndI/dt = -I / tau_syn : 1",
        threshold="v > thr",
        reset="v -= thr",
        constants={"tau_mem": tau_mem, "tau_syn": tau_syn * second, "thr": threshold},
        input_target="I",
        recurrent_target="I",
        source="mosaicnet spec format 1: LIF with synaptic current (I - v) / tau_mem",
    )


def _check_time(name: str, value: Any) -> None:
    if not isinstance(value, Quantity) or not value.has_same_dimensions(second):
        raise ConfigError(f"{name} must be a Brian2 time (e.g. 20*ms), got {value!r}")
    if not float(value / second) > 0:
        raise ConfigError(f"{name} must be positive, got {value}")


@dataclass
class NetworkSpec:
    """Everything needed to build the network in Brian2 or torch.

    Parameters
    ----------
    n_in
        Number of input channels (after spatial sampling).
    layout
        Serialised :class:`mosaicnet.layout.Layout` (``Layout.to_dict()``); it
        fixes the number of recurrent neurons.
    n_out
        Number of readout units.
    w_in, w_rec, w_out
        Weights, shapes ``(n_in, n_rec)``, ``(n_rec, n_rec)`` and
        ``(n_rec, n_out)``, indexed ``[pre, post]``; float64.
    rec_mask
        Boolean ``(n_rec, n_rec)``: which recurrent connections exist on the
        Mosaic. Only these become synapses; ``w_rec`` is zero elsewhere.
    neuron
        :class:`NeuronParameters`.
    device_model
        Name of a device preset (:func:`mosaicnet.devices.list_presets`).
    read_time
        Time since programming at which the devices are read.
    """

    n_in: int
    layout: dict[str, Any]
    n_out: int
    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    rec_mask: np.ndarray
    neuron: NeuronParameters = field(default_factory=NeuronParameters)
    device_model: str = "ideal"
    read_time: Quantity = field(default_factory=lambda: 0 * second)

    def __post_init__(self) -> None:
        self.w_in = np.asarray(self.w_in, dtype=np.float64)
        self.w_rec = np.asarray(self.w_rec, dtype=np.float64)
        self.w_out = np.asarray(self.w_out, dtype=np.float64)
        self.rec_mask = np.asarray(self.rec_mask, dtype=bool)
        self.validate()

    @property
    def n_rec(self) -> int:
        """Number of recurrent neurons."""
        return int(self.w_rec.shape[0])

    def validate(self) -> None:
        """Check shapes, finiteness and mask consistency; raise ConfigError."""
        for name, value in (("n_in", self.n_in), ("n_out", self.n_out)):
            if int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        n_rec = self.w_rec.shape[0] if self.w_rec.ndim == 2 else -1
        expected = {
            "w_in": (self.n_in, n_rec),
            "w_rec": (n_rec, n_rec),
            "w_out": (n_rec, self.n_out),
            "rec_mask": (n_rec, n_rec),
        }
        for name, shape in expected.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ConfigError(
                    f"{name} has shape {got}, expected {shape} for n_in={self.n_in}, "
                    f"n_rec={n_rec}, n_out={self.n_out}"
                )
        layout_neurons = _layout_neurons(self.layout)
        if layout_neurons != n_rec:
            raise ConfigError(
                f"the layout holds {layout_neurons} neurons but w_rec is {n_rec} x {n_rec}; "
                "build the weights for the layout's size"
            )
        for name in ("w_in", "w_rec", "w_out"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ConfigError(f"{name} contains NaN or infinite values")
        if np.any(self.w_rec[~self.rec_mask] != 0):
            raise ConfigError(
                "w_rec has non-zero weights outside rec_mask (connections that do not exist "
                "on the Mosaic); multiply w_rec by the mask first"
            )
        if not isinstance(self.read_time, Quantity) or not self.read_time.has_same_dimensions(
            second
        ):
            raise ConfigError(f"read_time must be a Brian2 time, got {self.read_time!r}")
        if float(self.read_time / second) < 0:
            raise ConfigError(f"read_time must be >= 0 s, got {self.read_time}")

    # -- persistence -------------------------------------------------------------------------
    def to_metadata(self) -> dict[str, Any]:
        """JSON-able part of the spec (everything but the arrays)."""
        return {
            "format_version": SPEC_FORMAT_VERSION,
            "n_in": int(self.n_in),
            "n_out": int(self.n_out),
            "n_rec": self.n_rec,
            "layout": self.layout,
            "neuron": self.neuron.to_dict(),
            "device_model": self.device_model,
            "read_time_s": float(self.read_time / second),
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the spec to one ``.npz`` file (atomically).

        Raises
        ------
        FileExistsError-like ConfigError
            If the file exists and ``overwrite`` is false: a user's spec is
            never replaced silently.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} exists; pass overwrite=True or choose another file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    metadata=np.array(json.dumps(self.to_metadata())),
                    w_in=self.w_in,
                    w_rec=self.w_rec,
                    w_out=self.w_out,
                    rec_mask=self.rec_mask,
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NetworkSpec:
        """Read a spec written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DataFormatError(f"network spec file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(str(archive["metadata"]))
                arrays = {k: archive[k] for k in ("w_in", "w_rec", "w_out", "rec_mask")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise DataFormatError(
                f"{path} is not a mosaicnet network spec, or is truncated ({error}); write one "
                "with NetworkSpec.save (a run rewrites its specs at the next checkpoint)"
            ) from None
        if meta.get("format_version") not in READABLE_FORMATS:
            raise DataFormatError(
                f"{path} has spec format {meta.get('format_version')!r}; this mosaicnet reads "
                f"formats {READABLE_FORMATS}: a newer mosaicnet wrote it, upgrade to read it"
            )
        return cls(
            n_in=meta["n_in"],
            layout=meta["layout"],
            n_out=meta["n_out"],
            neuron=NeuronParameters.from_dict(meta["neuron"]),
            device_model=meta["device_model"],
            read_time=meta["read_time_s"] * second,
            **arrays,
        )

    # -- NIR ---------------------------------------------------------------------------------
    def to_nir(self, read_time: Any = None, **options: Any) -> Any:
        """The network as a ``nir.NIRGraph`` (needs the optional package ``nir``).

        ``read_time`` ``None`` exports the ideal weights; a time since programming
        (``30*day``, ``30d`` or a Brian2 time) the weights as read from the chip
        programmed by the evaluation's rule. Options and the mapping:
        :func:`mosaicnet.network.nir_graph.to_nir`.
        """
        from mosaicnet.network.nir_graph import to_nir

        return to_nir(self, read_time, **options)

    @classmethod
    def from_nir(cls, graph: Any, *, dt: Any = None) -> NetworkSpec:
        """A spec from a NIR graph of the exported shape.

        See :func:`mosaicnet.network.nir_graph.from_nir`.
        """
        from mosaicnet.network.nir_graph import from_nir

        return from_nir(graph, dt=dt)

    def copy_with(self, **changes: Any) -> NetworkSpec:
        """A new spec with some fields replaced (arrays copied)."""
        fields = {
            "n_in": self.n_in,
            "layout": dict(self.layout),
            "n_out": self.n_out,
            "w_in": self.w_in.copy(),
            "w_rec": self.w_rec.copy(),
            "w_out": self.w_out.copy(),
            "rec_mask": self.rec_mask.copy(),
            "neuron": self.neuron,
            "device_model": self.device_model,
            "read_time": self.read_time,
        }
        fields.update(changes)
        return NetworkSpec(**fields)


def _layout_neurons(layout: dict[str, Any]) -> int:
    try:
        return int(layout["rows"]) * int(layout["cols"]) * int(layout["neurons_per_tile"])
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"layout must be a Layout.to_dict() with rows, cols and neurons_per_tile; got "
            f"{layout!r}"
        ) from error


def input_spikes(x: Any) -> Any:
    """The input encoding of both simulators: a bin with any spike is one spike.

    Parameters
    ----------
    x
        Binned spike counts (or a binary raster), a numpy array or a torch
        tensor of shape ``(batch, time bins, channels)``.

    Returns
    -------
    Boolean array or tensor of the same shape: ``x > 0``. Counts above 1 are
    clipped to one spike per bin: the simulated input neurons emit at most one
    spike per time step (one step is one bin, see :class:`NeuronParameters`).
    """
    return x > 0


def check_input_shape(shape: tuple[int, ...], n_in: int, n_steps: int | None = None) -> None:
    """Raise :class:`ConfigError` unless ``shape`` is ``(batch, time, n_in)``.

    Parameters
    ----------
    shape
        Shape of the input array.
    n_in
        Number of input channels the network has.
    n_steps
        Required number of time bins, or ``None`` for any (>= 1).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        hint = " (add a batch axis: x[None])" if len(shape) == 2 else ""
        raise ConfigError(
            f"input must have shape (batch, time bins, channels), got {len(shape)} dims "
            f"{shape}{hint}"
        )
    batch, steps, channels = shape
    if channels != n_in:
        raise ConfigError(
            f"input has {channels} channels but the network has n_in={n_in}; bin the data "
            f"with {n_in} channels (after spatial sampling) or build the spec for {channels}"
        )
    if batch < 1 or steps < 1:
        raise ConfigError(f"input of shape {shape} is empty (need >= 1 sample and >= 1 bin)")
    if n_steps is not None and steps != n_steps:
        raise ConfigError(
            f"input has {steps} time bins but this network was built for {n_steps}; "
            "build it for the new length or bin the data the same way"
        )


def random_spec(
    n_in: int,
    layout: dict[str, Any],
    n_out: int,
    rec_mask: np.ndarray,
    *,
    neuron: NeuronParameters | None = None,
    gain: float = 0.5,
    seed: int = 0,
    **kwargs: Any,
) -> NetworkSpec:
    """A spec with random normal weights scaled by ``gain / sqrt(fan_in)``.

    ``gain = 0.5`` is the weight gain of the published code (EIS-Hub/meta-mosaic).
    The recurrent fan-in is the mean number of existing connections per neuron
    in ``rec_mask``, so sparse Mosaic masks are not under-driven.
    """
    rng = np.random.default_rng(seed)
    rec_mask = np.asarray(rec_mask, dtype=bool)
    n_rec = rec_mask.shape[0]
    fan_rec = max(1.0, rec_mask.sum() / max(n_rec, 1))
    w_in = rng.normal(0.0, gain / np.sqrt(n_in), (n_in, n_rec))
    w_rec = rng.normal(0.0, gain / np.sqrt(fan_rec), (n_rec, n_rec)) * rec_mask
    w_out = rng.normal(0.0, gain / np.sqrt(n_rec), (n_rec, n_out))
    return NetworkSpec(
        n_in=n_in,
        layout=layout,
        n_out=n_out,
        w_in=w_in,
        w_rec=w_rec,
        w_out=w_out,
        rec_mask=rec_mask,
        neuron=neuron or NeuronParameters(),
        **kwargs,
    )
