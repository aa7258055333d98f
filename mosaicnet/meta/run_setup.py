"""What a training run is built from: data, tasks, network, torch clone, seeds.

Meta-training (:mod:`mosaicnet.meta.training`) and everything that rebuilds
part of a run (evaluation, simulation, the protocols, notebooks) use these
helpers, so that they agree on the data folder, the few-shot task
configuration, the network a configuration describes and the random stream of
each purpose. torch is imported only by the helpers that make tensors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mosaicnet.errors import ConfigError, DataFormatError
from mosaicnet.meta.config import TrainConfig

if TYPE_CHECKING:
    import torch

    from mosaicnet.meta.maml import MetaBatch

#: Default location of the synthetic default data (generated on first use).
DEFAULT_DATA_DIR = Path("data") / "synthetic"

#: Independent random streams derived from the run seed (numpy SeedSequence spawn keys).
STREAM_WEIGHTS, STREAM_MASK, STREAM_NOISE, STREAM_TASKS, STREAM_VALIDATION = range(5)


def stream_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for one purpose (weights, mask, noise, tasks) of a run seed."""
    return int(np.random.SeedSequence(seed, spawn_key=(stream,)).generate_state(1)[0])


def torch_dtype(config: TrainConfig) -> torch.dtype:
    """The torch dtype named by ``config.dtype``."""
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[config.dtype]


# ----------------------------------------------------------------------------- network
def build_layout(config: TrainConfig):
    """The :class:`~mosaicnet.layout.Layout` of the configuration."""
    from mosaicnet.layout import Layout

    if config.layout == "fc":
        return Layout.fully_connected(config.fc_neurons)
    return Layout(config.rows, config.cols, config.neurons_per_tile, config.beta)


def build_spec(config: TrainConfig, n_in: int):
    """A freshly initialised network spec for the configuration and ``n_in`` inputs.

    The recurrent mask connects every pair (the published model) unless the
    configuration gives a small-world prior (``p_local``, ``hop_decay``) or a
    routing limit (``max_hops``: no synapse between neurons further apart). One
    simulation step is one input bin: ``dt = window_s / n_bins`` (14 ms for the
    published 100 bins over 1.4 s); the neurons are the configuration's neuron
    model (:meth:`TrainConfig.neuron_parameters`), with physical time constants.
    """
    from mosaicnet.layout import SmallWorldPrior, sample_small_world_mask
    from mosaicnet.network.spec import random_spec

    layout = build_layout(config)
    n = layout.n_neurons
    if config.p_local is None:
        mask = np.ones((n, n), dtype=bool)
    else:
        prior = SmallWorldPrior(p_local=config.p_local, decay=config.hop_decay)
        mask = sample_small_world_mask(
            layout, prior, rng=np.random.default_rng(stream_seed(config.seed, STREAM_MASK))
        )
    if config.max_hops is not None and config.layout == "mosaic":
        mask = mask & (layout.neuron_hops <= config.max_hops)
    return random_spec(
        n_in,
        layout.to_dict(),
        config.n_out,
        mask,
        gain=config.weight_gain,
        seed=stream_seed(config.seed, STREAM_WEIGHTS),
        device_model=config.device_model or "ideal",
        neuron=config.neuron_parameters(),
    )


def compute_device(name: str):
    """The :class:`torch.device` named ``name`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``).

    Raises
    ------
    ConfigError
        A CUDA device this torch cannot use (a CPU-only build, no GPU, or no GPU
        of that index).
    """
    import torch

    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"torch_device={name!r} (--device), but torch {torch.__version__} sees no "
                "CUDA GPU (a CPU-only build, or no driver); install a CUDA build of torch "
                "on a machine with a GPU, or use 'cpu'"
            )
        if (device.index or 0) >= torch.cuda.device_count():
            raise ConfigError(
                f"torch_device={name!r}: this machine has {torch.cuda.device_count()} "
                "CUDA GPU(s); use 'cuda' or an index below that"
            )
    return device


def make_clone(spec, config: TrainConfig, *, device: str | None = None):
    """The torch clone of ``spec`` with the configuration's dtype and surrogate.

    It runs on ``device`` (default: the configuration's ``torch_device``).
    """
    from mosaicnet.network.torch_clone import TorchClone

    return TorchClone(
        spec,
        dtype=torch_dtype(config),
        surrogate="fast_sigmoid",
        surrogate_slope=config.surrogate_slope,
        device=compute_device(config.torch_device if device is None else device),
    )


def encode_input(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Binned spike counts -> the binary input of the network (counts clipped to 1).

    The encoding is the one both simulators share
    (:func:`mosaicnet.network.spec.input_spikes`).
    """
    from mosaicnet.network.spec import input_spikes

    return input_spikes(x).to(dtype)


# ----------------------------------------------------------------------------- data
def resolve_data_dir(data_dir: str | os.PathLike | None, *, progress: bool = False) -> Path:
    """``data_dir``, or the synthetic default data (generated on first use)."""
    if data_dir is not None:
        path = Path(data_dir)
        if path.is_file():
            raise DataFormatError(
                f"data directory {path} is a file; pass the directory that holds it "
                f"({path.parent}) and shd_test.h5 beside it"
            )
        if not path.is_dir():
            raise DataFormatError(
                f"data directory {path} does not exist; pass a directory holding "
                "shd_train.h5 and shd_test.h5, or omit data_dir (--data) for the synthetic default"
            )
        return path
    from mosaicnet.data import ensure_synthetic_shd

    ensure_synthetic_shd(DEFAULT_DATA_DIR, progress=progress)
    return DEFAULT_DATA_DIR


def few_shot_config(config: TrainConfig, *, n_way: int | None = None, meta_train: bool = False):
    """The :class:`~mosaicnet.data.tasks.FewShotConfig` of a training configuration.

    ``meta_train=True`` is the configuration of meta-training tasks: only they carry
    the shift augmentation (``TrainConfig.channel_shift``).
    """
    from mosaicnet.data.tasks import FewShotConfig

    return FewShotConfig(
        n_way=config.n_way if n_way is None else n_way,
        k_shot=config.k_shot,
        n_query=config.n_query,
        held_out=config.held_out_classes,
        stride=config.spatial_stride,
        n_bins=config.n_bins,
        window_s=config.window_s,
        channel_shift=config.channel_shift if meta_train else 0,
    )


def load_split(data_dir: Path, split: str):
    """Load ``shd_train.h5`` (``"train"``) or ``shd_test.h5`` (``"test"``) of ``data_dir``."""
    from mosaicnet.data import load_shd

    return load_shd(Path(data_dir) / f"shd_{split}.h5")


def to_meta_batch(tasks, device=None) -> MetaBatch:
    """The :class:`MetaBatch` of a sampler's ``TaskBatch`` on ``device``.

    The inputs are made binary and kept as ``bool``: a quarter of float32's memory,
    which matters at large meta-batches (the published 256 tasks are 1.2 GB of
    float32 inputs). :func:`mosaicnet.meta.maml.meta_loss` converts them to the
    weights' dtype one pass at a time.
    """
    import torch

    from mosaicnet.meta.maml import MetaBatch

    return MetaBatch(
        support_x=encode_input(tasks.support_x, torch.bool).to(device),
        support_y=tasks.support_y.to(device),
        query_x=encode_input(tasks.query_x, torch.bool).to(device),
        query_y=tasks.query_y.to(device),
        classes=tasks.classes.to(device),
    )
