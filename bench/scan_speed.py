"""How long a data scan takes (what `check`, `estimate --preset`, `advise --dataset`, the TUI and `train`'s start
read for row counts and lengths), beside tokenizing every row it reads, on the same file and tokenizer.

Writes an N-row chat JSONL (default 100,000 rows, two turns of 20-400 words each, ~2.4 KB a row, seeded) and times:
- rankwise: `advisor.dataset.scan` with the model's tokenizer, limit 20,000 rows as the plans read (dataset.SCAN_ROWS):
  the token median and p95 from a 2,000-row sample, the longest from the 256 rows longest in characters;
- reference: the same rows read, every one tokenized (what the scan did before 6 December 2026).
Prints the seconds of each, the ratio, and the token median / p95 / longest of both. The tokenizer is the shipped
tiny Llama's (byte level: a token a byte, the most tokens a text can have); a BPE tokenizer makes ~4x fewer.

    python3 bench/scan_speed.py [ROWS]

Measured (6 December 2026, the 2-core development machine, quiet): 100,000 rows (239 MB), 20,000 read:
rankwise 1.00 s, every row tokenized 5.75 s (5.7x); median 2,337 vs 2,310 tokens (+1.2%), p95 4,224 vs 4,202
(+0.5%), longest 4,400 vs 4,400. `rankwise check` on a preset naming that file: 1.9 s (6.7 s before).
Again after the scan also searches the rest of a plain JSONL file for its longest rows (dataset.longest_lines, the
same day, later): rankwise 1.67 s, every row tokenized 6.06 s (3.6x), the same figures; the search itself, one pass
over the 239 MB, 0.31 s, and the 256 longest lines it finds tokenized. The same rows as parquet (written by
pyarrow, by hand): the search (dataset.arrow_longest, each row's string bytes a batch at a time) 0.26 s; a scan
of 20,000 rows with it 0.53 s, beside 1.8 s for reading every row, the same longest row.
"""
from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 20_000


def write_rows(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as fh:
        for _ in range(n):
            k = rng.randint(20, 400)
            fh.write(json.dumps({"messages": [{"role": "user", "content": "word " * k},
                                              {"role": "assistant", "content": "reply " * k}]}) + "\n")


def every_row(path: Path, tokenizer) -> tuple[float, list[int]]:
    from rankwise.advisor.dataset import iter_rows
    from rankwise.advisor.rowformat import prepare_row, row_text
    from rankwise.advisor.tokens import token_lengths

    t = time.perf_counter()
    texts = []
    for _, row in iter_rows(path):
        if len(texts) >= LIMIT:
            break
        good, _ = prepare_row(row, "chat")
        texts.append(row_text(good, "chat"))
    counted = sorted(token_lengths(tokenizer, texts))
    return time.perf_counter() - t, counted


def main() -> None:
    from rankwise.advisor.dataset import scan
    from rankwise.advisor.tokens import local_tokenizer

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    tokenizer = local_tokenizer(ROOT / "presets" / "assets" / "tiny-llama")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        write_rows(path, n)
        t = time.perf_counter()
        found = scan(path, limit=LIMIT, tokenizer=tokenizer, count_all=False)
        ours = time.perf_counter() - t
        ref, counted = every_row(path, tokenizer)
        size = path.stat().st_size
    exact = (int(statistics.median(counted)), counted[int(0.95 * len(counted))], counted[-1])
    got = (found.median_tokens, found.p95_tokens, found.max_tokens)
    print(f"{n:,} rows ({size / 1e6:.0f} MB), {min(n, LIMIT):,} read")
    print(f"rankwise scan (sampled): {ours:.2f} s; every row tokenized: {ref:.2f} s ({ref / ours:.1f}x)")
    for name, a, b in zip(("median", "p95", "longest"), got, exact):
        print(f"  {name:8} {a:>7,} tokens vs {b:>7,} ({(a - b) / b:+.1%})")


if __name__ == "__main__":
    main()
