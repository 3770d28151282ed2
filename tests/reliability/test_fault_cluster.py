"""Faults on a real three-node Ray cluster on this machine, with studies run as a user would.

The cluster (a head with no CPUs for trials, two one-CPU workers) is started and stopped
here with `ray.cluster_utils.Cluster`; each study is `tuning/run.py --address ...` in a
process of its own. Two faults:

- a worker node dies (its raylet and every process under it killed, no goodbye) while it runs
  a trial: Tune retries the trial on the other worker and the study completes;
- the driver is killed with SIGKILL mid-study (after a second run under the same name was
  refused): `--resume` completes the study, every trial finished before the kill kept as
  it was, and Optuna's study holds each finished trial once.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from _cluster import alive_workers as _alive_workers
from _cluster import node_down as _node_down
from _figures import observe
from _studyproc import finish, rows, start, tune_failures, wait_for

pytestmark = pytest.mark.slow

STUDY = ("--image-size", "64", "--space", "small", "--retrain-seeds", "0")


def _finished(rows_: list[dict]) -> list[dict]:
    return [r for r in rows_ if r["finished_at"] is not None]


def test_worker_node_killed_mid_trial(cluster, reap, tmp_path: Path) -> None:
    c, workers = cluster
    workers = _alive_workers(c, workers)
    by_id = {w.node_id: w for w in workers}
    run_dir, log = tmp_path / "nodekill", tmp_path / "nodekill.log"
    trials = 3
    with observe(
        "cluster",
        "worker node killed (raylet and its processes, no graceful shutdown) mid-trial; --max-failures 2",
        "the trial is retried on the other worker; the study completes with every trial accounted for",
    ) as obs:
        proc = start(log, "--address", c.address, "--trials", str(trials), "--epochs", "4",
                     *STUDY, "--max-failures", "2", "--output", str(tmp_path), "--name", "nodekill")  # fmt: skip
        reap(proc)

        def running_on_a_worker() -> dict | None:
            # Tune's per-trial result.json gains a line at every epoch; the leaderboard file
            # is only rewritten when a trial starts or ends.
            for result in sorted((run_dir / "tune").glob("*/result.json")):
                lines = result.read_text().splitlines()
                last = json.loads(lines[-1]) if lines and lines[-1].endswith("}") else None
                if (
                    last
                    and last.get("node_id") in by_id
                    and last["epoch"] < 4
                    and not last.get("done")
                ):
                    return last
            return None

        victim = wait_for(
            "a trial reporting from a worker node", running_on_a_worker, proc, log, 300
        )
        killed_at = time.time()
        doomed = _node_down(c, by_id[victim["node_id"]])
        survivor = next(w for w in workers if w.node_id != victim["node_id"])

        code, out = finish(proc, log, 400)
        assert code == 0, out[-3000:]
        final = {r["trial_id"]: r for r in rows(run_dir)}
        again = final[victim["trial_id"]]
        failures = tune_failures(run_dir)
        retries = sum(failures.values())
        matched, complete, _, _ = _optuna_matches(run_dir, "nodekill", list(final.values()))
        obs.update(
            observed=f"killed node {victim['node_id'][:8]} while trial {victim['trial_id']} was at "
            f"epoch {victim['epoch']}/4; Tune counted {failures.get(victim['trial_id'])} failure(s) "
            f"for it and reran it on node {str(again['node_id'])[:8]}, where it ended "
            f"{again['stop_reason']} (leaderboard retries: {again['retries']}); {len(final)}/{trials} "
            f"trials finished, none failed; Optuna: {complete} COMPLETE, {matched}/{trials} "
            "trials matched to exactly one",
            trials=len(final),
            trials_lost=trials - len(_finished(list(final.values()))),
            studies_completed=1,
            retries=retries,
        )
        assert victim["pid"] in doomed, "the trial's worker was not on the killed node"
        assert len(final) == trials
        assert all(r["stop_reason"] in ("completed", "early-stopped") for r in final.values()), (
            final
        )
        assert again["node_id"] == survivor.node_id, "the killed trial did not run again elsewhere"
        assert again["finished_at"] > killed_at
        assert failures.get(victim["trial_id"], 0) >= 1, failures
        assert again["retries"] >= 1, "the leaderboard did not count the retry"
        assert matched == trials, "Optuna's study lacks a trial (or holds it twice)"


def _optuna_matches(run_dir: Path, name: str, finished: list[dict]) -> tuple[int, int, int, int]:
    """Finished trials with exactly one COMPLETE Optuna twin; COMPLETE; RUNNING; RUNNING
    trials whose parameters are those of a finished trial."""
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]

    def same(row: dict, trial: optuna.trial.FrozenTrial) -> bool:
        return all(
            math.isclose(row[f"param_{k}"], v, rel_tol=1e-12) if isinstance(v, float)
            else row[f"param_{k}"] == v
            for k, v in trial.params.items()
        )  # fmt: skip

    matched = sum(sum(same(r, t) for t in complete) == 1 for r in finished)
    twins = sum(any(same(r, t) for r in finished) for t in running)
    return matched, len(complete), len(running), twins


def test_driver_sigkill_then_resume(cluster, reap, tmp_path: Path) -> None:
    c, workers = cluster
    _alive_workers(c, workers)
    name, trials = "drvkill", 6
    run_dir = tmp_path / name
    args = ["--address", c.address, "--trials", str(trials), "--epochs", "2", *STUDY,
            "--max-concurrent", "2", "--output", str(tmp_path), "--name", name]  # fmt: skip
    with observe(
        "run folders",
        "a second run with the same --name, and a second --resume, while the first runs",
        "both refused with a clear one-line error (exit 2); the running study's folder untouched",
    ) as obs:
        first = start(tmp_path / "first.log", *args)
        reap(first)
        wait_for(
            "the run folder",
            lambda: (run_dir / "study.json").exists(),
            first,
            tmp_path / "first.log",
            120,
        )
        spec_before = (run_dir / "study.json").read_bytes()
        again = start(tmp_path / "again.log", *args)
        resume = start(tmp_path / "resume.log", *args, "--resume")
        reap(again)
        reap(resume)
        code_again, out_again = finish(again, tmp_path / "again.log", 300)
        code_resume, out_resume = finish(resume, tmp_path / "resume.log", 300)
        obs.update(
            observed=f"same name: exit {code_again}, {_error_line(out_again)!r}; --resume: exit "
            f"{code_resume}, {_error_line(out_resume)!r}; study.json unchanged: "
            f"{(run_dir / 'study.json').read_bytes() == spec_before}",
            refused=int(code_again == 2) + int(code_resume == 2),
        )
        assert code_again == 2 and "already exists" in out_again, out_again[-2000:]
        assert code_resume == 2 and "in use by another running study" in out_resume, out_resume[
            -2000:
        ]
        assert "Traceback" not in out_again + out_resume
        assert (run_dir / "study.json").read_bytes() == spec_before

    with observe(
        "cluster",
        "driver killed with SIGKILL mid-study on the cluster, then --resume",
        "the resumed study completes; trials finished before the kill kept exactly once "
        "(same finished_at); Optuna's study holds each finished trial",
    ) as obs:
        log = tmp_path / "first.log"
        done = wait_for(
            "two finished trials",
            lambda: (lambda f: f if len(f) >= 2 else None)(_finished(rows(run_dir))),
            first, log, 400,
        )  # fmt: skip
        before = {r["trial_id"]: r["finished_at"] for r in done}
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        running_at_kill = [r["trial_id"] for r in rows(run_dir) if r["finished_at"] is None]

        resumed = start(tmp_path / "resumed.log", *args, "--resume")
        reap(resumed)
        code, out = finish(resumed, tmp_path / "resumed.log", 400)
        assert code == 0, out[-3000:]
        final = rows(run_dir)
        ids = [r["trial_id"] for r in final]
        by_id = {r["trial_id"]: r for r in final}
        finished = _finished(final)
        matched, complete, stale, twins = _optuna_matches(run_dir, name, finished)
        kept = sum(by_id.get(t, {}).get("finished_at") == at for t, at in before.items())
        obs.update(
            observed=f"killed with {len(before)} trials finished and {len(running_at_kill)} running; "
            f"resume exit {code}; {len(finished)}/{trials} trials finished, {kept}/{len(before)} "
            f"pre-kill trials unchanged; Optuna: {complete} COMPLETE, {matched}/{len(finished)} "
            f"finished trials matched to exactly one, {stale} left RUNNING by the kill "
            f"({twins} of them with the parameters of a finished trial)",
            trials=len(final),
            trials_lost=trials - len(finished),
            studies_completed=1,
            finished_before_kill=len(before),
            optuna_stale_running=stale,
        )
        assert len(ids) == len(set(ids)) == trials, ids
        assert len(finished) == trials
        assert kept == len(before), "a trial finished before the kill was lost or run again"
        assert matched == len(finished), "Optuna's study lacks a finished trial (or holds it twice)"


def _error_line(output: str) -> str:
    return next(
        (ln.strip() for ln in output.splitlines() if ln.strip().startswith("error:")), output[-200:]
    )
