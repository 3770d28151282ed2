"""The verdict's branches, its external-set check, the seed-stability rule and the
retrain's pure parts, on made-up predictions."""

from __future__ import annotations

import numpy as np
import pytest

from tuning.external import source_warnings
from tuning.results import Check, MeanStd, Metrics, RoleSummary, Verdict, seed_spread
from tuning.retrain import SeedRun, mean_std, pick_exported
from tuning.verdict import decide

RNG = np.random.default_rng(0)
LABELS = np.array([0] * 40 + [1] * 40)  # 0 = corona (positive), 1 = normal


def _probs(separation: float) -> np.ndarray:
    """Positive-class scores that separate the classes by ``separation`` (0: chance)."""
    score = RNG.normal(0, 1, LABELS.size) + separation * (LABELS == 0)
    p = 1 / (1 + np.exp(-score))
    return np.stack([p, 1 - p], axis=1)


def _metrics(sens: float = 0.8, spec: float = 0.8, width: float = 0.1, called: int = 40) -> Metrics:
    return Metrics(
        n=80, auc=0.9, sensitivity=sens, specificity=spec, threshold=0.5,
        predicted_positive=called, positive_class="corona",
        ci95={
            "auc": (0.8, 0.95),
            "sensitivity": (max(0.0, sens - width), min(1.0, sens + width)),
            "specificity": (max(0.0, spec - width), min(1.0, spec + width)),
        },
    )  # fmt: skip


def _summary(auc: float, metrics: Metrics | None = None) -> RoleSummary:
    return RoleSummary(
        role="best", protocol="", seeds=(0,), exported_seed=0,
        test_mean_std={"auc": MeanStd(auc, 0.0, 1)}, validation_mean_std={},
        exported_validation=None, exported_test=metrics or _metrics(),
    )  # fmt: skip


def _verdict(
    best_sep: float,
    base_sep: float,
    labels: np.ndarray = LABELS,
    best: Metrics | None = None,
    leakage: tuple[str, ...] = (),
    baseline: Metrics | None = None,
    external: dict[str, dict[str, Metrics]] | None = None,
) -> Verdict:
    roles = {"best": _summary(0.9, best), "baseline": _summary(0.6, baseline)}
    probs = {"best": _probs(best_sep), "baseline": _probs(base_sep)}
    return decide(
        roles, probs, labels, 0, ("corona", "normal"), n_boot=300, seed=0, leakage=leakage,
        external=external,
    )  # fmt: skip


def test_a_clearly_better_model_with_good_rates_is_green():
    verdict = _verdict(3.0, 0.0)
    assert verdict.kind == "good" and verdict.beat_recipe is True
    assert verdict.versus["baseline"].paired_ci95[0] > 0
    assert verdict.text.startswith("tuning beat the recipe")
    assert all(c.passed for c in verdict.checks)


def test_a_clearly_worse_model_is_red():
    verdict = _verdict(0.0, 3.0)
    assert verdict.beat_recipe is False and verdict.kind == "bad"
    assert "did NOT beat" in verdict.versus["baseline"].text


def test_the_interval_is_shown_beside_the_difference_it_belongs_to():
    # The decision is on the exported models' paired difference: the line gives that
    # difference next to its interval, and the mean over seeds (another number) labelled.
    versus = _verdict(0.0, 3.0).versus["baseline"]
    lo, hi = versus.paired_ci95
    assert versus.paired_difference is not None and lo <= versus.paired_difference <= hi
    shown = f"paired difference {versus.paired_difference:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}]"
    assert shown in versus.text
    assert "exported models' test AUC 0.900 vs 0.900" in versus.text  # the fixture's metrics
    assert "mean test AUC over seeds 0.900 vs 0.600, +0.300" in versus.text


def test_equal_models_give_no_clear_winner_and_an_amber_banner():
    verdict = _verdict(1.0, 1.0)
    assert verdict.beat_recipe is None and verdict.kind == "warn"
    lo, hi = verdict.versus["baseline"].paired_ci95
    assert lo <= 0 <= hi and "no clear winner" in verdict.text


def test_a_model_that_finds_no_case_is_never_green():
    # Better AUC than the recipe, but at its operating point it calls no image positive.
    verdict = _verdict(3.0, 0.0, best=_metrics(sens=0.0, spec=1.0, width=0.0, called=0))
    assert verdict.kind == "bad"
    failed = {c.name for c in verdict.checks if c.passed is False}
    assert "sensitivity" in failed and "sensitivity 0.000" in verdict.text
    # A lower bound under the floor, point above it: not shown, amber.
    verdict = _verdict(3.0, 0.0, best=_metrics(sens=0.55, width=0.2))
    assert verdict.kind == "warn" and "lower bound below the floor" in verdict.text


def test_leakage_between_train_and_test_turns_the_banner_red():
    verdict = _verdict(3.0, 0.0, leakage=("exact (0/256 bits): train/a.png <-> test/b.png",))
    assert verdict.kind == "bad" and "both train and test" in verdict.text


def test_an_unusable_baseline_is_named_not_celebrated_over():
    # The recipe calls every image positive: beating it shows nothing.
    verdict = _verdict(3.0, 0.0, baseline=_metrics(sens=1.0, spec=0.0, called=80))
    v = verdict.versus["baseline"]
    assert not v.usable and "calls every test image corona" in v.unusable_reason
    assert verdict.kind == "warn"  # no usable baseline was beaten
    assert "no baseline is usable" in verdict.text


def test_no_verdict_on_a_tiny_test_split_or_a_constant_model():
    small = np.array([0] * 8 + [1] * 8)
    roles = {"best": _summary(0.9), "baseline": _summary(0.6)}
    verdict = decide(
        roles, {"best": _probs_n(16), "baseline": _probs_n(16)}, small, 0, ("corona", "normal"),
        n_boot=50, seed=0,
    )  # fmt: skip
    assert verdict.kind == "none" and "only 8 of class 'corona'" in verdict.text
    flat = np.full((LABELS.size, 2), 0.5)
    verdict = decide(
        roles, {"best": flat, "baseline": _probs(1.0)}, LABELS, 0, ("corona", "normal"),
        n_boot=50, seed=0,
    )  # fmt: skip
    assert verdict.kind == "none" and "same score" in verdict.text


def test_a_zero_width_interval_is_not_evidence():
    same = _probs(2.0)
    roles = {"best": _summary(0.9), "baseline": _summary(0.9)}
    verdict = decide(
        roles, {"best": same, "baseline": same}, LABELS, 0, ("corona", "normal"),
        n_boot=100, seed=0,
    )  # fmt: skip
    assert verdict.beat_recipe is None and "not evidence" in verdict.versus["baseline"].text


def _probs_n(n: int) -> np.ndarray:
    p = np.linspace(0.1, 0.9, n)
    return np.stack([p, 1 - p], axis=1)


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


# --- the external-set check --------------------------------------------------------------
# The tuned model's internal test AUC interval is [0.8, 0.95] (`_metrics`).


def _outside(auc: float | None) -> Metrics:
    undefined = {"auc": "only one class in the labels"} if auc is None else {}
    return Metrics(n=40, auc=auc, threshold=0.5, undefined=undefined)


def _external_checks(verdict: Verdict) -> list[Check]:
    return [c for c in verdict.checks if c.name.startswith("external set")]


def test_an_external_auc_below_the_internal_interval_fails_a_blocking_check():
    # The measured case: tuned on covid-cxr (children as normals), 0.445 on adults.
    verdict = _verdict(3.0, 0.0, external={"adult": {"best": _outside(0.445)}})
    (check,) = _external_checks(verdict)
    assert check.name == "external set adult" and check.passed is False and check.blocking
    assert "AUC is 0.445, below the internal test AUC's interval [0.800, 0.950]" in check.detail
    # Everything else passed (it beat the recipe, good rates): the external failure is red.
    assert all(c.passed for c in verdict.checks if c is not check)
    assert verdict.kind == "bad" and check.detail in verdict.text
    # The same words as the study's warning, so the two can never disagree.
    internal = _summary(0.9).exported_test
    assert source_warnings(internal, {"adult": _outside(0.445)}) == [check.detail]


def test_an_external_auc_within_or_above_the_interval_passes():
    for auc in (0.8, 0.97):  # at the lower bound, above the upper one
        verdict = _verdict(3.0, 0.0, external={"adult": {"best": _outside(auc)}})
        (check,) = _external_checks(verdict)
        assert check.passed is True and check.blocking, auc
        assert verdict.kind == "good" and "its AUC on adult is not below" in verdict.text


def test_no_external_set_means_no_external_check():
    verdict = _verdict(3.0, 0.0)
    assert _external_checks(verdict) == [] and verdict.kind == "good"


def test_an_external_set_without_an_auc_informs_and_does_not_block():
    # One class only (adult normals, say): nothing is shown either way.
    verdict = _verdict(3.0, 0.0, external={"normals": {"best": _outside(None)}})
    (check,) = _external_checks(verdict)
    assert check.passed is None and not check.blocking
    assert "undefined (only one class in the labels)" in check.detail
    assert verdict.kind == "good"


def test_a_baselines_external_failure_is_not_the_tuned_models():
    verdict = _verdict(
        3.0, 0.0, external={"adult": {"best": _outside(0.9), "baseline": _outside(0.3)}}
    )
    (check,) = _external_checks(verdict)
    assert check.passed is True and verdict.kind == "good"


def test_external_checks_are_listed_even_without_a_verdict():
    small = np.array([0] * 8 + [1] * 8)
    roles = {"best": _summary(0.9), "baseline": _summary(0.6)}
    verdict = decide(
        roles, {"best": _probs_n(16), "baseline": _probs_n(16)}, small, 0, ("corona", "normal"),
        n_boot=50, seed=0, external={"adult": {"best": _outside(0.445)}},
    )  # fmt: skip
    assert verdict.kind == "none"
    assert [c.passed for c in _external_checks(verdict)] == [False]


def test_blocking_is_a_field_and_old_comparison_files_read_the_same():
    # The unusable recipe informs without blocking: set by the verdict, not by its words.
    verdict = _verdict(3.0, 0.0, baseline=_metrics(sens=1.0, spec=0.0, called=80))
    recipe = next(c for c in verdict.checks if c.name == "beats the recipe")
    assert recipe.blocking is False and recipe.passed is None
    assert all(c.blocking for c in verdict.checks if c is not recipe)
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    # A comparison.json from before the field: the unusable-baseline check informs.
    old = [{k: v for k, v in c.to_dict().items() if k != "blocking"} for c in verdict.checks]
    assert [Check.from_dict(c) for c in old] == list(verdict.checks)


# --- the seed-stability rule -------------------------------------------------------------


def _seeds(aucs: list[float | None], interval: tuple[float, float] | None) -> RoleSummary:
    metrics = Metrics(n=80, auc=0.85, ci95={"auc": interval} if interval else {})
    per_seed = tuple(
        {"seed": i, "test": None if auc is None else {"auc": auc}} for i, auc in enumerate(aucs)
    )
    return RoleSummary(
        role="best", protocol="", seeds=tuple(range(len(aucs))), exported_seed=0,
        test_mean_std={}, validation_mean_std={}, exported_validation=None,
        exported_test=metrics, per_seed=per_seed,
    )  # fmt: skip


def test_seeds_that_spread_wider_than_the_interval_are_flagged():
    spread = seed_spread(_seeds([0.85, 0.60, 0.80], (0.80, 0.90)))
    assert spread.aucs == ((0, 0.85), (1, 0.60), (2, 0.80))
    assert spread.spread == pytest.approx(0.25) and spread.width == pytest.approx(0.10)
    assert spread.unstable is True
    # The flag says the rule with its numbers.
    assert spread.text.startswith("seeds disagree: the spread of their test AUCs (0.250: ")
    assert "exceeds the width of the exported model's 95% test-AUC interval" in spread.text
    assert "(width 0.100: [0.800, 0.900])" in spread.text


def test_seeds_within_the_interval_width_are_not_flagged():
    assert seed_spread(_seeds([0.85, 0.82, 0.88], (0.80, 0.90))).unstable is False
    # Equal to the width is not more than it.
    assert seed_spread(_seeds([0.80, 0.90], (0.80, 0.90))).unstable is False


def test_the_rule_is_undecided_without_two_seeds_or_an_interval():
    one = seed_spread(_seeds([0.85, None], (0.80, 0.90)))  # the second seed has no test
    assert one.unstable is None and one.spread is None and one.aucs == ((0, 0.85),)
    assert "one seed has a test AUC" in one.text
    bare = seed_spread(_seeds([0.85, 0.50], None))
    assert bare.unstable is None and bare.spread == pytest.approx(0.35)
    assert "no test-AUC interval" in bare.text
