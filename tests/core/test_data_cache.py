"""The decode cache: hits open no image, bad entries are rebuilt, concurrent builds are safe."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from covidxr_core.data import Dataset, decode_calls, load_dataset

from .test_data_discover import FULL, make_tree, small_config, write_image


def same_pixels(a: Dataset, b: Dataset) -> None:
    for split in a.splits:
        assert a.splits[split].files == b.splits[split].files
        np.testing.assert_array_equal(a.splits[split].images, b.splits[split].images)
        np.testing.assert_array_equal(a.splits[split].labels, b.splits[split].labels)


def test_hit_decodes_nothing_and_returns_the_cached_pixels(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    calls = decode_calls()
    first = load_dataset(root, small_config(tmp_path))
    assert not first.cache_hit and decode_calls() - calls == 20
    # Same size and mtime but garbage bytes: only a decode could notice.
    for path in root.rglob("*.png"):
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    calls = decode_calls()
    second = load_dataset(root, small_config(tmp_path))
    assert second.cache_hit
    assert decode_calls() - calls == 0
    assert second.cache_path == first.cache_path and second.notes == first.notes
    same_pixels(first, second)


def test_arrays_are_read_only_memory_mapped_views_that_pickle(tmp_path: Path) -> None:
    dataset = load_dataset(make_tree(tmp_path / "data", FULL), small_config(tmp_path))
    train = dataset.splits["train"]
    assert train.images.dtype == np.uint8 and train.images.shape == (12, 32, 32, 1)
    assert not train.images.flags.writeable and not train.images.flags.owndata
    assert train.labels.dtype == np.int32 and train.files[0] == "train/corona/corona-0.png"
    same_pixels(dataset, pickle.loads(pickle.dumps(dataset, protocol=5)))


def test_settings_change_the_key_and_a_changed_file_replaces_the_stale_entry(
    tmp_path: Path,
) -> None:
    root = make_tree(tmp_path / "data", FULL)
    first = load_dataset(root, small_config(tmp_path))
    rgb = load_dataset(root, small_config(tmp_path, channels=3))
    assert rgb.cache_path != first.cache_path and rgb.splits["train"].images.shape[-1] == 3
    write_image(root / "train" / "corona" / "corona-0.png", seed=4242)
    changed = load_dataset(root, small_config(tmp_path))
    assert not changed.cache_hit and changed.cache_path != first.cache_path
    assert first.cache_path is not None and not Path(first.cache_path).exists()
    assert "removed 1 stale cache entries of this folder" in changed.notes
    assert rgb.cache_path is not None and Path(rgb.cache_path).exists()  # other settings kept


def _flip_byte(entry: Path) -> None:
    images = entry / "images.npy"
    data = bytearray(images.read_bytes())
    data[-7] ^= 0xFF
    images.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_byte, "images.npy checksum mismatch"),
        (lambda e: os.truncate(e / "images.npy", 200), "images.npy checksum mismatch"),
        (lambda e: (e / "images.npy").unlink(), "images.npy unreadable"),
        (lambda e: (e / "manifest.json").unlink(), "manifest.json missing"),
        (lambda e: (e / "manifest.json").write_text("{not json"), "manifest.json unreadable"),
    ],
)
def test_damaged_entry_is_detected_and_rebuilt(
    tmp_path: Path, damage: Callable[[Path], object], reason: str
) -> None:
    root = make_tree(tmp_path / "data", FULL)
    first = load_dataset(root, small_config(tmp_path))
    assert first.cache_path is not None
    # Copy first: damaging a file in place also damages every live memory map of it
    # (truncation even kills the reader with SIGBUS); covidxr itself never does that.
    expected = {name: np.array(split.images) for name, split in first.splits.items()}
    entry = Path(first.cache_path)
    del first
    damage(entry)
    rebuilt = load_dataset(root, small_config(tmp_path))
    assert not rebuilt.cache_hit
    assert any(reason in note and "rebuilt" in note for note in rebuilt.notes), rebuilt.notes
    for name, images in expected.items():
        np.testing.assert_array_equal(rebuilt.splits[name].images, images)
    assert load_dataset(root, small_config(tmp_path)).cache_hit


def test_manifest_records_files_and_checksums(tmp_path: Path) -> None:
    dataset = load_dataset(make_tree(tmp_path / "data", FULL), small_config(tmp_path))
    assert dataset.cache_path is not None
    manifest = json.loads((Path(dataset.cache_path) / "manifest.json").read_text())
    assert manifest["settings"] == {"image_size": 32, "channels": 1}
    assert len(manifest["files"]) == 20 and manifest["bad"] == {}
    assert len(manifest["arrays"]["images.npy"]["blake2b"]) == 64
    originals = dataset.extra["originals"]
    assert isinstance(originals, dict)
    assert originals["train/corona/corona-0.png"] == (48, 40, "PNG", "L")


def test_unusable_cache_folder_decodes_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should go")
    root = make_tree(tmp_path / "data", FULL)
    dataset = load_dataset(root, small_config(tmp_path, cache_dir=str(blocker)))
    assert dataset.cache_path is None and not dataset.cache_hit
    assert len(dataset.splits["train"]) > 0
    warning = [n for n in dataset.notes if "cannot be written" in n]
    assert warning and "--cache-dir" in warning[0] and str(blocker) in warning[0], dataset.notes


_RACER = """
import sys
from covidxr_core.data import DataConfig, load_dataset
ds = load_dataset(sys.argv[1], DataConfig(image_size=48, workers=1, cache_dir=sys.argv[2]))
print(ds.cache_path, int(ds.splits["train"].images.sum()))
"""


def test_concurrent_builds_never_see_a_torn_entry(tmp_path: Path) -> None:
    spec = {"train": {"corona": 30, "normal": 30}, "validation": {"corona": 5, "normal": 5}}
    root = make_tree(tmp_path / "data", spec)
    cache = tmp_path / "shared-cache"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(root), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    assert len({out for out, _ in outputs}) == 1  # same entry, same pixels
    entries = list(next(cache.glob("decoded-v*")).iterdir())
    assert [e.name for e in entries if not e.name.startswith(".")] == [
        Path(outputs[0][0].split()[0]).name
    ]
    assert not [e for e in entries if e.name.startswith(".tmp-")]  # losers cleaned up
