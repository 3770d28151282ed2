"""The operating point: the decision threshold on the positive class's probability.

A score ranks; a decision needs a threshold. It is chosen on the validation split, never
on test, by one of three rules:

    youden      the threshold that maximises sensitivity + specificity - 1 (the default)
    sens=0.95   the highest threshold whose sensitivity is at least 0.95 (the most
                specific model that still finds 95% of the positives)
    spec=0.95   the lowest threshold whose specificity is at least 0.95

An image is called positive when its positive-class probability is ``>= threshold``.
Binary problems only: with three or more classes the class is the argmax and no
threshold is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from covidxr_core.errors import ConfigError

RULES = ("youden", "sens", "spec")


@dataclass(frozen=True)
class OperatingPoint:
    """A rule for choosing the threshold: ``youden``, or a target ``sens``/``spec``."""

    rule: str = "youden"
    target: float | None = None  # for "sens" and "spec"

    @classmethod
    def parse(cls, text: str) -> OperatingPoint:
        """``"youden"``, ``"sens=0.95"`` or ``"spec=0.9"``.

        Raises:
            ConfigError: naming the rule that was broken and the text.
        """
        name, _, value = str(text).strip().partition("=")
        name = name.strip().lower()
        if name == "youden" and not value:
            return cls("youden")
        if name in ("sens", "spec") and value:
            try:
                target = float(value)
            except ValueError:
                target = float("nan")
            if not 0.0 < target <= 1.0:
                raise ConfigError(
                    f"operating point {text!r}: the target of {name}= must be in (0, 1], "
                    f"but got {value!r}"
                )
            return cls(name, target)
        raise ConfigError(
            f"operating point must be 'youden', 'sens=T' or 'spec=T' with T in (0, 1], "
            f"but got {text!r}"
        )

    def __str__(self) -> str:
        return self.rule if self.target is None else f"{self.rule}={self.target:g}"


def choose_threshold(
    labels: np.ndarray, scores: np.ndarray, positive_index: int, point: OperatingPoint
) -> float | None:
    """The threshold ``point`` picks on these (validation) labels and positive-class scores.

    Candidates are the observed scores (a threshold between two of them decides the same
    images). Ties between candidates go to the one nearest 0.5, then the higher one.

    Returns:
        The threshold, or None when the labels hold one class only (nothing to trade).
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_pos = labels == positive_index
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    if n_pos == 0 or n_neg == 0 or not np.isfinite(scores).all():
        return None
    candidates = np.unique(scores)  # ascending
    # Sensitivity and specificity of "positive if score >= c", for every candidate c.
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_pos = scores[order], is_pos[order]
    first = np.searchsorted(sorted_scores, candidates, side="left")
    pos_below = np.r_[0, np.cumsum(sorted_pos)][first]
    neg_below = np.r_[0, np.cumsum(~sorted_pos)][first]
    sens = (n_pos - pos_below) / n_pos
    spec = neg_below / n_neg
    if point.rule == "youden":
        value = sens + spec - 1.0
        ok = np.ones_like(value, dtype=bool)
    elif point.rule == "sens":
        assert point.target is not None
        ok = sens >= point.target - 1e-12
        value = spec
    else:
        assert point.target is not None
        ok = spec >= point.target - 1e-12
        value = sens
    if not ok.any():  # no threshold reaches the target: the one that comes closest
        ok = np.ones_like(ok)
        value = sens if point.rule == "sens" else spec
    best = value[ok].max()
    chosen = candidates[ok & (value >= best - 1e-12)]
    # Nearest 0.5, then the higher threshold: stable under tiny score changes.
    key = np.lexsort((-chosen, np.abs(chosen - 0.5)))
    return float(chosen[key[0]])


def decide(probs: np.ndarray, positive_index: int, threshold: float | None) -> np.ndarray:
    """Predicted class indices: by threshold on the positive class (binary), else argmax."""
    probs = np.asarray(probs, dtype=np.float64)
    if threshold is None or probs.shape[1] != 2:
        return probs.argmax(axis=1)
    negative_index = 1 - positive_index
    return np.where(probs[:, positive_index] >= threshold, positive_index, negative_index)


__all__ = ["RULES", "OperatingPoint", "choose_threshold", "decide"]
