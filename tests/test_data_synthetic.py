"""The synthetic SHD-layout generator: layout, content, determinism, safety, difficulty."""

from __future__ import annotations

import numpy as np
import pytest
import tables

from mosaicnet.data import ensure_synthetic_shd, load_shd, write_synthetic_shd
from mosaicnet.data.baseline import nearest_centroid_baseline
from mosaicnet.data.synthetic import LABEL_NAMES, synthetic_parameters
from mosaicnet.errors import ConfigError, RunDirectoryError


@pytest.fixture(scope="module")
def default_test_split(tmp_path_factory):
    """The default test file (n_test = 400), with a minimal train file beside it.

    The test file's draws do not depend on n_train, so this is byte-for-byte the test
    file of ``write_synthetic_shd(seed=0)`` at a fraction of the generation time.
    """
    out = tmp_path_factory.mktemp("synthetic")
    return write_synthetic_shd(out, seed=0, n_train=100, n_test=400)


def test_files_have_exactly_the_shd_layout(default_test_split):
    train, test = default_test_split
    assert (train.name, test.name) == ("shd_train.h5", "shd_test.h5")
    with tables.open_file(str(train)) as h5:
        leaves = {leaf._v_pathname: leaf for leaf in h5.walk_nodes("/", "Leaf")}
        assert set(leaves) == {
            "/spikes/times",
            "/spikes/units",
            "/labels",
            "/extra/speaker",
            "/extra/keys",
            "/extra/meta_info/gender",
            "/extra/meta_info/age",
            "/extra/meta_info/body_height",
        }
        assert isinstance(leaves["/spikes/times"], tables.VLArray)
        assert leaves["/spikes/times"].atom.kind == "float"
        assert isinstance(leaves["/spikes/units"], tables.VLArray)
        assert leaves["/spikes/units"].atom.dtype == np.uint16
        assert leaves["/labels"].dtype == np.uint16 and leaves["/labels"].shape == (100,)
        assert leaves["/extra/speaker"].dtype == np.uint16
        keys = leaves["/extra/keys"].read()
        assert [k.decode() for k in keys] == list(LABEL_NAMES)
        assert leaves["/extra/meta_info/gender"].shape == (12,)
        assert set(leaves["/extra/meta_info/gender"].read()) <= {b"female", b"male"}


def test_classes_speakers_and_channels_like_shd(default_test_split):
    train, test = map(load_shd, default_test_split)
    assert train.n_classes == test.n_classes == 20
    assert train.label_names[0] == "zero" and train.label_names[19] == "neun"
    # Class-balanced: counts differ by at most one.
    for ds in (train, test):
        per_class = np.bincount(ds.labels, minlength=20)
        assert per_class.max() - per_class.min() <= 1
    train_speakers, test_speakers = set(train.speakers), set(test.speakers)
    assert len(train_speakers | test_speakers) >= 10
    assert test_speakers - train_speakers == {4, 5}  # only in the test file, as in SHD
    assert train.units.max() < 700 and test.n_channels == 700


def test_recordings_look_like_shd(default_test_split):
    ds = load_shd(default_test_split[1])
    counts, durations = ds.spike_counts(), ds.durations()
    assert counts.min() >= 1000 and 2000 <= counts.mean() <= 8000  # thousands, like SHD
    assert 0.4 <= np.median(durations) <= 1.2
    # Spikes are time-sorted within every recording, as in the SHD files.
    first = ds.offsets[:-1]
    order_breaks = np.flatnonzero(np.diff(ds.times) < 0) + 1
    assert set(order_breaks) <= set(first)


def test_every_class_has_its_own_structure(default_test_split):
    # Leave-one-out 20-way nearest class mean on coarse counts (10 bins x 70 channels).
    ds = load_shd(default_test_split[1])
    x = ds.binned(n_bins=10, stride=10).reshape(len(ds), -1).double().numpy()
    y = ds.labels
    n = np.bincount(y, minlength=20).astype(np.float64)
    sums = np.stack([x[y == c].sum(axis=0) for c in range(20)])
    correct = np.empty(len(ds), dtype=bool)
    for i in range(len(ds)):
        means = sums / n[:, None]
        means[y[i]] = (sums[y[i]] - x[i]) / (n[y[i]] - 1)  # leave sample i out
        correct[i] = np.argmin(((means - x[i]) ** 2).sum(axis=1)) == y[i]
    # Each class has 20 test samples. Without class structure a sample is right with
    # probability 1/20 and P(>= 5 of 20 right) = 0.0026 per class, so requiring 5/20 for
    # every class fails a data set in which any class lacks its own pattern.
    per_class = np.array([correct[y == c].mean() for c in range(20)])
    assert per_class.min() >= 0.25, per_class


def test_speakers_shift_the_channels(default_test_split):
    from scipy.stats import f_oneway

    ds = load_shd(default_test_split[1])
    mean_unit = np.add.reduceat(ds.units.astype(np.float64), ds.offsets[:-1]) / ds.spike_counts()
    groups = [mean_unit[ds.speakers == s] for s in np.unique(ds.speakers)]
    # Class differences only add within-speaker variance, so this test is conservative.
    assert f_oneway(*groups).pvalue < 1e-3


def test_same_seed_same_data_and_test_split_independent_of_n_train(tmp_path):
    a = write_synthetic_shd(tmp_path / "a", seed=3, n_train=20, n_test=20)
    b = write_synthetic_shd(tmp_path / "b", seed=3, n_train=20, n_test=20)
    c = write_synthetic_shd(tmp_path / "c", seed=3, n_train=40, n_test=20)
    d = write_synthetic_shd(tmp_path / "d", seed=4, n_train=20, n_test=20)
    for x, y in [(a[0], b[0]), (a[1], b[1]), (a[1], c[1])]:
        dx, dy = load_shd(x), load_shd(y)
        assert np.array_equal(dx.times, dy.times) and np.array_equal(dx.units, dy.units)
        assert np.array_equal(dx.labels, dy.labels)
    assert not np.array_equal(load_shd(a[0]).spike_counts(), load_shd(d[0]).spike_counts())
    assert synthetic_parameters(a[0])["seed"] == 3


def test_existing_files_are_never_silently_overwritten(tmp_path):
    train, test = write_synthetic_shd(tmp_path, seed=0, n_train=20, n_test=20)
    before = train.read_bytes()
    with pytest.raises(RunDirectoryError, match="refusing to overwrite") as info:
        write_synthetic_shd(tmp_path, seed=1, n_train=20, n_test=20)
    assert str(train) in str(info.value) and "overwrite=True" in str(info.value)
    assert train.read_bytes() == before
    write_synthetic_shd(tmp_path, seed=1, n_train=20, n_test=20, overwrite=True)
    assert synthetic_parameters(train)["seed"] == 1
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_ensure_reuses_matching_files_and_refuses_others(tmp_path):
    first = ensure_synthetic_shd(tmp_path / "s", seed=2, n_train=20, n_test=20)
    stamp = first[0].stat().st_mtime_ns
    again = ensure_synthetic_shd(tmp_path / "s", seed=2, n_train=20, n_test=20)
    assert again == first and first[0].stat().st_mtime_ns == stamp
    with pytest.raises(RunDirectoryError, match="other parameters"):
        ensure_synthetic_shd(tmp_path / "s", seed=5, n_train=20, n_test=20)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "shd_train.h5").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not written by the synthetic generator"):
        ensure_synthetic_shd(foreign, n_train=20, n_test=20)
    assert (foreign / "shd_train.h5").read_text() == "mine"
    first[1].unlink()
    with pytest.raises(RunDirectoryError, match="is missing"):
        ensure_synthetic_shd(tmp_path / "s", seed=2, n_train=20, n_test=20)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_train": 5}, "n_train"),
        ({"n_channels": 20}, "n_channels"),
        ({"test_only_speakers": (4, 40)}, "test_only_speakers"),
        ({"loudness": 3}, "unknown synthetic-data parameter"),
    ],
)
def test_invalid_parameters_are_config_errors(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        write_synthetic_shd(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_nearest_centroid_baseline_is_learnable_but_not_trivial(default_test_split):
    ds = load_shd(default_test_split[1])
    n_tasks = 200
    result = nearest_centroid_baseline(ds, n_tasks=n_tasks, seed=0)
    assert result.task_accuracies.shape == (n_tasks,) and result.chance == 0.2
    # Per-task accuracies lie in [0, 1], so their standard deviation is at most 0.5 and
    # the mean over n_tasks independent tasks has a standard error <= 0.5 / sqrt(n_tasks)
    # (0.035 here). Require 4 such errors above chance: a chance-level data set fails.
    assert result.mean > result.chance + 4 * 0.5 / np.sqrt(n_tasks)
    assert result.mean < 0.95  # not trivially separable
