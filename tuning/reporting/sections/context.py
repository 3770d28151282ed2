"""What every section may draw on: the run, its ranking and the slow facts computed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from tuning.reporting.analysis import Leakage, Ranked
from tuning.reporting.gradcam import Gallery
from tuning.reporting.inputs import RunInputs


@dataclass
class Context:
    """The facts every section may draw on; heavy ones are computed once by the caller."""

    run: RunInputs
    ranked: list[Ranked]  # leaderboard rows, best first
    sort: str  # the column they are ranked by
    leakage: Leakage
    importance: dict[str, float] | None
    importance_note: str
    gallery: Gallery | None
    gallery_note: str  # why there is no gallery
    dataset_counts: dict[str, dict[str, int]] | None = None
    winner: str | None = None  # trial id retrained as "best"
    notes: list[str] = field(default_factory=list)

    @property
    def top(self) -> Ranked | None:
        """The first-ranked trial, if any trial has a value."""
        return next((r for r in self.ranked if r.rank == 1), None)


def param_value(value: Any) -> str:
    """A searched value for a table cell (plain text)."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value) if value is not None else "–"


def param_list(params: dict[str, Any], names: list[str]) -> str:
    """``lr=0.001, width_1=8`` for the given parameter names."""
    return ", ".join(f"{name}={param_value(params.get(name))}" for name in names)


def star() -> Markup:
    return Markup(' <span class="tag star" title="retrained as the winner">★</span>')


__all__ = ["Context", "param_list", "param_value", "star"]
