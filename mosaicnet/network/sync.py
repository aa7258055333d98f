"""Moving weights between the torch clone and the Brian2 network's memristors.

torch -> Brian2 (:func:`program_clone_weights`)
    The clone's weights are programmed into the network's devices as the
    chip would be: each signed weight becomes a target differential pair,
    programming noise is added, every device draws its drift parameter once
    and remembers its programming time (:func:`mosaicnet.devices.program_weights`).
    The programmed state goes into the Brian2 synapses (standalone networks:
    as ``run_args`` of their next run, without recompiling).

Brian2 -> torch (:func:`read_clone_params`)
    The effective weights the Brian2 synapses compute from their
    conductances at read time ``t`` (drift, and read noise if the model has
    it) come back as clone parameters: the clone then simulates the chip as
    read at ``t``.

Example
-------
>>> network = BrianNetwork(spec, n_steps=100, backend="cython")     # doctest: +SKIP
>>> program_clone_weights(network, params, rng=0)                   # doctest: +SKIP
>>> day = read_clone_params(network, t_read_s=86400.0)              # doctest: +SKIP
>>> z, v_out = clone.forward(day, x)                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.network.brian_network import PATHWAYS, BrianNetwork


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").double().numpy()
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} contains NaN or infinite values; cannot program it")
    return array


def program_clone_weights(
    network: BrianNetwork,
    params: Mapping[str, Any],
    *,
    names: Iterable[str] = PATHWAYS,
    rng: np.random.Generator | int | None = 0,
    t_prog_s: float = 0.0,
    t_read_s: float | None = None,
    w_scale: Mapping[str, float] | None = None,
    clip: bool = False,
) -> dict[str, Any]:
    """Program clone weights into the devices of a Brian2 network (torch -> Brian2).

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
    rng
        Seed or Generator of programming noise and drift parameters.
    t_prog_s
        Programming time (seconds, on the clock of the read time).
    t_read_s
        New read time (seconds); default: keep the network's.
    w_scale
        Per pathway weight of a full-range pair; default ``max |w|`` of each.
    clip
        Saturate weights beyond ``w_scale`` instead of raising.

    Returns
    -------
    dict
        The ``ProgrammedArray`` per programmed pathway (save it to re-create
        the same chip).
    """
    from mosaicnet.devices import program_weights
    from mosaicnet.devices.programming import as_generator

    names = list(names)
    unknown = [name for name in names if name not in PATHWAYS]
    if unknown:
        raise ConfigError(f"unknown pathway(s) {unknown}; choose from {PATHWAYS}")
    generator = as_generator(rng)
    programmed = {}
    for name in names:
        if name not in params:
            raise ConfigError(f"params lack {name!r} (have {sorted(params)})")
        weights = _to_numpy(params[name], name)
        expected = getattr(network.spec, name).shape
        if weights.shape != expected:
            raise ConfigError(f"{name} has shape {weights.shape}, the network's is {expected}")
        if name == "w_rec":
            weights = weights * network.spec.rec_mask
        programmed[name] = program_weights(
            weights,
            network.form.model,
            rng=generator,
            w_scale=None if w_scale is None else w_scale.get(name),
            t_prog_s=t_prog_s,
            clip=clip,
        )
    network.program(programmed, t_read_s=t_read_s)
    return programmed


def read_clone_params(
    network: BrianNetwork,
    *,
    t_read_s: float | None = None,
    dtype: Any = None,
    device: Any = "cpu",
) -> dict[str, Any]:
    """Effective weights of the Brian2 synapses as clone parameters (Brian2 -> torch).

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
    weights = network.effective_weights()
    return {
        name: torch.as_tensor(value, dtype=dtype or torch.float64, device=device)
        for name, value in weights.items()
    }
