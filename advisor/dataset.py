"""Training data on disk: read rows from any supported file, tell the format, check rows.

Pure and fast: no torch/transformers. pyarrow is imported inside the functions that read
parquet files and saved Hugging Face dataset folders (it is not needed for JSON/CSV).

Row numbers are 1-based and are what a user finds in the file:
- JSONL / NDJSON: the line number (blank lines are skipped but still counted as lines);
- JSON (a list of objects, or `{"data": [...]}`): the object's position in the list;
- CSV: the row as a spreadsheet shows it — the header is row 1, so the first data row
  is row 2 (a quoted cell spanning lines still counts as one row);
- parquet and saved HF datasets: the row index, counting from 1.
Compressed files (`.jsonl.gz`, `.json.gz`, `.csv.gz`; `.zst` when the `zstandard` package is
installed) count the same way in the decompressed text. A folder of data files (a Hub
snapshot's `data/train-*.parquet`) is read shard by shard, each row numbered within its shard
(`RowNo` carries the shard's file; `location` names it).

`iter_rows` raises a `RankwiseError` at the first unreadable row by default; with
`bad="yield"` it yields `(row_number, BadRow(reason))` instead so the caller can count
and skip (that is what `data.skip_bad_rows: true` does).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from .errors import RankwiseError

FORMATS: tuple[str, ...] = ("chat", "sharegpt", "instruction", "prompt_completion", "text")
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
# The fields rankwise reads; data.columns maps a file's own names onto them.
COLUMNS: tuple[str, ...] = ("messages", "conversations", "tools", "instruction", "input", "output", "system",
                            "prompt", "completion", "text")
# ShareGPT speakers (`from`) → chat roles. function_call is an assistant's tool call (its value the
# call as JSON), observation a tool's result: LLaMA-Factory's ShareGPT layout.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
                  "chatgpt": "assistant", "system": "system", "tool": "tool", "observation": "tool",
                  "function": "tool", "ipython": "tool", "function_call": "assistant"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
COMPRESSIONS = (".gz", ".zst")
SKIP_HINT = "fix the row, or set data.skip_bad_rows: true to skip and count bad rows"


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read (broken JSON line, ragged CSV row, not an object)."""

    reason: str


# --------------------------------------------------------------------------- readers

def data_suffix(path: str | Path) -> tuple[str, str]:
    """(".jsonl", ".gz") for data.jsonl.gz; (".csv", "") for data.csv."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in COMPRESSIONS:
        return Path(path.stem).suffix.lower(), suffix
    return suffix, ""


def _open(path: Path):
    """The file's bytes, decompressed (.gz through gzip, .zst through the zstandard package)."""
    comp = data_suffix(path)[1]
    if comp == ".gz":
        return gzip.open(path, "rb")
    if comp == ".zst":
        try:
            import zstandard  # optional: deferred, and only .zst files need it
        except ImportError:
            raise RankwiseError(f"{path}: reading .zst files needs the zstandard package",
                                "pip install zstandard, or decompress the file (zstd -d)") from None
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _unreadable(path: Path, e: Exception) -> RankwiseError:
    return RankwiseError(f"{path}: cannot decompress the file ({e})", "check that the download is complete")


def _jsonl(path: Path, bad: str) -> Iterator[tuple[int, Any]]:
    try:
        yield from _jsonl_lines(path, bad)
    except (EOFError, gzip.BadGzipFile) as e:
        raise _unreadable(path, e) from None
    except OSError as e:
        if data_suffix(path)[1]:
            raise _unreadable(path, e) from None
        raise


def _jsonl_lines(path: Path, bad: str) -> Iterator[tuple[int, Any]]:
    with _open(path) as fh:
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
        with _open(path) as fh:
            text = fh.read().decode("utf-8-sig")
    except (EOFError, gzip.BadGzipFile) as e:
        raise _unreadable(path, e) from None
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
        with io.TextIOWrapper(_open(path), encoding="utf-8-sig", newline="") as fh:
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
    except (EOFError, gzip.BadGzipFile) as e:
        raise _unreadable(path, e) from None


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
                            "data.path is a .jsonl/.json/.csv/.parquet file (.gz allowed), a folder of them "
                            "(e.g. a Hub snapshot's data/train-*.parquet) or a folder written by "
                            "Dataset.save_to_disk (state.json + *.arrow)")
    return files


class RowNo(int):
    """A row number that also knows the shard it is in (rows of a folder of data files)."""

    file: Path | None = None

    def __new__(cls, n: int, file: Path | None = None):
        obj = super().__new__(cls, n)
        obj.file = file
        return obj


def shards(folder: Path) -> list[Path]:
    """The data files of a folder of shards, in name order; when some are named as the train
    split (`train-00000-of-00004.parquet`, `train/…`), only those. Empty if it holds none."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and data_suffix(p)[0] in SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    train = [p for p in found if any(part.lower().startswith("train") for part in p.relative_to(folder).parts)]
    return train or found


def _is_saved_dataset(folder: Path) -> bool:
    return any((folder / f).exists() for f in ("state.json", "dataset_dict.json")) or any(folder.glob("*.arrow"))


def _shard_rows(files: list[Path], bad: str) -> Iterator[tuple[int, Any]]:
    for f in files:
        for n, row in iter_rows(f, bad):
            yield RowNo(n, f), row


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
        if not _is_saved_dataset(path) and shards(path):
            return _shard_rows(shards(path), bad)
        return _hf_folder(path)
    suffix, comp = data_suffix(path)
    if suffix not in SUFFIXES or (comp and suffix == ".parquet"):
        raise RankwiseError(f"{path}: unsupported data file type '{''.join(path.suffixes[-2:]) or '(none)'}'",
                            f"use one of {', '.join(SUFFIXES)} (the text ones may be .gz or .zst), a folder of "
                            "them, or a saved Hugging Face dataset folder")
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
    path = getattr(n, "file", None) or Path(path)
    return f"{path}:{n}" if data_suffix(path)[0] in JSONL_SUFFIXES else f"{path} row {n}"


def _kind(obj: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number" if isinstance(obj, (int, float)) else type(obj).__name__)


# --------------------------------------------------------------------------- formats

def detect_format(row: dict) -> str | None:
    """chat (messages) | sharegpt (conversations) | instruction | prompt_completion | text,
    "preference" (chosen + rejected: recognised to be explained, never trained), or None."""
    if not isinstance(row, dict):
        return None
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "messages" in row:
        return "chat"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row:
        return "instruction"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "text" in row:
        return "text"
    return None


FORMAT_HINT = ("rows need `messages` (chat), `conversations` (sharegpt), `instruction`+`output` (instruction), "
               "`prompt`+`completion` (prompt_completion) or `text` (text); or set data.format, and data.columns "
               "to map other field names (e.g. {output: answer})")


def apply_columns(row: Any, columns: dict[str, str] | None) -> Any:
    """data.columns: the file's field `src` is read as rankwise's field `dst` (moved, so a mapped
    `chosen` no longer marks the row as preference data)."""
    if not columns or not isinstance(row, dict):
        return row
    row = dict(row)
    for dst, src in columns.items():
        if src in row:
            row[dst] = row.pop(src)
    return row


def preference_error(path: str | Path, row: dict) -> RankwiseError:
    """Preference rows (a chosen and a rejected answer): what they are and how to use them for SFT."""
    fields = ", ".join(sorted(row))
    chosen = row.get("chosen")
    if isinstance(chosen, list):
        use = "data.columns: {messages: chosen} (the chosen conversation)"
    elif chosen is None:  # only the field names are known
        use = ("data.columns: {messages: chosen} (chosen conversations) or {completion: chosen} (a prompt and "
               "chosen answer texts)")
    elif "prompt" in row:
        use = "data.columns: {completion: chosen} (prompt + chosen answer, concatenated as written)"
    else:
        use = "data.columns: {text: chosen}"
    also = "; or data.format: chat to train on the rows' `messages`" if "messages" in row else ""
    return RankwiseError(
        f"{path}: this is preference data (fields {fields}: a chosen and a rejected answer per row); rankwise "
        "trains supervised fine-tuning (SFT), which does not learn from preferences",
        f"to fine-tune on the chosen answers only, set {use}{also}; the rejected answers are then not used. "
        "Preference training (DPO, ORPO, KTO) needs a preference trainer such as TRL")


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


def _content(content: Any, i: int) -> str | None | tuple[str]:
    """A message's content as text: a string, None, or a list of parts whose text parts are
    joined with a newline. A problem comes back as a 1-tuple (reason,)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        return (f"message {i} content should be a string or a list of parts, got {_kind(content)}",)
    texts = []
    for j, part in enumerate(content, start=1):
        kind = part.get("type", "text") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind is None:
            return (f"message {i} content part {j} should be an object like {{\"type\": \"text\", \"text\": ...}}, "
                    f"got {_kind(part)}",)
        elif kind == "text":
            return (f"message {i} content part {j} is a text part without a 'text' string",)
        else:
            return (f"message {i} content part {j} is of type {kind!r}: rankwise trains text-only models "
                    "(drop the part, or the row)",)
    return "\n".join(texts)


def _tool_calls(calls: Any, i: int) -> list[dict] | str:
    """OpenAI-style tool calls → [{"type": "function", "function": {"name", "arguments": dict}}]
    (chat templates expect the arguments as an object and write them as JSON), or a reason."""
    if not isinstance(calls, list) or not calls:
        return f"message {i} tool_calls should be a non-empty list, got {_kind(calls)}"
    out = []
    for j, call in enumerate(calls, start=1):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"message {i} tool call {j} needs a function name ({{\"function\": {{\"name\": ..., \"arguments\": ...}}}})"
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except (ValueError, RecursionError):
                return f"message {i} tool call {j} ({fn['name']}) has arguments that are not valid JSON"
        if not isinstance(args, dict):
            return f"message {i} tool call {j} ({fn['name']}) arguments should be an object, got {_kind(args)}"
        item = {"type": "function", "function": {"name": fn["name"], "arguments": args}}
        if isinstance(call.get("id"), str):
            item["id"] = call["id"]
        out.append(item)
    return out


def _sharegpt_turns(row: dict) -> list | str:
    turns = row.get("conversations")
    if turns is None:
        return "missing field 'conversations'"
    if not isinstance(turns, list) or not turns:
        return f"'conversations' should be a non-empty list of {{from, value}} objects, got {_kind(turns)}"
    msgs = []
    for i, t in enumerate(turns, start=1):
        if not isinstance(t, dict):
            return f"turn {i} should be an object with from and value, got {_kind(t)}"
        who = t.get("from", t.get("role"))
        if who not in SHAREGPT_ROLES:
            return (f"turn {i} has unknown speaker {who!r} (expected {', '.join(SHAREGPT_ROLES)})"
                    if who is not None else f"turn {i} has no 'from'")
        value = t.get("value", t.get("content"))
        if who == "function_call":  # the value is the call itself: {"name": ..., "arguments": ...}
            try:
                call = json.loads(value) if isinstance(value, str) else value
            except (ValueError, RecursionError):
                return f"turn {i} (function_call) is not a JSON tool call"
            msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            msgs.append({"role": SHAREGPT_ROLES[who], "content": value})
    out = {"messages": msgs}
    if "tools" in row:
        out["tools"] = row["tools"]
    return _chat_messages(out, "turn")


def _chat_messages(row: dict, noun: str = "message") -> list | str:
    """The row's conversation as clean messages ({role, content: str | None, tool_calls?,
    tool_call_id?, name?}), or the reason it cannot be trained on."""
    msgs = row.get("messages")
    if msgs is None:
        return "missing field 'messages'"
    if not isinstance(msgs, list) or not msgs:
        return f"'messages' should be a non-empty list of {{role, content}} objects, got {_kind(msgs)}"
    has_answer = False
    out = []
    for i, m in enumerate(msgs, start=1):
        if not isinstance(m, dict):
            return f"{noun} {i} should be an object with role and content, got {_kind(m)}"
        role = m.get("role")
        if role not in ROLES:
            return (f"{noun} {i} has unknown role {role!r} (expected {', '.join(ROLES)})" if "role" in m
                    else f"{noun} {i} has no 'role'")
        content = _content(m.get("content"), i)
        if isinstance(content, tuple):
            return content[0].replace("message", noun, 1)
        clean = {"role": role, "content": content}
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = _tool_calls(m["tool_calls"], i)
            if isinstance(calls, str):
                return calls.replace("message", noun, 1)
            clean["tool_calls"] = calls
        if content is None and "tool_calls" not in clean:
            return f"{noun} {i} content should be a string, got null"
        if content is not None and _surrogate(content, f"{noun} {i} content"):
            return _surrogate(content, f"{noun} {i} content")
        if role == "tool":
            clean.update({k: m[k] for k in ("tool_call_id", "name") if isinstance(m.get(k), str)})
        if role == "assistant":
            if not (content or "").strip() and "tool_calls" not in clean:
                return f"{noun} {i} is an empty assistant response (nothing to learn from)"
            has_answer = True
        out.append(clean)
    if not has_answer:
        return "no assistant message (nothing to learn from)"
    return out


def _chat_row(row: dict, fmt: str) -> dict | str:
    msgs = _sharegpt_turns(row) if fmt == "sharegpt" else _chat_messages(row)
    if isinstance(msgs, str):
        return msgs
    out = {"messages": msgs}
    tools = row.get("tools")
    if isinstance(tools, str) and tools.strip():  # ShareGPT files often keep the tool list as a JSON string
        try:
            tools = json.loads(tools)
        except (ValueError, RecursionError):
            return "field 'tools' is not valid JSON"
    if tools:
        if not isinstance(tools, list):
            return f"field 'tools' should be a list of tool definitions, got {_kind(tools)}"
        out["tools"] = tools
    return out


def _check_instruction(row: dict) -> str | None:
    return (_string(row, "instruction", nonempty=True) or _string(row, "input", required=False)
            or _string(row, "system", required=False) or _string(row, "output", nonempty=True))


def _check_prompt_completion(row: dict) -> str | None:
    return _string(row, "prompt") or _string(row, "completion", nonempty=True)


def _check_text(row: dict) -> str | None:
    return _string(row, "text", nonempty=True)


def _check_preference(row: dict) -> str | None:
    return ("preference data (chosen/rejected): supervised fine-tuning does not train on it; "
            "set data.columns (e.g. {messages: chosen}) to train on the chosen answers")


CHECKS = {"instruction": _check_instruction, "prompt_completion": _check_prompt_completion, "text": _check_text,
          "preference": _check_preference}


def prepare_row(row: dict | BadRow, fmt: str) -> tuple[dict | None, str | None]:
    """(the row as the trainer reads it, None) or (None, why it cannot be trained on in format
    `fmt`). Chat and ShareGPT rows come back as {"messages": clean messages, "tools"?}."""
    if isinstance(row, BadRow):
        return None, row.reason
    if fmt in ("chat", "sharegpt"):
        out = _chat_row(row, fmt)
        reason = out if isinstance(out, str) else None
    else:
        out, reason = row, CHECKS[fmt](row)
    if reason:
        other = detect_format(row)
        if other and other != fmt:  # a row of another format in the middle of the file
            reason += f" (this row looks like {other} data, the file's format is {fmt})"
        return None, reason
    return out, None


def check_row(row: dict | BadRow, fmt: str) -> str | None:
    """Why this row cannot be trained on in format `fmt`, or None if it is fine."""
    return prepare_row(row, fmt)[1]


def row_chars(row: dict, fmt: str) -> int:
    """Characters of text in a prepared row (see prepare_row): the size figure that scan reports."""
    if fmt in ("chat", "sharegpt"):
        return sum(len(m["content"] or "") + sum(len(json.dumps(c["function"]["arguments"]))
                                                for c in m.get("tool_calls", ())) for m in row["messages"])
    keys = {"instruction": ("instruction", "input", "system", "output"), "prompt_completion": ("prompt", "completion"),
            "text": ("text",)}[fmt]
    return sum(len(row.get(k) or "") for k in keys)


def unknown_format(path: str | Path, fields: list[str]) -> RankwiseError:
    """The error for a file whose rows match no format, with the likeliest fix."""
    hint = FORMAT_HINT
    if "prompt" in fields or "completion" in fields:
        hint = "prompt_completion rows need both `prompt` and `completion`; " + FORMAT_HINT
    elif "chosen" in fields or "rejected" in fields:
        hint = "preference rows need both `chosen` and `rejected`; " + FORMAT_HINT
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


def scan(path: str | Path, limit: int | None = None, declared: str = "auto", max_problems: int = 5,
         columns: dict[str, str] | None = None) -> DatasetScan:
    """Read up to `limit` rows: format, fields, length percentiles (characters), bad rows.
    `columns` is data.columns (the file's field names read as rankwise's)."""
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
            row = apply_columns(row, columns)
            if fmt is None:
                fmt = detect_format(row)
        if fmt:
            good, reason = prepare_row(row, fmt)
        else:
            reason = row.reason if isinstance(row, BadRow) else f"cannot tell the format from the fields {sorted(row)}"
        if reason:
            bad += 1
            if len(problems) < max_problems:
                problems.append(f"{location(path, n)}: {reason}")
        else:
            lengths.append(row_chars(good, fmt))
    lengths.sort()
    pick = (lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))]) if lengths else (lambda q: 0)
    return DatasetScan(path=str(path), rows=rows, format=fmt, fields=tuple(fields), min_chars=pick(0.0),
                       median_chars=int(statistics.median(lengths)) if lengths else 0, p95_chars=pick(0.95),
                       max_chars=lengths[-1] if lengths else 0, bad_rows=bad, first_problems=problems,
                       complete=complete)
