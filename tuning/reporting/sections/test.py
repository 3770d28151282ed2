"""The held-out test split: the retrained winner against the recipe, and Grad-CAM."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from covidxr_core.metrics import roc_points
from tuning.reporting.charts import Interval, interval_chart, roc_chart
from tuning.reporting.html import (
    Html,
    banner,
    caption,
    code,
    figure,
    fmt,
    join,
    missing,
    muted,
    png_data_uri,
    render_template,
    section,
    svg,
    table,
)
from tuning.reporting.inputs import RoleFiles
from tuning.reporting.sections.context import Context, param_list
from tuning.results import MeanStd, Metrics

TEST_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "loss")
_TITLE = "Retrained winner vs the recipe on test"


def mean_std(stat: MeanStd) -> Html:
    """``0.912 ± 0.020 (n=3)``; a dash when there is no value."""
    if stat.mean is None:
        return "–"
    return join([stat.text(), " ", muted(f"(n={stat.n})")])


def with_ci(test: Metrics | None, name: str) -> Html:
    """A test value with its 95% interval, if it has one."""
    if test is None:
        return "–"
    value, interval = fmt(test.value(name)), test.ci(name)
    if interval:
        return join([value, " ", muted(f"[{interval[0]:.3f}, {interval[1]:.3f}]")])
    return value


def confusion(files: RoleFiles, title: str) -> Markup:
    test = files.test
    matrix = test.confusion_matrix if test else None
    labels = test.class_names if test else ()
    if not matrix or not labels:
        return missing(f"{title}: no confusion matrix in metrics.json")
    rows = []
    for true_label, counts in zip(labels, matrix, strict=True):
        total = max(sum(counts), 1)
        cells = []
        for n in counts:
            share = n / total
            alpha = 0.08 + 0.8 * share
            # White only on dark cells: below ~0.7 opacity the blue is too light for it.
            cells.append((n, share, alpha, "#fff" if alpha >= 0.7 else "#1f2933"))
        rows.append((true_label, cells))
    return render_template("confusion.html.j2", title=title, labels=labels, rows=rows)


def _roles(ctx: Context) -> list[tuple[str, RoleFiles]]:
    run = ctx.run
    pairs = (("tuned", run.roles.get("best")), ("recipe", run.roles.get("baseline")))
    return [(label, f) for label, f in pairs if f is not None]


def _figures(ctx: Context, roles: list[tuple[str, RoleFiles]]) -> Markup:
    intervals: list[Interval] = []
    for name in ("auc", "sensitivity", "specificity"):
        for label, f in roles:
            t = f.test
            intervals.append((name, label, t.value(name) if t else None, t.ci(name) if t else None))
    figures: list[Html] = [figure(svg(interval_chart(intervals)))]
    order = ctx.run.class_order()
    roc_curves = []
    for label, f in roles:
        if f.probs is None or f.labels is None or order is None:
            continue
        names, positive = order
        points = roc_points(f.labels, f.probs, names.index(positive))
        if points is not None:
            auc = f.test.auc if f.test else None
            roc_curves.append((f"{label} (AUC {fmt(auc)})", points[0], points[1]))
    if roc_curves:
        positive = order[1] if order else "?"
        figures.append(
            figure(
                svg(roc_chart(roc_curves)),
                f"Positive class: {positive}. Exported models only.",
            )
        )
    else:
        figures.append(
            missing(
                "ROC not drawn: test probabilities, labels or the class order "
                "are missing, or the test split has one class only"
            )
        )
    return Markup('<div class="grid2">{}</div>').format(join(figures))


def test_split(ctx: Context) -> Markup:
    run = ctx.run
    roles = _roles(ctx)
    if not roles:
        why = run.notes.get("best", "no best/ folder")
        return section(
            "test",
            _TITLE,
            missing(
                f"Nothing was retrained: {why}. Run the study with --retrain-seeds 1 or "
                "more to compare the winner with the recipe on the test split."
            ),
        )
    parts: list[Html] = []
    verdict = run.comparison
    if verdict is not None:
        parts.append(banner(verdict.text, verdict.kind))
    headers = ["metric"]
    for label, f in roles:
        seed = f.summary.exported_seed
        headers += [f"{label}: exported (seed {seed}) [95% CI]", f"{label}: mean ± sd over seeds"]
    rows: list[list[Html]] = []
    for name in TEST_METRICS:
        cells: list[Html] = [name]
        for _, f in roles:
            cells += [with_ci(f.test, name), mean_std(f.summary.test_stat(name))]
        rows.append(cells)
    parts.append(
        table(headers, rows, numeric=range(1, len(headers)), table_id="test-metrics", scroll=True)
    )
    if verdict is not None and verdict.paired_difference is not None:
        ci = verdict.paired_ci95
        ci_text = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "undefined"
        parts.append(
            caption(
                "Paired test-AUC difference of the exported models (tuned − recipe, same "
                f"images): {verdict.paired_difference:+.3f}, 95% CI {ci_text}."
            )
        )
    protocol = roles[0][1].summary.protocol
    if protocol:
        parts.append(caption(f"Protocol: {protocol}."))
    best = run.roles.get("best")
    if best is not None and best.summary.params:
        chosen = param_list(dict(best.summary.params), list(best.summary.params))
        parts.append(
            caption(Markup("Winner: trial {} with {}.").format(code(best.summary.trial_id), chosen))
        )
    parts.append(_figures(ctx, roles))
    matrices = join(confusion(f, f"{label} model") for label, f in roles)
    parts.append(Markup('<div class="grid2">{}</div>').format(matrices))
    return section(
        "test",
        _TITLE,
        join(parts),
        "Both configurations retrained from scratch with the same seeds and budget, "
        "scored once on the held-out test split.",
    )


@dataclass(frozen=True)
class _Shown:
    """One Grad-CAM example as the gallery template shows it."""

    file: str
    uri: str
    correct: bool
    true_class: str
    predicted_class: str
    probability: float
    blank: bool


def gradcam(ctx: Context) -> Markup:
    gallery = ctx.gallery
    title = "Where the model looks (Grad-CAM)"
    if gallery is None:
        return section("gradcam", title, missing(ctx.gallery_note))
    if not gallery.examples:
        return section(
            "gradcam", title, missing(f"the test split has no images ({gallery.test_size})")
        )
    shown = [
        _Shown(
            ex.file,
            png_data_uri(ex.png),
            ex.correct,
            ex.true_class,
            ex.predicted_class,
            ex.probability,
            ex.blank,
        )
        for ex in gallery.examples
    ]
    h, w = gallery.map_size
    intro = Markup(
        "Test images of each class, right and wrong (most confident first), from the "
        "exported winner. Left: the image as the model sees it; right: Grad-CAM of the "
        "predicted class from layer {} ({}×{} map, upsampled). Heat on text labels, borders "
        "or outside the lungs means a shortcut. Paths are relative to the data folder (a "
        "carved test split keeps train/ paths)."
    ).format(code(gallery.layer), h, w)
    return section("gradcam", title, render_template("gallery.html.j2", examples=shown), intro)


__all__ = ["TEST_METRICS", "confusion", "gradcam", "mean_std", "test_split", "with_ci"]
