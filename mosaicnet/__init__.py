"""mosaicnet: hardware-aware few-shot learning with spiking networks on the Mosaic.

The package is organised by concern:

``mosaicnet.data``
    Spiking Heidelberg Digits (SHD) reader, binning, spatial-sampling views,
    download, the synthetic default dataset and few-shot task sampling.
``mosaicnet.layout``
    The Mosaic: tiles, routing hops, layout cost, connectivity and metrics.
``mosaicnet.devices``
    Memristor device models (conductance pairs, programming noise, drift).
``mosaicnet.network``
    One network spec, the Brian2 network, the torch surrogate clone and sync.
``mosaicnet.meta``
    MAML meta-training and chip-in-the-loop evaluation.
``mosaicnet.cli``
    The ``mosaicnet`` command.
"""

__version__ = "0.1.0"


def _keep_an_ignored_or_default_sigint() -> None:
    """Keep the process's own SIGINT disposition when it is not a Python handler.

    Brian2 installs its SIGINT handler on import and calls the previous one for
    an interrupt outside a run; a process started with SIGINT ignored (``nohup``,
    background jobs) would then stop ignoring it and fail with a TypeError inside
    Brian2's handler (``SIG_IGN`` is not callable). Importing Brian2 here and
    putting the disposition back keeps what the parent asked for.
    """
    import signal

    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, signal.SIG_DFL):
        import brian2  # noqa: F401  (its import replaces the handler)

        signal.signal(signal.SIGINT, previous)


_keep_an_ignored_or_default_sigint()
