"""Few-shot task sampling: protocol splits, reproducibility, no support/query leak, errors.

Most tests use a tiny in-memory dataset whose binned tensors encode the recording index
and the view offset, so a test can check which recording and view landed where.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mosaicnet.data.tasks import (
    PUBLISHED_HELD_OUT,
    FewShotConfig,
    TaskBatch,
    TaskSampler,
    shift_channels,
)
from mosaicnet.errors import ConfigError, DataFormatError, MosaicnetError

N_CLASSES = 20
N_CHANNELS = 10


class FakeDataset:
    """SpikeDataset's interface over random labels.

    ``binned`` puts the recording index in ``x[:, 0, 0]``, the view offset in ``x[:, 0, 1]``
    and the label everywhere from bin 1 on.
    """

    def __init__(self, per_class: int | list[int] = 14, seed: int = 0) -> None:
        counts = [per_class] * N_CLASSES if isinstance(per_class, int) else per_class
        labels = np.repeat(np.arange(len(counts)), counts)
        self.labels = np.random.default_rng(seed).permutation(labels).astype(np.int64)
        self.label_names = {i: f"word{i}" for i in range(len(counts))}
        self.calls: list[dict] = []

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def binned(self, indices, *, n_bins=100, window_s=1.4, stride=1, offset=0, dtype=None):
        indices = np.asarray(indices)
        self.calls.append(
            {
                "n": indices.size,
                "n_bins": n_bins,
                "window_s": window_s,
                "stride": stride,
                "offset": offset,
                "dtype": dtype,
            }
        )
        width = math.ceil(N_CHANNELS / stride)
        x = torch.zeros(indices.size, n_bins, width, dtype=dtype or torch.float32)
        x[:, 0, 0] = torch.from_numpy(indices.astype(np.float32))
        x[:, 0, 1] = torch.from_numpy(np.broadcast_to(offset, indices.shape).astype(np.float32))
        x[:, 1:, :] = torch.from_numpy(self.labels[indices].astype(np.float32))[:, None, None]
        return x


@pytest.fixture
def dataset() -> FakeDataset:
    return FakeDataset()


def _config(**kwargs) -> FewShotConfig:
    return FewShotConfig(**({"n_bins": 4} | kwargs))  # 4 bins: the tests check indices


def _assert_same(a: TaskBatch, b: TaskBatch) -> None:
    for name in vars(a):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_shapes_and_dtypes(dataset):
    config = _config(n_way=4, k_shot=3, n_query=2, stride=3)
    batch = TaskSampler(dataset, config, seed=1).sample(6)
    width = math.ceil(N_CHANNELS / 3)
    assert batch.support_x.shape == (6, 12, 4, width)
    assert batch.query_x.shape == (6, 8, 4, width)
    assert batch.support_x.dtype == torch.float32
    assert batch.support_y.shape == batch.support_index.shape == (6, 12)
    assert batch.query_y.shape == batch.query_seen.shape == (6, 8)
    assert batch.classes.shape == (6, 4)
    assert batch.query_seen.dtype == torch.bool and batch.support_y.dtype == torch.int64
    assert batch.n_tasks == 6 and batch.task_ids.tolist() == list(range(6))
    assert {c["window_s"] for c in dataset.calls} == {1.4}


def test_same_seed_same_tasks_other_seed_other_tasks(dataset):
    a = TaskSampler(dataset, _config(stride=3), seed=7).sample(5)
    b = TaskSampler(dataset, _config(stride=3), seed=7).sample(5)
    c = TaskSampler(dataset, _config(stride=3), seed=8).sample(5)
    _assert_same(a, b)
    assert not torch.equal(a.support_index, c.support_index)


def test_task_depends_only_on_its_id_not_on_batching(dataset):
    one = TaskSampler(dataset, _config(stride=3), seed=3)
    first, second = one.sample(3), one.sample(2)
    assert one.next_task_id == 5
    whole = TaskSampler(dataset, _config(stride=3), seed=3).sample(5)
    assert torch.equal(torch.cat([first.query_x, second.query_x]), whole.query_x)
    assert torch.equal(torch.cat([first.support_index, second.support_index]), whole.support_index)
    picked = TaskSampler(dataset, _config(stride=3), seed=3).tasks([4, 1])
    assert torch.equal(picked.support_x[0], whole.support_x[4])
    assert torch.equal(picked.query_view[1], whole.query_view[1])


def test_meta_train_never_draws_held_out_classes_and_covers_the_rest(dataset):
    batch = TaskSampler(dataset, _config(), split="meta-train", seed=0).sample(300)
    drawn = set(batch.classes.unique().tolist())
    assert drawn == set(range(N_CLASSES)) - set(PUBLISHED_HELD_OUT)
    assert batch.query_seen.all()
    assert not np.isin(dataset.labels[batch.query_index.numpy()], PUBLISHED_HELD_OUT).any()


def test_class_choice_is_uniform(dataset):
    # 400 tasks x 5 classes = 2000 draws over 15 classes: each frequency is 1/15 with a
    # binomial standard error sqrt(p (1 - p) / 2000) = 0.0056 (drawing without
    # replacement inside a task only lowers it); 5 standard errors -> tolerance 0.028.
    batch = TaskSampler(dataset, _config(), seed=11).sample(400)
    counts = np.bincount(batch.classes.reshape(-1).numpy(), minlength=N_CLASSES)
    seen = np.setdiff1d(np.arange(N_CLASSES), PUBLISHED_HELD_OUT)
    freq = counts[seen] / counts.sum()
    p = 1 / 15
    assert np.abs(freq - p).max() < 5 * math.sqrt(p * (1 - p) / 2000)


def test_meta_test_marks_seen_and_unseen_queries(dataset):
    batch = TaskSampler(dataset, _config(), split="meta-test", seed=0).sample(200)
    query_labels = dataset.labels[batch.query_index.numpy()]
    expected_seen = ~np.isin(query_labels, PUBLISHED_HELD_OUT)
    assert np.array_equal(batch.query_seen.numpy(), expected_seen)
    assert expected_seen.any() and (~expected_seen).any()  # both kinds occur
    assert set(batch.classes.unique().tolist()) == set(range(N_CLASSES))


@pytest.mark.parametrize(
    ("split", "allowed", "seen"),
    [
        ("meta-test-unseen", set(PUBLISHED_HELD_OUT), False),
        ("meta-test-seen", set(range(N_CLASSES)) - set(PUBLISHED_HELD_OUT), True),
    ],
)
def test_restricted_meta_test_splits(dataset, split, allowed, seen):
    sampler = TaskSampler(dataset, _config(), split=split, seed=0)
    assert set(sampler.classes.tolist()) == allowed
    batch = sampler.sample(50)
    assert set(batch.classes.unique().tolist()) <= allowed
    assert bool(batch.query_seen.all()) is seen and bool(batch.query_seen.any()) is seen


def test_custom_held_out_labels(dataset):
    config = _config(held_out=[1, 2, 3, 4, 5, 6])
    sampler = TaskSampler(dataset, config, split="meta-test-unseen", seed=0)
    assert sampler.classes.tolist() == [1, 2, 3, 4, 5, 6]
    assert config.held_out == (1, 2, 3, 4, 5, 6)


def test_no_recording_in_both_support_and_query_even_with_views(dataset):
    # stride 3: each recording has 3 views; a view leak would put one recording's views
    # on both sides. 300 tasks x 50 recordings probe it; K + Q = 10 of 14 per class
    # makes overlaps likely if picks were independent.
    batch = TaskSampler(dataset, _config(stride=3), split="meta-test", seed=5).sample(300)
    for support, query in zip(batch.support_index, batch.query_index, strict=True):
        both = torch.cat([support, query])
        assert both.unique().numel() == both.numel()


def test_labels_and_tensors_match_the_recordings(dataset):
    batch = TaskSampler(dataset, _config(stride=3), split="meta-test", seed=2).sample(20)
    # Task-local labels are class-major 0..N-1 and name the recordings' global classes.
    assert batch.support_y[0].tolist() == [j for j in range(5) for _ in range(5)]
    for index, local, x, view in (
        (batch.support_index, batch.support_y, batch.support_x, batch.support_view),
        (batch.query_index, batch.query_y, batch.query_x, batch.query_view),
    ):
        assert np.array_equal(dataset.labels[index.numpy()], batch.classes.gather(1, local).numpy())
        assert torch.equal(x[..., 0, 0].long(), index)  # row holds its own recording
        assert torch.equal(x[..., 0, 1].long(), view)  # ... in its own view
    assert torch.equal(batch.query_global_y, batch.classes.gather(1, batch.query_y))
    assert torch.equal(
        batch.support_global_y, torch.from_numpy(dataset.labels[batch.support_index.numpy()])
    )
    assert all(len(set(row)) == 5 for row in batch.classes.tolist())  # distinct per task


def test_random_views_are_uniform_and_fixed_view_is_respected(dataset):
    # 200 tasks x 50 recordings = 10000 views; each offset has probability 1/3 with
    # standard error sqrt(p (1 - p) / 10000) = 0.0047; 5 standard errors -> 0.024.
    batch = TaskSampler(dataset, _config(stride=3), seed=4).sample(200)
    views = torch.cat([batch.support_view.reshape(-1), batch.query_view.reshape(-1)])
    freq = torch.bincount(views, minlength=3).double() / views.numel()
    assert (freq - 1 / 3).abs().max() < 5 * math.sqrt((1 / 3) * (2 / 3) / 10000)
    fixed = TaskSampler(dataset, _config(stride=3, view_offset=2), seed=4).sample(5)
    assert (fixed.support_view == 2).all() and (fixed.query_x[..., 0, 1] == 2).all()
    plain = TaskSampler(dataset, _config(), seed=4).sample(2)
    assert (plain.support_view == 0).all() and {c["stride"] for c in dataset.calls} == {3, 1}


def test_batch_to_device_keeps_contents(dataset):
    batch = TaskSampler(dataset, _config(), seed=0).sample(2)
    _assert_same(batch.to("cpu"), batch)


@pytest.mark.parametrize("name", ["n_way", "k_shot", "n_query"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_sizes_are_rejected(name, value):
    with pytest.raises(ConfigError, match=name):
        FewShotConfig(**{name: value})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"held_out": (3, 3)}, "twice"),
        ({"stride": 3, "view_offset": 3}, "view_offset"),
        ({"window_s": 0.0}, "window_s"),
        ({"n_way": 2.5}, "n_way"),
    ],
)
def test_other_bad_config_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FewShotConfig(**kwargs)


def test_n_way_larger_than_split_classes(dataset):
    with pytest.raises(ConfigError, match=r"n_way=6 .* only 5 classes"):
        TaskSampler(dataset, _config(n_way=6), split="meta-test-unseen")
    with pytest.raises(ConfigError, match="n_way=16"):
        TaskSampler(dataset, _config(n_way=16), split="meta-train")
    TaskSampler(dataset, _config(n_way=20), split="meta-test")  # exactly all classes is fine


def test_too_few_recordings_names_the_class():
    counts = [14] * N_CLASSES
    counts[7] = 9
    small = FakeDataset(counts)
    with pytest.raises(ConfigError, match=r"class 7 \('word7'\): 9") as info:
        TaskSampler(small, _config(k_shot=5, n_query=5))
    assert "k_shot" in str(info.value)
    TaskSampler(small, _config(k_shot=5, n_query=4))  # 9 is enough for K + Q = 9
    TaskSampler(small, _config(held_out=(7,)), split="meta-train")  # class 7 not drawn


def test_held_out_outside_label_table(dataset):
    with pytest.raises(ConfigError, match=r"held_out labels \[20, 31\]"):
        TaskSampler(dataset, _config(held_out=(0, 20, 31)))


def test_other_sampler_errors(dataset):
    with pytest.raises(ConfigError, match="split"):
        TaskSampler(dataset, _config(), split="test")
    with pytest.raises(ConfigError, match="seed"):
        TaskSampler(dataset, _config(), seed=-1)
    sampler = TaskSampler(dataset, _config())
    with pytest.raises(ConfigError, match="n_tasks"):
        sampler.sample(0)
    with pytest.raises(ConfigError, match="empty"):
        sampler.tasks([])
    dataset.labels[0] = 25
    with pytest.raises(DataFormatError, match=r"labels \[25\] outside"):
        TaskSampler(dataset, _config())
    assert issubclass(DataFormatError, MosaicnetError)


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    data = pytest.importorskip(
        "mosaicnet.data", reason="mosaicnet.data (reader, synthetic writer) not available yet"
    )
    if not all(hasattr(data, name) for name in ("load_shd", "write_synthetic_shd")):
        pytest.skip("mosaicnet.data does not export load_shd / write_synthetic_shd yet")
    out = tmp_path_factory.mktemp("synthetic")
    train, test = data.write_synthetic_shd(out, seed=0, n_train=240, n_test=200)
    return data.load_shd(train), data.load_shd(test)


def test_real_reader_and_synthetic_data(synthetic_files):
    train, test = synthetic_files
    config = FewShotConfig(stride=3)
    batch = TaskSampler(train, config, split="meta-train", seed=0).sample(4)
    assert batch.support_x.shape == (4, 25, 100, 234)
    assert not np.isin(train.labels[batch.support_index.numpy()], PUBLISHED_HELD_OUT).any()
    first = batch.support_index[0, 0].item()
    view = batch.support_view[0, 0].item()
    expected = train.binned([first], n_bins=100, window_s=1.4, stride=3, offset=view)[0]
    assert torch.equal(batch.support_x[0, 0], expected)
    assert batch.support_x.sum() > 0  # real spikes, not an empty tensor

    unseen = TaskSampler(test, config, split="meta-test-unseen", seed=0).sample(2)
    assert not unseen.query_seen.any()
    assert set(test.labels[unseen.query_index.numpy()].reshape(-1).tolist()) <= set(
        PUBLISHED_HELD_OUT
    )


def test_shift_channels_moves_counts_and_fills_zeros():
    x = torch.arange(2 * 3 * 6, dtype=torch.float32).reshape(2, 3, 6) + 1
    out = shift_channels(x, np.array([2, -1]))
    assert torch.equal(out[0, :, 2:], x[0, :, :4]) and (out[0, :, :2] == 0).all()
    assert torch.equal(out[1, :, :5], x[1, :, 1:]) and (out[1, :, 5] == 0).all()
    assert (shift_channels(x, np.array([6, -7])) == 0).all()  # moved out entirely
    assert torch.equal(shift_channels(x, np.array([0, 0])), x)
    with pytest.raises(ConfigError, match="one shift per recording"):
        shift_channels(x, np.array([1]))


def test_channel_shift_keeps_the_tasks_and_shifts_uniformly(dataset):
    plain = TaskSampler(dataset, _config(stride=3), seed=7).sample(100)
    shifted = TaskSampler(dataset, _config(stride=3, channel_shift=2), seed=7).sample(100)
    # The same recordings, classes and views: the shifts are drawn after them.
    for name in ("support_index", "query_index", "support_view", "query_view", "classes"):
        assert torch.equal(getattr(plain, name), getattr(shifted, name)), name
    # Bin 1 holds the label in every column (FakeDataset); a shift of d empties |d|
    # columns at one edge. Label 0 is all zeros, so its recordings say nothing.
    x = torch.cat([shifted.support_x, shifted.query_x], dim=1).flatten(0, 1)[:, 1, :]
    labels = torch.cat([shifted.support_global_y, shifted.query_global_y], dim=1).flatten()
    x, labels = x[labels != 0], labels[labels != 0]
    lead = (x == 0).int().cumprod(dim=1).sum(dim=1)  # zero columns at the left edge
    trail = (x == 0).int().flip(1).cumprod(dim=1).sum(dim=1)
    assert not ((lead > 0) & (trail > 0)).any()
    shift = lead - trail  # d > 0 empties the left edge, d < 0 the right one
    assert set(shift.tolist()) <= {-2, -1, 0, 1, 2}
    # ~4750 recordings, each shift with probability 1/5: standard error
    # sqrt(0.2 * 0.8 / n) ~ 0.006; 5 standard errors.
    n = shift.numel()
    freq = torch.bincount(shift + 2, minlength=5).double() / n
    assert (freq - 0.2).abs().max() < 5 * math.sqrt(0.2 * 0.8 / n)
    assert torch.equal(x[shift == 0], plain_rows(plain)[labels != 0][shift == 0])


def plain_rows(batch: TaskBatch) -> torch.Tensor:
    """Bin 1 of every recording of ``batch``, support then query, as in the test above."""
    return torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1)[:, 1, :]


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_channel_shift_is_rejected(value):
    with pytest.raises(ConfigError, match="channel_shift"):
        FewShotConfig(channel_shift=value)
