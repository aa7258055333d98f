"""Run a sweep: trials on dask.distributed, results in an Optuna study.

Engines
-------
Trials run on **dask.distributed**. By default the sweep starts a
``LocalCluster`` of worker *processes* (one thread each, so a worker runs one
trial at a time and a crash or kill takes down only that worker's trial). With
``scheduler="tcp://host:8786"`` it submits to an existing cluster instead. On a
SLURM machine, start the cluster with `dask-jobqueue
<https://jobqueue.dask.org>`_ and pass its scheduler address, e.g.::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=1, processes=1, memory="8GB", walltime="04:00:00")
    cluster.scale(jobs=16)            # 16 SLURM jobs, one worker each
    print(cluster.scheduler_address)  # -> mosaicnet sweep FILE --scheduler tcp://...

(or ``dask scheduler`` on one node and ``dask worker tcp://HOST:8786 --nthreads 1``
inside ``srun``). Workers need mosaicnet installed and must see the same paths
as the client (data, protocol scripts, the sweep's output directory) — a shared
file system on a cluster.

Results go to an **Optuna storage**: an SQLite file in the sweep's output
directory by default, or any RDB URL (``postgresql://...``, ``mysql://...``)
for a shared database. Inspect a study with Optuna's own tools, e.g.
``optuna trials --storage sqlite:///out/study.db --study-name NAME`` or
``optuna-dashboard sqlite:///out/study.db``.

Who writes the study
--------------------
Only the client process (the one running ``mosaicnet sweep``) writes to the
storage; workers return plain results. SQLite allows one writer at a time, so
letting every worker write would need lock retries; with one writer there is no
contention on SQLite, and an RDB needs no worker credentials. Trials are asked
from the sampler with Optuna's ask-and-tell interface when a worker is free, so
model-based samplers (TPE, with ``constant_liar`` for the trials in flight) see
every result finished so far.

Fault tolerance
---------------
* A finished trial is told to the storage (committed) as soon as its result
  arrives, so it survives anything that happens later.
* A worker that dies during a trial (killed, out of memory, crashed) loses that
  trial only: the local cluster's scheduler is configured with
  ``allowed-failures = 0`` so the loss surfaces at once as ``KilledWorker``; the
  trial is marked ``FAIL`` (``user_attrs["status"] = "lost"``) and retried as a
  new trial with the same parameters (``retry_of``), up to ``retries`` times,
  after which it stays failed. (An external scheduler may first re-run the task
  itself, up to its own ``distributed.scheduler.allowed-failures``.) The nanny
  restarts the dead worker.
* A trial whose own code raises is marked failed with the error and not retried
  (the same parameters would fail again).
* If the client stops (Ctrl-C, killed), re-running the same command resumes the
  study: trials it left running are marked failed (``"interrupted"`` or
  ``"orphaned"``) and re-run; finished ones are kept. ``n_trials`` counts
  finished trials, so a study can be extended by raising it.
* One client per study: the client records itself (host, pid, heartbeat) in
  the study and a second client refuses to run while the first is alive.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaicnet.errors import BackendUnavailableError, ConfigError, RunDirectoryError
from mosaicnet.sweeps.objectives import get_target, run_trial
from mosaicnet.sweeps.sweep_file import SweepSpec, storage_url

STORAGE_FILE = "study.db"
TRIALS_DIR = "trials"

#: Seconds to wait for an existing scheduler (``--scheduler``) to answer.
CONNECT_TIMEOUT_S = 10.0
#: Seconds between the client's heartbeats in the study.
HEARTBEAT_S = 15.0
#: A client on another host whose heartbeat is older than this is considered gone.
STALE_CLIENT_S = 120.0

# Why a trial failed, recorded in user_attrs["status"] of FAIL trials (with "error", and
# "final": False when the trial is to be re-run). Completed trials carry "results" (the
# target's scalar results) and "worker" (host, pid, seconds) instead.
ERROR, LOST, INTERRUPTED, ORPHANED = "error", "lost", "interrupted", "orphaned"


@dataclass
class Work:
    """A trial to start: fixed parameters (grid point or retry) or ``None`` (ask the sampler)."""

    params: dict[str, Any] | None
    attempt: int = 1
    retry_of: int | None = None


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did and where the study stands now.

    Times: ``wall_s`` is the whole call, ``cluster_start_s`` starting (or
    connecting to) the cluster, ``trials_wall_s`` from the first submitted trial to
    the last result, ``bookkeeping_s`` the part of it the client spent on the
    study (ask, tell, attributes), and ``trial_seconds`` each trial's own wall time
    on its worker.
    """

    study_name: str
    storage: str
    out_dir: Path
    n_trials: int
    complete: int = 0
    failed: int = 0
    started: int = 0
    retried: int = 0
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    wall_s: float = 0.0
    cluster_start_s: float = 0.0
    trials_wall_s: float = 0.0
    bookkeeping_s: float = 0.0
    trial_seconds: list[float] = field(default_factory=list)
    report: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether every requested trial has finished (completed or finally failed)."""
        return self.complete + self.failed >= self.n_trials


# ----------------------------------------------------------------------------- study
def default_storage(out_dir: Path) -> str:
    """The SQLite URL of a sweep's default storage file."""
    return storage_url(STORAGE_FILE, out_dir)


def make_sampler(spec: SweepSpec):
    """The Optuna sampler named by the sweep file, seeded."""
    import optuna

    if spec.sampler in ("grid", "random"):
        # A grid runs every point as an enqueued trial with all parameters fixed (see
        # plan()), so the sampler is never consulted. Optuna's GridSampler is not used:
        # it tracks points through its own system attributes, which enqueued trials
        # lack (its after_trial fails on them once one point is left).
        return optuna.samplers.RandomSampler(seed=spec.sampler_seed)
    if spec.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=spec.sampler_seed, warn_independent_sampling=False)
    # constant_liar: trials in flight count as bad results, so parallel asks spread out.
    return optuna.samplers.TPESampler(seed=spec.sampler_seed, constant_liar=True)


def open_storage(url: str):
    """The Optuna RDB storage at ``url`` (an SQLite file's directory is created).

    Raises
    ------
    BackendUnavailableError
        The storage cannot be opened.
    """
    import optuna
    import sqlalchemy.exc

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise BackendUnavailableError(
            f"cannot open the Optuna storage {url!r} ({type(error).__name__}: {error}); "
            "check the URL, the database server and its Python driver"
        ) from error


def open_study(spec: SweepSpec, url: str):
    """Create the study, or load it and check that it belongs to this sweep.

    Returns
    -------
    (optuna.Study, optuna.storages.RDBStorage)
        The study and the storage it lives in (:func:`plan` writes through it).

    Raises
    ------
    ConfigError
        The stored study was made from a different sweep (target, space, fixed
        parameters, objective, direction or sampler differ), or not by
        ``mosaicnet sweep`` at all.
    BackendUnavailableError
        The storage cannot be opened.
    """
    import optuna

    storage = open_storage(url)
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec),
        direction=spec.direction,
        load_if_exists=True,
    )
    identity = json.loads(json.dumps(spec.identity()))
    stored = study.user_attrs.get("sweep")
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise ConfigError(
                f"study {spec.name!r} in {url} already has trials but was not created by "
                "`mosaicnet sweep`; choose another study name"
            )
        study.set_user_attr("sweep", identity)
        study.set_user_attr("source", spec.source)
    elif stored != identity:
        differing = sorted(k for k in identity if stored.get(k) != identity[k])
        raise ConfigError(
            f"study {spec.name!r} in {url} was created from a different sweep (differs "
            f"in: {', '.join(differing)}); resume it with its original sweep file, or give "
            "this one another [study] name or out_dir"
        )
    if study.direction.name.lower() != spec.direction:
        raise ConfigError(
            f"study {spec.name!r} in {url} is to {study.direction.name.lower()}, the sweep "
            f"file says {spec.direction}"
        )
    return study, storage


def _claim_study(study) -> dict[str, Any]:
    """Record this process as the study's client; refuse if another live client holds it."""
    mine = _client_record()
    other = study.user_attrs.get("client")
    if other and (other.get("host"), other.get("pid")) != (mine["host"], mine["pid"]):
        if other.get("host") == mine["host"]:
            alive = _process_alive(int(other["pid"]), other.get("create_time"))
        else:
            alive = time.time() - float(other.get("heartbeat", 0)) < STALE_CLIENT_S
        if alive:
            raise RunDirectoryError(
                f"study {study.study_name!r} is being run by another `mosaicnet sweep` "
                f"(host {other['host']}, pid {other['pid']}); wait for it to finish or stop "
                "it, then run this command again to resume"
            )
    study.set_user_attr("client", mine)
    return mine


# psutil is a dependency of the dist extra (and of dask.distributed).
def _client_record() -> dict[str, Any]:
    import psutil

    return {
        "host": socket.gethostname(), "pid": os.getpid(),
        "create_time": psutil.Process().create_time(), "heartbeat": time.time(),
    }  # fmt: skip


def _process_alive(pid: int, create_time: float | None) -> bool:
    import psutil

    try:
        return create_time is None or abs(psutil.Process(pid).create_time() - create_time) < 1e-3
    except psutil.Error:
        return False


# ----------------------------------------------------------------------------- planning
def _param_key(params: dict[str, Any]) -> str:
    # Optuna returns ints for int distributions and floats for float ones; grid points
    # are built the same way, but 1 and 1.0 must still meet.
    norm = {
        k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for k, v in params.items()
    }
    return json.dumps(norm, sort_keys=True)


def _fail(study, trial, status: str, final: bool, **attrs) -> None:
    """Mark an asked, still running trial failed with its status (attributes first:
    a finished trial can no longer be changed)."""
    from optuna.trial import TrialState

    for key, value in {"status": status, "final": final, **attrs}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, state=TrialState.FAIL)


def plan(study, storage, spec: SweepSpec, n_trials: int) -> tuple[deque[Work], int, int]:
    """Work still to do for ``n_trials`` finished trials.

    Trials left RUNNING by a client that stopped are marked failed
    (``orphaned``) first; ``storage`` is the study's, through which their
    attributes are written (Optuna gives no live trial object for them).
    Returns ``(queue, fresh, done)``: fixed-parameter work (retries first, then
    unrun grid points), the number of trials to ask from the sampler, and the
    number of trials already finished.
    """
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if orphans:
        study_id = storage.get_study_id_from_name(study.study_name)
    for orphan in orphans:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, orphan.number)
        attrs = {
            "status": ORPHANED, "final": False,
            "error": "the sweep client stopped before this trial finished; re-run",
        }  # fmt: skip
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        study.tell(orphan.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials} - {None}
    finished_keys = set()
    done = 0
    retries: list[Work] = []
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            done += 1
            finished_keys.add(_param_key(trial.params))
        elif trial.state == TrialState.FAIL:
            if trial.user_attrs.get("final", True):
                done += 1
                finished_keys.add(_param_key(trial.params))
            elif trial.number not in retried:
                status = trial.user_attrs.get("status")
                attempt = int(trial.user_attrs.get("attempt", 1)) + (status == LOST)
                retries.append(Work(dict(trial.params), attempt, trial.number))
    need = max(n_trials - done, 0)
    queue: deque[Work] = deque(retries[:need])
    if spec.sampler == "grid":
        pending = {_param_key(w.params) for w in queue}
        for point in spec.grid():
            if len(queue) >= need:
                break
            key = _param_key(point)
            if key not in finished_keys and key not in pending:
                queue.append(Work(point))
                pending.add(key)
        return queue, 0, done
    return queue, need - len(queue), done


# ----------------------------------------------------------------------------- cluster
@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A dask.distributed client: of a new LocalCluster, or of ``scheduler``."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as error:
            raise BackendUnavailableError(
                f"cannot reach the Dask scheduler at {scheduler} ({error}); start one with "
                "`dask scheduler` (or dask-jobqueue on SLURM) and pass its tcp:// address"
            ) from error
        with client:
            yield client
        return
    settings = {
        # A worker death surfaces at once as KilledWorker; the runner retries the
        # trial itself and records the failure in the study (module docstring).
        "distributed.scheduler.allowed-failures": 0,
    }
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never clash with another cluster
            silence_logs=logging.CRITICAL,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


def _capacity(client, local_workers: int | None) -> int:
    """How many trials to keep in flight: one per worker thread.

    Never more: Dask's scheduler queues only large groups of root tasks, so an
    extra trial would be sent to a busy worker and a kill of that worker would
    lose both. The price is that a worker idles while the client records its
    result and asks the sampler for the next trial (the benchmark's "scheduler
    overhead per trial").
    """
    if local_workers is not None:
        return local_workers
    return max(1, sum(client.nthreads().values()))


# ----------------------------------------------------------------------------- the sweep
def run_sweep(
    spec: SweepSpec,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    storage: str | None = None,
    n_trials: int | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    report: bool = True,
) -> SweepOutcome:
    """Run (or resume) the sweep ``spec`` until ``n_trials`` trials have finished.

    Parameters
    ----------
    spec
        A validated sweep (:func:`mosaicnet.sweeps.sweep_file.load_sweep`).
    scheduler
        Address of an existing Dask scheduler; ``None`` starts a LocalCluster.
    workers
        Worker processes of the LocalCluster (ignored with ``scheduler``).
    storage
        Optuna storage URL or SQLite file path; default: the sweep file's, else
        ``<out_dir>/study.db``.
    n_trials
        Override the sweep file's number of trials.
    out_dir
        Override the output directory (trial directories, plots, tables).
    progress
        Show a tqdm progress bar over trials.
    report
        Write parameter importances, plots and the trials table afterwards
        (:func:`mosaicnet.sweeps.report.write_report`).

    Notes
    -----
    The LocalCluster starts its workers with ``multiprocessing``'s spawn method,
    which re-imports the calling script: a script that calls ``run_sweep`` must
    do so under ``if __name__ == "__main__":``.
    """
    import optuna
    from tqdm.auto import tqdm

    started = time.perf_counter()
    out = Path(out_dir).resolve() if out_dir is not None else spec.out_dir
    url = storage_url(storage) if storage else (spec.storage or default_storage(out))
    total = spec.n_trials if n_trials is None else int(n_trials)
    if scheduler is None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if total < 1:
        raise ConfigError(f"n_trials must be >= 1, got {total}")
    if spec.sampler == "grid" and total > len(spec.grid()):
        raise ConfigError(f"n_trials={total} exceeds the grid's {len(spec.grid())} points")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    target = get_target(spec.target.kind)
    study, storage = open_study(spec, url)
    client_record = _claim_study(study)
    outcome = SweepOutcome(spec.name, url, out, total)
    try:
        queue, fresh, done = plan(study, storage, spec, total)
        if queue or fresh:
            options = target.prepare(spec.target.options, progress=progress)
            cluster_started = time.perf_counter()
            with dask_client(scheduler, workers) as client:
                from mosaicnet.sweeps.worker_setup import WorkerSetup

                # The target's own module registers it on the workers (register_target).
                plugin = WorkerSetup((*target.worker_imports, type(target).__module__))
                client.register_plugin(plugin, name="mosaicnet-worker-setup")
                outcome.cluster_start_s = time.perf_counter() - cluster_started
                bar = tqdm(
                    total=total, initial=done, disable=not progress, desc=f"sweep {spec.name}",
                    unit="trial",
                )  # fmt: skip
                with bar:
                    _drive(
                        study, spec, client, options, queue, fresh, out, outcome, bar,
                        client_record, None if scheduler else workers,
                    )  # fmt: skip
    finally:
        study.set_user_attr("client", None)
    _fill_counts(study, outcome)
    if report:
        from mosaicnet.sweeps.report import write_report

        outcome.report = write_report(study, out, objective=spec.objective)
    outcome.wall_s = time.perf_counter() - started
    return outcome


def _drive(
    study, spec, client, options, queue, fresh, out, outcome, bar, client_record, local_workers
) -> None:
    """Keep every worker busy until the queue and the fresh asks are used up.

    One trial is kept asked-but-not-submitted ("ready") while workers are busy, so
    that a worker that finishes gets its next trial at once: the client submits
    the ready trial first and only then records the finished one in the study and
    asks the sampler for the next. A ready trial is RUNNING in the study; if the
    client stops, the next run re-runs it like any orphaned trial.
    """
    from concurrent.futures import CancelledError

    from distributed import wait
    from optuna.trial import TrialState

    distributions = spec.distributions()
    inflight: dict[Any, tuple[Any, Work]] = {}  # future -> (optuna Trial, work)
    ready: deque[tuple[Any, Work]] = deque()  # asked in the study, not yet submitted
    last_beat = time.time()

    def ask() -> None:
        nonlocal fresh
        begun = time.perf_counter()
        if queue:
            work = queue.popleft()
            attrs = {"attempt": work.attempt}
            if work.retry_of is not None:
                attrs["retry_of"] = work.retry_of
            study.enqueue_trial(work.params, user_attrs=attrs, skip_if_exists=False)
        else:
            fresh -= 1
            work = Work(None)
        # A trial without "attempt" is a first attempt: one write fewer per trial.
        trial = study.ask(distributions)
        trial.set_user_attr("trial_dir", str(out / TRIALS_DIR / f"{trial.number:05d}"))
        ready.append((trial, work))
        outcome.bookkeeping_s += time.perf_counter() - begun

    def submit() -> None:
        trial, work = ready.popleft()
        future = client.submit(
            run_trial, spec.target.kind, options, {**spec.fixed, **trial.params},
            trial.user_attrs["trial_dir"],
            key=f"{spec.name}-trial-{trial.number}-{uuid.uuid4().hex[:8]}",
            pure=False, retries=0,
        )  # fmt: skip
        inflight[future] = (trial, work)
        outcome.started += 1

    finished: list[tuple[Any, Any, Work]] = []  # results not yet recorded
    begun = time.perf_counter()
    try:
        while queue or fresh or ready or inflight:
            capacity = _capacity(client, local_workers)
            while len(inflight) < capacity and (ready or queue or fresh):
                if not ready:
                    ask()
                submit()
            if not ready and (queue or fresh):
                ask()  # the spare, prepared while the workers are busy
            try:
                wait(list(inflight), timeout=HEARTBEAT_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            except CancelledError:
                pass  # handled below as lost trials
            if time.time() - last_beat > HEARTBEAT_S:
                client_record["heartbeat"] = last_beat = time.time()
                study.set_user_attr("client", client_record)
            finished = [(f, *inflight.pop(f)) for f in list(inflight) if f.status != "pending"]
            while ready and len(inflight) < capacity:
                submit()  # before recording: the freed worker must not wait for the study
            while finished:
                future, trial, work = finished[0]
                recorded = time.perf_counter()
                retry = _record(study, spec, trial, work, future, out, outcome)
                outcome.bookkeeping_s += time.perf_counter() - recorded
                finished.pop(0)
                if retry is not None:
                    queue.appendleft(retry)
                else:
                    bar.update(1)
        outcome.trials_wall_s = time.perf_counter() - begun
    except BaseException:
        # Ctrl-C, a lost scheduler or a bad objective key: stop the trials in flight
        # and leave them failed-but-retryable, so the next run re-does them.
        pending = [(f, t) for f, (t, _w) in inflight.items()] + [(None, t) for t, _w in ready]
        pending += [(None, t) for _f, t, _w in finished]
        for future, _trial in pending:
            if future is not None:
                future.cancel()
        # Trials recorded before the stop (e.g. the one that lacked the objective) stay.
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        still_running = {t.number for t in running}
        for _future, trial in pending:
            if trial.number in still_running:
                _fail(
                    study, trial, INTERRUPTED, False,
                    error="the sweep stopped before this trial finished; re-run to resume",
                )  # fmt: skip
        raise


def _record(study, spec, trial, work: Work, future, out: Path, outcome: SweepOutcome):
    """Tell the study how a trial ended; return the retry to run, if any."""
    from distributed import KilledWorker
    from optuna.trial import TrialState

    status = future.status
    if status == "finished":
        payload = future.result()
        results = payload["results"]
        outcome.trial_seconds.append(float(payload["seconds"]))
        # Two attributes, not one per result: every attribute is a database transaction.
        trial.set_user_attr("results", results)
        worker = {k: payload[k] for k in ("host", "pid", "seconds")}
        trial.set_user_attr("worker", worker)
        if spec.objective not in results:
            _fail(
                study, trial, ERROR, True,
                error=f"objective {spec.objective!r} missing from the results",
            )  # fmt: skip
            raise ConfigError(
                f"{spec.source}: the objective {spec.objective!r} is not among the results "
                f"of target {spec.target.kind!r}: {sorted(results)}; set [study] objective"
            )
        value = results[spec.objective]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            _fail(
                study, trial, ERROR, True,
                error=f"objective {spec.objective} is {value!r}, not a finite number",
            )  # fmt: skip
            return None
        study.tell(trial, float(value), state=TrialState.COMPLETE)
        return None
    error = future.exception() if status == "error" else None
    if status == "cancelled" or isinstance(error, KilledWorker):
        final = work.attempt > spec.retries
        detail = (
            "the worker running this trial died (killed, out of memory or crashed)"
            if error is not None
            else "the trial was cancelled (scheduler or worker lost)"
        )
        _fail(
            study, trial, LOST, final,
            error=detail + ("; retries exhausted" if final else "; retried"),
        )  # fmt: skip
        if final:
            return None
        return Work(dict(trial.params), work.attempt + 1, trial.number)
    text = "".join(traceback.format_exception(type(error), error, future.traceback()))
    trial_dir = out / TRIALS_DIR / f"{trial.number:05d}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "error.txt").write_text(text, encoding="utf-8")
    _fail(
        study, trial, ERROR, True,
        error=f"{type(error).__name__}: {error}"[:2000],
    )  # fmt: skip
    return None


def _fill_counts(study, outcome: SweepOutcome) -> None:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    outcome.complete = len(complete)
    outcome.failed = sum(1 for t in failed if t.user_attrs.get("final", True))
    outcome.retried = sum(1 for t in trials if "retry_of" in t.user_attrs)
    if complete:
        best = study.best_trial
        outcome.best_value = best.value
        outcome.best_params = dict(best.params)


def show_report(
    spec: SweepSpec, *, storage: str | None = None, out_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Write the report of a stored study without running trials.

    Raises
    ------
    RunDirectoryError
        The storage holds no study of this name.
    """
    import optuna

    from mosaicnet.sweeps.report import write_report

    out = Path(out_dir).resolve() if out_dir is not None else spec.out_dir
    url = storage_url(storage) if storage else (spec.storage or default_storage(out))
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise RunDirectoryError(
            f"no study database at {url}; run `mosaicnet sweep {spec.source}` first"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.name not in optuna.get_all_study_names(storage=url):
        raise RunDirectoryError(
            f"{url} holds no study named {spec.name!r}; run `mosaicnet sweep {spec.source}` first"
        )
    study, _ = open_study(spec, url)
    return write_report(study, out, objective=spec.objective)
