"""The held-out test split: the tuned model against the sensible default and the recipe at
each model's operating point (chosen on validation), and Grad-CAM."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from covidxr_core.metrics import roc_points
from covidxr_core.numbers import finite
from tuning.reporting.charts import Interval, interval_chart, roc_chart
from tuning.reporting.html import (
    Html,
    banner,
    bold,
    bullets,
    caption,
    code,
    figure,
    fmt,
    heading,
    join,
    missing,
    muted,
    png_data_uri,
    render_template,
    section,
    svg,
    table,
)
from tuning.reporting.inputs import ROLE_LABELS, ROLES, RoleFiles
from tuning.reporting.sections.context import (
    ARGMAX_NOTE,
    Context,
    interval,
    param_list,
    value_ci,
)
from tuning.reporting.sections.views import by_view
from tuning.results import STABILITY_RULE, MeanStd, Metrics, Verdict, Versus, seed_spread

# The table's rows after the threshold: (metric, label), in reading order.
TEST_METRICS = (
    ("auc", "AUC"),
    ("average_precision", "average precision"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
    ("f1", "F1"),
    ("accuracy", "accuracy"),
    ("ece", "ECE"),
    ("brier", "Brier"),
)
TITLE = "Test: tuned vs baselines at the operating point"


def mean_std(stat: MeanStd) -> Html:
    """``0.912 ± 0.020 (n=3)``; a dash when there is no value."""
    if stat.mean is None:
        return "–"
    return join([stat.text(), " ", muted(f"(n={stat.n})")])


def with_ci(test: Metrics | None, name: str) -> Html:
    """A test value with its 95% interval, if it has one."""
    return value_ci(test, name)


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


def _figures(ctx: Context, roles: list[RoleFiles]) -> Markup:
    intervals: list[Interval] = []
    for name in ("auc", "sensitivity", "specificity"):
        for f in roles:
            t = f.test
            intervals.append(
                (name, f.label, t.value(name) if t else None, t.ci(name) if t else None)
            )
    figures: list[Html] = [figure(svg(interval_chart(intervals)))]
    positive = ctx.positive_index()
    roc_curves = []
    for f in roles:
        if f.probs is None or f.labels is None or positive is None:
            continue
        points = roc_points(f.labels, f.probs, positive[0])
        if points is not None:
            auc = f.test.auc if f.test else None
            roc_curves.append((f"{f.label} (AUC {fmt(auc)})", points[0], points[1]))
    if roc_curves and positive is not None:
        figures.append(
            figure(
                svg(roc_chart(roc_curves)),
                f"Positive class: {positive[1]}. Exported models only.",
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


def _seeds(stat: MeanStd) -> Html:
    """The spread over seeds under a value; nothing with fewer than two seeds."""
    if stat.mean is None or stat.n < 2:
        return ""
    return Markup('<span class="seeds">seeds: {} (n={})</span>').format(stat.text(), stat.n)


def _threshold_cell(f: RoleFiles) -> Html:
    if f.threshold is None:
        return muted("argmax")
    seeds = [t for p in f.summary.per_seed if (t := finite(p.get("threshold"))) is not None]
    rule = f.summary.operating_point
    return join(
        [
            fmt(f.threshold),
            " ",
            muted(f"({rule})") if rule else "",
            _seeds(MeanStd.of(seeds)),
        ]
    )


def _header(f: RoleFiles, versus: Versus | None) -> Html:
    seed = f.summary.exported_seed
    head: list[Html] = [f.label, muted(f" seed {seed}" if seed is not None else "")]
    if versus is not None and not versus.usable:
        head.append(Markup('<br><span class="tag failed">not a usable baseline</span>'))
    return join(head)


def metrics_table(roles: list[RoleFiles], verdict: Verdict | None) -> Markup:
    """Rows: the operating point and each test metric; columns: the models."""
    versus = verdict.versus if verdict is not None else {}
    headers: list[Html] = ["test metric", *(_header(f, versus.get(f.role)) for f in roles)]
    rows: list[list[Html]] = [["threshold", *(_threshold_cell(f) for f in roles)]]
    for name, label in TEST_METRICS:
        rows.append(
            [
                label,
                *(join([value_ci(f.test, name), _seeds(f.summary.test_stat(name))]) for f in roles),
            ]
        )
    return table(
        headers, rows, numeric=range(1, len(headers)), table_id="test-metrics", scroll=True
    )


def _versus_lines(verdict: Verdict) -> Markup:
    items: list[Html] = []
    for v in verdict.versus.values():
        if v.usable:
            items.append(
                join([bold(f"vs {v.label}: "), v.text.removeprefix(f"against {v.label}: ")])
            )
        else:
            items.append(
                join(
                    [
                        bold(f"vs {v.label}: "),
                        Markup('<span class="tag failed">not a usable baseline</span> '),
                        f"{v.unusable_reason or 'unusable'}; beating it counts for nothing. ",
                        muted(v.text.removeprefix(f"against {v.label}: ")),
                    ]
                )
            )
    return bullets(items)


def seed_table(roles: list[RoleFiles]) -> Markup:
    """Each model's test AUC per retrain seed, its spread against the exported model's
    interval, and a warning for each model whose seeds disagree by more than it
    (`tuning.results.seed_spread`)."""
    rows: list[list[Html]] = []
    flags: list[Html] = []
    for f in roles:
        spread = seed_spread(f.summary)
        exported = f.summary.exported_seed
        aucs = join(
            (
                join([muted(f"seed {seed}: "), bold(fmt(auc)) if seed == exported else fmt(auc)])
                for seed, auc in spread.aucs
            ),
            Markup("<br>"),
        )
        word: Html = muted("–")  # undecided: one seed, or no interval
        if spread.unstable:
            word = Markup('<span class="tag failed">seeds disagree</span>')
            flags.append(banner(f"{f.label}: {spread.text}", "warn"))
        elif spread.unstable is False:
            word = "agree"
        rows.append(
            [
                f.label,
                aucs or "–",
                fmt(spread.spread),
                join([interval(spread.interval), " ", muted(f"({fmt(spread.width)})")])
                if spread.interval is not None
                else "–",
                word,
            ]
        )
    shown = table(
        [
            "model",
            "test AUC per seed (exported in bold)",
            "spread (max − min)",
            "exported model's 95% interval (width)",
            "seeds",
        ],
        rows,
        numeric=range(1, 4),
        table_id="seed-stability",
        scroll=True,
    )
    rule = caption(
        f"Rule: {STABILITY_RULE}. That interval is how far the test sample alone moves one "
        "model's AUC; seeds that differ by more are a property of training, which the "
        "exported seed (picked on validation) hides."
    )
    return join([*flags, shown, rule])


def test_split(ctx: Context) -> Markup:
    run = ctx.run
    roles = ctx.roles()
    if "best" not in run.roles:
        why = run.notes.get("best", "no best/ folder")
        return section(
            "test",
            TITLE,
            missing(
                f"Nothing was retrained: {why}. Run the study with --retrain-seeds 1 or "
                "more to compare the winner with the baselines on the test split."
            ),
        )
    parts: list[Html] = []
    verdict = run.comparison
    parts.append(metrics_table(roles, verdict))
    best = run.roles["best"]
    if best.threshold is None:
        note = (
            "No threshold: " + ARGMAX_NOTE + ". Sensitivity and specificity are those of the "
            "positive class under the argmax."
        )
    else:
        rule = best.summary.operating_point
        note = (
            f"Each model's threshold on P({best.positive_class or 'positive'}) was chosen on "
            "the validation split"
            + (f" by the {rule} rule" if rule else "")
            + ", never on test; the rows from sensitivity down to accuracy are at that "
            "threshold. Values are the exported model's, with 95% stratified bootstrap "
            "intervals; with two or more retrain seeds the mean ± sd over seeds is beneath."
        )
    parts.append(caption(note))
    if verdict is not None and verdict.versus:
        parts.append(heading("Tuned against each baseline (paired test AUC)"))
        parts.append(_versus_lines(verdict))
    parts.append(heading("Stability over seeds (test AUC)"))
    parts.append(seed_table(roles))
    missing_roles = [ROLE_LABELS[r] for r in ROLES if r not in run.roles]
    if missing_roles:
        parts.append(caption(f"Not retrained (no folder): {', '.join(missing_roles)}."))
    protocol = best.summary.protocol
    if protocol:
        parts.append(caption(f"Protocol: {protocol}."))
    if best.summary.params:
        chosen = param_list(dict(best.summary.params), list(best.summary.params))
        parts.append(
            caption(Markup("Winner: trial {} with {}.").format(code(best.summary.trial_id), chosen))
        )
    parts.append(_figures(ctx, roles))
    matrices = join(confusion(f, f"{f.label} model") for f in roles)
    parts.append(Markup('<div class="grid3">{}</div>').format(matrices))
    parts.append(by_view(ctx))
    return section(
        "test",
        TITLE,
        join(parts),
        "The tuned configuration, a sensible default (Adam 1e-3, widths 16..128) and the "
        "recipe, each retrained from scratch with the same seeds and budget and scored once "
        "on the held-out test split at its own operating point.",
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


__all__ = [
    "TEST_METRICS",
    "TITLE",
    "confusion",
    "gradcam",
    "mean_std",
    "metrics_table",
    "seed_table",
    "test_split",
    "with_ci",
]
