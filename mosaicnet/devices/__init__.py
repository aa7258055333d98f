"""Memristor device models: conductance pairs, programming noise, drift, read noise.

The pieces compose, in the manner of IBM aihwkit's inference noise models:

* :mod:`~mosaicnet.devices.models` — the :class:`DeviceModel` abstraction (four
  element-wise laws and their composition); presets in
  :mod:`~mosaicnet.devices.ideal`, :mod:`~mosaicnet.devices.pcm`,
  :mod:`~mosaicnet.devices.rram`, a user-parameterised
  :class:`PowerLawDriftDevice`, and the lookup :func:`get_device_model`;
* :mod:`~mosaicnet.devices.mapping` — signed weights <-> differential pairs,
  weight scale, quantisation;
* :mod:`~mosaicnet.devices.programming` — :func:`program_weights` and the
  :class:`ProgrammedArray` (read at any time after programming, save/load);
* :mod:`~mosaicnet.devices.compensation` — switchable global drift compensation;
* :mod:`~mosaicnet.devices.perturbation` — the same model as a training-time
  torch perturbation with a straight-through gradient;
* :mod:`~mosaicnet.devices.brian_form` — the same model as Brian2 synaptic
  variables and read code;
* :mod:`~mosaicnet.devices.figures` and :mod:`~mosaicnet.devices.weight_error`
  — plots and the weight-error-versus-time table.

torch and brian2 are imported only by the modules that need them.

Examples
--------
>>> import numpy as np
>>> from mosaicnet.devices import get_device_model, program_weights
>>> model = get_device_model("pcm_aihwkit")
>>> chip = program_weights(np.array([[0.1, -0.2], [0.0, 0.3]]), model, rng=0)
>>> g_plus, g_minus = chip.read_conductances(3600.0, rng=1)
>>> bool(((g_plus >= model.g_min_siemens) & (g_plus <= model.g_max_siemens)).all())
True
"""

from mosaicnet.devices.compensation import GlobalDriftCompensation
from mosaicnet.devices.ideal import IdealDevice
from mosaicnet.devices.mapping import (
    ConductancePair,
    conductances_to_weights,
    derive_w_scale,
    quantise_conductance,
    weights_to_conductances,
)
from mosaicnet.devices.models import DeviceModel, device_model_from_dict
from mosaicnet.devices.pcm import AihwkitPCM, NandakumarPCM
from mosaicnet.devices.power_law import PowerLawDriftDevice
from mosaicnet.devices.programming import ProgrammedArray, program_conductances, program_weights
from mosaicnet.devices.registry import get_device_model, list_presets
from mosaicnet.devices.rram import HfOxRRAM

__all__ = [
    "AihwkitPCM",
    "ConductancePair",
    "DeviceModel",
    "GlobalDriftCompensation",
    "HfOxRRAM",
    "IdealDevice",
    "NandakumarPCM",
    "PowerLawDriftDevice",
    "ProgrammedArray",
    "conductances_to_weights",
    "derive_w_scale",
    "device_model_from_dict",
    "get_device_model",
    "list_presets",
    "program_conductances",
    "program_weights",
    "quantise_conductance",
    "weights_to_conductances",
]
