"""Atomic writes: a reader sees the old file or the new one, never half of either.

Every file that a running study rewrites (the leaderboard, JSON results, the report, the
cache manifests) goes through here: written next to its final name, flushed, then
renamed over it with ``os.replace``, which is atomic on POSIX file systems.

A write that fails because the disk is full (``ENOSPC``) or a quota is reached
(``EDQUOT``) leaves the old file as it was and raises `DiskFull`, a one-line error
naming the path; `out_of_space` turns the same failure raised anywhere else below a
folder (a library's own write, SQLite's "database or disk is full") into it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from covidxr_core.errors import CovidxrError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
# How libraries that do not keep errno (pyarrow, SQLite, h5py...) say the same thing.
_NO_SPACE_TEXT = ("no space left on device", "disk quota exceeded", "database or disk is full")


class DiskFull(CovidxrError, OSError):
    """A write failed for want of space; the message names the path and what to do.

    Also an `OSError` (with ``errno`` set), so code that tolerates a failed write keeps
    tolerating it.
    """

    HINT = "free some space there (or choose another --output), then continue with --resume"

    def __init__(
        self, path: str | os.PathLike[str], code: int = errno.ENOSPC, hint: str | None = None
    ) -> None:
        self.path = Path(path)
        self.hint = hint
        what = "disk quota exceeded" if code == errno.EDQUOT else "no space left on device"
        super().__init__(
            code,
            f"{self.path}: cannot write, {what} ({errno.errorcode.get(code, code)}); what was "
            f"written before is intact; {hint or self.HINT}",
        )

    def __reduce__(self) -> tuple[object, ...]:  # it may cross a process (Ray) boundary
        return (type(self), (str(self.path), self.errno, self.hint))

    def __str__(self) -> str:
        return str(self.strerror)


def no_space(exc: BaseException | None) -> int | None:
    """``ENOSPC``/``EDQUOT`` if ``exc`` or an exception it was raised from or during says
    the disk is full (by errno or, for libraries that drop it, by message), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            return int(exc.errno)
        text = str(exc).lower()
        if any(t in text for t in _NO_SPACE_TEXT):
            return errno.EDQUOT if "quota" in text else errno.ENOSPC
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def out_of_space(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Inside this block, any exception that comes from a full disk becomes `DiskFull`.

    ``folder`` is named when the failure does not say which file it was writing (SQLite,
    a library's log). Other exceptions pass through untouched.
    """
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        code = no_space(exc)
        if code is None:
            raise
        named = getattr(exc, "filename", None)
        hint = (
            None
            if named
            else (
                "the failing write named no file: if that disk has room, look at the others the "
                "run writes to (Ray's temp folder, --cache-dir); free some space, then continue "
                "with --resume"
            )
        )
        raise DiskFull(named or folder, code, hint) from exc


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``.

    For writers that want a file name (``pq.write_table``, ``model.save``). If the block
    raises, the temporary file is removed and ``path`` is untouched; a full disk is raised
    as `DiskFull` naming ``path``.
    """
    final = Path(path)
    # Keep the suffix last: some writers (Keras) insist on a ".keras" ending.
    tmp = final.with_name(f".{final.stem}.tmp{os.getpid()}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    except DiskFull:
        raise
    except Exception as exc:
        code = no_space(exc)
        if code is None:
            raise
        raise DiskFull(final, code) from exc
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


__all__ = [
    "NO_SPACE",
    "DiskFull",
    "no_space",
    "out_of_space",
    "replacing",
    "write_bytes",
    "write_text",
]
