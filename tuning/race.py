"""The race: which configuration the study hands back, chosen on validation alone.

One search trial's score is one training run on one validation split; on a few dozen
validation images the best of a dozen similar configurations overstates itself by
several hundredths of AUC (the winner's curse), and its retrain seeds can then disagree
by half an AUC. So the study does not take the search's best at its word:

1. **Entrants.** The top ``--race K`` full-budget trials by score (`tuning.leaderboard.
   ranked`), and the sensible default, the one to beat, whether or not it was a trial.
2. **Seeds.** Each entrant trains ``--retrain-seeds R`` seeds on the train split for the
   full budget (the retrain's protocol); validation is measured, test is not read here.
3. **The challenger** is the entrant other than the default with the best lower bound
   on validation: the mean of its seeds' metric minus one standard deviation over seeds
   (plus one, for a metric where lower is better). One lucky seed does not win it.
4. **The rule against the default.** The challenger is handed back only if it beats
   the default on validation beyond chance: for AUC, the 95% paired bootstrap interval
   (`covidxr_core.metrics.paired_mean_auc_difference`: each resample of the validation
   images scores every seed of both) of its mean AUC minus the default's lies above 0;
   for another metric, its lower bound beats the default's mean. Otherwise the study says
   "tuning found nothing better than the sensible default" and the default is handed
   back as ``best/``: its seeds are the ones already trained, not trained again.

Nothing here sees a test label: `choose` takes validation labels and probabilities only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuning.objective import direction

DEFAULT_KEY = "default"


@dataclass(frozen=True)
class Entrant:
    """One configuration in the race: its validation results over seeds.

    Attributes:
        key: ``default`` or the search trial's id.
        origin: Where it came from (`tuning.starts.ORIGINS`).
        scores: The metric on validation, one per seed.
        probs: The validation probabilities, one (N, classes) array per seed.
    """

    key: str
    origin: str
    scores: tuple[float, ...]
    probs: tuple[np.ndarray, ...] = field(default=(), repr=False)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

    def bound(self, mode: str) -> float:
        """Its pessimistic score: mean minus one std (plus, where lower is better)."""
        return self.mean - self.std if mode == "max" else self.mean + self.std


@dataclass(frozen=True)
class RaceResult:
    """What the race decided, and everything behind it (``selection.json``'s ``race``)."""

    winner: str  # an Entrant key: the default's when tuning found nothing better
    challenger: str | None  # the best non-default entrant by lower bound
    beat_default: bool
    metric: str
    rule: str  # the rule as applied, one line
    difference: float | None  # challenger minus default on validation (means over seeds)
    ci95: tuple[float, float] | None  # its paired interval (AUC only)
    entrants: tuple[dict[str, Any], ...]  # key, origin, scores, mean, std, bound
    line: str  # what the study says, one line

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner,
            "challenger": self.challenger,
            "beat_default": self.beat_default,
            "metric": self.metric,
            "rule": self.rule,
            "difference": self.difference,
            "ci95": list(self.ci95) if self.ci95 is not None else None,
            "entrants": list(self.entrants),
            "line": self.line,
        }


def choose(
    entrants: Sequence[Entrant],
    metric: str,
    y_val: np.ndarray,
    positive_index: int,
    n_boot: int = 1000,
    seed: int = 0,
) -> RaceResult:
    """The race's decision (the module docstring's steps 3 and 4).

    Args:
        entrants: The default (key `DEFAULT_KEY`) and the challengers.
        metric: The study's metric (``val_auc``, ``val_loss``...).
        y_val: The validation labels the probabilities score.
        positive_index: The positive class's index.
        n_boot: Bootstrap resamples of the paired interval.
        seed: Bootstrap seed.

    Raises:
        ValueError: no entrant is the default.
    """
    from covidxr_core.metrics import paired_mean_auc_difference

    mode = direction(metric)
    default = next((e for e in entrants if e.key == DEFAULT_KEY), None)
    if default is None:
        raise ValueError(f"the race needs the default among its entrants, but got {entrants!r}")
    sign = 1.0 if mode == "max" else -1.0
    challengers = [e for e in entrants if e.key != DEFAULT_KEY]
    table = tuple(
        {
            "key": e.key,
            "origin": e.origin,
            "scores": list(e.scores),
            "mean": e.mean,
            "std": e.std,
            "bound": e.bound(mode),
        }
        for e in entrants
    )
    name = metric.removeprefix("val_")
    if not challengers:
        return RaceResult(
            DEFAULT_KEY, None, False, metric, "no challenger finished the search", None,
            None, table,
            "tuning found nothing better than the sensible default: no other trial ran "
            "its full budget; the sensible default is handed back as best/",
        )  # fmt: skip
    challenger = max(challengers, key=lambda e: sign * e.bound(mode))
    difference: float | None = challenger.mean - default.mean
    ci: tuple[float, float] | None = None
    if metric == "val_auc" and challenger.probs and default.probs:
        paired = paired_mean_auc_difference(
            y_val, challenger.probs, default.probs, positive_index, n_boot=n_boot, seed=seed
        )
        difference = paired["difference"]
        ci = tuple(paired["ci95"]) if paired["ci95"] is not None else None
        beat = ci is not None and ci[0] > 0
        rule = (
            "paired bootstrap of the validation AUC difference (means over seeds): the 95% "
            "interval must lie above 0"
        )
        shown = (
            f"{difference:+.3f}, 95% CI [{ci[0]:+.3f}, {ci[1]:+.3f}]"
            if ci is not None and difference is not None
            else "undefined"
        )
    else:
        beat = sign * (challenger.bound(mode) - default.mean) > 0
        rule = f"the challenger's mean -/+ one std over seeds must beat the default's mean {name}"
        shown = f"{difference:+.3f}; its bound {challenger.bound(mode):.3f} vs {default.mean:.3f}"
    versus = (
        f"trial {challenger.key} ({challenger.origin}) vs the sensible default on validation "
        f"{name} over {len(challenger.scores)} seed(s): {shown}"
    )
    if beat:
        line = f"tuning beat the sensible default: {versus}; trial {challenger.key} is handed back"
        winner = challenger.key
    else:
        line = (
            f"tuning found nothing better than the sensible default: {versus}; the sensible "
            "default is handed back as best/"
        )
        winner = DEFAULT_KEY
    return RaceResult(winner, challenger.key, beat, metric, rule, difference, ci, table, line)


__all__ = ["DEFAULT_KEY", "Entrant", "RaceResult", "choose"]
