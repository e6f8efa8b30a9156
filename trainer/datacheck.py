"""`rankwise check --data FILE`: a dataset as training will see it, before the first step.

Rows are read, rendered (chat template, Alpaca prompt, ...), tokenized and masked by the
trainer's own data path (`trainer/data.py`: the same reader, renderer and `_Encoder.full`), so
the trained tokens shown here are the ones the worker trains on. The tokenizer is the model's
when the model is a local folder or a cached model id; otherwise (a catalog entry, or no
model) a byte-level stand-in (`trainer/tiny.py`'s, one token per byte, with a generic chat
template) — said in the report: its lengths are bytes, several times the model's token counts.

Findings use advisor/finding.py's shape. Error: no trained token in the whole file. Warnings:
rows the trainer would stop on (unreadable, empty, no trained token, a template that rejects
them), many truncated responses, many duplicates. transformers is imported only to load a
tokenizer (deferred: `check` without --data stays light).
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.finding import SEVERITY_ORDER, Finding
from rankwise.advisor.time import CHARS_PER_TOKEN

from .data import BATCH, IGNORE, _Counter, _Rendered, _rendered, _Rows, _unmask
from .data_encoder import _Encoder

TRUNCATED_WARN = 0.05  # over 1 row in 20 loses part of its answer: the model learns answers that stop mid-way
DUPLICATES_WARN = 0.10  # over 1 row in 10 repeated: those rows weigh double and are memorized first
NAMED = 20  # rows named per list (the counts cover them all)
PREVIEW_ROWS = 3
PREVIEW_CHARS = 600  # a longer preview row keeps its head and its end (where the response usually is)


@dataclass
class Segment:
    text: str
    trained: bool


@dataclass
class Preview:
    where: str
    segments: list[Segment]
    truncated: bool

    def marked(self) -> str:
        """The row with trained text in [[double brackets]] (for a non-terminal, and JSON)."""
        out = "".join(f"[[{s.text}]]" if s.trained else s.text for s in self.segments)
        return out + (" ✂ (cut at max_seq_len)" if self.truncated else "")


@dataclass
class DataCheck:
    path: str
    model: str | None
    tokenizer: str  # "model" | "byte stand-in"
    tokenizer_note: str
    format: str | None
    max_seq_len: int
    rows: int = 0  # rows read (good and bad)
    usable_rows: int = 0  # rendered and tokenized
    token_p50: int = 0
    token_p95: int = 0
    token_max: int = 0
    tokens: int = 0  # after truncation
    trained_tokens: int = 0
    truncated_rows: int = 0
    truncated_into_response: int = 0  # truncation cuts trained tokens off
    no_trained_rows: int = 0
    no_trained: list[str] = field(default_factory=list)  # where (file:line), at most NAMED
    bad_rows: int = 0
    bad: list[str] = field(default_factory=list)  # "where: reason"
    empty_rows: int = 0
    duplicate_rows: int = 0
    duplicates: list[str] = field(default_factory=list)  # "where (same as where)"
    findings: list[Finding] = field(default_factory=list)
    preview: list[Preview] = field(default_factory=list)

    @property
    def trained_share(self) -> float | None:
        return self.trained_tokens / self.tokens if self.tokens else None

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["trained_share"] = round(self.trained_share, 4) if self.trained_share is not None else None
        d["preview"] = [{"where": p.where, "marked": p.marked(), "truncated": p.truncated,
                         "segments": [asdict(s) for s in p.segments]} for p in self.preview]
        d["errors"] = self.errors
        return d


class _Recorder(_Counter):
    """The trainer's bad-row counter, skipping and remembering every bad row."""

    def __init__(self):
        super().__init__(skip=True)
        self.all: list[tuple[str, str]] = []

    def bad(self, where: str, reason: str) -> None:
        super().bad(where, reason)
        self.all.append((where, reason))


def load_tokenizer(model: str | None, trust_remote_code: bool = False) -> tuple[object, str, str]:
    """(tokenizer, "model" | "byte stand-in", a note saying which and why)."""
    from rankwise.advisor.model import load_model

    folder = None
    if model:
        spec = load_model(model)  # a bad name is a RankwiseError: exit 2 naming the flag's value
        if spec.path and any((Path(spec.path) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json",
                                                                         "tokenizer.model")):
            folder = spec.path
    if folder:
        from transformers import AutoTokenizer  # deferred: heavy, and only --data needs it

        try:
            tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise RankwiseError(f"cannot load the tokenizer in {folder}: {str(e).splitlines()[0]}",
                                "the folder needs tokenizer.json or tokenizer_config.json") from None
        return tok, "model", f"the tokenizer of {folder}"
    from .tiny import build_tokenizer

    why = (f"{model} has no local tokenizer (a catalog entry or a model not downloaded)" if model
           else "no --model given")
    return build_tokenizer(), "byte stand-in", (
        f"{why}: a byte-level stand-in tokenizer (one token per byte, a generic chat template); lengths are "
        f"bytes, several times the model's token counts, and truncation is judged at max_seq_len x "
        f"{CHARS_PER_TOKEN:g} bytes (the plans' ~{CHARS_PER_TOKEN:g} characters a token)")


def check_data(path: str | Path, model: str | None = None, fmt: str = "auto", max_seq_len: int | None = None,
               tokenizer=None, trust_remote_code: bool = False, columns: dict[str, str] | None = None,
               train_on_inputs: bool = False, chat_template: str | None = None) -> DataCheck:
    """Read, render, tokenize and mask `path` as training would; report what it found.
    `columns`, `train_on_inputs` and `chat_template` are data.columns, data.train_on_inputs and model.chat_template
    (the preset's, when FILE is given). With train_on_inputs a row is trained whole (but its first token) as
    `data.Unmasked` trains it, unless its response is cut away (the build drops such a row whatever the setting)."""
    max_len = max_seq_len or RunConfig().train.max_seq_len
    if tokenizer is None:
        tokenizer, kind, note = load_tokenizer(model, trust_remote_code)
    else:
        kind, note = "model", "the given tokenizer"
    if chat_template:  # on a copy: a tokenizer the caller passed keeps its own
        import copy

        from rankwise.advisor.chat_templates import apply

        tokenizer = copy.copy(tokenizer)
        apply(tokenizer, chat_template)
    path = Path(path)
    if not path.exists():
        raise RankwiseError(f"data file not found: {path}",
                            "give a .jsonl/.json/.csv/.parquet file or a saved dataset folder")
    recorder = _Recorder()
    rows = _Rows(path, fmt, recorder, None, columns)
    out = DataCheck(str(path), model, kind, note, None, max_len)
    if kind == "byte stand-in":  # its lengths are bytes: cut where max_seq_len tokens of ~4 characters end, as the
        max_len = int(max_len * CHARS_PER_TOKEN)  # plans count, not at max_seq_len bytes (a quarter of the row)
    encoder = _Encoder(tokenizer, max_len)
    lengths: list[int] = []
    seen: dict[str, str] = {}
    chunk: list[_Rendered] = []

    def flush():
        for r, (ids, labels, offs) in zip(chunk, encoder.full(chunk)):
            if train_on_inputs and any(lab != IGNORE for lab in labels[:max_len]):
                labels = _unmask({"input_ids": ids})["labels"]  # as training unmasks it
            _row(out, tokenizer, r, ids, labels, offs, max_len, lengths, seen)
        chunk.clear()

    for rendered in _rendered(rows, tokenizer):
        chunk.append(rendered)
        if len(chunk) >= BATCH:
            flush()
    flush()
    out.format = rows.fmt
    out.bad_rows = len(recorder.all)
    out.bad = [f"{w}: {why}" for w, why in recorder.all[:NAMED]]
    out.empty_rows = sum("empty" in why for _, why in recorder.all)
    out.rows = out.usable_rows + out.bad_rows
    if lengths:
        lengths.sort()
        out.token_p50 = int(statistics.median(lengths))
        out.token_p95 = lengths[min(len(lengths) - 1, int(0.95 * len(lengths)))]
        out.token_max = lengths[-1]
    out.findings = sorted(_findings(out), key=lambda f: SEVERITY_ORDER[f.severity])
    return out


def _row(out: DataCheck, tokenizer, r: _Rendered, ids, labels, offs, max_len, lengths, seen) -> None:
    out.usable_rows += 1
    lengths.append(len(ids))
    trained_at = [k for k, lab in enumerate(labels) if lab != IGNORE]
    kept = sum(k < max_len for k in trained_at)
    if len(ids) > max_len:
        out.truncated_rows += 1
        out.truncated_into_response += kept < len(trained_at)
    out.tokens += min(len(ids), max_len)
    out.trained_tokens += kept
    if kept == 0:
        out.no_trained_rows += 1
        if len(out.no_trained) < NAMED:
            out.no_trained.append(r.where)
    if r.text in seen:
        out.duplicate_rows += 1
        if len(out.duplicates) < NAMED:
            out.duplicates.append(f"{r.where} (same as {seen[r.text]})")
    else:
        seen[r.text] = r.where
    if len(out.preview) < PREVIEW_ROWS:
        out.preview.append(_preview(tokenizer, r, ids, labels, offs, max_len))


def _preview(tokenizer, r: _Rendered, ids, labels, offs, max_len) -> Preview:
    """The row's text with the characters of trained tokens marked, cut where truncation cuts."""
    text = r.text
    trained = [False] * len(text)
    if offs is None:  # a slow tokenizer: the rendered spans (what the pieces were tokenized from)
        for s, e in r.spans:
            trained[s:e] = [True] * (e - s)
        end = len(text)
    else:
        for k, (a, b) in enumerate(offs[:max_len]):
            if labels[k] != IGNORE:
                trained[a:b] = [True] * (b - a)
        end = offs[min(len(offs), max_len) - 1][1] if offs else 0
    segs: list[Segment] = []
    for i, ch in enumerate(text[:end]):
        if segs and segs[-1].trained == trained[i]:
            segs[-1].text += ch
        else:
            segs.append(Segment(ch, trained[i]))
    eos = tokenizer.eos_token_id
    if r.add_eos and eos is not None and len(ids) <= max_len and labels[-1] != IGNORE:
        segs.append(Segment(tokenizer.eos_token or "</s>", True))  # added by training, not in the text
    return Preview(r.where, _shorten(segs), len(ids) > max_len)


def _shorten(segs: list[Segment]) -> list[Segment]:
    """At most PREVIEW_CHARS: the first third and the end of the row, " … " between."""
    chars = [(ch, s.trained) for s in segs for ch in s.text]
    if len(chars) <= PREVIEW_CHARS:
        return segs
    head = PREVIEW_CHARS // 3
    chars = chars[:head] + [(" … ", False)] + chars[-(PREVIEW_CHARS - head):]
    out: list[Segment] = []
    for ch, trained in chars:
        if out and out[-1].trained == trained:
            out[-1].text += ch
        else:
            out.append(Segment(ch, trained))
    return out


def _findings(c: DataCheck) -> list[Finding]:
    out = []
    fix_rows = "fix those rows, or set data.skip_bad_rows: true to skip and count them"
    if c.usable_rows and c.trained_tokens == 0:
        out.append(Finding("no-trained-tokens", "error", f"no row has a trained token ({c.usable_rows} rows)",
                           "every label is masked: the loss averages over nothing (0 or NaN) and the adapter learns "
                           "nothing — the responses are missing, or the prompts fill train.max_seq_len",
                           "check the format (data.format) and the response fields; raise train.max_seq_len if the "
                           "prompts are long"))
    elif c.no_trained_rows:
        out.append(Finding("rows-without-trained-tokens", "warning",
                           f"{c.no_trained_rows} row(s) have no trained token: {', '.join(c.no_trained[:5])}",
                           "their response is cut away by train.max_seq_len (or masked): training stops at the "
                           "first such row", f"raise train.max_seq_len or shorten their prompts; or {fix_rows[4:]}"))
    if c.bad_rows:
        what = f"{c.empty_rows} empty, " if c.empty_rows else ""
        out.append(Finding("bad-rows", "warning", f"{c.bad_rows} row(s) cannot be trained on ({what}first: "
                                                  f"{c.bad[0]})",
                           "training stops at the first bad row unless told to skip them", fix_rows,
                           {"data.skip_bad_rows": True}))
    if c.truncated_into_response:
        share = c.truncated_into_response / max(1, c.usable_rows)
        many = share > TRUNCATED_WARN and c.tokenizer == "model"
        out.append(Finding("truncated-responses", "warning" if many else "info",
                           f"{c.truncated_into_response} row(s) ({share:.0%}) lose part of their response to "
                           f"train.max_seq_len {c.max_seq_len}" + ("" if c.tokenizer == "model" else
                                                                  " (byte counts: an upper bound)"),
                           "the model learns answers that stop mid-way", "raise train.max_seq_len (p95 is "
                           f"{c.token_p95} tokens) or shorten those rows",
                           {"train.max_seq_len": _pow2(c.token_p95)} if c.tokenizer == "model" else None))
    if c.duplicate_rows:
        share = c.duplicate_rows / max(1, c.usable_rows)
        out.append(Finding("duplicate-rows", "warning" if share > DUPLICATES_WARN else "info",
                           f"{c.duplicate_rows} duplicate row(s) ({share:.0%}): {', '.join(c.duplicates[:3])}",
                           "repeated rows weigh more in the loss and are memorized first",
                           "remove the duplicates (the first copy of each is kept)"))
    if c.tokenizer != "model":
        out.append(Finding("byte-tokenizer", "info", "token counts come from a byte-level stand-in", c.tokenizer_note,
                           "pass --model with a local model folder (or a cached model id) for its own tokenizer"))
    return out


def _pow2(n: int) -> int:
    """The next power of two at or above n (sequence lengths are usually set so)."""
    p = 8
    while p < n:
        p *= 2
    return p
