"""The report's charts, each a function from numbers to an inline SVG string."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

from covidxr_core.calibration import ReliabilityBin
from covidxr_core.numbers import finite
from tuning.leaderboard import TrialRow, param_column
from tuning.reporting.analysis import Progress, Span
from tuning.reporting.svg import (
    MUTED,
    PALETTE,
    STOP_COLORS,
    BandScale,
    Chart,
    LinearScale,
    LogScale,
    Scale,
    fmt_number,
)

METRIC_LABELS = {
    "val_auc": "validation AUC",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "val_sensitivity": "validation sensitivity",
    "val_specificity": "validation specificity",
    "train_loss": "training loss",
}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def _value_scale(values: Sequence[float], px_lo: float, px_hi: float, metric: str) -> LinearScale:
    """A y scale fitting the values; rates and AUCs never run past [0, 1]."""
    if not values:
        return LinearScale(0, 1, px_lo, px_hi)
    lo, hi = min(values), max(values)
    scale = LinearScale(lo, hi, px_lo, px_hi)
    if "loss" not in metric:
        # Clamp the padded domain to the metric's natural range and rebuild the scale.
        lo, hi = max(scale.lo, 0.0), min(scale.hi, 1.0)
        if hi > lo:
            scale = LinearScale(lo, hi, px_lo, px_hi)
    return scale


def best_so_far_chart(progress: Sequence[Progress], metric: str, mode: str) -> str:
    """Each finished trial's metric in finish order, and the running best as a staircase."""
    chart = Chart(
        width=560,
        height=300,
        x_label="trials finished (in finish order)",
        y_label=metric_label(metric),
        title="best so far",
    )
    values = [p.value for p in progress if p.value is not None]
    chart.x = LinearScale(1, max(len(progress), 2), *chart.inner_x(), integer=True, nice=False)
    chart.y = _value_scale(values, *chart.inner_y(), metric=metric)
    xs = [p.order for p in progress]
    chart.line(
        xs,
        [p.best for p in progress],
        PALETTE[2],
        width=2.5,
        step=True,
        tip=f"best {metric} so far ({mode})",
    )
    bottom = chart.y.lo
    for p in progress:
        if p.value is None:
            chart.point(
                p.order,
                bottom,
                STOP_COLORS["failed"],
                shape="cross",
                tip=f"trial {p.trial_id}: failed",
            )
        else:
            chart.point(
                p.order,
                p.value,
                STOP_COLORS.get(p.stop_reason, MUTED),
                tip=f"trial {p.trial_id}: {metric} {p.value:.4f} ({p.stop_reason})",
            )
    chart.add_legend("best so far", PALETTE[2])
    chart.add_legend("completed", STOP_COLORS["completed"], "dot")
    chart.add_legend("early-stopped", STOP_COLORS["early-stopped"], "dot")
    if any(p.value is None for p in progress):
        chart.add_legend("failed", STOP_COLORS["failed"], "cross")
    return chart.svg()


def importance_chart(importances: dict[str, float]) -> str:
    """Horizontal bars, most important parameter on top."""
    items = sorted(importances.items(), key=lambda kv: -kv[1])
    height = 56 + 30 * len(items)
    label_px = 12 + 7 * max((len(k) for k, _ in items), default=8)
    chart = Chart(
        width=560,
        height=height,
        x_label="share of the metric's variance explained",
        margin=(8, 46, 40, label_px),
        title="parameter importance",
    )
    chart.x = LinearScale(0, 1, *chart.inner_x(), nice=False)
    bottom, top = chart.inner_y()
    chart.y = BandScale([k for k, _ in items], top, bottom)
    x0 = chart.inner_x()[0]
    for name, value in items:
        cy = chart.y(name)
        chart.rect_px(x0, cy - 9, chart.x(value), cy + 9, PALETTE[0], tip=f"{name}: {value:.3f}")
        chart.text_px(chart.x(value) + 5, cy + 4, f"{value:.2f}")
    return chart.svg()


def _param_scale(param: Any, values: list[Any], px_lo: float, px_hi: float) -> Scale:
    if param is not None and param.type == "categorical":
        return BandScale([str(c) for c in param.choices], px_lo, px_hi)
    numbers = [float(v) for v in values if finite(v) is not None]
    lo = float(param.low) if param is not None else min(numbers, default=0.0)
    hi = float(param.high) if param is not None else max(numbers, default=1.0)
    if param is not None and param.log:
        return LogScale(lo, hi, px_lo, px_hi)
    return LinearScale(lo, hi, px_lo, px_hi, integer=param is not None and param.type == "int")


def param_scatter_charts(
    rows: Sequence[TrialRow], params: Sequence[tuple[str, Any]], metric: str
) -> list[str]:
    """One small scatter per hyperparameter: its value against the trial's final metric.

    Args:
        rows: Leaderboard rows.
        params: ``(name, Param or None)``; the Param gives the range, scale and choices.
        metric: The column on the y axis.
    """
    values = [v for r in rows if (v := finite(r.column(metric))) is not None]
    charts = []
    for name, param in params:
        column = param_column(name)
        chart = Chart(
            width=380,
            height=250,
            x_label=name,
            y_label=metric_label(metric),
            margin=(14, 14, 44, 54),
            title=f"{name} vs {metric}",
        )
        xs = [r.column(column) for r in rows]
        chart.x = _param_scale(param, xs, *chart.inner_x())
        chart.y = _value_scale(values, *chart.inner_y(), metric=metric)
        for row in rows:
            x = row.column(column)
            if x is None:
                continue
            if isinstance(chart.x, BandScale):
                x = str(x)
                if x not in chart.x.categories:
                    continue
            y = finite(row.column(metric))
            reason = row.stop_reason or "?"
            if y is None:
                if reason == "failed":
                    chart.point(
                        x,
                        chart.y.lo,
                        STOP_COLORS["failed"],
                        shape="cross",
                        tip=f"trial {row.trial_id}: {name}={x}, failed",
                    )
                continue
            tip = f"trial {row.trial_id}: {name}={_short(x)}, {metric} {y:.4f} ({reason})"
            chart.point(x, y, STOP_COLORS.get(reason, MUTED), tip=tip)
        charts.append(chart.svg())
    return charts


def _short(value: Any) -> str:
    return fmt_number(value) if isinstance(value, float) else str(value)


def learning_curves_chart(
    rows: Sequence[TrialRow], curve: str, max_epochs: int, dashed_curve: str | None = None
) -> str:
    """Per-epoch curves of the given trials; where an early stop cut a trial, a cross.

    Args:
        rows: The trials to draw, best first (colours follow this order).
        curve: A `TrialRow` curve name (no ``curve_`` prefix), e.g. ``val_auc``.
        max_epochs: The epoch budget (the x axis runs to it, so early stops stand out).
        dashed_curve: A second curve per trial drawn dashed, e.g. ``train_loss``.
    """
    chart = Chart(
        width=560,
        height=310,
        x_label="epoch",
        y_label=metric_label(curve),
        title=f"learning curves: {curve}",
    )
    series = [[finite(v) for v in r.curve(curve)] for r in rows]
    dashed = [[finite(v) for v in r.curve(dashed_curve)] for r in rows] if dashed_curve else []
    values = [v for s in (*series, *dashed) for v in s if v is not None]
    chart.x = LinearScale(1, max_epochs, *chart.inner_x(), integer=True, nice=False)
    chart.y = _value_scale(values, *chart.inner_y(), metric=curve)
    for i, (row, ys) in enumerate(zip(rows, series, strict=True)):
        color = PALETTE[i % len(PALETTE)]
        xs = list(range(1, len(ys) + 1))
        label = f"trial {row.trial_id}"
        chart.line(xs, ys, color, tip=label)
        if dashed_curve:
            dys = dashed[i]
            chart.line(
                list(range(1, len(dys) + 1)),
                dys,
                color,
                width=1.4,
                dash="5 4",
                tip=f"{label}: {dashed_curve}",
            )
        last = next(
            ((x, y) for x, y in zip(reversed(xs), reversed(ys), strict=True) if y is not None), None
        )
        if last is not None:
            stopped = row.stop_reason == "early-stopped"
            chart.point(
                last[0],
                last[1],
                color,
                shape="cross" if stopped else "circle",
                size=5 if stopped else 3.5,
                tip=f"{label}: {'stopped early' if stopped else 'ran'} at epoch {last[0]}",
            )
        chart.add_legend(label, color)
    if dashed_curve:
        chart.add_legend(f"dashed: {metric_label(dashed_curve)}", MUTED)
    if any(r.stop_reason == "early-stopped" for r in rows):
        chart.add_legend("early stop", MUTED, "cross")
    return chart.svg()


def gantt_chart(spans: Sequence[Span], busy: dict[str, float], makespan: float) -> str:
    """Trials as bars on their worker's row, over the search's wall time."""
    workers = list(busy)
    labels = {w: f"{w} · {100 * busy[w]:.0f}% busy" for w in workers}
    label_px = 16 + int(6.4 * max((len(v) for v in labels.values()), default=10))
    row_px = 30
    chart = Chart(
        width=1140,
        height=70 + row_px * len(workers),
        x_label="seconds since the first trial started",
        margin=(10, 20, 44, label_px),
        title="trials over time per worker",
    )
    chart.x = LinearScale(0, makespan, *chart.inner_x())
    bottom, top = chart.inner_y()
    chart.y = BandScale([labels[w] for w in workers], top, bottom)
    for s in spans:
        cy = chart.y(labels[s.worker])
        tip = f"trial {s.trial_id}: {s.start:.1f}–{s.end:.1f} s ({s.stop_reason})"
        chart.rect_px(
            chart.x(s.start),
            cy - 10,
            chart.x(s.end),
            cy + 10,
            STOP_COLORS.get(s.stop_reason, MUTED),
            tip=tip,
            label=s.trial_id,
        )
    for reason in ("completed", "early-stopped", "failed"):
        if any(s.stop_reason == reason for s in spans):
            chart.add_legend(reason, STOP_COLORS[reason], "dot")
    return chart.svg()


def roc_chart(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """ROC curves on one square plot; the dashed diagonal is a coin flip."""
    chart = Chart(
        width=400,
        height=390,
        x_label="false-positive rate (1 − specificity)",
        y_label="true-positive rate (sensitivity)",
        margin=(12, 18, 46, 58),
        title="ROC on the test split",
    )
    chart.x = LinearScale(0, 1, *chart.inner_x(), nice=False)
    chart.y = LinearScale(0, 1, *chart.inner_y(), nice=False)
    chart.line([0, 1], [0, 1], "#9aa5b1", width=1.2, dash="4 4", tip="chance")
    for i, (label, fpr, tpr) in enumerate(curves):
        color = PALETTE[i % len(PALETTE)]
        chart.line(list(fpr), list(tpr), color, width=2.4, tip=label)
        chart.add_legend(label, color)
    return chart.svg()


RELIABILITY_DIAGONAL = "perfect calibration"


@dataclass(frozen=True)
class ReliabilityCurve:
    """One model's reliability bins, as `covidxr_core.calibration.reliability` gives them."""

    label: str
    bins: Sequence[ReliabilityBin]
    color: str | None = None  # None: the palette colour of its position
    dashed: bool = False
    width: float = 2.2  # thinner for the models that are only there for comparison


def reliability_chart(curves: Sequence[ReliabilityCurve], positive: str = "positive") -> str:
    """Predicted probability against the observed share of positives, one line per model.

    Each point is an equal-mass bin of test images (its mean predicted probability of the
    positive class, and how many of its images are positive); the dashed diagonal is a
    perfectly calibrated model. Below the diagonal, the model is overconfident about
    ``positive``; above it, underconfident.
    """
    chart = Chart(
        width=420,
        height=400,
        x_label=f"mean predicted P({positive}) in the bin",
        y_label=f"observed share {positive}",
        margin=(12, 18, 46, 58),
        title="reliability diagram (equal-mass bins, test split)",
    )
    chart.x = LinearScale(0, 1, *chart.inner_x(), nice=False)
    chart.y = LinearScale(0, 1, *chart.inner_y(), nice=False)
    chart.line([0, 1], [0, 1], "#9aa5b1", width=1.2, dash="4 4", tip=RELIABILITY_DIAGONAL)
    chart.add_legend(RELIABILITY_DIAGONAL, "#9aa5b1")
    for i, curve in enumerate(curves):
        color = curve.color or PALETTE[i % len(PALETTE)]
        xs = [b.mean_score for b in curve.bins]
        ys: list[float | None] = [b.positive_rate for b in curve.bins]
        chart.line(
            xs, ys, color, width=curve.width, dash="6 4" if curve.dashed else None, tip=curve.label
        )
        for b in curve.bins:
            chart.point(
                min(max(b.mean_score, 0.0), 1.0),
                min(max(b.positive_rate, 0.0), 1.0),
                color,
                shape="square" if curve.dashed else "circle",
                size=3.5 if curve.width >= 2 else 2.5,
                tip=f"{curve.label}: {b.count} images, predicted {b.mean_score:.3f}, "
                f"observed {b.positive_rate:.3f}",
            )
        chart.add_legend(curve.label, color)
    return chart.svg()


Interval = tuple[str, str, float | None, tuple[float, float] | None]  # metric, model, value, CI


def interval_chart(rows: Sequence[Interval]) -> str:
    """Point estimates with 95% intervals: ``(metric, model, value, [lo, hi])`` per row."""
    labels = [f"{metric} · {model}" for metric, model, _, _ in rows]
    label_px = 16 + int(6.6 * max((len(s) for s in labels), default=10))
    chart = Chart(
        width=560,
        height=60 + 30 * len(rows),
        x_label="test value (95% bootstrap CI)",
        margin=(10, 20, 40, label_px),
        title="test metrics with 95% intervals",
    )
    ends = [v for _, _, p, ci in rows for v in ([p] if p is not None else []) + list(ci or [])]
    lo = min(ends, default=0.0)
    chart.x = LinearScale(max(0.0, math.floor(lo * 10) / 10), 1.0, *chart.inner_x(), nice=False)
    bottom, top = chart.inner_y()
    chart.y = BandScale(labels, top, bottom)
    models = list(dict.fromkeys(model for _, model, _, _ in rows))
    for label, (_, model, value, ci) in zip(labels, rows, strict=True):
        color = PALETTE[models.index(model) % len(PALETTE)]
        cy = chart.y(label)
        if ci:
            x0, x1 = chart.x(ci[0]), chart.x(ci[1])
            chart.marks.append(
                f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                f'stroke="{color}" stroke-width="3" stroke-linecap="round">'
                f"<title>{escape(label)}: [{ci[0]:.3f}, {ci[1]:.3f}]</title></line>"
            )
        if value is not None:
            chart.point(value, label, color, size=5, tip=f"{label}: {value:.3f}")
    for i, model in enumerate(models):
        chart.add_legend(model, PALETTE[i % len(PALETTE)], "dot")
    return chart.svg()


__all__ = [
    "RELIABILITY_DIAGONAL",
    "Interval",
    "ReliabilityCurve",
    "best_so_far_chart",
    "gantt_chart",
    "importance_chart",
    "interval_chart",
    "learning_curves_chart",
    "metric_label",
    "param_scatter_charts",
    "reliability_chart",
    "roc_chart",
]
