"""The fused affine augmentation: matrix convention, each transform, and the layer's modes."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from covidxr_core.augment import AffineAugment, AugmentConfig, affine_matrices, compose_affine
from covidxr_core.errors import ConfigError

IDENTITY_ROW = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def warp(images: np.ndarray, rows: object, fill_mode: str = "constant") -> np.ndarray:
    out = keras.ops.image.affine_transform(
        images, rows, interpolation="bilinear", fill_mode=fill_mode
    )
    return keras.ops.convert_to_numpy(out)


def one(n: int = 1, **params: float) -> dict[str, np.ndarray]:
    """compose_affine's parameters for n images: identity, except what is given."""
    base = dict(
        angle_deg=0.0,
        zoom_x=1.0,
        zoom_y=1.0,
        shear_deg=0.0,
        shift_x=0.0,
        shift_y=0.0,
        flip_x=0.0,
        flip_y=0.0,
    )
    base.update(params)
    return {k: np.full((n,), v, dtype="float32") for k, v in base.items()}


def marker(height: int, width: int, row: int, col: int, batch: int = 1) -> np.ndarray:
    images = np.zeros((batch, height, width, 1), dtype="float32")
    images[:, row, col, 0] = 1.0
    return images


def centroid(image: np.ndarray) -> np.ndarray:
    """(x, y) = (column, row) centre of mass of a single-channel image."""
    mass = image[..., 0]
    rows, cols = np.indices(mass.shape)
    return np.array([(cols * mass).sum(), (rows * mass).sum()]) / mass.sum()


def test_identity_config_returns_its_input_exactly() -> None:
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")
    layer = AffineAugment(AugmentConfig.identity())
    assert AugmentConfig.identity().is_identity
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=True)), x)
    # zero ranges but still "enabled" give identity rows, and the warp reproduces the input
    still = dataclasses.replace(AugmentConfig.identity(), enabled=True)
    rows = keras.ops.convert_to_numpy(affine_matrices(4, 16, 16, still, seed=1))
    np.testing.assert_allclose(rows, [IDENTITY_ROW] * 4, atol=1e-6)
    np.testing.assert_array_equal(warp(x, rows), x)


def test_disabled_config_skips_the_warp() -> None:
    x = np.random.default_rng(1).random((2, 8, 8, 1)).astype("float32")
    layer = AffineAugment(dataclasses.replace(AugmentConfig(), enabled=False))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=True)), x)


def test_training_false_is_identity() -> None:
    x = np.random.default_rng(2).random((3, 16, 16, 1)).astype("float32")
    layer = AffineAugment(AugmentConfig())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)


def test_horizontal_flip_only_flips_some_images_and_leaves_the_rest() -> None:
    x = np.random.default_rng(3).random((16, 12, 10, 1)).astype("float32")
    config = dataclasses.replace(AugmentConfig.identity(), horizontal_flip=True, enabled=True)
    out = keras.ops.convert_to_numpy(AffineAugment(config, seed=5)(x, training=True))
    flipped = [np.allclose(o, np.flip(xi, axis=1), atol=1e-6) for o, xi in zip(out, x, strict=True)]
    kept = [np.allclose(o, xi, atol=1e-6) for o, xi in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)  # 16 fair coins: all equal has p = 2**-15


def test_vertical_flip_matrix_mirrors_rows() -> None:
    x = np.random.default_rng(4).random((1, 7, 9, 1)).astype("float32")
    out = warp(x, compose_affine(7, 9, **one(flip_y=1.0)))
    np.testing.assert_allclose(out, np.flip(x, axis=1), atol=1e-6)


def test_pure_shift_moves_a_bright_pixel_by_k() -> None:
    x = marker(20, 20, row=5, col=6)
    out = warp(x, compose_affine(20, 20, **one(shift_x=3.0, shift_y=2.0)))
    assert np.argwhere(out[0, ..., 0] > 0.99).tolist() == [[7, 9]]  # right 3, down 2


def test_ninety_degrees_turns_the_top_right_corner_to_the_top_left() -> None:
    x = marker(9, 9, row=0, col=8)
    out = warp(x, compose_affine(9, 9, **one(angle_deg=90.0)))
    assert np.argwhere(out[0, ..., 0] > 0.99).tolist() == [[0, 0]]  # counter-clockwise


def test_zoom_below_one_magnifies_around_the_centre() -> None:
    x = marker(21, 21, row=10, col=14)  # 4 px right of the centre (10, 10)
    out = warp(x, compose_affine(21, 21, **one(zoom_x=0.5, zoom_y=0.5)))
    np.testing.assert_allclose(centroid(out[0]), [18.0, 10.0], atol=1e-4)  # 8 px right


def test_random_marker_lands_where_its_matrix_says() -> None:
    # Full recipe ranges: invert each drawn matrix and check the warped 3x3 marker's centre
    # of mass sits at the predicted output point (bilinear blur is symmetric enough).
    size, batch = 48, 8
    x = np.zeros((batch, size, size, 1), dtype="float32")
    x[:, 20:23, 26:29, 0] = 1.0  # centre (x=27, y=21)
    config = dataclasses.replace(AugmentConfig(), fill_mode="constant")
    rows = keras.ops.convert_to_numpy(affine_matrices(batch, size, size, config, seed=11))
    out = warp(x, rows)
    checked = 0
    for row, image in zip(rows, out, strict=True):
        a = np.array([[row[0], row[1]], [row[3], row[4]]])
        predicted = np.linalg.solve(a, np.array([27.0, 21.0]) - row[[2, 5]])
        inside = np.all((predicted > 2) & (predicted < size - 3))
        if inside:
            np.testing.assert_allclose(centroid(image), predicted, atol=0.6)
            checked += 1
    assert checked >= batch // 2  # most draws keep the marker in the frame


def test_different_images_in_a_batch_get_different_transforms() -> None:
    x = np.repeat(np.random.default_rng(5).random((1, 24, 24, 1)), 6, axis=0).astype("float32")
    layer = AffineAugment(AugmentConfig(), seed=3)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    for i in range(6):
        for j in range(i + 1, 6):
            assert not np.allclose(out[i], out[j])
    # and the generator moves on: the next batch differs from this one
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, training=True)), out)


def test_the_same_seed_gives_the_same_draw() -> None:
    x = np.random.default_rng(6).random((4, 16, 16, 1)).astype("float32")
    a = AffineAugment(AugmentConfig(), seed=42)(x, training=True)
    b = AffineAugment(AugmentConfig(), seed=42)(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_ranges_are_respected() -> None:
    config = AugmentConfig(
        rotation_deg=0.0,
        zoom=0.0,
        shear_deg=0.0,
        width_shift=0.1,
        height_shift=0.0,
        horizontal_flip=False,
        vertical_flip=False,
    )
    rows = keras.ops.convert_to_numpy(affine_matrices(200, 50, 40, config, seed=0))
    np.testing.assert_allclose(rows[:, [0, 1, 3, 4, 5]], [[1, 0, 0, 1, 0]] * 200, atol=1e-5)
    shifts = -rows[:, 2]  # content shift right = -(input offset)
    assert shifts.min() >= -4.0 - 1e-4 and shifts.max() <= 4.0 + 1e-4  # 0.1 * width 40
    assert shifts.min() < -3.0 and shifts.max() > 3.0


def test_works_inside_a_compiled_model_in_training() -> None:
    inputs = keras.Input((32, 32, 1))
    x = AffineAugment(AugmentConfig(), name="augment")(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")  # "auto": jax.jit, or a tf.function graph
    data = np.random.default_rng(7).random((8, 32, 32, 1)).astype("float32")
    history = model.fit(data, np.zeros((8, 1)), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # XLA cannot lower TF's transform kernel; the layer says so, JAX keeps jitting
    assert model.get_layer("augment").supports_jit == (keras.backend.backend() != "tensorflow")


def test_get_config_round_trips() -> None:
    config = AugmentConfig(rotation_deg=5.0, zoom=0.1, vertical_flip=False, fill_mode="reflect")
    layer = AffineAugment(config, seed=9, name="aug")
    clone = AffineAugment.from_config(layer.get_config())
    assert clone.config == config and clone.seed == 9 and clone.name == "aug"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, AffineAugment) and restored.config == config


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("zoom", 1.0, "`0 <= zoom < 1`"),
        ("width_shift", -0.1, "`0 <= width_shift < 1`"),
        ("rotation_deg", 200.0, "`0 <= rotation_deg <= 180`"),
        ("fill_mode", "mirror", "nearest, constant, reflect, wrap"),
    ],
)
def test_invalid_ranges_name_field_rule_and_value(field: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        AugmentConfig(**{field: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert f"AugmentConfig.{field}" in message and words in message and repr(value) in message


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        AugmentConfig.from_dict({"rotation": 3.0})


def test_ranges_are_a_variable_that_drives_the_warp() -> None:
    """Assigning the layer's range variable changes the warp without a new layer."""
    import numpy as np

    from covidxr_core.augment import RANGE_FIELDS, AffineAugment, AugmentConfig

    layer = AffineAugment(AugmentConfig(rotation_deg=0.0, zoom=0.0, shear_deg=0.0,
                                        width_shift=0.0, height_shift=0.0,
                                        horizontal_flip=False, vertical_flip=False), seed=1)  # fmt: skip
    images = np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")
    # all-zero ranges: not the identity config (so the warp runs) only once assigned;
    # an all-zero warp samples every pixel at its own place
    warped = np.asarray(layer(images, training=True))
    np.testing.assert_allclose(warped, images)
    layer.config = AugmentConfig()  # recipe ranges: the warp runs
    layer.ranges.assign([0.0] * len(RANGE_FIELDS))
    np.testing.assert_allclose(np.asarray(layer(images, training=True)), images, atol=1e-5)
    layer.ranges.assign([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # horizontal flips only
    flipped = np.asarray(layer(images, training=True))
    for got, image in zip(flipped, images, strict=True):
        assert np.allclose(got, image, atol=1e-5) or np.allclose(got, image[:, ::-1], atol=1e-5)
    assert layer.current_config().horizontal_flip and not layer.current_config().vertical_flip
