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


def generate_ids(model, tokenizer, prompt_ids: list[int], settings: Settings,
                 on_text: Callable[[str], None] | None = None) -> str:
    """Generate after `prompt_ids` (already tokenized, special tokens included); the new text,
    streamed through `on_text` as it is decoded when given."""
    import torch  # deferred: heavy
    from transformers import TextStreamer

    class _Stream(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False):
            if text:
                on_text(text)

    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    sample = settings.temperature > 0
    kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=sample,
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    if sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:  # greedy: no sampling knobs (generation_config's own would only warn)
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if on_text is not None:
        kwargs["streamer"] = _Stream(tokenizer, skip_prompt=True, skip_special_tokens=True)
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
