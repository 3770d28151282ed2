"""Ray Tune's `OptunaSearch`, with the values Optuna's ``constraints_func`` reads.

Optuna's sampler calls ``constraints_func(frozen_trial)`` when a trial is told complete,
and the function sees nothing but the `FrozenTrial`; Ray's `OptunaSearch` tells Optuna
the objective values and nothing else. `ConstrainedOptunaSearch` copies each constrained
metric from the trial's last result into a user attr (`tuning.selection.USER_ATTR_PREFIX`
+ name) just before the trial is told, which `tuning.selection.ConstraintsFunc` then
reads. Optuna records the resulting violations as the trial's ``constraints`` system
attr (in ``optuna.db``), so optuna-dashboard shows feasibility too. A module of its own,
so that Tune can pickle the searcher with the experiment (``--resume``).
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from tuning.selection import USER_ATTR_PREFIX, Constraint, column


class ConstrainedOptunaSearch(OptunaSearch):
    """`OptunaSearch` whose trials carry their constrained values as user attrs."""

    def __init__(self, *args: Any, constraints: tuple[Constraint, ...] = (), **kwargs: Any):
        self._constraints = tuple(constraints)
        super().__init__(*args, **kwargs)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and result and trial_id not in self._completed_trials:
            for c in self._constraints:
                value = result.get(column(c.name))
                if isinstance(value, int | float) and not isinstance(value, bool):
                    ot_trial.set_user_attr(USER_ATTR_PREFIX + c.name, float(value))
        super().on_trial_complete(trial_id, result, error)


__all__ = ["ConstrainedOptunaSearch"]
