"""The gcc flags Brian2's generated C++ code is compiled with: exact or fast.

Brian2's default C++ flags include ``-ffast-math -march=native``, which let
the compiler reassociate and fuse floating-point operations: results then
differ from a float64 reference by ~1e-16 and spikes at threshold can flip.
The exact mode compiles with :data:`EXACT_COMPILE_ARGS` instead (IEEE order of
operations, no FMA contraction from ``-march=native``); it was measured to
cost no speed. The CPU backends (:mod:`mosaicnet.network.brian_backends`) and
the host code of ``cuda_standalone`` (:mod:`mosaicnet.network.gpu_backends`)
use the same flags, so both round alike.
"""

from __future__ import annotations

#: C++ flags of the exact mode: Brian2's defaults without -ffast-math and -march=native.
EXACT_COMPILE_ARGS: tuple[str, ...] = ("-w", "-O3")


def compile_args(exact: bool) -> list[str]:
    """The gcc flags for Brian2's C++ code: :data:`EXACT_COMPILE_ARGS`, or the current
    preference (Brian2's fast default unless the user changed it)."""
    from brian2 import prefs

    if exact:
        return list(EXACT_COMPILE_ARGS)
    return list(prefs["codegen.cpp.extra_compile_args_gcc"])
