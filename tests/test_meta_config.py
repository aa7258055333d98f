"""TrainConfig: defaults, inner learning-rate schedule, JSON round trip, clear errors."""

from __future__ import annotations

import json

import pytest

from mosaicnet.errors import ConfigError
from mosaicnet.meta.config import TrainConfig, load_config, save_config


def test_published_configuration_values():
    published = TrainConfig.published()
    assert published.meta_batch == 256
    assert published.outer_lr == 1e-4
    assert published.resolved_inner_lr == 1.0
    assert published.inner_steps == 1
    assert (published.lambda_fr, published.target_rate, published.l2) == (0.01, 8.0, 0.01)
    assert published.prune_threshold == 5e-4
    assert published.held_out_classes == (11, 12, 4, 3, 0)
    assert (published.rows, published.cols, published.neurons_per_tile) == (8, 8, 4)
    assert published.spatial_stride == 3 and published.n_out == 20
    # The fixed schedule keeps lr 1 at every number of steps, as the published code did.
    assert TrainConfig.published(inner_steps=10).resolved_inner_lr == 1.0


@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_default_inner_lr_keeps_total_step_length(steps):
    config = TrainConfig(inner_steps=steps)
    assert config.resolved_inner_lr * steps == pytest.approx(1.0)
    assert TrainConfig(inner_steps=steps, inner_lr=0.3).resolved_inner_lr == 0.3


def test_json_round_trip(tmp_path):
    config = TrainConfig(seed=7, inner_steps=3, device_model="pcm_aihwkit", p_local=0.5,
                         hop_decay=0.2, held_out_classes=[1, 2])  # fmt: skip
    path = save_config(config, tmp_path / "config.json")
    assert load_config(path) == config
    assert json.loads(path.read_text())["held_out_classes"] == [1, 2]


def test_partial_config_file_takes_defaults(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"inner_steps": 4}))
    assert load_config(path) == TrainConfig(inner_steps=4)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"n_way": 21}, ["n_way=21", "readout", "n_out=20"]),
        ({"inner_steps": 0}, ["inner_steps", ">= 1"]),
        ({"layout": "ring"}, ["layout", "mosaic"]),
        ({"outer_lr": float("nan")}, ["outer_lr", "finite"]),
        ({"held_out_classes": (25,)}, ["held_out_classes", "[25]"]),
        ({"read_time_min_s": 10.0, "read_time_max_s": 1.0}, ["read_time_min_s", "range"]),
        ({"p_local": 0.5}, ["p_local", "hop_decay"]),
        ({"first_order": "yes"}, ["first_order", "true or false"]),
        ({"channel_shift": -3}, ["channel_shift", ">= 0"]),
    ],
)
def test_bad_parameters_are_named(changes, words):
    with pytest.raises(ConfigError) as error:
        TrainConfig(**changes)
    for word in words:
        assert word in str(error.value)


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)
    bad.write_text(json.dumps({"inner_stepz": 2}))
    with pytest.raises(ConfigError, match="inner_stepz"):
        load_config(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(bad)


def test_with_changes_rejects_unknown_fields():
    with pytest.raises(ConfigError, match="unknown training parameter"):
        TrainConfig().with_changes(inner_stepz=3)


def test_neuron_model_and_constants_are_configuration():
    from brian2 import ms

    config = TrainConfig(neuron_model="alif").with_changes(tau_a="1400*ms", inner_steps=2)
    assert config.inner_steps == 2 and config.neuron_constants == {
        "tau_a": "1.4000000000000001 * second"
    }
    neuron = config.neuron_parameters()
    assert neuron.model.name == "alif"
    assert float(neuron.model.constants["tau_a"] / ms) == pytest.approx(1400)
    assert float(neuron.dt / ms) == pytest.approx(14.0)  # one step per bin
    back = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config
    with pytest.raises(ConfigError, match="neuron model's constants"):
        config.with_changes(tau_x=1.0)
    with pytest.raises(ConfigError, match="unknown neuron model 'lifx'"):
        TrainConfig(neuron_model="lifx")
    with pytest.raises(ConfigError, match="has no constant 'beta'"):
        TrainConfig(neuron_constants={"beta": 1.0})  # the LIF has no beta


def test_channel_shift_reaches_only_meta_training_tasks():
    from mosaicnet.meta.run_setup import few_shot_config

    config = TrainConfig(channel_shift=4)
    assert few_shot_config(config, meta_train=True).channel_shift == 4
    assert few_shot_config(config).channel_shift == 0  # meta-test and validation tasks
    assert TrainConfig().channel_shift == 0  # the published protocol: no shift
