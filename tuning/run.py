"""Search hyperparameters of the chest-X-ray CNN with Ray Tune + Optuna, then retrain the best.

    python tuning/run.py --trials 50                      # synthetic demo data, this machine
    python tuning/run.py --data DIR --trials 50 --address auto --output s3://bucket/runs

Writes runs/NAME/{leaderboard.parquet, optuna.db, best/, baseline/, comparison.json,
summary.json, report.html}. `optuna-dashboard sqlite:///runs/NAME/optuna.db` opens the study.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if "-v" not in sys.argv and "--verbose" not in sys.argv:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise on a progress screen.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):
    # Run as a script (`python tuning/run.py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from covidxr_core.errors import CovidxrError
from tuning.spec import StudySpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuning/run.py",
        description="Hyperparameter search for the covidxr CNN (Ray Tune + Optuna TPE + ASHA).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = StudySpec()
    add = parser.add_argument
    add("--trials", type=int, default=d.trials, help="configurations to try")
    add(
        "--data",
        default=None,
        help="data folder DIR/{train,validation,test}/<class>/ (default: synthetic demo)",
    )
    add("--space", default=d.space, help="search space: a built-in name or a YAML file")
    add("--epochs", type=int, default=d.epochs, help="epoch budget per trial")
    add("--image-size", type=int, default=d.image_size, help="image side in pixels")
    add("--channels", type=int, choices=(1, 3), default=d.channels, help="1 greyscale, 3 RGB")
    add("--cpus-per-trial", type=float, default=d.cpus_per_trial)
    add(
        "--gpus-per-trial",
        type=float,
        default=None,
        help="GPU fraction per trial (0.25 packs 4 trials per GPU); default 0.25 if GPUs exist, else 0",
    )
    add(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials running at once (default: as resources allow)",
    )
    add("--address", default=None, help="join an existing Ray cluster, e.g. auto")
    add("--output", default=d.output, help="parent folder of run folders")
    add("--name", default=None, help="run folder name (default: a timestamp)")
    add("--seed", type=int, default=d.seed)
    add(
        "--retrain-seeds",
        type=int,
        default=d.retrain_seeds,
        help="seeds for retraining the best and the baseline",
    )
    add("--metric", default=d.metric, help="validation metric to optimise")
    add(
        "--time-budget-s",
        type=float,
        default=None,
        help="stop starting (and stop running) trials after this many seconds of search",
    )
    add(
        "--max-failures",
        type=int,
        default=d.max_failures,
        help="retries of a trial whose worker died",
    )
    add(
        "--trial-timeout",
        type=float,
        default=None,
        help="seconds a trial may run before it is ended and recorded as failed",
    )
    add(
        "--cache-dir",
        default=None,
        help="decoded-image cache (default $COVIDXR_CACHE or ~/.cache/covidxr)",
    )
    add(
        "--engine",
        choices=("ray", "keras-tuner"),
        default=d.engine,
        help="search engine: Ray Tune + Optuna + ASHA, or KerasTuner on this machine",
    )
    add(
        "--tuner",
        choices=("hyperband", "bayesian", "random"),
        default=d.tuner,
        help="KerasTuner algorithm (with --engine keras-tuner)",
    )
    add("--precision", choices=("fp32", "bf16"), default=d.precision, help="training precision")
    add("--resume", action="store_true", help="continue the run named by --name")
    add(
        "--smoke-test",
        action="store_true",
        help="tiny everything: checks the whole pipeline in well under a minute",
    )
    add("-v", "--verbose", action="store_true", help="show Ray's and the trials' own logs")
    return parser


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    spec = StudySpec(
        trials=args.trials,
        data=args.data,
        space=args.space,
        epochs=args.epochs,
        image_size=args.image_size,
        channels=args.channels,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        address=args.address,
        output=args.output,
        name=args.name,
        seed=args.seed,
        retrain_seeds=args.retrain_seeds,
        metric=args.metric,
        max_failures=args.max_failures,
        cache_dir=args.cache_dir,
        verbose=args.verbose,
        engine=args.engine,
        tuner=args.tuner,
        precision=args.precision,
        time_budget_s=args.time_budget_s,
        trial_timeout_s=args.trial_timeout,
    )
    if args.smoke_test:
        import dataclasses

        spec = dataclasses.replace(
            spec,
            trials=min(spec.trials, 3),
            epochs=1,
            image_size=64,
            space="small",
            retrain_seeds=1,
            n_boot=100,
            grace_epochs=1,
        )
    return spec


def _import_backend_quietly() -> None:
    """Imports Keras and its backend with native stderr muted.

    TensorFlow's C++ start-up lines (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL in
    TF 2.21; they would land in the middle of the progress display. `-v` keeps them.
    """
    import contextlib
    import tempfile

    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, contextlib.suppress(ImportError):
        os.dup2(sink.fileno(), 2)
        try:
            from covidxr_core._backend import configure_backend

            if configure_backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")  # the CUDA probe prints too
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    if not args.verbose:
        _import_backend_quietly()
    try:
        spec = spec_from_args(args)
        if args.resume and not spec.name:
            raise CovidxrError("--resume needs --name: the run folder to continue")
        from tuning.study import run_study

        outcome = run_study(spec, resume=args.resume, console=console)
    except CovidxrError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: continue with --resume --name NAME[/]")
        return 130
    console.print(
        f"[bold]results[/] {outcome.run_dir} ({outcome.trials} trials, {outcome.wall_s:.0f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
