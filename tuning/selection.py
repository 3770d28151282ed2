"""Choosing among trials on several objectives: objectives, constraints, the Pareto front, the pick.

Pure Python over row dicts (a leaderboard record, or any mapping with ``trial_id`` and
the objective columns); nothing here imports Ray, Optuna or Keras.

Flags and their grammar
    ``--objectives val_auc:max,params:min``: comma-separated ``NAME:DIRECTION``; names from
    `OBJECTIVES`, direction ``max`` or ``min`` (omitted: the name's natural direction).
    ``--constraint "val_sensitivity>=0.9"``: ``NAME OP NUMBER`` with OP one of ``>=``,
    ``<=``, ``>``, ``<``; repeatable; names from `CONSTRAINABLE`.
    ``--pick "max val_auc with params <= 200000"``: ``max|min NAME`` optionally followed
    by ``with COND [and COND ...]``, each COND as for ``--constraint``; or ``knee``.

Columns
    ``params`` is the model's parameter count, kept in the leaderboard column
    ``model_params`` (``params`` there already holds the searched hyperparameters);
    ``latency_ms`` is the CPU latency of one image. Every other name is its own column.

Pareto front
    A trial dominates another when it is at least as good on every objective and better
    on one, each objective in its direction. The front is the trials no other candidate
    dominates. A trial missing a finite value for some objective is no candidate.

Feasibility
    A trial is feasible when it satisfies every ``--constraint``; a missing value fails.

The pick
    Only feasible candidates are picked from. ``max NAME with ...`` (or ``min``): among
    those that also satisfy the ``with`` conditions, the best ``NAME``, ties to the best
    on the objectives in order, then the earlier trial. ``knee`` (the default): each
    objective is scaled to [0, 1] by min-max over the feasible candidates, 1 the best end
    (an objective that does not vary counts 1 for all); the knee is the point of the
    feasible front nearest to the utopia point (1, ..., 1) in Euclidean distance, ties to
    the earlier trial. Scaling over the candidates rather than the front alone keeps a
    two-point front from being a tie by construction. With one objective the knee is
    simply the best trial.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from covidxr_core.errors import ConfigError
from covidxr_core.numbers import finite

# What may be an objective, with its natural direction.
OBJECTIVES: dict[str, str] = {
    "val_auc": "max",
    "val_sensitivity": "max",
    "val_specificity": "max",
    "params": "min",
    "latency_ms": "min",
}
# What a constraint or a pick condition may name.
CONSTRAINABLE: dict[str, str] = {**OBJECTIVES, "val_accuracy": "max", "val_loss": "min"}
COLUMN_OF = {"params": "model_params"}  # objective name -> leaderboard column
DIRECTIONS = ("max", "min")
KNEE = "knee"
DEFAULT_OBJECTIVES = "val_auc:max"

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<|=>|=<|==|=|!=)\s*(\S+)\s*$")


def column(name: str) -> str:
    """The leaderboard column holding objective or constraint ``name``."""
    return COLUMN_OF.get(name, name)


def value_of(row: Mapping[str, Any], name: str) -> float | None:
    """A row's finite value for ``name`` (looked up under its column), else None."""
    value = row.get(column(name))
    if isinstance(value, bool):
        return None
    return finite(value)


def _choose(what: str, flag: str, value: str, names: Iterable[str]) -> str:
    return f"{flag}: unknown {what} {value!r}; choose from {', '.join(names)}"


# ----------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """One objective: a name of `OBJECTIVES` and ``max`` or ``min``."""

    name: str
    mode: str

    def __str__(self) -> str:
        return f"{self.name}:{self.mode}"


def parse_objectives(text: str, flag: str = "--objectives") -> tuple[Objective, ...]:
    """``"val_auc:max,params:min"`` -> objectives, in order.

    Raises:
        ConfigError: an empty list, an unknown name or direction, or a name given twice.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{flag}: give NAME:max or NAME:min, comma-separated, but got {text!r}")
    out: list[Objective] = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            raise ConfigError(f"{flag}: an empty entry in {text!r} (a stray comma?)")
        name, _, mode = (s.strip() for s in item.partition(":"))
        if name not in OBJECTIVES:
            raise ConfigError(_choose("objective", flag, name, OBJECTIVES))
        mode = mode or OBJECTIVES[name]
        if mode not in DIRECTIONS:
            raise ConfigError(
                f"{flag}: direction of {name} must be max or min, but got {mode!r} in {item!r}"
            )
        if any(o.name == name for o in out):
            raise ConfigError(f"{flag}: objective {name} is given twice in {text!r}")
        out.append(Objective(name, mode))
    return tuple(out)


def format_objectives(objectives: Sequence[Objective]) -> str:
    return ",".join(str(o) for o in objectives)


# ---------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Constraint:
    """``name op bound``, e.g. ``val_sensitivity >= 0.9``."""

    name: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_number(self.bound)}"

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` satisfies it; a missing value does not."""
        v = finite(value)
        return v is not None and _OPS[self.op](v, self.bound)

    def violation(self, value: float | None) -> float:
        """Optuna's form: <= 0 when satisfied, positive (how far off) when not.

        A strict bound met with equality counts as a small violation; a missing value
        as a large one (NaN is refused by Optuna).
        """
        v = finite(value)
        if v is None:
            return 1e12
        gap = self.bound - v if self.op in (">=", ">") else v - self.bound
        if self.op in (">", "<") and gap == 0:
            return 1e-12
        return gap


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def parse_constraint(text: str, flag: str = "--constraint") -> Constraint:
    """``"val_sensitivity>=0.9"`` -> a `Constraint`.

    Raises:
        ConfigError: not ``NAME OP NUMBER``, an unknown name, an operator other than
            >=, <=, >, <, or a bound that is not a finite number.
    """
    match = _CONDITION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"{flag}: write NAME OP NUMBER with OP one of >=, <=, >, < "
            f"(e.g. val_sensitivity>=0.9), but got {text!r}"
        )
    name, op, raw = match.groups()
    if name not in CONSTRAINABLE:
        raise ConfigError(_choose("name", flag, name, CONSTRAINABLE))
    if op not in _OPS:
        raise ConfigError(
            f"{flag}: operator must be one of >=, <=, >, <, but got {op!r} in {text!r}"
        )
    try:
        bound = float(raw)
    except ValueError:
        bound = math.nan
    if not math.isfinite(bound):
        raise ConfigError(f"{flag}: the bound must be a finite number, but got {raw!r} in {text!r}")
    return Constraint(name, op, bound)


def feasible(row: Mapping[str, Any], constraints: Sequence[Constraint]) -> bool:
    """Whether the row satisfies every constraint."""
    return all(c.holds(value_of(row, c.name)) for c in constraints)


@dataclass(frozen=True)
class ConstraintsFunc:
    """Optuna's ``constraints_func``: the trial's violations, read from its user attrs.

    The trial must carry each constrained value as the user attr of its name
    (``trial.set_user_attr("val_sensitivity", 0.93)``) before it is told complete;
    `USER_ATTR_PREFIX` + name is read first, so an engine can keep them apart.
    Picklable (a frozen dataclass), as samplers are stored with the study.
    """

    constraints: tuple[Constraint, ...]

    def __call__(self, trial: Any) -> list[float]:
        attrs: Mapping[str, Any] = getattr(trial, "user_attrs", {}) or {}
        out = []
        for c in self.constraints:
            value = attrs.get(USER_ATTR_PREFIX + c.name, attrs.get(c.name))
            out.append(float(c.violation(value)))
        return out


USER_ATTR_PREFIX = "constraint_"


# ------------------------------------------------------------------------- the pick


@dataclass(frozen=True)
class PickRule:
    """``knee``, or the best ``name`` in ``mode`` among trials meeting ``conditions``."""

    kind: str  # "knee" or "best"
    name: str | None = None
    mode: str | None = None
    conditions: tuple[Constraint, ...] = ()

    def __str__(self) -> str:
        if self.kind == KNEE:
            return KNEE
        text = f"{self.mode} {self.name}"
        if self.conditions:
            text += " with " + " and ".join(str(c) for c in self.conditions)
        return text

    def describe(self, objectives: Sequence[Objective]) -> str:
        """One sentence for the report."""
        if self.kind == KNEE:
            if len(objectives) == 1:
                return f"the best {objectives[0]} among feasible trials (the knee of a one-objective front)"
            return (
                "the knee of the feasible Pareto front: each objective min-max scaled over the "
                "feasible trials (1 = best), the front point nearest to the utopia point "
                "(1, ..., 1)"
            )
        return f"{self}, among feasible trials"


def parse_pick(text: str | None, flag: str = "--pick") -> PickRule:
    """``"max val_auc with params <= 200000"`` or ``"knee"`` (None: knee)."""
    if text is None or not str(text).strip() or str(text).strip().lower() == KNEE:
        return PickRule(KNEE)
    head, sep, tail = str(text).strip().partition(" with ")
    words = head.split()
    if len(words) != 2 or words[0] not in DIRECTIONS:
        raise ConfigError(
            f"{flag}: write 'knee' or 'max|min NAME [with NAME OP NUMBER [and ...]]' "
            f"(e.g. 'max val_auc with params <= 200000'), but got {text!r}"
        )
    mode, name = words
    if name not in CONSTRAINABLE:
        raise ConfigError(_choose("name", flag, name, CONSTRAINABLE))
    conditions: tuple[Constraint, ...] = ()
    if sep:
        parts = re.split(r"\band\b", tail)
        if not tail.strip() or any(not p.strip() for p in parts):
            raise ConfigError(f"{flag}: nothing after 'with' / 'and' in {text!r}")
        conditions = tuple(parse_constraint(p, flag) for p in parts)
    return PickRule("best", name, mode, conditions)


# -------------------------------------------------------------------- the front


def _points(
    rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[tuple[int, tuple[float, ...]]]:
    """(row index, values made "higher is better") for rows with every objective."""
    out: list[tuple[int, tuple[float, ...]]] = []
    for i, row in enumerate(rows):
        values = [value_of(row, o.name) for o in objectives]
        known = [v for v in values if v is not None]
        if len(known) == len(objectives):
            signs = [1.0 if o.mode == "max" else -1.0 for o in objectives]
            out.append((i, tuple(s * v for s, v in zip(signs, known, strict=True))))
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` dominates ``b`` (both "higher is better")."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def pareto_front(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of the rows on the Pareto front, in row order."""
    points = _points(rows, objectives)
    return [i for i, p in points if not any(dominates(q, p) for _, q in points)]


def knee(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> int | None:
    """Index of the knee of ``rows``'s front, scaled over all ``rows`` (module docstring);
    None without candidates."""
    front = set(pareto_front(rows, objectives))
    every = _points(rows, objectives)
    points = [(i, p) for i, p in every if i in front]
    if not points:
        return None
    lows = [min(p[d] for _, p in every) for d in range(len(objectives))]
    highs = [max(p[d] for _, p in every) for d in range(len(objectives))]

    def distance(p: tuple[float, ...]) -> float:
        scaled = [
            (v - lo) / (hi - lo) if hi > lo else 1.0
            for v, lo, hi in zip(p, lows, highs, strict=True)
        ]
        return math.sqrt(sum((1.0 - s) ** 2 for s in scaled))

    return min(points, key=lambda ip: (round(distance(ip[1]), 12), ip[0]))[0]


@dataclass(frozen=True)
class Selection:
    """What the selection found; trial ids throughout."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    rule: PickRule
    candidates: tuple[str, ...]  # rows with every objective
    front: tuple[str, ...]  # Pareto front of the candidates (feasible or not)
    feasible: tuple[str, ...]  # candidates meeting every constraint
    winner: str | None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """What ``selection.json`` holds (the report reads it back)."""
        return {
            "objectives": [str(o) for o in self.objectives],
            "constraints": [str(c) for c in self.constraints],
            "pick": str(self.rule),
            "pick_rule": self.rule.describe(self.objectives),
            "candidates": list(self.candidates),
            "front": list(self.front),
            "feasible": list(self.feasible),
            "winner": self.winner,
            "notes": list(self.notes),
        }

    def flags(self, trial_id: str) -> dict[str, bool]:
        """The leaderboard's ``pareto`` and ``feasible`` flags for one trial."""
        return {"pareto": trial_id in self.front, "feasible": trial_id in self.feasible}


def select(
    rows: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint] = (),
    rule: PickRule | None = None,
) -> Selection:
    """The front, the feasible set and the winner of ``rows`` (module docstring).

    ``winner`` is None when no candidate is feasible (or none meets the pick's
    conditions); ``notes`` then says so in one line.
    """
    rule = rule if rule is not None else PickRule(KNEE)
    ids = [str(r["trial_id"]) for r in rows]
    candidates = {i for i, _ in _points(rows, objectives)}
    front = pareto_front(rows, objectives)
    ok = [i for i in sorted(candidates) if feasible(rows[i], constraints)]
    notes: list[str] = []
    winner: int | None = None
    if not candidates:
        notes.append(
            f"no trial has a value for every objective ({format_objectives(objectives)}): "
            "nothing to pick"
        )
    elif not ok:
        closest = _closest(rows, sorted(candidates), constraints)
        notes.append(
            f"no trial is feasible: none of {len(candidates)} satisfies "
            f"{' and '.join(str(c) for c in constraints)}{closest}; nothing is picked"
        )
    elif rule.kind == KNEE:
        sub = [rows[i] for i in ok]
        at = knee(sub, objectives)
        winner = ok[at] if at is not None else None
    else:
        assert rule.name is not None and rule.mode is not None
        meeting = [i for i in ok if feasible(rows[i], rule.conditions)]
        if not meeting:
            notes.append(
                f"no feasible trial meets the pick's conditions "
                f"({' and '.join(str(c) for c in rule.conditions)}); nothing is picked"
            )
        else:
            scored = [i for i in meeting if value_of(rows[i], rule.name) is not None]
            if not scored:
                notes.append(f"no feasible trial has a value for {rule.name}; nothing is picked")
            else:
                sign = 1.0 if rule.mode == "max" else -1.0

                def key(i: int) -> tuple[Any, ...]:
                    own = sign * (value_of(rows[i], rule.name or "") or 0.0)
                    rest = tuple(
                        (value_of(rows[i], o.name) or 0.0) * (1 if o.mode == "max" else -1)
                        for o in objectives
                    )
                    return (own, rest, -i)

                winner = max(scored, key=key)
    return Selection(
        objectives=tuple(objectives),
        constraints=tuple(constraints),
        rule=rule,
        candidates=tuple(ids[i] for i in sorted(candidates)),
        front=tuple(ids[i] for i in front),
        feasible=tuple(ids[i] for i in ok),
        winner=ids[winner] if winner is not None else None,
        notes=tuple(notes),
    )


def _closest(
    rows: Sequence[Mapping[str, Any]], indices: Sequence[int], constraints: Sequence[Constraint]
) -> str:
    """`` (best seen: val_sensitivity 0.82)`` for the first constraint, when known."""
    if not constraints:
        return ""
    c = constraints[0]
    values = [v for i in indices if (v := value_of(rows[i], c.name)) is not None]
    if not values:
        return f" (no trial reported {c.name})"
    best = max(values) if c.op in (">=", ">") else min(values)
    return f" (best seen: {c.name} {best:.4g})"


__all__ = [
    "COLUMN_OF",
    "CONSTRAINABLE",
    "DEFAULT_OBJECTIVES",
    "KNEE",
    "OBJECTIVES",
    "USER_ATTR_PREFIX",
    "Constraint",
    "ConstraintsFunc",
    "Objective",
    "PickRule",
    "Selection",
    "column",
    "dominates",
    "feasible",
    "format_objectives",
    "knee",
    "pareto_front",
    "parse_constraint",
    "parse_objectives",
    "parse_pick",
    "select",
    "value_of",
]
