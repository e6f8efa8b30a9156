"""transformers 5's fused MoE experts under a bitsandbytes method: bitsandbytes leaves them in 16-bit (measured here on
a tiny Mixtral loaded in 4-bit on the CPU), peft's kbit preparation would upcast them to fp32, the worker casts them
back, and the estimate counts them as they are held."""
import tempfile

import torch
from peft import prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, MixtralConfig, MixtralForCausalLM

from rankwise.advisor.memory import GIB, Plan, estimate
from rankwise.advisor.storage import fused_experts
from rankwise.advisor.model import load_model
from rankwise.trainer.loading import experts_in


def _four_bit_mixtral():
    cfg = MixtralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=128, num_local_experts=4, num_experts_per_tok=2)
    folder = tempfile.mkdtemp()
    MixtralForCausalLM(cfg).to(torch.bfloat16).save_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.bfloat16, device_map="cpu",
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                               bnb_4bit_compute_dtype=torch.bfloat16))


def test_bitsandbytes_leaves_the_experts_16_bit_and_the_worker_keeps_them_so():
    model = _four_bit_mixtral()
    experts = {n: p for n, p in model.named_parameters() if ".experts." in n}
    q_proj = dict(model.named_parameters())["model.layers.0.self_attn.q_proj.weight"]
    assert type(q_proj).__name__ == "Params4bit"  # the attention is quantized
    assert experts and all(p.dtype == torch.bfloat16 and p.dim() == 3 for p in experts.values())
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if ".experts." in n)  # peft's upcast
    assert experts_in(model, torch.bfloat16) == len(experts)
    params = dict(model.named_parameters())
    assert all(params[n].dtype == torch.bfloat16 for n in experts)
    assert params["model.layers.0.input_layernorm.weight"].dtype == torch.float32  # the rest stays upcast
    assert experts_in(model, torch.float32) == 0  # an fp32 run (the CPU) keeps fp32


def test_the_estimate_holds_the_experts_in_16_bit_under_qlora():
    """Mixtral-8x7B: ~45B of its ~47B parameters are experts; QLoRA as transformers loads it (quant.quantize_experts
    off) quantizes only the rest."""
    spec = load_model("mixtral-8x7b")
    experts = sum(l.count * l.d_in * l.d_out for l in spec.linears if fused_experts(l))
    assert experts > 0.9 * spec.total_params
    q, lora = estimate(spec, Plan("qlora", quantize_experts=False)), estimate(spec, Plan("lora"))
    assert q.components["base_weights"] > 2 * experts > 80 * GIB
    assert q.peak_bytes > 0.9 * lora.peak_bytes  # QLoRA saves little here
    assert any("MoE experts" in a and "not quantize" in a for a in q.assumptions)


def test_check_says_the_experts_stay_16_bit_under_a_quantized_method():
    from rankwise.advisor import redflags
    from rankwise.advisor.config import RunConfig

    spec = load_model("mixtral-8x7b")
    said = lambda method: [f for f in redflags.check(RunConfig.model_validate({"model": {"name": "mixtral-8x7b"},
                                                                               "method": method,
                                                                               "quant": {"quantize_experts": False}}),
                                                     spec, None)
                           if f.code == "moe-experts-16bit"]
    (f,) = said("qlora")
    assert f.severity == "info" and "97% of its weights" in f.message
    assert said("lora") == [] and said("lora-8bit")
    dense = RunConfig.model_validate({"model": {"name": "llama-3.1-8b"}, "method": "qlora"})
    assert not [f for f in redflags.check(dense, load_model("llama-3.1-8b"), None) if f.code == "moe-experts-16bit"]


def test_the_step_time_reads_the_16_bit_experts_without_a_dequantize():
    """bitsandbytes' dequantize reads 4 bits and writes and reads 16 per weight; the experts it never quantized are
    plain 16-bit reads (their routed share), so the weights' memory time is below the all-quantized stack's."""
    from dataclasses import replace

    from rankwise.advisor import fit
    from rankwise.advisor.config import RunConfig
    from rankwise.advisor.hardware import planned
    from rankwise.advisor.speeds import Device
    from rankwise.advisor.time import micro_batch_seconds

    spec, hw = load_model("mixtral-8x7b"), planned(gpu="H100")
    judged = fit.assess(spec, RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, "method": "qlora",
                                                        "quant": {"quantize_experts": False}}), hw)
    plan = judged.estimate.plan
    older = replace(judged, estimate=replace(judged.estimate, plan=replace(plan, stack=replace(
        plan.stack, quantizes_fused_experts=True))))
    now, before = (micro_batch_seconds(spec, f, Device.of(hw), 2048)["memory"] for f in (judged, older))
    assert 0 < now < before


def test_more_gpus_are_offered_with_the_method_that_shards_when_the_quantized_one_cannot():
    """QLoRA on an MoE loads the whole model, 16-bit experts and all, onto every GPU before FSDP shards it, so more
    GPUs do not help it; LoRA's 16-bit base is sharded from rank 0's CPU: 2 H100s fit it, and that is offered."""
    from rankwise.advisor import fit
    from rankwise.advisor.config import RunConfig
    from rankwise.advisor.hardware import planned

    spec, hw = load_model("mixtral-8x7b"), planned(gpu="H100")
    cfg = RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, "method": "qlora",
                                    "quant": {"quantize_experts": False}})
    rows = {s["change"]: s for s in fit.suggest_fixes(spec, hw, cfg, "qlora")}
    assert rows["2 GPUs (FSDP: weights, gradients and optimizer states sharded)"]["fit"] == "wont-fit"
    lora = rows["2 GPUs with LoRA (FSDP: its base sharded as it loads)"]
    assert lora["fit"] == "fits" and lora["patch"] is None  # hardware: not a --set fix
