"""Neuron models as Brian2 code: presets, the user's own models, the compiled clone, errors.

The clone of every model is compiled from its Brian2 code; these tests hold
it to Brian2 (spike for spike on numpy here; cython and cpp_standalone in the
slow tests of test_network_equivalence.py), check the derivatives of the
compiled graph, and check that bad models fail before anything is built,
naming the line and the fix.
"""

import json

import numpy as np
import pytest
import torch
from brian2 import ms, mV, second

from mosaicnet.cli import main
from mosaicnet.errors import ConfigError
from mosaicnet.network.equivalence import check_equivalence, random_input, random_mosaic_spec
from mosaicnet.network.neuron_compiler import compile_neuron
from mosaicnet.network.neuron_model import NeuronModel, load_model_file
from mosaicnet.network.neuron_presets import PRESETS, alif, lif, neuron_model
from mosaicnet.network.quantities import format_quantity, parse_quantity
from mosaicnet.network.spec import NeuronParameters
from mosaicnet.network.torch_clone import TorchClone

DT = 14 * ms

#: Written only here: a quadratic (non-linear) leak, integrated with Euler.
QUADRATIC = NeuronModel(
    name="quadratic_leak",
    equations="dv/dt = (-v + v**2 / v_q) / tau_mem : 1",
    threshold="v > thr",
    reset="v = 0.2",
    method="euler",
    constants={"tau_mem": 420 * ms, "v_q": 4.0, "thr": 2.0},
)
#: Written only here: a two-compartment linear neuron (dendrite d drives soma v), rk4.
TWO_COMPARTMENT = NeuronModel(
    name="two_compartment",
    equations="""
        dv/dt = (-v + g_c * (d - v)) / tau_mem : 1
        dd/dt = (-d + g_c * (v - d)) / tau_d : 1
    """,
    threshold="v > thr",
    reset="v -= thr",
    method="rk4",
    input_target="d",
    recurrent_target="v",
    constants={"tau_mem": 420 * ms, "tau_d": 140 * ms, "g_c": 0.5, "thr": 1.0},
)
#: Written only here: a membrane in millivolts, with weight_unit and a resting potential.
MILLIVOLT = NeuronModel(
    name="millivolt_lif",
    equations="dv/dt = (v_rest - v) / tau_mem : volt",
    threshold="v > v_th",
    reset="v = v_rest",
    constants={"tau_mem": 420 * ms, "v_rest": -70 * mV, "v_th": -68 * mV, "weight_unit": 1 * mV},
    initial={"v": -70 * mV},
)


# ------------------------------------------------------------------------------ quantities
@pytest.mark.parametrize("text", ["700*ms", "2.5*mV", "3*nA/mV", "-1e4*second", "0.3", "(2*ms)**2"])
def test_quantity_text_round_trips_exactly(text):
    value = parse_quantity(text)
    assert parse_quantity(format_quantity(value)) == value


@pytest.mark.parametrize(
    "text, match",
    [
        ("__import__('os')", "only numbers"),
        ("7*parsec", "not a Brian2 unit"),
        ("1*ms+1*mV", "units"),
    ],
)
def test_quantity_text_rejects_code_and_unknown_units(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_quantity(text)


# ------------------------------------------------------------------------- the description
@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips_through_json_and_shows_its_code(name):
    model = neuron_model(name)
    back = NeuronModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert back == model
    code = model.code()
    assert model.equations in code and f"threshold={model.threshold!r}" in code
    assert model.source  # every preset cites where it comes from


def test_constants_change_by_keyword_and_text_with_unit_checks():
    model = alif(tau_a="1400*ms")
    assert float(model.constants["tau_a"] / ms) == pytest.approx(1400)
    assert float(model.with_constants(beta=0.5).constants["beta"]) == 0.5
    with pytest.raises(ConfigError, match="has no constant 'tau_b'.*beta, tau_a, tau_mem, thr"):
        model.with_constants(tau_b=5 * ms)
    with pytest.raises(ConfigError, match="other units"):
        model.with_constants(tau_a=5 * mV)


def test_reset_statements_split_on_semicolons_as_in_brian2():
    model = NeuronModel(
        name="x",
        equations="dv/dt = -v/tau : 1\nda/dt = -a/tau : 1",
        threshold="v > 1",
        reset="v -= 1; a += 0.1",
        constants={"tau": 100 * ms},
    )
    assert model.reset_statements() == ["v -= 1", "a += 0.1"]


def test_models_load_from_json_and_python_files(tmp_path):
    json_file = tmp_path / "quadratic.json"
    json_file.write_text(json.dumps(QUADRATIC.to_dict()))
    assert load_model_file(json_file) == QUADRATIC
    py_file = tmp_path / "mine.py"
    py_file.write_text(
        "from brian2 import ms\n"
        "from mosaicnet.network.neuron_model import NeuronModel\n"
        "neuron_model = NeuronModel(name='mine', equations='dv/dt = -v / tau : 1',\n"
        "    threshold='v > 1', reset='v = 0', constants={'tau': 100*ms})\n"
    )
    assert neuron_model(py_file, tau=50 * ms).constants["tau"] == 50 * ms
    with pytest.raises(ConfigError, match="unknown neuron model 'lfi'.*lif, cuba_lif"):
        neuron_model("lfi")
    with pytest.raises(ConfigError, match="does not exist"):
        neuron_model(tmp_path / "missing.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines 0 NeuronModel"):
        neuron_model(tmp_path / "empty.py")


# --------------------------------------------------------------------- errors, before use
def _model(**changes):
    base = {
        "name": "user",
        "equations": "dv/dt = -v / tau : 1\nda/dt = -a / tau_a : 1",
        "threshold": "v > thr",
        "reset": "v -= thr\na += 1",
        "constants": {"tau": 420 * ms, "tau_a": 700 * ms, "thr": 2.0},
    }
    base.update(changes)
    return NeuronModel(**base)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"equations": "dv/dt = -v / tau"}, "Brian2 rejects the equations"),
        (
            {"equations": "dv/dt = -v / tau : 1\nda/dt = -a / tau_b : 1"},
            r"equations line 2 \('da/dt = -a / tau_b : 1'\) uses tau_b.*add it to the model's",
        ),
        ({"threshold": "u > thr"}, "threshold 'u > thr' uses u"),
        ({"threshold": "v > thr and a < 1"}, "combines conditions"),
        ({"threshold": "v + thr"}, "one comparison"),
        (
            {"reset": "v -= thr\nthr = 1"},
            r"reset line 2 \('thr = 1'\) assigns 'thr', which is not "
            "a state variable",
        ),
        ({"reset": "v -= thr\na += b"}, r"reset line 2 \('a \+= b'\) uses b"),
        ({"reset": "v -= 1*mV"}, r"reset line 1 .* inconsistent units"),
        (
            {"constants": {"tau": 420 * mV, "tau_a": 700 * ms, "thr": 2.0}},
            r"equations line 1 .* inconsistent units",
        ),
        (
            {"equations": "dv/dt = -v**2 / tau : 1\nda/dt = -a / tau_a : 1"},
            "cannot integrate the equations with method 'exact'.*'euler'",
        ),
        ({"input_target": "I"}, "input_target 'I' is not a state variable"),
        (
            {"equations": "dv/dt = -v / tau : 1 (unless refractory)\nda/dt = -a / tau_a : 1"},
            "flagged \\(unless refractory\\) but the model has no refractory period",
        ),
        (
            {"method": "euler", "constants": {"tau": 5 * ms, "tau_a": 700 * ms, "thr": 2.0}},
            "method 'euler' is unstable at dt = 14 ms",
        ),
        ({"method": "runge"}, "unknown method 'runge'"),
        (
            {
                "equations": "dv/dt = -v / tau : volt\nda/dt = -a / tau_a : 1",
                "reset": "a += 1",
                "threshold": "a > thr",
            },
            "define a constant weight_unit",
        ),
        (
            {"equations": "dt_prog/dt = -t_prog / tau : 1\ndv/dt = -v / tau : 1"},
            "memristive synapse variable",
        ),
    ],
)
def test_bad_models_fail_before_compilation_naming_the_line_and_fix(changes, match):
    with pytest.raises(ConfigError, match=match):
        NeuronParameters(model=_model(**changes), dt=DT)


def test_oscillating_linear_model_with_exact_method_names_exponential_euler():
    # Brian2's exact solution takes sqrt of a negative number here (and gives NaN).
    model = neuron_model("adlif")
    exact = NeuronModel(**{**model.to_dict(), "method": "exact"})
    with pytest.raises(ConfigError, match="exponential_euler"):
        NeuronParameters(model=exact, dt=DT)


def test_rk4_is_accepted_where_euler_is_unstable():
    constants = {"tau": 6 * ms, "tau_a": 700 * ms, "thr": 2.0}  # dt / tau = 2.3
    with pytest.raises(ConfigError, match="unstable"):
        NeuronParameters(model=_model(method="euler", constants=constants), dt=DT)
    NeuronParameters(model=_model(method="rk4", constants=constants), dt=DT)


# ------------------------------------------------------------ exactness against Brian2
@pytest.mark.parametrize(
    "model", [*PRESETS, QUADRATIC, TWO_COMPARTMENT, MILLIVOLT], ids=lambda m: getattr(m, "name", m)
)
def test_clone_equals_brian2_numpy_spike_for_spike(model):
    report = check_equivalence(
        seeds=(0,), backends=("numpy",), models=[model], n_samples=4, n_steps=60
    )
    (case,) = report.cases
    assert case.spike_mismatches == 0
    assert case.max_readout_diff < 1e-9
    assert 0.02 < case.firing_fraction < 0.35  # neither silent nor saturated


def test_the_comparison_can_fail_for_a_wrong_reset():
    """A clone whose model differs from Brian2's in one reset statement mismatches."""
    from mosaicnet.network.brian_network import simulate
    from mosaicnet.network.equivalence import compare_with_clone

    spec = random_mosaic_spec(2, model="alif", gain=8.0)
    x = random_input(3, 4, 60, spec.n_in)
    result = simulate(spec, x, record=("recurrent", "readout"), read_noise=False)
    wrong_model = NeuronModel(**{**spec.neuron.model.to_dict(), "reset": "v -= thr\na += 0.5"})
    wrong = spec.copy_with(neuron=NeuronParameters(model=wrong_model))
    weights = {name: getattr(spec, name) for name in ("w_in", "w_rec", "w_out")}
    mismatches, _, spikes = compare_with_clone(wrong, x, result, weights)
    assert result.recurrent_spikes.mean() > 0.05
    assert mismatches > 20


def test_refractory_neurons_stay_silent_for_the_refractory_steps():
    spec = random_mosaic_spec(1, model="lif_refractory", gain=16.0)
    clone = TorchClone(spec, dtype=torch.float64)
    z = clone.recurrent_spikes(clone.init_params(), torch.ones(2, 40, spec.n_in))
    steps = clone.neuron.refractory_steps
    assert steps == 2 and z.mean() > 0.1
    # a spike at step t is followed by no spike in the next steps - 1 steps
    for lag in range(1, steps):
        assert not torch.any((z[:, :-lag] > 0) & (z[:, lag:] > 0))


# ------------------------------------------------------------------ the compiled graph
def _smooth_spike(x):
    return torch.sigmoid(4.0 * x)


@pytest.mark.parametrize(
    "model", [*PRESETS, QUADRATIC, TWO_COMPARTMENT], ids=lambda m: getattr(m, "name", m)
)
def test_compiled_graph_passes_gradcheck_in_float64(model):
    """With a smooth stand-in for the Heaviside, every compiled operation (update,
    threshold, reset, synaptic delivery) has the derivative autograd reports."""
    spec = random_mosaic_spec(0, model=model, rows=1, cols=1, neurons_per_tile=4, n_in=3, n_out=2)
    # The reference loop: its spike function is the one swapped for a smooth one.
    clone = TorchClone(spec, dtype=torch.float64, fused=False)
    clone._spike = _smooth_spike
    params = clone.init_params()
    x = torch.as_tensor(random_input(1, 2, 8, 3, p=0.4))

    def output(w_in, w_rec):
        return clone.forward({**params, "w_in": w_in, "w_rec": w_rec}, x)[1]

    inputs = (params["w_in"].requires_grad_(), params["w_rec"].requires_grad_())
    assert torch.autograd.gradcheck(output, inputs)


@pytest.mark.parametrize("name", ["lif", "cuba_lif", "alif", "adlif"])
def test_affine_form_reproduces_one_compiled_step(name):
    compiled = compile_neuron(neuron_model(name), DT)
    form = compiled.affine
    assert form is not None
    rng = np.random.default_rng(0)
    old = rng.normal(size=(len(compiled.states), 6))
    state = compiled.initial_state(torch.zeros(1, 6, dtype=torch.float64))
    state.values = {n: torch.tensor(old[k][None]) for k, n in enumerate(compiled.states)}
    compiled.integrate(state, None, 0.0)
    new = np.stack([state.values[n][0].numpy() for n in compiled.states])
    np.testing.assert_allclose(
        new, form.update.matrix @ old + form.update.offset[:, None], rtol=1e-12
    )
    distance = compiled.threshold_distance(state)[0][0].numpy()
    np.testing.assert_allclose(
        distance, form.threshold_weights @ new - form.threshold_offset, rtol=1e-12, atol=1e-12
    )
    z = torch.ones(1, 6, dtype=torch.float64)
    compiled.reset(state, z, 0)
    reset = np.stack([state.values[n][0].numpy() for n in compiled.states])
    np.testing.assert_allclose(
        reset, form.reset_matrix @ new + form.reset_offset[:, None], rtol=1e-12, atol=1e-12
    )


def test_refractory_and_nonlinear_models_have_no_affine_form():
    assert compile_neuron(neuron_model("lif_refractory"), DT).affine is None
    assert compile_neuron(QUADRATIC, DT).affine is None
    assert compile_neuron(QUADRATIC, DT).update is None  # run statement by statement


def test_lif_preset_is_the_format1_model_bit_for_bit():
    """The preset's compiled constants are the ones the hand-written clone used."""
    compiled = compile_neuron(lif(), DT)
    assert compiled.update.coefficient("v", "v") == float(np.exp(-DT / (420 * ms)))
    assert compiled.values["thr"] == 2.0


# ------------------------------------------------------------------------- command line
def test_check_equivalence_cli_takes_presets_and_files(tmp_path, capsys):
    path = tmp_path / "quadratic.json"
    path.write_text(json.dumps(QUADRATIC.to_dict()))
    code = main(
        [
            "check-equivalence",
            "--neuron-model",
            "alif",
            "--neuron-model",
            str(path),
            "--samples",
            "3",
            "--steps",
            "40",
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [case["neuron_model"] for case in data["cases"]] == ["alif", "quadratic_leak"]
    assert data["spike_mismatches"] == 0
    assert main(["check-equivalence", "--neuron-model", "nope"]) == 2
    assert "unknown neuron model 'nope'" in capsys.readouterr().err


def test_units_of_a_millivolt_model_are_si_in_the_clone():
    compiled = compile_neuron(MILLIVOLT, DT)
    assert compiled.initial["v"] == pytest.approx(-0.070)
    assert compiled.weight_unit == pytest.approx(1e-3)
    assert float(MILLIVOLT.constants["v_th"] / second * second / mV) == pytest.approx(-68)


@pytest.mark.slow
def test_every_preset_and_a_users_model_equal_brian2_on_all_cpu_backends():
    """numpy, cython and cpp_standalone (one compiled program per model)."""
    models = [*PRESETS, QUADRATIC, TWO_COMPARTMENT]
    report = check_equivalence(
        seeds=(4,), backends=("numpy", "cython", "cpp_standalone"), models=models, n_samples=8,
        n_steps=60,
    )  # fmt: skip
    print(report.summary())
    assert len(report.cases) == 3 * len(models)
    assert report.spike_mismatches == 0
    assert report.backend_spike_mismatches == 0
    assert report.max_readout_diff < 1e-9
    for case in report.cases:
        assert 0.02 < case.firing_fraction < 0.35
