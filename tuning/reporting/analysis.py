"""Numbers the report derives from the run folder: ranks, progress, importance, usage."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covidxr_core.numbers import finite
from tuning.leaderboard import TrialRow
from tuning.objective import direction, is_better, sort_key


@dataclass(frozen=True)
class Ranked:
    """A leaderboard row and its 1-based rank (None: no value in the ranking column)."""

    rank: int | None
    row: TrialRow


def rank_rows(rows: Sequence[TrialRow], column: str, mode: str | None = None) -> list[Ranked]:
    """Rows best-first by ``column`` (a Parquet column name such as ``val_auc``), ranked.

    Ties go by trial id. Rows without a value (failed, still running) follow the ranked
    ones with rank None, in trial-id order, so every trial appears exactly once.
    """
    mode = mode or direction(column)
    scored = [r for r in rows if finite(r.column(column)) is not None]
    unscored = [r for r in rows if finite(r.column(column)) is None]
    scored.sort(key=lambda r: (sort_key(r.column(column), mode), r.trial_id))
    unscored.sort(key=lambda r: r.trial_id)
    return [Ranked(i, r) for i, r in enumerate(scored, start=1)] + [
        Ranked(None, r) for r in unscored
    ]


@dataclass(frozen=True)
class Progress:
    """One finished trial in the order trials finished."""

    order: int  # 1-based finish position
    trial_id: str
    value: float | None  # its final metric (None: failed)
    best: float | None  # best final metric among trials finished so far
    stop_reason: str


def best_so_far(rows: Sequence[TrialRow], metric: str, mode: str) -> list[Progress]:
    """The search's progress: each finished trial and the best value up to it."""
    finished = sorted(
        (r for r in rows if finite(r.finished_at) is not None),
        key=lambda r: float(r.finished_at or 0.0),
    )
    out: list[Progress] = []
    best: float | None = None
    for i, row in enumerate(finished, start=1):
        value = finite(row.column(metric)) if row.stop_reason != "failed" else None
        if is_better(value, best, mode):
            best = value
        out.append(Progress(i, row.trial_id, value, best, row.stop_reason or "?"))
    return out


def param_importances(run_dir: Path, study_name: str) -> tuple[dict[str, float] | None, str]:
    """Optuna's fANOVA importances of the study stored in ``optuna.db``.

    Returns:
        ``(importances, explanation)``; importances is None, with the reason, when the
        study cannot be opened or has too few completed trials to say anything.
    """
    db = run_dir / "optuna.db"
    if not db.exists():
        return None, "optuna.db not found"
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")
    except Exception as exc:  # KeyError for an unknown name, SQLAlchemy errors for a bad file
        return None, f"cannot open the Optuna study {study_name!r}: {exc}"
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    # A multi-objective study (--objectives) has no single value: the first objective's.
    many = len(study.directions) > 1
    values = {(t.values or [None])[0] for t in complete}
    if len(complete) < 3 or len(values) < 2:
        return None, (
            f"needs at least 3 completed trials with different results; this study has "
            f"{len(complete)} ({len(values)} distinct value(s))"
        )
    try:
        if many:  # the evaluator wants low targets: flip a maximised first objective
            sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "modify target" advice
                importances = optuna.importance.get_param_importances(
                    study, target=lambda t: sign * t.values[0]
                )
        else:
            importances = optuna.importance.get_param_importances(study)
    except Exception as exc:  # e.g. a parameter that never varied
        return None, f"Optuna could not compute importances: {exc}"
    caution = (
        "; with this few trials the split between parameters is mostly noise"
        if len(complete) < 10
        else ""
    )
    return dict(importances), (
        f"fANOVA (Optuna's default evaluator) over {len(complete)} completed trials; early "
        f"stopped trials count with the last value they reported{caution}"
        + (" (of the first objective)" if many else "")
    )


@dataclass(frozen=True)
class Span:
    """One trial's time on one worker, in seconds since the first trial started."""

    worker: str
    trial_id: str
    start: float
    end: float
    stop_reason: str


def worker_name(row: TrialRow) -> str:
    """The worker process a trial ran in, as the timeline labels it."""
    if row.pid is None:  # failed before its first report: the engine never said where
        return "unknown worker"
    return f"node {(row.node_id or '?')[:8]} · pid {row.pid}"


def worker_spans(rows: Sequence[TrialRow]) -> tuple[list[Span], dict[str, float], float]:
    """Trials per worker process over time, and how busy each worker was.

    Returns:
        ``(spans, busy, makespan)``: spans sorted by worker then start; busy fraction of
        the search's wall time per worker; seconds from the first start to the last end.
    """
    timed = [
        (r, start, end)
        for r in rows
        if (start := finite(r.started_at)) is not None
        and (end := finite(r.finished_at)) is not None
    ]
    if not timed:
        return [], {}, 0.0
    t0 = min(start for _, start, _ in timed)
    t1 = max(end for _, _, end in timed)
    spans = [
        Span(worker_name(r), r.trial_id, start - t0, end - t0, r.stop_reason or "?")
        for r, start, end in timed
    ]
    spans.sort(key=lambda s: (s.worker, s.start))
    makespan = max(t1 - t0, 1e-9)
    busy: dict[str, float] = {}
    for worker in dict.fromkeys(s.worker for s in spans):
        # Union of intervals: an engine may start a trial before the previous one is
        # recorded as finished, and overlap must not count twice.
        covered, end = 0.0, -math.inf
        for s in (s for s in spans if s.worker == worker):
            start = max(s.start, end)
            if s.end > start:
                covered += s.end - start
            end = max(end, s.end)
        busy[worker] = covered / makespan
    return spans, busy, makespan


@dataclass(frozen=True)
class Leakage:
    """The outcome of the duplicate check across splits."""

    checked: bool
    explanation: str
    pairs: tuple[str, ...] = ()  # one line per duplicate pair


def check_leakage(dataset: Any, config: Any) -> Leakage:
    """Same radiograph in two splits? Uses the fingerprints cached when data was decoded.

    Args:
        dataset: The study's `Dataset` (None if it could not be loaded).
        config: The `DataConfig` it was loaded with (carving decides the splits).
    """
    if dataset is None:
        return Leakage(False, "not checked: the data could not be loaded")
    if dataset.synthetic:
        return Leakage(False, "not checked: synthetic demo data (generated images, no patients)")
    from covidxr_core.data import NEAR_DUPLICATE_BITS, find_duplicates

    try:
        pairs = find_duplicates(dataset, config)
    except Exception as exc:  # a leakage check must not take the report down
        return Leakage(False, f"not checked: {type(exc).__name__}: {exc}")
    rule = (
        f"exact byte copies or perceptual hashes within {NEAR_DUPLICATE_BITS} of 256 bits, "
        "between different splits"
    )
    if not pairs:
        return Leakage(True, f"no duplicates found ({rule})")
    # Name each file's split: a carved split keeps its files' train/ paths, so the paths
    # alone would make a train-test pair look like two train files.
    lines = tuple(f"{p.describe()}  [{p.split_a} ↔ {p.split_b}]" for p in pairs)
    return Leakage(True, f"{len(pairs)} duplicate pair(s) across splits ({rule})", lines)


__all__ = [
    "Leakage",
    "Progress",
    "Ranked",
    "Span",
    "best_so_far",
    "check_leakage",
    "param_importances",
    "rank_rows",
    "worker_name",
    "worker_spans",
]
