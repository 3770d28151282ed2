"""check_output_folder: each rule, and that checking creates nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covidxr_core.errors import ConfigError
from covidxr_core.outputs import check_output_folder


def test_a_new_folder_below_a_writable_one_passes_and_nothing_is_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out"
    assert check_output_folder(target) == target
    assert list(tmp_path.iterdir()) == []  # no folder made, no probe file left
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("kept")
    check_output_folder(existing, would_write=("model.keras",))
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


def test_each_refusal_names_the_flag_the_path_and_the_rule(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=rf"^--gradcam {a_file}: is an existing file"):
        check_output_folder(a_file, "--gradcam")
    with pytest.raises(ConfigError, match=rf"because {a_file} is a file, not a folder"):
        check_output_folder(a_file / "deeper" / "out")
    with pytest.raises(ConfigError, match="must name a folder, but got an empty path"):
        check_output_folder("")
    with pytest.raises(ConfigError, match=r"^--output s3://bucket/run: must be a local folder"):
        check_output_folder("s3://bucket/run")
    broken = tmp_path / "broken"
    os.symlink(tmp_path / "nowhere", broken)
    with pytest.raises(ConfigError, match="broken symbolic link"):
        check_output_folder(broken)


def test_files_of_an_earlier_run_need_overwrite(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"already holds metrics\.json .*pass --overwrite"):
        check_output_folder(tmp_path, would_write=("model.keras", "metrics.json"))
    check_output_folder(tmp_path, would_write=("model.keras", "metrics.json"), overwrite=True)
