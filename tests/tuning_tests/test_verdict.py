"""The verdict's branches and the retrain's pure parts, on made-up predictions."""

from __future__ import annotations

import numpy as np
import pytest

from tuning.results import MeanStd, Metrics, RoleSummary, Verdict
from tuning.retrain import SeedRun, mean_std, pick_exported
from tuning.verdict import compare

RNG = np.random.default_rng(0)
LABELS = np.array([0] * 40 + [1] * 40)  # 0 = corona (positive), 1 = normal


def _probs(separation: float) -> np.ndarray:
    """Positive-class scores that separate the classes by ``separation`` (0: chance)."""
    score = RNG.normal(0, 1, LABELS.size) + separation * (LABELS == 0)
    p = 1 / (1 + np.exp(-score))
    return np.stack([p, 1 - p], axis=1)


def _summary(auc: float) -> RoleSummary:
    return RoleSummary(
        role="best", protocol="", seeds=(0,), exported_seed=0,
        test_mean_std={"auc": MeanStd(auc, 0.0, 1)}, validation_mean_std={},
        exported_validation=None, exported_test=None,
    )  # fmt: skip


def _verdict(best_sep: float, base_sep: float, labels: np.ndarray = LABELS) -> Verdict:
    return compare(
        _summary(0.9), _summary(0.6), labels, _probs(best_sep), _probs(base_sep), 0, 300, 0
    )


def test_a_clearly_better_model_beats_the_recipe():
    verdict = _verdict(3.0, 0.0)
    assert verdict.beat_recipe is True and verdict.kind == "good"
    assert verdict.paired_ci95[0] > 0
    assert verdict.text.startswith("tuning beat the recipe")


def test_a_clearly_worse_model_does_not():
    verdict = _verdict(0.0, 3.0)
    assert verdict.beat_recipe is False and verdict.kind == "bad"
    assert verdict.paired_ci95[1] < 0 and "did NOT beat" in verdict.text


def test_equal_models_give_no_clear_winner():
    verdict = _verdict(1.0, 1.0)
    assert verdict.beat_recipe is None and verdict.kind == "warn"
    lo, hi = verdict.paired_ci95
    assert lo <= 0 <= hi and verdict.text.startswith("no clear winner")


def test_one_class_test_split_is_undecided():
    labels = np.zeros(LABELS.size, dtype=int)
    verdict = _verdict(3.0, 0.0, labels)
    assert verdict.beat_recipe is None and verdict.text.startswith("undecided")


def test_verdict_and_role_summaries_round_trip_their_json():
    verdict = _verdict(3.0, 0.0)
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    metrics = Metrics.from_dict(
        {"n": 4, "auc": 0.75, "ci95": {"auc": [0.5, 1.0], "sensitivity": None},
         "confusion_labels": ["corona", "normal"], "confusion_matrix": [[1, 1], [0, 2]]}
    )  # fmt: skip
    assert metrics.ci("auc") == (0.5, 1.0) and metrics.ci("sensitivity") is None
    assert metrics.value("auc") == 0.75 and metrics.sensitivity is None
    with pytest.raises(KeyError, match="metric must be one of"):
        metrics.value("recall")
    summary = RoleSummary.from_dict(
        {"role": "best", "seeds": [0, 1], "exported_seed": 1, "trial_id": "t1",
         "params": {"lr": 0.1}, "exported": {"test": metrics.to_dict()},
         "test_mean_std": {"auc": {"mean": 0.7, "std": 0.1, "n": 2}}, "budget_epochs": 3}
    )  # fmt: skip
    assert summary.exported_test == metrics and summary.test_stat("auc").text() == "0.700 ± 0.100"
    assert summary.extra == {"budget_epochs": 3}
    assert RoleSummary.from_dict(summary.to_dict()) == summary


def _run(seed: int, val_auc: float | None, val_loss: float, test_auc: float) -> SeedRun:
    return SeedRun(
        seed=seed, validation={"auc": val_auc, "loss": val_loss}, test={"auc": test_auc},
        history=[], wall_s=1.0, fit_s=1.0, test_probs=np.zeros((1, 2)),
        test_labels=np.zeros(1), model_bytes=b"",
    )  # fmt: skip


def test_the_exported_seed_is_chosen_on_validation_never_on_test():
    runs = [_run(0, 0.8, 0.5, 0.99), _run(1, 0.9, 0.6, 0.50), _run(2, None, 0.4, 0.70)]
    assert pick_exported(runs, "val_auc").seed == 1  # best validation AUC, worst test
    assert pick_exported(runs, "val_loss").seed == 2  # lowest validation loss
    assert pick_exported([_run(5, None, float("nan"), 0.1)], "val_auc").seed == 5
    stats = mean_std(runs, "test")
    assert stats["auc"].n == 3 and stats["auc"].mean == pytest.approx((0.99 + 0.5 + 0.7) / 3)
    assert stats["f1"] == MeanStd(None, None, 0)
