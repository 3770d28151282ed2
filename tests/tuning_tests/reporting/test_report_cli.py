"""``python tuning/report.py``: the terminal leaderboard, the CSV, the page and its errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _html_page import Page, copy_run

from tuning.reporting import REPORT_FILE

REPO = Path(__file__).resolve().parents[3]
REPORT_CLI = REPO / "tuning" / "report.py"


@pytest.fixture(scope="module")
def run_dir(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's tiny study, without a report yet."""
    return copy_run(tiny_run, tmp_path_factory.mktemp("report-cli"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPORT_CLI), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env=dict(os.environ),
    )


def test_cli_prints_the_top_and_exports_csv(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / REPORT_FILE).unlink(missing_ok=True)
    out = tmp_path / "out.csv"
    done = _cli(str(run_dir), "--top", "2", "--csv", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (run_dir / REPORT_FILE).exists()
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert float(rows[0]["val_auc"]) >= float(rows[1]["val_auc"]) >= float(rows[2]["val_auc"])
    assert rows[0]["curve_val_auc"].startswith("[")  # curves are JSON lists
    assert "top 2 of 3 trials by score" in done.stdout
    assert rows[0]["trial_id"] in done.stdout and rows[1]["trial_id"] in done.stdout
    assert rows[2]["trial_id"] not in done.stdout


def test_cli_sorts_by_another_metric_without_html(run_dir: Path, tmp_path: Path) -> None:
    if not (run_dir / REPORT_FILE).exists():
        assert _cli(str(run_dir)).returncode == 0
    out = tmp_path / "by_loss.csv"
    before = (run_dir / REPORT_FILE).stat().st_mtime_ns
    done = _cli(str(run_dir), "--sort", "val_loss", "--csv", str(out), "--no-html")
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out, newline="") as handle:
        losses = [float(r["val_loss"]) for r in csv.DictReader(handle)]
    assert losses == sorted(losses)  # lower loss is better
    assert (run_dir / REPORT_FILE).stat().st_mtime_ns == before


def test_cli_with_two_runs_writes_one_comparison_page(run_dir: Path, tmp_path: Path) -> None:
    other = copy_run(run_dir, tmp_path / "again")
    out = tmp_path / "both.html"
    done = _cli(str(run_dir), str(other), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert page.sections == ["search", "test", "settings"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "no such run folder"),
        (["{empty}"], "no leaderboard.parquet"),
        (["{run}", "--sort", "banana"], "--sort must be one of"),
        (["{run}", "--top", "0"], "--top must be >= 1"),
    ],
)
def test_cli_errors_are_one_red_line(
    run_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "run": run_dir}
    done = _cli(*(a.format(**paths) for a in args))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
