"""The scan of a dataset: its format, fields and bad rows, its lengths in characters and tokens (median, p95, the
whole data's longest row), its row count, and what the advice takes from it. Reading files is advisor/readers.py.

Pure and fast: no torch/transformers (a tokenizer, when the model's is on this machine, is the `tokenizers` package).
"""
from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .time import CHARS_PER_TOKEN, TURN_TOKENS
from .tokens import token_lengths
from .longest import keep_largest, longest_rows, unread
from .readers import TOKEN_LONGEST, count_rows, iter_rows, location
from .rowformat import (  # noqa: F401 (re-exported: the row formats are part of reading data)
    COLUMNS, FORMAT_HINT, FORMATS, ROLES, SHAREGPT_ROLES, BadRow, apply_columns, check_row, detect_format,
    preference_error, prepare_row, row_chars, row_text, trained_text, unknown_format)

SCAN_ROWS = 20_000  # rows every plan reads of a dataset (percentiles, the time plan); its longest row is still the whole
# data's where the rest can be searched (longest.longest_rows). One limit: the commands and the screens read one answer


# --------------------------------------------------------------------------- scan

@dataclass(frozen=True)
class DatasetScan:
    """A quick look at a dataset: for `advise --dataset` and the TUI. Lengths in characters; also
    in tokens (`*_tokens`, counted by `tokens_by`) when scan was given the model's tokenizer."""

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
    median_tokens: int | None = None  # the row's text in the model's tokens (no template tokens)
    p95_tokens: int | None = None
    max_tokens: int | None = None
    tokens_by: str | None = None  # whose tokenizer counted them
    tokens_sampled: int | None = None  # rows the token median/p95 come from, where not every row was tokenized
    # the longest row with its turns beyond two: max over rows of (its tokens, or characters / `turns_cpt`, +
    # TURN_TOKENS a message past the second); a chat template's allowance grows with the turns (advisor/lengths.py)
    max_with_turns: float | None = None
    turns_cpt: float | None = None  # characters a token behind max_with_turns where no tokenizer counted
    turns_of_longest: int | None = None  # the messages of that row
    trained_share: float | None = None  # of the good rows' characters, those the loss reads with the prompt masked
    total_rows: int | None = None  # rows in the whole data (good + bad) when `limit` stopped the scan and count_rows knew
    # where `limit` stopped the scan of a JSONL or parquet file, a saved dataset or a folder of shards (none of them
    # compressed), the rest was searched for its longest rows (longest_rows): max_chars, max_tokens and
    # max_with_turns are then the whole data's, over this many rows
    longest_of: int | None = None

    def all_rows(self) -> int:
        """Rows in the whole data (good + bad): the total when counted, else those read."""
        return self.total_rows or self.rows

    def usable_rows(self) -> int:
        """Good rows in the whole data: those read, or (the scan stopped early, the total counted) the total at the
        share of good rows among those read."""
        good = self.rows - self.bad_rows
        return round(self.total_rows * good / self.rows) if self.total_rows and self.rows else good

    def to_dict(self) -> dict:
        from dataclasses import asdict
        d = asdict(self)
        d["fields"] = list(self.fields)
        return d


def turn_tokens(messages: int) -> int:
    """The template tokens a row's messages past the second add (TEMPLATE_TOKENS covers two)."""
    return TURN_TOKENS * max(0, messages - 2)


def messages_of(row: dict, fmt: str) -> int:
    """Messages a prepared row renders as: a conversation's own; two for the other formats (the allowance's base)."""
    return len(row["messages"]) if fmt in ("chat", "sharegpt") else 2


TOKEN_SAMPLE = 2000  # rows tokenized for the token median and p95: a fixed-seed reservoir sample of the rows read


class TokenSample:
    """Which rows a scan tokenizes: tokenizing is most of a scan's time (5.8 s of 6 s for 20,000 chat rows of ~2.4 KB
    on 2 cores), and its figures need far fewer rows. The median and p95 come from a reservoir sample of
    TOKEN_SAMPLE rows (every row when there are no more; seeded, so a file gives the same figures every time); the
    longest row from the TOKEN_LONGEST rows longest in characters and the sample (a row longer in tokens than all
    of those would have to be shorter in characters than 256 others: the worker counts the tokenized data exactly)."""

    def __init__(self) -> None:
        self.seen = 0
        self.beyond = 0  # rows from beyond those read, offered as the longest (add_longest)
        self.sample: list[tuple[str, int]] = []  # (text, messages)
        self.longest: list[tuple[int, int, str, int]] = []  # a min-heap of (characters and turns, row, text, messages)
        self._rng = random.Random(0)

    def add(self, text: str, messages: int = 2) -> None:
        if len(self.sample) < TOKEN_SAMPLE:
            self.sample.append((text, messages))
        else:
            j = self._rng.randrange(self.seen + 1)
            if j < TOKEN_SAMPLE:
                self.sample[j] = (text, messages)
        self._offer(text, messages, self.seen)
        self.seen += 1

    def add_longest(self, text: str, messages: int = 2) -> None:
        """A row from beyond those read (the rest of the data's longest rows): a candidate for the longest row only,
        not for the median and p95 sample."""
        self.beyond += 1
        self._offer(text, messages, -self.beyond)

    def _offer(self, text: str, messages: int, order: int) -> None:
        """A candidate for the TOKEN_LONGEST rows longest in characters (a message past two as its template tokens)."""
        keep_largest(self.longest, (len(text) + CHARS_PER_TOKEN * turn_tokens(messages), order, text, messages),
                     TOKEN_LONGEST)

    def count(self, tokenizer) -> tuple[list[int], int, int | None, tuple[int, int]]:
        """(the sample's token lengths sorted, the longest row's tokens, rows sampled where not all were, (the
        longest row's tokens with its turns past two, its messages))."""
        lengths = token_lengths(tokenizer, [text for text, _ in self.sample])
        counted = sorted(lengths)
        rows = list(zip(lengths, (m for _, m in self.sample)))
        if self.seen > TOKEN_SAMPLE or self.beyond:
            found = token_lengths(tokenizer, [text for _, _, text, _ in self.longest])
            rows += list(zip(found, (m for *_, m in self.longest)))
        longest = max((n for n, _ in rows), default=0)
        turns = max(((n + turn_tokens(m), m) for n, m in rows), default=(0, 2))
        return counted, longest, len(counted) if self.seen > TOKEN_SAMPLE else None, turns


def scan(path: str | Path, limit: int | None = None, declared: str = "auto", max_problems: int = 5,
         columns: dict[str, str] | None = None, tokenizer: Any = None, tokenizer_name: str | None = None,
         count_all: bool = True, chars_per_token: float = CHARS_PER_TOKEN) -> DatasetScan:
    """Read up to `limit` rows: format, fields, length percentiles (characters), bad rows.
    `columns` is data.columns (the file's field names read as rankwise's). With `tokenizer` (a
    `tokenizers.Tokenizer`, advisor/tokens.py) the percentiles are also counted in tokens. When `limit` stops the
    read, the rows of the whole data are counted (count_rows) unless `count_all` is off (a length profile only)."""
    path = Path(path)
    fmt = None if declared == "auto" else declared
    rows = bad = 0
    fields: dict[str, None] = {}
    lengths: list[int] = []
    tokenized = TokenSample()
    with_turns: tuple[float, int] = (0.0, 2)  # characters: the longest row with its turns, and its messages
    problems: list[str] = []
    complete = True
    trained = 0  # characters of the good rows the loss reads (rowformat.trained_text)
    stopped = 0  # the row the limit stopped at, numbered as iter_rows does (a JSONL line; in shards a RowNo)

    def measure(good: dict, offer) -> int:
        """A good row's characters. Its text goes to the token count (`offer`: TokenSample.add, or add_longest for a
        row past those read); without a tokenizer, its characters and turns to the longest row with its turns."""
        nonlocal with_turns
        messages = messages_of(good, fmt)
        if tokenizer is not None:
            text = row_text(good, fmt)
            offer(text, messages)
            return len(text)
        chars = row_chars(good, fmt)
        with_turns = max(with_turns, (chars / chars_per_token + turn_tokens(messages), messages))
        return chars

    for n, row in iter_rows(path, bad="yield"):
        if limit is not None and rows >= limit:
            complete, stopped = False, n
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
            continue
        trained += len(trained_text(good, fmt))
        lengths.append(measure(good, tokenized.add))
    beyond_chars = 0  # the longest of the rows past the limit
    rest = unread(path, stopped) if not complete and fmt else None
    if rest:  # the rest of the data's longest rows, found at its reading speed
        found = heapq.nlargest(TOKEN_LONGEST, (c for where, skip in rest for c in longest_rows(where, skip)),
                               key=lambda c: c[0])
        beyond_chars = max((measure(good, tokenized.add_longest)
                            for good in _prepared((row for *_, row in found), columns, fmt)), default=0)
    all_rows = count_rows(path) if not complete and (count_all or rest) else None  # the whole data's rows, once
    by_tokens: dict = dict(max_with_turns=with_turns[0], turns_cpt=chars_per_token, turns_of_longest=with_turns[1])
    if tokenizer is not None:
        counted, longest, sampled, turns = tokenized.count(tokenizer)
        by_tokens = dict(median_tokens=int(statistics.median(counted)) if counted else 0,
                         p95_tokens=_percentile(counted, 0.95), max_tokens=longest,
                         tokens_by=tokenizer_name or "the model's tokenizer", tokens_sampled=sampled,
                         max_with_turns=float(turns[0]), turns_of_longest=turns[1])
    lengths.sort()
    return DatasetScan(path=str(path), rows=rows, format=fmt, fields=tuple(fields), min_chars=_percentile(lengths, 0.0),
                       median_chars=int(statistics.median(lengths)) if lengths else 0,
                       p95_chars=_percentile(lengths, 0.95),
                       max_chars=max(lengths[-1] if lengths else 0, beyond_chars), bad_rows=bad,
                       first_problems=problems, complete=complete,
                       total_rows=all_rows if count_all else None,
                       trained_share=round(trained / total, 4) if (total := sum(lengths)) else None,
                       longest_of=all_rows if rest else None, **by_tokens)


def _prepared(rows: Iterable[dict | BadRow | None], columns: dict[str, str] | None, fmt: str) -> Iterator[dict]:
    """The good rows among `rows`, prepared as the scan prepares a row (bad ones left to the run's own reading: the
    scan's figures are about the rows that train)."""
    for row in rows:
        if isinstance(row, dict):
            good, reason = prepare_row(apply_columns(row, columns), fmt)
            if not reason:
                yield good


def scan_for_model(path: str | Path, spec: Any = None, **kwargs: Any) -> DatasetScan:
    """scan, counted in `spec`'s tokens when the model's tokenizer is on this machine
    (advisor/tokens.py; spec.path is its local folder), else in characters only."""
    from .tokens import local_tokenizer

    tokenizer = local_tokenizer(getattr(spec, "path", None))
    if spec is not None and tokenizer is None:
        from .time import chars_per_token  # the time planner's rate: one for every plan

        kwargs.setdefault("chars_per_token", chars_per_token(spec))
    return scan(path, tokenizer=tokenizer, tokenizer_name=f"{spec.name}'s tokenizer" if tokenizer else None, **kwargs)


def advice_inputs(found: DatasetScan, spec: Any = None) -> dict:
    """What recommend.advise takes from a dataset (its data keyword arguments): the CLI's `advise
    --dataset` and the Advice screen both hand over exactly this, so they give one answer. With `spec`, also the
    rows' lengths (advisor/lengths.py): the advice's estimates at the longest row, as `check` judges the preset."""
    out = dict(dataset_rows=found.all_rows(), p95_chars=found.p95_chars or None, p95_tokens=found.p95_tokens,
               median_chars=found.median_chars or None, median_tokens=found.median_tokens,
               trained_share=found.trained_share)
    if spec is not None:
        from .config import RunConfig
        from .lengths import data_lengths

        out["lengths"] = data_lengths(RunConfig(), spec, found)
    return out


def advice_data(path: str | Path, spec: Any) -> tuple[dict, str]:
    """What `advise --dataset` and the Advice screen take from a dataset: the recommender's data keyword arguments
    and the advice's first note. The scan is every plan's (its first SCAN_ROWS rows, the whole data's row count and
    longest row), so the advice's lengths are the ones `check`, `estimate` and `train` judge its preset by."""
    found = scan_for_model(path, spec, limit=SCAN_ROWS)
    return advice_inputs(found, spec), scan_note(found, spec.name)


def scan_note(found: DatasetScan, model_name: str) -> str:
    """The advice's first note on its data: rows, format, bad rows, how lengths were counted."""
    if found.total_rows:
        rows = f"{found.total_rows:,} rows, the first {found.rows:,} scanned"
    else:
        rows = f"{found.rows:,} rows" if found.complete else f"the first {found.rows:,} rows scanned, the file holds more"
    note = f"{found.path}: {rows} ({found.format or 'unknown'} format"
    note += f", {found.bad_rows} bad)" if found.bad_rows else ")"
    sampled = f" (median and p95 from {found.tokens_sampled:,} rows sampled)" if found.tokens_sampled else ""
    return note + (f"; lengths counted by {found.tokens_by}{sampled}" if found.tokens_by else
                   f"; lengths at ~4 characters a token ({model_name}'s tokenizer is not on this machine)")


def _percentile(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0
