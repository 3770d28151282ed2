"""Grad-CAM: which parts of an X-ray pushed the CNN towards a class.

For each image, the class score's gradient with respect to the last convolution's feature
maps is averaged over the map to weight each channel; the weighted sum of the maps, with
negative evidence cut off, is the heatmap (Selvaraju et al., 2017). Used by both
``covidxr_core.predict --gradcam`` and the study report.

Only the gradient needs the backend: everything else is ``keras.ops`` and NumPy, and
TensorFlow (or JAX, or torch) is imported inside the branch where it is the active backend.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from covidxr_core._backend import configure_backend

configure_backend()  # quiet logs and GPU memory growth must precede Keras' start-up

import keras  # noqa: E402

from covidxr_core.errors import ConfigError  # noqa: E402

# Colour map anchors, dark purple -> red -> yellow: strong attention reads as "hot" and
# stays distinguishable from the grey radiograph underneath (and in greyscale print).
_HEAT_ANCHORS = np.array(
    [
        [0.00, 0, 0, 4],
        [0.25, 87, 16, 110],
        [0.50, 188, 55, 84],
        [0.75, 249, 142, 9],
        [1.00, 252, 255, 164],
    ],
    dtype=np.float64,
)


def last_conv_layer(model: keras.Model) -> keras.layers.Layer:
    """The model's last 2-D convolution: the deepest map that still has a spatial layout.

    Raises:
        ConfigError: The model has no ``Conv2D`` layer.
    """
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ConfigError(f"model {model.name!r} has no Conv2D layer, so Grad-CAM has no map")
    return convs[-1]


def _split_model(
    model: keras.Model, layer: keras.layers.Layer
) -> tuple[keras.Model, Callable[[Any], Any]]:
    """The model cut at ``layer``: image -> feature maps, and feature maps -> class logits.

    The score is the pre-softmax logit, as in the paper: a softmax probability saturates at
    1 for confident images, and its gradient (and so the heatmap) vanishes with it.
    """
    body = keras.Model(model.inputs, layer.output)
    final = model.layers[-1]
    is_softmax_dense = (
        isinstance(final, keras.layers.Dense)
        and getattr(final.activation, "__name__", "") == "softmax"
    )
    if is_softmax_dense:
        features = keras.Model(layer.output, final.input)

        def head(maps: Any) -> Any:
            x = features(maps, training=False)
            return keras.ops.matmul(x, final.kernel) + final.bias

    else:  # a model not built by covidxr: explain its output as it is
        rest = keras.Model(layer.output, model.output)

        def head(maps: Any) -> Any:
            return rest(maps, training=False)

    return body, head


def _gradient(head: Callable[[Any], Any], maps: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """d(sum of the chosen logits) / d(maps), with the active backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(maps)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = keras.ops.sum(head(x) * onehot)
        return np.asarray(tape.gradient(score, x))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: keras.ops.sum(head(x) * onehot))(maps))
    if backend == "torch":
        import torch

        x = torch.as_tensor(maps).requires_grad_(True)
        keras.ops.sum(head(x) * keras.ops.convert_to_tensor(onehot)).backward()
        return x.grad.detach().cpu().numpy()
    raise ConfigError(
        f"Grad-CAM needs gradients: backend must be tensorflow, jax or torch, but got {backend!r}"
    )


def gradcam(
    model: keras.Model,
    images: np.ndarray,
    class_index: int | Sequence[int] | None = None,
    layer_name: str | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM heatmaps and class probabilities for a batch of images.

    Args:
        model: A classifier taking ``images`` as they are (covidxr models take uint8).
        images: ``(N, H, W, C)`` images in the model's input format.
        class_index: The class to explain, one for all images or one per image; None
            explains each image's predicted class.
        layer_name: The convolution to take maps from; None means the last ``Conv2D``.
        batch_size: Images per forward/backward pass.

    Returns:
        ``(heatmaps, probs)``: heatmaps ``(N, h, w)`` in [0, 1] at the layer's resolution
        (each scaled by its own maximum; all zeros where nothing supports the class), and
        the model's probabilities ``(N, classes)``.
    """
    layer = model.get_layer(layer_name) if layer_name else last_conv_layer(model)
    body, head = _split_model(model, layer)
    images = np.asarray(images)
    probs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float64)
    n, k = probs.shape
    if class_index is None:
        targets = probs.argmax(axis=1)
    else:
        targets = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
    if targets.size and (targets.min() < 0 or targets.max() >= k):
        raise ConfigError(f"class_index must be in [0, {k}), but got {class_index!r}")

    heatmaps = []
    for start in range(0, n, batch_size):
        chunk = images[start : start + batch_size]
        # A list matches the functional model's input structure (no Keras warning).
        maps = keras.ops.convert_to_numpy(body([chunk], training=False)).astype(np.float32)
        onehot = np.eye(k, dtype=np.float32)[targets[start : start + batch_size]]
        grads = _gradient(head, maps, onehot)
        weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per channel
        cam = np.maximum((weights * maps).sum(axis=-1), 0.0)
        peak = cam.max(axis=(1, 2), keepdims=True)
        heatmaps.append(np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0))
    if not heatmaps:
        return np.zeros((0, 0, 0), dtype=np.float32), probs
    return np.concatenate(heatmaps).astype(np.float32), probs


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with the heat colour map."""
    values = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, 1.0)
    channels = [np.interp(values, _HEAT_ANCHORS[:, 0], _HEAT_ANCHORS[:, i]) for i in (1, 2, 3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, size: int | None = None, alpha: float = 0.6
) -> np.ndarray:
    """The image in grey with the heatmap blended on top, both resized to ``size``.

    The blend weight grows with the heat, so regions the model ignored keep the plain
    radiograph visible instead of a uniform dark tint.

    Args:
        image: ``(H, W, C)`` uint8, C = 1 or 3.
        heatmap: ``(h, w)`` in [0, 1], any resolution (bilinearly upsampled).
        size: Output side in pixels; None keeps the image's size.
        alpha: Opacity of the hottest regions.

    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    base = Image.fromarray(pixels).convert("RGB")
    width, height = (size, size) if size else base.size
    base = base.resize((width, height), Image.Resampling.BILINEAR)
    heat = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    heat_px = np.clip(np.asarray(heat.resize((width, height), Image.Resampling.BILINEAR)), 0, 1)
    weight = (alpha * heat_px)[..., None]
    blended = np.asarray(base, dtype=np.float64) * (1 - weight) + colorize(heat_px) * weight
    return np.rint(blended).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` or ``(H, W)`` uint8 array as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


__all__ = ["colorize", "gradcam", "last_conv_layer", "overlay", "png_bytes"]
