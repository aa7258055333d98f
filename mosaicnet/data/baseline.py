"""A simple few-shot baseline that measures how hard a dataset is.

Nearest-centroid on binned spike counts: each sample becomes a vector of spike counts in
``n_bins`` time bins x every ``stride``-th channel; the support samples of each class are
averaged into a centroid and each query is given the class of the nearest centroid
(Euclidean). No learning, no spiking network: a network that does not beat this on a
dataset has learned nothing beyond the dataset's raw statistics.

The default protocol is the published few-shot evaluation (docs/data.md, 'Few-shot tasks'; classes
[11, 12, 4, 3, 0] held out of meta-training in EIS-Hub/meta-mosaic): 5-way 5-shot on those
classes of the test file, 10 queries per class.

Measured on the synthetic default test file (``write_synthetic_shd(seed=0)``, 400 tasks,
task seed 0, 10 bins x 70 channels): 61.6 % mean accuracy, per-task std 6.5 %, chance
20 %. A learnable data set, but far from trivially separable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mosaicnet.data.shd import SpikeDataset

#: Held-out (unseen) classes of the published protocol (EIS-Hub/meta-mosaic; docs/data.md).
HELD_OUT_CLASSES: tuple[int, ...] = (11, 12, 4, 3, 0)


@dataclass(frozen=True)
class BaselineResult:
    """Accuracy of the nearest-centroid baseline over many sampled tasks.

    Attributes
    ----------
    task_accuracies : np.ndarray
        Fraction of correct queries in each task, shape ``(n_tasks,)``.
    n_way, k_shot, n_query : int
        The task shape.
    """

    task_accuracies: np.ndarray
    n_way: int
    k_shot: int
    n_query: int

    @property
    def mean(self) -> float:
        """Mean accuracy over tasks."""
        return float(self.task_accuracies.mean())

    @property
    def std(self) -> float:
        """Standard deviation of the per-task accuracy."""
        return float(self.task_accuracies.std())

    @property
    def chance(self) -> float:
        """Accuracy of guessing: 1 / n_way."""
        return 1.0 / self.n_way


def nearest_centroid_baseline(
    dataset: SpikeDataset,
    *,
    classes: tuple[int, ...] = HELD_OUT_CLASSES,
    n_way: int = 5,
    k_shot: int = 5,
    n_query: int = 10,
    n_tasks: int = 200,
    n_bins: int = 10,
    window_s: float = 1.4,
    stride: int = 10,
    seed: int = 0,
) -> BaselineResult:
    """N-way K-shot accuracy of nearest-centroid classification on binned counts.

    Tasks come from :class:`mosaicnet.data.tasks.TaskSampler` (split
    ``"meta-test-unseen"`` with ``held_out=classes``), so the baseline sees exactly the
    tasks a network evaluated on the same seed would see.

    Parameters
    ----------
    dataset : SpikeDataset
        Usually the test file.
    classes : tuple of int
        Class pool the ``n_way`` classes of each task are drawn from.
    n_way, k_shot, n_query : int
        Classes per task, support and query samples per class.
    n_tasks : int
        Number of independently sampled tasks.
    n_bins, window_s, stride : int, float, int
        Feature binning (see :meth:`SpikeDataset.binned`); the features are the counts
        of channels ``0, stride, 2 * stride, ...`` (view offset 0).
    seed : int
        Seed of the task sampler.

    Returns
    -------
    BaselineResult
    """
    from mosaicnet.data.tasks import FewShotConfig, TaskSampler

    config = FewShotConfig(
        n_way=n_way,
        k_shot=k_shot,
        n_query=n_query,
        held_out=tuple(classes),
        stride=stride,
        view_offset=0,
        n_bins=n_bins,
        window_s=window_s,
    )
    sampler = TaskSampler(dataset, config, split="meta-test-unseen", seed=seed)
    batch = sampler.sample(n_tasks)
    support = batch.support_x.reshape(n_tasks, n_way, k_shot, -1).to(torch.float64)
    queries = batch.query_x.reshape(n_tasks, n_way * n_query, -1).to(torch.float64)
    centroids = support.mean(dim=2)  # (B, N, D)
    predicted = torch.cdist(queries, centroids).argmin(dim=2)  # (B, N*Q)
    accuracies = (predicted == batch.query_y).to(torch.float64).mean(dim=1).numpy()
    return BaselineResult(accuracies, n_way, k_shot, n_query)
