"""Check that the torch clone and the Brian2 network compute the same thing.

For random Mosaic networks (small-world masks from :mod:`mosaicnet.layout`)
of each neuron model asked for (presets by name, or the user's own
:class:`~mosaicnet.network.neuron_model.NeuronModel`) and random binary
inputs, the network is simulated in Brian2 (each requested backend, exact
arithmetic, ideal devices, no noise) and in the float64 torch clone compiled
from the same model, with the weights Brian2 actually read from its devices. The report
counts differing spike bits (recurrent layer, every sample, step and neuron)
and the largest absolute difference of the readout potential. Spikes are
also compared between backends.

Expected: zero spike mismatches and readout differences of 1e-13 or less (the
clone sums synaptic inputs in another order than Brian2). The weight gain
is calibrated per model on the clone (:func:`calibrated_gain`) so that the
networks fire at realistic rates (a few to a few tens of percent of steps),
where a wrong integration constant or a wrong order inside the time step shows
up as thousands of mismatches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.network.neuron_model import NeuronModel
from mosaicnet.network.neuron_presets import PRESETS, neuron_model
from mosaicnet.network.spec import NetworkSpec, NeuronParameters, random_spec

#: Starting weight gain of the check networks (random_spec's scale). The
#: published 0.5 leaves these small networks nearly silent; 4 gives the LIF
#: 5-20 % active steps.
CHECK_GAIN = 4.0
#: Firing fractions (spikes per neuron and step) the calibrated gain aims inside.
CHECK_RATE_RANGE = (0.03, 0.3)
#: Probability of an input spike per bin and channel.
CHECK_INPUT_P = 0.08


@dataclass(frozen=True)
class EquivalenceCase:
    """One comparison: a random network of one neuron model on one backend."""

    seed: int
    backend: str
    neuron_model: str
    n_samples: int
    n_steps: int
    n_rec: int
    n_synapses_rec: int
    spike_mismatches: int
    max_readout_diff: float
    firing_fraction: float
    backend_spike_mismatches: int = 0


@dataclass
class EquivalenceReport:
    """All cases of :func:`check_equivalence`."""

    cases: list[EquivalenceCase] = field(default_factory=list)

    @property
    def spike_mismatches(self) -> int:
        """Differing spike bits, clone vs Brian2, summed over all cases."""
        return int(sum(case.spike_mismatches for case in self.cases))

    @property
    def backend_spike_mismatches(self) -> int:
        """Differing spike bits between backends (vs the first one), summed."""
        return int(sum(case.backend_spike_mismatches for case in self.cases))

    @property
    def max_readout_diff(self) -> float:
        """Largest |readout difference|, clone vs Brian2, over all cases."""
        return float(max((case.max_readout_diff for case in self.cases), default=0.0))

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(case.backend for case in self.cases))

    def passed(self, readout_tolerance: float = 1e-9) -> bool:
        """No spike mismatch anywhere and readout within ``readout_tolerance``."""
        return (
            self.spike_mismatches == 0
            and self.backend_spike_mismatches == 0
            and self.max_readout_diff <= readout_tolerance
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "spike_mismatches": self.spike_mismatches,
            "backend_spike_mismatches": self.backend_spike_mismatches,
            "max_readout_diff": self.max_readout_diff,
            "backends": self.backends,
            "passed": self.passed(),
            "cases": [asdict(case) for case in self.cases],
        }

    def summary(self) -> str:
        """A table: one line per case, then the totals."""
        lines = [
            f"{'seed':>4} {'backend':<15} {'model':<15} {'samples':>7} {'n_rec':>5} "
            f"{'syn_rec':>7} {'rate':>6} {'spike mism.':>11} {'vs backends':>11} "
            f"{'max |dv_out|':>12}"
        ]
        for c in self.cases:
            lines.append(
                f"{c.seed:>4} {c.backend:<15} {c.neuron_model:<15} "
                f"{c.n_samples:>7} {c.n_rec:>5} {c.n_synapses_rec:>7} {c.firing_fraction:>6.3f} "
                f"{c.spike_mismatches:>11} {c.backend_spike_mismatches:>11} "
                f"{c.max_readout_diff:>12.3g}"
            )
        lines.append(
            f"total: {self.spike_mismatches} spike mismatches (clone vs Brian2), "
            f"{self.backend_spike_mismatches} between backends, max readout difference "
            f"{self.max_readout_diff:.3g} -> {'PASS' if self.passed() else 'FAIL'}"
        )
        return "\n".join(lines)


def random_mosaic_spec(
    seed: int,
    *,
    rows: int = 2,
    cols: int = 2,
    neurons_per_tile: int = 8,
    n_in: int = 20,
    n_out: int = 5,
    model: NeuronModel | str = "lif",
    gain: float = CHECK_GAIN,
) -> NetworkSpec:
    """A random network of neuron ``model`` on a small Mosaic with a small-world mask."""
    from mosaicnet.layout import Layout, SmallWorldPrior, sample_small_world_mask

    rng = np.random.default_rng(seed)
    layout = Layout(rows, cols, neurons_per_tile)
    mask = sample_small_world_mask(layout, SmallWorldPrior(), rng=rng)
    return random_spec(
        n_in,
        layout.to_dict(),
        n_out,
        mask,
        neuron=NeuronParameters(model=neuron_model(model)),
        gain=gain,
        seed=int(rng.integers(2**31)),
        device_model="ideal",
    )


def calibrated_gain(
    seed: int, x: np.ndarray, *, model: NeuronModel | str = "lif", **spec_options: Any
) -> float:
    """A weight gain at which the clone of ``model`` fires inside :data:`CHECK_RATE_RANGE`.

    Starts at :data:`CHECK_GAIN` and halves or doubles it (at most 12 times).

    Raises
    ------
    ConfigError
        The model stays silent or saturated at every gain tried.
    """
    import torch

    from mosaicnet.network.torch_clone import TorchClone

    low, high = CHECK_RATE_RANGE
    gain = CHECK_GAIN
    rates = []
    for _ in range(12):
        spec = random_mosaic_spec(seed, model=model, gain=gain, **spec_options)
        clone = TorchClone(spec, dtype=torch.float64)
        with torch.no_grad():
            rate = float(clone.recurrent_spikes(clone.init_params(), torch.as_tensor(x)).mean())
        rates.append((gain, rate))
        if low <= rate <= high:
            return gain
        gain = gain * 2 if rate < low else gain / 2
    raise ConfigError(
        f"neuron model {getattr(model, 'name', model)!r} fires outside {CHECK_RATE_RANGE} "
        f"(spikes per neuron and step) at every gain tried: "
        + ", ".join(f"{g:g} -> {r:.3f}" for g, r in rates)
        + "; check its threshold and the scale of its synaptic target"
    )


def random_input(
    seed: int, n_samples: int, n_steps: int, n_in: int, p: float = CHECK_INPUT_P
) -> np.ndarray:
    """Random binary input ``(n_samples, n_steps, n_in)``: each bin spikes with probability p."""
    return np.random.default_rng(seed).random((n_samples, n_steps, n_in)) < p


def compare_with_clone(spec: NetworkSpec, x: np.ndarray, result: Any, weights: dict) -> tuple:
    """Spike mismatches and max readout difference of a Brian2 result vs the float64 clone."""
    import torch

    from mosaicnet.network.torch_clone import TorchClone

    clone = TorchClone(spec, dtype=torch.float64)
    params = {name: torch.as_tensor(value, dtype=torch.float64) for name, value in weights.items()}
    with torch.no_grad():
        z, v_out = clone.forward(params, torch.as_tensor(x))
    spikes = z.numpy().astype(bool)
    mismatches = int(np.sum(spikes != result.recurrent_spikes))
    diff = float(np.max(np.abs(v_out.numpy() - result.readout)))
    return mismatches, diff, spikes


def check_equivalence(
    seeds: Iterable[int] = (0,),
    backends: Sequence[str] = ("numpy",),
    *,
    models: Iterable[NeuronModel | str] = ("lif", "cuba_lif"),
    n_samples: int = 6,
    n_steps: int = 60,
    progress: bool = False,
    **spec_options: Any,
) -> EquivalenceReport:
    """Compare Brian2 (each backend) with the float64 torch clone on random Mosaic networks.

    Parameters
    ----------
    seeds
        One random network and input per seed and model.
    backends
        Brian2 backends to run (spikes are also compared between them).
    models
        Neuron models: preset names (:data:`~mosaicnet.network.neuron_presets.PRESETS`),
        ``.json``/``.py`` files, or :class:`NeuronModel` objects.
    n_samples, n_steps
        Input size per seed. Samples run batched (several per Brian2 run), so
        the per-sample state reset is exercised too.
    progress
        Progress bar over cases.
    **spec_options
        Passed to :func:`random_mosaic_spec` (sizes).

    Returns
    -------
    EquivalenceReport
    """
    from mosaicnet.network.brian_network import simulate

    backends = list(backends)
    if not backends:
        raise ConfigError("give at least one backend to compare with the clone")
    resolved = [neuron_model(model) for model in models]
    if not resolved:
        raise ConfigError(f"give at least one neuron model, e.g. {', '.join(PRESETS)}")
    jobs = [(int(seed), model) for seed in seeds for model in resolved]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="equivalence", unit="network")
    report = EquivalenceReport()
    for seed, model in jobs:
        x = random_input(seed + 10_000, n_samples, n_steps, spec_options.get("n_in", 20))
        gain = calibrated_gain(seed, x, model=model, **spec_options)
        spec = random_mosaic_spec(seed, model=model, gain=gain, **spec_options)
        reference = None
        for backend in backends:
            # Several samples per run: copies for runtime targets, back to back for standalone.
            copies, sequential = (2, 1) if backend in ("numpy", "cython") else (1, 4)
            result = simulate(
                spec,
                x,
                backend=backend,
                record=("recurrent", "readout"),
                return_network=True,
                copies=copies,
                sequential=sequential,
                read_noise=False,
            )
            try:
                weights = result.network.weights_as_read()
            finally:
                result.network.close()
            mismatches, diff, _ = compare_with_clone(spec, x, result, weights)
            if reference is None:
                reference = result.recurrent_spikes
            report.cases.append(
                EquivalenceCase(
                    seed=seed,
                    backend=backend,
                    neuron_model=model.name,
                    n_samples=n_samples,
                    n_steps=n_steps,
                    n_rec=spec.n_rec,
                    n_synapses_rec=int(spec.rec_mask.sum()),
                    spike_mismatches=mismatches,
                    max_readout_diff=diff,
                    firing_fraction=float(result.recurrent_spikes.mean()),
                    backend_spike_mismatches=int(np.sum(reference != result.recurrent_spikes)),
                )
            )
    return report
