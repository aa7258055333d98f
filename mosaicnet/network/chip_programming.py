"""Programming the chip (weights -> memristors) and reading it back (chip -> torch weights).

Every programmed chip in mosaicnet comes from :func:`program_chip`, so the
chip a protocol records rasters and routing traffic on is the chip whose
accuracy it reports (same seed: same conductances):

Programming (:func:`program_chip`, :func:`program_spec`, :func:`program_clone_params`)
    Each signed weight becomes a target differential pair of the device
    model, programming noise is added, every device draws its drift parameter
    once and remembers its programming time (:func:`mosaicnet.devices.program_weights`).
    Weight scales (the weight of a full-range pair): ``max |w|`` for ``w_in``
    and ``w_rec``; ``readout_headroom * max |w_out|`` for the readout, so that
    few-shot updates have conductance range to grow into
    (:mod:`mosaicnet.meta.readout_range`). The noise of the three pathways comes
    from one stream derived from the seed (:func:`random_stream` with
    :data:`STREAM_PROGRAM`), drawn in the order of :data:`PATHWAYS`.

Reading (:func:`read_clone_params`, :func:`compensated_chip`)
    The effective weights the Brian2 synapses compute from their conductances
    at read time ``t`` (drift, and read noise if the model has it) come back as
    clone parameters: the clone then simulates the chip as read at ``t``. With
    global drift compensation the chip's gains are rescaled at ``t`` from a
    calibration read (:func:`calibration_sums`, :func:`compensated_chip`).

Random streams: every random draw of a chip's life comes from an independent
stream of one seed (:func:`random_stream` with the ``STREAM_*`` keys), so that,
e.g., evaluating more tasks never changes how the chip was programmed.

Example
-------
>>> network = BrianNetwork(spec, n_steps=100, backend="cython")     # doctest: +SKIP
>>> program_clone_params(network, params, seed=0)                   # doctest: +SKIP
>>> day = read_clone_params(network, t_read_s=86400.0)              # doctest: +SKIP
>>> z, v_out = clone.forward(day, x)                                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.meta.readout_range import DEFAULT_READOUT_HEADROOM, readout_range
from mosaicnet.network.brian_network import PATHWAYS, BrianNetwork

#: Keys of the independent random streams of one seed (:func:`random_stream`):
#: programming noise and drift parameters, readout writes, calibration reads,
#: Brian2's read noise.
STREAM_PROGRAM, STREAM_WRITE, STREAM_CALIBRATE, STREAM_BRIAN = range(4)


def random_stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of stream ``key`` of ``seed`` (independent of every other key)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def brian_seed(seed: int) -> int:
    """The seed of Brian2's own random numbers (read noise) for a chip of ``seed``."""
    return int(random_stream(seed, STREAM_BRIAN).integers(2**31))


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").double().numpy()
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} contains NaN or infinite values; cannot program it")
    return array


def program_chip(
    weights: Mapping[str, Any],
    device_model: Any,
    *,
    seed: int = 0,
    noise: bool = True,
    readout_headroom: float = DEFAULT_READOUT_HEADROOM,
    t_prog_s: float = 0.0,
) -> dict[str, Any]:
    """Program weights into devices of ``device_model`` (the module's rule).

    Parameters
    ----------
    weights
        Some of ``{"w_in", "w_rec", "w_out"}`` -> dense weights (arrays or tensors).
    device_model
        A device model or preset name (:func:`mosaicnet.devices.get_device_model`).
    seed
        Seed of programming noise and drift parameters (:data:`STREAM_PROGRAM`).
    noise
        Programming noise (drift parameters are drawn either way).
    readout_headroom
        Weight scale of ``w_out`` over ``max |w_out|``.
    t_prog_s
        Programming time (seconds, on the clock of the read time).

    Returns
    -------
    dict
        ``ProgrammedArray`` per pathway, holding ``device_model`` itself (also
        with ``noise=False``, so that a network checks it against its spec's).
    """
    from mosaicnet.devices import get_device_model, program_weights
    from mosaicnet.devices.mapping import derive_w_scale

    unknown = sorted(set(weights) - set(PATHWAYS))
    if unknown:
        raise ConfigError(f"unknown pathway(s) {unknown}; choose from {PATHWAYS}")
    model = get_device_model(device_model)
    writer = model if noise else model.with_parameters(programming_noise=False)
    rng = random_stream(seed, STREAM_PROGRAM)
    arrays = {}
    for name in (name for name in PATHWAYS if name in weights):
        values = _to_numpy(weights[name], name)
        scale = (
            readout_range(values, readout_headroom) if name == "w_out" else derive_w_scale(values)
        )
        programmed = program_weights(values, writer, rng=rng, w_scale=scale, t_prog_s=t_prog_s)
        arrays[name] = dataclasses.replace(programmed, model=model)
    return arrays


def program_spec(
    spec: Any,
    *,
    seed: int = 0,
    noise: bool = True,
    readout_headroom: float = DEFAULT_READOUT_HEADROOM,
) -> dict[str, Any]:
    """The spec's three weight matrices programmed into its device model at ``t = 0``.

    :func:`program_chip` of the spec's weights: the chip the chip-in-the-loop
    evaluation and the protocols' recordings of a run use for the same seed.
    """
    weights = {name: getattr(spec, name) for name in PATHWAYS}
    return program_chip(
        weights, spec.device_model, seed=seed, noise=noise, readout_headroom=readout_headroom
    )


def program_clone_params(
    network: BrianNetwork,
    params: Mapping[str, Any],
    *,
    names: Iterable[str] = PATHWAYS,
    seed: int = 0,
    noise: bool = True,
    readout_headroom: float = DEFAULT_READOUT_HEADROOM,
    t_prog_s: float = 0.0,
    t_read_s: float | None = None,
) -> dict[str, Any]:
    """Program clone parameters into the devices of a Brian2 network (torch -> chip).

    Parameters
    ----------
    network
        The Brian2 network (its spec's device model is used).
    params
        Clone parameters (tensors or arrays) ``{"w_in", "w_rec", "w_out"}``;
        ``w_rec`` is masked with the spec's mask (only existing synapses are
        programmed).
    names
        Which pathways to (re)program, e.g. ``("w_out",)`` for a readout update.
    seed, noise, readout_headroom, t_prog_s
        As :func:`program_chip`.
    t_read_s
        New read time (seconds); default: keep the network's.

    Returns
    -------
    dict
        The ``ProgrammedArray`` per programmed pathway (save it to re-create
        the same chip).
    """
    names = list(names)
    unknown = [name for name in names if name not in PATHWAYS]
    if unknown:
        raise ConfigError(f"unknown pathway(s) {unknown}; choose from {PATHWAYS}")
    weights = {}
    for name in names:
        if name not in params:
            raise ConfigError(f"params lack {name!r} (have {sorted(params)})")
        values = _to_numpy(params[name], name)
        expected = getattr(network.spec, name).shape
        if values.shape != expected:
            raise ConfigError(f"{name} has shape {values.shape}, the network's is {expected}")
        weights[name] = values * network.spec.rec_mask if name == "w_rec" else values
    programmed = program_chip(
        weights, network.form.model, seed=seed, noise=noise,
        readout_headroom=readout_headroom, t_prog_s=t_prog_s,
    )  # fmt: skip
    network.program(programmed, t_read_s=t_read_s)
    return programmed


def read_clone_params(
    network: BrianNetwork,
    *,
    t_read_s: float | None = None,
    dtype: Any = None,
    device: Any = "cpu",
) -> dict[str, Any]:
    """Effective weights of the Brian2 synapses as clone parameters (chip -> torch).

    Parameters
    ----------
    network
        The Brian2 network.
    t_read_s
        Read the devices at this time (seconds on the programming clock);
        default: the network's current read time.
    dtype, device
        Of the returned tensors (default ``torch.float64``, CPU).

    Returns
    -------
    dict
        ``{"w_in", "w_rec", "w_out"}`` tensors, dense, zeros where no synapse exists.
    """
    import torch

    if t_read_s is not None:
        network.set_read_time(t_read_s)
    weights = network.weights_as_read()
    return {
        name: torch.as_tensor(value, dtype=dtype or torch.float64, device=device)
        for name, value in weights.items()
    }


def calibration_sums(chip: Mapping[str, Any], *, seed: int, noise: bool) -> dict[str, float]:
    """``sum |w|`` per pathway of a calibration read right after programming (``t = 0``).

    The reference of global drift compensation (:func:`compensated_chip`);
    read noise from :data:`STREAM_CALIBRATE` of ``seed`` when ``noise``.
    """
    rng = random_stream(seed, STREAM_CALIBRATE, 0)
    return {
        name: float(np.abs(array.read_weights(0.0, rng=rng, read_noise=noise)).sum())
        for name, array in chip.items()
    }


def compensated_chip(
    chip: Mapping[str, Any],
    references: Mapping[str, float],
    t_read_s: float,
    *,
    seed: int,
    noise: bool,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The chip whose gains (``w_scale``) carry global drift compensation at ``t_read_s``.

    Each pathway's factor is ``references[name]`` (:func:`calibration_sums`)
    over ``sum |w|`` of a calibration read at ``t_read_s``
    (:class:`mosaicnet.devices.GlobalDriftCompensation`; V. Joshi et al., Nat.
    Commun. 11, 2473, 2020). Returns the rescaled arrays and the factors.
    """
    from mosaicnet.devices import GlobalDriftCompensation

    rng = random_stream(seed, STREAM_CALIBRATE, 1, int(t_read_s * 1e3))
    views, factors = {}, {}
    for name, array in chip.items():
        read = array.read_weights(t_read_s, rng=rng if noise else None, read_noise=noise)
        factor = float(GlobalDriftCompensation(references[name]).factor(read))
        views[name] = dataclasses.replace(array, w_scale=array.w_scale * factor)
        factors[name] = factor
    return views, factors
