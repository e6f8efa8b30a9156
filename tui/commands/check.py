"""`rankwise check FILE`: red flags in a rankwise preset, an axolotl, a LLaMA-Factory or a TRL config.
`rankwise check --data FILE`: the dataset as training sees it (tui/commands/datacheck.py).

Exit 0 when no error-level finding, 3 when one exists, 2 for bad input (unreadable file,
malformed YAML, invalid values: each named with file:line).
"""
from __future__ import annotations

import json

from rankwise.advisor.fit import STRATEGY_NAMES
from rankwise.advisor.methods import METHOD_NAMES, label

from ..style import GOOD, SEVERITY_STYLE
from .common import (add_json, add_launcher, add_planning, hardware_from, launcher_from, launcher_note, print_json,
                     with_launcher)



def register(sub) -> None:
    p = sub.add_parser("check", help="find red flags in a preset, axolotl, LLaMA-Factory or TRL config",
                       description="Check a config for risky combinations (rank/alpha/dropout/lr, memory fit, "
                                   "model shape, batch size). Reads rankwise presets, axolotl, LLaMA-Factory and TRL "
                                   "YAML. Exit 0: no errors; 3: error-level red flags; 2: bad input.")
    p.add_argument("file", metavar="FILE", nargs="?",
                   help="a YAML config (rankwise preset, axolotl, LLaMA-Factory or TRL) or a shipped preset name "
                        "(with --data: optional, gives the model, format and max_seq_len)")
    p.add_argument("--model", help="check against this model instead of the config's (catalog name or local folder)")
    p.add_argument("--method", choices=METHOD_NAMES, help="check as this method (default: the config's; auto "
                                                                 "resolves like `advise`)")
    p.add_argument("--set", dest="check_set", action="append", default=[], metavar="KEY=VALUE",
                   help="try a fix: the file's own key (lora_alpha=32, peft_config.r=16) or a rankwise key "
                        "(lora.alpha=32); repeatable")
    p.add_argument("--require-fit", action="store_true",
                   help="a gate for scripts: exit 3 when the memory fit could not be checked (model unknown "
                        "offline, no GPU declared)")
    from .datacheck import add_data_flags  # the --data branch lives beside, in datacheck.py

    add_data_flags(p)
    add_json(p)
    add_launcher(p)
    add_planning(p)
    p.set_defaults(func=run, preset_key="file", set_key="check_set")


def run(args) -> int:
    if args.data or not args.file:
        from .datacheck import run_data

        return run_data(args)
    from rankwise.advisor.foreign import read
    from rankwise.advisor.foreign.report import judge

    launch = launcher_from(args)  # before hardware_from: its process count is the GPUs when --gpus is not given
    overrides = (launch.overrides() if launch else []) + args.check_set  # --set wins over the launcher's
    report = judge(with_launcher(read(args.file, overrides), launch), hardware_from(args), args.model, args.method)
    report.notes[:0] = launcher_note(args, launch)
    gate = 3 if report.errors or (args.require_fit and not report.fit_checked) else 0
    if args.json:
        r, ctx, full = report.reading, report.ctx, report.full
        hw = hardware_from(args)
        print_json({
            "file": args.file, "kind": r.kind, "layout": r.layout, "model": report.model,
            "method": report.method, "method_note": report.method_note,
            "full_finetune": {**full.to_dict(), "time": report.full_time.to_dict() if report.full_time else None,
                              "host_ram": report.full_host.to_dict() if report.full_host else None}
            if full else None, "fit": report.fit, "fit_checked": report.fit_checked,
            "unchecked_reason": report.unchecked_reason, "fit_basis": report.fit_basis,
            "fit_bound": report.bound.to_dict() if report.bound else None,
            "estimate": ctx.estimate.to_dict() if ctx.estimate and not full else None,
            "lengths": ctx.lengths.to_dict() if ctx.lengths else None,  # the data's, the estimate at its longest row
            "gpu_gib": round(hw.gpu_bytes / 1024 ** 3, 2) if hw.gpu_bytes else None,
            "findings": report.findings, "notes": report.notes + ([report.unresolved] if report.unresolved else []),
            "unread": r.unread, "blank": r.blank, "errors": report.errors, "config": r.cfg.model_dump(mode="json"),
        })
        return gate
    _render(args, report, hardware_from(args))
    return gate


def _plain(value):
    """A value as a user writes it on the command line: 32, not 32.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _render(args, report, hw) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    r, ctx = report.reading, report.ctx
    fit = ""
    where = f"{hw.gpu_bytes / 1024 ** 3:.0f} GiB GPU" if hw.gpu_bytes else "no GPU"
    if report.full is not None:
        f = report.full
        per = f" per GPU, {f.gpus} GPUs" if f.gpus > 1 else ""
        if f.peak is not None and f.basis == "full-estimate":
            floor = f"~{f.peak / 1024 ** 3:.1f} GiB peak{per}"
        else:
            floor = f"at least {f.bytes / 1024 ** 3:.1f} GiB{per} before activations"
        fit = f", {floor} ({report.fit or 'fit not checked'} on {where})"
    elif ctx.estimate is not None:
        per = ""
        if ctx.judged is not None and ctx.judged.gpus > 1:
            per = f" per GPU, {ctx.judged.gpus} GPUs as {STRATEGY_NAMES[ctx.judged.strategy]}"
        fit = f", ~{ctx.estimate.peak_gib:.1f} GiB peak{per} ({ctx.fit} on {where})"
    elif report.bound is not None and report.bound.stand_ins:
        b = report.bound
        fit = f", {b.range_text()} peak, approximate ({b.verdict or 'undecided'} on {where})"
    method = (report.full.what.removeprefix("a ") if report.full else
              "full fine-tune" if report.method == "full" else label(ctx.method))
    console.print(f"[bold]{escape(str(args.file))}[/bold] ({r.kind}): {escape(report.model)}, {method}{fit}")
    console.print(f"  [dim]{escape(report.method_note)}[/dim]")
    if report.bound is not None:
        console.print(f"  [dim]{escape(report.bound.basis())}[/dim]")
    for note in report.notes + ([f"model not resolved: {report.unresolved}"] if report.unresolved else []):
        console.print(f"  [dim]note: {escape(note)}[/dim]")
    for f in report.findings:
        style = SEVERITY_STYLE[f["severity"]]
        at = ", ".join(f"{k['key']}" + (f" (line {k['line']})" if k.get("line") else f" ({k['default']})"
                                        if k.get("default") else "") for k in f.get("keys", []))
        console.print(f"\n[{style}]{f['severity'].upper():7}[/{style}] [bold]{f['code']}[/bold]: {escape(f['message'])}")
        if at and r.tool is not None:
            console.print(f"  at: {escape(r.source)}: {escape(at)}")
        console.print(f"  why: {escape(f['why'])}")
        console.print(f"  fix: {escape(f['fix'])}")
        if f.get("set"):
            sets = " ".join(f"--set {k}={json.dumps(_plain(v), separators=(',', ':'))}" for k, v in f["set"].items())
            console.print(f"  [dim]{escape(sets)}[/dim]")
    counts = {s: sum(f["severity"] == s for f in report.findings) for s in SEVERITY_STYLE}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items())
    if not report.findings:
        console.print(f"[{GOOD}]no red flags[/{GOOD}]")
    fit_said = ("fit checked" + (" (approximate, from the name's size)" if report.fit_basis == "name-size" else "")
                if report.fit_checked else f"fit NOT checked: {report.unchecked_reason}")
    gate = " (--require-fit: exit 3)" if args.require_fit and not report.fit_checked else ""
    console.print(("\n" if report.findings else "") + f"{summary}; {escape(fit_said)}{gate}")
