"""The page escapes whatever text a run folder holds, and the report package needs no Ray.

These build a small run folder by hand with the real writers (`Leaderboard`, `StudySpec`),
so they take seconds and start nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search_spaces import get_space
from tuning.leaderboard import LEADERBOARD_FILE, Leaderboard
from tuning.reporting import (
    REPORT_FILE,
    build_context,
    load_run,
    render,
    write_comparison_report,
    write_report,
)
from tuning.spec import StudySpec

REPO = Path(__file__).resolve().parents[3]
EVIL = "<script>alert(1)</script>"


def _run_folder(parent: Path, name: str = "evil") -> Path:
    """Two trials (one completed, one failed with a hostile error) of a study whose data
    path is hostile too; no summary, no retrain, no Optuna database."""
    run_dir = parent / name
    run_dir.mkdir(parents=True)
    spec = StudySpec(trials=2, epochs=2, space="small", data=f"/data/{EVIL}", name=name)
    (run_dir / "study.json").write_text(spec.to_json())
    space = get_space("small")
    board = Leaderboard(run_dir / LEADERBOARD_FILE, space, "val_auc", "max", max_epochs=2)
    config = {p.name: (p.choices[0] if p.type == "categorical" else p.low) for p in space.params}
    for trial_id in ("good0001", "bad00002"):
        board.start(trial_id, config, gpus=0.0, cpus=1.0)
    for epoch in (1, 2):
        board.result(
            "good0001",
            {"epoch": epoch, "val_auc": 0.5 + epoch / 10, "val_loss": 1.0 / epoch, "pid": 7},
        )
    board.finish("good0001")
    board.finish("bad00002", error=f"ValueError: {EVIL} & more")
    board.save()
    return run_dir


def test_hostile_text_is_escaped_in_the_written_page(tmp_path: Path) -> None:
    run_dir = _run_folder(tmp_path)
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html  # the error
    assert f"/data/{EVIL}" not in html
    assert 'id="failed-trials"' in html and "bad00002" in html
    assert (run_dir / REPORT_FILE).exists()


def test_a_page_renders_without_images_and_says_what_is_missing(tmp_path: Path) -> None:
    run = load_run(_run_folder(tmp_path))
    assert [r.trial_id for r in run.rows] == ["good0001", "bad00002"]
    assert run.comparison is None and not run.roles
    ctx = build_context(run, images=False)
    assert [(r.rank, r.row.trial_id) for r in ctx.ranked] == [(1, "good0001"), (None, "bad00002")]
    html = render(ctx)
    assert not ctx.notes, ctx.notes  # every section drew
    assert "Nothing was retrained" in html
    assert "could not be drawn" not in html
    assert "<script" not in html


def test_hostile_run_names_are_escaped_in_the_comparison(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "a", name="<i>ray&co")
    b = _run_folder(tmp_path / "b", name="kt")
    html = write_comparison_report([a, b], tmp_path / "compare.html").read_text()
    assert "<i>ray" not in html and "&lt;i&gt;ray&amp;co" in html
    assert "<script" not in html


def test_reporting_imports_no_ray() -> None:
    code = (
        "import sys, json\n"
        "import tuning.reporting, tuning.report\n"
        "import tuning.reporting.gradcam, tuning.reporting.comparison\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", ["page.html.j2", "parts.html.j2", "style.html.j2"])
def test_templates_ship_with_the_package(name: str) -> None:
    from tuning.reporting.html import environment

    assert environment().autoescape is True
    assert environment().get_template(name) is not None
