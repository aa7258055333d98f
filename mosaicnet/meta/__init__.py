"""Meta-learning: hardware-aware MAML on the torch clone, and few-shot evaluation.

Modules
-------
``config``
    :class:`TrainConfig`, every hyperparameter of a run, saved as JSON.
``losses``
    The published loss terms (cross-entropy on max-over-time logits, firing-rate
    term, L2) as pure torch functions.
``maml``
    MAML as pure functions (inner loop, outer loss, tasks batched with vmap) and
    the readout-only fast path; :func:`adapt_readout` and :func:`predict` work on
    traces recorded from any simulator.
``adam``
    The outer-loop Adam as a pure function with named-tensor state.
``hardware``
    Device-model weight perturbation for hardware-aware training.
``training``
    The training loop: checkpoints, resume, metrics log.
``run_directory``
    The files of a run (:class:`RunDirectory`), read by evaluation and simulation.
``run_setup``
    What a run is built from: data folder, few-shot tasks, network, torch clone, seeds.
``evaluation_options``
    :class:`EvaluationOptions`, the options (and their defaults) of every
    few-shot meta-test, torch or chip.
``torch_evaluation``
    Few-shot meta-test in torch with confidence intervals.
``chip_evaluation``
    Few-shot meta-test with the Brian2 chip in the loop, at read times after
    programming.

Heavy dependencies (torch) load when a submodule is imported, not with this package.
"""
