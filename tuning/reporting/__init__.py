"""The study's report pages: ``report.html`` for one run folder, ``compare.html`` for several.

    from tuning.reporting import write_report, write_comparison_report

    write_report(Path("runs/NAME"))                                  # runs/NAME/report.html
    write_comparison_report([Path("runs/ray"), Path("runs/kt")], Path("runs"))

Reading (`load_run` into a typed `RunInputs`), deriving (`analysis`), drawing (`svg`,
`charts`) and writing HTML (`html`, Jinja2 templates with autoescaping, one module per
group of `sections`) are separate modules; `page` and `comparison` put them together.
Nothing here imports Ray: a report can be written on any machine that has the run folder.
"""

from __future__ import annotations

from tuning.reporting.analysis import Ranked, rank_rows
from tuning.reporting.comparison import COMPARE_FILE, write_comparison_report
from tuning.reporting.inputs import ReportError, RoleFiles, RunInputs, RunSummary, load_run
from tuning.reporting.page import (
    REPORT_FILE,
    SORTABLE,
    Written,
    build_context,
    export_csv,
    rank,
    render,
    sort_column,
    write_page,
    write_report,
)
from tuning.reporting.sections import SECTIONS, Context

__all__ = [
    "COMPARE_FILE",
    "REPORT_FILE",
    "SECTIONS",
    "SORTABLE",
    "Context",
    "Ranked",
    "ReportError",
    "RoleFiles",
    "RunInputs",
    "RunSummary",
    "Written",
    "build_context",
    "export_csv",
    "load_run",
    "rank",
    "rank_rows",
    "render",
    "sort_column",
    "write_comparison_report",
    "write_page",
    "write_report",
]
