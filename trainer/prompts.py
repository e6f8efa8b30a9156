"""Prompts the model is asked: a user message rendered as the model is prompted (its chat
template, or the Alpaca prompt trainer/data.py trains instruction rows with), or a held-out
example split where training's labels begin (so the model sees exactly what it was trained to
continue). Used by chat, compare and the samples taken while training."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rankwise.advisor.errors import RankwiseError

from .data import ALPACA_NO_INPUT, IGNORE
from .generation import turn_end, without_turn_end

SAMPLE_ROWS = 3  # train.sample_prompts: auto


@dataclass
class Row:
    prompt: str
    reference: str | None
    prompt_ids: list[int]
    input_ids: list[int] | None = None
    labels: list[int] | None = None
    answers: dict = field(default_factory=dict)  # model name → generation
    losses: dict = field(default_factory=dict)  # model name → (nll sum, tokens)


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """The text the model is prompted with: its chat template with the generation prompt, or the
    Alpaca prompt trainer/data.py trains instruction rows with when it has none."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    user = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
    return ALPACA_NO_INPUT.format(instruction=user)


def encode(tokenizer, messages: list[dict]) -> list[int]:
    # the template writes BOS itself when it has one; plain text gets the tokenizer's own specials
    special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(prompt_text(tokenizer, messages), add_special_tokens=special)["input_ids"]


def user_row(tokenizer, text: str) -> Row:
    return Row(prompt=text, reference=None, prompt_ids=encode(tokenizer, [{"role": "user", "content": text}]))


def rows_from_examples(examples, tokenizer, n: int) -> list[Row]:
    """The first `n` tokenized examples that have a prompt, split where their labels begin; the
    first trained span is the reference answer."""
    rows = []
    for k in range(min(n, len(examples))):
        ex = examples[k]
        ids, labels = list(ex["input_ids"]), list(ex["labels"])
        first = next((j for j, lab in enumerate(labels) if lab != IGNORE), len(ids))
        if first == 0 or first == len(ids):
            continue  # a text row (all trained) or nothing trained: no prompt to answer
        end = next((j for j in range(first, len(labels)) if labels[j] == IGNORE), len(labels))
        rows.append(Row(prompt=tokenizer.decode(ids[:first], skip_special_tokens=True).strip(),
                        reference=without_turn_end(tokenizer.decode(ids[first:end], skip_special_tokens=True),
                                                   turn_end(tokenizer)).strip(),
                        prompt_ids=ids[:first], input_ids=ids, labels=labels))
    return rows


def sample_rows(cfg, tokenizer, val) -> list[Row]:
    """The prompts `train.sample_prompts` names, as Rows: user messages rendered as chat renders
    them, or (auto) the first validation rows' prompts as training rendered them."""
    wanted = cfg.train.sample_prompts
    if wanted is None and not cfg.train.sample_every:
        return []
    if isinstance(wanted, str) and wanted != "auto":
        wanted = prompts_file(Path(wanted), "train.sample_prompts")
    if isinstance(wanted, list):
        return [user_row(tokenizer, p) for p in wanted]
    return rows_from_examples(val, tokenizer, SAMPLE_ROWS) if val else []


def prompts_file(path: Path, what: str) -> list[str]:
    """A text file of prompts, one a line (blank lines skipped)."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise RankwiseError(f"{what} {path}: {e.strerror or e}", "a text file of prompts, one a line (or auto, or a list)") from None
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    if not lines:
        raise RankwiseError(f"{what} {path}: no prompts in the file", "one prompt a line")
    return lines


def samples_callback(cfg, tokenizer, val_rows, sink, sharded: bool, main_process: bool, clock, log):
    """train.sample_every / sample_prompts: the callback that writes `sample` events (rank 0; not
    for a sharded model, whose generate would need every rank), or None."""
    from .callbacks import Samples

    rows = sample_rows(cfg, tokenizer, val_rows)
    if not rows:
        if cfg.train.sample_every or cfg.train.sample_prompts:
            log.warning("samples: no prompts (sample_prompts auto needs validation rows)")
        return None
    if sharded:
        log.warning("samples: not taken from a sharded model (FSDP/DeepSpeed)")
        return None
    if not main_process:
        return None
    if not cfg.train.sample_every and not val_rows:
        log.warning("samples: taken at each evaluation, and this run has no validation data; set train.sample_every")
        return None
    return Samples(sink, tokenizer, rows, cfg.train.sample_every, clock)
