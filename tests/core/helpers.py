"""A tiny, learnable chest-X-ray stand-in built straight from NumPy arrays.

Class 0 ("corona") images are coarsely speckled, class 1 ("normal") images smooth, both
around the same grey level. Texture survives every augmentation (flips, rotation, shifts
would scramble a positional cue), so a few dozen images and an epoch or two let the CNN
beat chance and tests train the real model quickly.
"""

from __future__ import annotations

import numpy as np

from covidxr_core import Dataset, SplitArrays

CLASS_NAMES = ("corona", "normal")


def make_images(n: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (n, size, size, channels) and int32 labels, classes balanced."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int32)
    rng.shuffle(labels)
    # 2x2-pixel speckle so the bilinear warp does not blur it away
    speckle = rng.normal(0.0, 60.0, size=(n, size // 2, size // 2, channels))
    speckle = speckle.repeat(2, axis=1).repeat(2, axis=2)
    smooth = rng.normal(0.0, 8.0, size=(n, size, size, channels))
    coarse = (labels == 0)[:, None, None, None]
    images = 110.0 + np.where(coarse, speckle, smooth)
    return np.clip(images, 0, 255).astype(np.uint8), labels


def make_dataset(
    n_train: int = 48,
    n_val: int = 16,
    n_test: int = 16,
    size: int = 64,
    channels: int = 1,
    seed: int = 0,
) -> Dataset:
    """A ``Dataset`` with three splits of the pattern above, as the loader would return."""
    splits = {}
    for offset, (name, n) in enumerate(
        (("train", n_train), ("validation", n_val), ("test", n_test))
    ):
        images, labels = make_images(n, size, channels, seed * 10 + offset)
        files = tuple(f"{name}/{CLASS_NAMES[lab]}/{i}.png" for i, lab in enumerate(labels))
        splits[name] = SplitArrays(images=images, labels=labels, files=files)
    return Dataset(
        splits=splits,
        class_names=CLASS_NAMES,
        positive_class="corona",
        image_size=size,
        channels=channels,
        source="synthetic:tests",
        synthetic=True,
        notes=("built in tests/core/helpers.py",),
    )
