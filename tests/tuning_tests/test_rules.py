"""The rules that live once: metric direction, failure classification, finite, JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from covidxr_core.errors import ConfigError, DataError
from covidxr_core.jsonsafe import dumps, jsonable
from covidxr_core.numbers import finite
from tuning.errors import TrialFailed
from tuning.failures import classify, error_line, timeout
from tuning.objective import best, direction, is_better, sort_key


def test_direction_of_metrics_and_columns():
    assert direction("val_auc") == "max" and direction("val_loss") == "min"
    assert direction("loss") == "min" and direction("wall_s") == "min"
    assert direction("best_metric") == "max" and direction("epochs_run") == "max"


@pytest.mark.parametrize(
    ("value", "than", "mode", "expected"),
    [
        (0.9, 0.8, "max", True),
        (0.8, 0.9, "max", False),
        (0.8, 0.8, "max", False),  # a tie is not better
        (0.1, 0.2, "min", True),
        (0.5, None, "max", True),  # anything beats nothing
        (None, 0.5, "max", False),
        (float("nan"), 0.5, "max", False),
        (0.5, float("nan"), "min", True),
    ],
)
def test_is_better(value, than, mode, expected):
    assert is_better(value, than, mode) is expected


def test_best_picks_the_first_of_equals_and_skips_missing():
    items = [("a", None), ("b", 0.7), ("c", 0.9), ("d", 0.9), ("e", float("nan"))]
    assert best(items, lambda kv: kv[1], "max") == ("c", 0.9)
    assert best(items, lambda kv: kv[1], "min") == ("b", 0.7)
    assert best([("a", None)], lambda kv: kv[1], "max") is None
    assert sorted([0.2, 0.9, 0.5], key=lambda v: sort_key(v, "max")) == [0.9, 0.5, 0.2]


def test_failures_retry_only_what_can_change():
    from covidxr_core.train import TrainingDiverged

    assert classify(ConfigError("width_1 must be >= 1")).retry is False
    assert classify(DataError("no train split")).kind == "config"
    diverged = classify(TrainingDiverged(2, float("nan")))
    assert diverged.kind == "diverged" and not diverged.retry
    assert "TrainingDiverged" in diverged.message

    class ResourceExhaustedError(RuntimeError):
        pass

    assert classify(ResourceExhaustedError("OOM when allocating")).kind == "oom"
    assert classify(RuntimeError("CUDA error: out of memory")).kind == "oom"
    assert classify(RuntimeError("RESOURCE_EXHAUSTED: while allocating")).retry is False
    transient = classify(ConnectionError("node 10.0.0.3 lost"))
    assert transient.retry and transient.kind == "transient"
    assert classify(TrialFailed("marker")).retry is False
    assert timeout(30).message == "TrialTimeout: the trial ran longer than its 30s limit"


def test_error_line_finds_the_exception_in_a_traceback():
    text = (
        "Traceback (most recent call last):\n  File 'x.py', line 3\n"
        "ray.exceptions.RayTaskError(TrialFailed): wrapped\n"
        "tuning.errors.TrialFailed: TrainingDiverged: loss is nan\n\n"
    )
    assert error_line(text) == "tuning.errors.TrialFailed: TrainingDiverged: loss is nan"
    assert error_line("something odd\nlast words") == "last words"
    assert error_line("") == "trial failed"


def test_finite_and_the_json_sanitiser():
    assert finite("0.5") == 0.5 and finite(np.float32(2)) == 2.0
    assert finite(None) is None and finite("x") is None and finite(math.inf) is None
    value = {"a": (1, np.int64(2)), 3: np.array([0.5, np.nan]), "p": None, "b": np.bool_(True)}
    assert jsonable(value) == {"a": [1, 2], "3": [0.5, None], "p": None, "b": True}
    assert json.loads(dumps({"x": float("nan")})) == {"x": None}


def test_a_trial_lost_to_worker_reuse_is_recognised():
    from tuning.failures import is_lost_to_reuse

    ray_text = (
        "_AbortTrialExecution: Trainable runner reuse requires reset_config() to be "
        "implemented and return True."
    )
    assert is_lost_to_reuse(ray_text)
    assert is_lost_to_reuse("Could not re-use actor for trial run_trial_1a2b")
    assert not is_lost_to_reuse("TrialFailed: TrainingDiverged: loss is nan")
    assert not is_lost_to_reuse(None)


def test_zombie_optuna_trials_are_closed_with_the_reason(tmp_path):
    import optuna

    from tuning.engines.ray_tune import close_zombie_trials, optuna_storage_url

    study = optuna.create_study(storage=optuna_storage_url(tmp_path), study_name="z")
    done = study.ask()
    study.tell(done, 0.5)
    study.ask()  # asked, never told: what a killed driver leaves behind
    assert close_zombie_trials(tmp_path) == 1
    states = [
        t.state
        for t in optuna.load_study(study_name="z", storage=optuna_storage_url(tmp_path)).trials
    ]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert close_zombie_trials(tmp_path) == 0
