"""The sequence length a run's memory peak is reached at, from the data it trains on.

Beside plan.py rather than in it: it counts tokens from characters as the time planner does
(advisor/time.py's constants), and the time planner reads the estimator.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .time import TEMPLATE_TOKENS, chars_per_token, scan_tokens

if TYPE_CHECKING:  # only for the annotations
    from .config import RunConfig
    from .dataset import DatasetScan
    from .spec import ModelSpec


def padded_length(cfg: "RunConfig", spec: "ModelSpec", scan: "DatasetScan") -> tuple[int, str]:
    """The sequence length the peak is reached at, for this dataset, and why.

    With packing off, the collator pads each batch to its longest row (trainer/data.py
    make_collator), so the peak is the batch holding the dataset's longest row, truncated at
    max_seq_len; with packing on, every sequence is max_seq_len. Rows are counted in the
    model's tokens when scan had its tokenizer, else characters become tokens as the time
    planner counts them (advisor/time.py: ~4 characters a token, 1 for a byte-level vocabulary);
    plus the chat template's tokens: an approximation, said in the note."""
    limit = cfg.train.max_seq_len
    if cfg.data.packing:
        return limit, f"data.packing on: every sequence is max_seq_len ({limit:,} tokens)"
    longest = math.ceil(scan_tokens(scan, spec, "max")) + TEMPLATE_TOKENS
    p95 = math.ceil(scan_tokens(scan, spec, "p95")) + TEMPLATE_TOKENS
    counted = (f"{scan.max_tokens:,} tokens by {scan.tokens_by}" if scan.max_tokens is not None
               else f"{scan.max_chars:,} characters / {chars_per_token(spec):g}")
    seq = min(limit, longest)
    note = (f"real lengths (packing off, each batch padded to its longest row): the peak is at the longest row of "
            f"{scan.path}, ~{longest:,} tokens ({counted} + {TEMPLATE_TOKENS} template "
            f"tokens; p95 ~{p95:,})" + (f", truncated to max_seq_len {limit:,}" if longest > limit
                                       else f", not max_seq_len {limit:,}"))
    if not scan.complete:
        note += f"; only the first {scan.rows:,} rows were scanned"
    return seq, note
