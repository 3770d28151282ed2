"""Links and special files in a data folder, held to what the data package documents.

covidxr_core/data/__init__.py, "Symlinks": links are followed when their target lies
inside the data folder (resolved first); a link that leaves it, a broken link and a loop
are not followed, and each is listed in ``Dataset.skipped`` with the reason. Here every
way out of the folder is tried: relative and absolute, file and folder, at class, split
and root level, plus special files (a named pipe) that would block whoever opens them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _figures import observe
from _imagefolders import image_bytes, make_folder
from _timelimit import EXAMPLE_LIMIT_S, time_limit

from covidxr_core.data import DataConfig, load_dataset
from covidxr_core.errors import DataError


def _config(tmp_path: Path) -> DataConfig:
    return DataConfig(image_size=16, cache_dir=str(tmp_path / "cache"), workers=1)


def _outside(tmp_path: Path) -> Path:
    """A folder next to the data folder holding one image the loader must never read."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.png").write_bytes(image_bytes(7, 32))
    return out


# name -> (link path relative to the data folder, target given the data folder and outside)
LEAVING = {
    "file, absolute": ("train/corona/abs.png", lambda root, out: out / "secret.png"),
    "file, relative ../../..": (
        "train/corona/rel.png",
        lambda root, out: Path("../../../outside/secret.png"),
    ),
    "file, system file": ("train/corona/passwd.png", lambda root, out: Path("/etc/passwd")),
    "folder inside a class": ("train/corona/sub", lambda root, out: out),
    "file in a nested folder": ("train/corona/deep/x.png", lambda root, out: out / "secret.png"),
}


@pytest.mark.parametrize("case", list(LEAVING))
def test_a_link_leaving_the_folder_is_skipped_with_its_reason(tmp_path: Path, case: str) -> None:
    root = make_folder(tmp_path / "data")
    out = _outside(tmp_path)
    rel, target = LEAVING[case]
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).symlink_to(target(root, out))
    with observe(
        "links",
        f"symlink leaving the data folder: {case}",
        "not followed; listed in Dataset.skipped as 'symlink leaves the data folder'",
    ) as obs:
        with time_limit(EXAMPLE_LIMIT_S):
            dataset = load_dataset(root, _config(tmp_path))
        reasons = dict(dataset.skipped)
        files = [f for s in dataset.splits.values() for f in s.files]
        obs["observed"] = f"skipped: {reasons.get(rel)!r}; {len(files)} files loaded"
        assert reasons.get(rel, "").startswith("symlink leaves the data folder"), dataset.skipped
        assert not any(f.startswith(rel) for f in files)
        assert len(files) == 14  # the folder's own images, nothing more


def test_a_class_folder_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    out = _outside(tmp_path)
    (root / "validation" / "extra").symlink_to(out)
    with observe(
        "links",
        "a class folder that is a link out of the data folder (validation/extra)",
        "not followed; the split keeps its real class folders and the link is listed as skipped",
    ) as obs:
        dataset = load_dataset(root, _config(tmp_path))
        reasons = dict(dataset.skipped)
        obs["observed"] = f"skipped: {reasons.get('validation/extra')!r}"
        assert reasons.get("validation/extra", "").startswith("symlink leaves the data folder")
        assert dataset.class_names == ("corona", "normal")


def test_a_split_folder_leaving_the_folder_is_refused_by_name(tmp_path: Path) -> None:
    real = make_folder(tmp_path / "elsewhere")
    root = tmp_path / "data"
    root.mkdir()
    (root / "train").symlink_to(real / "train")
    (root / "validation").symlink_to(real / "validation")
    with observe(
        "links",
        "the train split folder is a link out of the data folder",
        "DataError: no train split, naming the refused link",
    ) as obs:
        with pytest.raises(DataError, match="refused links leaving the folder") as caught:
            load_dataset(root, _config(tmp_path))
        obs["observed"] = f"DataError: {caught.value}"
        assert "train" in str(caught.value)


def test_a_data_folder_given_through_a_link_follows_its_inside_links(tmp_path: Path) -> None:
    real = make_folder(tmp_path / "real")
    (real / "train" / "corona" / "again.png").symlink_to(
        Path("../../validation/corona/corona-000.png")
    )
    (tmp_path / "data").symlink_to(real)
    with observe(
        "links",
        "the data folder is itself a link; an inside link is relative to the real folder",
        "the folder is resolved first, so the inside link is followed and decoded",
    ) as obs:
        dataset = load_dataset(tmp_path / "data", _config(tmp_path))
        obs["observed"] = (
            f"train/corona/again.png decoded: {'train/corona/again.png' in dataset.splits['train'].files}; skipped {list(dataset.skipped)}"
        )
        assert "train/corona/again.png" in dataset.splits["train"].files
        assert not dataset.skipped


@pytest.mark.parametrize("target", [".", "..", "../..", "../../train/corona"])
def test_a_folder_loop_is_skipped_and_nothing_is_listed_twice(tmp_path: Path, target: str) -> None:
    root = make_folder(tmp_path / "data")
    (root / "train" / "corona" / "loop").symlink_to(target)
    with observe(
        "links",
        f"folder link looping back: train/corona/loop -> {target}",
        "not followed; listed in Dataset.skipped as a symlink loop; every image once",
    ) as obs:
        with time_limit(EXAMPLE_LIMIT_S):
            dataset = load_dataset(root, _config(tmp_path))
        files = [f for s in dataset.splits.values() for f in s.files]
        reasons = dict(dataset.skipped)
        obs["observed"] = f"skipped: {reasons.get('train/corona/loop')!r}; {len(files)} files"
        assert reasons.get("train/corona/loop", "").startswith("symlink loop"), dataset.skipped
        assert len(files) == len(set(files)) == 14


def test_a_named_pipe_with_an_image_name_does_not_block_the_load(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data")
    os.mkfifo(root / "train" / "corona" / "pipe.png")
    (root / "train" / "normal" / "to-pipe.png").symlink_to(Path("../corona/pipe.png"))
    with observe(
        "links",
        "a named pipe called pipe.png in a class folder (and a link to it)",
        "load finishes; the pipe is listed as skipped with a reason (opening it would block forever)",
    ) as obs:
        try:
            with time_limit(EXAMPLE_LIMIT_S):
                dataset = load_dataset(root, _config(tmp_path))
        except Exception as exc:
            obs["observed"] = f"{type(exc).__name__}: {exc}"
            raise
        reasons = dict(dataset.skipped)
        obs["observed"] = (
            f"finished; skipped: pipe.png {reasons.get('train/corona/pipe.png')!r}, "
            f"to-pipe.png {reasons.get('train/normal/to-pipe.png')!r}"
        )
        assert "train/corona/pipe.png" in reasons
        assert "train/normal/to-pipe.png" in reasons


# (link, target): links between class folders, in both walking orders and across splits.
CROSS = [
    ("train/corona/x", "../normal"),
    ("train/normal/x", "../corona"),
    ("train/corona/x", "../normal/sub"),
    ("train/normal/x", "../corona/sub"),
    ("test/corona/x", "../../train/corona/sub"),
    ("validation/normal/x", "../../test/normal/sub"),
]


@pytest.mark.parametrize(("link", "target"), CROSS)
def test_a_folder_link_into_another_class_changes_no_label(
    tmp_path: Path, link: str, target: str
) -> None:
    root = make_folder(tmp_path / "data")
    for split in ("train", "test"):
        for label in ("corona", "normal"):
            sub = root / split / label / "sub"
            sub.mkdir()
            (sub / f"{label}-sub.png").write_bytes(image_bytes(len(label) + len(split), 32))
    (root / link).symlink_to(target)
    with observe(
        "links",
        f"folder link into another class folder: {link} -> {target}",
        "not followed; every image keeps the class and split of the folder it lies in",
    ) as obs:
        try:
            dataset = load_dataset(root, _config(tmp_path))
        except DataError as exc:
            obs["observed"] = f"DataError: {str(exc)[:160]}"
            raise
        reasons = dict(dataset.skipped)
        placed = {
            f: (split, dataset.class_names[label])
            for split, s in dataset.splits.items()
            for f, label in zip(s.files, s.labels, strict=True)
        }
        obs["observed"] = (
            f"skipped: {reasons.get(link)!r}; {len(placed)} images, each in its own folder's class"
        )
        assert len(placed) == 18
        for rel, (split, label) in placed.items():
            assert rel.split("/")[:2] == [split, label], (rel, split, label)
        assert link in reasons
