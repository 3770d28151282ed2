"""One study, start to finish: data, search, retrain, baseline, comparison, report.

Fatal problems (no data, a bad space, an unreachable cluster, a taken run name) stop
before any trial starts. A trial that fails is recorded and the study goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from covidxr_core.errors import ConfigError, CovidxrError
from tuning.spec import StudySpec
from tuning._storage import RunLocation, check_visible_from_all_nodes, locate

# Ray reads these when it is imported: checkpoint the experiment at every step (cheap at
# this scale) so a killed driver loses no finished trial, and keep its banners quiet.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@dataclass
class StudyOutcome:
    """Where a finished study left its files, and its headline answer."""

    run_dir: Path
    leaderboard: Path
    trials: int
    verdict: str | None
    wall_s: float


class StudyError(CovidxrError):
    """A problem that stops the study before (or instead of) running trials."""


def resolve_location(spec: StudySpec) -> RunLocation:
    name = spec.name or time.strftime("%Y%m%d-%H%M%S")
    return locate(spec.output, name)


@contextlib.contextmanager
def _claim(run_dir: Path, resume: bool):
    """Creates the run folder (or re-opens it to resume) and holds a lock while running.

    Two runs with the same name never write into the same folder: a new run fails if the
    folder exists, and a second process resuming it fails while the first holds the lock.
    """
    if resume:
        if not (run_dir / "study.json").exists():
            raise StudyError(f"--resume: {run_dir} holds no study to resume (no study.json)")
    else:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise StudyError(
                f"run folder {run_dir} already exists: pass --resume to continue it, "
                "or choose another --name"
            ) from None
    lock = open(run_dir / ".lock", "w")  # noqa: SIM115 - held for the whole study
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StudyError(f"{run_dir} is in use by another running study") from None
    try:
        yield run_dir
    except CovidxrError:
        # A fatal problem found before any trial ran leaves no half-made run behind, so
        # the same command works once the problem is fixed.
        if not resume and not (run_dir / "leaderboard.parquet").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _init_ray(spec: StudySpec) -> None:
    import ray

    level = logging.INFO if spec.verbose else logging.WARNING
    if not spec.verbose:
        # Ray announces its (on by default) token authentication on every local start.
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        # "Trials did not complete: [...]": the progress display and leaderboard say which.
        logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
    env = {
        k: os.environ[k]
        for k in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "COVIDXR_CACHE")
        if k in os.environ
    }
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A worker is reused for the next trial only if the stopped trial's thread ends within
    # this many seconds (Ray's default: 2). Unwinding Keras after ASHA's stop can take
    # longer on a busy machine, and a fresh worker process costs far more than waiting.
    env.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "30")
    kwargs: dict[str, Any] = dict(
        log_to_driver=spec.verbose,
        logging_level=level,
        runtime_env={"env_vars": env},
        ignore_reinit_error=True,
    )
    try:
        if spec.address:
            _check_reachable(spec.address)
            ray.init(address=spec.address, **kwargs)
        else:
            # Local: the dashboard, if installed, answers on this machine only.
            # address="local" always starts a private instance: a bare ray.init() would
            # join any cluster another process started on this machine (`ray start`, a
            # test's cluster) and die with it.
            ray.init(address="local", dashboard_host="127.0.0.1", include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise StudyError(
            f"cannot connect to the Ray cluster at --address {spec.address!r}: {exc}. "
            "Is the head node up (`ray status`)?"
        ) from None


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fails fast on a host:port nobody answers at; Ray itself would retry for minutes."""
    import socket

    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise StudyError(
            f"cannot connect to the Ray cluster at --address {address!r}: {exc}. "
            "Is the head node up (`ray status`), and is the port right (default 6379)?"
        ) from None


def _gpus_per_trial(spec: StudySpec) -> float:
    if spec.gpus_per_trial is not None:
        return spec.gpus_per_trial
    import ray

    return 0.25 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def run_study(
    spec: StudySpec, resume: bool = False, console: Console | None = None
) -> StudyOutcome:
    """Runs (or resumes) a study and returns where its results are."""
    console = console or Console()
    started = time.monotonic()
    location = resolve_location(spec)
    run_dir = location.local
    if resume:
        location.pull()
    if resume and (run_dir / "study.json").exists():
        saved = StudySpec.from_json(run_dir / "study.json")
        # The saved study defines the search; only how it runs may change on resume.
        spec = dataclasses.replace(
            saved,
            address=spec.address,
            verbose=spec.verbose,
            output=spec.output,
            max_concurrent=spec.max_concurrent or saved.max_concurrent,
        )
    # Everything that can be checked without Ray is checked before the folder is made.
    from search_spaces import get_space

    space = get_space(spec.space)
    data = _load_data(spec, console)
    base = _base_config(spec, data)
    space.apply(space.sample_defaults(), base)  # an invalid space fails here, not in trials

    if not resume and run_dir.exists():
        raise StudyError(
            f"run folder {run_dir} already exists: pass --resume to continue it, "
            "or choose another --name"
        )
    _init_ray(spec)
    with _claim(run_dir, resume):
        if not resume:
            (run_dir / "study.json").write_text(spec.to_json())
        check_visible_from_all_nodes(location)
        location.push("study.json")
        if spec.engine == "keras-tuner":
            from tuning._kt_search import run_search
        else:
            from tuning._search import run_search

        board = run_search(spec, space, data, base, location, resume, console)
        console.print(f"[bold]search[/] {len(board.rows)} trials in {board.search_wall_s:.1f}s")
        outcome_verdict = None
        if spec.retrain_seeds > 0:
            from tuning._final import retrain_and_compare

            outcome_verdict = retrain_and_compare(spec, space, data, base, board, run_dir, console)
        wall = time.monotonic() - started
        _write_summary(run_dir, spec, data, board, wall, outcome_verdict)
        try:
            from tuning.report import write_report

            write_report(run_dir)
        except Exception as exc:  # the study's results stand even if the report fails
            console.print(
                f"[yellow]warning: report.html not written: {exc}[/] "
                f"(retry with: python tuning/report.py {run_dir})"
            )
        location.push()
        if location.uri:
            console.print(f"[bold]uploaded[/] {location.uri}")
        return StudyOutcome(
            run_dir, run_dir / "leaderboard.parquet", len(board.rows), outcome_verdict, wall
        )


def _load_data(spec: StudySpec, console: Console) -> Any:
    from covidxr_core.data import DataConfig, load_dataset

    config = DataConfig(
        image_size=spec.image_size, channels=spec.channels, cache_dir=spec.cache_dir, seed=spec.seed
    )
    t0 = time.monotonic()
    data = load_dataset(spec.data, config)
    counts = data.counts()
    label = "synthetic demo data" if data.synthetic else data.source
    console.print(
        f"[bold]data[/] {label}: "
        + ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
        + f" images at {data.image_size}px×{data.channels}"
        + (" (cache hit)" if data.cache_hit else f" (decoded in {time.monotonic() - t0:.1f}s)")
    )
    for note in data.notes:
        console.print(f"  [dim]· {note}[/]")
    for split in ("train", "validation", "test"):
        if len(data.splits[split]) == 0:
            raise StudyError(f"the {split} split of {label} is empty")
    return data


def _base_config(spec: StudySpec, data: Any) -> Any:
    from covidxr_core.model import preset
    from covidxr_core.train import TrainConfig

    model = preset(
        "seed",
        image_size=spec.image_size,
        channels=spec.channels,
        class_names=tuple(data.class_names),
        positive_class=data.positive_class,
    )
    return TrainConfig(
        model=model, epochs=spec.epochs, batch_size=32, seed=spec.seed, precision=spec.precision
    )


def _write_summary(
    run_dir: Path, spec: StudySpec, data: Any, board: Any, wall: float, verdict: str | None
) -> None:
    import ray

    rows = list(board.rows.values())
    stops: dict[str, int] = {}
    for row in rows:
        stops[row["stop_reason"]] = stops.get(row["stop_reason"], 0) + 1
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
        },
        "trials": len(rows),
        "stop_reasons": stops,
        "wall_s": wall,
        "search_wall_s": board.search_wall_s,
        "hardware": {
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": ray.cluster_resources().get("CPU", 0),
            "gpus": ray.cluster_resources().get("GPU", 0),
        },
        "verdict": verdict,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


__all__ = ["ConfigError", "StudyError", "StudyOutcome", "run_study"]
