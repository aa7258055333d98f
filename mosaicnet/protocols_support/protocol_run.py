"""The start and the end every protocol run shares: parameters and output in, results out.

A protocol script's ``run`` is the science between two fixed steps:

1. :func:`start_protocol`: resolve the parameters (defaults, the ``--quick`` or
   ``--smoke`` changes, the caller's overrides), prepare the output directory
   (refuse to overwrite results, resume an interrupted run; see
   :mod:`mosaicnet.protocols_support.output`) and find the dataset;
2. :meth:`ProtocolRun.finish`: put the protocol's findings between the keys every
   ``results.json`` has, write ``results.json`` and ``results.md`` and print the
   tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosaicnet.protocols_support import reporting


@dataclass
class ProtocolRun:
    """One run of a protocol: what it runs with and where it writes."""

    protocol: str  # the script's name, stored as ``results.json``'s "protocol"
    question: str
    parameters: dict[str, Any]  # resolved
    setting: str  # "full", "quick" or "smoke"
    out: Path
    data_dir: Path
    started: float = field(default_factory=time.perf_counter)

    def finish(
        self,
        findings: Mapping[str, Any],
        *,
        figures: Mapping[str, Path],
        report: Callable[[dict[str, Any]], str],
        timing: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Write ``results.json`` and ``results.md``, print the report; return the results.

        Parameters
        ----------
        findings
            The protocol's own top-level keys of ``results.json`` (in order); they
            stand between the shared ``protocol``, ``question``, ``setting``,
            ``parameters``, ``data`` and the shared ``figures``, ``timing_s``.
        figures
            Figure name -> written file (stored relative to the output directory).
        report
            The protocol's ``markdown_report``: results dict -> Markdown text.
        timing
            Seconds spent in the protocol's phases; the total wall time since
            :func:`start_protocol` is added as ``"total"``.
        """
        results = {
            "protocol": self.protocol, "question": self.question, "setting": self.setting,
            "parameters": self.parameters, "data": str(self.data_dir), **findings,
            "figures": reporting.relative_paths(figures, self.out),
            "timing_s": {**(timing or {}), "total": time.perf_counter() - self.started},
        }  # fmt: skip
        text = report(results)
        reporting.write_markdown(self.out, text)
        reporting.write_results(self.out, results)
        print(text)
        return results

    def print_locations(self, figures: Mapping[str, Path]) -> None:
        """One line saying where ``results.json`` and the figures are."""
        label = "figure" if len(figures) == 1 else "figures"
        print(
            f"results: {self.out / reporting.RESULTS_JSON}; "
            f"{label}: {', '.join(map(str, figures.values()))}"
        )


def start_protocol(
    protocol: str, *, question: str, defaults: Mapping[str, Any],
    quick_changes: Mapping[str, Any], smoke_changes: Mapping[str, Any],
    params: Mapping[str, Any] | None, out_dir: str | Path, quick: bool, smoke: bool = False,
    data: str | Path | None = None, overwrite: bool = False, progress: bool = True,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> ProtocolRun:  # fmt: skip
    """Resolve the parameters, prepare the output directory and find the data of a run.

    Parameters
    ----------
    protocol
        The script's name (``"drift"``); recorded in the output directory so that
        only a run of the same protocol resumes there.
    question
        The scientific question, stored in ``results.json``.
    defaults, quick_changes, smoke_changes
        The script's ``PARAMETERS``, ``QUICK`` and ``SMOKE``.
    params, out_dir, quick, smoke, data, overwrite, progress
        The arguments of the script's ``run`` (see ``protocols/README.md``).
    check
        Called with the resolved parameters before anything is written; raises
        (:class:`~mosaicnet.errors.ConfigError`) for a combination the protocol
        cannot run, so that a refused run leaves no output directory behind.

    Raises
    ------
    ConfigError
        Unknown or ill-typed parameters, or refused by ``check``.
    RunDirectoryError
        ``out_dir`` holds results, or an unfinished run with other settings.
    """
    from mosaicnet.meta.run_setup import resolve_data_dir
    from mosaicnet.protocols_support.output import prepare_output_dir
    from mosaicnet.protocols_support.parameters import resolve_parameters

    started = time.perf_counter()
    p = resolve_parameters(
        defaults, params=params, quick=quick, smoke=smoke, quick_changes=quick_changes,
        smoke_changes=smoke_changes,
    )  # fmt: skip
    # Everything is validated, and the data found, before the output directory is
    # touched: a typo must not cost earlier results (--overwrite) or block the
    # corrected rerun (a refused setting recorded in protocol.json).
    validate_shared_parameters(p)
    if check is not None:
        check(p)
    data_dir = resolve_data_dir(data, progress=progress)
    setting = "smoke" if smoke else "quick" if quick else "full"
    out = prepare_output_dir(
        out_dir, protocol=protocol, parameters={**p, "setting": setting},
        data=None if data is None else str(data), overwrite=overwrite,
    )  # fmt: skip
    return ProtocolRun(protocol, question, p, setting, out, data_dir, started)


#: Parameters every protocol maps onto TrainConfig (see train_config_from_parameters).
_TRAINING_PARAMETERS = (
    "SEED", "ITERATIONS", "META_BATCH", "N_WAY", "K_SHOT", "N_QUERY", "MOSAIC_ROWS",
    "MOSAIC_COLS", "NEURONS_PER_TILE", "DEVICE_MODEL",
)  # fmt: skip


def validate_shared_parameters(p: Mapping[str, Any]) -> None:
    """Check the parameters protocols share; raise :class:`ConfigError` naming the bad one.

    The training parameters (through the :class:`~mosaicnet.meta.config.TrainConfig`
    they make, neuron model included), read times, task counts, the device preset
    and the Brian2 backend.
    """
    from mosaicnet.errors import ConfigError
    from mosaicnet.meta.read_time import parse_read_time, parse_read_times
    from mosaicnet.network.brian_backends import check_backend
    from mosaicnet.protocols_support.parameters import train_config_from_parameters

    if all(name in p for name in _TRAINING_PARAMETERS):
        try:
            train_config_from_parameters(p)
        except ConfigError as error:
            raise ConfigError(f"protocol parameters: {error}") from None
        if p["DEVICE_MODEL"] is not None:
            from mosaicnet.devices import get_device_model

            get_device_model(p["DEVICE_MODEL"])
    if "READ_TIME_S" in p:
        parse_read_time(p["READ_TIME_S"])
    if "READ_TIMES_S" in p:
        parse_read_times(p["READ_TIMES_S"])
    for name in ("EVAL_TASKS", "RASTER_SAMPLES", "N_TRIALS"):
        value = p.get(name)
        if name in p and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"protocol parameter {name} must be an integer >= 1, got {value!r}")
    if "BRIAN_DEVICE" in p:
        check_backend(p["BRIAN_DEVICE"])
