"""Faults in the decode cache: damaged entries are rebuilt, never used; racing loads agree.

The cache promises (covidxr_core/data/__init__.py, "Cache"): every entry carries a
checksum verified on every load, an entry that fails is rebuilt and never used, and
entries are published by an atomic rename so concurrent runs never see half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _figures import observe
from _imagefolders import make_folder

from covidxr_core.data import DataConfig, Dataset, decode_calls, load_dataset


def _config(cache: Path) -> DataConfig:
    return DataConfig(image_size=16, cache_dir=str(cache), workers=1)


def _copy(dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    # The splits are memory maps of the cache file about to be damaged: copy them first.
    return {
        name: (np.array(s.images, copy=True), np.array(s.labels, copy=True), s.files)
        for name, s in dataset.splits.items()
    }


def _same(dataset: Dataset, saved: dict) -> bool:
    return all(
        np.array_equal(dataset.splits[name].images, images)
        and np.array_equal(dataset.splits[name].labels, labels)
        and dataset.splits[name].files == files
        for name, (images, labels, files) in saved.items()
    )


def _entry_files(dataset: Dataset) -> tuple[Path, Path]:
    entry = Path(dataset.cache_path or "")
    return entry / "images.npy", entry / "manifest.json"


def _data_offset(npy: Path) -> int:
    """Where the pixel bytes start: after the .npy magic and header."""
    with open(npy, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(handle)
        else:
            np.lib.format.read_array_header_2_0(handle)
        return handle.tell()


def _flip_byte(images: Path, manifest: Path) -> str:
    offset = _data_offset(images) + (images.stat().st_size - _data_offset(images)) // 2
    with open(images, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0xFF]))
    return f"flipped the byte at offset {offset} of images.npy (pixel data)"


def _truncate_images(images: Path, manifest: Path) -> str:
    size = images.stat().st_size
    os.truncate(images, size // 2)
    return f"truncated images.npy from {size} to {size // 2} bytes"


def _truncate_to_header(images: Path, manifest: Path) -> str:
    offset = _data_offset(images)
    os.truncate(images, offset)
    return f"truncated images.npy to its {offset}-byte header (no pixels at all)"


def _truncate_manifest(images: Path, manifest: Path) -> str:
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 3])
    return "cut manifest.json to a third (invalid JSON)"


def _delete_images(images: Path, manifest: Path) -> str:
    images.unlink()
    return "deleted images.npy, manifest left"


def _forge_checksum(images: Path, manifest: Path) -> str:
    # Damage the pixels and "fix" the manifest's recorded shape to something else: the
    # checksum still catches the pixels; the shape rule is a second line of defence.
    body = json.loads(manifest.read_text())
    body["arrays"]["images.npy"]["shape"][0] += 1
    manifest.write_text(json.dumps(body))
    return "changed the row count recorded in manifest.json"


DAMAGES = {
    "flip-byte": _flip_byte,
    "truncate-half": _truncate_images,
    "truncate-to-header": _truncate_to_header,
    "truncate-manifest": _truncate_manifest,
    "delete-images": _delete_images,
    "wrong-shape": _forge_checksum,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_entry_is_rebuilt_never_used(tmp_path: Path, damage: str) -> None:
    data = make_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    with observe(
        "cache",
        f"cache entry damaged on disk: {damage}",
        "the checksum (or manifest) check fails, the entry is rebuilt from the images, "
        "the damaged bytes never reach the arrays",
    ) as obs:
        first = load_dataset(data, _config(cache))
        saved = _copy(first)
        what = DAMAGES[damage](*_entry_files(first))

        calls = decode_calls()
        second = load_dataset(data, _config(cache))
        decoded = decode_calls() - calls
        notes = [n for n in second.notes if "invalid" in n]
        said = re.search(r"was invalid \((.*)\): rebuilt", notes[0]) if notes else None
        obs.update(
            observed=f"{what}: the next load said {said.group(1) if said else notes!r}, "
            f"re-decoded {decoded} files, arrays equal the originals",
            files_redecoded=decoded,
            rebuilt=int(not second.cache_hit),
        )
        assert not second.cache_hit
        assert notes and "rebuilt" in notes[0], second.notes
        assert decoded == sum(len(files) for _, _, files in saved.values()), "not rebuilt"
        assert _same(second, saved), "damaged bytes reached the arrays"

        third = load_dataset(data, _config(cache))
        assert third.cache_hit and _same(third, saved), "the rebuilt entry does not verify"


# One loader per process, each waiting for the same moment to start.
_LOADER = r"""
import hashlib, json, os, sys, time
from pathlib import Path
from covidxr_core.data import DataConfig, load_dataset

data, cache, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
Path(sys.argv[4]).write_text("ready")
while not go.exists():
    time.sleep(0.001)
started = time.time()
dataset = load_dataset(data, DataConfig(image_size=64, cache_dir=cache, workers=1))
ended = time.time()
digest = {}
for name, split in dataset.splits.items():
    h = hashlib.sha256()
    h.update(split.images.tobytes()); h.update(split.labels.tobytes())
    h.update("\n".join(split.files).encode())
    digest[name] = h.hexdigest()
print(json.dumps({"digest": digest, "hit": dataset.cache_hit, "notes": list(dataset.notes),
                  "span": [started, ended]}))
"""


def _race(data: Path, cache: Path, work: Path, runners: int = 2) -> list[dict]:
    go = work / "go"
    go.unlink(missing_ok=True)
    ready = [work / f"ready-{i}" for i in range(runners)]
    for path in ready:
        path.unlink(missing_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOADER, str(data), str(cache), str(go), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in ready
    ]
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.write_text("go")
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"a concurrent load failed:\n{err[-3000:]}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _digest_of(dataset: Dataset) -> dict[str, str]:
    digest = {}
    for name, split in dataset.splits.items():
        h = hashlib.sha256()
        h.update(split.images.tobytes())
        h.update(split.labels.tobytes())
        h.update("\n".join(split.files).encode())
        digest[name] = h.hexdigest()
    return digest


@pytest.mark.parametrize("start", ["empty cache", "damaged entry"])
def test_two_loads_at_once_agree(tmp_path: Path, start: str) -> None:
    # Enough images that decoding takes a while, so the two builds really overlap.
    data = make_folder(tmp_path / "data", {"train": 24, "validation": 6, "test": 6}, side=128)
    rounds = 3
    with observe(
        "cache",
        f"two processes load the same folder at the same moment ({start})",
        "both succeed with identical arrays; one entry survives; no temp folder left",
    ) as obs:
        rebuilt_notes = overlapped = both_built = 0
        for n in range(rounds):
            cache = tmp_path / f"cache-{n}"
            if start == "damaged entry":
                seeded = load_dataset(
                    data, DataConfig(image_size=64, cache_dir=str(cache), workers=1)
                )
                _flip_byte(*_entry_files(seeded))
                del seeded
            results = _race(data, cache, tmp_path)
            noted = sum(any("invalid" in n for n in r["notes"]) for r in results)
            if start == "damaged entry":
                assert noted >= 1, "neither load noticed the damaged entry"
            rebuilt_notes += noted
            (a0, a1), (b0, b1) = (r["span"] for r in results)
            overlapped += min(a1, b1) > max(a0, b0)
            both_built += not results[0]["hit"] and not results[1]["hit"]
            assert results[0]["digest"] == results[1]["digest"], "the two loads disagree"
            reference = load_dataset(
                data, DataConfig(image_size=64, cache_dir=str(cache), workers=1)
            )
            assert reference.cache_hit
            assert _digest_of(reference) == results[0]["digest"]
            (entry_root,) = cache.glob("decoded-v*")  # one format version in use
            entries = sorted(p.name for p in entry_root.iterdir())
            assert len([e for e in entries if not e.startswith(".")]) == 1, entries
            assert not [e for e in entries if e.startswith((".tmp-", ".trash-"))], entries
        obs.update(
            observed=f"{rounds} rounds of 2 racing processes ({overlapped} with the two loads "
            f"overlapping in time, {both_built} where both built the entry): all "
            f"{2 * rounds} loads returned identical arrays, one verified entry each round, "
            "no leftovers"
            + (
                f"; {rebuilt_notes} of {2 * rounds} loads reported rebuilding the damaged entry"
                if start == "damaged entry"
                else ""
            ),
            concurrent_loads=2 * rounds,
            overlapping_rounds=overlapped,
            exceptions=0,
        )
        assert overlapped >= 1, "the loads never overlapped: the race was not exercised"
