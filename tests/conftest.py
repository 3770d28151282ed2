"""Shared fixtures: the real data through a path, and an isolated cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep TensorFlow quiet and single-purpose in tests; the backend default stays TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point covidxr's cache at a per-session folder so tests never touch ~/.cache."""
    path = tmp_path_factory.mktemp("covidxr-cache")
    os.environ["COVIDXR_CACHE"] = str(path)
    return path


def _shared_data_root() -> Path | None:
    root = os.environ.get("COVIDXR_DATA")
    if not root:
        return None
    path = Path(root)
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (set by `make test` / .ci/run through COVIDXR_DATA), or a visible skip."""
    root = _shared_data_root()
    if root is None:
        pytest.skip(
            "real chest X-ray data not found: set COVIDXR_DATA to the shared data folder "
            f"(got {os.environ.get('COVIDXR_DATA')!r})"
        )
    return root


@pytest.fixture(scope="session")
def covid_cxr(shared_data: Path) -> Path:
    path = shared_data / "covid-cxr"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def cxr_fixture(shared_data: Path) -> Path:
    path = shared_data / "cxr-fixture"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path
