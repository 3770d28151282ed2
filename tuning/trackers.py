"""Experiment trackers as study observers: MLflow (``--mlflow URI``) and TensorBoard
(``--tensorboard``), next to whatever observer the caller gave (the CLI's live table).

MLflow (``pip install 'covidxr[mlflow]'``): the study is a parent run named after the run
folder (the study's settings as params, tag ``covidxr.run_dir``); each trial is a child
run (tag ``mlflow.parentRunId``, ``covidxr.trial_id``) with its searched values as params,
``val_auc``, ``val_loss``, ``train_loss`` and ``epoch_s`` per epoch (step = epoch), and at
its end the leaderboard's final ``val_*`` values, ``best_metric``, ``best_epoch``,
``epochs_run``, ``wall_s``, tags ``stop_reason`` (and ``error``) and status FINISHED
(completed or early-stopped) or FAILED. Each retrained role (``best``, ``baseline``,
``default``) is a child run too, with its exported seed's validation and test metrics
and its folder (``model.keras``, ``metrics.json``; for best also ``model.onnx`` and
``saved_model/``) as artifacts. The parent gets ``leaderboard.parquet``,
``summary.json``, ``comparison.json`` and ``report.html`` at the end and FINISHED,
FAILED or KILLED. With a ``sqlite:///PATH`` URI a new experiment keeps its artifacts in
``mlartifacts/`` next to the database; with a tracking server, where the server says.

TensorBoard (tensorboardX, which Ray Tune already installs; ``pip install
'covidxr[tensorboard]'`` adds the viewer): ``runs/NAME/tensorboard/<trial_id>/`` holds
each trial's per-epoch scalars under ``val/auc``, ``val/loss``, ``train/loss`` and
``time/epoch_s``, and its parameters as text. ``tensorboard --logdir
runs/NAME/tensorboard``.

A tracker that fails (a server gone away) warns once and is dropped; the study goes on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuning.errors import StudyError
from tuning.progress import StudyObserver

if TYPE_CHECKING:
    from tuning.leaderboard import Leaderboard, TrialRow
    from tuning.results import RoleSummary, Verdict
    from tuning.spec import StudySpec

TENSORBOARD_DIR = "tensorboard"
MLFLOW_INSTALL = "pip install 'covidxr[mlflow]'"
TENSORBOARD_INSTALL = "pip install 'covidxr[tensorboard]'"
# curve name -> (MLflow metric, TensorBoard tag)
CURVE_KEYS = {
    "val_auc": ("val_auc", "val/auc"),
    "val_loss": ("val_loss", "val/loss"),
    "train_loss": ("train_loss", "train/loss"),
    "epoch_s": ("epoch_s", "time/epoch_s"),
}
FINAL_KEYS = ("val_accuracy", "val_sensitivity", "val_specificity", "best_metric", "best_epoch")
FINAL_KEYS_MORE = ("epochs_run", "wall_s", "retries")
STUDY_FILES = ("leaderboard.parquet", "summary.json", "comparison.json", "report.html")


class FanOut(StudyObserver):
    """Passes every event to the primary observer, then to each tracker.

    A tracker that raises is reported once through the primary's ``warning`` and
    dropped, so a tracking server that goes away never stops a study.
    """

    def __init__(self, primary: StudyObserver, trackers: list[StudyObserver]) -> None:
        self.primary = primary
        self.trackers = list(trackers)

    def _each(self, method: str, *args: Any, primary: bool = True) -> None:
        if primary:
            getattr(self.primary, method)(*args)
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:
                self.trackers.remove(tracker)
                self.primary.warning(
                    f"{type(tracker).__name__} stopped logging ({type(exc).__name__}: {exc})"
                )

    def note(self, label: str, text: str) -> None:
        self._each("note", label, text)

    def warning(self, text: str) -> None:
        self._each("warning", text)

    def search_started(self, board: Leaderboard, total: int) -> None:
        self._each("search_started", board, total)

    def trial_event(self, board: Leaderboard, trial_id: str, event: str) -> None:
        self._each("trial_event", board, trial_id, event)

    def search_ended(self, board: Leaderboard) -> None:
        self._each("search_ended", board)

    def comparison(self, roles: Mapping[str, RoleSummary], verdict: Verdict) -> None:
        self._each("comparison", roles, verdict)

    def retrain_started(self, roles: Sequence[str], seeds: Sequence[int], epochs: int) -> None:
        self._each("retrain_started", roles, seeds, epochs)

    def retrain_progress(
        self, role: str, seed: int, epoch: int, epochs: int, finished: bool = False
    ) -> None:
        self._each("retrain_progress", role, seed, epoch, epochs, finished)

    def retrain_finished(self, wall_s: float, complete: bool = True) -> None:
        self._each("retrain_finished", wall_s, complete)

    def study_ended(self, run_dir: Path, error: BaseException | None) -> None:
        """The study is over (``error``: what stopped it); only trackers are told."""
        self._each("study_ended", run_dir, error, primary=False)


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a mapping (bools and None left out)."""
    from covidxr_core.numbers import finite

    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = finite(value)
        if number is not None:
            out[key] = float(number)
    return out


def _artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite database; None (the server's choice) otherwise."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    database = Path(uri[len(prefix) :]).expanduser().resolve()
    return (database.parent / "mlartifacts").as_uri()


class MlflowTracker(StudyObserver):
    """Logs a study to MLflow: parent run, child run per trial and per retrained role."""

    def __init__(self, uri: str, experiment: str, spec: StudySpec, run_dir: Path) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(
                experiment, artifact_location=_artifact_location(uri)
            )
        )
        self.run_dir = run_dir
        self.parent = self.client.create_run(
            self.experiment_id,
            run_name=run_dir.name,
            tags={"covidxr.run_dir": str(run_dir), "covidxr.role": "study"},
        ).info.run_id
        self._params(self.parent, dataclasses.asdict(spec))
        self.children: dict[str, str] = {}  # trial id -> run id
        self.logged: dict[str, int] = {}  # trial id -> epochs logged

    def _params(self, run_id: str, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(str(k), str(v)[:6000]) for k, v in values.items()]
        if params:
            self.client.log_batch(run_id, params=params)

    def _metrics(self, run_id: str, values: Mapping[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def _child(self, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={"mlflow.parentRunId": self.parent, **tags},
        ).info.run_id

    def trial_event(self, board: Leaderboard, trial_id: str, event: str) -> None:
        row = board.rows.get(trial_id) if trial_id else None
        if row is None:
            return
        run_id = self.children.get(trial_id)
        if run_id is None:
            run_id = self.children[trial_id] = self._child(
                f"trial {trial_id}", {"covidxr.trial_id": trial_id, "covidxr.role": "trial"}
            )
            self._params(run_id, row.params)
            self.logged[trial_id] = 0
        if event == "retried":
            self.client.set_tag(run_id, "retries", str(row.retries))
            self.logged[trial_id] = 0  # the curves start over with the retry
            return
        self._epochs(run_id, row)
        if event in ("completed", "failed"):
            self._final(run_id, row)

    def _epochs(self, run_id: str, row: TrialRow) -> None:
        done = self.logged.get(row.trial_id, 0)
        length = max((len(row.curve(c)) for c in CURVE_KEYS), default=0)
        for index in range(done, length):
            values = {}
            for curve, (key, _) in CURVE_KEYS.items():
                points = row.curve(curve)
                if index < len(points) and points[index] is not None:
                    values[key] = float(points[index])  # type: ignore[arg-type]
            self._metrics(run_id, values, step=index + 1)
        self.logged[row.trial_id] = length

    def _final(self, run_id: str, row: TrialRow) -> None:
        values = {k: getattr(row, k) for k in (*FINAL_KEYS, *FINAL_KEYS_MORE)}
        self._metrics(run_id, _numbers(values), step=row.epochs_run or 0)
        self.client.set_tag(run_id, "stop_reason", row.reason)
        if row.error:
            self.client.set_tag(run_id, "error", row.error[:5000])
        self.client.set_terminated(run_id, "FAILED" if row.reason == "failed" else "FINISHED")

    def comparison(self, roles: Mapping[str, RoleSummary], verdict: Verdict) -> None:
        for role, summary in roles.items():
            run_id = self._child(role, {"covidxr.role": role})
            self._params(run_id, {**summary.params, "exported_seed": summary.exported_seed})
            metrics: dict[str, float] = {}
            for split, result in (
                ("validation", summary.exported_validation),
                ("test", summary.exported_test),
            ):
                if result is not None:
                    values = _numbers(dataclasses.asdict(result))
                    metrics.update({f"{split}_{k}": v for k, v in values.items() if k != "n"})
            self._metrics(run_id, metrics)
            folder = self.run_dir / role
            if folder.is_dir():
                self.client.log_artifacts(run_id, str(folder), artifact_path="model")
            self.client.set_terminated(run_id, "FINISHED")
        self.client.set_tag(self.parent, "verdict", verdict.text[:5000])

    def study_ended(self, run_dir: Path, error: BaseException | None) -> None:
        for name in STUDY_FILES:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.parent, str(run_dir / name))
        for trial_id, run_id in self.children.items():
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_tag(run_id, "stop_reason", f"unfinished ({trial_id})")
                self.client.set_terminated(run_id, "KILLED")
        status = "FINISHED" if error is None else "FAILED"
        if isinstance(error, KeyboardInterrupt):
            status = "KILLED"
        self.client.set_terminated(self.parent, status)


class TensorBoardTracker(StudyObserver):
    """Per-trial scalars under ``RUN/tensorboard/<trial_id>/`` (tensorboardX event files)."""

    def __init__(self, run_dir: Path) -> None:
        from tensorboardX import SummaryWriter

        self._writer_type = SummaryWriter
        self.root = run_dir / TENSORBOARD_DIR
        self.writers: dict[str, Any] = {}
        self.logged: dict[str, int] = {}

    def _writer(self, row: TrialRow) -> Any:
        writer = self.writers.get(row.trial_id)
        if writer is None:
            writer = self.writers[row.trial_id] = self._writer_type(str(self.root / row.trial_id))
            writer.add_text("params", json.dumps(row.params, sort_keys=True, default=str))
            self.logged[row.trial_id] = 0
        return writer

    def trial_event(self, board: Leaderboard, trial_id: str, event: str) -> None:
        row = board.rows.get(trial_id) if trial_id else None
        if row is None:
            return
        writer = self._writer(row)
        if event == "retried":
            self.logged[trial_id] = 0
            return
        length = max((len(row.curve(c)) for c in CURVE_KEYS), default=0)
        for index in range(self.logged[trial_id], length):
            for curve, (_, tag) in CURVE_KEYS.items():
                points = row.curve(curve)
                if index < len(points) and points[index] is not None:
                    writer.add_scalar(tag, points[index], global_step=index + 1)
        self.logged[trial_id] = length
        if event in ("completed", "failed"):
            writer.add_text("stop_reason", row.reason)
            writer.flush()

    def study_ended(self, run_dir: Path, error: BaseException | None) -> None:
        for writer in self.writers.values():
            writer.close()


def require_trackers(spec: StudySpec) -> None:
    """Checks that the libraries of the trackers ``spec`` asks for are installed.

    Raises:
        StudyError: one is not, with the install command.
    """
    import importlib.util

    if spec.mlflow and importlib.util.find_spec("mlflow") is None:
        raise StudyError(f"--mlflow needs MLflow: {MLFLOW_INSTALL}")
    if spec.tensorboard and importlib.util.find_spec("tensorboardX") is None:
        raise StudyError(f"--tensorboard needs tensorboardX: {TENSORBOARD_INSTALL}")


def with_trackers(spec: StudySpec, run_dir: Path, observer: StudyObserver) -> StudyObserver:
    """``observer`` plus the trackers ``spec`` asks for (itself when it asks for none).

    Raises:
        StudyError: a tracker's library is not installed, or MLflow cannot be reached;
            before any trial starts.
    """
    trackers: list[StudyObserver] = []
    if spec.mlflow:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise StudyError(f"--mlflow needs MLflow: {MLFLOW_INSTALL}") from None
        try:
            trackers.append(MlflowTracker(spec.mlflow, spec.mlflow_experiment, spec, run_dir))
        except Exception as exc:
            raise StudyError(
                f"--mlflow {spec.mlflow}: cannot log there ({type(exc).__name__}: {exc})"
            ) from None
    if spec.tensorboard:
        try:
            trackers.append(TensorBoardTracker(run_dir))
        except ImportError:
            raise StudyError(f"--tensorboard needs tensorboardX: {TENSORBOARD_INSTALL}") from None
    if not trackers:
        return observer
    for tracker in trackers:
        name = "MLflow" if isinstance(tracker, MlflowTracker) else "TensorBoard"
        where = spec.mlflow if isinstance(tracker, MlflowTracker) else run_dir / TENSORBOARD_DIR
        observer.note("tracking", f"{name}: {where}")
    return FanOut(observer, trackers)


def end_trackers(observer: StudyObserver, run_dir: Path) -> None:
    """Tells the trackers the study is over, with the exception in flight, if any."""
    if isinstance(observer, FanOut):
        observer.study_ended(run_dir, sys.exc_info()[1])


__all__ = [
    "TENSORBOARD_DIR",
    "FanOut",
    "MlflowTracker",
    "TensorBoardTracker",
    "end_trackers",
    "require_trackers",
    "with_trackers",
]
