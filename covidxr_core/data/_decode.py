"""Decode image files into uint8 pixels (and fingerprints), one file per task, in parallel.

Every way a file can fail ends as a `DecodeResult` with ``rule``/``value`` set, never as an
exception: which files are bad is data for the caller's ``on_bad_image`` policy, and one
bad file must not throw away the others' work. Modes are made 8-bit explicitly (see
`_to_8bit`) instead of trusting ``Image.convert``, which clips 16-bit values and drops
alpha without compositing.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from covidxr_core.data._dicom import DicomRejected, decode_dicom, is_dicom
from covidxr_core.data._phash import HASH_INPUT, perceptual_hash

# Counts decode_task calls in this process (every decode thread included); tests and
# benchmarks read it through `decode_calls` to prove that a cache hit decoded nothing.
DECODE_CALLS = 0
_CALLS_LOCK = threading.Lock()

_HIGH_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_AHEAD_PER_WORKER = 4  # files submitted but not yet consumed, per thread
_BOMB_RULE = "decompression bomb: more pixels than PIL.Image.MAX_IMAGE_PIXELS"


@dataclass(frozen=True)
class DecodeTask:
    """One file and what to compute from it."""

    path: str  # absolute
    relpath: str
    image_size: int
    channels: int
    pixels: bool = True  # decode resized pixels
    fingerprint: bool = True  # sha256 of the bytes + perceptual hash


def decode_calls() -> int:
    """How many files `decode_task` has read in this process so far."""
    return DECODE_CALLS


@dataclass(frozen=True)
class DecodeResult:
    """Pixels and facts about one file, or the rule it broke."""

    relpath: str
    pixels: np.ndarray | None = None  # uint8 (image_size, image_size, channels)
    width: int = 0  # as stored, before EXIF orientation
    height: int = 0
    format: str = ""
    mode: str = ""
    sha256: str | None = None
    phash: bytes | None = None
    rule: str | None = None  # set when the file is bad
    value: str | None = None
    meta: dict[str, str] | None = None  # DICOM: view_position, manufacturer where present

    @property
    def ok(self) -> bool:
        return self.rule is None


def _to_8bit(image: Image.Image) -> Image.Image:
    """Return ``image`` as "L" or "RGB", converting the modes radiographs come in.

    - 16-bit and 32-bit greyscale ("I;16", "I", "F") are stretched from their own min..max
      to 0..255: detector data often fill only 10-12 of 16 bits, and clipping (what
      ``convert("L")`` does) would turn the whole image white.
    - Alpha ("RGBA", "LA", palette with transparency) is composited on black, the colour
      of a radiograph's background, so transparent margins look like film edges.
    - Palette, bilevel, CMYK, YCbCr, LAB and HSV go through Pillow's conversion to RGB.
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in _HIGH_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return Image.fromarray(np.rint((values - low) * scale).astype(np.uint8))
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")


def _open(data: bytes, draft_side: int, target_mode: str) -> Image.Image:
    """Open, draft, orient and make 8-bit; raises whatever Pillow raises on bad data."""
    opened = Image.open(io.BytesIO(data))
    if opened.format == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (still >= draft_side), and straight
        # to luma for greyscale: 5-10x faster on 1000-2000 px radiographs.
        opened.draft(target_mode, (draft_side, draft_side))
    return _to_8bit(ImageOps.exif_transpose(opened) or opened)


def _thumbnail_hash(image: Image.Image) -> bytes:
    thumb = image.convert("L").resize((HASH_INPUT, HASH_INPUT), Image.Resampling.BILINEAR)
    return perceptual_hash(np.asarray(thumb))


def decode_task(task: DecodeTask) -> DecodeResult:
    """Read one file once; decode pixels and/or fingerprints from its bytes.

    Args:
        task: The file and what to compute.

    Returns:
        A result; ``rule`` is set (and nothing else is trusted) when the file is bad.
    """
    global DECODE_CALLS
    with _CALLS_LOCK:
        DECODE_CALLS += 1
    rel = task.relpath
    try:
        with open(task.path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return DecodeResult(rel, rule="cannot read file", value=exc.strerror or str(exc))
    if not data:
        return DecodeResult(rel, rule="empty file", value="0 bytes")

    target_mode = "L" if task.channels == 1 else "RGB"
    # Read, never set: decode threads share the caller's limit. Pillow itself raises only
    # above 2x the limit and merely warns between 1x and 2x; both are bombs to us, so the
    # size is checked here too (a warnings filter cannot do it: filters are global, and
    # `warnings.catch_warnings` in several threads at once corrupts them).
    limit = Image.MAX_IMAGE_PIXELS
    if is_dicom(data, rel):
        return _decode_dicom(task, data, target_mode, limit)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            fmt, mode = probe.format or "", probe.mode
        if limit is not None and max(1, width) * max(1, height) > limit:
            return DecodeResult(
                rel,
                width=width,
                height=height,
                format=fmt,
                mode=mode,
                rule=_BOMB_RULE,
                value=f"{width}x{height} = {width * height} pixels, limit {limit}",
            )
        pixels = opened = phash = None
        if task.pixels:
            opened = _open(data, task.image_size, target_mode)
            side = task.image_size
            image = opened.convert(target_mode).resize((side, side), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8).reshape(side, side, task.channels)
        if task.fingerprint:
            # The hash must not depend on image_size: JPEGs are re-drafted at the hash's
            # own size (cheap at 1/8 scale); other formats decode at full size anyway,
            # so the image already open is exactly what a fresh open would give.
            if opened is None or fmt == "JPEG":
                opened = _open(data, HASH_INPUT, "L")
            phash = _thumbnail_hash(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception where the caller turned it into an error.
        return DecodeResult(rel, rule=_BOMB_RULE, value=str(exc))
    except UnidentifiedImageError:
        return DecodeResult(
            rel, rule="not an image Pillow can identify", value=f"{len(data)} bytes"
        )
    except Exception as exc:  # any failure inside Pillow is this file's fault
        return DecodeResult(
            rel, rule="truncated or corrupt image data", value=f"{type(exc).__name__}: {exc}"
        )
    sha = hashlib.sha256(data).hexdigest() if task.fingerprint else None
    return DecodeResult(rel, pixels, width, height, fmt, mode, sha, phash)


def _decode_dicom(
    task: DecodeTask, data: bytes, target_mode: str, limit: int | None
) -> DecodeResult:
    """`decode_task` for a DICOM file (`covidxr_core.data._dicom`): 8-bit first, then
    the same resize and fingerprint as any other image."""
    rel = task.relpath
    try:
        info = decode_dicom(data, limit)
        image = Image.fromarray(info.pixels)
        pixels = phash = None
        if task.pixels:
            side = task.image_size
            resized = image.convert(target_mode).resize((side, side), Image.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.uint8).reshape(side, side, task.channels)
        if task.fingerprint:
            phash = _thumbnail_hash(image)
    except DicomRejected as exc:
        return DecodeResult(rel, format="DICOM", rule=exc.rule, value=exc.value)
    except Exception as exc:  # pydicom and its handlers raise many types on bad data
        return DecodeResult(
            rel,
            format="DICOM",
            rule="truncated or corrupt DICOM data",
            value=f"{type(exc).__name__}: {exc}",
        )
    sha = hashlib.sha256(data).hexdigest() if task.fingerprint else None
    return DecodeResult(
        rel, pixels, info.width, info.height, "DICOM", info.mode, sha, phash, meta=info.meta or None
    )


def decode_all(tasks: Sequence[DecodeTask], workers: int) -> Iterator[DecodeResult]:
    """Decode tasks in parallel threads, yielding results in task order.

    Threads, not processes: Pillow releases the GIL while it decodes and resizes, which is
    nearly all of the work, so threads scale like processes without their start-up cost
    (measured: ``benchmarks/decode_pool.py``, threads 1.05-1.3x the images/s of a process
    pool on covid-cxr with 2 workers), and nothing re-imports the caller's main module,
    so a plain script needs no ``if __name__ == "__main__":`` guard.

    Args:
        tasks: One per file.
        workers: The most threads to use; 1 decodes in the calling thread.

    Yields:
        One result per task, in order.
    """
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(decode_task, tasks)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="covidxr-decode")
    pending: collections.deque[Future[DecodeResult]] = collections.deque()
    try:
        # A bounded window ahead of the consumer: decoded images wait in memory only
        # until the caller has stored them, and a caller that stops early (an error, an
        # interrupt) waits for at most this many files, not the rest of the folder.
        for task in tasks:
            pending.append(pool.submit(decode_task, task))
            if len(pending) >= workers * _AHEAD_PER_WORKER:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def cpu_budget() -> int:
    """CPUs this process may use (respects taskset/cgroups affinity where available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


__all__ = [
    "DECODE_CALLS",
    "DecodeResult",
    "DecodeTask",
    "cpu_budget",
    "decode_all",
    "decode_calls",
    "decode_task",
]
