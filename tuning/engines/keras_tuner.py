"""The KerasTuner engine: the same space, data and training path, in this process.

`KerasTunerEngine` implements the `tuning.engines.Engine` protocol and fills the same
`Leaderboard` as the Ray engine, so everything after the search (retrain, baseline,
summary, report) runs unchanged whichever engine found the winner. It needs no Ray: trials
and the retrain's seeds train here, one after another.

How KerasTuner's pieces map onto ours:

* **Space.** Each search-space parameter becomes one KerasTuner hyperparameter: a float
  range `hp.Float`, an integer range `hp.Int` (``log: true`` -> ``sampling="log"``), a set of
  choices `hp.Choice`. `SearchSpace.apply` turns the drawn values into a `TrainConfig`,
  exactly as it does for a Ray trial.
* **Training.** `HyperModel.fit` calls `covidxr_core.train.train`, the function a Ray trial
  calls, so data, augmentation, metrics, seeds and determinism are the same: one
  configuration trained by either engine gives the same curve. It returns the per-epoch
  validation metrics as a Keras `History`; KerasTuner scores a trial by the mean of its last epochs (as the Ray engine does); the starting points (`tuning.starts`) are its first trials and train the whole budget.
* **Hyperband.** ``max_epochs`` is the study's epoch budget (``--epochs``) and the
  reduction factor is 3, ASHA's. KerasTuner asks a trial for ``epochs`` (cumulative) and
  ``initial_epoch``: a promoted trial should go on from its parent's weights. `train()`
  builds and seeds its own model, so a promoted trial instead trains from scratch for the
  full ``epochs`` it was asked for; by determinism its first ``initial_epoch`` epochs repeat
  the parent's exactly. That costs those epochs again but keeps one training path, and
  each leaderboard row carries the whole curve of the model it describes. A trial given
  fewer than ``max_epochs`` (a short bracket or an early round) is "early-stopped", one
  trained for ``max_epochs`` "completed". With ``--epochs 10`` one Hyperband iteration has
  three brackets (12 models x 2 epochs -> 4 x 4 -> 2 x 10; 6 x 4 -> 2 x 10; 4 x 10).
* **Trial cap.** Every trained model is one trial, so ``--trials`` caps the number of
  models for all three tuners. Hyperband iterates over its brackets until that cap (or
  the time budget) is reached, so a small cap ends it inside its first brackets.
* **Failures.** What `tuning.failures.classify` calls deterministic (an invalid
  configuration, a diverging loss, running out of memory) is KerasTuner's
  `FailedTrialError`: the trial
  is recorded as "failed" with its error and the search goes on, however many fail in a
  row, as with Ray. A broken data set (`DataError`) is a `FatalError`: every trial would
  hit it, so the search stops.
* **Time budget.** With ``--time-budget-s`` no trial starts once the budget is spent, and
  the running trial stops at the end of its current epoch. As with Ray Tune, which stops
  its trials at the budget, an epoch that ends after the budget does not count: the search
  may run up to one epoch past the budget, but its results are those it had in time.

What this engine does not do: run trials in parallel or on other nodes (KerasTuner's
distributed mode needs a chief and worker processes of its own), retry a trial, or
write `optuna.db` (the report leaves out the parameter importances that come from it).
KerasTuner's own state (trials, oracle, a weights checkpoint per trial) lives in
``RUN/keras_tuner/study`` and lets ``--resume`` continue a search.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from covidxr_core import configure_backend

configure_backend()  # quiet logs and GPU memory growth must precede Keras' start-up

import keras  # noqa: E402

from covidxr_core.errors import ConfigError, CovidxrError  # noqa: E402
from search_spaces import Param, SearchSpace  # noqa: E402
from tuning.engines import SearchJob  # noqa: E402
from tuning.errors import StudyError  # noqa: E402
from tuning.failures import classify, error_line  # noqa: E402
from tuning.leaderboard import LEADERBOARD_FILE, Leaderboard  # noqa: E402
from tuning.objective import final_score  # noqa: E402
from tuning.progress import StudyObserver  # noqa: E402
from tuning.runfolder import RunLocation  # noqa: E402
from tuning.spec import StudySpec  # noqa: E402
from tuning.starts import ORIGIN_KEY  # noqa: E402

try:
    import keras_tuner
except ImportError as exc:  # pragma: no cover - a declared dependency
    raise ConfigError(
        "the keras-tuner engine needs the keras-tuner package: pip install keras-tuner==1.4.8"
    ) from exc

TUNER_DIR = "keras_tuner"
PROJECT = "study"
NODE_ID = "local"  # KerasTuner trains in the driver process; Ray trials name their node
# What KerasTuner gets per epoch besides the objective: metrics whose direction it infers
# correctly from the name (it would record sensitivity as "min"). The leaderboard has all.
HISTORY_KEYS = ("val_loss", "val_accuracy")


class _BudgetSpent(keras_tuner.errors.FatalError):
    """The study's time budget ran out during a trial.

    Raised from the epoch callback. `fit` returns the epochs done in time; if there are
    none, it lets this end the search (a FatalError is what stops KerasTuner's loop).
    """


def declare(hp: keras_tuner.HyperParameters, param: Param) -> Any:
    """Registers one search-space parameter with KerasTuner and returns its drawn value.

    Args:
        hp: The trial's hyperparameters.
        param: A parameter of the search space.

    Returns:
        The value KerasTuner drew for this trial (its default while the space is declared).
    """
    if param.type == "categorical":
        choices = list(param.choices)
        # A Choice holds one type; a list mixing ints and floats is numeric, keep it so.
        if {type(c) for c in choices} == {int, float}:
            choices = [float(c) for c in choices]
        return typed(param, hp.Choice(param.name, choices))
    assert param.low is not None and param.high is not None  # parse_space guarantees both
    sampling = "log" if param.log else "linear"
    if param.type == "int":
        return hp.Int(param.name, int(param.low), int(param.high), sampling=sampling)
    return hp.Float(param.name, param.low, param.high, sampling=sampling)


def typed(param: Param, value: Any) -> Any:
    """A drawn value as the space declares it: KerasTuner hands a boolean choice back as
    0 or 1 from some oracles, which the space would refuse."""
    if (
        param.type == "categorical"
        and value is not None
        and all(isinstance(c, bool) for c in param.choices)
    ):
        return bool(value)
    return value


class _Recorder:
    """Keeps the Leaderboard, the progress display and the time budget in step with trials.

    KerasTuner runs one trial at a time in this process, so "the current trial" is
    well defined; the hypermodel reports epochs to it, the tuner reports starts and ends.
    """

    def __init__(
        self,
        board: Leaderboard,
        observer: StudyObserver,
        location: RunLocation,
        budget_s: float | None,
    ) -> None:
        self.board = board
        self.observer = observer
        self.location = location
        self.budget_s = budget_s
        self.started = time.monotonic()
        self.trial_id: str | None = None
        self.error: str | None = None  # the reason a trial failed, in our words
        self._train_s = 0.0

    def budget_spent(self) -> bool:
        return self.budget_s is not None and time.monotonic() - self.started >= self.budget_s

    def _save(self) -> None:
        self.board.save()
        self.location.push(LEADERBOARD_FILE)

    def begin(self, trial_id: str, values: dict[str, Any]) -> None:
        self.trial_id, self.error, self._train_s = trial_id, None, 0.0
        self.board.start(trial_id, values, gpus=0.0, cpus=float(os.cpu_count() or 1))
        row = self.board.row(trial_id)
        row.node_id, row.pid = NODE_ID, os.getpid()
        self._save()
        self.observer.trial_event(self.board, trial_id, "started")

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        assert self.trial_id is not None
        self._train_s += float(metrics.get("epoch_s", 0.0))
        self.board.result(
            self.trial_id,
            {
                **metrics,
                "epoch": epoch,
                "train_s": self._train_s,
                "node_id": NODE_ID,
                "pid": os.getpid(),
            },
        )
        self.observer.trial_event(self.board, self.trial_id, "epoch")

    def end(self, trial_id: str, failed_message: str | None) -> None:
        error = None
        if failed_message is not None:
            error = self.error or error_line(failed_message)
        self.board.finish(trial_id, error=error)
        self._save()
        self.trial_id = None
        self.observer.trial_event(self.board, trial_id, "failed" if error else "completed")


class SpaceHyperModel(keras_tuner.HyperModel):
    """A search space as a KerasTuner HyperModel that trains through `covidxr_core.train`.

    Args:
        space: The search space.
        base: The `TrainConfig` the drawn values are applied to.
        data: The decoded `Dataset`.
        recorder: Where each epoch's metrics go (leaderboard, progress, budget).
    """

    def __init__(self, space: SearchSpace, base: Any, data: Any, recorder: _Recorder) -> None:
        super().__init__(name="covidxr")
        self.space = space
        self.base = base
        self.data = data
        self.recorder = recorder
        self._typed: tuple[str | None, Any] = (None, None)  # (trial id, its TrainConfig)
        self.full_budget = False  # the current trial is a starting point (tuning.starts)

    def values(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """The trial's value of each search-space parameter (KerasTuner's own keys left out)."""
        return {p.name: declare(hp, p) for p in self.space.params}

    def _fail(self, exc: BaseException) -> keras_tuner.errors.FailedTrialError:
        self.recorder.error = f"{type(exc).__name__}: {exc}"[:2000]
        return keras_tuner.errors.FailedTrialError(self.recorder.error)

    def _config(self, hp: keras_tuner.HyperParameters) -> Any:
        """The trial's typed `TrainConfig`, made once per trial (build and fit share it)."""
        trial_id = self.recorder.trial_id
        if trial_id is not None and self._typed[0] == trial_id:
            return self._typed[1]
        try:
            config = self.space.apply(self.values(hp), self.base)
        except ConfigError as exc:
            raise self._fail(exc) from exc
        self._typed = (trial_id, config)
        return config

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The trial's model, untrained: KerasTuner checks and checkpoints it.

        Raises:
            FailedTrialError: the drawn values make an invalid configuration.
        """
        from covidxr_core.model import build_model

        config = self._config(hp)
        # The classes come from the data, as `train()` sets them, so the weights it
        # trains fit this model.
        model_config = dataclasses.replace(
            config.model,
            class_names=tuple(self.data.class_names),
            positive_class=self.data.positive_class,
            num_classes=len(self.data.class_names),
        )
        try:
            return build_model(model_config)
        except ConfigError as exc:
            raise self._fail(exc) from exc

    def fit(
        self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any
    ) -> keras.callbacks.History:
        """Trains the trial's configuration with `covidxr_core.train.train`.

        Args:
            hp: The trial's hyperparameters.
            model: The model `build` returned; it receives the trained weights so that
                KerasTuner's per-trial checkpoint holds them.
            *args: Unused: the data set is the one given to the constructor.
            **kwargs: From KerasTuner: ``epochs`` (Hyperband's cumulative epoch count for
                this round; the study's budget otherwise), ``initial_epoch`` (ignored: the
                model trains from scratch, see the module docstring) and ``callbacks``
                (KerasTuner's own, called once with the trial's score).

        Returns:
            The per-epoch metrics; KerasTuner scores the trial by the mean of its last
            epochs (`tuning.objective.final_score`).

        Raises:
            FailedTrialError: an invalid configuration, a diverging loss or out of memory.
            FatalError: the data set cannot be trained on (every trial would fail).
        """
        from covidxr_core.train import TrainingDiverged, train

        config = self._config(hp)
        epochs = kwargs.get("epochs")
        if epochs and not self.full_budget:  # a starting point runs the whole budget
            config = dataclasses.replace(config, epochs=int(epochs))
        history: dict[str, list[float]] = {
            k: [] for k in (self.recorder.board.metric, *HISTORY_KEYS)
        }

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if self.recorder.budget_spent():
                raise _BudgetSpent("the time budget ran out")  # this epoch came too late
            for key in history:
                history[key].append(float(metrics[key]))
            self.recorder.epoch(epoch, metrics)

        result = None
        try:
            result = train(config, self.data, callbacks=[report], evaluate_test=False, n_boot=0)
        except _BudgetSpent:
            if not history[self.recorder.board.metric]:
                raise  # nothing in time: this trial has no result and the search ends
        except Exception as exc:
            if isinstance(exc, CovidxrError) and not isinstance(
                exc, ConfigError | TrainingDiverged
            ):
                # A data set that cannot be trained on fails every trial: stop the search.
                self.recorder.error = f"{type(exc).__name__}: {exc}"[:2000]
                raise keras_tuner.errors.FatalError(self.recorder.error) from exc
            if classify(exc).retry:
                raise
            raise self._fail(exc) from exc

        out = keras.callbacks.History()
        out.history = history
        if result is not None:
            model.set_weights(result.model.get_weights())
            # The trial's score, as with Ray: each metric's mean over its last epochs
            # (tuning.objective.final_score), not its best epoch.
            logs = {k: final_score(v) for k, v in history.items()}
            last = len(history[self.recorder.board.metric]) - 1
            for callback in kwargs.get("callbacks") or []:
                callback.set_model(model)
                callback.on_epoch_end(last, logs)
        return out


_TUNERS = {
    "hyperband": keras_tuner.Hyperband,
    "bayesian": keras_tuner.BayesianOptimization,
    "random": keras_tuner.RandomSearch,
}


def _tuner_class(name: str) -> type:
    """The KerasTuner class `name`, with our bookkeeping around each trial."""
    base = _TUNERS[name]

    class Tuner(base):  # type: ignore[valid-type, misc]
        recorder: _Recorder
        max_models: int
        origins: dict[tuple[tuple[str, str], ...], str]

        def pre_create_trial(self) -> None:
            # Hyperband has no trial cap of its own and none of the tuners has a clock:
            # a cap equal to the trials so far makes the oracle's next answer "stopped".
            # Otherwise the cap is the study's --trials, which a resumed oracle's saved
            # state may hold lower (--resume --trials N extends the search).
            if self.recorder.budget_spent():
                self.oracle.max_trials = max(1, len(self.oracle.trials))
            else:
                self.oracle.max_trials = self.max_models

        def _configure_tensorboard_dir(
            self, callbacks: list, trial: Any, execution: int = 0
        ) -> None:
            # KerasTuner 1.4.8 imports tensorboard here on the TensorFlow backend even when
            # no TensorBoard callback is given, and TensorFlow 2.21 no longer installs it.
            if any(type(c).__name__ == "TensorBoard" for c in callbacks):
                super()._configure_tensorboard_dir(callbacks, trial, execution)

        def on_trial_begin(self, trial: Any) -> None:
            super().on_trial_begin(trial)
            params = {p.name: p for p in self.hypermodel.space.params}
            values = {
                k: typed(params[k], v) if k in params else v
                for k, v in trial.hyperparameters.values.items()
                if not k.startswith("tuner/")
            }
            origin = self.origins.get(_key(values), "search")
            self.hypermodel.full_budget = origin != "search"
            self.recorder.begin(trial.trial_id, {**values, ORIGIN_KEY: origin})

        def on_trial_end(self, trial: Any) -> None:
            failed = trial.status in ("FAILED", "INVALID")
            super().on_trial_end(trial)
            self.recorder.end(trial.trial_id, (trial.message or "") if failed else None)

    Tuner.__name__ = Tuner.__qualname__ = f"Covidxr{base.__name__}"
    return Tuner


def _key(values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


def _starts_first(oracle: Any, starts: Sequence[Any]) -> None:
    """Makes the oracle's first draws the starting points (`tuning.starts`), in order.

    Every KerasTuner oracle (random, Bayesian's initial points, Hyperband's new trials)
    draws fresh values through ``_random_values``; KerasTuner has no public way to queue
    a configuration, so the starting points are handed out from there first.
    """
    queue = [dict(s.values) for s in starts]
    draw = oracle._random_values

    def first_the_starts() -> Any:
        while queue:
            values = queue.pop(0)
            if not oracle._duplicate(values):  # a resumed search already ran it
                return values
        return draw()

    oracle._random_values = first_the_starts


class KerasTunerEngine:
    """KerasTuner in this process: no cluster, no object store, no retries."""

    name = "keras-tuner"

    def start(self, spec: StudySpec) -> None:
        """Nothing to start: trials train in this process."""

    def share(self, data: Any) -> Any:
        return data

    def check_storage(self, location: RunLocation) -> None:
        """This process writes every file itself."""

    def run_jobs(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        data: Any,
        spec: StudySpec,
        on_done: Callable[[int, Any], None] | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        results = []
        for i, call in enumerate(calls):
            if on_epoch is None:
                results.append(fn(*call, data))
            else:
                results.append(fn(*call, data, progress=functools.partial(on_epoch, i)))
            if on_done is not None:
                on_done(i, results[-1])
        return results

    def hardware(self) -> dict[str, float]:
        return {"nodes": 1, "cpus": float(os.cpu_count() or 1), "gpus": float(len(_gpus()))}

    def stop(self) -> None:
        """Nothing was started."""

    def search(self, job: SearchJob) -> Leaderboard:
        """Runs (or resumes) the trials with KerasTuner; returns the leaderboard, saved as Parquet.

        ``spec.tuner``, ``trials``, ``epochs``, ``metric``, ``seed`` and ``time_budget_s``
        shape this search; ``resume`` continues KerasTuner's saved state.
        """
        spec, space, data, base, location = job.spec, job.space, job.data, job.base, job.location
        run_dir = location.local
        board = Leaderboard(run_dir / LEADERBOARD_FILE, space, spec.metric, spec.mode, spec.epochs)
        recorder = _Recorder(board, job.observer, location, spec.time_budget_s)
        hypermodel = SpaceHyperModel(space, base, data, recorder)
        objective = keras_tuner.Objective(spec.metric, direction=spec.mode)
        common: dict[str, Any] = dict(
            objective=objective,
            seed=spec.seed,
            directory=str(run_dir / TUNER_DIR),
            project_name=PROJECT,
            overwrite=not job.resume,
            # A failure is recorded and the search goes on, as with Ray: never stop on a streak.
            max_consecutive_failed_trials=spec.trials + 1,
        )
        if spec.tuner == "hyperband":
            # hyperband_iterations=None repeats the brackets until the trial cap stops them.
            common.update(max_epochs=spec.epochs, factor=3, hyperband_iterations=None)
        else:
            common.update(max_trials=spec.trials)
        tuner = _tuner_class(spec.tuner)(hypermodel, **common)
        tuner.recorder = recorder
        tuner.max_models = spec.trials
        tuner.origins = {_key(dict(s.values)): s.origin for s in job.starts}
        _starts_first(tuner.oracle, job.starts)
        if job.resume:
            job.observer.note("resuming", str(run_dir / TUNER_DIR / PROJECT))

        job.observer.search_started(board, spec.trials)
        started = time.monotonic()
        recorder.started = started
        try:
            tuner.search(verbose=0)
        except _BudgetSpent:
            if recorder.trial_id is not None:  # cut before its first epoch: no result, no error
                recorder.end(recorder.trial_id, None)
        except keras_tuner.errors.FatalError as exc:
            if recorder.trial_id is not None:
                recorder.end(recorder.trial_id, recorder.error or str(exc))
            raise StudyError(f"KerasTuner stopped the search: {recorder.error or exc}") from exc
        finally:
            # An interrupted trial stays "running" in the leaderboard: resume reruns it.
            board.search_wall_s = time.monotonic() - started
            job.observer.search_ended(board)
            board.save()
            location.push(LEADERBOARD_FILE)
        return board


def _gpus() -> list[str]:
    return list(keras.distribution.list_devices("gpu"))


__all__ = ["KerasTunerEngine", "SpaceHyperModel", "declare"]
