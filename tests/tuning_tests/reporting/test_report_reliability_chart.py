"""The reliability diagram: bins land where their numbers say, the diagonal spans the plot."""

from __future__ import annotations

import re

import numpy as np
import pytest

from covidxr_core.calibration import ReliabilityBin, reliability
from tuning.reporting.charts import RELIABILITY_DIAGONAL, ReliabilityCurve, reliability_chart
from tuning.reporting.svg import MUTED


def _frame(svg: str) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) pixels of the plot, from its two axis lines."""
    axes = re.findall(
        rf'<line x1="([\d.]+)" x2="([\d.]+)" y1="([\d.]+)" y2="([\d.]+)" stroke="{MUTED}"/>', svg
    )
    (x0, x1, y0, _), (_, _, bottom, top) = ((float(v) for v in a) for a in axes)
    assert y0 == bottom
    return x0, x1, bottom, top


def _circles(svg: str) -> list[tuple[float, float, str]]:
    return [
        (float(cx), float(cy), tip)
        for cx, cy, tip in re.findall(
            r'<circle cx="([\d.-]+)" cy="([\d.-]+)"[^>]*><title>([^<]*)</title>', svg
        )
    ]


def test_points_map_inside_the_plot_where_their_numbers_say() -> None:
    bins = [ReliabilityBin(10, 0.25, 0.75), ReliabilityBin(10, 0.0, 0.0), ReliabilityBin(5, 1, 1)]
    svg = reliability_chart([ReliabilityCurve("tuned", bins)], "corona")
    left, right, bottom, top = _frame(svg)
    points = _circles(svg)
    assert len(points) == 3
    for cx, cy, _ in points:
        assert left <= cx <= right and top <= cy <= bottom
    cx, cy, tip = points[0]
    assert cx == pytest.approx(left + 0.25 * (right - left), abs=0.1)
    assert cy == pytest.approx(bottom - 0.75 * (bottom - top), abs=0.1)
    assert tip == "tuned: 10 images, predicted 0.250, observed 0.750"
    assert points[1][:2] == pytest.approx((left, bottom), abs=0.1)  # (0, 0): bottom left
    assert points[2][:2] == pytest.approx((right, top), abs=0.1)  # (1, 1): top right
    assert "mean predicted P(corona) in the bin" in svg


def test_the_dashed_diagonal_runs_corner_to_corner() -> None:
    svg = reliability_chart([])
    left, right, bottom, top = _frame(svg)
    diagonal = re.search(
        r'<polyline points="([^"]+)"[^>]*stroke-dasharray="[^"]+">'
        rf"<title>{RELIABILITY_DIAGONAL}</title>",
        svg,
    )
    assert diagonal, svg
    (x0, y0), (x1, y1) = (tuple(float(v) for v in p.split(",")) for p in diagonal[1].split())
    assert (x0, y0) == pytest.approx((left, bottom), abs=0.1)
    assert (x1, y1) == pytest.approx((right, top), abs=0.1)


def test_real_bins_of_a_model_and_its_dashed_rescaled_twin() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200).astype(bool)
    scores = np.clip(labels * 0.4 + rng.uniform(0, 0.6, 200), 0, 1)
    bins = reliability(labels, scores)
    assert len(bins) == 10  # equal-mass: ten bins of 20
    svg = reliability_chart(
        [ReliabilityCurve("tuned", bins), ReliabilityCurve("tuned after T", bins, dashed=True)]
    )
    left, right, bottom, top = _frame(svg)
    assert len(_circles(svg)) == 10  # the dashed twin is drawn with squares
    squares = re.findall(r'<rect x="([\d.-]+)" y="([\d.-]+)" width="([\d.]+)"', svg)
    assert len(squares) == 10
    for x, y, w in squares:
        cx, cy = float(x) + float(w) / 2, float(y) + float(w) / 2
        assert left <= cx <= right and top <= cy <= bottom
    assert svg.count('stroke-dasharray="6 4"') == 1
