"""Generation as every face of rankwise does it (chat, compare, samples while training): from
prompt token ids, with one set of settings, decoding only the new tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Settings:
    """Generation settings: temperature 0 is greedy decoding (the same answer every time)."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0


_TURN_ENDS: dict[tuple, str | None] = {}


def turn_end(tokenizer) -> str | None:
    """What the chat template writes after an answer that decoding would still show: a marker of plain text, as
    ChatML's `<|im_end|>` on a base tokenizer without it as a special token (model.chat_template: chatml).
    Generation stops there and the marker is dropped from the answer. None where the template ends a turn with
    special tokens only (decoding skips them), or there is no template."""
    template = getattr(tokenizer, "chat_template", None)
    key = (id(tokenizer), template if isinstance(template, str) else repr(template))
    if key not in _TURN_ENDS:
        _TURN_ENDS[key] = None
        if template:
            try:
                user = [{"role": "user", "content": "U"}]
                before = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
                full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": "A"}], tokenize=False)
            except Exception:  # a template that refuses this conversation: nothing to strip
                return None
            rest = full[len(before):] if full.startswith(before) else ""
            end = rest[1:].strip() if rest.startswith("A") else ""
            for special in sorted(getattr(tokenizer, "all_special_tokens", ()), key=len, reverse=True):
                end = end.replace(special, "") if special else end
            _TURN_ENDS[key] = end.strip() or None
    return _TURN_ENDS[key]


def without_turn_end(text: str, end: str | None) -> str:
    """`text` cut at the template's plain-text end-of-turn marker (turn_end), when it holds one."""
    return text.split(end, 1)[0] if end and end in text else text


def generate_ids(model, tokenizer, prompt_ids: list[int], settings: Settings,
                 on_text: Callable[[str], None] | None = None) -> str:
    """Generate after `prompt_ids` (already tokenized, special tokens included); the new text,
    streamed through `on_text` as it is decoded when given. A chat template that ends a turn with plain text
    (turn_end) stops the answer there, without the marker."""
    import torch  # deferred: heavy
    from transformers import TextStreamer

    end = turn_end(tokenizer)

    class _Stream(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False):
            text = text.replace(end, "") if end else text
            if text:
                on_text(text)

    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    sample = settings.temperature > 0
    kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=sample,
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    if end:
        kwargs.update(stop_strings=[end], tokenizer=tokenizer)
    if sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:  # greedy: no sampling knobs (generation_config's own would only warn)
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if on_text is not None:
        kwargs["streamer"] = _Stream(tokenizer, skip_prompt=True, skip_special_tokens=True)
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    return without_turn_end(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True), end)
