"""Fingerprints of files and the pairs they reveal: one radiograph as two files.

The rule the leakage check (`_leakage.find_duplicates`) and cluster-aware carving
(`_carve`) share. A file is fingerprinted once (sha256 of its bytes and the perceptual hash of `_phash`)
by the same decoding code that produces pixels, and the fingerprints are cached next to
the decoded arrays, keyed by the file list only, so changing image_size reuses them.

Threshold: two files whose hashes differ in at most ``NEAR_DUPLICATE_BITS`` (28) of 256
bits count as the same radiograph. Measured on covid-cxr (283 real radiographs, 39,903
pairs): the known re-encoded pair (extubation-1 / 4-x-day1) differs in 20 bits; two
pairs of near-identical films of one patient (AR-1 / AR-2, and two UUID-named files) in
18; the next closest pairs are other films of one patient (AR-1 / extubation-1, 44) and
then different patients (52 and up). Halving a radiograph and re-saving it at JPEG
quality 50-70 moves 0-10 bits; +30% contrast or a gamma of 0.7 up to 22. The closest two
of the 344 synthetic demo images differ in 32. So 28 sits above every re-encoding seen
and below every pair of different images. Cropping 5% (40-70 bits) and mirroring
(about 125) are not detected: the hash describes the whole frame.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from covidxr_core.cache import cache_root
from covidxr_core.data import _cache
from covidxr_core.data._config import DataConfig
from covidxr_core.data._dataset import SPLITS
from covidxr_core.data._decode import DecodeTask, decode_all
from covidxr_core.data._discover import DataLayout
from covidxr_core.data._phash import HASH_BITS, HASH_BYTES, hamming_matrix

HASH_VERSION = 1  # bump when the perceptual hash changes
NEAR_DUPLICATE_BITS = 28  # see the module docstring for how this was chosen


@dataclass(frozen=True)
class DuplicatePair:
    """Two files that hold the same radiograph; ``file_a`` sorts before ``file_b``."""

    file_a: str  # relative to the data root
    split_a: str
    file_b: str
    split_b: str
    kind: str  # "exact" (same bytes) or "near" (perceptual hashes within the threshold)
    distance: int  # differing hash bits out of HASH_BITS; 0 for most exact pairs

    def describe(self) -> str:
        """One line for a report, e.g. ``near (20/256 bits): train/a.jpg <-> validation/b.jpg``."""
        return f"{self.kind} ({self.distance}/{HASH_BITS} bits): {self.file_a} <-> {self.file_b}"


def _fingerprint_path(layout: DataLayout, config: DataConfig) -> Path:
    key = _cache.fingerprint_key(layout.files, HASH_VERSION)
    return cache_root(config.cache_dir) / f"fingerprints-v{_cache.FORMAT_VERSION}" / f"{key}.json"


def store_fingerprints(path: Path, fingerprints: dict[str, list[str] | None]) -> None:
    """Cache fingerprints (relpath -> [sha256, phash hex], None for a bad file)."""
    # A cache that cannot be written only costs time next run.
    with contextlib.suppress(OSError):
        _cache.write_json_atomic(path, {"hash_version": HASH_VERSION, "files": fingerprints})


def fingerprints(
    layout: DataLayout, config: DataConfig | None = None
) -> dict[str, tuple[str, bytes]]:
    """sha256 and perceptual hash of every decodable file, from the cache or computed.

    Args:
        layout: The files to fingerprint.
        config: ``cache_dir`` and ``workers`` are used.

    Returns:
        relpath -> (sha256 hex, packed hash); files that cannot be decoded are absent.
    """
    config = config if config is not None else DataConfig()
    path = _fingerprint_path(layout, config)
    cached = _cache.read_json_verified(path)
    stored: dict[str, Any] | None = cached.get("files") if cached else None
    if stored is None or set(stored) != {f.relpath for f in layout.files}:
        tasks = [
            DecodeTask(
                str(layout.root / f.relpath),
                f.relpath,
                config.image_size,
                config.channels,
                pixels=False,
                fingerprint=True,
            )
            for f in layout.files
        ]
        stored = {
            r.relpath: [r.sha256, r.phash.hex()] if r.ok and r.phash else None
            for r in decode_all(tasks, config.resolved_workers())
        }
        store_fingerprints(path, stored)
    return {rel: (v[0], bytes.fromhex(v[1])) for rel, v in stored.items() if v is not None}


_BLOCK = 1024  # rows of split a compared at once: bounds memory on large data sets


def _pairs_between(
    side_a: tuple[str, list[str], np.ndarray],
    side_b: tuple[str, list[str], np.ndarray],
    prints: dict[str, tuple[str, bytes]],
    max_distance: int,
) -> list[DuplicatePair]:
    """Pairs between two splits (or inside one, when both sides are the same split)."""
    split_a, rels_a, hashes_a = side_a
    split_b, rels_b, hashes_b = side_b
    by_sha: dict[str, list[int]] = {}
    for ib, rel in enumerate(rels_b):
        by_sha.setdefault(prints[rel][0], []).append(ib)
    out = []
    for start in range(0, len(rels_a), _BLOCK):
        distances = hamming_matrix(hashes_a[start : start + _BLOCK], hashes_b)
        hits = distances <= max_distance
        same = np.zeros_like(hits)
        for ia in range(hits.shape[0]):
            same[ia, by_sha.get(prints[rels_a[start + ia]][0], [])] = True
        hits |= same
        if split_a == split_b:  # each unordered pair once, never a file with itself
            hits &= np.arange(len(rels_b))[None, :] > np.arange(start, start + len(hits))[:, None]
        for ia, ib in zip(*np.nonzero(hits), strict=True):
            (fa, sa), (fb, sb) = sorted([(rels_a[start + ia], split_a), (rels_b[ib], split_b)])
            kind = "exact" if same[ia, ib] else "near"
            out.append(DuplicatePair(fa, sa, fb, sb, kind, int(distances[ia, ib])))
    return out


def _hash_rows(rels: list[str], prints: dict[str, tuple[str, bytes]]) -> np.ndarray:
    blob = b"".join(prints[r][1] for r in rels)
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(rels), HASH_BYTES)


def pairs_across(
    layout: DataLayout,
    prints: dict[str, tuple[str, bytes]],
    max_distance: int = NEAR_DUPLICATE_BITS,
    within_splits: bool = False,
) -> list[DuplicatePair]:
    """Pairs of files in different splits (or also inside one) that hold one radiograph.

    What `find_duplicates` reports, on fingerprints already at hand (`fingerprints`).

    Returns:
        Pairs, exact ones first, then by distance and path.
    """
    members = {split: [rel for rel, _ in layout.splits[split] if rel in prints] for split in SPLITS}
    hashes = {split: _hash_rows(rels, prints) for split, rels in members.items()}
    pairs: list[DuplicatePair] = []
    for i, split_a in enumerate(SPLITS):
        for split_b in SPLITS[i:] if within_splits else SPLITS[i + 1 :]:
            pairs.extend(
                _pairs_between(
                    (split_a, members[split_a], hashes[split_a]),
                    (split_b, members[split_b], hashes[split_b]),
                    prints,
                    max_distance,
                )
            )
    pairs.sort(key=lambda p: (p.kind != "exact", p.distance, p.file_a, p.file_b))
    return pairs


def pairs_among(
    rels: list[str], prints: dict[str, tuple[str, bytes]], max_distance: int = NEAR_DUPLICATE_BITS
) -> list[DuplicatePair]:
    """Every pair of ``rels`` (those with fingerprints) that `find_duplicates` would report.

    The same rule (same sha256, or hashes within ``max_distance`` bits) on one list of
    files, whatever their splits; ``split_a``/``split_b`` are empty.
    """
    members = [rel for rel in rels if rel in prints]
    side = ("", members, _hash_rows(members, prints))
    return _pairs_between(side, side, prints, max_distance)


__all__ = [
    "HASH_VERSION",
    "NEAR_DUPLICATE_BITS",
    "DuplicatePair",
    "fingerprints",
    "pairs_across",
    "pairs_among",
    "store_fingerprints",
]
