"""The study report: one self-contained HTML page per run, a terminal leaderboard, a CSV.

    python tuning/report.py runs/NAME                      # (re)write runs/NAME/report.html
    python tuning/report.py runs/NAME --top 5 --sort val_loss --csv board.csv --no-html

`tuning.study.run_study` calls `write_report` when a study ends; the command above redoes
it later (after copying a run folder off a cluster, say). The page has no JavaScript and
loads nothing from the network: charts are inline SVG, images are ``data:`` URIs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (`python tuning/report.py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covidxr_core.errors import ConfigError, CovidxrError
from tuning._report_analysis import (
    Leakage,
    check_leakage,
    direction,
    param_importances,
    rank_rows,
)
from tuning._report_html import esc, missing, page, section
from tuning._report_inputs import ReportError, RunInputs, load_run
from tuning._report_sections import SECTIONS, Context

REPORT_FILE = "report.html"
SORTABLE = (
    "val_auc", "val_accuracy", "val_sensitivity", "val_specificity", "val_loss",
    "best_metric", "epochs_run", "wall_s", "train_s",
)  # fmt: skip


def _sort_column(run: RunInputs, sort: str | None) -> tuple[str, str]:
    """The ranking column and its direction; the study's own metric by default."""
    column = sort or run.metric
    if column not in SORTABLE:
        raise ConfigError(f"--sort must be one of {list(SORTABLE)}, but got {column!r}")
    if column in (run.metric, "best_metric"):
        return column, run.mode
    return column, direction(column)


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
    """
    column, mode = _sort_column(run, sort)
    if run.spec is not None and getattr(run.spec, "engine", "ray") != "ray":
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
        from tuning._report_gradcam import build_gallery

        try:
            gallery = build_gallery(best.model_path, dataset)
        except Exception as exc:  # the page must still be written
            gallery_note = f"Grad-CAM failed: {type(exc).__name__}: {exc}"
    return Context(
        run=run,
        ranked=rank_rows(run.rows, column, mode),
        sort=column,
        leakage=leakage,
        importance=importance,
        importance_note=importance_note,
        gallery=gallery,
        gallery_note=gallery_note,
        dataset_counts=dataset.counts() if dataset is not None else None,
        winner=str(best.metrics.get("trial_id")) if best is not None else None,
    )


def render(ctx: Context) -> str:
    """The report page. A section that fails shows its error; the others still render."""
    body = []
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
    run = ctx.run
    started = [r["started_at"] for r in run.rows if r.get("started_at")]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(min(started))) if started else "?"
    spec = run.spec
    data = (
        "synthetic demo data"
        if spec is not None and spec.data is None
        else (spec.data if spec is not None else "unknown data")
    )
    subtitle = (
        f"{esc(len(run.rows))} trials · {esc(data)} · started {esc(when)} · "
        f"run folder <code>{esc(run.run_dir)}</code>"
    )
    footer = (
        f"Written {time.strftime('%Y-%m-%d %H:%M')} by tuning/report.py from "
        f"{esc(run.run_dir)}. Optuna study: optuna.db (study name {esc(run.name)})."
    )
    toc = [(section_id, title) for section_id, title, _ in SECTIONS]
    return page(f"covidxr study {run.name}", subtitle, toc, body, footer)


def write_report(run_dir: Path, *, sort: str | None = None) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    Raises:
        ReportError: The folder is missing or holds no leaderboard.
        ConfigError: ``sort`` is not a rankable leaderboard column.
    """
    return _write(load_run(Path(run_dir)), sort)[0]


def _write(run: RunInputs, sort: str | None) -> tuple[Path, list[str]]:
    """Render and write the page; returns its path and what could not be drawn."""
    ctx = build_context(run, sort)
    html = render(ctx)
    out = run.run_dir / REPORT_FILE
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees half a page
    return out, ctx.notes


def export_csv(ranked: Sequence[dict[str, Any]], columns: Sequence[str], out: Path) -> None:
    """The ranked leaderboard as CSV: a ``rank`` column, then the Parquet columns.

    Per-epoch curves are JSON lists in their cells; missing values are empty.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", *columns])
        for row in ranked:
            cells = [row.get("rank")] + [row.get(c) for c in columns]
            writer.writerow(
                "" if v is None else json.dumps(v) if isinstance(v, list) else v for v in cells
            )


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        small_or_large = value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e3)
        return f"{value:.3g}" if small_or_large else f"{value:.3f}"
    return str(value)


def print_top(
    console: Console, run: RunInputs, ranked: Sequence[dict[str, Any]], column: str, top: int
) -> None:
    """The first ``top`` rows of the ranked leaderboard as a rich table."""
    params = run.param_names
    table = Table(
        title=f"{escape(run.name)}: top {min(top, len(ranked))} of {len(ranked)} "
        f"trials by {escape(column)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("#", justify="right")
    table.add_column("trial")
    for p in params:
        table.add_column(escape(p), justify="right")
    for name in ("val_auc", "val_accuracy", "val_sensitivity", "val_specificity"):
        table.add_column(
            name.removeprefix("val_"), justify="right", style="bold" if name == column else None
        )
    if column not in ("val_auc", "val_accuracy", "val_sensitivity", "val_specificity"):
        table.add_column(escape(column), justify="right", style="bold")
    table.add_column("epochs", justify="right")
    table.add_column("stop")
    styles = {"completed": "green", "early-stopped": "yellow", "failed": "red"}
    for r in ranked[:top]:
        extra = [] if column.startswith("val_") and column != "val_loss" else [_cell(r.get(column))]
        reason = r.get("stop_reason") or "running"
        table.add_row(
            str(r["rank"] or "–"),
            escape(str(r["trial_id"])),
            *(_cell(r.get(f"param_{p}")) for p in params),
            *(
                _cell(r.get(m))
                for m in ("val_auc", "val_accuracy", "val_sensitivity", "val_specificity")
            ),
            *extra,
            f"{r.get('epochs_run') or 0}/{r.get('max_epochs') or '?'}",
            f"[{styles.get(reason, 'dim')}]{escape(reason)}[/]",
        )
    console.print(table)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tuning/report.py",
        description="Write a study's HTML report and print the top of its leaderboard.",
    )
    p.add_argument(
        "run_dirs",
        metavar="RUN",
        nargs="+",
        help="a run folder, e.g. runs/NAME; two or more build one comparison page",
    )
    p.add_argument(
        "--out",
        metavar="HTML",
        default=None,
        help="comparison page to write (default: compare.html beside the first run)",
    )
    p.add_argument("--top", type=int, default=10, help="leaderboard rows to print (default 10)")
    p.add_argument(
        "--sort",
        metavar="METRIC",
        default=None,
        help=f"rank by this column: {', '.join(SORTABLE)} (default: the study's metric)",
    )
    p.add_argument("--csv", metavar="OUT", help="also write the ranked leaderboard as CSV")
    p.add_argument("--no-html", action="store_true", help="do not (re)write report.html")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 2 for a missing run or a bad option."""
    args = _parser().parse_args(argv)
    # Piped into a file or a log, rich would squeeze the table into 80 columns and cut
    # values to "0.0…"; a terminal keeps its own width.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    try:
        if args.top < 1:
            raise ConfigError(f"--top must be >= 1, but got {args.top}")
        if len(args.run_dirs) > 1:
            from tuning._report_compare import write_comparison_report

            dirs = [Path(d) for d in args.run_dirs]
            out = Path(args.out) if args.out else dirs[0].parent / "compare.html"
            written = write_comparison_report(dirs, out)
            console.print(f"[green]wrote[/] {escape(str(written))}")
            return 0
        run = load_run(Path(args.run_dirs[0]))
        column, mode = _sort_column(run, args.sort)
        ranked = rank_rows(run.rows, column, mode)
        print_top(console, run, ranked, column, args.top)
        if args.csv:
            export_csv(ranked, run.columns, Path(args.csv))
            console.print(f"[green]wrote[/] {escape(args.csv)} ({len(ranked)} rows)")
        if not args.no_html:
            out, notes = _write(run, args.sort)
            for note in notes:
                console.print(f"[yellow]warning:[/] {escape(note)}")
            console.print(f"[green]wrote[/] {escape(str(out))}")
    except CovidxrError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    return 0


__all__ = [
    "REPORT_FILE",
    "ReportError",
    "build_context",
    "export_csv",
    "main",
    "render",
    "write_report",
]


if __name__ == "__main__":
    sys.exit(main())
