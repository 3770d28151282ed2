"""The report's sections, in reading order; each turns the run's facts into one HTML card.

A section whose inputs are missing says which file is absent and why it may be, instead of
failing: a report is most needed exactly when a study went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covidxr_core.metrics import roc_points
from tuning._report_analysis import (
    Leakage,
    best_so_far,
    finite,
    stop_counts,
    worker_spans,
)
from tuning._report_gradcam import Gallery
from tuning._report_html import (
    banner,
    duration,
    esc,
    fmt,
    key_values,
    kpis,
    missing,
    png_data_uri,
    section,
    table,
    tag,
)
from tuning._report_inputs import RunInputs
from tuning._report_plots import (
    best_so_far_chart,
    gantt_chart,
    importance_chart,
    interval_chart,
    learning_curves_chart,
    metric_label,
    param_scatter_charts,
    roc_chart,
)

LEADERBOARD_METRICS = (
    ("val_auc", "val AUC"),
    ("val_accuracy", "accuracy"),
    ("val_sensitivity", "sensitivity"),
    ("val_specificity", "specificity"),
    ("val_loss", "val loss"),
)
TEST_METRICS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "loss")
TOP_CURVES = 5  # learning curves drawn: more than this and the lines blur together


@dataclass
class Context:
    """The facts every section may draw on; heavy ones are computed once by the caller."""

    run: RunInputs
    ranked: list[dict[str, Any]]  # leaderboard rows, best first, each with "rank"
    sort: str  # the column they are ranked by
    leakage: Leakage
    importance: dict[str, float] | None
    importance_note: str
    gallery: Gallery | None
    gallery_note: str  # why there is no gallery
    dataset_counts: dict[str, dict[str, int]] | None = None
    winner: str | None = None  # trial id retrained as "best"
    notes: list[str] = field(default_factory=list)


def _param_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return esc(value) if value is not None else "–"


def _verdict_kind(beat: bool | None) -> str:
    """Banner colour of the comparison: green beat, red did not, amber undecided."""
    return "good" if beat is True else "bad" if beat is False else "warn"


def _trial_counts(ctx: Context) -> dict[str, int]:
    return stop_counts(ctx.run.rows)


# ----------------------------------------------------------------------------- overview


def overview(ctx: Context) -> str:
    run, summary = ctx.run, ctx.run.summary or {}
    parts: list[str] = []
    data = summary.get("data") or {}
    if data.get("synthetic") or (run.spec is not None and run.spec.data is None):
        parts.append(
            banner(
                "SYNTHETIC DATA: this study ran on generated demo images, not radiographs. "
                "Its numbers test the pipeline; they say nothing about a model for patients.",
                "warn",
            )
        )
    comparison = run.comparison
    if comparison:
        kind = _verdict_kind(comparison.get("beat_recipe"))
        parts.append(banner(f"Verdict: {comparison.get('verdict', '')}", kind))
    elif "comparison" in run.notes:
        parts.append(
            missing(
                "No comparison with the recipe: "
                + run.notes["comparison"]
                + " (a study run with --retrain-seeds 0 retrains nothing)."
            )
        )
    counts = _trial_counts(ctx)
    top = next((r for r in ctx.ranked if r["rank"] == 1), None)
    tiles = [
        (
            fmt(top[ctx.sort]) if top else "–",
            f"best {metric_label(ctx.sort)} (trial {top['trial_id'] if top else '–'})",
        ),
        (
            str(len(run.rows)),
            f"trials: {counts['completed']} completed, "
            f"{counts['early-stopped']} early-stopped, {counts['failed']} failed",
        ),
        (duration(finite(summary.get("wall_s"))), "study wall time"),
    ]
    for role, label in (("best", "tuned"), ("baseline", "recipe")):
        files = run.roles.get(role)
        if files:
            auc = ((files.metrics.get("exported") or {}).get("test") or {}).get("auc")
            tiles.append((fmt(auc), f"test AUC, {label} (exported model)"))
    parts.append(kpis(tiles))
    return section("overview", "Overview", "".join(parts))


# ----------------------------------------------------------------------------- study


def _data_part(ctx: Context) -> str:
    run, summary = ctx.run, ctx.run.summary or {}
    data = summary.get("data") or {}
    counts = data.get("counts") or ctx.dataset_counts
    out = ["<h3>Data set</h3>"]
    source = data.get("source") or (run.spec.data if run.spec else None) or "synthetic demo"
    synthetic = bool(data.get("synthetic")) or (run.spec is not None and run.spec.data is None)
    facts = [
        ("source", f"<code>{esc(source)}</code>"),
        (
            "kind",
            '<span class="no">synthetic (generated images)</span>'
            if synthetic
            else "real radiographs",
        ),
        (
            "decoded as",
            f"{esc(data.get('image_size', run.spec.image_size if run.spec else '?'))} px, "
            f"{esc(data.get('channels', run.spec.channels if run.spec else '?'))} channel(s)",
        ),
        ("positive class", esc(data.get("positive_class", "?"))),
    ]
    out.append(key_values(facts))
    if counts:
        classes = list(dict.fromkeys(c for split in counts.values() for c in split))
        rows = [
            [esc(split), *(str(n.get(c, 0)) for c in classes), str(sum(n.values()))]
            for split, n in counts.items()
        ]
        totals = [sum(n.get(c, 0) for n in counts.values()) for c in classes]
        rows.append(["<b>all</b>", *(f"<b>{t}</b>" for t in totals), f"<b>{sum(totals)}</b>"])
        out.append(
            table(
                ["split", *classes, "total"],
                rows,
                numeric=range(1, len(classes) + 2),
                table_id="data-counts",
                scroll=False,
                compact=True,
            )
        )
    else:
        out.append(missing("image counts unknown: " + run.notes.get("summary", "no summary.json")))
    notes = data.get("notes") or []
    if notes:
        out.append('<ul class="tight">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    leak = ctx.leakage
    out.append("<h3>Leakage check</h3>")
    if not leak.checked:
        out.append(missing(leak.explanation))
    elif leak.pairs:
        out.append(banner(f"Possible leakage: {leak.explanation}", "bad"))
        out.append(
            '<ul class="tight">'
            + "".join(f"<li><code>{esc(p)}</code></li>" for p in leak.pairs)
            + "</ul>"
        )
    else:
        out.append(banner(leak.explanation, "good"))
    return "".join(out)


def _space_part(ctx: Context) -> str:
    run = ctx.run
    out = ["<h3>Search space</h3>"]
    space = run.space
    if space is None:
        return "".join(out) + missing(
            "search space unknown: " + run.notes.get("space", run.notes.get("study", "?"))
        )
    if space.description:
        out.append(f'<p class="caption">{esc(space.name)}: {esc(space.description)}</p>')
    rows = [[f"<code>{esc(p.name)}</code>", esc(p.type), esc(p.describe())] for p in space.params]
    rows += [[f"<code>{esc(k)}</code>", "fixed", esc(v)] for k, v in space.fixed.items()]
    out.append(
        table(["parameter", "kind", "values"], rows, table_id="space", scroll=False, compact=True)
    )
    return "".join(out)


def _engine(spec: Any) -> str:
    # Older study.json files predate the engine field: those studies all ran on Ray.
    engine = getattr(spec, "engine", "ray")
    if engine == "ray":
        return "Ray Tune + Optuna TPE + ASHA"
    return f"KerasTuner ({esc(getattr(spec, 'tuner', '?'))})"


def _budget_part(ctx: Context) -> str:
    run, spec, summary = ctx.run, ctx.run.spec, ctx.run.summary or {}
    out = ["<h3>Budget and hardware</h3>"]
    if spec is None:
        return "".join(out) + missing("study.json missing: " + run.notes.get("study", ""))
    counts = _trial_counts(ctx)
    hardware = summary.get("hardware") or {}
    gpu_fraction = next(
        (r["gpu_fraction"] for r in run.rows if r.get("gpu_fraction") is not None),
        spec.gpus_per_trial,
    )
    workers = {(r.get("node_id"), r.get("pid")) for r in run.rows if r.get("pid")}
    nodes_used = {r.get("node_id") for r in run.rows if r.get("node_id")}
    budget = [
        ("trials", f"{spec.trials} requested, {len(run.rows)} recorded"),
        ("outcome", " ".join(f"{tag(k)} {v}" for k, v in counts.items() if v)),
        ("search engine", _engine(spec)),
        (
            "epochs per trial",
            f"{spec.epochs} (ASHA may stop a trial after {spec.grace_epochs})"
            if _engine(spec).startswith("Ray")
            else str(spec.epochs),
        ),
        ("optimised metric", f"{esc(spec.metric)} ({esc(spec.mode)})"),
        ("images", f"{spec.image_size} px, {spec.channels} channel(s)"),
        (
            "retrain",
            f"{spec.retrain_seeds} seed(s) each for the winner and the recipe; "
            f"{spec.n_boot} bootstrap resamples for intervals"
            if spec.retrain_seeds
            else "none (--retrain-seeds 0): no test-split comparison",
        ),
        ("wall time", duration(finite(summary.get("wall_s")))),
    ]
    hw = [
        (
            "Ray nodes",
            f"{esc(hardware.get('nodes', '?'))} alive at the end; {len(nodes_used)} ran trials",
        ),
        ("CPUs / GPUs", f"{fmt(hardware.get('cpus'), 0)} / {fmt(hardware.get('gpus'), 0)}"),
        ("per trial", f"{fmt(spec.cpus_per_trial, 2)} CPU, {fmt(gpu_fraction, 2)} GPU"),
        ("worker processes", str(len(workers))),
    ]
    if "summary" in run.notes:
        hw.append(("note", esc(run.notes["summary"]) + " (the study did not finish?)"))
    out.append(
        f'<div class="grid2"><div>{key_values(budget)}</div><div>{key_values(hw)}</div></div>'
    )
    return "".join(out)


def study(ctx: Context) -> str:
    body = _data_part(ctx) + _space_part(ctx) + _budget_part(ctx)
    return section(
        "study",
        "The study",
        body,
        "What was searched, on which data, with what budget and hardware.",
    )


# ----------------------------------------------------------------------------- leaderboard


def leaderboard(ctx: Context) -> str:
    run = ctx.run
    params = run.param_names
    headers = [
        "rank",
        "trial",
        *params,
        *(label for _, label in LEADERBOARD_METRICS),
        "epochs",
        "stop reason",
        "wall",
    ]
    first_metric = 2 + len(params)
    numeric = [0, *range(2, first_metric), *range(first_metric, first_metric + 6), len(headers) - 1]
    rows, classes = [], []
    for r in ctx.ranked:
        star = (
            ' <span class="tag star" title="retrained as the winner">★</span>'
            if r["trial_id"] == ctx.winner
            else ""
        )
        rows.append(
            [
                str(r["rank"]) if r["rank"] is not None else "–",
                f'<span class="nowrap"><code>{esc(r["trial_id"])}</code>{star}</span>',
                *(_param_value(r.get(f"param_{p}")) for p in params),
                *(fmt(r.get(col)) for col, _ in LEADERBOARD_METRICS),
                f"{r.get('epochs_run') or 0}/{r.get('max_epochs') or '?'}",
                tag(r.get("stop_reason") or "running"),
                duration(finite(r.get("wall_s"))),
            ]
        )
        classes.append("winner" if star else "failed" if r.get("stop_reason") == "failed" else "")
    intro = (
        f"Every trial, ranked by its final {esc(metric_label(ctx.sort))} (the value at its "
        "last epoch, which is what selection uses); trials without a value come last. "
        "★ marks the retrained winner: the best trial that ran the full epoch budget, so it "
        "can rank below an early-stopped trial."
    )
    return section(
        "leaderboard",
        f"Leaderboard ({len(ctx.ranked)} trials)",
        table(headers, rows, numeric=numeric, table_id="leaderboard", row_classes=classes),
        intro,
    )


# ----------------------------------------------------------------------------- search plots


def progress(ctx: Context) -> str:
    run = ctx.run
    steps = best_so_far(run.rows, run.metric, run.mode)
    left = (
        f"<figure>{best_so_far_chart(steps, run.metric, run.mode)}"
        f'<p class="caption">Each dot is a trial, placed by the order trials finished; the '
        f"staircase is the best {esc(run.metric)} reached so far. A staircase that stopped "
        "climbing early means more trials would likely not help.</p></figure>"
        if steps
        else missing("no trial has finished yet")
    )
    if ctx.importance:
        right = (
            f"<figure>{importance_chart(ctx.importance)}"
            f'<p class="caption">{esc(ctx.importance_note)}.</p></figure>'
        )
    else:
        right = missing(f"Parameter importance not computed: {ctx.importance_note}")
    return section(
        "progress",
        "Search progress",
        f'<div class="grid2"><div>{left}</div><div>{right}</div></div>',
    )


def parameters(ctx: Context) -> str:
    run = ctx.run
    space = run.space
    by_name = {p.name: p for p in space.params} if space is not None else {}
    charts = param_scatter_charts(
        run.rows, [(n, by_name.get(n)) for n in run.param_names], run.metric
    )
    if not charts:
        return section(
            "parameters",
            "Each hyperparameter against the metric",
            missing("the leaderboard has no parameter columns"),
        )
    grid = "".join(f"<figure>{c}</figure>" for c in charts)
    return section(
        "parameters",
        "Each hyperparameter against the metric",
        f'<div class="grid3">{grid}</div>',
        f"One dot per trial at its final {esc(run.metric)}: blue ran the full budget, orange "
        "was stopped early by ASHA (its value is from an earlier epoch), red crosses failed. "
        "Hover a dot for the trial.",
    )


def curves(ctx: Context) -> str:
    top = [r for r in ctx.ranked if r["rank"] is not None and r.get("curve_val_auc")][:TOP_CURVES]
    if not top:
        return section("curves", "Learning curves", missing("no trial reported an epoch"))
    max_epochs = max(int(r.get("max_epochs") or 1) for r in top)
    auc = learning_curves_chart(top, "val_auc", max_epochs)
    loss = learning_curves_chart(top, "val_loss", max_epochs, dashed_curve="train_loss")
    return section(
        "curves",
        f"Learning curves of the top {len(top)} trials",
        f'<div class="grid2"><figure>{auc}</figure><figure>{loss}</figure></div>',
        f"Validation curves per epoch of the best-ranked trials; the x axis runs to the "
        f"{max_epochs}-epoch budget, so a curve that ends early (×) was stopped by ASHA.",
    )


def workers(ctx: Context) -> str:
    spans, busy, makespan = worker_spans(ctx.run.rows)
    if not spans:
        return section("workers", "Trials over time", missing("no trial has start and end times"))
    mean_busy = sum(busy.values()) / len(busy)
    return section(
        "workers",
        "Trials over time per worker",
        f"<figure>{gantt_chart(spans, busy, makespan)}</figure>",
        f"{len(spans)} trials on {len(busy)} worker process(es) over {duration(makespan)}; "
        f"workers were busy {100 * mean_busy:.0f}% of that time on average. Gaps are time a "
        "worker waited: for the searcher, the scheduler or a process start.",
    )


# ----------------------------------------------------------------------------- test


def _stat(stats: dict[str, Any], name: str) -> str:
    s = stats.get(name) or {}
    if s.get("mean") is None:
        return "–"
    if (s.get("n") or 0) > 1:
        return f"{s['mean']:.3f} ± {s['std']:.3f} <span class=muted>(n={s['n']})</span>"
    return f"{s['mean']:.3f} <span class=muted>(n=1)</span>"


def _with_ci(test: dict[str, Any], name: str) -> str:
    interval = (test.get("ci95") or {}).get(name)
    value = fmt(test.get(name))
    if interval:
        return f"{value} <span class=muted>[{interval[0]:.3f}, {interval[1]:.3f}]</span>"
    return value


def _confusion(files: Any, title: str) -> str:
    test = (files.metrics.get("exported") or {}).get("test") or {}
    matrix, labels = test.get("confusion_matrix"), test.get("confusion_labels")
    if not matrix or not labels:
        return missing(f"{title}: no confusion matrix in metrics.json")
    head = "".join(f'<th class="num">pred. {esc(c)}</th>' for c in labels)
    body = []
    for true_label, row in zip(labels, matrix, strict=True):
        total = max(sum(row), 1)
        cells = []
        for n in row:
            share = n / total
            alpha = 0.08 + 0.8 * share
            # White only on dark cells: below ~0.7 opacity the blue is too light for it.
            color = "#fff" if alpha >= 0.7 else "#1f2933"
            cells.append(
                f'<td class="cell" style="background:rgba(0,114,178,{alpha:.2f});'
                f'color:{color}">{n}<br><small>{100 * share:.0f}%</small></td>'
            )
        body.append(f"<tr><th>true {esc(true_label)}</th>{''.join(cells)}</tr>")
    return (
        f'<div><h3>{esc(title)}</h3><table class="cm"><thead><tr><th></th>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
        '<p class="caption">Rows: true class; columns: predicted; % of the row.</p></div>'
    )


def test_split(ctx: Context) -> str:
    run = ctx.run
    best, base = run.roles.get("best"), run.roles.get("baseline")
    if best is None and base is None:
        why = run.notes.get("best", "no best/ folder")
        return section(
            "test",
            "Retrained winner vs the recipe on test",
            missing(
                f"Nothing was retrained: {why}. Run the study with --retrain-seeds 1 or "
                "more to compare the winner with the recipe on the test split."
            ),
        )
    parts: list[str] = []
    comparison = run.comparison
    if comparison:
        kind = _verdict_kind(comparison.get("beat_recipe"))
        parts.append(banner(comparison.get("verdict", ""), kind))
    roles = [(label, f) for label, f in (("tuned", best), ("recipe", base)) if f is not None]
    headers = ["metric"]
    for label, f in roles:
        seed = f.metrics.get("exported_seed")
        headers += [f"{label}: exported (seed {seed}) [95% CI]", f"{label}: mean ± sd over seeds"]
    rows = []
    for name in TEST_METRICS:
        cells = [esc(name)]
        for _, f in roles:
            exported_test = (f.metrics.get("exported") or {}).get("test") or {}
            cells += [
                _with_ci(exported_test, name),
                _stat(f.metrics.get("test_mean_std") or {}, name),
            ]
        rows.append(cells)
    parts.append(
        table(headers, rows, numeric=range(1, len(headers)), table_id="test-metrics", scroll=True)
    )
    if comparison and comparison.get("paired_difference") is not None:
        ci = comparison.get("paired_ci95")
        ci_text = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "undefined"
        parts.append(
            f'<p class="caption">Paired test-AUC difference of the exported models '
            f"(tuned − recipe, same images): {comparison['paired_difference']:+.3f}, "
            f"95% CI {ci_text}.</p>"
        )
    protocol = (best or base).metrics.get("protocol")  # type: ignore[union-attr]
    if protocol:
        parts.append(f'<p class="caption">Protocol: {esc(protocol)}.</p>')
    if best is not None and best.metrics.get("params"):
        chosen = ", ".join(f"{esc(k)}={_param_value(v)}" for k, v in best.metrics["params"].items())
        parts.append(
            f'<p class="caption">Winner: trial <code>{esc(best.metrics.get("trial_id"))}'
            f"</code> with {chosen}.</p>"
        )

    intervals = []
    for name in ("auc", "sensitivity", "specificity"):
        for label, f in roles:
            t = (f.metrics.get("exported") or {}).get("test") or {}
            intervals.append((name, label, finite(t.get(name)), (t.get("ci95") or {}).get(name)))
    figures = [f"<figure>{interval_chart(intervals)}</figure>"]
    order = run.class_order()
    roc_curves = []
    for label, f in roles:
        if f.probs is None or f.labels is None or order is None:
            continue
        names, positive = order
        points = roc_points(f.labels, f.probs, names.index(positive))
        if points is not None:
            auc = ((f.metrics.get("exported") or {}).get("test") or {}).get("auc")
            roc_curves.append((f"{label} (AUC {fmt(auc)})", points[0], points[1]))
    if roc_curves:
        positive = order[1] if order else "?"
        figures.append(
            f'<figure>{roc_chart(roc_curves)}<p class="caption">Positive class: '
            f"{esc(positive)}. Exported models only.</p></figure>"
        )
    else:
        figures.append(
            missing(
                "ROC not drawn: test probabilities, labels or the class order "
                "are missing, or the test split has one class only"
            )
        )
    parts.append(f'<div class="grid2">{"".join(figures)}</div>')
    matrices = "".join(_confusion(f, f"{label} model") for label, f in roles)
    parts.append(f'<div class="grid2">{matrices}</div>')
    return section(
        "test",
        "Retrained winner vs the recipe on test",
        "".join(parts),
        "Both configurations retrained from scratch with the same seeds and budget, "
        "scored once on the held-out test split.",
    )


# ----------------------------------------------------------------------------- Grad-CAM


def gradcam(ctx: Context) -> str:
    gallery = ctx.gallery
    if gallery is None:
        return section("gradcam", "Where the model looks (Grad-CAM)", missing(ctx.gallery_note))
    if not gallery.examples:
        return section(
            "gradcam",
            "Where the model looks (Grad-CAM)",
            missing(f"the test split has no images ({gallery.test_size})"),
        )
    figures = []
    for ex in gallery.examples:
        verdict = '<span class="ok">right</span>' if ex.correct else '<span class="no">wrong</span>'
        figures.append(
            f'<figure><img alt="Grad-CAM of {esc(ex.file)}" src="{png_data_uri(ex.png)}">'
            f"<figcaption>{verdict}: true <b>{esc(ex.true_class)}</b>, predicted "
            f"<b>{esc(ex.predicted_class)}</b> (p = {ex.probability:.2f})<br>"
            f"<code>{esc(ex.file)}</code>"
            + ("<br><i>blank map: no region supports this class</i>" if ex.blank else "")
            + "</figcaption></figure>"
        )
    h, w = gallery.map_size
    intro = (
        f"Test images of each class, right and wrong (most confident first), from the "
        f"exported winner. Left: the image as the model sees it; right: Grad-CAM of the "
        f"predicted class from layer <code>{esc(gallery.layer)}</code> ({h}×{w} map, "
        "upsampled). Heat on text labels, borders or outside the lungs means a shortcut. "
        "Paths are relative to the data folder (a carved test split keeps train/ paths)."
    )
    return section(
        "gradcam",
        "Where the model looks (Grad-CAM)",
        f'<div class="gallery">{"".join(figures)}</div>',
        intro,
    )


# ----------------------------------------------------------------------------- failures


def failures(ctx: Context) -> str:
    failed = [r for r in ctx.ranked if r.get("stop_reason") == "failed"]
    if not failed:
        return section("failed", "Failed trials", '<p class="muted">No trial failed.</p>')
    params = ctx.run.param_names
    rows = [
        [
            f"<code>{esc(r['trial_id'])}</code>",
            ", ".join(f"{esc(p)}={_param_value(r.get(f'param_{p}'))}" for p in params),
            f'<pre class="error">{esc(r.get("error") or "no error recorded")}</pre>',
        ]
        for r in failed
    ]
    return section(
        "failed",
        f"Failed trials ({len(failed)})",
        table(["trial", "parameters", "error"], rows, table_id="failed-trials"),
        "Trials that raised; the study went on without them.",
    )


SECTIONS: tuple[tuple[str, str, Callable[[Context], str]], ...] = (
    ("overview", "Overview", overview),
    ("study", "Study", study),
    ("leaderboard", "Leaderboard", leaderboard),
    ("progress", "Progress", progress),
    ("parameters", "Parameters", parameters),
    ("curves", "Learning curves", curves),
    ("workers", "Workers", workers),
    ("test", "Test: tuned vs recipe", test_split),
    ("gradcam", "Grad-CAM", gradcam),
    ("failed", "Failed trials", failures),
)
