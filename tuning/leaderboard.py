"""The leaderboard: one typed `TrialRow` per trial, kept on disk as Parquet while a study runs.

Whatever engine drives the trials reports their starts, epochs and ends here, and the
board rewrites ``leaderboard.parquet`` atomically after each change of a trial's state,
so a killed driver leaves a readable file and ``--resume`` carries on from it. Nothing
here knows about Ray: an engine adapts its own events to these calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from covidxr_core.atomic import replacing
from covidxr_core.numbers import finite
from tuning.objective import best, is_better

if TYPE_CHECKING:
    import pandas as pd

    from search_spaces import SearchSpace

LEADERBOARD_FILE = "leaderboard.parquet"
VAL_METRICS = ("val_auc", "val_loss", "val_accuracy", "val_sensitivity", "val_specificity")
CURVES = ("val_auc", "val_loss", "train_loss", "epoch_s")
STOP_REASONS = ("completed", "early-stopped", "failed", "running")
_ARROW_OF = {"float": pa.float64(), "int": pa.int64(), "categorical": None}


def param_column(name: str) -> str:
    """The Parquet column of a searched parameter."""
    return f"param_{name}"


@dataclass
class TrialRow:
    """One trial as the leaderboard records it.

    The ``val_*`` values are the trial's last reported epoch (what selection uses);
    ``best_metric`` / ``best_epoch`` are its best epoch by the study's metric.
    """

    trial_id: str
    status: str = "PENDING"  # PENDING, RUNNING, TERMINATED or ERROR
    stop_reason: str | None = None  # one of STOP_REASONS once started
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    val_auc: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_sensitivity: float | None = None
    val_specificity: float | None = None
    best_metric: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    max_epochs: int | None = None
    wall_s: float | None = None
    train_s: float | None = None
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    node_id: str | None = None
    node_ip: str | None = None
    pid: int | None = None
    gpu_fraction: float | None = None
    cpus: float | None = None
    retries: int = 0
    rerun_reason: str | None = None  # why the engine ran this trial again, if it did
    curves: dict[str, list[float | None]] = field(default_factory=lambda: {c: [] for c in CURVES})

    @property
    def reason(self) -> str:
        """The stop reason, ``running`` for a trial that has none yet."""
        return self.stop_reason or "running"

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def curve(self, name: str) -> list[float | None]:
        return self.curves.get(name) or []

    def column(self, name: str) -> Any:
        """The value of a leaderboard column by its Parquet name (``param_lr``, ``val_auc``)."""
        if name.startswith("param_"):
            return self.params.get(name.removeprefix("param_"))
        if name.startswith("curve_"):
            return self.curve(name.removeprefix("curve_"))
        if name in _SCALARS:
            return getattr(self, name)
        raise KeyError(f"leaderboard column must be one of {sorted(_SCALARS)}, but got {name!r}")

    def to_record(self, param_names: Iterable[str]) -> dict[str, Any]:
        """The flat Parquet record: ``param_*`` and ``curve_*`` columns spelled out."""
        record = {name: getattr(self, name) for name in _SCALARS}
        record.update({param_column(p): self.params.get(p) for p in param_names})
        record.update({f"curve_{c}": list(self.curve(c)) for c in CURVES})
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrialRow:
        """A row read back from Parquet (unknown columns are ignored)."""
        values = {k: record.get(k) for k in _SCALARS if k in record}
        values["retries"] = int(values.get("retries") or 0)
        row = cls(trial_id=str(record["trial_id"]))
        for key, value in values.items():
            setattr(row, key, value)
        row.params = {  # a parameter the trial never drew is a null column
            k.removeprefix("param_"): v
            for k, v in record.items()
            if k.startswith("param_") and v is not None
        }
        row.curves = {c: list(record.get(f"curve_{c}") or []) for c in CURVES}
        return row


_SCALARS = tuple(f.name for f in dataclasses.fields(TrialRow) if f.name not in ("params", "curves"))


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
        pa.field("rerun_reason", pa.string()),
    ]
    fields += [pa.field(f"curve_{c}", pa.list_(pa.float64())) for c in CURVES]
    return pa.schema(fields)


def read_rows(path: Path) -> list[TrialRow]:
    """Every row of a ``leaderboard.parquet``."""
    return [TrialRow.from_record(r) for r in pq.read_table(path).to_pylist()]


def stop_counts(rows: Iterable[TrialRow]) -> dict[str, int]:
    """Trials per stop reason (completed, early-stopped, failed, running)."""
    counts = dict.fromkeys(STOP_REASONS, 0)
    for row in rows:
        counts[row.reason] = counts.get(row.reason, 0) + 1
    return counts


def best_trial(rows: Iterable[TrialRow], metric: str, mode: str) -> TrialRow | None:
    """The trial to retrain: the best final ``metric`` among trials that ran the full budget.

    Preferring full-budget trials compares like with like: an early epoch's score of a
    trial ASHA stopped is not what retraining for the full budget would give. If none
    completed, the best of the rest; None when no trial finished with a value.
    """
    done = [r for r in rows if r.status == "TERMINATED" and finite(r.column(metric)) is not None]
    completed = [r for r in done if r.stop_reason == "completed"] or done
    return best(completed, lambda r: r.column(metric), mode)


class Leaderboard:
    """Rows keyed by trial id, with atomic Parquet persistence.

    Args:
        path: The Parquet file; an existing one is read back (a resumed study).
        space: The search space (its parameters are typed columns).
        metric: The study's metric, for ``best_metric``.
        mode: ``"max"`` or ``"min"``.
        max_epochs: The epoch budget: a trial that ran it is ``completed``.
    """

    def __init__(self, path: Path, space: SearchSpace, metric: str, mode: str, max_epochs: int):
        self.path = path
        self.space = space
        self.schema = leaderboard_schema(space)
        self.metric = metric
        self.mode = mode
        self.max_epochs = max_epochs
        self.rows: dict[str, TrialRow] = {}
        self.search_wall_s: float | None = None  # set when the search ends
        if path.exists():
            for row in read_rows(path):
                self.rows[row.trial_id] = row

    def row(self, trial_id: str) -> TrialRow:
        if trial_id not in self.rows:
            self.rows[trial_id] = TrialRow(trial_id=trial_id, max_epochs=self.max_epochs)
        return self.rows[trial_id]

    def start(self, trial_id: str, config: Mapping[str, Any], gpus: float, cpus: float) -> None:
        """A trial (or its retry) started with these searched values."""
        row = self.row(trial_id)
        for param in self.space.params:
            if param.name in config:
                row.params[param.name] = config[param.name]
        if row.status == "PENDING" or row.started_at is None:
            row.started_at = time.time()
        row.status, row.stop_reason, row.gpu_fraction, row.cpus = "RUNNING", "running", gpus, cpus
        # A retried trial starts over: its curves restart with it.
        row.curves = {c: [] for c in CURVES}

    def result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """One epoch's report: ``epoch``, the ``val_*`` metrics, timings and where it ran."""
        row = self.row(trial_id)
        for m in VAL_METRICS:
            setattr(row, m, finite(result.get(m)))
        for c in CURVES:
            row.curves[c] = [*row.curve(c), finite(result.get(c))]
        row.epochs_run = int(result.get("epoch", len(row.curve("val_auc"))))
        row.train_s = finite(result.get("train_s"))
        row.node_id = result.get("node_id", row.node_id)
        row.node_ip = result.get("node_ip", row.node_ip)
        row.pid = result.get("pid", row.pid)
        value = finite(result.get(self.metric))
        if is_better(value, row.best_metric, self.mode):
            row.best_metric = value
            row.best_epoch = row.epochs_run

    def finish(self, trial_id: str, error: str | None = None) -> None:
        """A trial ended: with ``error`` it failed, else it completed or was stopped early."""
        row = self.row(trial_id)
        row.finished_at = time.time()
        if row.started_at is not None:
            row.wall_s = row.finished_at - row.started_at
        if error is not None:
            row.status, row.stop_reason, row.error = "ERROR", "failed", error
        else:
            full = (row.epochs_run or 0) >= self.max_epochs
            row.status = "TERMINATED"
            row.stop_reason = "completed" if full else "early-stopped"

    def retry(self, trial_id: str, error: str) -> None:
        """A trial failed and its engine restarts it; the error is kept meanwhile."""
        row = self.row(trial_id)
        row.retries += 1
        row.error = error

    def rerun(self, trial_id: str, reason: str) -> None:
        """The engine runs a trial again that never trained (not a retry of a failure)."""
        row = self.row(trial_id)
        row.rerun_reason = reason
        row.status, row.stop_reason, row.error, row.finished_at = "PENDING", "running", None, None

    def is_finished(self, trial_id: str) -> bool:
        return trial_id in self.rows and self.rows[trial_id].finished

    def winner(self) -> TrialRow | None:
        """`best_trial` of this board."""
        return best_trial(self.rows.values(), self.metric, self.mode)

    def table(self) -> pa.Table:
        names = self.space.names
        records = [r.to_record(names) for r in self.rows.values()]
        return pa.Table.from_pylist(records, schema=self.schema)

    def to_pandas(self) -> pd.DataFrame:
        """The leaderboard as a pandas DataFrame, one row per trial (needs pandas)."""
        return self.table().to_pandas()

    def save(self) -> None:
        with replacing(self.path) as tmp:
            pq.write_table(self.table(), tmp)


__all__ = [
    "CURVES",
    "LEADERBOARD_FILE",
    "STOP_REASONS",
    "VAL_METRICS",
    "Leaderboard",
    "TrialRow",
    "best_trial",
    "leaderboard_schema",
    "param_column",
    "read_rows",
    "stop_counts",
]
