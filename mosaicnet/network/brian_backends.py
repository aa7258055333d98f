"""Selecting a Brian2 backend: runtime code targets and standalone projects.

One argument picks the backend of :class:`mosaicnet.network.brian_network.BrianNetwork`:

``"numpy"``, ``"cython"``
    Brian2's runtime code targets. Preferences are set around each run and
    put back afterwards, so networks of different backends can live in one
    process.
``"cpp_standalone"``
    Brian2 generates and compiles a C++ project ONCE; every batch of samples
    re-runs the compiled program with new input through
    ``device.run(run_args=...)`` (Brian2 >= 2.6). The project lives in a fresh
    temporary directory per network (on ``/dev/shm`` when available: writing
    results to tmpfs was 10-20x faster per run than to disk in a feasibility
    study on this project's machines), removed by :meth:`StandaloneProject.close`.
``"cuda_standalone"``
    The same through brian2cuda, configured by
    :mod:`mosaicnet.network.gpu_backends`; running needs an NVIDIA GPU.
``"genn"``
    Not supported: brian2genn cannot re-run a compiled model with new values
    (``run_args``), and its latest release needs an older Brian2; asking for it
    raises :class:`BackendUnavailableError` with the reason and what would be
    needed (:data:`GENN_REFUSAL`).

``exact=True`` (the default) compiles with the IEEE-exact flags of
:mod:`mosaicnet.network.compile_flags`.

A standalone device is process-wide state in Brian2: building a second
standalone network in the same process starts a new project, and the first
network can no longer run (it says so instead of returning wrong results).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mosaicnet.errors import BackendUnavailableError, ConfigError
from mosaicnet.network.compile_flags import compile_args
from mosaicnet.network.gpu_backends import CUDA_INSTALL_COMMAND, configure_cuda_standalone

RUNTIME_BACKENDS: tuple[str, ...] = ("numpy", "cython")
STANDALONE_BACKENDS: tuple[str, ...] = ("cpp_standalone", "cuda_standalone")
#: Every backend name :func:`check_backend` knows.
BACKENDS: tuple[str, ...] = (*RUNTIME_BACKENDS, *STANDALONE_BACKENDS, "genn")

#: Environment variable naming a directory to build standalone projects in (a
#: sweep trial's private build directory, see :mod:`mosaicnet.sweeps.objectives`);
#: unset, they are built on ``/dev/shm`` when it has room, else in the system's
#: temporary directory.
BUILD_DIR_ENV = "MOSAICNET_BUILD_DIR"

#: Why ``genn`` is refused, and what it would need. brian2genn 1.7.0 (the latest
#: release at the time of writing) requires ``brian2 < 2.6`` and a GeNN >= 4.2.1
#: source tree (``GENN_PATH``), which no package registry provides.
GENN_REFUSAL = (
    "backend 'genn' is not supported: brian2genn cannot re-run a compiled model with new "
    "inputs (run_args) or TimedArray-driven inputs, which batched evaluation needs, and "
    "brian2genn 1.7.0 (the latest release) requires brian2 < 2.6 while mosaicnet needs "
    "brian2 >= 2.6. Use backend='cuda_standalone' for GPU runs (install it with "
    f"`{CUDA_INSTALL_COMMAND}` and the CUDA toolkit) or 'cpp_standalone' on the CPU."
)

# Generation counter of the process-wide standalone project (see module docstring).
_standalone_generation = 0


def check_backend(backend: str) -> str:
    """Return ``backend`` if known and usable here; raise otherwise.

    Raises
    ------
    ConfigError
        Unknown name.
    BackendUnavailableError
        ``genn`` (:data:`GENN_REFUSAL`), or ``cython`` without Cython.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "genn":
        raise BackendUnavailableError(GENN_REFUSAL)
    if backend == "cython":
        try:
            import Cython  # noqa: F401
        except ImportError as error:
            raise BackendUnavailableError(
                "backend 'cython' needs Cython (pip install cython) and a C++ compiler"
            ) from error
    return backend


@contextlib.contextmanager
def brian_prefs(values: Mapping[str, Any]) -> Iterator[None]:
    """Set Brian2 preferences for the duration of a block, then put the old values back."""
    from brian2 import prefs

    previous = {name: prefs[name] for name in values}
    try:
        for name, value in values.items():
            prefs[name] = value
        yield
    finally:
        for name, value in previous.items():
            prefs[name] = value


def runtime_prefs(backend: str, exact: bool) -> dict[str, Any]:
    """Preferences of a runtime run: the code target and (cython) the compile flags."""
    values: dict[str, Any] = {"codegen.target": backend}
    if backend == "cython":
        values["codegen.cpp.extra_compile_args_gcc"] = compile_args(exact)
    return values


def select_runtime_device() -> None:
    """Make Brian2's runtime device current (after a standalone build)."""
    from brian2 import get_device, set_device
    from brian2.devices.device import RuntimeDevice

    if not isinstance(get_device(), RuntimeDevice):
        set_device("runtime")


def _scratch_parent() -> str | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        usage = shutil.disk_usage(shm)
        if usage.free > 512 * 2**20:
            return str(shm)
    return None


class StandaloneProject:
    """A standalone Brian2 project: one build directory, compiled once, run many times.

    Parameters
    ----------
    backend
        ``"cpp_standalone"`` or ``"cuda_standalone"``.
    exact
        Compile with :data:`mosaicnet.network.compile_flags.EXACT_COMPILE_ARGS`.
    directory
        Build directory; default a fresh directory (removed by :meth:`close`)
        under ``$MOSAICNET_BUILD_DIR`` (:data:`BUILD_DIR_ENV`) when set, else on
        ``/dev/shm`` or in the temporary directory. A given directory is kept.
    cuda_options
        Keyword arguments for
        :func:`mosaicnet.network.gpu_backends.configure_cuda_standalone`.

    Use: :meth:`select` before creating the Brian2 objects, ``network.run``,
    then :meth:`build`; afterwards :meth:`run` as often as needed.
    """

    def __init__(
        self,
        backend: str,
        *,
        exact: bool = True,
        directory: str | os.PathLike[str] | None = None,
        cuda_options: Mapping[str, Any] | None = None,
    ) -> None:
        if backend not in STANDALONE_BACKENDS:
            raise ConfigError(f"{backend!r} is not a standalone backend: {STANDALONE_BACKENDS}")
        self.backend = backend
        self.exact = exact
        self._owns_directory = directory is None
        if directory is None:
            parent = os.environ.get(BUILD_DIR_ENV) or _scratch_parent()
            directory = tempfile.mkdtemp(prefix="mosaicnet_brian_", dir=parent)
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cuda_options = dict(cuda_options or {})
        self.generation: int | None = None
        self.built = False
        self.build_seconds: float | None = None
        self._cuda_build: Any = None
        self._previous_prefs: dict[str, Any] = {}

    @property
    def device(self) -> Any:
        """The Brian2 device object of this project."""
        from brian2.devices.device import all_devices

        return all_devices[self.backend]

    def select(self) -> None:
        """Start an empty project and make its device current (invalidates older ones)."""
        global _standalone_generation
        from brian2 import prefs, set_device
        from brian2.devices.device import all_devices

        _standalone_generation += 1
        self.generation = _standalone_generation
        if self.backend == "cuda_standalone":
            options = {"compile_only": False, "exact": self.exact, **self.cuda_options}
            self._cuda_build = configure_cuda_standalone(self.directory, **options)
            return
        # A standalone device keeps every object created while it is current;
        # start empty so an earlier network in this process does not leak in.
        all_devices[self.backend].reinit()
        wanted = {
            "codegen.cpp.extra_compile_args_gcc": compile_args(self.exact),
            # One thread: two OpenMP threads made batched runs 4.5x slower here.
            "devices.cpp_standalone.openmp_threads": 0,
            # Brian2's default is a bare `make -j` (one compiler per source file at
            # once): on a 2-core machine that drove the load average past 40 and
            # slowed every build; one job per core compiles no slower.
            "devices.cpp_standalone.extra_make_args_unix": [f"-j{os.cpu_count() or 1}"],
        }
        self._previous_prefs = {name: prefs[name] for name in wanted}
        for name, value in wanted.items():
            prefs[name] = value
        set_device(self.backend, build_on_run=False, directory=str(self.directory))

    def check_current(self) -> None:
        """Raise unless this project is still the process's standalone project."""
        if self.generation != _standalone_generation:
            raise BackendUnavailableError(
                "this standalone network can no longer run: another standalone network was "
                "built in this process since, and Brian2 keeps one standalone project per "
                "process. Rebuild it, or build each standalone network in its own process."
            )
        if not self.built:
            raise BackendUnavailableError("the standalone project has not been built yet")

    def build(self) -> None:
        """Generate and compile the project (no run); restore the runtime device after."""
        import time

        from brian2 import prefs

        start = time.perf_counter()
        try:
            if self._cuda_build is not None:
                self._cuda_build.compile_only = True
                self._cuda_build.build()
            else:
                try:
                    self.device.build(directory=str(self.directory), compile=True, run=False)
                except RuntimeError as error:
                    raise BackendUnavailableError(
                        f"{self.backend}: compiling the project in {self.directory} failed "
                        f"({error}); run `make` there to see the compiler output"
                    ) from error
        finally:
            if self._cuda_build is not None:
                self._cuda_build.restore()
            for name, value in self._previous_prefs.items():
                prefs[name] = value
            self._previous_prefs = {}
            select_runtime_device()
        self.build_seconds = time.perf_counter() - start
        self.built = True

    def run(self, run_args: Mapping[Any, Any]) -> None:
        """Run the compiled program once with ``run_args`` (new values, no recompilation)."""
        self.check_current()
        device = self.device
        try:
            device.run(directory=str(self.directory), with_output=False, run_args=dict(run_args))
        except RuntimeError as error:
            raise BackendUnavailableError(
                f"{self.backend}: running the compiled project in {self.directory} failed ({error})"
            ) from error
        finally:
            # run_args arrays are written to static_arrays/ under a content hash;
            # remove them so repeated batches do not fill the disk.
            static = self.directory / "static_arrays"
            for name in list(getattr(device, "run_args_arrays", [])):
                (static / name).unlink(missing_ok=True)
                (static / f"{name}.lock").unlink(missing_ok=True)

    def abandon(self) -> None:
        """After a failed build: put preferences and the runtime device back, delete files."""
        from brian2 import prefs

        if self._cuda_build is not None:
            self._cuda_build.restore()
        for name, value in self._previous_prefs.items():
            prefs[name] = value
        self._previous_prefs = {}
        select_runtime_device()
        self.close()

    def close(self) -> None:
        """Delete the build directory if this project created it."""
        if self._owns_directory and self.directory.exists():
            shutil.rmtree(self.directory, ignore_errors=True)
