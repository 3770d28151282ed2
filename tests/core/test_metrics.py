"""classification_metrics against hand-computed cases; degenerate data never crashes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from covidxr_core.metrics import (
    CI_METRICS,
    binary_crossentropy,
    classification_metrics,
    paired_auc_difference,
    roc_points,
)

NAMES = ("corona", "normal")


def probs_for(pos_scores: list[float]) -> np.ndarray:
    """Two-class probabilities whose positive (index 0) column is ``pos_scores``."""
    p = np.asarray(pos_scores, dtype=np.float64)
    return np.stack([p, 1.0 - p], axis=1)


def test_hand_computed_case() -> None:
    y = np.array([0, 0, 1, 1, 1])
    probs = probs_for([0.9, 0.4, 0.3, 0.2, 0.6])
    m = classification_metrics(y, probs, 0, NAMES, n_boot=0)
    # predicted positive (argmax = corona): samples 0 and 4 -> TP=1, FN=1, FP=1, TN=2
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["confusion_labels"] == ["corona", "normal"]
    assert m["n"] == 5 and m["positive_class"] == "corona"
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(1 / 2)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(1 / 2)
    # positives score 0.9 and 0.4, negatives 0.3, 0.2, 0.6: 3 + 2 of 6 pairs ranked right
    assert m["auc"] == pytest.approx(5 / 6)
    expected_loss = -np.mean(
        [np.log(0.9), np.log(0.4), np.log(0.7), np.log(0.8), np.log(0.4)]
    )  # both columns give the same per-sample term for complementary probabilities
    assert m["loss"] == pytest.approx(expected_loss)
    assert set(m["ci95"]) == set(CI_METRICS) and all(v is None for v in m["ci95"].values())
    assert m["undefined"] == {}


def test_positive_index_one_swaps_the_roles() -> None:
    y = np.array([0, 0, 1, 1, 1])
    probs = probs_for([0.9, 0.4, 0.3, 0.2, 0.6])
    m = classification_metrics(y, probs, 1, NAMES, n_boot=0)
    assert m["positive_class"] == "normal"
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(1 / 2)
    assert m["auc"] == pytest.approx(5 / 6)  # the same ranking seen from the other class


@pytest.mark.parametrize(
    ("scores", "auc"),
    [
        ([0.9, 0.8, 0.3, 0.1], 1.0),  # perfect ranking
        ([0.1, 0.3, 0.8, 0.9], 0.0),  # reversed
        ([0.5, 0.5, 0.5, 0.5], 0.5),  # all tied
        ([0.7, 0.4, 0.4, 0.1], 0.875),  # one tied pair counts 1/2: (1+1+1+0.5)/4
    ],
)
def test_auc_known_values(scores: list[float], auc: float) -> None:
    y = np.array([0, 0, 1, 1])
    assert classification_metrics(y, probs_for(scores), 0, NAMES, n_boot=0)["auc"] == pytest.approx(
        auc
    )


def test_auc_matches_the_pairwise_definition_on_random_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = rng.integers(0, 10, 200) / 10.0  # many ties
    pos, neg = scores[y == 0], scores[y == 1]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    got = classification_metrics(y, probs_for(list(scores)), 0, NAMES, n_boot=0)["auc"]
    assert got == pytest.approx(pairs.mean())


def test_loss_matches_keras_binary_crossentropy() -> None:
    # In a subprocess so this NumPy-only test module never imports Keras itself.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 32)
    probs = probs_for(list(rng.random(32)))
    probs[0] = [1.0, 0.0]  # exercises the epsilon clip
    code = (
        "import json,sys,numpy as np,keras;"
        "d=json.load(sys.stdin);"
        "print(float(keras.losses.BinaryCrossentropy()(np.array(d['t']),np.array(d['p']))))"
    )
    payload = json.dumps({"t": np.eye(2)[y].tolist(), "p": probs.tolist()})
    run = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, text=True, check=True
    )
    keras_loss = float(run.stdout.strip().splitlines()[-1])
    ours = classification_metrics(y, probs, 0, NAMES, n_boot=0)["loss"]
    assert ours == pytest.approx(keras_loss, rel=1e-5)
    assert binary_crossentropy(np.eye(2)[y], probs) == pytest.approx(ours)


def test_no_positives_gives_none_with_reasons_not_a_crash() -> None:
    y = np.array([1, 1, 1])
    m = classification_metrics(y, probs_for([0.2, 0.7, 0.1]), 0, NAMES, n_boot=50)
    assert m["auc"] is None and "both classes" in m["undefined"]["auc"]
    assert m["sensitivity"] is None and "corona" in m["undefined"]["sensitivity"]
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == 0.0 and m["f1"] is None
    assert m["ci95"]["auc"] is None and m["ci95"]["sensitivity"] is None
    assert m["ci95"]["specificity"] is not None
    json.dumps(m, allow_nan=False)  # strict JSON as it stands


def test_no_predicted_positive_leaves_precision_undefined() -> None:
    y = np.array([0, 1, 0, 1])
    m = classification_metrics(y, probs_for([0.4, 0.1, 0.3, 0.2]), 0, NAMES, n_boot=0)
    assert m["precision"] is None and "predicted" in m["undefined"]["precision"]
    assert m["sensitivity"] == 0.0 and m["auc"] == pytest.approx(1.0)


def test_non_finite_probabilities_and_empty_input_are_reported() -> None:
    probs = probs_for([0.2, 0.7])
    probs[1, 0] = np.nan
    m = classification_metrics(np.array([0, 1]), probs, 0, NAMES)
    assert m["loss"] is None and "not finite" in m["undefined"]["loss"]
    empty = classification_metrics(np.array([], int), np.zeros((0, 2)), 0, NAMES)
    assert empty["n"] == 0 and empty["auc"] is None and empty["undefined"]["auc"] == "no samples"


def test_shape_mismatch_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        classification_metrics(np.array([0, 1]), np.zeros((3, 2)), 0, NAMES)
    with pytest.raises(ValueError, match="positive_index"):
        classification_metrics(np.array([0, 1]), np.zeros((2, 2)), 2, NAMES)


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    scores = np.clip(0.5 + 0.3 * (y == 0) + rng.normal(0, 0.25, 80), 0, 1)
    probs = probs_for(list(scores))
    a = classification_metrics(y, probs, 0, NAMES, n_boot=300, seed=7)
    b = classification_metrics(y, probs, 0, NAMES, n_boot=300, seed=7)
    c = classification_metrics(y, probs, 0, NAMES, n_boot=300, seed=8)
    assert a == b and a["ci95"] != c["ci95"]
    for name in ("auc", "sensitivity", "specificity"):
        lo, hi = a["ci95"][name]
        assert lo <= a[name] <= hi and hi - lo < 0.5


def test_bootstrap_of_a_perfect_ranking_stays_perfect() -> None:
    y = np.array([0] * 5 + [1] * 5)
    probs = probs_for([0.9] * 5 + [0.1] * 5)
    m = classification_metrics(y, probs, 0, NAMES, n_boot=200)
    for name in ("auc", "average_precision", "sensitivity", "specificity", "ppv", "npv", "f1"):
        assert m["ci95"][name] == [1.0, 1.0], name


def test_three_classes_use_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    m = classification_metrics(y, probs, 2, ("a", "b", "c"), n_boot=0)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["sensitivity"] == pytest.approx(0.5) and m["specificity"] == pytest.approx(1.0)


def test_paired_auc_difference() -> None:
    y = np.array([0, 0, 1, 1])
    good, bad = probs_for([0.9, 0.8, 0.3, 0.1]), probs_for([0.1, 0.3, 0.8, 0.9])
    d = paired_auc_difference(y, good, bad, 0, n_boot=100)
    assert d["auc_a"] == 1.0 and d["auc_b"] == 0.0 and d["difference"] == 1.0
    assert d["ci95"] == [1.0, 1.0]
    same = paired_auc_difference(y, good, good, 0, n_boot=100)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0]
    one_class = paired_auc_difference(np.array([1, 1]), good[:2], bad[:2], 0)
    assert (
        one_class["difference"] is None and "both classes" in one_class["undefined"]["difference"]
    )


def test_metrics_module_imports_without_keras() -> None:
    code = "import sys, covidxr_core.metrics; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- ROC points


def _brute_force_roc(labels: np.ndarray, scores: np.ndarray, positive: int) -> np.ndarray:
    """(fpr, tpr) rows: (0, 0), then "score >= t" for every distinct t, highest first."""
    is_pos = labels == positive
    rows = [(0.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= t
        rows.append(
            (
                float((predicted & ~is_pos).sum() / (~is_pos).sum()),
                float((predicted & is_pos).sum() / is_pos.sum()),
            )
        )
    return np.array(rows)


def test_roc_points_tied_scores_cross_together() -> None:
    labels = np.array([0, 1, 0, 1])  # positive class 0
    points = roc_points(labels, probs_for([0.8, 0.8, 0.3, 0.1]), 0)
    assert points is not None
    fpr, tpr = points
    # The tied pair (one positive, one negative) moves diagonally in one step: no point
    # at (0, 0.5) or (0.5, 0) that would depend on the order of the tied samples.
    assert fpr.tolist() == [0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_roc_points_run_from_origin_to_one_one_and_never_go_back() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 50)
    points = roc_points(labels, probs_for(rng.random(50).tolist()), 0)
    assert points is not None
    fpr, tpr = points
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()


@pytest.mark.parametrize("only", [0, 1])
def test_roc_points_of_one_class_is_none(only: int) -> None:
    labels = np.full(6, only)
    assert roc_points(labels, probs_for([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), 0) is None


@pytest.mark.parametrize("positive", [0, 1])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_points_match_a_brute_force_threshold_sweep(positive: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 80
    labels = rng.integers(0, 2, n)
    # Scores rounded to one decimal: many ties, inside and across the classes.
    pos_scores = np.round(rng.random(n), 1)
    probs = probs_for(pos_scores.tolist())
    points = roc_points(labels, probs, positive)
    assert points is not None
    expected = _brute_force_roc(labels, probs[:, positive], positive)
    np.testing.assert_allclose(np.column_stack(points), expected, rtol=0, atol=1e-12)
    # The area under these points is the AUC the metrics report (ties count one half).
    fpr, tpr = points
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    auc = classification_metrics(labels, probs, positive, NAMES, n_boot=0)["auc"]
    assert area == pytest.approx(auc, abs=1e-12)
