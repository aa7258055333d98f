"""The fused layer's compiled kernels: built from ``fused_kernels.c`` once, loaded by ctypes.

Torch runs the fused layer's time loop as a dozen small operations per step, each
a pass over the ``(B, N)`` state with its own dispatch and temporary; on a CPU it
does not fuse them. ``fused_kernels.c`` does a step's element-wise work in one
pass (and the forward's whole time loop in one call, samples spread over OpenMP
threads). It is compiled twice (``float`` and ``double``) by
:func:`mosaicnet.native_build.build_library`, which caches the libraries per user.

Without a working compiler the fused layer keeps its torch loop, which computes
the same function: :func:`load_kernels` returns None and :func:`unavailable_reason`
says why. ``MOSAICNET_NATIVE=0`` turns the kernels off.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch._C import _functorch

from mosaicnet.native_build import NativeLibrary, native_disabled

__all__ = [
    "MAX_STATES",
    "Kernels",
    "ModelParameters",
    "load_kernels",
    "storage_tensor",
    "unavailable_reason",
]

#: Most state variables a compiled model may have (``MAX_STATES`` in the C source).
MAX_STATES = 8
SOURCE = Path(__file__).with_name("fused_kernels.c")
#: Surrogate names in the kernels' numbering.
SURROGATE_CODES = {"fast_sigmoid": 0, "sigmoid": 1, "triangular": 2}

_Matrix = ctypes.c_double * MAX_STATES * MAX_STATES
_Vector = ctypes.c_double * MAX_STATES


class ModelParameters(ctypes.Structure):
    """The C ``model_t``: a compiled neuron's affine form and surrogate."""

    _fields_ = [
        ("n_states", ctypes.c_int),
        ("input_index", ctypes.c_int),
        ("recurrent_index", ctypes.c_int),
        ("inclusive", ctypes.c_int),
        ("surrogate", ctypes.c_int),
        ("slope", ctypes.c_double),
        ("weight_unit", ctypes.c_double),
        ("update", _Matrix),
        ("update_offset", _Vector),
        ("threshold", _Vector),
        ("threshold_offset", ctypes.c_double),
        ("reset", _Matrix),
        ("reset_offset", _Vector),
        ("spike_matrix", _Matrix * 2),
        ("spike_offset", _Vector * 2),
        ("initial", _Vector),
    ]

    def set_array(self, name: str, values: np.ndarray) -> None:
        """Copy ``values`` into the leading part of field ``name`` (zeros elsewhere)."""
        target = np.ctypeslib.as_array(getattr(self, name))
        target[...] = 0.0
        values = np.asarray(values, dtype=np.float64)
        target[tuple(slice(0, size) for size in values.shape)] = values


_POINTER = ctypes.c_void_p
_SIGNATURES = {
    "fused_forward": [ctypes.POINTER(ModelParameters), ctypes.c_long, ctypes.c_long,
                      ctypes.c_long, _POINTER, _POINTER, _POINTER, _POINTER, _POINTER,
                      _POINTER, ctypes.c_int],
    "fused_backward_step": [ctypes.POINTER(ModelParameters), ctypes.c_long, ctypes.c_long,
                            _POINTER, _POINTER, _POINTER, _POINTER, ctypes.c_long, _POINTER,
                            ctypes.c_long, _POINTER, _POINTER, _POINTER, _POINTER, _POINTER,
                            ctypes.c_int],
    "input_drive": [ctypes.c_long, ctypes.c_long, ctypes.c_long, _POINTER, _POINTER, _POINTER,
                    ctypes.c_int],
    "leaky_recursion": [ctypes.c_long, ctypes.c_long, ctypes.c_long, _POINTER, ctypes.c_long,
                        ctypes.c_long, ctypes.c_double, ctypes.c_int, _POINTER, ctypes.c_int],
    "spike_weight_gradient": [ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_long,
                              _POINTER, ctypes.c_long, ctypes.c_long, _POINTER, ctypes.c_long,
                              ctypes.c_long, _POINTER, _POINTER, ctypes.c_int],
}  # fmt: skip


@dataclass(frozen=True)
class Kernels:
    """The kernels of one floating-point type (ctypes functions, see ``fused_kernels.c``)."""

    forward: ctypes._CFuncPtr
    backward_step: ctypes._CFuncPtr
    input_drive: ctypes._CFuncPtr
    leaky_recursion: ctypes._CFuncPtr
    spike_weight_gradient: ctypes._CFuncPtr


#: The compiled library, per floating-point type (built on first use).
LIBRARY = NativeLibrary(SOURCE, _SIGNATURES, fallback="the fused layer runs its torch loops")
_kernels: dict[torch.dtype, Kernels] = {}


def unavailable_reason() -> str | None:
    """Why the kernels cannot be used (None when they can, or were not tried yet)."""
    if native_disabled():
        return "MOSAICNET_NATIVE=0"
    return LIBRARY.failure


def load_kernels(dtype: torch.dtype) -> Kernels | None:
    """The kernels for ``dtype`` (``float32`` or ``float64``), compiled on first use.

    Returns None where they are off or cannot be built (:func:`unavailable_reason`);
    a failed build is warned about once and not retried in this process.
    """
    functions = LIBRARY.functions(dtype)
    if functions is None:
        return None
    if _kernels.get(dtype) is None or _kernels[dtype].forward is not functions.fused_forward:
        _kernels[dtype] = Kernels(
            forward=functions.fused_forward,
            backward_step=functions.fused_backward_step,
            input_drive=functions.input_drive,
            leaky_recursion=functions.leaky_recursion,
            spike_weight_gradient=functions.spike_weight_gradient,
        )
    return _kernels[dtype]


def storage_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` without ``torch.func`` wrappers: the tensor that owns the memory.

    Under ``torch.func.grad`` the layers receive wrapped tensors, which have no
    data pointer for the kernels; their values are the wrapped tensor's. Calls
    into the kernels run with torch.func's dispatch off
    (``torch._C._DisableFuncTorch``), so that the tensors they allocate are plain
    too; torch.func takes the plain results as it takes constants.
    """
    while _functorch.is_functorch_wrapped_tensor(tensor):
        tensor = _functorch.get_unwrapped(tensor)
    return tensor
