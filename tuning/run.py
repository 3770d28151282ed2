"""Search hyperparameters of the chest-X-ray CNN with Ray Tune + Optuna, then retrain the best.

    python tuning/run.py --trials 50                      # synthetic demo data, this machine
    python tuning/run.py --data DIR --trials 50 --address auto --output s3://bucket/runs

Writes runs/NAME/{leaderboard.parquet, optuna.db, best/, baseline/, comparison.json,
summary.json, report.html}. `optuna-dashboard sqlite:///runs/NAME/optuna.db` opens the study.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if "-v" not in sys.argv and "--verbose" not in sys.argv:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise on a progress screen.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):
    # Run as a script (`python tuning/run.py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from covidxr_core.errors import CovidxrError
from tuning.spec import SpecError, build_parser, flag_of, spec_from_args


def _import_backend_quietly() -> None:
    """Imports Keras and its backend with native stderr muted (`-v` keeps the lines)."""
    import contextlib

    with contextlib.suppress(ImportError):
        from covidxr_core._backend import configure_backend_quietly

        configure_backend_quietly()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 2 for a problem the user must fix."""
    from rich.console import Console
    from rich.markup import escape

    args = build_parser().parse_args(argv)
    console = Console()
    try:
        spec = spec_from_args(args)
    except SpecError as exc:  # the field's flag, then the rule the value broke
        console.print(f"[bold red]error:[/] {flag_of(exc.field)}: {escape(str(exc))}")
        return 2
    if args.resume and not spec.name:
        console.print("[bold red]error:[/] --resume needs --name: the run folder to continue")
        return 2
    if args.resume:
        from tuning.runfolder import STUDY_FILE, locate

        location = locate(spec.output, spec.name)
        if location.uri is None and not (location.local / STUDY_FILE).is_file():
            # Before the backend import (tens of seconds) and before any data is decoded.
            what = "holds no study" if location.local.exists() else "does not exist"
            console.print(
                f"[bold red]error:[/] --resume: {escape(str(location.local))} {what} "
                f"(no {STUDY_FILE}): nothing to resume"
            )
            return 2
    if not args.verbose:
        _import_backend_quietly()
    from tuning.progress import progress_for
    from tuning.study import run_study

    # A terminal gets the live table; a log file, CI or `ray job submit` gets plain lines.
    observer = progress_for(sys.stdout)
    try:
        result = run_study(spec, resume=args.resume, observer=observer)
    except CovidxrError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: continue with --resume --name NAME[/]")
        return 130
    console.print(
        f"[bold]results[/] {escape(str(result.run_dir))} "
        f"({result.trials} trials, {result.wall_s:.0f}s)"
    )
    if result.best_trial is None:
        console.print(
            f"[bold red]error:[/] no trial succeeded ({_outcomes(result)}): nothing to "
            f"retrain or compare; the leaderboard says why "
            f"(python tuning/report.py {escape(str(result.run_dir))})"
        )
        return 1
    return 0


def _outcomes(result: Any) -> str:
    """``3 trials: 3 failed`` from the leaderboard's stop reasons."""
    board = result.leaderboard
    if "stop_reason" not in board or board.empty:
        return f"{result.trials} trials"
    counts = board["stop_reason"].fillna("running").value_counts()
    return f"{result.trials} trials: " + ", ".join(f"{n} {k}" for k, n in counts.items())


if __name__ == "__main__":
    sys.exit(main())
