"""Mamba2 hybrids (Nemotron-H, Granite 4.0-H) and the Mamba1 mixers of Jamba, Mamba and Falcon-Mamba: what their
state-space mixers keep for backward, measured with autograd's saved tensors on tiny models beside advisor/mamba.py's
count, their layer kinds, and packing; and the
mixer weights the forward reads bare (Mamba2's out_proj, Jamba's dt_proj): never adapted nor quantized, and a run
forced to adapt one is told so by the live doctor.

The CPU runs transformers' torch fallback of the chunked scan, the path the count is measured on; mamba-ssm's fused
kernel (a GPU's) is read from its source."""
from pathlib import Path

import pytest

from rankwise.advisor import mamba
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.memory import estimate, layer_saved_bytes
from rankwise.advisor.model import load_model, spec_from_config
from rankwise.advisor.plan import Plan
from saved_tensors import lora_model, packed_vs_alone, qlora_model, saved_in

HIDDEN = 256


def _nemotron(pattern="MM*", heads=12, head_dim=24, state=40, groups=2, chunk=32):
    from transformers.models.nemotron_h.configuration_nemotron_h import NemotronHConfig

    return NemotronHConfig(hidden_size=HIDDEN, intermediate_size=512, num_hidden_layers=len(pattern),
                           hybrid_override_pattern=pattern, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                           mamba_num_heads=heads, mamba_head_dim=head_dim, ssm_state_size=state, n_groups=groups,
                           conv_kernel=4, chunk_size=chunk, vocab_size=500)


def _granite():
    from transformers.models.granitemoehybrid.configuration_granitemoehybrid import GraniteMoeHybridConfig

    return GraniteMoeHybridConfig(hidden_size=HIDDEN, intermediate_size=512, num_hidden_layers=3,
                                  layer_types=["mamba", "mamba", "attention"], num_attention_heads=4,
                                  num_key_value_heads=2, mamba_n_heads=16, mamba_d_head=32, mamba_d_state=40,
                                  mamba_n_groups=2, mamba_d_conv=4, mamba_chunk_size=32, vocab_size=500,
                                  num_local_experts=0, shared_intermediate_size=512)


def _granite_spec():
    cfg = _granite()
    return cfg, spec_from_config("tiny-granite", "local", {**cfg.to_dict(), "model_type": "granitemoehybrid"})

def _falcon_h1(rms_norm: bool):
    from transformers.models.falcon_h1.configuration_falcon_h1 import FalconH1Config

    return FalconH1Config(hidden_size=HIDDEN, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=64, mamba_n_heads=12, mamba_d_head=24, mamba_d_ssm=288,
                          mamba_d_state=40, mamba_n_groups=2, mamba_d_conv=4, mamba_chunk_size=32,
                          mamba_rms_norm=rms_norm, mamba_norm_before_gate=True, vocab_size=500)


def _jamba(period=2, offset=1, layers=2):
    from transformers import JambaConfig

    return JambaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                       num_key_value_heads=2, attn_layer_period=period, attn_layer_offset=offset, expert_layer_period=2,
                       expert_layer_offset=1, num_experts=2, num_experts_per_tok=1, mamba_d_state=8, mamba_d_conv=4,
                       mamba_expand=2, mamba_dt_rank=8, vocab_size=262, tie_word_embeddings=False)


def _mixer_only(model_type: str, hidden=64, state=8, rank=8, layers=2, **kw):
    """A tiny Mamba or Falcon-Mamba: every layer a norm and a Mamba1 mixer."""
    from transformers import FalconMambaConfig, MambaConfig

    make = MambaConfig if model_type == "mamba" else FalconMambaConfig
    return make(hidden_size=hidden, num_hidden_layers=layers, vocab_size=262, state_size=state, time_step_rank=rank,
                **kw)


def _lfm2(types):
    from transformers import Lfm2Config

    return Lfm2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=len(types), num_attention_heads=4,
                      num_key_value_heads=2, layer_types=types, vocab_size=262, block_auto_adjust_ff_dim=False)


def _measured_mixer(model_type: str, cfg, seq: int) -> tuple[int, "mamba.Mamba2"]:
    """The second layer's mixer under LoRA on in_proj, less what that LoRA keeps (its input copy and r-wide output,
    and the 16-bit casts of its two matrices, which are no activation)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = lora_model(AutoModelForCausalLM.from_config(cfg), ["in_proj"])
    layer = model.base_model.model.model.layers[1]
    m = mamba.read(model_type, cfg.to_dict(), cfg.num_hidden_layers)
    lora = 2 * (HIDDEN + 8) * seq + 2 * 8 * (HIDDEN + m.in_proj_width)
    mixer = layer.mamba if hasattr(layer, "mamba") else layer.mixer
    return saved_in(model, mixer, seq) - lora, m


@pytest.mark.parametrize("seq,shape", [
    (100, {}),  # padded to 128 inside the scan: four chunks of 32
    (128, {}),  # a whole number of chunks
    (200, dict(heads=8, head_dim=16, state=64, groups=1, chunk=64)),  # one group, a chunk as long as the state
])
def test_nemotron_h_torch_scan_keeps_what_the_count_says(seq, shape):
    measured, m = _measured_mixer("nemotron_h", _nemotron(**shape), seq)
    estimated = mamba.saved_bytes(m, seq, 2, "torch") * seq
    assert abs(estimated - measured) / measured < 0.001, (estimated, measured)


def test_granite_4_h_mixer_is_counted_the_same():
    measured, m = _measured_mixer("granitemoehybrid", _granite(), 100)
    assert (m.layers, m.attention, m.blocks) == (2, 1, False)
    estimated = mamba.saved_bytes(m, 100, 2, "torch") * 100
    assert abs(estimated - measured) / measured < 0.001, (estimated, measured)


@pytest.mark.parametrize("rms_norm", [True, False])
def test_falcon_h1_mixer_beside_attention_in_every_layer(rms_norm):
    """Falcon-H1: its mixer (input and in_proj multipliers, no fused path) with the grouped gated RMSNorm (its 1.5B
    and larger) or gated by SiLU alone (mamba_rms_norm false, its 0.5B)."""
    measured, m = _measured_mixer("falcon_h1", _falcon_h1(rms_norm), 100)
    assert (m.layers, m.attention, m.parallel, m.gated_norm) == (2, 2, True, rms_norm)
    estimated = mamba.saved_bytes(m, 100, 2, "torch") * 100
    assert abs(estimated - measured) / measured < 0.002, (estimated, measured)
    spec = load_model("tiiuae/Falcon-H1-7B-Instruct")
    assert spec.attention_layers == spec.mamba.layers == spec.num_layers == 44
    assert spec.target_set("standard") == ["in_proj", "q_proj", "k_proj", "v_proj", "o_proj"]


def test_nemotron_3_nano_layer_kinds_and_what_standard_targets():
    """Nemotron 3 Nano: 52 blocks, 23 Mamba2, 6 attention, 23 MoE, one norm each; every block's module is `mixer`,
    so the mixers' linears are found by their class, and `standard` adapts the sequence mixers (before: nothing, and
    all-linear crashed in peft on out_proj)."""
    spec = load_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    m = spec.mamba
    assert (m.layers, m.attention, m.blocks, spec.num_layers) == (23, 6, True, 52)
    assert (spec.attention_layers, spec.norms_per_layer) == (6, 1)
    # the mixers' in_proj with attention; never out_proj, which peft refuses in a Mamba-based model
    assert spec.target_set("standard") == ["in_proj", "q_proj", "k_proj", "v_proj", "o_proj"]
    assert "out_proj" not in spec.target_set("all-linear")
    with pytest.raises(RankwiseError, match="out_proj: peft refuses LoRA on it in a Mamba-based model"):
        spec.resolve_targets("in_proj,out_proj")
    assert spec.linear_attention is None and load_model("llama-3.2-1b").mamba is None


def test_the_estimate_counts_the_mixers_and_says_which_scan():
    spec = load_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    plan = Plan("qlora", seq_len=4096, grad_checkpointing=False)
    torch_path, kernel = estimate(spec, plan), estimate(spec, Plan("qlora", seq_len=4096, grad_checkpointing=False,
                                                                   mamba_kernel="mamba_ssm"))
    line = next(a for a in torch_path.assumptions if a.startswith("Mamba2 in 23 of 52 layers (6 softmax attention)"))
    assert "torch fallback" in line and "pip install mamba-ssm" in line
    assert kernel.components["activations"] < torch_path.components["activations"]
    adapted = spec.resolve_targets("standard")
    mixer = mamba.saved_bytes(spec.mamba, 4096, 2, "torch")  # one Mamba2 mixer, a token
    assert layer_saved_bytes(spec, plan, adapted) > 23 * mixer // 52  # the average over the 52 blocks holds 23
    assert layer_saved_bytes(spec, plan, adapted, largest=True) > mixer  # a Mamba2 block is the one recomputed


def test_whole_layers_on_average():
    """A Granite 4.0-H of two Mamba2 layers and one attention layer, LoRA on every linear rankwise adapts: the
    estimate's average against the measured layers (layer 0's input needs no grad: the second Mamba2 layer stands
    for both)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg, spec = _granite_spec()
    targets = ["in_proj", "q_proj", "k_proj", "v_proj", "o_proj", "input_linear", "output_linear"]  # not out_proj
    seq = 128
    per_layer = []
    for i in (1, 2):
        torch.manual_seed(0)
        model = lora_model(AutoModelForCausalLM.from_config(cfg), targets)
        per_layer.append(saved_in(model, model.base_model.model.model.layers[i], seq) / seq)
    plan = Plan("lora", r=8, targets=tuple(targets), lora_dropout=False, seq_len=seq)
    mean = layer_saved_bytes(spec, plan, spec.resolve_targets(targets))
    average = (2 * per_layer[0] + per_layer[1]) / 3
    assert abs(mean - average) / average < 0.05, (mean, per_layer)


def test_packing_runs_the_mamba_layers_across_examples():
    """packing-linear-attention holds for Mamba2 too: with restarting position_ids the second packed example reads
    differently from alone; attention only, the same."""
    import torch
    from transformers import AutoModelForCausalLM

    def packed_vs_alone_on(pattern):
        torch.manual_seed(0)
        return packed_vs_alone(AutoModelForCausalLM.from_config(_nemotron(pattern, heads=4, head_dim=16, state=16,
                                                                          groups=1, chunk=8)).eval())

    assert packed_vs_alone_on("M*") > 1e-3
    assert packed_vs_alone_on("**") < 1e-5


def test_a_local_folder_saved_by_transformers_reads_its_tagged_infinity(tmp_path):
    """transformers 5 writes Nemotron-H's time_step_limit [0.0, inf] as [0.0, {"__float__": "Infinity"}]; the config
    reader decodes it as transformers does (before: a traceback from the config class's validation)."""
    import json
    import math

    _nemotron("M*", heads=4, head_dim=16, state=16, groups=1, chunk=8).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["time_step_limit"][1] == {"__float__": "Infinity"}
    spec = load_model(str(tmp_path))
    assert spec.config["time_step_limit"][1] == math.inf
    assert (spec.mamba.layers, spec.attention_layers) == (1, 1)



@pytest.mark.parametrize("name, bare, error", [
    ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", ("out_proj",), "peft refuses LoRA on it"),
    ("tiiuae/Falcon-H1-7B-Base", ("out_proj",), "peft refuses LoRA on it"),
    ("tiny-granite", ("out_proj",), "mamba-ssm's fused kernel takes out_proj.weight on a GPU"),
    ("ai21labs/Jamba-v0.1", ("dt_proj",), "the time step is dt_proj.weight @ x on a 16-bit base"),
])
def test_weights_the_forward_reads_bare_are_neither_adapted_nor_quantized(name, bare, error):
    """mamba.BARE_WEIGHTS: all-linear leaves them out, naming one is exit 2 with the reason (peft's own refusal
    first where it has one), the 4-bit method keeps them (and lm_head) 16-bit and the estimate says so."""
    from rankwise.advisor.config import QuantSection
    from rankwise.advisor.methods import METHODS

    spec = _granite_spec()[1] if name == "tiny-granite" else load_model(name)
    assert spec.bare_names == bare
    assert not set(bare) & set(spec.target_set("all-linear"))
    with pytest.raises(RankwiseError, match=error) as e:
        spec.resolve_targets(["in_proj", *bare])
    assert e.value.exit_code == 2 and f"drop {bare[0]};" in e.value.hint and "in_proj" in e.value.hint
    assert METHODS["qlora"].quant.load_kwargs(QuantSection(), "bf16", False, keep=bare)["llm_int8_skip_modules"] == [
        "lm_head", *bare]
    est = estimate(spec, Plan("qlora", seq_len=512))
    assert any(a.startswith(f"{bare[0]} of each Mamba mixer is neither quantized nor adapted") for a in est.assumptions)
    assert any(a.startswith(f"prepare_model_for_kbit_training casts embeddings, norms, lm_head, {bare[0]} and")
               for a in est.assumptions)  # peft upcasts it with the other 16-bit weights, as the estimate counts


def test_no_skip_list_where_nothing_is_read_bare():
    """A model without such weights keeps transformers' own skip list (its default, the output head)."""
    from rankwise.advisor.config import QuantSection
    from rankwise.advisor.methods import METHODS

    assert load_model("llama-3.2-1b").bare_names == ()
    assert "llm_int8_skip_modules" not in METHODS["qlora"].quant.load_kwargs(QuantSection(), "bf16", False)
    assert METHODS["lora-8bit"].quant.load_kwargs(QuantSection(), "bf16", False) == {"load_in_8bit": True}


@pytest.mark.slow
def test_the_fused_kernel_reads_out_proj_bare(tmp_path, monkeypatch):
    """Granite 4.0-H's training forward hands `self.out_proj.weight` to mamba-ssm's fused kernel. That kernel needs a
    GPU, so a stand-in takes its place at the one seam (the module's `mamba2_split_conv1d_scan_combined`), ending as
    mamba-ssm's does (ssd_combined.py: `F.linear(out, outproj_weight, outproj_bias)`). Through it:
    1. a LoRA adapter on out_proj gets no gradient (in_proj's does): why rankwise never adapts it;
    2. a 4-bit out_proj reaches the matmul packed and fails (axolotl's Granite 4.0 README quotes this error);
    3. loaded as rankwise loads it (out_proj and lm_head skipped) the step runs, and the weights in memory are what
       the estimate counts."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.models.granitemoehybrid import modeling_granitemoehybrid

    from rankwise.advisor.config import QuantSection
    from rankwise.advisor.memory import _weights
    from rankwise.advisor.methods import METHODS

    cfg, spec = _granite_spec()
    width = spec.linear("out_proj").d_in
    calls = []

    def kernel(zxbcdt, *args, outproj_weight=None, outproj_bias=None, **kwargs):
        calls.append(outproj_weight)
        return F.linear(zxbcdt[..., :width], outproj_weight, outproj_bias)  # the gate's columns stand for the scan

    monkeypatch.setattr(modeling_granitemoehybrid, "mamba2_split_conv1d_scan_combined", kernel)
    ids = torch.randint(0, cfg.vocab_size, (1, 16))

    torch.manual_seed(0)
    model = lora_model(AutoModelForCausalLM.from_config(cfg), ["in_proj", "out_proj"]).train()
    model(input_ids=ids, use_cache=False).logits.float().sum().backward()  # the HF Trainer runs without a cache
    mixer = model.base_model.model.model.layers[0].mamba
    assert len(calls) == 2  # the two Mamba2 layers went through the kernel
    assert mixer.out_proj.lora_B["default"].weight.grad is None
    assert mixer.in_proj.lora_B["default"].weight.grad.abs().sum() > 0

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path)
    quant = QuantSection()

    def load(keep):
        kwargs = METHODS["qlora"].quant.load_kwargs(quant, torch.bfloat16, False, keep=keep)
        return AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=BitsAndBytesConfig(**kwargs),
                                                    dtype=torch.bfloat16, device_map="cpu").train()

    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        load(())(input_ids=ids, use_cache=False)
    model = load(spec.bare_names)
    model(input_ids=ids, use_cache=False).logits.float().sum().backward()
    mixer = model.model.layers[0].mamba
    assert type(mixer.out_proj) is torch.nn.Linear and type(model.lm_head) is torch.nn.Linear
    assert type(mixer.in_proj).__name__ == "Linear4bit"
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    counted = _weights(spec, Plan("qlora", kbit_upcast=False))
    assert held == counted["base_weights"] + counted["unquantized_weights"], (held, counted)


@pytest.mark.slow
def test_a_run_whose_forward_bypasses_an_adapter_is_told_so(tmp_path):
    """Jamba's Mamba mixer computes its time step as `dt_proj.weight @ x` (on a 16-bit base, on every device), so a LoRA
    adapter on dt_proj is never called. Forced past the exit 2 that names it, a real `rankwise train` of a tiny Jamba
    on the CPU sees that adapter get no gradient in its first steps (the `adapters` event) and the live doctor says
    adapter-unused with the targets to keep; its other adapters trained."""
    import shutil

    import torch
    import yaml
    from train_helpers import events, of_type, only_run, tail_log, train
    from transformers import AutoModelForCausalLM

    assets = Path(__file__).resolve().parent.parent / "presets" / "assets"
    model = tmp_path / "model"
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(_jamba()).save_pretrained(model)  # a Mamba1 layer, then attention
    for f in (assets / "tiny-llama").iterdir():
        if "token" in f.name or f.suffix == ".jinja":
            shutil.copy(f, model)
    targets = ["in_proj", "x_proj", "dt_proj", "out_proj"]
    preset = tmp_path / "jamba.yaml"
    preset.write_text(yaml.safe_dump({
        "name": "tiny-jamba", "model": {"name": str(model)}, "task": "chat",
        "data": {"path": str(assets / "demo-chat.jsonl"), "val_ratio": 0.0}, "method": "lora",
        "lora": {"target_modules": targets}, "train": {"lr": 3e-3, "max_steps": 4, "micro_batch": 4,
                                                       "max_seq_len": 64, "logging_steps": 1, "save_steps": 4}}))
    runs = tmp_path / "runs"
    refused = train(runs, preset=str(preset), quick=False)
    assert refused.returncode == 2 and "dt_proj" in refused.stderr and "get no gradient" in refused.stderr
    out = train(runs, "--force", preset=str(preset), quick=False)
    run = only_run(runs)
    assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
    evs = events(run)
    assert [(e["step"], e["adapters"], e["unused"]) for e in of_type(evs, "adapters")] == [(3, 4, {"dt_proj": [1, 1]})]
    said = [e for e in of_type(evs, "diagnosis") if e["code"] == "adapter-unused"]
    assert len(said) == 1 and said[0]["severity"] == "warning" and said[0]["step"] == 3
    assert said[0]["patch"] == {"lora.target_modules": ["in_proj", "x_proj", "out_proj"]}
    assert "adapter-unused" in out.stdout


@pytest.mark.parametrize("make, mixed, attention_only", [
    (_jamba, {"period": 2, "offset": 1}, {"period": 1, "offset": 0}),
    (_lfm2, {"types": ["conv", "full_attention"]}, {"types": ["full_attention", "full_attention"]}),
])
def test_mamba1_and_short_convolutions_run_packed_examples_together(make, mixed, attention_only):
    """Jamba's Mamba1 mixers and LFM2's short convolutions read no position_ids either: with rankwise's packing the
    second example reads differently from alone; the same model with attention layers only, the same."""
    import torch
    from transformers import AutoModelForCausalLM

    def packed_vs_alone_on(kwargs):
        torch.manual_seed(0)
        return packed_vs_alone(AutoModelForCausalLM.from_config(make(**kwargs)).eval(), 262)

    assert packed_vs_alone_on(mixed) > 1e-4
    assert packed_vs_alone_on(attention_only) < 1e-5


def test_other_mixers_are_counted_from_the_config():
    """mamba.other_mixers, as transformers' configuration classes lay the layers out."""
    from rankwise.advisor.architecture_flags import recurrent_layers

    for period, offset, layers in ((8, 4, 32), (2, 1, 2), (1, 0, 3)):
        cfg = _jamba(period, offset, layers)
        expect = cfg.layers_block_type.count("mamba")
        assert mamba.other_mixers("jamba", cfg.to_dict(), layers) == ((expect, "Mamba1") if expect else None)
    lfm = _lfm2(["conv", "conv", "full_attention"]).to_dict()
    assert mamba.other_mixers("lfm2", lfm, 3) == (2, "short-convolution")
    assert mamba.other_mixers("lfm2", {"full_attn_idxs": [1]}, 3) == (2, "short-convolution")  # older config.json
    assert recurrent_layers(load_model("ai21labs/Jamba-v0.1")) == (28, "Mamba1")
    assert recurrent_layers(load_model("LiquidAI/LFM2-8B-A1B")) == (18, "short-convolution")
    assert recurrent_layers(load_model("llama-3.2-1b")) is None


@pytest.mark.parametrize("hidden, state, rank, seq",
                         [(64, 8, 8, 16), (64, 8, 8, 64), (64, 16, 8, 64), (96, 16, 12, 48)])
def test_jamba_torch_scan_keeps_what_the_count_says(hidden, state, rank, seq):
    """Jamba's Mamba1 mixer on the torch path (a CPU's), after an attention layer whose LoRA makes its input need a
    gradient: the bytes autograd keeps inside it are mamba.mamba1_saved_bytes exactly (the per-sequence part
    included: the initial state, D in fp32, the conv's padding, A, less the last state no step keeps)."""
    import torch
    from transformers import AutoModelForCausalLM, JambaConfig

    cfg = JambaConfig(**{**_jamba(period=2, offset=0).to_dict(), "hidden_size": hidden, "mamba_d_state": state,
                         "mamba_dt_rank": rank})
    torch.manual_seed(0)
    model = lora_model(AutoModelForCausalLM.from_config(cfg), ["q_proj", "v_proj"])
    measured = saved_in(model, model.base_model.model.model.layers[1].mamba, seq, 262)
    m = mamba.read_mamba1("jamba", cfg.to_dict(), 2)
    assert (m.layers, m.attention, m.inner, m.state, m.dt_rank) == (1, 1, 2 * hidden, state, rank)
    assert mamba.mamba1_saved_bytes(m, seq, 2, "torch") * seq == measured


def test_jamba_is_estimated_with_its_mamba1_layers():
    """Jamba-v0.1: 28 Mamba1 layers, 4 attention. The estimate counts the scan the machine will run and says which;
    mamba-ssm's keeps ~98 KiB a token a layer at 4k, the torch fallback ~1.9 MiB; without checkpointing every layer's
    count is kept, so the estimate rises with the fallback by the difference over 28 layers."""
    spec = load_model("ai21labs/Jamba-v0.1")
    m = spec.mamba1
    assert (m.layers, m.attention, m.inner, m.state, m.dt_rank, spec.attention_layers) == (28, 4, 8192, 16, 256, 4)
    torch_path = Plan("qlora", seq_len=4096, grad_checkpointing=False)
    kernel = Plan("qlora", seq_len=4096, grad_checkpointing=False, mamba_kernel="mamba_ssm", causal_conv1d=True)
    scan = mamba.mamba1_saved_bytes(m, 4096, 2, "torch", stream=4)  # QLoRA's fp32 stream
    fused = mamba.mamba1_saved_bytes(m, 4096, 2, "mamba_ssm", True)
    assert 1.8 * 2 ** 20 < mamba.mamba1_saved_bytes(m, 4096, 2, "torch") < 2.0 * 2 ** 20 < scan
    assert 90 * 1024 < fused < 110 * 1024
    slow, fast = estimate(spec, torch_path), estimate(spec, kernel)
    assert slow.components["activations"] - fast.components["activations"] == pytest.approx(
        28 * 4096 * (scan - fused), rel=0.01)
    line = next(a for a in slow.assumptions if a.startswith("Mamba1 in 28 of 32 layers (4 softmax attention)"))
    assert "torch fallback" in line and "pip install mamba-ssm" in line
    assert any(a.startswith("Mamba1 in 28 of 32 layers") and "mamba-ssm's selective scan" in a
               for a in fast.assumptions)


def test_jamba_whole_layers_on_average():
    """A Jamba of attention and Mamba1 layers in turn (the Mamba1 layers with the MoE), LoRA on every linear rankwise
    adapts: the estimate's layer average against the measured layers (layer 0's input needs no grad: layers 1 and 2,
    one of each kind, stand for them)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = _jamba(period=2, offset=0, layers=4)
    spec = spec_from_config("tiny", "local", {**cfg.to_dict(), "model_type": "jamba"})
    targets = spec.target_set("all-linear")
    assert "dt_proj" not in targets and {"in_proj", "x_proj", "out_proj", "q_proj"} <= set(targets)
    seq, per_layer = 64, []
    for i in (1, 2):
        torch.manual_seed(0)
        model = lora_model(AutoModelForCausalLM.from_config(cfg), targets)
        per_layer.append(saved_in(model, model.base_model.model.model.layers[i], seq, 262) / seq)
    plan = Plan("lora", r=8, targets=tuple(targets), lora_dropout=False, seq_len=seq)
    mean = layer_saved_bytes(spec, plan, spec.resolve_targets(targets))
    average = sum(per_layer) / 2
    assert abs(mean - average) / average < 0.05, (mean, per_layer)


@pytest.mark.parametrize("model_type", ["mamba", "falcon_mamba"])
@pytest.mark.parametrize("hidden, state, rank, seq", [(64, 8, 8, 16), (64, 16, 8, 64), (96, 16, 12, 48)])
def test_mamba_and_falcon_mamba_torch_scans_keep_what_the_count_says(model_type, hidden, state, rank, seq):
    """Layer 1's mixer on the torch path, with LoRA on layer 0's in_proj alone (so its input needs a gradient and
    nothing in it is adapted): the bytes autograd keeps inside it are mamba1_saved_bytes exactly. Falcon-Mamba's
    mixer keeps what Jamba's does (an RMSNorm each on the time step, B and C); Mamba's has no norms and keeps x_proj's
    output whole, of which the time step, B and C are views."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = _mixer_only(model_type, hidden, state, rank)
    torch.manual_seed(0)
    model = lora_model(AutoModelForCausalLM.from_config(cfg), r"backbone\.layers\.0\.mixer\.in_proj")
    measured = saved_in(model, model.base_model.model.backbone.layers[1].mixer, seq, 262)
    m = mamba.read_mamba1(model_type, cfg.to_dict(), 2)
    assert (m.layers, m.attention, m.inner, m.state, m.dt_rank) == (2, 0, 2 * hidden, state, rank)
    assert (m.norms, m.fused_inner) == (model_type == "falcon_mamba", model_type == "mamba")
    assert mamba.mamba1_saved_bytes(m, seq, 2, "torch") * seq == measured


@pytest.mark.parametrize("model_type", ["mamba", "falcon_mamba"])
def test_mixer_only_blocks_on_average_and_their_fp32_residual(model_type):
    """A Mamba block is a norm and a mixer: no attention and no MLP (config.json's intermediate_size is the mixer's
    d_inner there). The whole block, LoRA on every linear rankwise adapts, against the estimate's layer; and its output,
    the next layer's checkpointed input, is fp32 under bf16 autocast (residual_in_fp32, the default), which the
    estimate counts: 2 bytes a token and hidden unit more per layer under checkpointing than with the flag off."""
    import torch
    from transformers import AutoModelForCausalLM

    from rankwise.advisor.activations import residual_bytes

    cfg = _mixer_only(model_type, layers=3)
    spec = spec_from_config("tiny", "local", {**cfg.to_dict(), "model_type": model_type})
    assert (spec.attention_layers, spec.mlp_width, spec.norms_per_layer, spec.residual_fp32) == (0, 0, 1, True)
    targets = spec.target_set("all-linear")
    assert set(targets) == ({"in_proj"} if model_type == "mamba" else {"in_proj", "x_proj"})
    torch.manual_seed(0)
    model = lora_model(AutoModelForCausalLM.from_config(cfg), targets)
    dtypes = []
    model.base_model.model.backbone.layers[1].register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    seq = 64
    measured = saved_in(model, model.base_model.model.backbone.layers[1], seq, 262) / seq
    plan = Plan("lora", r=8, targets=tuple(targets), lora_dropout=False, seq_len=seq)
    counted = layer_saved_bytes(spec, plan, spec.resolve_targets(targets))
    assert abs(counted - measured) / measured < 0.02, (counted, measured)
    assert dtypes == [torch.float32] and residual_bytes(spec, plan) == 4
    off = spec_from_config("tiny", "local", {**cfg.to_dict(), "model_type": model_type, "residual_in_fp32": False})
    assert not off.residual_fp32 and residual_bytes(off, plan) == 2
    ckpt = Plan("lora", r=8, targets=tuple(targets), lora_dropout=False, seq_len=seq, grad_checkpointing=True)
    more = estimate(spec, ckpt).components["activations"] - estimate(off, ckpt).components["activations"]
    assert more == 3 * seq * 2 * cfg.hidden_size


def test_a_falcon_mamba_7b_is_estimated_as_its_mixers(tmp_path):
    """Falcon-Mamba-7B's shape (64 layers of 4096, d_inner 8192, state 16, time-step rank 256, vocabulary 65024, an
    untied head: 7.27B, the model card's total), from a local config.json: every layer a Mamba1 mixer, said so, with
    no Llama-style approximation line; without checkpointing the torch fallback keeps 64 layers x tokens x the
    difference more than mamba-ssm's scan; on a GPU without mamba-ssm the fallback flag gives that figure. Mamba's own
    kernel path is mamba_inner_fn (the whole mixer), named in its line."""
    from transformers import FalconMambaConfig

    from rankwise.advisor.hardware import planned
    from rankwise.advisor.loader import apply_overrides, validate
    from rankwise.advisor.redflags import check

    FalconMambaConfig(hidden_size=4096, num_hidden_layers=64, intermediate_size=8192, state_size=16,
                      time_step_rank=256, vocab_size=65024, tie_word_embeddings=False).save_pretrained(tmp_path)
    spec = load_model(str(tmp_path))
    assert abs(spec.total_params / 7.27e9 - 1) < 0.002
    m = spec.mamba1
    assert (m.layers, m.attention, m.inner, m.norms, spec.attention_layers) == (64, 0, 8192, True, 0)
    torch_path = Plan("qlora", seq_len=2048, grad_checkpointing=False)
    kernel = Plan("qlora", seq_len=2048, grad_checkpointing=False, mamba_kernel="mamba_ssm", causal_conv1d=True)
    slow, fast = estimate(spec, torch_path), estimate(spec, kernel)
    scan = mamba.mamba1_saved_bytes(m, 2048, 2, "torch", stream=4)  # QLoRA's fp32 stream
    fused = mamba.mamba1_saved_bytes(m, 2048, 2, "mamba_ssm", True)
    assert slow.components["activations"] - fast.components["activations"] == pytest.approx(
        64 * 2048 * (scan - fused), rel=0.01)
    assert any(a.startswith("Mamba1 in all 64 layers (no attention, no MLP)") for a in slow.assumptions)
    assert not any("Llama-style" in a for a in slow.assumptions)
    cfg = validate(apply_overrides({}, [f"model.name={tmp_path}", "method=qlora", "train.max_seq_len=2048",
                                        "train.grad_checkpointing=false"]))
    flag = next(f for f in check(cfg, spec, planned("80GiB")) if f.code == "linear-attention-fallback")
    assert "64 Mamba1 layers" in flag.message and "GiB more at the peak" in flag.message
    pure = mamba.read_mamba1("mamba", {"hidden_size": 2560, "intermediate_size": 5120, "state_size": 16,
                                       "time_step_rank": 160}, 64)
    assert pure.fused_inner and "mamba_inner_fn" in mamba.describe_mamba1(pure, 64, 2048, 2, "mamba_ssm", True)


@pytest.mark.slow
def test_a_tiny_falcon_mamba_trains_under_qlora(tmp_path):
    """`rankwise train` of a tiny Falcon-Mamba under QLoRA on the CPU: every linear it adapts (in_proj, x_proj) gets a
    gradient in the first steps, dt_proj (read bare) is left out, and the run ends with a saved adapter of those two."""
    import shutil

    import torch
    import yaml
    from train_helpers import adapter_shapes, events, of_type, only_run, tail_log, train
    from transformers import AutoModelForCausalLM

    assets = Path(__file__).resolve().parent.parent / "presets" / "assets"
    model = tmp_path / "model"
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(_mixer_only("falcon_mamba", layers=2)).save_pretrained(model)
    for f in (assets / "tiny-llama").iterdir():
        if "token" in f.name or f.suffix == ".jinja":
            shutil.copy(f, model)
    preset = tmp_path / "falcon-mamba.yaml"
    preset.write_text(yaml.safe_dump({
        "name": "tiny-falcon-mamba", "model": {"name": str(model)}, "task": "chat",
        "data": {"path": str(assets / "demo-chat.jsonl"), "val_ratio": 0.0}, "method": "qlora",
        "lora": {"target_modules": "all-linear"}, "train": {"lr": 3e-3, "max_steps": 4, "micro_batch": 4,
                                                            "max_seq_len": 64, "logging_steps": 1, "save_steps": 4}}))
    runs = tmp_path / "runs"
    out = train(runs, preset=str(preset), quick=False)
    run = only_run(runs)
    assert out.returncode == 0, out.stderr[-3000:] + tail_log(run)
    evs = events(run)
    assert [(e["adapters"], e["unused"]) for e in of_type(evs, "adapters")] == [(4, {})]  # 2 layers x 2 names
    assert of_type(evs, "end")[-1]["status"] == "finished"
    names = {k.split(".")[-3] for k in adapter_shapes(run)}
    assert names == {"in_proj", "x_proj"}


def test_what_mamba_ssm_lacks_for_its_training_path(monkeypatch):
    """Where mamba-ssm imports, transformers calls its kernels on a GPU with no fallback: Mamba1's need the
    selective_scan_cuda extension, and Mamba's whole-mixer mamba_inner_fn and every Mamba2 mixer need causal-conv1d
    (Jamba's and Falcon-Mamba's scan alone does not). Packages faked at the one seam the check reads
    (mamba.find_spec)."""
    from importlib.machinery import ModuleSpec

    pure = mamba.read_mamba1("mamba", {"hidden_size": 64, "intermediate_size": 128, "state_size": 8}, 2)
    falcon = mamba.read_mamba1("falcon_mamba", {"hidden_size": 64, "intermediate_size": 128, "state_size": 8}, 2)

    def have(*names):
        monkeypatch.setattr(mamba, "find_spec", lambda name, *a: ModuleSpec(name, None) if name in names else None)

    mamba2 = _granite_spec()[1].mamba
    have()
    assert not any(mamba.kernel_missing(m) for m in (pure, falcon, mamba2))  # the torch scans run
    have("mamba_ssm")
    assert mamba.kernel_missing(pure) == ["selective_scan_cuda", "causal-conv1d"]
    assert mamba.kernel_missing(falcon) == ["selective_scan_cuda"] and mamba.kernel_missing(mamba2) == ["causal-conv1d"]
    have("mamba_ssm", "selective_scan_cuda")
    assert mamba.kernel_missing(pure) == ["causal-conv1d"] and mamba.kernel_missing(falcon) == []
    have("mamba_ssm", "selective_scan_cuda", "causal_conv1d")
    assert not any(mamba.kernel_missing(m) for m in (pure, falcon, mamba2))


@pytest.mark.parametrize("model_type", ["falcon_mamba", "mamba", "jamba"])
def test_mamba1_torch_scan_under_qlora_keeps_what_the_count_says(model_type, tmp_path):
    """Under QLoRA (bitsandbytes NF4 on the CPU, prepare_model_for_kbit_training's fp32 upcast, the bare weights kept
    16-bit as rankwise loads them) the mixer's input is fp32: in_proj's output is fp32, and more (the count's `stream`
    terms). Layer 1's mixer, with LoRA only before it: mamba1_saved_bytes(..., stream=4) exactly (the per-sequence
    part spread over the tokens, to the byte a token)."""
    from transformers import JambaConfig

    if model_type == "jamba":
        cfg = JambaConfig(hidden_size=96, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, attn_layer_period=2, attn_layer_offset=0, num_experts=1,
                          mamba_d_state=12, mamba_dt_rank=24, mamba_expand=2, vocab_size=262)
    else:
        cfg = _mixer_only(model_type, hidden=96, state=12, rank=24, intermediate_size=320)
    first = r"model\.layers\.0\.self_attn\.q_proj" if model_type == "jamba" else r"backbone\.layers\.0\.mixer\.in_proj"
    model = qlora_model(cfg, tmp_path, first, keep=mamba.BARE_WEIGHTS[model_type][0])
    layers = model.base_model.model.model.layers if model_type == "jamba" else model.base_model.model.backbone.layers
    seq = 40
    measured = saved_in(model, layers[1].mamba if model_type == "jamba" else layers[1].mixer, seq, 262)
    m = mamba.read_mamba1(model_type, cfg.to_dict(), 2)
    assert abs(mamba.mamba1_saved_bytes(m, seq, 2, "torch", stream=4) * seq - measured) < seq
    assert mamba.mamba1_saved_bytes(m, seq, 2, "torch", stream=4) > 1.05 * mamba.mamba1_saved_bytes(m, seq, 2, "torch")


@pytest.mark.parametrize("variant", ["nemotron_h", "granitemoehybrid", "falcon_h1", "falcon_h1-silu"])
def test_mamba2_torch_scan_under_qlora_keeps_what_the_count_says(variant, tmp_path):
    """The Mamba2 mixers under QLoRA (NF4 on the CPU, the k-bit upcast, out_proj kept 16-bit as rankwise loads it):
    in_proj's and the conv's outputs are fp32, and more (saved_bytes' `stream` terms), with or without the gated norm
    (Falcon-H1's mamba_rms_norm). Layer 1's mixer, LoRA only on layer 0's in_proj: exact to the byte a token."""
    model_type = variant.removesuffix("-silu")
    cfg = {"nemotron_h": lambda: _nemotron("MM*"), "granitemoehybrid": _granite,
           "falcon_h1": lambda: _falcon_h1(not variant.endswith("-silu"))}[model_type]()
    # layer 0's in_proj: Nemotron-H names its mixer `mixer`, Granite 4.0-H and Falcon-H1 `mamba`
    model = qlora_model(cfg, tmp_path, r"model\.layers\.0\.(mixer|mamba)\.in_proj", keep=("out_proj",))
    layer = model.base_model.model.model.layers[1]
    seq = 64
    measured = saved_in(model, layer.mamba if hasattr(layer, "mamba") else layer.mixer, seq)
    m = mamba.read(model_type, cfg.to_dict(), cfg.num_hidden_layers)
    counted = mamba.saved_bytes(m, seq, 2, "torch", stream=4, hidden=cfg.hidden_size) * seq
    assert abs(counted - measured) < seq, (counted, measured)
    assert counted > 1.1 * mamba.saved_bytes(m, seq, 2, "torch") * seq
