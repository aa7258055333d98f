"""Loss terms of meta-training, as pure torch functions (safe under ``torch.func``).

The terms follow the published training code (EIS-Hub/meta-mosaic ``train.py``,
Raghunathan et al., NICE 2024):

* inner loss: cross-entropy + firing-rate term;
* outer loss: cross-entropy + layout loss + firing-rate term + L2.

with

* logits = the maximum over time of the readout potential, cross-entropy on
  ``log_softmax`` of them, labels indexing readout units (global labels);
* firing rate ``r = 10 * mean spike count`` (count over the whole sequence, mean
  over neurons and samples), penalty ``lambda_fr * (target - r)^2``, published
  ``lambda_fr = 0.01``, target 8 (i.e. 0.8 spikes per neuron and sample);
* L2 ``0.01 * mean(w^2)`` for every weight matrix;
* the layout loss of :mod:`mosaicnet.layout.loss`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

#: Scale of the published firing-rate measure: ``10 * mean spike count`` (meta-mosaic).
RATE_SCALE = 10.0


def max_over_time(v_out: torch.Tensor) -> torch.Tensor:
    """Logits of the published readout: the maximum of ``v_out`` over time.

    ``v_out`` has shape ``(..., T, n_out)``; the result ``(..., n_out)``.
    """
    return v_out.max(dim=-2).values


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log_softmax(logits)[label]`` over samples.

    Parameters
    ----------
    logits
        ``(S, n_units)``.
    labels
        ``(S,)`` integer indices of the correct unit.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    return -log_p.gather(-1, labels.unsqueeze(-1)).mean()


def firing_rate(z: torch.Tensor) -> torch.Tensor:
    """Published firing-rate measure: ``10 * mean over samples and neurons of spike counts``.

    ``z`` has shape ``(..., S, T, n_rec)``; the spike count of a neuron is the sum
    over time (axis ``-2``), the mean runs over everything else.
    """
    return RATE_SCALE * z.sum(dim=-2).mean()


def firing_rate_penalty(z: torch.Tensor, target: float, lam: float) -> torch.Tensor:
    """``lam * (target - firing_rate(z))^2`` (published ``lam = 0.01``, ``target = 8``)."""
    return lam * (target - firing_rate(z)) ** 2


def l2_penalty(weights: Iterable[torch.Tensor], coefficient: float) -> torch.Tensor:
    """``sum over matrices of coefficient * mean(w^2)`` (published coefficient 0.01)."""
    terms = [coefficient * (w * w).mean() for w in weights]
    return torch.stack(terms).sum()


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of equal entries along the last axis (float, same dtype as float32)."""
    return (predicted == labels).to(torch.float32).mean(dim=-1)
