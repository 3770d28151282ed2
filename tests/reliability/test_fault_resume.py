"""Stop a study anywhere, then finish it; or finish it, then extend it.

A real `tuning/run.py` process with a real local Ray, on the embedded demo data at 64 px.

- The driver is killed with SIGKILL to its whole process group at each stage of a study
  (before a trial's first result, after a trial finished, between search and retrain,
  after a retrain seed finished), five times in a row at that stage, then resumed to the
  end. The kill point is one the test controls (`tuning.holds`: the driver writes a file
  there and waits to be killed), never a race with a timer. Every resume must end with
  every planned trial, no Optuna trial RUNNING, unique trial ids and the trials finished
  before each kill unchanged; after each kill no process of the study may be left.
- The whole process group gets SIGTERM while a trial trains (``timeout``, systemd,
  ``scancel``): 10 s later no process of the study is left, and ``--resume`` finishes it.
- A 4-trial study is extended with ``--resume --trials 8``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from _figures import observe
from _studyproc import finish, rows, start, wait_for

from tuning.holds import FILE_VAR, HOLD_VAR

pytestmark = pytest.mark.slow

KILLS = 5  # kills in a row at each stage


def _args(output: Path, name: str, trials: int, seeds: int = 0) -> list[str]:
    return [
        "--trials", str(trials), "--epochs", "1", "--image-size", "64", "--space", "small",
        "--retrain-seeds", str(seeds), "--race", "1", "--max-concurrent", "1",
        "--n-boot", "50", "--output", str(output), "--name", name,
    ]  # fmt: skip


def study_processes(session: int) -> list[int]:
    """Every live process of the session a study was started in (its driver's pid)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, PermissionError, FileNotFoundError, IndexError):
            continue
        if state != "Z":  # a zombie has ended; only its parent's wait is missing
            out.append(int(entry.name))
    return out


def gone_within(session: int, seconds: float) -> tuple[bool, float, list[int]]:
    """Whether every process of ``session`` ended within ``seconds``; how long it took."""
    started = time.monotonic()
    left = study_processes(session)
    while left and time.monotonic() - started < seconds:
        time.sleep(0.2)
        left = study_processes(session)
    return not left, time.monotonic() - started, left


def optuna_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    return optuna.load_study(study_name=run_dir.name, storage=storage).trials


def check_whole(run_dir: Path, trials: int) -> tuple[list[dict], list[optuna.trial.FrozenTrial]]:
    board = rows(run_dir)
    ids = [r["trial_id"] for r in board]
    assert len(ids) == len(set(ids)) == trials, ids
    assert all(r["finished_at"] is not None for r in board), board
    study = optuna_trials(run_dir)
    running = [t.number for t in study if t.state == optuna.trial.TrialState.RUNNING]
    assert running == [], f"Optuna trials left RUNNING: {running}"
    return board, study


STAGES = {
    # stage: (the hold point, trials, retrain seeds)
    "before the first result": ("trial-started", 3, 0),
    "mid-search": ("trial-finished", KILLS + 1, 0),
    "between search and retrain": ("search-ended", 2, 1),
    "mid-retrain": ("seed-finished", 2, 3),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_at_each_stage_five_times_then_resumed(tmp_path: Path, stage: str) -> None:
    point, trials, seeds = STAGES[stage]
    name = "killed"
    run_dir = tmp_path / name
    args = _args(tmp_path, name, trials, seeds)
    with observe(
        "resume",
        f"SIGKILL to the whole process group {stage} ({point}, a hold point the test "
        f"controls), {KILLS} times in a row, then --resume to the end",
        "no process of the study left 10 s after each kill; the final resume ends with "
        f"{trials} of {trials} trials, 0 RUNNING Optuna trials, unique ids, and every trial "
        "finished before a kill kept as it was",
    ) as seen:
        finished_before: dict[str, float] = {}
        cleanup: list[float] = []
        for kill in range(KILLS):
            hold = tmp_path / f"hold-{kill}"
            log = tmp_path / f"run-{kill}.log"
            env = {HOLD_VAR: point, FILE_VAR: str(hold)}
            proc = start(log, *args, *(["--resume"] if kill else []), env=env)
            try:
                wait_for(f"the driver at {point}", hold.exists, proc, log, 300)
                finished_before.update(
                    {r["trial_id"]: r["finished_at"] for r in rows(run_dir) if r["finished_at"]}
                )
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                clean, took, left = gone_within(proc.pid, 10)
                cleanup.append(took)
                assert clean, f"kill {kill + 1}: processes of the study still running: {left}"
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        code, out = finish(
            start(tmp_path / "last.log", *args, "--resume"), tmp_path / "last.log", 600
        )
        assert code == 0, out[-3000:]
        board, study = check_whole(run_dir, trials)
        by_id = {r["trial_id"]: r["finished_at"] for r in board}
        changed = [t for t, at in finished_before.items() if by_id.get(t) != at]
        seen.update(
            observed=f"{KILLS} kills: processes gone after at most {max(cleanup):.1f} s; final "
            f"resume exit {code} with {len(board)}/{trials} trials, {len(study)} Optuna trials "
            f"(0 RUNNING), {len(finished_before)} trials finished before a kill, "
            f"{len(changed)} changed",
            kills=KILLS,
            slowest_cleanup_s=round(max(cleanup), 2),
        )
        assert changed == [], changed
        if seeds:
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["trials"] == trials and summary["verdict"], summary
            assert (run_dir / "comparison.json").is_file()
            assert (run_dir / "best" / "model.keras").is_file()


@dataclass
class Stopped:
    """A study stopped mid-trial from outside, then resumed."""

    code: int  # the stopped driver's exit status
    said: list[str]  # its "stopped:" lines
    out: str  # its output
    clean: bool  # every process of the study ended within 10 s
    took: float  # seconds until they had
    left: list[int]  # what was left when not
    resumed: tuple[int, str]  # the --resume's exit status and output
    driver_s: float  # seconds from the stop to the driver's exit


def stopped_mid_trial(tmp_path: Path, args: list[str], stop: Callable[[int], None]) -> Stopped:
    """Starts a study, calls ``stop(driver pid)`` once a trial has trained an epoch,
    watches everything of the study end, then resumes it."""
    log = tmp_path / "first.log"
    proc = start(log, *args)
    try:
        wait_for("a trial's first epoch", lambda: " epoch 1/" in log.read_text(), proc, log, 300)
        stop(proc.pid)
        stopped = time.monotonic()
        code = proc.wait(timeout=30)
        driver_s = time.monotonic() - stopped
        clean, rest, left = gone_within(proc.pid, max(0.0, 10 - driver_s))
        took = driver_s + rest
    finally:
        if proc.poll() is None or study_processes(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    said = [ln for ln in out.splitlines() if ln.startswith("stopped:")]
    resumed = finish(
        start(tmp_path / "resume.log", *args, "--resume"), tmp_path / "resume.log", 600
    )
    return Stopped(code, said, out, clean, took, left, resumed, driver_s)


def test_sigterm_to_the_whole_group_leaves_nothing_running(tmp_path: Path) -> None:
    run_dir = tmp_path / "grouped"
    with observe(
        "resume",
        "SIGTERM to the study's whole process group while a trial trains (kill -- -PGID, "
        "GNU timeout, systemd, scancel): Ray's daemons get it too",
        "10 s later no process of the study is left; the driver says what happened in one "
        "line, not in Ray's log format; --resume finishes every trial",
    ) as seen:
        args = [*_args(tmp_path, run_dir.name, 3), "--epochs", "4"]
        run = stopped_mid_trial(tmp_path, args, lambda pid: os.killpg(pid, signal.SIGTERM))
        seen.update(
            observed=f"all processes of the study gone after {run.took:.1f} s (exit "
            f"{run.code}); said {run.said[-1] if run.said else run.out[-200:]!r}; resume exit "
            f"{run.resumed[0]} with {len(rows(run_dir))}/3 trials",
            seconds_to_clean=round(run.took, 2),
        )
        assert run.clean, f"processes of the study still running 10 s after SIGTERM: {run.left}"
        assert run.code == 143, run.out[-3000:]
        assert "rpc_client" not in run.out and "Failed to connect to GCS" not in run.out
        assert len(run.said) == 1 and "--resume" in run.said[0], run.out[-3000:]
        assert run.resumed[0] == 0, run.resumed[1][-3000:]
        check_whole(run_dir, 3)


def test_the_raylet_killed_first_ends_the_study_in_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "orphaned"

    def kill_raylet(pid: int) -> None:
        raylets = [p for p in study_processes(pid) if _name(p) == "raylet"]
        assert len(raylets) == 1, [(p, _name(p)) for p in study_processes(pid)]
        os.kill(raylets[0], signal.SIGKILL)

    with observe(
        "resume",
        "Ray's raylet killed with SIGKILL (an OOM kill, a crash) while a trial trains; the "
        "driver is left alive",
        "the driver notices within seconds, says so in one line and exits 1; no trial "
        "worker is left; --resume finishes every trial",
    ) as seen:
        args = [*_args(tmp_path, run_dir.name, 2), "--epochs", "4"]
        run = stopped_mid_trial(tmp_path, args, kill_raylet)
        seen.update(
            observed=f"driver exit {run.code} {run.driver_s:.1f} s after the kill, saying "
            f"{run.said[-1] if run.said else run.out[-200:]!r}; every process of the study "
            f"gone {run.took:.1f} s after it; resume exit {run.resumed[0]}",
            driver_exit_s=round(run.driver_s, 2),
        )
        assert run.code == 1, run.out[-3000:]
        assert len(run.said) == 1 and "raylet" in run.said[0], run.out[-3000:]
        assert "Failed to connect to GCS" not in run.out, run.out[-3000:]
        assert run.clean, f"processes of the study still running: {run.left}"
        assert run.resumed[0] == 0, run.resumed[1][-3000:]
        check_whole(run_dir, 2)


def _name(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def test_resume_with_more_trials_extends_the_study(tmp_path: Path) -> None:
    name = "grown"
    run_dir = tmp_path / name
    with observe(
        "resume",
        "a finished 4-trial study run again with --resume --trials 8",
        "the search asks the same Optuna study for 4 more: the leaderboard and Optuna hold 8 "
        "distinct trials, the first 4 unchanged; the report shows all 8; --trials 3 refused",
    ) as seen:
        code, out = finish(
            start(tmp_path / "first.log", *_args(tmp_path, name, 4, 1)), tmp_path / "first.log", 600
        )
        assert code == 0, out[-3000:]
        first = {r["trial_id"]: r["finished_at"] for r in rows(run_dir)}
        assert len(first) == 4

        code, out = finish(
            start(tmp_path / "grow.log", "--resume", "--trials", "8", "--output", str(tmp_path),
                  "--name", name),
            tmp_path / "grow.log", 600,
        )  # fmt: skip
        assert code == 0, out[-3000:]
        board, study = check_whole(run_dir, 8)
        assert {t: r for t, r in first.items()} == {
            r["trial_id"]: r["finished_at"] for r in board if r["trial_id"] in first
        }
        complete = [t for t in study if t.state.is_finished()]
        assert len(study) == len(complete) == 8, [t.state for t in study]
        # TPE went on from the 4 it had: the new trials are not its random start again.
        assert json.loads((run_dir / "study.json").read_text())["trials"] == 8
        page = (run_dir / "report.html").read_text()
        shown = [t for t in (r["trial_id"] for r in board) if t in page]
        assert len(shown) == 8, shown

        refused = finish(
            start(tmp_path / "shrink.log", "--resume", "--trials", "3", "--output",
                  str(tmp_path), "--name", name),
            tmp_path / "shrink.log", 120,
        )  # fmt: skip
        seen.update(
            observed=f"extend exit 0: {len(board)} leaderboard rows, {len(study)} Optuna trials, "
            f"{len(shown)} trials in the report, the first 4 unchanged; --trials 3: exit "
            f"{refused[0]}",
            trials=len(board),
        )
        assert refused[0] == 2, refused[1][-2000:]
        assert "--trials 3 (saved: 8" in " ".join(refused[1].split()), refused[1][-2000:]
