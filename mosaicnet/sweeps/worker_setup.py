"""Set-up run once in every Dask worker process before it runs trials.

* Brian2 installs a SIGINT handler when it is imported, and Python allows that
  only in a process's main thread; Dask runs tasks in a thread pool, so a trial
  that imports Brian2 first would fail with "signal only works in main thread".
  :class:`WorkerSetup` imports such modules in the worker's main thread (where
  Dask runs worker plugins).
  The module defining the sweep's target is imported the same way: importing it
  registers the target there (:func:`mosaicnet.sweeps.objectives.register_target`).
* A worker killed mid-trial leaves its trial's build directory on the RAM disk;
  the set-up of the worker the nanny starts in its place removes the build
  directories of dead processes
  (:func:`mosaicnet.sweeps.objectives.remove_stale_builds`).

Plugins registered by the client also run on workers that join or restart later.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from distributed.diagnostics.plugin import WorkerPlugin


class WorkerSetup(WorkerPlugin):
    """Import ``modules`` (those installed) and remove stale build directories."""

    def __init__(self, modules: tuple[str, ...] = ()) -> None:
        self.modules = tuple(modules)

    def setup(self, worker) -> None:
        """Dask's hook, run in the worker's main thread when the plugin is registered."""
        from mosaicnet.sweeps.objectives import remove_stale_builds

        remove_stale_builds()
        for name in self.modules:
            # In sys.modules: find_spec would fail on a __main__ without a spec.
            if name in sys.modules or importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
