"""Discovery, carving and configuration of the data package, on real files in tmp_path.

Also home of `write_image` and `make_tree`, which the other test_data_* modules import:
tiny PNGs whose content differs per seed (so no two count as the same radiograph).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidxr_core.data import DataConfig, discover, load_dataset
from covidxr_core.errors import ConfigError, DataError


def write_image(
    path: Path, seed: int = 0, size: tuple[int, int] = (48, 40), **save: object
) -> Path:
    """Write a small greyscale image: smooth random blobs, distinct for each seed."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8))
    image = coarse.resize(size, Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save)  # type: ignore[arg-type]
    return path


def make_tree(root: Path, spec: dict[str, dict[str, int]], seed: int = 0) -> Path:
    """``{split: {class: n}}`` -> ``root/split/class/class-i.png``, every image distinct."""
    for s, (split, classes) in enumerate(spec.items()):
        for c, (label, count) in enumerate(classes.items()):
            for i in range(count):
                write_image(
                    root / split / label / f"{label}-{i}.png",
                    seed * 10**6 + s * 10**4 + c * 10**3 + i,
                )
    return root


def small_config(tmp_path: Path, **overrides: object) -> DataConfig:
    """Fast settings: 32 px, one process, a cache inside the test's own folder."""
    values: dict[str, object] = {
        "image_size": 32,
        "workers": 1,
        "cache_dir": str(tmp_path / "cache"),
    }
    values.update(overrides)
    return DataConfig(**values)  # type: ignore[arg-type]


FULL = {
    "train": {"corona": 6, "normal": 6},
    "validation": {"corona": 2, "normal": 2},
    "test": {"corona": 2, "normal": 2},
}


def test_three_splits_sorted_classes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    layout = discover(root, small_config(tmp_path))
    assert layout.class_names == ("corona", "normal")
    assert layout.carved == ()
    assert {s: len(p) for s, p in layout.splits.items()} == {
        "train": 12,
        "validation": 4,
        "test": 4,
    }
    assert layout.splits["train"][0] == ("train/corona/corona-0.png", "corona")
    assert len(layout.files) == 20 and layout.notes == ()


@pytest.mark.parametrize("alias", ["val", "valid", "Validation"])
def test_validation_aliases(tmp_path: Path, alias: str) -> None:
    root = make_tree(
        tmp_path / "data", {"train": FULL["train"], alias: FULL["validation"], "test": FULL["test"]}
    )
    layout = discover(root, small_config(tmp_path))
    assert len(layout.splits["validation"]) == 4
    assert layout.source_splits["validation"] == alias
    assert any(f"read from folder {alias!r}" in n for n in layout.notes)


def test_two_aliases_for_one_split_is_an_error(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path / "data",
        {"train": FULL["train"], "val": FULL["validation"], "valid": FULL["validation"]},
    )
    with pytest.raises(DataError, match="'val' and 'valid' both name the validation split"):
        discover(root, small_config(tmp_path))


def test_missing_test_split_is_carved_stratified_deterministic_and_noted(tmp_path: Path) -> None:
    spec = {"train": {"corona": 20, "normal": 10}, "validation": {"corona": 2, "normal": 2}}
    root = make_tree(tmp_path / "data", spec)
    config = small_config(tmp_path, test_fraction=0.2, seed=3)
    layout = discover(root, config)
    assert layout.carved == ("test",)
    labels = [label for _, label in layout.splits["test"]]
    assert labels.count("corona") == 4 and labels.count("normal") == 2  # 20% of each class
    assert len(layout.splits["train"]) == 24
    assert (
        "test split missing: carved 20% of train, stratified, seed 3 (corona 4, normal 2)"
        in layout.notes
    )
    assert discover(root, config).splits == layout.splits  # deterministic
    other = discover(root, small_config(tmp_path, test_fraction=0.2, seed=4))
    assert other.splits["test"] != layout.splits["test"]  # the seed matters
    carved = {rel for rel, _ in layout.splits["test"]}
    assert not carved & {rel for rel, _ in layout.splits["train"]}


def test_both_missing_splits_are_carved_and_the_cache_ignores_carving(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": {"corona": 10, "normal": 10}})
    first = load_dataset(root, small_config(tmp_path))
    assert first.counts() == {
        "train": {"corona": 6, "normal": 6},
        "validation": {"corona": 2, "normal": 2},
        "test": {"corona": 2, "normal": 2},
    }
    assert sum("carved" in n for n in first.notes) == 2
    reseeded = load_dataset(root, small_config(tmp_path, seed=7))
    assert reseeded.cache_hit and reseeded.cache_path == first.cache_path
    assert reseeded.splits["test"].files != first.splits["test"].files


def test_too_few_images_to_carve(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": {"corona": 2, "normal": 5}})
    with pytest.raises(
        DataError,
        match=r"train/corona: 2 images are too few to carve validation and test out of train \(needs at least 3\)",
    ):
        discover(root, small_config(tmp_path))


def test_positive_class_default_override_and_unknown(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": {"Normal": 3, "covid": 3}})
    dataset = load_dataset(root, small_config(tmp_path, val_fraction=0.3, test_fraction=0.3))
    assert dataset.positive_class == "covid"  # "normal" matched case-insensitively
    assert dataset.positive_index == 1
    override = load_dataset(
        root, small_config(tmp_path, val_fraction=0.3, test_fraction=0.3, positive_class="Normal")
    )
    assert override.positive_class == "Normal"
    with pytest.raises(
        ConfigError, match=r"positive_class must be one of \['Normal', 'covid'\], but got 'corona'"
    ):
        load_dataset(root, small_config(tmp_path, positive_class="corona"))


def test_three_classes_need_an_explicit_positive_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": {"a": 3, "b": 3, "normal": 3}})
    config = small_config(tmp_path, val_fraction=0.3, test_fraction=0.3)
    with pytest.raises(ConfigError, match=r"positive_class must be set.*\['a', 'b', 'normal'\]"):
        load_dataset(root, config)
    assert (
        load_dataset(
            root, small_config(tmp_path, val_fraction=0.3, test_fraction=0.3, positive_class="b")
        ).num_classes
        == 3
    )


def test_missing_path_file_path_no_train_single_class(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nowhere", config)
    write_image(tmp_path / "one.png")
    with pytest.raises(DataError, match="must be a folder"):
        discover(tmp_path / "one.png", config)
    root = make_tree(tmp_path / "notrain", {"validation": FULL["validation"], "extra": {"x": 1}})
    with pytest.raises(DataError, match=r"no train split.*found folders \['extra', 'validation'\]"):
        discover(root, config)
    root = make_tree(tmp_path / "flat", {"corona": {"a": 1}, "normal": {"b": 1}})
    with pytest.raises(DataError, match="no train split"):
        discover(root, config)
    root = make_tree(tmp_path / "single", {"train": {"corona": 3}})
    with pytest.raises(DataError, match=r"two or more class folders, but found \['corona'\]"):
        discover(root, config)


def test_empty_and_mismatched_class_folders(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    (root / "validation" / "normal" / "notes.txt").write_text("not an image")
    for f in (root / "validation" / "normal").glob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match=r"validation/normal: class folder has no image files"):
        discover(root, small_config(tmp_path))
    root = make_tree(tmp_path / "data2", {**FULL, "test": {"corona": 1, "covid": 1}})
    with pytest.raises(DataError, match=r"class folders \['corona', 'covid'\] differ from train's"):
        discover(root, small_config(tmp_path))


def test_hidden_and_non_image_files_are_ignored_with_a_note(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    (root / "train" / "corona" / "notes.txt").write_text("hello")
    (root / "train" / "corona" / ".DS_Store").write_bytes(b"\0\1")
    (root / "train" / "corona" / "._corona-0.png").write_bytes(b"\0\5\26\7")  # resource fork
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "README.md").write_text("top-level files are fine")
    layout = discover(root, small_config(tmp_path))
    assert layout.class_names == ("corona", "normal")  # no .ipynb_checkpoints class
    assert set(layout.ignored) >= {
        "train/corona/notes.txt",
        "train/corona/.DS_Store",
        "train/corona/._corona-0.png",
    }
    assert any(n.startswith("ignored 3 hidden or non-image files") for n in layout.notes)
    assert len(layout.splits["train"]) == 12


def test_nested_folders_belong_to_their_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    write_image(root / "train" / "corona" / "day2" / "scan.png", seed=999)
    layout = discover(root, small_config(tmp_path))
    assert ("train/corona/day2/scan.png", "corona") in layout.splits["train"]


def test_symlink_policy(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    outside = write_image(tmp_path / "outside" / "elsewhere.png", seed=77)
    corona = root / "train" / "corona"
    os.symlink(outside, corona / "leaves.png")
    os.symlink(corona / "corona-0.png", root / "train" / "normal" / "inside.png")
    os.symlink(tmp_path / "missing.png", corona / "broken.png")
    os.symlink(root / "train", corona / "loop")  # a folder link back up the tree
    layout = discover(root, small_config(tmp_path))
    reasons = dict(layout.skipped)
    assert reasons["train/corona/leaves.png"].startswith("symlink leaves the data folder")
    assert reasons["train/corona/broken.png"] == "broken symlink"
    assert reasons["train/corona/loop"] == "symlink loop: points to a parent folder"
    assert ("train/normal/inside.png", "normal") in layout.splits["train"]  # inside: followed
    dataset = load_dataset(root, small_config(tmp_path))
    assert "train/corona/leaves.png" in dict(dataset.skipped)
    assert any("did not follow" in n for n in dataset.notes)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image_size", 4, "`8 <= image_size <= 4096` must hold, but got 4"),
        ("image_size", True, "image_size must be an int, but got True"),
        ("channels", 2, r"channels must be one of \[1, 3\], but got 2"),
        (
            "on_bad_image",
            "ignore",
            r"on_bad_image must be one of \['skip', 'error'\], but got 'ignore'",
        ),
        ("val_fraction", 1.5, "`0 < val_fraction < 1` must hold, but got 1.5"),
        ("seed", -1, "`seed >= 0` must hold, but got -1"),
        ("workers", 0, "`workers >= 1` must hold, but got 0"),
        ("positive_class", "", "positive_class must be a class folder name or None"),
    ],
)
def test_config_errors_name_field_rule_and_value(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig(**{field: value})  # type: ignore[arg-type]


def test_fractions_must_leave_train_images() -> None:
    with pytest.raises(ConfigError, match="val_fraction \\+ test_fraction < 1"):
        DataConfig(val_fraction=0.5, test_fraction=0.5)
