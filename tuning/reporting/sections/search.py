"""The search itself: the leaderboard, progress and importance, each parameter against the
metric, learning curves and the workers' timeline."""

from __future__ import annotations

from markupsafe import Markup

from tuning.leaderboard import param_column
from tuning.objective import SCORE_EPOCHS
from tuning.reporting.analysis import best_so_far, worker_spans
from tuning.reporting.charts import (
    best_so_far_chart,
    gantt_chart,
    importance_chart,
    learning_curves_chart,
    metric_label,
    param_scatter_charts,
)
from tuning.reporting.html import (
    Html,
    code,
    duration,
    figure,
    fmt,
    grid,
    join,
    missing,
    section,
    svg,
    table,
    tag,
)
from tuning.reporting.sections.context import Context, param_value, star

LEADERBOARD_METRICS = (
    ("score", "score"),
    ("val_auc", "val AUC"),
    ("val_accuracy", "accuracy"),
    ("val_sensitivity", "sensitivity"),
    ("val_specificity", "specificity"),
    ("val_loss", "val loss"),
)
TOP_CURVES = 5  # learning curves drawn: more than this and the lines blur together


def leaderboard(ctx: Context) -> Markup:
    params = ctx.run.param_names
    headers = [
        "rank",
        "trial",
        "origin",
        *params,
        *(label for _, label in LEADERBOARD_METRICS),
        "epochs",
        "stop reason",
        "wall",
    ]
    first_metric = 3 + len(params)
    last_metric = first_metric + len(LEADERBOARD_METRICS) + 1  # the metrics and the epochs
    numeric = [0, *range(3, first_metric), *range(first_metric, last_metric), len(headers) - 1]
    rows: list[list[Html]] = []
    classes: list[str] = []
    for ranked in ctx.ranked:
        r = ranked.row
        winner = r.trial_id == ctx.winner
        trial = Markup('<span class="nowrap">{}{}</span>').format(
            code(r.trial_id), star() if winner else ""
        )
        rows.append(
            [
                str(ranked.rank) if ranked.rank is not None else "–",
                trial,
                r.origin or "search",
                *(param_value(r.column(param_column(p))) for p in params),
                *(fmt(r.column(col)) for col, _ in LEADERBOARD_METRICS),
                f"{r.epochs_run or 0}/{r.max_epochs or '?'}",
                tag(r.reason),
                duration(r.wall_s),
            ]
        )
        classes.append("winner" if winner else "failed" if r.stop_reason == "failed" else "")
    ranked_by = (
        f"its score (the mean of its {ctx.run.metric} over its last {SCORE_EPOCHS} epochs, "
        "which is what the search and the race's entry use)"
        if ctx.sort == "score"
        else f"its final {metric_label(ctx.sort)}"
    )
    intro = (
        f"Every trial, ranked by {ranked_by}; trials without a value come last. The "
        "origin says where a configuration came from: the sensible default, the recipe or "
        "a start of your space run first for the full budget, or the sampler's own "
        "(search). ★ marks the trial handed back as best/ (the race's winner, see the "
        "Study section; none when the sensible default was handed back)."
    )
    if (ctx.run.run_dir / "selection.json").is_file():
        intro += (
            " This study picked by its own rule (objectives, constraints, --pick): the "
            "Selection section says which and why."
        )
    return section(
        "leaderboard",
        f"Leaderboard ({len(ctx.ranked)} trials)",
        table(headers, rows, numeric=numeric, table_id="leaderboard", row_classes=classes),
        intro,
    )


def progress(ctx: Context) -> Markup:
    run = ctx.run
    steps = best_so_far(run.rows, run.metric, run.mode)
    left = (
        figure(
            svg(best_so_far_chart(steps, run.metric, run.mode)),
            "Each dot is a trial, placed by the order trials finished; the staircase is the "
            f"best {run.metric} reached so far. A staircase that stopped climbing early means "
            "more trials would likely not help.",
        )
        if steps
        else missing("no trial has finished yet")
    )
    if ctx.importance:
        right = figure(svg(importance_chart(ctx.importance)), f"{ctx.importance_note}.")
    else:
        right = missing(f"Parameter importance not computed: {ctx.importance_note}")
    return section("progress", "Search progress", grid([left, right]))


def parameters(ctx: Context) -> Markup:
    run = ctx.run
    space = run.space
    by_name = {p.name: p for p in space.params} if space is not None else {}
    charts = param_scatter_charts(
        run.rows, [(n, by_name.get(n)) for n in run.param_names], run.metric
    )
    title = "Each hyperparameter against the metric"
    if not charts:
        return section("parameters", title, missing("the leaderboard has no parameter columns"))
    return section(
        "parameters",
        title,
        Markup('<div class="grid3">{}</div>').format(join(figure(svg(c)) for c in charts)),
        f"One dot per trial at its final {run.metric}: blue ran the full budget, orange "
        "was stopped early by ASHA (its value is from an earlier epoch), red crosses failed. "
        "Hover a dot for the trial.",
    )


def curves(ctx: Context) -> Markup:
    top = [r.row for r in ctx.ranked if r.rank is not None and r.row.curve("val_auc")][:TOP_CURVES]
    if not top:
        return section("curves", "Learning curves", missing("no trial reported an epoch"))
    max_epochs = max(int(r.max_epochs or 1) for r in top)
    auc = learning_curves_chart(top, "val_auc", max_epochs)
    loss = learning_curves_chart(top, "val_loss", max_epochs, dashed_curve="train_loss")
    return section(
        "curves",
        f"Learning curves of the top {len(top)} trials",
        Markup('<div class="grid2">{}{}</div>').format(figure(svg(auc)), figure(svg(loss))),
        f"Validation curves per epoch of the best-ranked trials; the x axis runs to the "
        f"{max_epochs}-epoch budget, so a curve that ends early (×) was stopped by ASHA.",
    )


def workers(ctx: Context) -> Markup:
    spans, busy, makespan = worker_spans(ctx.run.rows)
    if not spans:
        return section("workers", "Trials over time", missing("no trial has start and end times"))
    mean_busy = sum(busy.values()) / len(busy)
    return section(
        "workers",
        "Trials over time per worker",
        figure(svg(gantt_chart(spans, busy, makespan))),
        f"{len(spans)} trials on {len(busy)} worker process(es) over {duration(makespan)}; "
        f"workers were busy {100 * mean_busy:.0f}% of that time on average. Gaps are time a "
        "worker waited: for the searcher, the scheduler or a process start.",
    )


__all__ = [
    "LEADERBOARD_METRICS",
    "TOP_CURVES",
    "curves",
    "leaderboard",
    "parameters",
    "progress",
    "workers",
]
