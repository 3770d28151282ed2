"""Bad settings are refused before any trial, fast, naming the rule or what the cluster has.

Real processes (`tuning/run.py` as a user runs it) and a real local Ray; no mocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _figures import observe

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "tuning" / "run.py"
HEAVY = ("tensorflow", "keras", "ray", "jax", "torch")


def _cli(*args: str, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float, set]:
    """Runs tuning/run.py with -X importtime: the result, wall seconds, heavy modules imported."""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", str(RUN), *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    wall = time.monotonic() - t0
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = {m for m in imported if m.split(".")[0] in HEAVY}
    return out, wall, heavy


@pytest.mark.parametrize(
    ("flags", "rule"),
    [
        (("--trials", "0"), "trials must be >= 1, but got 0"),
        (("--trial-timeout", "-1"), "trial_timeout_s must be > 0, but got -1.0"),
        (("--max-failures", "-1"), "max_failures must be >= 0, but got -1"),
        (("--cpus-per-trial", "nan"), "cpus_per_trial must be a finite number"),
        (("--image-size", "32"), "image_size must be >= 64 for the built-in model"),
    ],
)
def test_bad_flag_fails_in_well_under_a_second(flags: tuple[str, ...], rule: str) -> None:
    with observe(
        "study start",
        f"tuning/run.py {' '.join(flags)}",
        "exit 2 with the rule, before TensorFlow, Keras or Ray is imported (under a second "
        "of our own time; interpreter start included in the figure)",
    ) as seen:
        out, wall, heavy = _cli(*flags)
        msg = out.stdout.strip().replace("\n", " ")
        seen.update(wall_s_cli=round(wall, 2), heavy_imports=len(heavy))
        seen["observed"] = f"exit {out.returncode} in {wall:.2f}s, {msg!r}; heavy imports: " + (
            ", ".join(sorted(heavy)[:5]) or "none"
        )
        assert out.returncode == 2, out.stdout + out.stderr[-2000:]
        assert rule in " ".join(msg.split()), msg
        assert not heavy, sorted(heavy)
        assert wall < 10, wall  # the machine is shared; the figure above is what counts


def test_resume_of_a_missing_run_fails_before_any_data(tmp_path: Path) -> None:
    with observe(
        "study start",
        "--resume --name of a run that does not exist",
        "exit 2 naming the folder, before the backend import and before any data is decoded",
    ) as seen:
        out, wall, heavy = _cli("--resume", "--name", "gone", "--output", str(tmp_path))
        msg = " ".join(out.stdout.split())
        seen.update(wall_s_cli=round(wall, 2), heavy_imports=len(heavy))
        seen["observed"] = f"exit {out.returncode} in {wall:.2f}s: {msg!r}"
        assert out.returncode == 2, out.stdout + out.stderr[-2000:]
        assert "does not exist" in msg and "gone" in msg, msg
        assert not heavy, sorted(heavy)
        assert not (tmp_path / "gone").exists()


def test_resume_missing_run_through_the_api_decodes_nothing(tmp_path: Path, tiny_spec) -> None:
    from tuning import run_study
    from tuning.errors import StudyError

    with pytest.raises(StudyError, match="does not exist"):
        run_study(tiny_spec("gone", cache_dir=str(tmp_path / "cache")), resume=True)
    assert not (tmp_path / "cache").exists()  # no image was decoded, no cache entry made


@pytest.mark.slow
def test_more_cpus_than_any_node_is_refused_before_any_trial(tmp_path: Path) -> None:
    with observe(
        "study start",
        f"--cpus-per-trial 64 on a machine with {os.cpu_count()} CPUs",
        "exit 2 before any trial, naming what the largest node has; no run folder",
    ) as seen:
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(RUN), "--cpus-per-trial", "64", "--trials", "1", "--epochs",
             "1", "--image-size", "64", "--output", str(tmp_path), "--name", "big"],
            capture_output=True, text=True, timeout=600, cwd=REPO,
            env={**os.environ, "COLUMNS": "300"},
        )  # fmt: skip
        wall = time.monotonic() - t0
        msg = " ".join(out.stdout.split())
        seen.update(wall_s_cli=round(wall, 2))
        seen["observed"] = f"exit {out.returncode} after {wall:.0f}s: {msg[-300:]!r}"
        assert out.returncode == 2, out.stdout + out.stderr[-3000:]
        assert "cpus_per_trial 64 is more than any node has: the largest node has" in msg, msg
        assert not (tmp_path / "big").exists()


def test_more_gpus_than_any_node_is_refused(local_ray) -> None:
    import ray

    from tuning.engines.ray_tune import check_fits
    from tuning.errors import StudyError

    gpus = max((n["Resources"].get("GPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
    with observe(
        "study start",
        f"--gpus-per-trial {gpus + 2:g} on a cluster whose largest node has {gpus:g} GPUs",
        "StudyError naming the largest node's GPUs, checked against ray.nodes()",
    ) as seen:
        with pytest.raises(StudyError) as info:
            check_fits(1.0, gpus + 2)
        seen["observed"] = f"StudyError: {info.value}"
        assert f"the largest node has {gpus:g} GPUs" in str(info.value)
        check_fits(1.0, 0.0)  # what fits passes


def _leaky_copy(src: Path, dest: Path) -> Path:
    """A data folder from the fixture's radiographs: half of each class is train (and,
    copied, the validation split), the other half is test."""
    images = next(p for p in (src / "train", src / "validation") if p.is_dir())
    for cls in sorted(p for p in images.iterdir() if p.is_dir()):
        files = sorted(f for f in cls.iterdir() if f.is_file())
        half = len(files) // 2
        for split, chosen in (("train", files[:half]), ("validation", files[:half]),
                              ("test", files[half:])):  # fmt: skip
            (dest / split / cls.name).mkdir(parents=True, exist_ok=True)
            for f in chosen:
                shutil.copy2(f, dest / split / cls.name / f.name)
    return dest


class _Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def __getattr__(self, name: str):
        return lambda *a, **k: None

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def test_leakage_is_loud_and_strict_leakage_stops(tmp_path: Path, cxr_fixture: Path) -> None:
    from tuning import StudySpec
    from tuning.errors import StudyError
    from tuning.study import check_leakage, load_data

    data_dir = _leaky_copy(cxr_fixture, tmp_path / "leaky")
    common = dict(data=str(data_dir), cache_dir=str(tmp_path / "cache"), image_size=64)
    with observe(
        "study start",
        "validation is a copy of train",
        "the study warns at the start with the number of pairs and the first few; "
        "--strict-leakage stops it with StudyError naming the pairs",
    ) as seen:
        spec = StudySpec(**common)  # type: ignore[arg-type]
        data = load_data(spec)
        recorder = _Recorder()
        pairs = check_leakage(spec, data, recorder)  # type: ignore[arg-type]
        assert pairs and len(recorder.warnings) == 1, recorder.warnings
        assert f"LEAKAGE: {len(pairs)} image pair(s)" in recorder.warnings[0]
        with pytest.raises(StudyError) as info:
            check_leakage(StudySpec(**common, strict_leakage=True), data, recorder)  # type: ignore[arg-type]
        seen.update(pairs=len(pairs))
        seen["observed"] = (
            f"warning {recorder.warnings[0][:160]!r}; strict: {str(info.value)[:160]!r}"
        )
        assert f"{len(pairs)} image pair(s) are duplicated across splits" in str(info.value)
        assert pairs[0] in str(info.value)


@pytest.mark.slow
def test_strict_leakage_cli_stops_before_any_trial(tmp_path: Path, cxr_fixture: Path) -> None:
    data_dir = _leaky_copy(cxr_fixture, tmp_path / "leaky")
    out = subprocess.run(
        [sys.executable, str(RUN), "--data", str(data_dir), "--strict-leakage", "--trials", "1",
         "--image-size", "64", "--output", str(tmp_path), "--name", "leak"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "COLUMNS": "300", "COVIDXR_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    msg = " ".join(out.stdout.split())
    assert out.returncode == 2, out.stdout + out.stderr[-3000:]
    assert "--strict-leakage:" in msg and "duplicated across splits" in msg, msg
    assert not (tmp_path / "leak").exists()
