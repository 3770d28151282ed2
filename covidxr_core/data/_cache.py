"""The on-disk cache: one immutable folder per (file list, decode settings), published atomically.

Layout under the cache root::

    decoded-v<FORMAT>/<key>/manifest.json   files, labels, original sizes, skips, checksums
    decoded-v<FORMAT>/<key>/images.npy      uint8 (N, H, W, C), one row per listed file
    fingerprints-v<FORMAT>/<key>.json       sha256 + perceptual hash per file

An entry is written into a temporary sibling folder and renamed into place, so a reader
sees either no entry or a complete one. If two processes build the same entry at once,
the first rename wins and the second process uses the winner's entry. Entries are never
modified after publishing; one that fails verification (a checksum, a missing file, a
truncated array) is renamed away and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from covidxr_core import atomic
from covidxr_core.data._dicom import DICOM_DECODE_VERSION
from covidxr_core.data._discover import FileEntry

# Bump when decoding changes what pixels come out, so old entries are never read.
FORMAT_VERSION = 2  # 2: DICOM decoding, per-image "meta" in the manifest
IMAGES_FILE = "images.npy"
MANIFEST_FILE = "manifest.json"
_CHUNK = 1 << 22


class CacheInvalid(Exception):
    """An existing cache entry cannot be trusted; the message says why."""


def _installed(distribution: str) -> str | None:
    """A distribution's version without importing it (None when not installed)."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _digest(parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def file_list_key(files: Sequence[FileEntry]) -> list[list[object]]:
    """The part of every key that says which bytes were read: path, size, mtime."""
    return [[f.relpath, f.size, f.mtime_ns] for f in files]


def decode_key(files: Sequence[FileEntry], image_size: int, channels: int) -> str:
    """Key of the decoded arrays; Pillow's version is in it since resampling may change,
    and the DICOM pipeline's version and pydicom's (installed or not) since they decide
    what DICOM files decode to."""
    settings = {
        "image_size": image_size,
        "channels": channels,
        "pillow": PIL.__version__,
        "dicom": [DICOM_DECODE_VERSION, _installed("pydicom")],
    }
    return _digest({"v": FORMAT_VERSION, "settings": settings, "files": file_list_key(files)})


def fingerprint_key(files: Sequence[FileEntry], hash_version: int) -> str:
    """Key of the fingerprints, which do not depend on image_size or channels."""
    return _digest({"v": FORMAT_VERSION, "hash": hash_version, "files": file_list_key(files)})


def file_checksum(path: Path) -> str:
    """blake2b of a file's bytes, read in chunks."""
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def decoded_dir(root: Path, key: str) -> Path:
    return root / f"decoded-v{FORMAT_VERSION}" / key


@dataclass(frozen=True)
class CacheEntry:
    """A verified cache entry; ``images`` is a read-only memory map of images.npy."""

    path: Path
    manifest: dict[str, Any]
    images: np.ndarray
    in_memory: bool = False  # decoded into memory: the cache folder could not be written


def read_entry(path: Path, key: str) -> CacheEntry:
    """Open and verify a published entry.

    Raises:
        FileNotFoundError: there is no entry (a plain miss).
        CacheInvalid: the entry exists but is incomplete, corrupt or for other settings.
    """
    manifest_path = path / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise CacheInvalid(f"{MANIFEST_FILE} missing") from exc
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"{MANIFEST_FILE} unreadable ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        raise CacheInvalid(f"{MANIFEST_FILE} is for another key")
    images_path = path / IMAGES_FILE
    expected = manifest.get("arrays", {}).get(IMAGES_FILE, {})
    try:
        actual = file_checksum(images_path)
    except OSError as exc:
        raise CacheInvalid(f"{IMAGES_FILE} unreadable ({exc.strerror or exc})") from exc
    if actual != expected.get("blake2b"):
        raise CacheInvalid(f"{IMAGES_FILE} checksum mismatch (corrupt or truncated)")
    try:
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"{IMAGES_FILE} unreadable ({exc})") from exc
    if list(images.shape) != expected.get("shape") or images.dtype != np.uint8:
        raise CacheInvalid(f"{IMAGES_FILE} has shape {images.shape}, dtype {images.dtype}")
    # A plain ndarray view of the map: it pickles like any array (Ray, multiprocessing).
    return CacheEntry(path, manifest, np.asarray(images))


def new_temp_dir(final: Path) -> Path:
    """A private folder next to ``final`` (same file system, so rename is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    return temp


def discard(path: Path) -> None:
    """Move ``path`` out of the way first (one atomic step), then delete it."""
    trash = path.parent / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        path.rename(trash)
    except FileNotFoundError:
        return  # another process discarded it already
    shutil.rmtree(trash, ignore_errors=True)


def publish(temp: Path, final: Path) -> bool:
    """Rename a finished temp folder into place.

    Returns:
        True if ours was published, False if another process's entry was already there (ours
        is deleted and the caller should read theirs).
    """
    try:
        temp.rename(final)
        return True
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(temp, ignore_errors=True)
        return False


def seal_manifest(temp: Path, manifest: dict[str, Any]) -> None:
    """Checksum the arrays in ``temp`` and write the manifest last."""
    images = np.load(temp / IMAGES_FILE, mmap_mode="r")
    manifest["arrays"] = {
        IMAGES_FILE: {"blake2b": file_checksum(temp / IMAGES_FILE), "shape": list(images.shape)}
    }
    del images
    (temp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))


def prune_stale(root: Path, keep: str, source: str, settings: dict[str, Any]) -> list[str]:
    """Delete entries for an older state of the same folder with the same settings.

    A changed file changes the key, so the old entry would otherwise stay forever.

    Returns:
        The keys removed.
    """
    removed = []
    for entry in sorted((root / f"decoded-v{FORMAT_VERSION}").glob("[!.]*")):
        if entry.name == keep:
            continue
        try:
            manifest = json.loads((entry / MANIFEST_FILE).read_text())
        except (OSError, ValueError):
            continue  # another process may be mid-way; not ours to judge
        if manifest.get("source") == source and manifest.get("settings") == settings:
            discard(entry)
            removed.append(entry.name)
    return removed


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON with a digest of its content, atomically (`covidxr_core.atomic`)."""
    body = dict(payload, digest=_digest(payload))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(body, separators=(",", ":"), allow_nan=False))


def read_json_verified(path: Path) -> dict[str, Any] | None:
    """Read what `write_json_atomic` wrote; None when missing or its digest does not match."""
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    digest = body.pop("digest", None)
    return body if digest == _digest(body) else None


def sweep_temp(folders: Iterable[Path], older_than_s: float = 3600.0) -> None:
    """Remove temp/trash leftovers of crashed runs (old enough not to be in progress)."""
    import time

    now = time.time()
    for folder in folders:
        for leftover in folder.glob(".tmp-*"):
            try:
                if now - leftover.stat().st_mtime > older_than_s:
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink(missing_ok=True)
            except OSError:
                continue
        for leftover in folder.glob(".trash-*"):
            shutil.rmtree(leftover, ignore_errors=True)


__all__ = [
    "FORMAT_VERSION",
    "CacheEntry",
    "CacheInvalid",
    "decode_key",
    "decoded_dir",
    "discard",
    "fingerprint_key",
    "new_temp_dir",
    "prune_stale",
    "publish",
    "read_entry",
    "read_json_verified",
    "seal_manifest",
    "write_json_atomic",
]
