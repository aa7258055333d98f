"""Peak memory and build time of batched Brian2 evaluation, against a bare-import baseline.

Same network and input as ``bench_clone.py`` (256 Mosaic neurons, 234 inputs,
20 readout units, 100 steps, spike probability 0.05). Every mode runs in a fresh
Python process (``--child MODE``), so that each peak is its own: the resident
set size high-water mark (``ru_maxrss``) of that process and, for
cpp_standalone, of the compiled program (a child process, measured on its own
with ``os.wait4``) and of the compiler (the largest child while building).

Modes:

* ``imports``: import numpy, torch, brian2 and mosaicnet, nothing else (the baseline);
* ``numpy-per-sample``: Brian2 numpy, one ``run()`` per sample (``--single`` samples);
* ``cython-copies``: Brian2 cython, the default number of copies per run;
* ``cpp-standalone``: compiled once, all samples back to back in one run;
* ``torch-float32``: the torch clone's forward pass (no gradient) on all samples.

Printed per mode: peak RSS of the Python process and of the standalone program,
their ratio to the baseline's, and the wall time of building (and compiling)
the network once.

Measured on this project's 2-core machine (2026-11-28, 512 samples, another
job running): peak RSS imports 421 MiB; numpy per-sample 421 MiB (1.00x);
cython with 120 copies 1274 MiB (3.03x, build 2.9 s with Cython's cache warm);
cpp_standalone 518 MiB in Python (1.23x) plus 449 MiB in the compiled program,
compiler 421 MiB, build and compile 53 s; torch clone forward (float32) 586 MiB
(1.39x).

Run: ``python benchmarks/bench_memory.py [--samples 512] [--single 8]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

MODES = ("imports", "numpy-per-sample", "cython-copies", "cpp-standalone", "torch-float32")


def _call_recording_peak(peaks: list[float]):
    """A ``subprocess.call`` that records the finished child's own peak RSS (MiB)."""

    def call(command, **kwargs):
        process = subprocess.Popen(command, **kwargs)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peaks.append(usage.ru_maxrss / 1024)  # Linux: KiB
        return process.returncode

    return call


def child(mode: str, n_samples: int, n_single: int) -> dict[str, float]:
    """Run one mode in this process; return its peaks (MiB) and build seconds."""
    import brian2  # noqa: F401  (the baseline includes Brian2's import)
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_clone import N_IN, T, build_spec

    from mosaicnet.network.brian_network import BrianNetwork, default_batching
    from mosaicnet.network.torch_clone import TorchClone

    torch.set_num_threads(1)
    spec = build_spec()
    x = np.random.default_rng(2).random((n_samples, T, N_IN)) < 0.05
    build_s, compiler, program = 0.0, 0.0, []
    if mode == "torch-float32":
        clone = TorchClone(spec, dtype=torch.float32)
        with torch.no_grad():
            clone.forward(clone.init_params(), torch.as_tensor(x))
    elif mode != "imports":
        backend, copies, sequential, samples = {
            "numpy-per-sample": ("numpy", 1, 1, x[:n_single]),
            "cython-copies": ("cython", default_batching(spec, "cython", n_samples)[0], 1, x),
            "cpp-standalone": ("cpp_standalone", 1, n_samples, x),
        }[mode]
        tic = time.perf_counter()
        network = BrianNetwork(
            spec, T, backend=backend, copies=copies, sequential=sequential,
            record=("recurrent", "readout"), read_noise=False,
        )  # fmt: skip
        build_s = time.perf_counter() - tic
        # Brian2 starts the compiled program with subprocess.call.
        compiler = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with network, mock.patch("subprocess.call", _call_recording_peak(program)):
            network.run(samples)
    # Linux reports ru_maxrss in KiB.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "python_mib": own,
        "program_mib": max(program, default=0.0),
        "compiler_mib": compiler if mode == "cpp-standalone" else 0.0,
        "build_s": build_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512, help="evaluation samples")
    parser.add_argument("--single", type=int, default=8, help="samples for numpy per-sample")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.samples, args.single)))
        return
    results = {}
    for mode in MODES:
        command = [sys.executable, __file__, "--child", mode, "--samples", str(args.samples)]
        command += ["--single", str(args.single)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"mode {mode} failed:\n{done.stderr[-3000:]}")
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["imports"]["python_mib"]
    print(f"peak resident memory, {args.samples} samples (numpy per-sample: {args.single})")
    print(f"  {'mode':<18} {'Python (MiB)':>12} {'vs imports':>10} {'program (MiB)':>14} "
          f"{'build (s)':>9}")  # fmt: skip
    for mode, r in results.items():
        program = f"{r['program_mib']:14.0f}" if mode == "cpp-standalone" else f"{'-':>14}"
        print(
            f"  {mode:<18} {r['python_mib']:12.0f} {r['python_mib'] / base:9.2f}x "
            f"{program} {r['build_s']:9.1f}"
        )
    compiler = results["cpp-standalone"]["compiler_mib"]
    print(f"  cpp-standalone compile: peak of its child processes (compiler) {compiler:.0f} MiB")
    print(json.dumps({"samples": args.samples, "results": results}))


if __name__ == "__main__":
    main()
