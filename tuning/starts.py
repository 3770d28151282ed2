"""Known-good configurations, run first: the sensible default, the recipe, a user's own.

A search that never tries the configuration a competent engineer would train without it
can hand back something worse. So the first trials of every study are the starting
points its space holds, in this order:

- ``default``: the sensible default (`covidxr_core.config` preset ``default``);
- ``recipe``: the recipe as published (preset ``seed``);
- ``user``: each entry of the space's ``starts:`` list (values not given come from the
  space's base).

A point the space cannot express (a value outside a range, a setting held at another
value) is not run, and the study says why in one line. The engines run these trials for
the full epoch budget, whatever the scheduler decides for the others, and the
leaderboard's ``origin`` column names where each trial came from (``search`` for the
sampler's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidxr_core.train import TrainConfig
    from search_spaces import SearchSpace

ORIGINS = ("default", "recipe", "user", "search")
# The key under which a trial's origin travels in its Ray Tune config (not a parameter).
ORIGIN_KEY = "origin"


@dataclass(frozen=True)
class Start:
    """One starting point: where it comes from and its searched values."""

    origin: str  # one of ORIGINS but "search"
    values: dict[str, Any]


def starting_points(
    space: SearchSpace, base: TrainConfig, default: TrainConfig, recipe: TrainConfig
) -> tuple[list[Start], list[str]]:
    """The starting points ``space`` holds, and a line for each known config it cannot hold.

    Args:
        space: The study's search space.
        base: What the space's values are applied to (the space's base, at the study's
            image size and budget).
        default: The sensible default under the study's budget.
        recipe: The recipe under the study's budget.

    Returns:
        ``(starts, notes)``: the points in run order (a point equal to an earlier one is
        run once, under the earlier origin), and why a known configuration is not among
        them.
    """
    starts: list[Start] = []
    notes: list[str] = []
    for origin, config in (("default", default), ("recipe", recipe)):
        values, why = space.point_of(config, base)
        if values is None:
            if origin == "default" or space.base == "recipe":
                label = "the sensible default" if origin == "default" else "the recipe"
                notes.append(
                    f"{label} is not a trial: the space `{space.name}` cannot express it "
                    f"({why}); it is still trained as a baseline"
                )
            continue
        starts.append(Start(origin, values))
    if space.starts:
        own, _ = space.point_of(base, base)  # the base's own values fill what a start omits
        filler = own or space.sample_defaults()
        starts += [Start("user", {**filler, **given}) for given in space.starts]
    unique: list[Start] = []
    for start in starts:
        if all(start.values != kept.values for kept in unique):
            unique.append(start)
    return unique, notes


__all__ = ["ORIGINS", "ORIGIN_KEY", "Start", "starting_points"]
