"""The study card: the data and its leakage check, the search space, budget and hardware."""

from __future__ import annotations

from markupsafe import Markup

from tuning.efficiency import study_efficiency, study_slots
from tuning.leaderboard import stop_counts
from tuning.reporting.html import (
    Html,
    banner,
    bold,
    bullets,
    code,
    duration,
    fmt,
    grid,
    heading,
    join,
    key_values,
    missing,
    section,
    table,
    tag,
)
from tuning.reporting.sections.context import Context
from tuning.spec import StudySpec


def _data_part(ctx: Context) -> Markup:
    run = ctx.run
    data = run.data
    counts = (data.counts if data else None) or ctx.dataset_counts
    out: list[Html] = [heading("Data set")]
    source = (data.source if data else None) or (run.spec.data if run.spec else None)
    spec_size = run.spec.image_size if run.spec else "?"
    spec_channels = run.spec.channels if run.spec else "?"
    size = data.image_size if data and data.image_size is not None else spec_size
    channels = data.channels if data and data.channels is not None else spec_channels
    facts: list[tuple[Html, Html]] = [
        ("source", code(source or "synthetic demo")),
        (
            "kind",
            Markup('<span class="no">synthetic (generated images)</span>')
            if run.synthetic
            else "real radiographs",
        ),
        ("decoded as", f"{size} px, {channels} channel(s)"),
        ("positive class", (data.positive_class if data else None) or "?"),
    ]
    out.append(key_values(facts))
    if counts:
        classes = list(dict.fromkeys(c for split in counts.values() for c in split))
        rows: list[list[Html]] = [
            [split, *(str(n.get(c, 0)) for c in classes), str(sum(n.values()))]
            for split, n in counts.items()
        ]
        totals = [sum(n.get(c, 0) for n in counts.values()) for c in classes]
        rows.append([bold("all"), *(bold(t) for t in totals), bold(sum(totals))])
        out.append(
            table(
                ["split", *classes, "total"],
                rows,
                numeric=range(1, len(classes) + 2),
                table_id="data-counts",
                scroll=False,
                compact=True,
            )
        )
    else:
        out.append(missing("image counts unknown: " + run.notes.get("summary", "no summary.json")))
    if data and data.notes:
        out.append(bullets(data.notes))
    leak = ctx.leakage
    out.append(heading("Leakage check"))
    pairs = run.comparison.leakage if run.comparison is not None else ()
    if not leak.checked:
        out.append(missing(leak.explanation))
    elif leak.pairs:
        out.append(banner(f"Possible leakage: {leak.explanation}", "bad"))
        out.append(bullets(leak.pairs, code=True))
    else:  # green only when the verdict found no train-test pair either
        out.append(banner(leak.explanation, "info" if pairs else "good"))
    if pairs:
        out.append(
            banner(
                f"Train ↔ test leakage found by the verdict: {len(pairs)} radiograph(s) are "
                "in both the training and the test split, which inflates every test number.",
                "bad",
            )
        )
        out.append(bullets(pairs, code=True))
    return join(out)


def _space_part(ctx: Context) -> Markup:
    run = ctx.run
    out: list[Html] = [heading("Search space")]
    space = run.space
    if space is None:
        why = run.notes.get("space", run.notes.get("study", "?"))
        return join([*out, missing(f"search space unknown: {why}")])
    if space.description:
        out.append(Markup('<p class="caption">{}: {}</p>').format(space.name, space.description))
    rows: list[list[Html]] = [[code(p.name), p.type, p.describe()] for p in space.params]
    held = run.summary.held_fixed if run.summary is not None else {}
    if held:  # every value no trial changed: the space's base after `fixed`, and the budget
        rows += [[code(k), "held fixed", str(v)] for k, v in held.items()]
    else:
        rows += [[code(k), "fixed", str(v)] for k, v in space.fixed.items()]
    out.append(
        table(["parameter", "kind", "values"], rows, table_id="space", scroll=False, compact=True)
    )
    early = run.summary.early_stopping if run.summary is not None else None
    if early:
        out.append(Markup('<p class="caption">Early stopping: {}</p>').format(early.get("why")))
    race = run.summary.race if run.summary is not None else None
    if race and race.get("line"):
        out.append(heading("The race: what is handed back"))
        out.append(banner(race["line"], "info" if race.get("beat_default") else "warn"))
        entrants = [
            [
                code(e["key"]),
                e["origin"],
                ", ".join(f"{v:.3f}" for v in e["scores"]),
                f"{e['mean']:.3f}",
                f"{e['std']:.3f}",
                f"{e['bound']:.3f}",
            ]
            for e in race.get("entrants", [])
        ]
        out.append(
            table(
                ["entrant", "origin", "validation per seed", "mean", "std", "lower bound"],
                entrants,
                table_id="race",
                scroll=False,
                compact=True,
            )
        )
        wall = race.get("wall_s")
        out.append(
            Markup(
                '<p class="caption">Rule: {}. The seeds (race and baselines) took {}; test '
                "was read by none of it.</p>"
            ).format(race.get("rule", ""), duration(wall) if wall is not None else "?")
        )
    return join(out)


def engine_label(spec: StudySpec) -> str:
    """The search engine in words."""
    if spec.engine == "ray":
        return "Ray Tune + Optuna TPE + ASHA"
    return f"KerasTuner ({spec.tuner})"


def _budget_part(ctx: Context) -> Markup:
    run, spec = ctx.run, ctx.run.spec
    out: list[Html] = [heading("Budget and hardware")]
    if spec is None:
        return join([*out, missing("study.json missing: " + run.notes.get("study", ""))])
    counts = stop_counts(run.rows)
    hardware = run.summary.hardware if run.summary else None
    gpu_fraction = next(
        (r.gpu_fraction for r in run.rows if r.gpu_fraction is not None), spec.gpus_per_trial
    )
    workers = {(r.node_id, r.pid) for r in run.rows if r.pid}
    nodes_used = {r.node_id for r in run.rows if r.node_id}
    on_ray = spec.engine == "ray"
    budget: list[tuple[Html, Html]] = [
        ("trials", f"{spec.trials} requested, {len(run.rows)} recorded"),
        ("outcome", join((join([tag(k), f" {v}"]) for k, v in counts.items() if v), " ")),
        ("search engine", engine_label(spec)),
        (
            "epochs per trial",
            f"{spec.epochs} (ASHA may stop a trial after {spec.grace_epochs})"
            if on_ray
            else str(spec.epochs),
        ),
        ("optimised metric", f"{spec.metric} ({spec.mode})"),
        ("images", f"{spec.image_size} px, {spec.channels} channel(s)"),
        (
            "retrain",
            f"{spec.retrain_seeds} seed(s) each for the winner, the sensible default and "
            "the recipe; "
            f"{spec.n_boot} bootstrap resamples for intervals"
            if spec.retrain_seeds
            else "none (--retrain-seeds 0): no test-split comparison",
        ),
        ("wall time", duration(run.summary.wall_s if run.summary else None)),
        ("study efficiency", _efficiency_text(ctx)),
    ]
    nodes = hardware.nodes if hardware and hardware.nodes is not None else "?"
    hw: list[tuple[Html, Html]] = [
        ("Ray nodes", f"{nodes} alive at the end; {len(nodes_used)} ran trials"),
        (
            "CPUs / GPUs",
            f"{fmt(hardware.cpus if hardware else None, 0)} / "
            f"{fmt(hardware.gpus if hardware else None, 0)}",
        ),
        ("per trial", f"{fmt(spec.cpus_per_trial, 2)} CPU, {fmt(gpu_fraction, 2)} GPU"),
        ("worker processes", str(len(workers))),
    ]
    if "summary" in run.notes:
        hw.append(("note", run.notes["summary"] + " (the study did not finish?)"))
    out.append(grid([key_values(budget), key_values(hw)]))
    return join(out)


def _efficiency_text(ctx: Context) -> str:
    """Training time over search time (tuning.efficiency), and the overhead per trial."""
    run, spec = ctx.run, ctx.run.spec
    assert spec is not None
    hardware = run.summary.hardware if run.summary else None
    hw = {"cpus": hardware.cpus or 0, "gpus": hardware.gpus or 0} if hardware else None
    slots = study_slots(spec, hw)
    found = study_efficiency(run.rows, run.summary.search_wall_s if run.summary else None, slots)
    if found["study_efficiency"] is None:
        return "not known (needs trials with two or more epochs and the search wall time)"
    overhead = found["overhead_s_per_trial"]
    return (
        f"{found['study_efficiency']:.2f}: training {found['compute_s']:.1f} s per slot "
        f"({slots} slot(s)) of a {found['search_wall_s']:.1f} s search; overhead "
        + (f"{overhead:.1f} s" if overhead is not None else "not known")
        + " per trial (wall minus epochs x steady epoch time; "
        f"{found['trials_counted']} trials with 2+ epochs)"
        + (
            f"; {found['reused_program']} of {found['reused_known']} trials reused compiled "
            "steps an earlier trial on their worker traced"
            if found["reused_known"]
            else ""
        )
    )


def study(ctx: Context) -> Markup:
    body = join([_data_part(ctx), _space_part(ctx), _budget_part(ctx)])
    return section(
        "study",
        "The study",
        body,
        "What was searched, on which data, with what budget and hardware.",
    )


__all__ = ["engine_label", "study"]
