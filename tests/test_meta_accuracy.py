"""Meta-training learns: held-out-class few-shot accuracy far above chance (slow).

Setting: the synthetic default data (seed 0), a 4 x 4 x 4 = 64-neuron Mosaic, 150
outer steps of 8 tasks, 5-way 5-shot with 5 queries per class, everything else
default. Measured when this test was written (100 held-out-class tasks each):
untrained network 21 % (chance 20 %); trained with 1 inner step 31 %; trained
with 10 inner steps 54 %.
"""

from __future__ import annotations

import pytest

from mosaicnet.data import write_synthetic_shd
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.torch_evaluation import Z95, evaluate_on_torch
from mosaicnet.meta.training import train

SETTING = dict(rows=4, cols=4, meta_batch=8, iterations=150)
TASKS = 100
CHANCE = 1 / 5


@pytest.mark.slow
def test_held_out_accuracy_well_above_chance_and_not_lowered_by_more_steps(tmp_path, single_thread):
    data = tmp_path / "data"
    write_synthetic_shd(data, seed=0)
    results = {}
    for steps in (1, 10):
        run = tmp_path / f"steps{steps}"
        train(TrainConfig(**SETTING, inner_steps=steps), run, data_dir=data, progress=False)
        results[steps] = evaluate_on_torch(run, data_dir=data, tasks=TASKS, progress=False)
    one, ten = results[1], results[10]
    se_one = one["ci95_unseen"] / Z95  # standard error of the mean over 100 tasks
    se_ten = ten["ci95_unseen"] / Z95
    # Well above chance: more than 5 standard errors (about 0.04 here) above 20 %.
    assert one["accuracy_unseen"] > CHANCE + 5 * se_one, one["accuracy_unseen"]
    assert ten["accuracy_unseen"] > CHANCE + 5 * se_ten, ten["accuracy_unseen"]
    # More inner steps do not lower it: allow two standard errors of the difference.
    margin = 2 * (se_one**2 + se_ten**2) ** 0.5
    assert ten["accuracy_unseen"] >= one["accuracy_unseen"] - margin
    assert ten["accuracy_seen"] >= one["accuracy_seen"] - margin
