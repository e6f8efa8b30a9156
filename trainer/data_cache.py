"""The tokenized training data, built once and kept on disk.

`prepare_data(cfg, tokenizer)` returns what `data.build_datasets` returns, but first looks for
a finished build under the cache folder, keyed by everything that changes the examples:
- the content of the data files (data.path, every shard of a folder, data.val_path), hashed;
- the tokenizer (its full tokenizer.json, or its vocabulary files) and its chat template;
- the data settings (format, columns, packing, skip_bad_rows, max_rows, val_ratio),
  train.max_seq_len and train.seed (the validation split);
- the masking rules: the source of trainer/data.py, data_build.py, data_encoder.py, data_arrow.py and
  advisor/dataset.py, readers.py, rowformat.py.
A hit maps the examples from Arrow files (memory-mapped: a million rows cost little RAM) and
skips reading and tokenizing; `--resume`, a re-run and every sweep trial over the same file hit.
Processes of one multi-process run take a file lock: the first builds, the others wait and hit.

The folder is $RANKWISE_DATA_CACHE, else `.data-cache/` inside the runs directory (rankwise
writes only where the user said runs go); one sub-folder per key (`rankwise cache` lists them,
`--clear` empties).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rankwise.advisor.config import RunConfig
from rankwise.advisor.readers import data_suffix

from .data import inputs_trained

VERSION = 1  # the stored layout
READING = tuple(Path(__file__).resolve().parent.parent / "advisor" / f for f in ("dataset.py", "readers.py", "rowformat.py"))
SOURCES = (*(Path(__file__).with_name(f) for f in ("data.py", "data_build.py", "data_encoder.py", "data_arrow.py")),
           *READING)


CACHE_DIR = ".data-cache"  # inside the runs directory


def cache_root(runs_dir: str | Path | None = None) -> Path:
    """Where tokenized datasets are kept: $RANKWISE_DATA_CACHE, else `<runs dir>/.data-cache`
    (the runs dir is the one place the user chose for rankwise to write; default ./runs)."""
    if os.environ.get("RANKWISE_DATA_CACHE"):
        return Path(os.environ["RANKWISE_DATA_CACHE"]).expanduser()
    return Path(runs_dir or "runs").expanduser() / CACHE_DIR


# --------------------------------------------------------------------------- the key

def _file_hash(path: Path, h) -> None:
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)


def content_fingerprint(path: str | Path) -> str:
    """A hash of the bytes of a data file, or of every data file (and its name) in a folder."""
    path = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts)
            and (data_suffix(p)[0] in (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".arrow")
                 or p.name in ("state.json", "dataset_dict.json")))
        for f in files:
            h.update(str(f.relative_to(path)).encode() + b"\0")
            _file_hash(f, h)
    else:
        _file_hash(path, h)
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what the tokenizer does: its full definition, special tokens and chat template."""
    h = hashlib.blake2b(digest_size=16)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # padding/truncation are per-call state the wrapper changes, not the tokenizer
        spec = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("padding", "truncation")}
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:  # a slow tokenizer: its vocabulary
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    special = {k: getattr(tokenizer, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id",
                                                        "bos_token", "eos_token")}
    h.update(json.dumps([type(tokenizer).__name__, special, getattr(tokenizer, "chat_template", None)],
                        default=str).encode())
    return h.hexdigest()


def cache_key(cfg: RunConfig, tokenizer) -> tuple[str, dict]:
    """(key, what went into it): the key names the cache folder, the parts go into its meta.json."""
    d = cfg.data
    rules = hashlib.blake2b(b"".join(p.read_bytes() for p in SOURCES), digest_size=8).hexdigest()
    parts = {
        "version": VERSION,
        "data": content_fingerprint(d.path),
        "val_data": content_fingerprint(d.val_path) if d.val_path else None,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "settings": {"format": d.format, "columns": d.columns, "packing": d.packing, "skip_bad_rows": d.skip_bad_rows,
                     "max_rows": d.max_rows, "val_ratio": d.val_ratio if not d.val_path else None,
                     "max_seq_len": cfg.train.max_seq_len, "seed": cfg.train.seed},
        "rules": rules,
    }
    key = hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=12).hexdigest()
    return key, parts


# --------------------------------------------------------------------------- storing

class ArrowExamples:
    """Tokenized examples read from a memory-mapped Arrow file: a map-style dataset for the
    Trainer (len, [i] → {"input_ids": [...], "labels": [...]}, plus "position_ids" when packed)."""

    def __init__(self, path: Path):
        import pyarrow as pa  # deferred: only the data step needs pyarrow
        import pyarrow.ipc as ipc

        self.path = path
        self.table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        self.columns = self.table.column_names

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return {c: self.table.column(c)[i].as_py() for c in self.columns}

    def __iter__(self):
        for batch in self.table.to_batches():
            yield from batch.to_pylist()


@contextmanager
def _locked(root: Path, key: str):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # another process of this run (or a parallel trial) may be building it
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load(folder: Path):
    from .data import DataReport

    meta = json.loads((folder / "meta.json").read_text())
    report = DataReport(**meta["report"])
    train = ArrowExamples(folder / "train.arrow")
    val = ArrowExamples(folder / "val.arrow") if (folder / "val.arrow").exists() else None
    return train, val, report


def prepare_data(cfg: RunConfig, tokenizer, log=None, build=None, progress=None,
                 root: Path | None = None) -> tuple[Any, Any, Any, dict]:
    """(train, val, report, cache info): from the cache when it holds this build, else built
    into it (by `build(cfg, tokenizer, folder, progress)`, default data_build.build_arrow).
    info: {"dir", "hit", "seconds"}."""
    from .data_build import build_arrow

    build = build or build_arrow
    started = time.monotonic()
    key, parts = cache_key(cfg, tokenizer)
    root = root or cache_root()
    folder = root / key
    with _locked(root, key):
        hit = (folder / "meta.json").exists()
        if hit:
            try:
                train, val, report = _load(folder)
            except (OSError, ValueError, KeyError, TypeError) as e:  # a damaged entry: build it again
                if log:
                    log.warning("data cache: %s is unreadable (%s); building again", folder, e)
                shutil.rmtree(folder, ignore_errors=True)
                hit = False
        if not hit:
            tmp = root / f"{key}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                report = build(cfg, tokenizer, tmp, progress)
                (tmp / "meta.json").write_text(json.dumps({"key": parts, "report": report.to_dict(),
                                                           "data_path": str(cfg.data.path), "created": time.time()},
                                                          indent=1))
                os.replace(tmp, folder)  # whole or not at all: a killed build leaves no half entry
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            train, val, report = _load(folder)
    report.cache_dir, report.cache_hit = str(folder), hit
    train = inputs_trained(cfg, train, report)  # a view: the cached build stays masked (one entry for both)
    info = {"dir": str(folder), "hit": hit, "seconds": round(time.monotonic() - started, 2)}
    return train, val, report, info


def scan_once(path: str | Path, declared: str = "auto", columns: dict[str, str] | None = None):
    """advisor.dataset.scan over the whole file, remembered by the file's content (and the format,
    columns and reading code): the pre-flight check of a re-run, a resume or a sweep trial over a
    million rows costs a hash, not a second read."""
    from rankwise.advisor.dataset import DatasetScan, scan

    rules = hashlib.blake2b(b"".join(p.read_bytes() for p in READING), digest_size=8).hexdigest()
    key = hashlib.blake2b(json.dumps([content_fingerprint(path), declared, columns, rules, str(path)],
                                     sort_keys=True).encode(), digest_size=12).hexdigest()
    memo = cache_root() / "scans" / f"{key}.json"
    try:
        d = json.loads(memo.read_text())
        return DatasetScan(**{**d, "fields": tuple(d["fields"])})
    except (OSError, ValueError, TypeError, KeyError):
        pass
    found = scan(path, declared=declared, columns=columns)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(found.to_dict()))
        os.replace(tmp, memo)
    except OSError:  # a read-only cache folder: the scan still stands
        pass
    return found


# --------------------------------------------------------------------------- telling the user

def data_progress(sink, log):
    """A progress function for the build: `data` events and a train.log line every few seconds."""
    def progress(rows: int, total: int | None, rate: float) -> None:
        eta = (total - rows) / rate if total and rate and total > rows else None
        sink.emit("data", phase="progress", rows=rows, total_rows=total, rows_per_s=round(rate, 1),
                  eta_s=round(eta, 1) if eta is not None else None)
        log.info("data: %d%s rows read, %.0f rows/s%s", rows, f" of ~{total}" if total else "", rate,
                 f", eta {eta:.0f} s" if eta is not None else "")
    return progress


def data_ready(sink, log, report, info: dict) -> None:
    """What was done to the rows, in train.log and as a `data` event (the console and panel show it)."""
    log.info("data: %s %s (%.1f s)", "read from the cache" if info["hit"] else "built and stored in the cache",
             info["dir"], info["seconds"])
    log.info("data: %s", report.to_dict())
    if report.skipped_rows:
        log.warning("data: %d bad rows skipped, e.g. %s", report.skipped_rows, "; ".join(report.skipped_examples))
    if report.truncated_rows:
        log.warning("data: %d rows truncated to train.max_seq_len", report.truncated_rows)
    sink.emit("data", phase="ready", rows=report.train_rows, cached=info["hit"], cache_dir=info["dir"],
              skipped_rows=report.skipped_rows, truncated_rows=report.truncated_rows,
              packing_efficiency=report.packing_efficiency, examples=list(report.skipped_examples[:3]) or None)


# --------------------------------------------------------------------------- listing

def entries(root: Path | None = None) -> list[dict]:
    """The cached datasets: folder, data file, rows, size on disk, age."""
    root = root or cache_root()
    out = []
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "meta.json").exists()):  # not scans/
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        out.append({"dir": str(folder), "data_path": meta.get("data_path"), "created": meta.get("created"),
                    "train_rows": (meta.get("report") or {}).get("train_rows"), "bytes": size})
    return out


def clear(root: Path | None = None) -> tuple[int, int]:
    """Remove every cached dataset: (entries removed, bytes freed)."""
    root = root or cache_root()
    found = entries(root)
    for e in found:
        shutil.rmtree(e["dir"], ignore_errors=True)
    if root.is_dir():
        shutil.rmtree(root / "scans", ignore_errors=True)
        for stale in list(root.glob("*.tmp*")) + list(root.glob("*.lock")):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    return len(found), sum(e["bytes"] for e in found)
