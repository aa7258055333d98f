"""Shared pieces of the protocol scripts in ``protocols/``.

The scripts themselves hold the science (question, parameters, what is run and
plotted); these modules hold what every script repeats:

``protocol_run``
    The start of a protocol's ``run`` (parameters resolved, output directory
    prepared, data found) and its end (``results.json``, ``results.md``, printed
    tables).
``parameters``
    Named parameters with quick/smoke variants, the training configuration built
    from the parameters every protocol shares, command-line options shared by
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
