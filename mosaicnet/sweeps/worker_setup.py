"""Set-up run once in every Dask worker process before it runs trials.

Brian2 installs a SIGINT handler when it is imported, and Python allows that only
in a process's main thread; Dask runs tasks in a thread pool, so a trial that
imports Brian2 first would fail with "signal only works in main thread".
:class:`ImportOnWorkers` imports such modules in the worker's main thread
(where Dask runs worker plugins) when the worker starts, including workers the
nanny restarts after a crash.
"""

from __future__ import annotations

import importlib
import importlib.util

from distributed.diagnostics.plugin import WorkerPlugin


class ImportOnWorkers(WorkerPlugin):
    """Import ``modules`` (those installed) in each worker's main thread at start-up."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self.modules = tuple(modules)

    def setup(self, worker) -> None:  # noqa: D401 - Dask's hook name
        for name in self.modules:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
