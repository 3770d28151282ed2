"""What a run folder holds, read once into typed objects for the report.

Only the leaderboard is required. Every other file may be missing (a study with
``--retrain-seeds 0`` has no ``best/``; a killed driver has no ``summary.json``), and each
absence becomes a note that the report shows where the section would have been.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from covidxr_core.errors import CovidxrError
from tuning.spec import DEFAULT_METRIC, StudySpec

LEADERBOARD = "leaderboard.parquet"
ROLES = ("best", "baseline")  # the retrained winner and the recipe, as _final writes them


class ReportError(CovidxrError):
    """The folder cannot be reported on at all (missing, or no leaderboard yet)."""


@dataclass
class RoleFiles:
    """One retrained model's files: ``metrics.json``, its test probabilities and labels."""

    role: str
    metrics: dict[str, Any]
    probs: np.ndarray | None  # (N, classes), the exported seed's test probabilities
    labels: np.ndarray | None  # (N,)
    model_path: Path | None

    @property
    def class_names(self) -> list[str] | None:
        test = (self.metrics.get("exported") or {}).get("test") or {}
        names = test.get("confusion_labels")
        return list(names) if names else None

    @property
    def positive_class(self) -> str | None:
        test = (self.metrics.get("exported") or {}).get("test") or {}
        return test.get("positive_class")


@dataclass
class RunInputs:
    """Everything the report reads from one run folder."""

    run_dir: Path
    rows: list[dict[str, Any]]  # leaderboard.parquet, one dict per trial
    columns: list[str]  # the Parquet column order
    spec: StudySpec | None = None
    summary: dict[str, Any] | None = None
    space: Any = None  # search_spaces.SearchSpace, when it can still be found
    roles: dict[str, RoleFiles] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    notes: dict[str, str] = field(default_factory=dict)  # input -> why it is missing

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def metric(self) -> str:
        return self.spec.metric if self.spec else DEFAULT_METRIC

    @property
    def mode(self) -> str:
        return self.spec.mode if self.spec else "max"

    @property
    def param_names(self) -> list[str]:
        """Searched parameters: from the space if known, else the ``param_*`` columns."""
        if self.space is not None:
            return list(self.space.names)
        return [c.removeprefix("param_") for c in self.columns if c.startswith("param_")]

    def class_order(self) -> tuple[list[str], str] | None:
        """Class names in label order and the positive class, from the best place known."""
        for role in self.roles.values():
            if role.class_names and role.positive_class:
                return role.class_names, role.positive_class
        data = (self.summary or {}).get("data") or {}
        counts = data.get("counts") or {}
        names = list(next(iter(counts.values()), {}).keys())
        if names and data.get("positive_class") in names:
            return names, data["positive_class"]
        return None


def _read_json(path: Path, notes: dict[str, str], key: str) -> dict[str, Any] | None:
    if not path.exists():
        notes[key] = f"{path.name} not found"
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes[key] = f"{path.name} unreadable: {exc}"
        return None
    return value if isinstance(value, dict) else None


def _read_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _read_role(role_dir: Path, notes: dict[str, str]) -> RoleFiles | None:
    metrics = _read_json(role_dir / "metrics.json", notes, role_dir.name)
    if metrics is None:
        if not role_dir.exists():
            notes[role_dir.name] = f"no {role_dir.name}/ folder (the study retrained no models)"
        return None
    model = role_dir / "model.keras"
    return RoleFiles(
        role=role_dir.name,
        metrics=metrics,
        probs=_read_npy(role_dir / "test_probs.npy"),
        labels=_read_npy(role_dir / "test_labels.npy"),
        model_path=model if model.exists() else None,
    )


def load_run(run_dir: Path) -> RunInputs:
    """Read a run folder.

    Raises:
        ReportError: ``run_dir`` is not a folder or has no leaderboard.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run folder")
    board = run_dir / LEADERBOARD
    if not board.exists():
        raise ReportError(
            f"{run_dir}: no {LEADERBOARD} (not a study run folder, or no trial has started yet)"
        )
    try:
        table = pq.read_table(board)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportError(f"{board}: cannot be read as Parquet ({exc})") from None
    inputs = RunInputs(run_dir=run_dir, rows=table.to_pylist(), columns=table.column_names)
    notes = inputs.notes

    raw_spec = _read_json(run_dir / "study.json", notes, "study")
    if raw_spec is not None:
        try:
            inputs.spec = StudySpec.from_json(run_dir / "study.json")
        except (CovidxrError, TypeError) as exc:
            notes["study"] = f"study.json does not describe a study: {exc}"
    inputs.summary = _read_json(run_dir / "summary.json", notes, "summary")
    if inputs.spec is not None:
        from search_spaces import get_space

        try:
            inputs.space = get_space(inputs.spec.space)
        except CovidxrError as exc:  # a YAML file given by a path that has since moved
            notes["space"] = str(exc)
    for role in ROLES:
        files = _read_role(run_dir / role, notes)
        if files is not None:
            inputs.roles[role] = files
    inputs.comparison = _read_json(run_dir / "comparison.json", notes, "comparison")
    return inputs


__all__ = ["LEADERBOARD", "ROLES", "ReportError", "RoleFiles", "RunInputs", "load_run"]
