"""What the terminal says after the retrain: the verdict's checks (an external set's
failure among them) once each, and a flag for seeds that disagree."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from tuning.external import source_warnings
from tuning.progress import PlainProgress, RichProgress, StudyObserver
from tuning.results import MeanStd, Metrics, RoleSummary
from tuning.verdict import decide

RNG = np.random.default_rng(0)
LABELS = RNG.permutation([0] * 40 + [1] * 40)
INTERNAL = Metrics(
    n=80, auc=0.975, sensitivity=0.9, specificity=0.9, threshold=0.5, predicted_positive=40,
    positive_class="corona",
    ci95={"auc": (0.94, 0.99), "sensitivity": (0.8, 0.97), "specificity": (0.8, 0.97)},
)  # fmt: skip
ADULT = Metrics(n=40, auc=0.445, threshold=0.5)


def _role(role: str, aucs: list[float]) -> RoleSummary:
    return RoleSummary(
        role=role, protocol="", seeds=tuple(range(len(aucs))), exported_seed=0,
        test_mean_std={"auc": MeanStd.of(aucs)}, validation_mean_std={}, exported_validation=None,
        exported_test=INTERNAL, per_seed=tuple(
            {"seed": i, "test": {"auc": a}} for i, a in enumerate(aucs)
        ),
        external={"adult": ADULT} if role == "best" else {},
    )  # fmt: skip


def _probs(separation: float) -> np.ndarray:
    score = RNG.normal(0, 1, LABELS.size) + separation * (LABELS == 0)
    p = 1 / (1 + np.exp(-score))
    return np.stack([p, 1 - p], axis=1)


def _plain(out: io.StringIO) -> StudyObserver:
    return PlainProgress(out)


def _rich(out: io.StringIO) -> StudyObserver:
    return RichProgress(Console(file=out, width=400, color_system=None))


@pytest.mark.parametrize("make", [_plain, _rich], ids=["plain", "rich"])
def test_an_external_failure_is_told_once_as_a_check_and_unstable_seeds_are_flagged(make):
    # The tuned model's seeds agree; the recipe's spread 0.3 against an interval 0.05 wide.
    roles = {"best": _role("best", [0.975, 0.96]), "baseline": _role("baseline", [0.9, 0.6])}
    verdict = decide(
        roles, {"best": _probs(4.0), "baseline": _probs(0.0)}, LABELS, 0, ("corona", "normal"),
        n_boot=200, seed=0, external={"adult": {"best": ADULT}},
    )  # fmt: skip
    assert verdict.kind == "bad" and verdict.beat_recipe is True  # red for adults alone
    notes = source_warnings(INTERNAL, roles["best"].external)
    assert len(notes) == 1 and "AUC is 0.445" in notes[0]
    out = io.StringIO()
    observer = make(out)
    # What the study's _conclude does: the comparison, then a warning per external note.
    observer.comparison(roles, verdict)
    for note in notes:
        observer.warning(note)
    observer.warning("something else")
    lines = out.getvalue().splitlines()
    check = [line for line in lines if "external set adult" in line]
    assert len(check) == 1 and "AUC is 0.445" in check[0]
    assert ("FAILED" in check[0]) if make is _plain else ("✗" in check[0])
    # The failure is in the verdict's own line too, and nowhere else: no second warning.
    assert sum("AUC is 0.445" in line for line in lines) == 2
    assert any("warning: something else" in line for line in lines)
    flags = [line for line in lines if "seeds of the" in line]
    assert len(flags) == 1 and "seeds of the recipe model: seeds disagree" in flags[0]
    assert "(0.300: 0.600 to 0.900 over 2 seeds)" in flags[0]


def test_a_retrain_cut_short_is_not_called_done():
    out = io.StringIO()
    observer = _plain(out)
    observer.retrain_started(["default", "baseline"], [0, 1], 2)
    observer.retrain_progress("default", 0, 2, 2, finished=True)
    observer.retrain_finished(12.0, complete=False)
    text = out.getvalue()
    assert "all seeds done" not in text
    assert "retrain: stopped after" in text and "1 seed(s) done" in text and "--resume" in text
    out = io.StringIO()
    observer = _plain(out)
    observer.retrain_started(["default"], [0], 1)
    observer.retrain_finished(3.0)
    assert "retrain: all seeds done" in out.getvalue()


def test_a_study_whose_trials_met_no_constraint_says_so_not_that_they_failed(tmp_path):
    import pandas as pd

    from tuning.run import nothing_to_retrain
    from tuning.study import StudyResult

    def result(board: pd.DataFrame) -> StudyResult:
        return StudyResult(
            run_dir=tmp_path, best_params=None, best_trial=None, leaderboard=board,
            verdict=None, best=None, baseline=None, default=None, wall_s=1.0, paths={},
        )  # fmt: skip

    infeasible = pd.DataFrame(
        {"stop_reason": ["completed", "completed"], "feasible": [False, False]}
    )
    line = nothing_to_retrain(result(infeasible))
    assert line.startswith("no trial met the constraints (2 trials: 2 completed, 0 of 2 feasible)")
    failed = pd.DataFrame({"stop_reason": ["failed", "failed"], "feasible": [None, None]})
    assert nothing_to_retrain(result(failed)).startswith("no trial succeeded (2 trials: 2 failed)")
