"""What runs inside a Ray worker for one trial.

The data set arrives through Ray's object store (`tune.with_parameters`), so a trial never
opens an image file and every trial on a node maps the same read-only arrays. Worker
processes are reused between trials (``reuse_actors``), so imports and backend set-up are
paid once per worker, not once per trial. The sampled values become a typed
`TrainConfig` here, once, where the trial starts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuning.errors import TrialFailed
from tuning.failures import classify, timeout
from tuning.objective import DEFAULT_METRIC, SCORE_KEY, final_score
from tuning.starts import ORIGIN_KEY

# A trial that fails for a reason that will not change on retry (see tuning.failures)
# leaves this file in its folder; a retry re-raises at once instead of training again.
# Retries stay for what can change: a dead node or worker.
FAILURE_MARKER = "deterministic_failure.txt"


def _watchdog(limit_s: float, marker: Path, done: threading.Event) -> None:
    """Ends this worker process if the trial outlives its time limit.

    A hung trial reports nothing, so nothing on the driver can stop it politely; exiting
    the worker makes Ray see a dead actor, and the marker left behind turns the retry
    into an immediate, recorded failure that says why.
    """
    if not done.wait(limit_s):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(timeout(limit_s).message)
        os._exit(3)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def run_trial(
    config: dict[str, Any],
    *,
    data: Any,
    base: Any,
    space: Any,
    time_limit_s: float | None = None,
    folds: Sequence[Any] | None = None,
    measured: Sequence[str] = (),
    metric: str = DEFAULT_METRIC,
    finished: frozenset[str] = frozenset(),
) -> None:
    """Ray Tune function trainable: train one configuration, report every epoch.

    Args:
        config: The sampled hyperparameters, by name.
        data: The decoded `Dataset` (from the object store).
        base: The `TrainConfig` the sampled values are applied to.
        space: The `SearchSpace` that maps names to config fields.
        time_limit_s: Wall-clock limit of the trial; past it the worker is ended and the
            trial recorded as failed with the reason.
        folds: With ``--cv K``, the K ``(train_idx, val_idx)`` pairs of
            `covidxr_core.data._folds.cv_folds`: the folds train one after another here,
            and each epoch reports their mean (`tuning.crossval.combine`).
        measured: ``params`` and/or ``latency_ms``, measured once and sent with every
            epoch's report (`tuning.crossval.measure`).
        metric: The study's metric: every report carries its score so far (``score``,
            the mean of its last epochs, `tuning.objective.final_score`), which Optuna
            and ASHA rank by.
        finished: Trial ids the leaderboard already holds as finished (a resumed study):
            Tune may restore one as unfinished when its state was saved a step behind;
            such a trial returns at once instead of training again.
    """
    import ray
    from ray import tune
    from ray.train._internal.session import get_session

    from tuning.engines.ray_lifeline import follow_parent

    if tune.get_context().get_trial_id() in finished:
        # The leaderboard holds this trial as finished; Ray Tune's restored state, saved
        # a step earlier, does not. Its result stands: it is not trained twice.
        return
    follow_parent()  # a trial never trains on after its raylet is gone (ray_lifeline)

    from covidxr_core import TrainingStopped, _reuse, configure_backend, train

    configure_backend()

    started = time.perf_counter()
    trial_dir = Path(tune.get_context().get_trial_dir())
    marker = trial_dir / FAILURE_MARKER
    if marker.exists():
        raise TrialFailed(marker.read_text())

    node = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
    }
    train_s = 0.0
    done = threading.Event()
    if time_limit_s:
        threading.Thread(target=_watchdog, args=(time_limit_s, marker, done), daemon=True).start()

    extra: dict[str, float] = {}

    hits_before = _reuse.stats()["hits"]
    exit_to_ray: list[SystemExit] = []
    history: list[float | None] = []

    def report(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal train_s
        train_s += float(metrics.get("epoch_s", 0.0))
        history.append(metrics.get(metric))
        try:
            tune.report(
                {
                    **metrics,
                    **extra,
                    **node,
                    SCORE_KEY: _or_nan(final_score(history)),
                    "epoch": epoch,
                    "train_s": train_s,
                    "trial_wall_s": time.perf_counter() - started,
                    # This trial trained a model whose steps an earlier one traced.
                    "reused_program": _reuse.stats()["hits"] > hits_before,
                }
            )
        except SystemExit as exc:
            # Ray ends a trial it stopped (its last epoch, ASHA, a reset) by exiting the
            # training thread from inside this call. Unwinding through train() as
            # SystemExit would skip its hand-back of the model, and no later trial could
            # reuse it: unwind as a stop, then exit as Ray asked (a plain return would
            # leave Ray's thread waiting for a go-ahead it already gave).
            if exc.code not in (0, None):
                raise
            exit_to_ray.append(exc)
            raise TrainingStopped(epoch, 0) from None
        if epoch >= budget:
            # The last epoch is reported: nothing train() computes after it is used here,
            # and the worker is free for the next trial at once (a reused worker whose
            # thread is still busy past Ray's reset window costs the next trial).
            raise TrainingStopped(epoch, 0)

    # Ray sets this event when it ends the trial (ASHA's stop, the time budget, a reset for
    # the next trial): training then stops within a batch instead of at its next report.
    # Ray's own API has no public hook for it; the session object is Ray 2.60's.
    session = get_session()
    stop_event = getattr(session, "stop_event", None)

    def should_stop() -> bool:
        return stop_event is not None and stop_event.is_set()

    budget = float("inf")
    try:
        values = {k: v for k, v in config.items() if k != ORIGIN_KEY}
        train_config = space.apply(values, base)
        budget = train_config.epochs
        if measured:
            from tuning.crossval import measure

            extra.update(measure(train_config.model, measured))
        if not folds:
            train(
                train_config,
                data,
                callbacks=[report],
                evaluate_test=False,
                n_boot=0,
                should_stop=should_stop,
                # This worker runs trial after trial: a trial of an architecture it has
                # trained before reuses that model's traced steps (covidxr_core._reuse).
                reuse=True,
            )
        else:
            _cross_validate(train_config, data, folds, report, should_stop)
    except TrainingStopped:
        if exit_to_ray:
            raise exit_to_ray[0] from None
        return  # Ray asked for the worker back: nothing failed
    except Exception as exc:
        failure = classify(exc)
        if failure.retry:
            raise
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(failure.message)
        raise TrialFailed(failure.message) from exc
    finally:
        done.set()


def _cross_validate(
    train_config: Any, data: Any, folds: Sequence[Any], report: Any, should_stop: Any
) -> None:
    """Trains the folds one after another, then reports each epoch's mean over folds."""
    from covidxr_core import TrainingStopped, train
    from covidxr_core.data._folds import fold_dataset
    from tuning.crossval import combine

    histories: list[list[dict[str, float]]] = []
    for number, fold in enumerate(folds):
        if should_stop():
            raise TrainingStopped(0, 0)
        epochs: list[dict[str, float]] = []

        def keep(_epoch: int, metrics: dict[str, float], into: list = epochs) -> None:
            into.append(dict(metrics))

        train(
            train_config,
            fold_dataset(data, fold, number, len(folds)),
            callbacks=[keep],
            evaluate_test=False,
            n_boot=0,
            should_stop=should_stop,
            reuse=True,  # folds 2..K (and later trials) reuse fold 1's traced steps
        )
        histories.append(epochs)
    for epoch, metrics in enumerate(combine(histories), start=1):
        if should_stop():  # ASHA stopped the trial at the last rung reported
            raise TrainingStopped(epoch, 0)
        report(epoch, metrics)


__all__ = ["FAILURE_MARKER", "run_trial"]
