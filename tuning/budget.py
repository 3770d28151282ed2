"""How a study spends its trials and epochs: TPE's random start and ASHA's early stops.

Both rules follow the budget and the validation split, and both are stated here once:

- **TPE's random start** (Optuna's ``n_startup_trials``): a quarter of the trials, at most
  10 (Optuna's own default), and at least the starting points plus 2 random draws. The
  starting points (`tuning.starts`) count towards it: they are known-good draws, not
  random ones. With 12 trials and the default as the one starting point that is 3 (the
  default and 2 random), leaving 9 trials to TPE; with 50 trials, 12 -> 10.
- **Early stopping** (ASHA): a rung compares trials on one validation split, and a
  validation AUC on ``n`` images per class moves by about ``0.5 / sqrt(n)`` between two
  draws of that split at the AUCs seen here (about 0.06 at 60 images per class). When
  the smaller class of the split that ranks trials (the validation split, or one fold
  with ``--cv``) has fewer than `MIN_PER_CLASS_TO_STOP` images, the rungs would rank by
  noise, so ``--early-stop auto`` (the default) stops no trial early: every trial runs its
  budget. Otherwise its grace period is a third of the budget (at least
  ``--grace-epochs``), so no trial is judged on its first, noisiest epochs.
  ``--early-stop on`` uses ASHA with ``--grace-epochs`` as given; ``off`` never stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_STARTUP_TRIALS = 10  # Optuna's default n_startup_trials
MIN_PER_CLASS_TO_STOP = 100
EARLY_STOP_MODES = ("auto", "on", "off")


def startup_trials(trials: int, starts: int) -> int:
    """TPE's ``n_startup_trials`` for a study of ``trials`` with ``starts`` starting points."""
    return max(starts + 2, min(MAX_STARTUP_TRIALS, trials // 4))


@dataclass(frozen=True)
class EarlyStopping:
    """Whether ASHA may stop trials, after how many epochs, and why (one line)."""

    enabled: bool
    grace: int
    why: str


def early_stopping(mode: str, epochs: int, grace_epochs: int, per_class: int) -> EarlyStopping:
    """The rule of the module docstring.

    Args:
        mode: ``auto``, ``on`` or ``off`` (``--early-stop``).
        epochs: The epoch budget per trial.
        grace_epochs: ``--grace-epochs``.
        per_class: Images of the smaller class in the split that ranks trials.
    """
    if mode == "off":
        return EarlyStopping(False, epochs, "--early-stop off: every trial runs its budget")
    if mode == "on":
        grace = max(1, min(grace_epochs, epochs))
        return EarlyStopping(True, grace, f"--early-stop on: ASHA after {grace} epoch(s)")
    if per_class < MIN_PER_CLASS_TO_STOP:
        return EarlyStopping(
            False,
            epochs,
            f"no early stopping: the validation split has {per_class} images in its smaller "
            f"class (< {MIN_PER_CLASS_TO_STOP}), too few for a rung to rank trials; every "
            "trial runs its budget",
        )
    grace = max(1, min(epochs, max(grace_epochs, math.ceil(epochs / 3))))
    return EarlyStopping(
        True,
        grace,
        f"ASHA may stop trials after {grace} of {epochs} epochs ({per_class} validation "
        "images in the smaller class)",
    )


__all__ = [
    "EARLY_STOP_MODES",
    "MAX_STARTUP_TRIALS",
    "MIN_PER_CLASS_TO_STOP",
    "EarlyStopping",
    "early_stopping",
    "startup_trials",
]
