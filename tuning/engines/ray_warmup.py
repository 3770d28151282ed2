"""Trial workers that import the backend before their first trial (a local Ray instance).

On its first trial, a trial's worker imports TensorFlow and Keras: about 9 s of the 2-core
machine's CPU time, inside the search's clock (docs/benchmarks.md). Ray starts one idle
worker per CPU as a local instance starts, while the driver is still setting the study up,
but without this module the trials never land on them:

- Ray gives an actor only a worker started for the actor's runtime environment, and Ray
  Tune's actor class cache gives every trainable one of its own (``PL_DISABLE_FORK=1``,
  plus the AWS and Ray Train variables found in the driver's environment). Each trial's
  worker is then a new process, started when Tune places the trial.
- The job's own ``runtime_env`` (the study's variables for its workers) has the same
  effect, and Ray starts no idle workers at all for such a job.

On a local instance that the engine starts itself, this module removes both:
`worker_environment` hands the study's variables to the instance through the environment
its processes inherit, instead of a ``runtime_env``, and `plain_trial_actors` creates the
trial actors without one. The idle workers run `setup` as they start (Ray's worker
process setup hook, named in that environment), and the first `slots` of them import the
backend in a thread, so a trial placed on one finds TensorFlow loaded or half-way. A
trial's own `configure_backend()` waits for that import instead of starting a second.

A joined cluster, or a Ray the caller started, is left exactly as before: its workers'
environment is not ours to set. On a machine with a GPU the workers do not import early
(`warm_slots` says why), but the trials still run on the idle workers.
``COVIDXR_WARM_WORKERS=0`` turns warming off; the trial actors are then still plain, so
they use the idle workers, but import on their first trial.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import site
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HOOK = f"{__name__}.setup"
HOOK_VAR = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"  # ray._private.ray_constants
SLOTS_VAR = "COVIDXR_WARM_SLOTS"  # set by the engine: how many workers import early
DIR_VAR = "COVIDXR_WARM_DIR"  # set by the engine (or a test): the workers' claim tickets
SWITCH_VAR = "COVIDXR_WARM_WORKERS"  # the user's: "0" turns warming off
IDLE_VAR = "RAY_idle_worker_killing_time_threshold_ms"  # Ray's system config, 1000 by default
IDLE_KEEP_MS = 30_000


def setup() -> None:
    """Ray's setup hook, in every worker of the instance as it starts: the first `slots`
    workers to claim a ticket import the backend in a daemon thread.

    It never raises: Ray ends a worker whose hook fails, and a warm-up is never worth a
    worker. A ticket reads ``PID``, then ``PID ready SECONDS`` once the import is done, or
    ``PID failed ERROR`` (the trial then imports the backend itself, and reports why).
    """
    try:
        ticket = _claim()
        if ticket is not None:
            threading.Thread(
                target=_import_backend, args=(ticket,), name="covidxr-warm-up", daemon=True
            ).start()
    except Exception:  # see above: the worker must start regardless
        pass


def _claim() -> Path | None:
    folder, slots = os.environ.get(DIR_VAR), int(os.environ.get(SLOTS_VAR) or 0)
    if not folder or slots < 1:
        return None
    for i in range(slots):
        ticket = Path(folder) / f"slot-{i}"
        try:
            fd = os.open(ticket, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as out:
            out.write(str(os.getpid()))
        return ticket
    return None


def _import_backend(ticket: Path) -> None:
    started = time.monotonic()
    try:
        from covidxr_core import configure_backend

        configure_backend()
        import covidxr_core.train  # noqa: F401 - the model, augmentation and training code
        import tuning.engines.ray_trial  # noqa: F401

        outcome = f"ready {time.monotonic() - started:.2f}"
    except BaseException as exc:  # the trial imports it again, and reports why
        outcome = f"failed {type(exc).__name__}: {exc}"
    # The study may be over and the folder gone.
    with contextlib.suppress(OSError), ticket.open("a") as out:
        out.write(f" {outcome}")


def warm_slots(
    trials: int, max_concurrent: int | None, cpus_per_trial: float, gpus_per_trial: float | None
) -> int:
    """Workers worth warming: the trials that can run at once on this machine's CPUs.

    None on a machine with a GPU (or another accelerator Ray knows): Ray tells a worker
    which GPUs its trial may use (``CUDA_VISIBLE_DEVICES``) only when it hands the trial
    over, and a backend that started before could pick the wrong ones. There the trials
    still run on the idle workers, and import on their first trial.
    """
    if os.environ.get(SWITCH_VAR, "").strip() == "0" or (gpus_per_trial or 0) > 0:
        return 0
    if _accelerators_here():
        return 0
    try:
        from ray._private.utils import get_num_cpus  # what a local instance will have

        cpus = float(get_num_cpus())
    except Exception:
        cpus = float(os.cpu_count() or 1)
    slots = max(1, int(cpus // max(cpus_per_trial, 1e-9)))
    return min(trials, max_concurrent or slots, slots)


def _accelerators_here() -> bool:
    """Whether Ray would find a GPU (or TPU, HPU...) on this machine; True if unsure."""
    try:
        from ray._private.accelerators import get_all_accelerator_managers

        return any(
            m.get_current_node_num_accelerators() > 0 for m in get_all_accelerator_managers()
        )
    except Exception:
        return True


def _package_root() -> str | None:
    """The folder a fresh worker needs on its path to import this module, if any."""
    spec = importlib.util.find_spec("tuning")
    if spec is None or spec.origin is None:
        return None
    root = str(Path(spec.origin).resolve().parents[1])
    installed = {str(Path(p).resolve()) for p in site.getsitepackages()}
    return None if root in installed else root


@contextlib.contextmanager
def worker_environment(env: dict[str, str], slots: int, tickets: str) -> Iterator[None]:
    """``os.environ`` with the workers' variables while the block starts a local instance.

    Its processes, and so every worker they start, inherit them; the driver's own
    environment is put back afterwards. With ``slots``, the workers run `setup` and the
    first ``slots`` of them warm up, claiming tickets in the folder ``tickets``.
    """
    wanted = {"PL_DISABLE_FORK": "1", **env}  # what Ray Tune's class cache would have set
    if slots > 0:
        wanted.update({HOOK_VAR: HOOK, SLOTS_VAR: str(slots), DIR_VAR: tickets})
        # Ray ends a worker idle for more than 1 s once the workers outnumber the free
        # CPUs, which Tune's placement groups take as the search starts: the warm workers
        # were ended moments before their trials asked for them, in some runs.
        wanted[IDLE_VAR] = os.environ.get(IDLE_VAR) or str(IDLE_KEEP_MS)  # the user's wins
        root = _package_root()
        if root is not None:  # a checkout run without installing: workers must find it
            wanted["PYTHONPATH"] = os.pathsep.join(
                p for p in (root, os.environ.get("PYTHONPATH")) if p
            )
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def plain_trial_actors(enabled: bool) -> Iterator[None]:
    """While the block runs, Ray Tune creates its trial actors without a runtime env.

    Ray Tune 2.60 wraps the trainable in ``ray.remote(runtime_env=...)`` in its private
    ``_ActorClassCache.get``; that runtime env would send every trial to a new worker
    (see the module's docstring). Its variables are in the instance's environment
    already (`worker_environment`). A Ray without that class leaves the block unchanged.
    """
    try:
        from ray.tune.execution.class_cache import _ActorClassCache
    except ImportError:
        enabled = False
    if not enabled:
        yield
        return
    import ray

    original = _ActorClassCache.get

    def get(cache: _ActorClassCache, trainable_cls: type) -> object:
        if trainable_cls not in cache._cache:
            cache._cache[trainable_cls] = ray.remote(trainable_cls)
        return cache._cache[trainable_cls]

    _ActorClassCache.get = get  # type: ignore[method-assign]
    try:
        yield
    finally:
        _ActorClassCache.get = original  # type: ignore[method-assign]
