"""The first card: the data warning, the verdict with its checks, and the headline numbers."""

from __future__ import annotations

from markupsafe import Markup

from tuning.leaderboard import stop_counts
from tuning.reporting.charts import metric_label
from tuning.reporting.html import (
    Html,
    banner,
    caption,
    checks,
    duration,
    fmt,
    join,
    kpis,
    missing,
    section,
)
from tuning.reporting.inputs import MODEL_CARD
from tuning.reporting.sections.context import ARGMAX_NOTE, Context, banner_kind, interval
from tuning.results import Metrics, Verdict


def verdict_banner(verdict: Verdict) -> Markup:
    """The verdict in one coloured line: green only for ``good``; ``none`` is neutral."""
    kind = banner_kind(verdict.kind)
    if kind == "none":
        reason = verdict.text.removeprefix("no verdict: ").removeprefix("no verdict")
        return banner(f"No verdict: {reason or 'the study could not decide'}", "none")
    from tuning.verdict import headline

    word = {"good": "shown", "bad": "not shown (a check failed)", "warn": "not shown"}[kind]
    text = verdict.text.removeprefix("not shown: ")
    return banner(f"{headline(verdict)}. Verdict {word}: {text}", kind)


def _detail(name: str, detail: str) -> str:
    """A check's detail without the words its name already says."""
    if name.startswith("beats "):
        return detail.removeprefix(f"against {name.removeprefix('beats ')}: ")
    return detail.removeprefix(f"{name} ")


def _tile(metrics: Metrics | None, name: str, verdict: Verdict | None) -> Html:
    """A value with its interval beneath; red when the verdict's check of it failed."""
    if metrics is None or metrics.value(name) is None:
        return "–"
    failed = verdict is not None and any(
        c.name == name and c.passed is False for c in verdict.checks
    )
    value: Html = fmt(metrics.value(name))
    if failed:
        value = Markup('<span class="no" title="this check failed">{}</span>').format(value)
    ci = metrics.ci(name)
    return Markup("{} <small>{}</small>").format(value, interval(ci)) if ci else value


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
    verdict = run.comparison
    if verdict is not None:
        parts.append(verdict_banner(verdict))
        if verdict.checks:
            parts.append(
                checks(
                    [(c.passed, c.name, _detail(c.name, c.detail)) for c in verdict.checks],
                    green=verdict.kind == "good",
                )
            )
    elif "comparison" in run.notes:
        parts.append(
            missing(
                "No verdict: "
                + run.notes["comparison"]
                + " (a study run with --retrain-seeds 0 retrains nothing)."
            )
        )
    tiles: list[tuple[Html, Html]] = []
    best = run.roles.get("best")
    if best is not None:
        test = best.test
        if best.threshold is not None:
            rule = best.summary.operating_point
            threshold: tuple[Html, Html] = (
                fmt(best.threshold),
                f"threshold on P({best.positive_class or 'positive'}), chosen on validation"
                + (f" ({rule} rule)" if rule else ""),
            )
        else:
            threshold = ("argmax", f"no threshold: {ARGMAX_NOTE}")
        tiles += [
            (_tile(test, "auc", verdict), "tuned: test AUC [95% CI]"),
            (
                _tile(test, "sensitivity", verdict),
                "tuned: test sensitivity at the operating point",
            ),
            (
                _tile(test, "specificity", verdict),
                "tuned: test specificity at the operating point",
            ),
            threshold,
        ]
    counts = stop_counts(run.rows)
    top = ctx.top
    tiles += [
        (
            fmt(top.row.column(ctx.sort)) if top else "–",
            f"best {metric_label(ctx.sort)} in the search (trial "
            f"{top.row.trial_id if top else '–'})",
        ),
        (
            str(len(run.rows)),
            f"trials: {counts['completed']} completed, "
            f"{counts['early-stopped']} early-stopped, {counts['failed']} failed; study "
            f"wall time {duration(run.summary.wall_s if run.summary else None)}",
        ),
    ]
    parts.append(kpis(tiles))
    if run.model_card is not None:
        parts.append(
            caption(
                Markup(
                    "Model card of the exported model (intended use, data, operating point, "
                    'limitations): <a href="{}">{}</a>.'
                ).format(MODEL_CARD, MODEL_CARD)
            )
        )
    return section("overview", "Overview", join(parts))


__all__ = ["overview", "verdict_banner"]
