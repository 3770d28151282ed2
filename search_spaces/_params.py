"""The parameters a search space may vary, and how each lands in a training config.

A search space names parameters from this table only; anything else is a typo the user
should hear about before a single trial runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from covidxr_core.config import LR_SCHEDULES, OPTIMIZER_NAMES

N_BLOCKS = 6


@dataclass(frozen=True)
class ParamSpec:
    """What one tunable parameter is: its Python type and where it lives."""

    kind: type  # float, int, str or bool
    target: str  # "model", "augment", "train" or "widths" (derived, see derive_widths)
    doc: str


KNOWN_PARAMS: dict[str, ParamSpec] = {
    "learning_rate": ParamSpec(float, "model", "initial learning rate"),
    "dropout": ParamSpec(float, "model", "dropout before the classifier"),
    "l2": ParamSpec(float, "model", "L2 factor on every conv kernel"),
    "optimizer": ParamSpec(str, "model", "adagrad | adam | sgd"),
    "momentum": ParamSpec(float, "model", "SGD momentum"),
    "lr_schedule": ParamSpec(str, "model", "constant | inverse_time | cosine"),
    "lr_decay": ParamSpec(float, "model", "inverse-time decay rate per step (inverse_time only)"),
    "kernel_size": ParamSpec(int, "model", "conv kernel size"),
    "dense_units": ParamSpec(int, "model", "hidden dense units (0: none, as the recipe)"),
    "batch_norm": ParamSpec(bool, "model", "batch normalisation after each conv"),
    "bn_momentum": ParamSpec(float, "model", "momentum of BatchNorm's moving statistics"),
    "base_width": ParamSpec(int, "widths", "filters of the first conv block"),
    "width_growth": ParamSpec(float, "widths", "width factor from one block to the next"),
    "width_cap": ParamSpec(int, "widths", "largest allowed block width"),
    **{
        f"width_{i}": ParamSpec(int, "widths", f"filters of conv block {i} (overrides growth)")
        for i in range(1, N_BLOCKS + 1)
    },
    "batch_size": ParamSpec(int, "train", "images per training step"),
    "rotation_deg": ParamSpec(float, "augment", "max rotation, degrees"),
    "zoom": ParamSpec(float, "augment", "zoom range (+/-)"),
    "shear_deg": ParamSpec(float, "augment", "max shear, degrees"),
    "width_shift": ParamSpec(float, "augment", "horizontal shift, fraction of width"),
    "height_shift": ParamSpec(float, "augment", "vertical shift, fraction of height"),
    "horizontal_flip": ParamSpec(bool, "augment", "random left-right flips"),
    "vertical_flip": ParamSpec(bool, "augment", "random up-down flips"),
}


@dataclass(frozen=True)
class Legal:
    """The values one parameter may take, whatever a search space says.

    A number must lie within ``low``/``high`` (each bound open or closed; None: unbounded),
    and be odd where ``odd`` is set; a string must be one of ``choices``. Booleans need no
    entry: the type check already leaves only true and false.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: low itself is not allowed
    high_open: bool = False  # True: high itself is not allowed
    odd: bool = False
    choices: tuple[str, ...] = ()

    def rule(self, name: str) -> str:
        """The rule as error messages state it: ``0 <= dropout < 1``, ``batch_size >= 1``."""
        if self.choices:
            return f"{name} in {{{', '.join(self.choices)}}}"
        below = "<" if self.low_open else "<="
        above = "<" if self.high_open else "<="
        if self.low is not None and self.high is not None:
            text = f"{self.low:g} {below} {name} {above} {self.high:g}"
        elif self.low is not None:
            text = f"{name} {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{name} {above} {self.high:g}"
        else:
            text = f"{name} finite"
        return f"{text}, odd" if self.odd else text

    def allows(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        number = float(value)
        if not math.isfinite(number):
            return False
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return False
        if self.high is not None and (
            number > self.high or (self.high_open and number == self.high)
        ):
            return False
        return not self.odd or (number.is_integer() and int(number) % 2 == 1)


_FRACTION = Legal(0.0, 1.0, high_open=True)  # [0, 1)
_DEGREES = Legal(0.0, 180.0)  # [0, 180]
_COUNT = Legal(1.0)  # >= 1
_NON_NEGATIVE = Legal(0.0)  # >= 0
_POSITIVE = Legal(0.0, low_open=True)  # > 0

# The legal range of each numeric or string parameter, checked on every bound, choice and
# fixed value when a space is loaded (the model and augmentation configs check the same
# rules again when a trial's config is built; this table gets them in before any trial).
LEGAL: dict[str, Legal] = {
    "learning_rate": _POSITIVE,
    "dropout": _FRACTION,
    "l2": _NON_NEGATIVE,
    "optimizer": Legal(choices=OPTIMIZER_NAMES),  # what covidxr_core.model.OPTIMIZERS builds
    "momentum": _FRACTION,
    "lr_schedule": Legal(choices=LR_SCHEDULES),
    "lr_decay": _NON_NEGATIVE,
    "kernel_size": Legal(1.0, odd=True),
    "dense_units": _NON_NEGATIVE,
    "bn_momentum": _FRACTION,
    "base_width": _COUNT,
    "width_growth": _POSITIVE,
    "width_cap": _COUNT,
    **{f"width_{i}": _COUNT for i in range(1, N_BLOCKS + 1)},
    "batch_size": _COUNT,
    "rotation_deg": _DEGREES,
    "zoom": _FRACTION,
    "shear_deg": _DEGREES,
    "width_shift": _FRACTION,
    "height_shift": _FRACTION,
}


def derive_widths(values: dict[str, Any], base: tuple[int, ...]) -> tuple[int, ...]:
    """Per-block widths from a base width, growth factor and cap, then per-block overrides.

    Unset parts fall back to the base configuration: its first width, the growth between
    its first two blocks (2 for the recipe) and no cap.
    """
    widths = list(base)
    if any(k in values for k in ("base_width", "width_growth", "width_cap")):
        first = int(values.get("base_width", base[0]))
        default_growth = base[1] / base[0] if len(base) > 1 and base[0] else 2.0
        growth = float(values.get("width_growth", default_growth))
        cap = values.get("width_cap")
        widths = []
        for i in range(len(base)):
            width = max(1, round(first * growth**i))
            widths.append(min(width, int(cap)) if cap is not None else width)
    for i in range(1, len(widths) + 1):
        if f"width_{i}" in values:
            widths[i - 1] = int(values[f"width_{i}"])
    return tuple(widths)
