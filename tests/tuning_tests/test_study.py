"""Real studies through the public API: Ray Tune + OptunaSearch (SQLite) + ASHA on tiny data."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pyarrow.parquet as pq
import pytest
from _util import run_cli

from search_spaces import get_space
from tuning import StudyError, StudySpec, run_study

pytestmark = pytest.mark.usefixtures("local_ray")


def test_the_python_api_returns_the_best_params_and_the_leaderboard(tmp_path):
    spec = StudySpec(
        trials=2, epochs=1, image_size=64, space="small", retrain_seeds=1, output=str(tmp_path)
    )
    result = run_study(spec)

    assert isinstance(result.leaderboard, pd.DataFrame)
    assert len(result.leaderboard) == 2 == result.trials
    assert set(result.leaderboard["trial_id"]) == set(
        pq.read_table(result.paths["leaderboard"]).column("trial_id").to_pylist()
    )
    # The best parameters are the retrained winner's, one value per searched parameter.
    assert set(result.best_params) == set(get_space("small").names)
    winner = result.leaderboard.set_index("trial_id").loc[result.best_trial]
    for name, value in result.best_params.items():
        assert winner[f"param_{name}"] == pytest.approx(value)
    assert json.loads((result.run_dir / "best" / "metrics.json").read_text())["trial_id"] == (
        result.best_trial
    )
    # The returned verdict is the one written to comparison.json.
    written = json.loads(result.paths["comparison"].read_text())
    assert written["verdict"] == result.verdict.text
    assert written["beat_recipe"] == result.verdict.beat_recipe
    assert result.paths["report"].name == "report.html"


def test_smoke_study_writes_every_artifact(tiny_spec):
    result = run_study(tiny_spec("smoke"))
    run = result.run_dir
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

    # The clinical numbers, at the operating point chosen on validation, with intervals.
    comparison = json.loads((run / "comparison.json").read_text())
    for metrics in (best["exported"]["test"], comparison["test"]["best"]):
        assert 0.0 <= metrics["threshold"] <= 1.0 and metrics["decision"] == "threshold"
        for name in ("ppv", "npv", "ece", "brier", "average_precision"):
            assert metrics[name] is not None, name
            lo, hi = metrics["ci95"][name]
            assert lo <= hi, name
    assert best["threshold"] == best["exported"]["validation"]["threshold"]
    assert set(comparison["test"]) == {"best", "baseline", "default"}
    assert (run / "default" / "model.keras").exists()
    assert (run / "best" / "MODEL_CARD.md").read_text().count("not a diagnostic device") == 1

    # Each comparison follows from the paired interval it quotes, in words and in the flag.
    for role in ("baseline", "default"):
        versus = comparison["versus"][role]
        lo, hi = versus["paired_ci95"]
        if lo > 0:
            assert versus["beat"] is True and "beat it" in versus["text"]
        elif hi < 0:
            assert versus["beat"] is False and "did NOT beat" in versus["text"]
        else:
            assert versus["beat"] is None and "no clear winner" in versus["text"]
        assert f"[{lo:+.3f}, {hi:+.3f}]" in versus["text"]
    # Green only when every check passed; the text names what failed otherwise.
    checks = comparison["checks"]
    if comparison["kind"] == "good":
        assert all(c["passed"] for c in checks)
    else:
        failed = [c for c in checks if c["passed"] is not True]
        assert failed and failed[-1]["detail"] in comparison["verdict"]


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tiny_spec, failing_space):
    space = failing_space
    result = run_study(tiny_spec("failing", trials=5, space=str(space), retrain_seeds=0))
    rows = pq.read_table(result.paths["leaderboard"]).to_pylist()
    assert len(rows) == 5
    failed = [r for r in rows if r["stop_reason"] == "failed"]
    ok = [r for r in rows if r["stop_reason"] != "failed"]
    assert failed and ok, [(r["param_learning_rate"], r["stop_reason"]) for r in rows]
    assert all(r["param_learning_rate"] == 1e30 for r in failed)
    assert all("diverged" in r["error"] for r in failed)
    assert result.verdict is None and result.best is None  # nothing retrained
    assert result.best_params is not None and result.best_params["learning_rate"] == 0.01
    study = optuna.load_study(
        study_name="failing", storage=f"sqlite:///{result.run_dir / 'optuna.db'}"
    )
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.FAIL in states


def test_fatal_problems_stop_before_any_trial(tmp_path, tiny_spec):
    with pytest.raises(Exception, match="does not exist"):
        run_study(tiny_spec("nodata", data=str(tmp_path / "missing")))
    assert not (tmp_path / "nodata").exists()
    run_study(tiny_spec("taken", trials=1, epochs=1, retrain_seeds=0))
    with pytest.raises(StudyError, match="already exists"):
        run_study(tiny_spec("taken", trials=1, epochs=1, retrain_seeds=0))
    with pytest.raises(StudyError, match="resume needs the name"):
        run_study(StudySpec(output=str(tmp_path)), resume=True)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    proc = run_cli("--space", "nope", "--output", str(tmp_path), "--name", "x")
    assert proc.returncode == 2
    assert "unknown search space 'nope'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    proc = run_cli(
        "--address", "127.0.0.1:1", "--output", str(tmp_path), "--name", "y", "--smoke-test"
    )
    assert proc.returncode == 2
    assert "cannot connect to the Ray cluster at address '127.0.0.1:1'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    # A flag's rule is checked before anything heavy, and named by its flag.
    proc = run_cli("--trials", "0", "--output", str(tmp_path))
    assert proc.returncode == 2
    assert "--trials: trials must be >= 1, but got 0" in proc.stdout
