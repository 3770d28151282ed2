"""Small real image folders on disk, laid out as DIR/<split>/<class>/<file>."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("corona", "normal")
SPLIT_COUNTS = {"train": 3, "validation": 2, "test": 2}  # per class: enough, never carved


def image_bytes(seed: int, side: int = 48, fmt: str = "PNG", mode: str = "L") -> bytes:
    """A noisy image of `side` px, encoded as `fmt`."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB").convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def make_folder(
    root: Path, per_class: dict[str, int] | None = None, side: int = 48, seed: int = 0
) -> Path:
    """Write a complete three-split, two-class folder of PNGs under `root`; return it."""
    counts = per_class or SPLIT_COUNTS
    n = seed * 10_000
    for split, count in counts.items():
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                n += 1
                (folder / f"{label}-{i:03d}.png").write_bytes(image_bytes(n, side))
    return root
