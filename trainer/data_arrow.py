"""Tokenized examples in Arrow files: writing them, the validation split, best-fit packing.

Examples are int32 lists (4 bytes a token, memory-mapped when read back), written a batch at a
time by `trainer/data_build.py`, never held as Python lists of the whole set.

Packing (data.packing) is best-fit decreasing: examples are placed whole (never cut) into
max_seq_len sequences, each into the fullest one it still fits, and every packed sequence
carries position_ids that restart at 0 for each example. transformers (5.x, masking_utils)
turns restarting position_ids without an attention mask into a block-diagonal mask for the
eager, SDPA and flex kernels and flash-attention reads them as sequence boundaries, so no
example attends to another (tests/test_data_packing.py checks the logits).
"""
from __future__ import annotations

from array import array
from pathlib import Path


# --------------------------------------------------------------------------- writing

def _schema(packed: bool = False):
    import pyarrow as pa

    cols = ["input_ids", "labels"] + (["position_ids"] if packed else [])
    return pa.schema([(c, pa.list_(pa.int32())) for c in cols])


def list_array(flat, lengths):
    """A list<int32> column from flat values and the length of each list (arrays or numpy)."""
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


class Writer:
    """An Arrow IPC file of examples, written a record batch at a time."""

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


# --------------------------------------------------------------------------- split and pack

def split(all_path: Path, held: set[int], train_path: Path, val_path: Path) -> None:
    """Copy the examples of `all_path` to `val_path` (their indices in `held`) and `train_path` (the rest)."""
    import numpy as np
    import pyarrow as pa

    import pyarrow.ipc as ipc

    held_sorted = np.fromiter(sorted(held), dtype=np.int64, count=len(held))
    train_w, val_w = Writer(train_path), Writer(val_path)
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


def pack_file(train_path: Path, lengths: array, capacity: int, out: Path) -> tuple[int, int]:
    """Write the packed sequences of `train_path` to `out`; (sequences, tokens)."""
    import numpy as np
    import pyarrow as pa

    table = _open_table(train_path)
    bins = best_fit(lengths, capacity)
    lens = np.frombuffer(lengths, dtype=np.int32)
    writer = Writer(out, packed=True)
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
        writer.write([list_array(flat_ids, bin_lens), list_array(flat_labels, bin_lens),
                      list_array(positions, bin_lens)])
        tokens += int(ex_lens.sum())
    writer.close()
    return len(bins), tokens


# --------------------------------------------------------------------------- lists (tests, small data)

def read_examples(path: Path) -> list[dict]:
    """An Arrow file of examples as a list of {"input_ids": [...], "labels": [...], ...}."""
    return _open_table(path).to_pylist()


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
