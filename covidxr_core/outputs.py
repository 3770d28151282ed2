"""Output folders checked before any work: a run must not compute a result it cannot save.

``check_output_folder`` answers, in well under a second and without creating anything,
whether a command could later write its files into a folder: the path is not a file,
every missing parent can be created, the folder (or its nearest existing parent) takes
a new file, and nothing the command would write is already there (unless the user said
``--overwrite``). Each refusal is one line naming the flag, the path and the rule.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from covidxr_core.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(os.sep)


def _writable(folder: Path) -> str | None:
    """None if a file can be created in `folder`, else why not (the OS's reason)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".covidxr-write-check-", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return None


def check_output_folder(
    path: str | os.PathLike[str],
    flag: str = "--output",
    *,
    would_write: Sequence[str] = (),
    overwrite: bool = False,
    overwrite_flag: str = "--overwrite",
) -> Path:
    """Refuse an output folder the command could not write into, before any work.

    Args:
        path: The folder the command will create (if needed) and write into.
        flag: The command-line flag that gave it, for the message.
        would_write: File names the command writes there; one that already exists is
            refused unless ``overwrite`` (the user would lose it silently otherwise).
        overwrite: The user allowed replacing those files.
        overwrite_flag: The flag that allows it, for the message.

    Returns:
        The path, unchanged (nothing is created).

    Raises:
        ConfigError: ``FLAG PATH: RULE``, one line.
    """
    if not str(path):
        raise ConfigError(f"{flag}: must name a folder, but got an empty path")
    if "://" in str(path):  # Path() would fold s3://b/x into a local folder "s3:/b/x"
        raise ConfigError(
            f"{flag} {path}: must be a local folder, but got a URI (this command writes "
            "local files only)"
        )
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"{flag} {folder}: is an existing file, but it must be a folder (the command "
            "writes several files into it); choose a new or existing folder"
        )
    if folder.is_symlink() and not folder.exists():
        raise ConfigError(f"{flag} {folder}: is a broken symbolic link; it must be a folder")
    if folder.is_dir():
        present = [name for name in would_write if (folder / name).exists()]
        if present and not overwrite:
            raise ConfigError(
                f"{flag} {folder}: already holds {', '.join(present)} from an earlier run; "
                f"pass {overwrite_flag} to replace it, or choose another folder"
            )
        reason = _writable(folder)
        if reason is not None:
            raise ConfigError(f"{flag} {folder}: the folder cannot be written ({reason})")
        return folder
    parent = _nearest_existing(folder.parent)
    if not parent.is_dir():
        raise ConfigError(
            f"{flag} {folder}: cannot be created, because {parent} is a file, not a folder"
        )
    reason = _writable(parent)
    if reason is not None:
        raise ConfigError(
            f"{flag} {folder}: cannot be created, because {parent} cannot be written ({reason})"
        )
    return folder


__all__ = ["check_output_folder"]
