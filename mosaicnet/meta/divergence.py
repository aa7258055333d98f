"""Divergence detection for meta-training: a windowed mean of the loss against its best.

A collapsing run (the loss of a run that had trained well rising from 0.05 to 2.6
within a few dozen steps, as measured on realistic speech with ten inner steps)
must stop with a clear message instead of finishing with a useless network. The
rule is deliberately simple and scale-free: the mean loss of the last ``window``
steps is compared with the lowest such mean seen so far; a rise by a factor
``factor`` that is also at least :data:`MIN_RISE` nats is a divergence. The
absolute margin keeps a run whose loss has fallen near zero from being stopped
by noise (0.02 -> 0.05 is a factor of 2.5 but no collapse).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

#: Smallest rise of the windowed mean loss (in nats) that counts as a divergence.
MIN_RISE = 0.5


class DivergenceMonitor:
    """Feed it every step's loss; :meth:`update` says when the run has diverged.

    Parameters
    ----------
    window
        Steps in the moving mean (0: only non-finite losses count).
    factor
        Rise of the moving mean over its best that counts as divergence (> 1).
    """

    def __init__(self, window: int, factor: float) -> None:
        self.window = int(window)
        self.factor = float(factor)
        self._recent: deque[float] = deque(maxlen=max(1, self.window))
        self.best_mean = math.inf
        self.mean = math.nan

    def replay(self, losses: Iterable[float]) -> None:
        """Feed past losses (e.g. from the metrics log on resume) without judging them."""
        for loss in losses:
            self.update(loss)

    def update(self, loss: float) -> bool:
        """Add one step's loss; True if the run has diverged at this step."""
        if not math.isfinite(loss):
            return True
        if self.window == 0:
            return False
        self._recent.append(float(loss))
        if len(self._recent) < self.window:
            return False
        self.mean = sum(self._recent) / self.window
        self.best_mean = min(self.best_mean, self.mean)
        return self.mean > self.factor * self.best_mean and self.mean > self.best_mean + MIN_RISE
