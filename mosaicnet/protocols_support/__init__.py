"""Shared pieces of the protocol scripts in ``protocols/``.

The scripts themselves hold the science (question, parameters, what is run and
plotted); these modules hold what every script repeats:

``parameters``
    Named parameters with quick/smoke variants, command-line options shared by
    all protocols (``--data``, ``--out``, ``--quick``, ``--overwrite``, ``--set``).
``output``
    The output directory: refuse to overwrite results, resume runs, atomic writes.
``runs``
    Train a configuration into a run directory, or reuse/resume the one there;
    cache evaluations next to the run they belong to.
``reporting``
    ``results.json``, Markdown tables, 95 % confidence-interval formatting.
``figures``
    Accuracy plots with confidence intervals (matplotlib, Agg, written to files).
"""
