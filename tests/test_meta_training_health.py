"""What a careful trainer needs: clipping, a learning-rate schedule, divergence
detection, validation with the best network kept, and the Mosaic's routing limit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mosaicnet.data.tasks import FewShotConfig, TaskSampler, split_recordings
from mosaicnet.errors import ConfigError, TrainingDiverged
from mosaicnet.meta import run_setup
from mosaicnet.meta import training as training_module
from mosaicnet.meta.config import TrainConfig
from mosaicnet.meta.divergence import MIN_RISE, DivergenceMonitor
from mosaicnet.meta.run_directory import BEST_FILE, BEST_SPEC_FILE, RunDirectory
from mosaicnet.meta.run_setup import build_layout, build_spec
from mosaicnet.meta.training import clip_gradients, train

pytestmark = pytest.mark.usefixtures("single_thread")

# The tiny network of the training tests (tests/test_meta_training.py).
TINY = dict(
    rows=2, cols=2, neurons_per_tile=4, n_bins=30, spatial_stride=10, meta_batch=2,
    n_way=3, k_shot=2, n_query=2, checkpoint_every=3, outer_lr=3e-3,
)  # fmt: skip


# ----------------------------------------------------------------------------- divergence
def test_noisy_but_falling_loss_is_not_a_divergence():
    rng = np.random.default_rng(0)
    monitor = DivergenceMonitor(window=25, factor=2.0)
    losses = 3.0 * np.exp(-np.arange(2000) / 300) + 0.05 + rng.normal(0, 0.1, 2000).clip(-0.05)
    assert not any(monitor.update(float(loss)) for loss in losses)


def test_a_collapse_is_detected_within_the_window():
    """The measured collapse: loss about 0.05 for hundreds of steps, then about 2.6."""
    monitor = DivergenceMonitor(window=25, factor=2.0)
    flags = [monitor.update(0.05) for _ in range(500)] + [monitor.update(2.6) for _ in range(25)]
    assert not any(flags[:500])
    first = flags.index(True)
    # The window mean must pass 2 x 0.05 and 0.05 + MIN_RISE: after k collapsed steps
    # it is (k * 2.6 + (25 - k) * 0.05) / 25.
    k = math.ceil((MIN_RISE + 0.05 - 0.05) * 25 / (2.6 - 0.05) + 1e-12)
    assert first == 500 + k - 1


def test_a_small_loss_doubling_is_not_a_divergence():
    monitor = DivergenceMonitor(window=10, factor=2.0)
    assert not any(monitor.update(0.02) for _ in range(50))
    assert not any(monitor.update(0.1) for _ in range(50))  # 5x, but only 0.08 nats


def test_non_finite_loss_is_a_divergence_even_without_a_window():
    monitor = DivergenceMonitor(window=0, factor=2.0)
    assert not monitor.update(5.0)
    assert monitor.update(float("nan")) and monitor.update(float("inf"))


def test_replay_gives_the_state_of_uninterrupted_updates():
    losses = list(np.linspace(3, 0.1, 60)) + [1.0] * 5
    a, b = DivergenceMonitor(10, 2.0), DivergenceMonitor(10, 2.0)
    for loss in losses:
        a.update(loss)
    b.replay(losses)
    assert (a.best_mean, a.mean) == (b.best_mean, b.mean)


def test_training_stops_on_a_non_finite_loss_and_keeps_its_checkpoint(
    tmp_path, data_dir, monkeypatch
):
    real = training_module.meta_gradient
    calls = {"n": 0}

    def poisoned(params, batch, clone, config, **kwargs):
        gradients, loss, metrics = real(params, batch, clone, config, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            loss = torch.tensor(float("nan"))
        return gradients, loss, metrics

    monkeypatch.setattr(training_module, "meta_gradient", poisoned)
    config = TrainConfig(**TINY, iterations=8)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5.*checkpoint of step 3"):
        train(config, tmp_path / "run", data_dir=data_dir, progress=False)
    run = RunDirectory.open(tmp_path / "run")
    assert [r["iteration"] for r in run.read_metrics()] == [1, 2, 3, 4]
    assert run.load_checkpoint()["iteration"] == 3
    assert torch.isfinite(torch.as_tensor(run.load_spec().w_rec)).all()


# ----------------------------------------------------------------------------- outer step
def test_gradients_are_clipped_to_the_global_norm():
    gradients = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([[4.0]])}
    clipped, norm = clip_gradients(gradients, 1.0)
    assert norm == pytest.approx(5.0)
    total = math.sqrt(sum(float((g**2).sum()) for g in clipped.values()))
    assert total == pytest.approx(1.0)
    torch.testing.assert_close(clipped["a"], torch.tensor([0.6, 0.0]))
    same, _ = clip_gradients(gradients, 10.0)
    assert same["a"] is gradients["a"]
    unclipped, norm = clip_gradients(gradients, None)
    assert norm == pytest.approx(5.0) and unclipped["b"] is gradients["b"]


def test_cosine_schedule_with_warmup():
    config = TrainConfig(
        iterations=101, outer_lr=1e-3, outer_lr_schedule="cosine", outer_lr_warmup=10,
        outer_lr_final=0.1,
    )  # fmt: skip
    lrs = [config.outer_lr_at(i) for i in range(101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10] == pytest.approx(1e-3) and lrs[100] == pytest.approx(1e-4)
    assert lrs[55] == pytest.approx(0.55e-3)  # halfway down the cosine
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert TrainConfig(outer_lr=2e-3).outer_lr_at(123) == 2e-3


def test_schedule_and_norm_are_logged(tmp_path, data_dir):
    config = TrainConfig(**TINY, iterations=4, outer_lr_schedule="cosine", grad_clip=1e-6)
    train(config, tmp_path / "run", data_dir=data_dir, progress=False)
    records = RunDirectory.open(tmp_path / "run").read_metrics()
    assert [r["outer_lr"] for r in records] == [config.outer_lr_at(i) for i in range(4)]
    assert all(r["grad_norm"] > 1e-6 for r in records)  # logged before clipping


# ----------------------------------------------------------------------------- validation
def test_validation_keeps_the_best_network(tmp_path, data_dir):
    config = TrainConfig(**TINY, iterations=6, validation_every=2, validation_tasks=4)
    train(config, tmp_path / "run", data_dir=data_dir, progress=False)
    run = RunDirectory.open(tmp_path / "run")
    records = run.read_metrics()
    scored = {r["iteration"]: r["val_acc"] for r in records if "val_acc" in r}
    assert sorted(scored) == [2, 4, 6]
    best = json.loads(run.file(BEST_FILE).read_text())
    first_best = min(i for i, acc in scored.items() if acc == max(scored.values()))
    assert best == {"iteration": first_best, "val_acc": scored[first_best]}
    assert run.trained_spec_name() == BEST_SPEC_FILE
    assert run.trained_spec_name(last=True) == "spec.npz"
    np.testing.assert_array_equal(run.load_spec().w_out, run.load_spec().w_out)


def test_validation_on_held_out_recordings_never_trains_on_them(tmp_path, data_dir, monkeypatch):
    seen_indices: list[np.ndarray] = []
    original = TaskSampler.tasks

    def spy(self, ids):
        batch = original(self, ids)
        seen_indices.append((self.seed, batch.support_index.numpy(), batch.query_index.numpy()))
        return batch

    monkeypatch.setattr(TaskSampler, "tasks", spy)
    config = TrainConfig(**TINY, iterations=2, validation_every=1, validation_tasks=2,
                         validation_holdout=4)  # fmt: skip
    train(config, tmp_path / "run", data_dir=data_dir, progress=False)
    validation_seed = run_setup.stream_seed(0, run_setup.STREAM_VALIDATION)
    by_kind: dict[bool, set] = {True: set(), False: set()}
    for seed, support, query in seen_indices:
        by_kind[seed == validation_seed].update(support.ravel(), query.ravel())
    assert by_kind[True] and by_kind[False]
    assert not by_kind[True] & by_kind[False]


def test_validation_holdout_too_small_for_a_task_is_refused():
    with pytest.raises(ConfigError, match="k_shot \\+ n_query = 10"):
        TrainConfig(validation_holdout=4)


def test_split_recordings_sets_the_same_apart_for_a_seed():
    labels = np.repeat(np.arange(4), 12)
    kept, apart = split_recordings(labels, 3, seed=7)
    assert np.bincount(labels[apart]).tolist() == [3, 3, 3, 3]
    assert not set(kept) & set(apart) and len(kept) + len(apart) == 48
    np.testing.assert_array_equal(apart, split_recordings(labels, 3, seed=7)[1])
    with pytest.raises(ConfigError, match="class 0 has 12 recordings"):
        split_recordings(labels, 12, seed=0)


def test_task_sampler_draws_only_from_given_recordings(data_dir):
    from mosaicnet.data import load_shd

    dataset = load_shd(data_dir / "shd_train.h5")
    rng = np.random.default_rng(0)
    allowed = np.sort(rng.choice(len(dataset), len(dataset) // 2, replace=False))
    sampler = TaskSampler(dataset, FewShotConfig(n_way=3, k_shot=2, n_query=2), recordings=allowed)
    batch = sampler.sample(10)
    used = np.concatenate([batch.support_index.numpy().ravel(), batch.query_index.numpy().ravel()])
    assert np.isin(used, allowed).all()


# ----------------------------------------------------------------------------- routing limit
@pytest.mark.parametrize("max_hops", [0, 1])
def test_max_hops_keeps_every_recurrent_synapse_within_the_limit(max_hops):
    config = TrainConfig(rows=4, cols=4, neurons_per_tile=4, max_hops=max_hops)
    spec = build_spec(config, n_in=10)
    hops = build_layout(config).neuron_hops
    assert spec.rec_mask.any()
    assert hops[spec.rec_mask].max() == max_hops
    assert spec.rec_mask[hops <= max_hops].all()  # nothing else removed
    assert not (np.asarray(spec.w_rec)[hops > max_hops]).any()


def test_max_hops_is_checked():
    with pytest.raises(ConfigError, match="max_hops"):
        TrainConfig(max_hops=-1)


# ----------------------------------------------------------------------------- command line
def test_train_command_sets_any_field(tmp_path, data_dir, capsys):
    from mosaicnet.cli import main

    config = tmp_path / "tiny.json"
    from mosaicnet.meta.config import save_config

    save_config(TrainConfig(**TINY), config)
    run = tmp_path / "run"
    args = ["train", "--data", str(data_dir), "--out", str(run), "--quiet", "--iterations", "2",
            "--config", str(config), "--set", "max_hops=0", "--set", "grad_clip=0.5",
            "--set", "inner_step_scale=curvature"]  # fmt: skip
    assert main(args) == 0
    stored = RunDirectory.open(run).load_config()
    assert (stored.max_hops, stored.grad_clip, stored.inner_step_scale) == (0, 0.5, "curvature")
    assert main([*args[:-2], "--overwrite", "--set", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err


# ----------------------------------------------------------------------------- readout range
def test_torch_readout_saturates_like_the_chip_pairs():
    from mosaicnet.meta.readout_range import clip_readout, readout_range

    w_out = np.array([[0.5, -1.0], [0.25, 0.0]])
    assert readout_range(w_out, 2.0) == 2.0
    assert readout_range(np.zeros((2, 2)), 2.0) == 2.0
    adapted = torch.tensor([[2.5, -1.0], [-3.0, 1.9]])
    clipped, n = clip_readout(adapted, 2.0)
    assert n == 2
    torch.testing.assert_close(clipped, torch.tensor([[2.0, -1.0], [-2.0, 1.9]]))
