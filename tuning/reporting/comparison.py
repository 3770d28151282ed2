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
   model's 95% bootstrap intervals (`best/metrics.json`), the sensible default and the
   recipe baselines and the study's verdict (`comparison.json`, a `Verdict`). A run
   without them (``--retrain-seeds 0``) says so.

The page is one file with inline SVG and CSS, no scripts and nothing loaded from elsewhere,
like the single-run report whose builders it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from covidxr_core.atomic import write_text
from covidxr_core.numbers import finite
from tuning.leaderboard import STOP_REASONS, TrialRow, stop_counts
from tuning.objective import is_better
from tuning.reporting.charts import Interval, interval_chart, metric_label
from tuning.reporting.html import (
    Html,
    banner,
    bold,
    caption,
    duration,
    figure,
    fmt,
    join,
    key_values,
    missing,
    muted,
    page,
    section,
    svg,
    table,
)
from tuning.reporting.inputs import Hardware, ReportError, RunInputs, load_run
from tuning.reporting.svg import PALETTE, Chart, LinearScale
from tuning.results import MeanStd, Metrics, RoleSummary

COMPARE_FILE = "compare.html"
_ENGINE_LABELS = {"ray": "Ray Tune + Optuna TPE + ASHA", "keras-tuner": "KerasTuner"}
# The facts that must agree for two runs' numbers to be comparable.
_SAME = ("data", "space", "epochs", "image_size", "channels", "metric")


@dataclass(frozen=True)
class Step:
    """One finished trial on a run's anytime curve."""

    seconds: float  # since the run's first trial started
    best: float  # the best ``best_metric`` of trials finished so far
    row: TrialRow
    value: float  # this trial's ``best_metric``


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
        name = _ENGINE_LABELS.get(spec.engine, spec.engine)
        return f"{name} {spec.tuner}" if spec.engine == "keras-tuner" else name

    @property
    def search_wall_s(self) -> float | None:
        summary = self.inputs.summary
        return summary.search_wall_s if summary is not None else None

    def start_time(self) -> float | None:
        """Epoch seconds at which the first trial started.

        Not the search's end minus its wall time: trials still running when a time budget
        stops the search have no end time, which would move that estimate too early.
        """
        starts = [r.started_at for r in self.inputs.rows if r.started_at is not None]
        return min(starts) if starts else None

    def anytime(self) -> list[Step]:
        """One `Step` per finished trial with a value, in finish order."""
        start = self.start_time()
        if start is None:
            return []
        done = sorted(
            (
                (r, r.finished_at, value)
                for r in self.inputs.rows
                if r.finished_at is not None and (value := finite(r.best_metric)) is not None
            ),
            key=lambda item: item[1],
        )
        out: list[Step] = []
        best: float | None = None
        for row, finished_at, value in done:
            if is_better(value, best, self.inputs.mode):
                best = value
            assert best is not None
            out.append(Step(finished_at - start, best, row, value))
        return out

    def role(self, name: str) -> RoleSummary | None:
        files = self.inputs.roles.get(name)
        return files.summary if files is not None else None

    def best_test(self) -> Metrics | None:
        best = self.role("best")
        return best.exported_test if best is not None else None


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
    values = [s.value for steps in curves.values() for s in steps]
    ends = [
        max(run.search_wall_s or 0.0, max((s.seconds for s in curves[run.label]), default=0.0))
        for run in runs
    ]
    chart.x = LinearScale(0.0, max(ends, default=1.0) or 1.0, *chart.inner_x())
    y = LinearScale(min(values, default=0.0), max(values, default=1.0), *chart.inner_y())
    if "loss" not in metric and y.hi > y.lo:  # rates and AUCs live in [0, 1]
        lo, hi = max(y.lo, 0.0), min(y.hi, 1.0)
        y = LinearScale(lo, hi, *chart.inner_y()) if hi > lo else y
    chart.y = y
    for run, end in zip(runs, ends, strict=True):
        steps = curves[run.label]
        if not steps:
            continue
        xs = [s.seconds for s in steps]
        ys: list[float | None] = [s.best for s in steps]
        if end > xs[-1]:  # the best holds until the search ends
            xs, ys = [*xs, end], [*ys, ys[-1]]
        chart.line(xs, ys, run.color, width=2.5, step=True, tip=f"{run.label}: best so far")
        for s in steps:
            chart.point(
                s.seconds,
                s.value,
                run.color,
                size=3.0,
                opacity=0.45,
                tip=f"{run.label} trial {s.row.trial_id}: {metric} {s.value:.4f} "
                f"({s.row.stop_reason}) at {s.seconds:.1f} s",
            )
        chart.add_legend(f"{run.label} ({run.engine})", run.color)
    return chart.svg()


def _mean_std(summary: RoleSummary | None, name: str) -> Html:
    stat = summary.test_stat(name) if summary is not None else MeanStd(None, None, 0)
    if stat.mean is None:
        return "–"
    return join([stat.text(), " ", muted(f"(n={stat.n})")])


def _with_ci(test: Metrics | None, name: str) -> str:
    value = test.value(name) if test is not None else None
    if value is None or test is None:
        return "–"
    ci = test.ci(name)
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _search_table(runs: Sequence[_Run]) -> Markup:
    rows: list[list[Html]] = []
    for run in runs:
        trials = run.inputs.rows
        counts = stop_counts(trials)
        stops = {k: counts[k] for k in STOP_REASONS if k != "running"}
        steps = run.anytime()
        best = steps[-1].best if steps else None
        when = next((s.seconds for s in steps if s.best == best), None)
        rows.append(
            [
                join([Markup('<span style="color:{}">■</span> ').format(run.color), run.label]),
                run.engine,
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


def _test_table(runs: Sequence[_Run]) -> Markup:
    rows: list[list[Html]] = []
    for run in runs:
        best = run.role("best")
        if best is None:
            note = missing(run.inputs.notes.get("best", "no best/ folder"))
            rows.append([run.label, note, "", "", "", "", ""])
            continue
        test = best.exported_test
        rows.append(
            [
                run.label,
                _mean_std(best, "auc"),
                _with_ci(test, "auc"),
                _with_ci(test, "sensitivity"),
                _with_ci(test, "specificity"),
                _mean_std(run.role("default"), "auc"),
                _mean_std(run.role("baseline"), "auc"),
            ]
        )
    said = [(run.label, run.inputs.comparison) for run in runs]
    verdicts = [
        join([bold(label), f" ({verdict.kind}): ", verdict.text])
        for label, verdict in said
        if verdict and verdict.text
    ]
    out = table(
        [
            "run",
            "test AUC (mean ± std over seeds)",
            "exported: AUC [95% CI]",
            "sensitivity [95% CI]",
            "specificity [95% CI]",
            "sensible default AUC",
            "recipe baseline AUC",
        ],
        rows,
        numeric=(1, 2, 3, 4, 5, 6),
    )
    if verdicts:
        items = join(Markup("<li>{}</li>").format(v) for v in verdicts)
        out += Markup("<h3>Verdicts: tuned winner against the baselines</h3><ul>{}</ul>").format(
            items
        )
    return out


def _test_chart(runs: Sequence[_Run]) -> str | None:
    rows: list[Interval] = []
    for name in ("auc", "sensitivity", "specificity"):
        for run in runs:
            test = run.best_test()
            value = test.value(name) if test is not None else None
            if test is not None and value is not None:
                rows.append((f"test {name}", run.label, value, test.ci(name)))
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


def _hardware(hw: Hardware | None) -> str:
    if hw is None:
        return "–"
    return ", ".join(
        f"{value or 0:g} {unit}"
        for value, unit in ((hw.nodes, "node(s)"), (hw.cpus, "CPU"), (hw.gpus, "GPU"))
    )


def _settings(runs: Sequence[_Run]) -> Markup:
    rows: list[list[Html]] = []
    for run in runs:
        spec, summary = run.inputs.spec, run.inputs.summary
        facts = run.inputs.data
        data = (facts.source if facts else None) or (spec.data if spec else None)
        rows.append(
            [
                run.label,
                data or "synthetic demo",
                spec.space if spec else "–",
                fmt(spec.trials) if spec else "–",
                fmt(spec.epochs) if spec else "–",
                duration(spec.time_budget_s) if spec and spec.time_budget_s else "none",
                fmt(spec.seed) if spec else "–",
                _hardware(summary.hardware if summary else None),
                str(run.inputs.run_dir),
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


def write_comparison_report(run_dirs: Sequence[Path], out: Path) -> Path:
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

    notes = join(banner(f"not like for like: {w}", "warn") for w in _mismatches(runs))
    search = section(
        "search",
        "Search: best validation score against wall time",
        join(
            [
                notes,
                figure(svg(anytime_chart(runs, metric))),
                caption(
                    "Each step is a trial finishing with a better score than any before it "
                    "in the same run; faint dots are every finished trial's best epoch, placed "
                    "when the trial finished. Time zero is when each run's first trial "
                    "started. Trials that Hyperband or ASHA stopped early count with their "
                    "best epoch."
                ),
                _search_table(runs),
            ]
        ),
        intro=f"Metric: {metric_label(metric)} on the validation split, as each search "
        "optimised it.",
    )
    chart = _test_chart(runs)
    test = section(
        "test",
        "Retrained winners on the test split",
        join(
            [
                _test_table(runs),
                figure(svg(chart)) if chart else missing("no run has a retrained best model"),
                caption(
                    "Each study retrained its winning configuration with several seeds for "
                    "the full epoch budget and exported the seed with the best validation "
                    "score; intervals are 95% stratified bootstrap intervals over test images. "
                    "The verdict compares the winner with the sensible default and the recipe "
                    "of the same study, and checks its sensitivity, specificity and leakage."
                ),
            ]
        ),
    )
    settings = section("settings", "Settings", _settings(runs))
    html = page(
        "covidxr: search engines compared",
        " vs ".join(f"{r.label} ({r.engine})" for r in runs),
        [("search", "search"), ("test", "test"), ("settings", "settings")],
        [search, test, settings],
        key_values([("runs", ", ".join(str(r.inputs.run_dir) for r in runs))]),
    )
    out = Path(out)
    if out.is_dir():
        out = out / COMPARE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text(out, html)


__all__ = ["COMPARE_FILE", "anytime_chart", "write_comparison_report"]
