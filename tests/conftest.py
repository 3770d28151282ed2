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


# ----------------------------------------------------------------------------- studies


def _tiny_spec(output: Path, name: str = "tiny", **overrides: object):
    """The smoke-sized study: 3 trials of 2 epochs at 64 px, one retrain seed, a race of
    one trial against the default."""
    from tuning import StudySpec

    defaults: dict[str, object] = dict(
        trials=3, epochs=2, image_size=64, space="small", retrain_seeds=1, n_boot=50,
        output=str(output), name=name, grace_epochs=1, race=1,
    )  # fmt: skip
    return StudySpec(**{**defaults, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def failing_space(tmp_path: Path) -> Path:
    """A YAML space in which some trials fail: a learning rate of 1e30 diverges at once.

    (An illegal value such as ``width_1 = 0`` no longer reaches a trial: the space's legal
    ranges are checked when it is loaded.) The loss is NaN after the first epoch.
    """
    space = tmp_path / "failing.yaml"
    space.write_text(
        "params:\n"
        "  learning_rate: {type: categorical, choices: [0.01, 1.0e+30]}\n"
        "  dropout: {type: float, low: 0.0, high: 0.5}\n"
        "fixed:\n  optimizer: adam\n"
    )
    return space


@pytest.fixture
def tiny_spec(tmp_path: Path):
    """A factory of smoke-sized `StudySpec`s writing under this test's tmp_path.

    ``tiny_spec(name, **overrides)``; ``output`` may be overridden too.
    """

    def make(name: str = "tiny", **overrides: object):
        overrides.setdefault("output", str(tmp_path))
        return _tiny_spec(Path(str(overrides.pop("output"))), name, **overrides)

    return make


def _start_local_ray(num_cpus: int = 2) -> bool:
    """Starts a private local Ray unless one is up; returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    # address="local": a private Ray even when another process ran `ray start` here
    # (plain ray.init() would join that cluster and reject num_cpus).
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


@pytest.fixture(scope="module")
def local_ray():
    """One real local Ray (2 CPUs) for every test of the module."""
    import ray

    started = _start_local_ray()
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of one finished tiny study on the demo data, shared by the session.

    Real Ray, Optuna and Keras; a study costs most of a minute on two cores, so every
    test that only reads a finished run reads this one.
    """
    import ray

    from tuning import run_study

    output = tmp_path_factory.mktemp("tiny-run")
    started = _start_local_ray()
    try:
        return run_study(_tiny_spec(output, "rep")).run_dir
    finally:
        if started:
            ray.shutdown()  # the tests themselves need no Ray: give its CPUs back
