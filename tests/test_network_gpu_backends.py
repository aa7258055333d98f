"""Tests of the GPU backends: toolchain checks, preferences, compile-only builds.

No GPU is needed: the fast tests check discovery and preferences on fake
installations; the slow ones generate and compile a cuda_standalone project
with the real nvcc and brian2cuda and inspect the program that comes out.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import pytest

from mosaicnet.errors import BackendUnavailableError, ConfigError
from mosaicnet.network import gpu_backends as gb

HAVE_NVCC = shutil.which("nvcc") is not None or Path("/usr/local/cuda/bin/nvcc").is_file()
try:
    importlib.metadata.version("brian2cuda")
    HAVE_BRIAN2CUDA = True
except importlib.metadata.PackageNotFoundError:
    HAVE_BRIAN2CUDA = False

needs_cuda_toolchain = pytest.mark.skipif(
    not (HAVE_NVCC and HAVE_BRIAN2CUDA),
    reason="needs nvcc and brian2cuda (" + gb.CUDA_INSTALL_COMMAND + ")",
)


def _fake_toolkit(root: Path, *, with_curand: bool) -> Path:
    """A directory shaped like a CUDA toolkit, optionally with cuRAND."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0'\n")
    (root / "bin" / "nvcc").chmod(0o755)
    (root / "include").mkdir()
    (root / "lib64").mkdir()
    if with_curand:
        (root / "include" / "curand.h").write_text("")
        (root / "lib64" / "libcurand.so").write_text("")
    return root


def _fake_curand_wheel(root: Path, sub: str = "cu13") -> Path:
    """The layout of the nvidia-curand wheel: nvidia/<sub>/{include,lib}."""
    (root / sub / "include").mkdir(parents=True)
    (root / sub / "lib").mkdir()
    (root / sub / "include" / "curand.h").write_text("")
    (root / sub / "lib" / "libcurand.so.10").write_text("")
    return root


def _toolchain(tmp_path: Path, curand_library: str = "libcurand.so.10") -> gb.CudaToolchain:
    curand = gb.CurandLocation(
        include_dir=tmp_path / "include",
        library=tmp_path / "lib" / curand_library,
        source="nvidia-curand wheel",
    )
    return gb.CudaToolchain(
        brian2cuda_version="1.0a7",
        cuda_path=tmp_path / "cuda",
        nvcc=tmp_path / "cuda" / "bin" / "nvcc",
        cuda_version=(13, 0),
        curand=curand,
    )


# --- preferences -------------------------------------------------------------


def test_prefs_compile_for_cxx17_on_device_and_host(tmp_path):
    """CUDA 13's Thrust needs C++17 in nvcc and in the -Xcompiler host flags."""
    gcc = ["-w", "-O3", "-march=native", "-std=c++11"]
    chosen = gb.cuda_standalone_prefs(
        _toolchain(tmp_path),
        compute_capability=9.0,
        gpu_id=0,
        curand_link_dir=tmp_path / "link",
        make_jobs=2,
        gcc_args=gcc,
    )
    nvcc_args = chosen["devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc"]
    assert nvcc_args[-1] == "-std=c++17"
    # The template puts its own -std=c++11 first; nvcc keeps the last -std.
    assert [a for a in nvcc_args if a.startswith("-std=")] == ["-std=c++17"]
    host = chosen["codegen.cpp.extra_compile_args_gcc"]
    assert [a for a in host if a.startswith("-std=")] == ["-std=c++17"]
    assert host[:3] == ["-w", "-O3", "-march=native"]
    assert gcc == ["-w", "-O3", "-march=native", "-std=c++11"], "input list must not change"


def test_exact_prefs_turn_off_fast_math_and_fma(tmp_path):
    """Exact mode: no -use_fast_math, no FMA contraction, C++17 still last."""
    chosen = gb.cuda_standalone_prefs(
        _toolchain(tmp_path),
        compute_capability=9.0,
        gpu_id=0,
        curand_link_dir=None,
        make_jobs=1,
        gcc_args=["-w", "-O3"],
        nvcc_args=gb.EXACT_NVCC_ARGS,
    )
    nvcc_args = chosen["devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc"]
    assert "--fmad=false" in nvcc_args
    assert "-use_fast_math" not in nvcc_args
    assert nvcc_args[-1] == "-std=c++17"
    assert chosen["codegen.cpp.extra_compile_args_gcc"] == ["-w", "-O3", "-std=c++17"]


def test_prefs_fix_the_gpu_without_detection_and_point_at_curand(tmp_path):
    toolchain = _toolchain(tmp_path)
    chosen = gb.cuda_standalone_prefs(
        toolchain,
        compute_capability=8.0,
        gpu_id=1,
        curand_link_dir=tmp_path / "link",
        make_jobs=3,
        gcc_args=[],
    )
    assert chosen["devices.cuda_standalone.cuda_backend.detect_gpus"] is False
    assert chosen["devices.cuda_standalone.cuda_backend.gpu_id"] == 1
    assert chosen["devices.cuda_standalone.cuda_backend.compute_capability"] == 8.0
    assert chosen["devices.cuda_standalone.cuda_backend.cuda_path"] == str(tmp_path / "cuda")
    assert chosen["codegen.cpp.include_dirs"] == [str(tmp_path / "include")]
    # -lcurand is resolved through the symlink directory, run time through the real one.
    assert chosen["codegen.cpp.library_dirs"] == [str(tmp_path / "link")]
    assert chosen["codegen.cpp.runtime_library_dirs"] == [str(tmp_path / "lib")]
    assert chosen["devices.cpp_standalone.extra_make_args_unix"] == ["-j3"]


def test_prefs_link_the_toolkit_library_directly_when_it_is_linkable(tmp_path):
    chosen = gb.cuda_standalone_prefs(
        _toolchain(tmp_path, curand_library="libcurand.so"),
        compute_capability=9.0,
        gpu_id=0,
        curand_link_dir=None,
        make_jobs=1,
        gcc_args=[],
    )
    assert chosen["codegen.cpp.library_dirs"] == [str(tmp_path / "lib")]


def test_link_curand_creates_an_unversioned_symlink_and_is_idempotent(tmp_path):
    library = tmp_path / "wheel" / "libcurand.so.10"
    library.parent.mkdir()
    library.write_text("")
    link_dir = gb._link_curand(library, tmp_path / "build" / "curand_link")
    assert (link_dir / "libcurand.so").resolve() == library.resolve()
    other = tmp_path / "other" / "libcurand.so.11"
    other.parent.mkdir()
    other.write_text("")
    gb._link_curand(library, link_dir)
    gb._link_curand(other, link_dir)
    assert (link_dir / "libcurand.so").resolve() == other.resolve()


class _FakeClock:
    def __init__(self, name: str) -> None:
        self.name = name


class _FakeSynapses:
    def __init__(self, name: str, clock: str) -> None:
        self.name = name
        self.clock = _FakeClock(clock)


class _FakeCodeObject:
    """What patch_synapse_clocks reads of a Brian2 code object (owner: the Synapses)."""

    def __init__(self, name: str, template_name: str, owner: _FakeSynapses) -> None:
        self.name = name
        self.template_name = template_name
        self.owner = owner


def test_synaptic_propagation_is_patched_to_read_its_own_clock(tmp_path):
    """brian2cuda 1.0a7's template names defaultclock; the synapses' clock is meant."""
    code = tmp_path / "code_objects"
    code.mkdir()
    line = "if (defaultclock.timestep[0] >= {}_delay)\n"
    (code / "syn_pre_codeobject.cu").write_text(line.format("syn_pre"))
    (code / "other_pre_codeobject.cu").write_text(line.format("other_pre"))
    (code / "syn_stateupdater.cu").write_text("defaultclock.timestep[0]")
    objects = [
        _FakeCodeObject("syn_pre_codeobject", "synapses", _FakeSynapses("syn", "net_clock")),
        _FakeCodeObject("other_pre_codeobject", "synapses", _FakeSynapses("other", "defaultclock")),
        _FakeCodeObject("syn_stateupdater", "stateupdate", _FakeSynapses("syn", "net_clock")),
    ]
    changed = gb.patch_synapse_clocks(tmp_path, objects)
    assert changed == [code / "syn_pre_codeobject.cu"]
    assert (code / "syn_pre_codeobject.cu").read_text() == (
        "if (net_clock.timestep[0] >= syn_pre_delay)\n"
    )
    # Synapses on defaultclock and other templates are left alone.
    assert (code / "other_pre_codeobject.cu").read_text() == line.format("other_pre")
    assert (code / "syn_stateupdater.cu").read_text() == "defaultclock.timestep[0]"
    assert gb.patch_synapse_clocks(tmp_path, objects) == [], "patching twice changes nothing"


@needs_cuda_toolchain
def test_patch_applies_to_code_brian2cuda_generates(tmp_path):
    """Generation only (seconds): the real template output and code objects are patched."""
    from brian2 import get_device, set_device

    build = gb.configure_cuda_standalone(tmp_path / "proj", compile_only=True)
    try:
        network = _tiny_network()
        device = get_device()
        device.build(directory=str(build.directory), compile=False, run=False)
        changed = gb.patch_synapse_clocks(build.directory, device.code_objects.values())
        del network
    finally:
        build.restore()
        set_device("runtime")
    assert {p.name for p in changed} == {
        f"{name}_pre_codeobject.cu" for name in ("w_in", "w_rec", "w_out")
    }
    for path in changed:
        text = path.read_text()
        assert "defaultclock" not in text
        assert "tiny_clock.timestep[0] >= " in text


# --- toolchain discovery -----------------------------------------------------


def test_curand_from_toolkit_is_preferred(tmp_path, monkeypatch):
    toolkit = _fake_toolkit(tmp_path / "cuda", with_curand=True)
    monkeypatch.setattr(gb, "_wheel_roots", lambda: [_fake_curand_wheel(tmp_path / "nvidia")])
    found = gb.find_curand(toolkit, 13)
    assert found.source == "CUDA toolkit"
    assert found.linkable
    assert found.include_dir == toolkit / "include"


def test_curand_from_wheel_matching_the_cuda_major_release(tmp_path, monkeypatch):
    toolkit = _fake_toolkit(tmp_path / "cuda", with_curand=False)
    wheel = _fake_curand_wheel(tmp_path / "nvidia", "cu12")
    _fake_curand_wheel(wheel, "cu13")
    monkeypatch.setattr(gb, "_wheel_roots", lambda: [wheel])
    found = gb.find_curand(toolkit, 13)
    assert found.source == "nvidia-curand wheel"
    assert found.library == wheel / "cu13" / "lib" / "libcurand.so.10"
    assert not found.linkable


def test_missing_curand_says_how_to_install_it(tmp_path, monkeypatch):
    toolkit = _fake_toolkit(tmp_path / "cuda", with_curand=False)
    monkeypatch.setattr(gb, "_wheel_roots", lambda: [])
    with pytest.raises(BackendUnavailableError, match="pip install nvidia-curand"):
        gb.find_curand(toolkit, 13)


def test_explicit_cuda_path_without_nvcc_is_rejected(tmp_path):
    with pytest.raises(BackendUnavailableError, match="has no bin/nvcc"):
        gb.find_cuda_path(tmp_path)


def test_cuda_path_from_environment(tmp_path, monkeypatch):
    toolkit = _fake_toolkit(tmp_path / "cuda", with_curand=False)
    monkeypatch.setenv("CUDA_PATH", str(toolkit))
    assert gb.find_cuda_path() == toolkit
    assert gb.nvcc_version(toolkit / "bin" / "nvcc") == (13, 0)


def test_missing_brian2cuda_gives_the_install_command(monkeypatch):
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name == "brian2cuda":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(BackendUnavailableError) as info:
        gb.find_cuda_toolchain()
    message = str(info.value)
    assert "brian2cuda is not installed" in message
    assert "pip install --no-deps brian2cuda==1.0a7" in message


def test_no_gpus_listed_without_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gb.visible_gpus() == []
    assert gb.detect_compute_capability() is None


@needs_cuda_toolchain
def test_real_toolchain_is_found_here():
    toolchain = gb.find_cuda_toolchain()
    assert toolchain.nvcc.is_file()
    assert toolchain.cuda_version[0] >= 11
    assert (toolchain.curand.include_dir / "curand.h").is_file()
    assert toolchain.curand.library.is_file()


# --- configure_cuda_standalone -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compute_capability": 3.5}, "compute_capability 3.5"),
        ({"gpu_id": -1}, "gpu_id"),
        ({"make_jobs": 0}, "make_jobs"),
    ],
)
def test_configure_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        gb.configure_cuda_standalone(tmp_path, compile_only=True, **kwargs)


@needs_cuda_toolchain
def test_running_without_a_gpu_points_to_compile_only(tmp_path, monkeypatch):
    monkeypatch.setattr(gb, "visible_gpus", lambda: [])
    with pytest.raises(BackendUnavailableError, match="compile_only=True"):
        gb.configure_cuda_standalone(tmp_path, compile_only=False)


@needs_cuda_toolchain
def test_configure_sets_prefs_and_device_and_restore_puts_prefs_back(tmp_path):
    from brian2 import get_device, prefs, set_device

    names = [
        "devices.cuda_standalone.cuda_backend.detect_gpus",
        "codegen.cpp.extra_compile_args_gcc",
        "codegen.cpp.include_dirs",
        "devices.cpp_standalone.extra_make_args_unix",
    ]
    before = {name: prefs[name] for name in names if name in prefs}
    build = gb.configure_cuda_standalone(tmp_path / "proj", compile_only=True, make_jobs=2)
    try:
        assert get_device().__class__.__name__ == "CUDAStandaloneDevice"
        assert build.directory == (tmp_path / "proj").resolve()
        assert build.compile_only
        for name, value in build.prefs.items():
            assert prefs[name] == value
        assert prefs["devices.cuda_standalone.cuda_backend.compute_capability"] == 9.0
    finally:
        build.restore()
        set_device("runtime")
    for name, value in before.items():
        assert prefs[name] == value
    build.restore()  # a second call must not put back anything else


@needs_cuda_toolchain
def test_exact_mode_uses_the_cpu_exact_host_flags_and_no_fma(tmp_path):
    from brian2 import prefs, set_device

    from mosaicnet.network.compile_flags import EXACT_COMPILE_ARGS

    build = gb.configure_cuda_standalone(tmp_path / "proj", compile_only=True, exact=True)
    try:
        assert prefs["codegen.cpp.extra_compile_args_gcc"] == [*EXACT_COMPILE_ARGS, "-std=c++17"]
        nvcc = prefs["devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc"]
        assert "--fmad=false" in nvcc and "-use_fast_math" not in nvcc
    finally:
        build.restore()
        set_device("runtime")


# --- genn ----------------------------------------------------------------------


def test_genn_is_refused_before_any_setup_and_points_to_cuda_standalone():
    from mosaicnet.network.brian_backends import check_backend

    with pytest.raises(BackendUnavailableError) as info:
        check_backend("genn")
    message = str(info.value)
    assert "run_args" in message and "brian2 < 2.6" in message
    assert "cuda_standalone" in message and gb.CUDA_INSTALL_COMMAND in message


# --- compile-only build of a small network -------------------------------------


def _tiny_network() -> dict:
    """8 LIF neurons with input, recurrence and a readout, like the real builder.

    All objects run on their own clock, as the builder's do (this needs
    :func:`gb.patch_synapse_clocks`). Returns every object: a standalone build
    needs them alive until it is done.
    """
    from brian2 import (
        Clock,
        NeuronGroup,
        SpikeGeneratorGroup,
        SpikeMonitor,
        StateMonitor,
        Synapses,
        ms,
        run,
    )

    clock = Clock(dt=1 * ms, name="tiny_clock")
    inputs = SpikeGeneratorGroup(
        4, [0, 1, 2, 3, 0], [1, 2, 3, 4, 6] * ms, clock=clock, name="inputs"
    )
    rec = NeuronGroup(
        8,
        "dv/dt = -v / (20*ms) : 1",
        threshold="v > 1",
        reset="v -= 1",
        method="exact",
        clock=clock,
        name="rec",
    )
    out = NeuronGroup(2, "dv/dt = -v / (20*ms) : 1", method="exact", clock=clock, name="out")
    w_in = Synapses(inputs, rec, "w : 1", on_pre="v_post += w", clock=clock, name="w_in")
    w_in.connect()
    w_in.w = "0.4 + 0.1 * i"
    w_rec = Synapses(rec, rec, "w : 1", on_pre="v_post += w", clock=clock, name="w_rec")
    w_rec.connect(condition="i != j")
    w_rec.w = 0.05
    w_out = Synapses(rec, out, "w : 1", on_pre="v_post += w", clock=clock, name="w_out")
    w_out.connect()
    w_out.w = 0.2
    spikes = SpikeMonitor(rec, name="rec_spikes")
    readout = StateMonitor(out, "v", record=True, clock=clock, name="out_v")
    run(20 * ms)
    return {
        "objects": (inputs, rec, out, w_in, w_rec, w_out),
        "spikes": spikes,
        "readout": readout,
    }


def _dynamic_section(program: Path) -> str:
    return subprocess.run(
        ["readelf", "-d", str(program)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
@needs_cuda_toolchain
@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf (binutils)")
def test_tiny_network_generates_and_compiles_for_cuda(tmp_path):
    """Generation + nvcc compilation of a whole project; no GPU needed.

    Takes minutes: nvcc compiles about 25 CUDA files.
    """
    from brian2 import set_device

    build = gb.configure_cuda_standalone(tmp_path / "cuda_project", compile_only=True)
    try:
        network = _tiny_network()
        build.build()
        del network
    finally:
        build.restore()
        set_device("runtime")
    project = build.directory
    program = project / "main"
    assert program.is_file(), "nvcc produced no program"
    code_objects = {p.name for p in (project / "code_objects").glob("*.cu")}
    for name in ("w_in_pre_codeobject.cu", "w_rec_pre_codeobject.cu", "rec_spike_resetter"):
        assert any(n.startswith(name.removesuffix(".cu")) for n in code_objects), name
    makefile = (project / "makefile").read_text()
    assert "-arch=sm_90" in makefile
    nvcc_flags = next(line for line in makefile.splitlines() if line.startswith("NVCCFLAGS"))
    assert nvcc_flags.rfind("-std=c++17") > nvcc_flags.rfind("-std=c++11")
    dynamic = _dynamic_section(program)
    assert "libcurand.so" in dynamic
    assert str(build.toolchain.curand.library_dir) in dynamic, "no run path to cuRAND"
    assert build.build_seconds is not None and build.build_seconds > 0
    assert {p.name for p in build.patched_files} == {
        f"{name}_pre_codeobject.cu" for name in ("w_in", "w_rec", "w_out")
    }


@pytest.mark.slow
@needs_cuda_toolchain
def test_spec_network_generates_and_compiles_for_cuda(tmp_path):
    """The real builder's network, cuda_standalone, compile-only; no GPU needed.

    Takes minutes (nvcc compiles about 40 CUDA files). Afterwards the runtime
    device and the preferences are back, and on a machine without a GPU the
    compiled program fails with a clear error instead of returning results.
    """
    import numpy as np
    from brian2 import get_device, prefs
    from brian2.devices.device import RuntimeDevice

    from mosaicnet.layout import Layout
    from mosaicnet.network.brian_network import BrianNetwork
    from mosaicnet.network.spec import random_spec

    mask = ~np.eye(8, dtype=bool)
    spec = random_spec(4, Layout(2, 2, 2).to_dict(), 2, mask, seed=0)
    gcc_before = list(prefs["codegen.cpp.extra_compile_args_gcc"])
    network = BrianNetwork(
        spec,
        5,
        backend="cuda_standalone",
        copies=2,
        sequential=2,
        directory=str(tmp_path / "project"),
        cuda_options={"compile_only": True},
    )
    try:
        project = network.project
        assert project.built
        assert (project.directory / "main").is_file(), "nvcc produced no program"
        names = {p.name for p in (project.directory / "code_objects").glob("*.cu")}
        for group in ("input", "recurrent", "readout", "syn_in", "syn_rec", "syn_out"):
            assert any(name.startswith(f"{group}_") for name in names), group
        makefile = (project.directory / "makefile").read_text()
        assert "-arch=sm_90" in makefile
        assert "--fmad=false" in makefile, "exact=True (the default) must reach nvcc"
        assert isinstance(get_device(), RuntimeDevice)
        assert prefs["codegen.cpp.extra_compile_args_gcc"] == gcc_before
        if not gb.visible_gpus():
            with pytest.raises(BackendUnavailableError, match="running the compiled project"):
                network.run(np.zeros((1, 5, 4)))
    finally:
        network.close()
