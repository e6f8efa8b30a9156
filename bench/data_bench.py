"""How fast build_datasets turns a large file into masked examples, beside a naive reference.

Writes an N-row chat JSONL (default 20,000 rows, two turns each, ~300 characters) to a temp
folder, then times:
- rankwise: `build_datasets` (one template render per turn, batched fast tokenization with
  character offsets for the mask);
- reference: the common per-row recipe — `apply_chat_template(tokenize=True)` on the prompt
  and on the full conversation for every row, masking the prompt's length.
Prints rows/s for both, the ratio, and the resident-memory growth of the rankwise build.

    python3 bench/data_bench.py [ROWS]
"""
from __future__ import annotations

import gc
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_rows(path: Path, n: int) -> None:
    rng = random.Random(0)
    words = "the of capital is what a and plus to in river mountain city north south".split()
    with open(path, "w") as fh:
        for _ in range(n):
            q = " ".join(rng.choice(words) for _ in range(rng.randint(10, 30))) + "?"
            a = " ".join(rng.choice(words) for _ in range(rng.randint(20, 50))) + "."
            fh.write(json.dumps({"messages": [{"role": "system", "content": "Answer briefly."},
                                              {"role": "user", "content": q},
                                              {"role": "assistant", "content": a}]}) + "\n")


def reference(path: Path, tok, max_len: int) -> int:
    out = []
    with open(path) as fh:
        for line in fh:
            msgs = json.loads(line)["messages"]
            prompt = tok.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True, return_dict=False)
            full = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)[:max_len]
            out.append({"input_ids": full, "labels": [-100] * len(prompt) + full[len(prompt):]})
    return len(out)


def main() -> None:
    from transformers import AutoTokenizer

    from rankwise.advisor.config import RunConfig
    from rankwise.trainer.data_build import build_datasets

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    tok = AutoTokenizer.from_pretrained(ROOT / "presets" / "assets" / "tiny-llama")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chat.jsonl"
        write_rows(path, n)
        cfg = RunConfig.model_validate({"data": {"path": str(path)}, "train": {"max_seq_len": 512}})
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        train, _, rep = build_datasets(cfg, tok)
        ours = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        del train  # so the reference's garbage collections do not walk our examples
        gc.collect()
        t0 = time.perf_counter()
        reference(path, tok, 512)
        ref = time.perf_counter() - t0
    print(f"rows: {n}, tokens: {rep.train_tokens:,} ({rep.train_tokens / n:.0f}/row), truncated: {rep.truncated_rows}")
    print(f"rankwise build_datasets: {ours:6.2f} s  {n / ours:8.0f} rows/s  (+{(rss1 - rss0) / 1024:.0f} MiB peak RSS)")
    print(f"reference per-row:       {ref:6.2f} s  {n / ref:8.0f} rows/s")
    print(f"speed-up: {ref / ours:.2f}x")


if __name__ == "__main__":
    main()
