"""No trial is lost when epochs outlast Ray's worker-reuse window.

Ray reuses a worker for the next trial only if the stopped trial's thread ends within
``TUNE_FUNCTION_THREAD_TIMEOUT_S``; otherwise it ends the *next* trial before it trains
("Could not re-use actor ... reset_config()"). Trials used to notice ASHA's stop only at
their next epoch report, so any data set whose epochs outlast the window lost trials.
Here the window is 1 s and an epoch takes several seconds, with ASHA stopping trials
after their first epoch: every trial must still train and be recorded, none lost.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "tuning_tests"))
from _figures import observe  # noqa: E402
from _util import leaderboard_rows, run_cli  # noqa: E402

pytestmark = pytest.mark.slow

TRIALS = 12


def _write_folder(root: Path, per_class: dict[str, int], size: int = 64, seed: int = 0) -> None:
    """A two-class folder big enough for multi-second epochs, and hard enough that trials
    differ (so ASHA stops some): the classes differ a little in speckle, and a quarter of
    the images carry the other class's texture."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for label, name in enumerate(("corona", "normal")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                texture = label if rng.random() > 0.25 else 1 - label
                noise = rng.normal(0, 16 if texture == 0 else 11, (size // 2, size // 2))
                image = np.clip(110 + noise.repeat(2, 0).repeat(2, 1), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{i}.png", compress_level=1)


def test_trials_whose_epochs_outlast_the_reuse_window_are_not_lost(tmp_path):
    data = tmp_path / "data"
    _write_folder(data, {"train": 800, "validation": 40, "test": 20})
    env = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "1", "COVIDXR_CACHE": str(tmp_path / "cache")}
    with observe(
        "cluster",
        f"{TRIALS} trials whose epochs outlast a 1 s worker-reuse window "
        "(TUNE_FUNCTION_THREAD_TIMEOUT_S=1), ASHA stopping trials after epoch 1",
        "stopped trials give their worker back within a batch; no trial is lost to a failed "
        "worker reset, none fails",
    ) as seen:
        proc = run_cli(
            "--data", str(data), "--trials", str(TRIALS), "--epochs", "3", "--grace-epochs",
            "1", "--early-stop", "on", "--image-size", "64", "--space", "small", "--retrain-seeds", "0",
            "--output", str(tmp_path / "runs"), "--name", "long",
            timeout=900, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rows = leaderboard_rows(tmp_path / "runs" / "long")
        lost = [r for r in rows if r["error"] and "reset_config" in r["error"]]
        failed = [r for r in rows if r["stop_reason"] == "failed"]
        stopped = [r for r in rows if r["stop_reason"] == "early-stopped"]
        epoch_s = [s for r in rows for s in r["curve_epoch_s"] if s is not None]
        reruns = sum(1 for r in rows if r["rerun_reason"])
        seen.update(
            observed=f"{len(rows)} trials recorded, {len(stopped)} early-stopped by ASHA, "
            f"{len(lost)} lost to worker reuse, {len(failed)} failed, {reruns} re-run; "
            f"median epoch {np.median(epoch_s):.1f} s against the 1 s window",
            trials_lost=len(lost),
            trials=len(rows),
        )
        assert len(rows) == TRIALS
        assert lost == [] and failed == [], [(r["trial_id"], r["error"]) for r in failed]
        assert all(r["epochs_run"] >= 1 for r in rows)
        # The epochs really outlast the window, and ASHA really stopped trials early.
        assert np.median(epoch_s) > 1.0, epoch_s
        assert stopped, "ASHA stopped no trial: the reuse window was never tested"
    summary = json.loads((tmp_path / "runs" / "long" / "summary.json").read_text())
    assert summary["trials"] == TRIALS
    assert os.environ.get("TUNE_FUNCTION_THREAD_TIMEOUT_S") is None  # the test did not leak it
