"""The operating point inside a real training run: chosen on validation, saved, applied."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from covidxr_core import SplitArrays, TrainConfig, preset, train
from covidxr_core.operating_point import OperatingPoint, choose_threshold

from .helpers import make_dataset


@pytest.fixture(scope="module")
def runs():
    """One dataset trained twice: as is, and with every test label flipped."""
    data = make_dataset(seed=3)
    test = data.splits["test"]
    flipped = dataclasses.replace(
        data,
        splits={**data.splits, "test": SplitArrays(test.images, 1 - test.labels, test.files)},
    )
    config = TrainConfig(model=preset("smoke", widths=(4,) * 6), epochs=2, batch_size=16)
    return data, train(config, data, n_boot=100), train(config, flipped, n_boot=100)


def test_the_threshold_comes_from_validation_and_test_labels_cannot_move_it(runs):
    data, result, flipped = runs
    val = data.splits["validation"]
    probs = np.asarray(result.model.predict(val.images, verbose=0))
    expected = choose_threshold(val.labels, probs[:, 0], 0, OperatingPoint("youden"))
    assert result.threshold == pytest.approx(expected)
    assert flipped.threshold == result.threshold
    assert flipped.validation == result.validation
    assert result.test["threshold"] == result.threshold == result.validation["threshold"]
    # Flipping the test labels changes the test numbers (AUC becomes 1 - AUC), not the
    # decision: the model called exactly the same images positive.
    assert flipped.test["auc"] == pytest.approx(1 - result.test["auc"])
    assert flipped.test["predicted_positive"] == result.test["predicted_positive"]


def test_the_saved_model_carries_the_decision_and_predict_applies_it(runs, tmp_path):
    from covidxr_core.predict import load_classifier, predict_images

    data, result, _ = runs
    path = tmp_path / "model.keras"
    result.model.save(path)
    model, meta = load_classifier(path)
    assert meta["threshold"] == pytest.approx(result.threshold)
    assert meta["operating_point"] == "youden"
    assert meta["temperature"] == pytest.approx(result.calibration["temperature"])
    test = data.splits["test"]
    predictions = predict_images(model, meta, test.images, list(test.files))
    for pred in predictions:
        called = pred.probabilities["corona"] >= result.threshold
        assert pred.predicted_class == ("corona" if called else "normal")
        assert pred.to_json()["threshold"] == pytest.approx(result.threshold)
    # The same decisions the test metrics counted.
    assert (
        sum(p.predicted_class == "corona" for p in predictions)
        == (result.test["predicted_positive"])
    )


def test_temperature_is_fitted_on_validation_and_does_not_raise_its_nll(runs):
    _, result, _ = runs
    cal = result.calibration
    assert cal["fitted_on"] == "validation" and cal["temperature"] > 0
    assert cal["validation"]["nll_after"] <= cal["validation"]["nll_before"] + 1e-9
    assert set(cal["test"]) >= {"ece_before", "ece_after", "brier_before", "brier_after"}


def test_a_target_sensitivity_is_met_on_validation():
    data = make_dataset(seed=4)
    config = TrainConfig(
        model=preset("smoke", widths=(4,) * 6), epochs=1, batch_size=16, operating_point="sens=0.9"
    )
    result = train(config, data, evaluate_test=False, n_boot=0)
    assert result.validation["sensitivity"] >= 0.9
    assert result.validation["decision"] == "threshold"
