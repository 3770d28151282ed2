"""Leakage check: the same radiograph, or the same group, in two splits.

`find_duplicates` lists files that hold one radiograph (identical bytes, or re-encoded:
the fingerprints and threshold of `_fingerprints`) in different splits, after carving;
`find_group_leaks` lists groups (``DataConfig.groups``) found in two splits. Carving keeps
duplicates and groups on one side (`_carve`), so what either reports lies between given
split folders.
"""

from __future__ import annotations

import os

from covidxr_core.data._carve import discover
from covidxr_core.data._config import DataConfig
from covidxr_core.data._dataset import Dataset
from covidxr_core.data._discover import DataLayout
from covidxr_core.data._fingerprints import (
    HASH_VERSION,
    NEAR_DUPLICATE_BITS,
    DuplicatePair,
    fingerprints,
    pairs_across,
)
from covidxr_core.data._groups import GroupLeak, group_leaks
from covidxr_core.data._phash import HASH_BITS


def _as_layout(
    source: str | os.PathLike[str] | DataLayout | Dataset, config: DataConfig
) -> DataLayout:
    if isinstance(source, DataLayout):
        return source
    if isinstance(source, Dataset):
        layout = source.extra.get("layout")
        if not isinstance(layout, DataLayout):
            raise TypeError("find_duplicates: this Dataset does not carry its DataLayout")
        return layout
    return discover(source, config)


def find_duplicates(
    source: str | os.PathLike[str] | DataLayout | Dataset,
    config: DataConfig | None = None,
    *,
    max_distance: int = NEAR_DUPLICATE_BITS,
    within_splits: bool = False,
) -> list[DuplicatePair]:
    """List files that hold the same radiograph in different splits (after carving).

    Args:
        source: A data folder, its `DataLayout`, or a `Dataset` from `load_dataset`.
        config: Carving (when ``source`` is a folder), ``cache_dir`` and ``workers``.
        max_distance: Most differing hash bits (of 256) for a near duplicate; 0 finds only
            pixel-identical thumbnails.
        within_splits: Also list pairs inside one split (duplicates, not leakage).

    Returns:
        Pairs, exact ones first, then by distance and path.
    """
    config = config if config is not None else DataConfig()
    if isinstance(max_distance, bool) or not 0 <= max_distance <= HASH_BITS:
        raise ValueError(f"`0 <= max_distance <= {HASH_BITS}` must hold, got {max_distance!r}")
    layout = _as_layout(source, config)
    return pairs_across(layout, fingerprints(layout, config), max_distance, within_splits)


def find_group_leaks(
    source: str | os.PathLike[str] | DataLayout | Dataset, config: DataConfig | None = None
) -> list[GroupLeak]:
    """Groups (``DataConfig.groups``) found in more than one split, after carving.

    Carving keeps every group on one side, so a leak is a group that the given split
    folders already divide (e.g. ``group 'patient 17' in train and validation``).

    Args:
        source: A data folder, its `DataLayout`, or a `Dataset` from `load_dataset`.
        config: The groups file and carving settings, when ``source`` is a folder.

    Returns:
        Leaks sorted by group; empty when no groups file was used.
    """
    config = config if config is not None else DataConfig()
    return group_leaks(_as_layout(source, config))


__all__ = [
    "HASH_VERSION",
    "NEAR_DUPLICATE_BITS",
    "DuplicatePair",
    "find_duplicates",
    "find_group_leaks",
    "fingerprints",
]
