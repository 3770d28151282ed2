"""A study you can watch without a terminal, and a study with no success says so.

`tuning/run.py` runs as a user would run it with ``> log`` (stdout a file, not a TTY); the
log file is read while the study still runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _figures import observe
from _studyproc import finish, rows, start, wait_for

pytestmark = pytest.mark.slow

TINY = ("--trials", "3", "--epochs", "2", "--image-size", "64", "--space", "small",
        "--n-boot", "50", "--grace-epochs", "1")  # fmt: skip
NATIVE_NOISE = ("oneDNN custom operations", "cudart_stub", "cuInit", "absl::InitializeLog")


def test_plain_progress_in_a_log_file_while_the_study_runs(tmp_path: Path) -> None:
    log = tmp_path / "study.log"
    run_dir = tmp_path / "watch"
    with observe(
        "study output",
        "stdout redirected to a file (not a TTY); the file read while the study runs",
        "one plain line per trial started before the study ends; status lines; retrain "
        "progress per seed and epoch; Ray's log in runs/NAME/ray.log; no native TF lines",
    ) as seen:
        proc = start(log, *TINY, "--retrain-seeds", "1", "--output", str(tmp_path),
                     "--name", "watch")  # fmt: skip

        def started_so_far() -> list[dict] | None:
            found = [r for r in rows(run_dir) if r.get("started_at")]
            return found or None

        early = wait_for("a trial in the leaderboard", started_so_far, proc, log, 420)
        text = log.read_text()  # read BEFORE the study ends
        still_running = proc.poll() is None
        missing = [r["trial_id"] for r in early if f"trial {r['trial_id']} started" not in text]
        rc, final = finish(proc, log, 600)
        lines = final.splitlines()
        started = re.findall(r"trial (\S+) started", final)
        epochs = [ln for ln in lines if re.search(r"trial \S+ epoch \d+/\d+", ln)]
        stopped = [ln for ln in lines if re.search(r"trial \S+ (stopped|failed)", ln)]
        status = [ln for ln in lines if " status " in ln]
        retrain = [ln for ln in lines if re.search(r"retrain \S+ seed \d+ (epoch|done)", ln)]
        noise = [ln for ln in lines if any(n in ln for n in NATIVE_NOISE)]
        ray_log = run_dir / "ray.log"
        seen.update(
            trials_seen_early=len(early), lines_missing_early=len(missing),
            started_lines=len(started), epoch_lines=len(epochs), status_lines=len(status),
            retrain_lines=len(retrain), native_lines=len(noise),
        )  # fmt: skip
        seen["observed"] = (
            f"read while running ({still_running}): {len(early)} trial(s) in the leaderboard, "
            f"{len(early) - len(missing)} with their 'started' line; at the end {len(started)} "
            f"started, {len(epochs)} epoch, {len(stopped)} stop lines, {len(status)} status, "
            f"{len(retrain)} retrain progress lines; ray.log {ray_log.exists()}; "
            f"{len(noise)} native TF lines; exit {rc}"
        )
        assert still_running, "the study ended before the log was read"
        assert not missing, (missing, text[-3000:])
        assert rc == 0, final[-3000:]
        assert len(set(started)) == 3, final[-3000:]
        assert epochs and stopped and status, final[-3000:]
        assert any("done" in ln for ln in retrain) and any("epoch" in ln for ln in retrain), final[
            -3000:
        ]
        assert ray_log.exists()
        assert not noise, noise
        assert "\x1b[" not in final  # no terminal control codes in a log file


def test_a_study_in_which_no_trial_succeeds_exits_1(tmp_path: Path) -> None:
    log = tmp_path / "fail.log"
    with observe(
        "study output",
        "every trial fails (--trial-timeout 0.5 --max-failures 0)",
        "the run folder is written (leaderboard, summary), exit 1 with a line saying no "
        "trial succeeded",
    ) as seen:
        proc = start(log, *TINY, "--trials", "2", "--trial-timeout", "0.5", "--max-failures",
                     "0", "--retrain-seeds", "1", "--output", str(tmp_path), "--name", "fail")  # fmt: skip
        rc, text = finish(proc, log, 600)
        board = rows(tmp_path / "fail")
        reasons = [r["stop_reason"] for r in board]
        said = [ln for ln in text.splitlines() if "no trial succeeded" in ln]
        ray_log = tmp_path / "fail" / "ray.log"
        raylet = ray_log.read_text().count("(raylet)") if ray_log.exists() else 0
        seen.update(raylet_lines_on_console=text.count("(raylet)"), raylet_lines_in_log=raylet)
        seen["observed"] = (
            f"exit {rc}; leaderboard {reasons}; summary.json "
            f"{(tmp_path / 'fail' / 'summary.json').exists()}; line: {said[:1]}; Ray's "
            f"'worker died' messages: {text.count('(raylet)')} on the console, {raylet} in ray.log"
        )
        assert "(raylet)" not in text, text[-3000:]
        assert rc == 1, text[-3000:]
        assert board and set(reasons) == {"failed"}, reasons
        assert (tmp_path / "fail" / "summary.json").exists()
        assert said, text[-3000:]
