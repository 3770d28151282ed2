"""Search spaces as data: parsing, validation, Optuna distributions, trial configs."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from covidxr_core.errors import ConfigError
from search_spaces._params import KNOWN_PARAMS, LEGAL, derive_widths

if TYPE_CHECKING:
    import optuna

    from covidxr_core.train import TrainConfig

_TYPES = ("float", "int", "categorical")
_TOP_KEYS = ("description", "base", "fixed", "params", "starts")
# What a space's unlisted parameters keep: the sensible default (`default` preset) or the
# recipe as published (`seed` preset).
BASES = {"default": "default", "recipe": "seed"}
_NUMERIC_KEYS = ("type", "low", "high", "log")  # the keys of a float or int parameter
_CATEGORICAL_KEYS = ("type", "choices")  # the keys of a categorical parameter


@dataclass(frozen=True)
class Param:
    """One searched parameter: a numeric range (optionally log-scaled) or a set of choices."""

    name: str
    type: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution this parameter is sampled from."""
        import optuna

        if self.type == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)  # type: ignore[arg-type]
        if self.type == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return optuna.distributions.CategoricalDistribution(self.choices)

    def describe(self) -> str:
        if self.type == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = " (log)" if self.log else ""
        return f"{self.type} [{self.low:g}, {self.high:g}]{scale}"


@dataclass(frozen=True)
class SearchSpace:
    """A named search space: searched parameters plus fixed overrides of the base config."""

    name: str
    params: tuple[Param, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""  # the YAML file it came from
    base: str = "default"  # a key of BASES: what every unlisted value is taken from
    # A user's own starting points: searched values (the rest from the base), run first.
    starts: tuple[Mapping[str, Any], ...] = ()

    @property
    def preset(self) -> str:
        """The `covidxr_core.config` preset the base names."""
        return BASES[self.base]

    def contains(self, name: str, value: Any) -> bool:
        """Whether the searched parameter ``name`` can take ``value``."""
        param = next(p for p in self.params if p.name == name)
        if param.type == "categorical":
            return any(type(c) is type(value) and c == value for c in param.choices) or (
                not isinstance(value, bool)
                and any(not isinstance(c, bool) and c == value for c in param.choices)
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        assert param.low is not None and param.high is not None
        return param.low * (1 - 1e-9) <= value <= param.high * (1 + 1e-9)

    def point_of(self, config: TrainConfig, base: TrainConfig) -> tuple[dict[str, Any] | None, str]:
        """The searched values that turn ``base`` into ``config``, if the space holds them.

        Returns:
            ``(values, "")``, or ``(None, why)`` naming the first value the space cannot
            take or the setting it holds fixed at another value.
        """
        model, augment = config.model, config.model.augment
        values: dict[str, Any] = {}
        for param in self.params:
            name, target = param.name, KNOWN_PARAMS[param.name].target
            if name == "lr_decay" and model.lr_schedule != "inverse_time":
                values[name] = param.choices[0] if param.type == "categorical" else param.low
                continue  # unread by the other schedules: any value in the space will do
            if target == "widths":
                value: Any = _width_value(name, model.widths)
            elif target == "augment":
                value = getattr(augment, name)
            elif target == "train":
                value = getattr(config, name)
            else:
                value = getattr(model, name)
            if param.type == "categorical":
                value = next((c for c in param.choices if c == value), value)
            elif param.type == "int":
                value = int(value)
            if not self.contains(name, value):
                return None, f"`{name}` = {value!r} is outside {param.describe()}"
            values[name] = value
        rebuilt = self.apply(values, base)
        if rebuilt.model != model or rebuilt.batch_size != config.batch_size:
            differ = _first_difference(rebuilt, config)
            return None, f"the space holds {differ} at another value"
        return values, ""

    def held_fixed(self, base: TrainConfig) -> dict[str, Any]:
        """Every training setting no trial of this space changes, by name, with its value:
        the base's (after `fixed`) for each known parameter the space does not search, plus
        the budget and the settings no space can search."""
        config = self.apply(self.sample_defaults(), base)
        model = config.model
        searched = set(self.names)
        width_knobs = {"base_width", "width_growth", "width_cap"} | {
            f"width_{i}" for i in range(1, len(model.widths) + 1)
        }
        held: dict[str, Any] = {"base": f"{self.base} ({self.preset} preset)"}
        if not searched & width_knobs:
            held["widths"] = list(model.widths)
        else:
            for knob in ("width_growth", "width_cap"):
                if knob not in searched:
                    derived = (
                        _width_value(knob, base.model.widths) if knob == "width_growth" else None
                    )
                    held[knob] = self.fixed.get(knob, derived)  # width_cap None: no cap
        for name, spec in KNOWN_PARAMS.items():
            if name in searched or spec.target == "widths":
                continue
            unread_decay = "lr_schedule" not in searched and model.lr_schedule != "inverse_time"
            if name == "lr_decay" and unread_decay:
                continue  # read by the inverse-time schedule only
            if name == "momentum" and "optimizer" not in searched and model.optimizer != "sgd":
                continue  # read by SGD only
            if spec.target == "augment":
                held[name] = getattr(model.augment, name)
            elif spec.target == "train":
                held[name] = getattr(config, name)
            else:
                held[name] = getattr(model, name)
        held.update(
            pool_size=model.pool_size,
            fill_mode=model.augment.fill_mode,
            augment=model.augment.enabled,
            epochs=config.epochs,
            image_size=model.image_size,
            channels=model.channels,
            precision=config.precision,
        )
        return held

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def to_optuna(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Distributions keyed by parameter name, as `OptunaSearch(space=...)` takes them."""
        return {p.name: p.distribution() for p in self.params}

    def sample_defaults(self) -> dict[str, Any]:
        """A point inside the space (each range's low end, each first choice); for tests."""
        return {p.name: p.choices[0] if p.type == "categorical" else p.low for p in self.params}

    def apply(self, values: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
        """The training config of one trial: `base`, then `fixed`, then the sampled values.

        Raises:
            ConfigError: a value is unknown or produces an invalid model (the model's own
                validation names the field).
        """
        merged = {**self.fixed, **values}
        unknown = sorted(set(merged) - set(KNOWN_PARAMS))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {unknown}: valid names are {sorted(KNOWN_PARAMS)}"
            )
        model_kw: dict[str, Any] = {}
        augment_kw: dict[str, Any] = {}
        train_kw: dict[str, Any] = {}
        for name, value in merged.items():
            spec = KNOWN_PARAMS[name]
            typed = _coerce(name, value, spec.kind)
            {"model": model_kw, "augment": augment_kw, "train": train_kw}.get(spec.target, {})[
                name
            ] = typed
        widths = derive_widths(merged, base.model.widths)
        if widths != base.model.widths:
            model_kw["widths"] = widths
        if augment_kw:
            model_kw["augment"] = dataclasses.replace(base.model.augment, **augment_kw)
        model = dataclasses.replace(base.model, **model_kw)
        return dataclasses.replace(base, model=model, **train_kw)


def _width_value(name: str, widths: tuple[int, ...]) -> Any:
    """A width parameter's value that derives ``widths`` (checked by the caller)."""
    if name == "base_width":
        return widths[0]
    if name == "width_growth":
        return widths[1] / widths[0] if len(widths) > 1 else 2.0
    if name == "width_cap":
        return max(widths)
    return widths[int(name.removeprefix("width_")) - 1]


def _first_difference(a: TrainConfig, b: TrainConfig) -> str:
    """The first setting (``model.widths``, ``batch_size``...) where two configs differ."""
    for name in ("batch_size",):
        if getattr(a, name) != getattr(b, name):
            return f"`{name}` ({getattr(a, name)!r} vs {getattr(b, name)!r})"
    for f in dataclasses.fields(a.model):
        x, y = getattr(a.model, f.name), getattr(b.model, f.name)
        if x != y and f.name == "augment":
            for g in dataclasses.fields(x):
                if getattr(x, g.name) != getattr(y, g.name):
                    return f"`{g.name}` ({getattr(x, g.name)!r} vs {getattr(y, g.name)!r})"
        if x != y:
            return f"`{f.name}` ({x!r} vs {y!r})"
    return "a setting"


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"parameter `{name}` must be true or false, but got {value!r}")
    if kind is str:
        return str(value)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"parameter `{name}` must be {kind.__name__}, but got {value!r}"
        ) from None
    if kind is int and float(value) != number:
        raise ConfigError(f"parameter `{name}` must be an integer, but got {value!r}")
    return number


def _check_value(where: str, name: str, label: str, value: Any) -> None:
    """One value a parameter can take (a bound, a choice, a fixed value): type and range.

    Raises:
        ConfigError: ``FILE: parameter `NAME`: LABEL VALUE is outside its legal range:
            `RULE` must hold``.
    """
    try:
        typed = _coerce(name, value, KNOWN_PARAMS[name].kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc} (its {label})") from None
    legal = LEGAL.get(name)
    if legal is not None and not legal.allows(typed):
        raise ConfigError(
            f"{where}: parameter `{name}`: `{legal.rule(name)}` must hold, but its {label} "
            f"is {value!r}"
        )


def _unknown(what: str, name: Any, allowed: Any) -> str:
    """``unknown WHAT `NAME` (did you mean `X`?)``: the closest allowed name, if one is close."""
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown {what} `{name}`{hint}"


def parse_space(data: Any, name: str, source: str = "") -> SearchSpace:
    """Builds and validates a SearchSpace from its YAML mapping.

    Every bound, choice and fixed value is checked against the parameter's type and its
    legal range (`search_spaces._params.LEGAL`), so no trial is started with a value the
    model would refuse.

    Raises:
        ConfigError: naming the file, the parameter, the rule and the value.
    """
    where = source or name
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: a search space must be a mapping, but got {type(data).__name__}"
        )
    extra = sorted(map(str, set(data) - set(_TOP_KEYS)))
    if extra:
        raise ConfigError(
            f"{where}: {_unknown('top-level key', extra[0], _TOP_KEYS)}; "
            f"allowed: {', '.join(_TOP_KEYS)}"
        )
    raw_params = data.get("params") or {}
    if not isinstance(raw_params, Mapping) or not raw_params:
        raise ConfigError(f"{where}: `params` must be a non-empty mapping of parameter specs")
    params = tuple(_parse_param(where, pname, spec) for pname, spec in raw_params.items())
    raw_fixed = data.get("fixed")
    if raw_fixed is None:
        raw_fixed = {}
    if not isinstance(raw_fixed, Mapping):
        raise ConfigError(
            f"{where}: `fixed` must be a mapping of parameter: value, but got {raw_fixed!r}"
        )
    fixed = dict(raw_fixed)
    for pname, value in fixed.items():
        if pname not in KNOWN_PARAMS:
            raise ConfigError(
                f"{where}: {_unknown('fixed parameter', pname, KNOWN_PARAMS)}; "
                f"valid names are {sorted(KNOWN_PARAMS)}"
            )
        _check_value(where, pname, "fixed value", value)
    both = sorted(set(fixed) & {p.name for p in params})
    if both:
        raise ConfigError(f"{where}: parameter(s) {both} are both searched and fixed")
    base = data.get("base", "default")
    if base not in BASES:
        raise ConfigError(f"{where}: `base` must be one of {', '.join(BASES)}, but got {base!r}")
    space = SearchSpace(
        name=name,
        params=params,
        fixed=fixed,
        description=str(data.get("description", "")).strip(),
        source=source,
        base=str(base),
    )
    starts = _parse_starts(where, space, data.get("starts"))
    return dataclasses.replace(space, starts=starts)


def _parse_starts(where: str, space: SearchSpace, raw: Any) -> tuple[dict[str, Any], ...]:
    """A user's starting points: mappings of searched parameter -> a value the space holds."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise ConfigError(
            f"{where}: `starts` must be a list of mappings parameter: value, but got {raw!r}"
        )
    starts = []
    for number, point in enumerate(raw, start=1):
        if not isinstance(point, Mapping) or not point:
            raise ConfigError(
                f"{where}: starts[{number}] must be a non-empty mapping parameter: value, "
                f"but got {point!r}"
            )
        for pname, value in point.items():
            if pname not in space.names:
                raise ConfigError(
                    f"{where}: starts[{number}]: {_unknown('searched parameter', pname, space.names)}"
                    f"; a start gives values of searched parameters ({', '.join(space.names)})"
                )
            _check_value(where, pname, f"value in starts[{number}]", value)
            if not space.contains(pname, value):
                param = next(p for p in space.params if p.name == pname)
                raise ConfigError(
                    f"{where}: starts[{number}]: `{pname}` = {value!r} is outside its range "
                    f"{param.describe()}"
                )
        starts.append(dict(point))
    return tuple(starts)


def _parse_param(where: str, name: Any, spec: Any) -> Param:
    if name not in KNOWN_PARAMS:
        raise ConfigError(
            f"{where}: {_unknown('parameter', name, KNOWN_PARAMS)}; "
            f"valid names are {sorted(KNOWN_PARAMS)}"
        )
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: parameter `{name}` must be a mapping, but got {spec!r}")
    allowed = (*_NUMERIC_KEYS, *_CATEGORICAL_KEYS[1:])
    for key in spec:
        if key not in allowed:
            raise ConfigError(
                f"{where}: {_unknown('key', key, allowed)} in parameter `{name}` "
                f"(allowed: {', '.join(allowed)})"
            )
    ptype = spec.get("type")
    if ptype not in _TYPES:
        raise ConfigError(
            f"{where}: parameter `{name}`: `type` must be one of {list(_TYPES)}, but got {ptype!r}"
        )
    own = _CATEGORICAL_KEYS if ptype == "categorical" else _NUMERIC_KEYS
    stray = [k for k in spec if k not in own]
    if stray:
        raise ConfigError(
            f"{where}: parameter `{name}`: key `{stray[0]}` does not apply to type {ptype} "
            f"(a {ptype} parameter takes: {', '.join(own)})"
        )
    kind = KNOWN_PARAMS[name].kind
    if ptype == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or len(choices) == 0:
            raise ConfigError(
                f"{where}: parameter `{name}`: `choices` must be a non-empty list, but got {choices!r}"
            )
        for choice in choices:
            _check_value(where, name, "choice", choice)
        return Param(name, "categorical", choices=tuple(choices))
    if kind not in (int, float):
        raise ConfigError(
            f"{where}: parameter `{name}` is {kind.__name__}: use type categorical, not {ptype}"
        )
    if kind is int and ptype == "float":
        raise ConfigError(
            f"{where}: parameter `{name}` is a whole number: use type int (or categorical), "
            "not float"
        )
    for label in ("low", "high"):
        if label not in spec:
            raise ConfigError(f"{where}: parameter `{name}`: `{label}` is missing")
    raw_low, raw_high, log = spec["low"], spec["high"], spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(
            f"{where}: parameter `{name}`: `log` must be true or false, but got {log!r}"
        )
    low = _finite_number(where, name, "low", raw_low)
    high = _finite_number(where, name, "high", raw_high)
    if ptype == "int" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(
            f"{where}: parameter `{name}`: int bounds must be integers, but got (low={raw_low}, high={raw_high})"
        )
    if low > high:
        raise ConfigError(
            f"{where}: parameter `{name}`: `low <= high` must hold, but got (low={raw_low}, high={raw_high})"
        )
    if log and low <= 0:
        raise ConfigError(
            f"{where}: parameter `{name}`: a log scale needs `low > 0`, but got low={raw_low}"
        )
    _check_value(where, name, "low", raw_low)
    _check_value(where, name, "high", raw_high)
    legal = LEGAL.get(name)
    if ptype == "int" and legal is not None and legal.odd and low != high:
        raise ConfigError(
            f"{where}: parameter `{name}`: an int range would draw even values, but "
            f"`{legal.rule(name)}` must hold; use type categorical with odd choices "
            f"(e.g. [3, 5, 7]), but got (low={raw_low}, high={raw_high})"
        )
    return Param(name, ptype, low=low, high=high, log=log)


def _finite_number(where: str, name: str, label: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(
            f"{where}: parameter `{name}`: `{label}` must be a finite number, but got {value!r}"
        )
    return float(value)


class DuplicateKeyError(yaml.YAMLError):
    """The same key twice in one YAML mapping (plain YAML would keep the last silently)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first_line})")


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping, at any depth."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` merges may be overridden on purpose
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in first:
                        raise DuplicateKeyError(key, line, first[key])
                    first[key] = line
                except TypeError:
                    continue  # an unhashable key: SafeLoader itself reports it
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parses YAML safely, refusing duplicate keys (`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no object tags


def load_space_file(path: str | Path) -> SearchSpace:
    """Reads a user's YAML search space (safe loading; duplicate keys are refused).

    Raises:
        ConfigError: the file is missing or unreadable, is not YAML, holds a key twice, or
            is not a valid space (see `parse_space`).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"search space file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"search space file {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        data = load_yaml(text)
    except DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}: duplicate key `{exc.key}` at line {exc.line} (first at line "
            f"{exc.first_line}): YAML would keep only the last one silently; remove one"
        ) from None
    except yaml.YAMLError as exc:
        one_line = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML: {one_line}") from None
    return parse_space(data, name=path.stem, source=str(path))
