"""`rankwise presets`: every shipped preset, and whether it fits this machine (or a declared one).

For each preset: its description, model, method and rank; the estimator's peak memory and
fit verdict on the probed GPU or the one given with --gpu/--gpu-mem/--gpus; and its red-flag
counts — the same method choice, estimate and rules as `rankwise check` (a preset with
`method: auto` shows what auto picks on that hardware). A preset whose model is a local
folder (demo-cpu) is estimated from that folder's config.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

from ..overrides import check_overrides
from ..style import FIT_LABEL, fit_style, message_style
from .common import add_json, add_planning, hardware_from, print_json

SEV_SHORT = {"error": "error", "warning": "warn", "info": "info"}


def register(sub) -> None:
    p = sub.add_parser("presets", help="list shipped presets with their fit on this (or a declared) GPU",
                       description="List the shipped presets: what each is for, its model, method and rank, "
                                   "whether it fits the GPU (probed, or declared with --gpu/--gpu-mem/--gpus) "
                                   "and its red-flag counts. Launch one with `rankwise train --preset NAME`.")
    p.add_argument("--set", dest="overrides", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE",
                   help="override a key in every preset, e.g. --set train.max_seq_len=4096 (repeatable)")
    add_json(p)
    add_planning(p)
    p.set_defaults(func=run, set_key="overrides")


def describe(name: str, path: Path, hw, price: float | None = None, overrides: list[str] | tuple = ()) -> dict:
    """One preset's row. A preset that does not load is reported, not fatal: the list still shows."""
    from rankwise.advisor import redflags
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.model import load_model

    row = {"name": name, "path": str(path), "description": None, "model": None, "method": None, "rank": None,
           "fit": None, "peak_gib": None, "findings": None, "finding_codes": None, "error": None}
    try:
        cfg = load_config(path, list(overrides))  # the TUI's `rankwise --set` applies to every preset
        row.update(description=cfg.description, model=cfg.model.name, rank=cfg.lora.r, method=cfg.method)
        spec = load_model(cfg.model.name)
        from rankwise.advisor.forecast import data_lengths

        # the same method choice and estimate as `rankwise check`: at the data's longest row when it is here
        ctx = redflags.context(cfg, spec, hw, lengths=data_lengths(cfg, spec))
        found = redflags.run_rules(ctx)
        counts: dict[str, int] = {}
        for f in found:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        row.update(method=ctx.method, fit=ctx.fit, findings=counts,
                   finding_codes=[f"{f.severity}:{f.code}" for f in found],
                   peak_gib=round(ctx.estimate.peak_gib, 3) if ctx.estimate is not None else None)
        if ctx.judged is not None:
            row.update(strategy=ctx.judged.strategy, gpus=ctx.judged.gpus)
            if ctx.judged.lengths is not None:
                row["lengths"] = ctx.judged.lengths.to_dict()
            from rankwise.advisor.forecast import forecast

            ahead = forecast(spec, cfg, ctx.judged, hw, price=price)
            row.update(ahead.to_dict())
        if cfg.method == "auto":
            row["method_setting"] = "auto"
    except RankwiseError as e:
        row["error"] = e.message.splitlines()[0]
    return row


def _time_text(t: dict) -> str:
    """~1h 20m (400 steps) · cost ~2.39, or 3.1 s/step when the steps are not known."""
    from rankwise.advisor.time import duration, per_step

    if t["total_s"] is None:
        return f"time {per_step(t['step_s'])}"
    out = f"time ~{duration(t['total_s'])} ({t['steps']:,} steps)"
    return out + (f" · cost ~{t['cost']['total']:,.2f}" if t.get("cost") else "")


def _short_model(name: str | None) -> str:
    if not name:
        return "?"
    p = Path(name)
    return p.name if p.is_absolute() else name


def run(args) -> int:
    from rankwise.advisor.presets import shipped

    hw = hardware_from(args)
    overrides = check_overrides(getattr(args, "overrides", None) or [])  # a wrong key: exit 2, not an error per row
    rows = [describe(name, path, hw, getattr(args, "price", None), overrides) for name, path in shipped().items()]
    if args.json:
        print_json(rows)
        return 0
    from rich.console import Console
    from rich.padding import Padding
    from rich.text import Text

    console = Console()
    if not rows:
        console.print("No shipped presets found.")
        return 0
    if hw.gpus:
        console.print(f"Fit on {len(hw.gpus)}× {hw.gpus[0].name} ({hw.gpu_bytes / 1024 ** 3:.0f} GiB each, {hw.source}):")
    else:
        console.print("No GPU here: peaks shown, fit not judged (plan for one with --gpu L4 or --gpu-mem 24GiB).")
    width = max(len(r["name"]) for r in rows)
    console.print(Text(f"{'preset'.ljust(width)}  {'method'.ljust(12)}{'peak/GPU'.rjust(9)}  {'fit'.ljust(9)} red flags",
                       style="bold"))
    for r in rows:
        line = Text(r["name"].ljust(width), style="bold")
        if r["error"]:
            line.append("  error: " + r["error"], style=message_style("error"))
        else:
            method = r["method"] + ("(auto)" if r.get("method_setting") == "auto" else "")
            line.append(f"  {method} r={r['rank']}".ljust(14))
            line.append(f"{r['peak_gib']:5.1f} GiB  " if r["peak_gib"] is not None else "      ?    ")
            line.append(FIT_LABEL.get(r["fit"], "?").ljust(9), style=fit_style(r["fit"]))
            if r["findings"] is not None:
                counts = ", ".join(f"{r['findings'][sev]} {SEV_SHORT[sev]}" for sev in SEV_SHORT
                                   if r["findings"].get(sev))
                line.append(" " + (counts or "none"), style="yellow" if counts else "dim")
        console.print(line, overflow="fold")
        detail = Text(r["description"] or "(no description)", style="dim")
        detail.append(f"\nmodel: {_short_model(r['model'])}", style="dim")
        if r.get("time"):
            detail.append(f" · {_time_text(r['time'])}", style="dim")
        console.print(Padding(detail, (0, 0, 0, 2), expand=False))
    console.print("[dim]peak: estimated memory per GPU (`rankwise estimate --preset NAME` for the parts). "
                  "Run one: `rankwise train --preset NAME`.[/dim]")
    return 0
