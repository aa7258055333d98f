"""One network description, two simulators.

:mod:`mosaicnet.network.spec`
    The network spec: plain data (sizes, neuron parameters with units, Mosaic
    layout, device model, weights) that saves to and loads from one file.
"""

from mosaicnet.network.spec import NetworkSpec, NeuronParameters

__all__ = ["NetworkSpec", "NeuronParameters"]
