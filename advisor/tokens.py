"""Counting a dataset's rows in the model's own tokens, without torch.

`advise --dataset` and `estimate --dataset` size max_seq_len and the memory peak from the
data's lengths. When the model is a local folder (or a snapshot in the local Hugging Face
cache) its `tokenizer.json` is read with the `tokenizers` library (Rust, no torch), so the
lengths are real token counts of each row's text; the chat template's own tokens are still
the planner's allowance (advisor/time.py TEMPLATE_TOKENS). Without a local tokenizer the
callers fall back to characters / 4 and say so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

BATCH = 1024  # rows encoded per encode_batch call: bounds memory, keeps the Rust side busy


def local_tokenizer(folder: str | Path | None) -> Any | None:
    """The fast tokenizer in a model folder, or None (no folder, no tokenizer.json, unreadable,
    or the `tokenizers` package missing). Never downloads."""
    if not folder:
        return None
    file = Path(folder) / "tokenizer.json"
    if not file.is_file():
        return None
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(file))
    except Exception:  # a tokenizer this library version cannot read: fall back to characters
        return None
    tokenizer.no_padding()  # a tokenizer.json may carry batch padding/truncation: count each row as it is
    tokenizer.no_truncation()
    return tokenizer


def token_lengths(tokenizer: Any, texts: Iterable[str]) -> list[int]:
    """Tokens of each text (no special tokens: the template allowance covers them)."""
    out: list[int] = []
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= BATCH:
            out.extend(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=False))
            batch = []
    if batch:
        out.extend(len(e.ids) for e in tokenizer.encode_batch(batch, add_special_tokens=False))
    return out
