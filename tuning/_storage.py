"""Where a study's results live: a local folder, or a cloud URI every node can reach.

Ray Tune needs, on a multi-node cluster, a storage path that every node can read and
write (Ray >= 2.7). A cloud URI (`s3://`, `gs://`, `abfs://`... anything pyarrow's file
systems open) is such a path. The driver's own files (leaderboard, Optuna's SQLite study,
retrained models, report) are written to a local staging folder and mirrored to the URI
as they change, since SQLite cannot live on an object store.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from covidxr_core.errors import CovidxrError


class StorageError(CovidxrError):
    """The results location cannot serve this study."""


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


def locate(output: str, name: str, staging_root: Path | None = None) -> RunLocation:
    """The RunLocation of run `name` under `output` (a local path or a URI)."""
    if is_uri(output):
        root = staging_root or Path(
            os.environ.get("COVIDXR_STAGING", Path.home() / ".cache" / "covidxr" / "runs")
        )
        return RunLocation(local=root / name, uri=f"{output.rstrip('/')}/{name}")
    local = output.removeprefix("file://")
    return RunLocation(local=Path(local).expanduser().resolve() / name)


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
        blind = [name for name, ref in refs.items() if not ray.get(ref, timeout=120)]
    finally:
        marker.unlink(missing_ok=True)
    if blind:
        raise StorageError(
            f"--output {location.local.parent} is a local folder that {len(blind)} of "
            f"{len(others) + 1} cluster nodes cannot see ({', '.join(blind)}); multi-node "
            "Ray Tune needs results storage every node can reach. Fix: pass a cloud URI, "
            "e.g. --output s3://BUCKET/covidxr-runs, or a shared file system (NFS/EFS) "
            "mounted at the same path on every node."
        )
