"""Generated bad input: how many inputs were tried and how many ended cleanly, per family.

Runs tests/faults/test_generated_input.py (hypothesis) with more examples than CI does and
prints "N tried, N ended cleanly" per family: clean = a valid result or a RankwiseError in
process; through the CLI, exit 0/2 (3 for check) with a message, no traceback, in bounded time,
and no run directory left behind by a rejected `train`.

    python3 bench/fault_figures.py                    # 600 in-process examples per test, 40 per CLI test
    python3 bench/fault_figures.py --examples 2000 --cli-examples 0   # in-process only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=600, help="hypothesis examples per in-process test")
    ap.add_argument("--cli-examples", type=int, default=40, help="examples per CLI (subprocess) test; 0 skips them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        env = {**os.environ, "RANKWISE_FAULT_EXAMPLES": str(args.examples),
               "RANKWISE_FAULT_CLI_EXAMPLES": str(max(1, args.cli_examples)), "RANKWISE_FAULT_FIGURES": str(figures)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "3600",
               str(ROOT / "tests" / "faults" / "test_generated_input.py")]
        if args.cli_examples == 0:
            cmd += ["-m", "not slow"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        took = time.perf_counter() - t0
        if not figures.exists():
            print(out.stdout[-4000:], out.stderr[-2000:])
            return 1
        table = json.loads(figures.read_text())
    tried = sum(v["tried"] for v in table.values())
    clean = sum(v["clean"] for v in table.values())
    print(f"generated bad input ({args.examples} in-process / {args.cli_examples} CLI examples per test, {took:.0f} s)")
    for family, v in table.items():
        print(f"  {family:42} {v['tried']:6} tried, {v['clean']:6} ended cleanly")
    print(f"  {'total':42} {tried:6} tried, {clean:6} ended cleanly ({100.0 * clean / max(tried, 1):.1f}%)")
    if out.returncode != 0:
        print("pytest reported failures (a generated input crashed):\n" + out.stdout[-3000:])
    return 0 if out.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
