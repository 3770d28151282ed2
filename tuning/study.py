"""One study, start to finish, in one direction:

    data -> put once -> engine search -> retrain -> external sets -> verdict -> summary
    -> model card -> report

Fatal problems (no data, a bad space, an unreachable cluster, a taken run name) stop
before any trial starts and leave no run folder. A trial that fails is recorded and the
study goes on.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covidxr_core import atomic
from covidxr_core.errors import ConfigError
from covidxr_core.jsonsafe import dumps
from tuning import holds, signals
from tuning.budget import early_stopping, startup_trials
from tuning.efficiency import study_efficiency, study_slots
from tuning.engines import SearchJob, get_engine
from tuning.errors import StudyError
from tuning.leaderboard import LEADERBOARD_FILE, Leaderboard, stop_counts
from tuning.progress import StudyObserver
from tuning.results import RoleSummary, Verdict
from tuning.runfolder import (
    DATA_FILES,
    STUDY_FILE,
    check_output,
    claim,
    data_change,
    data_change_refusal,
    data_digest,
    data_files,
    locate,
    taken,
)
from tuning.spec import StudySpec, check_installed, resume_conflicts, resume_refusal
from tuning.starts import starting_points
from tuning.trackers import end_trackers, require_trackers, with_trackers

if TYPE_CHECKING:
    import pandas as pd

    from covidxr_core.data import Dataset
    from covidxr_core.train import TrainConfig
    from tuning.retrain import Retrained

SUMMARY_FILE = "summary.json"
COMPARISON_FILE = "comparison.json"


@dataclass(frozen=True)
class StudyResult:
    """What `run_study` returns: the answer, the leaderboard and where the files are.

    Attributes:
        run_dir: The run folder.
        best_params: The winning trial's searched values (None if no trial finished).
        best_trial: Its trial id.
        leaderboard: One row per trial (the columns of ``leaderboard.parquet``).
        verdict: What the study may claim about the tuned model (None without a retrain).
        best: The retrained winner's summary (``best/metrics.json``), if retrained.
        baseline: The retrained recipe's summary, if retrained.
        default: The retrained sensible default's summary, if retrained.
        wall_s: The whole study's wall time.
        paths: The run's files by name (``leaderboard``, ``report``, ``best_model``...).
        returned_default: The race found nothing better than the sensible default, so
            ``best/`` is the default (``best_params`` are then the default trial's, or
            empty where the space cannot express the default).
        trials_short: Planned trials the search could not run (0 when all ran; the
            CLI then exits 3, and ``--resume`` tries them again).
    """

    run_dir: Path
    best_params: dict[str, Any] | None
    best_trial: str | None
    leaderboard: pd.DataFrame
    verdict: Verdict | None
    best: RoleSummary | None
    baseline: RoleSummary | None
    default: RoleSummary | None
    wall_s: float
    paths: dict[str, Path]
    returned_default: bool = False
    trials_short: int = 0

    @property
    def trials(self) -> int:
        return len(self.leaderboard)


def run_study(
    spec: StudySpec,
    resume: bool = False,
    observer: StudyObserver | None = None,
    *,
    given: frozenset[str] | set[str] | None = None,
    data_changed: str = "refuse",
) -> StudyResult:
    """Runs (or resumes) a study and returns its result.

    Args:
        spec: What to search, on which data, with what budget.
        resume: Continue the run folder ``spec.output/spec.name``: finished trials are
            kept, unfinished ones restarted. The saved study defines the search; only
            where and how it runs (`tuning.spec.RESUMABLE`: address, output, verbose,
            max_concurrent, cache_dir) may change.
        observer: Told what happens (a `tuning.progress.RichProgress` draws it in a
            terminal); by default nothing is shown.
        given: With ``resume``, the fields the caller set on purpose (the CLI's explicit
            flags); one that differs from the saved study is refused, never dropped.
            None: the fields that differ from `StudySpec`'s defaults.
        data_changed: With ``resume``, ``"refuse"`` (a data folder whose images were
            added, removed or changed since the study started stops the resume) or
            ``"ok"`` (go on, and say so).

    Raises:
        StudyError: before any trial, for a problem the caller must fix.
        ConfigError: an invalid search space or setting.
        DataError: the data folder cannot be used.
        tuning.signals.Terminated: SIGTERM arrived (under `signals.handling_sigterm`);
            the state is saved and ``resume`` continues.
    """
    observer = observer or StudyObserver()
    started = time.monotonic()
    if resume and not spec.name:
        raise StudyError("resume needs the name of the run to continue (StudySpec.name)")
    location = locate(spec.output, spec.name)
    run_dir = location.local
    if resume:
        location.pull()
        if not (run_dir / STUDY_FILE).is_file():  # before any data is decoded
            what = "holds no study to resume" if run_dir.exists() else "does not exist"
            raise StudyError(f"resume: {run_dir} {what} (no {STUDY_FILE})")
        spec = _resumed(spec, run_dir, given)
        _check_data_unchanged(spec, run_dir, data_changed, observer)
    check_installed(spec)
    check_output(location, spec.output)  # a file, a read-only folder, an unreachable URI
    # Everything that can be checked without a cluster is checked before the folder is made.
    from search_spaces import get_space

    space = get_space(spec.space)
    engine = get_engine(spec.engine)
    require_trackers(spec)  # a missing tracker library fails here, one line
    listing = data_files(spec.data) if not resume else None  # the snapshot's file list
    data = load_data(spec, observer)
    check_leakage(spec, data, observer)  # loud, and with --strict-leakage fatal
    from tuning.external import load_externals

    externals = load_externals(spec, data)  # a bad external folder fails before any trial
    for name, ext in externals.items():
        observer.note("external", f"{name}: {len(ext.labels)} images from {ext.source}")
    base = base_config(spec, data, space)
    space.apply(space.sample_defaults(), base)  # an invalid space fails here, not in trials
    recipe, default = recipe_config(spec, data), default_config(spec, data)
    starts, not_started = starting_points(space, base, default, recipe)
    held = space.held_fixed(base)  # every value no trial changes: summary and model card
    for note in not_started:
        observer.note("starts", note)
    folds = make_folds(spec, data, observer) if spec.cv else None  # too few images: here
    if not resume and run_dir.exists():
        raise taken(run_dir)

    engine.start(spec)
    signals.reinstall()  # ray.init took SIGTERM over; a SIGTERM now stops the study cleanly
    try:
        # A full disk under the run folder, whoever's write hit it, is one line naming it.
        with claim(run_dir, resume), _library_logs(spec, run_dir), atomic.out_of_space(run_dir):
            if not resume:
                _write_study(run_dir, spec, listing)
            else:
                _extend_study_file(run_dir, spec, observer)
            engine.check_storage(location)
            location.push(STUDY_FILE, DATA_FILES)
            observer = with_trackers(spec, run_dir, observer)  # MLflow, TensorBoard
            shared = engine.share(data)  # the one copy every trial and retrain seed reads
            early = early_stopping(
                spec.early_stop, spec.epochs, spec.grace_epochs, _ranking_per_class(data, folds)
            )
            observer.note(
                "plan",
                "first trials: "
                + (", ".join(s.origin for s in starts) or "none (the space holds no known config)")
                + f" (full budget); TPE's random start: "
                f"{startup_trials(spec.trials, len(starts))} trials; {early.why}",
            )
            job = SearchJob(
                spec, space, shared, base, location, resume, observer, folds, tuple(starts), early
            )
            if folds is not None:
                _write_folds(run_dir, spec, data, folds)
            with signals.searching():  # SIGTERM: Ray Tune saves its state, then Terminated
                board = engine.search(job)
            observer.note("search", f"{len(board.rows)} trials in {board.search_wall_s or 0:.1f}s")
            holds.reached("search-ended")  # a test may stop the driver here (tuning.holds)
            if spec.selecting:
                _select(spec, board, run_dir, observer)
            retrained = verdict = None
            if spec.retrain_seeds > 0:
                from tuning.retrain import retrain

                configs = {"search": base, "baseline": recipe, "default": default}
                retrained = retrain(
                    spec, space, configs, board, run_dir, engine, shared, observer,
                    (data.splits["validation"].labels, data.positive_index),
                )  # fmt: skip
            if retrained is not None:
                verdict = _conclude(spec, data, retrained, externals, run_dir, observer, held)
            wall = time.monotonic() - started
            _write_summary(
                run_dir, spec, data, board, wall, verdict, engine.hardware(),
                held=held, starts=starts, early=early, retrained=retrained,
            )  # fmt: skip
            report = _report(run_dir, observer)
            location.push()
            if location.uri:
                observer.note("uploaded", location.uri)
    finally:
        end_trackers(observer, run_dir)
        engine.stop()
    winner = retrained.winner if retrained is not None else board.winner()
    return StudyResult(
        run_dir=run_dir,
        best_params=dict(winner.params) if winner is not None else None,
        best_trial=winner.trial_id if winner is not None else None,
        leaderboard=board.to_pandas(),
        verdict=verdict,
        best=retrained.roles.get("best") if retrained is not None else None,
        baseline=retrained.roles.get("baseline") if retrained is not None else None,
        default=retrained.roles.get("default") if retrained is not None else None,
        wall_s=wall,
        paths=_paths(run_dir, report),
        returned_default=retrained.returned_default if retrained is not None else False,
        trials_short=board.short_by,
    )


def extend_study(
    name: str,
    trials: int,
    output: str = "runs",
    observer: StudyObserver | None = None,
) -> StudyResult:
    """Grows the finished (or stopped) study ``output/name`` to ``trials`` trials.

    The same as ``tuning/run.py --name NAME --resume --trials N``: the trials already
    run are kept, the search asks the same Optuna study for the difference (TPE keeps
    all it learned), and the race, retrain and report run again over every trial (seeds
    already trained for an unchanged configuration are kept). Every other setting is the
    saved study's.

    Raises:
        StudyError: no study there, or ``trials`` is below the saved count.
    """
    spec = StudySpec(name=name, output=output, trials=trials)
    return run_study(spec, resume=True, observer=observer, given={"trials", "output", "name"})


def _conclude(
    spec: StudySpec,
    data: Dataset,
    retrained: Retrained,
    externals: dict[str, Any],
    run_dir: Path,
    observer: StudyObserver,
    held_fixed: dict[str, Any],
) -> Verdict:
    """External evaluation, the verdict, ``comparison.json`` and the model card."""
    from tuning import external
    from tuning.modelcard import write_model_card
    from tuning.verdict import decide

    class_names = tuple(data.class_names)
    by_set: dict[str, dict[str, Any]] = {}
    for role, summary in list(retrained.roles.items()):
        scores = external.evaluate(
            run_dir / role / "model.keras", externals, data.positive_index, class_names,
            summary.threshold, spec.n_boot, spec.seed,
        )  # fmt: skip
        if scores:
            summary = dataclasses.replace(summary, external=scores)
            retrained.roles[role] = summary
            atomic.write_text(run_dir / role / "metrics.json", dumps(summary.to_dict()))
        for name, metrics in scores.items():
            by_set.setdefault(name, {})[role] = metrics
    best = retrained.roles["best"]
    notes = external.source_warnings(best.exported_test, best.external)
    leakage, checked = _train_test_leakage(spec, data)
    verdict = decide(
        retrained.roles,
        retrained.probs,
        data.splits["test"].labels,
        data.positive_index,
        class_names,
        n_boot=spec.n_boot,
        seed=spec.seed,
        floor=spec.sens_spec_floor,
        leakage=leakage,
        leakage_checked=checked,
        leakage_clear=(
            "synthetic demo data: generated images, no patient can be in two splits"
            if data.synthetic
            else "no duplicate found between train and test"
        ),
        external=by_set,
        external_notes=notes,
        returned_default=retrained.returned_default,
    )
    atomic.write_text(run_dir / COMPARISON_FILE, dumps(verdict.to_dict()))
    choice = {
        "line": retrained.race.line if retrained.race is not None else None,
        "origin": "the sensible default"
        if retrained.returned_default
        else (f"trial {retrained.winner.trial_id} ({retrained.winner.origin or 'search'})"),
        "held_fixed": held_fixed,
    }
    write_model_card(run_dir, spec, data, retrained.roles, verdict, choice)
    observer.comparison(retrained.roles, verdict)  # a failed external check among its lines
    return verdict


LEAKAGE_SHOWN = 5  # pairs named in the warning (and in --strict-leakage's error: 10)


def check_leakage(spec: StudySpec, data: Dataset, observer: StudyObserver) -> list[str]:
    """Says at the start, loudly, which images are duplicated across splits.

    Uses `covidxr_core.data.find_duplicates` (exact and near-duplicate radiographs in two
    splits, after carving). Synthetic data are not checked.

    Returns:
        The pairs, one line each.

    Raises:
        StudyError: ``spec.strict_leakage`` and a pair was found (or the check failed).
    """
    if data.synthetic:
        return []
    from covidxr_core.data import find_duplicates

    try:
        pairs = [p.describe() for p in find_duplicates(data, _data_config(spec))]
    except Exception as exc:
        if spec.strict_leakage:
            raise StudyError(f"--strict-leakage: the leakage check failed: {exc}") from exc
        observer.warning(f"leakage check failed ({type(exc).__name__}: {exc}); not checked")
        return []
    if not pairs:
        return []
    shown = "; ".join(pairs[:LEAKAGE_SHOWN]) + (
        f"; ... {len(pairs) - LEAKAGE_SHOWN} more" if len(pairs) > LEAKAGE_SHOWN else ""
    )
    if spec.strict_leakage:
        named = "; ".join(pairs[: 2 * LEAKAGE_SHOWN])
        more = len(pairs) - 2 * LEAKAGE_SHOWN
        raise StudyError(
            f"--strict-leakage: {len(pairs)} image pair(s) are duplicated across splits, so "
            f"validation/test scores would be inflated: {named}"
            + (f"; ... {more} more" if more > 0 else "")
            + " (fix the splits, or pass --drop-leaked to remove them)"
        )
    observer.warning(
        f"LEAKAGE: {len(pairs)} image pair(s) are duplicated across splits (validation/test "
        f"scores will be inflated; --drop-leaked removes them, --strict-leakage refuses to "
        f"run): {shown}"
    )
    return pairs


def _library_logs(spec: StudySpec, run_dir: Path) -> Any:
    """Ray's loggers into ``run_dir/ray.log`` for the run (unless ``-v``)."""
    import contextlib

    from tuning.progress import LIBRARY_LOG_FILE, library_logs_to

    if spec.verbose:
        return contextlib.nullcontext()
    return library_logs_to(run_dir / LIBRARY_LOG_FILE)


def _train_test_leakage(spec: StudySpec, data: Dataset) -> tuple[list[str], bool]:
    """Duplicate radiographs between train and test, one line each; and whether checked."""
    if data.synthetic:
        return [], True  # generated images: no patient can be in two splits
    from covidxr_core.data import find_duplicates

    try:
        pairs = find_duplicates(data, _data_config(spec))
    except Exception:  # the check must not take a finished study down
        return [], False
    return [p.describe() for p in pairs if {p.split_a, p.split_b} == {"train", "test"}], True


def _data_config(spec: StudySpec) -> Any:
    from covidxr_core.data import DataConfig

    extra: dict[str, Any] = {}
    if spec.groups:
        extra["groups"] = spec.groups
    if spec.drop_leaked:
        extra["drop_leaked"] = True
    return DataConfig(
        image_size=spec.image_size,
        channels=spec.channels,
        cache_dir=spec.cache_dir,
        seed=spec.seed,
        positive_class=spec.positive_class,
        **extra,
    )


def _write_study(run_dir: Path, spec: StudySpec, listing: dict[str, list[int]] | None) -> None:
    """``study.json`` (the spec, and a digest of the data folder's file list) and
    ``data_files.json`` (that list), which ``--resume`` compares the folder against."""
    saved = json.loads(spec.to_json())
    if listing is not None:
        saved["data_snapshot"] = {
            "files": len(listing),
            "bytes": sum(size for size, _ in listing.values()),
            "digest": data_digest(listing),
            "list": DATA_FILES,
        }
        atomic.write_text(run_dir / DATA_FILES, json.dumps(listing, sort_keys=True))
    atomic.write_text(run_dir / STUDY_FILE, json.dumps(saved, indent=2, sort_keys=True))


def _extend_study_file(run_dir: Path, spec: StudySpec, observer: StudyObserver) -> None:
    """Records a grown ``--trials`` in ``study.json``, so that a later plain ``--resume``
    keeps the extended plan (the rest of the file, the data snapshot included, stays)."""
    saved = json.loads((run_dir / STUDY_FILE).read_text())
    before = saved.get("trials")
    if before is None or spec.trials <= before:
        return
    saved["trials"] = spec.trials
    atomic.write_text(run_dir / STUDY_FILE, json.dumps(saved, indent=2, sort_keys=True))
    observer.note(
        "extending",
        f"--trials {spec.trials} (was {before}): the search asks the same Optuna study for "
        f"{spec.trials - before} more, then the race, retrain and report run again on all "
        f"{spec.trials}",
    )


def _check_data_unchanged(
    spec: StudySpec, run_dir: Path, data_changed: str, observer: StudyObserver
) -> None:
    """Refuses to resume on a data folder that changed since the study started.

    The trials so far trained on the images decoded then; new trials would train on
    others, so their scores would not compare. ``data_changed="ok"`` goes on and says so.

    Raises:
        StudyError: naming the folder and what changed (added, removed, changed files).
    """
    if data_changed not in ("refuse", "ok"):
        raise StudyError(f"--data-changed must be refuse or ok, but got {data_changed!r}")
    change = data_change(spec.data, run_dir)
    if change is None:
        return
    if data_changed == "ok":
        observer.warning(
            f"--data-changed ok: the data folder {spec.data} changed since the study "
            f"started ({change}); continuing on the folder as it is now"
        )
        return
    raise StudyError(data_change_refusal(spec.data, change))


def _resumed(
    spec: StudySpec, run_dir: Path, given: frozenset[str] | set[str] | None = None
) -> StudySpec:
    """The saved study, with what may change on resume taken from ``spec``.

    Raises:
        StudyError: a study-defining field in ``given`` differs from the saved study's.
    """
    if not (run_dir / STUDY_FILE).exists():
        return spec  # claim() says there is nothing to resume
    saved = StudySpec.from_json(run_dir / STUDY_FILE)
    if given is None:
        defaults = StudySpec()
        given = {
            f.name
            for f in dataclasses.fields(StudySpec)
            if getattr(spec, f.name) != getattr(defaults, f.name)
        }
    conflicts = resume_conflicts(saved, spec, given)
    if conflicts:
        raise StudyError(resume_refusal(run_dir, conflicts))
    grown = "trials" in given and spec.trials > saved.trials  # --resume --trials N extends
    return dataclasses.replace(
        saved,
        trials=spec.trials if grown else saved.trials,
        address=spec.address,
        verbose=spec.verbose,
        output=spec.output,
        max_concurrent=spec.max_concurrent or saved.max_concurrent,
        cache_dir=spec.cache_dir if "cache_dir" in given else saved.cache_dir,
    )


def load_data(spec: StudySpec, observer: StudyObserver | None = None) -> Dataset:
    """The study's data set, decoded once (a cache hit after the first time).

    Raises:
        StudyError: a split is empty.
    """
    from covidxr_core.data import load_dataset

    observer = observer or StudyObserver()
    t0 = time.monotonic()
    try:
        data = load_dataset(spec.data, _data_config(spec))
    except ConfigError as exc:
        if "DataConfig.positive_class" not in str(exc):
            raise
        # The one flag that sets it, and the class folders it may name (before any decode).
        raise StudyError(
            str(exc).replace("DataConfig.positive_class", "--positive-class")
            + f" (the class folders of {spec.data or 'the demo data'})"
        ) from None
    counts = data.counts()
    label = "synthetic demo data" if data.synthetic else data.source
    observer.note(
        "data",
        f"{label}: "
        + ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
        + f" images at {data.image_size}px×{data.channels}"
        + (" (cache hit)" if data.cache_hit else f" (decoded in {time.monotonic() - t0:.1f}s)"),
    )
    for note in data.notes:
        observer.note("  ·", note)
    for split in ("train", "validation", "test"):
        if len(data.splits[split]) == 0:
            raise StudyError(f"the {split} split of {label} is empty")
    return data


def recipe_config(spec: StudySpec, data: Dataset) -> TrainConfig:
    """The recipe (``seed`` preset) under the study's budget: the published baseline."""
    return _preset_config(spec, data, "seed")


def default_config(spec: StudySpec, data: Dataset) -> TrainConfig:
    """The sensible default (``default`` preset) under the study's budget: the baseline a
    competent engineer would try first, and the configuration tuning must beat."""
    return _preset_config(spec, data, "default")


def base_config(spec: StudySpec, data: Dataset, space: Any = None) -> TrainConfig:
    """What each trial's sampled values change: the search space's base (the sensible
    default for the built-in ``default`` and ``small`` spaces, the recipe for ``recipe``)
    at the study's image size and budget."""
    if space is None:
        from search_spaces import get_space

        space = get_space(spec.space)
    return _preset_config(spec, data, space.preset)


def _preset_config(spec: StudySpec, data: Dataset, name: str) -> TrainConfig:
    from covidxr_core.config import preset
    from covidxr_core.train import TrainConfig

    model = preset(
        name,
        image_size=spec.image_size,
        channels=spec.channels,
        class_names=tuple(data.class_names),
        positive_class=data.positive_class,
    )
    return TrainConfig(
        model=model,
        epochs=spec.epochs,
        batch_size=32,
        seed=spec.seed,
        precision=spec.precision,
        operating_point=spec.operating_point,
    )


def _ranking_per_class(data: Dataset, folds: list[Any] | None) -> int:
    """Images of the smaller class in the split that ranks trials (one fold with --cv)."""
    import numpy as np

    if folds:
        from covidxr_core.data._folds import pooled_labels

        labels = pooled_labels(data)
        return min(
            int(np.bincount(labels[val], minlength=len(data.class_names)).min()) for _, val in folds
        )
    labels = np.asarray(data.splits["validation"].labels)
    return int(np.bincount(labels, minlength=len(data.class_names)).min())


def _write_summary(
    run_dir: Path,
    spec: StudySpec,
    data: Dataset,
    board: Leaderboard,
    wall: float,
    verdict: Verdict | None,
    hardware: dict[str, float],
    *,
    held: dict[str, Any] | None = None,
    starts: Any = (),
    early: Any = None,
    retrained: Retrained | None = None,
) -> None:
    counts = stop_counts(board.rows.values())
    summary = {
        "spec": dataclasses.asdict(spec),
        "data": {
            "source": data.source,
            "synthetic": data.synthetic,
            "counts": data.counts(),
            "notes": list(data.notes),
            "image_size": data.image_size,
            "channels": data.channels,
            "positive_class": data.positive_class,
            # DICOM View Position per test image (test_probs.npy order), for the report
            "test_views": [
                data.image_meta.get(f, {}).get("view_position") for f in data.splits["test"].files
            ]
            if data.image_meta
            else [],
        },
        "trials": len(board.rows),
        "stop_reasons": {k: v for k, v in counts.items() if v},
        "wall_s": wall,
        "search_wall_s": board.search_wall_s,
        "hardware": hardware,
        # training time over search time, and the overhead per trial (tuning.efficiency)
        "efficiency": study_efficiency(
            board.rows.values(), board.search_wall_s, study_slots(spec, hardware)
        ),
        "verdict": verdict.text if verdict is not None else None,
        "selection": board.selection.to_dict() if board.selection is not None else None,
        # Every value no trial changes (the space's base after `fixed`, and the budget).
        "held_fixed": held or {},
        "starts": [{"origin": s.origin, "values": s.values} for s in starts],
        "early_stopping": (
            {"enabled": early.enabled, "grace": early.grace, "why": early.why}
            if early is not None
            else None
        ),
        "origins": {r.trial_id: r.origin for r in board.rows.values()},
        "race": _race_summary(retrained),
        "returned_default": retrained.returned_default if retrained is not None else None,
    }
    atomic.write_text(run_dir / SUMMARY_FILE, dumps(summary))


def _race_summary(retrained: Retrained | None) -> dict[str, Any] | None:
    """The race's decision and its seeds' wall time (the retrain's, race included)."""
    if retrained is None:
        return None
    race = retrained.race.to_dict() if retrained.race is not None else {"winner": None}
    return {
        **race,
        "wall_s": retrained.wall_s,
        "winner_origin": retrained.winner.origin,
        "returned_default": retrained.returned_default,
    }


FOLDS_FILE = "folds.json"
SELECTION_FILE = "selection.json"


def make_folds(spec: StudySpec, data: Dataset, observer: StudyObserver) -> list[Any]:
    """The ``--cv`` folds every trial trains (`covidxr_core.data._folds.cv_folds`).

    Raises:
        StudyError: too few images (or clusters) of a class for ``spec.cv`` folds.
    """
    from covidxr_core.data._folds import cv_folds, fold_counts
    from covidxr_core.errors import DataError

    try:
        folds = cv_folds(data, spec.cv, spec.seed, config=_data_config(spec))
    except DataError as exc:
        message = str(exc)  # it names the folds once; say which flag where it does not
        raise StudyError(message if "cv" in message else f"--cv {spec.cv}: {message}") from None
    counts = fold_counts(data, folds)
    observer.note(
        "cv",
        f"{spec.cv} folds of train + validation pooled ({sum(len(v) for _, v in folds)} "
        "images; duplicates and groups kept in one fold), validation per fold: "
        + "; ".join(", ".join(f"{c} {n}" for c, n in fold.items()) for fold in counts),
    )
    return folds


def _write_folds(run_dir: Path, spec: StudySpec, data: Dataset, folds: list[Any]) -> None:
    """``folds.json``: each fold's validation files and class counts."""
    from covidxr_core.data._folds import fold_counts, pooled_files

    files = pooled_files(data)
    record = {
        "k": spec.cv,
        "seed": spec.seed,
        "pooled": ["train", "validation"],
        "folds": [
            {"validation": [files[i] for i in val], "counts": counts}
            for (_, val), counts in zip(folds, fold_counts(data, folds), strict=True)
        ],
    }
    atomic.write_text(run_dir / FOLDS_FILE, dumps(record))


def _select(spec: StudySpec, board: Leaderboard, run_dir: Path, observer: StudyObserver) -> None:
    """Flags the front and feasibility on the board, picks the winner, writes selection.json."""
    from tuning.selection import parse_constraint, parse_pick

    selection = board.select(
        spec.objective_list(),
        tuple(parse_constraint(c) for c in spec.constraint),
        parse_pick(spec.pick),
    )
    board.save()
    atomic.write_text(run_dir / SELECTION_FILE, dumps(selection.to_dict()))
    for note in selection.notes:
        observer.warning(note)
    if selection.winner is not None:
        observer.note(
            "pick",
            f"trial {selection.winner} by {selection.rule} ({len(selection.front)} on the "
            f"Pareto front, {len(selection.feasible)} of {len(selection.candidates)} feasible)",
        )


def _report(run_dir: Path, observer: StudyObserver) -> Path | None:
    """Writes report.html; a failing report warns instead of failing a finished study."""
    try:
        from tuning.reporting import write_report

        return write_report(run_dir)
    except Exception as exc:
        observer.warning(
            f"report.html not written: {exc} (retry with: python tuning/report.py {run_dir})"
        )
        return None


def _paths(run_dir: Path, report: Path | None) -> dict[str, Path]:
    candidates = {
        "study": run_dir / STUDY_FILE,
        "leaderboard": run_dir / LEADERBOARD_FILE,
        "optuna": run_dir / "optuna.db",
        "summary": run_dir / SUMMARY_FILE,
        "comparison": run_dir / COMPARISON_FILE,
        "best_model": run_dir / "best" / "model.keras",
        "best_onnx": run_dir / "best" / "model.onnx",
        "best_saved_model": run_dir / "best" / "saved_model",
        "baseline_model": run_dir / "baseline" / "model.keras",
        "default_model": run_dir / "default" / "model.keras",
        "model_card": run_dir / "best" / "MODEL_CARD.md",
    }
    paths = {k: p for k, p in candidates.items() if p.exists()}
    if report is not None:
        paths["report"] = report
    return paths


__all__ = [
    "StudyResult",
    "base_config",
    "check_leakage",
    "default_config",
    "extend_study",
    "load_data",
    "recipe_config",
    "run_study",
]
