"""The Pareto chart: two objectives of every trial, the front highlighted, the pick marked.

Each point carries its trial's configuration in a ``<title>``, so hovering shows what
was trained. Front points are drawn in colour and joined in order of the x objective;
trials off the front are grey; infeasible trials (breaking a ``--constraint``) are crosses;
the picked trial is a ringed square. ``params`` goes on a log axis when it spans more than
a factor of ten.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tuning.reporting.svg import MUTED, PALETTE, Chart, LinearScale, LogScale, Scale, fmt_number
from tuning.selection import Objective, value_of

FRONT = PALETTE[0]
PICKED = PALETTE[5]
INFEASIBLE = "#9aa5b1"
OFF_FRONT = "#b8c2cc"
_LABELS = {
    "val_auc": "validation AUC",
    "val_sensitivity": "validation sensitivity",
    "val_specificity": "validation specificity",
    "params": "parameters",
    "latency_ms": "CPU latency per image (ms)",
}


def _label(objective: Objective) -> str:
    better = "higher" if objective.mode == "max" else "lower"
    return f"{_LABELS.get(objective.name, objective.name)} ({better} is better)"


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and 1e4 <= abs(value) < 1e15:
        return f"{int(value):,}"  # a parameter count
    if isinstance(value, float):
        return fmt_number(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def configuration(row: Mapping[str, Any]) -> str:
    """``lr=0.001, dropout=0.2`` from a row's ``params`` dict or its ``param_*`` columns."""
    params = row.get("params")
    if not isinstance(params, Mapping):
        params = {k.removeprefix("param_"): v for k, v in row.items() if k.startswith("param_")}
    return ", ".join(f"{k}={_show(v)}" for k, v in sorted(params.items()) if v is not None)


def _scale(name: str, values: Sequence[float], px_lo: float, px_hi: float) -> Scale:
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if name == "params" and lo > 0 and hi / lo > 10:
        return LogScale(lo, hi, px_lo, px_hi)
    scale = LinearScale(lo, hi, px_lo, px_hi)
    if name.startswith("val_"):  # rates and AUCs never run past [0, 1]
        clamped = (max(scale.lo, 0.0), min(scale.hi, 1.0))
        if clamped[1] > clamped[0]:
            scale = LinearScale(*clamped, px_lo, px_hi)
    return scale


def pareto_chart(
    rows: Sequence[Mapping[str, Any]],
    x: Objective,
    y: Objective,
    front: Collection[str],
    feasible: Collection[str] | None = None,
    winner: str | None = None,
) -> str:
    """The chart of ``y`` against ``x`` as an inline SVG.

    Args:
        rows: Row dicts with ``trial_id``, the objective columns and the configuration.
        x: The objective on the x axis; ``y`` the one on the y axis.
        front: Trial ids on the Pareto front (of all the study's objectives).
        feasible: Trial ids meeting every constraint; None: all are.
        winner: The picked trial id, if any.
    """
    chart = Chart(
        width=560,
        height=320,
        x_label=_label(x),
        y_label=_label(y),
        title=f"Pareto front: {y.name} against {x.name}",
        margin=(12, 18, 46, 62),
    )
    points = [
        (row, xv, yv)
        for row in rows
        if (xv := value_of(row, x.name)) is not None and (yv := value_of(row, y.name)) is not None
    ]
    chart.x = _scale(x.name, [p[1] for p in points], *chart.inner_x())
    chart.y = _scale(y.name, [p[2] for p in points], *chart.inner_y())
    on_front = sorted((p for p in points if str(p[0]["trial_id"]) in front), key=lambda p: p[1])
    if len(on_front) > 1:
        chart.line(
            [p[1] for p in on_front],
            [p[2] for p in on_front],
            FRONT,
            width=1.5,
            dash="4 3",
            tip="the Pareto front",
        )
    order = sorted(
        points, key=lambda p: (str(p[0]["trial_id"]) in front, p[0]["trial_id"] == winner)
    )
    for row, xv, yv in order:  # front and winner drawn last, on top
        tid = str(row["trial_id"])
        is_front = tid in front
        ok = feasible is None or tid in feasible
        facts = [
            "on the Pareto front" if is_front else "dominated",
            "feasible" if ok else "infeasible",
        ]
        if tid == winner:
            facts.insert(0, "picked")
        config = configuration(row)
        tip = f"trial {tid}: {x.name} {_show(xv)}, {y.name} {_show(yv)} ({', '.join(facts)})" + (
            f"; {config}" if config else ""
        )
        if tid == winner:
            chart.point(xv, yv, PICKED, shape="square", size=6.5, tip=tip, opacity=1.0)
        elif not ok:
            chart.point(xv, yv, INFEASIBLE, shape="cross", size=4.5, tip=tip)
        else:
            chart.point(
                xv, yv, FRONT if is_front else OFF_FRONT, size=5 if is_front else 4, tip=tip
            )
    chart.add_legend("Pareto front", FRONT, "dot")
    chart.add_legend("dominated", OFF_FRONT, "dot")
    if feasible is not None and any(str(r["trial_id"]) not in feasible for r, _, _ in points):
        chart.add_legend("infeasible", INFEASIBLE, "cross")
    if winner is not None:
        chart.add_legend("picked", PICKED, "dot")
    if not points:
        chart.text_px(
            sum(chart.inner_x()) / 2,
            sum(chart.inner_y()) / 2,
            "no trial has both values",
            "middle",
            color=MUTED,
        )
    return chart.svg()


def pareto_charts(
    rows: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    front: Collection[str],
    feasible: Collection[str] | None = None,
    winner: str | None = None,
) -> list[str]:
    """One chart per other objective against the first (none with a single objective)."""
    if len(objectives) < 2:
        return []
    first = objectives[0]
    return [pareto_chart(rows, other, first, front, feasible, winner) for other in objectives[1:]]


__all__ = ["configuration", "pareto_chart", "pareto_charts"]
