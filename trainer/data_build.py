"""Building the tokenized training set at scale: streamed, in parallel, straight to Arrow files.

`build_arrow(cfg, tokenizer, folder)` does what `data.py` describes (same reader, renderer,
masking, truncation and bad-row rules; `data.py` holds them) for files of a million rows:
- the parent process tells the format from the first rows and hands batches of rows to worker
  processes, a bounded number at a time, so the file is never held in memory: JSONL as raw
  lines (the workers parse and check them), other file types as rows it read;
- workers parse, check, render and tokenize; each row's outcome comes back in file order, and
  the parent counts or raises bad rows in that order (file:line, failing at the first unless
  data.skip_bad_rows), what the reader rejects and what only the tokenizer can (a response cut
  away by max_seq_len, a template refusing a conversation) alike, in one pass;
- examples go to an Arrow file (trainer/data_arrow.py: int32 lists, never Python lists of the
  whole set); the validation split (data.val_ratio, drawn with train.seed) and best-fit packing
  run over that file.
Progress (rows, rows/s, ETA) goes to `progress(done_rows, total_estimate, rows_per_s)` every
few seconds. Processes: RANKWISE_DATA_PROCS, else the CPU count (at most 8); small files stay in
one process.
"""
from __future__ import annotations

import gc
import itertools
import os
import random
import signal
import time
from array import array
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

from rankwise.advisor.config import RunConfig
from rankwise.advisor.readers import iter_rows, jsonl_files, jsonl_lines, location, location_prefix, parse_line
from rankwise.advisor.rowformat import apply_columns, prepare_row
from rankwise.advisor.errors import RankwiseError

from .data import BATCH, IGNORE, DataReport, _Counter, _format_of, _render, inputs_trained, no_template
from .data_arrow import list_array, Writer, pack_file, read_examples, split
from .data_encoder import _Encoder

PROGRESS_EVERY = 5.0  # seconds between progress reports
DEAF = {signal.SIGINT, signal.SIGTERM}  # what the worker processes ignore (_deaf)
INLINE_BATCHES = 2  # files up to this many batches are built in the calling process (no pool start-up)

_STATE: dict = {}  # the tokenizer and encoder (set in the parent before the worker processes fork)

# What became of each row of a batch (blank lines are no row), in file order:
KEPT, READ_BAD, TOKEN_BAD, FATAL = 0, 1, 2, 3  # an example; bad to the reader; bad to the template or
# tokenizer (a good row to the reader: it counts toward data.max_rows); an error that ends the build


# --------------------------------------------------------------------------- workers

def _init(tokenizer, max_len: int) -> None:
    _STATE.update(tokenizer=tokenizer, encoder=_Encoder(tokenizer, max_len),
                  has_template=bool(getattr(tokenizer, "chat_template", None)))


def _deaf() -> None:
    """A worker process ignores Ctrl-C and SIGTERM (a terminal sends them to the whole process group):
    the parent stops reading, and its pool finishes the few batches queued. Interrupted, a worker died
    with a task unfinished, or handed back the interrupt as whatever exception a library made of it.
    It starts with them blocked (the pool is made under that mask): ignored first, then unblocked, one
    sent in between is discarded."""
    for s in DEAF:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, DEAF)


def _work(job: tuple):
    """Read, check, render and tokenize one batch of rows: `(format, data.columns, location prefix,
    first line number, raw JSONL lines)`, or `(format, None, None, None, [(where, row), ...])` for rows
    the parent read (other file types; data.columns applied). Returns (codes, bad rows as (where,
    reason), (message, hint) of a FATAL or None, ids, labels, lengths, supervised tokens, truncated
    flags): one code per row in file order, the arrays (flat int32 ids/labels) for the KEPT ones."""
    fmt, columns, prefix, first, items = job
    tok, encoder, has_template = _STATE["tokenizer"], _STATE["encoder"], _STATE["has_template"]
    entries: list = []  # per row: None (rendered, awaiting the tokenizer) or (code, where, reason)
    rendered: list = []
    fatal = None
    for i, item in enumerate(items):
        if prefix is not None:
            row = parse_line(first + i, item)
            if row is None:  # a blank line
                continue
            where = f"{prefix}{first + i}"
            if columns and isinstance(row, dict):
                row = apply_columns(row, columns)
        else:
            where, row = item
        ready, reason = prepare_row(row, fmt)
        if reason:
            entries.append((READ_BAD, where, reason))
            continue
        try:
            rendered.append(_render(tok, fmt, where, ready, has_template))
            entries.append(None)
        except RankwiseError as e:
            entries.append((FATAL, where, None))
            fatal = (e.message, e.hint)
            break
        except Exception as e:  # the template's own checks (role order, system not allowed, ...)
            entries.append((TOKEN_BAD, where, f"the chat template rejected this conversation ({e})"))
    codes, bad = bytearray(), []
    ids: list[int] = []
    labels: list[int] = []
    lengths, supervised, truncated = array("i"), array("i"), bytearray()
    encoded = iter(zip(rendered, encoder(rendered) if rendered else ()))
    for entry in entries:
        if entry is not None:
            codes.append(entry[0])
            if entry[0] != FATAL:
                bad.append(entry[1:])
            continue
        r, ex = next(encoded)
        if isinstance(ex, str):
            codes.append(TOKEN_BAD)
            bad.append((r.where, ex))
            continue
        codes.append(KEPT)
        ids += ex[0]
        labels += ex[1]
        lengths.append(len(ex[0]))
        supervised.append(len(ex[1]) - ex[1].count(IGNORE))
        truncated.append(ex[2])
    return codes, bad, fatal, array("i", ids), array("i", labels), lengths, supervised, truncated


# --------------------------------------------------------------------------- one file

def _procs() -> int:
    env = os.environ.get("RANKWISE_DATA_PROCS")
    return max(1, int(env)) if env and env.isdigit() else min(8, os.cpu_count() or 1)


def _jobs(path: Path, declared: str, columns: dict | None, counter: _Counter) -> tuple[str, Iterator[tuple]]:
    """The file's format and its rows as worker jobs of BATCH rows, read lazily in file order.
    JSONL (a file or a folder of JSONL shards) goes as raw lines: the workers parse and check them."""
    rows = ((n, apply_columns(row, columns)) for n, row in iter_rows(path, bad="yield"))
    fmt, head = _format_of(path, declared, rows, counter)
    files = jsonl_files(path)

    def lines() -> Iterator[tuple]:
        for f in files:
            prefix, batch, first = location_prefix(f), [], 1
            for raw in jsonl_lines(f):
                batch.append(raw)
                if len(batch) >= BATCH:
                    yield fmt, columns, prefix, first, batch
                    first, batch = first + len(batch), []
            if batch:
                yield fmt, columns, prefix, first, batch

    def parsed() -> Iterator[tuple]:
        prefix, batch = location_prefix(path), []
        for n, row in itertools.chain(head, rows):
            batch.append((location(path, n) if getattr(n, "file", None) else f"{prefix}{n}", row))
            if len(batch) >= BATCH:
                yield fmt, None, None, None, batch
                batch = []
        if batch:
            yield fmt, None, None, None, batch

    if files:
        rows.close()  # read again from the start, as lines
        return fmt, lines()
    return fmt, parsed()


def _write_file(path: Path, cfg: RunConfig, tokenizer, counter: _Counter, max_rows: int | None, out: Path,
                progress: Callable | None) -> tuple[str, array, array]:
    """Read, check, render and tokenize one data file into `out`; (format, lengths, supervised).
    Rows are taken in file order whichever process read them: the first bad one raises (unless
    skipping), data.max_rows counts the rows good to the reader, as `data._Rows` does."""
    fmt, jobs = _jobs(path, cfg.data.format, cfg.data.columns, counter)
    refuse = None
    if fmt in ("chat", "sharegpt") and not getattr(tokenizer, "chat_template", None):
        refuse = no_template(path, fmt)
    writer = Writer(out)
    lengths, supervised = array("i"), array("i")
    pool, pending = None, deque()
    size = path.stat().st_size if path.is_file() else None
    started = last = time.monotonic()
    state = {"good": 0, "done": False, "bytes_per_row": None}

    def take(result) -> None:
        nonlocal last
        codes, bad, fatal, ids, labels, lens, sup, truncated = result
        kept = len(lens)
        if bad or fatal or refuse or (max_rows is not None and state["good"] + len(codes) >= max_rows):
            kept, b = 0, iter(bad)
            for code in codes:
                if max_rows is not None and state["good"] >= max_rows:
                    break
                if code == READ_BAD:
                    counter.bad(*next(b))  # raises at the first unless skipping
                    continue
                if refuse:
                    raise refuse
                state["good"] += 1
                if code == FATAL:
                    raise RankwiseError(*fatal)
                if code == TOKEN_BAD:
                    counter.bad(*next(b))
                else:
                    kept += 1
            state["done"] = max_rows is not None and state["good"] >= max_rows
        else:
            state["good"] += len(codes)
        if kept < len(lens):  # rows past data.max_rows
            tokens = sum(lens[:kept])
            ids, labels, lens, sup, truncated = ids[:tokens], labels[:tokens], lens[:kept], sup[:kept], truncated[:kept]
        counter.truncated += sum(truncated)
        writer.write([list_array(ids, lens), list_array(labels, lens)])
        lengths.extend(lens)
        supervised.extend(sup)
        now = time.monotonic()
        if progress and now - last >= PROGRESS_EVERY:
            last = now
            rows = state["good"]
            if state["bytes_per_row"] is None and size:
                state["bytes_per_row"] = _bytes_per_row(path, rows)
            total = int(size / state["bytes_per_row"]) if size and state["bytes_per_row"] else None
            if max_rows:
                total = min(total or max_rows, max_rows)
            progress(rows, total, rows / max(now - started, 1e-9))

    def drain() -> None:
        while pending and not state["done"]:
            take(pending.popleft().get())

    _init(tokenizer, cfg.train.max_seq_len)
    try:
        head = list(itertools.islice(jobs, INLINE_BATCHES + 1))
        procs = _procs()
        if procs > 1 and len(head) > INLINE_BATCHES:
            import multiprocessing as mp

            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process: they are the parallelism
            gc.freeze()  # the workers inherit _STATE, and never scan (nor copy) what they inherit in collections
            # born with Ctrl-C and SIGTERM blocked (the pool's threads too, which fork the replacements), so none can
            # land before _deaf ignores them (CI: a worker signalled before its initializer died of it); a signal
            # for this process waits until the mask is restored
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, DEAF)
            try:
                pool = mp.get_context("fork").Pool(procs, initializer=_deaf)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                gc.unfreeze()
        for job in head:
            (take(_work(job)) if pool is None else pending.append(pool.apply_async(_work, (job,))))
        while not state["done"]:
            try:
                job = next(jobs, None)
            except RankwiseError:  # the file cannot be read on: what came before it is reported first
                drain()
                raise
            if job is None:
                break
            if pool is None:
                take(_work(job))
                continue
            pending.append(pool.apply_async(_work, (job,)))
            while len(pending) > 2 * procs and not state["done"]:  # bounded: the reader waits for the workers
                take(pending.popleft().get())
        drain()
    finally:
        if pool is not None:
            # close, not terminate: at most 2 x procs batches are still queued, and they finish. terminate
            # kills workers, and one killed while it holds the result queue's lock left the pool's task
            # thread waiting on that lock for ever (CI: a bad row in a big file hung instead of exit 2)
            pool.close()
            pool.join()
        writer.close()
    if progress:
        progress(state["good"], state["good"], state["good"] / max(time.monotonic() - started, 1e-9))
    return fmt, lengths, supervised


def _bytes_per_row(path: Path, rows: int) -> float | None:
    """Bytes of the file per row read so far, from where the reader stands (uncompressed text only)."""
    from rankwise.advisor.readers import data_suffix

    if data_suffix(path)[1] or data_suffix(path)[0] == ".parquet" or rows < 1:
        return None
    with open(path, "rb") as fh:  # the first `rows` lines: what the reader has consumed
        n = 0
        for n, _ in enumerate(fh, start=1):
            if n >= min(rows, 20000):
                break
        return fh.tell() / n if n else None


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
        split(folder / "all.arrow", held, folder / "train.arrow", folder / "val.arrow")
        (folder / "all.arrow").unlink()
        lengths = array("i", (x for k, x in enumerate(lengths) if k not in held))
        supervised = array("i", (x for k, x in enumerate(supervised) if k not in held))
        val_rows = n_val
    else:
        os.replace(folder / "all.arrow", folder / "train.arrow")
    report = DataReport(format=fmt, train_rows=len(lengths), val_rows=val_rows, truncated_rows=counter.truncated,
                        skipped_rows=counter.skipped, skipped_examples=counter.examples, train_tokens=sum(lengths),
                        packed=cfg.data.packing, supervised_tokens=sum(supervised), train_sequences=len(lengths),
                        longest=max(lengths, default=0))
    if cfg.data.packing:
        sequences, tokens = pack_file(folder / "train.arrow", lengths, cfg.train.max_seq_len, folder / "packed.arrow")
        os.replace(folder / "packed.arrow", folder / "train.arrow")
        report.train_sequences = sequences
        report.packing_efficiency = round(tokens / (sequences * cfg.train.max_seq_len), 4)
        report.longest = cfg.train.max_seq_len  # each packed sequence is padded to it
    return report


# --------------------------------------------------------------------------- lists (tests, small data)

def build_datasets(cfg: RunConfig, tokenizer) -> tuple[list[dict], list[dict] | None, DataReport]:
    """The build as Python lists (train, validation or None, report): for tests and small data;
    training reads the same build from the cache (trainer/data_cache.py)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rankwise-data-") as tmp:
        report = build_arrow(cfg, tokenizer, Path(tmp))
        train = read_examples(Path(tmp) / "train.arrow")
        val = read_examples(Path(tmp) / "val.arrow") if (Path(tmp) / "val.arrow").exists() else None
    return list(inputs_trained(cfg, train, report)), val, report
