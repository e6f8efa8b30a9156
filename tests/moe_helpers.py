"""Shared by the MoE tests (tests/test_target_parameters.py, tests/test_moe_quant.py): a tiny Mixtral built from
its config (no download), as a config, a spec, or a saved folder with the shipped tiny tokenizer; and the bytes
autograd saves in one forward."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import MixtralConfig, MixtralForCausalLM

FUSED = ("experts.gate_up_proj", "experts.down_proj")  # its fused expert tensors, as the spec names them
ASSETS = Path(__file__).resolve().parents[1] / "presets" / "assets"


def tiny_mixtral_config() -> MixtralConfig:
    """2 layers of 4 experts (2 a token), the shipped tiny tokenizer's 262-token vocabulary."""
    return MixtralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=262, num_local_experts=4, num_experts_per_tok=2,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)


def tiny_mixtral_spec(cfg: MixtralConfig):
    from rankwise.advisor.model import spec_from_config

    return spec_from_config("tiny-mixtral", "local", {**cfg.to_dict(), "model_type": "mixtral"})


def tiny_mixtral_folder(tmp_path: Path) -> Path:
    """Random weights (seed 0) saved as safetensors beside the tiny Llama's tokenizer: a model `train` can load."""
    folder = tmp_path / "tiny-mixtral"
    torch.manual_seed(0)
    MixtralForCausalLM(tiny_mixtral_config()).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(ASSETS / "tiny-llama" / name, folder / name)
    return folder


def tiny_shared_expert_folder(tmp_path: Path) -> Path:
    """A tiny Llama 4 language model (2 layers of 4 experts and a shared expert MLP, whose gate/up/down_proj are
    linears named like the experts' fused tensors) saved beside the tiny tokenizer."""
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    cfg = Llama4TextConfig(hidden_size=64, intermediate_size=128, intermediate_size_mlp=192, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=262,
                           num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=1,
                           no_rope_layers=[1, 1], use_qk_norm=False, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    folder = tmp_path / "tiny-llama4"
    torch.manual_seed(0)
    Llama4ForCausalLM(cfg).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(ASSETS / "tiny-llama" / name, folder / name)
    return folder


def saved_bytes(model, run) -> int:
    """Bytes of the distinct storages autograd saves while `run()` runs a forward (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        if t.numel() and t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(saved.values())
