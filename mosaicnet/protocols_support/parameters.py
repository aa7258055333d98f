"""A protocol script's parameters: its UPPERCASE constants, changed by a setting and ``--set``.

A script defines each parameter once, as a module constant (with Brian2 units
where it has any: ``READ_TIME = 1 * second``), and collects them with
``PARAMETERS = parameters_of(globals())`` right after the last one; sweeps read
that dict for the names they may change. Its ``QUICK`` and ``SMOKE`` dicts,
written below the constants, name what ``--quick`` and ``--smoke`` replace.
:func:`resolve_parameters` applies a setting and the caller's changes, prints
every replacement the setting makes (so a user who edited ``ITERATIONS`` sees
that ``--quick`` replaced it) and returns the values as a namespace
(``p.ITERATIONS``). :func:`check_parameters` checks the parameters protocols
share before anything is written, :func:`train_config_from_parameters` turns
them into a training configuration and :func:`protocol_main` is the script's
``main(argv)``.

Command line (every protocol)::

    --data DIR       SHD directory (shd_train.h5, shd_test.h5); default: the
                     synthetic default in data/synthetic, generated on first use
    --out DIR        output directory (default results/<script file name>)
    --quick          the minutes-scale setting
    --smoke          the seconds-scale setting (pipeline check, not science)
    --overwrite      replace earlier results in --out
    --set NAME=VALUE change one parameter (repeatable; VALUE is JSON, else text;
                     quantities as Brian2 text: --set READ_TIME=1*hour)
    --no-progress    no progress bars
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mosaicnet.errors import ConfigError, MosaicnetError

if TYPE_CHECKING:
    from mosaicnet.meta.config import TrainConfig


def parameters_of(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The UPPERCASE data constants of a module namespace (``globals()``), in order.

    Called right after a script's constants, it collects exactly those: names
    bound later (``QUICK``, ``SMOKE``, ``QUESTION``) are not parameters.
    Imported modules, functions and classes are skipped.
    """
    return {
        name: value
        for name, value in namespace.items()
        if name.isupper()
        and not name.startswith("_")
        and not isinstance(value, types.ModuleType | type)
        and not callable(value)
    }


def resolve_parameters(
    defaults: Mapping[str, Any],
    *,
    setting: str = "full",
    changes: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[types.SimpleNamespace, list[dict[str, Any]]]:
    """The parameters of one run: the script's values, the setting's changes, then ``params``.

    Parameters
    ----------
    defaults
        The script's ``PARAMETERS``.
    setting
        ``"full"``, ``"quick"`` or ``"smoke"``: the name of ``changes``, used in
        what is printed and recorded.
    changes
        What the setting replaces (the script's ``QUICK`` or ``SMOKE``).
    params
        The caller's changes (``--set``, a sweep's trial); they win over the
        setting.

    Returns
    -------
    p, replaced
        The values as a namespace (``p.ITERATIONS``; quantities stay Brian2
        quantities), and one ``{"name", "script", <setting>}`` record (values as
        JSON) for every parameter the setting replaced and ``params`` did not.
        Each replacement is also printed.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the valid ones), or a value not of
        its default's kind: a number for a list, or a quantity in other units.
    """
    values = dict(defaults)
    params = dict(params or {})
    replaced = []
    sources = ((f"the script's {setting.upper()}", changes or {}), ("--set", params))
    for source, given in sources:
        for name, value in given.items():
            if name not in defaults:
                raise ConfigError(
                    f"unknown protocol parameter {name!r} (in {source}); valid parameters "
                    f"are {sorted(defaults)}"
                )
            values[name] = _coerce(name, value, defaults[name])
            if given is not params and name not in params:
                if json_value(values[name]) != json_value(defaults[name]):
                    replaced.append({
                        "name": name, "script": json_value(defaults[name]),
                        setting: json_value(values[name]),
                    })  # fmt: skip
    for change in replaced:
        print(
            f"--{setting} replaces {change['name']} = {change['script']!r} of the script "
            f"with {change[setting]!r}"
        )
    return types.SimpleNamespace(**values), replaced


def json_value(value: Any) -> Any:
    """A parameter value for JSON: Brian2 quantities (also in dicts and lists) as exact text.

    ``300 * ms`` becomes ``"0.3 * second"``, which
    :func:`~mosaicnet.network.quantities.parse_quantity` reads back to the same
    value (``protocol.json`` and ``results.json`` hold the parameters).
    """
    from brian2 import Quantity

    from mosaicnet.network.quantities import format_quantity

    if isinstance(value, Quantity):
        return format_quantity(value)
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value


def json_parameters(p: types.SimpleNamespace) -> dict[str, Any]:
    """All resolved parameters as JSON values (see :func:`json_value`)."""
    return {name: json_value(value) for name, value in vars(p).items()}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` in the kind of ``default`` (ints accepted for floats, lists for tuples).

    A quantity default takes a quantity or Brian2 text of the same dimensions;
    a list of quantities takes a list of those, or text such as
    ``"[1*second, 1*hour]"``.
    """
    from brian2 import Quantity

    if isinstance(default, Quantity):
        return _quantity(name, value, default)
    if (
        isinstance(default, list | tuple)
        and default
        and all(isinstance(item, Quantity) for item in default)
    ):
        if isinstance(value, str):
            value = [item.strip() for item in value.strip().strip("[]").split(",") if item.strip()]
        if not isinstance(value, list | tuple) or not value:
            raise ConfigError(
                f"parameter {name} is a list of quantities like {json_value(default)}, "
                f"got {value!r}"
            )
        return type(default)(
            _quantity(f"{name}[{i}]", item, default[0]) for i, item in enumerate(value)
        )
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
        f"parameter {name} must be like its default {json_value(default)!r} "
        f"({type(default).__name__}), got {value!r}"
    )


def _quantity(name: str, value: Any, default: Any) -> Any:
    """``value`` (a quantity or Brian2 text) checked against the dimensions of ``default``."""
    from brian2 import Quantity
    from brian2.units.fundamentalunits import get_unit, have_same_dimensions

    from mosaicnet.network.quantities import parse_quantity

    unit = repr(get_unit(default.dim))
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ConfigError(
            f"parameter {name} = {value!r} has no unit; write it with one, e.g. {value!r}*{unit}"
        )
    quantity = parse_quantity(value, name=name)
    if not isinstance(quantity, Quantity) or not have_same_dimensions(quantity, default):
        raise ConfigError(
            f"parameter {name} = {value!r} is not in the units of its default "
            f"{json_value(default).replace(' ', '')}; write it in {unit}"
        )
    return quantity


def seconds(duration: Any) -> float:
    """A Brian2 time as a float in seconds (what the evaluation functions take)."""
    from brian2 import second

    return float(duration / second)


#: Parameters every protocol maps onto TrainConfig (see train_config_from_parameters).
_TRAINING_PARAMETERS = (
    "SEED", "ITERATIONS", "META_BATCH", "N_WAY", "K_SHOT", "N_QUERY", "MOSAIC_ROWS",
    "MOSAIC_COLS", "NEURONS_PER_TILE", "DEVICE_MODEL",
)  # fmt: skip


def train_config_from_parameters(p: types.SimpleNamespace, **fields: Any) -> TrainConfig:
    """The training configuration every protocol starts from, with ``fields`` added or replaced.

    Every protocol names the seed, the run length, the few-shot task and the
    Mosaic size alike (``SEED``, ``ITERATIONS``, ``META_BATCH``, ``N_WAY``,
    ``K_SHOT``, ``N_QUERY``, ``MOSAIC_ROWS``, ``MOSAIC_COLS``,
    ``NEURONS_PER_TILE``, ``DEVICE_MODEL``; where a protocol has them,
    ``NEURON_MODEL``, ``NEURON_CONSTANTS``, ``TORCH_DEVICE``, ``READOUT_INIT`` and
    ``TEST_INNER_STEPS``);
    those map to their :class:`~mosaicnet.meta.config.TrainConfig` fields here. What a
    protocol varies or names itself (inner steps, learning rates, layout weight, ...) it
    passes as ``fields``.

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
        "seed": p.SEED, "iterations": p.ITERATIONS, "meta_batch": p.META_BATCH,
        # From ITERATIONS even where ``fields`` changes ``iterations``: it is part of
        # the stored configuration that existing runs are matched against on resume.
        "checkpoint_every": max(1, min(10, p.ITERATIONS)),
        "n_way": p.N_WAY, "k_shot": p.K_SHOT, "n_query": p.N_QUERY,
        "rows": p.MOSAIC_ROWS, "cols": p.MOSAIC_COLS,
        "neurons_per_tile": p.NEURONS_PER_TILE, "device_model": p.DEVICE_MODEL,
    }  # fmt: skip
    # Optional in a protocol of one neuron model: the model (preset or file) and the
    # constants it changes, as Brian2 quantities or text (stored as text).
    if hasattr(p, "NEURON_MODEL"):
        shared["neuron_model"] = p.NEURON_MODEL
        shared["neuron_constants"] = json_value(dict(getattr(p, "NEURON_CONSTANTS", None) or {}))
    # Optional too: where torch trains ("cpu", "cuda", "cuda:N").
    if hasattr(p, "TORCH_DEVICE"):
        shared["torch_device"] = p.TORCH_DEVICE
    # Optional too: where the inner loop starts a task's readout ("meta" or "prototype").
    if hasattr(p, "READOUT_INIT"):
        shared["readout_init"] = p.READOUT_INIT
    # Optional too: inner steps at meta-test (None: as trained).
    if hasattr(p, "TEST_INNER_STEPS"):
        shared["test_inner_steps"] = p.TEST_INNER_STEPS
    return TrainConfig(**{**shared, **fields})


def check_parameters(p: types.SimpleNamespace) -> None:
    """Check the parameters protocols share; raise :class:`ConfigError` naming the bad one.

    The training parameters (through the :class:`~mosaicnet.meta.config.TrainConfig`
    they make, neuron model included), read times, task and sample counts,
    ``EVALUATE_ON``, the device preset and the Brian2 backend. Called before
    anything is written, so that a typo costs no earlier results.
    """
    from mosaicnet.meta.read_time import parse_read_time
    from mosaicnet.network.brian_backends import check_backend

    given = vars(p)
    if all(name in given for name in _TRAINING_PARAMETERS):
        try:
            train_config_from_parameters(p)
        except ConfigError as error:
            raise ConfigError(f"protocol parameters: {error}") from None
        if p.DEVICE_MODEL is not None:
            from mosaicnet.devices import get_device_model

            get_device_model(p.DEVICE_MODEL)
    for name in ("READ_TIME", "READ_TIME_MIN", "READ_TIME_MAX"):
        if name in given:
            parse_read_time(seconds(given[name]))
    for read_time in given.get("READ_TIMES", ()):
        parse_read_time(seconds(read_time))
    for name in ("EVAL_TASKS", "RASTER_SAMPLES", "N_TRIALS"):
        value = given.get(name)
        if name in given and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"protocol parameter {name} must be an integer >= 1, got {value!r}")
    if given.get("EVALUATE_ON", "torch") not in ("torch", "brian2"):
        raise ConfigError(f"EVALUATE_ON must be 'torch' or 'brian2', got {p.EVALUATE_ON!r}")
    if "BACKEND" in given:
        check_backend(p.BACKEND)


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
        help="change one parameter (repeatable), e.g. --set ITERATIONS=100 --set READ_TIME=1*hour",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def protocol_main(
    argv: Sequence[str] | None,
    *,
    script: str | Path,
    description: str | None,
    run: Callable[..., dict[str, Any]],
) -> int:
    """Parse the command line and call the protocol's ``run``; return an exit code.

    ``script`` is the script's ``__file__``: ``--out`` defaults to
    ``results/<file name without .py>`` (see
    :func:`~mosaicnet.protocols_support.output.default_output_dir`). Errors the
    user can fix (:class:`~mosaicnet.errors.MosaicnetError`) print as one line on
    stderr and return 2.
    """
    from mosaicnet.protocols_support.output import default_output_dir

    prog = Path(script).name
    parser = build_parser(prog, description or "", default_output_dir(script))
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
