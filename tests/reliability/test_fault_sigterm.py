"""SIGTERM to the driver, as a cluster scheduler or ``ray job stop`` sends it.

A real `tuning/run.py` process on the demo data and a real local Ray: the driver alone gets
SIGTERM after a trial finished. It must stop its trials, save its state (leaderboard,
Optuna study, Ray Tune's experiment state) and exit 143 without a traceback; ``--resume``
then finishes the study with every finished trial kept once and no Optuna trial RUNNING.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from _figures import observe
from _studyproc import finish, rows, start, wait_for

pytestmark = pytest.mark.slow

TRIALS = 3


def _args(output: Path, name: str) -> list[str]:
    return [
        "--trials", str(TRIALS), "--epochs", "2", "--image-size", "64", "--space", "small",
        "--retrain-seeds", "0", "--max-concurrent", "1", "--grace-epochs", "2",
        "--output", str(output), "--name", name,
    ]  # fmt: skip


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_cleanly_and_resume_finishes(tmp_path: Path) -> None:
    run_dir = tmp_path / "termed"
    args = _args(tmp_path, "termed")
    with observe(
        "cluster",
        "SIGTERM to the driver after its first trial finished (scheduler, ray job stop)",
        "exit 143 within a minute, no traceback, leaderboard + optuna.db + Tune state saved; "
        "--resume finishes every trial, the finished ones kept once, no RUNNING Optuna trial",
    ) as seen:
        log = tmp_path / "first.log"
        proc = start(log, *args)
        done = wait_for(
            "a finished trial",
            lambda: [r for r in rows(run_dir) if r["finished_at"] is not None],
            proc, log, timeout=400,
        )  # fmt: skip
        finished_before = {r["trial_id"]: r["finished_at"] for r in done}
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the driver only: what a scheduler signals
        code, out = finish(proc, log, timeout=120)
        stop_s = time.monotonic() - t0
        time.sleep(2.0)
        leftover = _group_alive(proc.pid)
        if leftover:
            os.killpg(proc.pid, signal.SIGKILL)
        states = sorted((run_dir / "tune").glob("experiment_state-*.json"))
        seen.update(stop_s=round(stop_s, 1), finished_before=len(finished_before))
        first = (
            f"exit {code} {stop_s:.1f}s after SIGTERM with {len(finished_before)} trial(s) "
            f"finished; traceback: {'Traceback' in out}; processes left: {leftover}"
        )
        seen["observed"] = first
        assert code == 143, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        assert "stopped by SIGTERM" in out and "--resume" in out, out[-1500:]
        assert stop_s < 90, stop_s
        assert not leftover, "processes of the stopped study were still running"
        assert (run_dir / "optuna.db").is_file() and states, sorted(os.listdir(run_dir))
        assert {r["trial_id"] for r in rows(run_dir)} >= set(finished_before)

        t1 = time.monotonic()
        log2 = tmp_path / "resume.log"
        code2, out2 = finish(start(log2, *args, "--resume"), log2, timeout=600)
        resume_s = time.monotonic() - t1
        board = rows(run_dir)
        ids = [r["trial_id"] for r in board]
        study = optuna.load_study(study_name="termed", storage=f"sqlite:///{run_dir / 'optuna.db'}")
        running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        seen.update(resume_s=round(resume_s, 1), trials=len(ids), optuna_running=len(running))
        seen["observed"] = (
            f"{first}; --resume exit {code2} in {resume_s:.0f}s: {len(ids)} trials "
            f"({len(set(ids))} distinct), finished before kept: "
            f"{all(r['finished_at'] == finished_before.get(r['trial_id'], r['finished_at']) for r in board)}"
            f", Optuna RUNNING: {len(running)}"
        )
        assert code2 == 0, out2[-3000:]
        assert "Traceback" not in out2, out2[-3000:]
        assert len(ids) == len(set(ids)) == TRIALS, ids
        assert all(r["finished_at"] is not None for r in board), board
        by_id = {r["trial_id"]: r for r in board}
        for trial_id, finished_at in finished_before.items():
            assert by_id[trial_id]["finished_at"] == finished_at  # kept, not run again
        assert running == [], running
