"""`rankwise check FILE`: red flags in a rankwise preset, an axolotl or a LLaMA-Factory config.
`rankwise check --data FILE`: the dataset as training sees it (tui/commands/datacheck.py).

Exit 0 when no error-level finding, 3 when one exists, 2 for bad input (unreadable file,
malformed YAML, invalid values: each named with file:line).
"""
from __future__ import annotations

import json

from rankwise.advisor.methods import METHOD_NAMES, label

from ..style import GOOD, SEVERITY_STYLE
from .common import add_json, add_planning, hardware_from, print_json



def register(sub) -> None:
    p = sub.add_parser("check", help="find red flags in a preset, axolotl or LLaMA-Factory config",
                       description="Check a config for risky combinations (rank/alpha/dropout/lr, memory fit, "
                                   "model shape, batch size). Reads rankwise presets, axolotl and LLaMA-Factory "
                                   "YAML. Exit 0: no errors; 3: error-level red flags; 2: bad input.")
    p.add_argument("file", metavar="FILE", nargs="?",
                   help="a YAML config (rankwise preset, axolotl or LLaMA-Factory) or a shipped preset name "
                        "(with --data: optional, gives the model, format and max_seq_len)")
    p.add_argument("--model", help="check against this model instead of the config's (catalog name or local folder)")
    p.add_argument("--method", choices=METHOD_NAMES, help="check as this method (default: the config's; auto "
                                                                 "resolves like `advise`)")
    from .datacheck import add_data_flags  # the --data branch lives beside, in datacheck.py

    add_data_flags(p)
    add_json(p)
    add_planning(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.data or not args.file:
        from .datacheck import run_data

        return run_data(args)
    from rankwise.advisor.errors import RankwiseError
    from rankwise.advisor.foreign import load_any
    from rankwise.advisor.model import load_model
    from rankwise.advisor.redflags import context, run_rules

    cfg, kind, notes = load_any(args.file)
    hw = hardware_from(args)
    name = args.model or cfg.model.name
    spec, skipped = None, None
    try:
        spec = load_model(name)
    except RankwiseError as e:
        if args.model:
            raise  # the user named it on the command line: a bad flag
        skipped = e.message + (f" ({e.hint})" if e.hint else "")
    ctx = context(cfg, spec, hw, args.method)
    findings = run_rules(ctx)
    errors = sum(f.severity == "error" for f in findings)
    if args.json:
        print_json({
            "file": args.file, "kind": kind, "model": name, "method": ctx.method, "method_note": ctx.method_note,
            "fit": ctx.fit, "estimate": ctx.estimate.to_dict() if ctx.estimate else None,
            "gpu_gib": round(hw.gpu_bytes / 1024 ** 3, 2) if hw.gpu_bytes else None,
            "findings": [f.to_dict() for f in findings], "notes": notes + ([skipped] if skipped else []),
            "errors": errors, "config": cfg.model_dump(mode="json"),
        })
        return 3 if errors else 0
    _render(args.file, kind, name, ctx, findings, notes, skipped, hw)
    return 3 if errors else 0


def _render(path, kind, name, ctx, findings, notes, skipped, hw) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    fit = ""
    if ctx.estimate is not None:
        where = f"{hw.gpu_bytes / 1024 ** 3:.0f} GiB GPU" if hw.gpu_bytes else "no GPU"
        per = ""
        if ctx.judged is not None and ctx.judged.gpus > 1:
            per = f" per GPU, {ctx.judged.gpus} GPUs as {ctx.judged.strategy.upper()}"
        fit = f", ~{ctx.estimate.peak_gib:.1f} GiB peak{per} ({ctx.fit} on {where})"
    console.print(f"[bold]{escape(str(path))}[/bold] ({kind}): {escape(name)}, {label(ctx.method)}{fit}")
    console.print(f"  [dim]{escape(ctx.method_note)}[/dim]")
    for note in notes + ([f"model not resolved: {skipped}"] if skipped else []):
        console.print(f"  [dim]note: {escape(note)}[/dim]")
    if not findings:
        console.print(f"[{GOOD}]no red flags[/{GOOD}]")
        return
    for f in findings:
        style = SEVERITY_STYLE[f.severity]
        console.print(f"\n[{style}]{f.severity.upper():7}[/{style}] [bold]{f.code}[/bold]: {escape(f.message)}")
        console.print(f"  why: {escape(f.why)}")
        console.print(f"  fix: {escape(f.fix)}")
        if f.patch:
            sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in f.patch.items())
            console.print(f"  [dim]{escape(sets)}[/dim]")
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITY_STYLE}
    console.print("\n" + ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()))
