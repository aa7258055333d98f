"""The fused layer's compiled kernels: built from ``fused_kernels.c`` once, loaded by ctypes.

Torch runs the fused layer's time loop as a dozen small operations per step, each
a pass over the ``(B, N)`` state with its own dispatch and temporary; on a CPU it
does not fuse them. ``fused_kernels.c`` does a step's element-wise work in one
pass (and the forward's whole time loop in one call, samples spread over OpenMP
threads). It is compiled with the system's C compiler (``$CC``, else ``cc``) the
first time it is needed, twice (``float`` and ``double``), into a per-user cache
(``$MOSAICNET_CACHE``, else ``$XDG_CACHE_HOME/mosaicnet`` or ``~/.cache/mosaicnet``)
under a name that hashes the source, the flags and the CPU's features; later
processes load the cached libraries.

Without a working compiler the fused layer keeps its torch loop, which computes
the same function: :func:`load_kernels` returns None and :func:`unavailable_reason`
says why. ``MOSAICNET_NATIVE=0`` turns the kernels off.

Flags: ``-O3 -march=native`` for the machine's vector units, ``-fopenmp``, and
``-ffp-contract=off`` so that no multiply and add are fused into one rounding:
each operation then rounds as torch's does.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch._C import _functorch

__all__ = [
    "MAX_STATES",
    "Kernels",
    "ModelParameters",
    "load_kernels",
    "storage_tensor",
    "unavailable_reason",
]

logger = logging.getLogger(__name__)

#: Most state variables a compiled model may have (``MAX_STATES`` in the C source).
MAX_STATES = 8
SOURCE = Path(__file__).with_name("fused_kernels.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fPIC", "-shared")
#: Libraries, after the source on the command line (the sigmoid surrogate's exp).
LIBRARIES = ("-lm",)
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


_lock = threading.Lock()
_loaded: dict[torch.dtype, Kernels] = {}
_failure: str | None = None


def unavailable_reason() -> str | None:
    """Why the kernels cannot be used (None when they can, or were not tried yet)."""
    if os.environ.get("MOSAICNET_NATIVE", "1") == "0":
        return "MOSAICNET_NATIVE=0"
    return _failure


def load_kernels(dtype: torch.dtype) -> Kernels | None:
    """The kernels for ``dtype`` (``float32`` or ``float64``), compiled on first use.

    Returns None where they are off or cannot be built (:func:`unavailable_reason`);
    a failed build is not retried in this process.
    """
    global _failure
    if unavailable_reason() is not None or dtype not in (torch.float32, torch.float64):
        return None
    with _lock:
        if dtype not in _loaded:
            try:
                library = ctypes.CDLL(str(_build(dtype)))
            except (OSError, subprocess.SubprocessError) as error:
                _failure = f"building {SOURCE.name} failed: {error}"
                # Said once per process: the torch loops compute the same, about 2x slower.
                logger.warning(
                    "%s; the fused layer runs its torch loops (same results, slower; "
                    "MOSAICNET_NATIVE=0 silences this)",
                    _failure,
                )
                return None
            functions = {}
            for name, arguments in _SIGNATURES.items():
                function = getattr(library, name)
                function.argtypes = arguments
                function.restype = None
                functions[name] = function
            _loaded[dtype] = Kernels(
                forward=functions["fused_forward"],
                backward_step=functions["fused_backward_step"],
                input_drive=functions["input_drive"],
                leaky_recursion=functions["leaky_recursion"],
                spike_weight_gradient=functions["spike_weight_gradient"],
            )
        return _loaded[dtype]


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


def _cache_dir() -> Path:
    if "MOSAICNET_CACHE" in os.environ:
        return Path(os.environ["MOSAICNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mosaicnet"


def _cpu_features() -> str:
    """The CPU's flags line (Linux), so that ``-march=native`` builds are not shared."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return ""


def _build(dtype: torch.dtype) -> Path:
    """Path of the shared library for ``dtype``, compiling it unless cached."""
    real = "float" if dtype == torch.float32 else "double"
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler {compiler!r} on PATH (set $CC)")
    flags = (*FLAGS, f"-DREAL={real}")
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join((compiler, *flags, *LIBRARIES)).encode())
    key.update(_cpu_features().encode())
    target = _cache_dir() / f"fused_kernels_{real}_{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent processes never load half a file.
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        built = Path(work) / target.name
        result = subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", str(built), *LIBRARIES],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise OSError(f"{compiler} exited with {result.returncode}: {result.stderr.strip()}")
        os.replace(built, target)
    return target
