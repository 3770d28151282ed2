"""The study report: one self-contained HTML page per run, a terminal leaderboard, a CSV.

    python tuning/report.py runs/NAME                      # (re)write runs/NAME/report.html
    python tuning/report.py runs/NAME --top 5 --sort val_loss --csv board.csv --no-html

    python tuning/report.py runs/ray runs/kt --out runs/compare.html   # several runs side by side

`tuning.study.run_study` calls `tuning.reporting.write_report` when a study ends; the
command above redoes it later (after copying a run folder off a cluster, say). This file
is only the command line: parsing flags and printing; the pages are `tuning.reporting`'s.
"""

from __future__ import annotations

import argparse
import sys
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
from tuning.leaderboard import param_column
from tuning.reporting import (
    COMPARE_FILE,
    REPORT_FILE,
    SORTABLE,
    Ranked,
    ReportError,
    RunInputs,
    build_context,
    export_csv,
    load_run,
    rank,
    render,
    write_comparison_report,
    write_page,
    write_report,
)

_SHOWN = ("val_auc", "val_accuracy", "val_sensitivity", "val_specificity")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        small_or_large = value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e3)
        return f"{value:.3g}" if small_or_large else f"{value:.3f}"
    return str(value)


def print_top(
    console: Console, run: RunInputs, ranked: Sequence[Ranked], column: str, top: int
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
    for name in _SHOWN:
        table.add_column(
            name.removeprefix("val_"), justify="right", style="bold" if name == column else None
        )
    if column not in _SHOWN:
        table.add_column(escape(column), justify="right", style="bold")
    table.add_column("epochs", justify="right")
    table.add_column("stop")
    styles = {"completed": "green", "early-stopped": "yellow", "failed": "red"}
    for ranked_row in ranked[:top]:
        r = ranked_row.row
        extra = [] if column in _SHOWN else [_cell(r.column(column))]
        table.add_row(
            str(ranked_row.rank or "–"),
            escape(r.trial_id),
            *(escape(_cell(r.column(param_column(p)))) for p in params),
            *(_cell(r.column(m)) for m in _SHOWN),
            *extra,
            f"{r.epochs_run or 0}/{r.max_epochs or '?'}",
            f"[{styles.get(r.reason, 'dim')}]{escape(r.reason)}[/]",
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
            dirs = [Path(d) for d in args.run_dirs]
            out = Path(args.out) if args.out else dirs[0].parent / COMPARE_FILE
            written = write_comparison_report(dirs, out)
            console.print(f"[green]wrote[/] {escape(str(written))}")
            return 0
        run = load_run(Path(args.run_dirs[0]))
        column, ranked = rank(run, args.sort)
        print_top(console, run, ranked, column, args.top)
        if args.csv:
            export_csv(ranked, run.columns, Path(args.csv))
            console.print(f"[green]wrote[/] {escape(args.csv)} ({len(ranked)} rows)")
        if not args.no_html:
            page = write_page(run, args.sort)
            for note in page.notes:
                console.print(f"[yellow]warning:[/] {escape(note)}")
            console.print(f"[green]wrote[/] {escape(str(page.path))}")
    except CovidxrError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    return 0


# Re-exported so that `from tuning.report import write_report` keeps working.
__all__ = [
    "REPORT_FILE",
    "ReportError",
    "build_context",
    "export_csv",
    "main",
    "print_top",
    "render",
    "write_report",
]


if __name__ == "__main__":
    sys.exit(main())
