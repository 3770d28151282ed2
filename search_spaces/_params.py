"""The parameters a search space may vary, and how each lands in a training config.

A search space names parameters from this table only; anything else is a typo the user
should hear about before a single trial runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    "lr_decay": ParamSpec(float, "model", "Adagrad inverse-time decay rate"),
    "kernel_size": ParamSpec(int, "model", "conv kernel size"),
    "dense_units": ParamSpec(int, "model", "hidden dense units (0: none, as the recipe)"),
    "batch_norm": ParamSpec(bool, "model", "batch normalisation after each conv"),
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
