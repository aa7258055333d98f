"""Outputs that cannot be written fail before any work, naming the place and the reason."""

from __future__ import annotations

import pytest

from mosaicnet.cli import main


@pytest.mark.parametrize(
    "argv, what",
    [
        (["train", "--out", "/proc/mosaicnet_run", "--quiet"], "run directory"),
        (["data", "synth", "/proc/mosaicnet_data"], "data folder"),
        (["devices", "report", "--out", "/proc/mosaicnet_report"], "report folder"),
        (["layout", "--figure", "/proc/mosaicnet_layout.png"], "cannot write a figure"),
    ],
)
def test_unwritable_outputs_are_refused_before_work(argv, what, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert what in err and "/proc" in err and "Traceback" not in err


def test_an_output_below_a_plain_file_is_named(tmp_path, capsys):
    plain = tmp_path / "notes.txt"
    plain.write_text("mine")
    assert main(["train", "--out", str(plain / "run"), "--quiet"]) == 2
    assert f"{plain} is a file, not a folder" in capsys.readouterr().err
    assert plain.read_text() == "mine"


def test_protocol_output_that_cannot_be_written(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "protocols" / "drift.py"
    spec = importlib.util.spec_from_file_location("drift_writable", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--out", "/proc/mosaicnet_protocol", "--no-progress"]) == 2
    assert "protocol output folder /proc/mosaicnet_protocol" in capsys.readouterr().err
