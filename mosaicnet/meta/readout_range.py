"""The conductance range of the chip's readout, shared by the chip and the torch evaluation.

On the chip a readout weight is a differential pair with weight scale
``w_scale = readout_headroom * max |w_out|``
(:func:`mosaicnet.network.chip_programming.program_chip`): a few-shot update
beyond it saturates the pair. The torch evaluation clips its
adapted readout to the same range, so that an ideal, noise-free chip and torch
compute the same function and give the same predictions task by task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the chip side imports this module and must not load torch
    import torch

#: Readout weight scale over ``max |w_out|``: room for the few-shot updates. With one
#: inner step at the published rate (1.0) the adapted readouts of a trained tiny run
#: reached 1.5x the trained ``max |w_out|``; 2x leaves margin without spending much
#: more of the conductance range (programming noise is a fixed fraction of it).
DEFAULT_READOUT_HEADROOM = 2.0
#: The same with the prototype start (``TrainConfig.readout_init`` other than
#: ``"meta"``): a task's columns become normalised support prototypes plus small
#: curvature-scaled steps, whose entries stayed within 0.66x the trained ``max |w_out|``
#: on runs of the speech dev set (none saturated at 1x). Programming noise is a fixed
#: fraction of the range, so the range those columns need is the one to give them: on
#: a chip read one day after programming this raised seen / unseen accuracy from 67.3
#: / 82.0 % to 72.0 / 85.8 % (RRAM, torch: 73.1 / 88.3 %; docs/results.md, claim (c)).
PROTOTYPE_READOUT_HEADROOM = 1.0
#: ``readout_headroom`` value that picks one of the two by the run's inner loop.
AUTO = "auto"


def default_readout_headroom(readout_init: str) -> float:
    """The readout headroom ``"auto"`` stands for, given ``TrainConfig.readout_init``."""
    return DEFAULT_READOUT_HEADROOM if readout_init == "meta" else PROTOTYPE_READOUT_HEADROOM


def readout_range(w_out, headroom: float = DEFAULT_READOUT_HEADROOM) -> float:
    """Largest ``|w|`` a readout pair holds: ``headroom * max |w_out|`` (1.0 if all zero)."""
    largest = float(np.max(np.abs(np.asarray(w_out, dtype=np.float64)), initial=0.0))
    return headroom * (largest if largest > 0 else 1.0)


def clip_readout(adapted: torch.Tensor, limit: float) -> tuple[torch.Tensor, int]:
    """``adapted`` saturated at ``+-limit``, as the pairs saturate; and how many saturated."""
    return adapted.clamp(-limit, limit), int((adapted.abs() > limit).sum())
