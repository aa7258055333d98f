"""What one sweep trial runs, on a Dask worker: the targets a sweep file can name.

Targets
-------
``train+evaluate``
    Meta-train a network with :func:`mosaicnet.meta.training.train` into the
    trial's directory, then meta-test it with
    :func:`mosaicnet.meta.torch_evaluation.evaluate_on_torch`. Parameters are the
    fields of :class:`~mosaicnet.meta.config.TrainConfig` and the torch fields of
    :class:`~mosaicnet.meta.evaluation_options.EvaluationOptions` prefixed with
    ``eval_`` (``eval_tasks``, ``eval_inner_steps``, ``eval_seed``, ``eval_protocol``,
    ...). Results: the
    evaluation summary (``accuracy_seen``, ``accuracy_unseen``, their 20-unit
    variants and 95 % CIs) and the last training step's metrics prefixed
    ``train_``. Default objective: ``accuracy_unseen`` (maximised).
``protocol``
    A protocol script (``protocols/<name>.py``, or a path) exposing
    ``run(params: dict, out_dir: Path, quick: bool) -> dict``; the sweep reads
    its objective from the returned dict. If the script defines a mapping
    ``PARAMETERS`` (name -> default), swept and fixed parameters are checked
    against its keys.

More targets (a cheap diagnostic objective, a project's own experiment) are
:class:`SweepTarget` subclasses made known with :func:`register_target` when
their module is imported; the sweep imports that module on every worker.

Isolation
---------
:func:`run_trial` gives every trial a private directory and, for the time it
runs, a private temporary directory (``TMPDIR`` and :data:`tempfile.tempdir`,
``<trial>/tmp``) and a private build directory named by the environment
variable ``MOSAICNET_BUILD_DIR`` (on the RAM disk ``/dev/shm`` when it has
room, because standalone runs write their results there; else
``<trial>/build``). mosaicnet's network builder makes each standalone project
in a fresh directory under ``MOSAICNET_BUILD_DIR``
(:class:`mosaicnet.network.brian_backends.StandaloneProject`), which no other
trial can share; Brian2's own standalone devices build in a fresh
``tempfile.mkdtemp`` directory when no directory is given, so default builds
land in the trial's temporary directory. Code that chooses a build directory
itself should put it under ``MOSAICNET_BUILD_DIR`` too (never a fixed relative
path such as ``output``, which every trial of a worker would share). After the
trial, standalone projects in
these directories are deleted, and Brian2's global device and preferences are
reset, so one trial's ``set_device("cpp_standalone")`` cannot leak into the
next trial on the same worker. Build directories of a worker that was killed
are removed when the nanny restarts it (:mod:`mosaicnet.sweeps.worker_setup`).
Workers run one trial at a time (one thread each), which is what makes
changing the process environment per trial safe.
"""

from __future__ import annotations

import abc
import hashlib
import importlib.util
import inspect
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mosaicnet.errors import ConfigError
from mosaicnet.network.brian_backends import BUILD_DIR_ENV

#: RAM disk for build directories, used while it has this much room (bytes).
RAM_DISK = Path("/dev/shm")
RAM_DISK_MIN_FREE = 512 * 2**20
BUILD_PREFIX = "mosaicnet_sweep_"

#: Written at the start of every trial: which process runs it (for debugging, and
#: for tests that kill the worker running a trial).
WORKER_FILE = "sweep_worker.json"
#: The trial's flattened results (prefixed: protocols write their own results.json).
RESULTS_FILE = "sweep_results.json"

#: At most this many flattened result entries are kept per trial (the rest stays in
#: the target's own files): the study is for numbers to compare, not for raw data.
MAX_RESULT_ENTRIES = 1000


# ----------------------------------------------------------------------------- trial entry
def run_trial(
    kind: str, options: dict[str, Any], params: dict[str, Any], trial_dir: str
) -> dict[str, Any]:
    """Run one trial of target ``kind`` in ``trial_dir``; return its results.

    This is the function submitted to Dask; it must stay importable on the
    workers (it is pickled by reference) and returns plain data only: the
    client process is the only writer of the Optuna study.

    Returns
    -------
    dict
        ``results`` (scalar results of the target), ``seconds`` (wall time on the
        worker), ``pid`` and ``host`` of the worker process.
    """
    directory = Path(trial_dir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    worker = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    (directory / WORKER_FILE).write_text(json.dumps(worker), encoding="utf-8")
    target = get_target(kind)
    with private_environment(directory):
        raw = target.run(options, dict(params), directory)
    if not isinstance(raw, dict):
        raise TypeError(f"target {kind!r} returned {type(raw).__name__}, expected a dict")
    results = scalar_results(raw)
    (directory / RESULTS_FILE).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return {
        "results": results,
        "seconds": time.perf_counter() - started,
        "pid": worker["pid"],
        "host": worker["host"],
    }


def scalar_results(raw: dict[str, Any], *, limit: int = MAX_RESULT_ENTRIES) -> dict[str, Any]:
    """Flatten a result dict into scalar entries with dotted keys.

    Nested tables and lists become ``outer.inner`` and ``list.0`` keys, so a
    protocol's nested results are addressable as an objective, e.g.
    ``networks.mosaic.accuracy_unseen`` or ``points.2.accuracy_unseen``.
    Numbers, strings, booleans and ``None`` are kept (numpy and torch scalars
    converted, non-finite numbers become ``None``); at most ``limit`` entries, in
    the order they appear.
    """
    out: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if len(out) >= limit:
            return
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()  # numpy / torch scalars
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                visit(f"{prefix}.{index}", item)
        elif isinstance(value, bool | str) or value is None:
            out[prefix] = value
        elif isinstance(value, int | float):
            out[prefix] = value if math.isfinite(value) else None

    visit("", raw)
    return out


@contextmanager
def private_environment(trial_dir: Path) -> Iterator[None]:
    """Give the trial its own temporary and build directories (module docstring)."""
    tmp = trial_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    build = build_directory(trial_dir)
    build.mkdir(parents=True, exist_ok=True)
    saved_env = {name: os.environ.get(name) for name in ("TMPDIR", BUILD_DIR_ENV)}
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = str(tmp)
    os.environ[BUILD_DIR_ENV] = str(build)
    tempfile.tempdir = str(tmp)
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_brian_state()
        # Standalone projects hold compiled binaries (megabytes per trial) and are of
        # no use once the trial returned. Other files in tmp/ stay: a library imported
        # during the trial may keep writing to a file it opened there (Brian2's log).
        for folder in (tmp, build):
            for pattern in ("brian_standalone_*", "mosaicnet_brian_*"):
                for project in folder.glob(pattern):
                    shutil.rmtree(project, ignore_errors=True)
        if build.parent == RAM_DISK:
            shutil.rmtree(build, ignore_errors=True)


def build_directory(trial_dir: Path) -> Path:
    """Where a trial's builds go: a fresh directory on the RAM disk, else ``<trial>/build``.

    The RAM-disk name carries the worker's pid, so that a restarted worker can
    tell the directories of dead processes (:func:`remove_stale_builds`).
    """
    if RAM_DISK.is_dir() and os.access(RAM_DISK, os.W_OK):
        if shutil.disk_usage(RAM_DISK).free > RAM_DISK_MIN_FREE:
            tag = uuid.uuid4().hex[:8]
            return RAM_DISK / f"{BUILD_PREFIX}{os.getpid()}_{trial_dir.name}_{tag}"
    return trial_dir / "build"


def remove_stale_builds() -> int:
    """Delete RAM-disk build directories of processes that no longer exist.

    A worker killed mid-trial cannot clean up after itself; its builds would
    hold memory until reboot. Returns the number of directories removed.
    """
    removed = 0
    for path in RAM_DISK.glob(f"{BUILD_PREFIX}*") if RAM_DISK.is_dir() else ():
        pid_text = path.name[len(BUILD_PREFIX) :].split("_", 1)[0]
        if not pid_text.isdigit() or _pid_exists(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def reset_brian_state() -> None:
    """Return Brian2 (if a trial imported it) to the runtime device and default preferences."""
    if "brian2" not in sys.modules:
        return
    from brian2.devices.device import reinit_devices, reset_device

    reset_device("runtime")
    reinit_devices()


# ----------------------------------------------------------------------------- registry
class SweepTarget(abc.ABC):
    """Base class of sweep targets; subclasses say what a trial runs."""

    kind = ""
    default_objective: str | None = None
    #: Modules imported in each worker's main thread at start-up (see
    #: :mod:`mosaicnet.sweeps.worker_setup`); Brian2 cannot be first imported in a
    #: worker's task thread.
    worker_imports: tuple[str, ...] = ("brian2",)

    def validate_options(
        self, options: dict[str, Any], *, base_dir: Path, source: str
    ) -> dict[str, Any]:
        """Check the ``[target]`` table (without ``kind``); return JSON-able options."""
        if options:
            raise ConfigError(
                f"{source}: target {self.kind!r} takes no options, got {sorted(options)}"
            )
        return {}

    @staticmethod
    def data_option(options: dict[str, Any], *, base_dir: Path, source: str) -> str | None:
        """The ``[target]`` data directory (relative to the sweep file), checked; or None."""
        if options.get("data") is None:
            return None
        path = (base_dir / str(options["data"])).resolve()
        if not path.is_dir():
            raise ConfigError(
                f"{source}: [target] data directory {path} does not exist; give a "
                "directory with shd_train.h5 and shd_test.h5, or omit `data` for the "
                "synthetic default"
            )
        return str(path)

    def parameter_names(self, options: dict[str, Any]) -> set[str] | None:
        """Every parameter the target accepts, or ``None`` if it cannot tell."""
        return None

    def check_parameters(
        self, fixed: dict[str, Any], space: tuple, options: dict[str, Any], *, source: str
    ) -> None:
        """Value checks before any trial runs (default: none)."""
        return None

    def default_direction(self, objective: str) -> str | None:
        """``"maximize"`` for accuracies, ``"minimize"`` for losses and errors."""
        name = objective.lower()
        if name.startswith("acc") or "accuracy" in name:
            return "maximize"
        if "loss" in name or "error" in name:
            return "minimize"
        return None

    def prepare(self, options: dict[str, Any], *, progress: bool) -> dict[str, Any]:
        """Client-side work done once before trials are submitted; returns options."""
        return options

    @abc.abstractmethod
    def run(self, options: dict[str, Any], params: dict[str, Any], trial_dir: Path) -> dict:
        """Run one trial in ``trial_dir`` and return its results (every target defines it)."""


class TrainEvaluate(SweepTarget):
    """``train+evaluate``: meta-train, then meta-test in torch (module docstring)."""

    kind = "train+evaluate"
    default_objective = "accuracy_unseen"
    eval_prefix = "eval_"
    # Evaluation options a sweep must not set: the sweep supplies them.
    _eval_fixed = ("progress",)

    def validate_options(self, options, *, base_dir, source):
        unknown = sorted(set(options) - {"config", "data"})
        if unknown:
            raise ConfigError(
                f"{source}: target 'train+evaluate' takes `config` and `data`, got {unknown}"
            )
        out: dict[str, Any] = {"config": None, "data": None}
        if options.get("config") is not None:
            from mosaicnet.meta.config import load_config

            path = (base_dir / str(options["config"])).resolve()
            load_config(path)  # ConfigError naming the file if missing or invalid
            out["config"] = str(path)
        out["data"] = self.data_option(options, base_dir=base_dir, source=source)
        return out

    @staticmethod
    def _train_fields() -> set[str]:
        from dataclasses import fields

        from mosaicnet.meta.config import TrainConfig

        return {f.name for f in fields(TrainConfig)}

    def _eval_options(self) -> set[str]:
        from mosaicnet.meta.evaluation_options import CHIP_ONLY, field_names

        return {name for name in field_names() if name not in (*self._eval_fixed, *CHIP_ONLY)}

    def parameter_names(self, options):
        return self._train_fields() | {self.eval_prefix + n for n in self._eval_options()}

    def base_config(self, options: dict[str, Any]):
        """The configuration every trial starts from (file or defaults)."""
        from mosaicnet.meta.config import TrainConfig, load_config

        return load_config(options["config"]) if options.get("config") else TrainConfig()

    def split(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Parameters as (training changes, evaluation option changes)."""
        train = {k: v for k, v in params.items() if not k.startswith(self.eval_prefix)}
        n = len(self.eval_prefix)
        evaluate = {k[n:]: v for k, v in params.items() if k.startswith(self.eval_prefix)}
        return train, evaluate

    def check_parameters(self, fixed, space, options, *, source):
        # Build the configuration at every listed value and both ends of every range,
        # so a value TrainConfig rejects fails now, not in trial 37.
        base = self.base_config(options)
        train_fixed, _ = self.split(fixed)
        try:
            base = base.with_changes(**train_fixed)
        except ConfigError as error:
            raise ConfigError(f"{source}: [params]: {error}") from error
        for dimension in space:
            if dimension.name.startswith(self.eval_prefix):
                continue
            probes = (
                dimension.values
                if dimension.values is not None
                else (dimension.low, dimension.high)
            )
            for value in probes:
                try:
                    base.with_changes(**{dimension.name: value})
                except ConfigError as error:
                    where = f"{source}: space.{dimension.name} = {value!r}"
                    raise ConfigError(f"{where}: {error}") from error

    def prepare(self, options, *, progress):
        # Resolve (and, for the synthetic default, generate) the data once, in the
        # client: workers generating the same files at once would race.
        from mosaicnet.meta.run_setup import resolve_data_dir

        data = resolve_data_dir(options.get("data"), progress=progress)
        return {**options, "data": str(Path(data).resolve())}

    def run(self, options, params, trial_dir):
        from mosaicnet.meta.torch_evaluation import evaluate_on_torch
        from mosaicnet.meta.training import train

        changes, eval_kwargs = self.split(params)
        config = self.base_config(options).with_changes(**changes)
        run_dir = trial_dir / "run"
        result = train(config, run_dir, data_dir=options["data"], overwrite=True, progress=False)
        summary = evaluate_on_torch(
            run_dir, data_dir=options["data"], progress=False, **eval_kwargs
        )
        detailed = {k: summary[k] for k in ("predictions", "task_details") if k in summary}
        (trial_dir / "evaluation.json").write_text(
            json.dumps({**summary, **detailed}, indent=1, default=str), encoding="utf-8"
        )
        out = {k: v for k, v in summary.items() if k not in detailed}
        out.update({f"train_{k}": v for k, v in result.last_metrics.items()})
        return out


class Protocol(SweepTarget):
    """``protocol``: a script from ``protocols/`` with ``run(params, out_dir, quick)``.

    Options: ``protocol`` (name or path), ``quick`` (passed to ``run``) and
    ``data`` (a dataset directory, passed as ``data=`` to a ``run`` that accepts
    it, as mosaicnet's protocols do). A ``run`` that accepts ``progress`` gets
    ``progress=False``: bars from many workers would garble the terminal.
    """

    kind = "protocol"

    def validate_options(self, options, *, base_dir, source):
        unknown = sorted(set(options) - {"protocol", "quick", "data"})
        if unknown:
            raise ConfigError(
                f"{source}: target 'protocol' takes `protocol`, `quick` and `data`, got {unknown}"
            )
        name = options.get("protocol")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"{source}: target 'protocol' needs `protocol = \"NAME\"` (a script in "
                "protocols/) or a path to a .py file"
            )
        quick = options.get("quick", False)
        if not isinstance(quick, bool):
            raise ConfigError(f"{source}: [target] quick must be true or false")
        path = find_protocol(name, base_dir, source=source)
        module = load_protocol(path)
        if not callable(getattr(module, "run", None)):
            raise ConfigError(
                f"{source}: protocol {path} has no function run(params, out_dir, quick); "
                "a sweep can only run protocols that expose it"
            )
        if (
            options.get("data") is not None
            and "data" not in inspect.signature(module.run).parameters
        ):
            raise ConfigError(
                f"{source}: protocol {path.stem}'s run() takes no `data` argument; "
                "remove `data` from [target]"
            )
        data = self.data_option(options, base_dir=base_dir, source=source)
        return {"protocol": str(path), "quick": quick, "data": data}

    def parameter_names(self, options):
        declared = getattr(load_protocol(Path(options["protocol"])), "PARAMETERS", None)
        return set(declared) if isinstance(declared, dict) else None

    def run(self, options, params, trial_dir):
        module = load_protocol(Path(options["protocol"]))
        accepted = inspect.signature(module.run).parameters
        kwargs: dict[str, Any] = {}
        if "progress" in accepted:
            kwargs["progress"] = False
        if options.get("data") is not None:
            kwargs["data"] = options["data"]
        return module.run(params, trial_dir, options["quick"], **kwargs)


def find_protocol(name: str, base_dir: Path, *, source: str = "sweep file") -> Path:
    """Locate a protocol script by name or path.

    A name containing ``/`` or ending in ``.py`` is a path relative to
    ``base_dir``; a bare name is looked up as ``protocols/<name>.py`` in
    ``base_dir`` and its parents, then in the working directory.

    Raises
    ------
    ConfigError
        No such script; the message lists the protocols found.
    """
    if "/" in name or name.endswith(".py"):
        path = (base_dir / name).resolve()
        if not path.is_file():
            raise ConfigError(f"{source}: protocol file {path} does not exist")
        return path
    folders = [d / "protocols" for d in (base_dir, *base_dir.parents)]
    folders.append(Path.cwd() / "protocols")
    for folder in folders:
        if (folder / f"{name}.py").is_file():
            return (folder / f"{name}.py").resolve()
    available = sorted(
        {p.stem for f in folders if f.is_dir() for p in f.glob("*.py") if p.stem != "__init__"}
    )
    hint = f"available: {available}" if available else "no protocols/ directory was found"
    raise ConfigError(f"{source}: unknown protocol {name!r} ({hint})")


def load_protocol(path: Path):
    """Import a protocol script by path (each path once per process)."""
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:12]
    module_name = f"mosaicnet_protocol_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"protocol {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


TARGETS: dict[str, SweepTarget] = {t.kind: t for t in (TrainEvaluate(), Protocol())}


def register_target(target: SweepTarget) -> SweepTarget:
    """Make ``target`` known to sweep files under its ``kind``; returns it.

    Call it when the module defining the target is imported: the sweep imports
    that module on every worker (:mod:`mosaicnet.sweeps.worker_setup`), so the
    module must be importable there (installed, or on the workers' ``sys.path``).
    Registering a kind again replaces the earlier target (a re-run notebook cell).

    Raises
    ------
    ConfigError
        ``target`` is not a :class:`SweepTarget` or has no ``kind``.
    """
    if not isinstance(target, SweepTarget):
        raise ConfigError(
            f"register_target needs a SweepTarget instance, got {type(target).__name__}"
        )
    if not isinstance(target.kind, str) or not target.kind:
        raise ConfigError(f"{type(target).__name__}.kind must be a non-empty string")
    TARGETS[target.kind] = target
    return target


def get_target(kind: Any, *, source: str = "sweep file") -> SweepTarget:
    """The target named ``kind``; :class:`ConfigError` listing the known ones otherwise."""
    if kind not in TARGETS:
        raise ConfigError(
            f"{source}: unknown target kind {kind!r}; choose one of {list(TARGETS)} (or "
            "import the module that registers it with register_target)"
        )
    return TARGETS[kind]
