"""`python -m covidxr_core.train` and `python -m covidxr_core.predict` print no native
TensorFlow start-up lines (oneDNN, cudart, cuInit), which TF_CPP_MIN_LOG_LEVEL does not stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _figures import observe

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NATIVE_NOISE = ("oneDNN custom operations", "cudart_stub", "cuInit", "absl::InitializeLog")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**env, "COLUMNS": "200"},
    )  # fmt: skip


def test_train_and_predict_clis_print_no_native_tf_lines(tmp_path: Path, cxr_fixture: Path) -> None:
    with observe(
        "study start",
        "python -m covidxr_core.train (1 epoch, 64 px) then covidxr_core.predict on one image, "
        "TF_CPP_MIN_LOG_LEVEL unset",
        "exit 0; none of TensorFlow's native start-up lines on stdout or stderr",
    ) as seen:
        out = tmp_path / "out"
        train = _run("covidxr_core.train", "--preset", "smoke", "--epochs", "1",
                     "--image-size", "64", "--output", str(out),
                     "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
        image = next(p for p in sorted(cxr_fixture.rglob("*")) if p.is_file())
        predict = _run("covidxr_core.predict", "--model", str(out / "model.keras"), str(image))
        noise = {
            name: [
                ln
                for ln in (p.stdout + p.stderr).splitlines()
                if any(n in ln for n in NATIVE_NOISE)
            ]
            for name, p in (("train", train), ("predict", predict))
        }
        seen.update(native_lines=sum(len(v) for v in noise.values()))
        seen["observed"] = (
            f"train exit {train.returncode}, predict exit {predict.returncode}; native lines: "
            + ", ".join(f"{k} {len(v)}" for k, v in noise.items())
        )
        assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
        assert predict.returncode == 0, predict.stdout[-2000:] + predict.stderr[-2000:]
        assert not any(noise.values()), noise
