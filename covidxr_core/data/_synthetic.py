"""Synthetic chest-radiograph-like PNGs, drawn deterministically: the demo set and a harder one.

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

A harder set, ``HARD`` ("hard-v1"), is drawn by the same code with other values (the
demo's bytes do not change): smaller opacities, 15% of corona patients early cases with
opacities at 10-30% strength, scars (the opacities' mesh in an upper or central zone)
and effusion-like smooth haze (their place, without the mesh) in both classes, more
breast shadows, perihilar haze and grain; and 300 / 150 / 150 images per class in train
/ validation / test, five times the demo's validation and test. Write it anywhere with
``python -m covidxr_core.data.synthetic OUT_DIR --difficulty hard [--seed N]``, or into
the cache with ``synthetic_data_path("hard")`` (about 30 s on one core).

Difficulty of the hard set, measured through the loader at 96 px, 1 channel: the
sensible default (preset "default": Adam 1e-3, widths 16..128, dropout 0.3), 6 epochs,
batch 32, on a 2-core CPU, i.e. ``python -m covidxr_core.train --data OUT_DIR --preset
default --image-size 96 --channels 1 --epochs 6 --seed S --output RUN`` (test AUC
intervals from 200 bootstrap resamples):

    seed 0: validation AUC 0.861, test 0.863 [0.820, 0.903]; best epoch 0.861
    seed 1: validation AUC 0.554, test 0.498 [0.440, 0.561]; best epoch 0.732
    seed 2: validation AUC 0.666, test 0.584 [0.522, 0.649]; best epoch 0.820

Learnable, and well below the demo (the same run on the demo: validation 0.858, test
0.956). The final model of the default is erratic across seeds, and that is the
default's, not the drawing's: the demo's drawing at the hard set's counts gave 0.552 /
0.496 (seed 1) and 0.910 / 0.835 (seed 2), its epochs peaking at 0.85-0.95. In the
collapsed runs the training accuracy reaches 0.88-0.98 while the model in inference mode
ranks its own training images at chance (AUC 0.49, seed 1); the same model with batch
statistics (training mode) ranks them at 0.92 and validation at 0.94: BatchNorm's
moving statistics, not the data, fail after ~110 steps at Adam 1e-3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from covidxr_core.cache import cache_root

DEMO_VERSION = "demo-v1"  # change with any change to the drawing below
DEMO_COUNTS = {"train": 112, "validation": 30, "test": 30}  # per class
DEMO_CLASSES = ("corona", "normal")
DEMO_SIZE = 256
# Split i of this tuple is the i in every image's seed, whatever the counts.
_SPLIT_ORDER = ("train", "validation", "test")
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


@dataclass(frozen=True)
class Difficulty:
    """How one synthetic set is drawn: its name, sizes, seed and the strength of each cue.

    The defaults are the demo's (the constants above). Confounders with chance 0 are not
    drawn at all, so they consume no random numbers: the demo's bytes do not depend on
    them. Any change to a set's values or to the drawing needs a new ``version``.
    """

    version: str  # folder name in the cache, e.g. "demo-v1"
    counts: Mapping[str, int]  # images per class, by split
    seed: int  # image i of class c in split s: np.random.default_rng([seed, s, c, i])
    opacity_strength: tuple[float, float] = OPACITY_STRENGTH
    opacity_sigma: tuple[float, float] = OPACITY_SIGMA
    opacity_blobs: tuple[int, int] = (2, 5)  # opacities per affected lung: integers(lo, hi)
    bilateral_chance: float = 0.8  # corona in both lungs (else one)
    # Early cases: corona patients whose opacities are this much fainter, (chance, factor
    # range); little on the film, as with many early COVID-19 radiographs.
    early_chance: float = 0.0
    early_factor: tuple[float, float] = (1.0, 1.0)
    breast_chance: float = BREAST_CHANCE
    breast_strength: tuple[float, float] = BREAST_STRENGTH
    perihilar_chance: float = 0.5  # normals with a faint central haze
    perihilar_strength: tuple[float, float] = (0.02, 0.08)
    grain: tuple[float, float] = (0.01, 0.035)  # film noise amplitude
    # Confounders the demo does not draw (both classes):
    scar_chance: float = 0.0  # a reticular (meshed) patch in an upper or central zone
    scar_strength: tuple[float, float] = (0.0, 0.0)
    effusion_chance: float = 0.0  # a smooth haze in the lower outer lung zone, no mesh
    effusion_strength: tuple[float, float] = (0.0, 0.0)


DEMO = Difficulty(DEMO_VERSION, DEMO_COUNTS, DEMO_SEED)
# Smaller opacities, 15% of corona patients early cases with faint ones, more
# confounders that share either the texture (scars) or the place (effusions, breast
# shadows) of pneumonia, more grain; and five times the demo's validation and test
# images, so that a paired test-AUC interval is a few hundredths wide. Measured in the
# module docstring.
HARD = Difficulty(
    version="hard-v1",
    counts={"train": 300, "validation": 150, "test": 150},
    seed=20200312,
    opacity_sigma=(0.05, 0.11),
    bilateral_chance=0.75,
    early_chance=0.15,
    early_factor=(0.1, 0.3),
    breast_chance=0.6,
    breast_strength=(0.05, 0.18),
    perihilar_chance=0.6,
    perihilar_strength=(0.03, 0.1),
    grain=(0.015, 0.04),
    scar_chance=0.25,
    scar_strength=(0.05, 0.15),
    effusion_chance=0.3,
    effusion_strength=(0.05, 0.15),
)
DIFFICULTIES = {"demo": DEMO, "hard": HARD}


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


def _confounders(
    rng: np.random.Generator,
    difficulty: Difficulty,
    x: np.ndarray,
    y: np.ndarray,
    lungs: list[np.ndarray],
    lower_outer: list[np.ndarray],
    cx: float,
    cy: float,
    size: float,
) -> np.ndarray | float:
    """Findings that are not pneumonia but look like part of it (both classes).

    A scar has the opacities' reticular mesh but lies in an upper or central zone; an
    effusion-like haze lies where opacities do but is smooth. Neither is drawn, nor uses
    a random number, when its chance is 0 (the demo).
    """
    extra: np.ndarray | float = 0.0
    if difficulty.scar_chance > 0 and rng.random() < difficulty.scar_chance:
        side = int(rng.choice([-1, 1]))
        lung = lungs[(side + 1) // 2]
        mesh = 0.5 * np.abs(1.0 + OPACITY_MOTTLE * _smooth_noise(rng, MOTTLE_CELLS))
        sx = cx + side * rng.uniform(0.08, 0.2) * size
        sy = cy - rng.uniform(0.05, 0.22) * size
        sigma = rng.uniform(0.04, 0.08) * size
        blob = np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * sigma**2))
        extra = extra + rng.uniform(*difficulty.scar_strength) * blob * lung * mesh
    if difficulty.effusion_chance > 0 and rng.random() < difficulty.effusion_chance:
        side = int(rng.choice([-1, 1]))
        lung = lungs[(side + 1) // 2]
        strength = rng.uniform(*difficulty.effusion_strength)
        extra = extra + strength * lower_outer[(side + 1) // 2] * lung
    return extra


def draw_radiograph(
    rng: np.random.Generator, corona: bool, difficulty: Difficulty = DEMO
) -> np.ndarray:
    """One synthetic frontal (PA) chest radiograph.

    Args:
        rng: The image's own generator (so images do not depend on each other).
        corona: Whether to draw pneumonia opacities.
        difficulty: The strength of each cue and confounder (default: the demo's).

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
    if rng.random() < difficulty.breast_chance:
        # Breast shadows (both classes): smooth, low and lateral, beyond the lung edge too,
        # so "brighter lower zones" alone does not mean pneumonia.
        strength = rng.uniform(*difficulty.breast_strength)
        image += strength * (lower_outer[0] + lower_outer[1]) * body

    if corona:
        severity = rng.uniform(*difficulty.opacity_strength)
        if difficulty.early_chance > 0 and rng.random() < difficulty.early_chance:
            severity *= rng.uniform(*difficulty.early_factor)
        both = rng.random() < difficulty.bilateral_chance
        sides = (-1, 1) if both else (int(rng.choice([-1, 1])),)
        # A haze crossed by a reticular mesh (|smooth noise| has sharp creases where the
        # noise crosses zero), like "crazy paving". The mesh moves with every patient, so
        # a linear model on pixels sees little of it; convolutions with ReLUs see it well.
        patchy = 0.5 * np.abs(1.0 + OPACITY_MOTTLE * _smooth_noise(rng, MOTTLE_CELLS))
        for side in sides:
            lung = lungs[(side + 1) // 2]
            for _ in range(int(rng.integers(*difficulty.opacity_blobs))):
                # Lower and outer zone of this lung, with jitter.
                bx = cx + side * (dx + rng.uniform(0.1, 0.8) * 0.13 * size)
                by = cy + rng.uniform(0.0, 0.2) * size
                sigma = rng.uniform(*difficulty.opacity_sigma) * size
                blob = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * sigma**2))
                image += severity * rng.uniform(0.6, 1.3) * blob * lung * patchy
    elif rng.random() < difficulty.perihilar_chance:
        # Perihilar haze in normals (vascular prominence): bright, but central.
        hx = cx + int(rng.choice([-1, 1])) * dx * 0.6
        haze = np.exp(-((x - hx) ** 2 + (y - cy) ** 2) / (2 * 0.06**2))
        image += rng.uniform(*difficulty.perihilar_strength) * haze * lung_mask
    image += _confounders(rng, difficulty, x, y, lungs, lower_outer, cx, cy, size)

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
    grain = rng.uniform(*difficulty.grain)
    image += grain * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _png(split_index: int, class_index: int, i: int, difficulty: Difficulty = DEMO) -> bytes:
    """The exact bytes of one file: a function of its seed, the difficulty and this code."""
    rng = np.random.default_rng([difficulty.seed, split_index, class_index, i])
    pixels = draw_radiograph(rng, DEMO_CLASSES[class_index] == "corona", difficulty)
    encoded = io.BytesIO()
    # Level 1: three times faster than the default, files only 10% larger.
    Image.fromarray(pixels).save(encoded, format="PNG", compress_level=1)
    return encoded.getvalue()


def _write(folder: Path, difficulty: Difficulty) -> None:
    for split_index, split in enumerate(_SPLIT_ORDER):
        for class_index, label in enumerate(DEMO_CLASSES):
            out = folder / split / label
            out.mkdir(parents=True)
            for i in range(difficulty.counts[split]):
                path = out / f"{label}-{i:03d}.png"
                path.write_bytes(_png(split_index, class_index, i, difficulty))
                os.utime(path, ns=(_MTIME_NS, _MTIME_NS))


def _complete(folder: Path, difficulty: Difficulty = DEMO) -> bool:
    """All files there, and a sample equal to what this code draws (not an older drawing)."""
    expected = len(DEMO_CLASSES) * sum(difficulty.counts.values())
    if not folder.is_dir() or sum(1 for _ in folder.glob("*/*/*.png")) != expected:
        return False
    sample = folder / "train" / DEMO_CLASSES[0] / f"{DEMO_CLASSES[0]}-000.png"
    return sample.is_file() and sample.read_bytes() == _png(0, 0, 0, difficulty)


def _write_into_place(folder: Path, difficulty: Difficulty) -> None:
    """Draw into a temporary sibling, then rename it to ``folder`` (first rename wins)."""
    temp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _write(temp, difficulty)
        temp.rename(folder)
    except OSError:
        shutil.rmtree(temp, ignore_errors=True)
        if not _complete(folder, difficulty):
            raise


def resolve_difficulty(
    difficulty: str | Difficulty,
    seed: int | None = None,
    counts: Mapping[str, int] | None = None,
) -> Difficulty:
    """A named difficulty ("demo", "hard") or a given one, with its seed or counts replaced.

    Raises:
        ValueError: Unknown name, or counts not for exactly the splits train, validation and test, or
            a count below 1.
    """
    if isinstance(difficulty, str):
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f"unknown difficulty {difficulty!r}; valid are {', '.join(DIFFICULTIES)}"
            )
        difficulty = DIFFICULTIES[difficulty]
    if counts is not None:
        if set(counts) != set(_SPLIT_ORDER) or any(int(n) < 1 for n in counts.values()):
            raise ValueError(
                f"counts must give every split of {_SPLIT_ORDER} at least 1 image per class, "
                f"but got {dict(counts)}"
            )
        ordered = {split: int(counts[split]) for split in _SPLIT_ORDER}
        difficulty = dataclasses.replace(difficulty, counts=ordered)
    if seed is not None:
        difficulty = dataclasses.replace(difficulty, seed=int(seed))
    return difficulty


def synthetic_data_path(
    difficulty: str | Difficulty = "demo", cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Generate a synthetic data set into the cache (once) and return its folder.

    Safe when several processes call it at once: each writes into its own temporary
    folder and the first to rename it into place wins; the others use that one.

    Args:
        difficulty: "demo", "hard", or a `Difficulty`; its ``version`` names the folder.
        cache_dir: Cache root; None uses $COVIDXR_CACHE or ~/.cache/covidxr.

    Returns:
        ``<cache>/<version>``, laid out as ``{train,validation,test}/{corona,normal}/*.png``.
    """
    chosen = resolve_difficulty(difficulty)
    root = cache_root(cache_dir)
    folder = root / chosen.version
    if _complete(folder, chosen):
        return folder
    if folder.exists():
        # Incomplete (files deleted by hand) or drawn by other code under the same
        # version name: move it aside atomically, so a concurrent reader never sees a
        # half-deleted folder, then regenerate.
        stale = root / f".stale-{chosen.version}-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            folder.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    _write_into_place(folder, chosen)
    return folder


def demo_data_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Generate the synthetic demo data set (once) and return its folder.

    Safe when several processes call it at once (see `synthetic_data_path`).

    Args:
        cache_dir: Cache root; None uses $COVIDXR_CACHE or ~/.cache/covidxr.

    Returns:
        ``<cache>/demo-v1``, laid out as ``{train,validation,test}/{corona,normal}/*.png``.
    """
    return synthetic_data_path(DEMO, cache_dir)


def write_synthetic(
    out_dir: str | os.PathLike[str],
    difficulty: str | Difficulty = "hard",
    seed: int | None = None,
    counts: Mapping[str, int] | None = None,
) -> Path:
    """Write a synthetic data set to a folder of your choice, deterministically.

    The same difficulty, seed and counts give the same bytes on any machine. A smaller
    ``counts`` gives a prefix of the larger set: image i is the same image either way.

    Args:
        out_dir: A new or empty folder; one that already holds exactly this set is
            left as it is.
        difficulty: "hard" (default), "demo", or a `Difficulty`.
        seed: Replaces the difficulty's seed (another set of patients).
        counts: Images per class for each split, e.g. ``{"train": 8, "validation": 4,
            "test": 4}``; default the difficulty's.

    Returns:
        ``out_dir``, laid out as ``{train,validation,test}/{corona,normal}/*.png``.

    Raises:
        FileExistsError: ``out_dir`` holds other files.
        ValueError: See `resolve_difficulty`.
    """
    chosen = resolve_difficulty(difficulty, seed, counts)
    folder = Path(out_dir)
    if _complete(folder, chosen):
        return folder
    if folder.exists():
        if not folder.is_dir() or any(folder.iterdir()):
            raise FileExistsError(
                f"{folder} exists and holds something else; give a new or empty folder"
            )
        folder.rmdir()  # empty: the finished set is renamed into its place
    folder.parent.mkdir(parents=True, exist_ok=True)
    _write_into_place(folder, chosen)
    return folder


__all__ = [
    "DEMO",
    "DEMO_CLASSES",
    "DEMO_COUNTS",
    "DEMO_SEED",
    "DEMO_VERSION",
    "DIFFICULTIES",
    "HARD",
    "Difficulty",
    "demo_data_path",
    "draw_radiograph",
    "resolve_difficulty",
    "synthetic_data_path",
    "write_synthetic",
]
