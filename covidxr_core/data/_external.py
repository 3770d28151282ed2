"""External test sets: a labelled folder from elsewhere, decoded like the main data.

``load_external(DIR, config, class_names)`` reads ``DIR/<class>/*`` or
``DIR/<split>/<class>/*`` (the splits pooled: an external set is only evaluated), with
the main data's class names. It lists files under the same rules as `scan` (hidden and
non-image files ignored, the same symlink policy), and decodes and caches them with the
same machinery, settings and bad-image policy as `load_dataset`: a second call is a cache
hit that opens no image file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from covidxr_core.data._config import DataConfig
from covidxr_core.data._discover import (
    IMAGE_EXTENSIONS,
    SPLIT_ALIASES,
    DataLayout,
    FileEntry,
    _subfolders,
    _Walker,
)
from covidxr_core.data._load import _SHOWN, _bad_image_notes, _decoded
from covidxr_core.errors import BadImageError, DataError


@dataclass(frozen=True)
class ExternalSet:
    """A decoded external set; ``labels`` index the ``class_names`` it was loaded with."""

    name: str  # the folder's name, e.g. "hospital-b"
    source: str  # absolute folder path, symlinks resolved
    class_names: tuple[str, ...]  # the main data's classes, in its order
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int32 (N,)
    files: tuple[str, ...]  # relative to ``source``, e.g. "corona/a.jpg" or "test/corona/a.jpg"
    counts: dict[str, int]  # images per class, every class of ``class_names`` (0 if absent)
    notes: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (relpath, reason)
    cache_path: str | None = None
    cache_hit: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _class_folders(root: Path, walker: _Walker) -> tuple[list[Path], list[str]]:
    """The class folders of either layout, and notes on what was ignored or pooled."""
    folders, _ = _subfolders(root, walker)
    split_folders = [f for f in folders if f.name.lower() in SPLIT_ALIASES]
    if not split_folders:
        return folders, []
    notes = [
        f"ignored folder {f.name!r}: not a split name" for f in folders if f not in split_folders
    ]
    classes: list[Path] = []
    for split in split_folders:
        sub, loose = _subfolders(split, walker)
        walker.ignored.extend(f"{split.name}/{name}" for name in loose)
        classes.extend(sub)
    notes.append(
        f"pooled the splits {[f.name for f in split_folders]} (an external set is only evaluated)"
    )
    return classes, notes


def _list(root: Path, class_names: tuple[str, ...]) -> DataLayout:
    walker = _Walker(root)
    folders, notes = _class_folders(root, walker)
    walker.class_folders = [os.path.realpath(d) for d in folders]
    files: list[FileEntry] = []
    for folder in folders:
        if folder.name not in class_names:
            raise DataError(
                f"{folder}: class folder {folder.name!r} is not a class of the main data "
                f"{list(class_names)}; an external set uses the same class names"
            )
        walker.walk(folder, folder.name, files)
    if not files:
        raise DataError(
            f"{root}: no image files in an external set laid out as DIR/<class>/ or "
            f"DIR/<split>/<class>/ with classes {list(class_names)}; image extensions: "
            f"{sorted(IMAGE_EXTENSIONS)}"
        )
    if walker.ignored:
        shown = ", ".join(walker.ignored[:5]) + (", ..." if len(walker.ignored) > 5 else "")
        notes.append(f"ignored {len(walker.ignored)} hidden or non-image files: {shown}")
    files.sort(key=lambda f: f.relpath)
    pairs = tuple((f.relpath, f.label) for f in files)
    return DataLayout(
        root=root,
        class_names=class_names,
        splits={"train": (), "validation": (), "test": pairs},
        files=tuple(files),
        source_splits={},
        notes=tuple(notes),
        skipped=tuple(walker.skipped),
        ignored=tuple(walker.ignored),
    )


def load_external(
    path: str | os.PathLike[str], config: DataConfig | None, class_names: Sequence[str]
) -> ExternalSet:
    """Load a labelled external folder as uint8 arrays, decoded once and cached.

    Args:
        path: ``DIR/<class>/*`` or ``DIR/<split>/<class>/*`` (splits pooled).
        config: Decode, cache and bad-image settings: use the main data's, so the images
            match (``image_size``, ``channels``). Carving settings are not used.
        class_names: The main data's classes (``Dataset.class_names``); labels index them.

    Returns:
        The set; ``counts`` has every class, and a note names each class it lacks.

    Raises:
        DataError: the folder is missing or holds no image, a class folder is not one of
            ``class_names``, or a class has no decodable image left.
        BadImageError: a file cannot be decoded and ``config.on_bad_image == "error"``.
    """
    config = config if config is not None else DataConfig()
    classes = tuple(class_names)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise DataError(
            f"load_external: class_names must be two or more distinct names, got {classes}"
        )
    given = Path(path).expanduser()
    if not given.is_dir():
        state = "does not exist" if not given.exists() else "is not a folder"
        raise DataError(f"{given}: external data folder {state}")
    layout = _list(Path(os.path.realpath(given)), classes)
    entry, hit, cache_notes = _decoded(layout, config)
    bad: dict[str, list[Any]] = entry.manifest["bad"]
    if bad and config.on_bad_image == "error":
        rel, (rule, value) = next(iter(bad.items()))
        if len(bad) > 1:
            value = f"{value}; and {len(bad) - 1} more bad files"
        raise BadImageError(str(layout.root / rel), rule, value)
    rows = [i for i, row in enumerate(entry.manifest["files"]) if row[0] not in bad]
    good = [layout.files[i] for i in rows]
    if len(rows) == len(layout.files):
        images = entry.images  # every row: the memory-mapped cache itself, no copy
    else:
        images = entry.images[np.array(rows, dtype=np.int64)]
        images.flags.writeable = False
    labels = np.array([classes.index(f.label) for f in good], dtype=np.int32)
    counts = {
        c: int(n) for c, n in zip(classes, np.bincount(labels, minlength=len(classes)), strict=True)
    }
    listed = {f.label for f in layout.files}
    notes = list(layout.notes)
    for c in classes:
        if c not in listed:
            notes.append(f"external set has no images of class {c!r}")
        elif counts[c] == 0:
            raise DataError(
                f"{layout.root}: no decodable image of class {c!r} left in the external set "
                f"after skipping {len(bad)} bad files"
            )
    skipped = list(layout.skipped) + [
        (rel, f"{rule}: {value}" if value else rule) for rel, (rule, value) in bad.items()
    ]
    if layout.skipped:
        shown = ", ".join(f"{rel} ({why})" for rel, why in layout.skipped[:_SHOWN])
        cache_notes.append(f"did not follow {len(layout.skipped)} links: {shown}")
    return ExternalSet(
        name=layout.root.name,
        source=str(layout.root),
        class_names=classes,
        images=images,
        labels=labels,
        files=tuple(f.relpath for f in good),
        counts=counts,
        notes=(*notes, *_bad_image_notes(bad), *cache_notes),
        skipped=tuple(skipped),
        cache_path=str(entry.path),
        cache_hit=hit,
        extra={"layout": layout, "decode_seconds": entry.manifest["decode_seconds"]},
    )


__all__ = ["ExternalSet", "load_external"]
