"""Calibration: do the test probabilities mean what they say, before and after the
temperature fitted on validation?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from covidxr_core.calibration import apply_temperature, reliability
from covidxr_core.numbers import finite
from tuning.reporting.charts import ReliabilityCurve, reliability_chart
from tuning.reporting.html import (
    Html,
    caption,
    figure,
    fmt,
    grid,
    join,
    missing,
    section,
    svg,
    table,
)
from tuning.reporting.inputs import RoleFiles
from tuning.reporting.sections.context import Context
from tuning.reporting.svg import PALETTE

TITLE = "Calibration: do the probabilities mean what they say?"
_COLORS = {"best": PALETTE[0], "default": PALETTE[1], "baseline": PALETTE[2]}
# `covidxr_core.calibration.fit_temperature` searches T in [0.05, 20]: a T at either end
# means the fit ran out of room (scores squashed to 0 or 1), not that it found a minimum.
T_BOUNDS = (0.05, 20.0)


def temperature(f: RoleFiles) -> float | None:
    """The temperature fitted on validation, when the study fitted one."""
    return finite(f.summary.calibration.get("temperature"))


def _split(f: RoleFiles, split: str) -> Mapping[str, Any]:
    value = f.summary.calibration.get(split)
    return value if isinstance(value, Mapping) else {}


def curves(ctx: Context) -> list[ReliabilityCurve]:
    """Each role's reliability bins on test; the tuned model also after its temperature."""
    positive = ctx.positive_index()
    if positive is None:
        return []
    index = positive[0]
    out = []
    for f in ctx.roles():
        if f.probs is None or f.labels is None or f.probs.ndim != 2:
            continue
        labels = f.labels.reshape(-1) == index
        color = _COLORS.get(f.role)
        bins = reliability(labels, f.probs[:, index])
        out.append(ReliabilityCurve(f.label, bins, color, width=2.2 if f.role == "best" else 1.4))
        t = temperature(f)
        if f.role == "best" and t is not None and t != 1.0:
            scaled = apply_temperature(f.probs, t)[:, index]
            out.append(
                ReliabilityCurve(
                    f"{f.label} after T = {t:.2f} (dashed)",
                    reliability(labels, scaled),
                    color,
                    dashed=True,
                )
            )
    return [c for c in out if c.bins]


def _before_after(values: Mapping[str, Any], name: str) -> Html:
    before, after = finite(values.get(f"{name}_before")), finite(values.get(f"{name}_after"))
    if before is None and after is None:
        return "–"
    return f"{fmt(before)} → {fmt(after)}"


def _temperature_cell(f: RoleFiles) -> Html:
    t = temperature(f)
    if t is not None and not T_BOUNDS[0] * 1.001 < t < T_BOUNDS[1] * 0.999:
        return join([fmt(t), Markup('<span class="seeds">at the fit\'s bound</span>')])
    return fmt(t)


def calibration_table(roles: list[RoleFiles]) -> Markup:
    """Test ECE and Brier before → after temperature scaling, with the temperature."""
    rows: list[list[Html]] = [
        [
            f.label,
            _temperature_cell(f),
            _before_after(_split(f, "test"), "ece"),
            _before_after(_split(f, "test"), "brier"),
            _before_after(_split(f, "validation"), "ece"),
        ]
        for f in roles
    ]
    return table(
        ["model", "T", "test ECE", "test Brier", "validation ECE"],
        rows,
        numeric=range(1, 5),
        table_id="calibration-table",
        scroll=False,
    )


def calibration(ctx: Context) -> Markup:
    roles = ctx.roles()
    if not roles:
        return section("calibration", TITLE, missing("no retrained model: nothing to calibrate"))
    drawn = curves(ctx)
    positive = ctx.positive_index()
    if drawn and positive is not None:
        chart: Html = figure(
            svg(reliability_chart(drawn, positive[1])),
            "Each point is an equal-mass bin of test images (about the same number each): "
            "its mean predicted probability against the share that truly is positive. On "
            "the dashed diagonal a model is perfectly calibrated; below it, it overstates "
            "the probability.",
        )
    else:
        chart = missing(
            "reliability diagram not drawn: test_probs.npy, test_labels.npy or the class "
            "order are missing"
        )
    measured = [f for f in roles if f.summary.calibration]
    if measured:
        side: Html = join(
            [
                calibration_table(measured),
                caption(
                    "Before → after temperature scaling. T divides each model's logits; it "
                    "is fitted on the validation split (lowest negative log-likelihood, T "
                    "searched in [0.05, 20]) and never sees test. It changes the "
                    "probabilities, not their order, so AUC and the ranking stay; the "
                    "thresholds in the test table are on the probabilities before scaling. "
                    "ECE: expected calibration error over equal-mass bins (0 is perfect); "
                    "Brier: mean squared error of the probability."
                ),
            ]
        )
    else:
        side = missing("no calibration was recorded in metrics.json (a study from before it)")
    return section(
        "calibration",
        TITLE,
        grid([chart, side]),
        "A probability of 0.8 should be right four times in five. Calibration says whether "
        "the model's scores can be read as probabilities, which matters as soon as someone "
        "looks at the number rather than the class.",
    )


__all__ = ["TITLE", "calibration", "calibration_table", "curves", "temperature"]
