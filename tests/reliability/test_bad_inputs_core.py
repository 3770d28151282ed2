"""Bad input to the core CLIs (train, predict, data) and to a YAML space, tried as a user would.

Issue 14's hostile-input campaign, items 2, 3, 5, 7 and 8: each bad input gets one line
(exit 2) naming the flag or file, the rule and the value, before any work that it would
waste; nothing already there is lost. Real CLIs on real radiographs (the shared fixture
set), real training; no mocks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _figures import observe

REPO = Path(__file__).resolve().parents[2]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _run(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    return out, time.monotonic() - t0


@pytest.fixture
def unwritable(tmp_path: Path) -> Path:
    """A folder in which no file can be created, for this user (root ignores mode bits)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    for candidate in (Path("/sys"), Path("/proc")):
        try:
            fd, name = tempfile.mkstemp(dir=candidate)
        except OSError:
            yield candidate
            return
        os.close(fd)
        os.unlink(name)
    pytest.skip("no folder that root cannot write into on this machine")


def _folder(root: Path, classes: dict[str, list[Path]]) -> Path:
    """DIR/train/<class>/ with copies of real fixture radiographs (validation/test carved)."""
    for name, files in classes.items():
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for source in files:
            shutil.copy(source, folder / source.name)
    return root


@pytest.fixture
def fixture_files(cxr_fixture: Path) -> tuple[list[Path], list[Path]]:
    corona = sorted((cxr_fixture / "validation" / "corona").iterdir())
    normal = sorted((cxr_fixture / "validation" / "normal").iterdir())
    return corona, normal


@pytest.fixture
def three_classes(tmp_path: Path, fixture_files) -> Path:
    corona, normal = fixture_files
    return _folder(
        tmp_path / "three",
        {"covid": corona[:6], "normal": normal[:6], "pneumonia": corona[6:] + normal[6:8]},
    )


@pytest.fixture
def positive_negative(tmp_path: Path, fixture_files) -> Path:
    corona, normal = fixture_files
    return _folder(tmp_path / "posneg", {"positive": corona, "negative": normal})


# ----------------------------------------------------------------------------- train --output


def test_train_output_an_existing_file_is_refused_before_training(tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("a user's file\n")
    with observe(
        "bad input (core)",
        "python -m covidxr_core.train --output FILE, FILE an existing file",
        "exit 2 before TensorFlow is imported or any data decoded, one line naming the path "
        "and the rule; the file untouched",
    ) as seen:
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "covidxr_core.train", "--output",
             str(target), "--epochs", "1", "--cache-dir", str(tmp_path / "cache")],
            capture_output=True, text=True, timeout=300, cwd=REPO,
            env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip
        wall = time.monotonic() - t0
        heavy = sorted(
            {
                line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in out.stderr.splitlines()
                if line.startswith("import time:")
            }
            & {"tensorflow", "keras", "jax", "torch"}
        )
        msg = _one_line(out.stdout)
        seen.update(wall_s_cli=round(wall, 2), heavy_imports=len(heavy))
        seen["observed"] = f"exit {out.returncode} in {wall:.1f}s, heavy imports {heavy}: {msg!r}"
        assert not heavy, heavy
        assert out.returncode == 2, out.stdout + out.stderr[-3000:]
        assert f"--output {target}: is an existing file" in msg and "must be a folder" in msg
        assert "Traceback" not in out.stdout + out.stderr
        assert "epoch" not in msg and "data" not in msg  # nothing decoded, nothing trained
        assert not (tmp_path / "cache").exists()
        assert target.read_text() == "a user's file\n"


def test_train_output_cannot_be_written_or_created(
    tmp_path: Path, unwritable: Path, capsys
) -> None:
    from covidxr_core.train import main

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {
        str(unwritable / "out"): "cannot be created, because",
        str(a_file / "out"): f"cannot be created, because {a_file} is a file",
    }
    with observe(
        "bad input (core)",
        "train --output in a folder that cannot be written, or below a file",
        "exit 2 before training, naming the path and why it cannot be written",
    ) as seen:
        seen["observed"] = ""
        for output, rule in cases.items():
            code = main(["--output", output, "--cache-dir", str(tmp_path / "cache")])
            msg = _one_line(capsys.readouterr().out)
            seen["observed"] += f"exit {code}: {msg!r}. "
            assert code == 2 and rule in msg and output in msg, msg
            assert "epoch" not in msg
        assert not (tmp_path / "cache").exists()


def test_train_keeps_an_earlier_model_unless_overwrite_and_takes_positive_class(
    tmp_path: Path, three_classes: Path, capsys
) -> None:
    from covidxr_core.train import main

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    earlier = out_dir / "model.keras"
    earlier.write_bytes(b"an earlier model")
    common = [
        "--data", str(three_classes), "--preset", "smoke", "--epochs", "1",
        "--batch-size", "8", "--cache-dir", str(tmp_path / "cache"), "--output", str(out_dir),
    ]  # fmt: skip
    with observe(
        "bad input (core)",
        "train --output DIR where DIR already holds model.keras",
        "exit 2 before training, naming the file and --overwrite; the earlier model kept; "
        "with --overwrite (and --positive-class for 3 classes) it trains and replaces it",
    ) as seen:
        code = main(common)
        refused = _one_line(capsys.readouterr().out)
        assert code == 2, refused
        assert f"--output {out_dir}: already holds model.keras" in refused, refused
        assert "--overwrite" in refused and "epoch" not in refused
        assert earlier.read_bytes() == b"an earlier model"

        code = main([*common, "--overwrite"])  # 3 classes: no positive class given
        no_positive = _one_line(capsys.readouterr().out)
        assert code == 2 and "--positive-class" in no_positive, no_positive
        assert "['covid', 'normal', 'pneumonia']" in no_positive, no_positive
        assert earlier.read_bytes() == b"an earlier model"

        t0 = time.monotonic()
        code = main([*common, "--overwrite", "--positive-class", "pneumonia"])
        trained = capsys.readouterr().out
        wall = time.monotonic() - t0
        seen.update(train_s=round(wall, 1))
        seen["observed"] = (
            f"refused: {refused!r}; without --positive-class: {no_positive!r}; with "
            f"--overwrite --positive-class pneumonia: exit {code} after {wall:.0f}s"
        )
        assert code == 0, trained
        assert "positive class 'pneumonia'" in trained
        assert earlier.read_bytes() != b"an earlier model"
        metrics = json.loads((out_dir / "metrics.json").read_text())
        assert metrics["config"]["model"]["positive_class"] == "pneumonia"
        assert metrics["config"]["model"]["class_names"] == ["covid", "normal", "pneumonia"]


# ----------------------------------------------------------------------------- predict --gradcam


def test_predict_gradcam_on_a_file_is_refused_before_the_model_loads(
    tmp_path: Path, fixture_files
) -> None:
    corona, _ = fixture_files
    target = tmp_path / "heatmap.png"
    target.write_bytes(b"not to be lost")
    # Not a model at all: had the model been loaded first, the error would be about it.
    model = tmp_path / "model.keras"
    model.write_bytes(b"junk")
    with observe(
        "bad input (core)",
        "python -m covidxr_core.predict --gradcam FILE, FILE an existing file",
        "exit 2, one line naming --gradcam and the path, before the model is loaded; no "
        "traceback; the file untouched",
    ) as seen:
        out, wall = _run(
            "covidxr_core.predict", "--model", str(model), "--gradcam", str(target),
            str(corona[0]),
        )  # fmt: skip
        msg = _one_line(out.stderr)
        seen.update(wall_s_cli=round(wall, 2))
        seen["observed"] = f"exit {out.returncode} in {wall:.1f}s: {msg!r}"
        assert out.returncode == 2, out.stdout + out.stderr[-3000:]
        assert f"--gradcam {target}: is an existing file" in msg, msg
        assert "Traceback" not in out.stderr and "model" not in msg.split("folder")[0][:40]
        assert target.read_bytes() == b"not to be lost"


def test_predict_gradcam_in_an_unwritable_folder_is_refused(
    tmp_path: Path, unwritable: Path, capsys
) -> None:
    from covidxr_core.predict import main

    model = tmp_path / "model.keras"
    model.write_bytes(b"junk")
    with observe(
        "bad input (core)",
        "predict --gradcam DIR where DIR cannot be created",
        "exit 2 naming --gradcam, the path and the reason, before the model is loaded",
    ) as seen:
        code = main(["--model", str(model), "--gradcam", str(unwritable / "maps"), "x.png"])
        msg = _one_line(capsys.readouterr().err)
        seen["observed"] = f"exit {code}: {msg!r}"
        assert code == 2 and f"--gradcam {unwritable / 'maps'}: cannot be created" in msg, msg


# ----------------------------------------------------------------------------- --positive-class


@pytest.mark.parametrize(
    ("layout", "positive", "classes"),
    [
        ("three_classes", "covid", "['covid', 'normal', 'pneumonia']"),
        ("positive_negative", "positive", "['negative', 'positive']"),
    ],
)
def test_data_cli_asks_for_and_takes_positive_class(
    request, tmp_path: Path, capsys, layout: str, positive: str, classes: str
) -> None:
    from covidxr_core.data.__main__ import main

    root: Path = request.getfixturevalue(layout)
    common = [str(root), "--image-size", "64", "--cache-dir", str(tmp_path / "cache"), "--json"]
    with observe(
        "bad input (core)",
        f"python -m covidxr_core.data on classes {classes} without --positive-class",
        "exit 2 with one line listing the classes and telling the user to pass "
        "--positive-class; with it the summary names that class",
    ) as seen:
        code = main(common)
        msg = _one_line(capsys.readouterr().err)
        assert code == 2, msg
        assert "--positive-class NAME" in msg and classes in msg, msg
        code = main([*common, "--positive-class", positive])
        captured = capsys.readouterr()
        seen["observed"] = (
            f"without: exit 2, {msg!r}; with --positive-class {positive}: exit {code}"
        )
        assert code == 0, captured.err
        info = json.loads(captured.out)
        assert info["positive_class"] == positive and str(info["class_names"]) == classes
        code = main([*common, "--positive-class", "nope"])
        assert code == 2 and "'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- YAML spaces


_BAD_SPACES = {
    "dropout-range": (
        "params:\n  dropout: {type: float, low: 0.5, high: 1.5}\n",
        "parameter `dropout`: `0 <= dropout < 1` must hold, but its high is 1.5",
    ),
    "duplicate-key": (
        "params:\n  dropout: {type: float, low: 0.1, high: 0.3}\n"
        "  dropout: {type: float, low: 0.4, high: 0.6}\n",
        "duplicate key `dropout` at line 3 (first at line 2)",
    ),
    "typo-key": (
        "params:\n  dropout: {type: float, low: 0.1, hihg: 0.3}\n",
        "unknown key `hihg` (did you mean `high`?) in parameter `dropout`",
    ),
    "unknown-augmentation": (
        "params:\n  rotate_deg: {type: float, low: 0, high: 20}\n",
        "unknown parameter `rotate_deg` (did you mean `rotation_deg`?)",
    ),
}


def test_a_space_with_an_illegal_range_stops_the_study_before_any_trial(tmp_path: Path) -> None:
    text, expected = _BAD_SPACES["dropout-range"]
    space = tmp_path / "mine.yaml"
    space.write_text(text)
    with observe(
        "bad input (core)",
        "tuning/run.py --space FILE.yaml whose dropout range is [0.5, 1.5]",
        "exit 2 before any trial, one line naming the file, the parameter, the rule and "
        "the value; no run folder",
    ) as seen:
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(REPO / "tuning" / "run.py"), "--space", str(space),
             "--trials", "1", "--output", str(tmp_path / "runs"), "--name", "bad"],
            capture_output=True, text=True, timeout=300, cwd=REPO,
            env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip
        wall = time.monotonic() - t0
        msg = _one_line(out.stdout + " " + out.stderr)
        seen.update(wall_s_cli=round(wall, 2))
        seen["observed"] = f"exit {out.returncode} in {wall:.1f}s: {msg[:300]!r}"
        assert out.returncode == 2, out.stdout + out.stderr[-3000:]
        assert str(space) in msg and expected in msg, msg
        assert "Traceback" not in out.stdout + out.stderr
        assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.parametrize("case", ["duplicate-key", "typo-key", "unknown-augmentation"])
def test_a_bad_yaml_space_names_the_key(tmp_path: Path, case: str) -> None:
    """The loader `--space FILE.yaml` goes through (the CLI prints its message as is)."""
    from covidxr_core.errors import ConfigError
    from search_spaces import get_space

    text, expected = _BAD_SPACES[case]
    space = tmp_path / "mine.yaml"
    space.write_text(text)
    with observe(
        "bad input (core)",
        "--space FILE.yaml with "
        + {"duplicate-key": "a key given twice", "typo-key": "a misspelt key (hihg)"}.get(
            case, "an unknown augmentation name (rotate_deg)"
        ),
        "refused when the space is loaded, one line naming the file, the key or parameter "
        "and its line or the closest valid name",
    ) as seen:
        with pytest.raises(ConfigError) as info:
            get_space(str(space))
        msg = str(info.value)
        seen["observed"] = f"ConfigError: {msg[:300]!r}"
        assert msg.startswith(str(space)) and expected in msg and "\n" not in msg, msg
