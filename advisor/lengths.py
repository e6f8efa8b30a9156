"""The sequence length a run's memory peak is reached at, from the data it trains on.

Beside plan.py rather than in it: it counts tokens from characters as the time planner does
(advisor/time.py's constants), and the time planner reads the estimator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .time import TEMPLATE_TOKENS, TURN_TOKENS, chars_per_token, scan_tokens

if TYPE_CHECKING:  # only for the annotations
    from .config import RunConfig
    from .dataset import DatasetScan
    from .spec import ModelSpec


PACKED = 1 << 40  # DataLengths.longest under packing: every sequence is max_seq_len, whatever the rows


@dataclass(frozen=True)
class DataLengths:
    """The length a run's peak is reached at on its data, beside a config's max_seq_len. advisor.fit estimates at
    `seq_for(max_seq_len)` of the config it judges: the same run, its batches as the collator pads them, whatever
    max_seq_len a suggestion or the advice then sets (`limited` says it for another max_seq_len)."""

    longest: int  # tokens of the data's longest row with the template's (PACKED under packing), before truncation
    max_seq_len: int  # the config's: `seq_len` and `note` are about it
    about: str  # how the longest row was counted (the note before its max_seq_len clause)
    scanned: str = ""  # what a partial scan read, said after it

    def seq_for(self, max_seq_len: int) -> int:
        return min(self.longest, max_seq_len)

    def limited(self, max_seq_len: int) -> "DataLengths":
        return replace(self, max_seq_len=max_seq_len)

    @property
    def seq_len(self) -> int:
        return self.seq_for(self.max_seq_len)

    @property
    def shorter(self) -> bool:
        return self.seq_len < self.max_seq_len

    @property
    def note(self) -> str:
        if self.longest == PACKED:
            return f"data.packing on: every sequence is max_seq_len ({self.max_seq_len:,} tokens)"
        return self.about + (f", truncated to max_seq_len {self.max_seq_len:,}" if self.longest > self.max_seq_len
                             else f", not max_seq_len {self.max_seq_len:,}") + self.scanned

    def to_dict(self) -> dict:
        return {"seq_len": self.seq_len, "max_seq_len": self.max_seq_len, "note": self.note}


def measured(cfg: "RunConfig", spec: "ModelSpec", scan: "DatasetScan") -> DataLengths:
    """The length the peak is reached at, for this dataset, and why.

    With packing off, the collator pads each batch to its longest row (trainer/data.py
    make_collator), so the peak is the batch holding the dataset's longest row, truncated at
    max_seq_len; with packing on, every sequence is max_seq_len. Rows are counted in the
    model's tokens when scan had its tokenizer, else characters become tokens as the time
    planner counts them (advisor/time.py: ~4 characters a token, 1 for a byte-level vocabulary);
    plus the chat template's tokens: an approximation, said in the note."""
    limit = cfg.train.max_seq_len
    if cfg.data.packing:
        return DataLengths(PACKED, limit, "")
    longest = math.ceil(scan_tokens(scan, spec, "max")) + TEMPLATE_TOKENS
    p95 = math.ceil(scan_tokens(scan, spec, "p95")) + TEMPLATE_TOKENS
    counted = (f"{scan.max_tokens:,} tokens by {scan.tokens_by}" if scan.max_tokens is not None
               else f"{scan.max_chars:,} characters / {chars_per_token(spec):g}")
    template = f"{TEMPLATE_TOKENS} template tokens"
    turns = getattr(scan, "max_with_turns", None)
    if turns is not None and (scan.max_tokens is not None or scan.turns_cpt == chars_per_token(spec)):
        with_turns = math.ceil(turns) + TEMPLATE_TOKENS
        if with_turns > longest:  # a conversation's template tokens grow with its turns (dataset.TURN_TOKENS)
            longest, m = with_turns, scan.turns_of_longest
            counted = f"its text + {TURN_TOKENS} tokens a message past the first two, {m} messages"
    about = (f"real lengths (packing off, each batch padded to its longest row): the peak is at the longest row of "
             f"{scan.path}, ~{longest:,} tokens ({counted} + {template}; p95 ~{p95:,})")
    return DataLengths(longest, limit, about, scanned(scan))


def scanned(scan: "DatasetScan") -> str:
    """What a scan that stopped at its limit read, said after the longest row: the longest is still the whole data's
    where the rest could be searched (DatasetScan.longest_of)."""
    if scan.complete:
        return ""
    if getattr(scan, "longest_of", None):
        return f"; the longest of all {scan.longest_of:,} rows, the p95 of the first {scan.rows:,}"
    return f"; only the first {scan.rows:,} rows were scanned"


def padded_length(cfg: "RunConfig", spec: "ModelSpec", scan: "DatasetScan") -> tuple[int, str]:
    """measured's (sequence length, note) for `cfg`."""
    found = measured(cfg, spec, scan)
    return found.seq_len, found.note


def data_lengths(cfg: "RunConfig", spec: "ModelSpec", scan: "DatasetScan | None") -> DataLengths | None:
    """The lengths of a scan of the data the run trains on; None without one (no data, or no usable row)."""
    if scan is None or scan.rows <= scan.bad_rows:
        return None
    return measured(cfg, spec, scan)


def at_lengths(cfg: "RunConfig", lengths: DataLengths | None) -> "RunConfig":
    """`cfg` as its memory sees it: max_seq_len down to the data's padded length where that is shorter. Only the
    estimate reads this view; the run, its red flags on max_seq_len and what is shown keep the config's value."""
    seq = lengths.seq_for(cfg.train.max_seq_len) if lengths is not None else cfg.train.max_seq_len
    if seq >= cfg.train.max_seq_len:
        return cfg
    from .config import with_values

    return with_values(cfg, {"train.max_seq_len": seq})
