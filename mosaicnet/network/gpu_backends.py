"""The GPU backend of the Brian2 network: ``cuda_standalone`` (brian2cuda).

The Brian2 network builder (:mod:`mosaicnet.network.brian_network`) drives the
runtime and ``cpp_standalone`` devices itself and hands ``cuda_standalone`` to
this module, which checks that the toolchain is there, sets the Brian2
preferences the device needs, and selects the device.

``cuda_standalone`` (brian2cuda, https://github.com/brian-team/brian2cuda)
    Generates a CUDA project from the same Brian2 objects and compiles it with
    ``nvcc``. Needs brian2cuda, ``nvcc`` and the cuRAND headers and library
    (from the CUDA toolkit or the ``nvidia-curand`` wheel). Generating and
    compiling needs no GPU (``compile_only=True``); running needs one.

(``genn`` is refused by :func:`mosaicnet.network.brian_backends.check_backend`
before anything is configured; see there why.)

Why each cuda_standalone preference is needed (checked with brian2cuda 1.0a7,
Brian2 2.9.0 and CUDA 13.0):

* ``cuda_backend.detect_gpus = False`` with explicit ``gpu_id`` and
  ``compute_capability``: detection calls ``nvidia-smi`` and NVIDIA's
  ``deviceQuery`` sample binary, which most installations lack and which
  fail on a machine without a GPU (compile-only builds).
* ``cuda_backend.cuda_path``: brian2cuda otherwise derives the toolkit from
  the ``nvcc`` on ``PATH``, which may be a wrapper script outside the toolkit.
* ``cuda_backend.extra_compile_args_nvcc`` gains ``-std=c++17`` and
  ``codegen.cpp.extra_compile_args_gcc`` has its ``-std=c++11`` replaced by
  ``-std=c++17``: brian2cuda's makefile template hard-codes ``-std=c++11``
  and also passes the gcc flags to the host compiler through ``-Xcompiler``,
  but the Thrust/CUB shipped with CUDA >= 13 require C++17. ``nvcc`` keeps the
  last ``-std`` it is given (it warns "incompatible redefinition for option
  'std', the last value of this option was used"), and the template places
  the nvcc extra arguments after its own ``-std=c++11``.
* ``codegen.cpp.include_dirs`` / ``library_dirs`` / ``runtime_library_dirs``
  point at cuRAND. The ``nvidia-curand`` wheel ships only the versioned
  ``libcurand.so.10``; the makefile links with ``-lcurand``, which needs an
  unversioned ``libcurand.so``, so a link directory holding the symlink
  ``libcurand.so -> libcurand.so.10`` is created inside the build directory,
  and the wheel's directory is recorded as run path so the program finds the
  library when it runs.
* With ``exact=True`` the nvcc arguments are :data:`EXACT_NVCC_ARGS`
  (``--fmad=false``, no ``-use_fast_math``) and the host flags are the CPU
  backends' exact flags (:mod:`mosaicnet.network.compile_flags`), so GPU and
  CPU builds round float64 arithmetic alike.
* ``devices.cpp_standalone.extra_make_args_unix = ['-j<N>']``: Brian2's
  default ``-j`` starts every nvcc at once (about 30 processes of up to 1 GB
  each for the network); N defaults to the number of CPU cores.

All preferences changed are recorded and put back by
:meth:`CudaStandaloneBuild.restore`.

One defect of brian2cuda 1.0a7 has no preference: its synaptic propagation
template refers to ``defaultclock`` instead of the pathway's clock, so a
network on its own clock does not compile. :meth:`CudaStandaloneBuild.build`
generates the project, corrects that line (:func:`patch_synapse_clocks`),
then compiles.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaicnet.errors import BackendUnavailableError, ConfigError
from mosaicnet.network.compile_flags import compile_args

#: What users type to get the cuda_standalone backend. brian2cuda 1.0a7 pins
#: ``brian2==2.8.0`` but generates correct code under Brian2 2.9; installing
#: it with its dependencies would downgrade Brian2, hence ``--no-deps``.
#: 1.0b1 pins Brian2 2.10.1.
CUDA_INSTALL_COMMAND = "pip install --no-deps brian2cuda==1.0a7 && pip install nvidia-curand"

#: Compute capability of the H100 and H200 GPUs (NVIDIA, "CUDA GPUs - Compute
#: Capability", https://developer.nvidia.com/cuda-gpus).
DEFAULT_COMPUTE_CAPABILITY = 9.0

#: Lowest compute capability brian2cuda 1.0a7 generates code for
#: (``CUDAStandaloneDevice.minimal_compute_capability`` in its ``device.py``).
MIN_COMPUTE_CAPABILITY = 5.0

#: brian2cuda's default extra nvcc arguments (its ``cuda_prefs.py``): fast math.
FAST_NVCC_ARGS: tuple[str, ...] = ("-w", "-use_fast_math")

#: nvcc arguments of the exact mode: no ``-use_fast_math`` and no fused
#: multiply-add contraction (``--fmad=false``; nvcc contracts ``a*b+c`` by
#: default, also in double precision), so that float64 kernels round every
#: operation as the CPU build of ``exact=True`` does. CUDA's ``exp``/``pow``
#: may still differ from glibc's in the last bit (CUDA C Programming Guide,
#: "Mathematical Functions": double ``exp`` has 1 ulp maximum error).
EXACT_NVCC_ARGS: tuple[str, ...] = ("-w", "--fmad=false")

#: C++ standard the generated CUDA code is compiled with: Thrust and CUB of
#: CUDA >= 13 refuse older standards ("Thrust requires at least C++17").
CUDA_CXX_STANDARD = "-std=c++17"


# ---------------------------------------------------------------------------
# cuda_standalone: toolchain discovery
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CurandLocation:
    """Where the cuRAND headers and shared library were found.

    Attributes
    ----------
    include_dir
        Directory holding ``curand.h``.
    library
        The shared library file (``libcurand.so`` or a versioned ``libcurand.so.N``).
    source
        ``"CUDA toolkit"`` or ``"nvidia-curand wheel"``.
    """

    include_dir: Path
    library: Path
    source: str

    @property
    def library_dir(self) -> Path:
        """Directory of the library; becomes the program's run path."""
        return self.library.parent

    @property
    def linkable(self) -> bool:
        """Whether ``-lcurand`` finds the library without an extra symlink."""
        return self.library.name == "libcurand.so"


@dataclass(frozen=True)
class CudaToolchain:
    """The pieces brian2cuda needs, all found and checked.

    Attributes
    ----------
    brian2cuda_version
        Installed brian2cuda version.
    cuda_path
        CUDA toolkit directory (holds ``bin/nvcc`` and ``include``).
    nvcc
        The compiler inside the toolkit.
    cuda_version
        ``(major, minor)`` release reported by ``nvcc --version``.
    curand
        Where cuRAND was found.
    """

    brian2cuda_version: str
    cuda_path: Path
    nvcc: Path
    cuda_version: tuple[int, int]
    curand: CurandLocation


def _unavailable(what: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"backend 'cuda_standalone' is not available: {what}. Install it with "
        f"`{CUDA_INSTALL_COMMAND}` (and the CUDA toolkit, which provides nvcc)."
    )


def brian2cuda_version() -> str:
    """Version of the installed brian2cuda.

    Raises
    ------
    BackendUnavailableError
        brian2cuda is not installed.
    """
    try:
        return importlib.metadata.version("brian2cuda")
    except importlib.metadata.PackageNotFoundError:
        raise _unavailable("the Python package brian2cuda is not installed") from None


def find_cuda_path(cuda_path: str | os.PathLike[str] | None = None) -> Path:
    """Locate the CUDA toolkit directory.

    Parameters
    ----------
    cuda_path
        Explicit toolkit directory. Otherwise ``$CUDA_PATH``, then ``$CUDA_HOME``,
        then ``/usr/local/cuda``, then the directory of the ``nvcc`` found on
        ``PATH`` after resolving symlinks (a wrapper script is not a toolkit).

    Returns
    -------
    Path
        A directory that contains ``bin/nvcc``.

    Raises
    ------
    BackendUnavailableError
        No toolkit with ``bin/nvcc`` was found (or the explicit one lacks it).
    """
    if cuda_path is not None:
        path = Path(cuda_path).expanduser()
        if not (path / "bin" / "nvcc").is_file():
            raise _unavailable(f"cuda_path {str(path)!r} has no bin/nvcc")
        return path
    candidates: list[Path] = []
    for variable in ("CUDA_PATH", "CUDA_HOME"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]))
    candidates.append(Path("/usr/local/cuda"))
    nvcc_on_path = shutil.which("nvcc")
    if nvcc_on_path is not None:
        candidates.append(Path(nvcc_on_path).resolve().parent.parent)
    for candidate in candidates:
        if (candidate / "bin" / "nvcc").is_file():
            return candidate
    raise _unavailable(
        "no CUDA toolkit found (looked at $CUDA_PATH, $CUDA_HOME, /usr/local/cuda and the "
        "nvcc on PATH); pass cuda_path= or set CUDA_PATH to the toolkit directory"
    )


def nvcc_version(nvcc: str | os.PathLike[str]) -> tuple[int, int]:
    """``(major, minor)`` CUDA release of an ``nvcc`` binary.

    Raises
    ------
    BackendUnavailableError
        ``nvcc`` cannot be run or its output names no release.
    """
    try:
        result = subprocess.run(
            [str(nvcc), "--version"], capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise _unavailable(f"running {str(nvcc)!r} --version failed ({error})") from None
    match = re.search(r"release (\d+)\.(\d+)", result.stdout)
    if match is None:
        raise _unavailable(f"{str(nvcc)!r} --version reports no CUDA release")
    return int(match.group(1)), int(match.group(2))


def _wheel_roots() -> list[Path]:
    """Directories of the ``nvidia`` namespace package (NVIDIA's pip wheels)."""
    try:
        nvidia = importlib.import_module("nvidia")
    except ImportError:
        return []
    return [Path(p) for p in getattr(nvidia, "__path__", [])]


def _curand_library_in(directory: Path) -> Path | None:
    """The linkable ``libcurand.so`` in a directory, else its newest versioned file."""
    if (directory / "libcurand.so").is_file():
        return directory / "libcurand.so"
    versioned = sorted(directory.glob("libcurand.so.*"), key=lambda p: len(p.name))
    return versioned[0] if versioned else None


def find_curand(cuda_path: Path, cuda_major: int) -> CurandLocation:
    """Locate the cuRAND headers and library.

    The toolkit's own copy is preferred (it matches ``nvcc``); then the
    ``nvidia-curand`` wheel's directory for this CUDA major release
    (``nvidia/cu<major>``, the layout of the CUDA 13 wheels), then the
    ``nvidia/curand`` layout of the older ``nvidia-curand-cu12`` wheels.

    Parameters
    ----------
    cuda_path
        The CUDA toolkit directory.
    cuda_major
        Its major release, to pick the matching wheel directory.

    Raises
    ------
    BackendUnavailableError
        cuRAND was found nowhere.
    """
    candidates: list[tuple[Path, list[Path], str]] = [
        (
            cuda_path / "include",
            [cuda_path / "lib64", cuda_path / "lib", cuda_path / "targets/x86_64-linux/lib"],
            "CUDA toolkit",
        )
    ]
    for root in _wheel_roots():
        for sub in (f"cu{cuda_major}", "curand"):
            candidates.append((root / sub / "include", [root / sub / "lib"], "nvidia-curand wheel"))
    for include_dir, library_dirs, source in candidates:
        if not (include_dir / "curand.h").is_file():
            continue
        for library_dir in library_dirs:
            library = _curand_library_in(library_dir) if library_dir.is_dir() else None
            if library is not None:
                return CurandLocation(include_dir=include_dir, library=library, source=source)
    raise _unavailable(
        f"cuRAND (curand.h and libcurand.so) was found neither in the CUDA toolkit at "
        f"{str(cuda_path)!r} nor in an installed nvidia-curand wheel for CUDA {cuda_major}; "
        "`pip install nvidia-curand` provides it"
    )


def find_cuda_toolchain(cuda_path: str | os.PathLike[str] | None = None) -> CudaToolchain:
    """Check everything cuda_standalone needs to generate and compile a network.

    Parameters
    ----------
    cuda_path
        CUDA toolkit directory; found automatically when ``None`` (see
        :func:`find_cuda_path`).

    Returns
    -------
    CudaToolchain

    Raises
    ------
    BackendUnavailableError
        brian2cuda, the toolkit, ``nvcc`` or cuRAND is missing; the message says
        what to install.
    """
    version = brian2cuda_version()
    toolkit = find_cuda_path(cuda_path)
    nvcc = toolkit / "bin" / "nvcc"
    release = nvcc_version(nvcc)
    curand = find_curand(toolkit, release[0])
    return CudaToolchain(
        brian2cuda_version=version,
        cuda_path=toolkit,
        nvcc=nvcc,
        cuda_version=release,
        curand=curand,
    )


def visible_gpus() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi -L`` lists; empty without driver or GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("GPU ")]


def detect_compute_capability(gpu_id: int = 0) -> float | None:
    """Compute capability of one GPU as ``nvidia-smi`` reports it, or ``None``.

    Uses ``nvidia-smi --query-gpu=compute_cap`` (driver >= 510) rather than
    brian2cuda's own detection, which needs NVIDIA's ``deviceQuery`` sample.
    """
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        result = subprocess.run(
            [smi, f"--id={gpu_id}", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        return float(result.stdout.strip().splitlines()[0])
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------
# cuda_standalone: preferences and device selection
# ---------------------------------------------------------------------------


def cuda_standalone_prefs(
    toolchain: CudaToolchain,
    *,
    compute_capability: float,
    gpu_id: int,
    curand_link_dir: Path | None,
    make_jobs: int,
    gcc_args: list[str],
    nvcc_args: tuple[str, ...] = FAST_NVCC_ARGS,
) -> dict[str, Any]:
    """The Brian2 preferences that make brian2cuda compile with this toolchain.

    Pure function: returns ``{preference name: value}``; the module docstring
    explains every entry.

    Parameters
    ----------
    toolchain
        From :func:`find_cuda_toolchain`.
    compute_capability
        GPU architecture to compile for, e.g. ``9.0`` (``-arch=sm_90``).
    gpu_id
        Index of the GPU the program selects when it runs.
    curand_link_dir
        Directory holding a ``libcurand.so`` symlink, or ``None`` when the
        toolchain's library is linkable as it is.
    make_jobs
        Parallel compiler processes.
    gcc_args
        Host compiler flags (e.g. the current ``codegen.cpp.extra_compile_args_gcc``);
        their ``-std`` flags are replaced by :data:`CUDA_CXX_STANDARD`.
    nvcc_args
        Device compiler flags, :data:`FAST_NVCC_ARGS` or :data:`EXACT_NVCC_ARGS`;
        :data:`CUDA_CXX_STANDARD` is appended.
    """
    curand = toolchain.curand
    library_dirs = [str(curand_link_dir if curand_link_dir is not None else curand.library_dir)]
    return {
        "devices.cuda_standalone.cuda_backend.detect_gpus": False,
        "devices.cuda_standalone.cuda_backend.gpu_id": int(gpu_id),
        "devices.cuda_standalone.cuda_backend.compute_capability": float(compute_capability),
        "devices.cuda_standalone.cuda_backend.cuda_path": str(toolchain.cuda_path),
        "devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc": [
            *(arg for arg in nvcc_args if not arg.startswith("-std=")),
            CUDA_CXX_STANDARD,
        ],
        "codegen.cpp.extra_compile_args_gcc": [
            *(arg for arg in gcc_args if not arg.startswith("-std=")),
            CUDA_CXX_STANDARD,
        ],
        "codegen.cpp.include_dirs": [str(curand.include_dir)],
        "codegen.cpp.library_dirs": library_dirs,
        "codegen.cpp.runtime_library_dirs": [str(curand.library_dir)],
        "devices.cpp_standalone.extra_make_args_unix": [f"-j{int(make_jobs)}"],
    }


#: The delay check of brian2cuda 1.0a7's ``synapses.cu`` template, as generated.
_DEFAULTCLOCK_DELAY_CHECK = re.compile(r"\bdefaultclock\.timestep\[0\] >= (\w+)_delay\b")


def patch_synapse_clocks(directory: Path, code_objects: Iterable[Any]) -> list[Path]:
    """Make generated synaptic propagation code use its own clock, not ``defaultclock``.

    brian2cuda 1.0a7's ``synapses.cu`` template compares
    ``defaultclock.timestep[0]`` with the pathway's delay instead of the clock
    of the synapses (the same template passes ``{{owner.clock.name}}`` to the
    kernel a few lines below). A network whose objects all run on their own
    clock, as the mosaicnet builder's do, has no ``defaultclock`` in the
    generated project and nvcc stops with 'identifier "defaultclock" is
    undefined'; with a ``defaultclock`` of another ``dt`` the delay check
    would read the wrong clock. No preference controls this, so the generated
    file is corrected after generation and before compilation.

    Parameters
    ----------
    directory
        The generated project.
    code_objects
        The device's code objects (``device.code_objects.values()``); those of
        template ``synapses`` are owned by their ``Synapses`` group.

    Returns
    -------
    list of Path
        Files that were changed.
    """
    changed = []
    for code_object in code_objects:
        if code_object.template_name != "synapses":
            continue
        clock = code_object.owner.clock.name
        if clock == "defaultclock":
            continue
        path = directory / "code_objects" / f"{code_object.name}.cu"
        text = path.read_text()
        fixed = _DEFAULTCLOCK_DELAY_CHECK.sub(rf"{clock}.timestep[0] >= \1_delay", text)
        if fixed != text:
            path.write_text(fixed)
            changed.append(path)
    return changed


def _link_curand(library: Path, link_dir: Path) -> Path:
    """Create ``link_dir/libcurand.so -> library`` so that ``-lcurand`` finds it."""
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "libcurand.so"
    if link.is_symlink() or link.exists():
        if link.resolve() == library.resolve():
            return link_dir
        link.unlink()
    link.symlink_to(library)
    return link_dir


@dataclass
class CudaStandaloneBuild:
    """A cuda_standalone device selected for one build directory.

    Returned by :func:`configure_cuda_standalone`. Create the Brian2 objects
    and call ``run`` as usual, then :meth:`build`; :meth:`restore` puts back
    the preferences that were changed.

    Attributes
    ----------
    directory
        The project directory brian2cuda writes to and compiles in.
    toolchain
        The checked toolchain.
    compute_capability
        The GPU architecture compiled for.
    compile_only
        ``True``: :meth:`build` generates and compiles but does not run.
    prefs
        The preferences set, ``{name: value}``.
    build_seconds
        Wall time of the last :meth:`build`, or ``None`` before it.
    patched_files
        Generated files :func:`patch_synapse_clocks` changed in the last build.
    """

    directory: Path
    toolchain: CudaToolchain
    compute_capability: float
    compile_only: bool
    prefs: dict[str, Any]
    build_seconds: float | None = None
    patched_files: list[Path] = field(default_factory=list)
    _previous: dict[str, Any] = field(default_factory=dict, repr=False)
    _restored: bool = field(default=False, repr=False)

    def build(self) -> None:
        """Generate, compile and (unless compile-only) run the project.

        Call after the network's ``run``. Equivalent to ``device.build(compile=True,
        run=not compile_only)`` with :func:`patch_synapse_clocks` applied between
        generation and compilation. Rebuilding in the same directory recompiles
        only changed files (and the patched ones).

        Raises
        ------
        BackendUnavailableError
            nvcc or the program failed; the message points at the directory.
        """
        from brian2 import get_device
        from brian2.codegen.cpp_prefs import get_compiler_and_args

        device = get_device()
        start = time.perf_counter()
        # Generate, fix brian2cuda's clock reference, then compile and run as
        # device.build(compile=True, run=...) would.
        device.build(directory=str(self.directory), compile=False, run=False)
        self.patched_files = patch_synapse_clocks(self.directory, device.code_objects.values())
        stage = "compiling"
        try:
            compiler, _ = get_compiler_and_args()
            device.compile_source(str(self.directory), compiler, False, False)
            if not self.compile_only:
                stage = "running"
                device.run(directory=str(self.directory), with_output=True)
        except RuntimeError as error:
            raise BackendUnavailableError(
                f"cuda_standalone failed while {stage} the project in {str(self.directory)!r} "
                f"({error}); run `make` in that directory to see the compiler output"
            ) from error
        self.build_seconds = time.perf_counter() - start

    def restore(self) -> None:
        """Put back every preference :func:`configure_cuda_standalone` changed.

        The device stays selected; the builder decides which device comes next.
        Calling it twice is harmless.
        """
        if self._restored:
            return
        from brian2 import prefs

        for name, value in self._previous.items():
            prefs[name] = value
        self._restored = True


def configure_cuda_standalone(
    directory: str | os.PathLike[str],
    *,
    compute_capability: float | None = DEFAULT_COMPUTE_CAPABILITY,
    compile_only: bool,
    exact: bool = False,
    gpu_id: int = 0,
    cuda_path: str | os.PathLike[str] | None = None,
    make_jobs: int | None = None,
) -> CudaStandaloneBuild:
    """Check the CUDA toolchain, set brian2cuda's preferences, select the device.

    After this call, create the network, ``run`` it, then call
    :meth:`CudaStandaloneBuild.build` (generates, compiles and, unless
    ``compile_only``, runs). Re-running the compiled project
    with new values goes through ``device.run(run_args=...)`` as for
    ``cpp_standalone``.

    Parameters
    ----------
    directory
        Project directory; created if missing.
    compute_capability
        GPU architecture to compile for (9.0 for H100/H200). ``None`` asks
        ``nvidia-smi`` for the GPU's, which needs a GPU.
    compile_only
        Generate and compile without running: works on machines without a GPU.
    exact
        Compile device code with :data:`EXACT_NVCC_ARGS` and host code with
        :data:`mosaicnet.network.compile_flags.EXACT_COMPILE_ARGS` (the CPU
        backends' exact mode). Otherwise brian2cuda's fast-math defaults and
        the current gcc preference.
    gpu_id
        Index of the GPU to run on.
    cuda_path
        CUDA toolkit directory; found automatically when ``None``.
    make_jobs
        Parallel compiler processes; default: the number of CPU cores.

    Returns
    -------
    CudaStandaloneBuild

    Raises
    ------
    BackendUnavailableError
        brian2cuda, nvcc or cuRAND is missing, or a run is asked for and no GPU
        is visible.
    ConfigError
        An argument is out of range.
    """
    if compute_capability is not None and compute_capability < MIN_COMPUTE_CAPABILITY:
        raise ConfigError(
            f"compute_capability {compute_capability} is below {MIN_COMPUTE_CAPABILITY}, the "
            "lowest brian2cuda supports; give your GPU's (9.0 for H100/H200, 8.0 for A100)"
        )
    if gpu_id < 0:
        raise ConfigError(f"gpu_id must be >= 0, got {gpu_id}")
    if make_jobs is not None and make_jobs < 1:
        raise ConfigError(f"make_jobs must be >= 1, got {make_jobs}")
    toolchain = find_cuda_toolchain(cuda_path)
    if not compile_only and not visible_gpus():
        raise BackendUnavailableError(
            "backend 'cuda_standalone' cannot run here: nvidia-smi lists no NVIDIA GPU. "
            "Use compile_only=True to generate and compile the project without running it, "
            "or run on a machine with a GPU and its driver."
        )
    if compute_capability is None:
        compute_capability = detect_compute_capability(gpu_id)
        if compute_capability is None:
            raise BackendUnavailableError(
                f"could not read the compute capability of GPU {gpu_id} from nvidia-smi; "
                "pass compute_capability= (9.0 for H100/H200, 8.0 for A100)"
            )

    # brian2cuda registers its preferences and its device on import.
    import brian2cuda  # noqa: F401
    from brian2 import prefs, set_device
    from brian2.devices.device import all_devices

    host_args = compile_args(exact)
    build_dir = Path(directory).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    link_dir = None
    if not toolchain.curand.linkable:
        link_dir = _link_curand(toolchain.curand.library, build_dir / "curand_link")
    chosen = cuda_standalone_prefs(
        toolchain,
        compute_capability=compute_capability,
        gpu_id=gpu_id,
        curand_link_dir=link_dir,
        make_jobs=make_jobs if make_jobs is not None else max(1, os.cpu_count() or 1),
        gcc_args=host_args,
        nvcc_args=EXACT_NVCC_ARGS if exact else FAST_NVCC_ARGS,
    )
    previous = {name: prefs[name] for name in chosen}
    for name, value in chosen.items():
        prefs[name] = value
    _forget_brian2cuda_detection()
    # A standalone device keeps every object created while it was selected;
    # start from an empty project so an earlier network in this process does
    # not end up in this one.
    all_devices["cuda_standalone"].reinit()
    set_device("cuda_standalone", directory=str(build_dir), build_on_run=False)
    return CudaStandaloneBuild(
        directory=build_dir,
        toolchain=toolchain,
        compute_capability=float(compute_capability),
        compile_only=compile_only,
        prefs=chosen,
        _previous=previous,
    )


def _forget_brian2cuda_detection() -> None:
    """Drop brian2cuda's cached CUDA path and GPU choice so new preferences apply.

    brian2cuda caches them module-wide on first use (``utils/gputools.py``).
    """
    from brian2cuda.utils import gputools

    gputools.reset_cuda_installation()
    gputools.reset_gpu_selection()
