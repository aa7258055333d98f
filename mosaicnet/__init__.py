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
