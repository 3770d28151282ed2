"""The run folder: where a study's results live, and who may write there.

A run lives in a local folder, or in a cloud URI every node can reach.

Ray Tune needs, on a multi-node cluster, a storage path that every node can read and
write (Ray >= 2.7). A cloud URI (`s3://`, `gs://`, `abfs://`... anything pyarrow's file
systems open) is such a path. The driver's own files (leaderboard, Optuna's SQLite study,
retrained models, report) are written to a local staging folder and mirrored to the URI
as they change, since SQLite cannot live on an object store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covidxr_core.cache import cache_root
from covidxr_core.errors import CovidxrError
from tuning.errors import StorageError, StudyError

STUDY_FILE = "study.json"
DATA_FILES = "data_files.json"  # the data folder's file list when the study started
PROBE_TIMEOUT_S = float(os.environ.get("COVIDXR_STORAGE_PROBE_S", "20"))


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


@dataclass(frozen=True)
class RunLocation:
    """A run's local folder and, for cloud runs, the URI it is mirrored to."""

    local: Path  # where the driver writes
    uri: str | None = None  # e.g. s3://bucket/runs/NAME

    @property
    def tune_storage(self) -> str:
        """Ray Tune's `storage_path`: the URI when there is one, else the local folder."""
        return self.uri or str(self.local)

    def push(self, *names: str) -> None:
        """Copies the named files/folders (all when none are named) to the URI, if any."""
        if self.uri is None:
            return
        import pyarrow.fs as pafs

        fs, root = pafs.FileSystem.from_uri(self.uri)
        fs.create_dir(root, recursive=True)
        for name in names or tuple(p.name for p in self.local.iterdir() if p.name != ".lock"):
            src = self.local / name
            if not src.exists():
                continue
            dest = f"{root}/{name}"
            if src.is_dir():
                pafs.copy_files(
                    str(src),
                    dest,
                    source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs,
                )
            else:
                with src.open("rb") as fin, fs.open_output_stream(dest) as fout:
                    fout.write(fin.read())

    def pull(self) -> None:
        """Fetches the driver's files of a cloud run (to resume it on a new machine)."""
        if self.uri is None:
            return
        import pyarrow.fs as pafs

        fs, root = pafs.FileSystem.from_uri(self.uri)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            return
        self.local.mkdir(parents=True, exist_ok=True)
        selector = pafs.FileSelector(root, recursive=False)
        for entry in fs.get_file_info(selector):
            name = entry.path.rsplit("/", 1)[-1]
            if name == "tune":  # Ray restores its own experiment state from the URI
                continue
            if entry.type == pafs.FileType.File:
                with fs.open_input_stream(entry.path) as fin:
                    (self.local / name).write_bytes(fin.read())


def locate(output: str, name: str | None, staging_root: Path | None = None) -> RunLocation:
    """The RunLocation of run ``name`` under ``output`` (a local path or a URI).

    Args:
        output: A folder (``runs``, ``file:///data/runs``) or a cloud URI (``s3://b/runs``).
        name: The run's folder name; None names it after the current time.
        staging_root: Where a cloud run's driver files are staged (default
            ``$COVIDXR_STAGING``, else ``runs/`` under the cache root).
    """
    name = name or time.strftime("%Y%m%d-%H%M%S")
    if is_uri(output):
        env = os.environ.get("COVIDXR_STAGING")
        root = staging_root or (Path(env) if env else cache_root() / "runs")
        base, mark, query = output.partition("?")  # s3://b/runs?endpoint_override=...
        return RunLocation(local=root / name, uri=f"{base.rstrip('/')}/{name}{mark}{query}")
    local = output.removeprefix("file://")
    return RunLocation(local=Path(local).expanduser().resolve() / name)


def check_output(location: RunLocation, output: str) -> None:
    """Refuses, before any data is decoded or Ray started, an output nobody can write to.

    A local ``output`` must be a folder (or not exist yet) inside which this process can
    create files: a probe file is written and removed in its nearest existing folder. A
    cloud URI must answer within `PROBE_TIMEOUT_S` and take a probe object, written and
    deleted again. Nothing is left behind either way.

    Raises:
        StorageError: naming ``--output``, the path or URI and what failed.
    """
    if location.uri is not None:
        if location.uri not in _PROBED:  # the CLI's early check, then run_study's: once
            _probe_uri(output, location.uri)
            _PROBED.add(location.uri)
        return
    parent = location.local.parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = (
            f"{parent} is a file"
            if existing == parent
            else f"{parent} is under {existing}, which is a file"
        )
        raise StorageError(
            f"--output {output}: {where}, not a folder; run folders need a folder to go in "
            "(choose another --output)"
        )
    probe = existing / f".covidxr-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"covidxr")
    except OSError as exc:
        raise StorageError(
            f"--output {output}: cannot write into {existing} ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


_PROBED: set[str] = set()  # URIs this process has written a probe to


def _probe_uri(output: str, uri: str) -> None:
    """Writes and deletes a probe object under ``uri`` in a thread, with a time limit."""
    import threading

    outcome: list[BaseException | None] = []

    def probe() -> None:
        try:
            import pyarrow.fs as pafs

            fs, root = pafs.FileSystem.from_uri(uri)
            path = f"{root.rstrip('/')}/.covidxr-probe-{uuid.uuid4().hex}"
            with fs.open_output_stream(path) as out:
                out.write(b"covidxr")
            fs.delete_file(path)
            outcome.append(None)
        except BaseException as exc:  # reported by the caller, one line
            outcome.append(exc)

    worker = threading.Thread(target=probe, name="covidxr-storage-probe", daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT_S)
    if not outcome:
        raise StorageError(
            f"--output {output}: {uri} did not answer within {PROBE_TIMEOUT_S:g}s (a probe "
            "write timed out); check the bucket name, the network and the credentials "
            "(COVIDXR_STORAGE_PROBE_S sets the limit)"
        )
    exc = outcome[0]
    if exc is not None:
        reason = " ".join(str(exc).split())[:400] or type(exc).__name__
        raise StorageError(
            f"--output {output}: cannot write to {uri}: {reason}; check the bucket name, "
            "the network and the credentials"
        )


def data_files(data: str | None) -> dict[str, list[int]] | None:
    """``{relpath: [size, mtime_ns]}`` of the data folder's images (None for the demo
    data): what `data_changes` compares on ``--resume``. Lists files; opens none."""
    if data is None:
        return None
    from covidxr_core.data._discover import scan

    return {f.relpath: [f.size, f.mtime_ns] for f in scan(data).files}


def data_digest(files: dict[str, list[int]]) -> str:
    """One hash of a `data_files` listing (saved in study.json)."""
    import hashlib

    text = "\n".join(f"{rel}\t{size}\t{mtime}" for rel, (size, mtime) in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


SHOWN_NAMES = 3


def data_changes(saved: dict[str, list[int]], now: dict[str, list[int]]) -> str | None:
    """What changed between two `data_files` listings, in one line; None if nothing."""
    added = sorted(set(now) - set(saved))
    removed = sorted(set(saved) - set(now))
    changed = sorted(r for r in set(now) & set(saved) if list(now[r]) != list(saved[r]))
    parts = []
    for label, names in (("added", added), ("removed", removed), ("changed", changed)):
        if names:
            shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
            parts.append(f"{len(names)} {label} ({shown})")
    return "; ".join(parts) or None


def data_change(data: str | None, run_dir: Path) -> str | None:
    """What changed in the data folder ``data`` since the study in ``run_dir`` saved its
    `DATA_FILES` list, in one line; None when nothing did, for the demo data, or for a
    study saved without a list."""
    import json

    if data is None or not (run_dir / DATA_FILES).is_file():
        return None
    try:
        saved = json.loads((run_dir / DATA_FILES).read_text())
    except (OSError, ValueError):
        return None
    if not Path(data).is_dir():
        return f"the folder is gone ({len(saved)} files were listed)"
    return data_changes(saved, data_files(data) or {})


def data_change_refusal(data: str | None, change: str) -> str:
    """The one-line error for a resume on a changed data folder."""
    return (
        f"--resume: the data folder {data} changed since the study started: {change}. The "
        "finished trials trained on the images as they were; resume with --data-changed ok "
        "to continue on the folder as it is now, or start a new run"
    )


def _node_sees(ref: Any) -> bool:
    """A node's answer. A node that left the cluster meanwhile (an autoscaler scaled it
    down) is not counted as blind: it is gone, so it runs no trial of this study."""
    import ray

    try:
        return bool(ray.get(ref, timeout=120))
    except (ray.exceptions.TaskUnschedulableError, ray.exceptions.NodeDiedError):
        return True


def check_visible_from_all_nodes(location: RunLocation) -> None:
    """Refuses a local results folder that some node of the cluster cannot see.

    Writes a marker file into the folder and asks a task pinned to every other alive node
    whether it sees it. A shared file system passes; a plain local disk does not.

    Raises:
        StorageError: naming the nodes that cannot see the folder, and the fix.
    """
    if location.uri is not None:
        return
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    others = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] != here]
    if not others:
        return
    marker = location.local / f".visible-{uuid.uuid4().hex}"
    marker.write_text("covidxr")

    @ray.remote(num_cpus=0)
    def sees(path: str) -> bool:
        return os.path.exists(path)

    try:
        refs = {
            n["NodeManagerAddress"] + " (" + n["NodeID"][:8] + ")": sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(marker))
            for n in others
        }
        blind = [name for name, ref in refs.items() if not _node_sees(ref)]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise StorageError(
            f"the output folder {location.local.parent} is a local folder that {len(blind)} of "
            f"{len(others) + 1} cluster nodes cannot see ({', '.join(blind)}); multi-node "
            "Ray Tune needs results storage every node can reach. Fix: use a cloud URI as the "
            "output, e.g. s3://BUCKET/covidxr-runs, or a shared file system (NFS/EFS) "
            "mounted at the same path on every node."
        )


@contextlib.contextmanager
def claim(run_dir: Path, resume: bool) -> Iterator[Path]:
    """Creates the run folder (or re-opens it to resume) and holds a lock while running.

    Two runs with the same name never write into the same folder: a new run fails if the
    folder exists, and a second process resuming it fails while the first holds the lock.
    A fatal problem found before any trial ran leaves no half-made folder behind, so the
    same command works once the problem is fixed.

    Raises:
        StudyError: the folder exists (new run), holds no study (resume) or is locked.
    """
    if resume:
        if not (run_dir / STUDY_FILE).exists():
            raise StudyError(f"resume: {run_dir} holds no study to resume (no {STUDY_FILE})")
    else:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise taken(run_dir) from None
    lock = open(run_dir / ".lock", "w")  # noqa: SIM115 - held for the whole study
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StudyError(f"{run_dir} is in use by another running study") from None
    try:
        yield run_dir
    except CovidxrError:
        if not resume and not (run_dir / "leaderboard.parquet").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def taken(run_dir: Path) -> StudyError:
    """The error for a new run whose folder already exists."""
    return StudyError(f"run folder {run_dir} already exists: resume it, or choose another name")


__all__ = [
    "DATA_FILES",
    "STUDY_FILE",
    "RunLocation",
    "StorageError",
    "check_output",
    "check_visible_from_all_nodes",
    "claim",
    "data_change",
    "data_change_refusal",
    "data_changes",
    "data_digest",
    "data_files",
    "is_uri",
    "locate",
    "taken",
]
