"""The demo model and data: a tiny Llama that trains on a 2-core CPU in seconds.

Nothing is downloaded. `build()` makes, from a fixed seed:
- a byte-level tokenizer (256 bytes + a few specials, a chat template),
- a 2-layer Llama "pretrained" briefly on the demo corpus so LoRA has a base to adapt,
- the demo datasets (chat and instruction JSONL): a memorisable mapping of countries to
  capitals and small sums, so a falling loss means the adapter learned something.

The outputs are shipped in `presets/assets/` (a few hundred KB) so the demo does not
even need this build step; `python -m rankwise.trainer.tiny OUT` rebuilds them.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Greece", "Athens"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Ireland", "Dublin"), ("Hungary", "Budapest"),
    ("Czechia", "Prague"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Japan", "Tokyo"), ("China", "Beijing"),
    ("India", "New Delhi"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Cuba", "Havana"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Turkey", "Ankara"), ("Russia", "Moscow"),
    ("Ukraine", "Kyiv"), ("Belgium", "Brussels"), ("Nepal", "Kathmandu"),
]
SPECIALS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False)


def demo_rows(seed: int = 0) -> list[tuple[str, str]]:
    """(question, answer) pairs: capitals and sums under 20."""
    rng = random.Random(seed)
    rows = [(f"What is the capital of {c}?", f"The capital of {c} is {k}.") for c, k in CAPITALS]
    for _ in range(32):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append((f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."))
    rng.shuffle(rows)
    return rows


def write_data(out: Path, seed: int = 0) -> None:
    rows = demo_rows(seed)
    with open(out / "demo-chat.jsonl", "w") as fh:
        for q, a in rows:
            fh.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n")
    with open(out / "demo-instruct.jsonl", "w") as fh:
        for q, a in rows:
            fh.write(json.dumps({"instruction": q, "input": "", "output": a}) + "\n")


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   model_max_length=TINY_CONFIG["max_position_embeddings"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build(out: str | Path, seed: int = 0, pretrain_steps: int = 300) -> Path:
    """Build the tiny model, tokenizer and demo data into `out/`."""
    import torch  # deferred: building needs torch, reading the shipped files does not
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    model_dir = out / "tiny-llama"
    model_dir.mkdir(parents=True, exist_ok=True)
    write_data(out, seed)
    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **TINY_CONFIG)
    model = LlamaForCausalLM(cfg)
    # A short full pretrain on generic sentences in the demo's style (not the answers), so the
    # base knows the byte statistics of English and the chat format before LoRA adapts it.
    rng = random.Random(seed + 1)
    words = [c for c, _ in CAPITALS] + [k for _, k in CAPITALS] + "the of is what a and plus to in".split()
    corpus = []
    for _ in range(400):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 10))).capitalize() + "."
        corpus.append(tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(pretrain_steps):
        batch = tok([corpus[(step * 16 + i) % len(corpus)] for i in range(16)], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    return out


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "presets/assets")
