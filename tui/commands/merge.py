"""`rankwise merge RUN [--out DIR]`: the run's adapter merged into its base, as a standalone model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("merge", help="merge a finished run's adapter into the base model (a standalone model folder)")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or run directory")
    p.add_argument("--out", metavar="DIR", help="where to write the merged model (default RUN_DIR/merged; must be new or empty)")
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, help="where runs are kept (default ./runs)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rankwise.trainer.merge import check_out
    from rankwise.trainer.rundir import DEFAULT_RUNS_DIR
    from rankwise.trainer.runs import find_run

    run_dir = find_run(Path(getattr(args, "runs_dir", None) or DEFAULT_RUNS_DIR), args.run)
    out = Path(args.out).expanduser() if args.out else run_dir / "merged"
    check_out(out)  # before the slow imports
    print(f"merging {run_dir.name} into {out} …", file=sys.stderr, flush=True)
    from rankwise.trainer.merge import merge

    merge(run_dir, out)
    print(out)
    return 0
