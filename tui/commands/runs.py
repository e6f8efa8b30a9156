"""`rankwise runs`, `rankwise attach RUN`, `rankwise stop RUN`: runs seen from any terminal.

Everything reads the run directories (`trainer/runs.py`) and their event logs; a run keeps
training whatever these commands do, except `stop`, which asks it to checkpoint and end.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import add_json, print_json

DEFAULT_RUNS_DIR = "runs"


def _add_runs_dir(p: argparse.ArgumentParser) -> None:
    # the root parser has --runs-dir too; SUPPRESS keeps its value when given before the command
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, metavar="DIR", help="where runs are kept (default ./runs)")


def runs_dir_of(args) -> Path:
    return Path(getattr(args, "runs_dir", None) or DEFAULT_RUNS_DIR)


def register(sub) -> None:
    p = sub.add_parser("runs", help="list runs with their status, step and loss (newest first)")
    add_json(p)
    _add_runs_dir(p)
    p.set_defaults(func=run_list)

    p = sub.add_parser("attach", help="show a run's live progress panel (q or Ctrl-C detaches; the run goes on)")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    p.add_argument("--json-events", action="store_true", help="print each event as a JSON line instead of the panel")
    _add_runs_dir(p)
    p.set_defaults(func=run_attach)

    p = sub.add_parser("stop", help="ask a running run to save a checkpoint and stop")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    p.add_argument("--wait", action="store_true", help="wait until it has stopped")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="with --wait: give up after S seconds")
    _add_runs_dir(p)
    p.set_defaults(func=run_stop)


def run_list(args) -> int:
    from rankwise.trainer.runs import list_runs
    from rankwise.tui.formatting import fmt_age

    infos = list_runs(runs_dir_of(args))
    if args.json:
        print_json([i.to_dict() for i in infos])
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rankwise.tui.style import status_style

    console = Console()
    if not infos:
        console.print(f"No runs in {runs_dir_of(args)}. Start one with `rankwise train --preset demo-cpu`.")
        return 0
    show_eval = any(i.eval_loss is not None for i in infos)
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    table.add_column("id", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("loss", justify="right", no_wrap=True)
    if show_eval:
        table.add_column("eval", justify="right", no_wrap=True)
    table.add_column("started", justify="right", no_wrap=True)
    now = time.time()
    for i in infos:
        step = f"{i.step if i.step is not None else '-'}/{i.max_steps or '?'}"
        cells = [Text(i.id), Text(i.status, style=status_style(i.status)), step,
                 "-" if i.loss is None else f"{i.loss:.4f}"]
        if show_eval:
            cells.append("-" if i.eval_loss is None else f"{i.eval_loss:.4f}")
        cells.append(fmt_age(now - i.started if i.started else None) + (" ago" if i.started else ""))
        table.add_row(*cells)
    console.print(table)
    for i in infos:
        if i.note and i.status != "finished":
            console.print(Text(f"{i.id}: {i.note}", style="dim"))
    console.print(Text("started: how long ago each run started (the TUI's Runs says the same) · "
                       "`rankwise attach ID` shows one live", style="dim"))
    return 0


def run_attach(args) -> int:
    from rich.console import Console

    from rankwise.trainer.runs import find_run, run_info
    from rankwise.tui.terminal import follow

    run_dir = find_run(runs_dir_of(args), args.run)
    console = Console()
    end = follow(run_dir, console=console, json_events=args.json_events, detach_keys=True)
    info = run_info(run_dir)
    def say(msg: str) -> None:
        if args.json_events:  # stdout carries only JSON lines
            print(msg, file=sys.stderr)
        else:
            console.print(msg, highlight=False, markup=False)
    if end is None:
        if info.status == "running":
            say(f"detached from {info.id}; it keeps running (`rankwise attach {info.id}` to come back, "
                f"`rankwise stop {info.id}` to stop it)")
            return 0
        say(f"{info.id}: {info.status}" + (f" — {info.note}" if info.note else ""))
        return 1
    if end.get("status") != "finished":
        if end.get("status") == "interrupted":
            say(f"{info.id} was interrupted at step {end.get('step')}; `rankwise train --resume {info.id}` continues it")
        return 1
    return 0


def run_stop(args) -> int:
    from rankwise.trainer.runs import find_run, request_stop, run_info

    run_dir = find_run(runs_dir_of(args), args.run)
    pid = request_stop(run_dir)
    rid = run_dir.name
    print(f"asked {rid} to stop (SIGTERM to pid {pid}): it saves a checkpoint and ends as interrupted")
    if not args.wait:
        print(f"  `rankwise attach {rid}` to watch it finish, `rankwise train --resume {rid}` to continue later")
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        info = run_info(run_dir)
        if info.status != "running":
            print(f"{rid}: {info.status} at step {info.step}" + (f" ({info.note})" if info.note else ""))
            return 0 if info.status in ("interrupted", "finished") else 1
        time.sleep(0.5)
    print(f"{rid} is still running after {args.timeout:.0f}s (saving a large checkpoint can take minutes)",
          file=sys.stderr)
    return 1
