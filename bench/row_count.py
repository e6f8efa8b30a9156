"""What counting a big file's rows costs a plan, beside reading them all.

The plans (advise, estimate, the Advice screen, train's start line) read a file's first 20,000 rows for its lengths
and count the rest without parsing them (advisor/dataset.py `count_rows`), so a big file is planned whole rather than
as a lower bound. This script writes an instruction JSONL of N rows (default 1,000,000, ~125 MB) into a temporary
folder and times, in one process each (no memo between them):
- count: `count_rows` (newlines counted in 16 MiB reads);
- quick scan: `scan(limit=20,000)`, the count included;
- full scan: `scan()` over every row, the reference (what a plan would read to know the rows otherwise).

Run: python3 bench/row_count.py [--rows N] [--gz]   (--gz: the same rows gzip-compressed, counted by reading
them up to 128 MiB on disk)
"""
from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TIMED = """
import sys, time
from rankwise.advisor.dataset import count_rows, scan
path, what = sys.argv[1], sys.argv[2]
t = time.perf_counter()
n = count_rows(path) if what == "count" else scan(path, limit=20_000 if what == "quick" else None).rows
print(time.perf_counter() - t, n)
"""


def timed(path: Path, what: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", TIMED, str(path), what], capture_output=True, text=True, check=True)
    seconds, n = out.stdout.split()
    return float(seconds), int(n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--gz", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rankwise-rows-") as tmp:
        path = Path(tmp) / ("rows.jsonl.gz" if args.gz else "rows.jsonl")
        lines = (json.dumps({"instruction": f"Question {i} about things", "output": f"Answer {i} " * 5}) + "\n"
                 for i in range(args.rows))
        with (gzip.open(path, "wt") if args.gz else open(path, "w")) as fh:
            fh.writelines(lines)
        mb = path.stat().st_size / 1e6
        count, n = timed(path, "count")
        quick, _ = timed(path, "quick")
        full, rows = timed(path, "full")
    print(f"{args.rows:,} rows, {mb:.0f} MB on disk{' (gzip)' if args.gz else ''}")
    print(f"count_rows:              {count:7.2f} s  ({n:,} rows)")
    print(f"quick scan + count:      {quick:7.2f} s")
    print(f"full scan (reference):   {full:7.2f} s  ({rows:,} rows)")
    print(f"the quick plan reads the whole file's row count {full / quick:.0f}x faster than a full scan")
    return 0 if n == rows == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
