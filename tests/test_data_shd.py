"""Reading SHD-layout HDF5 files: contents, compact storage and every kind of bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import tables

from mosaicnet.cli import main
from mosaicnet.data import SpikeDataset, load_shd
from mosaicnet.errors import DataFormatError

KEYS = [f"word{i}".encode() for i in range(20)]


def write_shd_file(
    path: Path,
    times_rows: list,
    units_rows: list,
    labels,
    speakers=None,
    *,
    keys=KEYS,
    omit: tuple[str, ...] = (),
) -> Path:
    """Write a file in the SHD layout by hand (``omit`` leaves datasets out)."""
    speakers = np.zeros(len(labels), dtype=np.uint16) if speakers is None else speakers
    with tables.open_file(str(path), "w") as h5:
        spikes = h5.create_group("/", "spikes")
        if "times" not in omit:
            times = h5.create_vlarray(spikes, "times", tables.Float64Atom())
            for row in times_rows:
                times.append(np.asarray(row, dtype=np.float64))
        if "units" not in omit:
            units = h5.create_vlarray(spikes, "units", tables.UInt16Atom())
            for row in units_rows:
                units.append(np.asarray(row, dtype=np.uint16))
        h5.create_array("/", "labels", np.asarray(labels, dtype=np.uint16))
        extra = h5.create_group("/", "extra")
        h5.create_array(extra, "speaker", np.asarray(speakers, dtype=np.uint16))
        if "keys" not in omit:
            h5.create_array(extra, "keys", np.array(keys))
        meta = h5.create_group(extra, "meta_info")
        h5.create_array(meta, "age", np.array([30, 40], dtype=np.uint16))
    return path


@pytest.fixture
def small_file(tmp_path) -> Path:
    times = [[0.0, 0.01, 0.5], [], [0.2, 1.3, 1.5, 2.0]]
    units = [[0, 699, 3], [], [10, 10, 11, 12]]
    return write_shd_file(tmp_path / "small.h5", times, units, [3, 0, 19], [1, 4, 1])


def test_reads_labels_speakers_label_table_and_events(small_file):
    ds = load_shd(small_file)
    assert len(ds) == 3 and ds.n_channels == 700 and ds.n_classes == 20
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [3, 0, 19]
    assert ds.speakers.dtype == np.int64 and ds.speakers.tolist() == [1, 4, 1]
    assert ds.label_names[0] == "word0" and ds.label_names[19] == "word19"
    assert ds.path == small_file
    assert ds.meta_info["age"].tolist() == [30, 40]
    times, units = ds.sample(2)
    np.testing.assert_allclose(times, [0.2, 1.3, 1.5, 2.0], rtol=1e-6)
    assert units.tolist() == [10, 10, 11, 12]


def test_events_are_stored_flat_not_dense(small_file):
    ds = load_shd(small_file)
    # One flat array of all spikes plus n + 1 offsets: memory grows with spikes only.
    assert ds.times.ndim == 1 and ds.units.ndim == 1
    assert ds.times.size == ds.units.size == 7
    assert ds.offsets.tolist() == [0, 3, 3, 7]


def test_spike_counts_durations_and_late_spikes(small_file):
    ds = load_shd(small_file)
    assert ds.spike_counts().tolist() == [3, 0, 4]
    np.testing.assert_allclose(ds.durations(), [0.5, 0.0, 2.0], rtol=1e-6)
    assert ds.spikes_beyond(1.4).tolist() == [0, 0, 2]
    assert ds.spikes_beyond(1.0).tolist() == [0, 0, 3]


def test_missing_file_names_path_and_how_to_get_data(tmp_path):
    missing = tmp_path / "nowhere" / "shd_train.h5"
    with pytest.raises(DataFormatError, match="not found") as info:
        load_shd(missing)
    assert str(missing) in str(info.value) and "write_synthetic_shd" in str(info.value)


def test_text_file_is_not_hdf5(tmp_path):
    bogus = tmp_path / "notes.h5"
    bogus.write_text("these are not spikes\n")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        load_shd(bogus)


def test_gzip_archive_asks_to_decompress(tmp_path, small_file):
    archive = tmp_path / "shd_train.h5.gz"
    archive.write_bytes(gzip.compress(small_file.read_bytes()))
    with pytest.raises(DataFormatError, match="gunzip"):
        load_shd(archive)


@pytest.mark.parametrize("omit", ["times", "units", "keys"])
def test_hdf5_without_shd_datasets_lists_what_is_missing(tmp_path, omit):
    path = write_shd_file(tmp_path / "partial.h5", [[0.1]], [[1]], [0], omit=(omit,))
    with pytest.raises(DataFormatError, match="not in the SHD layout") as info:
        load_shd(path)
    assert f"/{omit}" in str(info.value) and str(path) in str(info.value)


def test_other_hdf5_file_is_rejected(tmp_path):
    path = tmp_path / "images.h5"
    with tables.open_file(str(path), "w") as h5:
        h5.create_array("/", "pixels", np.zeros((4, 4)))
    with pytest.raises(DataFormatError, match="/spikes/times"):
        load_shd(path)


def test_times_and_units_of_different_length_name_the_sample(tmp_path):
    path = write_shd_file(
        tmp_path / "bad.h5", [[0.1], [0.2, 0.3], [0.1, 0.2]], [[1], [2, 3], [4]], [0, 1, 2]
    )
    with pytest.raises(DataFormatError, match=r"sample 2 has 2 spike times but 1 units"):
        load_shd(path)


def test_unit_outside_channel_range_names_sample_and_range(tmp_path):
    path = write_shd_file(tmp_path / "bad.h5", [[0.1], [0.2, 0.3]], [[1], [2, 700]], [0, 1])
    with pytest.raises(DataFormatError, match=r"sample 1 has spike unit 700 outside 0\.\.699"):
        load_shd(path)
    # The same file is fine for a reader told that it has more channels.
    assert load_shd(path, n_channels=701).n_channels == 701


@pytest.mark.parametrize("bad_time", [-0.01, float("nan"), float("inf")])
def test_negative_infinite_or_nan_times_name_the_sample(tmp_path, bad_time):
    path = write_shd_file(
        tmp_path / "bad.h5", [[0.1], [0.2], [0.3, bad_time]], [[1], [2], [3, 4]], [0, 1, 2]
    )
    with pytest.raises(DataFormatError, match=r"sample 2 has spike time") as info:
        load_shd(path)
    assert "negative, infinite or NaN" in str(info.value)


def test_spike_times_in_milliseconds_are_refused_with_the_fix(tmp_path, capsys):
    times = [[12.0, 340.5, 910.0], [55.0, 1399.0], [700.0]]  # a digit's spikes, in ms
    path = write_shd_file(tmp_path / "shd_train.h5", times, [[1, 2, 3], [4, 5], [6]], [0, 1, 2])
    with pytest.raises(DataFormatError, match="look like milliseconds.*divide the times by 1000"):
        load_shd(path)
    # The same spikes in seconds load.
    seconds = [[t / 1000 for t in sample] for sample in times]
    ok = write_shd_file(tmp_path / "ok.h5", seconds, [[1, 2, 3], [4, 5], [6]], [0, 1, 2])
    assert load_shd(ok).times.max() == pytest.approx(1.399)
    assert main(["data", "inspect", str(path)]) == 2
    assert "milliseconds" in capsys.readouterr().err


def test_label_outside_label_table_names_sample(tmp_path):
    path = write_shd_file(tmp_path / "bad.h5", [[0.1], [0.2]], [[1], [2]], [5, 20])
    with pytest.raises(DataFormatError, match=r"sample 1 has label 20 .* 20 entries"):
        load_shd(path)


def test_speaker_count_must_match_samples(tmp_path):
    path = write_shd_file(tmp_path / "bad.h5", [[0.1], [0.2]], [[1], [2]], [5, 6], [0])
    with pytest.raises(DataFormatError, match="speaker"):
        load_shd(path)


def test_label_names_are_read_from_the_file_not_assumed(tmp_path):
    keys = [b"null", b"eins", b"zero"]
    path = write_shd_file(tmp_path / "k.h5", [[0.1]], [[1]], [2], keys=keys)
    ds = load_shd(path)
    assert ds.label_names == {0: "null", 1: "eins", 2: "zero"} and ds.n_classes == 3


def test_empty_samples_are_allowed(tmp_path):
    path = write_shd_file(tmp_path / "e.h5", [[], []], [[], []], [0, 1])
    ds = load_shd(path)
    assert ds.spike_counts().tolist() == [0, 0]
    assert ds.binned(n_bins=5).sum().item() == 0


def test_constructor_validates_like_the_reader():
    with pytest.raises(DataFormatError, match="sample 0 has spike unit 9"):
        SpikeDataset([0.1], [9], [0, 1], [0], [0], {0: "a"}, n_channels=5)


def test_cli_inspect_reports_bad_file_as_one_line_error(tmp_path, capsys):
    path = write_shd_file(tmp_path / "bad.h5", [[0.1], [0.2, 0.3]], [[1], [2, 900]], [0, 1])
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sample 1" in err and str(path) in err and "Traceback" not in err


def test_inspect_counts_empty_samples_and_late_spikes(small_file):
    from mosaicnet.data import inspect_shd

    info = inspect_shd(small_file)
    assert info["samples"] == 3 and info["empty_samples"] == 1
    assert info["spikes_beyond_window"] == 2 and info["samples_beyond_window"] == 1
    assert info["spike_count"] == {"min": 0.0, "mean": 7 / 3, "median": 3.0, "max": 4.0}
    assert info["speakers"] == 2 and info["speaker_ids"] == [1, 4]


def test_truncated_hdf5_file_is_one_clear_line(tmp_path, capsys):
    path = write_shd_file(tmp_path / "shd_test.h5", [[0.1, 0.2]] * 50, [[1, 2]] * 50, [0] * 50)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFormatError, match=r"truncated: \d+ of \d+ bytes; download or copy"):
        load_shd(path)
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "H5F.c" not in err and len(err.strip().splitlines()) == 1


def test_file_written_with_h5py_reads_like_the_pytables_one(tmp_path):
    """Many SHD-layout files in the wild are written with h5py (vlen datasets)."""
    import h5py

    times = [[0.1, 0.25], [0.3], [0.05, 0.4, 0.9]]
    units = [[3, 7], [1], [699, 0, 5]]
    labels = [2, 0, 19]
    reference = load_shd(write_shd_file(tmp_path / "pytables.h5", times, units, labels))
    path = tmp_path / "h5py.h5"
    with h5py.File(path, "w") as handle:
        t = handle.create_dataset("spikes/times", (3,), dtype=h5py.vlen_dtype(np.float32))
        u = handle.create_dataset("spikes/units", (3,), dtype=h5py.vlen_dtype(np.uint16))
        for k in range(3):
            t[k] = np.asarray(times[k], dtype=np.float32)
            u[k] = np.asarray(units[k], dtype=np.uint16)
        handle["labels"] = np.asarray(labels, dtype=np.uint16)
        handle["extra/speaker"] = np.asarray([1, 2, 3], dtype=np.uint16)
        handle["extra/keys"] = np.asarray(
            [name.encode() for name in reference.label_names.values()]
        )
    dataset = load_shd(path)
    np.testing.assert_array_equal(dataset.units, reference.units)
    np.testing.assert_array_equal(dataset.times, reference.times)
    np.testing.assert_array_equal(dataset.offsets, reference.offsets)
    np.testing.assert_array_equal(dataset.labels, labels)
    assert dataset.label_names == reference.label_names


def test_fuzzed_files_give_a_read_or_a_data_format_error(tmp_path, capfd):
    """Seeded truncations and byte flips of a small file: every case loads or raises
    DataFormatError (no other exception, no HDF5 error stack printed). A flip inside
    the payload can change a value within its valid range: HDF5 stores no checksum of
    the data, so no reader can see it (the download's md5 is the guard); such reads
    keep the file's structure."""
    base = write_shd_file(
        tmp_path / "base.h5", [[0.1, 0.2, 0.5]] * 20, [[1, 2, 3]] * 20, list(range(20))
    )
    reference = load_shd(base)
    data = base.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"read": 0, "error": 0}
    for case in range(120):
        damaged = bytearray(data)
        if case % 2 == 0:
            damaged = damaged[: int(rng.integers(0, len(damaged)))]
        else:
            for _ in range(int(rng.integers(1, 8))):
                damaged[int(rng.integers(0, len(damaged)))] ^= int(rng.integers(1, 256))
        path = tmp_path / f"case{case}.h5"
        path.write_bytes(bytes(damaged))
        try:
            dataset = load_shd(path)
        except DataFormatError:
            outcomes["error"] += 1
            continue
        outcomes["read"] += 1
        np.testing.assert_array_equal(dataset.offsets, reference.offsets)
        assert dataset.times.size == reference.times.size
    assert outcomes["error"] >= 50 and outcomes["read"] >= 20, outcomes
    assert "HDF5-DIAG" not in capfd.readouterr().err


def test_unit_range_error_names_the_command_line_flag_too(tmp_path, capsys):
    path = write_shd_file(tmp_path / "wide.h5", [[0.1], [0.2]], [[1], [800]], [0, 1])
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "n_channels argument of load_shd" in err and "(on the command line: --channels)" in err
    assert main(["data", "inspect", str(path), "--channels", "801", "--json"]) == 0
