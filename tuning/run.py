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

if "-v" not in sys.argv and "--verbose" not in sys.argv:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise on a progress screen.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __package__ in (None, ""):
    # Run as a script (`python tuning/run.py`): make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from covidxr_core.errors import CovidxrError
from tuning.spec import SpecError, build_parser, flag_of, spec_from_args


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
            from covidxr_core import configure_backend

            if configure_backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices("GPU")  # the CUDA probe prints too
        finally:
            os.dup2(saved, 2)
            os.close(saved)


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
    if not args.verbose:
        _import_backend_quietly()
    from tuning.progress import RichProgress
    from tuning.study import run_study

    try:
        result = run_study(spec, resume=args.resume, observer=RichProgress(console))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
