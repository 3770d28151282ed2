"""Cross-validation folds (`_folds.cv_folds`) on real radiographs (cxr-fixture).

The folder: the fixture's 20 radiographs laid out as train (7 + 7) and validation
(3 + 3), plus byte-identical copies under new names: two of a train film inside train,
one of a train film in validation (a leak between given splits), and one of a film
listed in a groups file. The test split is carved out of train. Folds pool train and
validation, so every copy pair lies in the pool and must land in one fold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from covidxr_core.data import DataConfig, load_dataset
from covidxr_core.data._folds import (
    cv_folds,
    file_clusters,
    fold_counts,
    fold_dataset,
    pooled_files,
    pooled_labels,
)
from covidxr_core.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def folder(cxr_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("folds") / "data"
    pairs: list[tuple[str, str]] = []
    for label in ("corona", "normal"):
        files = sorted((cxr_fixture / "validation" / label).iterdir())
        for i, f in enumerate(files):
            split = "train" if i < 7 else "validation"
            (root / split / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, root / split / label / f.name)
        src = f"train/{label}/{files[0].name}"
        for copy in (
            f"train/{label}/dup-{files[0].name}",
            f"validation/{label}/dup-{files[1].name}",
        ):
            original = src if copy.startswith("train") else f"train/{label}/{files[1].name}"
            shutil.copyfile(root / original, root / copy)
            pairs.append((original, copy))
    return root, pairs


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("folds-cache"))


def _config(cache: str, **overrides: object) -> DataConfig:
    values: dict[str, object] = {"image_size": 32, "workers": 1, "cache_dir": cache}
    return DataConfig(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dataset(folder: tuple[Path, list], cache: str):
    return load_dataset(folder[0], _config(cache))


@pytest.mark.parametrize("k", [2, 3])
def test_folds_partition_the_pool_and_keep_test_out(dataset, cache: str, k: int) -> None:
    folds = cv_folds(dataset, k, seed=0, config=_config(cache))
    n = len(pooled_files(dataset))
    assert len(folds) == k
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(n))  # disjoint and covering
    for train_idx, val_idx in folds:
        assert np.intersect1d(train_idx, val_idx).size == 0
        assert sorted([*train_idx.tolist(), *val_idx.tolist()]) == list(range(n))
    test_files = set(dataset.splits["test"].files)
    assert test_files and not test_files & set(pooled_files(dataset))


def test_folds_are_stratified(dataset, cache: str) -> None:
    k = 3
    folds = cv_folds(dataset, k, seed=0, config=_config(cache))
    labels = pooled_labels(dataset)
    totals = np.bincount(labels, minlength=2)
    for counts in fold_counts(dataset, folds):
        for c, name in enumerate(dataset.class_names):
            # A copy pair is a 2-file cluster: a fold may hold at most one file more.
            assert abs(counts[name] - totals[c] / k) <= 1.5, (counts, totals)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_duplicates_never_split_across_folds(
    dataset, folder: tuple[Path, list], cache: str, seed: int
) -> None:
    _, pairs = folder
    folds = cv_folds(dataset, 3, seed=seed, config=_config(cache))
    files = pooled_files(dataset)
    fold_of = {files[i]: f for f, (_, val) in enumerate(folds) for i in val}
    in_pool = [p for p in pairs if p[0] in fold_of and p[1] in fold_of]
    assert len(in_pool) >= 3  # the carve may move a pair to test, but not most of them
    for a, b in in_pool:
        assert fold_of[a] == fold_of[b], (seed, a, b)


def test_folds_are_deterministic_per_seed_and_vary_with_it(dataset, cache: str) -> None:
    config = _config(cache)
    first = cv_folds(dataset, 3, seed=7, config=config)
    again = cv_folds(dataset, 3, seed=7, config=config)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    others = [cv_folds(dataset, 3, seed=s, config=config) for s in range(4)]
    deals = {tuple(tuple(v.tolist()) for _, v in folds) for folds in others}
    assert len(deals) > 1


def test_groups_stay_in_one_fold(folder: tuple[Path, list], cache: str, tmp_path: Path) -> None:
    root, _ = folder
    corona = sorted(p.name for p in (root / "validation" / "corona").iterdir())
    normal = sorted(p.name for p in (root / "train" / "normal").iterdir())
    patient = [
        f"validation/corona/{corona[0]}",
        f"train/normal/{normal[2]}",
        f"train/normal/{normal[3]}",
    ]
    csv = tmp_path / "groups.csv"
    csv.write_text("path,group\n" + "".join(f"{p},patient-1\n" for p in patient))
    config = _config(cache, groups=str(csv))
    data = load_dataset(root, config)
    files = pooled_files(data)
    patient = [p for p in patient if p in files]  # the carve may have put some in test
    assert len(patient) >= 2
    for seed in range(4):
        folds = cv_folds(data, 3, seed=seed, config=config)
        fold_of = {files[i]: f for f, (_, val) in enumerate(folds) for i in val}
        assert len({fold_of[p] for p in patient}) == 1, seed
    # A mapping passed in overrides the loaded groups.
    mine = {files[0]: "g", files[-1]: "g"}
    folds = cv_folds(data, 2, seed=0, groups=mine, config=config)
    fold_of = {files[i]: f for f, (_, val) in enumerate(folds) for i in val}
    assert fold_of[files[0]] == fold_of[files[-1]]


def test_fold_dataset_replaces_train_and_validation_only(dataset, cache: str) -> None:
    folds = cv_folds(dataset, 3, seed=0, config=_config(cache))
    files = pooled_files(dataset)
    part = fold_dataset(dataset, folds[1], number=1, k=3)
    assert part.splits["validation"].files == tuple(files[i] for i in folds[1][1])
    assert part.splits["train"].files == tuple(files[i] for i in folds[1][0])
    assert part.splits["test"] is dataset.splits["test"]
    assert part.extra["cv_fold"] == (1, 3) and "layout" not in part.extra
    assert part.splits["validation"].images.shape[0] == len(folds[1][1])
    i = int(folds[1][1][0])
    pool_images = np.concatenate([dataset.splits[s].images for s in ("train", "validation")])
    assert np.array_equal(part.splits["validation"].images[0], pool_images[i])
    with pytest.raises(ValueError, match="both parts"):
        fold_dataset(dataset, (folds[0][0], folds[0][0][:2]))


def test_in_memory_dataset_clusters_by_pixels(dataset) -> None:
    """Without a DataLayout, identical decoded images are still kept together."""
    from dataclasses import replace

    bare = replace(dataset, extra={})
    clusters = file_clusters(bare)
    joined = [c for c in clusters if len(c) > 1]
    assert len(joined) >= 3
    assert sum(len(c) for c in clusters) == len(pooled_files(dataset))


def test_bad_k_and_too_few_images_are_refused(dataset, cache: str) -> None:
    with pytest.raises(ConfigError, match="k >= 2"):
        cv_folds(dataset, 1)
    with pytest.raises(ConfigError, match="must be an int"):
        cv_folds(dataset, True)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"too few for .*12"):
        cv_folds(dataset, 12, config=_config(cache))
