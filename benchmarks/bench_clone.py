"""Speed of the torch clone and of batched Brian2 evaluation, as ratios to baselines.

Network: 8 x 8 Mosaic of 4-neuron tiles (256 recurrent neurons, small-world
mask from the default prior), 234 input channels (700 SHD channels with the
published spatial sampling k = 3), 20 readout units, 100 steps, binary input
with spike probability 0.05 per bin and channel.

Part 1, training step (forward + backward, batch 64, float32, CPU):

* the clone (:class:`mosaicnet.network.torch_clone.TorchClone`);
* "obvious loop": the model of docs/model.md, 'The network', written step by step the
  direct way (input, recurrent and readout products inside the time loop);
* snnTorch (``Leaky`` / ``RLeaky`` with the fast-sigmoid surrogate), if installed.

A breakdown says where the clone's time goes (input product, recurrent loop,
readout filter, backward).

Part 2, evaluation (samples per second, build and compilation excluded):

* Brian2 numpy, one ``run()`` per sample (the baselines): as Brian2 behaves by
  default (a full ``gc.collect()`` at every run, ~0.4 s with torch loaded) and
  as mosaicnet runs it (the collector frozen around the run);
* Brian2 cython, many copies of the network in one run;
* Brian2 cpp_standalone, compiled once, samples back to back, new inputs via run_args;
* the torch clone's forward pass (no gradient), float64 and float32.

Printed ratios: batched Brian2 vs one run per sample (issue target >= 100x) and
cpp_standalone vs the clone's forward (target >= 1/3). Times are CPU seconds
(this process and the standalone programs it starts), the best of
``--repeats``: the machine is shared, and CPU time measures the work done
where wall time would measure the other users. torch runs on one thread
(``--threads``), like the standalone program.

Run: ``python benchmarks/bench_clone.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np
import torch

from mosaicnet.layout import Layout, SmallWorldPrior, sample_small_world_mask
from mosaicnet.network.spec import random_spec
from mosaicnet.network.surrogate import spike_function
from mosaicnet.network.torch_clone import TorchClone

N_IN, N_OUT, T = 234, 20, 100


def build_spec(seed: int = 0):
    layout = Layout(8, 8, 4)
    mask = sample_small_world_mask(layout, SmallWorldPrior(), rng=seed)
    # gain 3: realistic activity (about 5-10 % of neuron-steps spike) for this input rate
    return random_spec(N_IN, layout.to_dict(), N_OUT, mask, gain=3.0, seed=seed)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (standalone programs)."""
    children = os.times()
    return time.process_time() + children.children_user + children.children_system


def best_of(function, repeats: int) -> float:
    """Smallest CPU time of ``repeats`` calls.

    CPU time, not wall time: the machine these benchmarks run on is shared, and
    other processes stretch wall time by several times without changing the
    work done. (Multi-threaded torch counts every thread: run with one thread.)
    """
    times = []
    for _ in range(repeats):
        start = cpu_seconds()
        function()
        times.append(cpu_seconds() - start)
    return min(times)


# ------------------------------------------------------------------------- training step
def clone_step(clone, params, x, labels):
    z, v_out = clone.forward(params, x)
    loss = torch.nn.functional.cross_entropy(v_out.max(dim=1).values, labels)
    loss.backward()


def obvious_loop_step(clone, params, x, labels):
    """docs/model.md, 'The network', written the direct way (every product inside the loop)."""
    spike = spike_function("fast_sigmoid", 10.0)
    w_rec = params["w_rec"] * clone.rec_mask
    v = torch.zeros(x.shape[0], clone.n_rec)
    z = torch.zeros_like(v)
    vo = torch.zeros(x.shape[0], clone.n_out)
    outputs = []
    for t in range(x.shape[1]):
        v = clone.alpha * v + x[:, t] @ params["w_in"] + z @ w_rec - clone.threshold * z
        z = spike(v - clone.threshold)
        vo = clone.kappa * vo + z @ params["w_out"]
        outputs.append(vo)
    logits = torch.stack(outputs, 1).max(dim=1).values
    torch.nn.functional.cross_entropy(logits, labels).backward()


def snntorch_model(clone, params):
    import snntorch as snn
    from snntorch import surrogate

    fc_in = torch.nn.Linear(clone.n_in, clone.n_rec, bias=False)
    fc_out = torch.nn.Linear(clone.n_rec, clone.n_out, bias=False)
    recurrent = snn.RLeaky(
        beta=clone.alpha,
        linear_features=clone.n_rec,
        threshold=clone.threshold,
        spike_grad=surrogate.fast_sigmoid(slope=10),
        reset_mechanism="subtract",
    )
    readout = snn.Leaky(beta=clone.kappa, threshold=1e9, reset_mechanism="none")
    with torch.no_grad():
        fc_in.weight.copy_(params["w_in"].T)
        fc_out.weight.copy_(params["w_out"].T)
        recurrent.recurrent.weight.copy_((params["w_rec"] * clone.rec_mask).T)
    return fc_in, recurrent, fc_out, readout


def snntorch_step(model, x, labels):
    fc_in, recurrent, fc_out, readout = model
    spk, mem = recurrent.init_rleaky()
    mem_out = readout.init_leaky()
    outputs = []
    for t in range(x.shape[1]):
        spk, mem = recurrent(fc_in(x[:, t]), spk, mem)
        _, mem_out = readout(fc_out(spk), mem_out)
        outputs.append(mem_out)
    logits = torch.stack(outputs, 1).max(dim=1).values
    torch.nn.functional.cross_entropy(logits, labels).backward()


def breakdown(clone, params, x, labels, repeats):
    """Seconds spent in the parts of one clone training step."""
    w_in = params["w_in"]
    parts = {"input product (all steps at once)": best_of(lambda: x @ w_in, repeats)}
    with torch.no_grad():
        z = clone.recurrent_spikes(params, x)
        parts["recurrent loop (forward)"] = (
            best_of(lambda: clone.recurrent_spikes(params, x), repeats)
            - parts["input product (all steps at once)"]
        )
        parts["readout filter + product"] = best_of(
            lambda: clone.readout(params["w_out"], clone.readout_trace(z)), repeats
        )
    total = best_of(lambda: clone_step(clone, params, x, labels), repeats)
    parts["backward (autograd through 100 steps)"] = total - sum(parts.values())
    return parts, total


def training_benchmark(spec, batch: int, repeats: int) -> None:
    clone = TorchClone(spec, dtype=torch.float32)
    base = clone.init_params()
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.random((batch, T, N_IN)) < 0.05, dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, N_OUT, batch))
    params = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    with torch.no_grad():
        rate = clone.recurrent_spikes(params, x).mean().item()
    print(f"training step: batch {batch}, {T} steps, float32, {torch.get_num_threads()} threads")
    print(f"  activity: {rate:.3f} spikes per neuron and step")
    clone_s = best_of(lambda: clone_step(clone, params, x, labels), repeats)
    loop_s = best_of(lambda: obvious_loop_step(clone, params, x, labels), repeats)
    print(f"  clone fwd+bwd        {clone_s * 1e3:8.1f} ms")
    print(f"  obvious torch loop   {loop_s * 1e3:8.1f} ms   clone speed-up {loop_s / clone_s:.2f}x")
    try:
        model = snntorch_model(clone, base)
    except ImportError:
        print("  snnTorch not installed (pip install snntorch): skipped")
    else:
        snn_s = best_of(lambda: snntorch_step(model, x, labels), repeats)
        print(
            f"  snnTorch             {snn_s * 1e3:8.1f} ms   clone speed-up {snn_s / clone_s:.2f}x"
        )
    parts, total = breakdown(clone, params, x, labels, repeats)
    print("  where the clone's time goes:")
    for name, seconds in parts.items():
        print(f"    {name:<40} {seconds * 1e3:8.1f} ms  {100 * seconds / total:5.1f} %")


# ------------------------------------------------------------------------------- evaluation
def brian_rate(spec, x, backend: str, copies: int, sequential: int, repeats: int):
    """Samples per CPU second of a built network (build/compile and a warm-up run excluded).

    Returns ``(rate, build wall seconds, fraction of CPU in child processes)``;
    the child is the compiled standalone program, the rest is Python (writing
    the input file, Brian2's bookkeeping, reading results).
    """
    from mosaicnet.network.brian_network import BrianNetwork

    start = time.perf_counter()
    network = BrianNetwork(
        spec,
        T,
        backend=backend,
        copies=copies,
        sequential=sequential,
        record=("recurrent", "readout"),
        read_noise=False,
    )
    try:
        network.run(x[: network.samples_per_run])  # warm-up: cython compiles here
        build_s = time.perf_counter() - start
        before = os.times()
        seconds = best_of(lambda: network.run(x), repeats)
        after = os.times()
    finally:
        network.close()
    child = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    own = (after.user + after.system) - (before.user + before.system)
    return x.shape[0] / seconds, build_s, child / max(child + own, 1e-9)


def evaluation_benchmark(spec, n_samples: int, n_single: int, repeats: int) -> None:
    from unittest import mock

    from mosaicnet.network import brian_network
    from mosaicnet.network.brian_network import default_batching

    rng = np.random.default_rng(2)
    x = rng.random((n_samples, T, N_IN)) < 0.05
    print(f"\nevaluation: samples per CPU second ({n_samples} samples, {T} steps)")
    rates = {}
    # Baseline as Brian2 behaves by default: a full gc.collect() at every run().
    with mock.patch.object(brian_network, "_frozen_garbage_collector", contextlib.nullcontext):
        plain = "numpy, one run() per sample (Brian2 default)"
        rates[plain] = brian_rate(spec, x[:n_single], "numpy", 1, 1, 1)[0]
    own = "numpy, one run() per sample (mosaicnet)"
    rates[own] = brian_rate(spec, x[:n_single], "numpy", 1, 1, 1)[0]
    copies, _ = default_batching(spec, "cython", n_samples)
    cython = f"cython, {copies} copies per run"
    rates[cython], build_cy, _ = brian_rate(spec, x, "cython", copies, 1, repeats)
    standalone = f"cpp_standalone, {n_samples} back to back"
    rates[standalone], build_sa, program_share = brian_rate(
        spec, x, "cpp_standalone", 1, n_samples, repeats
    )
    xt = torch.as_tensor(x)
    for dtype in (torch.float64, torch.float32):
        clone = TorchClone(spec, dtype=dtype)
        params = clone.init_params()
        with torch.no_grad():
            seconds = best_of(lambda c=clone, p=params: c.forward(p, xt), repeats)
        rates[f"torch clone forward, {str(dtype).split('.')[-1]}"] = n_samples / seconds
    print(f"  {'':<46} {'samples/s':>10}   {'vs Brian2 default':>17}   {'vs mosaicnet':>12}")
    for name, rate in rates.items():
        print(
            f"  {name:<46} {rate:10.1f}   {rate / rates[plain]:16.1f}x   {rate / rates[own]:11.1f}x"
        )
    clone64 = rates["torch clone forward, float64"]
    clone32 = rates["torch clone forward, float32"]
    print("  batched vs one run() per sample: target >= 100x")
    print(
        f"  cpp_standalone / clone forward: {rates[standalone] / clone64:.2f} (float64), "
        f"{rates[standalone] / clone32:.2f} (float32); target >= 1/3"
    )
    print(
        f"  cpp_standalone CPU: {100 * program_share:.0f} % in the compiled program, the rest "
        "in Python (writing the input as a float64 TimedArray file, Brian2's run bookkeeping, "
        "reading the results)"
    )
    print(f"  build + first run (wall): cython {build_cy:.1f} s, cpp_standalone {build_sa:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--samples", type=int, default=512, help="evaluation samples")
    parser.add_argument("--single", type=int, default=8, help="samples for numpy per-sample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    parser.add_argument("--skip-brian", action="store_true", help="training step only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.samples, args.single, args.repeats = 128, 4, 2
    torch.manual_seed(0)
    spec = build_spec()
    print(
        f"network: {spec.n_in} inputs, {spec.n_rec} recurrent neurons "
        f"({int(spec.rec_mask.sum())} recurrent synapses), {spec.n_out} readout units"
    )
    training_benchmark(spec, args.batch, args.repeats)
    if not args.skip_brian:
        evaluation_benchmark(spec, args.samples, args.single, args.repeats)


if __name__ == "__main__":
    main()
