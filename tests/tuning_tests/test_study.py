"""Real studies: Ray Tune + OptunaSearch (SQLite) + ASHA on tiny synthetic data."""

from __future__ import annotations

import json

import optuna
import pyarrow.parquet as pq
import pytest
import ray
from _util import run_cli

from tuning.spec import StudySpec
from tuning.study import StudyError, run_study


@pytest.fixture(scope="module", autouse=True)
def _ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _spec(tmp_path, name, **kw):
    defaults = dict(
        trials=3,
        epochs=2,
        image_size=64,
        space="small",
        retrain_seeds=1,
        n_boot=50,
        output=str(tmp_path),
        name=name,
        grace_epochs=1,
    )
    return StudySpec(**{**defaults, **kw})


def test_smoke_study_writes_every_artifact(tmp_path):
    outcome = run_study(_spec(tmp_path, "smoke"))
    run = outcome.run_dir
    for name in (
        "leaderboard.parquet",
        "optuna.db",
        "study.json",
        "summary.json",
        "comparison.json",
        "best/model.keras",
        "best/metrics.json",
        "best/config.yaml",
        "baseline/metrics.json",
        "baseline/model.keras",
    ):
        assert (run / name).exists(), name

    table = pq.read_table(run / "leaderboard.parquet")
    assert table.num_rows == 3
    rows = table.to_pylist()
    assert all(r["stop_reason"] in ("completed", "early-stopped") for r in rows)
    assert all(r["node_id"] and r["epochs_run"] >= 1 for r in rows)
    assert all(0.0 <= r["val_auc"] <= 1.0 for r in rows)

    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{run / 'optuna.db'}")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    best = json.loads((run / "best" / "metrics.json").read_text())
    assert best["seeds"] == [0]
    assert 0.0 <= best["test_mean_std"]["auc"]["mean"] <= 1.0
    assert best["exported"]["test"]["ci95"]["auc"] is not None
    comparison = json.loads((run / "comparison.json").read_text())
    assert comparison["verdict"]
    assert comparison["beat_recipe"] in (True, False, None)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path):
    space = tmp_path / "failing.yaml"
    # width_1 = 0 is an invalid model: trials that draw it fail, the others train.
    space.write_text(
        "params:\n"
        "  width_1: {type: categorical, choices: [2, 0]}\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\n"
        "fixed:\n  optimizer: adam\n"
    )
    outcome = run_study(_spec(tmp_path, "failing", trials=5, space=str(space), retrain_seeds=0))
    rows = pq.read_table(outcome.leaderboard).to_pylist()
    assert len(rows) == 5
    failed = [r for r in rows if r["stop_reason"] == "failed"]
    ok = [r for r in rows if r["stop_reason"] != "failed"]
    assert failed and ok, [(r["param_width_1"], r["stop_reason"]) for r in rows]
    assert all(r["param_width_1"] == 0 for r in failed)
    assert all("width" in r["error"] for r in failed)
    study = optuna.load_study(
        study_name="failing", storage=f"sqlite:///{outcome.run_dir / 'optuna.db'}"
    )
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.FAIL in states


def test_fatal_problems_stop_before_any_trial(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        run_study(_spec(tmp_path, "nodata", data=str(tmp_path / "missing")))
    assert not (tmp_path / "nodata").exists()
    run_study(_spec(tmp_path, "taken", trials=1, epochs=1, retrain_seeds=0))
    with pytest.raises(StudyError, match="already exists"):
        run_study(_spec(tmp_path, "taken", trials=1, epochs=1, retrain_seeds=0))


def test_cli_reports_bad_input_in_one_line(tmp_path):
    proc = run_cli("--space", "nope", "--output", str(tmp_path), "--name", "x")
    assert proc.returncode == 2
    assert "unknown search space 'nope'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = run_cli(
        "--address", "127.0.0.1:1", "--output", str(tmp_path), "--name", "y", "--smoke-test"
    )
    assert proc.returncode == 2
    assert "cannot connect to the Ray cluster" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
