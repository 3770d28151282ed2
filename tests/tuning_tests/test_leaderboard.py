"""The leaderboard's schema and bookkeeping, without Ray running a study."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from search_spaces import get_space
from tuning._leaderboard import Leaderboard


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
