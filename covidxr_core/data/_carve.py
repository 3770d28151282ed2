"""Carving missing splits out of train without separating one radiograph or one group.

`discover` is `_discover.scan` followed by `arrange`. `arrange` turns the layout `scan` found into the one every later stage uses: it reads the
groups file, carves missing splits, and (under ``drop_leaked``) removes validation/test
files that duplicate a train file. It acts on file lists and fingerprints (sha256 + the
perceptual hash of `_leakage`), never on decoded pixels, so the decode cache does not
depend on it.

Clusters
    Every listed file starts alone. Two files are joined when `find_duplicates` would pair
    them (same sha256, or perceptual hashes within ``NEAR_DUPLICATE_BITS``) and when the
    groups file puts them in one group; joining is transitive (union-find), so a chain of
    near duplicates is one cluster. A file without fingerprints (a bad image) is alone.

Carving
    A cluster with a file in a given validation or test folder stays in train (moving it
    would put the same radiograph into two evaluation splits; the train/given-split leak is
    reported, and ``drop_leaked`` removes the given-split copy). Every other cluster of
    train files is ranked by a seeded blake2b hash of its first path and, in that order,
    goes to the first of (test, validation) that still has room for all of its files, per
    class, under the stratified target: ``max(1, round(fraction * n_class))`` of each
    class. A cluster that fits nowhere stays in train, unless a second pass in the same
    order finds that it brings a split's per-class counts closer to the target. With no
    duplicates and no groups every cluster is one file and this is exactly the old carve,
    file for file.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, replace

from covidxr_core.data._config import DataConfig
from covidxr_core.data._dataset import SPLITS, DroppedFile
from covidxr_core.data._discover import DataLayout, scan
from covidxr_core.data._fingerprints import (
    NEAR_DUPLICATE_BITS,
    fingerprints,
    pairs_across,
    pairs_among,
)
from covidxr_core.data._groups import group_notes, read_groups
from covidxr_core.errors import DataError

Prints = dict[str, tuple[str, bytes]]
_ORDER = ("test", "validation")  # fixed: the carve must not depend on dict order
_SHOWN = 3


def carve_key(seed: int, relpath: str) -> bytes:
    """A cluster's rank: a per-path hash rather than a shuffled list.

    The carve does not depend on the NumPy version or on file order, and adding one file
    moves at most its own cluster.
    """
    return hashlib.blake2b(f"{seed}:{relpath}".encode(), digest_size=8).digest()


def clusters(
    rels: list[str],
    prints: Prints,
    groups: dict[str, str],
    max_distance: int = NEAR_DUPLICATE_BITS,
) -> list[tuple[str, ...]]:
    """Files that must stay together: duplicates and groups, joined transitively.

    Returns:
        Every file of ``rels`` in exactly one cluster; each cluster sorted, the list
        sorted by first path.
    """
    parent = {rel: rel for rel in rels}

    def find(rel: str) -> str:
        while parent[rel] != rel:
            parent[rel] = parent[parent[rel]]
            rel = parent[rel]
        return rel

    def join(a: str, b: str) -> None:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)

    for pair in pairs_among(rels, prints, max_distance):
        join(pair.file_a, pair.file_b)
    first_of_group: dict[str, str] = {}
    for rel in rels:
        group = groups.get(rel)
        if group is not None:
            join(first_of_group.setdefault(group, rel), rel)
    members: dict[str, list[str]] = {}
    for rel in rels:
        members.setdefault(find(rel), []).append(rel)
    return sorted((tuple(sorted(m)) for m in members.values()), key=lambda m: m[0])


@dataclass(frozen=True)
class _Cluster:
    key: bytes
    files: tuple[str, ...]  # train files, sorted
    counts: dict[str, int]  # class -> files


def _fits(cluster: _Cluster, have: Counter[str], wanted: dict[str, int]) -> bool:
    return all(have[c] + k <= wanted[c] for c, k in cluster.counts.items())


def _closer(cluster: _Cluster, have: Counter[str], wanted: dict[str, int]) -> bool:
    before = sum(abs(wanted[c] - have[c]) for c in cluster.counts)
    after = sum(abs(wanted[c] - have[c] - k) for c, k in cluster.counts.items())
    return after < before


def carve(layout: DataLayout, config: DataConfig, prints: Prints) -> DataLayout:
    """Carve ``layout.missing`` out of train, keeping clusters whole (module docstring)."""
    missing = layout.missing
    if not missing or layout.carved:
        return layout
    fractions = {"validation": config.val_fraction, "test": config.test_fraction}
    label_of = {rel: label for pairs in layout.splits.values() for rel, label in pairs}
    train = [rel for rel, _ in layout.splits["train"]]
    per_class = Counter(label_of[rel] for rel in train)
    wanted: dict[str, dict[str, int]] = {}
    for split in missing:
        wanted[split] = {
            c: max(1, math.floor(fractions[split] * per_class[c] + 0.5)) for c in layout.class_names
        }
    for c in layout.class_names:
        need = sum(wanted[s][c] for s in missing)
        if need >= per_class[c]:
            raise DataError(
                f"train/{c}: {per_class[c]} images are too few to carve "
                f"{' and '.join(missing)} out of train (needs at least {need + 1})"
            )

    given = {
        rel for s in SPLITS if s != "train" and s not in missing for rel, _ in layout.splits[s]
    }
    in_train = set(train)
    candidates: list[_Cluster] = []
    pinned: list[str] = []
    for members in clusters([f.relpath for f in layout.files], prints, layout.groups):
        mine = tuple(rel for rel in members if rel in in_train)
        if not mine:
            continue
        if any(rel in given for rel in members):
            pinned.extend(mine)
            continue
        counts = dict(Counter(label_of[rel] for rel in mine))
        candidates.append(_Cluster(carve_key(config.seed, mine[0]), mine, counts))
    candidates.sort(key=lambda cl: cl.key)

    have = {s: Counter[str]() for s in missing}
    placed: dict[str, str] = {}  # relpath -> carved split
    order = [s for s in _ORDER if s in missing]
    for test in (_fits, _closer):
        for cluster in candidates:
            if cluster.files[0] in placed:
                continue
            for split in order:
                if test(cluster, have[split], wanted[split]):
                    placed.update(dict.fromkeys(cluster.files, split))
                    have[split].update(cluster.counts)
                    break

    new_splits = dict(layout.splits)
    for split in missing:
        new_splits[split] = tuple((r, label_of[r]) for r in sorted(placed) if placed[r] == split)
    new_splits["train"] = tuple((r, label_of[r]) for r in train if r not in placed)
    left = Counter(label for _, label in new_splits["train"])
    for split, counter in [*have.items(), ("train", left)]:
        for c in layout.class_names:
            if counter[c] == 0:
                raise DataError(
                    f"train/{c}: {per_class[c]} images in {sum(c in cl.counts for cl in candidates)} "
                    f"clusters (duplicates or groups, kept together) are too few to carve "
                    f"{' and '.join(missing)} out of train with class {c!r} in every split; "
                    f"split {split!r} would have none"
                )

    notes = list(layout.notes)
    for split in missing:
        got = ", ".join(f"{c} {have[split][c]}" for c in layout.class_names)
        notes.append(
            f"{split} split missing: carved {fractions[split]:.0%} of train, stratified, "
            f"seed {config.seed} ({got})"
        )
        if any(have[split][c] != wanted[split][c] for c in layout.class_names):
            target = ", ".join(f"{c} {wanted[split][c]}" for c in layout.class_names)
            notes.append(
                f"{split}: keeping clusters whole gave {got} instead of the stratified "
                f"target ({target})"
            )
    multi = [cl for cl in candidates if len(cl.files) > 1]
    if multi:
        notes.append(
            f"carving kept {len(multi)} clusters of duplicates or groups together "
            f"({sum(len(cl.files) for cl in multi)} files, largest {max(len(cl.files) for cl in multi)})"
        )
    if pinned:
        shown = ", ".join(sorted(pinned)[:_SHOWN]) + (", ..." if len(pinned) > _SHOWN else "")
        notes.append(
            f"carving left {len(pinned)} train files in train: each holds the same radiograph "
            f"or group as a file of a given split ({shown})"
        )
    return replace(layout, splits=new_splits, carved=missing, notes=tuple(notes))


def drop_leaked(layout: DataLayout, prints: Prints) -> DataLayout:
    """Remove validation/test files that `find_duplicates` pairs with a train file."""
    dropped: dict[str, DroppedFile] = {}
    for pair in pairs_across(layout, prints):  # exact first, then by distance
        ends = ((pair.file_a, pair.split_a), (pair.file_b, pair.split_b))
        for (train_file, train_split), (other, split) in (ends, ends[::-1]):
            if train_split == "train" and split != "train" and other not in dropped:
                dropped[other] = DroppedFile(other, train_file, split, pair.kind, pair.distance)
    if not dropped:
        return replace(
            layout,
            notes=(*layout.notes, "drop_leaked: no validation/test file duplicates a train file"),
        )
    new_splits = dict(layout.splits)
    for split in SPLITS[1:]:
        new_splits[split] = tuple(p for p in layout.splits[split] if p[0] not in dropped)
        for c in layout.class_names:
            had = any(label == c for _, label in layout.splits[split])
            if had and not any(label == c for _, label in new_splits[split]):
                raise DataError(
                    f"{layout.root / layout.source_splits.get(split, 'train') / c}: "
                    f"drop_leaked would remove every image of class {c!r} from the {split} "
                    "split (each duplicates a train image)"
                )
    items = tuple(sorted(dropped.values()))
    shown = ", ".join(
        f"{d.file} ({d.kind}, {d.distance} bits, of {d.duplicate_of})" for d in items[:_SHOWN]
    )
    more = ", ..." if len(items) > _SHOWN else ""
    note = (
        f"drop_leaked: removed {len(items)} validation/test files that hold the same "
        f"radiograph as a train file: {shown}{more}"
    )
    return replace(layout, splits=new_splits, dropped=items, notes=(*layout.notes, note))


def arrange(layout: DataLayout, config: DataConfig, prints: Prints | None = None) -> DataLayout:
    """From `scan`'s layout to the final one: groups, carving, ``drop_leaked``.

    Args:
        layout: What `scan` found (missing splits empty).
        config: Carving settings, ``groups``, ``drop_leaked``; ``cache_dir``/``workers``
            when fingerprints must be computed.
        prints: The files' fingerprints when the caller has them (`load_dataset` does,
            right after decoding); otherwise they are read from the cache or computed.

    Returns:
        The layout with ``groups``, carved splits, ``dropped`` and their notes.

    Raises:
        DataError: a bad groups file, too few images or clusters to carve, or a class that
            ``drop_leaked`` would empty.
    """
    if layout.carved or layout.dropped or layout.groups:
        return layout  # arranged already
    groups = read_groups(config.groups, layout) if config.groups is not None else {}
    layout = replace(layout, groups=groups)
    if layout.missing or config.drop_leaked:
        if prints is None:
            prints = fingerprints(layout, config)
        layout = carve(layout, config, prints)
        if config.drop_leaked:
            layout = drop_leaked(layout, prints)
    return replace(layout, notes=(*layout.notes, *group_notes(layout)))


def discover(path: str | os.PathLike[str], config: DataConfig | None = None) -> DataLayout:
    """List a data folder's images per split and class, carving missing splits.

    Args:
        path: The data folder, laid out as ``DIR/<split>/<class>/<image>``.
        config: Carving settings (``val_fraction``, ``test_fraction``, ``seed``,
            ``groups``), ``drop_leaked``; ``cache_dir`` and ``workers`` for fingerprints.

    Returns:
        The layout `load_dataset` would use. No image file is opened unless a split must
        be carved (or ``drop_leaked`` is set) and the fingerprints are not cached yet.

    Raises:
        DataError: the folder is missing, has no train split, fewer than two classes, an
            empty or missing class folder, too few images to carve a split, or a bad
            groups file.
    """
    config = config if config is not None else DataConfig()
    return arrange(scan(path), config)


__all__ = ["arrange", "carve", "carve_key", "clusters", "discover", "drop_leaked"]
