"""Protocol parameters and the command line every protocol script shares.

A protocol declares its parameters as named constants and collects them in a
``PARAMETERS`` dict (name -> full-run value), plus ``QUICK`` and ``SMOKE`` dicts
of the values that change for ``--quick`` (minutes on 2 cores) and ``--smoke``
(seconds: a check that the pipeline runs, used by the default test run).
:func:`resolve_parameters` merges them with the caller's overrides,
:func:`train_config_from_parameters` turns the parameters every protocol shares
into a training configuration, and :func:`protocol_main` is the script's
``main(argv)``.

Command line (every protocol)::

    --data DIR       SHD directory (shd_train.h5, shd_test.h5); default: the
                     synthetic default in data/synthetic, generated on first use
    --out DIR        output directory (default results/<protocol>)
    --quick          the minutes-scale setting
    --smoke          the seconds-scale setting (pipeline check, not science)
    --overwrite      replace earlier results in --out
    --set NAME=VALUE change one parameter (repeatable; VALUE is JSON, else a string)
    --no-progress    no progress bars
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mosaicnet.errors import ConfigError, MosaicnetError

if TYPE_CHECKING:
    from mosaicnet.meta.config import TrainConfig


def resolve_parameters(
    defaults: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    quick: bool = False,
    smoke: bool = False,
    quick_changes: Mapping[str, Any] | None = None,
    smoke_changes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters of one run: defaults, then the quick/smoke changes, then ``params``.

    ``smoke`` applies the quick changes first (a smoke run is a smaller quick run).

    Raises
    ------
    ConfigError
        ``params`` names a parameter the protocol does not have (the message lists
        the valid names), or changes a value's kind (a number for a list, ...).
    """
    resolved = {name: _quantities_as_text(value) for name, value in defaults.items()}
    if quick or smoke:
        resolved.update(quick_changes or {})
    if smoke:
        resolved.update(smoke_changes or {})
    for name, value in (params or {}).items():
        if name not in defaults:
            raise ConfigError(
                f"unknown protocol parameter {name!r}; valid parameters are {sorted(defaults)}"
            )
        resolved[name] = _coerce(name, _quantities_as_text(value), resolved[name])
    return {name: _quantities_as_text(value) for name, value in resolved.items()}


def _quantities_as_text(value: Any) -> Any:
    """Brian2 quantities (also inside dicts and lists) as exact Brian2 text.

    A script may write ``NEURON_CONSTANTS = {"tau_mem": 300 * ms}``; the
    parameters are stored as JSON (``protocol.json``, ``results.json``), so the
    quantity becomes ``"0.3 * second"``, which reads back to the same value.
    """
    from brian2 import Quantity

    from mosaicnet.network.quantities import format_quantity

    if isinstance(value, Quantity):
        return format_quantity(value)
    if isinstance(value, dict):
        return {key: _quantities_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_quantities_as_text(item) for item in value)
    return value


def train_config_from_parameters(p: Mapping[str, Any], **fields: Any) -> TrainConfig:
    """The training configuration every protocol starts from, with ``fields`` added or replaced.

    Every protocol names the seed, the run length, the few-shot task and the
    Mosaic size alike (``SEED``, ``ITERATIONS``, ``META_BATCH``, ``N_WAY``,
    ``K_SHOT``, ``N_QUERY``, ``MOSAIC_ROWS``, ``MOSAIC_COLS``,
    ``NEURONS_PER_TILE``, ``DEVICE_MODEL``; where a protocol has them,
    ``NEURON_MODEL`` and ``NEURON_CONSTANTS``); those map to their
    :class:`~mosaicnet.meta.config.TrainConfig` fields here. What a protocol varies
    or names itself (inner steps, learning rates, layout weight, ...) it passes as
    ``fields``.

    Parameters
    ----------
    p
        Resolved protocol parameters (:func:`resolve_parameters`).
    **fields
        Further ``TrainConfig`` fields; they win over the shared ones (e.g.
        ``iterations`` for a run longer than ``ITERATIONS``).
    """
    from mosaicnet.meta.config import TrainConfig

    shared = {
        "seed": p["SEED"], "iterations": p["ITERATIONS"], "meta_batch": p["META_BATCH"],
        # From ITERATIONS even where ``fields`` changes ``iterations``: it is part of
        # the stored configuration that existing runs are matched against on resume.
        "checkpoint_every": max(1, min(10, p["ITERATIONS"])),
        "n_way": p["N_WAY"], "k_shot": p["K_SHOT"], "n_query": p["N_QUERY"],
        "rows": p["MOSAIC_ROWS"], "cols": p["MOSAIC_COLS"],
        "neurons_per_tile": p["NEURONS_PER_TILE"], "device_model": p["DEVICE_MODEL"],
    }  # fmt: skip
    # Optional in a protocol of one neuron model: the model (preset or file) and its
    # constants as Brian2 text or quantities, e.g. NEURON_CONSTANTS = {"tau_mem": "300*ms"}.
    if "NEURON_MODEL" in p:
        shared["neuron_model"] = p["NEURON_MODEL"]
        shared["neuron_constants"] = dict(p.get("NEURON_CONSTANTS") or {})
    return TrainConfig(**{**shared, **fields})


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` in the kind of ``default`` (ints accepted for floats, lists for tuples)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"parameter {name} must be true or false, got {value!r}")
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, float) and is_number:
        return float(value)
    if isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(default, list | tuple) and isinstance(value, list | tuple):
        return type(default)(value)
    if isinstance(default, str) and isinstance(value, str):
        return value
    if isinstance(default, dict) and isinstance(value, dict):
        return value
    raise ConfigError(
        f"parameter {name} must be like its default {default!r} "
        f"({type(default).__name__}), got {value!r}"
    )


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` -> ``(NAME, value)``; VALUE is read as JSON, else kept as a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"--set takes NAME=VALUE (e.g. --set ITERATIONS=50), got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


def build_parser(prog: str, description: str, default_out: Path) -> argparse.ArgumentParser:
    """The argument parser shared by all protocols."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="directory holding shd_train.h5 and shd_test.h5 (real SHD or synthetic); "
        "default: the synthetic default in data/synthetic, generated on first use",
    )
    parser.add_argument(
        "--out", type=Path, default=default_out, help=f"output directory (default {default_out})"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="minutes-scale setting")
    size.add_argument(
        "--smoke", action="store_true", help="seconds-scale pipeline check (not science)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one parameter (repeatable), e.g. --set ITERATIONS=100",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def protocol_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    run: Callable[..., dict[str, Any]],
) -> int:
    """Parse the command line and call the protocol's ``run``; return an exit code.

    Errors the user can fix (:class:`~mosaicnet.errors.MosaicnetError`) print as
    one line on stderr and return 2.
    """
    parser = build_parser(prog, description, Path("results") / Path(prog).stem)
    args = parser.parse_args(argv)
    try:
        params = dict(parse_assignment(text) for text in args.assignments)
        run(
            params,
            args.out,
            args.quick,
            smoke=args.smoke,
            data=args.data,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except MosaicnetError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
