"""A resumed retrain keeps the seeds that finished: nothing is trained twice."""

from __future__ import annotations

import json

import numpy as np

from search_spaces import get_space
from tuning import StudySpec
from tuning.engines import get_engine
from tuning.leaderboard import Leaderboard
from tuning.progress import StudyObserver
from tuning.retrain import SEEDS_DIR, SeedRun, load_seed, retrain, save_seed
from tuning.study import base_config, default_config, load_data, recipe_config


class Notes(StudyObserver):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, label: str, text: str) -> None:
        self.lines.append(f"{label} {text}")


def test_a_saved_seed_round_trips(tmp_path):
    run = SeedRun(
        seed=3, validation={"auc": 0.8}, test=None, history=[{"epoch": 1, "val_auc": 0.8}],
        wall_s=1.5, fit_s=1.0, test_probs=np.eye(2), test_labels=np.array([0, 1]),
        model_bytes=b"keras", threshold=0.4, operating_point="youden",
        calibration={"temperature": 1.2},
    )  # fmt: skip
    save_seed(tmp_path / "s", run)
    back = load_seed(tmp_path / "s")
    assert back is not None and back.seed == 3 and back.model_bytes == b"keras"
    assert np.array_equal(back.test_probs, run.test_probs) and back.threshold == 0.4
    assert load_seed(tmp_path / "missing") is None


def test_retraining_a_finished_run_again_trains_nothing(tiny_run):
    spec = StudySpec.from_json(tiny_run / "study.json")
    seeds = sorted((tiny_run / SEEDS_DIR).iterdir())
    # The trial that raced the default (--race 1), the default and the recipe: each seed kept.
    assert len(seeds) == 3 * spec.retrain_seeds
    before = {p.name: (p / "run.json").stat().st_mtime_ns for p in seeds}
    space = get_space(spec.space)
    data = load_data(spec)
    board = Leaderboard(
        tiny_run / "leaderboard.parquet", space, spec.metric, spec.mode, spec.epochs
    )
    configs = {
        "search": base_config(spec, data),
        "baseline": recipe_config(spec, data),
        "default": default_config(spec, data),
    }
    notes = Notes()
    # The in-process engine would train right here if any seed were missing.
    validation = (data.splits["validation"].labels, data.positive_index)
    again = retrain(
        spec, space, configs, board, tiny_run, get_engine("keras-tuner"), data, notes, validation
    )
    assert again is not None
    assert any("kept 3 finished seed(s)" in line for line in notes.lines), notes.lines
    after = {
        p.name: (p / "run.json").stat().st_mtime_ns
        for p in sorted((tiny_run / SEEDS_DIR).iterdir())
    }
    assert after == before
    written = json.loads((tiny_run / "best" / "metrics.json").read_text())
    assert written["exported_seed"] == again.roles["best"].exported_seed
