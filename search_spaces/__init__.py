"""Named search spaces, stored as YAML beside this file, plus a user's own by path.

A space is checked whole when it is loaded, before any trial: parameter names
(`KNOWN_PARAMS`), the keys of each parameter, a key given twice anywhere in the file,
and every bound, choice and fixed value against the parameter's legal range (`LEGAL`,
e.g. ``0 <= dropout < 1``). Each refusal is one `ConfigError` line naming the file, the
parameter or key, the rule and the value.

>>> from search_spaces import get_space
>>> space = get_space("default")
>>> space.names[:2]
('learning_rate', 'dropout')
"""

from __future__ import annotations

from pathlib import Path

from covidxr_core.errors import ConfigError
from search_spaces._params import KNOWN_PARAMS, LEGAL
from search_spaces._space import Param, SearchSpace, load_space_file, parse_space

_HERE = Path(__file__).resolve().parent


def available_spaces() -> list[str]:
    """Names of the built-in spaces."""
    return sorted(p.stem for p in _HERE.glob("*.yaml"))


def get_space(name_or_path: str) -> SearchSpace:
    """A built-in space by name, or a YAML file by path.

    Raises:
        ConfigError: unknown name (listing the valid ones) or an invalid file.
    """
    looks_like_path = name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path
    if looks_like_path:
        return load_space_file(name_or_path)
    if name_or_path not in available_spaces():
        raise ConfigError(
            f"unknown search space {name_or_path!r}: built-in spaces are {available_spaces()}, "
            "or pass the path of a YAML file"
        )
    return load_space_file(_HERE / f"{name_or_path}.yaml")


__all__ = [
    "KNOWN_PARAMS",
    "LEGAL",
    "Param",
    "SearchSpace",
    "available_spaces",
    "get_space",
    "load_space_file",
    "parse_space",
]
