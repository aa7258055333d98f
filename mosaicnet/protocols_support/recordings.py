"""Brian2 recordings of a trained run on test samples (rasters, spike counts for routing).

The trained network of a run directory is programmed into its device model's
memristors (programming noise, per-device drift parameters) and simulated in
Brian2 on a few samples of the test split: the recording feeds the spike
rasters and the routing traffic (hops per spike) of the protocols. The chip is
the one the protocol's chip-in-the-loop accuracy comes from for the same seed
and options (:func:`mosaicnet.meta.chip_evaluation.chip_as_evaluated`): same
conductances, drift parameters and weight scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mosaicnet.meta.evaluation_options import EvaluationOptions

_DEFAULTS = EvaluationOptions()


@dataclass
class SampleRecording:
    """A Brian2 simulation of test samples and what it was run on."""

    result: Any  # mosaicnet.network.brian_network.SimulationResult
    spec: Any  # mosaicnet.network.spec.NetworkSpec
    labels: np.ndarray  # global class label of each sample
    label_names: dict[int, str]
    read_time_s: float
    programmed: dict[str, Any]  # pathway -> ProgrammedArray: the chip it ran on
    readout_init: str = "meta"  # the run's TrainConfig.readout_init

    @property
    def predicted(self) -> np.ndarray:
        """Published decision rule on the unadapted readout: argmax over units of max_t v."""
        return self.result.readout.max(axis=1).argmax(axis=1)

    def decision(self, sample: int) -> int | None:
        """The readout unit to mark as predicted in a figure of ``sample``, or None.

        The published decision rule on the recorded (meta) readout when the run's
        tasks start from it. With ``readout_init="prototype"`` every task replaces
        its classes' columns by their support prototypes, so no unit of the meta
        readout is what a task would predict: None.
        """
        if self.readout_init != "meta":
            return None
        return int(self.predicted[sample])

    def spike_counts(self) -> np.ndarray:
        """Recurrent spikes per neuron, summed over samples and time."""
        return self.result.recurrent_spikes.sum(axis=(0, 1))


def split_inputs(data_dir: Path, config, n_samples: int, *, seed: int = 0):
    """``(x, labels, label_names)``: ``n_samples`` test samples (one per class in turn).

    Samples are drawn class by class (class 0, 1, ..., then again) so that a
    handful of samples covers many classes; ``x`` is ``(n, n_bins, channels)``
    binned counts of the first spatial-sampling view (offset 0), as the network
    was trained on.
    """
    from mosaicnet.meta.run_setup import load_split

    dataset = load_split(Path(data_dir), "test")
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(dataset.labels == c)) for c in range(20)]
    by_class = [idx for idx in by_class if idx.size]
    order = [by_class[k % len(by_class)][k // len(by_class)] for k in range(n_samples)]
    indices = np.asarray(order, dtype=np.int64)
    x = dataset.binned(
        indices, n_bins=config.n_bins, window_s=config.window_s,
        stride=config.spatial_stride, offset=0,
    ).numpy()  # fmt: skip
    return x, dataset.labels[indices], dict(dataset.label_names)


def record_test_samples(
    run_dir: Path,
    data_dir: Path,
    *,
    n_samples: int,
    backend: str = _DEFAULTS.backend,
    read_time_s: float = _DEFAULTS.read_time_s,
    seed: int = _DEFAULTS.seed,
    noise: bool = _DEFAULTS.noise,
    drift_compensation: bool = _DEFAULTS.drift_compensation,
) -> SampleRecording:
    """Program the run's trained network into Brian2 and record ``n_samples`` test samples.

    Parameters
    ----------
    run_dir
        A finished training run.
    data_dir
        Directory with ``shd_test.h5``.
    n_samples
        Samples to simulate.
    backend
        Brian2 backend (``"numpy"``, ``"cython"``, ``"cpp_standalone"``, ...).
    read_time_s
        Seconds between programming and reading the memristors.
    seed
        Seed of the chip (programming noise, drift parameters, read noise) and
        of the sample choice.
    noise, drift_compensation
        As in :class:`mosaicnet.meta.evaluation_options.EvaluationOptions`:
        give the values of the evaluation the recording illustrates.
    """
    from mosaicnet.meta.chip_evaluation import chip_as_evaluated
    from mosaicnet.meta.run_directory import RunDirectory
    from mosaicnet.network.brian_network import simulate
    from mosaicnet.network.chip_programming import brian_seed

    options = EvaluationOptions(
        backend=backend, read_time_s=read_time_s, seed=seed, noise=noise,
        drift_compensation=drift_compensation,
    )  # fmt: skip
    run = RunDirectory(run_dir)
    config = run.load_config()
    options = options.for_run(config)
    spec = run.load_spec()
    x, labels, names = split_inputs(data_dir, config, n_samples, seed=seed)
    programmed = chip_as_evaluated(spec, options)
    result = simulate(
        spec, x, backend=options.backend, record=("input", "recurrent", "readout"),
        programmed=programmed, read_noise=options.noise, t_read_s=options.read_time_s,
        seed=brian_seed(options.seed),
    )  # fmt: skip
    return SampleRecording(
        result, spec, labels, names, options.read_time_s, programmed, config.readout_init
    )
