"""The leaderboard: one row per trial, kept on disk as Parquet while the study runs.

A Ray Tune callback on the driver fills it as trials start, report and end, and rewrites
`leaderboard.parquet` atomically after every change of a trial's state, so a killed driver
leaves a readable file and `--resume` carries on from it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from ray.tune import Callback

from search_spaces import SearchSpace
from tuning._trainable import FAILURE_MARKER

VAL_METRICS = ("val_auc", "val_loss", "val_accuracy", "val_sensitivity", "val_specificity")
CURVES = ("val_auc", "val_loss", "train_loss", "epoch_s")
_ARROW_OF = {"float": pa.float64(), "int": pa.int64(), "categorical": None}


def param_column(name: str) -> str:
    return f"param_{name}"


def leaderboard_schema(space: SearchSpace) -> pa.Schema:
    """The typed schema: each hyperparameter is a column of its own type."""
    fields: list[pa.Field] = [
        pa.field("trial_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("stop_reason", pa.string()),
        pa.field("error", pa.string()),
    ]
    for param in space.params:
        arrow_type = _ARROW_OF[param.type]
        if arrow_type is None:
            kinds = {type(c) for c in param.choices}
            if kinds <= {int}:
                arrow_type = pa.int64()
            elif kinds <= {int, float}:
                arrow_type = pa.float64()
            elif kinds <= {bool}:
                arrow_type = pa.bool_()
            else:
                arrow_type = pa.string()
        fields.append(pa.field(param_column(param.name), arrow_type))
    fields += [pa.field(m, pa.float64()) for m in VAL_METRICS]
    fields += [
        pa.field("best_metric", pa.float64()),
        pa.field("best_epoch", pa.int64()),
        pa.field("epochs_run", pa.int64()),
        pa.field("max_epochs", pa.int64()),
        pa.field("wall_s", pa.float64()),
        pa.field("train_s", pa.float64()),
        pa.field("started_at", pa.float64()),
        pa.field("finished_at", pa.float64()),
        pa.field("node_id", pa.string()),
        pa.field("node_ip", pa.string()),
        pa.field("pid", pa.int64()),
        pa.field("gpu_fraction", pa.float64()),
        pa.field("cpus", pa.float64()),
        pa.field("retries", pa.int64()),
    ]
    fields += [pa.field(f"curve_{c}", pa.list_(pa.float64())) for c in CURVES]
    return pa.schema(fields)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class Leaderboard:
    """Rows keyed by trial id, with atomic Parquet persistence."""

    def __init__(self, path: Path, space: SearchSpace, metric: str, mode: str, max_epochs: int):
        self.path = path
        self.space = space
        self.schema = leaderboard_schema(space)
        self.metric = metric
        self.mode = mode
        self.max_epochs = max_epochs
        self.rows: dict[str, dict[str, Any]] = {}
        self.search_wall_s: float | None = None  # set when the search ends
        if path.exists():
            for row in pq.read_table(path).to_pylist():
                self.rows[row["trial_id"]] = row

    def row(self, trial_id: str) -> dict[str, Any]:
        if trial_id not in self.rows:
            self.rows[trial_id] = {f.name: None for f in self.schema}
            self.rows[trial_id].update(
                trial_id=trial_id,
                status="PENDING",
                max_epochs=self.max_epochs,
                retries=0,
                **{f"curve_{c}": [] for c in CURVES},
            )
        return self.rows[trial_id]

    def start(self, trial_id: str, config: dict[str, Any], gpus: float, cpus: float) -> None:
        row = self.row(trial_id)
        for param in self.space.params:
            if param.name in config:
                row[param_column(param.name)] = config[param.name]
        if row["status"] == "PENDING" or row["started_at"] is None:
            row["started_at"] = time.time()
        row.update(status="RUNNING", stop_reason="running", gpu_fraction=gpus, cpus=cpus)
        # A retried trial starts over: its curves restart with it.
        for c in CURVES:
            row[f"curve_{c}"] = []

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        row = self.row(trial_id)
        for m in VAL_METRICS:
            row[m] = _finite(result.get(m))
        for c in CURVES:
            row[f"curve_{c}"] = [*row[f"curve_{c}"], _finite(result.get(c))]
        row["epochs_run"] = int(result.get("epoch", len(row["curve_val_auc"])))
        row["train_s"] = _finite(result.get("train_s"))
        row["node_id"] = result.get("node_id", row["node_id"])
        row["node_ip"] = result.get("node_ip", row["node_ip"])
        row["pid"] = result.get("pid", row["pid"])
        value = _finite(result.get(self.metric))
        best = row["best_metric"]
        better = best is None or (
            value is not None and (value > best if self.mode == "max" else value < best)
        )
        if value is not None and better:
            row["best_metric"] = value
            row["best_epoch"] = row["epochs_run"]

    def finish(self, trial_id: str, error: str | None = None) -> None:
        row = self.row(trial_id)
        row["finished_at"] = time.time()
        if row["started_at"] is not None:
            row["wall_s"] = row["finished_at"] - row["started_at"]
        if error is not None:
            row.update(status="ERROR", stop_reason="failed", error=error)
        else:
            full = (row["epochs_run"] or 0) >= self.max_epochs
            row.update(status="TERMINATED", stop_reason="completed" if full else "early-stopped")

    def retry(self, trial_id: str, error: str) -> None:
        """A trial failed and Ray restarts it (max_failures); the error is kept meanwhile."""
        row = self.row(trial_id)
        row["retries"] = (row["retries"] or 0) + 1
        row["error"] = error

    def is_finished(self, trial_id: str) -> bool:
        return trial_id in self.rows and self.rows[trial_id]["finished_at"] is not None

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(list(self.rows.values()), schema=self.schema)

    def save(self) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(self.table(), tmp)
        os.replace(tmp, self.path)


def read_error(trial: Any) -> str:
    """The last line of a failed trial's error file: the exception, without Ray's wrapping.

    A trial that left the deterministic-failure marker (its time-limit watchdog fired, or
    it failed in a way a retry cannot fix) is described by the marker: without a retry
    to re-raise it, Ray's error file only says that the worker process died.
    """
    # The driver's staging folder (what a trial on this machine writes to), then the storage
    # folder Tune syncs it to.
    for folder in ("local_path", "path"):
        try:
            marker = Path(getattr(trial, folder)) / FAILURE_MARKER
            if marker.is_file():
                return f"TrialFailed: {marker.read_text(errors='replace').strip()}"[:2000]
        except (OSError, TypeError, RuntimeError):
            continue
    try:
        text = Path(trial.error_file).read_text(errors="replace")
    except (OSError, TypeError):
        return "trial failed (no error file)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    exception_lines = [
        ln
        for ln in lines
        if ln.split(":")[0].endswith(("Error", "Exception", "Diverged", "Failed"))
    ]
    return (exception_lines or lines or ["trial failed"])[-1][:2000]


class LeaderboardCallback(Callback):
    """Keeps a Leaderboard in step with Ray Tune's trial events."""

    def __init__(
        self,
        board: Leaderboard,
        gpus: float,
        cpus: float,
        on_save: Callable[[], None] | None = None,
    ):
        self.board = board
        self.gpus = gpus
        self.cpus = cpus
        self.on_save = on_save
        self._dirty = False

    def _save(self) -> None:
        # Written at the end of Tune's step, after Tune has checkpointed its own state:
        # a trial shown as finished here is one a resumed study will not run again.
        self._dirty = True

    def _flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.board.save()
            if self.on_save is not None:
                self.on_save()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._flush()

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the RunConfig into the experiment folder; the live objects are
        # replaced on resume, so only a placeholder needs to survive.
        return {
            "board": None,
            "gpus": self.gpus,
            "cpus": self.cpus,
            "on_save": None,
            "_dirty": False,
        }

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.board.start(trial.trial_id, trial.config, self.gpus, self.cpus)
        self._save()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.board.result(trial.trial_id, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.board.finish(trial.trial_id)
        self._save()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.board.finish(trial.trial_id, error=read_error(trial))
        self._save()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.board.retry(trial.trial_id, read_error(trial))
        self._save()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Ray skips the error callback for a trial whose retry fails before it is marked
        # running again; its final state is still known here, so no row stays "running".
        changed = False
        for trial in trials:
            if self.board.is_finished(trial.trial_id):
                continue
            if trial.trial_id not in self.board.rows:
                if trial.status not in ("ERROR", "TERMINATED"):
                    continue
                # Ray ends a trial whose reused worker failed to reset without any trial
                # callback; it never ran, and the leaderboard says so instead of losing it.
                self.board.start(trial.trial_id, trial.config, self.gpus, self.cpus)
            if trial.status == "ERROR":
                self.board.finish(trial.trial_id, error=read_error(trial))
                changed = True
            elif trial.status == "TERMINATED":
                self.board.finish(trial.trial_id)
                changed = True
        if changed:
            self._save()
        self._flush()
