"""Protocol figures are drawn from measured numbers, including incomplete ones."""

from __future__ import annotations

import math

from PIL import Image

from mosaicnet.protocols_support.figures import plot_seed_comparison, plot_training_curves


def _pixels(path):
    with Image.open(path) as image:
        return image.convert("RGB").getcolors(1 << 20)


def test_training_curves_mark_validation_scores(tmp_path):
    records = [{"iteration": i, "loss": 2.0 / i, "acc": 0.5} for i in range(1, 41)]
    validated = [dict(r, val_acc=0.7) if r["iteration"] % 10 == 0 else r for r in records]
    plain = plot_training_curves(tmp_path / "plain.png", {"run": records}, title="t")
    marked = plot_training_curves(tmp_path / "marked.png", {"run": validated}, title="t")
    # The validation dots add pixels of their black edge that the plain figure lacks.
    black = lambda path: sum(n for n, rgb in _pixels(path) if max(rgb) < 40)  # noqa: E731
    assert black(marked) > black(plain)


def test_seed_comparison_figure_takes_a_group_of_one_seed(tmp_path):
    one = {"values": [71.0], "mean": 71.0, "ci95": math.nan}
    two = {"values": [70.0, 74.0], "mean": 72.0, "ci95": 25.4}
    comparison = {
        "metrics": ["mixed_seen", "mixed_unseen", "separate_seen", "separate_unseen"],
        "groups": {
            "a": {"seeds": [0, 1], "accuracy": dict.fromkeys(
                ["mixed_seen", "mixed_unseen", "separate_seen", "separate_unseen"], two)},
            "b": {"seeds": [1], "accuracy": dict.fromkeys(
                ["mixed_seen", "mixed_unseen", "separate_seen", "separate_unseen"], one)},
        },
    }  # fmt: skip
    path = plot_seed_comparison(tmp_path / "seeds.png", comparison, title="a vs b")
    assert path.stat().st_size > 10_000
