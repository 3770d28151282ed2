"""``python -m covidxr_core.data [DIR]``: what is in a data folder, and does it leak?

Prints counts per split and class, image sizes, formats and modes, carving notes,
skipped files, the cache used, the files ``--drop-leaked`` removed, then every pair of
files that holds the same radiograph in two splits and every ``--groups`` group found in
two splits. Exit status: 0 fine; 1 under ``--strict`` when duplicates or split groups
were found; 2 when the folder or an option cannot be used (one red line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from covidxr_core.data._config import BAD_IMAGE_POLICIES, DataConfig
from covidxr_core.data._dataset import Dataset
from covidxr_core.data._groups import GroupLeak
from covidxr_core.data._leakage import (
    NEAR_DUPLICATE_BITS,
    DuplicatePair,
    find_duplicates,
    find_group_leaks,
)
from covidxr_core.data._load import load_dataset
from covidxr_core.data._phash import HASH_BITS
from covidxr_core.errors import ConfigError, DataError, for_cli

EXIT_DUPLICATES = 1
EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m covidxr_core.data",
        description="Summarise a chest X-ray folder (DIR/<split>/<class>/<image>) and check "
        "it for the same radiograph in two splits. Without DIR: the synthetic demo data.",
    )
    parser.add_argument("dir", nargs="?", help="data folder; omit for the synthetic demo data")
    parser.add_argument("--image-size", type=int, default=128, help="decode size (default 128)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1 grey, 3 RGB")
    parser.add_argument("--cache-dir", help="cache folder (default $COVIDXR_CACHE or ~/.cache)")
    parser.add_argument(
        "--on-bad-image",
        choices=BAD_IMAGE_POLICIES,
        default="skip",
        help="skip bad image files (listed) or stop at the first (default skip)",
    )
    parser.add_argument(
        "--positive-class",
        metavar="NAME",
        help="the class folder that sensitivity and AUC are about (default: the one class "
        "not named 'normal'; needed for 3+ classes or other class names)",
    )
    parser.add_argument("--workers", type=int, help="decode threads (default: all CPUs)")
    parser.add_argument(
        "--max-distance",
        type=int,
        default=NEAR_DUPLICATE_BITS,
        help=f"near-duplicate threshold in hash bits of {HASH_BITS} "
        f"(default {NEAR_DUPLICATE_BITS})",
    )
    parser.add_argument(
        "--groups",
        metavar="FILE.csv",
        help="CSV with columns path,group (e.g. a patient id): carving keeps each group "
        "on one side, and a group in two given splits is reported",
    )
    parser.add_argument(
        "--drop-leaked",
        action="store_true",
        help="remove validation/test files that duplicate a train file (listed)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if any file (or --groups group) appears in two splits",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return parser


def _size_stats(values: Sequence[int]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _dicom_summary(
    dataset: Dataset, originals: dict[str, tuple[int, int, str, str]]
) -> dict[str, Any]:
    """How many files were DICOM, and their View Position and Manufacturer counts."""
    dicom = [rel for rel, o in originals.items() if o[2] == "DICOM"]
    out: dict[str, Any] = {"files": len(dicom)}
    for key in ("view_position", "manufacturer"):
        values = Counter(dataset.image_meta.get(rel, {}).get(key, "not given") for rel in dicom)
        out[key] = dict(values.most_common())
    return out


def summary(
    dataset: Dataset, pairs: Sequence[DuplicatePair], leaks: Sequence[GroupLeak] = ()
) -> dict[str, Any]:
    """Everything the CLI reports, as JSON-ready data."""
    originals: dict[str, tuple[int, int, str, str]] = dataset.extra.get("originals", {})  # type: ignore[assignment]
    widths = [o[0] for o in originals.values()]
    heights = [o[1] for o in originals.values()]
    return {
        "source": dataset.source,
        "synthetic": dataset.synthetic,
        "class_names": list(dataset.class_names),
        "positive_class": dataset.positive_class,
        "counts": dataset.counts(),
        "image_size": dataset.image_size,
        "channels": dataset.channels,
        "originals": {
            "width": _size_stats(widths) if widths else None,
            "height": _size_stats(heights) if heights else None,
            "formats": dict(Counter(o[2] for o in originals.values()).most_common()),
            "modes": dict(Counter(o[3] for o in originals.values()).most_common()),
        },
        "dicom": _dicom_summary(dataset, originals),
        "notes": list(dataset.notes),
        "skipped": [{"file": f, "reason": r} for f, r in dataset.skipped],
        "cache": {
            "path": dataset.cache_path,
            "hit": dataset.cache_hit,
            "decode_seconds": dataset.extra.get("decode_seconds"),
        },
        "dropped": [d._asdict() for d in dataset.dropped],
        "group_leaks": [
            {"group": g.group, "splits": list(g.splits), "files": list(g.files)} for g in leaks
        ],
        "duplicates": [
            {
                "file_a": p.file_a,
                "split_a": p.split_a,
                "file_b": p.file_b,
                "split_b": p.split_b,
                "kind": p.kind,
                "distance": p.distance,
            }
            for p in pairs
        ],
    }


def _print_tables(console: Console, info: dict[str, Any], max_distance: int) -> None:
    kind = " (synthetic)" if info["synthetic"] else ""
    console.print(f"[bold]{escape(info['source'])}[/bold]{kind}")
    counts = Table(title="Images per split and class")
    counts.add_column("split")
    for name in info["class_names"]:
        star = " (+)" if name == info["positive_class"] else ""
        counts.add_column(escape(name) + star, justify="right")
    counts.add_column("total", justify="right")
    for split, per_class in info["counts"].items():
        values = [per_class[c] for c in info["class_names"]]
        counts.add_row(split, *map(str, values), str(sum(values)))
    console.print(counts)

    original = info["originals"]
    if original["width"]:
        w, h = original["width"], original["height"]
        console.print(
            f"originals: width {w['min']}/{w['median']:g}/{w['max']} px, height "
            f"{h['min']}/{h['median']:g}/{h['max']} px (min/median/max); formats "
            + ", ".join(f"{k} {v}" for k, v in original["formats"].items())
            + "; modes "
            + ", ".join(f"{k} {v}" for k, v in original["modes"].items())
        )
    dicom = info["dicom"]
    if dicom["files"]:
        console.print(
            f"DICOM: {dicom['files']} files; views "
            + ", ".join(f"{escape(k)} {v}" for k, v in dicom["view_position"].items())
            + "; manufacturers "
            + ", ".join(f"{escape(k)} {v}" for k, v in dicom["manufacturer"].items())
        )
    console.print(f"decoded: {info['image_size']} px, {info['channels']} channel(s)")
    for note in info["notes"]:
        console.print(f"note: {escape(note)}", style="cyan")
    if info["skipped"]:
        console.print(f"[yellow]skipped {len(info['skipped'])} files:[/yellow]")
        for item in info["skipped"]:
            console.print(f"  {escape(item['file'])}: {escape(item['reason'])}")
    cache = info["cache"]
    state = "hit" if cache["hit"] else f"miss (decoded in {cache['decode_seconds']} s)"
    console.print(f"cache: {escape(str(cache['path']))} ({state})")
    if info["dropped"]:
        console.print(
            f"[yellow]--drop-leaked removed {len(info['dropped'])} files from validation/test"
            "[/yellow] (each holds the same radiograph as a train file):"
        )
        for d in info["dropped"]:
            console.print(
                f"  {d['split']}: {escape(d['file'])}  ({d['kind']} {d['distance']} of "
                f"train: {escape(d['duplicate_of'])})"
            )
    for leak in info["group_leaks"]:
        console.print(
            f"[yellow]leakage check: group {escape(repr(leak['group']))} in "
            f"{' and '.join(leak['splits'])}[/yellow] ({len(leak['files'])} files: "
            + escape(", ".join(leak["files"][:4]) + (", ..." if len(leak["files"]) > 4 else ""))
            + ")"
        )

    pairs = info["duplicates"]
    if not pairs:
        console.print(
            f"[green]leakage check: no file appears in two splits[/green] (exact, or within "
            f"{max_distance}/{HASH_BITS} hash bits)"
        )
        return
    console.print(
        f"[yellow]leakage check: {len(pairs)} pairs of files hold the same radiograph in two "
        f"splits[/yellow] (hash distance in bits of {HASH_BITS}; threshold {max_distance})"
    )
    for p in pairs:
        console.print(
            f"  {p['kind']:5} {p['distance']:3d}  {p['split_a']}: {escape(p['file_a'])}  <->  "
            f"{p['split_b']}: {escape(p['file_b'])}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        config = DataConfig(
            image_size=args.image_size,
            channels=args.channels,
            cache_dir=args.cache_dir,
            on_bad_image=args.on_bad_image,
            workers=args.workers,
            positive_class=args.positive_class,
            groups=args.groups,
            drop_leaked=args.drop_leaked,
        )
        dataset = load_dataset(args.dir, config)
        pairs = find_duplicates(dataset, config, max_distance=args.max_distance)
        leaks = find_group_leaks(dataset, config)
    except (DataError, ConfigError, ValueError) as exc:
        # ValueError: --max-distance out of range. One line, the message says what to fix.
        err.print(f"error: {for_cli(str(exc))}", style="bold red", markup=False)
        return EXIT_ERROR
    except OSError as exc:  # e.g. a cache folder on a full or read-only disk
        err.print(f"error: {exc}", style="bold red", markup=False)
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted", style="red", markup=False)
        return 130
    info = summary(dataset, pairs, leaks)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        _print_tables(Console(highlight=False, soft_wrap=True), info, args.max_distance)
    return EXIT_DUPLICATES if args.strict and (pairs or leaks) else 0


if __name__ == "__main__":
    sys.exit(main())
