"""Grad-CAM examples for the report: a few test images per class, right and wrong.

Seeing where the exported model looks is the quickest check for shortcut learning (text
markers, borders, a child's body shape instead of the lungs), which a good AUC hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TILE_PX = 200  # each half of an example (plain | overlay), in pixels


@dataclass(frozen=True)
class Example:
    """One test image with the heatmap of the class the model predicted."""

    file: str
    true_class: str
    predicted_class: str
    probability: float  # of the predicted class
    png: bytes  # the image and its overlay side by side
    blank: bool = False  # no region supports the predicted class: the overlay is plain

    @property
    def correct(self) -> bool:
        return self.true_class == self.predicted_class


@dataclass(frozen=True)
class Gallery:
    examples: list[Example]
    layer: str  # the convolution the maps come from
    map_size: tuple[int, int]  # heatmap resolution before upsampling
    test_size: int


def pick(labels: np.ndarray, probs: np.ndarray, per_group: int) -> list[int]:
    """Indices of up to ``per_group`` right and wrong predictions per true class.

    The most confident of each group first: confident mistakes are the ones to look at.
    """
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    chosen: list[int] = []
    for cls in range(probs.shape[1]):
        for right in (True, False):
            group = np.nonzero((labels == cls) & ((predicted == cls) == right))[0]
            group = group[np.argsort(-confidence[group], kind="stable")]
            chosen.extend(int(i) for i in group[:per_group])
    return chosen


def _side_by_side(image: np.ndarray, heat: np.ndarray) -> bytes:
    from PIL import Image

    from covidxr_core.gradcam import overlay, png_bytes

    pixels = image[..., 0] if image.shape[-1] == 1 else image
    plain = (
        Image.fromarray(pixels).convert("RGB").resize((TILE_PX, TILE_PX), Image.Resampling.BILINEAR)
    )
    canvas = np.full((TILE_PX, 2 * TILE_PX + 6, 3), 255, dtype=np.uint8)
    canvas[:, :TILE_PX] = np.asarray(plain)
    canvas[:, TILE_PX + 6 :] = overlay(image, heat, size=TILE_PX)
    return png_bytes(canvas)


def build_gallery(model_path: Path, dataset: Any, per_group: int = 2) -> Gallery:
    """Grad-CAM of the exported model on a few test images of each class.

    Args:
        model_path: ``best/model.keras``.
        dataset: The study's `Dataset` (its test split is what the model was scored on).
        per_group: Images per (class, right/wrong) group.
    """
    from covidxr_core.gradcam import gradcam, last_conv_layer
    from covidxr_core.predict import load_classifier

    model, meta = load_classifier(model_path)
    test = dataset.splits["test"]
    names = list(meta["class_names"])
    probs = np.asarray(model.predict(test.images, batch_size=64, verbose=0))
    chosen = pick(np.asarray(test.labels), probs, per_group)
    layer = last_conv_layer(model)
    if not chosen:
        return Gallery([], layer.name, (0, 0), len(test))
    images = np.asarray(test.images[chosen])
    heatmaps, chosen_probs = gradcam(model, images, layer_name=layer.name)
    examples = []
    for i, index in enumerate(chosen):
        predicted = int(chosen_probs[i].argmax())
        examples.append(
            Example(
                file=test.files[index],
                true_class=names[int(test.labels[index])],
                predicted_class=names[predicted],
                probability=float(chosen_probs[i, predicted]),
                png=_side_by_side(images[i], heatmaps[i]),
                blank=not heatmaps[i].any(),
            )
        )
    shape = heatmaps.shape[1:3]
    return Gallery(examples, layer.name, (int(shape[0]), int(shape[1])), len(test))


__all__ = ["Example", "Gallery", "build_gallery", "pick"]
