"""`rankwise chat RUN`: a terminal chat with a run's adapter (or its base, or both side by side).

In the chat: `/adapter`, `/base`, `/both` switch who answers, `/reset` forgets the
conversation, `/quit` (or Ctrl-D) leaves. `--prompt TEXT` prints one answer and exits.
"""
from __future__ import annotations

import sys

from .runs import _add_runs_dir, runs_dir_of

MODES = ("adapter", "base", "both")
HELP = "/adapter, /base, /both switch who answers; /reset forgets the conversation; /quit leaves"


def add_generation(p) -> None:
    from rankwise.trainer.generation import Settings

    d = Settings()
    g = p.add_argument_group("generation")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, metavar="N", help=f"default {d.max_new_tokens}")
    g.add_argument("--temperature", type=float, default=d.temperature,
                   help=f"0 = greedy, the same answer every time (default {d.temperature})")
    g.add_argument("--top-p", type=float, default=d.top_p, help=f"default {d.top_p}")
    g.add_argument("--seed", type=int, default=d.seed, help=f"sampling seed (default {d.seed})")


def settings_of(args):
    from rankwise.advisor.errors import RankwiseError
    from rankwise.trainer.generation import Settings

    if args.max_new_tokens < 1 or args.temperature < 0 or not 0 < args.top_p <= 1:
        raise RankwiseError("bad generation settings", "--max-new-tokens ≥ 1, --temperature ≥ 0, 0 < --top-p ≤ 1")
    return Settings(args.max_new_tokens, args.temperature, args.top_p, args.seed)


def register(sub) -> None:
    p = sub.add_parser("chat", help="chat with a run's adapter (/base, /adapter, /both switch; --prompt for one answer)",
                       description="Chat with a run's adapter, loaded on its base as the run trained it (4-bit for "
                                   f"QLoRA). {HELP}. Exit 2: bad run id or no adapter.")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--base", action="store_true", help="start with the base model answering (no adapter)")
    who.add_argument("--both", action="store_true", help="start with both answering, side by side")
    p.add_argument("--checkpoint", type=int, metavar="N", help="the adapter of checkpoint N instead of the final one")
    p.add_argument("--prompt", metavar="TEXT", help="print one answer to TEXT and exit")
    p.add_argument("--serve", action="store_true",
                   help="JSON lines for programs (the TUI's chat screen): {\"prompt\": TEXT, \"who\": "
                        "\"adapter|base|both\"} a line on stdin; ready, token, done and error lines on stdout")
    add_generation(p)
    _add_runs_dir(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.trainer.chat import Bench, adapter_dir
    from rankwise.trainer.runs import find_run

    settings = settings_of(args)
    run_dir = find_run(runs_dir_of(args), args.run)
    if args.serve:
        from rankwise.trainer.chat_serve import serve

        return serve(run_dir, args.checkpoint, settings)
    adapter_dir(run_dir, args.checkpoint)  # bad input before the slow load
    mode = "base" if args.base else "both" if args.both else "adapter"
    tty = sys.stdin.isatty() and args.prompt is None
    if tty:
        print(f"loading {run_dir.name} …", file=sys.stderr, flush=True)
    bench = Bench.open(run_dir, args.checkpoint)
    if args.prompt is not None:
        turn(bench, [], args.prompt, mode, settings)
        return 0
    print(f"{run_dir.name}: {mode} answers. {HELP}.", file=sys.stderr, flush=True)
    history: list[dict] = []
    while True:
        try:
            line = input("you> " if tty else "")
        except EOFError:
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd = text[1:].lower()
            if cmd in ("quit", "exit", "q"):
                return 0
            if cmd in MODES:
                mode = cmd
                print(f"[{mode} answers]", file=sys.stderr, flush=True)
            elif cmd == "reset":
                history = []
                print("[conversation forgotten]", file=sys.stderr, flush=True)
            else:
                print(f"unknown command {text!r}: {HELP}", file=sys.stderr, flush=True)
            continue
        reply = turn(bench, history, text, mode, settings)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]


def turn(bench, history: list[dict], text: str, mode: str, settings) -> str:
    """One answer (streamed) or both (side by side); returns the text the conversation keeps."""
    messages = history + [{"role": "user", "content": text}]
    if mode != "both":
        print(f"{mode}> ", end="", flush=True)
        reply = bench.answer(messages, adapter=mode == "adapter", settings=settings,
                             on_text=lambda t: print(t, end="", flush=True))
        print(flush=True)
        return reply
    base = bench.answer(messages, adapter=False, settings=settings)
    adapter = bench.answer(messages, adapter=True, settings=settings)
    print(side_by_side(base, adapter), flush=True)
    return adapter


def side_by_side(base: str, adapter: str) -> str:
    """Two columns on a terminal; labelled blocks when the output is a pipe (whole lines for scripts)."""
    if not sys.stdout.isatty():
        return f"base> {base.strip()}\nadapter> {adapter.strip()}"
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, expand=True)
    table.add_column("base")
    table.add_column("adapter")
    table.add_row(Text(base.strip()), Text(adapter.strip()))  # Text: a model's "[b]" is not markup
    console = Console()
    with console.capture() as cap:
        console.print(table)
    return cap.get().rstrip("\n")
