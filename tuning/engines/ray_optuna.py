"""Ray Tune's `OptunaSearch`, with the values Optuna's ``constraints_func`` reads.

Optuna's sampler calls ``constraints_func(frozen_trial)`` when a trial is told complete,
and the function sees nothing but the `FrozenTrial`; Ray's `OptunaSearch` tells Optuna
the objective values and nothing else. `ConstrainedOptunaSearch` copies each constrained
metric from the trial's last result into a user attr (`tuning.selection.USER_ATTR_PREFIX`
+ name) just before the trial is told, which `tuning.selection.ConstraintsFunc` then
reads. Optuna records the resulting violations as the trial's ``constraints`` system
attr (in ``optuna.db``), so optuna-dashboard shows feasibility too. A module of its own,
so that Tune can pickle the searcher with the experiment (``--resume``).

It also runs the study's starting points first (`tuning.starts`: the sensible default,
the recipe, a user's own), each trial's config carrying its origin, and tells Optuna a
trial that ASHA stopped before the budget as PRUNED, with its per-epoch scores as
intermediate values, so TPE never takes an early score for a full one (Ray's own
`OptunaSearch` tells it COMPLETE with the early value). `FullBudgetASHA` is ASHA that
never stops a starting point.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from tuning.selection import USER_ATTR_PREFIX, Constraint, column
from tuning.starts import ORIGIN_KEY

ITERATION = "training_iteration"  # Ray Tune's epoch counter in every result


class ConstrainedOptunaSearch(OptunaSearch):
    """`OptunaSearch` with starting points first, early stops told as PRUNED, and the
    constrained values as user attrs.

    Args:
        constraints: What ``constraints_func`` reads (see the module docstring).
        origins: The origin of each of ``points_to_evaluate``, in order: Optuna hands the
            enqueued points out first, in that order.
        max_epochs: The budget: a trial that ends before it was stopped early.
    """

    def __init__(
        self,
        *args: Any,
        constraints: tuple[Constraint, ...] = (),
        origins: tuple[str, ...] = (),
        max_epochs: int | None = None,
        **kwargs: Any,
    ):
        self._constraints = tuple(constraints)
        self._origins = tuple(origins)
        self._max_epochs = max_epochs
        self._suggested = 0
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        fresh = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if config is None:
            return None
        if fresh:
            origin = (
                self._origins[self._suggested] if self._suggested < len(self._origins) else "search"
            )
            self._suggested += 1
            self._ot_trials[trial_id].set_user_attr("origin", origin)
        else:
            origin = self._ot_trials[trial_id].user_attrs.get("origin", "search")
        return {**config, ORIGIN_KEY: origin}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and self._told_before(ot_trial):
            # Told by an earlier driver, whose Tune state was saved a step before it:
            # the trial was not trained again (ray_trial.run_trial), its record stands.
            self._completed_trials.add(trial_id)
            return
        if ot_trial is not None and result and trial_id not in self._completed_trials:
            for c in self._constraints:
                value = result.get(column(c.name))
                if isinstance(value, int | float) and not isinstance(value, bool):
                    ot_trial.set_user_attr(USER_ATTR_PREFIX + c.name, float(value))
            if not error and self._stopped_early(result):
                import optuna

                # Its per-epoch scores are Optuna's intermediate values (on_trial_result):
                # TPE ranks a pruned trial by its last one, below every complete trial.
                self._ot_study.tell(  # type: ignore[attr-defined]
                    ot_trial, state=optuna.trial.TrialState.PRUNED
                )
                self._completed_trials.add(trial_id)
                return
        super().on_trial_complete(trial_id, result, error)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and self._told_before(ot_trial):
            return
        super().on_trial_result(trial_id, result)

    def _told_before(self, ot_trial: Any) -> bool:
        """Whether Optuna's storage holds this trial as finished already."""
        study = getattr(self, "_ot_study", None)
        number = getattr(ot_trial, "_trial_id", None)
        if study is None or number is None:
            return False
        try:
            return bool(study._storage.get_trial(number).state.is_finished())
        except Exception:  # a storage hiccup must not stop the search; tell as usual
            return False

    def _stopped_early(self, result: dict[str, Any]) -> bool:
        if self._max_epochs is None or isinstance(self.metric, list):
            return False  # multi-objective: Optuna has no intermediate values to rank by
        return int(result.get(ITERATION) or 0) < self._max_epochs


class FullBudgetASHA(ASHAScheduler):
    """ASHA that lets a starting point (`tuning.starts`: its config's origin is not
    ``search``) run its whole budget; its results still count at the rungs."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        origin = (trial.config or {}).get(ORIGIN_KEY, "search")
        early = int(result.get(ITERATION) or 0) < self._max_t
        if action == TrialScheduler.STOP and origin != "search" and early:
            return TrialScheduler.CONTINUE
        return action


__all__ = ["ConstrainedOptunaSearch", "FullBudgetASHA"]
