"""The in-memory form of a decoded data set, as every later stage sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

SPLITS = ("train", "validation", "test")


class DroppedFile(NamedTuple):
    """A validation/test file removed under ``DataConfig.drop_leaked``: it duplicates a train file."""

    file: str  # relative to the data root, e.g. "validation/corona/4-x-day1.jpg"
    duplicate_of: str  # the train file it holds the same radiograph as
    split: str  # the split it was removed from: "validation" or "test"
    kind: str = "exact"  # "exact" (same bytes) or "near" (perceptual hashes within threshold)
    distance: int = 0  # differing hash bits


@dataclass(frozen=True)
class SplitArrays:
    """One split: images, integer labels and the file each image came from."""

    images: np.ndarray  # uint8, (N, H, W, C)
    labels: np.ndarray  # int32, (N,), indices into Dataset.class_names
    files: tuple[str, ...]  # paths relative to the data root, e.g. "train/corona/a.jpg"

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A decoded data set: the three splits plus what a report needs to describe it.

    Pickles with NumPy's out-of-band buffers, so `ray.put(dataset)` stores the arrays once
    and every trial on a node reads the same read-only view.
    """

    splits: dict[str, SplitArrays]  # keys: "train", "validation", "test"
    class_names: tuple[str, ...]  # sorted class folder names
    positive_class: str  # the class sensitivity/AUC are about
    image_size: int
    channels: int
    source: str  # absolute data path, or "synthetic:<version>"
    synthetic: bool = False
    notes: tuple[str, ...] = ()  # human-readable facts: carved splits, skipped files...
    skipped: tuple[tuple[str, str], ...] = ()  # (relative path, reason) per skipped file
    cache_path: str | None = None  # cache directory the arrays came from
    cache_hit: bool = False
    extra: dict[str, object] = field(default_factory=dict)
    # relpath -> {"view_position": "PA", "manufacturer": "..."}: what DICOM files say, for
    # the files that say it (other formats carry none)
    image_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    # Files removed from validation/test under DataConfig.drop_leaked (empty without it).
    dropped: tuple[DroppedFile, ...] = ()

    @property
    def positive_index(self) -> int:
        return self.class_names.index(self.positive_class)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class, for summaries and reports."""
        out: dict[str, dict[str, int]] = {}
        for name, split in self.splits.items():
            bincount = np.bincount(split.labels, minlength=self.num_classes)
            out[name] = {c: int(n) for c, n in zip(self.class_names, bincount, strict=True)}
        return out
