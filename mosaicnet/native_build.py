"""Compile the package's C sources into cached shared libraries, for ctypes to load.

Two parts of the package have compiled kernels: the fused recurrent layer
(``mosaicnet/network/fused_kernels.c``) and event binning
(``mosaicnet/data/binning_kernels.c``). Each source is compiled with the system's
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

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FLAGS", "LIBRARIES", "build_library", "native_disabled"]

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
