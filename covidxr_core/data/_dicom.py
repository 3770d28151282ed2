"""DICOM radiographs to 8-bit greyscale, with pydicom (``pip install 'covidxr[dicom]'``).

A file is DICOM when it has the ``DICM`` marker after its 128-byte preamble (whatever
its name), or when it is named ``.dcm``/``.dicom`` and starts like a raw DICOM data set
without the preamble (a group 0002 or 0008 element); other files, whatever their name,
go to Pillow. Its pixels go through the display pipeline of DICOM PS3.4 N.2.1:

1. Decode the stored values: native (uncompressed) data with NumPy; compressed transfer
   syntaxes through whichever pixel-data plugin pydicom finds installed: RLE Lossless
   needs none, JPEG Baseline/Extended and JPEG 2000 use Pillow (already installed);
   JPEG Lossless and JPEG-LS need a plugin such as ``pylibjpeg-libjpeg`` or
   ``pyjpegls`` (not in the extra: see docs/integrations.md). A syntax that no
   installed plugin decodes is a bad image, rule ``compressed transfer syntax that no
   installed pydicom handler decodes``, the syntax named in the value.
2. Modality LUT: Rescale Slope and Intercept (or a Modality LUT Sequence).
3. VOI: the first VOI LUT Sequence item when present (its output range, 0 ..
   2**bits-1 from the LUT Descriptor, maps to 0..255); else the first Window
   Center/Width (Window Center/Width, with the VOI LUT Function LINEAR,
   LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2), mapped to 0..255; else, for data
   that already are 8-bit values (0..255 after step 2 and Bits Stored <= 8), nothing;
   else the percentile window `PERCENTILE_WINDOW`: the 0.5th..99.5th percentiles of
   the image's values map to 0..255, clipped (a few hot or dead pixels do not set the
   contrast).
4. ``MONOCHROME1`` (low values white) is inverted, so every image is ``MONOCHROME2``
   (low values black) like a JPEG radiograph.

RGB, YBR and palette-colour images (secondary captures) are converted to RGB by
pydicom and scaled to 8 bits; windowing applies to greyscale only.

Rejected, each with its rule and the value (`DicomRejected`): no Pixel Data; a SOP
class whose name is not an "... Image Storage" class (a structured report, a
presentation state, an encapsulated PDF); more than one frame; more pixels than
Pillow's bomb limit; pydicom not installed.

Kept per image (`DicomInfo.meta`): View Position (PA, AP, LL...) and Manufacturer,
where present and non-empty.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
PREAMBLE = 128  # bytes before the b"DICM" marker
PERCENTILE_WINDOW = (0.5, 99.5)  # where neither a VOI LUT nor a window is given
DICOM_DECODE_VERSION = 1  # bump when this pipeline changes what pixels come out
META_TAGS = {"view_position": "ViewPosition", "manufacturer": "Manufacturer"}
INSTALL = "pip install 'covidxr[dicom]'"


class DicomRejected(Exception):
    """The file is DICOM but not a usable radiograph: ``rule`` and ``value`` say why."""

    def __init__(self, rule: str, value: str) -> None:
        super().__init__(f"{rule}: {value}")
        self.rule = rule
        self.value = value


@dataclass(frozen=True)
class DicomInfo:
    """One decoded DICOM image: 8-bit pixels and what the summary reports about it."""

    pixels: np.ndarray  # uint8 (rows, columns) greyscale or (rows, columns, 3) RGB
    width: int
    height: int
    mode: str  # e.g. "MONOCHROME1 12-bit"
    meta: dict[str, str] = field(default_factory=dict)


def has_preamble(data: bytes) -> bool:
    """Whether the bytes carry the DICOM file marker at offset 128."""
    return data[PREAMBLE : PREAMBLE + 4] == b"DICM"


def is_dicom(data: bytes, name: str) -> bool:
    """DICOM by its marker; or, for a ``.dcm``/``.dicom`` name, a raw data set without the
    preamble (it starts with a group 0002 or 0008 element). Anything else, whatever its
    name, goes to Pillow: a PNG saved as ``x.dcm`` decodes as the PNG it is."""
    if has_preamble(data):
        return True
    lowered = name.lower()
    named = any(lowered.endswith(ext) for ext in DICOM_EXTENSIONS)
    return named and len(data) >= 8 and data[:2] in (b"\x02\x00", b"\x08\x00")


def pydicom_version() -> str | None:
    """The installed pydicom's version (part of the cache key of DICOM files), or None."""
    try:
        import pydicom
    except ImportError:
        return None
    return str(pydicom.__version__)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2: values -> [0, 1] through one window."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - (center - width / 2.0)) / width, 0.0, 1.0)
    # LINEAR (the default; width >= 1): 0 up to c - 0.5 - (w-1)/2, 1 above c - 0.5 + (w-1)/2
    if width <= 1.0:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def _voi_lut(item: Any, values: np.ndarray) -> np.ndarray:
    """PS3.3 C.11.2.1.1: a VOI LUT item applied to values, its output range to [0, 1].

    The descriptor is (entries, first value mapped, bits of the output); values below
    the first entry take the first, above the last the last. Values are rounded to the
    nearest integer first (a LUT is indexed by integers).
    """
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    raw = item.LUTData
    if isinstance(raw, bytes):
        lut = np.frombuffer(raw, dtype="<u2" if len(raw) >= 2 * entries else np.uint8)
    else:
        lut = np.atleast_1d(np.asarray(raw, dtype=np.float64))  # a MultiValue, or one int
    lut = np.asarray(lut[:entries], dtype=np.float64)
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, len(lut) - 1)
    return np.clip(lut[index] / float(2**bits - 1), 0.0, 1.0)


def _first(value: Any) -> float:
    """A multi-valued DS (several windows) -> its first value."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _voi(ds: Any, values: np.ndarray, bits_stored: int) -> tuple[np.ndarray, str]:
    """Step 3: values after the modality LUT -> float in [0, 1], and what was applied."""
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        return _voi_lut(ds.VOILUTSequence[0], values), "VOI LUT"
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        return _window(values, _first(center), _first(width), function), "window"
    if bits_stored <= 8 and values.min() >= 0 and values.max() <= 255:
        return values / 255.0, "8-bit"
    low, high = np.percentile(values, PERCENTILE_WINDOW)
    if high <= low:
        return np.zeros_like(values), "percentile window (flat image)"
    return np.clip((values - low) / (high - low), 0.0, 1.0), "percentile window"


def _decodable(syntax: Any) -> bool:
    """Whether an installed pydicom plugin decodes this (compressed) transfer syntax."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except (NotImplementedError, ValueError):  # a syntax pydicom knows no decoder for
        return False


def _image_class(ds: Any) -> None:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return
    name = getattr(uid, "name", str(uid))
    if "Image Storage" not in name:
        raise DicomRejected("DICOM SOP class is not an image", f"{name} ({uid})")


def decode_dicom(data: bytes, pixel_limit: int | None) -> DicomInfo:
    """Read one DICOM file's bytes into 8-bit pixels (see the module docstring).

    Raises:
        DicomRejected: the file is not a usable single-frame radiograph, or cannot be
            decoded here.
    """
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut
    except ImportError:
        raise DicomRejected("DICOM file but pydicom is not installed", INSTALL) from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble(data))
    except Exception as exc:
        raise DicomRejected(
            "not a DICOM file pydicom can read", f"{type(exc).__name__}: {exc}"
        ) from None
    _image_class(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise DicomRejected("DICOM without pixel data", f"SOP class {ds.get('SOPClassUID', '?')}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DicomRejected(
            "multi-frame DICOM (a radiograph is one frame)", f"NumberOfFrames {frames}"
        )
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if pixel_limit is not None and rows * columns > pixel_limit:
        raise DicomRejected(
            "decompression bomb: more pixels than PIL.Image.MAX_IMAGE_PIXELS",
            f"{columns}x{rows} = {rows * columns} pixels, limit {pixel_limit}",
        )
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if syntax is not None and syntax.is_compressed and not _decodable(syntax):
        raise DicomRejected(
            "compressed transfer syntax that no installed pydicom handler decodes",
            f"{syntax.name} ({syntax}); see docs/integrations.md for the handlers",
        )
    try:
        stored = ds.pixel_array
    except Exception as exc:
        if syntax is not None and syntax.is_compressed:
            raise DicomRejected(
                "corrupt compressed DICOM pixel data",
                f"{syntax.name} ({syntax}): {type(exc).__name__}: {exc}",
            ) from None
        raise DicomRejected(
            "truncated or corrupt DICOM pixel data", f"{type(exc).__name__}: {exc}"
        ) from None

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    meta = {
        key: str(ds.get(tag)).strip()
        for key, tag in META_TAGS.items()
        if ds.get(tag) is not None and str(ds.get(tag)).strip()
    }
    if photometric.startswith("MONOCHROME"):
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        unit, _how = _voi(ds, values, bits_stored)
        if photometric == "MONOCHROME1":
            unit = 1.0 - unit
        pixels = np.rint(unit * 255.0).astype(np.uint8)
    else:
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            stored = apply_color_lut(stored, ds)
            bits_stored = 16 if stored.dtype.itemsize > 1 else 8
        rgb = np.asarray(stored, dtype=np.float64)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise DicomRejected(
                "DICOM pixel data is not one greyscale or RGB image", f"shape {stored.shape}"
            )
        pixels = np.rint(np.clip(rgb / float(2**bits_stored - 1), 0, 1) * 255).astype(np.uint8)
    height, width = pixels.shape[:2]
    return DicomInfo(pixels, int(width), int(height), f"{photometric} {bits_stored}-bit", meta)


__all__ = [
    "DICOM_DECODE_VERSION",
    "DICOM_EXTENSIONS",
    "PERCENTILE_WINDOW",
    "DicomInfo",
    "DicomRejected",
    "decode_dicom",
    "has_preamble",
    "is_dicom",
    "pydicom_version",
]
