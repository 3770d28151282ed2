"""The first card: the data warning, the verdict and the headline numbers."""

from __future__ import annotations

from markupsafe import Markup

from tuning.leaderboard import stop_counts
from tuning.reporting.charts import metric_label
from tuning.reporting.html import Html, banner, duration, fmt, join, kpis, missing, section
from tuning.reporting.sections.context import Context


def overview(ctx: Context) -> Markup:
    run = ctx.run
    parts: list[Html] = []
    if run.synthetic:
        parts.append(
            banner(
                "SYNTHETIC DATA: this study ran on generated demo images, not radiographs. "
                "Its numbers test the pipeline; they say nothing about a model for patients.",
                "warn",
            )
        )
    if run.comparison is not None:
        parts.append(banner(f"Verdict: {run.comparison.text}", run.comparison.kind))
    elif "comparison" in run.notes:
        parts.append(
            missing(
                "No comparison with the recipe: "
                + run.notes["comparison"]
                + " (a study run with --retrain-seeds 0 retrains nothing)."
            )
        )
    counts = stop_counts(run.rows)
    top = ctx.top
    tiles: list[tuple[Html, Html]] = [
        (
            fmt(top.row.column(ctx.sort)) if top else "–",
            f"best {metric_label(ctx.sort)} (trial {top.row.trial_id if top else '–'})",
        ),
        (
            str(len(run.rows)),
            f"trials: {counts['completed']} completed, "
            f"{counts['early-stopped']} early-stopped, {counts['failed']} failed",
        ),
        (duration(run.summary.wall_s if run.summary else None), "study wall time"),
    ]
    for role, label in (("best", "tuned"), ("baseline", "recipe")):
        files = run.roles.get(role)
        if files:
            auc = files.test.auc if files.test else None
            tiles.append((fmt(auc), f"test AUC, {label} (exported model)"))
    parts.append(kpis(tiles))
    return section("overview", "Overview", join(parts))


__all__ = ["overview"]
