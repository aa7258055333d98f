"""``mosaicnet layout``: JSON and readable summaries, figure, errors."""

import json

from mosaicnet.cli import main


def test_json_summary_of_4x4_layout(capsys):
    code = main(["layout", "--rows", "4", "--cols", "4", "--neurons-per-tile", "2", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tiles"] == 16 and data["neurons"] == 32 and data["max_hops"] == 11
    assert data["hop_matrix"][0] == [0, 1, 5, 7, 1, 3, 5, 7, 5, 5, 7, 9, 7, 7, 9, 11]
    assert data["layout"] == {
        "kind": "mosaic",
        "rows": 4,
        "cols": 4,
        "neurons_per_tile": 2,
        "beta": 8.0,
        "n_neurons": 32,
    }
    # 16 tiles x 4 same-tile pairs; 48 neighbouring tile pairs (ordered) x 4.
    assert data["neuron_pairs_by_class"] == {"intra_tile": 64, "one_hop": 192, "multi_hop": 768}


def test_default_readable_summary(capsys):
    assert main(["layout"]) == 0
    out = capsys.readouterr().out
    assert "8 x 8 tiles x 4 neurons = 256 neurons" in out
    assert "0 (same tile) to 27 (farthest pair)" in out


def test_figure_option_writes_grid_picture(tmp_path, capsys):
    target = tmp_path / "grid.png"
    assert main(["layout", "--rows", "2", "--cols", "3", "--figure", str(target), "--json"]) == 0
    assert target.stat().st_size > 1000
    assert json.loads(capsys.readouterr().out)["figure"] == str(target)


def test_bad_sizes_and_beta_exit_with_status_2(capsys):
    assert main(["layout", "--neurons-per-tile", "0"]) == 2
    assert "neurons_per_tile" in capsys.readouterr().err
    assert main(["layout", "--beta", "-1"]) == 2
    assert "beta" in capsys.readouterr().err
