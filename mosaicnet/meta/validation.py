"""Validation during meta-training: fixed meta-train-class tasks scored every N steps.

The score is the N-way query accuracy after inner-loop adaptation, with the
weights the forward pass uses (pruned) and ideal devices, on the same
``validation_tasks`` tasks every time, so that successive scores differ only
by the network. The tasks draw from recordings set apart from meta-training
(``TrainConfig.validation_holdout`` per class) or, without a holdout, from the
training recordings; their views are fixed (offset 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.maml import meta_loss

#: Tasks scored together in one forward pass (bounds the memory of a validation).
CHUNK = 8


@dataclass
class Validation:
    """The fixed validation tasks of a run and how to score a network on them."""

    sampler: object  # a TaskSampler
    n_tasks: int

    def score(self, params: dict[str, torch.Tensor], clone, config: TrainConfig) -> dict:
        """``{"val_acc", "val_ce"}``: means over the tasks (no gradients)."""
        from mosaicnet.meta.run_setup import to_meta_batch

        total_acc = total_ce = 0.0
        with torch.no_grad():
            for start in range(0, self.n_tasks, CHUNK):
                ids = range(start, min(self.n_tasks, start + CHUNK))
                batch = to_meta_batch(self.sampler.tasks(ids), clone.device)
                _, metrics = meta_loss(params, batch, clone, config)
                total_acc += float(metrics["acc"]) * len(ids)
                total_ce += float(metrics["ce"]) * len(ids)
        return {"val_acc": total_acc / self.n_tasks, "val_ce": total_ce / self.n_tasks}


def training_recordings(dataset, config: TrainConfig, seed: int) -> tuple[np.ndarray | None, ...]:
    """(meta-training recordings, validation recordings) of the train file.

    Both are None (every recording for both) without a holdout.
    """
    if config.validation_holdout == 0:
        return None, None
    from mosaicnet.data.tasks import split_recordings

    return split_recordings(dataset.labels, config.validation_holdout, seed=seed)


def make_validation(dataset, config: TrainConfig, recordings, seed: int) -> Validation:
    """The :class:`Validation` of a run (tasks over the meta-train classes, fixed views)."""
    from mosaicnet.data.tasks import TaskSampler
    from mosaicnet.meta.run_setup import few_shot_config

    tasks = replace(few_shot_config(config), view_offset=0)
    sampler = TaskSampler(dataset, tasks, split="meta-train", seed=seed, recordings=recordings)
    return Validation(sampler, config.validation_tasks)
