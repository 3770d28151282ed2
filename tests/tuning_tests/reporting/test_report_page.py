"""The study page on a real tiny study: every section, its tables, charts and images."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _html_page import SECTIONS, Page, copy_run
from PIL import Image

from tuning.reporting import REPORT_FILE, write_report


@pytest.fixture(scope="module")
def run_dir(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's tiny study (synthetic demo data), with its report."""
    copy = copy_run(tiny_run, tmp_path_factory.mktemp("report-page"))
    write_report(copy)
    return copy


def _no_external_resources(html: str, page: Page) -> None:
    # In-page anchors, data: URIs, and the model card beside the page (a relative link).
    local = [link for link in page.links if not link.startswith(("#", "data:"))]
    assert local == ["best/MODEL_CARD.md"], page.links
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
    html = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    page = Page(html)
    _no_external_resources(html, page)
    assert page.sections == list(SECTIONS)
    assert "could not be drawn" not in html
    assert "SYNTHETIC DATA" in html  # the demo data is flagged where nobody can miss it


def test_leaderboard_table_has_every_trial(run_dir: Path) -> None:
    rows = pq.read_table(run_dir / "leaderboard.parquet").to_pylist()
    html = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert Page(html).rows["leaderboard"] == len(rows) == 3
    for row in rows:
        assert row["trial_id"] in html


def test_report_shows_the_study_plots_and_the_test_comparison(run_dir: Path) -> None:
    html = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    # Charts are inline SVG: best so far, importance, one scatter per parameter, two
    # learning-curve panels, the worker timeline, intervals and ROC.
    assert html.count("<svg") >= 1 + 1 + 3 + 2 + 1 + 2
    assert "fANOVA" in html  # importance from the Optuna study in optuna.db
    # ROC legend: the tuned model and both baselines.
    assert "tuned (AUC" in html and "recipe (AUC" in html and "sensible default (AUC" in html
    assert Page(html).rows["test-metrics"] == 11  # threshold and ten metrics
    assert Page(html).rows["calibration-table"] == 3
    assert "reliability diagram" in html
    assert "No external validation set" in html
    assert "pred. corona" in html and "true normal" in html  # confusion matrices
    assert "No trial failed." in html


def test_gradcam_images_are_embedded_pngs(run_dir: Path) -> None:
    page = Page((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    images = page.images["gradcam"]
    # Each class of the 60-image test split has right or wrong answers to show.
    assert len(images) >= 2
    for uri in images:
        image = _decode_png(uri)
        assert image.width > image.height > 64  # image and overlay side by side, upscaled


def test_missing_retrain_and_summary_are_said_not_crashed(run_dir: Path, tmp_path: Path) -> None:
    # What a study with --retrain-seeds 0 (no best/, default/, baseline/, comparison.json)
    # that was also killed before its summary leaves behind.
    copy = copy_run(run_dir, tmp_path)
    for name in ("best", "default", "baseline"):
        shutil.rmtree(copy / name)
    for name in ("comparison.json", "summary.json"):
        (copy / name).unlink()
    html = write_report(copy).read_text(encoding="utf-8")
    assert "Nothing was retrained" in html
    assert "no exported model" in html
    assert "no retrained model: nothing to calibrate" in html
    assert "could not be drawn" not in html
    assert Page(html).rows["leaderboard"] == 3


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
    if not (run_dir / REPORT_FILE).exists():
        write_report(run_dir)
    url = (run_dir / REPORT_FILE).resolve().as_uri()
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
def test_report_on_real_data_checks_leakage(covid_cxr: Path, tiny_spec, local_ray) -> None:
    from tuning import run_study

    run = run_study(tiny_spec("real", data=str(covid_cxr))).run_dir
    html = write_report(run).read_text(encoding="utf-8")
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
def test_failed_trials_are_listed_with_their_errors(
    tmp_path: Path, tiny_spec, local_ray, failing_space
) -> None:
    from tuning import run_study

    space = failing_space
    run = run_study(
        tiny_spec("failing", trials=4, epochs=1, space=str(space), retrain_seeds=0)
    ).run_dir
    rows = pq.read_table(run / "leaderboard.parquet").to_pylist()
    failed = [r for r in rows if r["stop_reason"] == "failed"]
    html = write_report(run).read_text(encoding="utf-8")
    page = Page(html)
    assert page.rows["leaderboard"] == len(rows)
    assert page.rows.get("failed-trials", 0) == len(failed)
    for row in failed:
        assert row["trial_id"] in html
    if failed:
        assert "training diverged" in html
    assert "Nothing was retrained" in html
    assert "could not be drawn" not in html


def test_the_space_table_lists_every_held_value_and_the_race(run_dir: Path) -> None:
    import json

    html = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    space = re.search(r'<table id="space"[^>]*>(.*?)</table>', html, re.S)
    assert space is not None
    held = json.loads((run_dir / "summary.json").read_text())["held_fixed"]
    # The small space keeps Adam, width cap 128 and the recipe's augmentation: all said.
    assert held["optimizer"] == "adam" and held["width_cap"] == 128 and "zoom" in held
    for name, value in held.items():
        assert re.search(
            rf"<code>{name}</code></td>\s*<td[^>]*>held fixed</td>\s*<td[^>]*>{re.escape(str(value))}<",
            space.group(1),
        ), name
    assert '<table id="race"' in html  # the race's entrants, with their seeds and bounds
    leaderboard = re.search(r'<table id="leaderboard"[^>]*>(.*?)</table>', html, re.S)
    assert leaderboard is not None and ">default<" in leaderboard.group(1)  # its origin
