"""Trials that raised, with the error each left."""

from __future__ import annotations

from markupsafe import Markup

from tuning.reporting.html import render_template, section
from tuning.reporting.sections.context import Context, param_list


def failures(ctx: Context) -> Markup:
    failed = [r.row for r in ctx.ranked if r.row.stop_reason == "failed"]
    if not failed:
        return section("failed", "Failed trials", Markup('<p class="muted">No trial failed.</p>'))
    params = ctx.run.param_names
    rows = [
        (r.trial_id, param_list(r.params, params), r.error or "no error recorded") for r in failed
    ]
    return section(
        "failed",
        f"Failed trials ({len(failed)})",
        render_template("failures.html.j2", rows=rows),
        "Trials that raised; the study went on without them.",
    )


__all__ = ["failures"]
