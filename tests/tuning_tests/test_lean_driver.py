"""A study's driver builds configs, loads data and drives the search without Keras: the
trials train in Ray's workers, and the driver starts Keras only to export and explain a
retrained winner. Keras' start-up (TensorFlow's import) took 8.3 s of the driver's time
before its first trial (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

from _fresh_python import run_snippet
from tuning_tests._util import REPO, leaderboard_rows

FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")

DRIVER = """
import json, runpy, sys
sys.argv = ["tuning/run.py", *ARGS]
try:
    runpy.run_path("tuning/run.py", run_name="__main__")
    code = 0
except SystemExit as exc:
    code = exc.code
print("DRIVER", json.dumps({"rc": code, "loaded": [m for m in FRAMEWORKS if m in sys.modules]}))
"""


def test_configs_import_no_framework() -> None:
    script = (
        "import json, sys\n"
        "from covidxr_core.config import AugmentConfig, ModelConfig, preset\n"
        "from covidxr_core.train import TrainConfig\n"
        "TrainConfig(model=preset('default', image_size=64).to_dict())\n"
        "ModelConfig(augment=AugmentConfig.identity().to_dict())\n"
        f"print('SEEN', json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    )
    assert run_snippet(script, {}, "SEEN", timeout_s=120, cwd=REPO) == []


def test_a_study_without_retraining_never_starts_keras_in_its_driver(
    tmp_path: Path, covid_cxr: Path
) -> None:
    args = ["--data", str(covid_cxr), "--trials", "2", "--epochs", "1", "--image-size", "64",
            "--space", "small", "--retrain-seeds", "0", "--output", str(tmp_path),
            "--name", "lean", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    script = f"ARGS = {args!r}\nFRAMEWORKS = {FRAMEWORKS!r}\n" + DRIVER
    seen = run_snippet(script, {"PYTHONPATH": str(REPO)}, "DRIVER", timeout_s=600, cwd=REPO)
    assert seen["rc"] == 0, seen
    rows = leaderboard_rows(tmp_path / "lean")
    # The trials did train (with Keras, in the workers) ...
    assert [r["stop_reason"] for r in rows] == ["completed", "completed"], rows
    assert all(r["val_auc"] is not None for r in rows)
    # ... and the driver never imported a framework (it did, at module level, before).
    assert seen["loaded"] == [], seen
