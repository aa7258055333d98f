"""Sweep files: what to run, over which search space, and where results go.

A sweep file is TOML (read with the standard library's :mod:`tomllib`) or JSON
with the same structure. Relative paths inside it are relative to the file's
own directory, so a sweep file and its base configuration can move together::

    [study]
    name = "inner-lr"              # Optuna study name (default: the file's stem)
    objective = "accuracy_unseen"  # key of the trial's results to optimise
    direction = "maximize"         # or "minimize"
    n_trials = 16                  # trials to finish (grid: default = grid size)
    retries = 1                    # re-runs of a trial whose worker died
    # storage = "postgresql://user@host/db"   (default: SQLite file in out_dir)
    # out_dir = "runs/inner-lr"               (default: <file stem>_sweep/ beside the file)

    [target]
    kind = "train+evaluate"        # or "protocol", or a registered target's kind
    config = "base_config.json"    # optional TrainConfig JSON; fields not swept or fixed
    # data = "data/shd"            # directory with shd_train.h5 / shd_test.h5

    [sampler]
    kind = "tpe"                   # "grid", "random", "tpe" or "qmc"
    seed = 0

    [params]                       # fixed for every trial
    iterations = 200
    eval_tasks = 50

    [space]                        # searched
    inner_lr = { low = 0.01, high = 10.0, log = true }
    inner_steps = { values = [1, 2, 5, 10] }
    seed = { values = [0, 1, 2] }

A dimension is either ``{ values = [...] }`` (a list; categorical for Optuna's
samplers unless all numbers) or a range ``{ low, high }`` with optional ``log``,
``step`` and ``type = "int" | "float"`` (the type defaults to int when both ends
are integers). The grid sampler needs every dimension to be a list or a range
with a ``step`` (integer ranges default to step 1); it runs every point of the
grid once, in file order (the first ``n_trials`` points if ``n_trials`` is
smaller), and re-running resumes with the points that have no finished trial.

Parameters are checked against what the target accepts (see
:mod:`mosaicnet.sweeps.objectives`); an unknown parameter, an empty space, an
unknown target or protocol and an unknown key all raise
:class:`~mosaicnet.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaicnet.errors import ConfigError

SAMPLERS = ("grid", "random", "tpe", "qmc")
DIRECTIONS = ("minimize", "maximize")

#: Largest grid accepted: a bigger one is almost always a typo in a step or range.
MAX_GRID_POINTS = 100_000

_TABLES = ("study", "target", "sampler", "params", "space")
_STUDY_KEYS = ("name", "objective", "direction", "n_trials", "retries", "storage", "out_dir")
_SAMPLER_KEYS = ("kind", "seed")
_DIMENSION_KEYS = ("values", "low", "high", "log", "step", "type")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Dimension:
    """One searched parameter.

    Exactly one of ``values`` (an explicit list) or ``low``/``high`` (a range) is set.
    ``kind`` is ``"int"``, ``"float"`` or ``"categorical"``.
    """

    name: str
    kind: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def grid_values(self) -> list[Any]:
        """The points of this dimension on a grid (``ConfigError`` if it has none)."""
        if self.values is not None:
            return list(self.values)
        if self.kind == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            raise ConfigError(
                f"space.{self.name}: the grid sampler needs a list of values or a range "
                "with a step; add `step = ...` or `values = [...]`, or use another sampler"
            )
        # Count points by rounding so that 0.1-steps do not lose the last point to
        # floating-point error.
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [self.low + i * self.step for i in range(count)]

    def distribution(self, *, grid: bool = False):
        """The Optuna distribution of this dimension.

        Parameters
        ----------
        grid
            The distribution only records where the grid's points lie (the grid
            sampler never draws from it): numeric lists and stepped ranges become
            plain int/float ranges spanning their points, so that fANOVA and the
            slice/contour plots treat them as ordered numbers. For the other
            samplers a list stays categorical, so they only propose listed values.
        """
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if grid and self.kind != "categorical":
            points = self.grid_values()
            if self.kind == "int":
                return IntDistribution(int(min(points)), int(max(points)), log=self.log)
            return FloatDistribution(float(min(points)), float(max(points)), log=self.log)
        if self.values is not None:
            return CategoricalDistribution(list(self.values))
        if self.kind == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (stored with the study to detect changed sweeps)."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.values is not None:
            data["values"] = list(self.values)
        else:
            data.update(low=self.low, high=self.high, log=self.log, step=self.step)
        return data


@dataclass(frozen=True)
class Target:
    """What a trial runs: a target ``kind`` and its resolved options (JSON-able)."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file (see the module docstring for the format)."""

    name: str
    objective: str
    direction: str
    n_trials: int
    retries: int
    storage: str | None
    out_dir: Path
    target: Target
    fixed: dict[str, Any]
    space: tuple[Dimension, ...]
    sampler: str
    sampler_seed: int
    source: str = "sweep file"

    @property
    def parameter_names(self) -> list[str]:
        """Names of the searched parameters, in file order."""
        return [d.name for d in self.space]

    def grid(self) -> list[dict[str, Any]]:
        """All points of the grid, in a fixed order (only for ``sampler == "grid"``)."""
        import itertools

        names = self.parameter_names
        axes = [d.grid_values() for d in self.space]
        return [dict(zip(names, point, strict=True)) for point in itertools.product(*axes)]

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions of the searched parameters (see :meth:`Dimension.distribution`)."""
        grid = self.sampler == "grid"
        return {d.name: d.distribution(grid=grid) for d in self.space}

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with this file (everything but sizes and places).

        ``n_trials`` and ``retries`` may change between runs (a study can be
        extended), as may where the results go.
        """
        return {
            "target": {"kind": self.target.kind, "options": self.target.options},
            "objective": self.objective,
            "direction": self.direction,
            "fixed": self.fixed,
            "space": {d.name: d.to_dict() for d in self.space},
            "sampler": self.sampler,
            "sampler_seed": self.sampler_seed,
        }


# ----------------------------------------------------------------------------- reading
def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file (``.toml`` or ``.json``).

    Raises
    ------
    ConfigError
        The file is missing, unreadable, or invalid; the message names the file
        and the offending key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"sweep file {path} cannot be read ({error})") from error
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"sweep file {path} is not valid JSON ({error})") from error
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"sweep file {path} is not valid TOML ({error}); JSON files must end in .json"
            ) from error
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {path} must hold a table (object) at the top level")
    return parse_sweep(data, base_dir=path.parent, default_name=path.stem, source=str(path))


def parse_sweep(
    data: dict[str, Any],
    *,
    base_dir: str | Path = ".",
    default_name: str = "sweep",
    source: str = "sweep file",
) -> SweepSpec:
    """Validate the parsed content of a sweep file.

    Parameters
    ----------
    data
        The file's content as nested dicts.
    base_dir
        Directory that relative paths in the file are relative to.
    default_name
        Study name when the file gives none (the file's stem).
    source
        How errors name the file.
    """
    from mosaicnet.sweeps.objectives import TARGETS, get_target

    base_dir = Path(base_dir).resolve()
    _no_unknown(data, _TABLES, source, "top level")
    for table in _TABLES:
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{source}: [{table}] must be a table")
    study = data.get("study", {})
    _no_unknown(study, _STUDY_KEYS, source, "[study]")

    target_data = dict(data.get("target", {}))
    if "kind" not in target_data:
        raise ConfigError(f"{source}: [target] needs `kind`, one of {list(TARGETS)}")
    kind = target_data.pop("kind")
    target_type = get_target(kind, source=source)
    options = target_type.validate_options(target_data, base_dir=base_dir, source=source)
    target = Target(kind=str(kind), options=options)

    space = _parse_space(data.get("space", {}), source)
    fixed = dict(data.get("params", {}))
    both = sorted(set(fixed) & {d.name for d in space})
    if both:
        raise ConfigError(
            f"{source}: parameter(s) {both} are both fixed in [params] and searched in "
            "[space]; keep each in one place"
        )
    accepted = target_type.parameter_names(options)
    if accepted is not None:
        for where, names in (("[space]", [d.name for d in space]), ("[params]", list(fixed))):
            unknown = sorted(set(names) - set(accepted))
            if unknown:
                raise ConfigError(
                    f"{source}: unknown parameter(s) {unknown} in {where} for target "
                    f"{kind!r}; it accepts {sorted(accepted)}"
                )
    target_type.check_parameters(fixed, space, options, source=source)

    objective = study.get("objective", target_type.default_objective)
    if not isinstance(objective, str) or not objective:
        raise ConfigError(
            f"{source}: [study] objective must name a result of the target (a string); "
            f"target {kind!r} has no default objective"
        )
    direction = study.get("direction", target_type.default_direction(objective))
    if direction not in DIRECTIONS:
        raise ConfigError(f"{source}: [study] direction must be one of {DIRECTIONS}")

    sampler_data = data.get("sampler", {})
    _no_unknown(sampler_data, _SAMPLER_KEYS, source, "[sampler]")
    sampler = sampler_data.get("kind", "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"{source}: [sampler] kind {sampler!r} is not one of {list(SAMPLERS)}")
    sampler_seed = _integer(sampler_data.get("seed", 0), f"{source}: [sampler] seed", 0)

    name = study.get("name", default_name)
    if not isinstance(name, str) or not _STUDY_NAME.match(name):
        raise ConfigError(
            f"{source}: [study] name {name!r} must be letters, digits, '_', '-' or '.'"
        )
    n_trials = study.get("n_trials")
    if sampler == "grid":
        size = _grid_size(space, source)
        if n_trials is None:
            n_trials = size
        elif _integer(n_trials, f"{source}: [study] n_trials", 1) > size:
            raise ConfigError(
                f"{source}: n_trials={n_trials} exceeds the grid's {size} points; every grid "
                "point runs once (repeat seeds by adding a `seed` dimension)"
            )
    elif n_trials is None:
        raise ConfigError(f"{source}: [study] needs n_trials with the {sampler!r} sampler")
    n_trials = _integer(n_trials, f"{source}: [study] n_trials", 1)
    retries = _integer(study.get("retries", 1), f"{source}: [study] retries", 0)

    storage = study.get("storage")
    if storage is not None:
        if not isinstance(storage, str) or not storage:
            raise ConfigError(f"{source}: [study] storage must be a database URL or a file path")
        storage = storage_url(storage, base_dir)
    out_dir = study.get("out_dir", f"{default_name}_sweep")
    if not isinstance(out_dir, str) or not out_dir:
        raise ConfigError(f"{source}: [study] out_dir must be a directory path")
    return SweepSpec(
        name=name,
        objective=objective,
        direction=direction,
        n_trials=n_trials,
        retries=retries,
        storage=storage,
        out_dir=(base_dir / out_dir).resolve(),
        target=target,
        fixed=fixed,
        space=space,
        sampler=sampler,
        sampler_seed=sampler_seed,
        source=source,
    )


def storage_url(value: str, base_dir: str | Path = ".") -> str:
    """An SQLAlchemy URL for ``value``: URLs pass through, a plain path becomes SQLite.

    A plain path is relative to ``base_dir`` (the sweep file's directory, or the
    working directory for ``--storage``).
    """
    if "://" in value:
        return value
    return f"sqlite:///{(Path(base_dir) / value).resolve()}"


def _no_unknown(table: dict[str, Any], allowed: tuple[str, ...], source: str, where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown} in {where}; allowed: {list(allowed)}"
        )


def _integer(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, what: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return value


def _parse_space(space: dict[str, Any], source: str) -> tuple[Dimension, ...]:
    if not space:
        raise ConfigError(
            f"{source}: the search space is empty; add a [space] table with at least one "
            "parameter, e.g. `inner_lr = {{ low = 0.01, high = 10.0, log = true }}`"
        )
    return tuple(_parse_dimension(name, spec, source) for name, spec in space.items())


def _parse_dimension(name: str, spec: Any, source: str) -> Dimension:
    where = f"{source}: space.{name}"
    if isinstance(spec, list):  # shorthand: `seed = [0, 1, 2]`
        spec = {"values": spec}
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where} must be a list of values or a table like {{ low = 1, high = 10 }}"
        )
    _no_unknown(spec, _DIMENSION_KEYS, source, f"space.{name}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log must be true or false")
    if "values" in spec:
        extra = sorted(set(spec) & {"low", "high", "step"})
        if extra:
            raise ConfigError(f"{where}: give either values or a low/high range, not both")
        return _value_dimension(name, spec, log, where)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where} needs `values = [...]` or both `low` and `high`")
    low = _number(spec["low"], f"{where}.low")
    high = _number(spec["high"], f"{where}.high")
    kind = spec.get("type", "int" if isinstance(low, int) and isinstance(high, int) else "float")
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}.type must be 'int' or 'float', got {kind!r}")
    if low > high:
        raise ConfigError(f"{where}: low={low} is larger than high={high}; the range is empty")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got low={low}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"{where}.step")
        if step <= 0:
            raise ConfigError(f"{where}.step must be > 0, got {step}")
        if log:
            raise ConfigError(f"{where}: a range cannot have both a step and log = true")
    if kind == "int":
        if low != int(low) or high != int(high) or (step is not None and step != int(step)):
            raise ConfigError(f"{where}: an int range needs integer low, high and step")
        return Dimension(
            name, "int", low=int(low), high=int(high), log=log,
            step=None if step is None else int(step),
        )  # fmt: skip
    return Dimension(
        name, "float", low=float(low), high=float(high), log=log,
        step=None if step is None else float(step),
    )  # fmt: skip


def _value_dimension(name: str, spec: dict[str, Any], log: bool, where: str) -> Dimension:
    values = spec["values"]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}.values must be a non-empty list")
    for value in values:
        if not isinstance(value, str | int | float | bool):
            raise ConfigError(
                f"{where}.values may hold strings, numbers and booleans only, got {value!r}"
            )
    if len({json.dumps(v) for v in values}) != len(values):
        raise ConfigError(f"{where}.values lists a value twice")
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric:
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"{where}.values must be finite numbers")
        kind = "int" if all(isinstance(v, int) for v in values) else "float"
    else:
        kind = "categorical"
    wanted = spec.get("type")
    if wanted is not None:
        if wanted not in ("int", "float") or not numeric:
            raise ConfigError(f"{where}.type may only be 'int' or 'float', for numeric values")
        kind = wanted
        values = [int(v) if kind == "int" else float(v) for v in values]
    if log and (kind == "categorical" or min(values) <= 0):
        raise ConfigError(f"{where}: log = true needs positive numeric values")
    return Dimension(name, kind, values=tuple(values), log=log)


def _grid_size(space: tuple[Dimension, ...], source: str) -> int:
    size = 1
    for dimension in space:
        count = len(dimension.grid_values())
        if count == 0:
            raise ConfigError(f"{source}: space.{dimension.name} has no grid points")
        size *= count
        if size > MAX_GRID_POINTS:
            raise ConfigError(
                f"{source}: the grid has more than {MAX_GRID_POINTS} points; use fewer "
                "values, a larger step, or a sampler such as 'tpe'"
            )
    return size
