"""Built-in architecture configs (config.json fields only, never weights).

Each entry holds the fields of the model's published `config.json` that decide its shape
(copied from the model cards' configs on the Hugging Face Hub). Rope scaling and other
fields that do not change parameter counts or memory are left out.
"""
from __future__ import annotations


def _llama(hidden, inter, layers, heads, kv, vocab, pos, tied, head_dim=None, **extra):
    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": pos,
           "tie_word_embeddings": tied, "rms_norm_eps": 1e-5, "hidden_act": "silu"}
    if head_dim:
        cfg["head_dim"] = head_dim
    cfg.update(extra)
    return cfg


def _qwen2(hidden, inter, layers, heads, kv, vocab, pos, tied):
    return {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": hidden,
            "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": pos,
            "tie_word_embeddings": tied, "rms_norm_eps": 1e-6, "hidden_act": "silu"}


def _gemma2(hidden, inter, layers, heads, kv, head_dim):
    return {"model_type": "gemma2", "architectures": ["Gemma2ForCausalLM"], "hidden_size": hidden,
            "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "head_dim": head_dim, "vocab_size": 256000,
            "max_position_embeddings": 8192, "tie_word_embeddings": True, "hidden_act": "gelu_pytorch_tanh",
            "hidden_activation": "gelu_pytorch_tanh"}


def _phi3(pos):
    return {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "hidden_size": 3072,
            "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": pos,
            "tie_word_embeddings": False, "pad_token_id": 32000, "hidden_act": "silu"}


CATALOG: dict[str, dict] = {
    # Meta Llama 3.x (meta-llama/Llama-3.2-1B, -3B, Llama-3.1-8B, -70B)
    "llama-3.2-1b": _llama(2048, 8192, 16, 32, 8, 128256, 131072, True, head_dim=64),
    "llama-3.2-3b": _llama(3072, 8192, 28, 24, 8, 128256, 131072, True, head_dim=128),
    "llama-3.1-8b": _llama(4096, 14336, 32, 32, 8, 128256, 131072, False),
    "llama-3.1-70b": _llama(8192, 28672, 80, 64, 8, 128256, 131072, False),
    # Meta Llama 2 (meta-llama/Llama-2-7b-hf, -13b-hf)
    "llama-2-7b": _llama(4096, 11008, 32, 32, 32, 32000, 4096, False),
    "llama-2-13b": _llama(5120, 13824, 40, 40, 40, 32000, 4096, False),
    # Mistral (mistralai/Mistral-7B-v0.3; v0.1 has a 32000 vocabulary)
    "mistral-7b": {**_llama(4096, 14336, 32, 32, 8, 32768, 32768, False),
                   "model_type": "mistral", "architectures": ["MistralForCausalLM"], "head_dim": 128},
    # mistralai/Mixtral-8x7B-v0.1: 8 experts, 2 active per token
    "mixtral-8x7b": {**_llama(4096, 14336, 32, 32, 8, 32000, 32768, False),
                     "model_type": "mixtral", "architectures": ["MixtralForCausalLM"],
                     "num_local_experts": 8, "num_experts_per_tok": 2, "head_dim": 128},
    # Qwen/Qwen2.5-*: q,k,v carry biases
    "qwen2.5-0.5b": _qwen2(896, 4864, 24, 14, 2, 151936, 32768, True),
    "qwen2.5-1.5b": _qwen2(1536, 8960, 28, 12, 2, 151936, 32768, True),
    "qwen2.5-7b": _qwen2(3584, 18944, 28, 28, 4, 152064, 32768, False),
    "qwen2.5-14b": _qwen2(5120, 13824, 48, 40, 8, 152064, 32768, False),
    "qwen2.5-32b": _qwen2(5120, 27648, 64, 40, 8, 152064, 32768, False),
    "qwen2.5-72b": _qwen2(8192, 29568, 80, 64, 8, 152064, 32768, False),
    # google/gemma-2-*
    "gemma-2-2b": _gemma2(2304, 9216, 26, 8, 4, 256),
    "gemma-2-9b": _gemma2(3584, 14336, 42, 16, 8, 256),
    "gemma-2-27b": _gemma2(4608, 36864, 46, 32, 16, 128),
    # microsoft/Phi-3-mini-4k-instruct and Phi-3.5-mini-instruct (fused qkv and gate_up)
    "phi-3-mini": _phi3(4096),
    "phi-3.5-mini": _phi3(131072),
}

# Names people type for the same thing.
ALIASES: dict[str, str] = {
    "llama-3.1-8b-instruct": "llama-3.1-8b", "llama-3-8b": "llama-3.1-8b", "llama-3.1-70b-instruct": "llama-3.1-70b",
    "llama-3-70b": "llama-3.1-70b", "llama-3.2-1b-instruct": "llama-3.2-1b", "llama-3.2-3b-instruct": "llama-3.2-3b",
    "meta-llama/llama-3.1-8b": "llama-3.1-8b", "meta-llama/llama-3.1-8b-instruct": "llama-3.1-8b",
    "meta-llama/llama-3.2-1b": "llama-3.2-1b", "meta-llama/llama-3.2-3b": "llama-3.2-3b",
    "meta-llama/llama-3.1-70b": "llama-3.1-70b", "meta-llama/llama-2-7b-hf": "llama-2-7b",
    "meta-llama/llama-2-13b-hf": "llama-2-13b", "mistralai/mistral-7b-v0.3": "mistral-7b",
    "mistral-7b-instruct": "mistral-7b", "mistralai/mixtral-8x7b-v0.1": "mixtral-8x7b",
    "qwen/qwen2.5-7b": "qwen2.5-7b", "qwen/qwen2.5-7b-instruct": "qwen2.5-7b", "qwen2.5-7b-instruct": "qwen2.5-7b",
    "qwen2.5-coder-7b": "qwen2.5-7b", "google/gemma-2-9b": "gemma-2-9b", "google/gemma-2-2b": "gemma-2-2b",
    "google/gemma-2-27b": "gemma-2-27b", "microsoft/phi-3-mini-4k-instruct": "phi-3-mini",
    "microsoft/phi-3.5-mini-instruct": "phi-3.5-mini",
    # same shapes as their base models (config.json differs only in non-shape fields)
    "meta-llama/llama-3.1-70b-instruct": "llama-3.1-70b", "mistralai/mistral-7b-instruct-v0.3": "mistral-7b",
    "qwen/qwen2.5-coder-7b": "qwen2.5-7b", "qwen/qwen2.5-coder-7b-instruct": "qwen2.5-7b",
    # Qwen2.5-Coder Technical Report (Hui et al. 2024, arXiv:2409.12186), Table 1: each size has its Qwen2.5
    # namesake's hidden size, layers, query/KV heads and intermediate size; 0.5B-3B tie the embedding, 7B-32B do not
    **{f"qwen/qwen2.5-coder-{size}{tail}": f"qwen2.5-{size}" for size in ("0.5b", "1.5b", "14b", "32b")
       for tail in ("", "-instruct")},
}


def lookup(name: str) -> tuple[str, dict] | None:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in CATALOG:
        return key, dict(CATALOG[key])
    return None
