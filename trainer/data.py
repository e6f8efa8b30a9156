"""From a data file to tokenized training examples with the prompt masked out of the loss.

The rules of turning a row into an example live here: reading good rows (`_Rows`),
rendering (`_render`), tokenizing and masking (`_Encoder`, in data_encoder.py). `data_build.py`
runs them over a whole file (in parallel, to Arrow; `build_datasets` there returns lists) and
`trainer/data_cache.py` keeps the result. Each example is `{"input_ids": [...], "labels": [...]}`
with labels -100 on tokens the model must not learn to produce. `make_collator(tokenizer)`
pads a batch to its longest example.

How each format is rendered (and what is trained on):
- chat (`messages`): the tokenizer's chat template. Every assistant turn is trained on
  (its content and the template's end-of-turn marker); system/user/tool turns and the
  template's role headers are masked. Each assistant span is found by rendering the
  conversation up to that turn with and without it (the difference is exactly that turn);
  templates that rewrite earlier turns fall back to finding the content in the text.
- instruction (`instruction`, optional `input`, optional `system`, `output`): through
  the chat template when the tokenizer has one (user = instruction, a blank line, input;
  assistant = output), so the adapter learns the format the model is prompted with at
  inference; without a chat template, the Alpaca prompt
  "### Instruction:\\n…\\n\\n### Input:\\n…\\n\\n### Response:\\n" + output. Trained on the output.
- prompt_completion: prompt + completion, concatenated as written (add your own
  separator). Trained on the completion.
- text: the whole text is trained on.
Every example ends with EOS (trained on) unless the chat template already ends the last
assistant turn with it, so the model learns to stop. BOS is added when the tokenizer
adds it to plain text (and when the chat template writes it).

Masking is exact at the character level: the full text is tokenized once (fast
tokenizers give character offsets) and a token is trained on if its characters overlap a
response span (so "▁Paris" is trained when the response is " Paris"; a token merged
across the prompt/response boundary, rare with chat templates, is trained on). Slow
tokenizers tokenize prompt and response pieces separately.

With data.train_on_inputs the training examples are trained on whole, prompt included (`Unmasked`, a
view over the built examples); validation examples keep the prompt masked.

Validation: data.val_path (its own file, same rules), or data.val_ratio of the usable
training rows, drawn with train.seed (the same split on every run with that seed).
data.max_rows caps the usable training rows read (before the val_ratio split).

Sequences longer than train.max_seq_len are cut at the end and counted; a row whose
response is cut away entirely is a bad row. With data.packing, whole training examples are
placed into max_seq_len sequences (best fit, never cut) with position_ids restarting per
example, which keeps their attention apart (trainer/data_build.py). Validation examples are
never packed.
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rankwise.advisor.readers import SKIP_HINT, iter_rows, location
from rankwise.advisor.rowformat import (BadRow, apply_columns, detect_format, preference_error, prepare_row,
                                        unknown_format)
from rankwise.advisor.errors import RankwiseError

IGNORE = -100
BATCH = 512  # rows per tokenizer call: big enough to amortise the call, small enough for memory
MAX_EXAMPLES = 5
# The Stanford Alpaca prompt (github.com/tatsu-lab/stanford_alpaca), without its preamble sentence.
ALPACA = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
ALPACA_NO_INPUT = "### Instruction:\n{instruction}\n\n### Response:\n"


@dataclass
class DataReport:
    """What build_datasets did: the trainer logs it and the run summary keeps it."""

    format: str
    train_rows: int
    val_rows: int
    truncated_rows: int  # kept rows cut to max_seq_len (train and validation)
    skipped_rows: int  # bad rows skipped (train and validation; only with data.skip_bad_rows)
    skipped_examples: list[str] = field(default_factory=list)  # "file row N: reason", at most 5
    train_tokens: int = 0  # tokens in the training examples (before packing; packing keeps them)
    packed: bool = False
    supervised_tokens: int = 0  # training tokens with a label (the response tokens)
    train_sequences: int = 0  # sequences the trainer iterates: train_rows, or packed chunks
    longest: int = 0  # tokens of the longest training sequence (max_seq_len under packing): the peak's batch length
    packing_efficiency: float | None = None  # packed tokens / (sequences × max_seq_len), with data.packing
    cache_dir: str = ""  # where the tokenized examples are kept (trainer/data_cache.py)
    cache_hit: bool = False  # read from that cache instead of built

    def to_dict(self) -> dict:
        return asdict(self)


class Unmasked:
    """Training examples with the prompt trained on too (data.train_on_inputs): labels = input_ids, but -100 on
    each example's first token, which nothing before it in its own example predicts (with packing: every
    position where position_ids restart, so no example learns to follow the one packed before it). A view:
    the built examples (and their cache) stay masked, so validation and `rankwise compare` still find the prompt."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return _unmask(self.examples[i])

    def __iter__(self):
        return map(_unmask, self.examples)


def _unmask(ex: dict) -> dict:
    labels = list(ex["input_ids"])
    for k in ([k for k, p in enumerate(ex["position_ids"]) if p == 0] if "position_ids" in ex else [0]):
        labels[k] = IGNORE
    return {**ex, "labels": labels}


def inputs_trained(cfg, train, report: DataReport):
    """The training examples as data.train_on_inputs wants them (`Unmasked` when set, the report then counting
    every token but each example's first as supervised); unchanged when not set."""
    if not cfg.data.train_on_inputs:
        return train
    report.supervised_tokens = report.train_tokens - report.train_rows
    return Unmasked(train)


@dataclass
class _Rendered:
    where: str
    text: str
    spans: list[tuple[int, int]]  # trained-on character ranges of text
    add_eos: bool


class _Counter:
    """Bad rows: raised at once, or (skipping) counted with the first MAX_EXAMPLES in file order
    (rows the reader rejects arrive before those the tokenizer rejects in the same batch)."""

    def __init__(self, skip: bool):
        self.skip, self.skipped, self.examples, self.truncated = skip, 0, [], 0
        self._order: list[tuple] = []

    def bad(self, where: str, reason: str) -> None:
        if not self.skip:
            raise RankwiseError(f"{where}: {reason}", SKIP_HINT)
        self.skipped += 1
        key = _row_order(where)
        if len(self.examples) < MAX_EXAMPLES or key < self._order[-1]:
            at = bisect.bisect(self._order, key)
            self._order.insert(at, key)
            self.examples.insert(at, f"{where}: {reason}")
            del self._order[MAX_EXAMPLES:], self.examples[MAX_EXAMPLES:]


def _row_order(where: str) -> tuple:
    """("file", N) from "file:N" or "file row N" (see advisor.dataset.location)."""
    head, _, n = where.rpartition(" row ") if " row " in where else where.rpartition(":")
    return (head, int(n)) if n.isdigit() else (where, 0)


# --------------------------------------------------------------------------- reading

class _Rows:
    """The good rows of a file as (where, prepared row), streamed; `fmt` is known once the first
    recognisable row is read. Bad rows go to the counter (which raises unless skipping).
    `columns` is data.columns; preference data stops the read with what to do instead."""

    def __init__(self, path: Path, declared: str, counter: _Counter, max_rows: int | None,
                 columns: dict[str, str] | None = None):
        self.path, self.counter, self.max_rows, self.columns = path, counter, max_rows, columns
        self.declared, self.fmt = declared, None if declared == "auto" else declared

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        path, counter, columns = self.path, self.counter, self.columns
        rows = ((n, apply_columns(row, columns)) for n, row in iter_rows(path, bad="yield"))
        self.fmt, head = _format_of(path, self.declared, rows, counter)
        good = 0
        for n, row in itertools.chain(head, rows):
            ready, reason = prepare_row(row, self.fmt)
            if reason:
                counter.bad(location(path, n), reason)
                continue
            good += 1
            yield location(path, n), ready
            if self.max_rows is not None and good >= self.max_rows:
                return


def _format_of(path: Path, declared: str, rows: Iterator[tuple[int, Any]], counter: _Counter) -> tuple[str, list]:
    """The file's format: `declared`, else that of the first recognisable row of `rows` ((row
    number, row with data.columns applied), read from the file's start). Returns it with the rows
    read to find it (to be read with it, before the rest of `rows`). Preference data, a file of
    only bad rows (each counted) and one whose first 100 rows are of no format end the read."""
    if declared != "auto":
        return declared, []
    head: list[tuple[int, Any]] = []
    for n, row in rows:
        head.append((n, row))
        fmt = detect_format(row) if isinstance(row, dict) else None
        if fmt == "preference":
            raise preference_error(path, row)
        if fmt is not None:
            return fmt, head
        if len(head) >= 100:
            break
    if not head:
        raise RankwiseError(f"{path}: the file has no rows", "check data.path")
    if all(isinstance(r, BadRow) for _, r in head):
        for n, r in head:
            counter.bad(location(path, n), r.reason)  # raises at the first unless skipping
        raise RankwiseError(f"{path}: no usable rows ({counter.skipped} bad rows skipped)",
                            "; ".join(counter.examples[:3]))
    raise unknown_format(path, sorted({k for _, r in head if isinstance(r, dict) for k in r}))


# --------------------------------------------------------------------------- rendering

def _renderer(tokenizer, messages: list[dict], tools: list | None) -> Callable[[list[dict], bool], str]:
    """How to render (a prefix of) this conversation: `_direct_renderer` when it may, else
    apply_chat_template."""
    fast = _direct_renderer(tokenizer) if tools is None else None
    if fast is not None and all(type(v) is str for m in messages for v in m.values()):
        return fast
    return lambda msgs, gen: tokenizer.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=gen)


_RENDERERS: dict[tuple, Callable | None] = {}


def _direct_renderer(tokenizer) -> Callable[[list[dict], bool], str] | None:
    """The chat template's compiled Jinja template, called as apply_chat_template(tokenize=False)
    calls it for messages whose values are all strings (no None to drop, no tool calls, no
    tools): the same text at a third of the cost (apply_chat_template re-normalizes each
    conversation; rendering is most of a build). Checked once against apply_chat_template on a
    sample conversation; None (use apply_chat_template) if it differs or transformers moved it."""
    template = getattr(tokenizer, "chat_template", None)
    special = getattr(tokenizer, "special_tokens_map", {})
    key = (id(tokenizer), template if isinstance(template, str) else repr(template), repr(special))
    if key in _RENDERERS:
        return _RENDERERS[key]
    _RENDERERS[key] = None
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template  # private: checked below

        compiled = _compile_jinja_template(tokenizer.get_chat_template())
    except Exception:
        return None

    # Template.render merges the template's globals (a ChainMap) into a new context per call: most
    # of the cost of a short conversation. The same context over plain dicts prepared once renders
    # the same text.
    env, globals_ = compiled.environment, dict(compiled.globals)
    base = {**globals_, **special, "tools": None, "documents": None}
    concat, root, context = env.concat, compiled.root_render_func, env.context_class

    def render(msgs: list[dict], gen: bool) -> str:
        try:
            return concat(root(context(env, {**base, "messages": msgs, "add_generation_prompt": gen}, compiled.name,
                                       compiled.blocks, globals=globals_)))
        except Exception:  # the template refuses: raise what Template.render raises
            return compiled.render(messages=msgs, tools=None, documents=None, add_generation_prompt=gen, **special)

    def agrees(sample: list[dict]) -> bool:
        return all(render(sample[:n], gen) == tokenizer.apply_chat_template(sample[:n], tokenize=False,
                                                                             add_generation_prompt=gen)
                   for n in range(1, len(sample) + 1) for gen in (False, True))

    for sample in ([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                    {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}],
                   [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]):
        try:
            same = agrees(sample)
        except Exception:  # the template refuses this sample (no system role, ...): try the next
            continue
        if same:
            _RENDERERS[key] = render
            return render
        return None
    return None


def _template_name(tokenizer) -> str:
    return f"the chat template of {getattr(tokenizer, 'name_or_path', '') or 'this tokenizer'}"


def _check_tool_rendering(tokenizer, where: str, messages: list[dict], full: str) -> None:
    """Tool calls must reach the text: a template that ignores them would teach the model to
    answer after a tool result it never asked for."""
    calls = [c["function"]["name"] for m in messages for c in m.get("tool_calls", ())]
    if not calls:
        return
    template = getattr(tokenizer, "chat_template", None) or ""
    missing = [name for name in calls if name not in full]
    if "tool_calls" not in template or missing:
        raise RankwiseError(
            f"{where}: an assistant turn calls tools ({', '.join(dict.fromkeys(calls))}), and {_template_name(tokenizer)} "
            "does not render tool calls" + (f" ({', '.join(missing)} is missing from the rendered text)" if missing else ""),
            "train a model whose chat template supports tools (it reads message.tool_calls, as Qwen2.5 and "
            "Llama 3.1 do), or drop the tool-call rows")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop the whitespace a template puts after an end-of-turn marker from the trained span."""
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _render_chat(tokenizer, where: str, messages: list[dict], tools: list | None = None) -> _Rendered:
    template = _renderer(tokenizer, messages, tools)
    full = template(messages, False)
    _check_tool_rendering(tokenizer, where, messages, full)
    eos = tokenizer.eos_token or ""
    spans, cursor = [], 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":  # move past it, so an answer quoted in a question is not taken for it
            at = full.find(m["content"], cursor) if m["content"] else -1
            cursor = at + len(m["content"]) if at >= 0 else cursor
            continue
        try:
            before = template(messages[:i], True) if i else None
            upto = full if i + 1 == len(messages) else template(messages[: i + 1], False)
        except Exception:  # a template may refuse a partial conversation: fall back to searching
            before = upto = None
        if before is not None and full.startswith(upto) and upto.startswith(before) and len(before) >= cursor:
            start, end = len(before), len(upto)
        else:  # the template rewrites earlier turns (or i == 0): find the content itself
            start = full.find(m["content"], cursor) if m["content"] and not m.get("tool_calls") else -1
            if start < 0:
                raise ValueError(f"the chat template does not reproduce assistant message {i + 1}")
            end = start + len(m["content"])
            if eos and full.startswith(eos, end):
                end += len(eos)
        start, end = _trim(full, start, end)
        spans.append((start, end))
        cursor = end
    last = full[spans[-1][0]:spans[-1][1]]
    return _Rendered(where, full, spans, add_eos=not (eos and eos in last))


def _instruction_messages(row: dict) -> list[dict]:
    user = row["instruction"] + (f"\n\n{row['input']}" if (row.get("input") or "").strip() else "")
    system = [{"role": "system", "content": row["system"]}] if (row.get("system") or "").strip() else []
    return system + [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]


def _plain(where: str, prompt: str, response: str) -> _Rendered:
    return _Rendered(where, prompt + response, [(len(prompt), len(prompt) + len(response))], add_eos=True)


def _render(tokenizer, fmt: str, where: str, row: dict, has_template: bool) -> _Rendered:
    if fmt in ("chat", "sharegpt"):
        return _render_chat(tokenizer, where, row["messages"], row.get("tools"))
    if fmt == "instruction":
        if has_template:
            return _render_chat(tokenizer, where, _instruction_messages(row))
        inp = (row.get("input") or "").strip()
        prompt = (ALPACA if inp else ALPACA_NO_INPUT).format(instruction=row["instruction"], input=inp)
        if (row.get("system") or "").strip():
            prompt = row["system"] + "\n\n" + prompt
        return _plain(where, prompt, row["output"])
    if fmt == "prompt_completion":
        return _plain(where, row["prompt"], row["completion"])
    return _plain(where, "", row["text"])


def no_template(path, fmt: str) -> RankwiseError:
    """Chat rows and a tokenizer without a chat template (a base model's)."""
    return RankwiseError(f"{path}: {fmt} data (`messages`/`conversations`) needs a tokenizer with a chat template, and "
                         "this one has none", "set model.chat_template: chatml (or a Jinja file), use the model's "
                         "instruct/chat variant, or convert the rows to prompt/completion or text and set data.format")


def _rendered(rows: _Rows, tokenizer) -> Iterator[_Rendered]:
    """The good rows of a file rendered to text with their trained-on spans (bad ones counted)."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    for where, row in rows:
        if rows.fmt in ("chat", "sharegpt") and not has_template:
            raise no_template(rows.path, rows.fmt)
        try:
            yield _render(tokenizer, rows.fmt, where, row, has_template)
        except RankwiseError:
            raise
        except Exception as e:  # the template's own checks (role order, system not allowed, ...)
            rows.counter.bad(where, f"the chat template rejected this conversation ({e})")


def make_collator(tokenizer) -> Callable[[list[dict]], dict[str, Any]]:
    """Right-pad a batch to its longest example: input_ids with the pad id (EOS if the
    tokenizer has no pad token), labels with -100, attention_mask 1 on real tokens.
    Packed examples (with position_ids) get position_ids instead of an attention mask: the
    padding continues as one more sequence, and the model separates the sequences by where
    the positions restart (see trainer/data_build.py)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_id = 0 if pad_id is None else pad_id

    def collate(batch: list[dict]) -> dict[str, Any]:
        import torch  # deferred: the data module is imported on CLI paths that never collate

        longest = max(len(ex["input_ids"]) for ex in batch)
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), IGNORE, dtype=torch.long)
        packed = "position_ids" in batch[0]
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        positions = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, ex in enumerate(batch):
            n = len(ex["input_ids"])
            ids[i, :n] = torch.tensor(ex["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(ex["labels"], dtype=torch.long)
            mask[i, :n] = 1
            if packed:
                positions[i, :n] = torch.tensor(ex["position_ids"], dtype=torch.long)
                positions[i, n:] = torch.arange(longest - n)
        if packed:  # no KV cache: transformers reads packed position_ids as sequence boundaries only without one
            return {"input_ids": ids, "labels": labels, "position_ids": positions, "use_cache": False}
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate
