"""Run the Brian2 network on an NVIDIA GPU (cuda_standalone) and check it against the CPU.

For a machine with a GPU (written for an H200), in ONE short call, with no
network access (nothing is installed; the venv with brian2cuda and
nvidia-curand must already be there)::

    python benchmarks/gpu_run.py                 # defaults: 512 samples, < 5 min
    python benchmarks/gpu_run.py --samples 2048 --copies 256

What it does, in order:

1. checks the CUDA toolchain (brian2cuda, nvcc, cuRAND) and that a GPU is
   visible, and reads its compute capability from ``nvidia-smi``;
2. builds the spec'd network: an 8 x 8 Mosaic of 4 neurons per tile
   (256 recurrent neurons, EIS-Hub/meta-mosaic), a seeded small-world
   recurrent mask, 70 inputs, 20 readouts, 100 steps of 14 ms, random
   weights, ideal devices, no read noise (the GPU's cuRAND and Brian2's CPU
   generator draw different numbers). The weight gain is 2, four times the
   published initial 0.5: an untrained network with gain 0.5 stays almost
   silent on this input (0.02 Hz measured), which would make the spike
   comparison empty; gain 2 with input probability 0.1 gives about 3.4 Hz
   (0.047 spikes per neuron and step, ~1200 recurrent spikes per sample);
3. simulates the same seeded random input (each channel spikes in a bin with
   probability ``--input-p``) with ``cuda_standalone``, then with the float64
   torch clone (given the weights the GPU program read) and with
   ``cpp_standalone`` (skip it with ``--skip-cpp``); both Brian2 builds use
   ``exact=True`` (no fast math, no FMA contraction);
4. prints the build times, samples/s of each backend and their ratio, and
   how many samples have identical recurrent spike rasters, the largest
   readout difference and the recurrent firing rate. Exit status 1 when the
   GPU build or run fails, or the GPU spikes disagree with a CPU reference in
   more than ``--max-mismatch`` of the samples (CUDA's double ``exp``/``pow``
   may differ from glibc's in the last bit, which can flip a spike that lands
   exactly on the threshold; a genuine error changes most samples).

Throughput on the GPU comes from many copies of the network side by side
(``--copies``, block-diagonal synapses) times samples run back to back
(``--sequential``); the CPU reference uses one copy and runs samples back to
back, its fastest layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from mosaicnet.errors import MosaicnetError


def build_spec(seed: int, gain: float):
    """The benchmark network (see the module docstring)."""
    from mosaicnet.layout import Layout, SmallWorldPrior, sample_small_world_mask
    from mosaicnet.network.spec import random_spec

    layout = Layout(8, 8, 4)
    mask = sample_small_world_mask(layout, SmallWorldPrior(), rng=np.random.default_rng(seed))
    return random_spec(70, layout.to_dict(), 20, mask, gain=gain, seed=seed, device_model="ideal")


def timed_network(spec, n_steps: int, x: np.ndarray, **options):
    """Build a BrianNetwork, run ``x`` once; return (result, build seconds, weights)."""
    from mosaicnet.network.brian_network import BrianNetwork

    start = time.perf_counter()
    network = BrianNetwork(spec, n_steps, read_noise=False, **options)
    build_s = time.perf_counter() - start
    try:
        result = network.run(x, progress=True)
        weights = network.weights_as_read()
    finally:
        network.close()
    return result, build_s, weights


def torch_reference(spec, weights: dict[str, np.ndarray], x: np.ndarray):
    """Recurrent spikes and readout of the float64 torch clone with the read weights."""
    import torch

    from mosaicnet.network.torch_clone import TorchClone

    clone = TorchClone(spec, dtype=torch.float64)
    params = {name: torch.as_tensor(value, dtype=torch.float64) for name, value in weights.items()}
    start = time.perf_counter()
    with torch.no_grad():
        z, readout = clone.forward(params, torch.as_tensor(x, dtype=torch.float64))
    return z.numpy().astype(bool), readout.numpy(), time.perf_counter() - start


def compare(name: str, reference, other) -> float:
    """Print the agreement of two (spikes, readout) pairs; return the mismatch fraction."""
    spikes_ref, readout_ref = reference
    spikes, readout = other
    same = np.all(spikes_ref == spikes, axis=(1, 2))
    differing_bits = int(np.sum(spikes_ref != spikes))
    max_diff = float(np.max(np.abs(readout_ref - readout)))
    print(
        f"  {name}: identical spike rasters in {int(same.sum())}/{same.size} samples "
        f"({differing_bits} differing spike bits), max |readout diff| = {max_diff:.3g}"
    )
    return float(1.0 - same.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100, help="time bins per sample")
    parser.add_argument("--copies", type=int, default=128, help="GPU: networks side by side")
    parser.add_argument("--sequential", type=int, default=4, help="GPU: samples back to back")
    parser.add_argument("--input-p", type=float, default=0.1, help="input spike probability")
    parser.add_argument("--gain", type=float, default=2.0, help="initial weight gain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compute-capability",
        type=float,
        default=None,
        help="default: read from nvidia-smi",
    )
    parser.add_argument("--max-mismatch", type=float, default=0.01)
    parser.add_argument(
        "--skip-cpp",
        action="store_true",
        help="no cpp_standalone reference (saves its compilation; torch check only)",
    )
    args = parser.parse_args()

    from mosaicnet.network import gpu_backends as gb

    try:
        toolchain = gb.find_cuda_toolchain()
    except MosaicnetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    gpus = gb.visible_gpus()
    capability = args.compute_capability or gb.detect_compute_capability()
    print(
        f"brian2cuda {toolchain.brian2cuda_version}, CUDA {toolchain.cuda_version[0]}."
        f"{toolchain.cuda_version[1]} at {toolchain.cuda_path}, cuRAND from "
        f"{toolchain.curand.source}; GPUs: {gpus or 'none'}; compute capability {capability}"
    )
    if not gpus or capability is None:
        print("error: no GPU visible (nvidia-smi); this script must run on a GPU machine")
        return 2

    spec = build_spec(args.seed, args.gain)
    rng = np.random.default_rng(args.seed + 1)
    x = rng.random((args.samples, args.steps, spec.n_in)) < args.input_p
    print(
        f"network: {spec.n_in} inputs, {spec.n_rec} recurrent ({int(spec.rec_mask.sum())} "
        f"recurrent synapses), {spec.n_out} readouts; {args.samples} samples x {args.steps} "
        f"steps, input p = {args.input_p}, weight gain {args.gain}"
    )

    jobs = os.cpu_count() or 1
    gpu_copies = max(1, min(args.copies, args.samples))
    gpu_sequential = max(1, min(args.sequential, -(-args.samples // gpu_copies)))
    print(f"building cuda_standalone ({jobs} parallel nvcc) ...", flush=True)
    try:
        gpu, gpu_build_s, weights = timed_network(
            spec,
            args.steps,
            x,
            backend="cuda_standalone",
            exact=True,
            copies=gpu_copies,
            sequential=gpu_sequential,
            cuda_options={"compute_capability": float(capability), "make_jobs": jobs},
        )
    except MosaicnetError as error:
        print(f"FAIL: {error}")
        return 1
    gpu_rate = args.samples / gpu.wall_s
    print(
        f"cuda_standalone: build+compile {gpu_build_s:.1f} s ({gpu_copies} copies x "
        f"{gpu_sequential} sequential), run {gpu.wall_s:.2f} s = {gpu_rate:.1f} samples/s, "
        f"firing rate {gpu.firing_rate_hz():.2f} Hz",
        flush=True,
    )

    # The torch clone with the weights the GPU program read: no compilation.
    z_torch, readout_torch, torch_s = torch_reference(spec, weights, x)
    print(f"torch clone (float64, CPU): {args.samples / torch_s:.1f} samples/s")
    print("agreement:")
    gpu_result = (gpu.recurrent_spikes, gpu.readout)
    mismatches = [compare("cuda vs torch clone", (z_torch, readout_torch), gpu_result)]

    if not args.skip_cpp:
        print("building cpp_standalone ...", flush=True)
        cpu, cpu_build_s, _ = timed_network(
            spec,
            args.steps,
            x,
            backend="cpp_standalone",
            exact=True,
            sequential=min(256, args.samples),
        )
        cpu_rate = args.samples / cpu.wall_s
        print(
            f"cpp_standalone:  build+compile {cpu_build_s:.1f} s, run {cpu.wall_s:.2f} s = "
            f"{cpu_rate:.1f} samples/s, firing rate {cpu.firing_rate_hz():.2f} Hz"
        )
        print(f"speed-up cuda_standalone / cpp_standalone (run only): {gpu_rate / cpu_rate:.2f}x")
        cpu_result = (cpu.recurrent_spikes, cpu.readout)
        mismatches.append(compare("cuda vs cpp_standalone", cpu_result, gpu_result))
        compare("torch vs cpp_standalone", cpu_result, (z_torch, readout_torch))
    worst = max(mismatches)
    if worst > args.max_mismatch:
        print(
            f"FAIL: GPU spikes differ from a CPU reference in {worst:.1%} of the samples "
            f"(allowed {args.max_mismatch:.1%})"
        )
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
