"""`rankwise doctor RUN`: what is wrong with a run, running or finished, and what to change.

Reads the run's event log (and its config.yaml, for concrete fixes) and asks advisor/doctor.py.
Exit 0: no error-level diagnosis; 3: one or more; 2: bad run id (as `attach` resolves it).
"""
from __future__ import annotations

import json

from .common import add_json, print_json
from .runs import _add_runs_dir, runs_dir_of


def register(sub) -> None:
    p = sub.add_parser("doctor", help="diagnose a run from its event log: NaN, flat or spiking loss, overfitting, ...",
                       description="Diagnose a run (running or finished) from its events.jsonl: each diagnosis "
                                   "says what was seen, at which step, the numbers, why, and the fix. "
                                   "Exit 0: no error-level diagnosis; 3: one or more; 2: bad run id.")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    add_json(p)
    _add_runs_dir(p)
    p.set_defaults(func=run)


def examine(run_dir) -> tuple[object, list]:
    """(the run's RunInfo, its diagnoses): what `doctor` prints, for any caller."""
    from rankwise.advisor.doctor import diagnose
    from rankwise.advisor.errors import RankwiseError
    from rankwise.trainer.events import EVENTS_FILE, read_events
    from rankwise.trainer.rundir import load_config
    from rankwise.trainer.runs import run_info

    try:
        cfg = load_config(run_dir)
    except (RankwiseError, OSError):
        cfg = None  # a damaged or missing config.yaml: the diagnoses stand, the patches are relative
    return run_info(run_dir), diagnose(read_events(run_dir / EVENTS_FILE), cfg)


def run(args) -> int:
    from rankwise.trainer.runs import find_run

    run_dir = find_run(runs_dir_of(args), args.run)
    info, found = examine(run_dir)
    code = 3 if any(d.severity == "error" for d in found) else 0
    if args.json:
        print_json({"run": info.id, "status": info.status, "step": info.step, "max_steps": info.max_steps,
                    "diagnoses": [d.to_dict() for d in found], "stopped_by": _stopped(info)})
        return code
    _render(info, found)
    return code


def _render(info, found) -> None:
    from rich.console import Console
    from rich.markup import escape

    from rankwise.tui.style import SEVERITY_MARK, severity_style, status_style

    console = Console(highlight=False, soft_wrap=True)  # file:line stays on one line (grep, editors)
    step = f"step {info.step if info.step is not None else '-'}/{info.max_steps or '?'}"
    console.print(f"[bold]{escape(info.id)}[/bold] [{status_style(info.status)}]{info.status}[/] {step}")
    stopped = _stopped(info)
    if stopped:
        kept = (info.summary or {}).get("adapter_from") or {}
        switch = "train.stop_on_nan" if stopped.get("code") == "loss-nan" else "train.stop_on"
        console.print(f"  stopped by {escape(str(stopped.get('code')))} at step {stopped.get('step')} ({switch}); "
                      f"adapter from {escape(str(kept.get('checkpoint') or 'the model at the stop'))}")
    if not found:
        console.print("[green]no diagnoses: nothing in the log looks wrong[/green]")
        return
    for d in found:
        style = severity_style(d.severity)
        at = f" at step {d.step}" if d.step is not None else ""
        console.print(f"\n[{style}]{SEVERITY_MARK[d.severity]} {d.severity.upper():7}[/] [bold]{d.code}[/bold]{at}: "
                      f"{escape(d.message)}")
        if d.evidence:
            console.print("  [dim]" + escape(", ".join(f"{k} {v}" for k, v in d.evidence.items())) + "[/dim]")
        console.print(f"  why: {escape(d.why)}")
        console.print(f"  fix: {escape(d.fix)}")
        if d.patch:
            sets = " ".join(f"--set {k}={json.dumps(v)}" for k, v in d.patch.items())
            console.print(f"  [dim]{escape(sets)}[/dim]")


def _stopped(info) -> dict | None:
    """What summary.json says stopped the run (train.stop_on / stop_on_nan), if the doctor did."""
    stopped = (info.summary or {}).get("stopped_by")
    return stopped if isinstance(stopped, dict) else None
