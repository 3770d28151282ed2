"""Cross-validation folds over train + validation, keeping duplicates and groups whole.

`cv_folds` pools a `Dataset`'s train and validation splits (test is never touched) and
deals the pool into ``k`` folds; fold ``i``'s validation part is fold ``i`` and its train
part every other fold. `fold_dataset` turns one ``(train_idx, val_idx)`` pair into a
`Dataset` whose train/validation splits are those parts and whose test split is the
original one.

Clusters
    The files that must stay on one side are those `_carve.clusters` joins: the same
    radiograph (same sha256, or perceptual hashes within ``NEAR_DUPLICATE_BITS``) and one
    group (``--groups``, or a mapping passed in), transitively. The fingerprints come from
    the decode cache (`_fingerprints.fingerprints`, computed once if missing). A `Dataset`
    that carries no `DataLayout` (one built in memory) is clustered by identical decoded
    pixels instead, the only duplicate it can know about.

Dealing
    Clusters are ordered largest first, ties by the seeded key `_carve.carve_key` of their
    first path, so the seed alone decides the deal and neither file order nor the NumPy
    version does. Each cluster goes to the fold where it adds the least to the distance
    between the fold's per-class counts and the even share (``n_class / k``), ties to the
    fold with fewest files, then the lowest fold number. With single-file clusters this is
    a stratified round-robin: each fold's class counts differ from the even share by less
    than one file. Every fold must hold every class; when a class has fewer clusters than
    ``k`` that cannot be, and `cv_folds` says so (`DataError`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from covidxr_core.data._carve import carve_key, clusters
from covidxr_core.data._config import DataConfig
from covidxr_core.data._dataset import Dataset, SplitArrays
from covidxr_core.data._discover import DataLayout
from covidxr_core.data._fingerprints import fingerprints
from covidxr_core.errors import ConfigError, DataError

POOLED = ("train", "validation")
Fold = tuple[np.ndarray, np.ndarray]  # (train_idx, val_idx) into the pooled order


def pooled_files(dataset: Dataset) -> tuple[str, ...]:
    """The pool's files in index order: train's, then validation's."""
    return tuple(f for split in POOLED for f in dataset.splits[split].files)


def pooled_labels(dataset: Dataset) -> np.ndarray:
    """The pool's integer labels in index order."""
    return np.concatenate([dataset.splits[s].labels for s in POOLED]).astype(np.int32)


def _pixel_prints(dataset: Dataset, files: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
    """Exact duplicates by decoded pixels: sha256 of each image, with a hash no pair matches."""
    images = np.concatenate([dataset.splits[s].images for s in POOLED])
    prints: dict[str, tuple[str, bytes]] = {}
    for i, (rel, image) in enumerate(zip(files, images, strict=True)):
        # A distinct 256-bit pattern per file keeps near-duplicate matching out of it:
        # consecutive integers spread over 32 bytes differ in far more than 28 bits.
        spread = hashlib.sha256(f"{i}".encode()).digest()
        prints[rel] = (hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(), spread)
    return prints


def file_clusters(
    dataset: Dataset,
    groups: Mapping[str, str] | None = None,
    config: DataConfig | None = None,
) -> list[tuple[str, ...]]:
    """The pool's files grouped into clusters that no fold may split (module docstring).

    Args:
        dataset: From `load_dataset`; its `DataLayout` (``extra["layout"]``) names the files.
        groups: relpath -> group; None uses the groups the data set was loaded with.
        config: ``cache_dir`` and ``workers`` for the fingerprints (the loader's settings).
    """
    files = pooled_files(dataset)
    layout = dataset.extra.get("layout")
    if isinstance(layout, DataLayout):
        prints = fingerprints(layout, config)
        known = dict(layout.groups) if groups is None else dict(groups)
    else:
        prints = _pixel_prints(dataset, files)
        known = dict(groups or {})
    pool = set(files)
    return clusters(list(files), prints, {r: g for r, g in known.items() if r in pool})


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise ConfigError(f"cv_folds: k must be an int, but got {k!r}")
    if k < 2:
        raise ConfigError(
            f"cv_folds: `k >= 2` must hold (one fold is no cross-validation), got {k}"
        )
    return k


def cv_folds(
    dataset: Dataset,
    k: int,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
    config: DataConfig | None = None,
) -> list[Fold]:
    """``k`` stratified, seeded, group-aware folds over train + validation pooled.

    Args:
        dataset: The loaded data set; its test split is not used.
        k: Number of folds, at least 2.
        seed: Decides the deal; the same seed and files always give the same folds.
        groups: relpath -> group kept in one fold; None: the data set's ``--groups``.
        config: Where the fingerprint cache lives (``cache_dir``), as for loading.

    Returns:
        ``k`` pairs ``(train_idx, val_idx)`` of sorted int64 indices into the pool
        (`pooled_files` order); the ``val_idx`` of all folds partition the pool.

    Raises:
        ConfigError: ``k`` is not an int >= 2.
        DataError: some class has fewer clusters than ``k``, so a fold would lack it.
    """
    k = _check_k(k)
    files = pooled_files(dataset)
    labels = pooled_labels(dataset)
    index_of = {rel: i for i, rel in enumerate(files)}
    n_classes = dataset.num_classes
    share = np.bincount(labels, minlength=n_classes) / k
    members = file_clusters(dataset, groups, config)
    for c, name in enumerate(dataset.class_names):
        holding = sum(any(labels[index_of[r]] == c for r in m) for m in members)
        if holding < k:
            raise DataError(
                f"{dataset.source}: class {name!r} has {holding} images (or clusters of "
                f"duplicates and groups, kept together) in train + validation, too few for "
                f"StudySpec.cv = {k} folds: every fold needs at least one"
            )
    ordered = sorted(members, key=lambda m: (-len(m), carve_key(seed, m[0])))
    have = np.zeros((k, n_classes))
    fold_of = np.full(len(files), -1, dtype=np.int64)
    for cluster in ordered:
        add = np.bincount([labels[index_of[r]] for r in cluster], minlength=n_classes)
        before = np.abs(have - share).sum(axis=1)
        after = np.abs(have + add - share).sum(axis=1)
        cost = after - before
        sizes = have.sum(axis=1)
        fold = min(range(k), key=lambda f: (round(float(cost[f]), 9), sizes[f], f))
        have[fold] += add
        fold_of[[index_of[r] for r in cluster]] = fold
    for fold in range(k):
        missing = [dataset.class_names[c] for c in range(n_classes) if have[fold, c] == 0]
        if missing:  # clusters mixing classes can still leave one out
            raise DataError(
                f"{dataset.source}: with duplicates and groups kept together, fold {fold} of "
                f"StudySpec.cv = {k} gets no image of class {missing[0]!r}; use fewer folds"
            )
    every = np.arange(len(files), dtype=np.int64)
    return [(every[fold_of != f], every[fold_of == f]) for f in range(k)]


def _take(
    images: np.ndarray, labels: np.ndarray, files: tuple[str, ...], idx: np.ndarray
) -> SplitArrays:
    return SplitArrays(images[idx], labels[idx], tuple(files[i] for i in idx))


def fold_dataset(
    dataset: Dataset, fold: Fold, number: int | None = None, k: int | None = None
) -> Dataset:
    """The data set of one fold: train/validation replaced by the fold's parts, test kept.

    ``extra`` keeps what it had, but not the `DataLayout` (its splits are no longer this
    data set's); ``extra["cv_fold"]`` is ``(number, k)`` when given.
    """
    train_idx, val_idx = fold
    images = np.concatenate([dataset.splits[s].images for s in POOLED])
    labels = pooled_labels(dataset)
    files = pooled_files(dataset)
    overlap = np.intersect1d(train_idx, val_idx)
    if overlap.size:
        raise ValueError(f"fold_dataset: {overlap.size} indices are in both parts of the fold")
    splits = {
        "train": _take(images, labels, files, np.asarray(train_idx, dtype=np.int64)),
        "validation": _take(images, labels, files, np.asarray(val_idx, dtype=np.int64)),
        "test": dataset.splits["test"],
    }
    extra = {key: value for key, value in dataset.extra.items() if key != "layout"}
    notes = dataset.notes
    if number is not None and k is not None:
        extra["cv_fold"] = (number, k)
        notes = (*notes, f"cross-validation fold {number} of {k}: train + validation pooled")
    return replace(dataset, splits=splits, extra=extra, notes=notes)


def fold_counts(dataset: Dataset, folds: list[Fold]) -> list[dict[str, int]]:
    """Validation images per class in each fold, for a summary."""
    labels = pooled_labels(dataset)
    return [
        {
            name: int(n)
            for name, n in zip(
                dataset.class_names,
                np.bincount(labels[val], minlength=dataset.num_classes),
                strict=True,
            )
        }
        for _, val in folds
    ]


__all__ = [
    "POOLED",
    "Fold",
    "cv_folds",
    "file_clusters",
    "fold_counts",
    "fold_dataset",
    "pooled_files",
    "pooled_labels",
]
