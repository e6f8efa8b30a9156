"""The sequence length a run's memory peak is reached at, from the data it trains on.

Beside plan.py rather than in it: it counts tokens from characters as the time planner does
(advisor/time.py's constants), and the time planner reads the estimator.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .time import BYTE_VOCAB, CHARS_PER_TOKEN, TEMPLATE_TOKENS

if TYPE_CHECKING:  # only for the annotations
    from .config import RunConfig
    from .dataset import DatasetScan
    from .spec import ModelSpec


def padded_length(cfg: "RunConfig", spec: "ModelSpec", scan: "DatasetScan") -> tuple[int, str]:
    """The sequence length the peak is reached at, for this dataset, and why.

    With packing off, the collator pads each batch to its longest row (trainer/data.py
    make_collator), so the peak is the batch holding the dataset's longest row, truncated at
    max_seq_len; with packing on, every sequence is max_seq_len. Characters become tokens as
    the time planner counts them (advisor/time.py: ~4 characters a token, 1 for a byte-level
    vocabulary, plus the chat template's tokens): an approximation, said in the note."""
    limit = cfg.train.max_seq_len
    if cfg.data.packing:
        return limit, f"data.packing on: every sequence is max_seq_len ({limit:,} tokens)"
    per = 1.0 if spec.vocab_size <= BYTE_VOCAB else CHARS_PER_TOKEN
    longest = math.ceil(scan.max_chars / per) + TEMPLATE_TOKENS
    p95 = math.ceil(scan.p95_chars / per) + TEMPLATE_TOKENS
    seq = min(limit, longest)
    note = (f"real lengths (packing off, each batch padded to its longest row): the peak is at the longest row of "
            f"{scan.path}, ~{longest:,} tokens ({scan.max_chars:,} characters / {per:g} + {TEMPLATE_TOKENS} template "
            f"tokens; p95 ~{p95:,})" + (f", truncated to max_seq_len {limit:,}" if longest > limit
                                       else f", not max_seq_len {limit:,}"))
    if not scan.complete:
        note += f"; only the first {scan.rows:,} rows were scanned"
    return seq, note
