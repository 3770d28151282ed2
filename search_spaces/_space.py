"""Search spaces as data: parsing, validation, Optuna distributions, trial configs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from covidxr_core.errors import ConfigError
from search_spaces._params import KNOWN_PARAMS, derive_widths

if TYPE_CHECKING:
    import optuna

    from covidxr_core.train import TrainConfig

_TYPES = ("float", "int", "categorical")


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


def parse_space(data: Any, name: str, source: str = "") -> SearchSpace:
    """Builds and validates a SearchSpace from its YAML mapping.

    Raises:
        ConfigError: naming the file, the parameter, the rule and the value.
    """
    where = source or name
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}: a search space must be a mapping, but got {type(data).__name__}"
        )
    extra = sorted(set(data) - {"params", "fixed", "description"})
    if extra:
        raise ConfigError(
            f"{where}: unknown top-level key(s) {extra}; allowed: ['description', 'fixed', 'params']"
        )
    raw_params = data.get("params") or {}
    if not isinstance(raw_params, Mapping) or not raw_params:
        raise ConfigError(f"{where}: `params` must be a non-empty mapping of parameter specs")
    params = tuple(_parse_param(where, pname, spec) for pname, spec in raw_params.items())
    fixed = dict(data.get("fixed") or {})
    for pname, value in fixed.items():
        if pname not in KNOWN_PARAMS:
            raise ConfigError(
                f"{where}: unknown fixed parameter `{pname}`; valid names are {sorted(KNOWN_PARAMS)}"
            )
        _coerce(pname, value, KNOWN_PARAMS[pname].kind)
    both = sorted(set(fixed) & {p.name for p in params})
    if both:
        raise ConfigError(f"{where}: parameter(s) {both} are both searched and fixed")
    return SearchSpace(
        name=name,
        params=params,
        fixed=fixed,
        description=str(data.get("description", "")).strip(),
        source=source,
    )


def _parse_param(where: str, name: str, spec: Any) -> Param:
    if name not in KNOWN_PARAMS:
        raise ConfigError(
            f"{where}: unknown parameter `{name}`; valid names are {sorted(KNOWN_PARAMS)}"
        )
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: parameter `{name}` must be a mapping, but got {spec!r}")
    ptype = spec.get("type")
    if ptype not in _TYPES:
        raise ConfigError(
            f"{where}: parameter `{name}`: `type` must be one of {list(_TYPES)}, but got {ptype!r}"
        )
    kind = KNOWN_PARAMS[name].kind
    if ptype == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or len(choices) == 0:
            raise ConfigError(
                f"{where}: parameter `{name}`: `choices` must be a non-empty list, but got {choices!r}"
            )
        for choice in choices:
            _coerce(name, choice, kind)
        return Param(name, "categorical", choices=tuple(choices))
    if kind not in (int, float):
        raise ConfigError(
            f"{where}: parameter `{name}` is {kind.__name__}: use type categorical, not {ptype}"
        )
    raw_low, raw_high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
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
    return Param(name, ptype, low=low, high=high, log=log)


def _finite_number(where: str, name: str, label: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(
            f"{where}: parameter `{name}`: `{label}` must be a finite number, but got {value!r}"
        )
    return float(value)


def load_space_file(path: str | Path) -> SearchSpace:
    """Reads a user's YAML search space (with `yaml.safe_load`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_space(data, name=path.stem, source=str(path))
