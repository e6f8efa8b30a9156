"""`rankwise cache [--clear]`: the tokenized datasets kept for re-runs, resumes and sweep trials."""
from __future__ import annotations

import argparse
import time

from rankwise.advisor.units import gib

from .common import add_json, print_json


def register(sub) -> None:
    p = sub.add_parser("cache", help="list (or --clear) the tokenized datasets kept between runs",
                       description="Training tokenizes data.path once per file content, tokenizer and data "
                                   "settings and keeps the result; re-runs, --resume and sweep trials read it. "
                                   "The folder is $RANKWISE_DATA_CACHE (default <runs dir>/.data-cache).")
    p.add_argument("--clear", action="store_true", help="remove every cached dataset")
    # the root parser has --runs-dir too; SUPPRESS keeps its value when given before the command
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, metavar="DIR",
                   help="the runs directory whose .data-cache to list (default ./runs)")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.trainer.data_cache import cache_root, clear, entries  # light: no torch

    root = cache_root(getattr(args, "runs_dir", None))
    if args.clear:
        n, freed = clear(root)
        if args.json:
            print_json({"dir": str(root), "removed": n, "bytes": freed})
        else:
            print(f"removed {n} cached dataset{'s' if n != 1 else ''} ({gib(freed):.2f} GiB) from {root}")
        return 0
    found = entries(root)
    if args.json:
        print_json({"dir": str(root), "entries": found})
        return 0
    print(f"data cache: {root}" + ("" if found else " (empty)"))
    for e in found:
        age = time.time() - (e["created"] or time.time())
        print(f"  {e['dir']}  {e['train_rows'] or '?'} rows  {gib(e['bytes']):.2f} GiB  "
              f"{age / 3600:.1f} h old  from {e['data_path']}")
    if found:
        print(f"{len(found)} cached; `rankwise cache --clear` removes them (set RANKWISE_DATA_CACHE to move the folder)")
    return 0
