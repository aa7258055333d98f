"""The Brian2 network of a :class:`~mosaicnet.network.spec.NetworkSpec`: the reference model.

Objects (names as they appear in :meth:`BrianNetwork.describe`)::

    input      NeuronGroup, threshold ``stimulus(t - t_start, i) > 0.5``: a
               TimedArray of the binary input spikes drives it, so it emits in
               the 'thresholds' slot like a SpikeGeneratorGroup, but new inputs
               need no new objects (standalone: new values via ``run_args``)
    recurrent  NeuronGroup, the spec's neuron model verbatim: its equations,
               threshold, reset, refractory period and integration method
               (the published LIF: ``dv/dt = -v / tau_mem``, ``v > thr``,
               ``v -= thr``, exact integration)
    readout    NeuronGroup, non-spiking leaky integrators (exact integration)
    syn_in     Synapses input -> recurrent, all-to-all, on_pre
               ``<input_target>_post += w`` (the model's input target)
    syn_rec    Synapses recurrent -> recurrent, ONLY the spec's ``rec_mask``,
               on_pre ``<recurrent_target>_post += w``
    syn_out    Synapses recurrent -> readout, all-to-all, on_pre ``v_post += w``

(``w * weight_unit`` into a target with units, see
:class:`~mosaicnet.network.neuron_model.NeuronModel`.)
Every synapse is memristive: its model is the device model's Brian2 form
(:mod:`mosaicnet.devices.brian_form`): programmed conductances, drift
parameters and programming time are synaptic variables and the effective
weight ``w`` is computed from them at the shared read time ``t_read`` by the
device's read code, inside the simulation. Without read noise the read runs
once; with read noise it runs at the start of every sample (each sample sees
a fresh read of the chip). Drift is evaluated at reads only, never per spike
(per-step drift was 10-300x slower in a feasibility study).

Time: one step per input bin (``dt`` of the spec). Inside a step Brian2 runs
state update, thresholds, synaptic propagation, resets. The recorded readout
voltage uses ``when="end"``: index ``t`` of the trace holds the value after
step ``t``'s synaptic input. Spikes are indexed by the step they occur in.

Batched evaluation: a network is built once for ``copies`` independent copies
of the network (block-diagonal synapses) times ``sequential`` samples run back
to back, with the state reset at the start of each sample (a
``run_regularly`` in the 'start' slot every ``n_steps`` steps). Runtime
backends re-run the same objects per batch; standalone backends compile once
and re-run the program with the batch's input as ``run_args``.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mosaicnet.errors import ConfigError
from mosaicnet.network.brian_backends import (
    RUNTIME_BACKENDS,
    STANDALONE_BACKENDS,
    StandaloneProject,
    brian_prefs,
    check_backend,
    runtime_prefs,
    select_runtime_device,
)
from mosaicnet.network.spec import NetworkSpec, check_input_shape, input_spikes

#: What :func:`simulate` and :class:`BrianNetwork` can record.
RECORDABLE: tuple[str, ...] = ("input", "recurrent", "readout", "membrane")
#: Recorded unless asked otherwise.
DEFAULT_RECORD: tuple[str, ...] = ("input", "recurrent", "readout")
#: When a network with read noise reads its devices (:class:`BrianNetwork` ``read_every``).
READ_EVERY: tuple[str, ...] = ("sample", "run")
#: Synapse groups, keyed like the weights of the spec and the torch clone.
PATHWAYS: tuple[str, ...] = ("w_in", "w_rec", "w_out")
_SYNAPSE_NAMES = {"w_in": "syn_in", "w_rec": "syn_rec", "w_out": "syn_out"}

# Upper bound on synapses of one runtime network (all copies). Measured with the
# 234-input, 256-neuron benchmark network (benchmarks/bench_clone.py, cython):
# 64 copies (3.9M synapses) 100 samples/s at 0.8 GB, 128 copies (7.8M) 130/s at
# 1.2 GB; memory grows linearly, the speed gain flattens.
_RUNTIME_SYNAPSE_BUDGET = 8_000_000
#: Default samples per run of a standalone program.
STANDALONE_SEQUENTIAL = 256


@dataclass
class SimulationResult:
    """What a Brian2 simulation recorded, as numpy arrays (``None`` if not recorded).

    Attributes
    ----------
    input_spikes
        ``(B, T, n_in)`` bool: spikes the input group emitted (recorded).
    recurrent_spikes
        ``(B, T, n_rec)`` bool: index ``t`` is the step the spike occurred in.
    readout
        ``(B, T, n_out)`` float64: readout potential after step ``t``
        (``when="end"``); the published logits are ``readout.max(axis=1)``.
    membrane
        ``(B, T, n_rec)`` float64: recurrent ``v`` after step ``t`` (after reset).
    backend
        Backend that produced it.
    dt_s
        Time step in seconds.
    wall_s
        Wall time of the runs (excluding building and compilation).
    network
        The :class:`BrianNetwork` (Brian2 objects and monitors), when asked for.
    """

    input_spikes: np.ndarray | None
    recurrent_spikes: np.ndarray | None
    readout: np.ndarray | None
    membrane: np.ndarray | None
    backend: str
    dt_s: float
    wall_s: float
    network: BrianNetwork | None = None

    @property
    def n_samples(self) -> int:
        for array in (self.recurrent_spikes, self.readout, self.input_spikes, self.membrane):
            if array is not None:
                return int(array.shape[0])
        return 0

    def firing_rate_hz(self) -> float:
        """Mean firing rate of the recurrent neurons in Hz."""
        if self.recurrent_spikes is None:
            raise ConfigError("recurrent spikes were not recorded (record=('recurrent', ...))")
        return float(self.recurrent_spikes.mean() / self.dt_s)


# ---------------------------------------------------------------------------
# Memristive synapses: the seam to mosaicnet.devices
# ---------------------------------------------------------------------------


def device_form(spec: NetworkSpec, *, read_noise: bool = True) -> Any:
    """The Brian2 form of the spec's device model (a ``BrianDeviceForm``).

    The effective weight is ``w``, or ``w_syn`` when the neuron model has a
    variable ``w`` (Brian2 forbids a synaptic variable named like a
    post-synaptic one: ``w_post`` would be ambiguous).
    """
    from mosaicnet.devices import get_device_model
    from mosaicnet.devices.brian_form import build_brian_form
    from mosaicnet.network.neuron_brian import check_model

    names = check_model(spec.neuron.model, spec.neuron.dt).equations.names
    weight_name = "w_syn" if "w" in names else "w"
    return build_brian_form(
        get_device_model(spec.device_model), read_noise=read_noise, weight_name=weight_name
    )


#: Synaptic variables the device form defines per synapse, with their Brian2 unit names.
_DEVICE_VARIABLES = (
    ("g_plus_prog", "g_plus", "siemens"),
    ("g_minus_prog", "g_minus", "siemens"),
    ("drift_plus", "drift_plus", None),
    ("drift_minus", "drift_minus", None),
    ("t_prog", "t_prog_s", "second"),
)


def sample_reset_code(model: Any, dt: Any) -> str:
    """Brian2 code that puts the recurrent neurons back to their initial state.

    Every state variable takes the model's initial value (0 where none is
    given); a refractory model also forgets its last spike, as a freshly
    built Brian2 group (``lastspike = -1e4 s``).
    """
    from mosaicnet.network.neuron_brian import INITIAL_LASTSPIKE_S, check_model
    from mosaicnet.network.quantities import format_quantity

    states = check_model(model, dt).states
    lines = [f"{name} = {format_quantity(model.initial.get(name, 0.0))}" for name in states]
    if model.refractory is not None:
        lines += [f"lastspike = {INITIAL_LASTSPIKE_S!r} * second", "not_refractory = True"]
    return "\n".join(lines)


def _device_values(programmed: Any, pre: np.ndarray, post: np.ndarray) -> dict[str, Any]:
    """Per-synapse device state for synapses at (pre, post) of a dense programmed array."""
    import brian2

    values: dict[str, Any] = {}
    for variable, attribute, unit in _DEVICE_VARIABLES:
        array = np.asarray(getattr(programmed, attribute))[pre, post]
        values[variable] = array * getattr(brian2, unit) if unit else array
    values["w_scale"] = float(programmed.w_scale)
    return values


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------


class BrianNetwork:
    """The spec's network in Brian2, built once for batched evaluation.

    Parameters
    ----------
    spec
        The network.
    n_steps
        Time bins per sample.
    backend
        ``"numpy"``, ``"cython"``, ``"cpp_standalone"`` or ``"cuda_standalone"``
        (see :mod:`mosaicnet.network.brian_backends`).
    exact
        IEEE-exact C++ arithmetic
        (:data:`~mosaicnet.network.compile_flags.EXACT_COMPILE_ARGS`).
    copies
        Independent copies of the network simulated side by side in one set
        of groups (block-diagonal synapses).
    sequential
        Samples run back to back per copy within one run (state reset between).
    record
        Subset of :data:`RECORDABLE`.
    programmed
        ``{"w_in", "w_rec", "w_out"}`` -> ``ProgrammedArray`` (dense, shapes of
        the spec's weights), e.g. from :mod:`mosaicnet.network.chip_programming`;
        default: the spec's weights programmed with ``programming_seed``
        (:func:`mosaicnet.network.chip_programming.program_spec`, the chip the
        chip-in-the-loop evaluation uses for that seed).
    programming_seed
        Seed of programming noise and drift parameters when ``programmed`` is None.
    read_noise
        Draw read noise at reads (if the device model has any).
    read_every
        When a noisy network reads its devices afresh: ``"sample"`` (default;
        at the start of every sample) or ``"run"`` (once per copy at the start
        of every run, shared by the ``sequential`` samples a copy runs back to
        back: a chip read once per batch of work, e.g. a task's query set).
        Without read noise the devices are read once per state change anyway.
    t_read_s
        Read time in seconds on the programming clock; default the spec's ``read_time``.
    seed
        Seed of Brian2's random numbers (read noise).
    directory
        Standalone build directory (default: a temporary one, removed by :meth:`close`).
    cuda_options
        Options for ``cuda_standalone`` (see
        :func:`mosaicnet.network.gpu_backends.configure_cuda_standalone`).

    Notes
    -----
    Use :meth:`run` for any number of samples; :meth:`close` (or a ``with``
    block) removes a standalone build directory.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        n_steps: int,
        *,
        backend: str = "numpy",
        exact: bool = True,
        copies: int = 1,
        sequential: int = 1,
        record: Iterable[str] = DEFAULT_RECORD,
        programmed: Mapping[str, Any] | None = None,
        programming_seed: int = 0,
        read_noise: bool = True,
        read_every: str = "sample",
        t_read_s: float | None = None,
        seed: int = 0,
        directory: str | None = None,
        cuda_options: Mapping[str, Any] | None = None,
    ) -> None:
        check_backend(backend)
        if read_every not in READ_EVERY:
            raise ConfigError(f"read_every must be one of {READ_EVERY}, got {read_every!r}")
        self.read_every = read_every
        self.spec = spec
        self.backend = backend
        self.exact = bool(exact)
        self.n_steps = _positive_int(n_steps, "n_steps")
        self.copies = _positive_int(copies, "copies")
        self.sequential = _positive_int(sequential, "sequential")
        self.record = _check_record(record)
        self.dt_s = float(np.asarray(spec.neuron.dt))
        self.t_read_s = float(np.asarray(spec.read_time)) if t_read_s is None else float(t_read_s)
        self.seed = int(seed)
        self.form = device_form(spec, read_noise=read_noise)
        if programmed is None:
            from mosaicnet.network.chip_programming import program_spec

            programmed = program_spec(spec, seed=programming_seed)
        self.programmed = dict(programmed)
        self._check_programmed(self.programmed, self.t_read_s)
        self.standalone = backend in STANDALONE_BACKENDS
        self.project: StandaloneProject | None = None
        # Standalone: values that replace the compiled initial values at each run.
        self._run_args: dict[tuple[str, str], tuple[Any, Any]] = {}
        # Whether the synapses' w may not reflect the current device state yet.
        self._stale_read = True
        if self.standalone:
            self.project = StandaloneProject(
                backend, exact=self.exact, directory=directory, cuda_options=cuda_options
            )
            self._finalizer = weakref.finalize(self, self.project.close)
        else:
            select_runtime_device()
        try:
            if self.standalone:
                self.project.select()
                self._build()
                self.network.run(
                    self.sequential * self.n_steps * self.dt_s * _second(), namespace={}
                )
                self.project.build()
            else:
                # Code run while building (synapse creation, the first read) must
                # use this backend and its compile flags too.
                with brian_prefs(runtime_prefs(backend, self.exact)):
                    self._build()
                self._stale_read = self.noisy_reads
        except BaseException:
            if self.standalone:
                self.project.abandon()
            raise

    # ------------------------------------------------------------------ build
    @property
    def samples_per_run(self) -> int:
        """Samples simulated per run: ``copies * sequential``."""
        return self.copies * self.sequential

    def _check_programmed(self, programmed: Mapping[str, Any], t_read_s: float) -> None:
        for name in PATHWAYS:
            if name not in programmed:
                raise ConfigError(f"programmed arrays lack {name!r}; give all of {PATHWAYS}")
            shape = getattr(self.spec, name).shape
            if tuple(programmed[name].shape) != shape:
                raise ConfigError(
                    f"programmed {name} has shape {programmed[name].shape}, the spec's is {shape}"
                )
            if programmed[name].model != self.form.model:
                raise ConfigError(
                    f"programmed {name} uses {programmed[name].model.describe()}, the spec's "
                    f"device model is {self.form.model.describe()}"
                )
            latest = float(np.max(programmed[name].t_prog_s, initial=0.0))
            if latest > t_read_s:
                raise ConfigError(
                    f"read time {t_read_s:g} s precedes the programming of {name} "
                    f"(at {latest:g} s); read at or after programming"
                )

    def _build(self) -> None:
        from brian2 import Clock, Network, NeuronGroup, Synapses, TimedArray, second

        spec, neuron = self.spec, self.spec.neuron
        n_in, n_rec, n_out = spec.n_in, spec.n_rec, spec.n_out
        copies, steps = self.copies, self.n_steps
        self.clock = Clock(dt=neuron.dt, name="mosaicnet_clock")
        # State resets (and noisy reads) happen at the start of every sample.
        self.sample_clock = Clock(dt=steps * neuron.dt, name="mosaicnet_sample_clock")
        # Noisy reads: every sample, or once at the start of every run (runs
        # always last sequential * steps: the last batch is padded).
        per_read = steps if self.read_every == "sample" else self.sequential * steps
        self.read_clock = Clock(dt=per_read * neuron.dt, name="mosaicnet_read_clock")
        self._stimulus_shape = (self.sequential * steps, copies * n_in)
        self.stimulus = TimedArray(np.zeros(self._stimulus_shape), dt=neuron.dt, name="stimulus")
        self._input_namespace: dict[str, Any] = {"stimulus": self.stimulus}
        self.input = NeuronGroup(
            copies * n_in,
            "t_start : second (shared)",
            threshold="stimulus(t - t_start, i) > 0.5",
            reset="",
            clock=self.clock,
            namespace=self._input_namespace,
            name="input",
        )
        model = neuron.model
        self.recurrent = NeuronGroup(
            copies * n_rec,
            model.equations,
            threshold=model.threshold,
            reset=model.reset,
            refractory=False if model.refractory is None else model.refractory,
            method=model.method,
            clock=self.clock,
            namespace=model.namespace(),
            name="recurrent",
        )
        self.readout = NeuronGroup(
            copies * n_out,
            neuron.readout_equations(),
            method="exact",
            clock=self.clock,
            namespace=neuron.readout_namespace(),
            name="readout",
        )
        self.resets = [
            self.recurrent.run_regularly(
                sample_reset_code(model, neuron.dt),
                clock=self.sample_clock,
                when="start",
                name="recurrent_sample_reset",
            ),
            self.readout.run_regularly(
                "v = 0", clock=self.sample_clock, when="start", name="readout_sample_reset"
            ),
        ]
        self.synapses: dict[str, Any] = {}
        self._indices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        pathways = {
            "w_in": (self.input, self.recurrent, model.input_target, np.ones((n_in, n_rec), bool)),
            "w_rec": (self.recurrent, self.recurrent, model.recurrent_target, spec.rec_mask),
            "w_out": (self.recurrent, self.readout, "v", np.ones((n_rec, n_out), bool)),
        }
        for name, (source, destination, variable, exists) in pathways.items():
            pre, post = np.nonzero(exists)
            n_pre, n_post = exists.shape
            offsets = np.arange(copies)[:, None]
            namespace = dict(self.form.namespace)
            increment = self.form.weight_name
            if destination is self.recurrent and "weight_unit" in model.constants:
                # Dimensionless weights into a target with units (NeuronModel docs).
                increment = f"{increment} * weight_unit"
                namespace["weight_unit"] = model.constants["weight_unit"]
            synapses = Synapses(
                source,
                destination,
                model=self.form.synapse_model,
                on_pre=f"{variable}_post += {increment}",
                clock=self.clock,
                namespace=namespace,
                name=_SYNAPSE_NAMES[name],
            )
            synapses.connect(i=(offsets * n_pre + pre).ravel(), j=(offsets * n_post + post).ravel())
            self.synapses[name] = synapses
            # Pre/post indices inside one copy, for each synapse in creation order.
            self._indices[name] = (np.tile(pre, copies), np.tile(post, copies))
            self._write_device_state(name, self.programmed[name])
            synapses.t_read = self.t_read_s * second
        self.noisy_reads = bool(self.form.read_noise)
        if self.standalone or self.noisy_reads:
            from brian2 import seed

            # Reproducible read noise (runtime: this also seeds numpy's legacy global RNG).
            seed(self.seed)
        if self.standalone:
            from brian2 import device

            # Values given later through run_args must be in place before the read.
            device.apply_run_args()
        self.readers = []
        for synapses in self.synapses.values():
            if self.noisy_reads:
                # A fresh read at the start of every sample (or run).
                self.readers.append(
                    synapses.run_regularly(
                        self.form.read_code,
                        clock=self.read_clock,
                        when="start",
                        name=f"{synapses.name}_read",
                    )
                )
            else:
                self.form.apply_read(synapses)
        objects = [self.input, self.recurrent, self.readout, *self.synapses.values()]
        self.network = Network(objects, name="mosaicnet_network")
        # Brian2 warns about objects deleted without ever running in a network;
        # these belong to one (a network built only to describe it never runs).
        for obj in self.network.objects:
            obj._network = self.network.id
        self.monitors: dict[str, Any] = {}
        self._make_monitors()

    def _make_monitors(self) -> None:
        from brian2 import SpikeMonitor, StateMonitor

        # Fixed names: the generated code is then identical for every batch and
        # Cython reuses its compiled modules.
        for monitor in self.monitors.values():
            self.network.remove(monitor)
        self.monitors = {}
        if "input" in self.record:
            self.monitors["input"] = SpikeMonitor(self.input, record=True, name="input_spikes")
        if "recurrent" in self.record:
            self.monitors["recurrent"] = SpikeMonitor(
                self.recurrent, record=True, name="recurrent_spikes"
            )
        if "readout" in self.record:
            self.monitors["readout"] = StateMonitor(
                self.readout, "v", record=True, when="end", name="readout_trace"
            )
        if "membrane" in self.record:
            self.monitors["membrane"] = StateMonitor(
                self.recurrent,
                self.spec.neuron.model.membrane,
                record=True,
                when="end",
                name="membrane_trace",
            )
        self.network.add(*self.monitors.values())

    def _write_device_state(self, name: str, programmed: Any) -> None:
        synapses = self.synapses[name]
        pre, post = self._indices[name]
        for variable, value in _device_values(programmed, pre, post).items():
            self._assign(synapses, variable, value)

    def _assign(self, synapses: Any, variable: str, value: Any) -> None:
        """Give a synaptic variable a new value: at the next run of a compiled program, else now."""
        if self.standalone and self.project is not None and self.project.built:
            # The compiled program takes it as a run_arg (no recompilation).
            self._run_args[(synapses.name, variable)] = (getattr(synapses, variable), value)
        else:
            setattr(synapses, variable, value)

    # ------------------------------------------------------------- the chip
    def program(self, programmed: Mapping[str, Any], *, t_read_s: float | None = None) -> None:
        """Replace the device state of some pathways (e.g. after chip-in-the-loop updates).

        Parameters
        ----------
        programmed
            Some of ``{"w_in", "w_rec", "w_out"}`` -> ``ProgrammedArray`` of the
            spec's shapes and device model.
        t_read_s
            New read time (seconds); default unchanged.

        Standalone networks take the new values at their next run (``run_args``,
        no recompilation).
        """
        unknown = set(programmed) - set(PATHWAYS)
        if unknown:
            raise ConfigError(f"unknown pathway(s) {sorted(unknown)}; use {PATHWAYS}")
        merged = {**self.programmed, **programmed}
        self._check_programmed(merged, self.t_read_s if t_read_s is None else float(t_read_s))
        self.programmed = merged
        for name in programmed:
            self._write_device_state(name, programmed[name])
        self._stale_read = self.standalone or self.noisy_reads
        if t_read_s is not None:
            self.set_read_time(t_read_s)
        elif not self.standalone and not self.noisy_reads:
            with self._code_prefs():
                for name in programmed:
                    self.form.apply_read(self.synapses[name])

    def program_copies(self, name: str, arrays: Sequence[Any]) -> None:
        """Program copy ``c`` of pathway ``name`` with ``arrays[c]`` (e.g. one readout per task).

        Parameters
        ----------
        name
            One of :data:`PATHWAYS`.
        arrays
            One ``ProgrammedArray`` per copy, of the spec's shape and device
            model, programmed no later than the read time; all with the same
            ``w_scale`` (a shared synaptic variable of the group).

        Runtime backends set the synaptic variables; standalone backends pass
        them to the next run of the compiled program (no recompilation).
        :attr:`programmed` keeps ``arrays[0]`` as the pathway's state.
        """
        if name not in PATHWAYS:
            raise ConfigError(f"unknown pathway {name!r}; choose from {PATHWAYS}")
        if len(arrays) != self.copies:
            raise ConfigError(f"{len(arrays)} arrays given for {self.copies} copies of {name}")
        first = arrays[0]
        for array in arrays:
            if array.w_scale != first.w_scale:
                raise ConfigError(
                    f"copies of {name} share one weight scale (a shared synaptic variable); "
                    f"got {array.w_scale} and {first.w_scale}"
                )
            self._check_programmed({**self.programmed, name: array}, self.t_read_s)
        pre, post = self._indices[name]
        per_copy = pre.size // self.copies
        parts = [_device_values(a, pre[:per_copy], post[:per_copy]) for a in arrays]
        synapses = self.synapses[name]
        for variable in parts[0]:
            if variable == "w_scale":  # shared: one value for all copies
                value = parts[0][variable]
            else:
                value = _concatenate([part[variable] for part in parts])
            self._assign(synapses, variable, value)
        self.programmed[name] = first
        self._stale_read = self.standalone or self.noisy_reads
        if not self.standalone and not self.noisy_reads:
            with self._code_prefs():
                self.form.apply_read(synapses)

    def _code_prefs(self) -> Any:
        """Context for code that Brian2 generates and runs now (runtime backends)."""
        if self.standalone:
            return contextlib.nullcontext()
        return brian_prefs(runtime_prefs(self.backend, self.exact))

    def set_read_time(self, t_read_s: float) -> None:
        """Read the devices at ``t_read_s`` seconds on the programming clock from now on."""
        from brian2 import second

        t_read = float(t_read_s)
        self._check_programmed(self.programmed, t_read)
        self.t_read_s = t_read
        self._stale_read = self.standalone or self.noisy_reads
        for synapses in self.synapses.values():
            self._assign(synapses, "t_read", t_read * second)
            if not self.standalone and not self.noisy_reads:
                with self._code_prefs():
                    self.form.apply_read(synapses)

    def weights_as_read(self) -> dict[str, np.ndarray]:
        """Dense effective weights ``{"w_in", "w_rec", "w_out"}`` of copy 0, as last read.

        Standalone networks read inside the program: if the device state or
        read time changed since their last run, this performs one run with an
        all-silent input. With read noise the values are one noisy read (the
        last sample's; runtime networks draw a fresh read when stale).
        """
        if self._stale_read:
            if self.standalone:
                self.run(np.zeros((1, self.n_steps, self.spec.n_in)))
            else:
                with self._code_prefs():
                    for synapses in self.synapses.values():
                        self.form.apply_read(synapses)
            self._stale_read = False
        weights = {}
        for name in PATHWAYS:
            pre, post = self._indices[name]
            n_copy = pre.size // self.copies
            values = np.asarray(getattr(self.synapses[name], self.form.weight_name)[:])
            dense = np.zeros(getattr(self.spec, name).shape)
            dense[pre[:n_copy], post[:n_copy]] = values[:n_copy]
            weights[name] = dense
        return weights

    def synapse_counts(self) -> dict[str, int]:
        """Number of Brian2 synapses per pathway and copy."""
        return {name: len(self.synapses[name]) // self.copies for name in PATHWAYS}

    # -------------------------------------------------------------------- run
    def run(self, x: Any, *, progress: bool = False) -> SimulationResult:
        """Simulate every sample of ``x`` (``(B, n_steps, n_in)`` counts or 0/1).

        Samples are processed ``samples_per_run`` at a time; the last batch is
        padded with silent samples whose results are dropped.
        """
        x = np.asarray(x)
        check_input_shape(x.shape, self.spec.n_in, self.n_steps)
        _check_counts(x)
        spikes = np.asarray(input_spikes(x), dtype=bool)
        n_samples = spikes.shape[0]
        outputs = self._empty_outputs(n_samples)
        per_run = self.samples_per_run
        starts = range(0, n_samples, per_run)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"Brian2 {self.backend}", unit="batch")
        wall = 0.0
        for start in starts:
            batch = spikes[start : start + per_run]
            tic = time.perf_counter()
            recorded = self._run_batch(batch)
            wall += time.perf_counter() - tic
            for key, array in recorded.items():
                outputs[key][start : start + batch.shape[0]] = array[: batch.shape[0]]
        self._stale_read = False
        return SimulationResult(
            input_spikes=outputs.get("input"),
            recurrent_spikes=outputs.get("recurrent"),
            readout=outputs.get("readout"),
            membrane=outputs.get("membrane"),
            backend=self.backend,
            dt_s=self.dt_s,
            wall_s=wall,
        )

    def _empty_outputs(self, n_samples: int) -> dict[str, np.ndarray]:
        sizes = {
            "input": (self.spec.n_in, bool),
            "recurrent": (self.spec.n_rec, bool),
            "readout": (self.spec.n_out, np.float64),
            "membrane": (self.spec.n_rec, np.float64),
        }
        return {
            key: np.zeros((n_samples, self.n_steps, sizes[key][0]), dtype=sizes[key][1])
            for key in self.record
        }

    def _stimulus_values(self, batch: np.ndarray) -> np.ndarray:
        """Lay a batch out as the TimedArray: rows are steps, columns copy-major channels."""
        steps, n_in = self.n_steps, self.spec.n_in
        padded = np.zeros((self.samples_per_run, steps, n_in))
        padded[: batch.shape[0]] = batch
        # sample b = copy * sequential + position
        laid = padded.reshape(self.copies, self.sequential, steps, n_in)
        return laid.transpose(1, 2, 0, 3).reshape(self._stimulus_shape)

    def _run_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        from brian2 import TimedArray, second

        values = self._stimulus_values(batch)
        duration = self.sequential * self.n_steps * self.dt_s * second
        if self.standalone:
            run_args = {self.stimulus: values}
            run_args.update({view: value for view, value in self._run_args.values()})
            self.project.run(run_args)
            first_step = 0
        else:
            self._make_monitors()
            self._input_namespace["stimulus"] = TimedArray(
                values, dt=self.spec.neuron.dt, name="stimulus"
            )
            first_step = int(round(float(self.network.t / second) / self.dt_s))
            self.input.t_start = self.network.t
            with self._code_prefs(), _frozen_garbage_collector():
                self.network.run(duration, namespace={})
        return self._collect(first_step)

    def _collect(self, first_step: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        sizes = {"input": self.spec.n_in, "recurrent": self.spec.n_rec}
        for key, size in sizes.items():
            if key in self.monitors:
                monitor = self.monitors[key]
                steps = np.rint(np.asarray(monitor.t_[:]) / self.dt_s).astype(np.int64)
                out[key] = self._spike_raster(np.asarray(monitor.i[:]), steps - first_step, size)
        for key, size in (("readout", self.spec.n_out), ("membrane", self.spec.n_rec)):
            if key in self.monitors:
                monitor = self.monitors[key]
                # Values in SI units (the trailing underscore): the clone's units.
                trace = np.asarray(
                    getattr(monitor, f"{monitor.record_variables[0]}_")[:], dtype=np.float64
                )
                # (copies * size, sequential * T) -> (copies * sequential, T, size)
                trace = trace.reshape(self.copies, size, self.sequential, self.n_steps)
                out[key] = trace.transpose(0, 2, 3, 1).reshape(
                    self.samples_per_run, self.n_steps, size
                )
        return out

    def _spike_raster(self, index: np.ndarray, step: np.ndarray, size: int) -> np.ndarray:
        raster = np.zeros((self.samples_per_run, self.n_steps, size), dtype=bool)
        copy, neuron = np.divmod(index, size)
        position, t = np.divmod(step, self.n_steps)
        raster[copy * self.sequential + position, t, neuron] = True
        return raster

    # ------------------------------------------------------------ description
    def describe(self) -> str:
        """Text of every group's equations, threshold, reset and synapse code."""
        from mosaicnet.network.neuron_brian import state_update_code
        from mosaicnet.network.neuron_update import exact_linear_update

        neuron = self.spec.neuron
        lines = [
            f"Brian2 network, backend {self.backend} "
            f"({'exact IEEE arithmetic' if self.exact else 'compiler default flags'}), "
            f"dt = {neuron.dt}, {self.n_steps} steps per sample, "
            f"{self.copies} copies x {self.sequential} samples per run",
            f"device model: {self.form.model.describe()}, read at t_read = {self.t_read_s:g} s "
            f"({'per sample, with read noise' if self.noisy_reads else 'once, noise-free'})",
            "",
            f"input: NeuronGroup({self.spec.n_in} per copy), threshold "
            f"'{self.input.events['spike']}' (stimulus = TimedArray of binary input spikes: "
            "a bin with any spike is one spike)",
        ]
        model = neuron.model
        recurrent_code = state_update_code(model, neuron.dt)
        readout_code = exact_linear_update(
            neuron.readout_equations(), neuron.readout_namespace(), neuron.dt
        ).code
        lines.append(
            f"recurrent: NeuronGroup({self.recurrent.N // self.copies} per copy), neuron model "
            f"{model.name!r}, method {model.method}"
        )
        if model.source:
            lines.append(f"    source: {model.source}")
        lines += [f"    {line}" for line in model.equations.splitlines()]
        lines.append(f"    threshold: {model.threshold}")
        lines.append("    reset: " + "; ".join(model.reset_statements()))
        if model.refractory is not None:
            lines.append(f"    refractory: {model.refractory}")
        lines.append(f"    one step (Brian2's {model.method} state updater):")
        lines += [f"        {line}" for line in recurrent_code.splitlines()]
        lines.append("    state reset at the start of every sample:")
        lines += [f"        {line}" for line in sample_reset_code(model, neuron.dt).splitlines()]
        lines.append(
            f"readout: NeuronGroup({self.readout.N // self.copies} per copy), method exact"
        )
        lines.append(f"    {neuron.readout_equations()}")
        lines.append("    one step (Brian2's exact integrator):")
        lines += [f"        {line}" for line in readout_code.splitlines()]
        lines.append("    state reset to 0 at the start of every sample")
        counts = self.synapse_counts()
        for name in PATHWAYS:
            synapses = self.synapses[name]
            lines.append(
                f"{synapses.name}: Synapses {synapses.source.name} -> {synapses.target.name}, "
                f"{counts[name]} synapses per copy"
            )
            lines.append(f"    on_pre: {synapses.pre.code}".rstrip())
        lines.append("    synapse model (all pathways):")
        lines += [f"        {line}" for line in self.form.synapse_model.splitlines()]
        lines.append("    read (effective weight from the devices at t_read):")
        lines += [f"        {line}" for line in self.form.read_code.splitlines()]
        constants = {
            **neuron.namespace(),
            **neuron.readout_namespace(),
            **self.form.namespace,
            "dt": neuron.dt,
        }
        lines.append("namespace: " + ", ".join(f"{k} = {v}" for k, v in constants.items()))
        return "\n".join(lines)

    # ------------------------------------------------------------------ close
    def close(self) -> None:
        """Remove the standalone build directory (if temporary). Idempotent."""
        if self.project is not None:
            self._finalizer()

    def __enter__(self) -> BrianNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"BrianNetwork(backend={self.backend!r}, n_in={self.spec.n_in}, "
            f"n_rec={self.spec.n_rec}, n_out={self.spec.n_out}, n_steps={self.n_steps}, "
            f"copies={self.copies}, sequential={self.sequential})"
        )


# ---------------------------------------------------------------------------
# One call
# ---------------------------------------------------------------------------


def default_batching(spec: NetworkSpec, backend: str, n_samples: int) -> tuple[int, int]:
    """``(copies, sequential)`` used by :func:`simulate` for ``n_samples`` samples.

    Runtime backends: as many copies as fit a budget of
    :data:`_RUNTIME_SYNAPSE_BUDGET` synapses (vectorised over copies), one
    sample each. Standalone: one copy, up to :data:`STANDALONE_SEQUENTIAL`
    samples back to back per program run.
    """
    if backend in RUNTIME_BACKENDS:
        per_copy = spec.n_in * spec.n_rec + int(spec.rec_mask.sum()) + spec.n_rec * spec.n_out
        return max(1, min(n_samples, _RUNTIME_SYNAPSE_BUDGET // max(per_copy, 1))), 1
    return 1, max(1, min(n_samples, STANDALONE_SEQUENTIAL))


def simulate(
    spec: NetworkSpec,
    x: Any,
    *,
    backend: str = "numpy",
    exact: bool = True,
    record: Iterable[str] = DEFAULT_RECORD,
    return_network: bool = False,
    copies: int | None = None,
    sequential: int | None = None,
    progress: bool = False,
    **network_options: Any,
) -> SimulationResult:
    """Build the spec's Brian2 network for ``x`` and simulate every sample.

    Parameters
    ----------
    spec
        The network.
    x
        ``(B, T, n_in)`` binned spike counts (or 0/1); a bin with any spike is
        one input spike (:func:`mosaicnet.network.spec.input_spikes`).
    backend
        ``"numpy"``, ``"cython"``, ``"cpp_standalone"`` (or ``"cuda_standalone"``).
    exact
        IEEE-exact compiled arithmetic (default; see ``brian_backends``).
    record
        Subset of :data:`RECORDABLE`.
    return_network
        Keep the :class:`BrianNetwork` (objects and monitors of the last batch)
        in the result; the caller then closes it.
    copies, sequential
        Batching (default :func:`default_batching`).
    progress
        Show a progress bar over batches.
    **network_options
        Passed to :class:`BrianNetwork` (``programmed``, ``t_read_s``, ``seed``, ...).

    Returns
    -------
    SimulationResult
    """
    x = np.asarray(x)
    check_input_shape(x.shape, spec.n_in)
    check_backend(backend)
    default_copies, default_sequential = default_batching(spec, backend, x.shape[0])
    network = BrianNetwork(
        spec,
        x.shape[1],
        backend=backend,
        exact=exact,
        copies=copies or default_copies,
        sequential=sequential or default_sequential,
        record=record,
        **network_options,
    )
    try:
        result = network.run(x, progress=progress)
    finally:
        if not return_network:
            network.close()
    if return_network:
        result.network = network
    return result


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _concatenate(values: list[Any]) -> Any:
    """Concatenate numpy arrays, or Brian2 quantities of one dimension."""
    from brian2 import Quantity

    joined = np.concatenate([np.asarray(value) for value in values])
    if isinstance(values[0], Quantity):
        return Quantity(joined, dim=values[0].dim)
    return joined


@contextlib.contextmanager
def _frozen_garbage_collector() -> Any:
    """Let Brian2's ``gc.collect()`` at every ``Network.run`` skip existing objects.

    Brian2 collects garbage at the start of each run (to warn about unused
    objects); with torch and matplotlib loaded that full collection took ~0.4 s,
    more than simulating a batch. ``gc.freeze`` moves the existing objects out
    of the collector's view for the run (nothing is freed later than it would
    be otherwise: they are unfrozen right after). Left alone if the caller froze
    objects already.
    """
    import gc

    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _second() -> Any:
    from brian2 import second

    return second


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_record(record: Iterable[str]) -> tuple[str, ...]:
    if isinstance(record, str):
        record = (record,)
    chosen = tuple(record)
    unknown = [key for key in chosen if key not in RECORDABLE]
    if unknown:
        raise ConfigError(f"cannot record {unknown}; choose from {RECORDABLE}")
    return tuple(key for key in RECORDABLE if key in chosen)


def _check_counts(x: np.ndarray) -> None:
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise ConfigError(f"input must be numeric spike counts, got dtype {x.dtype}")
    bad = ~np.isfinite(x) | (x < 0) if x.dtype != bool else np.zeros(x.shape, bool)
    if bad.any():
        sample, step, channel = (int(v) for v in np.argwhere(bad)[0])
        raise ConfigError(
            f"input holds {int(bad.sum())} negative or non-finite value(s), first in sample "
            f"{sample}, bin {step}, channel {channel} ({x[sample, step, channel]!r}); inputs are "
            "spike counts >= 0"
        )
