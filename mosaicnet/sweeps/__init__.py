"""Hyperparameter and seed sweeps on dask.distributed, recorded in an Optuna study.

``mosaicnet sweep SWEEP_FILE`` runs the trials a sweep file describes (a
protocol script, ``train+evaluate``, or a target added with ``register_target``)
over a grid or an Optuna sampler, on a Dask ``LocalCluster`` of worker
processes or an existing cluster (``--scheduler``; SLURM through dask-jobqueue),
stores every trial in an Optuna storage (SQLite file by default, any RDB URL),
resumes when run again, and writes fANOVA importances and Optuna's plots.

Modules
-------
``sweep_file``
    Reading and validating sweep files (TOML or JSON): :func:`load_sweep`.
``objectives``
    What a trial runs on a worker (:func:`run_trial`), the targets and
    :func:`register_target` for more.
``runner``
    The sweep loop: cluster, study, fault tolerance, resume (:func:`run_sweep`).
``importance``
    fANOVA parameter importance and Optuna's plots as files.
``report``
    The trials table and summary written after a sweep.
``worker_setup``
    The Dask worker plugin: imports Brian2 and the target's module in each
    worker's main thread and removes build directories left by killed workers.

Needs the ``dist`` extra (``pip install mosaicnet[dist]``: dask[distributed],
optuna, scikit-learn for fANOVA). Nothing heavy is imported with this package.
"""
