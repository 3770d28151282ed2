"""The embedded synthetic demo data: deterministic files, loaded through the normal path."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidxr_core.data import (
    DEMO_CLASSES,
    DEMO_COUNTS,
    DEMO_SEED,
    DEMO_VERSION,
    DataConfig,
    demo_data_path,
    draw_radiograph,
    load_dataset,
)


@pytest.fixture(scope="module")
def demo() -> Path:
    return demo_data_path()  # the session's isolated cache (tests/conftest.py)


def test_layout_counts_and_image_format(demo: Path) -> None:
    assert demo.name == DEMO_VERSION
    for split, count in DEMO_COUNTS.items():
        for label in DEMO_CLASSES:
            files = sorted((demo / split / label).glob("*.png"))
            assert len(files) == count
    assert DEMO_COUNTS == {"train": 112, "validation": 30, "test": 30}
    with Image.open(demo / "train" / "corona" / "corona-000.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (256, 256))


def test_files_are_a_fixed_function_of_their_seed(demo: Path) -> None:
    # Regenerating an image from its documented seed gives the very bytes on disk, so two
    # machines (or two calls) produce identical data sets; checked on a sample.
    for split_index, split in enumerate(DEMO_COUNTS):
        for class_index, label in enumerate(DEMO_CLASSES):
            for i in (0, 17 if split != "train" else 111):
                rng = np.random.default_rng([DEMO_SEED, split_index, class_index, i])
                encoded = io.BytesIO()
                pixels = draw_radiograph(rng, corona=label == "corona")
                Image.fromarray(pixels).save(encoded, format="PNG", compress_level=1)
                assert (
                    demo / split / label / f"{label}-{i:03d}.png"
                ).read_bytes() == encoded.getvalue()
    assert demo_data_path() == demo  # a second call reuses the folder


def test_images_look_like_radiographs_and_classes_overlap(demo: Path) -> None:
    def load(label: str) -> np.ndarray:
        return np.stack(
            [
                np.asarray(Image.open(p), dtype=float)
                for p in sorted((demo / "train" / label).glob("*.png"))[:40]
            ]
        )

    corona, normal = load("corona"), load("normal")
    for images in (corona, normal):
        centre, corner = images[:, 96:160, 96:160].mean(), images[:, :16, :16].mean()
        assert centre > corner + 40  # a bright body on a dark film
        assert len({round(float(m)) for m in images.mean(axis=(1, 2))}) > 20  # exposures vary
    # Opacities brighten the lower lung zones on average, but the class means are close
    # relative to patient-to-patient spread: no trivial brightness cue.
    lower = slice(130, 200)
    gap = corona[:, lower].mean() - normal[:, lower].mean()
    spread = normal[:, lower].mean(axis=(1, 2)).std()
    assert 0 < gap < spread


def test_a_folder_drawn_by_other_code_is_not_trusted(demo: Path, tmp_path: Path) -> None:
    folder = tmp_path / DEMO_VERSION
    shutil.copytree(demo, folder)
    sample = folder / "train" / "corona" / "corona-000.png"
    drawn = sample.read_bytes()
    spare = folder / "train" / "normal" / "normal-005.png"
    spare_stat = spare.stat()
    assert demo_data_path(tmp_path) == folder  # complete and current: reused as it is
    assert spare.stat().st_ino == spare_stat.st_ino
    Image.new("L", (256, 256)).save(sample)  # same names, other drawing
    assert demo_data_path(tmp_path) == folder
    assert sample.read_bytes() == drawn  # regenerated, not trusted
    sample.unlink()  # incomplete
    assert demo_data_path(tmp_path) == folder
    assert sample.read_bytes() == drawn


def test_load_dataset_none_is_the_demo_through_the_normal_path() -> None:
    dataset = load_dataset(None, DataConfig(image_size=32))
    assert dataset.synthetic and dataset.source == f"synthetic:{DEMO_VERSION}"
    assert dataset.notes[0].startswith("synthetic demo data (demo-v1)")
    assert dataset.class_names == ("corona", "normal") and dataset.positive_class == "corona"
    assert dataset.counts() == {s: {"corona": n, "normal": n} for s, n in DEMO_COUNTS.items()}
    assert dataset.splits["train"].images.shape == (224, 32, 32, 1)
    assert dataset.skipped == ()


_CALLER = (
    "import sys; from covidxr_core.data import demo_data_path; print(demo_data_path(sys.argv[1]))"
)


@pytest.mark.slow
def test_concurrent_first_calls_agree(tmp_path: Path) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _CALLER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    paths = {racer.communicate(timeout=300)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert paths == {str(tmp_path / DEMO_VERSION)}
    assert len(list((tmp_path / DEMO_VERSION).glob("*/*/*.png"))) == 2 * sum(DEMO_COUNTS.values())
    assert not list(tmp_path.glob(".tmp-*"))
