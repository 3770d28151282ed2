"""Search spaces: the registry, YAML validation errors and the mapping onto TrainConfig."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from covidxr_core.errors import ConfigError
from search_spaces import Param, SearchSpace, available_spaces, get_space, parse_space


def test_builtin_spaces_are_listed_and_load():
    names = available_spaces()
    assert {"default", "recipe"} <= set(names)
    for name in names:
        space = get_space(name)
        assert space.params, name
        assert all(
            isinstance(d, optuna.distributions.BaseDistribution) for d in space.to_optuna().values()
        )


def test_default_space_is_centred_on_the_sensible_default():
    space = get_space("default")
    params = {p.name: p for p in space.params}
    lr = params["learning_rate"]
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True)  # the default's 1e-3 in the middle
    assert space.base == "default" and space.preset == "default"
    assert set(params["lr_schedule"].choices) == {"constant", "cosine", "inverse_time"}
    # The recipe's decay stays reachable: inverse_time at 0.9 per step.
    assert space.contains("lr_decay", 0.9) and space.contains("lr_schedule", "inverse_time")
    assert {"base_width", "width_growth", "width_cap", "l2", "batch_size", "optimizer"} <= set(
        params
    )


def _config(preset_name: str):
    from covidxr_core.config import preset
    from covidxr_core.train import TrainConfig

    return TrainConfig(model=preset(preset_name, image_size=96, channels=1), epochs=6, seed=0)


@pytest.mark.parametrize("name", ["default", "small"])
def test_builtin_spaces_hold_the_sensible_default_and_rebuild_it(name):
    space = get_space(name)
    base, default = _config(space.preset), _config("default")
    values, why = space.point_of(default, base)
    assert values is not None, why
    assert space.apply(values, base) == default


def test_recipe_space_holds_the_recipe_not_the_default():
    space = get_space("recipe")
    base = _config(space.preset)
    values, _ = space.point_of(_config("seed"), base)
    assert values is not None and space.apply(values, base) == _config("seed")
    none, why = space.point_of(_config("default"), base)
    assert none is None and "base_width" in why and "outside" in why


def test_held_fixed_lists_every_unsearched_value():
    recipe = get_space("recipe")
    held = recipe.held_fixed(_config(recipe.preset))
    # The recipe's decay was the hidden constant of every trial: now it is said.
    assert held["lr_schedule"] == "inverse_time" and held["lr_decay"] == 0.9
    assert held["optimizer"] == "adagrad" and held["epochs"] == 6 and held["image_size"] == 96
    small = get_space("small")
    held = small.held_fixed(_config(small.preset))
    assert held["optimizer"] == "adam" and held["width_cap"] == 128 and held["width_growth"] == 2
    assert "learning_rate" not in held and "base" in held


def test_a_user_space_can_add_starting_points(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "params:\n  dropout: {type: float, low: 0.1, high: 0.5}\n"
        "  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
        "starts:\n  - {dropout: 0.2}\n"
    )
    space = get_space(str(path))
    assert space.starts == ({"dropout": 0.2},)
    path.write_text(
        "params:\n  dropout: {type: float, low: 0.1, high: 0.5}\nstarts:\n  - {dropout: 0.9}\n"
    )
    with pytest.raises(ConfigError, match=r"mine.yaml: starts\[1\]: `dropout` = 0.9 is outside"):
        get_space(str(path))
    path.write_text(
        "params:\n  dropout: {type: float, low: 0.1, high: 0.5}\nstarts:\n  - {l2: 0.1}\n"
    )
    with pytest.raises(ConfigError, match=r"starts\[1\]: unknown searched parameter `l2`"):
        get_space(str(path))
    path.write_text("params:\n  dropout: {type: float, low: 0.1, high: 0.5}\nbase: best\n")
    with pytest.raises(ConfigError, match=r"`base` must be one of default, recipe, but got 'best'"):
        get_space(str(path))


def test_recipe_space_only_varies_lr_dropout_and_widths():
    names = set(get_space("recipe").names)
    assert names <= {"learning_rate", "dropout", "base_width", "width_growth", "width_cap"}
    assert {"learning_rate", "dropout"} <= names


def test_unknown_space_name_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown search space 'nope'.*default.*recipe"):
        get_space("nope")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"learing_rate": {"type": "float", "low": 0.1, "high": 1}},
            r"unknown parameter `learing_rate`.*valid names",
        ),
        (
            {"dropout": {"type": "float", "low": 0.6, "high": 0.1}},
            r"`low <= high` must hold, but got \(low=0.6, high=0.1\)",
        ),
        (
            {"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}},
            r"log scale needs `low > 0`, but got low=0",
        ),
        (
            {"optimizer": {"type": "categorical", "choices": []}},
            r"`choices` must be a non-empty list",
        ),
        ({"dropout": {"type": "uniform", "low": 0, "high": 1}}, r"`type` must be one of"),
        ({"batch_size": {"type": "int", "low": 8.5, "high": 64}}, r"int bounds must be integers"),
        ({"horizontal_flip": {"type": "float", "low": 0, "high": 1}}, r"use type categorical"),
    ],
)
def test_invalid_spaces_fail_with_the_rule_and_value(params, message):
    with pytest.raises(ConfigError, match=message):
        parse_space({"params": params}, name="mine", source="mine.yaml")


def test_user_yaml_by_path(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "params:\n  dropout: {type: float, low: 0.1, high: 0.3}\nfixed:\n  optimizer: adam\n"
    )
    space = get_space(str(path))
    assert space.names == ("dropout",)
    assert space.fixed == {"optimizer": "adam"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  dropout: {type: float, low: 0.5, high: 0.3}\n")
    with pytest.raises(ConfigError, match=str(bad)):
        get_space(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        get_space(str(tmp_path / "missing.yaml"))


def test_apply_maps_values_onto_a_train_config():
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig

    base = TrainConfig(model=preset("seed", image_size=64, channels=1), epochs=3)
    space = get_space("default")
    config = space.apply(
        {
            "learning_rate": 0.01,
            "dropout": 0.2,
            "base_width": 4,
            "width_growth": 2.0,
            "width_cap": 32,
            "l2": 1e-4,
            "batch_size": 16,
            "optimizer": "adam",
        },
        base,
    )
    assert config.model.widths == (4, 8, 16, 32, 32, 32)
    assert config.model.learning_rate == 0.01
    assert config.model.optimizer == "adam"
    assert config.batch_size == 16
    assert config.epochs == 3
    assert config.model.image_size == 64
    # the base is untouched: configs are frozen values
    assert base.model.widths == (2, 4, 8, 16, 32, 64)


def test_apply_rejects_an_invalid_model_config():
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig

    base = TrainConfig(model=preset("seed", image_size=64, channels=1))
    # parse_space refuses this range (test_space_checks.py); a space built in code still
    # cannot smuggle the value past the model's own check.
    space = SearchSpace("x", (Param("dropout", "float", low=0.0, high=1.5),))
    with pytest.raises(ConfigError, match="dropout"):
        space.apply({"dropout": 1.2}, base)
