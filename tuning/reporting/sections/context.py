"""What every section may draw on: the run, its ranking and the slow facts computed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from tuning.reporting.analysis import Leakage, Ranked
from tuning.reporting.gradcam import Gallery
from tuning.reporting.html import Html, fmt, join, muted
from tuning.reporting.inputs import ROLES, RoleFiles, RunInputs
from tuning.results import Metrics

ARGMAX_NOTE = "binary only; with three or more classes the class is the argmax"


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

    def roles(self) -> list[RoleFiles]:
        """The retrained models present, tuned first, then the default and the recipe."""
        return [self.run.roles[r] for r in ROLES if r in self.run.roles]

    def positive_index(self) -> tuple[int, str] | None:
        """The positive class's label index and name, when the class order is known."""
        order = self.run.class_order()
        if order is None:
            return None
        names, positive = order
        return names.index(positive), positive


def interval(ci: tuple[float, float] | None, digits: int = 3) -> str:
    """``[0.716, 0.938]``; empty without an interval."""
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""


def value_ci(metrics: Metrics | None, name: str) -> Html:
    """A metric's value with its 95% interval beside it, muted; a dash when undefined."""
    if metrics is None or metrics.value(name) is None:
        why = metrics.undefined.get(name) if metrics is not None else None
        return Markup('<span title="{}">–</span>').format(why) if why else "–"
    value, ci = fmt(metrics.value(name)), metrics.ci(name)
    return join([value, " ", muted(interval(ci))]) if ci else value


def banner_kind(kind: str) -> str:
    """The banner class of a verdict kind: only ``good`` is ever green."""
    return kind if kind in ("good", "warn", "bad") else "none"


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


__all__ = [
    "ARGMAX_NOTE",
    "Context",
    "banner_kind",
    "interval",
    "param_list",
    "param_value",
    "star",
    "value_ci",
]
