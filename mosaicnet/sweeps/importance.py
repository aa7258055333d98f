"""Parameter importance (fANOVA) and Optuna's plots of a study, written to files.

fANOVA (Hutter, Hoos and Leyton-Brown, "An Efficient Approach for Assessing
Hyperparameter Importance", ICML 2014) fits a random forest to the objective as
a function of the parameters and attributes its variance to each parameter;
Optuna's :class:`~optuna.importance.FanovaImportanceEvaluator` implements it
(it needs scikit-learn). This is the analysis behind the talk's "importance of
the inner and outer learning rates" panel (Raghunathan et al., NICE 2024).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

#: Optuna's matplotlib plots written by :func:`write_plots` (file stem -> function name).
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "slice": "plot_slice",
    "parallel_coordinate": "plot_parallel_coordinate",
    "contour": "plot_contour",
    "edf": "plot_edf",
    "timeline": "plot_timeline",
}

#: Trees of the fANOVA random forest (Optuna's default is 64).
FANOVA_TREES = 64


def varying_parameters(study) -> list[str]:
    """Parameters that take more than one value among the completed trials."""
    from optuna.trial import TrialState

    values: dict[str, set[str]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(json.dumps(value))
    return sorted(name for name, seen in values.items() if len(seen) > 1)


def parameter_importances(study, *, seed: int = 0) -> tuple[dict[str, float] | None, str]:
    """fANOVA importances (fractions summing to 1), or ``None`` and why not.

    Importance needs at least two completed trials, a parameter that varies
    among them, and an objective that is not constant.
    """
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, f"{len(complete)} completed trial(s); importance needs at least 2"
    if not varying_parameters(study):
        return None, "no parameter varies among the completed trials"
    if len({t.value for t in complete}) < 2:
        return None, "the objective has the same value in every completed trial"
    importances = optuna.importance.get_param_importances(study, evaluator=_evaluator(seed))
    return {k: float(v) for k, v in importances.items()}, "fANOVA"


def write_plots(
    study, out_dir: Path, *, with_importance: bool, objective: str = "Objective Value"
) -> dict[str, str]:
    """Write Optuna's matplotlib plots of ``study`` as PNG files in ``out_dir``.

    Plots that do not apply are skipped: the contour plot needs two varying
    parameters, the importance plot needs importances, and every plot needs a
    completed trial. Returns plot name -> file path.
    """
    # Optuna's plots draw through pyplot: its figures are closed after saving, and
    # pyplot's backend (matplotlib picks Agg without a display) is left as it is.
    import matplotlib.pyplot as plt
    import numpy as np
    import optuna.visualization.matplotlib as ovm
    from optuna.exceptions import ExperimentalWarning

    out_dir.mkdir(parents=True, exist_ok=True)
    varying = varying_parameters(study)
    skip = set()
    if not with_importance:
        skip.add("param_importances")
    if len(varying) < 2:
        skip.add("contour")
    written: dict[str, str] = {}
    for stem, function in PLOTS.items():
        if stem in skip:
            continue
        kwargs: dict[str, Any] = {}
        if stem in ("contour", "slice", "parallel_coordinate") and varying:
            kwargs["params"] = varying
        if stem == "param_importances":
            kwargs["evaluator"] = _evaluator()
        if stem != "timeline":
            kwargs["target_name"] = objective  # label axes with the objective's name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            axes = getattr(ovm, function)(study, **kwargs)
        figure = np.ravel(axes)[0].figure
        path = out_dir / f"{stem}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written[stem] = str(path)
    return written


def _evaluator(seed: int = 0):
    import optuna

    return optuna.importance.FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=seed)
