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


def test_default_space_ranges_match_the_issue():
    space = {p.name: p for p in get_space("default").params}
    lr = space["learning_rate"]
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
    assert (space["dropout"].low, space["dropout"].high) == (0.0, 0.7)
    assert {"base_width", "width_growth", "width_cap", "l2", "batch_size", "optimizer"} <= set(
        space
    )


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
