"""Training data on disk: read rows from any supported file, tell the format, check rows.

Pure and fast: no torch/transformers. pyarrow is imported inside the functions that read
parquet files and saved Hugging Face dataset folders (it is not needed for JSON/CSV).

Row numbers are 1-based and are what a user finds in the file:
- JSONL / NDJSON: the line number (blank lines are skipped but still counted as lines);
- JSON (a list of objects, or `{"data": [...]}`): the object's position in the list;
- CSV: the row as a spreadsheet shows it — the header is row 1, so the first data row
  is row 2 (a quoted cell spanning lines still counts as one row);
- parquet and saved HF datasets: the row index, counting from 1.

`iter_rows` raises a `RankwiseError` at the first unreadable row by default; with
`bad="yield"` it yields `(row_number, BadRow(reason))` instead so the caller can count
and skip (that is what `data.skip_bad_rows: true` does).
"""
from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from .errors import RankwiseError

FORMATS: tuple[str, ...] = ("chat", "instruction", "prompt_completion", "text")
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
SKIP_HINT = "fix the row, or set data.skip_bad_rows: true to skip and count bad rows"


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read (broken JSON line, ragged CSV row, not an object)."""

    reason: str


# --------------------------------------------------------------------------- readers

def _jsonl(path: Path, bad: str) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield _bad(path, n, f"not valid UTF-8 text ({e.reason} at byte {e.start})", bad)
                continue
            if n == 1:
                line = line.lstrip("\ufeff")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield _bad(path, n, f"not valid JSON ({e.msg} at column {e.colno})", bad)
                continue
            except (ValueError, RecursionError) as e:  # an integer over 4300 digits, nesting too deep
                yield _bad(path, n, f"not readable JSON ({str(e)[:100]})", bad)
                continue
            if not isinstance(obj, dict):
                yield _bad(path, n, f"expected a JSON object per line, got {_kind(obj)}", bad)
                continue
            yield n, obj


def _json(path: Path, bad: str) -> Iterator[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise RankwiseError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})",
                            "save the file as UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # one object per line in a .json file: read it as JSONL
            yield from _jsonl(path, bad)
            return
        raise RankwiseError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})",
                            "a .json dataset is a list of objects, or {\"data\": [...]}; "
                            "one object per line belongs in a .jsonl file") from None
    except (ValueError, RecursionError) as e:  # an integer over 4300 digits, nesting too deep
        raise RankwiseError(f"{path}: not readable JSON ({str(e)[:100]})", "check the file's numbers and nesting") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise RankwiseError(f"{path}: expected a JSON list of rows (or {{\"data\": [...]}}), got {_kind(data)}",
                            "wrap the rows in a list: [{...}, {...}]")
    for n, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            yield _bad(path, n, f"expected an object, got {_kind(obj)}", bad)
        else:
            yield n, obj


def _csv(path: Path, bad: str) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(2**31 - 1)  # the default (128 KiB per cell) is too small for long documents
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                return
            header = [h.strip() for h in header]
            for n, cells in enumerate(reader, start=2):  # spreadsheet row: the header is row 1
                if not cells:
                    continue
                if len(cells) != len(header):
                    yield _bad(path, n, f"has {len(cells)} cells but the header has {len(header)} "
                                        f"({', '.join(header)})", bad)
                    continue
                yield n, dict(zip(header, cells))
    except UnicodeDecodeError as e:
        raise RankwiseError(f"{path}: not valid UTF-8 text ({e.reason} at byte {e.start})",
                            "save the file as UTF-8 CSV") from None
    except csv.Error as e:
        raise RankwiseError(f"{path}: not a readable CSV file ({e})", "check the quoting") from None


def _parquet(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq  # deferred: only parquet needs pyarrow

    try:
        pf = pq.ParquetFile(path)
        n = 0
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                n += 1
                yield n, row
    except (OSError, ValueError) as e:  # ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise RankwiseError(f"{path}: not a readable parquet file ({e})", "re-export the data") from None


def _hf_arrow_files(folder: Path) -> list[Path]:
    """The .arrow shards of a `Dataset.save_to_disk` folder, in order."""
    if (folder / "dataset_dict.json").exists():  # a DatasetDict: use its train split
        splits = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if "train" not in splits:
            raise RankwiseError(f"{folder}: a saved DatasetDict without a 'train' split (splits: {', '.join(splits)})",
                                f"point data.path at one split folder, e.g. {folder / splits[0]}" if splits else None)
        folder = folder / "train"
    state = folder / "state.json"
    if state.exists():
        try:
            files = [folder / f["filename"] for f in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError) as e:
            raise RankwiseError(f"{state}: not a saved Hugging Face dataset state ({e})") from None
    else:
        files = sorted(folder.glob("*.arrow"))
    if not files:
        raise RankwiseError(f"{folder}: a folder without data files",
                            "data.path is a .jsonl/.json/.csv/.parquet file or a folder written by "
                            "Dataset.save_to_disk (state.json + *.arrow)")
    return files


def _hf_folder(folder: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa  # deferred: only parquet and saved datasets need pyarrow
    import pyarrow.ipc as ipc

    n = 0
    for f in _hf_arrow_files(folder):
        try:
            with open(f, "rb") as fh:
                try:
                    reader = ipc.open_stream(fh)  # save_to_disk writes the IPC stream format
                except pa.ArrowInvalid:
                    fh.seek(0)
                    reader = ipc.open_file(fh)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                else:
                    batches = iter(reader)
                for batch in batches:
                    for row in batch.to_pylist():
                        n += 1
                        yield n, row
        except (OSError, ValueError) as e:
            raise RankwiseError(f"{f}: not a readable Arrow file ({e})", "re-save the dataset") from None


def iter_rows(path: str | Path, bad: Literal["raise", "yield"] = "raise") -> Iterator[tuple[int, dict | BadRow]]:
    """Yield (row_number, row) from a dataset file or saved HF dataset folder.

    bad="raise": an unreadable row raises RankwiseError "file:N: reason".
    bad="yield": it is yielded as (N, BadRow(reason)) for the caller to count.
    """
    path = Path(path)
    if not path.exists():
        raise RankwiseError(f"data file not found: {path}", "check data.path (relative paths are resolved "
                                                           "against the preset's folder)")
    if path.is_dir():
        return _hf_folder(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise RankwiseError(f"{path}: unsupported data file type '{path.suffix or '(none)'}'",
                            f"use one of {', '.join(SUFFIXES)} or a saved Hugging Face dataset folder")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise RankwiseError(f"{path}: cannot read the file ({e.strerror})", "check its permissions") from None
    if suffix in JSONL_SUFFIXES:
        return _jsonl(path, bad)
    if suffix == ".json":
        return _json(path, bad)
    if suffix == ".csv":
        return _csv(path, bad)
    return _parquet(path)


def _bad(path: Path, n: int, reason: str, bad: str) -> tuple[int, BadRow]:
    if bad == "raise":
        raise RankwiseError(f"{path}:{n}: {reason}", SKIP_HINT)
    return n, BadRow(reason)


def location(path: str | Path, n: int) -> str:
    """Where a row is, as messages say it: `file:N` for JSONL (a line; editors jump there),
    `file row N` for the other formats (see the module docstring for what N counts)."""
    path = Path(path)
    return f"{path}:{n}" if path.suffix.lower() in JSONL_SUFFIXES else f"{path} row {n}"


def _kind(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number" if isinstance(obj, (int, float)) else type(obj).__name__)


# --------------------------------------------------------------------------- formats

def detect_format(row: dict) -> str | None:
    """chat (messages) | instruction | prompt_completion | text, or None if unrecognised."""
    if not isinstance(row, dict):
        return None
    if "messages" in row:
        return "chat"
    if "instruction" in row:
        return "instruction"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


FORMAT_HINT = ("rows need `messages` (chat), `instruction`+`output` (instruction), "
               "`prompt`+`completion` (prompt_completion) or `text` (text); or set data.format")


def _string(row: dict, key: str, *, required: bool = True, nonempty: bool = False) -> str | None:
    if key not in row or row[key] is None:
        return f"missing field '{key}'" if required else None
    if not isinstance(row[key], str):
        return f"field '{key}' should be a string, got {_kind(row[key])}"
    if nonempty and not row[key].strip():
        return f"empty '{key}' (nothing to learn from)"
    return _surrogate(row[key], f"field '{key}'")


def _surrogate(text: str, what: str) -> str | None:
    """JSON allows "\ud800" escapes that are no character; tokenizers reject them mid-run."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{what} holds a lone UTF-16 surrogate escape ({text[e.start]!r}), not a character"
    return None


def _check_chat(row: dict) -> str | None:
    msgs = row.get("messages")
    if msgs is None:
        return "missing field 'messages'"
    if not isinstance(msgs, list) or not msgs:
        return f"'messages' should be a non-empty list of {{role, content}} objects, got {_kind(msgs)}"
    has_answer = False
    for i, m in enumerate(msgs, start=1):
        if not isinstance(m, dict):
            return f"message {i} should be an object with role and content, got {_kind(m)}"
        role = m.get("role")
        if role not in ROLES:
            return (f"message {i} has unknown role {role!r} (expected {', '.join(ROLES)})" if "role" in m
                    else f"message {i} has no 'role'")
        content = m.get("content")
        if not isinstance(content, str):
            return f"message {i} content should be a string, got {_kind(content)}"
        if _surrogate(content, f"message {i} content"):
            return _surrogate(content, f"message {i} content")
        if role == "assistant":
            if not content.strip():
                return f"message {i} is an empty assistant response (nothing to learn from)"
            has_answer = True
    if not has_answer:
        return "no assistant message (nothing to learn from)"
    return None


def _check_instruction(row: dict) -> str | None:
    return (_string(row, "instruction", nonempty=True) or _string(row, "input", required=False)
            or _string(row, "system", required=False) or _string(row, "output", nonempty=True))


def _check_prompt_completion(row: dict) -> str | None:
    return _string(row, "prompt") or _string(row, "completion", nonempty=True)


def _check_text(row: dict) -> str | None:
    return _string(row, "text", nonempty=True)


CHECKS = {"chat": _check_chat, "instruction": _check_instruction,
          "prompt_completion": _check_prompt_completion, "text": _check_text}


def check_row(row: dict | BadRow, fmt: str) -> str | None:
    """Why this row cannot be trained on in format `fmt`, or None if it is fine."""
    if isinstance(row, BadRow):
        return row.reason
    reason = CHECKS[fmt](row)
    if reason:
        other = detect_format(row)
        if other and other != fmt:  # a row of another format in the middle of the file
            reason += f" (this row looks like {other} data, the file's format is {fmt})"
    return reason


def row_chars(row: dict, fmt: str) -> int:
    """Characters of text in a (valid) row: the size figure that scan reports."""
    if fmt == "chat":
        return sum(len(m["content"]) for m in row["messages"])
    keys = {"instruction": ("instruction", "input", "system", "output"), "prompt_completion": ("prompt", "completion"),
            "text": ("text",)}[fmt]
    return sum(len(row.get(k) or "") for k in keys)


def unknown_format(path: str | Path, fields: list[str]) -> RankwiseError:
    """The error for a file whose rows match no format, with the likeliest fix."""
    hint = FORMAT_HINT
    if "conversations" in fields:
        hint = ("ShareGPT rows (`conversations` of {from, value}) need converting to `messages` of "
                "{role, content} (human → user, gpt → assistant); " + FORMAT_HINT)
    elif "prompt" in fields or "completion" in fields:
        hint = "prompt_completion rows need both `prompt` and `completion`; " + FORMAT_HINT
    return RankwiseError(f"{path}: cannot tell the data format from the fields {fields or '(no rows)'}", hint)


# --------------------------------------------------------------------------- scan

@dataclass(frozen=True)
class DatasetScan:
    """A quick look at a dataset: for `advise --dataset` and the TUI (no tokenizer needed)."""

    path: str
    rows: int  # rows read (good + bad)
    format: str | None
    fields: tuple[str, ...]
    min_chars: int
    median_chars: int
    p95_chars: int
    max_chars: int
    bad_rows: int
    first_problems: list[str] = field(default_factory=list)
    complete: bool = True  # False when `limit` stopped the scan early

    def to_dict(self) -> dict:
        from dataclasses import asdict
        d = asdict(self)
        d["fields"] = list(self.fields)
        return d


def scan(path: str | Path, limit: int | None = None, declared: str = "auto", max_problems: int = 5) -> DatasetScan:
    """Read up to `limit` rows: format, fields, length percentiles (characters), bad rows."""
    path = Path(path)
    fmt = None if declared == "auto" else declared
    rows = bad = 0
    fields: dict[str, None] = {}
    lengths: list[int] = []
    problems: list[str] = []
    complete = True
    for n, row in iter_rows(path, bad="yield"):
        if limit is not None and rows >= limit:
            complete = False
            break
        rows += 1
        if isinstance(row, dict):
            fields.update(dict.fromkeys(row))
            if fmt is None:
                fmt = detect_format(row)
        if fmt:
            reason = check_row(row, fmt)
        else:
            reason = row.reason if isinstance(row, BadRow) else f"cannot tell the format from the fields {sorted(row)}"
        if reason:
            bad += 1
            if len(problems) < max_problems:
                problems.append(f"{location(path, n)}: {reason}")
        else:
            lengths.append(row_chars(row, fmt))
    lengths.sort()
    pick = (lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))]) if lengths else (lambda q: 0)
    return DatasetScan(path=str(path), rows=rows, format=fmt, fields=tuple(fields), min_chars=pick(0.0),
                       median_chars=int(statistics.median(lengths)) if lengths else 0, p95_chars=pick(0.95),
                       max_chars=lengths[-1] if lengths else 0, bad_rows=bad, first_problems=problems,
                       complete=complete)
