"""Results of a protocol: ``results.json``, Markdown tables and 95 % CI formatting.

Accuracies are fractions in [0, 1] everywhere in ``results.json``; tables show
them in percent with the half-width of their 95 % confidence interval
(``mean +- 1.96 * std / sqrt(n_tasks)``, computed by
:func:`mosaicnet.meta.torch_evaluation.mean_ci95`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mosaicnet.meta.config import write_text_atomic

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def percent_ci(mean: float | None, half_width: float | None, *, digits: int = 1) -> str:
    """``"54.3 ± 4.1"`` (percent) for an accuracy and its 95 % CI half-width.

    ``None``/NaN means the value is undefined (no task of that kind); it prints as
    ``"n/a"``; an undefined half-width (a single task) prints the mean alone.
    """
    if mean is None or not math.isfinite(float(mean)):
        return "n/a"
    text = f"{100.0 * float(mean):.{digits}f}"
    if half_width is None or not math.isfinite(float(half_width)):
        return text
    return f"{text} ± {100.0 * float(half_width):.{digits}f}"


def seen_unseen_cells(evaluation: Mapping[str, Any]) -> list[str]:
    """Two table cells: seen- and unseen-class accuracy of an evaluation summary, with CIs."""
    return [
        percent_ci(evaluation["accuracy_seen"], evaluation["ci95_seen"]),
        percent_ci(evaluation["accuracy_unseen"], evaluation["ci95_unseen"]),
    ]


def number(value: Any, digits: int = 3) -> str:
    """A table cell for a number: integers as is, floats to ``digits`` significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells converted with ``str``)."""
    width = len(header)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"row {list(row)!r} has {len(row)} cells, the header {width}")
    lines = [
        "| " + " | ".join(str(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, paths and tuples made JSON-able; NaN -> None.

    ``None`` for NaN keeps ``results.json`` valid JSON (the standard has no NaN)
    and states plainly that the value is undefined.
    """
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def write_results(out_dir: Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` to ``out_dir/results.json`` (indented, atomic); return the path."""
    path = Path(out_dir) / RESULTS_JSON
    text = json.dumps(json_ready(results), indent=2, sort_keys=False, allow_nan=False)
    write_text_atomic(path, text + "\n")
    return path


def relative_paths(paths: Mapping[str, Path], base: Path) -> dict[str, str]:
    """Figure name -> path relative to ``base`` (as stored in ``results.json``)."""
    out = {}
    for name, path in paths.items():
        try:
            out[name] = str(Path(path).resolve().relative_to(Path(base).resolve()))
        except ValueError:
            out[name] = str(path)
    return out


def write_report(out_dir: Path, results: Mapping[str, Any], markdown: str) -> None:
    """Write ``results.json`` and ``results.md``, print the tables and where the files are.

    ``results.json`` is written last: its presence marks the run as finished
    (see :mod:`mosaicnet.protocols_support.output`). Figure paths in
    ``results["figures"]`` are relative to ``out_dir``.
    """
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    write_text_atomic(Path(out_dir) / RESULTS_MD, text)
    write_results(out_dir, results)
    print(markdown)
    print(f"results: {Path(out_dir) / RESULTS_JSON}, {Path(out_dir) / RESULTS_MD}")
    figures = results.get("figures") or {}
    if figures:
        print("figures:")
        for relative in figures.values():
            print(f"  {Path(out_dir) / relative}")
