"""The Pareto chart: front in colour and joined, the pick marked, configurations on hover."""

from __future__ import annotations

import re
from html import unescape

from tuning.reporting.pareto import (
    FRONT,
    INFEASIBLE,
    OFF_FRONT,
    PICKED,
    pareto_chart,
    pareto_charts,
)
from tuning.reporting.svg import MUTED
from tuning.selection import parse_constraint, parse_objectives, parse_pick, select

OBJECTIVES = parse_objectives("val_auc:max,params:min")
ROWS = [
    {"trial_id": "t0", "val_auc": 0.95, "model_params": 900_000, "val_sensitivity": 0.95,
     "params": {"learning_rate": 0.001, "dropout": 0.2}},
    {"trial_id": "t1", "val_auc": 0.90, "model_params": 150_000, "val_sensitivity": 0.95,
     "params": {"learning_rate": 0.01, "dropout": 0.1}},
    {"trial_id": "t2", "val_auc": 0.70, "model_params": 10_000, "val_sensitivity": 0.5,
     "params": {"learning_rate": 0.1, "dropout": 0.0}},
    {"trial_id": "t3", "val_auc": 0.80, "model_params": 400_000, "val_sensitivity": 0.95,
     "param_learning_rate": 0.003, "param_dropout": 0.3},
]  # fmt: skip


def _marks(svg: str) -> dict[str, tuple[str, str]]:
    """trial id -> (element, fill or stroke colour) of its marker, from the tooltips."""
    out = {}
    for element, colour, tip in re.findall(
        r'<(circle|rect|path) [^>]*(?:fill|stroke)="(#[0-9A-Fa-f]{6})"[^>]*><title>([^<]*)</title>',
        svg,
    ):
        tid = re.match(r"trial (\S+):", unescape(tip))
        if tid:
            out[tid[1]] = (element, colour)
    return out


def _tips(svg: str) -> dict[str, str]:
    return {m[1]: unescape(m[0]) for m in re.findall(r"<title>(trial (\S+): [^<]*)</title>", svg)}


def test_front_dominated_infeasible_and_pick_are_drawn_apart() -> None:
    sel = select(ROWS, OBJECTIVES, (parse_constraint("val_sensitivity>=0.9"),), parse_pick(None))
    assert set(sel.front) == {"t0", "t1", "t2"} and sel.winner == "t1"
    svg = pareto_chart(ROWS, OBJECTIVES[1], OBJECTIVES[0], sel.front, sel.feasible, sel.winner)
    marks = _marks(svg)
    assert marks["t1"] == ("rect", PICKED)
    assert marks["t0"] == ("circle", FRONT)
    assert marks["t2"] == ("path", INFEASIBLE)  # on the front but breaks the constraint
    assert marks["t3"] == ("circle", OFF_FRONT)
    # The dashed front line passes through the three front points, in x order.
    line = re.search(r'<polyline points="([^"]+)"[^>]*stroke="' + FRONT, svg)
    assert line and len(line[1].split()) == 3
    xs = [float(p.split(",")[0]) for p in line[1].split()]
    assert xs == sorted(xs)
    assert "parameters (lower is better)" in svg and "validation AUC (higher is better)" in svg


def test_each_point_shows_its_configuration_on_hover() -> None:
    sel = select(ROWS, OBJECTIVES)
    tips = _tips(pareto_chart(ROWS, OBJECTIVES[1], OBJECTIVES[0], sel.front, None, sel.winner))
    assert tips["t0"] == (
        "trial t0: params 900,000, val_auc 0.95 (on the Pareto front, feasible); "
        "dropout=0.2, learning_rate=0.001"
    )
    assert "dropout=0.3, learning_rate=0.003" in tips["t3"] and "dominated" in tips["t3"]
    assert (
        tips[sel.winner or ""].startswith(f"trial {sel.winner}: ")
        and "(picked, " in tips[sel.winner or ""]
    )


def test_params_spanning_decades_get_a_log_axis_and_points_stay_inside() -> None:
    sel = select(ROWS, OBJECTIVES)
    svg = pareto_chart(ROWS, OBJECTIVES[1], OBJECTIVES[0], sel.front)
    axes = re.findall(
        rf'<line x1="([\d.]+)" x2="([\d.]+)" y1="([\d.]+)" y2="([\d.]+)" stroke="{MUTED}"/>', svg
    )
    (left, right, bottom, _), (_, _, _, top) = ((float(v) for v in a) for a in axes)
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>', svg)
    assert len(circles) == 4
    for cx, cy in circles:
        assert left <= float(cx) <= right and top <= float(cy) <= bottom
    # On a log axis 10k, 150k and 900k are not evenly spread by value: 150k sits past mid.
    by_tip = {
        t: float(cx) for cx, t in re.findall(r'<circle cx="([\d.]+)"[^>]*><title>trial (t\d)', svg)
    }
    assert (by_tip["t1"] - by_tip["t2"]) / (by_tip["t0"] - by_tip["t2"]) > 0.5
    assert ">1e5<" in svg or ">1e+5<" in svg or ">2e5<" in svg


def test_one_chart_per_other_objective_and_none_for_one() -> None:
    three = parse_objectives("val_auc,params,latency_ms")
    rows = [{**r, "latency_ms": 1.0 + i} for i, r in enumerate(ROWS)]
    sel = select(rows, three)
    charts = pareto_charts(rows, three, sel.front, sel.feasible, sel.winner)
    assert len(charts) == 2 and "latency_ms" in charts[1]
    assert pareto_charts(rows, three[:1], sel.front) == []
    empty = pareto_chart([], three[1], three[0], ())
    assert "no trial has both values" in empty
