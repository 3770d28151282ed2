"""Embedded demo data: synthetic chest-radiograph-like PNGs, generated once, deterministically.

Each image is drawn from a few anatomical shapes with per-patient variation: a bright
body, two dark lung fields, a brighter heart and spine, curved ribs and clavicles, film
noise and a random exposure (brightness, contrast, gamma), position and size on the
film. "corona" images add what COVID-19 pneumonia typically shows on a radiograph:
patchy opacities (a haze with a reticular texture), usually in both lungs, in the lower
and outer (peripheral) zones, of varying strength. Confounders blur the line: half of
all patients (both classes) have breast shadows, smooth brightening of the same lower
outer zones, and some "normal" images carry faint central (perihilar) haze.

Difficulty, measured through the loader at 128 px on the 60 validation images (3
seeds, 10 epochs): a linear model on 32 x 32 pixels reaches AUC 0.79 (0.83 on test);
the recipe CNN with Adam 1e-3 peaks at 0.85-0.87 and ends at 0.62-0.76; with the
recipe's own Adagrad 1e-3 and decay 0.9 it peaks at 0.61-0.84 and ends at 0.53-0.77.
Learnable, not trivial, and worth a search.

The data set is written to ``<cache>/demo-v1/{train,validation,test}/{corona,normal}/``
and then read through the ordinary loader like any user folder.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from covidxr_core.cache import cache_root

DEMO_VERSION = "demo-v1"  # change with any change to the drawing below
DEMO_COUNTS = {"train": 112, "validation": 30, "test": 30}  # per class
DEMO_CLASSES = ("corona", "normal")
DEMO_SIZE = 256
# Image i of class c in split s is drawn from np.random.default_rng([DEMO_SEED, s, c, i]).
DEMO_SEED = 20200311
# Difficulty, tuned so that the recipe's CNN learns the task but not perfectly and a
# linear model on pixels does not solve it (figures in the module docstring). Any
# change to these or to the drawing needs a new DEMO_VERSION.
OPACITY_STRENGTH = (0.15, 0.4)  # peak brightening of a corona opacity, uniform per patient
OPACITY_MOTTLE = 3.0  # texture amplitude relative to the opacity's mean
MOTTLE_CELLS = 44  # texture cells across the film: about 6 px meshes at 256 px
OPACITY_SIGMA = (0.06, 0.12)  # opacity radius, as a fraction of the film
BREAST_CHANCE = 0.5  # share of patients (both classes) with breast shadows
BREAST_STRENGTH = (0.05, 0.15)
PATIENT_SIZE = (0.75, 1.15)  # body scale on the film
POSITION_JITTER = 0.06  # standard deviation of the body centre, fraction of the film
# A fixed mtime keeps the decode cache key identical wherever the demo is generated.
_MTIME_NS = 1_583_884_800 * 10**9


def _soft_ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, edge: float
) -> np.ndarray:
    """1 inside, 0 outside, with a smooth rim ``edge`` (in radius units) wide."""
    radius = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return 0.5 - 0.5 * np.tanh((radius - 1.0) / (2.0 * edge))  # a logistic without overflow


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur, edges repeated (a few shifted sums: cheap at 256 px)."""
    radius = max(1, int(3 * sigma + 0.5))
    taps = [math.exp(-((i / sigma) ** 2) / 2.0) for i in range(-radius, radius + 1)]
    weights = [t / sum(taps) for t in taps]
    n = image.shape[0]
    rows = np.pad(image, ((radius, radius), (0, 0)), "edge")
    image = rows[:n] * weights[0]
    for i, w in enumerate(weights[1:], start=1):
        image += w * rows[i : i + n]
    columns = np.pad(image, ((0, 0), (radius, radius)), "edge")
    out = columns[:, :n] * weights[0]
    for i, w in enumerate(weights[1:], start=1):
        out += w * columns[:, i : i + n]
    return out


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency texture in about [-1, 1]: random cells upsampled smoothly."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    image = Image.fromarray(coarse).resize((DEMO_SIZE, DEMO_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(image) / 1.5


def _step(values: np.ndarray, edge: float) -> np.ndarray:
    """Smooth 1 -> 0 as ``values`` goes from negative to positive."""
    return 0.5 - 0.5 * np.tanh(values / edge)


def _ribs(
    x: np.ndarray, y: np.ndarray, cx: float, top: float, size: float, rng: np.random.Generator
) -> np.ndarray:
    """Posterior ribs: bright bands that leave the spine and curve down to the sides."""
    spacing = rng.uniform(0.055, 0.068) * size
    curve = rng.uniform(0.7, 1.2) / size
    lateral = np.abs(x - cx)
    # Distance to the nearest of 11 bands; the bands never overlap, so one exp suffices.
    offset = y - top - curve * lateral**1.5
    nearest = np.clip(np.rint(offset / spacing), 0, 10)
    bands = np.exp(-(((offset - nearest * spacing) / (0.011 * size)) ** 2))
    # Not over the spine, and fading out below the diaphragm.
    return bands * _step(0.035 - lateral, 0.01) * _step(y - top - 0.5 * size, 0.03)


def draw_radiograph(rng: np.random.Generator, corona: bool) -> np.ndarray:
    """One synthetic frontal (PA) chest radiograph.

    Args:
        rng: The image's own generator (so images do not depend on each other).
        corona: Whether to draw pneumonia opacities.

    Returns:
        uint8 array (DEMO_SIZE, DEMO_SIZE).
    """
    grid_y, grid_x = np.mgrid[0:DEMO_SIZE, 0:DEMO_SIZE].astype(np.float32) / DEMO_SIZE
    # Patient: size, build, position and a slight rotation on the film.
    size, build = rng.uniform(*PATIENT_SIZE), rng.uniform(0.88, 1.12)
    cx, cy = 0.5 + rng.normal(0, POSITION_JITTER), 0.5 + rng.normal(0, POSITION_JITTER)
    angle = rng.normal(0, 0.05)
    # Python floats, not NumPy scalars, keep every array float32 (twice as fast).
    cos, sin = math.cos(angle), math.sin(angle)
    x = cx + (grid_x - cx) * cos - (grid_y - cy) * sin
    y = cy + (grid_x - cx) * sin + (grid_y - cy) * cos

    torso = _soft_ellipse(x, y, cx, cy + 0.3 * size, 0.5 * size * build, 0.8 * size, 0.02)
    shoulders = _soft_ellipse(x, y, cx, cy - 0.27 * size, 0.6 * size * build, 0.2 * size, 0.08)
    body = np.maximum(torso, shoulders)
    image = 0.04 + rng.uniform(0.48, 0.62) * body

    lungs = []
    dx = rng.uniform(0.15, 0.19) * size * build
    for side in (-1, 1):
        lcx = cx + side * (dx + rng.normal(0, 0.008))
        lcy = cy - 0.03 * size + rng.normal(0, 0.01)
        rx = rng.uniform(0.115, 0.145) * size * build
        ry = rng.uniform(0.25, 0.31) * size
        dome = lcy + ry * rng.uniform(0.55, 0.8) - rng.uniform(1.5, 3.0) * (x - lcx) ** 2 / size
        lungs.append(_soft_ellipse(x, y, lcx, lcy, rx, ry, 0.035) * _step(y - dome, 0.008))
    heart_rx, heart_ry = rng.uniform(0.14, 0.19) * size, rng.uniform(0.11, 0.14) * size
    heart = _soft_ellipse(x, y, cx + 0.05 * size, cy + 0.15 * size, heart_rx, heart_ry, 0.08)
    lungs = [lung * (1.0 - heart) for lung in lungs]
    lung_mask = np.maximum(*lungs)
    image -= rng.uniform(0.28, 0.4) * lung_mask
    spine = np.exp(-(((x - cx) / (0.028 * size)) ** 2)) * body
    image += 0.1 * spine + 0.04 * body * _step(cy + 0.25 * size - y, 0.02)  # abdomen
    ribs = _ribs(x, y, cx, cy - 0.3 * size, size, rng)
    image += rng.uniform(0.06, 0.11) * ribs * (0.35 + 0.65 * lung_mask) * body
    for side in (-1, 1):  # clavicles, rising towards the shoulders
        centre = cy - 0.31 * size - 0.3 * side * (x - cx)
        reach = _step(np.abs(x - cx - side * 0.15 * size) - 0.14 * size, 0.01)
        image += 0.09 * np.exp(-(((y - centre) / (0.012 * size)) ** 2)) * reach * body
    # Vessels and soft tissue: the texture any real lung shows, in both classes.
    image += 0.045 * _smooth_noise(rng, 28) * lung_mask
    lower_outer = [
        np.exp(
            -((x - cx - side * (dx + 0.6 * 0.13 * size)) ** 2 + (y - cy - 0.12 * size) ** 2)
            / (2 * (0.09 * size) ** 2)
        )
        for side in (-1, 1)
    ]
    if rng.random() < BREAST_CHANCE:
        # Breast shadows (both classes): smooth, low and lateral, beyond the lung edge too,
        # so "brighter lower zones" alone does not mean pneumonia.
        image += rng.uniform(*BREAST_STRENGTH) * (lower_outer[0] + lower_outer[1]) * body

    if corona:
        severity = rng.uniform(*OPACITY_STRENGTH)
        sides = (-1, 1) if rng.random() < 0.8 else (int(rng.choice([-1, 1])),)
        # A haze crossed by a reticular mesh (|smooth noise| has sharp creases where the
        # noise crosses zero), like "crazy paving". The mesh moves with every patient, so
        # a linear model on pixels sees little of it; convolutions with ReLUs see it well.
        patchy = 0.5 * np.abs(1.0 + OPACITY_MOTTLE * _smooth_noise(rng, MOTTLE_CELLS))
        for side in sides:
            lung = lungs[(side + 1) // 2]
            for _ in range(int(rng.integers(2, 5))):
                # Lower and outer zone of this lung, with jitter.
                bx = cx + side * (dx + rng.uniform(0.1, 0.8) * 0.13 * size)
                by = cy + rng.uniform(0.0, 0.2) * size
                sigma = rng.uniform(*OPACITY_SIGMA) * size
                blob = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * sigma**2))
                image += severity * rng.uniform(0.6, 1.3) * blob * lung * patchy
    elif rng.random() < 0.5:
        # Perihilar haze in normals (vascular prominence): bright, but central.
        hx = cx + int(rng.choice([-1, 1])) * dx * 0.6
        haze = np.exp(-((x - hx) ** 2 + (y - cy) ** 2) / (2 * 0.06**2))
        image += rng.uniform(0.02, 0.08) * haze * lung_mask

    if rng.random() < 0.6:  # a side marker, burnt into a top corner
        top, left = (
            int(rng.uniform(0.03, 0.12) * DEMO_SIZE),
            int(rng.uniform(0.05, 0.85) * DEMO_SIZE),
        )
        image[top : top + 10, left : left + 7] = rng.uniform(0.7, 1.0)
    # Collimation: the shutters leave darker bands at the film edges.
    margins = rng.uniform(0.0, 0.06, size=4) * (rng.random() < 0.5)
    inside = (
        (grid_x > margins[0])
        & (grid_x < 1 - margins[1])
        & (grid_y > margins[2])
        & (grid_y < 1 - margins[3])
    )
    image = np.where(inside, image, 0.3 * image)

    # Exposure and film: blur, contrast, gamma, grain.
    image = _blur(image, rng.uniform(0.6, 1.6)) * rng.uniform(0.8, 1.25) + rng.uniform(-0.08, 0.08)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.75, 1.3)
    image += rng.uniform(0.01, 0.035) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _png(split_index: int, class_index: int, i: int) -> bytes:
    """The exact bytes of one demo file: a function of its seed and this code only."""
    rng = np.random.default_rng([DEMO_SEED, split_index, class_index, i])
    pixels = draw_radiograph(rng, corona=DEMO_CLASSES[class_index] == "corona")
    encoded = io.BytesIO()
    # Level 1: three times faster than the default, files only 10% larger.
    Image.fromarray(pixels).save(encoded, format="PNG", compress_level=1)
    return encoded.getvalue()


def _write_demo(folder: Path) -> None:
    for split_index, (split, count) in enumerate(DEMO_COUNTS.items()):
        for class_index, label in enumerate(DEMO_CLASSES):
            out = folder / split / label
            out.mkdir(parents=True)
            for i in range(count):
                path = out / f"{label}-{i:03d}.png"
                path.write_bytes(_png(split_index, class_index, i))
                os.utime(path, ns=(_MTIME_NS, _MTIME_NS))


def _complete(folder: Path) -> bool:
    """All files there, and a sample equal to what this code draws (not an older drawing)."""
    expected = len(DEMO_CLASSES) * sum(DEMO_COUNTS.values())
    if not folder.is_dir() or sum(1 for _ in folder.glob("*/*/*.png")) != expected:
        return False
    sample = folder / "train" / DEMO_CLASSES[0] / f"{DEMO_CLASSES[0]}-000.png"
    return sample.read_bytes() == _png(0, 0, 0)


def demo_data_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Generate the synthetic demo data set (once) and return its folder.

    Safe when several processes call it at once: each writes into its own temporary
    folder and the first to rename it into place wins; the others use that one.

    Args:
        cache_dir: Cache root; None uses $COVIDXR_CACHE or ~/.cache/covidxr.

    Returns:
        ``<cache>/demo-v1``, laid out as ``{train,validation,test}/{corona,normal}/*.png``.
    """
    root = cache_root(cache_dir)
    folder = root / DEMO_VERSION
    if _complete(folder):
        return folder
    if folder.exists():
        # Incomplete (files deleted by hand) or drawn by other code under the same
        # version name: move it aside atomically, so a concurrent reader never sees a
        # half-deleted folder, then regenerate.
        stale = root / f".stale-{DEMO_VERSION}-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            folder.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    temp = root / f".tmp-{DEMO_VERSION}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write_demo(temp)
        temp.rename(folder)
    except OSError:
        shutil.rmtree(temp, ignore_errors=True)
        if not _complete(folder):
            raise
    return folder


__all__ = [
    "DEMO_CLASSES",
    "DEMO_COUNTS",
    "DEMO_SEED",
    "DEMO_VERSION",
    "demo_data_path",
    "draw_radiograph",
]
