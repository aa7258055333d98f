"""A run records its data; later commands use it, and refuse other data unless asked."""

from __future__ import annotations

import json
import shutil

import pytest

from mosaicnet.cli import main
from mosaicnet.meta.config import TrainConfig, save_config
from mosaicnet.meta.run_data import DATA_RECORD, data_fingerprint, data_for_run

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = dict(rows=1, cols=2, neurons_per_tile=4, iterations=1, meta_batch=2, n_way=3, k_shot=2,
            n_query=2, checkpoint_every=1)  # fmt: skip


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A one-step run trained on a copy of the shared small data set."""
    root = tmp_path_factory.mktemp("run_data")
    data = root / "data"
    shutil.copytree(data_dir, data)
    config = root / "tiny.json"
    save_config(TrainConfig(**TINY), config)
    run = root / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--quiet",
                 "--config", str(config)]) == 0  # fmt: skip
    return run, data, config


def test_training_records_the_folder_and_a_fingerprint_of_its_files(trained):
    run, data, _ = trained
    record = json.loads((run / DATA_RECORD).read_text())
    assert record["directory"] == str(data.resolve())
    assert record["files"] == data_fingerprint(data)
    assert set(record["files"]) == {"shd_train.h5", "shd_test.h5"}


def test_evaluation_defaults_to_the_runs_data(trained, capsys, monkeypatch, tmp_path):
    run, data, _ = trained
    monkeypatch.chdir(tmp_path)  # no synthetic default to fall back on here
    assert main(["evaluate", str(run), "--tasks", "2", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"] == str(data.resolve())
    assert not (tmp_path / "data").exists()  # the synthetic default was not generated


def test_other_data_is_refused_unless_asked_for_and_then_recorded(trained, tmp_path, capsys):
    run, data, config = trained
    other = tmp_path / "other"
    shutil.copytree(data, other)
    (other / "shd_test.h5").write_bytes((data / "shd_test.h5").read_bytes() + b"\0")
    assert main(["evaluate", str(run), "--data", str(other), "--tasks", "2", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"was trained on {data.resolve()}" in error and "--other-data" in error
    assert main(["evaluate", str(run), "--data", str(other), "--other-data", "--tasks", "2",
                 "--json", "--quiet"]) != 2  # fmt: skip
    # The same files in another folder are the same data: accepted.
    same = tmp_path / "same"
    shutil.copytree(data, same)
    assert data_for_run(run, same) == same
    # Resuming on other files is refused (a run must not mix data sets).
    capsys.readouterr()
    assert main(["train", "--data", str(other), "--out", str(run), "--quiet", "--resume",
                 "--config", str(config), "--iterations", "2"]) == 2  # fmt: skip
    assert "cannot resume" in capsys.readouterr().err


def test_changed_or_missing_run_data_is_named(trained, tmp_path):
    from mosaicnet.errors import DataFormatError, RunDirectoryError

    run, data, _ = trained
    moved = tmp_path / "copy_of_run"
    shutil.copytree(run, moved)
    record = json.loads((moved / DATA_RECORD).read_text())
    record["directory"] = str(tmp_path / "gone")
    (moved / DATA_RECORD).write_text(json.dumps(record))
    with pytest.raises(
        RunDirectoryError, match=r"which no longer exists; pass data_dir \(--data\)"
    ):
        data_for_run(moved, None)
    changed = tmp_path / "changed"
    shutil.copytree(data, changed)
    (changed / "shd_train.h5").write_bytes(b"x" + (data / "shd_train.h5").read_bytes())
    record["directory"] = str(changed)
    (moved / DATA_RECORD).write_text(json.dumps(record))
    with pytest.raises(DataFormatError, match="changed since run"):
        data_for_run(moved, None)
