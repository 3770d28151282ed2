"""DICOM input: files written with pydicom from the real fixture radiographs decode to the
expected orientation and range, bad DICOM is named by its rule, and a mixed folder loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidxr_core.data import DataConfig, DecodeTask, decode_task, load_dataset
from covidxr_core.errors import BadImageError

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SIDE = 64


@pytest.fixture(scope="module")
def grey(cxr_fixture: Path) -> np.ndarray:
    """One real radiograph from the fixture as 8-bit greyscale, 256 x 256."""
    path = sorted(cxr_fixture.glob("validation/corona/*"))[0]
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((256, 256)), dtype=np.uint8)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 8,
    sop_class: str = DX,
    pixel_data: bool = True,
    frames: int = 1,
    preamble: bool = True,
    **elements: object,
) -> Path:
    """A DICOM file of ``pixels`` (uint8 or uint16), as a modality would write it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    allocated = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in elements.items():
        setattr(ds, key, value)
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=preamble)
    return path


def decode(path: Path, channels: int = 1) -> object:
    return decode_task(DecodeTask(str(path), path.name, SIDE, channels))


def png_decode(tmp_path: Path, pixels: np.ndarray) -> np.ndarray:
    png = tmp_path / "reference.png"
    Image.fromarray(pixels).save(png)
    result = decode_task(DecodeTask(str(png), png.name, SIDE, 1))
    assert result.pixels is not None
    return result.pixels


def test_8bit_monochrome2_decodes_like_the_same_pixels_as_png(tmp_path: Path, grey) -> None:
    result = decode(write_dicom(tmp_path / "a.dcm", grey))
    assert result.ok, result.rule
    assert (result.format, result.mode) == ("DICOM", "MONOCHROME2 8-bit")
    assert (result.width, result.height) == (256, 256)
    assert np.array_equal(result.pixels, png_decode(tmp_path, grey))


def test_monochrome1_is_inverted_to_monochrome2(tmp_path: Path, grey) -> None:
    """Film-like MONOCHROME1 (low values white) comes out as the usual dark background."""
    m1 = decode(write_dicom(tmp_path / "m1.dcm", 255 - grey, photometric="MONOCHROME1"))
    assert m1.ok, m1.rule
    assert m1.mode == "MONOCHROME1 8-bit"
    assert np.abs(m1.pixels.astype(int) - png_decode(tmp_path, grey).astype(int)).max() <= 1


def test_16bit_without_window_gets_the_percentile_window(tmp_path: Path, grey) -> None:
    """12 of 16 bits used, no window: the 0.5..99.5 percentiles span 0..255."""
    stored = (grey.astype(np.uint16) * 16 + 7).astype(np.uint16)
    result = decode(write_dicom(tmp_path / "w.dcm", stored, bits_stored=12))
    assert result.ok, result.rule
    assert result.mode == "MONOCHROME2 12-bit"
    pixels = result.pixels.astype(float).ravel()
    assert pixels.min() == 0 and pixels.max() == 255
    reference = png_decode(tmp_path, grey).astype(float).ravel()
    assert np.corrcoef(pixels, reference)[0, 1] > 0.99  # same orientation, same picture


def test_16bit_monochrome1_with_rescale_and_window(tmp_path: Path, grey) -> None:
    """Rescale Slope/Intercept first, then the window in rescaled units, then inversion."""
    raw = (255 - grey).astype(np.uint16) * 16  # 0..4080, MONOCHROME1
    # rescaled = raw * 0.5 - 1000 spans -1000..1040; a window over exactly that range
    path = write_dicom(
        tmp_path / "rw.dcm", raw, photometric="MONOCHROME1", bits_stored=12,
        RescaleSlope=0.5, RescaleIntercept=-1000, WindowCenter=20.0, WindowWidth=2041.0,
    )  # fmt: skip
    result = decode(path)
    assert result.ok, result.rule
    diff = result.pixels.astype(int) - png_decode(tmp_path, grey).astype(int)
    assert np.abs(diff).max() <= 2


def test_a_narrow_window_clips(tmp_path: Path, grey) -> None:
    stored = grey.astype(np.uint16) * 16
    path = write_dicom(
        tmp_path / "n.dcm", stored, bits_stored=12, WindowCenter=2048.0, WindowWidth=100.0
    )
    full = decode_task(DecodeTask(str(path), "n.dcm", 256, 1)).pixels
    values = stored.astype(float)
    assert np.all(full[values <= 1997, 0] == 0)
    assert np.all(full[values >= 2098, 0] == 255)


def test_voi_lut_sequence_wins_over_the_window(tmp_path: Path, grey) -> None:
    """A VOI LUT mapping 12-bit values back to 8 bits; a misleading window is ignored."""
    stored = grey.astype(np.uint16) * 16
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4096, 0, 8])  # LUT Descriptor: entries, first, bits
    lut.add_new(0x00283006, "US", (np.arange(4096) // 16).clip(0, 255).tolist())  # LUT Data
    path = write_dicom(
        tmp_path / "lut.dcm", stored, bits_stored=12, VOILUTSequence=[lut],
        WindowCenter=100.0, WindowWidth=10.0,
    )  # fmt: skip
    result = decode(path)
    assert result.ok, result.rule
    assert np.abs(result.pixels.astype(int) - png_decode(tmp_path, grey).astype(int)).max() <= 1


def test_view_position_and_manufacturer_are_kept(tmp_path: Path, grey) -> None:
    path = write_dicom(tmp_path / "v.dcm", grey, ViewPosition="PA", Manufacturer="ACME Imaging")
    assert decode(path).meta == {"view_position": "PA", "manufacturer": "ACME Imaging"}
    assert decode(write_dicom(tmp_path / "none.dcm", grey)).meta is None


def test_rgb_decode_of_a_dicom_file(tmp_path: Path, grey) -> None:
    result = decode(write_dicom(tmp_path / "c.dcm", grey), channels=3)
    assert result.ok and result.pixels.shape == (SIDE, SIDE, 3)


def test_rle_compressed_decodes_like_uncompressed(tmp_path: Path, grey) -> None:
    plain = write_dicom(tmp_path / "plain.dcm", grey.astype(np.uint16) * 16, bits_stored=12)
    ds = pydicom.dcmread(plain)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    rle = decode(tmp_path / "rle.dcm")
    assert rle.ok, rle.rule
    assert np.array_equal(rle.pixels, decode(plain).pixels)


def test_a_syntax_no_handler_decodes_is_skipped_with_its_name(tmp_path: Path, grey) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS plugin is installed here")
    path = write_dicom(tmp_path / "ls.dcm", grey)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    result = decode(path)
    assert result.rule == "compressed transfer syntax that no installed pydicom handler decodes"
    assert "JPEG-LS Lossless" in (result.value or "")


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("no pixel data", "DICOM without pixel data"),
        ("structured report", "DICOM SOP class is not an image"),
        ("multi-frame", "multi-frame DICOM (a radiograph is one frame)"),
    ],
)
def test_bad_dicom_names_file_and_rule(tmp_path: Path, grey, kind: str, rule: str) -> None:
    root = tmp_path / "data"
    for split in ("train", "validation", "test"):
        for label in ("corona", "normal"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(grey).save(folder / f"{i}.png")
    bad = root / "train" / "corona" / "bad.dcm"
    if kind == "no pixel data":
        write_dicom(bad, grey, pixel_data=False)
    elif kind == "structured report":
        write_dicom(bad, grey, sop_class=BASIC_TEXT_SR)
    else:
        write_dicom(bad, np.stack([grey, grey]), frames=2)
    data = load_dataset(root, DataConfig(image_size=SIDE))
    assert [(f, r.split(":")[0]) for f, r in data.skipped] == [("train/corona/bad.dcm", rule)]
    with pytest.raises(BadImageError) as caught:
        load_dataset(root, DataConfig(image_size=SIDE, on_bad_image="error"))
    assert str(bad) in str(caught.value) and rule in str(caught.value)


def test_a_mixed_folder_loads_with_dicom_under_any_name(tmp_path: Path, grey) -> None:
    """PNG, .dcm and an extension-less DICM file side by side; the views are kept."""
    root = tmp_path / "mixed"
    views = iter(["PA", "AP"] * 20)
    for split in ("train", "validation", "test"):
        for label in ("corona", "normal"):
            folder = root / split / label
            folder.mkdir(parents=True)
            Image.fromarray(grey).save(folder / "a.png")
            write_dicom(folder / "b.dcm", grey, ViewPosition=next(views), Manufacturer="ACME")
            write_dicom(folder / "IM0003", grey.astype(np.uint16) * 16, bits_stored=12)
            (folder / "notes.txt").write_text("not an image")
    data = load_dataset(root, DataConfig(image_size=SIDE))
    assert all(len(s) == 6 for s in data.splits.values())
    assert not data.skipped
    files = set(data.splits["train"].files)
    assert {"train/corona/IM0003", "train/corona/b.dcm", "train/corona/a.png"} <= files
    assert data.image_meta["train/corona/b.dcm"] == {"view_position": "PA", "manufacturer": "ACME"}
    assert "train/corona/a.png" not in data.image_meta
    assert load_dataset(root, DataConfig(image_size=SIDE)).cache_hit


def test_the_data_summary_lists_views_and_manufacturers(tmp_path: Path, grey, capsys) -> None:
    import json

    from covidxr_core.data.__main__ import main

    test_a_mixed_folder_loads_with_dicom_under_any_name(tmp_path, grey)
    assert main([str(tmp_path / "mixed"), "--image-size", str(SIDE), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dicom"] == {
        "files": 12,
        "view_position": {"PA": 3, "AP": 3, "not given": 6},
        "manufacturer": {"ACME": 6, "not given": 6},
    }
    assert main([str(tmp_path / "mixed"), "--image-size", str(SIDE)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    line = out[out.index("DICOM: 12 files; views") :].split("decoded:")[0]
    for piece in ("PA 3", "AP 3", "not given 6", "manufacturers", "ACME 6"):
        assert piece in line


def test_without_pydicom_a_dicom_file_is_a_bad_image_naming_the_extra(
    tmp_path: Path, grey, monkeypatch
) -> None:
    import sys

    path = write_dicom(tmp_path / "a.dcm", grey)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    result = decode(path)
    assert (result.rule, result.value) == (
        "DICOM file but pydicom is not installed",
        "pip install 'covidxr[dicom]'",
    )
