"""The race's choice (tuning.race.choose), the budget rules and the starting points."""

from __future__ import annotations

import numpy as np
import pytest

from tuning.budget import MIN_PER_CLASS_TO_STOP, early_stopping, startup_trials
from tuning.race import DEFAULT_KEY, Entrant, choose


def _probs(scores: np.ndarray) -> np.ndarray:
    return np.stack([1 - scores, scores], axis=1)


def _labels(n: int = 200) -> np.ndarray:
    return np.array([0, 1] * (n // 2))


def _separating(y: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Scores that rank the positives higher, blurred by ``noise``."""
    rng = np.random.default_rng(seed)
    return _probs(np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, noise, y.size), 0, 1))


def test_the_challenger_is_chosen_by_its_lower_bound_not_its_best_seed():
    y = _labels()
    default = Entrant(DEFAULT_KEY, "default", (0.70, 0.71), ())
    steady = Entrant("steady", "search", (0.80, 0.81), ())
    lucky = Entrant("lucky", "search", (0.99, 0.55), ())  # the best single seed, mean 0.77
    # val_auc ranks the same way; its paired rule needs probabilities (tested below).
    result = choose([default, lucky, steady], "val_accuracy", y, 1)
    assert result.challenger == "steady" and result.winner == "steady" and result.beat_default
    bounds = {e["key"]: e["bound"] for e in result.entrants}
    assert bounds["lucky"] < bounds["steady"]


def test_lower_is_better_metrics_take_the_upper_bound():
    y = _labels()
    default = Entrant(DEFAULT_KEY, "default", (0.60, 0.60))
    wobbly = Entrant("wobbly", "search", (0.20, 0.70))  # mean 0.45, bound 0.45 + 0.35
    steady = Entrant("steady", "search", (0.50, 0.52))
    result = choose([default, wobbly, steady], "val_loss", y, 1)
    assert result.challenger == "steady" and result.winner == "steady"


def test_a_challenger_not_clearly_better_on_validation_auc_hands_back_the_default():
    y = _labels(120)
    default_runs = tuple(_separating(y, 0.30, s) for s in (0, 1))
    same_runs = tuple(_separating(y, 0.30, s + 10) for s in (0, 1))
    default = Entrant(DEFAULT_KEY, "default", (0.8, 0.8), default_runs)
    similar = Entrant("t1", "search", (0.81, 0.81), same_runs)
    result = choose([default, similar], "val_auc", y, 1, n_boot=300)
    assert result.winner == DEFAULT_KEY and not result.beat_default
    assert result.ci95 is not None and result.ci95[0] <= 0 <= result.ci95[1] + 1e-9
    assert result.line.startswith("tuning found nothing better than the sensible default")


def test_a_challenger_clearly_better_on_validation_auc_wins():
    y = _labels(200)
    weak = tuple(_separating(y, 0.60, s) for s in (0, 1))
    strong = tuple(_separating(y, 0.05, s + 10) for s in (0, 1))
    result = choose(
        [Entrant(DEFAULT_KEY, "default", (0.6, 0.6), weak), Entrant("t9", "search", (0.99, 0.99), strong)],
        "val_auc", y, 1, n_boot=300,
    )  # fmt: skip
    assert result.winner == "t9" and result.beat_default
    assert result.ci95 is not None and result.ci95[0] > 0
    assert result.line.startswith("tuning beat the sensible default")


def test_no_challenger_means_the_default():
    result = choose([Entrant(DEFAULT_KEY, "default", (0.7,))], "val_auc", _labels(), 1)
    assert result.winner == DEFAULT_KEY and result.challenger is None
    with pytest.raises(ValueError, match="needs the default"):
        choose([Entrant("x", "search", (0.7,))], "val_auc", _labels(), 1)


def test_tpe_random_start_follows_the_budget():
    assert startup_trials(12, 1) == 3
    assert startup_trials(50, 1) == 10
    assert startup_trials(4, 2) == 4  # the starting points and two random draws
    assert startup_trials(200, 1) == 10


def test_early_stopping_only_where_validation_can_rank_trials():
    small = early_stopping("auto", 6, 2, 30)
    assert not small.enabled and "too few" in small.why and small.grace == 6
    big = early_stopping("auto", 9, 2, MIN_PER_CLASS_TO_STOP)
    assert big.enabled and big.grace == 3  # a third of the budget
    assert early_stopping("on", 6, 1, 5) == early_stopping("on", 6, 1, 500)
    assert early_stopping("on", 6, 1, 5).enabled and early_stopping("on", 6, 1, 5).grace == 1
    assert not early_stopping("off", 6, 1, 500).enabled
