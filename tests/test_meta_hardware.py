"""Hardware-aware training noise: fresh draws every step, reproducible from saved state."""

from __future__ import annotations

import pytest
import torch

from mosaicnet.errors import ConfigError
from mosaicnet.meta.hardware import DeviceNoise


def weights():
    gen = torch.Generator().manual_seed(0)
    shapes = {"w_in": (6, 8), "w_rec": (8, 8), "w_out": (8, 4)}
    return {name: torch.randn(shape, generator=gen) * 0.1 for name, shape in shapes.items()}


def test_offsets_are_fresh_every_draw_and_reproducible():
    noise = DeviceNoise("pcm_aihwkit", 1.0, 86400.0, seed=3)
    w = weights()
    state = noise.state_dict()
    first, second = noise.offsets(w), noise.offsets(w)
    for name in w:
        assert first[name].shape == w[name].shape
        assert not torch.equal(first[name], second[name])  # no frozen noise key
        assert first[name].abs().max() > 0
    again = DeviceNoise("pcm_aihwkit", 1.0, 86400.0, seed=999)
    again.load_state_dict(state)
    replay = again.offsets(w)
    for name in w:
        assert torch.equal(first[name], replay[name])


def test_read_time_is_log_uniform_in_range():
    noise = DeviceNoise("rram_hfox", 1.0, 1e4, seed=0)
    times = torch.tensor([noise.draw_read_time() for _ in range(2000)])
    assert times.min() >= 1.0 and times.max() <= 1e4
    # log10(t) is uniform on [0, 4]: mean 2, standard error sqrt(16/12/2000) ~ 0.026;
    # 0.13 is five standard errors.
    assert abs(times.log10().mean().item() - 2.0) < 0.13
    assert DeviceNoise("rram_hfox", 5.0, 5.0, seed=0).draw_read_time() == 5.0


def test_ideal_device_perturbs_little_and_bad_presets_fail():
    noise = DeviceNoise("ideal", 1.0, 10.0, seed=0)
    w = weights()
    offsets = noise.offsets(w)
    for name in w:
        assert offsets[name].abs().max() <= 1e-6 * w[name].abs().max() + 1e-7
    with pytest.raises(ConfigError, match="unknown device preset"):
        DeviceNoise("flash", 1.0, 10.0, seed=0)
