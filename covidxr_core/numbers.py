"""`finite`: the one rule for turning a reported value into a usable number.

Metrics cross process boundaries as floats, NumPy scalars, strings from Parquet or None;
a NaN AUC (one class only) or an infinite loss must read as "no value", never as a number
that sorts or averages.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


__all__ = ["finite"]
