"""Did tuning beat the recipe? A paired comparison on the same test images.

The verdict calls a difference real only when the paired 95% bootstrap interval of the
exported models' test-AUC difference excludes 0; the mean over seeds is reported beside
it. Three outcomes, each said in words: beat (green), did not (red), no clear winner or
undecided (amber).
"""

from __future__ import annotations

import numpy as np

from tuning.results import RoleSummary, Verdict


def compare(
    best: RoleSummary,
    baseline: RoleSummary,
    y_test: np.ndarray,
    best_probs: np.ndarray,
    baseline_probs: np.ndarray,
    positive_index: int,
    n_boot: int,
    seed: int,
) -> Verdict:
    """Tuned minus baseline test AUC: over seeds (mean ± std) and, for the two exported
    models, as a paired bootstrap interval over test images.

    Args:
        best: The retrained winner.
        baseline: The retrained recipe.
        y_test: Test labels.
        best_probs: The exported winner's test probabilities, (N, classes).
        baseline_probs: The exported baseline's.
        positive_index: Index of the positive class.
        n_boot: Bootstrap resamples.
        seed: Seed of the bootstrap.
    """
    from covidxr_core.metrics import paired_auc_difference

    mean_best = best.test_stat("auc").mean
    mean_base = baseline.test_stat("auc").mean
    delta_mean = None if mean_best is None or mean_base is None else mean_best - mean_base
    paired = paired_auc_difference(
        y_test, best_probs, baseline_probs, positive_index, n_boot=n_boot, seed=seed
    )
    ci = paired["ci95"]
    interval = (float(ci[0]), float(ci[1])) if ci is not None else None
    beat: bool | None
    if mean_best is None or mean_base is None or delta_mean is None or paired["difference"] is None:
        text = "undecided: the test split cannot give an AUC (one class only?)"
        beat = None
    elif interval is not None and interval[0] > 0:
        text = (
            f"tuning beat the recipe: test AUC {mean_best:.3f} vs {mean_base:.3f} "
            f"(+{delta_mean:.3f} over seeds; paired 95% CI of the exported models' "
            f"difference [{interval[0]:+.3f}, {interval[1]:+.3f}] excludes 0)"
        )
        beat = True
    elif interval is not None and interval[1] < 0:
        text = (
            f"tuning did NOT beat the recipe: test AUC {mean_best:.3f} vs {mean_base:.3f} "
            f"({delta_mean:+.3f}; paired 95% CI [{interval[0]:+.3f}, {interval[1]:+.3f}] "
            "is below 0)"
        )
        beat = False
    else:
        shown = f"[{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "undefined"
        text = (
            f"no clear winner: test AUC {mean_best:.3f} (tuned) vs {mean_base:.3f} (recipe), "
            f"difference {delta_mean:+.3f}, within the paired 95% CI {shown}"
        )
        beat = None
    return Verdict(
        text=text,
        beat_recipe=beat,
        tuned_mean=mean_best,
        baseline_mean=mean_base,
        difference_mean=delta_mean,
        paired_difference=paired["difference"],
        paired_ci95=interval,
    )


__all__ = ["compare"]
