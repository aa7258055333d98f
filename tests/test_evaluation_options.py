"""EvaluationOptions: one set of defaults, validation naming the field, copies with changes."""

import pytest

from mosaicnet.errors import ConfigError
from mosaicnet.meta.evaluation_options import EvaluationOptions, resolve_options


def test_values_are_normalised():
    options = EvaluationOptions(backend="runtime", read_time_s="2h", readout_headroom=3)
    assert options.backend == "cython"
    assert options.read_time_s == 7200.0
    assert options.readout_headroom == 3.0 and isinstance(options.readout_headroom, float)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tasks": 0}, "tasks must be an integer >= 1, got 0"),
        ({"tasks": True}, "tasks must be an integer"),
        ({"inner_steps": 0}, "inner_steps must be an integer >= 1"),
        ({"tasks_per_run": -2}, "tasks_per_run must be an integer >= 1"),
        ({"protocol": "both"}, "protocol must be one of"),
        ({"backend": "loihi"}, "unknown backend 'loihi'; choose one of numpy, cython"),
        ({"readout_headroom": 0.5}, "readout_headroom must be 'auto' or a number >= 1"),
        ({"readout_headroom": "wide"}, "readout_headroom must be 'auto' or a number >= 1"),
        ({"read_time_s": "-1d"}, "negative"),
        ({"noise": "no"}, "noise must be True or False"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_values_name_the_field_not_a_flag(changes, message):
    with pytest.raises(ConfigError, match=message) as error:
        EvaluationOptions(**changes)
    assert "--" not in str(error.value)
    # with_changes validates the same way.
    with pytest.raises(ConfigError, match=message):
        EvaluationOptions().with_changes(**changes)


def test_auto_readout_headroom_follows_where_the_run_starts_its_tasks():
    from mosaicnet.meta.config import TrainConfig

    auto = EvaluationOptions()
    assert auto.readout_headroom == "auto"
    assert auto.for_run(TrainConfig()).readout_headroom == 2.0  # published: meta readout
    for start in ("prototype", "meta+prototype"):
        assert auto.for_run(TrainConfig(readout_init=start)).readout_headroom == 1.0
    fixed = EvaluationOptions(readout_headroom=3.0)
    assert fixed.for_run(TrainConfig(readout_init="prototype")) is fixed


def test_with_changes_copies_and_rejects_unknown_names():
    base = EvaluationOptions(tasks=7)
    changed = base.with_changes(noise=False)
    assert (changed.tasks, changed.noise, base.noise) == (7, False, True)
    with pytest.raises(ConfigError, match=r"unknown evaluation option\(s\) \['brian_device'\]"):
        base.with_changes(brian_device="numpy")
    with pytest.raises(AttributeError):
        base.tasks = 3  # frozen: an options object never changes under its users


def test_resolve_options_merges_keywords_into_an_object():
    assert resolve_options(None, {}) == EvaluationOptions()
    assert resolve_options(EvaluationOptions(seed=4), {"tasks": 2}) == EvaluationOptions(
        seed=4, tasks=2
    )
    with pytest.raises(ConfigError, match="options must be an EvaluationOptions"):
        resolve_options({"tasks": 2}, {})


def test_test_time_inner_steps_come_from_the_run_unless_given():
    from mosaicnet.meta.config import TrainConfig

    run = TrainConfig(inner_steps=10, test_inner_steps=100)
    assert EvaluationOptions().for_run(run).inner_steps == 100
    assert EvaluationOptions(inner_steps=7).for_run(run).inner_steps == 7  # the option wins
    assert EvaluationOptions().for_run(TrainConfig(inner_steps=10)).inner_steps is None
    for bad in (0, -3, 2.5, True, "100"):
        with pytest.raises(ConfigError, match="test_inner_steps must be null"):
            TrainConfig(test_inner_steps=bad)
