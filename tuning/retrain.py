"""After the search: retrain the winner and the two baselines with several seeds.

The baselines are the recipe as published (``baseline/``, the ``seed`` preset) and a
sensible default a competent engineer would try first (``default/``, the ``default``
preset: Adam 1e-3 without decay, widths 16..128, dropout 0.3); all three train under the
same budget and seeds.

Protocol (said in every metrics file): each seed trains on the train split for the full
epoch budget, with no early stopping and no checkpoint selection; the validation split is
only measured, and the test split is touched once per model, at the end. Of each role's
seeds, the one with the best *validation* score is exported, never one picked on test.
The seeds run where the engine runs work (Ray tasks, or this process), reading the data
set the engine already holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from covidxr_core import atomic
from covidxr_core.jsonsafe import dumps, jsonable
from tuning import holds
from tuning.errors import StudyError
from tuning.leaderboard import Leaderboard, TrialRow
from tuning.objective import best, direction
from tuning.results import HEADLINE, MeanStd, Metrics, RoleSummary

if TYPE_CHECKING:
    from search_spaces import SearchSpace
    from tuning.engines import Engine
    from tuning.progress import StudyObserver
    from tuning.spec import StudySpec

PROTOCOL = (
    "each seed trains on the train split for the full epoch budget (no early stopping); "
    "validation is measured, not used for selection within a run; test is evaluated once "
    "per model; the exported model is the seed with the best validation score"
)
PRESET_OF = {"baseline": "seed", "default": "default"}  # the recipe; the sensible default


@dataclass(frozen=True)
class SeedRun:
    """One retrained seed: its metrics, test probabilities and the saved model's bytes."""

    seed: int
    validation: dict[str, Any]
    test: dict[str, Any] | None
    history: list[dict[str, float]]
    wall_s: float
    fit_s: float
    test_probs: np.ndarray
    test_labels: np.ndarray
    model_bytes: bytes
    threshold: float | None = None  # chosen on this seed's validation predictions
    operating_point: str | None = None
    calibration: dict[str, Any] | None = None
    # The validation probabilities: what the race compares configurations on.
    val_probs: np.ndarray | None = None


def train_seed(
    train_config: Any, n_boot: int, data: Any, progress: Callable[[int], None] | None = None
) -> SeedRun:
    """Trains one seed (on whatever worker the engine chose) and returns its `SeedRun`.

    ``progress(epoch)`` is called after every epoch (the engine's progress channel).
    """
    from covidxr_core import configure_backend

    configure_backend()
    from covidxr_core import train

    callbacks = [lambda epoch, metrics: progress(epoch)] if progress is not None else []
    result = train(train_config, data, evaluate_test=True, n_boot=n_boot, callbacks=callbacks)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        result.model.save(path)
        model_bytes = path.read_bytes()
    test_split = data.splits["test"]
    probs = result.model.predict(test_split.images, batch_size=64, verbose=0)
    return SeedRun(
        seed=train_config.seed,
        validation=result.validation,
        test=result.test,
        history=result.history,
        wall_s=result.wall_s,
        fit_s=result.fit_s,
        test_probs=np.asarray(probs, dtype=np.float64),
        test_labels=np.asarray(test_split.labels),
        model_bytes=model_bytes,
        threshold=result.threshold,
        operating_point=train_config.operating_point,
        calibration=result.calibration,
        val_probs=np.asarray(result.validation_probs, dtype=np.float64),
    )


_ARRAYS = ("test_probs", "test_labels", "val_probs")  # kept as .npy beside run.json
SEEDS_DIR = "retrain"  # finished seeds, kept so that a resumed study does not train them again


def _seed_dir(run_dir: Path, role: str, config: Any, n_boot: int) -> Path:
    """Where one role's seed is kept: named by role, seed and a hash of what was trained."""
    blob = json.dumps(
        {"config": jsonable(dataclasses.asdict(config)), "n_boot": n_boot}, sort_keys=True
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return run_dir / SEEDS_DIR / f"{role}-seed{config.seed}-{key}"


def save_seed(folder: Path, run: SeedRun) -> None:
    """Writes a finished seed (metrics as JSON, arrays as .npy, the model as .keras) into
    ``folder`` at once: a temporary folder renamed into place."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with atomic.out_of_space(folder):
            tmp.mkdir(parents=True)
            fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(run)}
            arrays = {k: fields.pop(k) for k in _ARRAYS}
            if arrays["val_probs"] is None:
                del arrays["val_probs"]
            (tmp / "model.keras").write_bytes(fields.pop("model_bytes"))
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array)
            (tmp / "run.json").write_text(dumps(fields))
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written seed is never left behind
        raise


def load_seed(folder: Path) -> SeedRun | None:
    """A seed saved by `save_seed`, or None if there is none (or it is incomplete)."""
    try:
        fields = json.loads((folder / "run.json").read_text())
        arrays = {
            k: np.load(folder / f"{k}.npy", allow_pickle=False)
            for k in _ARRAYS
            if k != "val_probs" or (folder / f"{k}.npy").exists()
        }
        model = (folder / "model.keras").read_bytes()
    except (OSError, ValueError):
        return None
    return SeedRun(**fields, **arrays, model_bytes=model)


def mean_std(runs: Sequence[SeedRun], split: str) -> dict[str, MeanStd]:
    """Mean and sample standard deviation of each headline metric over seeds."""
    out: dict[str, MeanStd] = {}
    for name in HEADLINE:
        values = []
        for run in runs:
            metrics = run.validation if split == "validation" else run.test
            if metrics and metrics.get(name) is not None:
                values.append(float(metrics[name]))
        out[name] = MeanStd.of(values)
    return out


def pick_exported(runs: Sequence[SeedRun], metric: str) -> SeedRun:
    """The seed with the best validation score by the study's metric (the first on ties,
    the first seed when no seed has a value)."""
    key = metric.removeprefix("val_")
    chosen = best(runs, lambda r: r.validation.get(key), direction(metric))
    return chosen if chosen is not None else runs[0]


def write_role(
    out_dir: Path,
    role: str,
    train_config: Any,
    runs: Sequence[SeedRun],
    metric: str,
    extra: dict[str, Any],
    winner: TrialRow | None = None,
) -> RoleSummary:
    """Writes ``OUT/{model.keras, config.yaml, metrics.json, test_probs.npy, test_labels.npy}``."""
    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    exported = pick_exported(runs, metric)
    atomic.write_bytes(out_dir / "model.keras", exported.model_bytes)
    config_dict = dataclasses.asdict(train_config)
    config_dict.pop("seed", None)
    atomic.write_text(
        out_dir / "config.yaml", yaml.safe_dump(jsonable(config_dict), sort_keys=False)
    )
    summary = RoleSummary(
        role=role,
        protocol=PROTOCOL,
        seeds=tuple(r.seed for r in runs),
        exported_seed=exported.seed,
        test_mean_std=mean_std(runs, "test"),
        validation_mean_std=mean_std(runs, "validation"),
        exported_validation=Metrics.from_dict(jsonable(exported.validation)),
        exported_test=Metrics.from_dict(jsonable(exported.test)),
        per_seed=tuple(
            jsonable(
                {
                    "seed": r.seed,
                    "validation": r.validation,
                    "test": r.test,
                    "history": r.history,
                    "wall_s": r.wall_s,
                    "fit_s": r.fit_s,
                    "threshold": r.threshold,
                    "calibration": r.calibration,
                }
            )
            for r in runs
        ),
        threshold=exported.threshold,
        operating_point=exported.operating_point,
        calibration=jsonable(exported.calibration or {}),
        trial_id=winner.trial_id if winner is not None else None,
        params=dict(winner.params) if winner is not None else {},
        extra=extra,
    )
    atomic.write_text(out_dir / "metrics.json", dumps(summary.to_dict()))
    with atomic.replacing(out_dir / "test_probs.npy") as tmp:
        np.save(tmp, exported.test_probs)
    with atomic.replacing(out_dir / "test_labels.npy") as tmp:
        np.save(tmp, exported.test_labels)
    return summary


def _export(role_dir: Path, observer: StudyObserver) -> None:
    """``model.onnx`` and ``saved_model/`` beside ``model.keras`` (`covidxr_core.export`);
    a format that cannot be written here is a warning, not a failed study."""
    from covidxr_core.export import export_model_file

    exported = export_model_file(role_dir / "model.keras")
    if exported.files:
        observer.note("exported", ", ".join(str(p) for p in exported.files.values()))
    for name, why in exported.skipped.items():
        observer.warning(f"{role_dir.name}/: {name} export skipped: {why}")


def _lost_worker(exc: BaseException) -> bool:
    """Whether the engine lost the process or node running a seed (Ray's system failures:
    a crashed worker, a dead node or actor, a lost object), not the seed's own error."""
    kind = type(exc)
    names = {k.__name__ for k in kind.__mro__}
    from_ray = kind.__module__.startswith("ray.")
    return from_ray and bool(names & _LOST) and "RayTaskError" not in names


_LOST = {
    "WorkerCrashedError",
    "NodeDiedError",
    "RayActorError",
    "ActorDiedError",
    "ObjectLostError",
    "OwnerDiedError",
    "LocalRayletDiedError",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


@dataclass(frozen=True)
class Retrained:
    """The retrain's outcome: the winner row, each role's summary and exported test scores.

    ``race`` is the race's decision (`tuning.race.RaceResult`), None without a race;
    ``returned_default`` says that ``best/`` is the sensible default, handed back because
    tuning found nothing better; ``wall_s`` the seeds' wall time (race included).
    """

    winner: TrialRow
    roles: dict[str, RoleSummary]
    probs: dict[str, np.ndarray]  # role -> the exported seed's test probabilities
    race: Any = None
    returned_default: bool = False
    wall_s: float = 0.0


def _entrants(spec: StudySpec, board: Leaderboard) -> list[TrialRow]:
    """The search trials that go on to seeds: the race's top ``--race`` full-budget trials
    that are not the default, or the one trial the rule picks without a race."""
    from tuning.leaderboard import ranked

    if board.selection is not None:  # --objectives / --constraint / --pick: the user's rule
        pick = board.winner()
        return [pick] if pick is not None else []
    order = ranked(board.rows.values(), spec.metric, spec.mode)
    if spec.race == 0:
        return order[:1]
    full = [r for r in order if r.stop_reason == "completed" and r.origin != "default"]
    return full[: spec.race]


def retrain(
    spec: StudySpec,
    space: SearchSpace,
    configs: dict[str, Any],
    board: Leaderboard,
    run_dir: Path,
    engine: Engine,
    shared_data: Any,
    observer: StudyObserver,
    validation: tuple[np.ndarray, int] | None = None,
) -> Retrained | None:
    """Races the search's best against the sensible default, and retrains the roles.

    Every configuration trains ``spec.retrain_seeds`` seeds in one batch of engine jobs
    (all slots busy): the race's entrants (`_entrants`), the sensible default and the
    recipe. The race (`tuning.race.choose`, on validation only) decides which entrant is
    ``best``; its seeds are the ones just trained, so nothing trains twice, and where the
    default wins, ``best/`` is the default.

    Args:
        spec: The study.
        space: Its search space (maps a trial's values onto ``configs["search"]``).
        configs: ``search`` (what trials' values are applied to), ``baseline`` (the
            recipe) and ``default`` (the sensible default), each a `TrainConfig`.
        board: The finished search.
        run_dir: Where ``best/``, ``baseline/`` and ``default/`` are written.
        engine: Runs the seeds, on the data it already holds (``shared_data``).
        shared_data: What ``engine.share`` returned.
        observer: Told what is retrained.
        validation: The validation labels and the positive class's index (the race's
            paired interval needs them).

    Returns:
        None when no trial finished with a value (nothing to retrain).
    """
    from tuning.race import DEFAULT_KEY, Entrant, choose

    if board.winner() is None:
        if board.selection is None or not board.selection.notes:
            observer.warning("no trial finished: nothing to retrain")
        return None  # else the selection has said why (no trial is feasible)
    base = configs.get("search", configs["baseline"])
    default = configs["default"]
    racing = spec.race > 0 and board.selection is None
    # Configurations by label: the trials, then the baselines; a trial whose config is the
    # default's trains once, as the default.
    trained: dict[str, Any] = {}
    rows: dict[str, TrialRow] = {}
    for row in _entrants(spec, board):
        config = space.apply(row.params, base)
        if dataclasses.replace(config, seed=default.seed) == default:
            rows.setdefault(DEFAULT_KEY, row)
            continue
        trained[f"trial-{row.trial_id}"], rows[f"trial-{row.trial_id}"] = config, row
    trained[DEFAULT_KEY], trained["baseline"] = default, configs["baseline"]
    default_row = rows.get(DEFAULT_KEY) or next(
        (r for r in board.rows.values() if r.origin == "default"), None
    )
    seeds = [spec.seed + i for i in range(spec.retrain_seeds)]
    trials = [k for k in trained if k.startswith("trial-")]
    observer.note(
        "race" if racing else "retraining",
        (
            f"{len(trials)} trial(s) ({', '.join(t.removeprefix('trial-') for t in trials)}) race "
            "the sensible default"
            if racing
            else ", ".join(trials) or "the sensible default"
        )
        + f"; with the recipe, {len(trained)} configurations × seeds {seeds}, "
        f"{spec.epochs} epochs each",
    )
    labels = list(trained)
    jobs = [(label, dataclasses.replace(trained[label], seed=s)) for label in labels for s in seeds]
    folders = [_seed_dir(run_dir, label, config, spec.n_boot) for label, config in jobs]
    # A resumed study keeps the seeds that finished before the driver was killed.
    results: list[SeedRun | None] = [load_seed(f) for f in folders]
    todo = [i for i, r in enumerate(results) if r is None]
    if len(todo) < len(jobs):
        observer.note("retraining", f"kept {len(jobs) - len(todo)} finished seed(s) from before")

    observer.retrain_started(labels, seeds, spec.epochs)
    clock = time.monotonic()
    for i in set(range(len(jobs))) - set(todo):
        observer.retrain_progress(jobs[i][0], jobs[i][1].seed, spec.epochs, spec.epochs, True)

    def finished(k: int, run: SeedRun) -> None:
        save_seed(folders[todo[k]], run)
        label, config = jobs[todo[k]]
        observer.retrain_progress(label, config.seed, spec.epochs, spec.epochs, finished=True)
        holds.reached("seed-finished")  # saved: a test may stop the driver here

    def epoch_done(k: int, epoch: int) -> None:
        label, config = jobs[todo[k]]
        observer.retrain_progress(label, config.seed, epoch, spec.epochs)

    complete = False
    try:
        fresh = engine.run_jobs(
            train_seed,
            [(jobs[i][1], spec.n_boot) for i in todo],
            shared_data,
            spec,
            finished,
            on_epoch=epoch_done,
        )
        complete = True
    except Exception as exc:
        if not _lost_worker(exc):
            raise
        kept = sum(load_seed(f) is not None for f in folders)
        raise StudyError(
            f"retrain: a seed's worker was lost for good ({_first_line(exc)}); {kept} of "
            f"{len(jobs)} seeds finished and are kept in {run_dir / SEEDS_DIR}; continue "
            "with --resume to train only the others"
        ) from exc
    finally:
        wall = time.monotonic() - clock
        observer.retrain_finished(wall, complete)  # a SIGTERM or a failure: not "all done"
    for i, run in zip(todo, fresh, strict=True):
        results[i] = run
    done = [r for r in results if r is not None]
    assert len(done) == len(jobs)
    runs = {label: done[i * len(seeds) : (i + 1) * len(seeds)] for i, label in enumerate(labels)}

    race = None
    if racing:
        key = spec.metric.removeprefix("val_")
        entrants = [
            Entrant(
                DEFAULT_KEY if label == DEFAULT_KEY else rows[label].trial_id,
                "default" if label == DEFAULT_KEY else str(rows[label].origin or "search"),
                tuple(float(r.validation.get(key, float("nan"))) for r in runs[label]),
                # Without the validation labels, no paired interval: the bounds decide.
                tuple(r.val_probs for r in runs[label] if r.val_probs is not None)
                if validation is not None
                else (),
            )
            for label in [DEFAULT_KEY, *trials]
        ]
        labels_y, positive = validation if validation is not None else (np.empty(0), 0)
        race = choose(entrants, spec.metric, labels_y, positive, spec.n_boot, spec.seed)
        won = DEFAULT_KEY if race.winner == DEFAULT_KEY else f"trial-{race.winner}"
        observer.note("race", race.line)
    else:
        won = trials[0] if trials else DEFAULT_KEY
    returned_default = won == DEFAULT_KEY
    winner = rows.get(won) or default_row or TrialRow(trial_id=DEFAULT_KEY, origin="default")
    roles_of = {"best": won, "baseline": "baseline", "default": DEFAULT_KEY}
    common = {
        "budget_epochs": spec.epochs,
        "image_size": spec.image_size,
        "channels": spec.channels,
    }
    summaries = {
        role: write_role(
            run_dir / role,
            role,
            trained[label],
            runs[label],
            spec.metric,
            {**common, "preset": PRESET_OF[role]} if role in PRESET_OF else common,
            winner if role == "best" else None,
        )
        for role, label in roles_of.items()
    }
    _export(run_dir / "best", observer)
    probs = {r: pick_exported(runs[label], spec.metric).test_probs for r, label in roles_of.items()}
    return Retrained(winner, summaries, probs, race, returned_default, wall)


__all__ = [
    "PRESET_OF",
    "PROTOCOL",
    "SEEDS_DIR",
    "Retrained",
    "SeedRun",
    "mean_std",
    "pick_exported",
    "retrain",
    "train_seed",
    "write_role",
]
