"""``python -m covidxr_core.data`` as a user runs it: a subprocess, exit codes, messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .test_data_discover import FULL, make_tree


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "covidxr_core.data",
            *args,
            "--cache-dir",
            str(cache),
            "--workers",
            "1",
            "--image-size",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_summary_of_a_good_folder_then_a_cache_hit(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", {"train": FULL["train"], "val": FULL["validation"]})
    (root / "train" / "normal" / "notes.txt").write_text("ignored")
    first = run_cli(str(root), cache=tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    for expected in (
        "Images per split and class",
        "corona (+)",
        "originals: width 48/48/48 px, height 40/40/40 px (min/median/max); formats PNG 16; modes L 16",
        "note: test split missing: carved 20% of train",
        "note: validation split read from folder 'val'",
        "ignored 1 hidden or non-image files: train/normal/notes.txt",
        "leakage check: no file appears in two splits",
        "(miss (decoded in",
    ):
        assert expected in out, out
    second = run_cli(str(root), cache=tmp_path / "cache")
    assert second.returncode == 0 and "(hit)" in second.stdout


def test_duplicates_are_listed_and_fail_under_strict(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    shutil.copy(root / "train" / "corona" / "corona-1.png", root / "test" / "normal" / "leak.png")
    lenient = run_cli(str(root), cache=tmp_path / "cache")
    assert lenient.returncode == 0
    assert (
        "exact   0  test: test/normal/leak.png  <->  train: train/corona/corona-1.png"
        in lenient.stdout
    )
    strict = run_cli(str(root), "--strict", cache=tmp_path / "cache")
    assert strict.returncode == 1


def test_json_output(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    (root / "train" / "corona" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    result = run_cli(str(root), "--json", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["counts"]["train"] == {"corona": 6, "normal": 6}
    assert info["skipped"][0]["file"] == "train/corona/broken.jpg"
    assert info["cache"]["hit"] is False and info["duplicates"] == []
    assert info["originals"]["formats"] == {"PNG": 20}


def _one_red_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_bad_folders_and_options_exit_2_with_one_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _one_red_line(
        run_cli(str(tmp_path / "nowhere"), cache=cache), "nowhere: data folder does not exist"
    )
    single = make_tree(tmp_path / "single", {"train": {"corona": 3}})
    _one_red_line(run_cli(str(single), cache=cache), "two or more class folders", "['corona']")
    root = make_tree(tmp_path / "data", FULL)
    (root / "validation" / "normal" / "bad.png").write_bytes(b"not a png")
    _one_red_line(
        run_cli(str(root), "--on-bad-image", "error", cache=cache),
        "validation/normal/bad.png: not an image Pillow can identify (got '9 bytes')",
    )
    _one_red_line(run_cli(str(root), "--max-distance", "999", cache=cache), "max_distance")
    small = run_cli(str(root), cache=cache)
    assert small.returncode == 0  # the bad file is skipped by default
    size = subprocess.run(
        [
            sys.executable,
            "-m",
            "covidxr_core.data",
            str(root),
            "--image-size",
            "2",
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_red_line(size, "`8 <= image_size <= 4096` must hold, but got 2")


def test_without_dir_it_summarises_the_demo_data(tmp_path: Path) -> None:
    # The session cache of tests/conftest.py (inherited through the environment) already
    # holds the demo folder when test_data_synthetic ran first; otherwise it is generated.
    result = subprocess.run(
        [sys.executable, "-m", "covidxr_core.data", "--json", "--image-size", "16"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["synthetic"] is True and info["source"] == "synthetic:demo-v1"
    assert info["counts"]["test"] == {"corona": 30, "normal": 30}


def test_importing_the_package_loads_no_heavy_framework() -> None:
    code = (
        "import sys, covidxr_core.data, covidxr_core.data.__main__; "
        "print(sorted(m for m in ('ray', 'tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
