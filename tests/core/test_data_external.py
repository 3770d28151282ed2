"""``load_external``: a labelled folder from elsewhere, on real radiographs (cxr-fixture)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from covidxr_core.data import ExternalSet, decode_calls, load_external
from covidxr_core.errors import BadImageError, DataError

from .test_data_discover import small_config


def _flat_copy(
    cxr_fixture: Path, root: Path, classes: tuple[str, ...] = ("corona", "normal")
) -> Path:
    """``root/<class>/*`` from cxr-fixture's ``validation/<class>/*`` (hard links where possible)."""
    for label in classes:
        (root / label).mkdir(parents=True)
        for f in sorted((cxr_fixture / "validation" / label).iterdir()):
            try:
                os.link(f, root / label / f.name)
            except OSError:
                shutil.copy2(f, root / label / f.name)
    return root


def test_split_layout_pooled_labels_follow_the_main_order(
    cxr_fixture: Path, tmp_path: Path
) -> None:
    config = small_config(tmp_path)
    ext = load_external(cxr_fixture, config, ("corona", "normal"))
    assert isinstance(ext, ExternalSet) and ext.name == "cxr-fixture" and len(ext) == 20
    assert ext.images.shape == (20, 32, 32, 1) and ext.images.dtype == np.uint8
    assert ext.labels.dtype == np.int32
    assert ext.counts == {"corona": 10, "normal": 10}
    assert all(f.startswith("validation/") for f in ext.files)
    assert any("pooled the splits ['validation']" in n for n in ext.notes)
    for f, label in zip(ext.files, ext.labels, strict=True):
        assert ext.class_names[label] == f.split("/")[1]
    reversed_ = load_external(cxr_fixture, config, ("normal", "corona"))
    assert reversed_.cache_hit  # class order does not change the pixels
    assert np.array_equal(reversed_.labels, 1 - ext.labels)
    assert reversed_.counts == {"normal": 10, "corona": 10}


def test_flat_layout_then_a_cache_hit(cxr_fixture: Path, tmp_path: Path) -> None:
    root = _flat_copy(cxr_fixture, tmp_path / "hospital-b")
    config = small_config(tmp_path, channels=3)
    first = load_external(root, config, ("corona", "normal"))
    assert not first.cache_hit and first.name == "hospital-b"
    assert first.images.shape == (20, 32, 32, 3)
    assert first.files[0].startswith("corona/") and first.counts == {"corona": 10, "normal": 10}
    calls = decode_calls()
    second = load_external(root, config, ("corona", "normal"))
    assert second.cache_hit and decode_calls() == calls  # opened no image file
    assert np.array_equal(second.images, first.images) and second.files == first.files
    pooled = load_external(cxr_fixture, config, ("corona", "normal"))
    assert np.array_equal(pooled.images, first.images)  # same files, same pixels


def test_class_rules(cxr_fixture: Path, tmp_path: Path) -> None:
    config = small_config(tmp_path)
    only_corona = _flat_copy(cxr_fixture, tmp_path / "corona-only", ("corona",))
    ext = load_external(only_corona, config, ("corona", "normal"))
    assert ext.counts == {"corona": 10, "normal": 0} and set(ext.labels) == {0}
    assert "external set has no images of class 'normal'" in ext.notes

    extra = _flat_copy(cxr_fixture, tmp_path / "extra")
    (extra / "pneumonia").mkdir()
    shutil.copy(extra / "normal" / sorted(os.listdir(extra / "normal"))[0], extra / "pneumonia")
    with pytest.raises(
        DataError,
        match=r"pneumonia: class folder 'pneumonia' is not a class of the main data \['corona', 'normal'\]",
    ):
        load_external(extra, config, ("corona", "normal"))
    with pytest.raises(DataError, match="external data folder does not exist"):
        load_external(tmp_path / "nowhere", config, ("corona", "normal"))
    (tmp_path / "empty" / "corona").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files in an external set"):
        load_external(tmp_path / "empty", config, ("corona", "normal"))


def test_bad_images_follow_the_policy(cxr_fixture: Path, tmp_path: Path) -> None:
    root = _flat_copy(cxr_fixture, tmp_path / "ext")
    (root / "normal" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    ext = load_external(root, small_config(tmp_path), ("corona", "normal"))
    assert len(ext) == 20 and "normal/broken.jpg" not in ext.files
    assert [rel for rel, _ in ext.skipped] == ["normal/broken.jpg"]
    with pytest.raises(BadImageError, match=r"broken\.jpg"):
        load_external(root, small_config(tmp_path, on_bad_image="error"), ("corona", "normal"))
