"""A YAML space is checked whole when it is loaded: legal ranges, duplicate and stray keys.

Each bad file is written to disk and loaded the way `--space FILE.yaml` loads it, so the
message the user reads is the one asserted (file, parameter or key, rule, value).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from covidxr_core.errors import ConfigError
from search_spaces import KNOWN_PARAMS, get_space, load_space_file
from search_spaces._params import LEGAL


def _space(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_space_file(path)
    message = str(info.value)
    assert "\n" not in message, message  # one line
    assert message.startswith(str(path)), message  # names the file first
    return message


@pytest.mark.parametrize(
    ("param", "rule", "value"),
    [
        ("dropout: {type: float, low: 0.5, high: 1.5}", "`0 <= dropout < 1` must hold", "1.5"),
        ("dropout: {type: float, low: 0.0, high: 1.0}", "`0 <= dropout < 1` must hold", "1.0"),
        ("learning_rate: {type: float, low: -0.1, high: 0.1}", "`learning_rate > 0`", "-0.1"),
        ("l2: {type: float, low: -1.0e-3, high: 0.1}", "`l2 >= 0` must hold", "-0.001"),
        ("momentum: {type: float, low: 0.5, high: 1.0}", "`0 <= momentum < 1`", "1.0"),
        ("lr_decay: {type: float, low: -1, high: 1}", "`lr_decay >= 0`", "-1"),
        ("batch_size: {type: int, low: 0, high: 64}", "`batch_size >= 1` must hold", "0"),
        ("batch_size: {type: categorical, choices: [16, 0]}", "`batch_size >= 1`", "0"),
        ("base_width: {type: int, low: 0, high: 8}", "`base_width >= 1` must hold", "0"),
        ("width_3: {type: categorical, choices: [8, -2]}", "`width_3 >= 1` must hold", "-2"),
        ("width_growth: {type: float, low: 0.0, high: 2.0}", "`width_growth > 0`", "0.0"),
        ("kernel_size: {type: categorical, choices: [3, 4]}", "`kernel_size >= 1, odd`", "4"),
        ("kernel_size: {type: int, low: 3, high: 7}", "`kernel_size >= 1, odd`", "high=7"),
        ("dense_units: {type: int, low: -8, high: 8}", "`dense_units >= 0`", "-8"),
        ("rotation_deg: {type: float, low: 0, high: 270}", "`0 <= rotation_deg <= 180`", "270"),
        ("shear_deg: {type: float, low: -5, high: 5}", "`0 <= shear_deg <= 180`", "-5"),
        ("zoom: {type: float, low: 0.0, high: 1.0}", "`0 <= zoom < 1` must hold", "1.0"),
        ("width_shift: {type: float, low: 0.0, high: 1.2}", "`0 <= width_shift < 1`", "1.2"),
        ("height_shift: {type: categorical, choices: [0.1, 1]}", "`0 <= height_shift < 1`", "1"),
        (
            "optimizer: {type: categorical, choices: [adam, adamw]}",
            "`optimizer in {adagrad, adam, sgd}` must hold",
            "'adamw'",
        ),
        ("learning_rate: {type: float, low: 0.0, high: 0.1, log: true}", "low > 0", "low=0.0"),
        ("kernel_size: {type: float, low: 3, high: 5}", "use type int", "not float"),
        ("vertical_flip: {type: categorical, choices: [false, maybe]}", "true or false", "maybe"),
    ],
)
def test_an_illegal_value_is_refused_naming_the_parameter_rule_and_value(
    tmp_path: Path, param: str, rule: str, value: str
) -> None:
    name = param.split(":")[0]
    message = _refused(_space(tmp_path, f"params:\n  {param}\n"))
    assert f"`{name}`" in message and rule in message and value in message, message


def test_a_fixed_value_is_range_checked_too(tmp_path: Path) -> None:
    path = _space(
        tmp_path,
        "params:\n  dropout: {type: float, low: 0.1, high: 0.3}\nfixed:\n  momentum: 1.0\n",
    )
    message = _refused(path)
    assert "`momentum`" in message and "`0 <= momentum < 1` must hold" in message
    assert "fixed value is 1.0" in message
    bad_fixed = _space(
        tmp_path, "params:\n  dropout: {type: float, low: 0, high: 0.3}\nfixed: [1]\n"
    )
    assert "`fixed` must be a mapping" in _refused(bad_fixed)


def test_every_numeric_parameter_has_a_legal_range() -> None:
    numeric = {n for n, spec in KNOWN_PARAMS.items() if spec.kind in (int, float)}
    assert numeric <= set(LEGAL), sorted(numeric - set(LEGAL))
    from covidxr_core.config import OPTIMIZER_NAMES
    from covidxr_core.model import OPTIMIZERS

    assert set(LEGAL["optimizer"].choices) == set(OPTIMIZERS) == set(OPTIMIZER_NAMES)


def test_legal_ranges_agree_with_the_model_and_augment_configs() -> None:
    """A value at each legal edge builds; just past it, the model's own check refuses too."""
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig

    base = TrainConfig(model=preset("seed", image_size=64, channels=1))
    space = get_space("default")
    edges = {"dropout": (0.0, 0.999), "zoom": (0.0, 0.999), "rotation_deg": (0.0, 180.0)}
    for name, values in edges.items():
        for value in values:
            assert LEGAL[name].allows(value)
            space.apply({name: value}, base)  # builds
    for name, value in {"dropout": 1.0, "zoom": 1.0, "rotation_deg": 181.0, "l2": -1.0}.items():
        assert not LEGAL[name].allows(value)
        with pytest.raises(ConfigError, match=name):
            space.apply({name: value}, base)


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (
            "params:\n  dropout: {type: float, low: 0.1, high: 0.3}\n"
            "  dropout: {type: float, low: 0.4, high: 0.6}\n",
            "dropout",
            3,
        ),
        ("params:\n  dropout: {type: float, low: 0.1, low: 0.2, high: 0.3}\n", "low", 2),
        (
            "params:\n  dropout:\n    type: float\n    low: 0.1\n    high: 0.3\n    high: 0.5\n",
            "high",
            6,
        ),
        (
            "params:\n  dropout: {type: float, low: 0.1, high: 0.3}\nparams:\n  zoom: {}\n",
            "params",
            3,
        ),
        (
            "params:\n  dropout: {type: float, low: 0.1, high: 0.3}\n"
            "fixed:\n  optimizer: adam\n  optimizer: sgd\n",
            "optimizer",
            5,
        ),
    ],
)
def test_a_duplicate_key_is_refused_with_its_line(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    message = _refused(_space(tmp_path, text))
    assert f"duplicate key `{key}` at line {line}" in message, message


def test_yaml_merge_keys_may_still_override(tmp_path: Path) -> None:
    path = _space(
        tmp_path,
        "params:\n  dropout: &d {type: float, low: 0.1, high: 0.3}\n  zoom: {<<: *d, high: 0.2}\n",
    )
    space = load_space_file(path)
    zoom = {p.name: p for p in space.params}["zoom"]
    assert (zoom.low, zoom.high) == (0.1, 0.2)


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        (
            "dropout: {type: float, low: 0.1, hihg: 0.3}",
            "unknown key `hihg` (did you mean `high`?) in parameter `dropout` "
            "(allowed: type, low, high, log, choices)",
        ),
        ("dropout: {type: float, low: 0.1}", "parameter `dropout`: `high` is missing"),
        (
            "dropout: {type: float, low: 0.1, high: 0.3, choices: [0.2]}",
            "key `choices` does not apply to type float",
        ),
        (
            "optimizer: {type: categorical, choices: [adam], low: 1}",
            "key `low` does not apply to type categorical",
        ),
        ("dropout: {type: float, low: 0.1, high: 0.3, log: yes please}", "`log` must be true"),
    ],
)
def test_a_stray_or_missing_key_is_named(tmp_path: Path, param: str, expected: str) -> None:
    message = _refused(_space(tmp_path, f"params:\n  {param}\n"))
    assert expected in message, message
    assert "None" not in message, message


@pytest.mark.parametrize("name", ["rotate_deg", "vflip", "shift_x"])
def test_an_unknown_augmentation_name_is_refused_like_any_parameter(
    tmp_path: Path, name: str
) -> None:
    message = _refused(_space(tmp_path, f"params:\n  {name}: {{type: float, low: 0, high: 5}}\n"))
    assert f"unknown parameter `{name}`" in message and "rotation_deg" in message, message
    fixed = _space(
        tmp_path, f"params:\n  dropout: {{type: float, low: 0, high: 0.3}}\nfixed:\n  {name}: 1\n"
    )
    assert f"unknown fixed parameter `{name}`" in _refused(fixed)


def test_unreadable_files_give_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"params:\n  dropout: \xff\xfe\n")
    assert "not UTF-8 text" in _refused(binary)
    assert "not valid YAML" in _refused(_space(tmp_path, "params: {dropout: [\n", "broken.yaml"))
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        load_space_file(folder)


def test_the_default_space_searches_augmentation_including_vertical_flips() -> None:
    space = get_space("default")
    by_name = {p.name: p for p in space.params}
    assert by_name["vertical_flip"].type == "categorical"
    assert set(by_name["vertical_flip"].choices) == {False, True}
    augment = {n for n in by_name if KNOWN_PARAMS[n].target == "augment"}
    assert {"vertical_flip", "rotation_deg", "zoom"} <= augment
    assert "vertical" in space.description and "augmentation" in space.description
    # Every value it can draw is legal: the edges of each range build a config.
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig

    base = TrainConfig(model=preset("seed", image_size=64, channels=1))
    low = space.sample_defaults()
    high = {p.name: p.choices[-1] if p.type == "categorical" else p.high for p in space.params}
    for values in (low, high):
        space.apply(values, base)


def _tiny_dataset():
    from covidxr_core import Dataset, SplitArrays

    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 16), ("validation", 8)):
        labels = (np.arange(n) % 2).astype(np.int32)
        images = rng.integers(0, 256, size=(n, 64, 64, 1), dtype=np.uint8)
        files = tuple(f"{name}/{i}.png" for i in range(n))
        splits[name] = SplitArrays(images=images, labels=labels, files=files)
    return Dataset(
        splits=splits,
        class_names=("corona", "normal"),
        positive_class="corona",
        image_size=64,
        channels=1,
        source="random",
    )


def test_an_augmentation_parameter_in_a_yaml_space_changes_the_trained_augment_config(
    tmp_path: Path,
) -> None:
    """From a user's YAML to the AffineAugment layer of the model that was trained."""
    from covidxr_core.augment import AffineAugment
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig, train

    path = _space(
        tmp_path,
        "params:\n  rotation_deg: {type: float, low: 0.0, high: 10.0}\n"
        "  vertical_flip: {type: categorical, choices: [false, true]}\n"
        "fixed:\n  zoom: 0.05\n  base_width: 2\n  width_cap: 8\n",
    )
    space = load_space_file(path)
    base = TrainConfig(model=preset("seed", image_size=64, channels=1), epochs=1, batch_size=8)
    recipe = base.model.augment
    assert (recipe.rotation_deg, recipe.zoom, recipe.vertical_flip) == (20.0, 0.2, True)

    config = space.apply({"rotation_deg": 7.5, "vertical_flip": False}, base)
    augment = config.model.augment
    assert (augment.rotation_deg, augment.zoom, augment.vertical_flip) == (7.5, 0.05, False)
    # what the space does not name stays the recipe's
    assert augment == dataclasses.replace(recipe, rotation_deg=7.5, zoom=0.05, vertical_flip=False)

    result = train(config, _tiny_dataset(), n_boot=20)
    assert result.config.model.augment == augment
    layers = [layer for layer in result.model.layers if isinstance(layer, AffineAugment)]
    assert len(layers) == 1 and layers[0].config == augment
