"""Decode pool: worker processes against worker threads, on real radiographs.

    python benchmarks/decode_pool.py --data DIR [--workers N] [--repeats 3] [--json OUT]

Decodes every image of DIR (uncached, as a first ``load_dataset`` does: pixels plus
fingerprints, greyscale) at 128 px and at 300 px, once with a process pool (forkserver,
else spawn, as the loader used) and once with a thread pool of the same worker count.
Each run starts a fresh pool, as every uncached ``load_dataset`` call does, so start-up
is in the figure. Prints images/s side by side, best of ``--repeats`` (on a shared
machine the slower runs measure the neighbours), and ``threads / processes``. A third
column times ``load_dataset`` itself into an empty cache (the library as shipped:
decoding plus writing and checksumming the cache entry).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidxr_core.data import (  # noqa: E402
    DataConfig,
    DecodeTask,
    cpu_budget,
    decode_task,
    discover,
    load_dataset,
)

SIZES = (128, 300)


def _process_pool(workers: int) -> Executor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _thread_pool(workers: int) -> Executor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")


POOLS: dict[str, Callable[[int], Executor]] = {"processes": _process_pool, "threads": _thread_pool}


def _one_run(kind: str, tasks: Sequence[DecodeTask], workers: int) -> float:
    """Seconds to decode ``tasks`` with a fresh pool of ``kind``; checks every result."""
    chunksize = max(1, len(tasks) // (workers * 8)) if kind == "processes" else 1
    started = time.perf_counter()
    with POOLS[kind](workers) as pool:
        results = list(pool.map(decode_task, tasks, chunksize=chunksize))
    seconds = time.perf_counter() - started
    bad = [r.relpath for r in results if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} files failed to decode, e.g. {bad[:3]}")
    return seconds


def _load_dataset_rate(data: Path, size: int, workers: int) -> float:
    """Images/s of an uncached ``load_dataset`` (the library's own decode threads)."""
    with tempfile.TemporaryDirectory(prefix="covidxr-decode-pool-") as cache:
        config = DataConfig(image_size=size, channels=1, workers=workers, cache_dir=cache)
        started = time.perf_counter()
        dataset = load_dataset(data, config)
        seconds = time.perf_counter() - started
    if dataset.cache_hit or dataset.skipped:
        raise SystemExit("load_dataset did not decode every file from scratch")
    return sum(len(split) for split in dataset.splits.values()) / seconds


def measure(data: Path, workers: int, repeats: int) -> dict[str, Any]:
    layout = discover(data)
    out: dict[str, Any] = {
        "data": str(data),
        "images": len(layout.files),
        "workers": workers,
        "repeats": repeats,
        "channels": 1,
        "sizes": {},
    }
    for size in SIZES:
        tasks = [
            DecodeTask(str(layout.root / f.relpath), f.relpath, size, 1, True, True)
            for f in layout.files
        ]
        row: dict[str, Any] = {}
        for _ in range(repeats):  # interleaved, so a noisy moment hits both kinds alike
            for kind in POOLS:
                seconds = _one_run(kind, tasks, workers)
                row.setdefault(kind, []).append(len(tasks) / seconds)
            row.setdefault("load_dataset", []).append(_load_dataset_rate(data, size, workers))
        figures = {kind: max(values) for kind, values in row.items()}
        out["sizes"][str(size)] = {
            **{f"{kind}_images_per_s": round(v, 1) for kind, v in figures.items()},
            **{f"{kind}_all": [round(v, 1) for v in values] for kind, values in row.items()},
            "threads_over_processes": round(figures["threads"] / figures["processes"], 3),
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="DIR/<split>/<class>/<image>")
    parser.add_argument("--workers", type=int, default=cpu_budget(), help="default: CPUs usable")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    result = measure(args.data, args.workers, args.repeats)
    print(
        f"{result['images']} images from {result['data']}, greyscale, {result['workers']} "
        f"workers, best of {result['repeats']} (images/s)"
    )
    print(
        f"{'size':>6}  {'processes':>10}  {'threads':>10}  {'threads/processes':>18}  "
        f"{'load_dataset':>12}"
    )
    for size, row in result["sizes"].items():
        print(
            f"{size + ' px':>6}  {row['processes_images_per_s']:>10.1f}  "
            f"{row['threads_images_per_s']:>10.1f}  {row['threads_over_processes']:>18.3f}  "
            f"{row['load_dataset_images_per_s']:>12.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
