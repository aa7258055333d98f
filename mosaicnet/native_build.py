"""Compile the package's C sources into cached shared libraries, for ctypes to load.

Three parts of the package have compiled kernels: the fused recurrent layer
(``mosaicnet/network/fused_kernels.c``), event binning
(``mosaicnet/data/binning_kernels.c``) and the readout's inner loop
(``mosaicnet/meta/readout_kernels.c``). Each source is compiled with the system's
C compiler (``$CC``, else ``cc``) the first time it is needed, into a per-user
cache (``$MOSAICNET_CACHE``, else ``$XDG_CACHE_HOME/mosaicnet`` or
``~/.cache/mosaicnet``) under a name that hashes the source, the flags and the
CPU's features; later processes load the cached library.

Every caller keeps a pure torch/numpy path that computes the same, used where no
compiler works or where ``MOSAICNET_NATIVE=0``.

Flags: ``-O3 -march=native`` for the machine's vector units, ``-fopenmp``, and
``-ffp-contract=off`` so that no multiply and add are fused into one rounding:
each operation then rounds as torch's and numpy's do.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import torch

__all__ = ["FLAGS", "LIBRARIES", "NativeLibrary", "build_library", "native_disabled"]

logger = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fPIC", "-shared")
#: Libraries, after the source on the command line (the sigmoid surrogate's exp).
LIBRARIES = ("-lm",)


def native_disabled() -> bool:
    """True where the user turned the compiled kernels off (``MOSAICNET_NATIVE=0``)."""
    return os.environ.get("MOSAICNET_NATIVE", "1") == "0"


def build_library(source: Path, defines: Mapping[str, str] | None = None) -> Path:
    """Path of the shared library built from ``source``, compiling it unless cached.

    Parameters
    ----------
    source
        A C file of the package.
    defines
        Preprocessor definitions (``{"REAL": "float"}`` -> ``-DREAL=float``); each
        set of definitions is its own library.

    Raises
    ------
    OSError
        No compiler, or the compiler failed (its message included).
    subprocess.SubprocessError
        The compiler ran past two minutes.
    """
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler {compiler!r} on PATH (set $CC)")
    defines = dict(defines or {})
    flags = (*FLAGS, *(f"-D{name}={value}" for name, value in sorted(defines.items())))
    key = hashlib.sha256()
    key.update(source.read_bytes())
    key.update(" ".join((compiler, *flags, *LIBRARIES)).encode())
    key.update(_cpu_features().encode())
    tag = "".join(f"_{value}" for _, value in sorted(defines.items()))
    target = _cache_dir() / f"{source.stem}{tag}_{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent processes never load half a file.
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        built = Path(work) / target.name
        result = subprocess.run(
            [compiler, *flags, str(source), "-o", str(built), *LIBRARIES],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise OSError(f"{compiler} exited with {result.returncode}: {result.stderr.strip()}")
        os.replace(built, target)
    return target


class NativeLibrary:
    """The functions of one C source, per floating-point type, built and loaded on first use.

    The source is compiled with ``-DREAL=float`` and ``-DREAL=double``. A failed
    build is warned about once, naming what runs instead (``fallback``), and not
    retried in this process.

    Parameters
    ----------
    source
        The C file.
    signatures
        Function name -> ctypes argument types (each returns void).
    fallback
        What the caller does without the library, for the warning.
    """

    def __init__(
        self, source: Path, signatures: Mapping[str, Sequence[type]], fallback: str
    ) -> None:
        self.source = source
        self.signatures = dict(signatures)
        self.fallback = fallback
        self.failure: str | None = None
        self._loaded: dict[torch.dtype, SimpleNamespace] = {}
        self._lock = threading.Lock()

    def functions(self, dtype: torch.dtype) -> SimpleNamespace | None:
        """The functions for ``dtype`` (float32 or float64) as attributes, or None."""
        if native_disabled() or self.failure is not None:
            return None
        if dtype not in (torch.float32, torch.float64):
            return None
        with self._lock:
            if dtype not in self._loaded:
                real = "float" if dtype == torch.float32 else "double"
                try:
                    library = ctypes.CDLL(str(build_library(self.source, {"REAL": real})))
                except (OSError, subprocess.SubprocessError) as error:
                    self.failure = f"building {self.source.name} failed: {error}"
                    logger.warning(
                        "%s; %s (same results, slower; MOSAICNET_NATIVE=0 silences this)",
                        self.failure, self.fallback,
                    )  # fmt: skip
                    return None
                functions = {}
                for name, arguments in self.signatures.items():
                    function = getattr(library, name)
                    function.argtypes = list(arguments)
                    function.restype = None
                    functions[name] = function
                self._loaded[dtype] = SimpleNamespace(**functions)
            return self._loaded[dtype]


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
