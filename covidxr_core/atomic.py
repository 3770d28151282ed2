"""Atomic writes: a reader sees the old file or the new one, never half of either.

Every file that a running study rewrites (the leaderboard, JSON results, the report, the
cache manifests) goes through here: written next to its final name, flushed, then
renamed over it with ``os.replace``, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``.

    For writers that want a file name (``pq.write_table``, ``model.save``). If the block
    raises, the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    # Keep the suffix last: some writers (Keras) insist on a ".keras" ending.
    tmp = final.with_name(f".{final.stem}.tmp{os.getpid()}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (fsynced before the rename)."""
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


__all__ = ["replacing", "write_bytes", "write_text"]
