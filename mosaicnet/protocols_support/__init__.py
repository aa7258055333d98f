"""Helpers for the protocol scripts in ``protocols/``.

The scripts hold the science and run it top to bottom (parameters, train or
resume each network, evaluate, plot, write the table); these modules hold the
pieces they would otherwise repeat, as functions a script calls:

``parameters``
    A script's UPPERCASE constants as its parameters (:func:`parameters_of`),
    the ``--quick``/``--smoke`` changes and ``--set`` applied and reported,
    checks shared by all protocols, the training configuration built from the
    shared parameters, the command line (``main(argv)``).
``output``
    The output folder, named after the script's file: refuse to overwrite
    results, resume runs; the start of every ``run()`` (:func:`start_run`:
    parameters, checks and data before the folder is touched).
``runs``
    Train a configuration into a run directory, or reuse/resume the one there;
    cache evaluations next to the run they belong to.
``evaluation``, ``recordings``
    Meta-test a run on the torch clone or chip in the loop on Brian2; record
    test samples in Brian2.
``reporting``
    ``results.json``, Markdown tables, 95 % confidence-interval formatting.
``figures``
    Accuracy plots with confidence intervals (matplotlib, Agg, written to files).
``hardware_costs``
    Memristors, synapses by hop class and hops per spike of a network.
"""
