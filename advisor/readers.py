"""Training data on disk: read rows from any supported file and count them.

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

`count_rows` counts the rows of the whole data where that is cheap; advisor/longest.py finds the longest of the rows
a scan (advisor/dataset.py) left unread.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any, Iterator, Literal

from .errors import RankwiseError
from .rowformat import BadRow, _kind

JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
COMPRESSIONS = (".gz", ".zst")
SKIP_HINT = "fix the row, or set data.skip_bad_rows: true to skip and count bad rows"
TOKEN_LONGEST = 256  # the longest rows the scan tokenizes for the longest row in tokens, and a search keeps


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


def jsonl_lines(path: Path) -> Iterator[bytes]:
    """The raw lines of a JSONL file (decompressed), as `for line in file` gives them; a broken
    compressed file is a RankwiseError naming it."""
    try:
        with _open(path) as fh:
            yield from fh
    except (EOFError, gzip.BadGzipFile) as e:
        raise _unreadable(path, e) from None
    except OSError as e:
        if data_suffix(path)[1]:
            raise _unreadable(path, e) from None
        raise


def parse_line(n: int, raw: bytes) -> dict | BadRow | None:
    """Line `n` (1-based) of a JSONL file: the row, why it cannot be read, or None for a blank line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return BadRow(f"not valid UTF-8 text ({e.reason} at byte {e.start})")
    if n == 1:
        line = line.lstrip("\ufeff")
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return BadRow(f"not valid JSON ({e.msg} at column {e.colno})")
    except (ValueError, RecursionError) as e:  # an integer over 4300 digits, nesting too deep
        return BadRow(f"not readable JSON ({str(e)[:100]})")
    if not isinstance(obj, dict):
        return BadRow(f"expected a JSON object per line, got {_kind(obj)}")
    return obj


def _jsonl(path: Path, bad: str) -> Iterator[tuple[int, Any]]:
    for n, raw in enumerate(jsonl_lines(path), start=1):
        row = parse_line(n, raw)
        if isinstance(row, BadRow):
            yield _bad(path, n, row.reason, bad)
        elif row is not None:
            yield n, row


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


def hf_arrow_files(folder: Path) -> list[Path]:
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


def is_saved_dataset(folder: Path) -> bool:
    return any((folder / f).exists() for f in ("state.json", "dataset_dict.json")) or any(folder.glob("*.arrow"))


def _shard_rows(files: list[Path], bad: str) -> Iterator[tuple[int, Any]]:
    for f in files:
        for n, row in iter_rows(f, bad):
            yield RowNo(n, f), row


def arrow_batches(source) -> Iterator[Any]:
    """The record batches of an open Arrow file: the IPC stream format save_to_disk writes, else the file format."""
    import pyarrow as pa  # deferred: only parquet and saved datasets need pyarrow
    import pyarrow.ipc as ipc

    try:
        return iter(ipc.open_stream(source))
    except pa.ArrowInvalid:
        source.seek(0)
        reader = ipc.open_file(source)
        return (reader.get_batch(i) for i in range(reader.num_record_batches))


def _hf_folder(folder: Path) -> Iterator[tuple[int, Any]]:
    n = 0
    for f in hf_arrow_files(folder):
        try:
            with open(f, "rb") as fh:
                for batch in arrow_batches(fh):
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
        if not is_saved_dataset(path) and shards(path):
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
    return f"{location_prefix(getattr(n, 'file', None) or path)}{n}"


def location_prefix(path: str | Path) -> str:
    """`location(path, n)` without the number: "file:" or "file row "."""
    path = Path(path)
    return f"{path}:" if data_suffix(path)[0] in JSONL_SUFFIXES else f"{path} row "


def jsonl_files(path: str | Path) -> list[Path] | None:
    """The files that hold `path`'s rows when every one is JSONL (a .jsonl file, or a folder of
    .jsonl shards, compressed or not), in the order iter_rows reads them; else None."""
    path = Path(path)
    if path.is_dir():
        found = [] if is_saved_dataset(path) else shards(path)
        return found if found and all(data_suffix(f)[0] in JSONL_SUFFIXES for f in found) else None
    return [path] if data_suffix(path)[0] in JSONL_SUFFIXES else None



# --------------------------------------------------------------------------- counting

COUNT_CHUNK = 1 << 24  # bytes a read when counting a JSONL file's lines
COUNT_READ_BYTES = 128 << 20  # a file counted by reading its rows (compressed JSONL, CSV) is at most this big on disk


_COUNTED: dict[tuple, int | None] = {}  # (file, size, mtime) → its rows: every plan of one process counts it once


def count_rows(path: str | Path) -> int | None:
    """The rows of the whole data where that is cheap: an uncompressed JSONL file's lines (its newlines counted, blank
    lines taken off as runs of two newlines find them), a parquet file's metadata, a saved dataset's Arrow batches
    (memory-mapped), a JSON list (parsed whole, as reading its first row already did), a compressed JSONL file's
    lines and a CSV file's rows (read, up to COUNT_READ_BYTES on disk), a folder of shards summed. None for a bigger
    compressed JSONL or CSV file, or an unreadable one."""
    path = Path(path)
    try:
        if path.is_dir():
            if is_saved_dataset(path):
                return _arrow_rows(hf_arrow_files(path))
            counts = [count_rows(f) for f in shards(path)]
            return sum(counts) if counts and None not in counts else None
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _COUNTED:
            _COUNTED[key] = _count_file(path, st.st_size)
        return _COUNTED[key]
    except (OSError, ValueError, RankwiseError):  # ArrowInvalid is a ValueError
        return None


def _count_file(path: Path, size: int) -> int | None:
    suffix, comp = data_suffix(path)
    if suffix in JSONL_SUFFIXES and not comp:
        return _jsonl_line_count(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # deferred: only parquet needs pyarrow

        return pq.ParquetFile(path).metadata.num_rows
    if suffix == ".json":
        return sum(1 for _ in _json(path, "yield"))
    if size > COUNT_READ_BYTES:
        return None
    if suffix in JSONL_SUFFIXES:
        return sum(1 for line in jsonl_lines(path) if line.strip())
    return sum(1 for _ in _csv(path, "yield")) if suffix == ".csv" else None


def _jsonl_line_count(path: Path) -> int:
    newlines = blank = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(COUNT_CHUNK):
            newlines += chunk.count(b"\n")
            blank += chunk.count(b"\n\n") + (last == b"\n" and chunk[:1] == b"\n")
            last = chunk[-1:]
    return newlines - blank + (last not in (b"\n", b""))  # a last line without its newline


def _arrow_rows(files: list[Path]) -> int:
    import pyarrow as pa  # deferred: only saved datasets need pyarrow

    total = 0
    for f in files:
        with pa.memory_map(str(f), "r") as source:  # batches mapped, not read
            total += sum(batch.num_rows for batch in arrow_batches(source))
    return total
