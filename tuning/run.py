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

from covidxr_core.errors import CovidxrError, for_cli
from tuning import signals
from tuning.spec import (
    SpecError,
    build_parser,
    check_installed,
    flag_of,
    given_flags,
    smoke_values,
    spec_from_args,
)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 2 for a problem the user must fix, 143 when
    stopped by SIGTERM (the state is saved: ``--resume`` continues)."""
    with signals.handling_sigterm():
        try:
            return _main(argv)
        except KeyboardInterrupt:  # Ctrl+C, or SIGTERM (signals.Terminated, or Ray's copy)
            from rich.console import Console

            if not signals.stop_requested():
                Console().print("[yellow]interrupted: continue with --resume --name NAME[/]")
                return 130
            Console().print(
                "[yellow]stopped by SIGTERM: trials ended, state saved; continue with "
                "--resume --name NAME[/]"
            )
            return signals.EXIT_CODE


def _main(argv: list[str] | None) -> int:
    from rich.console import Console
    from rich.markup import escape

    args = build_parser().parse_args(argv)
    given = given_flags(argv)
    console = Console()
    try:
        spec = spec_from_args(args, given)
        check_installed(spec)
    except SpecError as exc:  # the field's flag, then the rule the value broke
        console.print(f"[bold red]error:[/] {flag_of(exc.field)}: {escape(str(exc))}")
        return 2
    if args.smoke_test:
        kept = sorted(set(given) & set(smoke_values(frozenset())))
        if kept:
            console.print(
                "smoke test: keeping "
                + ", ".join(f"{flag_of(k)} {getattr(spec, k)}" for k in kept)
                + " as given; the rest of the preset applies"
            )
    if args.resume and not spec.name:
        console.print("[bold red]error:[/] --resume needs --name: the run folder to continue")
        return 2
    if args.resume and args.smoke_test:
        # What the preset sets counts as asked for: a resume must not drop it silently.
        given = given | frozenset(smoke_values(given))
    if "data_changed" in given and not args.resume:
        console.print("note: --data-changed applies to --resume only; a new study ignores it")
    problem = _precheck(spec, args, given)
    if problem:
        console.print(f"[bold red]error:[/] {escape(problem)}")
        return 2
    if not args.verbose:
        # Keras starts only where this process uses a model (exporting and explaining the
        # retrained winner), and then without its native start-up lines (`-v` keeps them).
        from covidxr_core._backend import quiet_start_up

        quiet_start_up()
    from tuning.progress import progress_for
    from tuning.study import run_study

    # A terminal gets the live table; a log file, CI or `ray job submit` gets plain lines.
    observer = progress_for(sys.stdout)
    try:
        result = run_study(
            spec,
            resume=args.resume,
            observer=observer,
            given=given,
            data_changed=args.data_changed,
        )
    except CovidxrError as exc:
        console.print(f"[bold red]error:[/] {escape(for_cli(str(exc)))}")
        return 2
    console.print(
        f"[bold]results[/] {escape(str(result.run_dir))} "
        f"({result.trials} trials, {result.wall_s:.0f}s)"
    )
    if result.trials_short:
        console.print(
            f"[bold yellow]warning:[/] {result.trials_short} planned trial(s) did not run "
            f"({result.trials} of {result.trials + result.trials_short} ran); the results "
            "cover the trials that ran. Run the same command with --resume to try the rest"
        )
    if result.best_trial is None:
        console.print(
            f"[bold red]error:[/] {escape(nothing_to_retrain(result))} "
            f"(python tuning/report.py {escape(str(result.run_dir))})"
        )
        return 1
    return 3 if result.trials_short else 0


def nothing_to_retrain(result: Any) -> str:
    """Why a finished study has no winner: its trials failed, or none met a constraint."""
    board = result.leaderboard
    feasible = board["feasible"].dropna() if "feasible" in board else board.iloc[0:0]
    if len(feasible) and not feasible.astype(bool).any():
        # Trials that finished but met no --constraint did not fail: say what happened.
        return (
            f"no trial met the constraints ({_outcomes(result)}, 0 of {len(feasible)} "
            "feasible): nothing to retrain or compare; the report's Selection section says "
            "by how much each missed"
        )
    return (
        f"no trial succeeded ({_outcomes(result)}): nothing to retrain or compare; the "
        "leaderboard says why"
    )


def _precheck(spec: Any, args: Any, given: frozenset[str]) -> str | None:
    """The refusals that need no backend, Ray or decoded image, as one line (or None).

    A resume of a missing run, a resume whose flags change the saved study, a data folder
    changed since the study started, and an output nobody can write to.
    """
    from tuning.runfolder import STUDY_FILE, check_output, locate

    location = locate(spec.output, spec.name)
    if args.resume and location.uri is None:
        run_dir = location.local
        if not (run_dir / STUDY_FILE).is_file():
            # Before the backend import (tens of seconds) and before any data is decoded.
            what = "holds no study" if run_dir.exists() else "does not exist"
            return f"--resume: {run_dir} {what} (no {STUDY_FILE}): nothing to resume"
        from tuning.runfolder import data_change, data_change_refusal
        from tuning.spec import StudySpec, resume_conflicts, resume_refusal

        try:
            saved = StudySpec.from_json(run_dir / STUDY_FILE)
        except (CovidxrError, ValueError, TypeError) as exc:
            return f"--resume: {run_dir / STUDY_FILE} does not describe a study: {exc}"
        conflicts = resume_conflicts(saved, spec, given)
        if conflicts:
            return resume_refusal(run_dir, conflicts)
        if args.data_changed != "ok":
            change = data_change(saved.data, run_dir)
            if change is not None:
                return data_change_refusal(saved.data, change)
    try:
        check_output(location, spec.output)
        if spec.data is not None and not args.resume:
            _check_positive_class(spec.data, spec.positive_class)
    except CovidxrError as exc:
        return str(exc)
    return None


def _check_positive_class(data: str, requested: str | None) -> None:
    """``--positive-class`` against the data folder's class folders (listed, not decoded)."""
    from covidxr_core.data._config import resolve_positive_class
    from covidxr_core.data._discover import scan
    from covidxr_core.errors import ConfigError

    classes = scan(data).class_names
    try:
        resolve_positive_class(classes, requested)
    except ConfigError as exc:
        raise ConfigError(
            str(exc).replace("DataConfig.positive_class", "--positive-class")
            + f" (the class folders of {data})"
        ) from None


def _outcomes(result: Any) -> str:
    """``3 trials: 3 failed`` from the leaderboard's stop reasons."""
    board = result.leaderboard
    if "stop_reason" not in board or board.empty:
        return f"{result.trials} trials"
    counts = board["stop_reason"].fillna("running").value_counts()
    return f"{result.trials} trials: " + ", ".join(f"{n} {k}" for k, n in counts.items())


if __name__ == "__main__":
    sys.exit(main())
