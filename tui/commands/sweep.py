"""`rankwise sweep --preset P`: measure the rank instead of guessing it.

Short real runs over a grid of ranks (trainer/sweep.py), read by advisor/knee.py: a table,
a plot of validation loss against rank, the knee in words, the recommended rank and a
preset written with it. Progress goes to stderr; the result (or `--json`) to stdout.
Exit codes: 0 a rank was recommended, 1 no trial finished, 2 bad input, 130 interrupted
(re-run the same command to continue).
"""
from __future__ import annotations

import argparse
import sys

from .common import add_json, add_planning, hardware_from, print_json


def register(sub) -> None:
    p = sub.add_parser("sweep", help="short real runs over a grid of ranks; recommends the rank at the knee",
                       description="Train the preset briefly at each rank (same data, seed and steps; alpha held "
                                   "at the preset's value and the learning rate moved with rank as rankwise's one "
                                   "alpha/lr parametrisation says; --lrs tries a small learning-rate grid per rank), "
                                   "find the knee of validation loss against rank, and write a "
                                   "preset with the recommended rank. Trials are recorded in "
                                   "<runs-dir>/sweeps/<id>/trials.json: re-run the same command to resume.")
    p.add_argument("--preset", metavar="NAME|FILE", help="a shipped preset name or a YAML file (required)")
    p.add_argument("--set", dest="overrides", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="override a preset key for every trial, e.g. --set train.lr=1e-4 (repeatable)")
    p.add_argument("--ranks", metavar="R,R,...",
                   help="ranks to try (default 4,8,16,32,64, those above half the model's hidden size left out); "
                        "more can be added later to the same sweep")
    p.add_argument("--lrs", metavar="LR,LR,...",
                   help="a learning-rate grid per rank, e.g. 1e-4,2e-4,4e-4: each rank is compared at its best "
                        "(default: the preset's train.lr only)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N",
                        help="steps per trial (default: a quarter of the preset's max_steps, at least 10; "
                             "200 for a preset that trains by epochs)")
    length.add_argument("--minutes", type=float, metavar="M",
                        help="wall-clock cap per trial; ranks are compared at the last eval step all reached")
    p.add_argument("--refine", action="store_true", help="then try ranks around the best (16 → 12, 20, 24)")
    p.add_argument("--validate", action="store_true",
                   help="then train the top two (the recommended rank and the best other) for the preset's full "
                        "length and compare")
    p.add_argument("--threshold", type=float, default=0.02, metavar="F",
                   help="the knee: doubling the rank must improve validation loss by at least this (default 0.02)")
    p.add_argument("--no-prune", dest="prune", action="store_false",
                   help="run every trial to the end (default: stop trials >10%% worse than the best in their "
                        "second half)")
    p.add_argument("--sweep-dir", metavar="DIR", help="the sweep's folder (default <runs-dir>/sweeps/<id>)")
    p.add_argument("--storage", metavar="URL", help=argparse.SUPPRESS)  # gone with Optuna: exit 2 says what replaces it
    p.add_argument("--worker", action="store_true",
                   help="join a sweep started elsewhere (same preset and flags, the same --sweep-dir on a shared "
                        "filesystem): run queued trials, then exit; the starting command analyses")
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, metavar="DIR",
                   help="where the trials' runs are kept (default: output.dir, ./runs)")
    add_json(p)
    add_planning(p)
    p.set_defaults(func=run, preset_key="preset", set_key="overrides")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(rank: int, status: str, run_id: str | None, note: str | None) -> None:
    _say(f"  r={rank:<5} {status:<9} {run_id or ''}" + (f"  {note}" if note else ""))


def _slots(args) -> list[str | None]:
    """One trial per GPU in parallel; on CPU (or when planning for another machine) one at a time."""
    if getattr(args, "gpu_mem", None) or getattr(args, "gpu", None):
        return [None]
    from rankwise.advisor import hardware

    return slots_for(hardware.probe())


def slots_for(hw) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES for each parallel trial: one per GPU when there are several, else one
    slot that leaves the environment alone. (Indices are NVML's; with CUDA_VISIBLE_DEVICES already
    set to a subset, run one `--worker` per GPU instead.)"""
    return [str(g.index) for g in hw.gpus] if len(hw.gpus) > 1 else [None]


def _planned(p, ranks: list[int], args) -> str | None:
    from rankwise.advisor.errors import RankwiseError

    try:
        hw = hardware_from(args)
    except RankwiseError:
        return None
    return planned_words(p, ranks, hw, getattr(args, "price", None))


def planned_words(p, ranks: list[int], hw, price: float | None = None) -> str | None:
    """The queued trials' planned time and cost, summed (advisor/forecast.py, advisor/time.py);
    None when not plannable. The CLI's `plan:` line and the TUI's sweep confirmation."""
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.fit import assess
    from rankwise.advisor.forecast import data_lengths, forecast, sweep_cost
    from rankwise.advisor.model import load_model
    from rankwise.advisor.time import duration
    from rankwise.trainer import sweep

    if not ranks:
        return None
    try:
        spec = load_model(p.cfg.model.name)
        trials = []
        for r in ranks:
            c = sweep.trial_config(p, r)
            judged = assess(spec, c, hw, lengths=data_lengths(c, spec))  # as each trial's start judges it
            trials.append(forecast(spec, c, judged, hw, price=price, runs_dir=p.runs_dir))
    except RankwiseError:
        return None
    total = sweep_cost(trials)
    if any(f.time.total_s is None for f in trials):
        return None
    cost = f", cost ~{total['cost']:,.2f}" if total["cost"] is not None else ""
    capped = f" (each at most {p.minutes:g} min)" if p.minutes else ""
    return f"plan: {total['trials']} trials, ~{duration(total['total_s'])} of training in all{capped}{cost}"


def run(args) -> int:
    from rankwise.advisor import knee
    from rankwise.trainer import sweep

    from rankwise.advisor.errors import RankwiseError

    if not args.preset:
        raise RankwiseError("sweep needs a preset", "e.g. rankwise sweep --preset demo-cpu")
    ranks = sweep.parse_ranks(args.ranks) if args.ranks else None  # None: the default grid (sweep_plan.within_width)
    lrs = sweep.parse_lrs(getattr(args, "lrs", None))
    p = sweep.plan(args.preset, getattr(args, "overrides", None) or [], ranks, args.steps, args.minutes,
                   hardware_from(args), args.sweep_dir, getattr(args, "runs_dir", None), args.storage,
                   threshold=args.threshold, prune=args.prune, slots=_slots(args), lrs=lrs)
    from rankwise.trainer.start import check_inputs

    if p.cfg.lora.init_from and set(p.ranks) != {p.cfg.lora.r}:  # each trial would need an adapter of its rank
        raise RankwiseError(f"sweep over ranks {', '.join(map(str, p.ranks))} with lora.init_from: the trained adapter "
                            f"{p.cfg.lora.init_from} has one rank", "sweep new adapters (remove lora.init_from), or "
                            "continue this one with rankwise train (--lrs at its rank: --ranks with that rank alone)")
    for r in (min(p.ranks), max(p.ranks)):  # weights, data and error-level red flags: before any trial starts
        check_inputs(sweep.trial_config(p, r))
    new = sorted(set().union(*(sweep.enqueue(p, p.ranks, phase) for phase in p.phases())))
    length = f"{p.steps} steps" if p.steps and not p.minutes else f"{p.minutes:g} min" + (
        f" (at most {p.steps} steps)" if p.steps else "")
    lr_words = (f"learning rates {', '.join(f'{x:g}' for x in p.lrs)} at each rank (each rank at its best)"
                if len(p.lrs) > 1 else f"lr {sweep.trial_lr(p, p.cfg.lora.r):g}")
    _say(f"sweep {p.study_name}: ranks {', '.join(map(str, p.ranks))}, {length} each, alpha {p.alpha_value:g} at "
         f"every rank, {lr_words}")
    _say(f"  folder {p.sweep_dir}")
    done = [r for r in p.ranks if r not in new]
    if done:
        _say(f"  resuming: r={', '.join(map(str, sorted(done)))} already have a trial (finished, running or queued)")
    for r, why in p.skipped.items():
        _say(f"  r={r}: {why}")
    for note in p.notes:
        _say(f"  note: {note}")
    if len(p.slots) > 1:
        _say(f"  {len(p.slots)} GPUs: one trial per GPU in parallel")
    planned = _planned(p, new, args)
    if planned:
        _say(f"  {planned}")

    import threading

    writing = threading.Lock()  # with several GPUs, trials report from their own threads

    def partial() -> None:
        if not args.worker:
            with writing:
                cs, runs = sweep.best_curves(p)
                sweep.write_results(p, knee.analyse(cs, p.threshold), runs, "running")

    from rankwise.trainer import sweep_driver

    sweep_driver.stop_on_sigterm()  # `kill` and the TUI's stop end it as Ctrl-C does: the trial stopped and requeued
    if not args.worker:
        sweep_driver.record(p.sweep_dir)  # the Sweep screen finds the process to stop here
    try:
        partial()  # the Sweep screen shows the queued ranks at once
        for phase in p.phases():
            sweep.work(p, phase, _progress, wait_for_others=not args.worker, on_trial=partial)
        if args.worker:
            _say(f"worker done: no queued trial left in {p.study_name}; the starting command analyses")
            return 0
        cs, runs = sweep.best_curves(p)
        analysis = knee.analyse(cs, p.threshold)
        if args.refine and analysis.recommended_rank is not None:
            tested = [c.rank for c in cs]
            extra = [r for r in knee.refine_ranks(analysis.recommended_rank, tested)
                     if not sweep.fit_reason(p.cfg, r, hardware_from(args))]
            if extra:
                _say(f"refining around r={analysis.recommended_rank}: {', '.join(map(str, extra))}")
                p.ranks = sorted(set(p.ranks) | set(extra))
                for phase in p.phases():
                    sweep.enqueue(p, extra, phase)
                    sweep.work(p, phase, _progress, on_trial=partial)
                cs, runs = sweep.best_curves(p)
                analysis = knee.analyse(cs, p.threshold)
        validation = None
        if args.validate and analysis.recommended_rank is not None:
            _say("validating the top two ranks at the preset's full length")
            p.best_lrs = {r: run["lr"] for r, run in runs.items() if run.get("lr")}  # each at its best rate (--lrs)
            validation = sweep.validate_top_two(p, analysis, _progress)
    except (sweep.Interrupted, KeyboardInterrupt):  # KeyboardInterrupt: stopped between trials
        cs, runs = sweep.best_curves(p)
        sweep.write_results(p, knee.analyse(cs, p.threshold), runs, "interrupted")
        _say(f"interrupted: the running trial was stopped and queued again; re-run the same command "
             f"(--sweep-dir {p.sweep_dir}) to continue")
        return 130
    suffix = None
    if validation and validation.get("winner") is not None:
        suffix = validation_words(validation, analysis.recommended_rank)
        if validation["winner"] != analysis.recommended_rank:  # the full-length runs are the stronger evidence
            import dataclasses

            analysis = dataclasses.replace(analysis, recommended_rank=validation["winner"])
    data = sweep.write_results(p, analysis, runs, "done", validation, suffix)
    if args.json:
        print_json(data)
    else:
        from rich.console import Console

        from rankwise.tui.sweep_view import render

        for part in render(data):
            Console(soft_wrap=True).print(part, highlight=False)
    return 0 if data["recommended_rank"] is not None else 1


def validation_words(v: dict, short_pick: int | None) -> str:
    rows = v["runs"]
    parts = [f"r={r}: {row['val_loss']:.4f}" for r, row in rows.items() if row.get("val_loss") is not None]
    words = f"at the preset's full length validation loss was {', '.join(parts)}"
    if v["winner"] == short_pick:
        return words + f", which confirms r={short_pick}"
    return words + f": r={v['winner']} is better there, so r={v['winner']} is recommended"
