"""Tokenizing rendered rows into training examples, with the prompt masked out of the loss.

The masking rule (trainer/data.py describes all of them): the full text is tokenized once (fast
tokenizers give character offsets) and a token is trained on if its characters overlap a
response span; slow tokenizers tokenize the prompt and response pieces separately. BOS is added
when the tokenizer adds it to plain text, EOS when the row asks for it; sequences longer than
train.max_seq_len are cut at the end, and a row whose response is cut away entirely is a bad row.
"""
from __future__ import annotations

import bisect
from typing import Any, Callable

from .data import IGNORE, _Rendered


def _adds_bos(tokenizer) -> bool:
    """Does the tokenizer put BOS in front of plain text by itself (Llama does, Qwen does not)?"""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def _labels_from_offsets(ids: list[int], offsets, spans: list[tuple[int, int]]) -> list[int]:
    """Labels = ids on tokens whose characters overlap a trained-on span, -100 elsewhere.
    `offsets`: a list of (start, end) per token, or an `_Offsets` (which also guesses where to look)."""
    labels = [IGNORE] * len(ids)
    near = getattr(offsets, "near", None)
    for s, e in spans:
        # zero-width tokens count as their start character
        a = _first(offsets, lambda o: max(o[1], o[0] + 1) > s, near(s) if near else None)  # first token ending after s
        b = _first(offsets, lambda o: o[0] >= e, near(e) if near else None)  # first token starting at/after e
        labels[a:b] = ids[a:b]
    return labels


def _first(offsets, past: Callable[[tuple[int, int]], bool], guess: int | None) -> int:
    """The first token index k whose offsets are `past` a character (len(offsets) if none is), as
    bisect finds it in the sorted offsets. `guess` (a token at that character) is checked first:
    two lookups instead of a search."""
    n = len(offsets)
    if guess is not None:
        for k in (guess, guess + 1):
            if k <= n and (k == n or past(offsets[k])) and (k == 0 or not past(offsets[k - 1])):
                return k
    return bisect.bisect_left(offsets, True, key=past)


class _Offsets:
    """The character offsets of a Rust `Encoding`, read a token at a time: building the whole list
    of tuples costs a fifth of tokenizing, and masking needs only the tokens at span edges."""

    __slots__ = ("enc", "n")

    def __init__(self, enc):
        self.enc, self.n = enc, len(enc)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> tuple[int, int]:
        if not 0 <= k < self.n:
            raise IndexError(k)
        found = self.enc.token_to_chars(k)
        return found if found is not None else self.enc.offsets[k]  # a token of no sequence: as the list has it

    def __iter__(self):
        return iter(self.enc.offsets)

    def near(self, char: int) -> int | None:
        """The token holding character `char` (the token count past the last one), or None."""
        k = self.enc.char_to_token(char)
        if k is None and self.n and self[self.n - 1][1] <= char:
            return self.n
        return k


def _batch_encoder(tokenizer) -> Callable[[list[str]], list[tuple[list[int], Any]]]:
    """A function: texts -> (ids, character offsets) per text, no special tokens added.

    Fast tokenizers go straight to a copy of their Rust tokenizer with padding and
    truncation switched off (tokenizer.json often enables them; the transformers wrapper
    resets them per call): the wrapper's per-encoding conversion costs as much as the
    tokenizing itself; offsets come as `_Offsets`. Others go through the wrapper (offsets as lists)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import Tokenizer  # deferred: a transformers dependency, needed only here

        rust = Tokenizer.from_str(backend.to_str())
        rust.no_padding()
        rust.no_truncation()
        return lambda texts: [(e.ids, _Offsets(e)) for e in rust.encode_batch(texts, add_special_tokens=False)]

    def wrapped(texts: list[str]):
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False)
        return list(zip(enc["input_ids"], enc["offset_mapping"]))
    return wrapped


def _encode_pieces(tokenizer, r: _Rendered) -> tuple[list[int], list[int]]:
    """Slow tokenizers (no offsets): tokenize the prompt/response pieces one by one."""
    ids: list[int] = []
    labels: list[int] = []
    cut = 0
    for s, e in r.spans:
        for (a, b), train in (((cut, s), False), ((s, e), True)):
            if b > a:
                piece = tokenizer(r.text[a:b], add_special_tokens=False)["input_ids"]
                ids += piece
                labels += piece if train else [IGNORE] * len(piece)
        cut = e
    if cut < len(r.text):
        piece = tokenizer(r.text[cut:], add_special_tokens=False)["input_ids"]
        ids += piece
        labels += [IGNORE] * len(piece)
    return ids, labels


class _Encoder:
    """Tokenizes rendered rows a batch at a time into examples (BOS/EOS, truncation, masks)."""

    def __init__(self, tokenizer, max_len: int):
        self.tokenizer, self.max_len = tokenizer, max_len
        self.bos = [tokenizer.bos_token_id] if _adds_bos(tokenizer) else []
        self.eos_id = tokenizer.eos_token_id
        self.batch_encode = _batch_encoder(tokenizer) if getattr(tokenizer, "is_fast", False) else None

    def full(self, chunk: list[_Rendered]) -> list[tuple[list[int], list[int], list[tuple[int, int]] | None]]:
        """(ids, labels, character offsets) per rendered row, BOS/EOS added as training adds them,
        before truncation (offsets None from a slow tokenizer). `rankwise check --data` reads this."""
        return self._encode(chunk, offsets=True)

    def _encode(self, chunk: list[_Rendered], offsets: bool) -> list[tuple[list[int], list[int], Any]]:
        if self.batch_encode:
            triples = [(ids, _labels_from_offsets(ids, offs, r.spans), list(offs) if offsets else None)
                       for (ids, offs), r in zip(self.batch_encode([r.text for r in chunk]), chunk)]
        else:
            triples = [(*_encode_pieces(self.tokenizer, r), None) for r in chunk]
        bos, out = self.bos, []
        for r, (ids, labels, offs) in zip(chunk, triples):
            if bos and (not ids or ids[0] != bos[0]):
                ids, labels = bos + ids, [IGNORE] + labels
                offs = [(0, 0)] + offs if offs is not None else None
            if r.add_eos and self.eos_id is not None:
                ids, labels = ids + [self.eos_id], labels + [self.eos_id]
                offs = offs + [(len(r.text), len(r.text))] if offs is not None else None
            out.append((ids, labels, offs))
        return out

    def __call__(self, chunk: list[_Rendered]) -> list[tuple[list[int], list[int], bool] | str]:
        """Per rendered row, in order: (input_ids, labels, truncated), cut to max_seq_len, or the
        reason the row cannot be trained on (a bad row)."""
        max_len, out = self.max_len, []
        for ids, labels, _ in self._encode(chunk, offsets=False):
            truncated = len(ids) > max_len
            if truncated:
                first = next((k for k, lab in enumerate(labels) if lab != IGNORE), len(labels))
                if first >= max_len:
                    out.append(f"the response is cut away entirely: the prompt alone is {first} tokens, "
                               f"over train.max_seq_len {max_len} (raise max_seq_len or shorten the prompt)")
                    continue
                ids, labels = ids[:max_len], labels[:max_len]  # kept, but cut at the end
            if labels.count(IGNORE) == len(labels):
                out.append("no response tokens to learn from")
                continue
            out.append((ids, labels, truncated))
        return out
