"""SIGTERM to the driver, as a cluster scheduler or ``ray job stop`` sends it; and a data
folder that changes while the study runs.

A real `tuning/run.py` process on a small real image folder and a real local Ray: the
driver alone gets SIGTERM after a trial finished, just after an image was added to its
data folder and one deleted. It must stop its trials, save its state (leaderboard, Optuna
study, Ray Tune's experiment state) and exit 143 without a traceback. ``--resume`` then
refuses, naming the folder and the files; ``--resume --data-changed ok`` finishes the
study with every finished trial kept once and no Optuna trial RUNNING. One study serves
both faults (a study costs a minute).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from _figures import observe
from _imagefolders import image_bytes, make_folder
from _studyproc import finish, rows, start, wait_for

pytestmark = pytest.mark.slow

TRIALS = 3


def _args(data: Path, output: Path, name: str) -> list[str]:
    return [
        "--data", str(data), "--trials", str(TRIALS), "--epochs", "1", "--image-size", "64",
        "--space", "small", "--retrain-seeds", "0", "--max-concurrent", "1",
        "--output", str(output), "--name", name,
    ]  # fmt: skip


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_cleanly_then_a_changed_data_folder_is_refused(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data")
    run_dir = tmp_path / "termed"
    args = _args(data, tmp_path, "termed")
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
        # The data folder changes under the running study (after it was decoded): the
        # study goes on with its decoded snapshot; --resume below must notice.
        (data / "train" / "corona" / "corona-000.png").unlink()
        (data / "train" / "normal" / "normal-new.png").write_bytes(image_bytes(99_999))
        time.sleep(1.0)
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
        # The trial SIGTERM cut off is left to --resume, not recorded as stopped early.
        cut = [r["trial_id"] for r in rows(run_dir) if r["finished_at"] and not r["epochs_run"]]
        assert cut == [], cut

        board_before = {r["trial_id"]: r["finished_at"] for r in rows(run_dir)}

    with observe(
        "data",
        "the data folder changed while the study ran (1 image added, 1 deleted), then --resume",
        "--resume exits 2 naming the folder, the counts and the files, before any trial; "
        "--resume --data-changed ok goes on and says so",
    ) as seen_data:
        t_ref = time.monotonic()
        log_ref = tmp_path / "refused.log"
        code_ref, out_ref = finish(start(log_ref, *args, "--resume"), log_ref, timeout=120)
        refuse_s = time.monotonic() - t_ref
        msg = " ".join(out_ref.split())
        seen_data.update(refuse_s=round(refuse_s, 2))
        seen_data["observed"] = f"exit {code_ref} in {refuse_s:.1f}s: {msg[:400]!r}"
        assert code_ref == 2, out_ref[-3000:]
        assert "Traceback" not in out_ref, out_ref[-3000:]
        assert f"the data folder {data} changed since the study started" in msg, msg
        assert "1 added (train/normal/normal-new.png)" in msg, msg
        assert "1 removed (train/corona/corona-000.png)" in msg, msg
        assert "--data-changed ok" in msg, msg
        after = {r["trial_id"]: r["finished_at"] for r in rows(run_dir)}
        assert after == board_before  # nothing ran, nothing was lost

        t1 = time.monotonic()
        log2 = tmp_path / "resume.log"
        code2, out2 = finish(
            start(log2, *args, "--resume", "--data-changed", "ok"), log2, timeout=600
        )
        resume_s = time.monotonic() - t1
        seen_data["observed"] += f"; with --data-changed ok: exit {code2} in {resume_s:.0f}s"
        assert code2 == 0, out2[-3000:]
        assert "--data-changed ok: the data folder" in " ".join(out2.split()), out2[-3000:]

    with observe(
        "cluster",
        "--resume after the SIGTERM (with --data-changed ok)",
        "the study finishes: every trial once, the finished ones not run again, "
        "no RUNNING Optuna trial",
    ) as seen:
        board = rows(run_dir)
        ids = [r["trial_id"] for r in board]
        study = optuna.load_study(study_name="termed", storage=f"sqlite:///{run_dir / 'optuna.db'}")
        running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
        seen.update(resume_s=round(resume_s, 1), trials=len(ids), optuna_running=len(running))
        seen["observed"] = (
            f"--resume exit {code2} in {resume_s:.0f}s: {len(ids)} trials "
            f"({len(set(ids))} distinct), finished before kept: "
            f"{all(r['finished_at'] == finished_before.get(r['trial_id'], r['finished_at']) for r in board)}"
            f", Optuna RUNNING: {len(running)}"
        )
        assert "Traceback" not in out2, out2[-3000:]
        assert len(ids) == len(set(ids)) == TRIALS, ids
        assert all(r["finished_at"] is not None for r in board), board
        by_id = {r["trial_id"]: r for r in board}
        for trial_id, finished_at in finished_before.items():
            assert by_id[trial_id]["finished_at"] == finished_at  # kept, not run again
        assert running == [], running


def test_sigterm_during_the_retrain_exits_143(tmp_path: Path) -> None:
    """Outside the search SIGTERM must get through Ray's own wait (``ray.wait``), where
    Ray's signal check drops every exception but an interrupt."""
    run_dir = tmp_path / "retrain"
    args = [
        "--trials", "1", "--epochs", "1", "--image-size", "64", "--space", "small",
        "--retrain-seeds", "1", "--output", str(tmp_path), "--name", "retrain",
    ]  # fmt: skip
    with observe(
        "cluster",
        "SIGTERM to the driver during the final retrain",
        "exit 143 within a minute, no traceback; the search's leaderboard kept",
    ) as seen:
        log = tmp_path / "retrain.log"
        proc = start(log, *args)
        # One trial, the sensible default itself: the retrain trains the default and the recipe.
        wait_for(
            "the retrain", lambda: "retrain: default, baseline" in log.read_text(), proc, log, 400
        )
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, out = finish(proc, log, timeout=120)
        stop_s = time.monotonic() - t0
        board = rows(run_dir)
        seen.update(stop_s=round(stop_s, 1))
        seen["observed"] = (
            f"exit {code} {stop_s:.1f}s after SIGTERM; traceback: {'Traceback' in out}; "
            f"leaderboard rows kept: {len(board)}"
        )
        assert code == 143, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
        assert "stopped by SIGTERM" in out, out[-1500:]
        # A retrain cut short is not called done.
        assert "retrain: all seeds done" not in out and "retrain: stopped after" in out, out[-1500:]
        assert stop_s < 90, stop_s
        assert len(board) == 1 and board[0]["finished_at"] is not None, board
        assert not (run_dir / "summary.json").exists()  # the study did not carry on
