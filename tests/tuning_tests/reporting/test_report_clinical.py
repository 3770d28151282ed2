"""What the page says about the models a radiologist would be handed: the verdict and its
checks, the three retrained roles at their operating points, calibration, external sets
and leakage. Run folders are written by hand through the real records (`_clinical_run`),
so each test renders in about a second and starts nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _clinical_run import ROLE_NUMBERS, clinical_run, metrics
from _html_page import SECTIONS, Page

from tuning.external import source_check
from tuning.reporting import build_context, load_run, render, write_comparison_report
from tuning.results import Check
from tuning.verdict import RETURNED_DEFAULT

ADULT_NOTE = (
    "on adult the tuned model's AUC is 0.475, below the internal test AUC's interval "
    "[0.760, 0.920]: the model may rely on something specific to the training source"
)


def _page(run_dir: Path) -> str:
    ctx = build_context(load_run(run_dir), images=False)
    html = render(ctx)
    assert not ctx.notes, ctx.notes  # every section drew
    return html


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section class="card" id="{section_id}">(.*?)</section>', html, re.S)
    assert match, section_id
    return match.group(1)


def _text(fragment: str) -> str:
    """Markup without its tags, whitespace collapsed (what a reader sees)."""
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split())


def _table(html: str, table_id: str) -> list[list[str]]:
    match = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert match, table_id
    body = match.group(1).split("<tbody>", 1)[1]
    return [
        [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_a_bad_verdict_is_red_never_green_and_says_why(tmp_path: Path) -> None:
    # A tuned model that finds no case at all: it beat the baselines on AUC and still fails.
    run_dir = clinical_run(
        tmp_path,
        kind="bad",
        best=metrics(0.80, 0.0, 1.0, 0.9),
        checks=[
            Check("beats the recipe", True, "against the recipe: test AUC 0.840 vs 0.660"),
            Check(
                "sensitivity",
                False,
                "sensitivity 0.000 [0.000, 0.080] at threshold 0.900 is below the 0.5 floor",
            ),
            Check("specificity", True, "specificity 1.000 [0.920, 1.000]: clears the floor"),
            Check("no train-test leakage", True, "no duplicate found between train and test"),
        ],
        text="not shown: sensitivity 0.000 [0.000, 0.080] at threshold 0.900 is below the "
        "0.5 floor",
    )
    html = _page(run_dir)
    overview = _section(html, "overview")
    banner = re.search(r'<div class="banner (\w+)">([^<]*sensitivity[^<]*)</div>', overview)
    assert banner, overview[:2000]
    assert banner.group(1) == "bad"
    assert "below the 0.5 floor" in banner.group(2) and "0.000" in banner.group(2)
    # Nothing on the page is green: no green banner, no green tick, passed checks are ink.
    assert 'class="banner good"' not in html
    assert "pass green" not in html
    checks = re.findall(r'<span class="mark (\w+)[^"]*"[^>]*>(.)</span><b>([^<]+)</b>', overview)
    assert ("fail", "✗", "sensitivity") in checks
    assert ("pass", "✓", "beats the recipe") in checks
    assert 'class="no"' in overview  # the failed sensitivity tile is red


def test_an_external_failure_is_a_failed_check_in_the_overview(tmp_path: Path) -> None:
    # The tuned model ranks adults worse than its internal interval allows: the verdict's
    # check fails, and the overview says so beside the other checks, not only in External.
    internal = metrics(*ROLE_NUMBERS["best"][:4])
    adult = source_check("adult", internal, metrics(0.445, 0.6, 0.4, 0.361, n=40))
    assert adult.passed is False and adult.blocking
    run_dir = clinical_run(
        tmp_path,
        kind="bad",
        external={"adult": 0.445},
        notes=[adult.detail],
        checks=[
            Check("beats the recipe", True, "against the recipe: beat it"),
            Check("sensitivity", True, "sensitivity 0.867 [0.787, 0.947]: clears the floor"),
            Check("specificity", True, "specificity 0.667 [0.587, 0.747]: clears the floor"),
            Check("no train-test leakage", True, "no duplicate found"),
            adult,
        ],
        text=f"not shown: {adult.detail}",
    )
    overview = _section(_page(run_dir), "overview")
    detail = (
        "on adult the tuned model&#39;s AUC is 0.445, below the internal test AUC&#39;s "
        "interval [0.760, 0.920]: the model may rely on something specific to the training "
        "source"
    )
    # Here the default was not compared (the run has no default role): the headline says so.
    assert (
        '<div class="banner bad">Tuning was not compared with the sensible default. Verdict '
        f"not shown (a check failed): {detail}</div>"
    ) in overview
    checks = re.findall(r'<span class="mark (\w+)[^"]*"[^>]*>(.)</span><b>([^<]+)</b>', overview)
    assert ("fail", "✗", "external set adult") in checks
    assert f"<b>external set adult</b>: {detail}</li>" in overview


def test_each_roles_seed_aucs_and_the_flag_where_they_disagree(tmp_path: Path) -> None:
    html = _page(clinical_run(tmp_path, seed_aucs={"baseline": [0.66, 0.40, 0.80]}))
    test = _section(html, "test")
    rows = _table(html, "seed-stability")
    assert [r[0] for r in rows] == ["tuned", "sensible default", "recipe"]
    assert rows[0][1:] == [
        "seed 0: 0.840 seed 1: 0.820 seed 2: 0.850",
        "0.030",
        "[0.760, 0.920] (0.160)",
        "agree",
    ]
    assert rows[2][1:] == [
        "seed 0: 0.660 seed 1: 0.400 seed 2: 0.800",
        "0.400",
        "[0.580, 0.740] (0.160)",
        "seeds disagree",
    ]
    assert "<b>0.840</b>" in test  # the exported seed
    assert (
        '<div class="banner warn">recipe: seeds disagree: the spread of their test AUCs '
        "(0.400: 0.400 to 0.800 over 3 seeds) exceeds the width of the exported model&#39;s "
        "95% test-AUC interval (width 0.160: [0.580, 0.740])"
    ) in test
    assert test.count('class="banner warn"') == 1  # the others' seeds agree
    assert "Rule: a model&#39;s seeds are flagged when the spread (max - min)" in test


def test_only_a_good_verdict_is_green(tmp_path: Path) -> None:
    run_dir = clinical_run(
        tmp_path,
        kind="good",
        checks=[Check("beats the recipe", True, "against the recipe: beat it")],
        text="tuning beat the recipe on test AUC beyond the 95% intervals",
    )
    overview = _section(_page(run_dir), "overview")
    assert (
        '<div class="banner good">Tuning beat the baselines. Verdict shown: tuning beat the recipe'
    ) in overview
    assert "mark pass green" in overview


@pytest.mark.parametrize(
    ("passed", "text", "headline"),
    [
        (
            False,
            "not shown: worse",
            "Tuning did NOT beat the sensible default: the tuned model is worse",
        ),
        (
            None,
            "not shown: no clear winner",
            "Tuning did not beat the sensible default beyond chance",
        ),
        (
            None,
            RETURNED_DEFAULT + "; every other check passed",
            "Tuning did not beat the sensible default: the default is handed back",
        ),
    ],
)
def test_the_headline_says_what_happened_against_the_default(
    tmp_path: Path, passed, text, headline
) -> None:
    run_dir = clinical_run(
        tmp_path,
        kind="warn",
        checks=[Check("beats the sensible default", passed, "against the sensible default: x")],
        text=text,
    )
    overview = _section(_page(run_dir), "overview")
    assert f'<div class="banner warn">{headline}. Verdict not shown:' in overview


def test_no_verdict_is_a_neutral_banner_with_its_reason(tmp_path: Path) -> None:
    reason = "the test split has only 3 of class 'corona'; at least 20 images are needed"
    run_dir = clinical_run(tmp_path, kind="none", checks=[], text=f"no verdict: {reason}")
    html = _page(run_dir)
    overview = _section(html, "overview")
    assert '<div class="banner none">No verdict: ' in overview
    assert "the test split has only 3 of class &#39;corona&#39;" in overview
    assert 'class="banner good"' not in html and 'class="banner bad"' not in overview


def test_three_roles_side_by_side_at_their_operating_points(tmp_path: Path) -> None:
    html = _page(clinical_run(tmp_path))
    page = Page(html)
    assert page.sections == list(SECTIONS)
    test = _section(html, "test")
    assert "Test: tuned vs baselines at the operating point" in test
    rows = _table(html, "test-metrics")
    assert [r[0] for r in rows] == [
        "threshold", "AUC", "average precision", "sensitivity", "specificity", "PPV", "NPV",
        "F1", "accuracy", "ECE", "Brier",
    ]  # fmt: skip
    head = re.search(r'<table id="test-metrics".*?</thead>', html, re.S)
    assert head
    header = _text(head.group(0))
    assert header.index("tuned") < header.index("sensible default") < header.index("recipe")
    threshold = dict(zip(("metric", "tuned", "default", "recipe"), rows[0], strict=True))
    assert threshold["tuned"].startswith("0.361 (youden)")
    assert threshold["recipe"].startswith("0.561")
    auc = rows[1]
    assert auc[1].startswith("0.840 [0.760, 0.920]")
    assert "seeds: 0.837 ± 0.015 (n=3)" in auc[1]  # mean ± sd over the three seeds
    assert "never on test" in test
    # The comparison with each baseline, the ROC of all three, their confusion matrices.
    assert "vs the sensible default:" in test and "vs the recipe:" in test
    for label in ("tuned", "sensible default", "recipe"):
        assert f"{label} (AUC" in test
        assert f"<h3>{label} model</h3>" in test
    assert "argmax" not in _text(test)


def test_an_unusable_baseline_is_named_as_such(tmp_path: Path) -> None:
    test = _section(_page(clinical_run(tmp_path, unusable=["baseline"])), "test")
    line = re.search(r"<li><b>vs the recipe: </b>(.*?)</li>", test, re.S)
    assert line, test
    assert "not a usable baseline" in line.group(1)
    assert "it calls every test image corona; beating it counts for nothing" in line.group(1)
    usable = re.search(r"<li><b>vs the sensible default: </b>(.*?)</li>", test, re.S)
    assert usable and "not a usable baseline" not in usable.group(1)


def test_argmax_is_said_plainly_without_a_threshold(tmp_path: Path) -> None:
    html = _page(clinical_run(tmp_path, best=metrics(0.8, 0.7, 0.7, None)))
    test = _section(html, "test")
    assert "binary only; with three or more classes the class is the argmax" in test
    assert _table(html, "test-metrics")[0][1] == "argmax"
    assert "binary only; with three or more classes" in _section(html, "overview")


def test_reliability_diagram_and_calibration_table(tmp_path: Path) -> None:
    html = _page(clinical_run(tmp_path))
    calibration = _section(html, "calibration")
    assert "reliability diagram (equal-mass bins, test split)" in calibration
    assert "perfect calibration" in calibration
    assert "tuned after T = 0.73 (dashed)" in calibration  # before and after temperature
    assert 'stroke-dasharray="6 4"' in calibration
    rows = _table(html, "calibration-table")
    assert [r[0] for r in rows] == ["tuned", "sensible default", "recipe"]
    assert rows[0][1:4] == ["0.730", "0.190 → 0.140", "0.183 → 0.178"]


def test_external_sets_by_name_with_auc_and_interval(tmp_path: Path) -> None:
    run_dir = clinical_run(tmp_path, external={"adult": 0.475, "site-b": 0.81}, notes=[ADULT_NOTE])
    html = _page(run_dir)
    external = _section(html, "external")
    rows = _table(html, "external")
    sources = [r[0] for r in rows if r[0]]
    assert sources == ["internal test", "adult", "site-b"]  # the internal split first
    assert len(rows) == 9  # three sources x three roles
    adult_tuned = rows[3]
    assert adult_tuned[:3] == ["adult", "tuned", "40"]
    assert adult_tuned[3] == "0.475 [0.395, 0.555]"
    assert rows[6][3] == "0.810 [0.730, 0.890]"
    note = ADULT_NOTE.replace("'", "&#39;")
    assert f'<div class="banner warn">{note}</div>' in external


def test_no_external_set_says_how_to_add_one(tmp_path: Path) -> None:
    html = _page(clinical_run(tmp_path))
    external = _section(html, "external")
    assert "No external validation set" in external and "--external NAME=DIR" in external
    assert 'id="external"' not in external  # no empty table


def test_hostile_external_set_names_are_escaped(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    run_dir = clinical_run(
        tmp_path, external={evil: 0.6}, notes=[f"on {evil} the tuned model's AUC is 0.6"]
    )
    html = _page(run_dir)
    assert "<img" not in html and "onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in _section(html, "external")


def test_train_test_leakage_from_the_verdict_is_red(tmp_path: Path) -> None:
    pair = "train/corona/a.png <-> test/corona/b.png"
    study = _section(_page(clinical_run(tmp_path, leakage=[pair])), "study")
    assert '<div class="banner bad">Train ↔ test leakage found by the verdict: 1' in study
    assert "<code>train/corona/a.png &lt;-&gt; test/corona/b.png</code>" in study


def test_model_card_is_linked_relatively_when_written(tmp_path: Path) -> None:
    html = _page(clinical_run(tmp_path / "a"))
    assert Page(html).links == ["#" + s for s in SECTIONS] + ["best/MODEL_CARD.md"]
    assert "best/MODEL_CARD.md" not in _page(clinical_run(tmp_path / "b", card=False))


def test_a_run_without_the_default_role_still_renders(tmp_path: Path) -> None:
    # A run folder from before the sensible default existed.
    html = _page(clinical_run(tmp_path, roles=("best", "baseline")))
    assert "Not retrained (no folder): sensible default." in _section(html, "test")
    assert [r[0] for r in _table(html, "calibration-table")] == ["tuned", "recipe"]


def test_comparison_page_reads_the_new_verdict(tmp_path: Path) -> None:
    a = clinical_run(tmp_path / "a", name="ray", kind="bad", text="not shown: sens 0")
    b = clinical_run(tmp_path / "b", name="kt")
    html = write_comparison_report([a, b], tmp_path / "compare.html").read_text()
    assert "sensible default AUC" in html and "recipe baseline AUC" in html
    assert "<b>ray</b> (bad): not shown: sens 0" in html
    assert "0.840 [0.760, 0.920]" in html  # each winner's exported test AUC with its CI
