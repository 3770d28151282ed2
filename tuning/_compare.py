"""Did tuning beat the recipe? A paired comparison on the same test images."""

from __future__ import annotations

from typing import Any

import numpy as np


def compare(
    best: dict[str, Any],
    baseline: dict[str, Any],
    y_test: np.ndarray,
    best_probs: np.ndarray,
    baseline_probs: np.ndarray,
    positive_index: int,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Tuned minus baseline test AUC: over seeds (mean ± std) and, for the two exported
    models, as a paired bootstrap interval over test images.

    The verdict calls the difference real only when the paired 95% interval excludes 0.
    """
    from covidxr_core.metrics import paired_auc_difference

    mean_best = best["test_mean_std"]["auc"]["mean"]
    mean_base = baseline["test_mean_std"]["auc"]["mean"]
    delta_mean = None if mean_best is None or mean_base is None else mean_best - mean_base
    paired = paired_auc_difference(
        y_test, best_probs, baseline_probs, positive_index, n_boot=n_boot, seed=seed
    )
    lo, hi = paired["ci95"] if paired["ci95"] is not None else (None, None)
    if delta_mean is None or paired["difference"] is None:
        verdict = "undecided: the test split cannot give an AUC (one class only?)"
        beat = None
    elif lo is not None and lo > 0:
        verdict = (
            f"tuning beat the recipe: test AUC {mean_best:.3f} vs {mean_base:.3f} "
            f"(+{delta_mean:.3f} over seeds; paired 95% CI of the exported models' "
            f"difference [{lo:+.3f}, {hi:+.3f}] excludes 0)"
        )
        beat = True
    elif hi is not None and hi < 0:
        verdict = (
            f"tuning did NOT beat the recipe: test AUC {mean_best:.3f} vs {mean_base:.3f} "
            f"({delta_mean:+.3f}; paired 95% CI [{lo:+.3f}, {hi:+.3f}] is below 0)"
        )
        beat = False
    else:
        interval = f"[{lo:+.3f}, {hi:+.3f}]" if lo is not None else "undefined"
        verdict = (
            f"no clear winner: test AUC {mean_best:.3f} (tuned) vs {mean_base:.3f} (recipe), "
            f"difference {delta_mean:+.3f}, within the paired 95% CI {interval}"
        )
        beat = None
    return {
        "metric": "test AUC",
        "tuned_mean": mean_best,
        "baseline_mean": mean_base,
        "difference_mean": delta_mean,
        "paired_difference": paired["difference"],
        "paired_ci95": paired["ci95"],
        "beat_recipe": beat,
        "verdict": verdict,
    }
