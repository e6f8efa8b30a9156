"""`rankwise compare RUN [--prompts FILE] [--n 20] [--against RUN2] [--json]`: the adapter against
its base (or another run's adapter) on held-out rows: response loss, perplexity, generations."""
from __future__ import annotations

import sys
from pathlib import Path

from .chat import add_generation, settings_of
from .common import add_json, print_json
from .runs import _add_runs_dir, runs_dir_of


def register(sub) -> None:
    from rankwise.advisor.compare_plan import NEW_TOKENS, ROWS  # the planner prices these defaults

    p = sub.add_parser("compare", help="the adapter against its base on held-out rows: response perplexity and answers",
                       description="On the run's validation rows (split and masked exactly as training did) or a "
                                   "prompts file: the response loss and perplexity under the base and under the "
                                   "adapter, and both generations side by side. Exit 2: bad run id, no adapter, "
                                   "no held-out rows, --against a run of another base.")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    p.add_argument("--prompts", metavar="FILE", help="rows to compare on instead of the validation rows: a data file "
                                                     "(any training format; its responses are the references) or a "
                                                     ".txt file of prompts, one a line (answers only, no loss)")
    p.add_argument("--n", type=int, default=ROWS, metavar="N", help=f"compare on the first N rows (default {ROWS})")
    p.add_argument("--against", metavar="RUN2", help="also compare with this run's adapter (the same base model)")
    add_generation(p)
    p.set_defaults(temperature=0.0, max_new_tokens=NEW_TOKENS)  # greedy: a comparison should not depend on sampling luck
    add_json(p)
    p.add_argument("--progress", action="store_true",
                   help='progress as JSON lines on stderr, {"progress": {"stage": "load|base|adapter|against", '
                        '"done": K, "total": N}} (for programs: the TUI\'s compare view)')
    _add_runs_dir(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.trainer.chat import adapter_dir
    from rankwise.trainer.runs import find_run

    settings = settings_of(args)
    runs = runs_dir_of(args)
    run_dir = find_run(runs, args.run)
    adapter_dir(run_dir)
    against = find_run(runs, args.against) if args.against else None
    if against is not None:
        adapter_dir(against)
    if not args.json:
        print(f"comparing {run_dir.name} on {args.n} rows …", file=sys.stderr, flush=True)
    from rankwise.trainer.compare import compare

    result = compare(run_dir, args.n, Path(args.prompts) if args.prompts else None, against, settings,
                     progress=_progress_line if args.progress else None)
    if args.json:
        print_json(result)
        return 0
    show(result)
    return 0


def _progress_line(stage: str, done: int, total: int) -> None:
    import json

    print(json.dumps({"progress": {"stage": stage, "done": done, "total": total}}), file=sys.stderr, flush=True)


def show(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from rankwise.trainer.compare import summary

    console = Console()
    console.print(Text(summary(result)))
    names = ["base", "adapter"] + (["against"] if "against" in result else [])
    table = Table(show_lines=True, expand=True)
    table.add_column("prompt")
    table.add_column("reference")
    for name in names:
        table.add_column(result["against"] if name == "against" else name)
    for r in result["rows"]:
        cells = [r["prompt"], r["reference"] or ""]
        for name in names:
            loss = r.get(f"{name}_loss")
            cells.append((r.get(name) or "") + (f"\n(loss {loss:.3f})" if loss is not None else ""))
        table.add_row(*map(Text, cells))  # Text: prompts and answers are data, never markup
    console.print(table)
