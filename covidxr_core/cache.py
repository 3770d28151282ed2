"""The cache root: the one folder every covidxr cache lives under.

Decoded images (``covidxr_core.data``), JAX's compiled programs and a cloud run's local
staging folder all sit below it, so one setting moves them all.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "COVIDXR_CACHE"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$COVIDXR_CACHE``, else ``~/.cache/covidxr``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "covidxr"


__all__ = ["ENV", "cache_root"]
