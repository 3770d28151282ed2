"""Exceptions raised for problems a user can act on.

Every message names the thing at fault (a path, a parameter), the rule it broke and the
value it had, so the CLIs can print it without a traceback.
"""

from __future__ import annotations


class CovidxrError(Exception):
    """Base class of every error covidxr raises on purpose."""


class DataError(CovidxrError):
    """The data folder cannot be used as it is (missing, one class, no train split...)."""


class BadImageError(DataError):
    """One image file cannot be decoded under the `error` bad-image policy."""

    def __init__(self, path: str, rule: str, value: object = None) -> None:
        self.path = path
        self.rule = rule
        self.value = value
        detail = f" (got {value!r})" if value is not None else ""
        super().__init__(f"{path}: {rule}{detail}")


class ConfigError(CovidxrError):
    """A configuration value breaks a rule (unknown name, out of range...)."""


# The library names parameters; the command lines add the flag that sets each one.
CLI_FLAGS = {
    "DataConfig.positive_class": "--positive-class NAME",
    "DataConfig.cache_dir": "--cache-dir DIR",
    "StudySpec.cv": "--cv K",
}


def for_cli(message: str) -> str:
    """``message`` with the command-line flag of each parameter it names, for a CLI."""
    flags = [flag for name, flag in CLI_FLAGS.items() if name in message]
    return f"{message} (on the command line: {', '.join(flags)})" if flags else message


__all__ = ["CLI_FLAGS", "BadImageError", "ConfigError", "CovidxrError", "DataError", "for_cli"]
