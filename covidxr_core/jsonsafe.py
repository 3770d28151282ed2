"""The JSON sanitiser: every file covidxr writes is strict JSON (no NaN, no NumPy types).

`jsonable` is the one place that decides how a value becomes plain JSON: mappings to
dicts with string keys, tuples and arrays to lists, NumPy scalars to Python numbers,
non-finite floats to null, paths and anything else to their string.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """A plain-JSON copy of ``value`` (see the module docstring for the rules)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def dumps(value: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``jsonable(value)`` as strict JSON text (``allow_nan=False``)."""
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


__all__ = ["dumps", "jsonable"]
