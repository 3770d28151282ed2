"""The recipe's eight augmentations as one affine warp per image, drawn on the accelerator.

The recipe used Keras 2's ``ImageDataGenerator`` (rotation, zoom, shear, width and height
shift, horizontal and vertical flip; rescaling lives in the model). Keras 3's separate
``Random*`` layers would resample the image five times and measured 63 images/s on an
H100 (DESIGN.md); composing everything into a single matrix and warping the batch with one
``keras.ops.image.affine_transform`` call costs one resample.

Matrix convention (``keras.ops.image.affine_transform``, checked against the installed
Keras source): a row ``[a0, a1, a2, b0, b1, b2, c0, c1]`` maps an OUTPUT pixel ``(x, y)``
(x = column, y = row, pixel centres at integer indices) to the INPUT point
``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` that is sampled; ``c0 = c1 = 0`` for affine maps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras

from covidxr_core.config import FILL_MODES, AugmentConfig


def compose_affine(
    height: int,
    width: int,
    angle_deg: Any,
    zoom_x: Any,
    zoom_y: Any,
    shear_deg: Any,
    shift_x: Any,
    shift_y: Any,
    flip_x: Any,
    flip_y: Any,
) -> Any:
    """Compose per-image parameters into ``(B, 8)`` affine_transform rows.

    Every parameter is a length-B tensor (or array). The warp is built around the image
    centre ``c = ((W-1)/2, (H-1)/2)``. What happens to the picture, in order: it is
    mirrored (flips), scaled by ``1/zoom`` (zoom < 1 magnifies, as in ImageDataGenerator),
    sheared horizontally, rotated counter-clockwise on screen by ``angle_deg`` and moved
    by ``(shift_x, shift_y)`` pixels (right and down). The returned rows are the inverse
    of that, output pixel ``q`` to input point ``p``: ``p = A (q - c - shift) + c`` with
    ``A = flips · zoom · shear · rotation⁻¹`` (flips are their own inverse).

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        angle_deg: Rotation angle in degrees.
        zoom_x: Horizontal sampling scale (1 = unchanged).
        zoom_y: Vertical sampling scale.
        shear_deg: Horizontal shear angle in degrees.
        shift_x: Horizontal shift of the content in pixels.
        shift_y: Vertical shift of the content in pixels.
        flip_x: 1 to mirror left-right, 0 not to.
        flip_y: 1 to mirror top-bottom, 0 not to.

    Returns:
        A float32 tensor of shape ``(B, 8)``.
    """
    ops = keras.ops
    f32 = "float32"
    theta = ops.cast(angle_deg, f32) * (math.pi / 180.0)
    cos, sin = ops.cos(theta), ops.sin(theta)
    shear = ops.tan(ops.cast(shear_deg, f32) * (math.pi / 180.0))
    zx, zy = ops.cast(zoom_x, f32), ops.cast(zoom_y, f32)
    fx = 1.0 - 2.0 * ops.cast(flip_x, f32)  # -1 mirrors
    fy = 1.0 - 2.0 * ops.cast(flip_y, f32)

    # rotation⁻¹ = [[cos, -sin], [sin, cos]] (y points down, so this turns the content
    # counter-clockwise on screen); shear = [[1, s], [0, 1]]; zoom and flips are diagonal.
    # A = diag(fx zx, fy zy) · [[cos + s sin, s cos - sin], [sin, cos]]
    a00 = fx * zx * (cos + shear * sin)
    a01 = fx * zx * (shear * cos - sin)
    a10 = fy * zy * sin
    a11 = fy * zy * cos

    cx = (width - 1) / 2.0
    cy = (height - 1) / 2.0
    ux = -cx - ops.cast(shift_x, f32)  # (q - c - shift) at q = 0, the constant part
    uy = -cy - ops.cast(shift_y, f32)
    a2 = a00 * ux + a01 * uy + cx
    b2 = a10 * ux + a11 * uy + cy
    zeros = ops.zeros_like(a00)
    return ops.stack([a00, a01, a2, a10, a11, b2, zeros, zeros], axis=1)


# The ranges a search may vary, in the order `AffineAugment` stores them in one variable.
RANGE_FIELDS = (
    "rotation_deg",
    "zoom",
    "shear_deg",
    "width_shift",
    "height_shift",
    "horizontal_flip",
    "vertical_flip",
)


def affine_matrices(
    batch: Any,
    height: int,
    width: int,
    config: AugmentConfig,
    seed: Any,
    ranges: Any = None,
) -> Any:
    """Draw one random affine matrix per image with the ranges in ``config``.

    All parameters come from a single ``keras.random.uniform`` call, so an integer seed
    gives independent parameters and a ``SeedGenerator`` advances once per batch.

    Args:
        batch: Number of images (an int, or a scalar tensor inside a traced function).
        height: Image height in pixels.
        width: Image width in pixels.
        config: The augmentation ranges.
        seed: An int, or a ``keras.random.SeedGenerator`` (what a layer passes).
        ranges: Optional length-7 tensor of the `RANGE_FIELDS` values (flips as 0 or 1)
            used instead of ``config``'s, so they can be variables of a traced step.

    Returns:
        A float32 tensor of shape ``(batch, 8)`` in affine_transform's convention.
    """
    u = keras.random.uniform((batch, 8), minval=0.0, maxval=1.0, dtype="float32", seed=seed)
    if ranges is None:
        ranges = [float(getattr(config, name)) for name in RANGE_FIELDS]
    rotation, zoom, shear, w_shift, h_shift, h_flip, v_flip = (ranges[i] for i in range(7))

    def spread(column: int, half_range: Any) -> Any:
        # Uniform on [-half_range, half_range].
        return (2.0 * u[:, column] - 1.0) * half_range

    def coin(column: int, enabled: Any) -> Any:
        return keras.ops.cast(u[:, column] < 0.5, "float32") * enabled

    return compose_affine(
        height,
        width,
        angle_deg=spread(0, rotation),
        zoom_x=1.0 + spread(1, zoom),
        zoom_y=1.0 + spread(2, zoom),
        shear_deg=spread(3, shear),
        shift_x=spread(4, w_shift * width),
        shift_y=spread(5, h_shift * height),
        flip_x=coin(6, h_flip),
        flip_y=coin(7, v_flip),
    )


@keras.saving.register_keras_serializable(package="covidxr")
class AffineAugment(keras.layers.Layer):
    """Random rotation, zoom, shear, shifts and flips as one bilinear warp per batch.

    Active only in training; at inference it returns its input unchanged. Expects float
    images ``(B, H, W, C)`` (channels last) and returns the same shape and dtype.

    Args:
        config: The augmentation ranges (an ``AugmentConfig`` or its dict form).
        seed: Seed of the layer's generator; None draws one from Keras' global seed, which
            ``keras.utils.set_random_seed`` fixes.
    """

    def __init__(
        self,
        config: AugmentConfig | dict[str, Any] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if config is None:
            config = AugmentConfig()
        elif isinstance(config, dict):
            config = AugmentConfig.from_dict(config)
        self.config = config
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The ranges are a variable, not constants of the traced step, so a worker that
        # reuses a compiled model (covidxr_core._reuse) trains other ranges by assignment.
        # Whether the warp runs at all (`is_identity`, `enabled`) and the fill mode stay
        # part of the program.
        self.ranges = self.add_weight(
            shape=(len(RANGE_FIELDS),),
            initializer=keras.initializers.Constant(
                [float(getattr(config, name)) for name in RANGE_FIELDS]
            ),
            trainable=False,
            name="ranges",
            dtype="float32",
        )
        # TensorFlow's transform kernel has no XLA lowering, so a TF model holding this layer
        # must not be XLA-compiled ("auto" would pick XLA on a GPU). On JAX the warp is plain
        # jnp code and must stay jittable: a False here would make Keras run JAX eagerly.
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training or self.config.is_identity:
            return inputs
        height, width = int(inputs.shape[1]), int(inputs.shape[2])
        batch = keras.ops.shape(inputs)[0]
        transforms = affine_matrices(
            batch, height, width, self.config, self.seed_generator, ranges=self.ranges
        )
        return keras.ops.image.affine_transform(
            inputs,
            transforms,
            interpolation="bilinear",
            fill_mode=self.config.fill_mode,
            data_format="channels_last",
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def current_config(self) -> AugmentConfig:
        """The configuration with the ranges the variable holds now."""
        values = keras.ops.convert_to_numpy(self.ranges).tolist()
        current = dict(zip(RANGE_FIELDS, values, strict=True))
        for flag in ("horizontal_flip", "vertical_flip"):
            current[flag] = bool(current[flag] >= 0.5)
        return dataclasses.replace(self.config, **current)

    def get_config(self) -> dict[str, Any]:
        # `config` is kept in step with the variable by whoever assigns it (_reuse does),
        # and is exact where the float32 variable is not.
        return {**super().get_config(), "config": self.config.to_dict(), "seed": self.seed}


__all__ = [
    "FILL_MODES",
    "RANGE_FIELDS",
    "AffineAugment",
    "AugmentConfig",
    "affine_matrices",
    "compose_affine",
]
