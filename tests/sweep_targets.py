"""Sweep targets for testing the sweep machinery without training.

Importing this module registers ``synthetic-quadratic``
(:func:`mosaicnet.sweeps.objectives.register_target`). Dask workers import it
too (the sweep imports a target's module on every worker): pytest puts this
directory on ``sys.path``, and worker processes started with ``spawn``
inherit it.
"""

from __future__ import annotations

import math
import time

from mosaicnet.errors import ConfigError
from mosaicnet.sweeps.objectives import SweepTarget, register_target


class SyntheticQuadratic(SweepTarget):
    """``synthetic-quadratic``: a known optimum and a configurable cost.

    ``loss = sum_k (p_k - optimum_k)^2`` over the parameters named in the
    target's ``optimum`` table (default ``x = 1, y = -2``, so the minimum 0 lies
    at ``x = 1, y = -2``). Knobs: ``sleep_s`` (idle wait), ``busy_s`` (CPU
    seconds of pure-Python work, to measure parallel speed-up) and
    ``raise_error`` (the trial raises, to exercise failure handling).
    """

    kind = "synthetic-quadratic"
    default_objective = "loss"
    worker_imports = ()
    knobs = ("sleep_s", "busy_s", "raise_error")
    default_optimum = {"x": 1.0, "y": -2.0}

    def validate_options(self, options, *, base_dir, source):
        unknown = sorted(set(options) - {"optimum"})
        if unknown:
            raise ConfigError(
                f"{source}: target 'synthetic-quadratic' takes only `optimum`, got {unknown}"
            )
        optimum = options.get("optimum", self.default_optimum)
        if not isinstance(optimum, dict) or not optimum:
            raise ConfigError(f"{source}: [target] optimum must be a table like {{ x = 1.0 }}")
        for name, value in optimum.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or name in self.knobs:
                raise ConfigError(f"{source}: [target] optimum.{name} must be a finite number")
        return {"optimum": {k: float(v) for k, v in optimum.items()}}

    def parameter_names(self, options):
        return set(options["optimum"]) | set(self.knobs)

    def check_parameters(self, fixed, space, options, *, source):
        given = set(fixed) | {d.name for d in space}
        missing = sorted(set(options["optimum"]) - given)
        if missing:
            raise ConfigError(
                f"{source}: target 'synthetic-quadratic' needs parameter(s) {missing} in "
                "[space] or [params]"
            )

    def run(self, options, params, trial_dir):
        if params.get("raise_error"):
            raise RuntimeError("synthetic-quadratic: raise_error was set for this trial")
        busy(float(params.get("busy_s", 0.0)))
        time.sleep(float(params.get("sleep_s", 0.0)))
        optimum = options["optimum"]
        loss = sum((float(params[k]) - v) ** 2 for k, v in optimum.items())
        return {"loss": loss, "distance": math.sqrt(loss)}


def busy(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time on arithmetic (not waiting)."""
    end = time.thread_time() + seconds
    x = 0.0
    while time.thread_time() < end:
        for i in range(2000):
            x = (x + i * 1e-3) % 7.0


register_target(SyntheticQuadratic())
