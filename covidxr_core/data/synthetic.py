"""``python -m covidxr_core.data.synthetic OUT_DIR [--difficulty hard] [--seed N]``.

Writes a synthetic radiograph-like data set (`covidxr_core.data._synthetic`) to
``OUT_DIR/{train,validation,test}/{corona,normal}/*.png``, deterministically: the same
difficulty, seed and counts give the same bytes anywhere. ``demo`` is the embedded demo
set (``tuning/run.py`` without ``--data``); ``hard`` has fainter, smaller opacities, more
confounders and larger validation and test splits. Prints the folder and its counts.
Exit status: 0 written (or already there), 2 the folder or an option cannot be used.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from covidxr_core.data._synthetic import (
    _SPLIT_ORDER,
    DIFFICULTIES,
    resolve_difficulty,
    write_synthetic,
)


def _counts(text: str) -> dict[str, int]:
    parts = text.split(",")
    if len(parts) != len(_SPLIT_ORDER) or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected TRAIN,VALIDATION,TEST counts, got {text!r}")
    return dict(zip(_SPLIT_ORDER, (int(p) for p in parts), strict=True))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m covidxr_core.data.synthetic",
        description="Write a synthetic chest-radiograph data set to OUT_DIR/<split>/<class>/.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty folder")
    parser.add_argument(
        "--difficulty", choices=tuple(DIFFICULTIES), default="hard", help="default hard"
    )
    parser.add_argument("--seed", type=int, help="another set of patients (default: the set's)")
    parser.add_argument(
        "--counts",
        type=_counts,
        metavar="TRAIN,VAL,TEST",
        help="images per class in each split (default: the set's, hard 300,150,150)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        chosen = resolve_difficulty(args.difficulty, args.seed, args.counts)
        started = time.perf_counter()
        folder = write_synthetic(args.out_dir, chosen)
    except (ValueError, OSError) as exc:  # FileExistsError is an OSError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{split} {n}" for split, n in chosen.counts.items())
    print(
        f"{folder}: {chosen.version} (seed {chosen.seed}), per class {counts}; "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
