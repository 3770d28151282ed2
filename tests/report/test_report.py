"""The study report on real tiny studies: the HTML page, the CLI, and the page in a browser."""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
from _tiny_study import tiny_spec, tiny_study
from PIL import Image

from tuning.report import write_report
from tuning.study import run_study

REPO = Path(__file__).resolve().parents[2]
REPORT_CLI = REPO / "tuning" / "report.py"
SECTIONS = (
    "overview",
    "study",
    "leaderboard",
    "progress",
    "parameters",
    "curves",
    "workers",
    "test",
    "gradcam",
    "failed",
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One real study on the synthetic demo data; run_study writes report.html itself."""
    return tiny_study(tmp_path_factory)


@pytest.fixture
def ray_cluster():
    """A local Ray for the slow tests that run studies of their own."""
    # address="local": a private Ray even when another process ran `ray start` here
    # (plain ray.init() would join that cluster and reject num_cpus).
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class Page(HTMLParser):
    """What the tests look for in a page: section ids, table rows, links and images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.rows: dict[str, int] = {}  # table id -> rows in its <tbody>
        self.links: list[str] = []  # every src= and href= value
        self.images: dict[str, list[str]] = {}  # section id -> <img> sources
        self._table: str | None = None
        self._in_body = False
        self._section: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "section":
            self._section = a.get("id")
            self.sections.append(self._section or "")
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table:
            self.rows[self._table] = self.rows.get(self._table, 0) + 1
        elif tag == "img":
            self.images.setdefault(self._section or "", []).append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None


def _no_external_resources(html: str, page: Page) -> None:
    assert all(link.startswith(("#", "data:")) for link in page.links), page.links
    assert not re.search(r"https?://", html), re.search(r".{60}https?://.{60}", html)
    for forbidden in ("<script", "<link", "@import", "url("):
        assert forbidden not in html, forbidden


def _decode_png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:40]
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.format == "PNG"
    image.load()
    return image


def test_report_is_one_self_contained_page_with_every_section(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    _no_external_resources(html, page)
    assert page.sections == list(SECTIONS)
    assert "could not be drawn" not in html
    assert "SYNTHETIC DATA" in html  # the demo data is flagged where nobody can miss it


def test_leaderboard_table_has_every_trial(run_dir: Path) -> None:
    rows = pq.read_table(run_dir / "leaderboard.parquet").to_pylist()
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert Page(html).rows["leaderboard"] == len(rows) == 3
    for row in rows:
        assert row["trial_id"] in html


def test_report_shows_the_study_plots_and_the_test_comparison(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    # Charts are inline SVG: best so far, importance, one scatter per parameter, two
    # learning-curve panels, the worker timeline, intervals and ROC.
    assert html.count("<svg") >= 1 + 1 + 3 + 2 + 1 + 2
    assert "fANOVA" in html  # importance from the Optuna study in optuna.db
    assert "tuned (AUC" in html and "recipe (AUC" in html  # ROC legend, both models
    assert Page(html).rows["test-metrics"] == 7
    assert "pred. corona" in html and "true normal" in html  # confusion matrices
    assert "No trial failed." in html


def test_gradcam_images_are_embedded_pngs(run_dir: Path) -> None:
    page = Page((run_dir / "report.html").read_text(encoding="utf-8"))
    images = page.images["gradcam"]
    # Each class of the 60-image test split has right or wrong answers to show.
    assert len(images) >= 2
    for uri in images:
        image = _decode_png(uri)
        assert image.width > image.height > 64  # image and overlay side by side, upscaled


def test_missing_retrain_and_summary_are_said_not_crashed(run_dir: Path, tmp_path: Path) -> None:
    # What a study with --retrain-seeds 0 (no best/, baseline/, comparison.json) that was
    # also killed before its summary leaves behind.
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("tune", ".lock"))
    for name in ("best", "baseline"):
        shutil.rmtree(copy / name)
    for name in ("comparison.json", "summary.json", "report.html"):
        (copy / name).unlink()
    html = write_report(copy).read_text(encoding="utf-8")
    assert "Nothing was retrained" in html
    assert "no exported model" in html
    assert "could not be drawn" not in html
    assert Page(html).rows["leaderboard"] == 3


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
    (run_dir / "report.html").unlink()
    out = tmp_path / "out.csv"
    done = _cli(str(run_dir), "--top", "2", "--csv", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (run_dir / "report.html").exists()
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert float(rows[0]["val_auc"]) >= float(rows[1]["val_auc"]) >= float(rows[2]["val_auc"])
    assert "top 2 of 3 trials by val_auc" in done.stdout
    assert rows[0]["trial_id"] in done.stdout and rows[1]["trial_id"] in done.stdout
    assert rows[2]["trial_id"] not in done.stdout


def test_cli_sorts_by_another_metric_without_html(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "by_loss.csv"
    before = (run_dir / "report.html").stat().st_mtime_ns
    done = _cli(str(run_dir), "--sort", "val_loss", "--csv", str(out), "--no-html")
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out, newline="") as handle:
        losses = [float(r["val_loss"]) for r in csv.DictReader(handle)]
    assert losses == sorted(losses)  # lower loss is better
    assert (run_dir / "report.html").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "no such run folder"),
        (["{empty}"], "no leaderboard.parquet"),
        (["{run}", "--sort", "banana"], "--sort must be one of"),
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


# ----------------------------------------------------------------------------- browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    # A fresh profile and no background services: the page must render with no network.
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_a_browser(run_dir: Path, tmp_path: Path) -> None:
    if not (run_dir / "report.html").exists():
        write_report(run_dir)
    url = (run_dir / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    shown = _chromium(
        url,
        tmp_path / "profile-shot",
        f"--screenshot={shot}",
        "--window-size=1400,4000",
        "--hide-scrollbars",
    )
    dom = _chromium(url, tmp_path / "profile-dom", "--dump-dom")
    for run in (shown, dom):
        console_errors = [
            ln
            for ln in run.stderr.splitlines()
            if "CONSOLE" in ln and ("ERROR" in ln or "Uncaught" in ln)
        ]
        assert not console_errors, console_errors
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = Page(dom.stdout)
    assert (
        rendered.rows["leaderboard"] == pq.read_metadata(run_dir / "leaderboard.parquet").num_rows
    )
    assert rendered.sections == list(SECTIONS)

    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 4000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) blank"
    assert image.getextrema() != ((255, 255), (255, 255), (255, 255))


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_report_on_real_data_checks_leakage(covid_cxr: Path, tmp_path: Path, ray_cluster) -> None:
    run = run_study(tiny_spec(tmp_path, "real", data=str(covid_cxr))).run_dir
    html = (run / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    assert "SYNTHETIC DATA" not in html
    assert "real radiographs" in html
    # The data set's README names a radiograph that sits in train and validation.
    assert "Possible leakage" in html
    assert "extubation-1.jpg" in html and "4-x-day1.jpg" in html
    assert page.rows["leaderboard"] == 3
    assert page.images["gradcam"]
    for uri in page.images["gradcam"]:
        _decode_png(uri)
    assert "could not be drawn" not in html


@pytest.mark.slow
def test_failed_trials_are_listed_with_their_errors(tmp_path: Path, ray_cluster) -> None:
    space = tmp_path / "failing.yaml"
    # A width of 0 is an invalid model: trials that draw it fail, the others train.
    space.write_text(
        "params:\n"
        "  width_1: {type: categorical, choices: [2, 0]}\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\n"
        "fixed:\n  optimizer: adam\n"
    )
    run = run_study(
        tiny_spec(tmp_path, "failing", trials=4, epochs=1, space=str(space), retrain_seeds=0)
    ).run_dir
    rows = pq.read_table(run / "leaderboard.parquet").to_pylist()
    failed = [r for r in rows if r["stop_reason"] == "failed"]
    html = (run / "report.html").read_text(encoding="utf-8")
    page = Page(html)
    assert page.rows["leaderboard"] == len(rows)
    assert page.rows.get("failed-trials", 0) == len(failed)
    for row in failed:
        assert row["trial_id"] in html
    if failed:
        assert "every width must be an integer" in html
    assert "Nothing was retrained" in html
    assert "could not be drawn" not in html
