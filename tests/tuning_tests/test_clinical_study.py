"""A study with an external validation set: evaluated at each model's operating point,
reported by name, never used for anything else."""

from __future__ import annotations

import json

import pytest

from tuning import run_study

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]


def test_an_external_set_is_evaluated_and_reported_by_name(tiny_spec, cxr_fixture):
    result = run_study(tiny_spec("ext", external=(f"fixture={cxr_fixture}",)))
    run = result.run_dir
    comparison = json.loads((run / "comparison.json").read_text())
    assert set(comparison["external"]) == {"fixture"}
    for role in ("best", "baseline", "default"):
        metrics = comparison["external"]["fixture"][role]
        assert metrics["n"] == 20  # cxr-fixture: 10 corona + 10 normal
        summary = json.loads((run / role / "metrics.json").read_text())
        # Scored at the model's own threshold, chosen on the main validation split.
        assert metrics["threshold"] == summary["threshold"]
        assert summary["external"]["fixture"]["auc"] == metrics["auc"]
        for name in ("auc", "sensitivity", "specificity", "ppv", "npv", "ece", "brier"):
            assert name in metrics and name in metrics["ci95"], name
    # The external set decided nothing: the search and the threshold never saw it.
    assert result.best.threshold == result.best.exported_validation.threshold
    page = (run / "report.html").read_text()
    assert "fixture" in page and "External validation" in page
    card = (run / "best" / "MODEL_CARD.md").read_text()
    external_part = card.split("## External validation")[1].split("## Verdict")[0]
    assert "internal test" in external_part and "fixture" in external_part
