"""Building the tokenized training set at scale: streamed, in parallel, straight to Arrow files.

`build_arrow(cfg, tokenizer, folder)` does what `data.py` describes (same reader, renderer,
masking, truncation and bad-row rules; `data.py` holds them) for files of a million rows:
- the parent process reads and checks rows (file:line for each bad one, failing at the first
  unless data.skip_bad_rows) and hands batches of good rows to worker processes, a bounded
  number at a time, so the file is never held in memory;
- workers render and tokenize; what only the tokenizer can reject (a response cut away by
  max_seq_len, a template refusing a conversation) comes back with the batch and is counted
  or raised in file order, in the same single pass;
- examples go to an Arrow file as int32 lists (4 bytes a token, memory-mapped when read back),
  never to Python lists of the whole set;
- the validation split (data.val_ratio, drawn with train.seed) and packing run over that file.
Progress (rows, rows/s, ETA) goes to `progress(done_rows, total_estimate, rows_per_s)` every
few seconds. Processes: RANKWISE_DATA_PROCS, else the CPU count (at most 8); small files stay in
one process.

Packing (data.packing) is best-fit decreasing: examples are placed whole (never cut) into
max_seq_len sequences, each into the fullest one it still fits, and every packed sequence
carries position_ids that restart at 0 for each example. transformers (5.x, masking_utils)
turns restarting position_ids without an attention mask into a block-diagonal mask for the
eager, SDPA and flex kernels and flash-attention reads them as sequence boundaries, so no
example attends to another (tests/test_data_packing.py checks the logits).
"""
from __future__ import annotations

import os
import random
import time
from array import array
from collections import deque
from pathlib import Path
from typing import Callable

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError

from .data import BATCH, IGNORE, DataReport, _Counter, _Encoder, _render, _Rows

PROGRESS_EVERY = 5.0  # seconds between progress reports
INLINE_BATCHES = 2  # files up to this many batches are built in the calling process (no pool start-up)

_STATE: dict = {}  # the worker's tokenizer and encoder (set once per process)


# --------------------------------------------------------------------------- workers

class _Recorded(_Counter):
    """A worker's counter: remembers bad rows for the parent to count or raise, in order."""

    def __init__(self):
        super().__init__(skip=True)
        self.all: list[tuple[str, str]] = []

    def bad(self, where: str, reason: str) -> None:
        self.all.append((where, reason))


def _init(tokenizer, max_len: int) -> None:
    _STATE.update(tokenizer=tokenizer, max_len=max_len, encoder=None,
                  has_template=bool(getattr(tokenizer, "chat_template", None)))


def _work(job: tuple[str, list[tuple[str, dict]]]):
    """Render and tokenize one batch of good rows. Returns ("ok", ids, labels, lengths,
    supervised, bad rows, truncated) with flat int32 arrays, or ("error", message, hint)."""
    fmt, items = job
    tok, rec = _STATE["tokenizer"], _Recorded()
    encoder = _STATE.get("encoder")
    if encoder is None:
        encoder = _STATE["encoder"] = _Encoder(tok, _STATE["max_len"], rec)
    encoder.counter = rec
    rendered = []
    for where, row in items:
        try:
            rendered.append(_render(tok, fmt, where, row, _STATE["has_template"]))
        except RankwiseError as e:
            return "error", e.message, e.hint
        except Exception as e:  # the template's own checks (role order, system not allowed, ...)
            rec.bad(where, f"the chat template rejected this conversation ({e})")
    ids, labels, lengths, supervised = array("i"), array("i"), array("i"), array("i")
    for ex in encoder(rendered):
        ids.extend(ex["input_ids"])
        labels.extend(ex["labels"])
        lengths.append(len(ex["input_ids"]))
        supervised.append(len(ex["labels"]) - ex["labels"].count(IGNORE))
    return "ok", ids, labels, lengths, supervised, rec.all, rec.truncated


# --------------------------------------------------------------------------- Arrow

def _schema(packed: bool = False):
    import pyarrow as pa

    cols = ["input_ids", "labels"] + (["position_ids"] if packed else [])
    return pa.schema([(c, pa.list_(pa.int32())) for c in cols])


def _list_array(flat, lengths):
    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(np.frombuffer(lengths, dtype=np.int32) if isinstance(lengths, array) else lengths, out=offsets[1:])
    values = np.frombuffer(flat, dtype=np.int32) if isinstance(flat, array) else flat
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int32()))


def _open_table(path: Path):
    import pyarrow as pa
    import pyarrow.ipc as ipc

    return ipc.open_file(pa.memory_map(str(path), "r")).read_all()


class _Writer:
    def __init__(self, path: Path, packed: bool = False):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self.schema = _schema(packed)
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = ipc.new_file(self.sink, self.schema)

    def write(self, columns: list) -> None:
        import pyarrow as pa

        if len(columns[0]):
            self.writer.write_batch(pa.record_batch(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()
        self.sink.close()


# --------------------------------------------------------------------------- one file

def _procs() -> int:
    env = os.environ.get("RANKWISE_DATA_PROCS")
    return max(1, int(env)) if env and env.isdigit() else min(8, os.cpu_count() or 1)


def _write_file(path: Path, cfg: RunConfig, tokenizer, counter: _Counter, max_rows: int | None, out: Path,
                progress: Callable | None) -> tuple[str, array, array]:
    """Read, check, render and tokenize one data file into `out`; (format, lengths, supervised)."""
    rows = _Rows(path, cfg.data.format, counter, max_rows, cfg.data.columns)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    writer = _Writer(out)
    lengths, supervised = array("i"), array("i")
    pool, pending = None, deque()
    procs = _procs()
    size = path.stat().st_size if path.is_file() else None
    started = last = time.monotonic()
    state = {"rows": 0, "bytes_per_row": None}

    def take(result) -> None:
        if result[0] == "error":
            raise RankwiseError(result[1], result[2])
        _, ids, labels, lens, sup, bad, truncated = result
        for where, reason in bad:
            counter.bad(where, reason)  # raises at the first unless skipping
        counter.truncated += truncated
        writer.write([_list_array(ids, lens), _list_array(labels, lens)])
        lengths.extend(lens)
        supervised.extend(sup)

    def submit(batch: list) -> None:
        nonlocal pool, last
        if rows.fmt in ("chat", "sharegpt") and not has_template:
            raise RankwiseError(f"{rows.path}: {rows.fmt} data (`messages`/`conversations`) needs a tokenizer with a "
                                "chat template, and this one has none", "use the model's instruct/chat variant, or "
                                "convert the rows to prompt/completion or text and set data.format")
        state["rows"] += len(batch)
        if pool is None and procs > 1 and state["rows"] > INLINE_BATCHES * BATCH:
            import multiprocessing as mp

            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process: they are the parallelism
            pool = mp.get_context("fork").Pool(procs, initializer=_init, initargs=(tokenizer, cfg.train.max_seq_len))
        job = (rows.fmt, batch)
        if pool is None:
            take(_work(job))
        else:
            pending.append(pool.apply_async(_work, (job,)))
            while len(pending) > 2 * procs:  # bounded: the reader waits for the workers
                take(pending.popleft().get())
        now = time.monotonic()
        if progress and now - last >= PROGRESS_EVERY:
            last = now
            rate = state["rows"] / max(now - started, 1e-9)
            if state["bytes_per_row"] is None and size:
                state["bytes_per_row"] = _bytes_per_row(path, state["rows"])
            total = int(size / state["bytes_per_row"]) if size and state["bytes_per_row"] else None
            if max_rows:
                total = min(total or max_rows, max_rows)
            progress(state["rows"], total, rate)

    _init(tokenizer, cfg.train.max_seq_len)
    try:
        batch: list = []
        for item in rows:
            batch.append(item)
            if len(batch) >= BATCH:
                submit(batch)
                batch = []
        if batch:
            submit(batch)
        while pending:
            take(pending.popleft().get())
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        writer.close()
    if progress:
        progress(state["rows"], state["rows"], state["rows"] / max(time.monotonic() - started, 1e-9))
    return rows.fmt, lengths, supervised


def _bytes_per_row(path: Path, rows: int) -> float | None:
    """Bytes of the file per row read so far, from where the reader stands (uncompressed text only)."""
    from rankwise.advisor.dataset import data_suffix

    if data_suffix(path)[1] or data_suffix(path)[0] == ".parquet" or rows < 1:
        return None
    with open(path, "rb") as fh:  # the first `rows` lines: what the reader has consumed
        n = 0
        for n, _ in enumerate(fh, start=1):
            if n >= min(rows, 20000):
                break
        return fh.tell() / n if n else None


# --------------------------------------------------------------------------- split and pack

def _split(all_path: Path, held: set[int], train_path: Path, val_path: Path) -> None:
    import numpy as np
    import pyarrow as pa

    import pyarrow.ipc as ipc

    held_sorted = np.fromiter(sorted(held), dtype=np.int64, count=len(held))
    train_w, val_w = _Writer(train_path), _Writer(val_path)
    start = 0
    reader = ipc.open_file(pa.OSFile(str(all_path)))  # read a batch at a time, not mapped: the worker's RSS stays small
    for batch in (reader.get_batch(i) for i in range(reader.num_record_batches)):
        n = batch.num_rows
        mask = np.zeros(n, dtype=bool)
        lo, hi = np.searchsorted(held_sorted, [start, start + n])
        mask[held_sorted[lo:hi] - start] = True
        val_w.write(batch.filter(pa.array(mask)).columns)
        train_w.write(batch.filter(pa.array(~mask)).columns)
        start += n
    train_w.close()
    val_w.close()


def best_fit(lengths, capacity: int) -> list[list[int]]:
    """Best-fit decreasing: example indices grouped into bins of at most `capacity` tokens, each
    example placed into the bin with the least room that still holds it (a segment tree over the
    room left finds it in log(capacity) steps). Bins come in the order they were opened."""
    size = 1
    while size < capacity + 1:
        size *= 2
    tree = [0] * (2 * size)  # max over [room .. ] of "a bin with this much room exists"
    rooms: list[list[int]] = [[] for _ in range(capacity + 1)]  # room left → bins with that room
    bins: list[list[int]] = []
    room_of: list[int] = []

    def mark(r: int) -> None:
        i = r + size
        tree[i] = 1 if rooms[r] else 0
        i //= 2
        while i:
            tree[i] = tree[2 * i] | tree[2 * i + 1]
            i //= 2

    def smallest_at_least(need: int) -> int | None:
        """The smallest room >= need that some bin has."""
        def down(i, lo, hi):
            if hi < need or not tree[i]:
                return None
            if lo == hi:
                return lo
            mid = (lo + hi) // 2
            left = down(2 * i, lo, mid)
            return left if left is not None else down(2 * i + 1, mid + 1, hi)
        return down(1, 0, size - 1)

    for k in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        n = min(lengths[k], capacity)
        r = smallest_at_least(n)
        if r is None:
            bins.append([k])
            room_of.append(capacity - n)
            b = len(bins) - 1
        else:
            b = rooms[r].pop()
            mark(r)
            bins[b].append(k)
            room_of[b] = r - n
        rooms[room_of[b]].append(b)
        mark(room_of[b])
    return bins


def _pack(train_path: Path, lengths: array, capacity: int, out: Path) -> tuple[int, int]:
    """Write the packed sequences of `train_path` to `out`; (sequences, tokens)."""
    import numpy as np
    import pyarrow as pa

    table = _open_table(train_path)
    bins = best_fit(lengths, capacity)
    lens = np.frombuffer(lengths, dtype=np.int32)
    writer = _Writer(out, packed=True)
    tokens = 0
    for a in range(0, len(bins), 1024):
        group = bins[a:a + 1024]
        order = np.fromiter((k for b in group for k in b), dtype=np.int64)
        taken = table.take(pa.array(order))
        ex_lens = lens[order]
        bin_lens = np.fromiter((int(lens[b].sum()) for b in group), dtype=np.int32, count=len(group))
        flat_ids = taken.column("input_ids").combine_chunks().flatten()
        flat_labels = taken.column("labels").combine_chunks().flatten()
        starts = np.repeat(np.cumsum(ex_lens) - ex_lens, ex_lens)
        positions = (np.arange(int(ex_lens.sum()), dtype=np.int64) - starts).astype(np.int32)
        writer.write([_list_array(flat_ids, bin_lens), _list_array(flat_labels, bin_lens),
                      _list_array(positions, bin_lens)])
        tokens += int(ex_lens.sum())
    writer.close()
    return len(bins), tokens


# --------------------------------------------------------------------------- the whole build

def build_arrow(cfg: RunConfig, tokenizer, folder: Path, progress: Callable | None = None) -> DataReport:
    """Write train.arrow (and val.arrow) into `folder`; the report of what was done."""
    if not cfg.data.path:
        raise RankwiseError("no training data: data.path is not set", "set data.path to a .jsonl/.json/.csv/.parquet "
                                                                       "file or a saved Hugging Face dataset folder")
    folder.mkdir(parents=True, exist_ok=True)
    counter = _Counter(cfg.data.skip_bad_rows)
    path = Path(cfg.data.path)
    fmt, lengths, supervised = _write_file(path, cfg, tokenizer, counter, cfg.data.max_rows, folder / "all.arrow",
                                           progress)
    n = len(lengths)
    if not n:
        raise RankwiseError(f"{path}: no usable training rows ({counter.skipped} bad rows skipped)",
                            "; ".join(counter.examples[:3]) or "the file has no rows")
    val_rows = 0
    if cfg.data.val_path:
        _, val_lengths, _ = _write_file(Path(cfg.data.val_path), cfg, tokenizer, counter, None, folder / "val.arrow",
                                        None)
        if not len(val_lengths):
            raise RankwiseError(f"{cfg.data.val_path}: no usable validation rows", "check data.val_path")
        val_rows = len(val_lengths)
        os.replace(folder / "all.arrow", folder / "train.arrow")
    elif cfg.data.val_ratio > 0:
        n_val = max(1, round(n * cfg.data.val_ratio))
        if n_val >= n:
            raise RankwiseError(f"{path}: {n} usable rows are too few to hold out "
                                f"data.val_ratio {cfg.data.val_ratio}", "add rows or set data.val_ratio: 0")
        held = set(random.Random(cfg.train.seed).sample(range(n), n_val))
        _split(folder / "all.arrow", held, folder / "train.arrow", folder / "val.arrow")
        (folder / "all.arrow").unlink()
        lengths = array("i", (x for k, x in enumerate(lengths) if k not in held))
        supervised = array("i", (x for k, x in enumerate(supervised) if k not in held))
        val_rows = n_val
    else:
        os.replace(folder / "all.arrow", folder / "train.arrow")
    report = DataReport(format=fmt, train_rows=len(lengths), val_rows=val_rows, truncated_rows=counter.truncated,
                        skipped_rows=counter.skipped, skipped_examples=counter.examples, train_tokens=sum(lengths),
                        packed=cfg.data.packing, supervised_tokens=sum(supervised), train_sequences=len(lengths))
    if cfg.data.packing:
        sequences, tokens = _pack(folder / "train.arrow", lengths, cfg.train.max_seq_len, folder / "packed.arrow")
        os.replace(folder / "packed.arrow", folder / "train.arrow")
        report.train_sequences = sequences
        report.packing_efficiency = round(tokens / (sequences * cfg.train.max_seq_len), 4)
    return report


# --------------------------------------------------------------------------- lists (tests, small data)

def read_examples(path: Path) -> list[dict]:
    """An Arrow file of examples as a list of {"input_ids": [...], "labels": [...], ...}."""
    return _open_table(path).to_pylist()


def build_datasets(cfg: RunConfig, tokenizer) -> tuple[list[dict], list[dict] | None, DataReport]:
    """The build as Python lists (train, validation or None, report): for tests and small data;
    training reads the same build from the cache (trainer/data_cache.py)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rankwise-data-") as tmp:
        report = build_arrow(cfg, tokenizer, Path(tmp))
        train = read_examples(Path(tmp) / "train.arrow")
        val = read_examples(Path(tmp) / "val.arrow") if (Path(tmp) / "val.arrow").exists() else None
    return train, val, report


def pack(examples: list[dict], max_len: int) -> list[dict]:
    """Best-fit packing of a list of examples (see best_fit), with position_ids per example."""
    out = []
    for b in best_fit([len(ex["input_ids"]) for ex in examples], max_len):
        seq = {"input_ids": [], "labels": [], "position_ids": []}
        for k in b:
            seq["input_ids"] += examples[k]["input_ids"]
            seq["labels"] += examples[k]["labels"]
            seq["position_ids"] += list(range(len(examples[k]["input_ids"])))
        out.append(seq)
    return out
