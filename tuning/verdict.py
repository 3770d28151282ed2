"""What the study may claim about its tuned model: the verdict and the checks behind it.

Green (``good``) only when every check passes:

1. the tuned model beats every usable baseline (the recipe, the sensible default) on test
   AUC, by a paired 95% bootstrap interval that excludes 0 and has width (a zero-width
   interval is not evidence);
2. its sensitivity and specificity at the operating point have 95% interval lower bounds
   at or above a stated floor (default 0.5);
3. no leakage (the same radiograph in train and test) was found;
4. on every external set (``--external``) the tuned model's AUC is not below the lower
   bound of its internal test AUC's 95% interval (`tuning.external.source_check`).

Red (``bad``) when the tuned model is shown worse than a usable baseline, when its
sensitivity or specificity itself is below the floor (e.g. it finds no case at all), when
train-test leakage was found, or when it fails on an external set. Amber (``warn``) for
everything that could not be shown. No verdict (``none``) when the test split cannot
decide: fewer than `MIN_PER_CLASS` images of a class, or a tuned model that gives every
image the same score (the external checks are listed all the same).

The external check blocks, and its failure is red, because the internal test split comes
from the training source: a model that ranks another population's radiographs worse than
its own interval allows has learned something about the source rather than the disease
(on covid-cxr every normal image is a child's; a tuned model with internal test AUC 0.975
scored 0.445 on adult radiographs). Internal numbers cannot make such a model fit for
patients, so it must not be shown green.

Checks that do not block (``Check.blocking`` False) inform and leave the colour alone: a
baseline that cannot serve as one (its AUC interval lies below 0.5, or it calls every test
image the same class) is named as such, and beating it counts for nothing; an external
set on which the tuned model has no AUC (one class only) shows nothing either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tuning.external import source_check
from tuning.results import Check, Metrics, RoleSummary, Verdict, Versus

# The headline of a study whose race handed back the sensible default (tuning.race).
RETURNED_DEFAULT = (
    "tuning did not beat the sensible default: no searched configuration beat it on "
    "validation, so best/ is the sensible default itself"
)
MIN_PER_CLASS = 20  # test images per class below which no verdict is given
BASELINES = {"default": "the sensible default", "baseline": "the recipe"}


def usable(metrics: Metrics | None) -> tuple[bool, str | None]:
    """Whether a baseline's exported model can serve as one, and why not."""
    if metrics is None:
        return False, "it has no test metrics"
    interval = metrics.ci("auc")
    if interval is not None and interval[1] < 0.5:
        return False, (
            f"its test AUC interval [{interval[0]:.3f}, {interval[1]:.3f}] lies below 0.5: "
            "it ranks worse than chance"
        )
    called = metrics.predicted_positive
    if called is not None and called in (0, metrics.n):
        which = metrics.positive_class if called else "not " + str(metrics.positive_class)
        return False, f"it calls every test image {which}"
    return True, None


def versus(
    role: str,
    tuned: RoleSummary,
    baseline: RoleSummary,
    y_test: np.ndarray,
    tuned_probs: np.ndarray,
    baseline_probs: np.ndarray,
    positive_index: int,
    n_boot: int,
    seed: int,
) -> Versus:
    """The paired test-AUC comparison of the tuned model with one baseline."""
    from covidxr_core.metrics import paired_auc_difference

    label = BASELINES.get(role, role)
    ok, why = usable(baseline.exported_test)
    mean_t, mean_b = tuned.test_stat("auc").mean, baseline.test_stat("auc").mean
    delta = None if mean_t is None or mean_b is None else mean_t - mean_b
    paired = paired_auc_difference(
        y_test, tuned_probs, baseline_probs, positive_index, n_boot=n_boot, seed=seed
    )
    ci = paired["ci95"]
    interval = (float(ci[0]), float(ci[1])) if ci is not None else None
    beat: bool | None = None
    if paired["difference"] is None or interval is None or delta is None:
        text = f"against {label}: undecided (the test split cannot give a paired AUC interval)"
    elif interval[1] - interval[0] <= 1e-12:
        text = (
            f"against {label}: undecided: the paired interval [{interval[0]:+.3f}, "
            f"{interval[1]:+.3f}] has no width, which is not evidence"
        )
    else:
        # The decision is on the exported models (one seed each, picked on validation),
        # so the line gives their AUCs and paired difference beside the interval; the
        # mean over seeds, a different number, comes after and is labelled as such.
        exported = _auc(tuned.exported_test), _auc(baseline.exported_test)
        pair = (
            f"exported models' test AUC {exported[0]:.3f} vs {exported[1]:.3f}, "
            if exported[0] is not None and exported[1] is not None
            else "exported models' "
        )
        shown = (
            f"{pair}paired difference {paired['difference']:+.3f}, "
            f"95% CI [{interval[0]:+.3f}, {interval[1]:+.3f}]"
        )
        if interval[0] > 0:
            beat, how = True, "beat it: the interval excludes 0"
        elif interval[1] < 0:
            beat, how = False, "did NOT beat it: the interval is below 0"
        else:
            how = "no clear winner: the interval includes 0"
        text = (
            f"against {label}: {shown}; {how} (mean test AUC over seeds {mean_t:.3f} vs "
            f"{mean_b:.3f}, {delta:+.3f})"
        )
    if not ok:
        text += f". Not a usable baseline: {why}"
    return Versus(
        role=role,
        label=label,
        usable=ok,
        unusable_reason=why,
        tuned_mean=mean_t,
        baseline_mean=mean_b,
        difference_mean=delta,
        paired_difference=paired["difference"],
        paired_ci95=interval,
        beat=beat,
        text=text,
    )


def headline(verdict: Verdict) -> str:
    """What happened, in plain words, from the verdict's comparison with the default."""
    if verdict.kind == "good":
        return "Tuning beat the baselines"
    if verdict.text.startswith(RETURNED_DEFAULT):
        return "Tuning did not beat the sensible default: the default is handed back"
    check = next((c for c in verdict.checks if c.name == f"beats {BASELINES['default']}"), None)
    if check is None:
        return "Tuning was not compared with the sensible default"
    if check.passed is False:
        return "Tuning did NOT beat the sensible default: the tuned model is worse"
    if check.passed is True:
        return "Tuning beat the sensible default, but another check failed"
    return "Tuning did not beat the sensible default beyond chance"


def _auc(metrics: Metrics | None) -> float | None:
    return metrics.value("auc") if metrics is not None else None


def _floor_check(name: str, metrics: Metrics, floor: float) -> Check:
    value, interval = metrics.value(name), metrics.ci(name)
    at = f"at threshold {metrics.threshold:.3f}" if metrics.threshold is not None else "(argmax)"
    if value is None:
        return Check(name, None, f"{name} is undefined on the test split")
    shown = f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
    if interval is not None and interval[0] >= floor and interval[1] > interval[0]:
        return Check(name, True, f"{name} {shown} {at}: lower bound clears the {floor:g} floor")
    if value < floor:
        return Check(name, False, f"{name} {shown} {at} is below the {floor:g} floor")
    why = "has no interval" if interval is None else "has a lower bound below the floor"
    if interval is not None and interval[1] <= interval[0]:
        why = "has a zero-width interval, which is not evidence"
    return Check(name, None, f"{name} {shown} {at} {why} ({floor:g})")


def decide(
    roles: Mapping[str, RoleSummary],
    probs: Mapping[str, np.ndarray],
    y_test: np.ndarray,
    positive_index: int,
    class_names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    floor: float = 0.5,
    leakage: Sequence[str] = (),
    leakage_checked: bool = True,
    leakage_clear: str = "no duplicate found between train and test",
    external: Mapping[str, Mapping[str, Metrics]] | None = None,
    external_notes: Sequence[str] = (),
    returned_default: bool = False,
) -> Verdict:
    """The verdict on the tuned model (role ``best``) against the baselines present.

    Args:
        roles: ``best`` and any of ``baseline`` (the recipe) and ``default``.
        probs: Each role's exported model's test probabilities, (N, classes).
        y_test: Test labels.
        positive_index: Index of the positive class.
        class_names: Class names in label order.
        n_boot: Bootstrap resamples of the paired intervals.
        seed: Bootstrap seed.
        floor: Sensitivity and specificity interval lower bounds must reach it.
        leakage: Train-test duplicate pairs found (one line each).
        leakage_checked: False when the check could not run.
        leakage_clear: What a clean check says (synthetic data has no patients to leak).
        external: External set -> role -> metrics; the tuned model's (``best``) must
            not fall below its internal test AUC interval on any set (a check each).
        external_notes: Plain-language warnings about the external results.
        returned_default: The study's race found nothing better than the sensible default
            (`tuning.race`), so ``best`` is the default itself: the headline says so in
            plain words, and the comparison with the default is that statement (amber),
            not a paired interval of a model with itself.
    """
    tuned = roles["best"]
    test_metrics = {r: s.exported_test for r, s in roles.items() if s.exported_test}
    # The tuned model on each external set, against its own internal test interval.
    outside = {
        name: source_check(name, tuned.exported_test, by_role.get("best"))
        for name, by_role in (external or {}).items()
    }
    common = dict(
        sens_spec_floor=floor,
        test=test_metrics,
        external=dict(external or {}),
        external_notes=tuple(external_notes),
        leakage=tuple(leakage),
    )
    y_test = np.asarray(y_test).reshape(-1)
    counts = np.bincount(y_test, minlength=len(class_names))
    small = [(class_names[i], int(c)) for i, c in enumerate(counts) if c < MIN_PER_CLASS]
    if small:
        shown = ", ".join(f"{n} of class {name!r}" for name, n in small)
        return Verdict(
            text=f"no verdict: the test split has only {shown}; at least {MIN_PER_CLASS} "
            "images per class are needed to decide anything",
            kind="none",
            checks=tuple(outside.values()),
            **common,  # type: ignore[arg-type]
        )
    scores = np.asarray(probs["best"], dtype=np.float64)[:, positive_index]
    if np.ptp(scores) == 0:
        return Verdict(
            text="no verdict: the tuned model gives every test image the same score "
            "(AUC 0.5 through ties); it has learned nothing usable",
            kind="none",
            checks=tuple(outside.values()),
            **common,  # type: ignore[arg-type]
        )

    compared = {
        role: versus(
            role,
            tuned,
            roles[role],
            y_test,
            probs["best"],
            probs[role],
            positive_index,
            n_boot,
            seed,
        )
        for role in BASELINES
        if role in roles and not (returned_default and role == "default")
    }
    comparisons: list[Check] = []
    if returned_default:
        comparisons.append(Check(f"beats {BASELINES['default']}", None, RETURNED_DEFAULT))
    for v in compared.values():
        name = f"beats {v.label}"
        if not v.usable:
            comparisons.append(
                Check(
                    name,
                    None,
                    f"{v.label} is not a usable baseline: {v.unusable_reason}",
                    blocking=False,  # beating it would show nothing; not beating it, neither
                )
            )
        else:
            comparisons.append(Check(name, v.beat, v.text))
    if not any(v.usable for v in compared.values()):
        comparisons.append(
            Check(
                "beats a usable baseline",
                False,
                "no baseline is usable, so nothing shows that tuning helped",
            )
        )
    conditions: list[Check] = []
    metrics = tuned.exported_test
    if metrics is None:
        conditions.append(Check("test metrics", False, "the tuned model has no test metrics"))
    else:
        conditions.append(_floor_check("sensitivity", metrics, floor))
        conditions.append(_floor_check("specificity", metrics, floor))
    if not leakage_checked:
        conditions.append(Check("no train-test leakage", None, "the leakage check did not run"))
    elif leakage:
        conditions.append(
            Check(
                "no train-test leakage",
                False,
                f"{len(leakage)} radiograph(s) are in both train and test: {leakage[0]}",
            )
        )
    else:
        conditions.append(Check("no train-test leakage", True, leakage_clear))
    conditions += outside.values()

    checks = [*comparisons, *conditions]
    blocking = [c for c in checks if c.blocking]
    # Red needs something shown wrong: a usable baseline shown better, or a condition of
    # the tuned model itself that failed. A comparison that could not be won (no usable
    # baseline) is amber: nothing was shown either way.
    worse = any(v.usable and v.beat is False for v in compared.values())
    hard_fail = worse or any(c.passed is False for c in conditions if c.blocking)
    if all(c.passed is True for c in blocking):
        kind = "good"
        beaten = " and ".join(v.label for v in compared.values() if v.usable)
        rates = "; ".join(c.detail for c in checks if c.name in ("sensitivity", "specificity"))
        text = (
            f"tuning beat {beaten} on test AUC beyond the 95% intervals; {rates}; "
            "no train-test leakage found"
        )
        held = [name for name, c in outside.items() if c.passed is True]
        if held:
            text += f"; its AUC on {', '.join(held)} is not below the internal test AUC interval"
    else:
        kind = "bad" if hard_fail else "warn"
        failed = [c for c in blocking if c.passed is not True]
        text = "not shown: " + "; ".join(c.detail for c in failed)
        if returned_default:
            others = [c for c in failed if c.detail != RETURNED_DEFAULT]
            text = RETURNED_DEFAULT + (
                "; not shown either: " + "; ".join(c.detail for c in others)
                if others
                else "; every other check passed"
            )
    return Verdict(text=text, kind=kind, checks=tuple(checks), versus=compared, **common)  # type: ignore[arg-type]


__all__ = [
    "BASELINES",
    "MIN_PER_CLASS",
    "RETURNED_DEFAULT",
    "decide",
    "headline",
    "usable",
    "versus",
]
