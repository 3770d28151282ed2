"""Does tuning ever lose to the sensible default? Paired test AUC over study seeds and data sets.

    python benchmarks/tuning_gain.py [--sets demo,covid-cxr,hard] [--seeds 0,1,2] [--json OUT]
    python benchmarks/tuning_gain.py --quick   # smoke run: demo, seed 0, 3 trials, 1 epoch, 64 px
    python benchmarks/tuning_gain.py --output DIR --reuse   # adds what DIR does not have yet

For each data set and study seed one whole study runs, one after the other, as

    tuning/run.py [--data DIR] --trials 12 --epochs 6 --image-size 96 --retrain-seeds 2
                  --seed S --name SET-sS --output OUT

Data sets: ``demo`` (the embedded synthetic set: no ``--data``), ``covid-cxr``
(``--shared-data``, default ../shared/data/covid-cxr; skipped with a note when missing;
its test split is carved per study seed) and ``hard`` (the harder synthetic set,
``python -m covidxr_core.data.synthetic``, generated once into the cache).

Per study, from its run folder: the exported tuned model's (``best/``) and the sensible
default's (``default/``) test AUC with its 95% bootstrap interval (``metrics.json``); the
paired difference tuned minus default with its 95% interval (``comparison.json``,
``versus.default``), and whether tuned is worse beyond it (upper end < 0); the study's
wall time, its search's, and, where the study ran a race stage after the search
(``summary.json`` key ``race``), the race's share of the wall time and its winner's origin.
Where the race handed the default back as ``best/``, comparison.json has no ``default``
entry; the difference is then computed from the two roles' test_probs.npy with the
verdict's own paired bootstrap (the study's --n-boot and seed): 0 [0, 0] when identical.

Per data set, the mean of the per-seed paired differences with two 95% intervals: a
t-interval over the seeds (seed-to-seed spread only), and a pooled paired bootstrap
(``best/test_probs.npy``, ``default/test_probs.npy``, ``best/test_labels.npy``): each
resample draws test images (stratified, `covidxr_core.metrics`) in every seed, takes
tuned-minus-default AUC there and averages over seeds. Every seed uses the same resample
indices, so where the seeds share one test split (demo, hard) they share each resample's
images too, and the interval keeps the image noise they have in common.

Targets: no seed has tuned worse than default beyond its interval; the pooled mean
difference is >= 0 for every data set. Everything goes to ``--json OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETS = ("demo", "covid-cxr", "hard")
N_BOOT = 2000


def data_folder(name: str, args: argparse.Namespace) -> str | None:
    """The ``--data`` of a set: None for the demo, "" when the set is not there."""
    if name == "demo":
        return None
    if name == "hard":
        from covidxr_core.data._synthetic import synthetic_data_path

        return str(synthetic_data_path("hard"))
    folder = Path(args.shared_data)
    return str(folder) if folder.is_dir() else ""


def run_study(args: argparse.Namespace, name: str, data: str | None, seed: int) -> dict[str, Any]:
    """One study through tuning/run.py, then what its run folder says."""
    run = Path(args.output) / f"{name}-s{seed}"
    command = [
        sys.executable, str(REPO / "tuning" / "run.py"), "--trials", str(args.trials),
        "--epochs", str(args.epochs), "--image-size", str(args.image_size),
        "--retrain-seeds", str(args.retrain_seeds), "--seed", str(seed),
        "--name", run.name, "--output", str(run.parent),
    ] + (["--data", data] if data else [])  # fmt: skip
    if args.reuse and (run / "summary.json").is_file():
        return {"set": name, "seed": seed, "run": str(run), "reused": True, **read_run(run)}
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL)
    out: dict[str, Any] = {"set": name, "seed": seed, "run": str(run)}
    out["process_wall_s"] = time.monotonic() - started
    try:
        return {**out, **read_run(run)}
    except (OSError, KeyError, ValueError) as exc:  # no retrained roles, or no comparison
        return {**out, "error": f"exit {done.returncode}: {type(exc).__name__}: {exc}"}


def read_run(run: Path) -> dict[str, Any]:
    from tuning.results import RoleSummary, Verdict

    def role(name: str) -> RoleSummary:
        return RoleSummary.from_dict(json.loads((run / name / "metrics.json").read_text()))

    best, default = role("best"), role("default")
    summary = json.loads((run / "summary.json").read_text())
    race = summary.get("race") if isinstance(summary.get("race"), dict) else None
    wall = summary.get("wall_s")
    race_wall = race.get("wall_s") if race else None
    tested = best.exported_test
    if tested is None or default.exported_test is None:
        raise ValueError("an exported model has no test metrics")
    classes = list(tested.class_names) or list(next(iter(summary["data"]["counts"].values())))
    positive = classes.index(summary["data"]["positive_class"])
    verdict = Verdict.from_dict(json.loads((run / "comparison.json").read_text()))
    if "default" in verdict.versus:
        difference, ci = (
            verdict.versus["default"].paired_difference,
            verdict.versus["default"].paired_ci95,
        )
        source = "comparison.json"
    else:  # the race handed the default back as best/: no comparison written; same bootstrap
        from covidxr_core.metrics import paired_auc_difference

        tuned, baseline = (np.load(run / r / "test_probs.npy") for r in ("best", "default"))
        labels = np.load(run / "best" / "test_labels.npy")
        spec = summary.get("spec") or {}
        paired = paired_auc_difference(
            labels, tuned, baseline, positive, spec.get("n_boot", 1000), spec.get("seed", 0)
        )
        difference, source = paired["difference"], "recomputed from test_probs.npy"
        ci = tuple(paired["ci95"]) if paired["ci95"] is not None else None
    return {
        "tuned_auc": tested.auc,
        "tuned_auc_ci95": tested.ci("auc"),
        "default_auc": default.exported_test.auc,
        "default_auc_ci95": default.exported_test.ci("auc"),
        "tuned_auc_per_retrain_seed": [(s.get("test") or {}).get("auc") for s in best.per_seed],
        "default_auc_per_retrain_seed": [
            (s.get("test") or {}).get("auc") for s in default.per_seed
        ],
        "paired_difference": difference,
        "paired_ci95": ci,
        "paired_source": source,
        "worse_beyond_interval": ci is not None and ci[1] < 0,
        "winner_origin": race.get("winner_origin") if race else None,
        "returned_default": summary.get("returned_default"),
        "wall_s": wall,
        "search_wall_s": summary.get("search_wall_s"),
        "race_wall_s": race_wall,
        "race_share": race_wall / wall if race_wall is not None and wall else None,
        "positive_index": positive,
    }


def pooled(studies: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean paired difference over seeds, a t-interval and the pooled paired bootstrap."""
    from scipy import stats

    from covidxr_core.metrics import _resample_counts, _weighted_auc

    good = [s for s in studies if s.get("paired_difference") is not None]
    diffs = [s["paired_difference"] for s in good]
    out: dict[str, Any] = {"seeds": [s["seed"] for s in good], "mean_difference": None}
    out.update(t_ci95=None, bootstrap_mean_difference=None, bootstrap_ci95=None)
    if not diffs:
        return out
    mean = statistics.fmean(diffs)
    out["mean_difference"] = mean
    if len(diffs) > 1:
        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        out["t_ci95"] = [float(mean - half), float(mean + half)]
    per_seed = []
    for s in good:
        run, k = Path(s["run"]), s["positive_index"]
        labels = np.load(run / "best" / "test_labels.npy").astype(np.int64)
        is_pos = labels == k
        tuned = np.load(run / "best" / "test_probs.npy")[:, k]
        default = np.load(run / "default" / "test_probs.npy")[:, k]
        ones = np.ones((1, labels.size))
        point = _weighted_auc(tuned, is_pos, ones)[0] - _weighted_auc(default, is_pos, ones)[0]
        resamples = [
            _weighted_auc(tuned, is_pos, c) - _weighted_auc(default, is_pos, c)
            for c in _resample_counts(labels, N_BOOT, seed=0)  # one seed: shared indices
        ]
        per_seed.append((point, np.concatenate(resamples)))
    out["bootstrap_mean_difference"] = float(np.mean([p for p, _ in per_seed]))
    means = np.mean(np.stack([r for _, r in per_seed]), axis=0)
    means = means[np.isfinite(means)]
    if means.size:
        out["bootstrap_ci95"] = [float(v) for v in np.percentile(means, [2.5, 97.5])]
    return out


def _ci(ci: Any, signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"[{ci[0]:{f}}, {ci[1]:{f}}]" if ci else "–"


def _auc(value: float | None, ci: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:{'+.3f' if signed else '.3f'}}" + (f" {_ci(ci, signed)}" if ci else "")


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=max(Console().width, 150))  # rows stay whole
    setup = result["setup"]
    table = Table(
        title=f"tuned vs sensible default, exported models' test AUC: {setup['trials']} trials "
        f"× {setup['epochs']} epochs, {setup['image_size']} px, "
        f"{setup['retrain_seeds']} retrain seed(s)"
    )
    for column in ("set", "seed", "tuned AUC [95% CI]", "default AUC [95% CI]"):
        table.add_column(column)
    for column in ("tuned − default [95% CI]", "worse?", "winner", "wall s", "race share"):
        table.add_column(column, justify="right")
    for s in result["studies"]:
        if "error" in s:
            table.add_row(s["set"], str(s["seed"]), f"[red]{s['error']}[/red]")
            continue
        share = s["race_share"]
        table.add_row(
            s["set"], str(s["seed"]), _auc(s["tuned_auc"], s["tuned_auc_ci95"]),
            _auc(s["default_auc"], s["default_auc_ci95"]),
            _auc(s["paired_difference"], s["paired_ci95"], signed=True),
            "[red]yes[/red]" if s["worse_beyond_interval"] else "no",
            str(s["winner_origin"] or "–"), f"{s['wall_s']:.0f}",
            "None" if share is None else f"{share:.0%}",
        )  # fmt: skip
    console.print(table)
    pool = Table(title="pooled over study seeds: mean of the paired differences")
    for column in ("set", "seeds", "mean", "t 95% CI", "bootstrap mean", "bootstrap 95% CI"):
        pool.add_column(column, justify="right")
    for name, p in result["pooled"].items():
        mean, boot = p["mean_difference"], p["bootstrap_mean_difference"]
        pool.add_row(
            name, ",".join(map(str, p["seeds"])), _auc(mean, None, True),
            _ci(p["t_ci95"], True), _auc(boot, None, True), _ci(p["bootstrap_ci95"], True),
        )  # fmt: skip
    console.print(pool)
    for note in result["notes"]:
        console.print(f"note: {note}", style="cyan")
    for target, met in result["targets"].items():
        console.print(f"{target}: " + ("[green]met[/green]" if met else "[red]not met[/red]"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(SETS), help=f"of {', '.join(SETS)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated study seeds")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--retrain-seeds", type=int, default=2)
    parser.add_argument("--shared-data", default=str(REPO.parent / "shared/data/covid-cxr"))
    parser.add_argument("--output", help="where the run folders go (default: a new temp dir)")
    parser.add_argument("--quick", action="store_true", help="demo, seed 0, 3×1 epoch, 64 px")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read a study whose run folder in --output already has summary.json instead of "
        "running it again (to add seeds or sets to an earlier benchmark)",
    )
    args = parser.parse_args()
    if args.quick:
        args.sets, args.seeds, args.trials, args.epochs = "demo", "0", 3, 1
        args.image_size, args.retrain_seeds = 64, 1
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if unknown := set(sets) - set(SETS):
        parser.error(f"--sets: unknown {', '.join(sorted(unknown))}; valid: {', '.join(SETS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.output = args.output or tempfile.mkdtemp(prefix="covidxr-tuning-gain-")
    notes: list[str] = [f"run folders in {args.output}"]
    studies: list[dict[str, Any]] = []
    for name in sets:
        data = data_folder(name, args)
        if data == "":
            notes.append(f"{name} skipped: {args.shared_data} is missing")
            continue
        studies += [run_study(args, name, data, seed) for seed in seeds]
    by_set = {n: [s for s in studies if s["set"] == n] for n in sets}
    result: dict[str, Any] = {
        "setup": {k: getattr(args, k) for k in ("trials", "epochs", "image_size", "retrain_seeds")}
        | {"sets": sets, "seeds": seeds, "n_boot_pooled": N_BOOT},
        "studies": studies,
        "pooled": {n: pooled(ss) for n, ss in by_set.items() if ss},
        "notes": notes,
    }
    decided = [s for s in studies if "error" not in s]
    means = [p["mean_difference"] for p in result["pooled"].values()]
    result["targets"] = {
        "no seed has tuned worse than default beyond its interval": bool(decided)
        and not any(s["worse_beyond_interval"] for s in decided),
        "pooled mean difference >= 0 for every data set": bool(means)
        and all(m is not None and m >= 0 for m in means),
    }
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
