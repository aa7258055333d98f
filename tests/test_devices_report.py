"""Weight-error table, device figures and the ``mosaicnet devices`` command."""

import numpy as np
import pytest

from mosaicnet.cli import main
from mosaicnet.devices.figures import plot_conductance_distributions, plot_weight_error_vs_time
from mosaicnet.devices.weight_error import (
    STANDARD_READ_TIMES_S,
    format_weight_error_table,
    reference_weights,
    relative_weight_error,
    weight_error_table,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_weight_error_table_orders_the_presets_as_physics_says():
    weights = reference_weights(seed=0, shape=(64, 64))
    table = weight_error_table(["ideal", "pcm_aihwkit", "rram_hfox"], weights=weights)
    times = list(STANDARD_READ_TIMES_S.values())
    assert all(table["ideal"][t] == pytest.approx(0, abs=1e-12) for t in times)
    # Power-law drift keeps lowering every conductance: the error grows with time.
    pcm = [table["pcm_aihwkit"][t] for t in times]
    assert all(later > earlier for earlier, later in zip(pcm, pcm[1:], strict=False))
    compensated = weight_error_table(["pcm_aihwkit"], weights=weights, drift_compensation=True)
    assert compensated["pcm_aihwkit"][30 * 86400.0] < 0.6 * table["pcm_aihwkit"][30 * 86400.0]
    text = format_weight_error_table(table)
    assert "| device | 1 s | 1 h | 1 day | 1 month |" in text
    assert "| ideal | 0.00 % | 0.00 % | 0.00 % | 0.00 % |" in text


def test_relative_weight_error_definition():
    assert relative_weight_error(np.array([1.5, -1.0]), np.array([1.0, -1.0])) == 0.25


def test_figures_are_written(tmp_path):
    first = plot_conductance_distributions(
        "rram_hfox", tmp_path / "g.png", times_s=(1.0, 86400.0), n_devices=500
    )
    second = plot_weight_error_vs_time(
        ["ideal", "pcm_nandakumar"],
        tmp_path / "err.png",
        times_s=(1.0, 3600.0),
        weights=reference_weights(shape=(16, 16)),
    )
    for path in (first, second):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_cli_lists_presets(capsys):
    assert main(["devices", "list", "--parameters"]) == 0
    out = capsys.readouterr().out
    for name in ("ideal", "pcm_nandakumar", "pcm_aihwkit", "rram_hfox"):
        assert f"{name}: G in" in out
    assert "t_read_s = 2.5e-07" in out


def test_cli_report_writes_the_table(tmp_path, capsys):
    out_dir = tmp_path / "report"
    assert (
        main(
            [
                "devices",
                "report",
                "--out",
                str(out_dir),
                "--presets",
                "ideal,rram_hfox",
                "--no-figures",
            ]
        )
        == 0
    )
    text = (out_dir / "weight_error.md").read_text()
    assert "| ideal | 0.00 % | 0.00 % | 0.00 % | 0.00 % |" in text
    assert "| rram_hfox |" in text and "global drift compensation" in text
    assert "weight_error.md" in capsys.readouterr().out


def test_cli_report_rejects_unknown_presets(tmp_path, capsys):
    assert main(["devices", "report", "--out", str(tmp_path), "--presets", "flash"]) == 2
    assert "valid presets: ideal, pcm_nandakumar" in capsys.readouterr().err


def test_cli_report_with_an_empty_preset_list_is_an_error(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["devices", "report", "--presets", " , ", "--out", str(out)]) == 2
    assert "names no preset" in capsys.readouterr().err
    assert not out.exists()
