"""Gated DeltaNet hybrids (Qwen3-Next, Qwen3.5): what their layers keep for backward, measured with autograd's saved
tensors on tiny Qwen3.5 models beside advisor/linear_attention.py's count, and the packing fact the red flag rests on.

The CPU runs transformers' torch fallback of the delta rule, the path the count is measured on; flash-linear-attention's
kernel (a GPU's) is read from its source and left to bench/gpu_suite.py."""
import pytest

from rankwise.advisor import linear_attention
from rankwise.advisor.memory import layer_saved_bytes
from rankwise.advisor.model import load_model, spec_from_config
from rankwise.advisor.plan import Plan
from saved_tensors import lora_model, packed_vs_alone, qlora_model, saved_in


def _config(hidden=256, k_heads=4, v_heads=12, k_dim=32, v_dim=48, kinds=("linear_attention", "linear_attention",
                                                                            "full_attention")):
    from transformers.models.qwen3_5.configuration_qwen3_5 import Qwen3_5TextConfig

    return Qwen3_5TextConfig(hidden_size=hidden, intermediate_size=512, num_hidden_layers=len(kinds),
                             layer_types=list(kinds), num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                             linear_key_head_dim=k_dim, linear_num_key_heads=k_heads, linear_num_value_heads=v_heads,
                             linear_value_head_dim=v_dim, vocab_size=500, attn_implementation="sdpa")


def _lora_model(cfg, targets):
    import torch
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5ForCausalLM

    torch.manual_seed(0)
    return lora_model(Qwen3_5ForCausalLM(cfg), targets)


@pytest.mark.parametrize("seq,shape", [
    (128, dict(k_heads=4, v_heads=12, k_dim=32, v_dim=48)),  # a whole number of 64-token chunks, grouped value heads
    (200, dict(k_heads=4, v_heads=12, k_dim=32, v_dim=48)),  # padded to 256 inside the delta rule
    (96, dict(k_heads=8, v_heads=8, k_dim=64, v_dim=32)),    # as many key as value heads
])
def test_torch_delta_rule_keeps_what_the_count_says(seq, shape):
    cfg = _config(**shape)
    model = _lora_model(cfg, ["gate_proj"])  # nothing adapted in the layer measured: its own tensors only
    measured = saved_in(model, model.base_model.model.model.layers[1].linear_attn, seq)
    g = linear_attention.read("qwen3_5_text", cfg.to_dict(), cfg.num_hidden_layers)
    estimated = linear_attention.saved_bytes(g, seq, 2, "torch") * seq
    assert abs(estimated - measured) / measured < 0.002, (estimated, measured)


def test_gated_full_attention_layer():
    """The full-attention layers' output gate and per-head q/k norms, beside Llama's attention tensors."""
    cfg = _config()
    model = _lora_model(cfg, ["gate_proj"])
    seq = 128
    measured = saved_in(model, model.base_model.model.model.layers[2].self_attn, seq)
    qd, kvd, a = 4 * 64, 2 * 64, 2
    llama = a * (qd + 2 * kvd) + a * qd + 4 * 4  # q, k, v, the output, the logsumexp a head
    estimated = (llama + linear_attention.gated_attention_bytes(4, 2, 64, a)) * seq
    assert abs(estimated - measured) / measured < 0.03, (estimated, measured)


def test_layers_on_average_and_the_largest():
    """Whole decoder layers with LoRA on every linear: the estimate's average over the hybrid's layers and its larger
    kind (what a checkpointed backward recomputes) against the measured layers."""
    cfg = _config()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "in_proj_qkv",
               "in_proj_z", "out_proj"]
    seq = 128
    linear, full = (saved_in(m, m.base_model.model.model.layers[i], seq) / seq  # layer 0's input needs no grad
                    for i, m in ((1, _lora_model(cfg, targets)), (2, _lora_model(cfg, targets))))
    spec = spec_from_config("tiny", "local", {**cfg.to_dict(), "model_type": "qwen3_5_text"})
    assert spec.linear_attention.layers == 2
    plan = Plan("lora", r=8, targets=tuple(targets), lora_dropout=False, seq_len=seq)
    adapted = spec.resolve_targets(list(targets))
    mean = layer_saved_bytes(spec, plan, adapted)
    largest = layer_saved_bytes(spec, plan, adapted, largest=True)
    average = (2 * linear + full) / 3
    assert abs(mean - average) / average < 0.04, (mean, linear, full)
    assert abs(largest - linear) / linear < 0.04, (largest, linear)
    llama_like = layer_saved_bytes(spec_from_config("tiny", "local", {**cfg.to_dict(), "model_type": "llama"}),
                                   plan, adapted)
    assert mean > 2 * llama_like  # what the estimate held before it knew the layers


def test_fla_keeps_less_than_the_torch_fallback():
    g = linear_attention.read("qwen3_5", load_model("Qwen/Qwen3.5-9B").config, 32)
    assert (g.layers, g.k_heads, g.v_heads, g.k_dim, g.v_dim) == (24, 16, 32, 128, 128)
    torch_path = linear_attention.saved_bytes(g, 4096, 2, "torch")
    fla = linear_attention.saved_bytes(g, 4096, 2, "fla")
    assert 2 * fla < torch_path
    assert linear_attention.saved_bytes(g, 4096, 2, "fla", conv_fused=True) < fla


def test_which_models_have_the_layers():
    nxt = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert nxt.linear_attention.layers == 36 and nxt.num_layers == 48
    assert load_model("Qwen/Qwen3.5-35B-A3B").linear_attention.layers == 30
    assert load_model("llama-3.2-1b").linear_attention is None
    # no layer_types in config.json: Qwen3NextConfig's default, full attention every 4th layer
    assert linear_attention.read("qwen3_next", {"num_hidden_layers": 8}, 8).layers == 6


def test_estimate_says_which_delta_rule_it_counts():
    from rankwise.advisor.memory import estimate

    spec = load_model("Qwen/Qwen3.5-9B")
    torch_path = estimate(spec, Plan("qlora", targets="all-linear", seq_len=4096, grad_checkpointing=False))
    fla = estimate(spec, Plan("qlora", targets="all-linear", seq_len=4096, grad_checkpointing=False,
                              linear_kernel="fla"))
    line = next(a for a in torch_path.assumptions if a.startswith("Gated DeltaNet in 24 of 32 layers"))
    assert "torch fallback" in line and "pip install flash-linear-attention" in line
    assert fla.components["activations"] < torch_path.components["activations"]


def test_packing_runs_the_linear_layers_across_examples():
    """What packing-linear-attention rests on: with position_ids restarting per packed example (rankwise's packing),
    a Qwen3.5 model's second example reads differently packed than alone; with full attention only, the same."""
    import torch
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5ForCausalLM

    def packed_vs_alone_on(kinds):
        torch.manual_seed(0)
        return packed_vs_alone(Qwen3_5ForCausalLM(_config(hidden=64, k_heads=2, v_heads=4, k_dim=16, v_dim=16,
                                                          kinds=kinds)).eval())

    assert packed_vs_alone_on(("linear_attention", "full_attention")) > 1e-3
    assert packed_vs_alone_on(("full_attention", "full_attention")) < 1e-5


def test_packing_runs_kimi_delta_attention_across_examples():
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_kimi_config(2, 16, ("linear_attention", "full_attention"), 64)).eval()
    assert packed_vs_alone(model) > 1e-3


def _kimi_config(heads=4, head_dim=24, kinds=("linear_attention", "linear_attention", "full_attention"), hidden=128):
    from transformers.models.kimi_linear.configuration_kimi_linear import KimiLinearConfig

    return KimiLinearConfig(hidden_size=hidden, intermediate_size=256, num_hidden_layers=len(kinds),
                            layer_types=list(kinds), mlp_layer_types=["dense"] * len(kinds), num_attention_heads=4,
                            num_key_value_heads=4, kv_lora_rank=32, q_lora_rank=None, qk_rope_head_dim=16,
                            v_head_dim=32, qk_nope_head_dim=32, linear_head_dim=head_dim, linear_num_heads=heads,
                            linear_conv_kernel_dim=4, vocab_size=500, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                            num_experts=4, num_experts_per_token=2)


@pytest.mark.parametrize("seq,heads,head_dim", [(100, 4, 24), (192, 2, 16)])
def test_kimi_delta_attention_torch_path_keeps_what_the_count_says(seq, heads, head_dim):
    """Kimi Linear's KDA layer: its per-channel decay mask and two products with it (fp32, chunk x chunk x head_dim a
    head) and its UT loop's clones, beside everything GDN keeps; measured less LoRA's own tensors on q_proj."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = _kimi_config(heads, head_dim)
    torch.manual_seed(0)
    model = lora_model(AutoModelForCausalLM.from_config(cfg), ["q_proj"])
    width = heads * head_dim
    lora = 2 * (128 + 8) * seq + 2 * 8 * (128 + width)  # q_proj's LoRA: its input, lora_A's output, the casts
    measured = saved_in(model, model.base_model.model.model.layers[1].self_attn, seq) - lora
    g = linear_attention.read("kimi_linear", cfg.to_dict(), cfg.num_hidden_layers)
    assert (g.layers, g.heads, g.head_dim, g.gated_attention) == (2, heads, head_dim, False)
    estimated = linear_attention.saved_bytes(g, seq, 2, "torch") * seq
    assert abs(estimated - measured) / measured < 0.001, (estimated, measured)


def test_kimi_linear_layers_from_the_index_and_from_its_raw_config():
    spec = load_model("moonshotai/Kimi-Linear-48B-A3B-Instruct")
    assert (spec.linear_attention.layers, spec.attention_layers, spec.num_layers) == (21, 6, 27)
    assert spec.linear_attention.name == "Kimi Delta Attention"
    raw = {"linear_attn_config": {"kda_layers": [1, 2, 3, 5, 6], "full_attn_layers": [4], "num_heads": 8,
                                  "head_dim": 64, "short_conv_kernel_size": 4}}  # config.json's own form, 1-indexed
    g = linear_attention.read("kimi_linear", raw, 6)
    assert (g.layers, g.heads, g.head_dim) == (5, 8, 64)
    fla, torch_path = (linear_attention.saved_bytes(spec.linear_attention, 4096, 2, k) for k in ("fla", "torch"))
    assert 10 * fla < torch_path  # the fallback's chunk x chunk x head_dim decay tensors


def _qlora_layer(cfg, path, kind: str):
    """Layer 1's linear-attention module of `cfg` under QLoRA (NF4 on the CPU, prepare_model_for_kbit_training's fp32
    upcast), with LoRA only on layer 0's MLP: the model and the module."""
    model = qlora_model(cfg, path, ["model.layers.0.mlp.gate_proj"])
    return model, getattr(model.base_model.model.model.layers[1], kind)


@pytest.mark.parametrize("seq,shape", [(100, dict(k_heads=4, v_heads=12, k_dim=32, v_dim=48)),
                                       (128, dict(k_heads=8, v_heads=8, k_dim=64, v_dim=32))])
def test_the_delta_rule_under_qlora_keeps_what_the_count_says(seq, shape, tmp_path):
    """Under QLoRA the layer's input is fp32: v and the gates are fp32 where they were 16-bit, the conv's fp32 weight
    is cast and kept, and with q and k unrepeated the conv's fp32 output stands for their copies (saved_bytes'
    `stream`); within 0.01%, as the 16-bit count is. Kimi Delta Attention keeps within 0.1% of its 16-bit count."""
    cfg = _config(**shape)
    model, layer = _qlora_layer(cfg, tmp_path / "gdn", "linear_attn")
    measured = saved_in(model, layer, seq)
    g = linear_attention.read("qwen3_5_text", cfg.to_dict(), cfg.num_hidden_layers)
    counted = linear_attention.saved_bytes(g, seq, 2, "torch", stream=4) * seq
    assert abs(counted - measured) / measured < 1e-4, (counted, measured)
    assert counted > 1.02 * linear_attention.saved_bytes(g, seq, 2, "torch") * seq
    kimi = _kimi_config()
    model, layer = _qlora_layer(kimi, tmp_path / "kda", "self_attn")
    measured = saved_in(model, layer, seq)
    k = linear_attention.read("kimi_linear", kimi.to_dict(), kimi.num_hidden_layers)
    assert abs(linear_attention.saved_bytes(k, seq, 2, "torch", stream=4) * seq - measured) / measured < 1e-3
