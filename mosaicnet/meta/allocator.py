"""Keep freed memory in the process, so that large tensors are not page-faulted in anew.

A training step allocates and frees tens of arrays of ``(B, T, N)`` floats (40 MB
at the published size). glibc's malloc serves blocks that large with ``mmap``
and returns them to the kernel on ``free``; the next allocation of the same
size then touches fresh pages, and the page faults cost more than the
arithmetic done on the array (measured: a 40 MB ``torch.zeros`` 20 ms with the
default settings, 4 ms with these; one outer step of the published setting
about 0.7 s of CPU against 0.45 s, ``benchmarks/bench_fused.py``). The PyTorch
performance-tuning guide's remedy is another allocator (jemalloc, tcmalloc)
preloaded into the process; :func:`reuse_freed_memory` asks glibc for the same
behaviour through ``mallopt`` (glibc ``malloc(3)``): no ``mmap`` for large
blocks (``M_MMAP_MAX = 0``) and no trimming of the heap (``M_TRIM_THRESHOLD``).
The peak resident set is unchanged; memory freed after the peak stays with the
process until it ends, as it would with those allocators.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["default_allocation", "reuse_freed_memory"]

# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults (mallopt(3)): 128 KiB trim threshold, 65536 mmap'd blocks at most.
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
# mallopt takes an int: the largest, 2 GiB of free memory at the heap's top before
# any is returned (more than a training step frees).
_NO_TRIM = 2**31 - 1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library when it is glibc (which has ``mallopt``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring).

    Returns whether the setting took effect: ``False`` off glibc (macOS, musl),
    where the default allocator stays and training is only slower.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM))


def default_allocation() -> bool:
    """Restore glibc's default settings and return freed heap memory to the system.

    For benchmarks that compare with the default behaviour in the same process.
    """
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX))
    done = bool(libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)) and done
    libc.malloc_trim(0)
    return done
