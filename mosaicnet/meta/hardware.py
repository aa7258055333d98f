"""Hardware-aware training: fresh device perturbations of the weights at every outer step.

Each outer step stands for one fresh programming of the chip and one read of it:
all weight matrices are programmed with the device model's programming noise,
given their drift parameters and read at ONE read time (the chip is read at once),
drawn log-uniformly from the configured range. The perturbation is computed by
:func:`mosaicnet.devices.perturbation.perturb_weights` (the same device laws the
evaluation programs into Brian2) and handed to :func:`mosaicnet.meta.maml.meta_loss`
as constant offsets ``w_read - w``: the forward pass sees ``w + offset``, the
gradient is the identity (straight-through, docs/devices.md, 'Hardware-aware training').

All randomness comes from one ``torch.Generator`` seeded from the run seed; its
state is saved in checkpoints, so a resumed run draws exactly the noise an
uninterrupted one would (the published code reused one fixed key forever).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from mosaicnet.devices.perturbation import perturb_weights, read_time_range
from mosaicnet.devices.registry import get_device_model
from mosaicnet.meta.maml import NETWORK_KEYS


class DeviceNoise:
    """Draws device-perturbation offsets for the three weight matrices.

    Parameters
    ----------
    device_model
        Preset name (:func:`mosaicnet.devices.list_presets`).
    read_time_min_s, read_time_max_s
        Range of the read time after programming, in seconds; log-uniform when
        the bounds differ (a fixed time when they are equal).
    seed
        Seed of the generator behind every draw.

    Raises
    ------
    ConfigError
        For an unknown preset or an invalid read-time range.
    """

    def __init__(
        self, device_model: str, read_time_min_s: float, read_time_max_s: float, seed: int
    ) -> None:
        self.model = get_device_model(device_model)
        self.t_min_s, self.t_max_s = read_time_range((read_time_min_s, read_time_max_s))
        self.generator = torch.Generator().manual_seed(int(seed))

    def draw_read_time(self) -> float:
        """One read time in seconds, log-uniform in the range."""
        if self.t_min_s == self.t_max_s:
            return self.t_min_s
        u = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        return math.exp(math.log(self.t_min_s) + u * math.log(self.t_max_s / self.t_min_s))

    def offsets(self, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Offsets ``w_read - w`` of one programming and read of all three matrices.

        Returns detached tensors (constants of the differentiated loss).
        """
        t_read = self.draw_read_time()
        result = {}
        for name in NETWORK_KEYS:
            # Drawn on the CPU generator whatever the weights' device: one seed, one
            # sequence of offsets on every device.
            w = weights[name].detach().cpu()
            read = perturb_weights(w, self.model, t_read_s=t_read, generator=self.generator)
            result[name] = (read - w).to(weights[name].device)
        return result

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Generator state, for checkpoints."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the generator state of :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
