"""Study-level bad input at the command line: one line, no traceback, before any trial.

Each case runs `tuning/run.py` as a user would (a real process, -X importtime to see what
it imported) and checks that it fails fast, names the flag and the value, imports no
TensorFlow/Keras/Ray and leaves nothing behind that blocks the same command later.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _figures import observe
from _imagefolders import image_bytes, make_folder

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tuning" / "run.py"
HEAVY = ("tensorflow", "keras", "ray", "jax", "torch")

# Run before tuning/run.py: a meta-path finder that makes `sklearn` unimportable, as on a
# machine where scikit-learn is not installed (our code is not touched).
_NO_SKLEARN = """
import runpy, sys
class _NoSklearn:
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoSklearn())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _cli(*args: str, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """tuning/run.py's result, its wall seconds and the heavy modules it imported."""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", *prefix, str(RUN), *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "COLUMNS": "400", **(env or {})},
    )  # fmt: skip
    wall = time.monotonic() - t0
    heavy = {
        line.rsplit("|", 1)[-1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {m for m in heavy if m.split(".")[0] in HEAVY}
    stderr = "\n".join(line for line in out.stderr.splitlines() if not line.startswith("import"))
    return out, " ".join(out.stdout.split()), stderr, wall, heavy


def _refused(seen: dict, out, msg: str, stderr: str, wall: float, heavy: set) -> None:
    seen.update(wall_s_cli=round(wall, 2), heavy_imports=len(heavy))
    seen["observed"] = f"exit {out.returncode} in {wall:.2f}s: {msg[:300]!r}"
    assert out.returncode == 2, out.stdout + stderr[-2000:]
    assert msg.startswith("error: "), msg
    assert "Traceback" not in out.stdout + stderr, stderr[-2000:]
    assert not heavy, sorted(heavy)


TINY = ("--trials", "1", "--epochs", "1", "--image-size", "64", "--space", "small")


def test_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    with observe(
        "study start",
        "--output pointing at an existing file",
        "exit 2 naming the file, before Ray or TensorFlow; the file and its folder untouched",
    ) as seen:
        out, msg, err, wall, heavy = _cli(*TINY, "--output", str(target), "--name", "r")
        _refused(seen, out, msg, err, wall, heavy)
        assert f"--output {target}: {target} is a file, not a folder" in msg, msg
        assert target.read_text() == "keep me"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]
    deeper = target / "runs"
    out, msg, err, wall, heavy = _cli(*TINY, "--output", str(deeper), "--name", "r")
    assert out.returncode == 2 and f"is under {target}, which is a file" in msg, msg


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores mode bits: use /sys)."""
    if os.geteuid() == 0:
        return Path("/sys/covidxr-runs")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder / "runs"


def test_output_folder_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    output = _unwritable(tmp_path)
    with observe(
        "study start",
        "--output in a folder that cannot be written",
        "exit 2 naming the folder and the OS's reason, before Ray; no run folder",
    ) as seen:
        out, msg, err, wall, heavy = _cli(*TINY, "--output", str(output), "--name", "r")
        _refused(seen, out, msg, err, wall, heavy)
        assert f"--output {output}: cannot write into" in msg, msg
        assert not output.exists()


def test_unreachable_cloud_output_is_refused_before_any_trial(tmp_path: Path) -> None:
    # A real S3 client against a port nobody listens on: the request fails, as it does for
    # a bucket the network cannot reach.
    uri = "s3://covidxr-nowhere/runs?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1"
    with observe(
        "study start",
        "--output s3://... that cannot be reached",
        "exit 2 naming the URI, after one probe write and before Ray; nothing staged",
    ) as seen:
        out, msg, err, wall, heavy = _cli(
            *TINY, "--output", uri, "--name", "r",
            env={"COVIDXR_STAGING": str(tmp_path / "staging"), "COVIDXR_STORAGE_PROBE_S": "20"},
        )  # fmt: skip
        _refused(seen, out, msg, err, wall, heavy)
        assert f"--output {uri}: cannot write to s3://covidxr-nowhere/runs/r" in msg, msg
        assert not (tmp_path / "staging").exists()
        assert wall < 30, wall


def test_bayesian_keras_tuner_without_scikit_learn_is_refused() -> None:
    import importlib.util

    installed = importlib.util.find_spec("sklearn") is not None
    prefix = ("-c", _NO_SKLEARN) if installed else ()
    with observe(
        "study start",
        "--engine keras-tuner --tuner bayesian without scikit-learn",
        "exit 2 saying pip install scikit-learn, before any import of Keras",
    ) as seen:
        out, msg, err, wall, heavy = _cli(
            *TINY, "--engine", "keras-tuner", "--tuner", "bayesian", prefix=prefix
        )
        _refused(seen, out, msg, err, wall, heavy)
        seen["sklearn_blocked_by_finder"] = installed
        assert "--tuner: tuner bayesian needs scikit-learn" in msg, msg
        assert "pip install scikit-learn" in msg, msg


def _three_classes(root: Path) -> Path:
    n = 0
    for split, count in {"train": 3, "validation": 2, "test": 2}.items():
        for cls in ("negative", "other", "positive"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                n += 1
                (root / split / cls / f"{cls}-{i}.png").write_bytes(image_bytes(n))
    return root


def test_positive_class_is_checked_against_the_class_folders(tmp_path: Path) -> None:
    data = _three_classes(tmp_path / "data")
    with observe(
        "study start",
        "--positive-class naming no class folder; three classes without --positive-class",
        "exit 2 listing the class folders, before any decode, Ray or TensorFlow",
    ) as seen:
        out, msg, err, wall, heavy = _cli(
            *TINY, "--data", str(data), "--positive-class", "covid", "--output", str(tmp_path)
        )
        _refused(seen, out, msg, err, wall, heavy)
        assert (
            "--positive-class must be one of ['negative', 'other', 'positive'], but got 'covid'"
            in msg
        )
        assert str(data) in msg
        out, msg, *_ = _cli(*TINY, "--data", str(data), "--output", str(tmp_path))
        assert out.returncode == 2 and "--positive-class must be set" in msg, msg
        seen["observed"] += f"; unset: {msg[:160]!r}"


def test_positive_class_reaches_the_data(tmp_path: Path) -> None:
    from tuning import StudySpec
    from tuning.spec import build_parser, given_flags, spec_from_args
    from tuning.study import load_data

    data = _three_classes(tmp_path / "data")
    argv = ["--data", str(data), "--positive-class", "positive", "--image-size", "64",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    spec = spec_from_args(build_parser().parse_args(argv), given_flags(argv))
    assert spec.positive_class == "positive"
    loaded = load_data(spec)
    assert loaded.positive_class == "positive"
    assert loaded.class_names[loaded.positive_index] == "positive"
    saved = tmp_path / "study.json"
    saved.write_text(spec.to_json())
    assert StudySpec.from_json(saved).positive_class == "positive"  # kept for --resume


def _saved_study(tmp_path: Path, data: Path) -> Path:
    """A run folder as a started study leaves it: study.json and data_files.json."""
    from tuning.runfolder import data_files
    from tuning.spec import StudySpec
    from tuning.study import _write_study

    spec = StudySpec(
        trials=2, epochs=1, image_size=64, space="small", data=str(data),
        output=str(tmp_path / "runs"), name="saved",
    )  # fmt: skip
    run_dir = tmp_path / "runs" / "saved"
    run_dir.mkdir(parents=True)
    _write_study(run_dir, spec, data_files(str(data)))
    return run_dir


def test_resume_with_changed_study_flags_is_refused_naming_each(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data")
    other = make_folder(tmp_path / "other", seed=1)
    run_dir = _saved_study(tmp_path, data)
    before = (run_dir / "study.json").read_text()
    with observe(
        "study start",
        "--resume with fewer --trials, and changed --data, --image-size and --space",
        "exit 2 naming each flag with the given and the saved value; study.json unchanged",
    ) as seen:
        out, msg, err, wall, heavy = _cli(
            "--resume", "--name", "saved", "--output", str(tmp_path / "runs"),
            "--trials", "1", "--data", str(other), "--image-size", "96", "--space", "default",
        )  # fmt: skip
        _refused(seen, out, msg, err, wall, heavy)
        for part in ("--trials 1 (saved: 2; a study grows, never shrinks)",
                     f"--data {other} (saved: {data})",
                     "--image-size 96 (saved: 64)", "--space default (saved: small)"):  # fmt: skip
            assert part in msg, (part, msg)
        assert "a resumed study keeps the settings saved in" in msg, msg
        assert (run_dir / "study.json").read_text() == before
    # A flag given with its default value is still a change from what was saved.
    out, msg, *_ = _cli("--resume", "--name", "saved", "--output", str(tmp_path / "runs"),
                        "--image-size", "128")  # fmt: skip
    assert out.returncode == 2 and "--image-size 128 (saved: 64)" in msg, msg


def test_resume_takes_the_same_flags_and_where_it_runs() -> None:
    from tuning.spec import StudySpec, resume_conflicts

    saved = StudySpec(trials=2, data="runs/../data", image_size=64)
    same = StudySpec(trials=2, data="data", image_size=64, address="auto", max_concurrent=2)
    given = {"trials", "data", "image_size", "address", "max_concurrent"}
    assert resume_conflicts(saved, same, given) == []
    # Not given (the CLI's default): not a change, whatever the value.
    assert resume_conflicts(saved, StudySpec(trials=9), set()) == []
    # More trials extend the study; fewer are refused.
    assert resume_conflicts(saved, StudySpec(trials=9), {"trials"}) == []
    assert resume_conflicts(saved, StudySpec(trials=1), {"trials"}) == [
        "--trials 1 (saved: 2; a study grows, never shrinks)"
    ]


def test_resume_through_the_api_refuses_before_any_decode(tmp_path: Path) -> None:
    from tuning import StudySpec, run_study
    from tuning.errors import StudyError

    data = make_folder(tmp_path / "data")
    _saved_study(tmp_path, data)
    spec = StudySpec(
        trials=1, image_size=64, space="small", data=str(data), output=str(tmp_path / "runs"),
        name="saved", cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    with pytest.raises(StudyError, match=r"--trials 1 \(saved: 2; a study grows"):
        run_study(spec, resume=True, given={"trials"})
    assert not (tmp_path / "cache").exists()


def test_changed_data_folder_is_refused_fast(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data")
    _saved_study(tmp_path, data)
    for i in range(5):
        (data / "test" / "normal" / f"late-{i}.png").write_bytes(image_bytes(50_000 + i))
    (data / "train" / "corona" / "corona-001.png").unlink()
    out, msg, err, wall, heavy = _cli("--resume", "--name", "saved", "--output",
                                      str(tmp_path / "runs"))  # fmt: skip
    assert out.returncode == 2, out.stdout + err[-2000:]
    assert (
        "5 added (test/normal/late-0.png, test/normal/late-1.png, test/normal/late-2.png, ...)"
        in msg
    )
    assert "1 removed (train/corona/corona-001.png)" in msg, msg
    assert not heavy, sorted(heavy)
    assert wall < 30, wall  # listed, not decoded


def test_smoke_test_keeps_explicit_flags(tmp_path: Path) -> None:
    from tuning.spec import SMOKE_TEST, build_parser, given_flags, spec_from_args

    argv = ["--smoke-test", "--image-size", "96", "--epochs", "2", "--space", "default"]
    spec = spec_from_args(build_parser().parse_args(argv), given_flags(argv))
    assert (spec.image_size, spec.epochs, spec.space) == (96, 2, "default")
    assert spec.trials == SMOKE_TEST["trials"] and spec.retrain_seeds == SMOKE_TEST["retrain_seeds"]
    with observe(
        "study start",
        "--smoke-test with explicit --image-size, --epochs and --space",
        "the explicit flags win over the preset, and the CLI says which it kept",
    ) as seen:
        # An unwritable --output stops the command right after the note, before any trial.
        out, msg, *_ = _cli(*argv, "--output", str(_unwritable(tmp_path)))
        seen["observed"] = f"spec image_size={spec.image_size} epochs={spec.epochs} " \
            f"space={spec.space}; printed {msg[:160]!r}"  # fmt: skip
        assert out.returncode == 2, msg
        assert "smoke test: keeping --epochs 2, --image-size 96, --space default as given" in msg


def test_extend_study_refuses_fewer_trials_before_any_decode(tmp_path: Path) -> None:
    from tuning import extend_study
    from tuning.errors import StudyError

    data = make_folder(tmp_path / "data")
    run_dir = _saved_study(tmp_path, data)
    before = (run_dir / "study.json").read_text()
    with pytest.raises(StudyError, match=r"--trials 1 \(saved: 2; a study grows"):
        extend_study("saved", trials=1, output=str(tmp_path / "runs"))
    assert (run_dir / "study.json").read_text() == before
