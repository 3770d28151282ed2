"""The KerasTuner engine: real studies on tiny synthetic data, and the engine comparison page."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuning import StudySpec, run_study
from tuning.reporting import write_comparison_report

# The KerasTuner engine needs no Ray; the Ray run compared with it does.
pytestmark = pytest.mark.usefixtures("local_ray")


def _spec(tmp_path: Path, name: str, **kw) -> StudySpec:
    defaults = dict(
        engine="keras-tuner",
        tuner="random",
        trials=3,
        epochs=2,
        image_size=64,
        space="small",
        retrain_seeds=0,
        n_boot=50,
        output=str(tmp_path),
        name=name,
    )
    return StudySpec(**{**defaults, **kw})


def _rows(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / "leaderboard.parquet").to_pylist()


@pytest.fixture(scope="module")
def kt_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kt")
    return run_study(_spec(out, "kt-random", retrain_seeds=1)).run_dir


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray")
    return run_study(_spec(out, "ray", engine="ray", retrain_seeds=1, grace_epochs=1)).run_dir


def test_keras_tuner_runs_the_default_space_with_the_default_first(tmp_path):
    # The default space has boolean choices (the flips), which some KerasTuner oracles hand
    # back as 0/1: it used to fail every trial with "must be true or false, but got 0".
    run_dir = run_study(
        _spec(tmp_path, "kt-default", space="default", tuner="hyperband", trials=3, epochs=2)
    ).run_dir
    rows = sorted(_rows(run_dir), key=lambda r: r["started_at"])
    assert all(r["status"] == "TERMINATED" for r in rows), [r["error"] for r in rows]
    first = rows[0]
    # The sensible default first, for the whole budget, even where Hyperband's first
    # bracket trains its own trials for fewer epochs.
    assert first["origin"] == "default" and first["epochs_run"] == 2
    assert first["param_optimizer"] == "adam" and first["param_base_width"] == 16
    assert {r["origin"] for r in rows[1:]} == {"search"}


def test_random_search_fills_the_same_leaderboard_as_ray(kt_run):
    table = pq.read_table(kt_run / "leaderboard.parquet")
    assert table.schema.field("param_learning_rate").type == pa.float64()
    assert table.schema.field("param_dropout").type == pa.float64()
    assert table.schema.field("param_base_width").type == pa.int64()
    rows = table.to_pylist()
    assert len(rows) == 3
    for row in rows:
        assert row["stop_reason"] == "completed" and row["status"] == "TERMINATED"
        assert row["epochs_run"] == 2 and len(row["curve_val_auc"]) == 2
        assert 3e-4 <= row["param_learning_rate"] <= 3e-3
        assert row["param_base_width"] in (8, 16)
        assert 0.0 <= row["val_auc"] <= 1.0 and row["best_metric"] == max(row["curve_val_auc"])
        assert row["node_id"] == "local" and row["pid"] and row["gpu_fraction"] == 0.0
        assert 0 < row["train_s"] <= row["wall_s"]
    assert len({r["param_learning_rate"] for r in rows}) == 3  # three different draws

    # KerasTuner keeps its own state beside ours; there is no Optuna study to write.
    assert (kt_run / "keras_tuner" / "study" / "oracle.json").exists()
    assert not (kt_run / "optuna.db").exists()
    summary = json.loads((kt_run / "summary.json").read_text())
    assert summary["spec"]["engine"] == "keras-tuner" and summary["trials"] == 3


def test_after_the_search_the_winner_is_retrained_as_with_ray(kt_run):
    for name in (
        "best/model.keras",
        "best/metrics.json",
        "best/config.yaml",
        "baseline/metrics.json",
        "comparison.json",
        "report.html",
    ):
        assert (kt_run / name).exists(), name
    best = json.loads((kt_run / "best" / "metrics.json").read_text())
    winner = max(_rows(kt_run), key=lambda r: r["val_auc"])
    assert best["trial_id"] == winner["trial_id"]
    assert best["params"]["learning_rate"] == winner["param_learning_rate"]
    assert 0.0 <= best["test_mean_std"]["auc"]["mean"] <= 1.0


def test_a_trial_trains_exactly_as_train_does(kt_run):
    # Same data, same config, same seed: the curve KerasTuner saw is train()'s curve.
    from covidxr_core.train import train
    from search_spaces import get_space
    from tuning.study import base_config, load_data

    spec = StudySpec.from_json(kt_run / "study.json")
    data = load_data(spec)
    space = get_space(spec.space)
    row = _rows(kt_run)[0]
    config = space.apply(
        {p.name: row[f"param_{p.name}"] for p in space.params}, base_config(spec, data)
    )
    result = train(config, data, evaluate_test=False, n_boot=0)
    assert [h["val_auc"] for h in result.history] == row["curve_val_auc"]


def test_hyperband_promotes_a_trial_which_retrains_from_scratch(tmp_path):
    # --epochs 3 with factor 3: a first round of 3 one-epoch trials, then the best of them
    # trains for 3 epochs; the trial cap (4) ends the search there.
    # A space that cannot express the sensible default, so no starting point trains the
    # full budget out of Hyperband's order (test_keras_tuner_runs_the_default_space_...).
    space = tmp_path / "no-default.yaml"
    space.write_text(
        "params:\n  learning_rate: {type: float, low: 2.0e-3, high: 2.0e-2, log: true}\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\nfixed:\n  optimizer: adam\n"
    )
    spec = _spec(tmp_path, "hb", tuner="hyperband", trials=4, epochs=3, space=str(space))
    run = run_study(spec).run_dir
    rows = sorted(_rows(run), key=lambda r: r["trial_id"])
    assert len(rows) == 4
    first, promoted = rows[:3], rows[3]
    assert all(r["stop_reason"] == "early-stopped" and r["epochs_run"] == 1 for r in first)
    assert promoted["stop_reason"] == "completed" and promoted["epochs_run"] == 3
    parent = max(first, key=lambda r: r["val_auc"])
    assert promoted["param_learning_rate"] == parent["param_learning_rate"]
    # Retrained from scratch with the same seed: its first epoch is the parent's epoch.
    assert promoted["curve_val_auc"][0] == parent["curve_val_auc"][0]
    trial = json.loads(
        (run / "keras_tuner" / "study" / f"trial_{promoted['trial_id']}" / "trial.json").read_text()
    )
    assert trial["hyperparameters"]["values"]["tuner/trial_id"] == parent["trial_id"]


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, failing_space):
    space = failing_space
    run = run_study(_spec(tmp_path, "failing", trials=2, epochs=1, space=str(space))).run_dir
    rows = _rows(run)
    assert len(rows) == 2
    failed = [r for r in rows if r["stop_reason"] == "failed"]
    ok = [r for r in rows if r["stop_reason"] == "completed"]
    assert failed and ok, [(r["param_learning_rate"], r["stop_reason"]) for r in rows]
    assert all(r["param_learning_rate"] == 1e30 and r["status"] == "ERROR" for r in failed)
    assert all(r["error"].startswith("TrainingDiverged") for r in failed)


@pytest.mark.slow
def test_the_time_budget_stops_the_search(tmp_path):
    run = run_study(_spec(tmp_path, "budget", trials=50, epochs=2, time_budget_s=8)).run_dir
    rows = _rows(run)
    summary = json.loads((run / "summary.json").read_text())
    assert 1 <= len(rows) < 50
    # Nothing starts after the budget; the trial running then stops after its epoch.
    assert all(r["stop_reason"] in ("completed", "early-stopped") for r in rows)
    assert summary["search_wall_s"] < 8 + max(r["wall_s"] for r in rows)


class _Page(HTMLParser):
    """Collects what a self-contained page must not have: scripts and outside resources."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.outside: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if (
                name in ("src", "href", "xlink:href")
                and value
                and not value.startswith(("#", "data:"))
            ):
                self.outside.append(f"{tag} {name}={value}")


def test_comparison_page_shows_both_engines_offline(kt_run, ray_run, tmp_path):
    out = write_comparison_report([ray_run, kt_run], tmp_path / "compare.html")
    html = out.read_text()
    parser = _Page()
    parser.feed(html)
    parser.close()
    assert "script" not in parser.tags and "link" not in parser.tags
    assert parser.outside == []
    assert parser.tags.count("svg") >= 2  # anytime curves and test intervals
    for label in ("kt-random", "KerasTuner random", "ray", "Ray Tune + Optuna TPE + ASHA"):
        assert label in html
    # Both winners' exported test AUCs, as best/metrics.json has them, are on the page.
    for run in (ray_run, kt_run):
        auc = json.loads((run / "best" / "metrics.json").read_text())["exported"]["test"]["auc"]
        assert f"{auc:.3f}" in html
