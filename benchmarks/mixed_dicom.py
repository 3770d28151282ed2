"""A data folder mixing PNG and DICOM, made from the 20 real cxr-fixture radiographs.

    python benchmarks/mixed_dicom.py ../shared/data/cxr-fixture /tmp/mixed

train 6 / validation 2 / test 2 per class (128 px greyscale); every other file is a 12-bit
DX DICOM file written with pydicom (MONOCHROME1 or 2, View Position PA or AP,
Manufacturer "ACME Imaging", one with no extension), the rest PNG. The same layout as the
``mixed_data`` fixture of tests/tuning_tests/test_integrations.py; used for the checks in
docs/integrations.md. Needs ``pip install 'covidxr[dicom]'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dicom(path: Path, grey: np.ndarray, view: str, monochrome1: bool) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = (255 - grey if monochrome1 else grey).astype(np.uint16) * 16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.ViewPosition, ds.Manufacturer = view, "ACME Imaging"
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture", type=Path, help="the cxr-fixture folder")
    parser.add_argument("out", type=Path, help="the folder to write (must not exist)")
    args = parser.parse_args()
    splits = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    for label in ("corona", "normal"):
        files = sorted((args.fixture / "validation" / label).iterdir())
        for i, (source, split) in enumerate(zip(files, splits, strict=True)):
            folder = args.out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            with Image.open(source) as image:
                grey = np.asarray(image.convert("L").resize((128, 128)), dtype=np.uint8)
            if i % 2:
                name = f"IM{i:04d}" if i == 5 else f"{source.stem}.dcm"
                write_dicom(folder / name, grey, "PA" if i % 4 == 1 else "AP", i % 3 == 0)
            else:
                Image.fromarray(grey).save(folder / f"{source.stem}.png")
    print(args.out)


if __name__ == "__main__":
    main()
