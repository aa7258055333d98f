"""``mosaicnet data synth | inspect | download shd`` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mosaicnet.cli import main

SMALL = ["--n-train", "20", "--n-test", "20", "--quiet"]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "synthetic"
    assert main(["data", "synth", str(out), "--seed", "7", *SMALL]) == 0
    return out


def test_synth_writes_both_files(synth_dir):
    assert (synth_dir / "shd_train.h5").is_file() and (synth_dir / "shd_test.h5").is_file()


def test_synth_refuses_to_overwrite_without_force(synth_dir, capsys):
    before = (synth_dir / "shd_test.h5").read_bytes()
    assert main(["data", "synth", str(synth_dir), "--seed", "8", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--force" in err
    assert (synth_dir / "shd_test.h5").read_bytes() == before


def test_synth_force_overwrites(tmp_path):
    out = tmp_path / "s"
    assert main(["data", "synth", str(out), "--seed", "1", *SMALL]) == 0
    first = (out / "shd_train.h5").read_bytes()
    assert main(["data", "synth", str(out), "--seed", "2", "--force", *SMALL]) == 0
    assert (out / "shd_train.h5").read_bytes() != first


def test_inspect_json_has_the_summary_keys(synth_dir, capsys):
    capsys.readouterr()
    assert main(["data", "inspect", str(synth_dir / "shd_train.h5"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 20 and info["classes"] == 20 and info["channels"] == 700
    assert info["speakers"] == len(info["speaker_ids"]) and 4 not in info["speaker_ids"]
    assert info["label_names"]["10"] == "null"
    assert info["empty_samples"] == 0 and info["spike_count"]["min"] > 0


def test_inspect_text_names_what_a_user_looks_for(synth_dir, capsys):
    capsys.readouterr()
    assert main(["data", "inspect", str(synth_dir / "shd_test.h5")]) == 0
    out = capsys.readouterr().out
    for word in ("samples     20", "classes     20", "zero", "neun", "speakers", "channels    700"):
        assert word in out
    assert "empty       0 samples" in out


def test_inspect_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "none.h5")]) == 2
    assert "not found" in capsys.readouterr().err


def test_download_is_wired_to_download_shd(monkeypatch, tmp_path, capsys):
    import mosaicnet.data.download as download

    calls = []

    def fake_download(dest, *, base_url=None, timeout_s=30.0, progress=True):
        calls.append((dest, base_url, timeout_s, progress))
        return [dest / "shd_train.h5", dest / "shd_test.h5"]

    monkeypatch.setattr(download, "download_shd", fake_download)
    target = tmp_path / "shd"
    args = ["data", "download", "shd", "--to", str(target), "--base-url", "http://m/x/"]
    assert main([*args, "--quiet"]) == 0
    assert calls == [(target, "http://m/x/", 30.0, False)]
    assert str(target / "shd_test.h5") in capsys.readouterr().out
    assert main(["data", "download", "shd", "--to", str(target)]) == 0
    assert calls[-1] == (target, None, 30.0, True)


def test_data_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 2
    assert "synth" in capsys.readouterr().out
