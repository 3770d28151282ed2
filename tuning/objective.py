"""Metric direction and "is better": the one place that knows which way is up.

The study's metric (what ASHA and Optuna optimise), the leaderboard's best epoch, the
winner of the search, the exported retrain seed and the report's ranking all ask the
same two questions; they ask them here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from covidxr_core.numbers import finite

T = TypeVar("T")

# The validation metrics a study can optimise, with their direction.
METRICS: dict[str, str] = {
    "val_auc": "max",
    "val_accuracy": "max",
    "val_loss": "min",
    "val_sensitivity": "max",
    "val_specificity": "max",
}
DEFAULT_METRIC = "val_auc"
# A trial's score is the mean of its metric over its last SCORE_EPOCHS epochs (fewer if it
# ran fewer), not its best or its last epoch: on a validation split of a few dozen images
# one epoch's AUC moves by several hundredths, and the best of a trial's epochs, or of many
# trials' last epochs, flatters whoever drew the lucky one. The score is what Optuna
# learns, what ASHA's rungs compare and what ranks the leaderboard.
SCORE_EPOCHS = 3
SCORE_KEY = "score"  # the reported key that carries it
# Columns where smaller is better: losses and durations. Every other number ranks high-first.
_LOWER_IS_BETTER_SUFFIXES = ("loss", "_s")


def direction(name: str) -> str:
    """``"min"`` or ``"max"`` for a metric or leaderboard column name.

    Known metrics use their declared direction; otherwise losses and durations (``*_s``)
    are "min" and everything else "max". A ``val_`` prefix does not matter: the retrain's
    ``loss`` and the search's ``val_loss`` point the same way.
    """
    if name in METRICS:
        return METRICS[name]
    return "min" if name.endswith(_LOWER_IS_BETTER_SUFFIXES) else "max"


def final_score(values: Iterable[float | None], epochs: int = SCORE_EPOCHS) -> float | None:
    """The mean of the last ``epochs`` finite values of a per-epoch metric (None if none)."""
    numbers = [v for v in (finite(x) for x in values) if v is not None]
    tail = numbers[-epochs:]
    return sum(tail) / len(tail) if tail else None


def is_better(value: float | None, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` under ``mode``; a missing or non-finite value never
    beats anything, and any finite value beats a missing one."""
    v, t = finite(value), finite(than)
    if v is None:
        return False
    if t is None:
        return True
    return v > t if mode == "max" else v < t


def best(items: Iterable[T], key: Callable[[T], float | None], mode: str) -> T | None:
    """The item whose ``key`` is best under ``mode`` (the first on ties); None if no item has
    a finite key."""
    winner: T | None = None
    winner_value: float | None = None
    for item in items:
        value = key(item)
        if is_better(value, winner_value, mode):
            winner, winner_value = item, value
    return winner


def sort_key(value: float | None, mode: str) -> float:
    """A key that sorts best-first under ``mode`` (call only with finite values)."""
    number = finite(value)
    assert number is not None, "sort_key needs a finite value"
    return -number if mode == "max" else number


__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "SCORE_EPOCHS",
    "SCORE_KEY",
    "best",
    "direction",
    "final_score",
    "is_better",
    "sort_key",
]
