"""quant.quantize_experts: a 4-bit method stores an MoE's fused expert tensors in NF4 too (bitsandbytes' parameter
quantization, as they load), trained with real transformers, peft and bitsandbytes on a tiny Mixtral on the CPU, and
estimated as the stack holds them."""
import re

import pytest
import torch
from moe_helpers import (FUSED, saved_bytes, tiny_mixtral_config, tiny_mixtral_folder, tiny_mixtral_spec,
                         tiny_shared_expert_folder)
from train_helpers import events, of_type, only_run, train
from transformers import AutoModelForCausalLM, MixtralForCausalLM

from rankwise.advisor.activations import built_expert_bytes
from rankwise.advisor.config import RunConfig
from rankwise.advisor.memory import GIB, Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.trainer import moe_quant


def test_the_experts_are_quantized_as_they_load_and_compute_what_they_dequantize_to(tmp_path):
    folder = tiny_mixtral_folder(tmp_path)
    with moe_quant.quantized_on_load(FUSED, "nf4", True) as done:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert sorted(done) == sorted(f"model.layers.{i}.mlp.experts.{n.split('.')[1]}" for i in range(2) for n in FUSED)
    assert moe_quant.quantized_experts(model) == 4
    assert moe_quant.quantize_rest(model, FUSED, "nf4", True) == []  # nothing left in 16/32 bits
    stored = {n: p for n, p in model.named_parameters() if ".experts." in n}
    assert stored and all(p.dtype == torch.uint8 for p in stored.values())  # NF4 bytes, two weights a byte
    original = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    experts = model.model.layers[0].mlp.experts
    ref = original.model.layers[0].mlp.experts.gate_up_proj
    got = experts.gate_up_proj  # dequantized on access
    assert got.shape == ref.shape and (got - ref).abs().mean() < 0.1 * ref.abs().mean()  # NF4 rounding, no more
    import transformers.core_model_loading as loading

    assert loading.set_param_for_module.__name__ == "set_param_for_module"  # the wrap is gone after loading


def test_the_8_bit_method_stores_them_in_row_wise_int8_and_reads_them_back_in_their_dtype(tmp_path):
    """The 8-bit method: one int8 a weight and an fp32 absmax a row (bitsandbytes' int8_vectorwise_quant, LLM.int8's
    weight format), dequantized on access to the dtype the tensor loaded in; the state dict holds the int8 data."""
    folder = tiny_mixtral_folder(tmp_path)
    with moe_quant.quantized_on_load(FUSED, "nf4", True, bits=8) as done:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    assert len(done) == 4 and moe_quant.quantized_experts(model) == 4
    stored = {n: p for n, p in model.named_parameters() if ".experts." in n}
    assert stored and all(p.dtype == torch.int8 for p in stored.values())
    experts = model.model.layers[0].mlp.experts
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).model.layers[0].mlp.experts.gate_up_proj
    got = experts.gate_up_proj
    assert got.dtype == torch.bfloat16 and got.shape == ref.shape
    assert (got.float() - ref.float()).abs().mean() < 0.02 * ref.float().abs().mean()  # int8 rounding, no more
    stats = {n: t for n, t in model.state_dict().items() if n.endswith(".stats")}
    assert len(stats) == 4 and all(t.dtype == torch.float32 for t in stats.values())


@pytest.mark.parametrize("method, bits", [("qlora", 4), ("lora-8bit", 8)])
def test_the_dequantized_experts_saved_for_backward_are_what_the_estimate_counts(method, bits):
    """bitsandbytes dequantizes each expert tensor on access; grouped_mm keeps the result for the input gradient."""
    from peft import LoraConfig, get_peft_model

    cfg = tiny_mixtral_config()
    spec = tiny_mixtral_spec(cfg)
    ids = torch.randint(3, 262, (2, 16), generator=torch.Generator().manual_seed(0))
    saved = {}
    for quantize in (False, True):
        torch.manual_seed(0)
        model = MixtralForCausalLM(cfg).to(torch.bfloat16)
        model.set_experts_implementation("grouped_mm")
        if quantize:
            assert len(moe_quant.quantize_rest(model, FUSED, "nf4", True, bits)) == 4
        model = get_peft_model(model, LoraConfig(r=4, lora_dropout=0.0, target_modules=["q_proj"]))
        saved[quantize] = saved_bytes(model, lambda: model(input_ids=ids))
    plan = Plan(method, r=4, lora_dropout=False, grad_checkpointing=False)
    per_token, per_layer = built_expert_bytes(spec, plan, [])
    assert per_token == 0
    assert saved[True] - saved[False] == spec.num_layers * per_layer  # every layer's, without checkpointing


def test_the_estimate_stores_them_in_4_bits_and_builds_one_layer_at_a_time():
    spec = load_model("mixtral-8x7b")
    q, kept = (estimate(spec, Plan("qlora", quantize_experts=on)) for on in (True, False))
    experts = sum(l.count * l.d_in * l.d_out for l in spec.linears if l.name in FUSED)
    assert kept.components["base_weights"] - q.components["base_weights"] == experts * 2 - experts // 2
    assert q.peak_bytes < 32 * GIB < 85 * GIB < kept.peak_bytes  # Mixtral-8x7B QLoRA fits a 40/48 GB GPU
    assert any("quantized to NF4 as they load" in a for a in q.assumptions)
    layer = experts * 2 // spec.num_layers
    no_ckpt = estimate(spec, Plan("qlora", grad_checkpointing=False))
    assert no_ckpt.components["activations"] > spec.num_layers * layer  # every layer's dequantized experts
    # the 8-bit method: row-wise int8, one byte a weight and an fp32 absmax a row
    int8, kept8 = (estimate(spec, Plan("lora-8bit", quantize_experts=on)) for on in (True, False))
    rows = sum(l.count * l.d_out for l in spec.linears if l.name in FUSED)
    assert kept8.components["base_weights"] - int8.components["base_weights"] == experts * 2 - experts
    assert int8.components["quant_constants"] - kept8.components["quant_constants"] == 4 * rows
    assert any("quantized to row-wise int8 as they load" in a for a in int8.assumptions)
    # not sharded, not where LoRA adapts them: 16-bit, as the red flag says
    for plan in (Plan("qlora", gpus=2, strategy="fsdp"), Plan("qlora", target_parameters=FUSED, lora_dropout=False)):
        assert not any("quantized to NF4 as they load" in a for a in estimate(spec, plan).assumptions)


@pytest.mark.parametrize("cfg, fix", [
    ({"method": "qlora", "quant": {"quantize_experts": False}}, {"quant.quantize_experts": True}),
    ({"method": "lora-8bit", "quant": {"quantize_experts": False}}, {"quant.quantize_experts": True}),
    ({"method": "qlora", "lora": {"dropout": 0, "target_parameters": list(FUSED)}}, {"lora.target_parameters": []}),
])
def test_check_says_why_the_experts_stay_16_bit_with_the_fix(cfg, fix):
    from rankwise.advisor import redflags

    run = RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, **cfg})
    (f,) = [f for f in redflags.check(run, load_model("mixtral-8x7b"), None) if f.code == "moe-experts-16bit"]
    assert f.patch == fix
    for method in ("qlora", "lora-8bit"):
        quantized = RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, "method": method})
        assert not [f for f in redflags.check(quantized, load_model("mixtral-8x7b"), None)
                    if f.code == "moe-experts-16bit"]


@pytest.mark.slow
@pytest.mark.parametrize("settings, said", [
    (("train.grad_checkpointing=true", "train.max_steps=6", "train.save_steps=6"),
     r"MoE experts: 4 fused tensors quantized to NF4 as they loaded \(quant"),
    # the 8-bit method: LLM.int8 linears and row-wise int8 experts
    (("method=lora-8bit", "train.max_steps=4", "train.save_steps=4"),
     r"MoE experts: 4 fused tensors quantized to row-wise int8 as they loaded"),
])
def test_an_moe_trains_on_its_quantized_experts_and_the_adapter_moves_the_model(tmp_path, settings, said):
    """QLoRA (NF4 experts) and the 8-bit method (int8 experts) on a tiny Mixtral: trained, the adapter moves the model,
    and chat holds the experts as the run did."""
    from peft import PeftModel

    folder = tiny_mixtral_folder(tmp_path)
    runs = tmp_path / "runs"
    sets = [a for kv in (f"model.name={folder}", *settings) for a in ("--set", kv)]
    p = train(runs, *sets, preset="demo-cpu-qlora")
    assert p.returncode == 0, p.stderr
    run = only_run(runs)
    log = (run / "train.log").read_text()
    assert re.search(said, log), log[-2000:]
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    ids = torch.randint(3, 262, (1, 12), generator=torch.Generator().manual_seed(1))
    base = AutoModelForCausalLM.from_pretrained(folder)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), run / "adapter")
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, tuned(input_ids=ids).logits, atol=1e-4)

    # chat holds the base as the run did: the experts quantized beside the adapter
    from rankwise.trainer.chat import Bench

    bench = Bench.open(run)
    assert moe_quant.quantized_experts(bench.model) == 4
    assert bench.answer([{"role": "user", "content": "hi"}], adapter=True)  # generates through the quantized experts


@pytest.mark.slow
def test_qlora_trains_an_moe_whose_shared_mlp_names_its_linears_like_the_experts(tmp_path):
    """A quantized fused expert tensor is held by a module named like it (…experts.parametrizations.down_proj); peft's
    suffix match took it for the shared MLP's down_proj target and stopped the run ("Target module
    ParametrizationList … is not supported"): the worker excludes those modules, and chat reloads the adapter."""
    import json

    folder = tiny_shared_expert_folder(tmp_path)
    runs = tmp_path / "runs"
    p = train(runs, "--set", f"model.name={folder}", "--set", "train.max_steps=2", "--set", "train.save_steps=2",
              preset="demo-cpu-qlora")
    assert p.returncode == 0, p.stderr
    run = only_run(runs)
    assert "MoE experts: 4 fused tensors quantized to NF4" in (run / "train.log").read_text()
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert "down_proj" in config["target_modules"] and config["exclude_modules"] == moe_quant.PARAMETRIZED
    from rankwise.trainer.chat import Bench

    bench = Bench.open(run)
    assert moe_quant.quantized_experts(bench.model) == 4
    assert bench.answer([{"role": "user", "content": "hi"}], adapter=True)


def test_estimate_flag_writes_the_setting_down(capsys):
    import json

    from rankwise.tui.cli import main

    peaks = {}
    for flag in ("--quantize-experts", "--no-quantize-experts"):
        assert main(["estimate", "--model", "mixtral-8x7b", "--method", "qlora", flag, "--json"]) == 0
        peaks[flag] = json.loads(capsys.readouterr().out)["peak_gib"]
    assert peaks["--quantize-experts"] < 32 < 85 < peaks["--no-quantize-experts"]


@pytest.mark.slow
def test_two_ddp_processes_each_hold_the_experts_in_4_bits(tmp_path):
    """DDP (accelerate launch --cpu, gloo) broadcasts the uint8 storage like any frozen parameter."""
    folder = tiny_mixtral_folder(tmp_path)
    runs = tmp_path / "runs"
    p = train(runs, "--processes", "2", "--set", f"model.name={folder}", "--set", "train.grad_checkpointing=true",
              "--set", "train.max_steps=4", "--set", "train.save_steps=4", preset="demo-cpu-qlora", timeout=600)
    run = only_run(runs)
    log = (run / "train.log").read_text()
    assert p.returncode == 0, p.stderr[-2000:] + log[-2000:]
    assert all(f"rank {r} rankwise.worker: MoE experts: 4 fused tensors quantized to NF4" in log for r in (0, 1))
    assert "distributed: MULTI_CPU, 2 ranks" in log
    assert of_type(events(run), "end")[-1]["status"] == "finished"


def test_the_8_bit_methods_kept_inputs_are_its_int8_linears_not_the_experts():
    """bitsandbytes' MatMul8bitLt keeps each Linear8bitLt's input for backward; an MoE's fused experts are no
    Linear8bitLt (int8 behind a parametrization, or 16-bit), so of the MLP only the dense/shared part's down_proj input
    is kept: a dense model keeps its whole MLP's."""
    from rankwise.advisor.activations import layer_saved_bytes, stream_bytes

    for name in ("mixtral-8x7b", "Qwen/Qwen3-30B-A3B", "llama-3.1-8b"):
        spec = load_model(name)
        p8, p4 = Plan("lora-8bit", targets="minimal"), Plan("qlora", targets="minimal")
        adapted = spec.resolve_targets("minimal")
        kept = layer_saved_bytes(spec, p8, adapted) - layer_saved_bytes(spec, p4, adapted)
        width = spec.intermediate_size if not spec.is_moe else spec.dense_mlp_width
        assert kept == stream_bytes(p8) * (2 * spec.hidden_size + width)
        assert (width == 0) == (spec.is_moe and not any(l.family == "mlp" for l in spec.linears))
