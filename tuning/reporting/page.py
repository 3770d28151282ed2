"""The study page: one self-contained ``report.html`` per run folder, and its CSV sibling.

    from tuning.reporting import write_report
    write_report(Path("runs/NAME"))            # (re)writes runs/NAME/report.html

`build_context` reads the slow facts once (the data set for the leakage check, the model
for Grad-CAM, Optuna's importances), `render` turns them into the page section by section,
and `write_report` does both and writes the file atomically.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from covidxr_core.atomic import write_text
from covidxr_core.errors import ConfigError, CovidxrError
from tuning.objective import direction
from tuning.reporting.analysis import (
    Leakage,
    Ranked,
    check_leakage,
    param_importances,
    rank_rows,
)
from tuning.reporting.html import Html, code, missing, page, section
from tuning.reporting.inputs import RunInputs, load_run
from tuning.reporting.sections import SECTIONS, Context

REPORT_FILE = "report.html"
SORTABLE = (
    "score", "val_auc", "val_accuracy", "val_sensitivity", "val_specificity", "val_loss",
    "best_metric", "epochs_run", "wall_s", "train_s",
)  # fmt: skip


def sort_column(run: RunInputs, sort: str | None) -> tuple[str, str]:
    """The ranking column and its direction; the study's own metric by default.

    Raises:
        ConfigError: ``sort`` is not one of `SORTABLE`.
    """
    # A trial's score (the mean of its last epochs) is what the study ranks by; a run
    # written before scores existed ranks by its metric's last value.
    scored = any(r.score is not None for r in run.rows)
    column = sort or ("score" if scored else run.metric)
    if column not in SORTABLE:
        raise ConfigError(f"--sort must be one of {list(SORTABLE)}, but got {column!r}")
    if column in (run.metric, "best_metric", "score"):
        return column, run.mode
    return column, direction(column)


def rank(run: RunInputs, sort: str | None = None) -> tuple[str, list[Ranked]]:
    """The run's leaderboard ranked by ``sort`` (default: the study's metric)."""
    column, mode = sort_column(run, sort)
    return column, rank_rows(run.rows, column, mode)


def _load_data(run: RunInputs) -> tuple[Any, Any, str]:
    """The study's data set, re-loaded exactly as the study loaded it (a cache hit).

    Returns:
        ``(dataset, data_config, note)``; dataset is None, with the reason, if it fails.
    """
    if run.spec is None:
        return None, None, "study.json is missing, so the data set is unknown"
    from covidxr_core.data import DataConfig, load_dataset

    spec = run.spec
    config = DataConfig(
        image_size=spec.image_size, channels=spec.channels, cache_dir=spec.cache_dir, seed=spec.seed
    )
    try:
        return load_dataset(spec.data, config), config, ""
    except CovidxrError as exc:
        return None, config, f"the study's data could not be loaded again: {exc}"


def build_context(run: RunInputs, sort: str | None = None, images: bool = True) -> Context:
    """Everything the sections need, with the slow parts (data, model) done once here.

    Args:
        run: The run folder's contents.
        sort: Leaderboard column to rank by; None is the study's metric.
        images: Load the data and the model for the leakage check and Grad-CAM.

    Raises:
        ConfigError: ``sort`` is not a rankable leaderboard column.
    """
    column, ranked = rank(run, sort)
    if run.spec is not None and run.spec.engine != "ray":
        importance, importance_note = None, "the KerasTuner engine keeps no Optuna study"
    else:
        importance, importance_note = param_importances(run.run_dir, run.name)
    dataset = config = None
    data_note = "skipped (images off)"
    if images:
        dataset, config, data_note = _load_data(run)
    leakage = (
        check_leakage(dataset, config)
        if dataset is not None
        else Leakage(False, f"not checked: {data_note}")
    )
    best = run.roles.get("best")
    gallery, gallery_note = None, ""
    if best is None or best.model_path is None:
        gallery_note = (
            "no exported model (best/model.keras): the study retrained nothing "
            "(--retrain-seeds 0) or did not get that far"
        )
    elif dataset is None:
        gallery_note = f"no test images: {data_note}"
    else:
        from tuning.reporting.gradcam import build_gallery

        try:
            gallery = build_gallery(best.model_path, dataset)
        except Exception as exc:  # the page must still be written
            gallery_note = f"Grad-CAM failed: {type(exc).__name__}: {exc}"
    return Context(
        run=run,
        ranked=ranked,
        sort=column,
        leakage=leakage,
        importance=importance,
        importance_note=importance_note,
        gallery=gallery,
        gallery_note=gallery_note,
        dataset_counts=dataset.counts() if dataset is not None else None,
        winner=best.summary.trial_id if best is not None else None,
    )


def render(ctx: Context) -> str:
    """The report page. A section that fails shows its error; the others still render."""
    body: list[Html] = []
    for section_id, title, build in SECTIONS:
        try:
            body.append(build(ctx))
        except Exception as exc:
            ctx.notes.append(f"section {title!r}: {type(exc).__name__}: {exc}")
            body.append(
                section(
                    section_id,
                    title,
                    missing(f"this section could not be drawn: {type(exc).__name__}: {exc}"),
                )
            )
    run, spec = ctx.run, ctx.run.spec
    started = [r.started_at for r in run.rows if r.started_at]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(min(started))) if started else "?"
    if spec is None:
        data = "unknown data"
    else:
        data = spec.data if spec.data is not None else "synthetic demo data"
    subtitle = Markup("{} trials · {} · started {} · run folder {}").format(
        len(run.rows), data, when, code(run.run_dir)
    )
    footer = (
        f"Written {time.strftime('%Y-%m-%d %H:%M')} by tuning/report.py from "
        f"{run.run_dir}. Optuna study: optuna.db (study name {run.name})."
    )
    toc = [(section_id, title) for section_id, title, _ in SECTIONS]
    return page(f"covidxr study {run.name}", subtitle, toc, body, footer)


@dataclass(frozen=True)
class Written:
    """A written page and what could not be drawn on it."""

    path: Path
    notes: list[str] = field(default_factory=list)


def write_page(run: RunInputs, sort: str | None = None) -> Written:
    """Render ``run`` and write ``run_dir/report.html`` atomically (a reader never sees
    half a page)."""
    ctx = build_context(run, sort)
    out = write_text(run.run_dir / REPORT_FILE, render(ctx))
    return Written(out, list(ctx.notes))


def write_report(run_dir: Path, *, sort: str | None = None) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    Raises:
        ReportError: The folder is missing or holds no leaderboard.
        ConfigError: ``sort`` is not a rankable leaderboard column.
    """
    return write_page(load_run(Path(run_dir)), sort).path


def _csv_value(ranked: Ranked, column: str) -> Any:
    try:
        value = ranked.row.column(column)
    except KeyError:  # a column this version does not know: leave its cell empty
        return None
    return json.dumps(value) if isinstance(value, list) else value


def export_csv(ranked: Sequence[Ranked], columns: Sequence[str], out: Path) -> Path:
    """The ranked leaderboard as CSV: a ``rank`` column, then the Parquet columns.

    Per-epoch curves are JSON lists in their cells; missing values are empty.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["rank", *columns])
    for r in ranked:
        cells = [r.rank, *(_csv_value(r, c) for c in columns)]
        writer.writerow("" if v is None else v for v in cells)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, buffer.getvalue())


__all__ = [
    "REPORT_FILE",
    "SORTABLE",
    "Written",
    "build_context",
    "export_csv",
    "rank",
    "render",
    "sort_column",
    "write_page",
    "write_report",
]
