"""External validation: the same models on data from another source, beside the internal
test split, with the study's warnings where a model does worse there."""

from __future__ import annotations

from markupsafe import Markup

from tuning.reporting.html import (
    Html,
    banner,
    bold,
    caption,
    code,
    fmt,
    join,
    missing,
    muted,
    section,
    table,
)
from tuning.reporting.inputs import ROLE_LABELS, ROLES
from tuning.reporting.sections.context import Context, value_ci
from tuning.results import Metrics

TITLE = "External validation"
INTERNAL = "internal test"


def sources(ctx: Context) -> dict[str, dict[str, Metrics]]:
    """Source -> role -> metrics: the internal test split first, then each external set.

    The verdict's copy wins; a role's own ``metrics.json`` fills in what it lacks.
    """
    run = ctx.run
    verdict = run.comparison
    out: dict[str, dict[str, Metrics]] = {INTERNAL: {}}
    for f in ctx.roles():
        test = (verdict.test.get(f.role) if verdict else None) or f.test
        if test is not None:
            out[INTERNAL][f.role] = test
    for name, by_role in (verdict.external if verdict else {}).items():
        out.setdefault(name, {}).update(by_role)
    for f in ctx.roles():
        for name, metrics in f.summary.external.items():
            out.setdefault(name, {}).setdefault(f.role, metrics)
    return out


def external_table(by_source: dict[str, dict[str, Metrics]]) -> Markup:
    rows: list[list[Html]] = []
    classes: list[str] = []
    for source, by_role in by_source.items():
        first = True
        for role in ROLES:
            m = by_role.get(role)
            if m is None:
                continue
            threshold = muted("argmax") if m.threshold is None else fmt(m.threshold)
            rows.append(
                [
                    bold(source) if first else "",
                    ROLE_LABELS[role],
                    str(m.n),
                    value_ci(m, "auc"),
                    value_ci(m, "sensitivity"),
                    value_ci(m, "specificity"),
                    threshold,
                ]
            )
            classes.append("group" if first else "")
            first = False
    return table(
        [
            "source",
            "model",
            "images",
            "AUC [95% CI]",
            "sensitivity [95% CI]",
            "specificity [95% CI]",
            "threshold",
        ],
        rows,
        numeric=range(2, 7),
        table_id="external",
        row_classes=classes,
        scroll=True,
    )


def external(ctx: Context) -> Markup:
    run = ctx.run
    if not ctx.roles():
        return section(
            "external", TITLE, missing("no retrained model: nothing to validate externally")
        )
    by_source = sources(ctx)
    notes = run.comparison.external_notes if run.comparison else ()
    parts: list[Html] = [banner(note, "warn") for note in notes]
    if len(by_source) == 1:
        parts.append(
            Markup(
                '<p class="muted">No external validation set: every number on this page '
                "comes from the same source as the training data, so it cannot show whether "
                "the model learned the disease or the source. Add one with {} (a folder "
                "laid out <code>DIR/&lt;class&gt;/*</code> from another hospital or data "
                "set); the study then scores each model on it at its own threshold.</p>"
            ).format(code("--external NAME=DIR"))
        )
    else:
        parts.append(external_table(by_source))
        parts.append(
            caption(
                "Each model at its own threshold, chosen on the internal validation split; "
                "nothing is refitted on an external set. Intervals are 95% stratified "
                "bootstrap intervals. A large drop from the internal test split means the "
                "model relies on something specific to the training source."
            )
        )
    return section(
        "external",
        TITLE,
        join(parts),
        "The internal test split comes from the same source as the training images; an "
        "external set does not.",
    )


__all__ = ["INTERNAL", "TITLE", "external", "external_table", "sources"]
