"""Cluster-aware carving and drop_leaked, on real radiographs (covid-cxr) and made folders.

The folder most tests share: covid-cxr's train split alone (224 radiographs, so both
other splits are carved), plus 24 byte-identical copies under other names and the known
re-encoded copy ``validation/corona/4-x-day1.jpg`` of ``train/corona/extubation-1.jpg``.
Before cluster-aware carving, seed 0 split 13 of the 24 exact pairs across splits.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

from covidxr_core.data import (
    DataConfig,
    DroppedFile,
    decode_calls,
    discover,
    find_duplicates,
    load_dataset,
)
from covidxr_core.data.__main__ import main
from covidxr_core.data._carve import carve_key, clusters
from covidxr_core.data._discover import scan
from covidxr_core.errors import DataError

from .test_data_discover import FULL, make_tree, small_config

NEAR = ("train/corona/extubation-1.jpg", "train/corona/4-x-day1.jpg")
SEEDS = (0, 1, 2, 3, 4, 5)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("carving-cache"))


@pytest.fixture(scope="module")
def train_only(covid_cxr: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """covid-cxr/train + 24 exact copies + the near duplicate; returns (root, exact pairs)."""
    root = tmp_path_factory.mktemp("train-only") / "data"
    pairs = []
    for label in ("corona", "normal"):
        files = sorted((covid_cxr / "train" / label).iterdir())
        for f in files:
            _link_or_copy(f, root / "train" / label / f.name)
        for f in files[::9][:12]:  # 12 per class, spread over the name order
            shutil.copyfile(f, root / "train" / label / f"copy-{f.name}")  # new bytes, same content
            pairs.append((f"train/{label}/{f.name}", f"train/{label}/copy-{f.name}"))
    _link_or_copy(covid_cxr / "validation" / "corona" / "4-x-day1.jpg", root / NEAR[1])
    assert len(pairs) == 24
    return root, pairs


def _config(cache: str, **overrides: object) -> DataConfig:
    values: dict[str, object] = {"image_size": 32, "workers": 1, "cache_dir": cache}
    values.update(overrides)
    return DataConfig(**values)  # type: ignore[arg-type]


def test_carving_never_separates_exact_or_near_duplicates(
    train_only: tuple[Path, list], cache: str
) -> None:
    root, pairs = train_only
    sides_of_near = set()
    for seed in SEEDS:
        dataset = load_dataset(root, _config(cache, seed=seed))
        split_of = {f: s for s, arrays in dataset.splits.items() for f in arrays.files}
        separated = [(a, b) for a, b in pairs if split_of[a] != split_of[b]]
        assert separated == [], f"seed {seed}"
        assert split_of[NEAR[0]] == split_of[NEAR[1]], f"seed {seed}"
        sides_of_near.add(split_of[NEAR[0]])
        # Nothing at all is reported: every duplicate pair (the two same-patient pairs of
        # covid-cxr's train included) sits on one side.
        assert find_duplicates(dataset, _config(cache, seed=seed)) == []
        counts = dataset.counts()
        # 125 / 124 files per class; the target of each carved split is round(0.2 * n) = 25.
        assert counts["test"] == {"corona": 25, "normal": 25}, f"seed {seed}: {counts}"
        assert counts["validation"] == {"corona": 25, "normal": 25}, f"seed {seed}: {counts}"
        assert sum(len(a) for a in dataset.splits.values()) == 249
        assert any("carving kept" in n and "clusters" in n for n in dataset.notes)
    assert sides_of_near - {"train"}, "the near pair was never carved: the test proves little"


def test_carving_is_deterministic_and_changes_nothing_on_a_cache_hit(
    train_only: tuple[Path, list], cache: str
) -> None:
    root, _ = train_only
    first = load_dataset(root, _config(cache, seed=3))
    calls = decode_calls()
    again = load_dataset(root, _config(cache, seed=3))
    assert again.cache_hit and decode_calls() == calls  # fingerprints come from the cache
    assert {s: a.files for s, a in again.splits.items()} == {
        s: a.files for s, a in first.splits.items()
    }
    assert discover(root, _config(cache, seed=3)).splits == first.extra["layout"].splits  # type: ignore[attr-defined]


def _old_carve(root: Path, config: DataConfig) -> dict[str, str]:
    """The per-file carve before clusters, as it was in _discover: the reference."""
    layout = scan(root)
    fractions = {"validation": config.val_fraction, "test": config.test_fraction}
    out: dict[str, str] = {}
    for label in layout.class_names:
        files = sorted(
            (r for r, lab in layout.splits["train"] if lab == label),
            key=lambda r: carve_key(config.seed, r),
        )
        start = 0
        for split in ("test", "validation"):
            if split in layout.missing:
                wanted = max(1, math.floor(fractions[split] * len(files) + 0.5))
                out.update(dict.fromkeys(files[start : start + wanted], split))
                start += wanted
        out.update(dict.fromkeys(files[start:], "train"))
    return out


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_without_duplicates_the_carve_is_the_old_one_file_for_file(
    tmp_path: Path, seed: int
) -> None:
    root = make_tree(tmp_path / "data", {"train": {"corona": 23, "normal": 11}})
    config = small_config(tmp_path, seed=seed)
    new = discover(root, config).split_of()
    assert new == _old_carve(root, config)
    assert not any("carving kept" in n for n in discover(root, config).notes)


def test_a_train_file_duplicating_a_given_split_stays_in_train(covid_cxr: Path, cache: str) -> None:
    for seed in SEEDS[:3]:
        layout = discover(covid_cxr, _config(cache, seed=seed))
        assert layout.split_of()["train/corona/extubation-1.jpg"] == "train"
        assert any("carving left 1 train files in train" in n for n in layout.notes)


def test_clusters_join_groups_transitively() -> None:
    rels = ["a", "b", "c", "d", "e"]
    groups = {"a": "p1", "c": "p1", "d": "p2", "e": "p2"}
    assert clusters(rels, {}, groups) == [("a", "c"), ("b",), ("d", "e")]


def test_too_few_clusters_to_carve_is_a_named_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": {"corona": 6, "normal": 6}})
    groups = tmp_path / "groups.csv"
    rows = [f"train/corona/corona-{i}.png,one patient" for i in range(6)]
    groups.write_text("path,group\n" + "\n".join(rows) + "\n")
    with pytest.raises(
        DataError,
        match=r"train/corona: 6 images in 1 clusters .* split 'validation' would have none",
    ):
        discover(root, small_config(tmp_path, groups=str(groups)))


# ----------------------------------------------------------------------------- drop_leaked


def test_drop_leaked_removes_the_known_copy_and_lists_it(covid_cxr: Path, cache: str) -> None:
    kept = load_dataset(covid_cxr, _config(cache))
    assert kept.dropped == ()
    assert "validation/corona/4-x-day1.jpg" in kept.splits["validation"].files
    assert [(p.file_a, p.file_b) for p in find_duplicates(kept, _config(cache))] == [
        ("train/corona/extubation-1.jpg", "validation/corona/4-x-day1.jpg")
    ]

    dropped = load_dataset(covid_cxr, _config(cache, drop_leaked=True))
    assert dropped.cache_hit and dropped.cache_path == kept.cache_path
    (item,) = dropped.dropped
    assert item == DroppedFile(
        "validation/corona/4-x-day1.jpg", "train/corona/extubation-1.jpg", "validation", "near", 20
    )
    assert item[:3] == (item.file, item.duplicate_of, item.split)  # a plain tuple too
    assert "validation/corona/4-x-day1.jpg" not in dropped.splits["validation"].files
    assert dropped.counts()["validation"] == {"corona": 28, "normal": 30}
    assert any(n.startswith("drop_leaked: removed 1 validation/test files") for n in dropped.notes)
    assert find_duplicates(dropped, _config(cache)) == []


def test_drop_leaked_refuses_to_empty_a_class(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    for i in range(2):
        shutil.copyfile(
            root / "train" / "normal" / f"normal-{i}.png",
            root / "validation" / "normal" / f"normal-{i}.png",
        )
    assert load_dataset(root, small_config(tmp_path)).dropped == ()  # without the flag: kept
    with pytest.raises(DataError, match=r"drop_leaked would remove every image of class 'normal'"):
        load_dataset(root, small_config(tmp_path, drop_leaked=True))


def test_cli_drop_leaked(covid_cxr: Path, cache: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(covid_cxr), "--cache-dir", cache, "--workers", "1", "--image-size", "32"]
    assert main([*args, "--drop-leaked", "--strict"]) == 0  # nothing leaks once dropped
    out = capsys.readouterr().out
    assert "--drop-leaked removed 1 files from validation/test" in out
    assert (
        "validation/corona/4-x-day1.jpg  (near 20 of train: train/corona/extubation-1.jpg)" in out
    )
    assert "no file appears in two splits" in out
    assert main([*args, "--strict"]) == 1  # without it the pair is reported
    assert "--drop-leaked removed" not in capsys.readouterr().out
