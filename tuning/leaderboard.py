"""The leaderboard: one typed `TrialRow` per trial, kept on disk as Parquet while a study runs.

Whatever engine drives the trials reports their starts, epochs and ends here, and the
board rewrites ``leaderboard.parquet`` atomically after each change of a trial's state,
so a killed driver leaves a readable file and ``--resume`` carries on from it. Nothing
here knows about Ray: an engine adapts its own events to these calls.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from covidxr_core.atomic import replacing
from covidxr_core.numbers import finite
from tuning.objective import final_score, is_better
from tuning.selection import Constraint, Objective, PickRule, Selection
from tuning.selection import select as select_rows

if TYPE_CHECKING:
    import pandas as pd

    from search_spaces import SearchSpace

LEADERBOARD_FILE = "leaderboard.parquet"
VAL_METRICS = ("val_auc", "val_loss", "val_accuracy", "val_sensitivity", "val_specificity")
CURVES = ("val_auc", "val_loss", "train_loss", "epoch_s")
# With --cv: each fold's final value and its per-epoch curve, per metric.
FOLD_METRICS = ("val_auc", "val_loss", "val_sensitivity", "val_specificity")
FOLD_CURVES = ("val_auc", "val_loss")
STOP_REASONS = ("completed", "early-stopped", "failed", "running")
_ARROW_OF = {"float": pa.float64(), "int": pa.int64(), "categorical": None}


def param_column(name: str) -> str:
    """The Parquet column of a searched parameter."""
    return f"param_{name}"


@dataclass
class TrialRow:
    """One trial as the leaderboard records it.

    The ``val_*`` values are the trial's last reported epoch; ``score`` is the mean of the
    study's metric over its last epochs (`tuning.objective.final_score`), what ranks the
    trials; ``best_metric`` / ``best_epoch`` are its best epoch by the study's metric,
    shown, never used to choose.
    """

    trial_id: str
    status: str = "PENDING"  # PENDING, RUNNING, TERMINATED or ERROR
    stop_reason: str | None = None  # one of STOP_REASONS once started
    error: str | None = None
    # Where the configuration came from: default, recipe, user (a starting point run
    # first, for the full budget) or search (the sampler's own); tuning.starts.
    origin: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
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
    model_params: int | None = None  # the model's parameter count (objective "params")
    latency_ms: float | None = None  # CPU inference of one image, median of a few calls
    cv_folds: int | None = None  # K with --cv: the val_* values are means over K folds
    val_auc_std: float | None = None  # with --cv: standard deviation over folds
    pareto: bool | None = None  # on the Pareto front of the study's objectives
    feasible: bool | None = None  # meets every --constraint
    reused_program: bool | None = None  # trained steps an earlier trial on its worker traced
    curves: dict[str, list[float | None]] = field(default_factory=lambda: {c: [] for c in CURVES})
    # With --cv: metric -> each fold's value at the last epoch (FOLD_METRICS) ...
    folds: dict[str, list[float | None]] = field(default_factory=dict)
    # ... and metric -> each fold's per-epoch curve (FOLD_CURVES).
    fold_curves: dict[str, list[list[float | None]]] = field(default_factory=dict)

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
        record.update({f"fold_{m}": list(self.folds.get(m) or []) for m in FOLD_METRICS})
        record.update(
            {
                f"fold_curves_{c}": [list(k) for k in self.fold_curves.get(c) or []]
                for c in FOLD_CURVES
            }
        )
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
        row.folds = {m: list(v) for m in FOLD_METRICS if (v := record.get(f"fold_{m}"))}
        row.fold_curves = {
            c: [list(k) for k in v] for c in FOLD_CURVES if (v := record.get(f"fold_curves_{c}"))
        }
        return row


_SCALARS = tuple(
    f.name
    for f in dataclasses.fields(TrialRow)
    if f.name not in ("params", "curves", "folds", "fold_curves")
)


def _selection_record(row: TrialRow) -> dict[str, Any]:
    """A row as `tuning.selection` reads it: its scalar columns and its parameters."""
    record: dict[str, Any] = {name: getattr(row, name) for name in _SCALARS}
    record["params"] = dict(row.params)
    return record


def selection_records(rows: Iterable[TrialRow]) -> list[dict[str, Any]]:
    """Rows as `tuning.selection` and the Pareto chart read them."""
    return [_selection_record(r) for r in rows]


def leaderboard_schema(space: SearchSpace) -> pa.Schema:
    """The typed schema: each hyperparameter is a column of its own type."""
    fields: list[pa.Field] = [
        pa.field("trial_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("stop_reason", pa.string()),
        pa.field("error", pa.string()),
        pa.field("origin", pa.string()),
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
        pa.field("score", pa.float64()),
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
        pa.field("model_params", pa.int64()),
        pa.field("latency_ms", pa.float64()),
        pa.field("cv_folds", pa.int64()),
        pa.field("val_auc_std", pa.float64()),
        pa.field("pareto", pa.bool_()),
        pa.field("feasible", pa.bool_()),
        pa.field("reused_program", pa.bool_()),
    ]
    fields += [pa.field(f"curve_{c}", pa.list_(pa.float64())) for c in CURVES]
    fields += [pa.field(f"fold_{m}", pa.list_(pa.float64())) for m in FOLD_METRICS]
    fields += [pa.field(f"fold_curves_{c}", pa.list_(pa.list_(pa.float64()))) for c in FOLD_CURVES]
    return pa.schema(fields)


def read_table(path: str | os.PathLike[str]) -> pa.Table:
    """A ``leaderboard.parquet`` as one table, safe to call while a study rewrites it.

    The study replaces the file by renaming a new one over it. Reading by name lets
    pyarrow take the file's size from one version and its bytes from the next; opening
    it first pins the version that was there when it was opened.
    """
    with open(path, "rb") as handle:
        return pq.read_table(handle)


def read_rows(path: Path) -> list[TrialRow]:
    """Every row of a ``leaderboard.parquet``."""
    return [TrialRow.from_record(r) for r in read_table(path).to_pylist()]


def stop_counts(rows: Iterable[TrialRow]) -> dict[str, int]:
    """Trials per stop reason (completed, early-stopped, failed, running)."""
    counts = dict.fromkeys(STOP_REASONS, 0)
    for row in rows:
        counts[row.reason] = counts.get(row.reason, 0) + 1
    return counts


def ranking_value(row: TrialRow, metric: str) -> float | None:
    """What ranks a trial: its score (the mean of its last epochs), or, on a leaderboard
    written before scores existed, its last epoch's ``metric``."""
    return row.score if finite(row.score) is not None else finite(row.column(metric))


def ranked(rows: Iterable[TrialRow], metric: str, mode: str) -> list[TrialRow]:
    """The trials that finished with a value, best first: those that ran the full budget,
    then the rest (an early epoch's score is not what the full budget would give)."""
    done = [r for r in rows if r.status == "TERMINATED" and ranking_value(r, metric) is not None]
    sign = -1.0 if mode == "max" else 1.0

    def key(r: TrialRow) -> tuple[int, float]:
        value = ranking_value(r, metric)
        assert value is not None
        return (0 if r.stop_reason == "completed" else 1, sign * value)

    return sorted(done, key=key)


def best_trial(rows: Iterable[TrialRow], metric: str, mode: str) -> TrialRow | None:
    """The best trial by score among those that ran the full budget (`ranked`).

    Preferring full-budget trials compares like with like: an early epoch's score of a
    trial ASHA stopped is not what retraining for the full budget would give. If none
    completed, the best of the rest; None when no trial finished with a value.
    """
    order = ranked(rows, metric, mode)
    return order[0] if order else None


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
        self._history: dict[str, list[float | None]] = {}  # the metric per epoch, per trial
        self.search_wall_s: float | None = None  # set when the search ends
        # Planned trials the search could not run (a resume whose rounds stopped giving
        # finished trials); 0 when every planned trial ran.
        self.short_by = 0
        self.selection: Selection | None = None  # set by `select`
        if path.exists():
            for row in read_rows(path):
                self.rows[row.trial_id] = row

    def row(self, trial_id: str) -> TrialRow:
        if trial_id not in self.rows:
            self.rows[trial_id] = TrialRow(trial_id=trial_id, max_epochs=self.max_epochs)
        return self.rows[trial_id]

    def start(self, trial_id: str, config: Mapping[str, Any], gpus: float, cpus: float) -> None:
        """A trial (or its retry) started with these searched values."""
        from tuning.starts import ORIGIN_KEY

        row = self.row(trial_id)
        for param in self.space.params:
            if param.name in config:
                row.params[param.name] = config[param.name]
        row.origin = str(config.get(ORIGIN_KEY) or "search")
        self._history[trial_id] = []
        if row.status == "PENDING" or row.started_at is None:
            row.started_at = time.time()
        row.status, row.stop_reason, row.gpu_fraction, row.cpus = "RUNNING", "running", gpus, cpus
        # A retried trial starts over: its curves restart with it.
        row.curves = {c: [] for c in CURVES}
        row.folds, row.fold_curves = {}, {}

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
        if result.get("model_params") is not None:
            row.model_params = int(result["model_params"])
        if result.get("latency_ms") is not None:
            row.latency_ms = finite(result.get("latency_ms"))
        if result.get("reused_program") is not None:
            row.reused_program = bool(result["reused_program"])
        k = result.get("cv_folds")
        if k:
            k = int(k)
            row.cv_folds = k
            row.val_auc_std = finite(result.get("val_auc_std"))
            for m in FOLD_METRICS:
                row.folds[m] = [finite(result.get(f"{m}_fold_{i}")) for i in range(k)]
            for c in FOLD_CURVES:
                curves = row.fold_curves.get(c) or [[] for _ in range(k)]
                row.fold_curves[c] = [
                    [*curves[i], finite(result.get(f"{c}_fold_{i}"))] for i in range(k)
                ]
        value = finite(result.get(self.metric))
        history = self._history.setdefault(trial_id, [])
        history.append(value)
        row.score = final_score(history)
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

    def finished_count(self) -> int:
        """Trials that ended (completed, stopped early or failed): what counts toward the
        study's ``--trials``."""
        return sum(r.finished for r in self.rows.values())

    def drop_unfinished(self) -> list[str]:
        """Forgets the trials still marked running or pending, and returns their ids.

        Called between rounds of a search, when no trial of the study is running: such a
        row is a trial a stopped driver cut off that the restored Ray Tune state does not
        hold, so it will never finish; the search asks Optuna for a trial in its place.
        """
        gone = [t for t, r in self.rows.items() if not r.finished]
        for trial_id in gone:
            del self.rows[trial_id]
            self._history.pop(trial_id, None)
        return gone

    def is_finished(self, trial_id: str) -> bool:
        return trial_id in self.rows and self.rows[trial_id].finished

    def winner(self) -> TrialRow | None:
        """`best_trial` of this board, or the selection's pick once `select` has run."""
        if self.selection is not None:
            pick = self.selection.winner
            return self.rows.get(pick) if pick is not None else None
        return best_trial(self.rows.values(), self.metric, self.mode)

    def select(
        self,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        rule: PickRule | None = None,
    ) -> Selection:
        """Marks each row's ``pareto`` and ``feasible`` flags and picks the winner.

        The front and the flags cover every trial that finished with values
        (``TERMINATED``); the pick, like `best_trial`, is made among the trials that ran
        the full budget if any did (an early epoch's score is not what the retrain gives),
        and among feasible ones only (`tuning.selection.select`). `winner` then returns
        the pick, or None where no trial is feasible.
        """
        done = [r for r in self.rows.values() if r.status == "TERMINATED"]
        records = [_selection_record(r) for r in done]
        flags = select_rows(records, objectives, constraints, rule)
        for row in self.rows.values():
            row.pareto = row.trial_id in flags.front if row.status == "TERMINATED" else None
            row.feasible = row.trial_id in flags.feasible if row.status == "TERMINATED" else None
        completed = [
            rec for rec, r in zip(records, done, strict=True) if r.stop_reason == "completed"
        ]
        pool = (
            completed
            if any(r.trial_id in flags.feasible for r in done if r.stop_reason == "completed")
            else records
        )
        picked = select_rows(pool, objectives, constraints, rule)
        self.selection = dataclasses.replace(
            flags,
            winner=picked.winner,
            notes=picked.notes if picked.winner is None else flags.notes,
        )
        return self.selection

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
    "FOLD_CURVES",
    "FOLD_METRICS",
    "LEADERBOARD_FILE",
    "STOP_REASONS",
    "VAL_METRICS",
    "Leaderboard",
    "TrialRow",
    "best_trial",
    "leaderboard_schema",
    "param_column",
    "ranked",
    "ranking_value",
    "read_rows",
    "read_table",
    "selection_records",
    "stop_counts",
]
