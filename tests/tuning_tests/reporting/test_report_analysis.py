"""What the report derives from leaderboard rows: ranks, the best so far and worker usage."""

from __future__ import annotations

import pytest

from tuning.leaderboard import TrialRow
from tuning.reporting import Ranked, rank_rows
from tuning.reporting.analysis import best_so_far, worker_spans


def _row(trial_id: str, **values: object) -> TrialRow:
    return TrialRow(trial_id=trial_id, **values)  # type: ignore[arg-type]


def test_rank_rows_best_first_ties_by_trial_id_unscored_last() -> None:
    rows = [
        _row("d", val_auc=0.7),
        _row("c", val_auc=None, stop_reason="failed"),
        _row("b", val_auc=0.9),
        _row("a", val_auc=0.7),
        _row("e", val_auc=float("nan")),  # not a value: ranks with the unscored
    ]
    ranked = rank_rows(rows, "val_auc", "max")
    assert all(isinstance(r, Ranked) for r in ranked)
    assert [(r.rank, r.row.trial_id) for r in ranked] == [
        (1, "b"),
        (2, "a"),
        (3, "d"),
        (None, "c"),
        (None, "e"),
    ]


def test_rank_rows_min_mode_columns_rank_smallest_first() -> None:
    rows = [_row("a", val_loss=0.5), _row("b", val_loss=0.2), _row("c", wall_s=3.0)]
    # The direction comes from the column when no mode is given: losses and *_s are "min".
    assert [r.row.trial_id for r in rank_rows(rows, "val_loss")] == ["b", "a", "c"]
    timed = [_row("x", wall_s=9.0), _row("y", wall_s=1.5)]
    assert [(r.rank, r.row.trial_id) for r in rank_rows(timed, "wall_s")] == [(1, "y"), (2, "x")]


def test_rank_rows_reads_parameter_columns() -> None:
    rows = [_row("a", params={"lr": 0.1}), _row("b", params={"lr": 0.01})]
    assert [r.row.trial_id for r in rank_rows(rows, "param_lr", "min")] == ["b", "a"]


def test_best_so_far_follows_finish_order_and_skips_failures() -> None:
    rows = [
        _row("late", val_auc=0.95, finished_at=40.0, stop_reason="completed"),
        _row("first", val_auc=0.6, finished_at=10.0, stop_reason="completed"),
        _row("broken", val_auc=0.99, finished_at=20.0, stop_reason="failed"),
        _row("worse", val_auc=0.5, finished_at=30.0, stop_reason="early-stopped"),
        _row("running", val_auc=0.99),  # not finished: not on the curve
    ]
    steps = best_so_far(rows, "val_auc", "max")
    assert [s.trial_id for s in steps] == ["first", "broken", "worse", "late"]
    assert [s.order for s in steps] == [1, 2, 3, 4]
    assert [s.value for s in steps] == [0.6, None, 0.5, 0.95]
    assert [s.best for s in steps] == [0.6, 0.6, 0.6, 0.95]
    assert steps[2].stop_reason == "early-stopped"


def test_best_so_far_for_a_loss_goes_down() -> None:
    rows = [
        _row("a", val_loss=0.7, finished_at=1.0, stop_reason="completed"),
        _row("b", val_loss=0.9, finished_at=2.0, stop_reason="completed"),
        _row("c", val_loss=0.3, finished_at=3.0, stop_reason="completed"),
    ]
    assert [s.best for s in best_so_far(rows, "val_loss", "min")] == [0.7, 0.7, 0.3]


def test_worker_spans_count_overlap_once() -> None:
    where = dict(node_id="abcdef0123456789", pid=11)
    rows = [
        _row("t1", started_at=100.0, finished_at=140.0, stop_reason="completed", **where),
        # Starts before t1 is recorded as finished: 130..150 overlaps t1 by 10 s.
        _row("t2", started_at=130.0, finished_at=150.0, stop_reason="completed", **where),
        _row("t3", started_at=100.0, finished_at=200.0, stop_reason="completed", pid=12),
        _row("t4", started_at=160.0, finished_at=170.0, stop_reason="failed"),  # no pid
        _row("t5", started_at=120.0),  # still running: no span
    ]
    spans, busy, makespan = worker_spans(rows)
    assert makespan == pytest.approx(100.0)
    first = "node abcdef01 · pid 11"
    assert busy[first] == pytest.approx(0.5)  # 100..150 covered, not 40 + 20
    assert busy["node ? · pid 12"] == pytest.approx(1.0)
    assert busy["unknown worker"] == pytest.approx(0.1)
    assert [(s.worker, s.trial_id, s.start, s.end) for s in spans if s.worker == first] == [
        (first, "t1", 0.0, 40.0),
        (first, "t2", 30.0, 50.0),
    ]
    assert {s.trial_id for s in spans} == {"t1", "t2", "t3", "t4"}


def test_worker_spans_of_no_finished_trial_are_empty() -> None:
    assert worker_spans([_row("a", started_at=1.0)]) == ([], {}, 0.0)
