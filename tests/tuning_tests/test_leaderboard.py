"""The leaderboard's schema and bookkeeping, without Ray running a study."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from search_spaces import get_space
from tuning.leaderboard import Leaderboard, TrialRow, best_trial, read_rows, stop_counts


def _board(tmp_path, epochs=3):
    return Leaderboard(tmp_path / "lb.parquet", get_space("default"), "val_auc", "max", epochs)


def test_each_hyperparameter_has_its_own_typed_column(tmp_path):
    schema = _board(tmp_path).schema
    assert schema.field("param_learning_rate").type == pa.float64()
    assert schema.field("param_base_width").type == pa.int64()
    assert schema.field("param_width_cap").type == pa.int64()
    assert schema.field("param_batch_size").type == pa.int64()
    assert schema.field("param_optimizer").type == pa.string()
    assert schema.field("curve_val_auc").type == pa.list_(pa.float64())


def test_completed_early_stopped_and_failed_rows_round_trip(tmp_path):
    board = _board(tmp_path)
    for tid in ("a", "b", "c"):
        board.start(tid, {"learning_rate": 0.01, "optimizer": "adam", "base_width": 4}, 0.25, 1.0)
    for epoch, auc in enumerate((0.6, 0.8, 0.7), start=1):
        board.result("a", {"epoch": epoch, "val_auc": auc, "val_loss": 0.5, "node_id": "n1"})
    board.result("b", {"epoch": 1, "val_auc": 0.55, "node_id": "n2"})
    board.finish("a")
    board.finish("b")
    board.finish("c", error="TrialFailed: TrainingDiverged: loss is nan at epoch 1")
    board.save()

    rows = {r["trial_id"]: r for r in pq.read_table(tmp_path / "lb.parquet").to_pylist()}
    assert rows["a"]["stop_reason"] == "completed"
    assert rows["a"]["best_metric"] == 0.8 and rows["a"]["best_epoch"] == 2
    assert rows["a"]["val_auc"] == 0.7  # final, not best
    assert rows["a"]["curve_val_auc"] == [0.6, 0.8, 0.7]
    assert rows["b"]["stop_reason"] == "early-stopped" and rows["b"]["epochs_run"] == 1
    assert rows["c"]["stop_reason"] == "failed" and "nan" in rows["c"]["error"]
    assert rows["a"]["gpu_fraction"] == 0.25 and rows["a"]["node_id"] == "n1"
    assert rows["a"]["param_optimizer"] == "adam"

    # A resumed study starts from the file, not from nothing.
    again = _board(tmp_path)
    assert set(again.rows) == {"a", "b", "c"}
    assert again.rows["a"].curve("val_auc") == [0.6, 0.8, 0.7]
    assert again.rows["a"].params == {"learning_rate": 0.01, "optimizer": "adam", "base_width": 4}
    assert [r.trial_id for r in read_rows(tmp_path / "lb.parquet")] == ["a", "b", "c"]


def test_a_retried_trial_starts_its_curves_over_and_counts_the_retry(tmp_path):
    board = _board(tmp_path)
    board.start("a", {"dropout": 0.1}, 0.0, 1.0)
    board.result("a", {"epoch": 1, "val_auc": 0.6})
    board.retry("a", "RayActorError: the worker died")
    board.start("a", {"dropout": 0.1}, 0.0, 1.0)
    assert board.rows["a"].curve("val_auc") == []
    assert board.rows["a"].retries == 1 and "worker died" in board.rows["a"].error


def test_non_finite_values_are_recorded_as_missing(tmp_path):
    board = _board(tmp_path)
    board.start("a", {}, 0.0, 1.0)
    board.result("a", {"epoch": 1, "val_auc": float("nan"), "val_loss": float("inf")})
    row = board.rows["a"]
    assert row.val_auc is None and row.val_loss is None and row.best_metric is None
    assert row.curve("val_auc") == [None]


def _row(tid, value, reason="completed", status="TERMINATED"):
    return TrialRow(trial_id=tid, status=status, stop_reason=reason, val_auc=value, val_loss=value)


def test_the_winner_ran_the_full_budget_unless_none_did():
    rows = [
        _row("early", 0.99, "early-stopped"),
        _row("full-a", 0.80),
        _row("full-b", 0.85),
        _row("failed", None, "failed", "ERROR"),
        _row("running", 0.999, "running", "RUNNING"),
    ]
    assert best_trial(rows, "val_auc", "max").trial_id == "full-b"
    assert best_trial(rows, "val_loss", "min").trial_id == "full-a"
    # No completed trial: the best of the early-stopped ones.
    only_early = [_row("e1", 0.7, "early-stopped"), _row("e2", 0.75, "early-stopped")]
    assert best_trial(only_early, "val_auc", "max").trial_id == "e2"
    # Ties go to the first trial; nothing finished with a value: no winner.
    assert best_trial([_row("x", 0.8), _row("y", 0.8)], "val_auc", "max").trial_id == "x"
    assert best_trial([_row("f", None, "failed", "ERROR")], "val_auc", "max") is None


def test_stop_counts_and_columns():
    rows = [_row("a", 0.8), _row("b", 0.7, "early-stopped"), TrialRow(trial_id="c")]
    assert stop_counts(rows) == {"completed": 1, "early-stopped": 1, "failed": 0, "running": 1}
    row = TrialRow(trial_id="t", params={"lr": 0.1}, val_auc=0.9)
    assert row.column("param_lr") == 0.1 and row.column("val_auc") == 0.9
    with pytest.raises(KeyError, match="leaderboard column must be one of"):
        row.column("val_aux")


def test_the_board_becomes_a_dataframe_with_the_parquet_columns(tmp_path):
    board = _board(tmp_path)
    board.start("a", {"learning_rate": 0.01}, 0.0, 1.0)
    frame = board.to_pandas()
    assert list(frame.columns) == board.schema.names
    assert frame.loc[0, "param_learning_rate"] == 0.01


def test_a_trial_cut_off_by_a_stop_is_dropped_and_not_counted(tmp_path):
    from tuning.engines.ray_tune import unrun_starts
    from tuning.starts import ORIGIN_KEY, Start

    board = _board(tmp_path)
    board.start("done", {"learning_rate": 0.01, ORIGIN_KEY: "default"}, 0.0, 1.0)
    board.result("done", {"epoch": 3, "val_auc": 0.8})
    board.finish("done")
    board.start("failed", {"learning_rate": 0.02}, 0.0, 1.0)
    board.finish("failed", error="TrialFailed: boom")
    board.start("cut", {"learning_rate": 0.03, ORIGIN_KEY: "recipe"}, 0.0, 1.0)
    board.result("cut", {"epoch": 1, "val_auc": 0.7})
    # Failed trials ended: they count toward --trials; the one still running does not.
    assert board.finished_count() == 2
    assert board.drop_unfinished() == ["cut"]
    assert sorted(board.rows) == ["done", "failed"] and board.finished_count() == 2
    board.save()
    assert sorted(r.trial_id for r in read_rows(tmp_path / "lb.parquet")) == ["done", "failed"]
    # The recipe start never finished: a resumed search runs it first; the default did.
    starts = [Start("default", {"learning_rate": 0.01}), Start("recipe", {"learning_rate": 0.03})]
    assert [s.origin for s in unrun_starts(starts, board)] == ["recipe"]


def test_search_rounds_have_their_own_folders_and_seeds():
    from tuning.engines.ray_tune import round_name, round_seed

    assert [round_name(i) for i in range(3)] == ["tune", "tune-2", "tune-3"]
    assert round_seed(7, 0) == 7
    assert len({round_seed(7, i) for i in range(5)}) == 5
