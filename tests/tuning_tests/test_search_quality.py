"""A study never hands back worse than the sensible default: real studies, tiny sizes.

The default runs first, for the full budget, whatever ASHA does; TPE learns an early stop
as PRUNED; a space of poor configurations hands back the default and says so; and the
fixed values are in summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import yaml

from tuning import run_study
from tuning.progress import StudyObserver

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]


class _Notes(StudyObserver):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, label: str, text: str) -> None:
        self.lines.append(f"{label} {text}")


def test_the_default_runs_first_for_the_full_budget_and_early_stops_are_pruned(tiny_spec):
    spec = tiny_spec("first", trials=5, epochs=3, retrain_seeds=0, early_stop="on", grace_epochs=1)
    result = run_study(spec)
    rows = sorted(
        pq.read_table(result.run_dir / "leaderboard.parquet").to_pylist(),
        key=lambda r: r["started_at"],
    )
    default = [r for r in rows if r["origin"] == "default"]
    assert len(default) == 1
    assert default[0]["stop_reason"] == "completed" and default[0]["epochs_run"] == 3
    assert default[0]["param_base_width"] == 16 and default[0]["param_lr_schedule"] == "constant"
    assert {r["origin"] for r in rows} == {"default", "search"}
    # A trial's score is the mean of its last epochs (3 here), not its best epoch.
    curve = default[0]["curve_val_auc"]
    assert default[0]["score"] == pytest.approx(sum(curve[-3:]) / 3)
    # TPE learned every trial ASHA stopped as PRUNED, never as a complete early score.
    study = optuna.load_study(
        study_name=result.run_dir.name, storage=f"sqlite:///{result.run_dir / 'optuna.db'}"
    )
    # The default is the sampler's first trial (trials start two at a time here).
    states = {t.user_attrs.get("origin"): t.state.name for t in study.trials if t.number == 0}
    assert states == {"default": "COMPLETE"}
    stopped = [r for r in rows if r["stop_reason"] == "early-stopped"]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == len(stopped)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == sum(r["stop_reason"] == "completed" for r in rows)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    held = summary["held_fixed"]
    assert held["optimizer"] == "adam" and held["width_cap"] == 128 and held["epochs"] == 3
    assert summary["starts"][0]["origin"] == "default"
    assert summary["early_stopping"]["enabled"] and summary["early_stopping"]["grace"] == 1


def test_a_space_of_poor_configurations_hands_back_the_default(tiny_spec, tmp_path: Path):
    # A learning rate a thousand times too small: every trial ends where it started.
    space = tmp_path / "poor.yaml"
    space.write_text(
        "params:\n"
        "  learning_rate: {type: float, low: 1.0e-7, high: 2.0e-7, log: true}\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\n"
    )
    notes = _Notes()
    spec = tiny_spec("poor", trials=2, epochs=3, space=str(space), retrain_seeds=2, race=1)
    result = run_study(spec, observer=notes)
    said = "\n".join(notes.lines)
    assert "tuning found nothing better than the sensible default" in said
    assert "the sensible default is not a trial" in said  # its 1e-3 is outside the space
    run = result.run_dir
    summary = json.loads((run / "summary.json").read_text())
    assert summary["returned_default"] is True and summary["race"]["winner"] == "default"
    assert summary["race"]["beat_default"] is False
    # best/ is the default: the same configuration and the same exported model, trained once.
    best = yaml.safe_load((run / "best" / "config.yaml").read_text())
    default = yaml.safe_load((run / "default" / "config.yaml").read_text())
    assert best == default
    assert (run / "best" / "model.keras").read_bytes() == (
        run / "default" / "model.keras"
    ).read_bytes()
    seeds = list((run / "retrain").iterdir())
    assert len(seeds) == 2 * 3  # the trial that raced, the default and the recipe; 2 seeds each
    assert result.returned_default and result.verdict is not None
    assert "tuning did not beat the sensible default" in result.verdict.text
