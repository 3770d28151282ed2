"""The Ray engine: Ray Tune's Tuner with Optuna's TPE and ASHA, on one machine or a cluster.

The decoded data set goes into Ray's object store once per study (`share`); the search's
trials and the retrain's tasks all read that one copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tuning.budget import MAX_STARTUP_TRIALS, early_stopping, startup_trials
from tuning.crossval import needs_measuring
from tuning.efficiency import capacity_slots
from tuning.engines import SearchJob
from tuning.engines.ray_lifeline import DaemonWatch, end_driver, follow_parent
from tuning.engines.ray_warmup import DIR_VAR, plain_trial_actors, warm_slots, worker_environment
from tuning.errors import StudyError
from tuning.failures import is_lost_to_reuse
from tuning.leaderboard import LEADERBOARD_FILE, Leaderboard
from tuning.runfolder import RunLocation, check_visible_from_all_nodes
from tuning.selection import ConstraintsFunc, column, parse_constraint, parse_pick
from tuning.signals import stop_requested
from tuning.spec import StudySpec

# Ray reads these when it is imported: checkpoint the experiment at every step (cheap at
# this scale) so a killed driver loses no finished trial, and keep its banners quiet.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

TUNE_DIR = "tune"
OPTUNA_FILE = "optuna.db"
DEFAULT_GPU_FRACTION = 0.25  # trials per GPU: 4, when the cluster has GPUs
# TPE's first trials are random draws (Optuna's n_startup_trials, tuning.budget's rule):
# staging that many before any result comes back costs the search nothing.
TPE_STARTUP_TRIALS = MAX_STARTUP_TRIALS


def optuna_storage_url(run_dir: Path) -> str:
    """The SQLite URL of a run's Optuna study (what optuna-dashboard opens)."""
    return f"sqlite:///{run_dir / OPTUNA_FILE}"


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fails fast on a host:port nobody answers at; Ray itself would retry for minutes.

    Raises:
        StudyError: nothing listens at ``address``.
    """
    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise StudyError(
            f"cannot connect to the Ray cluster at address {address!r}: {exc}. "
            "Is the head node up (`ray status`), and is the port right (default 6379)?"
        ) from None


def autoscaler_running() -> bool:
    """Whether Ray's autoscaler runs on the cluster this process is connected to.

    Ray's monitor on the head node writes its status to the GCS's key-value store at every
    update (a few seconds apart); the status holds an autoscaler report only where an
    autoscaler runs (`ray up`, KubeRay). Autoscaler v2 marks itself under a key of its own.
    Both are Ray internals: where they cannot be read, the cluster counts as fixed.
    """
    import json

    try:
        from ray._private import ray_constants
        from ray.autoscaler.v2.utils import is_autoscaler_v2
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        if raw and "autoscaler_report" in json.loads(raw):
            return True
        return bool(is_autoscaler_v2(fetch_from_server=True))
    except Exception:  # a Ray without these internals: assume a fixed cluster
        return False


def check_fits(cpus_per_trial: float, gpus_per_trial: float, may_grow: bool = False) -> bool:
    """Refuses per-trial resources that no node of the cluster can give.

    Ray would queue such trials forever (0 running, and a ``--resume`` that hangs again),
    so the study stops before any trial, naming what the largest node has. A cluster that
    ``may_grow`` (its autoscaler adds nodes on demand, as `cluster.yaml`'s does from zero
    workers) is not refused: the trials wait for the nodes they ask for.

    Returns:
        Whether a live node can run a trial now.

    Raises:
        StudyError: no live node has ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs,
            and the cluster does not grow.
    """
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        return False  # nothing registered yet: nothing to compare with
    needs = {"CPU": ("cpus_per_trial", cpus_per_trial), "GPU": ("gpus_per_trial", gpus_per_trial)}
    if any(all(node.get(k, 0) >= v for k, (_, v) in needs.items()) for node in nodes):
        return True
    if may_grow:
        return False
    total = ray.cluster_resources()
    for key, (name, value) in needs.items():
        most = max(node.get(key, 0) for node in nodes)
        if value > most:
            raise StudyError(
                f"{name} {value:g} is more than any node has: the largest node has {most:g} "
                f"{key}s (the cluster: {len(nodes)} node(s), {total.get(key, 0):g} {key}s in "
                "all), so no trial could ever start"
            )
    raise StudyError(
        f"no node has both {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs for a trial: "
        + "; ".join(
            f"node {i}: {n.get('CPU', 0):g} CPUs, {n.get('GPU', 0):g} GPUs"
            for i, n in enumerate(nodes)
        )
    )


class RayTuneEngine:
    """Ray Tune + OptunaSearch (TPE, study in ``optuna.db``) + ASHA."""

    name = "ray"

    def __init__(self) -> None:
        self._started_ray = False
        self._gpus: float | None = None
        self._fixed_slots: int | None = None
        self._autoscaling = False  # a joined cluster whose autoscaler adds nodes
        self._fits_now = True
        self._plain_actors = False  # trial actors without a runtime env (ray_warmup)
        self._tickets: str | None = None  # the warm-up tickets' folder this engine made
        self._watch: DaemonWatch | None = None  # the local instance's daemons (ray_lifeline)

    # ---------------------------------------------------------------- cluster

    def start(self, spec: StudySpec) -> None:
        import ray

        if not spec.verbose:
            # Ray announces its (on by default) token authentication on every local start.
            logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
            # "Trials did not complete: [...]": the progress display and leaderboard say which.
            logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
        if ray.is_initialized():  # a caller (a notebook, a test) brought its own Ray
            self._size_up(spec, may_grow=True, joined=False)
            return
        env = {
            k: os.environ[k]
            for k in (
                "KERAS_BACKEND",
                "TF_CPP_MIN_LOG_LEVEL",
                "COVIDXR_CACHE",
                "TUNE_FUNCTION_THREAD_TIMEOUT_S",
            )
            if k in os.environ
        }
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # A worker is reused for the next trial only if the stopped trial's thread ends
        # within this many seconds (Ray's default: 2). Unwinding Keras after ASHA's stop can
        # take longer on a busy machine, and a fresh worker costs far more than waiting.
        env.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "30")
        kwargs: dict[str, Any] = dict(
            log_to_driver=spec.verbose,
            logging_level=logging.INFO if spec.verbose else logging.WARNING,
        )
        if spec.address:
            check_reachable(spec.address)
            try:
                ray.init(address=spec.address, runtime_env={"env_vars": env}, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise StudyError(
                    f"cannot connect to the Ray cluster at address {spec.address!r}: {exc}. "
                    "Is the head node up (`ray status`)?"
                ) from None
        else:
            # A private local instance: a bare ray.init() would join any cluster another
            # process started on this machine (`ray start`, a test's cluster) and die with
            # it. The dashboard, if installed, answers on this machine only. Its workers get
            # the variables through their inherited environment, not a runtime env, so that
            # trials run on the workers Ray starts with it, warmed up (ray_warmup).
            slots = warm_slots(
                spec.trials, spec.max_concurrent, spec.cpus_per_trial, spec.gpus_per_trial
            )
            tickets = os.environ.get(DIR_VAR) or ""
            if slots and not tickets:
                tickets = self._tickets = tempfile.mkdtemp(prefix="covidxr-warm-")
            try:
                with worker_environment(env, slots, tickets):
                    ray.init(
                        address="local",
                        dashboard_host="127.0.0.1",
                        include_dashboard=False,
                        **kwargs,
                    )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                self._drop_tickets()
                raise StudyError(f"could not start a local Ray instance: {exc}") from None
            self._plain_actors = True
            # The GCS or raylet ending under a live driver (a whole-group SIGTERM, an OOM
            # kill) ends the study in one line, not after Ray's 60 s GCS timeout.
            self._watch = DaemonWatch(
                lambda what: end_driver(what, stop_requested()), signalled=stop_requested
            )
            self._watch.start()
        self._started_ray = True
        try:
            self._size_up(spec, may_grow=bool(spec.address), joined=bool(spec.address))
            if not spec.address:
                # A local instance does not grow, so its slots are known now: see search().
                self._fixed_slots = capacity_slots(
                    spec.cpus_per_trial, self._gpus, None, self.hardware()
                )
        except BaseException:
            self.stop()  # the study never starts: leave no Ray behind
            raise

    def _size_up(self, spec: StudySpec, *, may_grow: bool, joined: bool) -> None:
        """Whether the cluster autoscales, each trial's GPU share, and whether a node fits
        a trial now; a cluster that can never fit one is refused here (`check_fits`).

        ``may_grow``: an autoscaler may be running (not on a local instance this engine
        started). ``joined``: the study joined the cluster at ``spec.address``, so a
        refusal adds that an autoscaler's first report can lag the head's start.
        """
        self._autoscaling = may_grow and autoscaler_running()
        self._gpus = self._gpu_fraction(spec)
        try:
            self._fits_now = check_fits(spec.cpus_per_trial, self._gpus, self._autoscaling)
        except StudyError as exc:
            if not joined:
                raise
            raise StudyError(
                f"{exc}. No autoscaler was seen on this cluster; if it has one (ray up), "
                "its first report comes a few seconds after the head starts: run again"
            ) from None

    @staticmethod
    def _gpu_fraction(spec: StudySpec) -> float:
        if spec.gpus_per_trial is not None:
            return spec.gpus_per_trial
        import ray

        return DEFAULT_GPU_FRACTION if ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    @property
    def local_slots(self) -> int | None:
        """Trials at once on the local instance this engine started.

        None on a cluster it joined, whose size may change. The search caps at it unless
        the spec sets ``max_concurrent``.
        """
        return self._fixed_slots

    @property
    def autoscaling(self) -> bool:
        """Whether the cluster this engine runs on has an autoscaler (nodes on demand)."""
        return self._autoscaling

    @property
    def gpus_per_trial(self) -> float:
        assert self._gpus is not None, "start() first"
        return self._gpus

    def share(self, data: Any) -> Any:
        import ray

        return ray.put(data)

    def check_storage(self, location: RunLocation) -> None:
        check_visible_from_all_nodes(location)

    def hardware(self) -> dict[str, float]:
        import ray

        resources = ray.cluster_resources()
        return {
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": resources.get("CPU", 0),
            "gpus": resources.get("GPU", 0),
        }

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()  # the shutdown below ends the daemons on purpose
            self._watch = None
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
            self._plain_actors = False
        self._drop_tickets()

    @contextlib.contextmanager
    def _fitting(self, ahead: int | None, bundle: dict[str, float], wanted: int) -> Iterator[None]:
        """What a `Tuner.fit` of the search runs inside (each context says why)."""
        with (
            staged_ahead(ahead),
            autoscaler_request(bundle, wanted, self._autoscaling),
            plain_trial_actors(self._plain_actors),
            callback_tags_without_imports(),
        ):
            yield

    def _drop_tickets(self) -> None:
        if self._tickets is not None:
            shutil.rmtree(self._tickets, ignore_errors=True)
            self._tickets = None

    # ---------------------------------------------------------------- work

    def run_jobs(
        self,
        fn: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        data: Any,
        spec: StudySpec,
        on_done: Callable[[int, Any], None] | None = None,
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        """Each call as a Ray task with the trial's resources, run again elsewhere (up to
        `JOB_RETRIES` times) when its worker process or node dies.

        With ``on_epoch``, each task gets a ``progress=`` keyword that it calls with every
        epoch it finishes; the epochs reach the driver through a Ray queue and are passed
        on as ``on_epoch(index, epoch)`` while the tasks run.
        """
        import ray

        remote = ray.remote(_job).options(
            num_cpus=spec.cpus_per_trial,
            num_gpus=self.gpus_per_trial,
            max_retries=JOB_RETRIES,
            retry_exceptions=False,
        )
        queue = None
        if on_epoch is not None:
            from ray.util.queue import Queue
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            # On the driver's node: a lost worker node must not take the progress channel.
            here = NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=True
            )
            queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        refs = [remote.remote(fn, i, queue, *call, data) for i, call in enumerate(calls)]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                if queue is not None and on_epoch is not None:
                    _drain(queue, on_epoch)
                for ref in done:
                    i = index[ref]
                    results[i] = ray.get(ref)
                    if on_done is not None:
                        on_done(i, results[i])
        finally:
            if queue is not None:
                queue.shutdown(force=True)
        return results

    def search(self, job: SearchJob) -> Leaderboard:
        import optuna
        from ray import tune
        from ray.tune.schedulers import FIFOScheduler
        from ray.tune.search import ConcurrencyLimiter

        from tuning.engines.ray_callbacks import LeaderboardCallback
        from tuning.engines.ray_optuna import ConstrainedOptunaSearch, FullBudgetASHA
        from tuning.engines.ray_trial import run_trial
        from tuning.objective import SCORE_KEY

        spec, location = job.spec, job.location
        run_dir = location.local
        board = Leaderboard(
            run_dir / LEADERBOARD_FILE, job.space, spec.metric, spec.mode, spec.epochs
        )
        # What the leaderboard holds as finished stands; Tune's state may lag it a step.
        frozen = frozenset(t for t, r in board.rows.items() if r.finished)
        callbacks: list[Any] = [
            LeaderboardCallback(
                board,
                self.gpus_per_trial,
                spec.cpus_per_trial,
                on_save=lambda: location.push(LEADERBOARD_FILE, OPTUNA_FILE),
                observer=job.observer,
                frozen=frozen,
            )
        ]
        objectives = spec.objective_list()
        constraints = tuple(parse_constraint(c) for c in spec.constraint)
        many = len(objectives) > 1
        # One objective: Optuna and ASHA see the trial's score (the mean of its last
        # epochs, tuning.objective), not one epoch's value. Several: each last value.
        tune_metric = spec.metric if many else SCORE_KEY
        early = job.early or early_stopping(spec.early_stop, spec.epochs, spec.grace_epochs, 0)
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial,
                data=job.data,
                base=job.base,
                space=job.space,
                time_limit_s=spec.trial_timeout_s,
                folds=job.folds,
                measured=needs_measuring(names_used(spec)),
                metric=spec.metric,
                finished=frozen,
            ),
            {"cpu": spec.cpus_per_trial, "gpu": self.gpus_per_trial},
        )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Trials at once: what the user asked, else a local instance's slots. Ray keeps a
        # finished trial's worker for the next trial only if that trial is already staged,
        # and with an uncapped custom searcher it stages one at a time: after trials that
        # end together (one architecture, one epoch count) fewer run than there are slots,
        # on fresh workers (tests/tuning_tests/test_worker_reuse.py; benchmarks/scaling.py).
        # A cluster joined by address may autoscale, so it is not capped; Tune stages as
        # many trials as it has slots now instead, which also shows the autoscaler that much
        # demand. Where the size is fixed the cap is preferred: staged trials are suggested
        # before any result comes back, so staging lets TPE run up to twice the slots blind.
        limit = spec.max_concurrent or self.local_slots
        ahead = (
            None
            if limit
            else capacity_slots(spec.cpus_per_trial, self._gpus, None, self.hardware())
        )
        # An autoscaling cluster (cluster.yaml starts with no workers) is asked at once for
        # the nodes the study can use, instead of one node per unplaceable pending trial;
        # Tune stages at least TPE's random first trials, which are suggested blind anyway.
        wanted = min(spec.trials, spec.max_concurrent or spec.trials)
        if self._autoscaling and ahead is not None:
            ahead = max(ahead, min(wanted, TPE_STARTUP_TRIALS))
        bundle = {"CPU": spec.cpus_per_trial, "GPU": self.gpus_per_trial}
        if self._autoscaling:
            job.observer.note(
                "cluster",
                f"autoscaling: asked Ray's autoscaler for room for {wanted} trial(s) at once "
                f"({spec.cpus_per_trial:g} CPU, {self.gpus_per_trial:g} GPU each) until the "
                "search ends"
                + ("" if self._fits_now else "; no node can run a trial yet, so trials wait"),
            )
            if self.gpus_per_trial == 0 and spec.gpus_per_trial is None:
                job.observer.warning(
                    "the cluster has no GPUs yet, so trials ask for none and would train on "
                    "the CPUs of any GPU worker the autoscaler adds; where GPU workers come "
                    "on demand (cluster.yaml), set gpus_per_trial (--gpus-per-trial 0.25)"
                )

        def fresh(name: str, samples: int, starts: Sequence[Any], round_index: int) -> Any:
            # Several objectives: Optuna's TPE is multi-objective itself (MOTPE), and Ray's
            # OptunaSearch passes lists of metrics and modes through; constraints go to the
            # sampler's constraints_func, which reads the values ConstrainedOptunaSearch
            # stores on each Optuna trial as user attrs before telling it complete. Every
            # round asks the one Optuna study in optuna.db (load_if_exists), so a round
            # that tops a resumed or extended search up keeps all that TPE has learned.
            searcher: Any = ConstrainedOptunaSearch(
                constraints=constraints,
                origins=tuple(s.origin for s in starts),
                max_epochs=spec.epochs,
                points_to_evaluate=[dict(s.values) for s in starts] or None,
                space=job.space.to_optuna(),
                metric=[column(o.name) for o in objectives] if many else tune_metric,
                mode=[o.mode for o in objectives] if many else objectives[0].mode,
                sampler=optuna.samplers.TPESampler(
                    # A later round's random draws must not repeat the first round's.
                    seed=round_seed(spec.seed, round_index),
                    n_startup_trials=startup_trials(spec.trials, len(job.starts)),
                    constraints_func=ConstraintsFunc(constraints) if constraints else None,
                ),
                storage=optuna.storages.RDBStorage(optuna_storage_url(run_dir)),
                study_name=run_dir.name,
            )
            if limit:
                searcher = ConcurrencyLimiter(searcher, max_concurrent=limit)
            # ASHA stops on one metric: the first validation objective (spec.metric, which
            # the spec set to it), through the trial's score. Objectives that are all model
            # measurements (params, latency_ms) give nothing to stop on epoch by epoch, and
            # a validation split too small to rank trials gives nothing to trust
            # (tuning.budget): every trial runs its budget (FIFO). Starting points always do.
            scheduler: Any = (
                FullBudgetASHA(
                    time_attr="training_iteration",
                    max_t=spec.epochs,
                    grace_period=early.grace,
                    reduction_factor=3,
                )
                if early.enabled and any(o.name == spec.metric for o in objectives)
                else FIFOScheduler()
            )
            return tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    metric=tune_metric,
                    mode=spec.mode,
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=samples,
                    reuse_actors=True,
                    max_concurrent_trials=limit,
                    time_budget_s=spec.time_budget_s,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=location.tune_storage,
                    verbose=2 if spec.verbose else 0,
                    callbacks=callbacks,
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )

        def restore(path: str, errored: bool) -> Any:
            tuner = tune.Tuner.restore(
                path, trainable=trainable, resume_unfinished=True, resume_errored=errored
            )
            # Ray pickles the RunConfig with the study; the live callbacks replace its copies.
            tuner._local_tuner._run_config.callbacks = callbacks  # type: ignore[union-attr]
            return tuner

        def fit(tuner: Any, path: str) -> None:
            with self._fitting(ahead, bundle, wanted):
                tuner.fit()
            if stop_requested():
                return
            lost = [
                r for r in board.rows.values() if r.status == "ERROR" and is_lost_to_reuse(r.error)
            ]
            if lost and tune.Tuner.can_restore(path):
                # These trials never trained: Ray ended them because their reused worker
                # did not reset in time. Run them again on fresh workers; trials that
                # failed for a deterministic reason re-raise at once from their marker.
                reason = f"re-run: {lost[0].error}"[:500]
                for row in lost:
                    board.rerun(row.trial_id, reason)
                board.save()
                job.observer.warning(
                    f"{len(lost)} trial(s) were ended by Ray before they ran (a reused worker "
                    "failed to reset); running them again"
                )
                with self._fitting(ahead, bundle, wanted):
                    restore(path, errored=True).fit()

        storage = location.tune_storage
        latest = last_round(storage) if job.resume else None
        job.observer.search_started(board, spec.trials)
        started = time.monotonic()
        try:
            if latest is not None:  # the round the driver was in when it stopped
                path = f"{storage}/{round_name(latest)}"
                job.observer.note("resuming", path)
                try:
                    tuner = restore(path, errored=False)
                except Exception as exc:  # e.g. a state file cut off by a full disk
                    job.observer.warning(
                        f"Ray Tune's saved state in {path} cannot be restored "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); the "
                        "trials it held that had not finished are asked of Optuna again"
                    )
                else:
                    fit(tuner, path)
            index = 0 if latest is None else latest + 1
            finished_before_round = -1
            while not stop_requested():
                # Count what ran against the plan: the leaderboard and Optuna's record, not
                # Ray's restored state alone (a driver killed between Ray saving its
                # searcher and its trial list leaves the two out of step).
                dropped = board.drop_unfinished()
                if dropped:
                    board.save()
                    job.observer.note(
                        "resuming",
                        f"{len(dropped)} trial(s) cut off by the stop that Ray Tune's saved "
                        f"state does not hold ({', '.join(dropped)}): asked again of Optuna",
                    )
                closed = close_zombie_trials(run_dir)
                if closed:
                    job.observer.note(
                        "optuna",
                        f"closed {closed} trial(s) left RUNNING (cut off by the time budget, "
                        "or by a driver killed earlier) as FAIL, the reason in their user "
                        "attributes",
                    )
                missing = spec.trials - board.finished_count()
                if missing <= 0 or (spec.time_budget_s is not None and index > 0):
                    break
                if index > 0 and board.finished_count() <= finished_before_round:
                    job.observer.warning(
                        f"the search ended with {board.finished_count()} of {spec.trials} "
                        "trials: a round asked for the rest and none finished"
                    )
                    board.short_by = missing
                    break
                name = round_name(index)
                if index > 0:
                    job.observer.note(
                        "search",
                        f"{board.finished_count()} of {spec.trials} trials done: asking Optuna "
                        f"for the other {missing} ({name}/)",
                    )
                finished_before_round = board.finished_count()
                todo = unrun_starts(job.starts, board)
                fit(fresh(name, missing, todo, index), f"{storage}/{name}")
                index += 1
        finally:
            board.search_wall_s = time.monotonic() - started
            job.observer.search_ended(board)
            board.save()
        return board


def round_name(index: int) -> str:
    """The Tune experiment folder of the search's round ``index``: ``tune`` for the first,
    ``tune-2``, ``tune-3``… for the rounds that top a resumed or extended search up."""
    return TUNE_DIR if index == 0 else f"{TUNE_DIR}-{index + 1}"


def round_seed(seed: int, index: int) -> int:
    """TPE's seed in round ``index``: the study's seed first, then one derived from it."""
    return seed if index == 0 else (seed * 1_000_003 + index) % 2**31


def last_round(storage: str) -> int | None:
    """The index of the last round Ray Tune can restore under ``storage``; None if none."""
    from ray import tune

    index, last = 0, None
    while tune.Tuner.can_restore(f"{storage}/{round_name(index)}"):
        last, index = index, index + 1
    return last


def unrun_starts(starts: Sequence[Any], board: Leaderboard) -> list[Any]:
    """The starting points (`tuning.starts.Start`) no finished trial on ``board`` ran:
    a study stopped before its first trials finished runs them first when it goes on."""
    ran: dict[str, int] = {}
    for row in board.rows.values():
        if row.finished and row.origin not in (None, "search"):
            ran[row.origin] = ran.get(row.origin, 0) + 1
    out = []
    for start in starts:
        if ran.get(start.origin, 0) > 0:
            ran[start.origin] -= 1
        else:
            out.append(start)
    return out


@contextlib.contextmanager
def staged_ahead(trials: int | None) -> Iterator[None]:
    """Lets Tune stage up to ``trials`` trials ahead of free slots while the block runs.

    Ray's own default for a custom searcher without a concurrency cap is one; a value the
    user set in ``TUNE_MAX_PENDING_TRIALS_PG`` is left alone.
    """
    key = "TUNE_MAX_PENDING_TRIALS_PG"
    if not trials or trials <= 1 or key in os.environ:
        yield
        return
    os.environ[key] = str(trials)
    try:
        yield
    finally:
        os.environ.pop(key, None)


@contextlib.contextmanager
def autoscaler_request(bundle: dict[str, float], count: int, enabled: bool) -> Iterator[None]:
    """Asks Ray's autoscaler for room for ``count`` trials of ``bundle`` while the block runs.

    Without it the autoscaler sees only the trials Tune has staged, and scales up one
    node per round of unplaceable trials. The request replaces any earlier one (Ray keeps
    one per cluster) and is withdrawn afterwards, so idle nodes can scale back down.
    """
    if not enabled or count < 1:
        yield
        return
    from ray.autoscaler.sdk import request_resources

    shape = {k: v for k, v in bundle.items() if v > 0}
    request_resources(bundles=[shape] * count)
    try:
        yield
    finally:
        request_resources(bundles=[])


@contextlib.contextmanager
def callback_tags_without_imports() -> Iterator[None]:
    """Ray Tune's usage tag of the study's callbacks, recorded without Ray's imports.

    At the start of every ``fit``, Ray Tune counts the callbacks by class for its usage
    statistics (``ray.air._internal.usage.tag_callbacks``), and to know its own classes it
    imports its MLflow, Weights & Biases and Comet integrations, and with them MLflow
    itself where it is installed: 2.0 s of the driver's time inside the search's clock on
    the 2-core machine (docs/benchmarks.md). The study's callbacks are its own, none of
    those integrations, so the same tag is recorded here from their base classes alone.
    A Ray without that function leaves the block unchanged.
    """
    try:
        from ray.air._internal import usage
        from ray.tune import Callback
        from ray.tune.logger import LoggerCallback
    except ImportError:
        yield
        return
    original = getattr(usage, "tag_callbacks", None)
    if original is None:
        yield
        return

    def tag_callbacks(callbacks: list[Any] | None) -> bool:
        counts: dict[str, int] = {}
        for callback in callbacks or []:
            if isinstance(callback, Callback):
                kind = (
                    "CustomLoggerCallback"
                    if isinstance(callback, LoggerCallback)
                    else "CustomCallback"
                )
                counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            return False
        import json

        with contextlib.suppress(Exception):  # telemetry must never fail a study
            usage.record_extra_usage_tag(usage.TagKey.AIR_CALLBACKS, json.dumps(counts))
        return True

    usage.tag_callbacks = tag_callbacks
    try:
        yield
    finally:
        usage.tag_callbacks = original


def names_used(spec: StudySpec) -> list[str]:
    """Every name the study's objectives, constraints and pick refer to."""
    names = [o.name for o in spec.objective_list()]
    names += [parse_constraint(c).name for c in spec.constraint]
    rule = parse_pick(spec.pick)
    names += [c.name for c in rule.conditions] + ([rule.name] if rule.name else [])
    return names


# A lost node or worker process (a system failure) re-runs a retrain seed from its start
# on another node: a seed is deterministic and its result is only kept once it returns. One
# retry leaves no room for a second loss (another node, or a retry placed on the dying node
# before its loss is noticed). An exception raised by the seed's own code is not retried
# (retry_exceptions=False): the same seed on the same data would fail the same way.
JOB_RETRIES = 3


def _job(fn: Callable[..., Any], index: int, queue: Any, *args: Any) -> Any:
    """One `RayTuneEngine.run_jobs` call inside its Ray task (epochs go into ``queue``)."""
    follow_parent()  # a seed never trains on after its raylet is gone (ray_lifeline)
    if queue is None:
        return fn(*args)

    def report(epoch: int) -> None:
        with contextlib.suppress(Exception):  # progress must never fail a seed
            queue.put_nowait((index, epoch))

    return fn(*args, progress=report)


def _drain(queue: Any, on_epoch: Callable[[int, int], None]) -> None:
    """Passes every epoch report waiting in ``queue`` on to ``on_epoch``."""
    try:
        waiting = queue.qsize()
        items = queue.get_nowait_batch(waiting) if waiting else []
    except Exception:  # a lost queue actor costs the epoch lines, never the retrain
        return
    for index, epoch in items:
        on_epoch(index, epoch)


ZOMBIE_REASON = (
    "left RUNNING by a driver that was killed before Tune recorded the trial; "
    "closed when the resumed search ended"
)


def close_zombie_trials(run_dir: Path) -> int:
    """Marks Optuna trials still RUNNING after the search ended as FAIL, with the reason.

    After ``fit()`` returns every Tune trial is finished, so an Optuna trial still running
    is one a killed driver asked for but Tune never recorded: nothing will ever finish
    it, and optuna-dashboard would show it running forever.

    Returns:
        How many trials were closed.
    """
    import optuna

    path = run_dir / OPTUNA_FILE
    if not path.exists():
        return 0
    storage = optuna.storages.RDBStorage(optuna_storage_url(run_dir))
    closed = 0
    for summary in storage.get_all_studies():
        for trial in storage.get_all_trials(
            summary._study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)
        ):
            storage.set_trial_user_attr(trial._trial_id, "covidxr_closed", ZOMBIE_REASON)
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            closed += 1
    return closed


__all__ = [
    "OPTUNA_FILE",
    "TUNE_DIR",
    "RayTuneEngine",
    "check_fits",
    "check_reachable",
    "close_zombie_trials",
    "optuna_storage_url",
]
