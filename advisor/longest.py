"""The longest rows of the data a scan left unread (advisor/dataset.py reads the first SCAN_ROWS): the memory peak is
at the longest row, whatever the scan's limit. A JSONL file's longest lines in one pass at about the speed of reading
it, a parquet file's or a saved dataset's longest rows from their Arrow batches, a folder of shards shard by shard.
Pure and fast: no torch/transformers; pyarrow is imported where Arrow files are read."""
from __future__ import annotations

import copy
import heapq
from pathlib import Path
from typing import Any, Iterable, Iterator

from .readers import (COUNT_CHUNK, JSONL_SUFFIXES, TOKEN_LONGEST, arrow_batches, data_suffix, hf_arrow_files,
                      is_saved_dataset, parse_line, shards)
from .rowformat import BadRow


def unread(path: Path, stopped: int) -> list[tuple[Path | list[Path], int]] | None:
    """What a scan that stopped at row `stopped` left unread, as (where, rows to skip) for longest_rows: the rest
    of a data file or of a saved dataset's Arrow files, and, in a folder of shards (`stopped` a RowNo naming its
    file), the rest of that shard and every later one. None where a compressed file is among them (it cannot be
    searched faster than it is parsed)."""
    if path.is_dir() and is_saved_dataset(path):
        return [(hf_arrow_files(path), stopped - 1)]
    if path.is_file():
        return [(path, stopped - 1)] if _searchable(path) else None
    files = shards(path)
    at = getattr(stopped, "file", None)
    if at not in files:
        return None
    rest = [(at, stopped - 1)] + [(f, 0) for f in files[files.index(at) + 1:]]
    return rest if all(_searchable(f) for f, _ in rest) else None


def _searchable(path: Path) -> bool:
    suffix, comp = data_suffix(path)
    return path.is_file() and not comp and suffix in (*JSONL_SUFFIXES, ".parquet")


def longest_rows(where: Path | list[Path], skip: int) -> list[tuple[int, int, dict | BadRow | None]]:
    """(bytes, row number, row) of the TOKEN_LONGEST rows largest in bytes after the first `skip`: a JSONL file's
    longest lines, or the rows of a parquet file or of Arrow files (a saved dataset's) with the most text. Kept per
    file version and `skip` (the last LONGEST_KEPT searches): the plans of several finished runs on one file search
    it once. A copy each time: the rows are prepared in place."""
    files = where if isinstance(where, list) else [where]
    key = (skip, *((str(f.resolve()), (st := f.stat()).st_size, st.st_mtime_ns) for f in files))
    if key not in _LONGEST:
        while len(_LONGEST) >= LONGEST_KEPT:
            del _LONGEST[next(iter(_LONGEST))]
        _LONGEST[key] = _search(where, skip)
    return copy.deepcopy(_LONGEST[key])


LONGEST_KEPT = 8
_LONGEST: dict[tuple, list] = {}


def _search(where: Path | list[Path], skip: int) -> list[tuple[int, int, dict | BadRow | None]]:
    if isinstance(where, list):
        return arrow_longest((b for f in where for b in _arrow_file_batches(f)), skip)
    if data_suffix(where)[0] == ".parquet":
        import pyarrow.parquet as pq  # deferred: only parquet needs pyarrow

        return arrow_longest(pq.ParquetFile(where).iter_batches(batch_size=4096), skip)
    return [(len(line), n, parse_line(n, line)) for n, line in longest_lines(where, skip)]


def _arrow_file_batches(path: Path) -> Iterator[Any]:
    with open(path, "rb") as fh:
        yield from arrow_batches(fh)


def arrow_longest(batches: Iterable[Any], skip: int, k: int = TOKEN_LONGEST) -> list[tuple[int, int, dict]]:
    """(bytes of text, row number from 1, row) of the `k` rows of Arrow record batches with the most text after the
    first `skip`: each row's string bytes summed over its columns, nested lists and structs included (a
    conversation's messages), computed a batch at a time in Arrow and numpy; only the rows kept become Python."""
    import numpy as np  # deferred: with pyarrow, only for Arrow data

    heap: list[tuple[int, int, dict]] = []  # a min-heap of (bytes, row number, row)
    before = 0
    for batch in batches:
        start = max(0, skip - before)
        first = before + start + 1  # the row number of sizes[0]
        before += batch.num_rows
        if start >= batch.num_rows:
            continue
        sizes = sum((_text_bytes(col) for col in batch.columns), np.zeros(batch.num_rows, dtype=np.int64))[start:]
        for i in np.argsort(sizes)[::-1][:k]:
            size, n = int(sizes[i]), first + int(i)
            if len(heap) >= k and size <= heap[0][0]:
                break  # sorted: the rest of this batch is no bigger (only the kept rows become Python)
            keep_largest(heap, (size, n, batch.slice(start + int(i), 1).to_pylist()[0]), k)
    return sorted(heap, key=lambda e: e[1])


def _text_bytes(arr: Any) -> Any:
    """Each row's bytes of string (and binary) data in an Arrow array, through lists and structs; 0 for the rest."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.fill_null(pc.binary_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        return np.bincount(parents, weights=_text_bytes(pc.list_flatten(arr)), minlength=len(arr)).astype(np.int64)
    if pa.types.is_struct(t):
        return sum((_text_bytes(f) for f in arr.flatten()), np.zeros(len(arr), dtype=np.int64))
    return np.zeros(len(arr), dtype=np.int64)


def longest_lines(path: Path, skip: int, k: int = TOKEN_LONGEST) -> list[tuple[int, bytes]]:
    """The `k` longest lines in bytes of an uncompressed JSONL file after its first `skip`, with their line numbers
    (1-based, as iter_rows numbers them), in file order. One pass at about the speed of reading the file (COUNT_CHUNK
    bytes a read, split into lines in C): a scan that stopped at its limit takes the longest row of the rest from
    these. A row's bytes hold its characters, so the row longest in characters is among them unless more than `k`
    rows beyond it are longer in bytes (JSON's escapes, multi-byte characters)."""
    heap: list[tuple[int, int, bytes]] = []  # a min-heap of (bytes, line number, line)
    before = 0  # lines before this read's first
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(COUNT_CHUNK):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            _keep_longest(heap, lines, before, skip, k)
            before += len(lines)
    if tail:
        _keep_longest(heap, [tail], before, skip, k)
    return sorted((n, line) for _, n, line in heap)


def _keep_longest(heap: list, lines: list[bytes], before: int, skip: int, k: int) -> None:
    start = max(0, skip - before)
    for n, line in enumerate(lines[start:] if start else lines, start=before + start + 1):
        keep_largest(heap, (len(line), n, line), k)


def keep_largest(heap: list, entry: tuple, k: int) -> None:
    """Keep `entry` (its size first) in the min-heap of the `k` largest where it is larger than the smallest kept."""
    if len(heap) < k:
        heapq.heappush(heap, entry)
    elif entry[0] > heap[0][0]:
        heapq.heapreplace(heap, entry)
