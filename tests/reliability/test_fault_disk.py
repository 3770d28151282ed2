"""The disk under the run folder fills up while a study runs.

A real file system that really fills: a small tmpfs is mounted as the study's --output, the
study runs as a user would (`tuning/run.py`, a local Ray), and once the leaderboard holds a
finished trial the rest of the tmpfs is filled with a file written until ENOSPC. The study
must stop with one line naming the path it could not write (no traceback), and the
leaderboard written so far must still read back with every trial that had finished.

Mounting needs root and a container that allows it; elsewhere the test skips, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from _figures import observe
from _studyproc import finish, rows, start, wait_for

from covidxr_core.atomic import DiskFull, replacing

pytestmark = pytest.mark.slow

TMPFS_SIZE = "48m"  # the study's folder (Tune's state, optuna.db, leaderboard) needs ~1 MB


@contextlib.contextmanager
def small_disk(where: Path, size: str = TMPFS_SIZE) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``, or a skip naming why it cannot be."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or out.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(disk: Path) -> int:
    """Writes zeros into ``disk/filler`` until the file system takes no byte more; returns
    the bytes written."""
    written = 0
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 512, 1):  # big blocks, then what is left in smaller ones
            block = b"\0" * size
            while True:
                try:
                    written += os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return written


def test_an_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        target = disk / "leaderboard.json"
        target.write_text('{"rows": 1}')
        fill(disk)
        with pytest.raises(DiskFull) as caught, replacing(target) as tmp, open(tmp, "wb") as out:
            out.write(b"x" * (1 << 20))
            out.flush()
        assert str(target) in str(caught.value) and "\n" not in str(caught.value)
        assert target.read_text() == '{"rows": 1}'
        assert sorted(p.name for p in disk.iterdir()) == ["filler", target.name]


def test_disk_fills_under_the_run_folder(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        name = "full"
        run_dir, log = disk / name, tmp_path / "full.log"
        with observe(
            "disk",
            "the disk under the run folder fills up mid-search (a 48 MB tmpfs as --output, "
            "filled to ENOSPC once a trial has finished)",
            "the study stops with one line naming the path it could not write, exit 2, no "
            "traceback; the leaderboard written so far reads back with every finished trial",
        ) as obs:
            proc = start(log, "--trials", "4", "--epochs", "2", "--image-size", "64",
                         "--space", "small", "--retrain-seeds", "0", "--max-concurrent", "1",
                         "--output", str(disk), "--name", name)  # fmt: skip
            try:
                done = wait_for(
                    "a finished trial",
                    lambda: [r for r in rows(run_dir) if r["finished_at"] is not None],
                    proc, log, 300,
                )  # fmt: skip
                before = {
                    r["trial_id"]: r["finished_at"] for r in rows(run_dir) if r["finished_at"]
                }
                filled = fill(disk)
                code, out = finish(proc, log, 300)
            finally:
                if proc.poll() is None:
                    proc.kill()
            errors = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("error:")]
            table = pq.read_table(run_dir / "leaderboard.parquet").to_pylist()
            kept = {r["trial_id"]: r["finished_at"] for r in table}
            intact = sum(kept.get(t) == at for t, at in before.items())
            obs.update(
                observed=f"filled {filled / 1e6:.1f} MB after {len(done)} trial(s) finished; exit "
                f"{code}; {errors[-1] if errors else out[-300:]!r}; leaderboard reads back with "
                f"{len(table)} rows, {intact}/{len(before)} finished trials as they were; "
                f"traceback printed: {'Traceback' in out}",
                finished_before=len(before),
                leaderboard_rows=len(table),
                trials_lost=len(before) - intact,
            )
            assert code == 2, out[-3000:]
            assert len(errors) == 1, out[-3000:]
            assert "no space left on device" in errors[0] and str(disk) in errors[0], errors
            assert "Traceback" not in out, out[-3000:]
            assert intact == len(before), (before, kept)
            assert not list(run_dir.glob(".leaderboard.tmp*")), "a half-written leaderboard remains"

        with observe(
            "disk",
            "the full disk under the run folder freed again, then --resume",
            "the resumed study runs every planned trial (4 of 4, whatever Tune's state saved "
            "as the disk filled holds); trials finished before the disk filled are kept as "
            "they were",
        ) as obs:
            (disk / "filler").unlink()
            again = start(
                tmp_path / "resume.log", "--resume", "--output", str(disk), "--name", name
            )
            code, out = finish(again, tmp_path / "resume.log", 300)
            final = rows(run_dir)
            finished = [r for r in final if r["finished_at"] is not None]
            kept = sum({r["trial_id"]: r["finished_at"] for r in final}.get(t) == at
                       for t, at in before.items())  # fmt: skip
            obs.update(
                observed=f"resume exit {code}; {len(finished)}/4 trials finished, {kept}/"
                f"{len(before)} trials finished before the disk filled unchanged",
                trials=len(final),
                trials_lost=4 - len(finished),
            )
            assert code == 0, out[-3000:]
            assert kept == len(before), final
            # Every planned trial ran: what Tune's state (saved as the disk filled) did not
            # hold was asked of the same Optuna study.
            ids = [r["trial_id"] for r in final]
            assert len(finished) == len(final) == len(set(ids)) == 4, final
