"""How long a data scan takes (what `check`, `estimate --preset`, `advise --dataset`, the TUI and `train`'s start
read for row counts and lengths), beside tokenizing every row it reads, on the same file and tokenizer.

Writes an N-row chat JSONL (default 100,000 rows, two turns of 20-400 words each, ~2.4 KB a row, seeded; one row of
PLANTED words each way 1,000 rows before the end, past the rows read) and times:
- rankwise: `advisor.dataset.scan` with the model's tokenizer, limit 20,000 rows as the plans read (dataset.SCAN_ROWS):
  the token median and p95 from a 2,000-row sample, the longest from the 256 rows longest in characters among the
  rows read and the rest of the file's 256 longest lines (longest.longest_rows);
- reference: the same rows read, every one tokenized (what the scan did before 6 December 2026).
Prints the seconds of each, the ratio, the token median / p95 of both, the longest of all rows and of the rows read;
then the same for a parquet copy of the rows (the search, a limited scan, a scan of every row). The tokenizer is the shipped
tiny Llama's (byte level: a token a byte, the most tokens a text can have); a BPE tokenizer makes ~4x fewer.

    python3 bench/scan_speed.py [ROWS]

Measured (6 December 2026, the 2-core development machine, quiet): 100,000 rows (239 MB), 20,000 read:
rankwise 1.00 s, every row tokenized 5.75 s (5.7x); median 2,337 vs 2,310 tokens (+1.2%), p95 4,224 vs 4,202
(+0.5%), longest 4,400 vs 4,400. `rankwise check` on a preset naming that file: 1.9 s (6.7 s before).
Again after the scan also searches the rest of the data for its longest rows (longest.longest_rows; the same day,
later), with one row of 3,000 words each way planted at row 99,001: rankwise 1.67 s, the rows read tokenized
6.07 s (3.6x); median +1.2%, p95 +0.5% as before; longest 33,000 tokens of all 100,000 rows (the planted row), where
the first 20,000 rows' is 4,400. The JSONL search alone, one pass over the 239 MB: 0.31 s. The same rows as parquet
(0.3 MB on disk, the text repeats): the search (longest.arrow_longest) 0.31 s; a scan of 20,000 rows with it 1.11 s,
one reading every row 1.89 s (1.7x); both find the 33,000-token row.
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


PLANTED = 3000  # words each way of one row past the rows read: the whole data's longest row, which only the search finds


def write_rows(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as fh:
        for i in range(n):
            k = PLANTED if i == n - 1000 and n > LIMIT + 1000 else rng.randint(20, 400)
            fh.write(json.dumps({"messages": [{"role": "user", "content": "word " * k},
                                              {"role": "assistant", "content": "reply " * k}]}) + "\n")


def every_row(path: Path, tokenizer) -> tuple[float, list[int]]:
    from rankwise.advisor.readers import iter_rows
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
        arrow = parquet_figures(path, tokenizer)
    exact = (int(statistics.median(counted)), counted[int(0.95 * len(counted))])
    got = (found.median_tokens, found.p95_tokens)
    print(f"{n:,} rows ({size / 1e6:.0f} MB), {min(n, LIMIT):,} read")
    print(f"rankwise scan (sampled, the rest searched for its longest rows): {ours:.2f} s; the rows read, every one "
          f"tokenized: {ref:.2f} s ({ref / ours:.1f}x)")
    for name, a, b in zip(("median", "p95"), got, exact):
        print(f"  {name:8} {a:>7,} tokens vs {b:>7,} ({(a - b) / b:+.1%})")
    print(f"  longest  {found.max_tokens:>7,} tokens of all {found.longest_of or found.rows:,} rows; "
          f"{counted[-1]:,} of the first {len(counted):,}" + (f" (a row of {PLANTED:,} words each way planted at row "
                                                              f"{n - 999:,})" if n > LIMIT + 1000 else ""))
    print(arrow)


def parquet_figures(path: Path, tokenizer) -> str:
    """The same rows as a parquet file: the longest-rows search (longest.arrow_longest), a scan of LIMIT rows with
    it, and a scan that reads every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rankwise.advisor.dataset import scan
    from rankwise.advisor.longest import arrow_longest

    out = path.with_suffix(".parquet")
    with open(path) as fh:
        pq.write_table(pa.Table.from_pylist([json.loads(line) for line in fh]), out)
    t = time.perf_counter()
    arrow_longest(pq.ParquetFile(out).iter_batches(batch_size=4096), LIMIT)
    search = time.perf_counter() - t
    t = time.perf_counter()
    part = scan(out, limit=LIMIT, tokenizer=tokenizer, count_all=False)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    whole = scan(out, tokenizer=tokenizer)
    every = time.perf_counter() - t
    return (f"parquet ({out.stat().st_size / 1e6:.1f} MB on disk): the search {search:.2f} s; a scan of {LIMIT:,} rows with it "
            f"{ours:.2f} s; every row read {every:.2f} s ({every / ours:.1f}x); longest {part.max_tokens:,} vs "
            f"{whole.max_tokens:,} tokens")


if __name__ == "__main__":
    main()
