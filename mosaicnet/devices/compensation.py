"""Global drift compensation: one scalar read-out correction measured on the array itself.

Drift lowers every PCM conductance by a similar factor, so most of the weight
error after a day is a common scale that the periphery can undo. Global drift
compensation (V. Joshi et al., "Accurate deep neural network inference using
computational phase-change memory", Nat. Commun. 11, 2473, 2020; IBM/aihwkit,
``src/aihwkit/inference/compensation/drift.py``, which reads the array with
one-hot inputs and keeps the mean ``|output|``) reads the array once right after
programming and again at inference time, and multiplies the outputs by the
ratio of the two magnitudes. Here the measured magnitude is ``sum |w|`` over
the array (``sum |G+ - G-|`` up to the fixed factor ``w_scale / (G_max - G_min)``),
taken from a real read, read noise included.

The step is separate and switchable: read the weights as usual, then call
:meth:`GlobalDriftCompensation.apply` only if you want compensation. The factor
is computed from the same read it corrects (a chip would use a separate
calibration read at almost the same time; the difference is one read noise
sample).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mosaicnet.devices.programming import ProgrammedArray, as_generator, check_time


def compensation_factor(reference_sum: Any, weights_read: Any) -> Any:
    """``reference_sum / sum |w_read|`` (1 where the read is all zeros); numpy or torch."""
    current = abs(weights_read).sum()
    # An all-zero read carries no scale to correct: the factor is 1 there. Written
    # without Python branches so it also runs on batched tensors under torch.func.vmap.
    is_empty = current == 0
    return reference_sum / (current + is_empty) * (current != 0) + is_empty


@dataclasses.dataclass(frozen=True)
class GlobalDriftCompensation:
    """A calibrated global drift compensation.

    Attributes
    ----------
    reference_sum : float
        ``sum |w|`` of the calibration read taken right after programming.

    Examples
    --------
    >>> import numpy as np
    >>> from mosaicnet.devices import GlobalDriftCompensation, program_weights
    >>> chip = program_weights(np.full((4, 4), 0.5), "pcm_aihwkit", rng=0)
    >>> compensation = GlobalDriftCompensation.calibrate(chip, rng=1)
    >>> w_month = compensation.apply(chip.read_weights(30 * 86400.0, rng=2))
    """

    reference_sum: float

    @classmethod
    def calibrate(
        cls,
        programmed: ProgrammedArray,
        *,
        rng: np.random.Generator | int | None = None,
        t_s: float | None = None,
        read_noise: bool = True,
    ) -> GlobalDriftCompensation:
        """Read the array at ``t_s`` and keep ``sum |w|`` (default: when programming ended).

        Reads before the model's ``t0`` see the device as at ``t0``, so the
        default calibration read is the model's first valid read.
        """
        t_cal = float(programmed.t_prog_s.max()) if t_s is None else check_time(t_s, "t_s")
        weights = programmed.read_weights(
            t_cal, rng=as_generator(rng) if read_noise else None, read_noise=read_noise
        )
        return cls(reference_sum=float(np.abs(weights).sum()))

    def factor(self, weights_read: Any) -> Any:
        """The scalar correction for this read: ``reference_sum / sum |w_read|``."""
        return compensation_factor(self.reference_sum, weights_read)

    def apply(self, weights_read: Any) -> Any:
        """The compensated weights ``factor * w_read`` (numpy array or torch tensor)."""
        return self.factor(weights_read) * weights_read
