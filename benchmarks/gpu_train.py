"""Meta-training on a GPU: seconds per outer step against the CPU, and float64 parity.

For a machine with an NVIDIA GPU and a CUDA build of torch, in one short call
(nothing is installed or downloaded; the synthetic data are generated locally)::

    python benchmarks/gpu_train.py                    # meta-batch 8, 64, 256
    python benchmarks/gpu_train.py --meta-batches 8 32 --repeats 3

Setting: the published network (8 x 8 x 4 = 256 Mosaic neurons, 234 inputs,
100 steps, 20 readout units), 5-way 5-shot with 5 queries, one inner step on the
readout, second order, layout loss on, float32: one step is what
``mosaicnet train`` does per outer iteration minus data loading (meta-gradient
and Adam update). For each meta-batch the CPU and the GPU step run interleaved,
``--repeats`` times after a warm-up; medians are printed with the ratio and the
seconds per task. Then ``--parity-steps`` float64 steps run from the same start
on both devices and the largest relative parameter difference is printed
(rounding only: the seeded draws are made on the CPU for both). Exit status 1
when no GPU is visible or the float64 runs differ by more than ``--rtol``.

``--gpu cpu`` runs the script with the CPU standing in for the GPU (a smoke test
on a machine without one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def build(meta_batch: int, device: str, dtype: str):
    """Config, clone, parameters, layout cost and two meta-batches on ``device``."""
    from mosaicnet.data.tasks import TaskSampler
    from mosaicnet.meta.config import TrainConfig
    from mosaicnet.meta.maml import init_meta_params
    from mosaicnet.meta.run_setup import (
        build_layout,
        build_spec,
        few_shot_config,
        load_split,
        make_clone,
        resolve_data_dir,
        to_meta_batch,
        torch_dtype,
    )  # fmt: skip

    config = TrainConfig(meta_batch=meta_batch, dtype=dtype, torch_device=device, seed=0)
    dataset = load_split(resolve_data_dir(None), "train")
    sampler = TaskSampler(dataset, few_shot_config(config), split="meta-train", seed=0)
    spec = build_spec(config, 234)
    clone = make_clone(spec, config)
    params = init_meta_params(clone.init_params(), config)
    kind = torch_dtype(config)
    cost = build_layout(config).cost_tensor(dtype=kind, device=clone.device)
    batches = [to_meta_batch(sampler.sample(meta_batch), clone.device) for _ in range(2)]
    return config, clone, params, cost, batches


def outer_step(config, clone, params, cost, batch, adam):
    from mosaicnet.meta.adam import adam_step
    from mosaicnet.meta.maml import meta_gradient

    grads, _, _ = meta_gradient(params, batch, clone, config, layout_cost=cost)
    return adam_step(params, grads, adam, config.outer_lr)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(meta_batch: int, gpu: str, repeats: int) -> dict[str, list[float]]:
    from mosaicnet.meta.adam import AdamState

    built = {device: build(meta_batch, device, "float32") for device in ("cpu", gpu)}
    states = {d: (b[2], AdamState.zeros_like(b[2])) for d, b in built.items()}
    times: dict[str, list[float]] = {d: [] for d in built}
    for rep in range(repeats + 1):  # the first round is the warm-up
        for device, (config, clone, _, cost, batches) in built.items():
            params, adam = states[device]
            synchronize(device)
            start = time.perf_counter()
            states[device] = outer_step(config, clone, params, cost, batches[rep % 2], adam)
            synchronize(device)
            if rep:
                times[device].append(time.perf_counter() - start)
    return times


def parity(gpu: str, steps: int) -> float:
    """Largest relative difference of the parameters after ``steps`` float64 steps."""
    from mosaicnet.meta.adam import AdamState

    finals = {}
    for device in ("cpu", gpu):
        config, clone, params, cost, batches = build(8, device, "float64")
        adam = AdamState.zeros_like(params)
        for step in range(steps):
            params, adam = outer_step(config, clone, params, cost, batches[step % 2], adam)
        finals[device] = {k: v.detach().cpu() for k, v in params.items()}
    cpu, other = finals["cpu"], finals[gpu]
    return max(float((cpu[k] - other[k]).abs().max() / cpu[k].abs().max()) for k in cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="cuda", help="the GPU device (default cuda)")
    parser.add_argument("--meta-batches", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parity-steps", type=int, default=5)
    parser.add_argument("--rtol", type=float, default=1e-8)
    args = parser.parse_args()
    from mosaicnet.meta.allocator import reuse_freed_memory

    reuse_freed_memory()  # as `mosaicnet train` runs (mosaicnet.meta.allocator)
    if args.gpu.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA GPU visible to torch {torch.__version__}", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name() if args.gpu.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, GPU {name}, {torch.get_num_threads()} CPU thread(s)")
    print(f"{'meta-batch':>10} {'CPU s':>8} {'GPU s':>8} {'ratio':>6} {'GPU s/task':>10}")
    for meta_batch in args.meta_batches:
        times = time_steps(meta_batch, args.gpu, args.repeats)
        cpu, gpu = statistics.median(times["cpu"]), statistics.median(times[args.gpu])
        print(f"{meta_batch:>10} {cpu:8.3f} {gpu:8.3f} {cpu / gpu:6.1f} {gpu / meta_batch:10.4f}",
              flush=True)  # fmt: skip
    difference = parity(args.gpu, args.parity_steps)
    print(f"float64, {args.parity_steps} steps: largest relative parameter difference "
          f"CPU vs {args.gpu} {difference:.2e} (tolerance {args.rtol:g})")  # fmt: skip
    return 0 if difference <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
