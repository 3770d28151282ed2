"""``DataConfig.groups``: a CSV of path,group keeps groups whole and reports split ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from covidxr_core.data import DataConfig, GroupLeak, discover, find_group_leaks, load_dataset
from covidxr_core.data.__main__ import main
from covidxr_core.errors import ConfigError, DataError

from .test_data_discover import FULL, make_tree, small_config


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _patients(root: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Three films per patient; patient 3 has films of both classes; one absolute path."""
    rows: dict[str, str] = {}
    for label in ("corona", "normal"):
        for i in range(18):
            rows[f"train/{label}/{label}-{i}.png"] = f"{label[0]}{i // 3}"
    rows["train/normal/normal-0.png"] = "c3"  # a patient filmed under both labels
    lines = [f"{p},{g}" for p, g in rows.items()]
    lines[1] = f"{root / 'train' / 'corona' / 'corona-1.png'},{rows['train/corona/corona-1.png']}"
    return _write(tmp_path / "groups.csv", "path,group\n" + "\n".join(lines) + "\n"), rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_carving_keeps_every_group_on_one_side(tmp_path: Path, seed: int) -> None:
    root = make_tree(tmp_path / "data", {"train": {"corona": 20, "normal": 20}})
    csv, rows = _patients(root, tmp_path)
    layout = discover(root, small_config(tmp_path, groups=str(csv), seed=seed))
    split_of = layout.split_of()
    sides: dict[str, set[str]] = {}
    for rel, group in rows.items():
        sides.setdefault(group, set()).add(split_of[rel])
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {s for ss in sides.values() for s in ss} == {"train", "validation", "test"}
    assert layout.groups == rows
    assert find_group_leaks(layout) == []
    assert "groups: 36 files in 12 groups (4 files not listed: a group each)" in layout.notes


def test_a_group_in_two_given_splits_is_reported(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    csv = _write(
        tmp_path / "patients.csv",
        "group,path,site\n"  # column order is free, extra columns are ignored
        "patient 17,train/corona/corona-0.png,a\n"
        "patient 17,validation/corona/corona-1.png,a\n"
        "patient 17,train/corona/corona-0.png,a\n"  # a repeated row with the same group is fine
        "patient 18,test/normal/normal-0.png,b\n",
    )
    config = small_config(tmp_path, groups=str(csv))
    dataset = load_dataset(root, config)
    (leak,) = find_group_leaks(dataset)
    assert leak == GroupLeak(
        "patient 17",
        ("train", "validation"),
        ("train/corona/corona-0.png", "validation/corona/corona-1.png"),
    )
    assert leak.describe() == "group 'patient 17' in train and validation (2 files)"
    assert any("group 'patient 17' in train and validation" in n for n in dataset.notes)
    assert find_group_leaks(root, config) == [leak]
    assert find_group_leaks(root, small_config(tmp_path)) == []  # no groups file, no check


def test_cli_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "data", FULL)
    csv = _write(
        tmp_path / "g.csv",
        "path,group\ntrain/normal/normal-2.png,p9\ntest/normal/normal-1.png,p9\n",
    )
    args = [str(root), "--cache-dir", str(tmp_path / "cache"), "--workers", "1"]
    assert main([*args, "--image-size", "32", "--groups", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "leakage check: group 'p9' in train and test (2 files: " in out
    assert "note: groups: 2 files in 1 groups" in out
    assert main([*args, "--image-size", "32", "--groups", str(csv), "--strict"]) == 1
    capsys.readouterr()
    assert main([*args, "--groups", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv: groups file does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,patient\na,b\n", r"needs the columns path,group, but column\(s\) \['path', 'group'\] are missing from its header \['file', 'patient'\]"),
        ("path\ntrain/corona/corona-0.png\n", r"column\(s\) \['group'\] are missing"),
        ("", r"column\(s\) \['path', 'group'\] are missing from its header \[\]"),
        ("path,group\ntrain/corona/nope.png,p1\n", r"line 2: path 'train/corona/nope.png' is not an image file of the data folder"),
        ("path,group\n/elsewhere/x.png,p1\n", r"line 2: path '/elsewhere/x.png' is not an image file"),
        ("path,group\n../data/train/corona/corona-0.png,p1\n", r"line 2: path '../data/train/corona/corona-0.png' is not an image file"),
        ("path,group\ntrain/corona/corona-0.png,p1\n\ntrain/corona/corona-0.png,p2\n", r"line 4: path 'train/corona/corona-0.png' is in group 'p1' \(line 2\) and in group 'p2'; a file belongs to one group"),
        ("path,group\ntrain/corona/corona-0.png,\n", r"line 2: path 'train/corona/corona-0.png' has an empty group"),
        ("path,group\ntrain/corona/corona-0.png\n", r"line 2: every row needs a path and a group"),
    ],
)  # fmt: skip
def test_bad_groups_files_are_named_errors(tmp_path: Path, text: str, message: str) -> None:
    root = make_tree(tmp_path / "data", FULL)
    csv = _write(tmp_path / "bad-groups.csv", text)
    with pytest.raises(DataError, match=message) as info:
        discover(root, small_config(tmp_path, groups=str(csv)))
    assert str(info.value).startswith(f"{csv}: ")


def test_groups_and_drop_leaked_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"DataConfig\.groups must be the path of a CSV file"):
        DataConfig(groups=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"DataConfig\.drop_leaked must be True or False"):
        DataConfig(drop_leaked="yes")  # type: ignore[arg-type]
