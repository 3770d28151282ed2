"""A cache folder that cannot be written: read-only, on a full disk, or not a folder at all.

The decode cache is a speed-up, never a condition for running: when the cache folder refuses
a write, the images are decoded into memory instead, with one warning that names the folder,
why, and ``--cache-dir``. Each case is a real OSError from the kernel: a path whose parent is
a regular file (ENOTDIR, works for any user), a read-only bind mount (EROFS; root ignores
chmod, so without mount rights it falls back to chmod and a non-root user), and a tiny tmpfs
with too little room for the decoded arrays (ENOSPC, reserved up front so a memory map never
dies of SIGBUS). The full-disk case runs a whole study through `tuning/run.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _figures import observe
from _imagefolders import make_folder
from _studyproc import REPO

from covidxr_core.data import DataConfig, load_dataset

SIDE = 64


def _mount(*args: str) -> str | None:
    """Runs mount; None on success, else why it failed."""
    if os.geteuid() != 0:
        return "mount needs root"
    out = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit {out.returncode}")


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[str]:
    """``folder`` made read-only for this process, honestly; yields how."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            yield "chmod 0500 (not root)"
        finally:
            folder.chmod(stat.S_IRWXU)
        return
    why = _mount("--bind", str(folder), str(folder))
    if why is None:
        why = _mount("-o", "remount,ro,bind", str(folder))
        if why is not None:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
    if why is not None:
        pytest.skip(f"root ignores chmod, and a read-only bind mount is not allowed here: {why}")
    try:
        yield "read-only bind mount"
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _load(data: Path, cache: Path):
    return load_dataset(data, DataConfig(image_size=SIDE, cache_dir=str(cache), workers=1))


def _warning(dataset) -> str:
    found = [n for n in dataset.notes if "cannot be written" in n]
    return found[0] if found else ""


@pytest.fixture(scope="module")
def folder_and_reference(tmp_path_factory: pytest.TempPathFactory):
    """A small image folder and its arrays decoded through a writable cache."""
    root = tmp_path_factory.mktemp("cachewrite")
    data = make_folder(root / "data")
    ref = _load(data, root / "writable-cache")
    assert ref.cache_path is not None
    return data, {n: np.array(s.images) for n, s in ref.splits.items()}


def _check_fallback(data: Path, cache: Path, reference: dict, how: str, errno_name: str) -> None:
    with observe(
        "cache",
        f"cache folder cannot be written: {how}",
        "the images are decoded in memory, arrays equal to a cached decode, one warning "
        "naming the folder, the reason and --cache-dir",
    ) as obs:
        dataset = _load(data, cache)
        warning = _warning(dataset)
        same = all(np.array_equal(dataset.splits[n].images, a) for n, a in reference.items())
        obs.update(
            observed=f"loaded {sum(len(s) for s in dataset.splits.values())} images in memory "
            f"(cache_path {dataset.cache_path}); arrays equal: {same}; warning: {warning!r}",
            fell_back=int(dataset.cache_path is None),
        )
        assert dataset.cache_path is None and not dataset.cache_hit
        assert same, "the in-memory decode differs from the cached one"
        assert "--cache-dir" in warning and str(cache) in warning, dataset.notes
        assert errno_name in warning, warning
        assert "\n" not in warning


def test_cache_dir_under_a_regular_file(folder_and_reference, tmp_path: Path) -> None:
    data, reference = folder_and_reference
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache's parent should be")
    _check_fallback(data, blocker / "cache", reference, "its parent is a regular file (ENOTDIR)",
                    "Not a directory")  # fmt: skip


def test_cache_dir_read_only(folder_and_reference, tmp_path: Path) -> None:
    data, reference = folder_and_reference
    cache = tmp_path / "ro-cache"
    with _read_only(cache) as how:
        reason = "Read-only file system" if "mount" in how else "Permission denied"
        _check_fallback(data, cache, reference, how, reason)
    assert not any(cache.iterdir()), "something was written into the read-only cache"


@pytest.mark.slow
def test_study_with_its_cache_on_a_full_disk(tmp_path: Path) -> None:
    """A whole study whose --cache-dir sits on a 256 KiB tmpfs: the arrays do not fit."""
    disk = tmp_path / "disk"
    disk.mkdir()
    why = _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk))
    if why is not None:
        pytest.skip(f"cannot mount a small tmpfs to fill: {why}")
    try:
        # 2 x (16 + 6 + 6) images of 64 x 64: 229 KB of arrays, more than the disk has
        # left once the folders and fingerprints are in.
        counts = {"train": 16, "validation": 6, "test": 6}
        data = make_folder(tmp_path / "data", counts, side=SIDE)
        (disk / "filler").write_bytes(b"\0" * (128 << 10))
        cache = disk / "cache"
        with observe(
            "cache",
            "--cache-dir on a full disk (a 256 KiB tmpfs, half filled; the arrays need 229 KB)",
            "the study decodes in memory and completes, printing one warning naming --cache-dir",
        ) as obs:
            out = subprocess.run(
                [sys.executable, str(REPO / "tuning" / "run.py"), "--data", str(data),
                 "--cache-dir", str(cache), "--trials", "1", "--epochs", "1", "--image-size",
                 str(SIDE), "--space", "small", "--retrain-seeds", "0",
                 "--output", str(tmp_path / "runs"), "--name", "fullcache"],
                capture_output=True, text=True, timeout=400, cwd=REPO,
                env={**os.environ, "COLUMNS": "400"},
            )  # fmt: skip
            text = out.stdout + out.stderr
            warned = [ln.strip() for ln in text.splitlines() if "cannot be written" in ln]
            board = tmp_path / "runs" / "fullcache" / "leaderboard.parquet"
            left = sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []
            obs.update(
                observed=f"exit {out.returncode}; warning: {warned[0] if warned else None!r}; "
                f"leaderboard written: {board.exists()}; files left in the cache: {left}",
                fell_back=len(warned),
                studies_completed=int(out.returncode == 0),
            )
            assert out.returncode == 0, text[-3000:]
            assert len(warned) == 1 and "--cache-dir" in warned[0], text[-3000:]
            assert "No space left on device" in warned[0], warned
            assert "Traceback" not in text, text[-3000:]
            assert board.exists()
            assert not any(n.endswith(".npy") for n in left), f"a partial array was left: {left}"
            summary = json.loads((tmp_path / "runs" / "fullcache" / "summary.json").read_text())
            assert summary, "no summary written"
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)
