"""Several studies in one page: how fast each search found its best, and how its winner tests.

    write_comparison_report([Path("runs/ray"), Path("runs/kt")], Path("runs/compare.html"))

Made for comparing search engines (Ray Tune + Optuna + ASHA against KerasTuner) on the
same data and space, but any run folders can be put side by side. Two views:

1. **Anytime curves**: the best validation metric any finished trial had reached, against
   wall-clock time since the search started, one line per run. Time zero is the moment
   the engine started its first trial, and a trial's best counts from when the trial
   finished, so a result is never placed earlier than it was known. Each run's search
   wall time (from `summary.json`) is listed beside it.
2. **The retrained winners on test**: mean ± std over the retrain seeds, the exported
   model's 95% bootstrap intervals (`best/metrics.json`), the recipe baseline and the
   study's verdict (`comparison.json`). A run without them (``--retrain-seeds 0``) says so.

The page is one file with inline SVG and CSS, no scripts and nothing loaded from elsewhere,
like the single-run report whose builders it uses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuning._report_html import (
    banner,
    duration,
    esc,
    fmt,
    key_values,
    missing,
    page,
    section,
    table,
)
from tuning._report_inputs import ReportError, RunInputs, load_run
from tuning._report_plots import interval_chart, metric_label
from tuning._report_svg import PALETTE, Chart, LinearScale

COMPARE_FILE = "compare.html"
ENGINE_NAMES = {"ray": "Ray Tune + Optuna TPE + ASHA", "keras-tuner": "KerasTuner"}
# The facts that must agree for two runs' numbers to be comparable.
_SAME = ("data", "space", "epochs", "image_size", "channels", "metric")


@dataclass
class _Run:
    """One run folder as this page needs it."""

    inputs: RunInputs
    label: str
    color: str

    @property
    def engine(self) -> str:
        spec = self.inputs.spec
        if spec is None:
            return "unknown engine"
        name = ENGINE_NAMES.get(spec.engine, spec.engine)
        return f"{name} {spec.tuner}" if spec.engine == "keras-tuner" else name

    @property
    def search_wall_s(self) -> float | None:
        value = (self.inputs.summary or {}).get("search_wall_s")
        return float(value) if isinstance(value, int | float) else None

    def start_time(self) -> float | None:
        """Epoch seconds at which the first trial started.

        Not the search's end minus its wall time: trials still running when a time budget
        stops the search have no end time, which would move that estimate too early.
        """
        starts = [r["started_at"] for r in self.inputs.rows if r.get("started_at") is not None]
        return min(starts) if starts else None

    def anytime(self) -> list[tuple[float, float, dict[str, Any]]]:
        """``(seconds since start, best so far, trial row)`` at each finished trial."""
        start = self.start_time()
        if start is None:
            return []
        sign = 1 if self.inputs.mode == "max" else -1
        done = sorted(
            (
                r
                for r in self.inputs.rows
                if r.get("finished_at") is not None and _finite(r.get("best_metric"))
            ),
            key=lambda r: r["finished_at"],
        )
        out: list[tuple[float, float, dict[str, Any]]] = []
        best: float | None = None
        for row in done:
            value = float(row["best_metric"])
            if best is None or sign * value > sign * best:
                best = value
            out.append((row["finished_at"] - start, best, row))
        return out

    def role(self, name: str) -> dict[str, Any] | None:
        files = self.inputs.roles.get(name)
        return files.metrics if files is not None else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _labels(runs: Sequence[RunInputs]) -> list[str]:
    """Run folder names, with the parent folder added where two names collide."""
    names = [r.run_dir.name for r in runs]
    return [
        f"{r.run_dir.parent.name}/{r.run_dir.name}"
        if names.count(r.run_dir.name) > 1
        else r.run_dir.name
        for r in runs
    ]


def anytime_chart(runs: Sequence[_Run], metric: str) -> str:
    """Best validation metric so far against seconds since the search started."""
    chart = Chart(
        width=760,
        height=340,
        title="anytime performance",
        x_label="wall-clock seconds since the search started",
        y_label=f"best {metric_label(metric)} so far",
    )
    curves = {run.label: run.anytime() for run in runs}
    values = [float(r["best_metric"]) for points in curves.values() for _, _, r in points]
    ends = [
        max(run.search_wall_s or 0.0, max((t for t, _, _ in curves[run.label]), default=0.0))
        for run in runs
    ]
    chart.x = LinearScale(0.0, max(ends, default=1.0) or 1.0, *chart.inner_x())
    y = LinearScale(min(values, default=0.0), max(values, default=1.0), *chart.inner_y())
    if "loss" not in metric and y.hi > y.lo:  # rates and AUCs live in [0, 1]
        lo, hi = max(y.lo, 0.0), min(y.hi, 1.0)
        y = LinearScale(lo, hi, *chart.inner_y()) if hi > lo else y
    chart.y = y
    for run, end in zip(runs, ends, strict=True):
        points = curves[run.label]
        if not points:
            continue
        xs = [t for t, _, _ in points]
        ys = [b for _, b, _ in points]
        if end > xs[-1]:  # the best holds until the search ends
            xs, ys = [*xs, end], [*ys, ys[-1]]
        chart.line(xs, ys, run.color, width=2.5, step=True, tip=f"{run.label}: best so far")
        for t, _, row in points:
            chart.point(
                t,
                float(row["best_metric"]),
                run.color,
                size=3.0,
                opacity=0.45,
                tip=f"{run.label} trial {row['trial_id']}: {metric} {row['best_metric']:.4f} "
                f"({row.get('stop_reason')}) at {t:.1f} s",
            )
        chart.add_legend(f"{run.label} ({run.engine})", run.color)
    return chart.svg()


def _mean_std(summary: dict[str, Any] | None, name: str) -> str:
    stat = ((summary or {}).get("test_mean_std") or {}).get(name) or {}
    if stat.get("mean") is None:
        return "–"
    n = stat.get("n") or 0
    spread = f" ± {stat['std']:.3f}" if n > 1 and stat.get("std") is not None else ""
    return f"{stat['mean']:.3f}{spread} <span class=muted>(n={n})</span>"


def _with_ci(summary: dict[str, Any] | None, name: str) -> str:
    test = (((summary or {}).get("exported") or {}).get("test")) or {}
    value, ci = test.get(name), (test.get("ci95") or {}).get(name)
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _search_table(runs: Sequence[_Run]) -> str:
    rows = []
    for run in runs:
        trials = run.inputs.rows
        stops = {
            k: sum(1 for r in trials if r.get("stop_reason") == k)
            for k in ("completed", "early-stopped", "failed")
        }
        points = run.anytime()
        best = points[-1][1] if points else None
        when = next((t for t, b, _ in points if b == best), None)
        rows.append(
            [
                f'<span style="color:{run.color}">■</span> {esc(run.label)}',
                esc(run.engine),
                fmt(len(trials)),
                " · ".join(f"{v} {k}" for k, v in stops.items() if v) or "–",
                duration(run.search_wall_s),
                fmt(best, 4),
                duration(when),
            ]
        )
    return table(
        [
            "run",
            "engine",
            "trials",
            "outcomes",
            "search wall time",
            "best validation",
            "reached at",
        ],
        rows,
        numeric=(2, 4, 5, 6),
    )


def _test_table(runs: Sequence[_Run]) -> str:
    rows = []
    for run in runs:
        best = run.role("best")
        if best is None:
            note = missing(run.inputs.notes.get("best", "no best/ folder"))
            rows.append([esc(run.label), note, "", "", "", ""])
            continue
        rows.append(
            [
                esc(run.label),
                _mean_std(best, "auc"),
                _with_ci(best, "auc"),
                _with_ci(best, "sensitivity"),
                _with_ci(best, "specificity"),
                _mean_std(run.role("baseline"), "auc"),
            ]
        )
    said = [(run.label, (run.inputs.comparison or {}).get("verdict")) for run in runs]
    verdicts = "".join(f"<li><b>{esc(label)}</b>: {esc(v)}</li>" for label, v in said if v)
    return table(
        [
            "run",
            "test AUC (mean ± std over seeds)",
            "exported: AUC [95% CI]",
            "sensitivity [95% CI]",
            "specificity [95% CI]",
            "recipe baseline AUC",
        ],
        rows,
        numeric=(1, 2, 3, 4, 5),
    ) + (
        f"<h3>Verdicts: tuned winner against the recipe</h3><ul>{verdicts}</ul>" if verdicts else ""
    )


def _test_chart(runs: Sequence[_Run]) -> str | None:
    rows: list[tuple[str, str, float | None, list[float] | None]] = []
    for name in ("auc", "sensitivity", "specificity"):
        for run in runs:
            test = ((run.role("best") or {}).get("exported") or {}).get("test") or {}
            if test.get(name) is not None:
                rows.append(
                    (f"test {name}", run.label, test[name], (test.get("ci95") or {}).get(name))
                )
    return interval_chart(rows) if rows else None


def _mismatches(runs: Sequence[_Run]) -> list[str]:
    """What differs between the runs among the facts that make them comparable."""
    out = []
    specs = [r.inputs.spec for r in runs]
    if any(s is None for s in specs):
        return ["a run has no readable study.json: its settings cannot be checked"]
    for key in _SAME:
        seen = {str(getattr(s, key)) for s in specs}
        if len(seen) > 1:
            out.append(f"{key} differs: {', '.join(sorted(seen))}")
    return out


def _hardware(hw: dict[str, Any]) -> str:
    if not hw:
        return "–"
    return ", ".join(
        f"{hw.get(k, 0):g} {unit}"
        for k, unit in (("nodes", "node(s)"), ("cpus", "CPU"), ("gpus", "GPU"))
    )


def _settings(runs: Sequence[_Run]) -> str:
    rows = []
    for run in runs:
        spec, summary = run.inputs.spec, run.inputs.summary or {}
        hw = summary.get("hardware") or {}
        data = (summary.get("data") or {}).get("source") or (spec.data if spec else None)
        rows.append(
            [
                esc(run.label),
                esc(data or "synthetic demo"),
                esc(spec.space) if spec else "–",
                fmt(spec.trials) if spec else "–",
                fmt(spec.epochs) if spec else "–",
                duration(spec.time_budget_s) if spec and spec.time_budget_s else "none",
                fmt(spec.seed) if spec else "–",
                _hardware(hw),
                esc(run.inputs.run_dir),
            ]
        )
    return table(
        [
            "run",
            "data",
            "space",
            "trial cap",
            "epochs",
            "time budget",
            "seed",
            "hardware",
            "folder",
        ],
        rows,
        numeric=(3, 4, 6),
    )


def write_comparison_report(run_dirs: list[Path], out: Path) -> Path:
    """Writes one self-contained HTML page comparing the given run folders.

    Args:
        run_dirs: Study run folders (each with a ``leaderboard.parquet``), in the order
            their columns and colours should appear.
        out: The HTML file to write, or an existing folder to write ``compare.html`` into.

    Returns:
        The path of the written page.

    Raises:
        ReportError: no run folders, or one of them is not a study run.
    """
    if not run_dirs:
        raise ReportError("a comparison needs at least one run folder, but got none")
    inputs = [load_run(Path(d)) for d in run_dirs]
    runs = [
        _Run(i, label, PALETTE[k % len(PALETTE)])
        for k, (i, label) in enumerate(zip(inputs, _labels(inputs), strict=True))
    ]
    metric = inputs[0].metric

    body = []
    warnings = _mismatches(runs)
    notes = "".join(banner(f"not like for like: {w}", "warn") for w in warnings)
    body.append(
        section(
            "search",
            "Search: best validation score against wall time",
            notes + f"<figure>{anytime_chart(runs, metric)}</figure>"
            '<p class="caption">Each step is a trial finishing with a better score than any '
            "before it in the same run; faint dots are every finished trial's best epoch, "
            "placed when the trial finished. Time zero is when each run's first trial "
            "started. Trials that Hyperband or ASHA stopped early count with their best "
            "epoch.</p>" + _search_table(runs),
            intro=f"Metric: {esc(metric_label(metric))} on the validation split, as each search "
            "optimised it.",
        )
    )
    chart = _test_chart(runs)
    body.append(
        section(
            "test",
            "Retrained winners on the test split",
            _test_table(runs)
            + (
                f"<figure>{chart}</figure>"
                if chart
                else missing("no run has a retrained best model")
            )
            + '<p class="caption">Each study retrained its winning configuration with several '
            "seeds for the full epoch budget and exported the seed with the best validation "
            "score; intervals are 95% stratified bootstrap intervals over test images. The "
            "verdict compares the winner with the recipe baseline of the same study.</p>",
        )
    )
    body.append(section("settings", "Settings", _settings(runs)))
    subtitle = " vs ".join(esc(f"{r.label} ({r.engine})") for r in runs)
    html = page(
        "covidxr: search engines compared",
        subtitle,
        [("search", "search"), ("test", "test"), ("settings", "settings")],
        body,
        key_values([("runs", esc(", ".join(str(r.inputs.run_dir) for r in runs)))]),
    )
    out = Path(out)
    if out.is_dir():
        out = out / COMPARE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out


__all__ = ["COMPARE_FILE", "anytime_chart", "write_comparison_report"]
