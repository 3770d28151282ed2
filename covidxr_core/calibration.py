"""Calibration: do the predicted probabilities mean what they say?

All of it is about the positive class's probability ``p``:

* **ECE** (expected calibration error) with equal-mass bins: sort the images by ``p``,
  cut them into bins of (nearly) equal count, and average ``|mean(p) - positive rate|``
  over the bins, weighted by bin size. 0 is perfect. Equal-mass bins keep every bin
  populated, which equal-width bins do not when a model is confident.
* **Brier score**: mean squared difference between ``p`` and the 0/1 label.
* **Temperature scaling**: one number ``T`` fitted on validation that divides the logits;
  it changes probabilities, never the ranking (so AUC stays), and usually lowers an
  overconfident network's ECE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BINS = 10
MIN_PER_BIN = 5  # fewer images than this per bin and the bins get fewer
_EPS = 1e-7


def n_bins(n: int) -> int:
    """How many equal-mass bins ``n`` images get: up to 10, at least 5 images each."""
    return int(max(1, min(MAX_BINS, n // MIN_PER_BIN)))


def bin_index(scores: np.ndarray) -> np.ndarray:
    """Each image's equal-mass bin (0 = lowest scores); ties stay in one bin."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = scores.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k = n_bins(n)
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable")
    bins = ranks * k // n
    # Equal scores get the bin of the first of them, so a tie never straddles two bins.
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    first = np.searchsorted(sorted_scores, scores, side="left")
    return np.asarray(bins[order][first], dtype=np.int64)


def ece(labels_pos: np.ndarray, scores: np.ndarray) -> float | None:
    """Equal-mass ECE of positive-class probabilities ``scores`` against 0/1 labels."""
    y = np.asarray(labels_pos, dtype=np.float64).reshape(-1)
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.size == 0 or not np.isfinite(p).all():
        return None
    bins = bin_index(p)
    gap = np.zeros(int(bins.max()) + 1)
    np.add.at(gap, bins, y - p)
    return float(np.abs(gap).sum() / y.size)


def brier(labels_pos: np.ndarray, scores: np.ndarray) -> float | None:
    y = np.asarray(labels_pos, dtype=np.float64).reshape(-1)
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.size == 0 or not np.isfinite(p).all():
        return None
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram."""

    count: int
    mean_score: float  # mean predicted probability of the positive class
    positive_rate: float  # share of the bin that is positive


def reliability(labels_pos: np.ndarray, scores: np.ndarray) -> list[ReliabilityBin]:
    """The equal-mass bins of a reliability diagram (predicted vs observed)."""
    y = np.asarray(labels_pos, dtype=np.float64).reshape(-1)
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.size == 0 or not np.isfinite(p).all():
        return []
    bins = bin_index(p)
    out = []
    for b in np.unique(bins):
        members = bins == b
        out.append(
            ReliabilityBin(int(members.sum()), float(p[members].mean()), float(y[members].mean()))
        )
    return out


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities recomputed with their logits divided by ``temperature``."""
    z = _logits(probs) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    p = np.clip(np.asarray(probs, dtype=np.float64)[np.arange(labels.size), labels], _EPS, 1.0)
    return float(-np.mean(np.log(p)))


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises validation NLL (golden-section search
    over log T; NLL is convex in 1/T, so the search finds the minimum)."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.size == 0 or not np.isfinite(probs).all():
        return 1.0

    def loss(log_t: float) -> float:
        return nll(labels, apply_temperature(probs, float(np.exp(log_t))))

    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    best = (lo + hi) / 2.0
    # Keep T = 1 unless fitting really helps: a flat NLL must not move the probabilities.
    return float(np.exp(best)) if loss(best) < loss(0.0) - 1e-9 else 1.0


__all__ = [
    "ReliabilityBin",
    "apply_temperature",
    "bin_index",
    "brier",
    "ece",
    "fit_temperature",
    "n_bins",
    "nll",
    "reliability",
]
