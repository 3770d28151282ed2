"""How the retrained trial was chosen, and how much its search score overstates it.

The rule (``--pick``, the objectives and constraints, or the single metric's default),
the Pareto chart when the study had several objectives, feasibility, and selection
honesty: the winner's validation score in the search against the retrained model's
validation and test scores, with ``--cv`` the spread over folds, and the retrain
protocol in words.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from markupsafe import Markup

from tuning.leaderboard import selection_records
from tuning.reporting.charts import metric_label
from tuning.reporting.html import (
    Html,
    banner,
    bullets,
    caption,
    code,
    fmt,
    heading,
    join,
    missing,
    section,
    svg,
    table,
)
from tuning.reporting.pareto import pareto_charts
from tuning.reporting.sections.context import Context
from tuning.selection import parse_objectives

SELECTION_FILE = "selection.json"
FOLDS_FILE = "folds.json"
# What the retrain does, with --cv (tuning.retrain.PROTOCOL holds the rest).
CV_RETRAIN = (
    "The folds only score trials. The picked configuration is retrained as every model "
    "of the study is: on the original train split for the full epoch budget, with the "
    "original validation split measured (its operating point and the exported seed are "
    "chosen on it) and the test split evaluated once per seed; it is not retrained on "
    "train + validation pooled."
)
# Search-time name -> retrain metrics name (tuning.results.HEADLINE)
_RETRAIN_NAME = {
    "val_auc": "auc",
    "val_sensitivity": "sensitivity",
    "val_specificity": "specificity",
    "val_accuracy": "accuracy",
    "val_loss": "loss",
}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def selection(ctx: Context) -> Markup:
    run = ctx.run
    spec = run.spec
    chosen = _read(run.run_dir / SELECTION_FILE)
    out: list[Html] = [heading("The rule")]
    if chosen is None:
        out.append(
            Markup("<p>{}</p>").format(
                f"The retrained trial is the best final {metric_label(run.metric)} among the "
                "trials that ran the full epoch budget (if none did, among all finished "
                "trials)."
            )
        )
    else:
        objectives = ", ".join(chosen.get("objectives") or [])
        constraints = chosen.get("constraints") or []
        items: list[Html] = [
            Markup("objectives: {}").format(code(objectives)),
            Markup("constraints: {}").format(
                join((code(c) for c in constraints), ", ") if constraints else "none"
            ),
            Markup("pick: {} — {}").format(code(chosen.get("pick")), chosen.get("pick_rule", "")),
        ]
        out.append(bullets(items))
        n_cand, n_ok = len(chosen.get("candidates") or []), len(chosen.get("feasible") or [])
        out.append(
            caption(
                f"{len(chosen.get('front') or [])} trials on the Pareto front; {n_ok} of "
                f"{n_cand} finished trials feasible. The pick is made among feasible trials "
                "that ran the full budget (if any feasible one did)."
            )
        )
        for note in chosen.get("notes") or []:
            out.append(banner(note, "bad"))
        out.extend(_pareto(ctx, chosen))
    out.extend(_honesty(ctx, chosen.get("winner") if chosen else None))
    if spec is not None and spec.cv:
        out.append(heading("Cross-validation"))
        folds = _read(run.run_dir / FOLDS_FILE)
        sizes = (
            "; ".join(
                ", ".join(f"{c} {n}" for c, n in (f.get("counts") or {}).items())
                for f in folds.get("folds", [])
            )
            if folds
            else "folds.json not found"
        )
        out.append(
            Markup("<p>{}</p>").format(
                f"Each trial trained {spec.cv} folds of train + validation pooled, one after "
                "another in its worker (stratified by class, seeded by --seed; near-duplicate "
                "radiographs and --groups kept in one fold; test untouched); each epoch "
                "reported the mean over folds, which ASHA and Optuna saw. Validation per "
                f"fold: {sizes}. {CV_RETRAIN}"
            )
        )
    intro = (
        "Which trial was retrained and why, and the optimism of choosing it: the best of "
        "many noisy validation scores overstates what the chosen model does on new images."
    )
    return section("selection", "Selection", join(out), intro)


def _pareto(ctx: Context, chosen: dict[str, Any]) -> list[Html]:
    try:
        objectives = parse_objectives(",".join(chosen.get("objectives") or []))
    except Exception:
        return [missing("the objectives in selection.json cannot be read")]
    if len(objectives) < 2:
        return []
    rows = [r for r in ctx.run.rows if r.status == "TERMINATED"]
    charts = pareto_charts(
        selection_records(rows),
        objectives,
        set(chosen.get("front") or []),
        set(chosen.get("feasible") or []),
        chosen.get("winner"),
    )
    return [
        heading("Pareto front"),
        Markup('<div class="grid2">{}</div>').format(
            join(Markup("<div>{}</div>").format(svg(c)) for c in charts)
        ),
        caption(
            "Every finished trial; hover a point for its configuration. Coloured: the Pareto "
            "front (no other trial is at least as good on every objective and better on "
            "one); grey: dominated; crosses: infeasible; the square: the retrained pick."
        ),
    ]


def _honesty(ctx: Context, picked: str | None) -> list[Html]:
    run = ctx.run
    out: list[Html] = [heading("Selection honesty")]
    best = run.roles.get("best")
    winner_id = best.summary.trial_id if best is not None else ctx.winner or picked
    if winner_id is None and ctx.top is not None:
        winner_id = ctx.top.row.trial_id  # --retrain-seeds 0: the search's best
    row = next((r for r in run.rows if r.trial_id == winner_id), None)
    if row is None:
        out.append(missing("no trial was picked, so there is no score to compare"))
        return out
    metric = run.metric
    name = _RETRAIN_NAME.get(metric, metric.removeprefix("val_"))
    search_value = row.column(metric) if metric in _RETRAIN_NAME else None
    rows: list[list[Html]] = []
    folds = row.folds.get(metric) or []
    spread = ""
    good = [v for v in folds if v is not None]
    if len(good) >= 2:
        spread = (
            f"± {statistics.pstdev(good):.3f} over {len(good)} folds (folds: "
            + ", ".join(fmt(v) for v in folds)
            + ")"
        )
    rows.append(
        [f"search: trial {row.trial_id}, validation", fmt(search_value), spread or "one split"]
    )
    gap = None
    if best is not None:
        val = best.summary.validation_mean_std.get(name)
        test = best.summary.test_mean_std.get(name)
        seeds = len(best.summary.seeds)
        if val is not None and val.mean is not None:
            rows.append(
                [
                    f"retrained, validation (mean of {seeds} seeds)",
                    fmt(val.mean),
                    f"± {fmt(val.std)}" if val.std is not None else "",
                ]
            )
        if test is not None and test.mean is not None:
            rows.append(
                [
                    f"retrained, test (mean of {seeds} seeds)",
                    fmt(test.mean),
                    f"± {fmt(test.std)}" if test.std is not None else "",
                ]
            )
            if search_value is not None:
                gap = search_value - test.mean
    else:
        rows.append(["retrained, test", "–", "nothing was retrained (--retrain-seeds 0)"])
    out.append(
        table(
            ["score", metric_label(metric), "spread"],
            rows,
            numeric=[1],
            table_id="selection-honesty",
            scroll=False,
            compact=True,
        )
    )
    if gap is not None:
        sign = "positive" if run.mode == "max" else "negative"
        out.append(
            caption(
                f"Optimism of the selection: search validation {name} minus retrained test "
                f"{name} = {gap:+.3f} ({sign}: the search score overstates the test score)."
            )
        )
    return out


__all__ = ["selection"]
