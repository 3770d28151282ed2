"""What a run folder holds, read once into typed objects for the report.

Only the leaderboard is required. Every other file may be missing (a study with
``--retrain-seeds 0`` has no ``best/``; a killed driver has no ``summary.json``), and each
absence becomes a note that the report shows where the section would have been.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from covidxr_core.errors import CovidxrError
from covidxr_core.numbers import finite
from tuning.leaderboard import LEADERBOARD_FILE, TrialRow, read_rows
from tuning.objective import DEFAULT_METRIC, direction
from tuning.results import Metrics, RoleSummary, Verdict
from tuning.spec import StudySpec

# The retrained models, as the retrain writes them: the tuned winner, a sensible default
# (Adam 1e-3, widths 16..128) and the recipe as published.
ROLES = ("best", "default", "baseline")
ROLE_LABELS = {"best": "tuned", "default": "sensible default", "baseline": "recipe"}
MODEL_CARD = "best/MODEL_CARD.md"  # relative to the run folder (`tuning.modelcard` writes it)


class ReportError(CovidxrError):
    """The folder cannot be reported on at all (missing, or no leaderboard yet)."""


@dataclass(frozen=True)
class DataFacts:
    """The ``data`` block of ``summary.json``: what the study trained on."""

    source: str | None = None
    synthetic: bool = False
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # split -> class -> n
    notes: tuple[str, ...] = ()
    image_size: int | None = None
    channels: int | None = None
    positive_class: str | None = None
    test_views: tuple[str | None, ...] = ()  # DICOM View Position per test image, in order

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DataFacts | None:
        if not data:
            return None
        counts = data.get("counts") or {}
        size, channels = data.get("image_size"), data.get("channels")
        return cls(
            source=str(data["source"]) if data.get("source") else None,
            synthetic=bool(data.get("synthetic")),
            counts={
                str(split): {str(c): int(n) for c, n in (per_class or {}).items()}
                for split, per_class in counts.items()
            },
            notes=tuple(str(n) for n in data.get("notes") or ()),
            image_size=int(size) if size is not None else None,
            channels=int(channels) if channels is not None else None,
            positive_class=data.get("positive_class"),
            test_views=tuple(None if v is None else str(v) for v in data.get("test_views") or ()),
        )


@dataclass(frozen=True)
class Hardware:
    """The ``hardware`` block of ``summary.json``: the cluster at the end of the search."""

    nodes: int | None = None
    cpus: float | None = None
    gpus: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Hardware | None:
        if not data:
            return None
        nodes = finite(data.get("nodes"))
        return cls(
            nodes=int(nodes) if nodes is not None else None,
            cpus=finite(data.get("cpus")),
            gpus=finite(data.get("gpus")),
        )


@dataclass(frozen=True)
class RunSummary:
    """``summary.json``, written when a study ends."""

    wall_s: float | None = None
    search_wall_s: float | None = None
    data: DataFacts | None = None
    hardware: Hardware | None = None
    held_fixed: dict[str, Any] = field(default_factory=dict)  # what no trial changed
    race: dict[str, Any] | None = None  # tuning.race.RaceResult.to_dict() and its wall time
    early_stopping: dict[str, Any] | None = None  # tuning.budget.EarlyStopping

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        return cls(
            wall_s=finite(data.get("wall_s")),
            search_wall_s=finite(data.get("search_wall_s")),
            data=DataFacts.from_dict(data.get("data")),
            hardware=Hardware.from_dict(data.get("hardware")),
            held_fixed=dict(data.get("held_fixed") or {}),
            race=data.get("race"),
            early_stopping=data.get("early_stopping"),
        )


@dataclass
class RoleFiles:
    """One retrained model's files: ``metrics.json``, its test probabilities and labels."""

    role: str
    summary: RoleSummary
    probs: np.ndarray | None  # (N, classes), the exported seed's test probabilities
    labels: np.ndarray | None  # (N,)
    model_path: Path | None

    @property
    def label(self) -> str:
        """How the page names this model: ``tuned``, ``sensible default``, ``recipe``."""
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def test(self) -> Metrics | None:
        """The exported seed's test metrics."""
        return self.summary.exported_test

    @property
    def threshold(self) -> float | None:
        """The operating point chosen on validation (None: argmax over classes)."""
        if self.summary.threshold is not None:
            return self.summary.threshold
        return self.test.threshold if self.test is not None else None

    @property
    def class_names(self) -> list[str] | None:
        names = self.test.class_names if self.test is not None else ()
        return list(names) if names else None

    @property
    def positive_class(self) -> str | None:
        return self.test.positive_class if self.test is not None else None


@dataclass
class RunInputs:
    """Everything the report reads from one run folder."""

    run_dir: Path
    rows: list[TrialRow]  # leaderboard.parquet, one row per trial
    columns: list[str]  # the Parquet column order
    spec: StudySpec | None = None
    summary: RunSummary | None = None
    space: Any = None  # search_spaces.SearchSpace, when it can still be found
    roles: dict[str, RoleFiles] = field(default_factory=dict)
    comparison: Verdict | None = None
    model_card: Path | None = None  # best/MODEL_CARD.md, when the study wrote one
    notes: dict[str, str] = field(default_factory=dict)  # input -> why it is missing

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def metric(self) -> str:
        return self.spec.metric if self.spec else DEFAULT_METRIC

    @property
    def mode(self) -> str:
        return self.spec.mode if self.spec else direction(self.metric)

    @property
    def data(self) -> DataFacts | None:
        return self.summary.data if self.summary is not None else None

    @property
    def synthetic(self) -> bool:
        """The study ran on the generated demo set (per summary.json or study.json)."""
        return bool(self.data and self.data.synthetic) or (
            self.spec is not None and self.spec.data is None
        )

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
        data = self.data
        if data is None:
            return None
        names = list(next(iter(data.counts.values()), {}).keys())
        if names and data.positive_class in names:
            return names, data.positive_class
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
    if not isinstance(value, dict):
        notes[key] = f"{path.name} holds no JSON object"
        return None
    return value


def _read_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _read_role(role_dir: Path, notes: dict[str, str]) -> RoleFiles | None:
    if not role_dir.exists():
        notes[role_dir.name] = f"no {role_dir.name}/ folder (the study retrained no models)"
        return None
    metrics = _read_json(role_dir / "metrics.json", notes, role_dir.name)
    if metrics is None:
        return None
    model = role_dir / "model.keras"
    return RoleFiles(
        role=role_dir.name,
        summary=RoleSummary.from_dict(metrics),
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
    board = run_dir / LEADERBOARD_FILE
    if not board.exists():
        raise ReportError(
            f"{run_dir}: no {LEADERBOARD_FILE} (not a study run folder, or no trial has "
            "started yet)"
        )
    try:
        columns = list(pq.read_schema(board).names)
        rows = read_rows(board)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportError(f"{board}: cannot be read as Parquet ({exc})") from None
    inputs = RunInputs(run_dir=run_dir, rows=rows, columns=columns)
    notes = inputs.notes

    if _read_json(run_dir / "study.json", notes, "study") is not None:
        try:
            inputs.spec = StudySpec.from_json(run_dir / "study.json")
        except (CovidxrError, TypeError) as exc:
            notes["study"] = f"study.json does not describe a study: {exc}"
    summary = _read_json(run_dir / "summary.json", notes, "summary")
    inputs.summary = RunSummary.from_dict(summary) if summary is not None else None
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
    comparison = _read_json(run_dir / "comparison.json", notes, "comparison")
    inputs.comparison = Verdict.from_dict(comparison) if comparison is not None else None
    card = run_dir / MODEL_CARD
    if card.is_file():
        inputs.model_card = card
    else:
        notes["model_card"] = f"{MODEL_CARD} not found"
    return inputs


__all__ = [
    "MODEL_CARD",
    "ROLES",
    "ROLE_LABELS",
    "DataFacts",
    "Hardware",
    "ReportError",
    "RoleFiles",
    "RunInputs",
    "RunSummary",
    "load_run",
]
