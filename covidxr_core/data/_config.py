"""How a data folder is turned into arrays: one typed, validated, frozen configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass

from covidxr_core.errors import ConfigError

BAD_IMAGE_POLICIES = ("skip", "error")
CHANNEL_CHOICES = (1, 3)
# Below 8 px a radiograph is a smudge; above 4096 px one image alone is 50 MB as RGB.
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 4096


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    # bool is an int subclass; `image_size=True` is a slip, not a size.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"DataConfig.{name} must be an int, but got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low} <= {name} <= {high}" if high is not None else f"{name} >= {low}"
        raise ConfigError(f"DataConfig.{name}: `{bound}` must hold, but got {value!r}")


def _check_fraction(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"DataConfig.{name} must be a number, but got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ConfigError(f"DataConfig.{name}: `0 < {name} < 1` must hold, but got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Settings for discovering, carving and decoding one data folder.

    Only ``image_size`` and ``channels`` change the decoded pixels (and so the cache key);
    the carving settings (fractions, seed, ``groups``) and ``drop_leaked`` act on file
    lists after decoding, so changing them never re-decodes anything.
    """

    image_size: int = 128  # square side in px; aspect is ignored, as flow_from_directory does
    channels: int = 1  # 1 = greyscale (radiographs carry no colour), 3 = RGB like the recipe
    cache_dir: str | None = None  # None -> $COVIDXR_CACHE, else ~/.cache/covidxr
    on_bad_image: str = "skip"  # "skip": list it in Dataset.skipped; "error": BadImageError
    val_fraction: float = 0.2  # share of each train class moved to validation if it is missing
    test_fraction: float = 0.2  # share of each train class moved to test if it is missing
    seed: int = 0  # carving seed; the same seed and files always give the same carve
    positive_class: str | None = None  # None -> the one class not called "normal"
    workers: int | None = None  # decode threads; None -> os.cpu_count()
    # CSV of ``path,group`` (e.g. a patient id): a group is never split by carving, and a
    # group found in two given splits is reported. None: every file is its own group.
    groups: str | os.PathLike[str] | None = None
    drop_leaked: bool = False  # remove validation/test files that duplicate a train file

    def __post_init__(self) -> None:
        _check_int("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if self.channels not in CHANNEL_CHOICES or isinstance(self.channels, bool):
            raise ConfigError(
                f"DataConfig.channels must be one of {list(CHANNEL_CHOICES)}, "
                f"but got {self.channels!r}"
            )
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise ConfigError(
                f"DataConfig.cache_dir must be a path or None, but got {self.cache_dir!r}"
            )
        if self.on_bad_image not in BAD_IMAGE_POLICIES:
            raise ConfigError(
                f"DataConfig.on_bad_image must be one of {list(BAD_IMAGE_POLICIES)}, "
                f"but got {self.on_bad_image!r}"
            )
        _check_fraction("val_fraction", self.val_fraction)
        _check_fraction("test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                "DataConfig: `val_fraction + test_fraction < 1` must hold (train needs "
                f"images too), but got val_fraction={self.val_fraction!r}, "
                f"test_fraction={self.test_fraction!r}"
            )
        _check_int("seed", self.seed, 0)
        if self.positive_class is not None and (
            not isinstance(self.positive_class, str) or not self.positive_class
        ):
            raise ConfigError(
                "DataConfig.positive_class must be a class folder name or None, "
                f"but got {self.positive_class!r}"
            )
        if self.workers is not None:
            _check_int("workers", self.workers, 1)
        if self.groups is not None and (
            not isinstance(self.groups, (str, os.PathLike)) or not os.fspath(self.groups)
        ):
            raise ConfigError(
                f"DataConfig.groups must be the path of a CSV file or None, but got {self.groups!r}"
            )
        if not isinstance(self.drop_leaked, bool):
            raise ConfigError(
                f"DataConfig.drop_leaked must be True or False, but got {self.drop_leaked!r}"
            )

    def resolved_workers(self) -> int:
        """The number of decode threads to use at most."""
        return self.workers if self.workers is not None else max(1, os.cpu_count() or 1)


def resolve_positive_class(class_names: tuple[str, ...], requested: str | None) -> str:
    """Pick the class sensitivity and AUC are about.

    Args:
        class_names: Sorted class folder names.
        requested: ``DataConfig.positive_class``.

    Returns:
        The positive class name.

    Raises:
        ConfigError: the requested class does not exist, or none was requested and there is
            not exactly one class besides "normal".
    """
    if requested is not None:
        if requested not in class_names:
            raise ConfigError(
                f"DataConfig.positive_class must be one of {list(class_names)}, "
                f"but got {requested!r}"
            )
        return requested
    others = [c for c in class_names if c.lower() != "normal"]
    if len(others) == 1 and len(class_names) == 2:
        return others[0]
    raise ConfigError(
        "DataConfig.positive_class must be set: it defaults to the one class not named "
        f"'normal', but the classes found are {list(class_names)}; name one"
    )


__all__ = ["DataConfig", "resolve_positive_class"]
