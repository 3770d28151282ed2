"""The operating point and calibration: thresholds chosen on validation, ECE, temperature."""

from __future__ import annotations

import numpy as np
import pytest

from covidxr_core.calibration import (
    apply_temperature,
    bin_index,
    brier,
    ece,
    fit_temperature,
    nll,
    reliability,
)
from covidxr_core.errors import ConfigError
from covidxr_core.metrics import classification_metrics
from covidxr_core.operating_point import OperatingPoint, choose_threshold, decide

NAMES = ("corona", "normal")  # positive class 0


def _probs(p_pos: np.ndarray) -> np.ndarray:
    p_pos = np.asarray(p_pos, dtype=np.float64)
    return np.stack([p_pos, 1 - p_pos], axis=1)


def test_operating_points_parse_and_refuse_what_they_cannot_mean():
    assert OperatingPoint.parse("youden") == OperatingPoint("youden")
    assert OperatingPoint.parse("sens=0.95") == OperatingPoint("sens", 0.95)
    assert str(OperatingPoint.parse("SPEC=0.9")) == "spec=0.9"
    for bad in ("sens", "sens=1.5", "spec=x", "youden=1", "argmax", "sens=0"):
        with pytest.raises(ConfigError, match="operating point"):
            OperatingPoint.parse(bad)


def test_youden_sens_and_spec_thresholds_on_a_hand_made_split():
    # positives (label 0) score 0.9, 0.8, 0.4; negatives 0.7, 0.3, 0.2, 0.1
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    # >= 0.4: sens 1, spec 3/4 (J = 0.75); >= 0.8: sens 2/3, spec 1 (J = 0.67)
    assert choose_threshold(labels, scores, 0, OperatingPoint("youden")) == 0.4
    assert choose_threshold(labels, scores, 0, OperatingPoint("sens", 0.95)) == 0.4
    assert choose_threshold(labels, scores, 0, OperatingPoint("spec", 0.95)) == 0.8
    assert choose_threshold(labels, scores, 0, OperatingPoint("sens", 0.6)) == 0.8
    assert choose_threshold(np.zeros(3), scores[:3], 0, OperatingPoint()) is None
    assert decide(_probs(scores), 0, 0.4).tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert decide(_probs(scores), 0, None).tolist() == [0, 0, 1, 0, 1, 1, 1]  # argmax


def test_thresholded_metrics_use_the_threshold_and_keep_ranking_metrics():
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    probs = _probs([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    at_half = classification_metrics(labels, probs, 0, NAMES, n_boot=0)
    at_04 = classification_metrics(labels, probs, 0, NAMES, n_boot=0, threshold=0.4)
    assert at_half["decision"] == "argmax" and at_04["decision"] == "threshold"
    assert at_half["sensitivity"] == pytest.approx(2 / 3)
    assert at_04["sensitivity"] == 1.0 and at_04["specificity"] == pytest.approx(3 / 4)
    assert at_04["ppv"] == pytest.approx(3 / 4) and at_04["npv"] == 1.0
    assert at_04["predicted_positive"] == 4 and at_04["threshold"] == 0.4
    assert at_04["auc"] == at_half["auc"] == pytest.approx(11 / 12)
    # AP by hand: ranks 0.9(+) 0.8(+) 0.7(-) 0.4(+): (1 + 1 + 3/4) / 3
    assert at_04["average_precision"] == pytest.approx((1 + 1 + 0.75) / 3)
    # Three classes: argmax, whatever threshold is passed.
    three = classification_metrics(
        np.array([0, 1, 2]), np.eye(3), 0, ("a", "b", "c"), n_boot=0, threshold=0.9
    )
    assert three["decision"] == "argmax" and three["threshold"] is None


def test_average_precision_matches_a_brute_force_sum():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    scores = np.round(rng.random(60), 1)  # many ties
    m = classification_metrics(labels, _probs(scores), 0, NAMES, n_boot=0)
    is_pos = labels == 0
    brute = 0.0
    for t in np.unique(scores)[::-1]:
        called = scores >= t
        gained = (is_pos & (scores == t)).sum() / is_pos.sum()
        brute += gained * (is_pos & called).sum() / called.sum()
    assert m["average_precision"] == pytest.approx(brute)


def test_every_metric_has_an_interval_that_contains_it():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    p = np.clip(0.5 + 0.3 * (labels == 0) + rng.normal(0, 0.2, 200), 0.01, 0.99)
    m = classification_metrics(labels, _probs(p), 0, NAMES, n_boot=300, threshold=0.6)
    for name, interval in m["ci95"].items():
        assert interval is not None, name
        lo, hi = interval
        assert lo <= m[name] + 1e-9 and m[name] - 1e-9 <= hi and lo < hi, name


def test_ece_is_small_when_calibrated_and_large_when_overconfident():
    rng = np.random.default_rng(1)
    p = rng.random(4000)
    calibrated = rng.random(4000) < p  # labels drawn from the probabilities themselves
    assert ece(calibrated, p) < 0.03
    overconfident = np.where(p > 0.5, 0.99, 0.01)
    assert ece(calibrated, overconfident) > 0.2
    assert brier(calibrated, overconfident) > brier(calibrated, p)
    bins = reliability(calibrated, p)
    assert len(bins) == 10 and sum(b.count for b in bins) == 4000
    assert all(abs(b.mean_score - b.positive_rate) < 0.06 for b in bins)


def test_equal_mass_bins_keep_ties_together_and_shrink_for_small_sets():
    assert bin_index(np.array([0.1, 0.5, 0.5, 0.5, 0.9, 0.9])).tolist() == [0, 0, 0, 0, 0, 0]
    scores = np.r_[np.zeros(20), np.linspace(0.1, 1, 30)]
    bins = bin_index(scores)
    assert len(set(bins[:20].tolist())) == 1 and bins.max() == 9


def test_temperature_scaling_lowers_validation_nll_and_keeps_the_ranking():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 500)
    # An overconfident model: right 75% of the time, always 99% sure.
    right = rng.random(500) < 0.75
    p_pos = np.where((labels == 0) == right, 0.99, 0.01)
    probs = _probs(p_pos)
    t = fit_temperature(labels, probs)
    assert t > 1.5  # softened
    scaled = apply_temperature(probs, t)
    assert nll(labels, scaled) < nll(labels, probs) - 0.5
    assert np.array_equal(np.argsort(scaled[:, 0]), np.argsort(probs[:, 0]))
    assert ece(labels == 0, scaled[:, 0]) < ece(labels == 0, probs[:, 0])
    # A calibrated model keeps T near 1.
    p = rng.random(2000)
    drawn = np.where(rng.random(2000) < p, 0, 1)
    assert fit_temperature(drawn, _probs(p)) == pytest.approx(1.0, abs=0.15)
