"""ModelConfig rules, presets, the built network, saving with metadata, and the JAX backend."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from covidxr_core.augment import AugmentConfig
from covidxr_core.errors import ConfigError
from covidxr_core.model import (
    PRESETS,
    ModelConfig,
    build_model,
    make_optimizer,
    model_metadata,
    preset,
)

TINY = ModelConfig(image_size=64, channels=1, widths=(4, 8, 16))
HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"widths": ()}, ["ModelConfig.widths", "at least one", "()"]),
        ({"widths": (2, 0, 8)}, ["ModelConfig.widths", "integer >= 1", "(2, 0, 8)"]),
        (
            {"image_size": 32},
            ["ModelConfig.image_size", "2**6 = 64", "vanishes", "smallest allowed: 64", "32"],
        ),
        ({"dropout": 1.0}, ["ModelConfig.dropout", "`0 <= dropout < 1`", "1.0"]),
        ({"dropout": -0.1}, ["ModelConfig.dropout", "-0.1"]),
        ({"learning_rate": 0.0}, ["ModelConfig.learning_rate", "`learning_rate > 0`", "0.0"]),
        ({"optimizer": "rmsprop"}, ["ModelConfig.optimizer", "adagrad, adam, sgd", "'rmsprop'"]),
        ({"channels": 2}, ["ModelConfig.channels", "1 (greyscale) or 3 (RGB)", "2"]),
        ({"positive_class": "covid"}, ["ModelConfig.positive_class", "'corona'", "'covid'"]),
        ({"class_names": ("a", "b", "c")}, ["ModelConfig.class_names", "num_classes=2"]),
    ],
)
def test_invalid_model_config_names_field_rule_and_value(
    overrides: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        ModelConfig(**overrides)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


def test_smallest_image_follows_depth_and_pool_size() -> None:
    assert ModelConfig(image_size=8, widths=(4, 8, 16)).image_size == 8  # 2**3
    with pytest.raises(ConfigError, match="smallest allowed: 27"):
        ModelConfig(image_size=26, widths=(4, 8, 16), pool_size=3)


def test_unknown_preset_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        preset("resnet")
    for name in PRESETS:
        assert name in str(info.value)
    assert "'resnet'" in str(info.value)


def test_preset_overrides_are_validated_and_unknown_fields_listed() -> None:
    assert preset("seed", dropout=0.2).dropout == 0.2
    with pytest.raises(ConfigError, match="dropout"):
        preset("seed", dropout=2.0)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['drop'\].*widths"):
        preset("seed", drop=0.1)


def test_seed_preset_is_the_recipe_exactly() -> None:
    seed = preset("seed")
    assert (seed.image_size, seed.channels) == (300, 3)
    assert seed.widths == (2, 4, 8, 16, 32, 64)
    assert (seed.kernel_size, seed.pool_size, seed.batch_norm) == (3, 2, True)
    assert seed.dropout == 0.5 and seed.dense_units == 0 and seed.num_classes == 2
    assert (seed.optimizer, seed.learning_rate, seed.lr_decay) == ("adagrad", 1e-3, 0.9)
    assert seed.l2 == 1e-3
    assert seed.augment == AugmentConfig(
        rotation_deg=20.0,
        zoom=0.2,
        shear_deg=0.2,
        width_shift=0.2,
        height_shift=0.2,
        horizontal_flip=True,
        vertical_flip=True,
        fill_mode="nearest",
    )
    assert seed.class_names == ("corona", "normal") and seed.positive_class == "corona"


def test_recipe_learning_rate_decays_like_keras_2() -> None:
    optimizer = make_optimizer(preset("seed"))
    assert isinstance(optimizer, keras.optimizers.Adagrad)
    for step in (0, 1, 2, 7, 70):
        optimizer.iterations.assign(step)
        expected = 1e-3 / (1 + 0.9 * step)
        assert float(optimizer.learning_rate) == pytest.approx(expected, rel=1e-6)


def test_other_optimizers_and_constant_rate() -> None:
    sgd = make_optimizer(ModelConfig(optimizer="sgd", learning_rate=0.1, lr_decay=0.0))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == pytest.approx(0.9)
    sgd.iterations.assign(10)
    assert float(sgd.learning_rate) == pytest.approx(0.1)
    assert isinstance(make_optimizer(ModelConfig(optimizer="adam")), keras.optimizers.Adam)


def test_cosine_and_constant_schedules_and_the_decay_they_do_not_read() -> None:
    from covidxr_core.model import set_schedule_length

    cosine = ModelConfig(image_size=64, channels=1, widths=(4, 8, 16), optimizer="adam",
                         lr_schedule="cosine", lr_decay=0.5)  # fmt: skip
    assert cosine.lr_decay == 0.0  # unread by the cosine: stored as 0 so equal configs compare
    model = build_model(cosine)
    model.optimizer.build(model.trainable_variables)
    set_schedule_length(model, cosine, 100)
    for step, expected in ((0, 1e-3), (50, 5e-4), (100, 0.0), (150, 0.0)):
        model.optimizer.iterations.assign(step)
        assert float(model.optimizer.learning_rate) == pytest.approx(expected, abs=1e-9)
    constant = ModelConfig(optimizer="adam", lr_schedule="constant", lr_decay=0.9)
    optimizer = make_optimizer(constant)
    optimizer.iterations.assign(80)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match=r"lr_schedule: must be one of constant, inverse_time"):
        ModelConfig(lr_schedule="step")


def test_batchnorm_momentum_comes_from_the_config() -> None:
    model = build_model(ModelConfig(image_size=64, channels=1, widths=(4, 8, 16), bn_momentum=0.9))
    momenta = {
        layer.momentum for layer in model.layers if "BatchNormalization" in type(layer).__name__
    }
    assert momenta == {0.9}
    assert PRESETS["seed"].bn_momentum == 0.99  # the recipe keeps Keras' default
    with pytest.raises(ConfigError, match=r"bn_momentum: `0 <= bn_momentum < 1` must hold"):
        ModelConfig(bn_momentum=1.0)


def test_config_dict_round_trip_accepts_lists_and_nested_dicts() -> None:
    config = ModelConfig(widths=[4, 8], image_size=16, augment={"rotation_deg": 5.0})  # type: ignore[arg-type]
    assert config.widths == (4, 8) and config.augment.rotation_deg == 5.0
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    hash(again)  # frozen and hashable, usable as a cache key


def test_recipe_builds_at_300_px_and_outputs_probabilities() -> None:
    model = build_model(preset("seed"))
    assert model.input.shape == (None, 300, 300, 3) and model.input.dtype == "uint8"
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [2, 4, 8, 16, 32, 64]
    for conv in convs:
        assert conv.kernel_size == (3, 3) and conv.padding == "same"
        assert conv.activation.__name__ == "relu"
        assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal)
        # the L2 factor is a variable (so a reused traced step can change it)
        assert float(conv.kernel_regularizer.knobs.l2) == pytest.approx(1e-3)
    assert len([la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]) == 6
    assert len([la for la in model.layers if isinstance(la, keras.layers.MaxPooling2D)]) == 6
    assert float(model.get_layer("dropout").rate) == 0.5
    assert model.get_layer("probs").units == 2
    # 300 -> 150 -> 75 -> 37 -> 18 -> 9 -> 4: a 4x4x64 map feeds the classifier
    assert model.get_layer("flatten").output.shape == (None, 4 * 4 * 64)
    assert model.count_params() > 0
    images = np.random.default_rng(0).integers(0, 256, (3, 300, 300, 3), dtype=np.uint8)
    probs = model.predict(images, verbose=0)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)


def test_hidden_dense_layer_when_asked() -> None:
    model = build_model(ModelConfig(image_size=64, channels=1, widths=(4, 8), dense_units=16))
    assert model.get_layer("hidden").units == 16


def test_save_and_load_in_safe_mode_keeps_metadata_and_predictions(tmp_path: Path) -> None:
    config = ModelConfig(
        image_size=64,
        channels=1,
        widths=(4, 8, 16),
        class_names=("covid", "healthy"),
        positive_class="covid",
    )
    model = build_model(config)
    images = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 1), dtype=np.uint8)
    # one training step so BatchNorm statistics and optimizer slots are not initial values
    model.fit(images, np.eye(2, dtype="float32")[[0, 1, 0, 1, 0]], epochs=1, verbose=0)
    before = model.predict(images, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), before, rtol=1e-6, atol=1e-7)
    assert model_metadata(loaded) == {
        "image_size": 64,
        "channels": 1,
        "class_names": ["covid", "healthy"],
        "positive_class": "covid",
        "positive_index": 0,
        # chosen by train() on validation; a model only built (never trained) has none
        "threshold": None,
        "operating_point": None,
        "temperature": None,
    }
    assert loaded.get_layer("augment").config == config.augment


def test_model_metadata_refuses_foreign_models() -> None:
    inputs = keras.Input((4,))
    foreign = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="foreign")
    with pytest.raises(ConfigError, match="'foreign' has no CXRInput"):
        model_metadata(foreign)


_JAX_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from helpers import make_dataset
from covidxr_core import configure_backend
backend = configure_backend()
import keras, numpy as np
from covidxr_core.model import ModelConfig, model_metadata
from covidxr_core.train import TrainConfig, save_run, train

data = make_dataset(n_train=32, n_val=16, n_test=0)
config = TrainConfig(
    model=ModelConfig(image_size=64, channels=1, widths=(4, 8, 16), optimizer="adam",
                      learning_rate=0.01, lr_decay=0.0),
    epochs=2, batch_size=16,
)
runs = [train(config, data, n_boot=20) for _ in range(2)]
strip = lambda h: [{k: v for k, v in row.items() if k != "epoch_s"} for row in h]
save_run(runs[0], sys.argv[2])
loaded = keras.saving.load_model(os.path.join(sys.argv[2], "model.keras"), safe_mode=True)
images = data.splits["validation"].images
print(json.dumps({
    "backend": backend,
    "prealloc": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
    "jit": bool(runs[0].model.jit_compile),
    "finite": bool(np.isfinite(runs[0].history[-1]["train_loss"])),
    "same_history": strip(runs[0].history) == strip(runs[1].history),
    "same_validation": runs[0].validation == runs[1].validation,
    "max_diff": float(np.abs(loaded.predict(images, verbose=0)
                             - runs[0].model.predict(images, verbose=0)).max()),
    "metadata": model_metadata(loaded),
}))
"""


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="jax is not installed (pip install 'covidxr[jax]'): the JAX backend is untested",
)
def test_jax_backend_trains_deterministically_jitted_and_round_trips(tmp_path: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_PYTHON_CLIENT_PREALLOCATE", None)
    run = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, str(HERE), str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["prealloc"] == "false"
    assert result["jit"] is True  # the augmentation layer must not force eager JAX
    assert result["finite"] and result["same_history"] and result["same_validation"]
    assert result["max_diff"] < 1e-6
    assert result["metadata"]["class_names"] == ["corona", "normal"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backend"] == "jax"
