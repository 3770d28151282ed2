"""Real small studies with --cv, --objectives, --constraint and --pick (issue 15).

The data: the cxr-fixture's 20 real radiographs laid out as train (7 + 7) and validation
(3 + 3), plus byte-identical copies (one inside train per class, one of a train film in
validation per class), so folds have duplicates to keep together; test is carved.
Real Ray (local), Optuna (SQLite) and Keras at 64 px.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import optuna
import pytest
from _util import run_cli

from covidxr_core.data import DataConfig, load_dataset
from covidxr_core.data._folds import file_clusters
from tuning import StudySpec, run_study
from tuning.leaderboard import Leaderboard, read_rows
from tuning.selection import parse_constraint, parse_objectives

WIDE = 50_000  # the recipe space's base widths 2 and 4 give about 25k and 100k parameters


@pytest.fixture(scope="module")
def data_dir(cxr_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sel-data") / "data"
    for label in ("corona", "normal"):
        files = sorted((cxr_fixture / "validation" / label).iterdir())
        for i, f in enumerate(files):
            split = "train" if i < 7 else "validation"
            (root / split / label).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, root / split / label / f.name)
        shutil.copyfile(files[0], root / "train" / label / f"dup-{files[0].name}")
        shutil.copyfile(files[1], root / "validation" / label / f"dup-{files[1].name}")
    return root


def _spec(output: Path, data: Path, name: str, **overrides: object) -> StudySpec:
    values: dict[str, object] = dict(
        trials=3, epochs=2, image_size=64, space="small", retrain_seeds=1, n_boot=50,
        output=str(output), name=name, grace_epochs=1, data=str(data),
    )  # fmt: skip
    return StudySpec(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cv_run(local_ray, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One study: --cv 3, two objectives, a constraint on the parameter count.

    The recipe space: its first trial is the recipe (base width 2, about 25k parameters,
    feasible), and the second draws another base width; the assertions hold whatever is
    drawn.
    """
    output = tmp_path_factory.mktemp("sel-run")
    spec = _spec(
        output,
        data_dir,
        "cv",
        trials=2,
        cv=3,
        space="recipe",
        objectives="val_auc:max,params:min",
        constraint=(f"params<={WIDE}",),
    )
    return run_study(spec).run_dir


@pytest.mark.slow
def test_cv_trials_have_k_fold_curves_over_disjoint_stratified_folds(
    cv_run: Path, data_dir: Path
) -> None:
    rows = [r for r in read_rows(cv_run / "leaderboard.parquet") if r.status == "TERMINATED"]
    assert rows
    for row in rows:
        assert row.cv_folds == 3
        curves = row.fold_curves["val_auc"]
        assert len(curves) == 3 and all(len(c) == row.epochs_run for c in curves)
        finals = row.folds["val_auc"]
        assert len(finals) == 3 and finals == [c[-1] for c in curves]
        # The reported value is the mean over the folds (what ASHA and Optuna saw).
        assert row.val_auc == pytest.approx(sum(finals) / 3)
        assert row.val_auc_std is not None and row.val_auc_std >= 0
    folds = json.loads((cv_run / "folds.json").read_text())["folds"]
    sets = [set(f["validation"]) for f in folds]
    assert len(sets) == 3 and all(
        a.isdisjoint(b) for i, a in enumerate(sets) for b in sets[i + 1 :]
    )
    data = load_dataset(data_dir, DataConfig(image_size=64))
    pool = set(data.splits["train"].files) | set(data.splits["validation"].files)
    assert set().union(*sets) == pool  # the pool, and nothing of test
    for f in folds:
        counts = f["counts"]
        assert abs(counts["corona"] - counts["normal"]) <= 1, counts
    fold_of = {rel: i for i, s in enumerate(sets) for rel in s}
    clusters = [c for c in file_clusters(data) if len(c) > 1]
    assert len(clusters) >= 2  # the copies made above
    for cluster in clusters:
        assert len({fold_of[rel] for rel in cluster if rel in fold_of}) == 1, cluster


@pytest.mark.slow
def test_objectives_flag_the_front_and_the_report_draws_it(cv_run: Path) -> None:
    rows = [r for r in read_rows(cv_run / "leaderboard.parquet") if r.status == "TERMINATED"]
    assert all(r.pareto in (True, False) and r.model_params for r in rows)
    assert any(r.pareto for r in rows)
    for r in rows:  # no trial on the front is dominated by another
        if r.pareto:
            assert not any(
                (o.val_auc or 0) >= (r.val_auc or 0)
                and (o.model_params or 0) <= (r.model_params or 0)
                and (
                    (o.val_auc or 0) > (r.val_auc or 0)
                    or (o.model_params or 0) < (r.model_params or 0)
                )
                for o in rows
            )
    study = optuna.load_study(study_name=cv_run.name, storage=f"sqlite:///{cv_run / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    html = (cv_run / "report.html").read_text()
    part = html[html.index('id="selection"') :]
    part = part[: part.index("</section>")]
    assert "Pareto front: val_auc against params" in part
    tips = re.findall(r"<title>(trial [^<]+)</title>", part)
    assert len(tips) >= len(rows) and all("learning_rate=" in t for t in tips)
    assert "Selection honesty" in part and "retrained, test" in part


@pytest.mark.slow
def test_constraint_goes_to_optuna_and_keeps_infeasible_trials_out_of_the_pick(
    cv_run: Path,
) -> None:
    rows = {r.trial_id: r for r in read_rows(cv_run / "leaderboard.parquet")}
    done = [r for r in rows.values() if r.status == "TERMINATED"]
    for r in done:
        assert r.feasible == ((r.model_params or 0) <= WIDE)
    chosen = json.loads((cv_run / "selection.json").read_text())
    winner = chosen["winner"]
    assert winner is not None and rows[winner].feasible
    best = json.loads((cv_run / "best" / "metrics.json").read_text())
    assert best["trial_id"] == winner
    # Optuna recorded each trial's violation: params - 50000, <= 0 when feasible.
    study = optuna.load_study(study_name=cv_run.name, storage=f"sqlite:///{cv_run / 'optuna.db'}")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert finished
    for t in finished:
        (violation,) = t.system_attrs["constraints"]
        assert violation == pytest.approx(t.values[1] - WIDE)
    # A bound no trial meets: nothing is picked, and the board says why in one line.
    board = Leaderboard(cv_run / "leaderboard.parquet", _space(), "val_auc", "max", 2)
    sel = board.select(parse_objectives("val_auc,params"), (parse_constraint("params<10"),))
    assert sel.winner is None and board.winner() is None
    assert sel.notes[0].startswith("no trial is feasible: none of ") and "params<10" in sel.notes[0]


def _space():
    from search_spaces import get_space

    return get_space("recipe")


def test_no_feasible_trial_is_said_once_and_nothing_is_retrained(
    local_ray, data_dir: Path, tmp_path: Path
) -> None:
    spec = _spec(
        tmp_path, data_dir, "none", trials=1, epochs=1, retrain_seeds=1,
        constraint=("val_auc>1",), pick="max val_auc",
    )  # fmt: skip
    result = run_study(spec)
    assert result.best_trial is None and result.best is None
    chosen = json.loads((result.run_dir / "selection.json").read_text())
    assert chosen["winner"] is None
    assert len(chosen["notes"]) == 1 and chosen["notes"][0].startswith("no trial is feasible")
    assert not (result.run_dir / "best").exists()
    rows = read_rows(result.run_dir / "leaderboard.parquet")
    assert all(r.feasible is False for r in rows if r.status == "TERMINATED")
    html = (result.run_dir / "report.html").read_text()
    assert "no trial is feasible" in html


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cv", "1"], "--cv: cv must be 0 (off) or >= 2 folds, but got 1"),
        (["--objectives", "val_auc:max,size:min"], "--objectives: unknown objective 'size'"),
        (["--constraint", "val_sensitivity=>0.9"], "--constraint: operator must be one of"),
        (["--pick", "top val_auc"], "--pick: write 'knee' or 'max|min NAME"),
    ],
)
def test_bad_selection_flags_are_one_line_before_any_work(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    done = run_cli("--output", str(tmp_path), "--trials", "1", *flags, timeout=120)
    assert done.returncode != 0
    text = " ".join(done.stdout.split()) + " ".join(done.stderr.split())
    assert message in text, text
    assert "Traceback" not in done.stderr and not any(tmp_path.iterdir())


def test_more_folds_than_images_allow_is_refused_before_any_trial(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = run_cli(
        "--data", str(data_dir), "--output", str(out), "--image-size", "64", "--space",
        "small", "--trials", "1", "--cv", "12", timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    text = " ".join((done.stdout + done.stderr).split())
    assert "class 'corona' has 8 images" in text and "too few for" in text and "12" in text
    assert "Traceback" not in done.stderr and not out.exists()
