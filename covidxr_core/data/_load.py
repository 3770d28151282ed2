"""From a data folder to a `Dataset`: scan, decode once (or hit the cache), carve, split.

Carving comes after decoding because it needs the fingerprints the decode pass stores:
`scan` lists the files, `_decoded` decodes them (or hits the cache) and caches their
fingerprints, and `_carve.arrange` carves, keeping duplicates and groups together.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from covidxr_core import atomic
from covidxr_core.cache import cache_root
from covidxr_core.data import _cache
from covidxr_core.data._carve import arrange
from covidxr_core.data._config import DataConfig, resolve_positive_class
from covidxr_core.data._dataset import SPLITS, Dataset, SplitArrays
from covidxr_core.data._decode import DecodeTask, decode_all
from covidxr_core.data._discover import DataLayout, scan
from covidxr_core.data._fingerprints import HASH_VERSION, fingerprints, store_fingerprints
from covidxr_core.data._synthetic import DEMO_VERSION, demo_data_path
from covidxr_core.errors import BadImageError, DataError

_SHOWN = 3  # file names quoted in a note before "..."


def _cache_array(temp: Path, shape: tuple[int, ...]) -> np.ndarray:
    """``temp/images.npy`` as a writable memory map, its blocks reserved up front: a disk
    without room then fails here with ENOSPC, not with SIGBUS at the first pixel written."""
    images = open_memmap(temp / _cache.IMAGES_FILE, mode="w+", dtype=np.uint8, shape=shape)
    fd = os.open(temp / _cache.IMAGES_FILE, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)
    return images


def _build(
    images: np.ndarray, key: str, layout: DataLayout, config: DataConfig, fp_path: Path
) -> dict[str, Any]:
    """Decode every file of the layout into ``images``; return the manifest to seal."""
    side, channels = config.image_size, config.channels
    want_fingerprints = _cache.read_json_verified(fp_path) is None
    tasks = [
        DecodeTask(
            str(layout.root / f.relpath),
            f.relpath,
            side,
            channels,
            pixels=True,
            fingerprint=want_fingerprints,
        )
        for f in layout.files
    ]
    files: list[list[Any]] = []
    bad: dict[str, list[str | None]] = {}
    fingerprints: dict[str, list[str] | None] = {}
    meta: dict[str, dict[str, str]] = {}  # DICOM view position, manufacturer
    start = time.perf_counter()
    for row, (entry, result) in enumerate(
        zip(layout.files, decode_all(tasks, config.resolved_workers()), strict=True)
    ):
        files.append(
            [
                entry.relpath,
                entry.label,
                result.width,
                result.height,
                result.format,
                result.mode,
            ]
        )
        if result.ok:
            images[row] = result.pixels
            if result.meta:
                meta[entry.relpath] = result.meta
        else:
            bad[entry.relpath] = [result.rule, result.value]
        if want_fingerprints:
            fingerprints[entry.relpath] = (
                [result.sha256, result.phash.hex()]
                if result.ok and result.sha256 and result.phash
                else None
            )
    if isinstance(images, np.memmap):
        images.flush()
    manifest = {
        "key": key,
        "format": _cache.FORMAT_VERSION,
        "source": str(layout.root),
        "settings": _settings(config),
        "files": files,
        "bad": bad,
        "meta": meta,
        "decode_seconds": round(time.perf_counter() - start, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if want_fingerprints:
        store_fingerprints(fp_path, fingerprints)
    return manifest


def _settings(config: DataConfig) -> dict[str, Any]:
    return {"image_size": config.image_size, "channels": config.channels}


def _shape(layout: DataLayout, config: DataConfig) -> tuple[int, int, int, int]:
    return (len(layout.files), config.image_size, config.image_size, config.channels)


def _in_memory(
    layout: DataLayout, config: DataConfig, key: str, fp_path: Path, folder: Path, exc: OSError
) -> tuple[_cache.CacheEntry, bool, list[str]]:
    """The decode the cache could not hold, kept in this process's memory instead."""
    images = np.empty(_shape(layout, config), dtype=np.uint8)
    manifest = _build(images, key, layout, config, fp_path)
    images.flags.writeable = False
    why = exc.strerror or str(exc)
    note = (
        f"warning: the cache folder {folder} cannot be written ({why}): decoded in memory "
        "instead, and the next run decodes again; point --cache-dir (or $COVIDXR_CACHE) at "
        "a writable folder with room"
    )
    return _cache.CacheEntry(folder / key, manifest, images, in_memory=True), False, [note]


def _decoded(layout: DataLayout, config: DataConfig) -> tuple[_cache.CacheEntry, bool, list[str]]:
    """The verified cache entry for a layout, building it when missing or invalid.

    A cache folder that cannot be written (read-only, full, not a folder) costs the
    cache, not the run: the images are decoded into memory, with a note saying so.

    Returns:
        The entry, whether it was a cache hit, and notes on rebuilds.
    """
    root = cache_root(config.cache_dir)
    key = _cache.decode_key(layout.files, config.image_size, config.channels)
    final = _cache.decoded_dir(root, key)
    fp_path = (
        root
        / f"fingerprints-v{_cache.FORMAT_VERSION}"
        / (_cache.fingerprint_key(layout.files, HASH_VERSION) + ".json")
    )
    notes: list[str] = []
    for attempt in range(3):
        try:
            return _cache.read_entry(final, key), attempt == 0, notes
        except FileNotFoundError:
            pass
        except NotADirectoryError as exc:  # a file where a cache folder should be
            return _in_memory(layout, config, key, fp_path, root, exc)
        except _cache.CacheInvalid as exc:
            notes.append(f"cache entry {final} was invalid ({exc}): rebuilt it")
            _cache.discard(final)
        try:
            temp = _cache.new_temp_dir(final)
        except OSError as exc:
            return _in_memory(layout, config, key, fp_path, root, exc)
        try:
            manifest = _build(
                _cache_array(temp, _shape(layout, config)), key, layout, config, fp_path
            )
            _cache.seal_manifest(temp, manifest)
            published = _cache.publish(temp, final)
        except OSError as exc:
            shutil.rmtree(temp, ignore_errors=True)
            if not _unwritable(exc):
                raise
            return _in_memory(layout, config, key, fp_path, root, exc)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        if published:
            removed = _cache.prune_stale(root, key, str(layout.root), _settings(config))
            if removed:
                notes.append(f"removed {len(removed)} stale cache entries of this folder")
        _cache.sweep_temp([final.parent])
    raise DataError(f"{final}: cache entry still invalid after rebuilding twice ({notes[-1:]})")


# Why a cache folder may refuse a write: full, over quota, read-only, not ours, not a folder.
_UNWRITABLE = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}
)


def _unwritable(exc: OSError) -> bool:
    return exc.errno in _UNWRITABLE or atomic.no_space(exc) is not None


def _bad_image_notes(bad: dict[str, list[Any]]) -> list[str]:
    if not bad:
        return []
    shown = ", ".join(f"{rel} ({rule})" for rel, (rule, _) in list(bad.items())[:_SHOWN])
    more = ", ..." if len(bad) > _SHOWN else ""
    return [f"skipped {len(bad)} bad image files: {shown}{more}"]


def _split_arrays(
    images: np.ndarray,
    pairs: list[tuple[str, str]],
    row_of: dict[str, int],
    classes: tuple[str, ...],
) -> SplitArrays:
    rows = np.array([row_of[rel] for rel, _ in pairs], dtype=np.int64)
    labels = np.array([classes.index(label) for _, label in pairs], dtype=np.int32)
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        # Uncarved splits are contiguous in the cache: a view, no copy, still memory-mapped.
        view = images[rows[0] : rows[0] + len(rows)]
    else:
        view = images[rows]
        view.flags.writeable = False
    return SplitArrays(view, labels, tuple(rel for rel, _ in pairs))


def load_dataset(path: str | os.PathLike[str] | None, config: DataConfig | None = None) -> Dataset:
    """Load a data folder as uint8 arrays, decoding it only if the cache has no valid copy.

    Args:
        path: ``DIR`` laid out as ``DIR/<split>/<class>/<image>``; None for the synthetic
            demo data set.
        config: Decode, cache, carving and bad-image settings.

    Returns:
        The data set; its arrays are read-only views of the cache where possible.

    Raises:
        DataError: the folder cannot be used (see `discover`), or a class has no decodable
            image left.
        BadImageError: a file cannot be decoded and ``config.on_bad_image == "error"``.
        ConfigError: ``config.positive_class`` does not fit the classes found.
    """
    config = config if config is not None else DataConfig()
    if path is None:
        try:
            folder = demo_data_path(config.cache_dir)
        except OSError as exc:  # the demo's PNGs are generated into the cache root
            raise DataError(
                f"{cache_root(config.cache_dir)}: cannot write the synthetic demo data there "
                f"({exc.strerror or exc}); point DataConfig.cache_dir (or $COVIDXR_CACHE) at a "
                "writable folder, or load a data folder of your own"
            ) from None
        dataset = load_dataset(folder, config)
        note = (
            f"synthetic demo data ({DEMO_VERSION}): generated radiograph-like images, "
            "not real patients; use it to try the pipeline, not to judge a model"
        )
        return replace(
            dataset,
            source=f"synthetic:{DEMO_VERSION}",
            synthetic=True,
            notes=(note, *dataset.notes),
        )

    layout = scan(path)
    positive = resolve_positive_class(layout.class_names, config.positive_class)
    entry, hit, cache_notes = _decoded(layout, config)
    needs_prints = bool(layout.missing) or config.drop_leaked
    # Cached by the decode pass (or by an earlier run): read, not recomputed.
    layout = arrange(layout, config, fingerprints(layout, config) if needs_prints else None)
    manifest = entry.manifest
    bad: dict[str, list[Any]] = manifest["bad"]
    if bad and config.on_bad_image == "error":
        rel, (rule, value) = next(iter(bad.items()))
        if len(bad) > 1:
            value = f"{value}; and {len(bad) - 1} more bad files"
        raise BadImageError(str(layout.root / rel), rule, value)

    row_of = {row[0]: i for i, row in enumerate(manifest["files"]) if row[0] not in bad}
    splits: dict[str, SplitArrays] = {}
    for split in SPLITS:
        pairs = [(rel, label) for rel, label in layout.splits[split] if rel in row_of]
        splits[split] = _split_arrays(entry.images, pairs, row_of, layout.class_names)
        counts = np.bincount(splits[split].labels, minlength=len(layout.class_names))
        for label, count in zip(layout.class_names, counts, strict=True):
            if count == 0:
                dropped = f" and dropping {len(layout.dropped)} leaked" if layout.dropped else ""
                named = "".join(f"; {note}" for note in _bad_image_notes(bad))
                raise DataError(
                    f"{layout.root / layout.source_splits.get(split, 'train') / label}: no "
                    f"decodable image left for split {split!r} after skipping "
                    f"{len(bad)} bad files{dropped} (a class with zero images cannot be "
                    f"used){named}"
                )
    skipped = list(layout.skipped) + [
        (rel, f"{rule}: {value}" if value else rule) for rel, (rule, value) in bad.items()
    ]
    if layout.skipped:
        shown = ", ".join(f"{rel} ({why})" for rel, why in layout.skipped[:_SHOWN])
        cache_notes.append(f"did not follow {len(layout.skipped)} links: {shown}")
    originals = {row[0]: tuple(row[2:]) for row in manifest["files"] if row[0] not in bad}
    return Dataset(
        splits=splits,
        class_names=layout.class_names,
        positive_class=positive,
        image_size=config.image_size,
        channels=config.channels,
        source=str(layout.root),
        notes=(*layout.notes, *_bad_image_notes(bad), *cache_notes),
        skipped=tuple(skipped),
        cache_path=None if entry.in_memory else str(entry.path),
        cache_hit=hit,
        dropped=layout.dropped,
        image_meta={r: m for r, m in manifest.get("meta", {}).items() if r not in bad},
        extra={
            "layout": layout,
            "originals": originals,  # relpath -> (width, height, format, mode) as stored
            "decode_seconds": manifest["decode_seconds"],
        },
    )


__all__ = ["load_dataset"]
