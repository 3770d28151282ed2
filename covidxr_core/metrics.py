"""Classification metrics of one split, with bootstrap confidence intervals (NumPy only).

Every number a report or a tuner sees about predictions is computed here, so "positive",
"sensitivity" and the loss mean the same thing everywhere. A value that is undefined on
the given data (no positives, no predicted positives...) is None, with the reason under
``"undefined"``; nothing here raises on such data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# Keras clips probabilities to [epsilon, 1 - epsilon] before taking logs (epsilon = 1e-7
# by default); the same clip makes our loss match the one Keras reports.
_KERAS_EPSILON = 1e-7
# Every number below gets a 95% stratified bootstrap interval.
CI_METRICS = (
    "auc",
    "average_precision",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "accuracy",
    "ece",
    "brier",
)


def binary_crossentropy(onehot: np.ndarray, probs: np.ndarray) -> float:
    """Keras' binary cross-entropy of one-hot targets: mean over samples and classes."""
    p = np.clip(probs.astype(np.float64), _KERAS_EPSILON, 1.0 - _KERAS_EPSILON)
    return float(-np.mean(onehot * np.log(p) + (1.0 - onehot) * np.log(1.0 - p)))


def _weighted_auc(scores: np.ndarray, is_pos: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC for each row of ``weights`` (sample multiplicities), ties count 1/2.

    Sorting once and grouping equal scores makes every bootstrap resample an O(n) sum.

    Args:
        scores: (n,) positive-class scores.
        is_pos: (n,) bool, true class is positive.
        weights: (B, n) non-negative sample counts; a plain AUC is one row of ones.

    Returns:
        (B,) AUCs, NaN where a row has no positive or no negative weight.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # equal scores form one contiguous group after sorting; reduceat sums each group
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order].astype(np.float64)
    pos_g = np.add.reduceat(np.where(is_pos[order], w, 0.0), starts, axis=1)
    neg_g = np.add.reduceat(np.where(is_pos[order], 0.0, w), starts, axis=1)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    wins = np.sum(pos_g * (neg_below + 0.5 * neg_g), axis=1)
    total = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1.0), np.nan)


def _weighted_average_precision(
    scores: np.ndarray, is_pos: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Average precision (area under the precision-recall steps) per row of ``weights``.

    Images are taken in decreasing score; tied scores enter together. AP is the sum over
    those steps of (recall gained) x (precision there). NaN where a row has no positive.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order].astype(np.float64)
    tp_g = np.add.reduceat(np.where(is_pos[order], w, 0.0), starts, axis=1)
    fp_g = np.add.reduceat(np.where(is_pos[order], 0.0, w), starts, axis=1)
    tp, fp = np.cumsum(tp_g, axis=1), np.cumsum(fp_g, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
        total = tp_g.sum(axis=1)
        return np.where(
            total > 0, (tp_g * precision).sum(axis=1) / np.where(total > 0, total, 1.0), np.nan
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _resample_counts(y_true: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Stratified bootstrap resamples as blocks of a (resamples, n) count matrix.

    Resampling within each true class keeps the class counts of the data, so no resample
    loses a class the data has. Blocks keep the matrix near 16 MB whatever n is.
    """
    rng = np.random.default_rng(seed)
    n = y_true.shape[0]
    members_of = [np.flatnonzero(y_true == cls) for cls in np.unique(y_true)]
    block = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    for start in range(0, n_boot, block):
        size = min(block, n_boot - start)
        counts = np.zeros((size, n), dtype=np.int64)
        rows = np.arange(size)[:, None]
        for members in members_of:
            draws = rng.integers(0, members.size, size=(size, members.size))
            np.add.at(counts, (rows, members[draws]), 1)
        yield counts


def _percentile_ci(parts: list[np.ndarray]) -> list[float] | None:
    """95% percentile interval over the resamples where the value is defined."""
    v = np.concatenate(parts) if parts else np.empty(0)
    v = v[np.isfinite(v)]  # degenerate resamples (value undefined) are skipped
    return None if v.size == 0 else [float(x) for x in np.percentile(v, [2.5, 97.5])]


def _bootstrap_ci(
    scores: np.ndarray,
    is_pos: np.ndarray,
    pred_pos: np.ndarray,
    y_true: np.ndarray,
    n_boot: int,
    seed: int,
) -> dict[str, list[float] | None]:
    """Stratified percentile bootstrap of every metric in `CI_METRICS`."""
    from covidxr_core.calibration import bin_index

    masks = {
        "tp": is_pos & pred_pos,
        "fn": is_pos & ~pred_pos,
        "tn": ~is_pos & ~pred_pos,
        "fp": ~is_pos & pred_pos,
    }
    y = is_pos.astype(np.float64)
    bins = bin_index(scores)
    gap = np.zeros((scores.size, int(bins.max()) + 1 if scores.size else 1))
    gap[np.arange(scores.size), bins] = y - scores
    squared = (scores - y) ** 2
    values: dict[str, list[np.ndarray]] = {name: [] for name in CI_METRICS}
    for counts in _resample_counts(y_true, n_boot, seed):
        c = {name: counts @ mask.astype(np.int64) for name, mask in masks.items()}
        n = counts.sum(axis=1).astype(np.float64)
        values["auc"].append(_weighted_auc(scores, is_pos, counts))
        values["average_precision"].append(_weighted_average_precision(scores, is_pos, counts))
        values["sensitivity"].append(_ratio(c["tp"], c["tp"] + c["fn"]))
        values["specificity"].append(_ratio(c["tn"], c["tn"] + c["fp"]))
        values["ppv"].append(_ratio(c["tp"], c["tp"] + c["fp"]))
        values["npv"].append(_ratio(c["tn"], c["tn"] + c["fn"]))
        values["f1"].append(_ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"]))
        values["accuracy"].append(_ratio(c["tp"] + c["tn"], n))
        values["ece"].append(np.abs(counts @ gap).sum(axis=1) / n)
        values["brier"].append(counts @ squared / n)
    return {name: _percentile_ci(parts) for name, parts in values.items()}


def classification_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    positive_index: int,
    class_names: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Every number about one split's predictions, with 95% bootstrap intervals.

    The positive class is ``class_names[positive_index]``. With two classes and a
    ``threshold`` (chosen on validation: `covidxr_core.operating_point`), an image is
    predicted positive when that class's probability is ``>= threshold``; otherwise the
    predicted class is the argmax. AUC and average precision rank by the positive class's
    probability (threshold-free; ties count as half for AUC). ECE and the Brier score are
    about the positive class's probability (`covidxr_core.calibration`).

    Args:
        y_true: (N,) integer labels, indices into ``class_names``.
        probs: (N, num_classes) predicted probabilities (softmax outputs).
        positive_index: Index of the positive class.
        class_names: Names of the classes, in label order.
        n_boot: Bootstrap resamples for the 95% intervals; 0 skips them (``ci95`` values
            are then None).
        seed: Seed of the bootstrap.
        threshold: The operating point's threshold (binary only); None decides by argmax.

    Returns:
        A JSON-ready dict: ``n``, ``threshold``, ``decision`` ("threshold" or "argmax"),
        ``loss``, ``accuracy``, ``auc``, ``average_precision``, ``sensitivity``,
        ``specificity``, ``ppv`` (also as ``precision``), ``npv``, ``f1``, ``ece``,
        ``brier``, ``confusion_matrix`` (rows = true class, columns = predicted, both in
        ``confusion_labels`` order), ``confusion_labels``, ``positive_class``,
        ``predicted_positive`` (how many images were called positive), ``ci95`` (each
        name in `CI_METRICS` -> [lo, hi] or None) and ``undefined`` (metric -> reason,
        for each None).

    Raises:
        ValueError: The arrays' shapes disagree with each other or with ``class_names``,
            or a label or ``positive_index`` is out of range (a programming error).
    """
    from covidxr_core.calibration import brier, ece
    from covidxr_core.operating_point import decide

    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(class_names)
    if probs.ndim != 2 or probs.shape != (y_true.shape[0], k):
        raise ValueError(
            f"probs must have shape (N, {k}) = ({y_true.shape[0]}, {k}) to match y_true "
            f"and class_names, but got {probs.shape}"
        )
    if not 0 <= positive_index < k:
        raise ValueError(f"positive_index must be in [0, {k}), but got {positive_index}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= k):
        raise ValueError(
            f"labels must be in [0, {k}), but got range [{y_true.min()}, {y_true.max()}]"
        )
    if k != 2:
        threshold = None  # three or more classes: argmax, no operating point

    n = int(y_true.shape[0])
    undefined: dict[str, str] = {}
    result: dict[str, Any] = {
        "n": n,
        "positive_class": class_names[positive_index],
        "confusion_labels": list(class_names),
        "threshold": threshold,
        "decision": "threshold" if threshold is not None else "argmax",
    }
    names = (
        "loss", "accuracy", "auc", "average_precision", "sensitivity", "specificity",
        "ppv", "precision", "npv", "f1", "ece", "brier",
    )  # fmt: skip

    finite_rows = np.isfinite(probs).all(axis=1)
    if n == 0 or not finite_rows.all():
        reason = (
            "no samples"
            if n == 0
            else f"{int((~finite_rows).sum())} of {n} rows of probabilities are not finite"
        )
        for name in names:
            result[name] = None
            undefined[name] = reason
        result["confusion_matrix"] = None
        result["predicted_positive"] = None
        undefined["confusion_matrix"] = reason
        result["ci95"] = dict.fromkeys(CI_METRICS)
        result["undefined"] = undefined
        return result

    pred = decide(probs, positive_index, threshold)
    onehot = np.eye(k)[y_true]
    is_pos = y_true == positive_index
    pred_pos = pred == positive_index
    scores = probs[:, positive_index]
    tp = int(np.sum(is_pos & pred_pos))
    fn = int(np.sum(is_pos & ~pred_pos))
    tn = int(np.sum(~is_pos & ~pred_pos))
    fp = int(np.sum(~is_pos & pred_pos))
    positive = class_names[positive_index]

    def ratio(name: str, num: int, den: int, reason: str) -> float | None:
        if den == 0:
            undefined[name] = reason
            return None
        return num / den

    result["loss"] = binary_crossentropy(onehot, probs)
    result["accuracy"] = float(np.mean(pred == y_true))
    ones = np.ones((1, n))
    auc = float(_weighted_auc(scores, is_pos, ones)[0])
    if np.isnan(auc):
        result["auc"] = result["average_precision"] = None
        present = "positives" if is_pos.all() else "negatives"
        undefined["auc"] = undefined["average_precision"] = (
            f"AUC needs both classes; the data has only {present} (positive class {positive!r})"
        )
    else:
        result["auc"] = auc
        result["average_precision"] = float(_weighted_average_precision(scores, is_pos, ones)[0])
    sens = ratio("sensitivity", tp, tp + fn, f"no samples of the positive class {positive!r}")
    spec = ratio("specificity", tn, tn + fp, f"no samples outside the positive class {positive!r}")
    ppv = ratio("ppv", tp, tp + fp, f"no sample predicted as the positive class {positive!r}")
    npv = ratio("npv", tn, tn + fn, f"no sample predicted outside the positive class {positive!r}")
    result["sensitivity"], result["specificity"] = sens, spec
    result["ppv"] = result["precision"] = ppv
    result["npv"] = npv
    if "ppv" in undefined:
        undefined["precision"] = undefined["ppv"]
    if sens is None or ppv is None:
        result["f1"] = None
        undefined["f1"] = "needs both PPV (precision) and sensitivity"
    else:
        result["f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    result["ece"] = ece(is_pos, scores)
    result["brier"] = brier(is_pos, scores)
    result["predicted_positive"] = int(pred_pos.sum())

    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, pred), 1)
    result["confusion_matrix"] = confusion.tolist()

    if n_boot > 0:
        result["ci95"] = _bootstrap_ci(scores, is_pos, pred_pos, y_true, n_boot, seed)
        for name, interval in result["ci95"].items():
            if interval is None:
                undefined.setdefault(f"ci95.{name}", undefined.get(name, "no usable resample"))
    else:
        result["ci95"] = dict.fromkeys(CI_METRICS)
    result["undefined"] = undefined
    return result


def paired_auc_difference(
    y_true: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    positive_index: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC of model A minus AUC of model B on the same samples, with a paired bootstrap.

    Both models are scored on every resample of the same images, so the interval reflects
    the difference between the models, not the two models' separate noise.

    Args:
        y_true: (N,) integer labels.
        probs_a: (N, num_classes) probabilities of model A.
        probs_b: (N, num_classes) probabilities of model B.
        positive_index: Index of the positive class.
        n_boot: Stratified bootstrap resamples; 0 skips the interval.
        seed: Seed of the bootstrap.

    Returns:
        ``{"n", "auc_a", "auc_b", "difference", "ci95", "undefined"}``; the AUCs, the
        difference and ``ci95`` are None (with the reason under ``undefined``) when the
        labels hold one class only or the probabilities are not finite.
    """
    return paired_mean_auc_difference(y_true, [probs_a], [probs_b], positive_index, n_boot, seed)


def paired_mean_auc_difference(
    y_true: np.ndarray,
    probs_a: Sequence[np.ndarray],
    probs_b: Sequence[np.ndarray],
    positive_index: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean AUC over A's runs minus mean AUC over B's runs, with one paired bootstrap.

    Each run (a training seed) scored the same N images; every resample draws one set of
    images and scores all runs of both on it, so the interval covers the images' sampling
    for the pair of configurations as a whole, seeds averaged. One run each is
    `paired_auc_difference`.

    Args:
        y_true: (N,) integer labels.
        probs_a: A's runs, each (N, num_classes).
        probs_b: B's runs, each (N, num_classes).
        positive_index: Index of the positive class.
        n_boot: Stratified bootstrap resamples; 0 skips the interval.
        seed: Seed of the bootstrap.

    Returns:
        As `paired_auc_difference`, with ``auc_a``/``auc_b`` the means over runs.
    """
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    a = [np.asarray(p, dtype=np.float64) for p in probs_a]
    b = [np.asarray(p, dtype=np.float64) for p in probs_b]
    n = int(y_true.shape[0])
    if not a or not b:
        raise ValueError("probs_a and probs_b must each hold at least one run")
    for p in (*a, *b):
        if p.shape != a[0].shape or p.ndim != 2 or p.shape[0] != n:
            raise ValueError(
                f"probs_a and probs_b must all have shape (N, classes) with N = {n}, "
                f"but got {a[0].shape} and {p.shape}"
            )
    if not 0 <= positive_index < a[0].shape[1]:
        raise ValueError(
            f"positive_index must be in [0, {a[0].shape[1]}), but got {positive_index}"
        )
    out: dict[str, Any] = {"n": n, "auc_a": None, "auc_b": None, "difference": None, "ci95": None}
    is_pos = y_true == positive_index
    if not all(np.isfinite(p).all() for p in (*a, *b)):
        out["undefined"] = {"difference": "probabilities are not finite"}
        return out
    if is_pos.all() or not is_pos.any():
        out["undefined"] = {"difference": "AUC needs both classes in the labels"}
        return out

    def mean_auc(runs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        aucs = [_weighted_auc(p[:, positive_index], is_pos, weights) for p in runs]
        return np.mean(aucs, axis=0)

    ones = np.ones((1, n))
    out["auc_a"] = float(mean_auc(a, ones)[0])
    out["auc_b"] = float(mean_auc(b, ones)[0])
    out["difference"] = out["auc_a"] - out["auc_b"]
    if n_boot > 0:
        parts = [
            mean_auc(a, counts) - mean_auc(b, counts)
            for counts in _resample_counts(y_true, n_boot, seed)
        ]
        out["ci95"] = _percentile_ci(parts)
    out["undefined"] = {}
    return out


def roc_points(
    labels: np.ndarray, probs: np.ndarray, positive_index: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """False- and true-positive rates at every threshold (ties in one step).

    Returns:
        ``(fpr, tpr)`` from (0, 0) to (1, 1), or None when the labels hold one class only.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(probs, dtype=np.float64)[:, positive_index]
    is_pos = labels == positive_index
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    # The last index of each run of equal scores: tied samples cross the threshold together.
    ends = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tp = np.cumsum(is_pos)[ends]
    fp = np.cumsum(~is_pos)[ends]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


__all__ = [
    "CI_METRICS",
    "binary_crossentropy",
    "classification_metrics",
    "paired_auc_difference",
    "paired_mean_auc_difference",
    "roc_points",
]
