"""Neuron model presets: Brian2 code blocks to use as they are, or to copy and edit.

Every preset is a :class:`~mosaicnet.network.neuron_model.NeuronModel` on the
package's time scale: one step per input bin of 14 ms, the published membrane
decay of 30 steps (``tau_mem = 420 ms``) and threshold 2 of EIS-Hub/meta-mosaic
(see :mod:`mosaicnet.network.spec`). Constants can be changed by keyword
(``alif(tau_a=1400*ms)``) or later with :meth:`NeuronModel.with_constants`.
``print(alif().code())`` shows the Brian2 code to copy.

:func:`neuron_model` resolves a preset name or a ``.json``/``.py`` file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from brian2 import ms

from mosaicnet.errors import ConfigError
from mosaicnet.network.neuron_model import NeuronModel, load_model_file

#: Published membrane time constant: 30 steps of 14 ms (EIS-Hub/meta-mosaic, see spec).
TAU_MEM = 420 * ms
#: Published threshold (EIS-Hub/meta-mosaic ``network.py``), in membrane units.
THRESHOLD = 2.0


def lif(**constants: Any) -> NeuronModel:
    """Leaky integrate-and-fire with subtractive reset: the published model.

    EIS-Hub/meta-mosaic (``network.py``; Raghunathan et al., NICE 2024):
    membrane decay ``exp(-1/30)`` per step (``tau_mem = 420 ms`` at 14 ms per
    step), threshold 2, reset by subtraction, delta synapses into ``v``.
    """
    return NeuronModel(
        name="lif",
        equations="dv/dt = -v / tau_mem : 1",
        threshold="v > thr",
        reset="v -= thr",
        constants={"tau_mem": TAU_MEM, "thr": THRESHOLD},
        source="EIS-Hub/meta-mosaic network.py (Raghunathan et al., NICE 2024): "
        "subtractive reset, threshold 2, decay exp(-1/30) per 14 ms step",
    ).with_constants(**constants)


def cuba_lif(**constants: Any) -> NeuronModel:
    """LIF with an exponentially decaying synaptic current (current-based synapses).

    The standard current-based LIF of surrogate-gradient SHD work (Cramer et
    al., IEEE TNNLS 33(7), 2022, "The Heidelberg spiking data sets"; Zenke &
    Vogels, Neural Computation 33(4), 2021). The current enters as
    ``I / tau_syn``, so that one synaptic event of weight ``w`` moves the
    membrane by about ``w`` in all (for ``tau_syn << tau_mem``), as a delta
    synapse of the :func:`lif` preset does: the published weight scale then
    applies unchanged. ``tau_syn = 70 ms`` (5 steps) is this package's choice:
    the 1:6 ratio to ``tau_mem`` lies between the cited works' 1:2 and 1:4 at
    their time scale and keeps the two decays well apart (Brian2's exact
    solution divides by ``tau_mem - tau_syn``).
    """
    return NeuronModel(
        name="cuba_lif",
        equations="dv/dt = -v / tau_mem + I / tau_syn : 1\ndI/dt = -I / tau_syn : 1",
        threshold="v > thr",
        reset="v -= thr",
        constants={"tau_mem": TAU_MEM, "tau_syn": 5 * 14 * ms, "thr": THRESHOLD},
        input_target="I",
        recurrent_target="I",
        source="current-based LIF (Cramer et al. 2022; Zenke & Vogels 2021), "
        "current scaled by 1/tau_syn",
    ).with_constants(**constants)


def alif(**constants: Any) -> NeuronModel:
    """Adaptive-threshold LIF of the LSNN (Bellec et al., NeurIPS 2018).

    Bellec, Salaj, Subramoney, Legenstein & Maass, "Long short-term memory and
    learning-to-learn in networks of spiking neurons", NeurIPS 2018, in the
    paper's exact form: threshold ``A = thr + beta * a``, adaptation
    ``a(t + dt) = rho a(t) + (1 - rho) z(t)`` with ``rho = exp(-dt / tau_a)``
    (here ``da/dt = -a / tau_a`` and a reset ``a += 1 - exp(-dt / tau_a)``),
    and the membrane reset by the baseline threshold (``v -= thr``, the paper's
    ``- v_th z``). ``beta = 1.8`` and ``tau_a = 700 ms`` are the paper's values
    for sequential MNIST.
    """
    return NeuronModel(
        name="alif",
        equations="dv/dt = -v / tau_mem : 1\nda/dt = -a / tau_a : 1",
        threshold="v > thr + beta * a",
        reset="v -= thr\na += 1 - exp(-dt / tau_a)",
        constants={"tau_mem": TAU_MEM, "tau_a": 700 * ms, "beta": 1.8, "thr": THRESHOLD},
        source="Bellec et al., NeurIPS 2018 (LSNN), exact form; beta 1.8, tau_a 700 ms",
    ).with_constants(**constants)


def adlif(**constants: Any) -> NeuronModel:
    """Adaptive LIF with sub-threshold coupling (Bittar & Garner 2022).

    Bittar & Garner, "A surrogate gradient spiking baseline for speech command
    recognition", Front. Neurosci. 16:865897 (2022): an adaptation variable
    ``w`` driven by the membrane (``a``, sub-threshold) and by each spike
    (``b``), fed back into the membrane. ``a = 0.5`` and ``b = 0.5`` lie inside
    the paper's ranges (``a`` in [-1, 1], ``b`` in [0, 2]); ``tau_w = 3 tau_mem``
    keeps the paper's ``tau_w / tau_u`` inside its range (1.2-117) and equal
    to the length of a 1.4 s sample here. Chosen, not fitted.

    Integrated with Brian2's ``exponential_euler``, which for these equations
    is exactly the paper's discrete update ``v_t = alpha v_(t-1) + (1 - alpha)
    (-w_(t-1))`` (plus input), ``w_t = beta w_(t-1) + (1 - beta) a v_(t-1)``
    with ``alpha = exp(-dt / tau_mem)``, ``beta = exp(-dt / tau_w)``. (Brian2's
    ``exact`` method evaluates to NaN here: the system oscillates and its
    symbolic solution takes the square root of a negative number.)
    """
    return NeuronModel(
        name="adlif",
        equations="dv/dt = (-v - w) / tau_mem : 1\ndw/dt = (a * v - w) / tau_w : 1",
        threshold="v > thr",
        reset="v -= thr\nw += b",
        method="exponential_euler",
        constants={"tau_mem": TAU_MEM, "tau_w": 3 * TAU_MEM, "a": 0.5, "b": 0.5, "thr": THRESHOLD},
        source="Bittar & Garner, Front. Neurosci. 16:865897 (2022), adaptive LIF",
    ).with_constants(**constants)


def lif_refractory(**constants: Any) -> NeuronModel:
    """LIF with reset to rest and an absolute refractory period.

    The textbook leaky integrate-and-fire neuron with absolute refractoriness
    (Gerstner, Kistler, Naud & Paninski, "Neuronal Dynamics", Cambridge 2014,
    section 1.3): reset to 0, then clamped (Brian2's ``(unless refractory)``:
    no integration and no synaptic input) for 28 ms, two steps here.
    """
    return NeuronModel(
        name="lif_refractory",
        equations="dv/dt = -v / tau_mem : 1 (unless refractory)",
        threshold="v > thr",
        reset="v = 0",
        refractory=2 * 14 * ms,
        constants={"tau_mem": TAU_MEM, "thr": THRESHOLD},
        source="Gerstner et al., Neuronal Dynamics (2014), sec. 1.3: absolute refractory period",
    ).with_constants(**constants)


#: Presets by name.
PRESETS: dict[str, Callable[..., NeuronModel]] = {
    "lif": lif,
    "cuba_lif": cuba_lif,
    "alif": alif,
    "adlif": adlif,
    "lif_refractory": lif_refractory,
}


def neuron_model(name_or_file: str | Path | NeuronModel, **constants: Any) -> NeuronModel:
    """A preset by name, or a model from a ``.json``/``.py`` file, with constants changed.

    Raises
    ------
    ConfigError
        Neither a preset nor an existing file (the message lists the presets).
    """
    if isinstance(name_or_file, NeuronModel):
        model = name_or_file
    elif str(name_or_file) in PRESETS:
        model = PRESETS[str(name_or_file)]()
    elif Path(name_or_file).suffix in (".json", ".py"):
        model = load_model_file(name_or_file)
    else:
        raise ConfigError(
            f"unknown neuron model {str(name_or_file)!r}: give a preset "
            f"({', '.join(PRESETS)}) or a .json/.py file holding the Brian2 code"
        )
    return model.with_constants(**constants) if constants else model
