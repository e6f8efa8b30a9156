"""Method variants (DoRA, QDoRA, 8-bit LoRA) and training options (attention, fused loss): each
moves the right component by the amount hand arithmetic gives, maps from other tools' keys, and
trains the tiny model on the CPU where the CPU can run it; GPU-only options exit 2 there."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from train_helpers import events, of_type, only_run, tail_log, train

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import read
from rankwise.advisor.memory import (Plan, estimate, fused_loss_bytes, layer_saved_bytes,
                                     layer_weight_transient_bytes, stream_bytes)
from rankwise.advisor.methods import METHODS
from rankwise.advisor.model import load_model

SPEC = load_model("llama-3.1-8b")  # h 4096, i 14336, 32 heads (8 kv), vocab 128256
NAMES = {m.label: n for n, m in METHODS.items()}  # tests name methods by label, as people write them
LORA, QLORA, DORA, QDORA, LORA8 = (NAMES[k] for k in ("LoRA", "QLoRA", "DoRA", "QDoRA", "8-bit LoRA"))


def _adapted(plan):
    return SPEC.resolve_targets(plan.targets if isinstance(plan.targets, str) else list(plan.targets))


# ------------------------------------------------------------------ DoRA


@pytest.mark.parametrize("dora,base", [(DORA, LORA), (QDORA, QLORA)])
@pytest.mark.parametrize("targets", ["standard", "all-linear"])
def test_dora_adds_magnitudes_saved_outputs_and_the_weight_norm_temporary(dora, base, targets):
    d, b = Plan(dora, targets=targets, optimizer="adamw_torch"), Plan(base, targets=targets, optimizer="adamw_torch")
    ed, eb = estimate(SPEC, d), estimate(SPEC, b)
    adapted = _adapted(d)
    mags = sum(l.count * l.d_out for l in adapted)  # one magnitude per output row (peft DoraLinearLayer.weight)
    assert ed.trainable_params - eb.trainable_params == mags
    assert ed.components["lora_params"] - eb.components["lora_params"] == 4 * mags  # fp32 adapters
    assert ed.components["optimizer_states"] - eb.components["optimizer_states"] == 8 * mags  # AdamW m, v
    # per token and layer: base_result and lora_result saved (16-bit, d_out wide) per adapted linear
    per_layer = sum((l.count // SPEC.num_layers) * 2 * 2 * l.d_out for l in {l.name: l for l in adapted}.values())
    assert layer_saved_bytes(SPEC, d, adapted) - layer_saved_bytes(SPEC, b, adapted) == per_layer
    # the adapted weight built in full for its norms: lora_weight, scaled, sum (+ de-quantized base)
    big = max(l.d_in * l.d_out for l in adapted)
    assert layer_weight_transient_bytes(SPEC, d, adapted) == (3 + METHODS[dora].quantized) * 2 * big
    assert layer_weight_transient_bytes(SPEC, b, adapted) == 0
    assert ed.peak_bytes > eb.peak_bytes
    assert any(a.startswith("DoRA:") for a in ed.assumptions)


# ------------------------------------------------------------------ 8-bit base


def test_8bit_base_is_one_byte_a_weight_plus_a_row_scale():
    e8, e16 = estimate(SPEC, Plan(LORA8)), estimate(SPEC, Plan(LORA))
    lin = [l for l in SPEC.linears if l.family != "lm_head"]
    weights = sum(l.count * l.d_in * l.d_out for l in lin)
    assert e8.components["base_weights"] == weights  # int8 CB
    assert e8.components["quant_constants"] == 4 * sum(l.count * l.d_out for l in lin)  # fp32 SCB per row
    assert e8.components["unquantized_weights"] == 4 * (SPEC.total_params - weights)  # kbit upcast to fp32
    assert e8.peak_bytes < e16.peak_bytes


def test_8bit_linears_keep_their_inputs_and_dequantize_in_backward():
    p8, p4 = Plan(LORA8, targets="minimal"), Plan(QLORA, targets="minimal")
    adapted = _adapted(p8)
    s = stream_bytes(p8)
    assert s == stream_bytes(p4) == 4  # both upcast: fp32 residual stream
    h, i = SPEC.hidden_size, SPEC.intermediate_size
    assert layer_saved_bytes(SPEC, p8, adapted) - layer_saved_bytes(SPEC, p4, adapted) == s * (2 * h + i)
    assert layer_weight_transient_bytes(SPEC, p8, adapted) == 2 * h * i  # the largest linear, 16-bit
    assert layer_weight_transient_bytes(SPEC, p4, adapted) == 0


def test_8bit_cannot_be_sharded():
    with pytest.raises(RankwiseError, match="8-bit"):
        METHODS[LORA8].quant.load_kwargs(None, None, sharded=True)
    assert METHODS[LORA8].quant.load_kwargs(None, None, sharded=False) == {"load_in_8bit": True}


# ------------------------------------------------------------------ attention


@pytest.mark.parametrize("seq", [512, 2048, 8192])
@pytest.mark.parametrize("method", [LORA, QLORA])
def test_eager_attention_keeps_fp32_softmax_and_its_copy_per_layer(seq, method):
    eager, sdpa = Plan(method, seq_len=seq, attention="eager"), Plan(method, seq_len=seq)
    adapted = _adapted(eager)
    H = SPEC.num_heads
    # per token: (4 + 2) bytes x H x S scores, replacing SDPA's fp32 logsumexp per head
    assert layer_saved_bytes(SPEC, eager, adapted) - layer_saved_bytes(SPEC, sdpa, adapted) == 6 * H * seq - 4 * H
    no_ckpt_e = estimate(SPEC, replace(eager, grad_checkpointing=False)).components["activations"]
    no_ckpt_s = estimate(SPEC, replace(sdpa, grad_checkpointing=False)).components["activations"]
    # every layer keeps them: B x H x S^2 x 6 bytes x L more (plus the backward transient's scores grad)
    scores = SPEC.num_layers * 6 * H * seq * seq
    assert no_ckpt_e - no_ckpt_s >= scores - SPEC.num_layers * 4 * H * seq
    assert estimate(SPEC, Plan(method, seq_len=seq, attention="flash_attention_2")).peak_bytes == \
        estimate(SPEC, sdpa).peak_bytes


def test_eager_grows_quadratically_sdpa_linearly():
    def act(attn, seq):
        return estimate(SPEC, Plan(LORA, seq_len=seq, attention=attn, grad_checkpointing=False)).components["activations"]
    assert act("sdpa", 4096) / act("sdpa", 2048) == pytest.approx(2, rel=0.02)
    assert act("eager", 4096) / act("eager", 2048) > 2.5


# ------------------------------------------------------------------ fused loss


@pytest.mark.parametrize("batch,seq", [(1, 4096), (2, 2048), (4, 8192)])
def test_fused_loss_holds_one_chunk_of_logits_and_grad_input(batch, seq):
    fused, std = Plan(LORA, micro_batch=batch, seq_len=seq, loss="fused"), Plan(LORA, micro_batch=batch, seq_len=seq)
    bt, V, H = batch * seq, SPEC.vocab_size, SPEC.hidden_size
    inc = -(-V // H)  # 32 for 128256 / 4096
    chunk = 1
    while chunk < -(-bt // inc):
        chunk *= 2  # triton.next_power_of_2
    by_hand = 2 * chunk * V + 2 * bt * H + 4 * bt
    assert fused_loss_bytes(SPEC, fused) == by_hand
    ef, es = estimate(SPEC, fused), estimate(SPEC, std)
    assert es.transients["logits_loss"] == bt * 12 * V  # 3 fp32 vocab-sized copies in backward
    assert ef.transients["logits_loss"] == by_hand < es.transients["logits_loss"] / 5
    assert ef.peak_bytes < es.peak_bytes
    assert any("Liger" in a for a in ef.assumptions)


# ------------------------------------------------------------------ schema -> plan, validation


@pytest.mark.parametrize("attention,kernels,plan_attn,plan_loss", [
    ("auto", "none", "sdpa", "standard"), ("eager", "none", "eager", "standard"),
    ("flash_attention_2", "liger", "flash_attention_2", "fused")])
def test_the_schema_fields_reach_the_plan(attention, kernels, plan_attn, plan_loss):
    cfg = RunConfig.model_validate({"train": {"attention": attention, "kernels": kernels}})
    p = Plan.from_config(cfg, method=LORA)
    assert (p.attention, p.loss) == (plan_attn, plan_loss)


@pytest.mark.parametrize("bad", [{"attention": "flash"}, {"attention": "auto"}, {"loss": "liger"}])
def test_an_unknown_option_is_refused_with_the_choices(bad):
    with pytest.raises(RankwiseError) as e:
        estimate(SPEC, Plan(LORA, **bad))
    assert "use one of" in e.value.hint


def test_bad_option_in_a_preset_names_the_choices():
    with pytest.raises(Exception, match="flash_attention_2"):
        RunConfig.model_validate({"train": {"attention": "flash2"}})


# ------------------------------------------------------------------ other tools' keys


@pytest.mark.parametrize("text,method", [
    ("base_model: llama-3.1-8b\nadapter: lora\nload_in_8bit: true\n", LORA8),
    ("base_model: llama-3.1-8b\nadapter: lora\npeft_use_dora: true\n", DORA),
    ("base_model: llama-3.1-8b\npeft_use_dora: true\nadapter: qlora\nload_in_4bit: true\n", QDORA),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nuse_dora: true\nstage: sft\n", DORA),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nquantization_bit: 8\nstage: sft\n", LORA8),
])
def test_other_tools_keys_map_to_the_variants(tmp_path, text, method):
    f = tmp_path / "x.yaml"
    f.write_text(text)
    assert read(f).cfg.method == method


@pytest.mark.parametrize("text,attention,kernels", [
    ("base_model: llama-3.1-8b\nadapter: lora\nflash_attention: true\n", "flash_attention_2", "none"),
    ("base_model: llama-3.1-8b\nadapter: lora\nattn_implementation: eager\n", "eager", "none"),
    ("base_model: llama-3.1-8b\nadapter: lora\nplugins: [axolotl.integrations.liger.LigerPlugin]\n"
     "liger_fused_linear_cross_entropy: true\n", "auto", "liger"),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nflash_attn: disabled\nstage: sft\n", "eager", "none"),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nflash_attn: fa2\nenable_liger_kernel: true\n"
     "stage: sft\n", "flash_attention_2", "liger"),
])
def test_other_tools_attention_and_liger_keys_map_to_the_options(tmp_path, text, attention, kernels):
    f = tmp_path / "x.yaml"
    f.write_text(text)
    cfg = read(f).cfg
    assert (cfg.train.attention, cfg.train.kernels) == (attention, kernels)


# ------------------------------------------------------------------ the trainer on the CPU


@pytest.mark.parametrize("option,needs", [("train.kernels=liger", "liger"),
                                          ("train.attention=flash_attention_2", "flash")])
def test_gpu_only_options_are_bad_input_on_the_cpu(option, needs):
    from rankwise.trainer.loading import kernel_options

    key, value = option.split("=")
    cfg = RunConfig.model_validate({"train": {key.split(".")[1]: value}})
    with pytest.raises(RankwiseError) as e:
        kernel_options(cfg, "cpu")
    assert needs in e.value.message and ("pip install" in e.value.hint or "set train." in e.value.hint)
    assert kernel_options(RunConfig(), "cpu") == (None, False)


def test_liger_on_the_cpu_exits_2_with_the_hint(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "train.kernels=liger")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "liger" in out and "train.kernels" in out and "Traceback" not in out
    assert not runs.exists() or not any(runs.iterdir())  # said before a run directory is made


def _trains(tmp_path, *sets, preset="demo-cpu", layers=None):
    runs = tmp_path / "runs"
    extra = {"RANKWISE_TEST_LAYERS_TO": str(layers)} if layers else None
    args = [a for s in sets for a in ("--set", s)]
    proc = train(runs, "--set", "train.max_steps=8", *args, preset=preset, extra_env=extra)
    run_dir = only_run(runs)
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    steps = of_type(events(run_dir), "step")
    assert len(steps) == 8 and steps[-1]["loss"] < steps[0]["loss"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("label,preset", [("DoRA", "demo-cpu"), ("QDoRA", "demo-cpu-qlora")])
def test_dora_trains_magnitudes(tmp_path, label, preset):
    run_dir = _trains(tmp_path, f"method={NAMES[label]}", preset=preset)
    from train_helpers import adapter_weights
    mags = [k for k in adapter_weights(run_dir / "adapter") if "magnitude" in k]
    assert mags, "DoRA's magnitude vectors are in the adapter"
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["use_dora"] is True


@pytest.mark.slow
def test_8bit_lora_trains_on_an_llm_int8_base(tmp_path):
    layers = tmp_path / "layers.json"
    _trains(tmp_path, f"method={LORA8}", layers=layers)
    assert {(v["class"], v["weight"], v["dtype"]) for v in json.loads(layers.read_text()).values()} == {
        ("Linear8bitLt", "Int8Params", "torch.int8")}




# ------------------------------------------------------------------ the k-bit fp32 upcast


@pytest.mark.parametrize("method", [QLORA, LORA8, QDORA])
def test_undoing_the_kbit_upcast_keeps_the_other_weights_and_the_stream_16_bit(method):
    up, down = Plan(method, seq_len=4096), Plan(method, seq_len=4096, kbit_upcast=False)
    eu, ed = estimate(SPEC, up), estimate(SPEC, down)
    rest = eu.components["unquantized_weights"] // 4  # embeddings, norms, lm_head: fp32 when upcast
    assert ed.components["unquantized_weights"] == 2 * rest
    assert (stream_bytes(up), stream_bytes(down)) == (4, 2)
    assert "lm_head_cast" in eu.components and "lm_head_cast" not in ed.components
    # checkpointing keeps each layer's input: in the stream's dtype
    assert eu.components["activations"] - ed.components["activations"] >= 4096 * SPEC.num_layers * 2 * SPEC.hidden_size
    assert not any("prepare_model_for_kbit_training casts" in a for a in ed.assumptions)


def test_the_upcast_option_reaches_the_plan_and_does_nothing_to_a_16bit_base():
    cfg = RunConfig.model_validate({"quant": {"kbit_upcast": False}})
    assert Plan.from_config(cfg, method=QLORA).kbit_upcast is False
    assert estimate(SPEC, Plan(LORA, kbit_upcast=False)).peak_bytes == estimate(SPEC, Plan(LORA)).peak_bytes


@pytest.mark.slow
def test_qlora_trains_with_the_upcast_undone(tmp_path):
    run_dir = _trains(tmp_path, "quant.kbit_upcast=false", "quant.compute_dtype=bfloat16", preset="demo-cpu-qlora")
    log = (run_dir / "train.log").read_text()
    import re
    n = re.search(r"quant.kbit_upcast false: (\d+) non-quantized tensors kept in torch.bfloat16", log)
    assert n and int(n.group(1)) > 0, log[-2000:]


# ------------------------------------------------------------------ pure bf16


@pytest.mark.parametrize("method,optimizer", [(LORA, "adamw_torch"), (QLORA, "adamw_torch"), (DORA, "adamw_8bit")])
def test_pure_bf16_halves_the_adapter_its_grads_and_adamw_states(method, optimizer):
    auto, pure = Plan(method, optimizer=optimizer), Plan(method, optimizer=optimizer, pure_bf16=True)
    ea, ep = estimate(SPEC, auto), estimate(SPEC, pure)
    n = ea.trainable_params
    assert (ea.components["lora_params"], ep.components["lora_params"]) == (4 * n, 2 * n)
    assert (ea.components["lora_grads"], ep.components["lora_grads"]) == (4 * n, 2 * n)
    if optimizer == "adamw_torch":  # exp_avg, exp_avg_sq in the parameter's dtype
        assert (ea.components["optimizer_states"], ep.components["optimizer_states"]) == (8 * n, 4 * n)
    else:  # 8-bit states do not depend on the parameter's dtype
        assert ea.components["optimizer_states"] == ep.components["optimizer_states"]
    assert RunConfig.model_validate({"train": {"precision": "pure_bf16"}}).train.precision == "pure_bf16"
    assert Plan.from_config(RunConfig.model_validate({"train": {"precision": "pure_bf16"}}), method=method).pure_bf16


@pytest.mark.slow
def test_pure_bf16_trains_bf16_adapters_and_eager_attention_trains(tmp_path):
    """Two options of one LoRA run (each its own code path: the dtype of the adapter and its optimizer
    states; the attention implementation the base is loaded with)."""
    from train_helpers import adapter_weights
    run_dir = _trains(tmp_path, "train.precision=pure_bf16", "train.attention=eager")
    import torch
    assert {t.dtype for t in adapter_weights(run_dir / "adapter").values()} == {torch.bfloat16}
    assert "eager" in (run_dir / "config.yaml").read_text()


# ------------------------------------------------------------------ real lengths


def _texts(tmp_path, lengths):
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps({"text": "word " * (n // 5)}) + "\n" for n in lengths))
    return f


@pytest.mark.parametrize("max_seq_len,packing,expect", [
    (4096, False, "longest"),  # the longest row is shorter than max_seq_len: estimated at it
    (256, False, "limit"),  # longer rows are truncated at max_seq_len
    (4096, True, "limit"),  # packing fills every sequence to max_seq_len
])
def test_the_peak_is_estimated_at_the_longest_row(tmp_path, max_seq_len, packing, expect):
    from rankwise.advisor.dataset import scan
    from rankwise.advisor.lengths import padded_length

    found = scan(_texts(tmp_path, [100, 400, 2000, 6000]))
    cfg = RunConfig.model_validate({"train": {"max_seq_len": max_seq_len}, "data": {"packing": packing}})
    seq, note = padded_length(cfg, SPEC, found)
    longest = -(-found.max_chars // 4) + 12  # ~4 characters a token + the template's tokens
    assert found.max_chars >= 6000 - 5 and longest < 4096
    assert seq == (longest if expect == "longest" else max_seq_len)
    assert ("packing" in note) if packing else (str(found.path) in note and f"{longest:,}" in note)
    real = estimate(SPEC, replace(Plan.from_config(cfg, method=LORA), seq_len=seq))
    full = estimate(SPEC, Plan.from_config(cfg, method=LORA))
    assert (real.peak_bytes < full.peak_bytes) == (expect == "longest")


def test_a_byte_level_vocabulary_counts_a_token_a_character(tmp_path):
    from rankwise.advisor.dataset import scan
    from rankwise.advisor.lengths import padded_length

    tiny = load_model(str(__import__("pathlib").Path(__file__).resolve().parent.parent / "presets/assets/tiny-llama"))
    found = scan(_texts(tmp_path, [50, 300]))
    seq, _ = padded_length(RunConfig(), tiny, found)
    assert seq == found.max_chars + 12


def test_estimate_dataset_flag_reports_the_lengths(rankwise_cmd, tmp_path):
    import subprocess
    data = _texts(tmp_path, [100, 1000])
    base = rankwise_cmd + ["estimate", "--model", "llama-3.1-8b", "--json"]
    r = subprocess.run(base + ["--dataset", str(data)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    plain = json.loads(subprocess.run(base, capture_output=True, text=True, timeout=60).stdout)
    assert d["lengths"]["max_seq_len"] == 2048 and d["plan"]["seq_len"] == d["lengths"]["seq_len"] < 2048
    assert d["peak_bytes"] < plain["peak_bytes"] and "lengths" not in plain
    bad = subprocess.run(base + ["--dataset", str(tmp_path / "missing.jsonl")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# ------------------------------------------------------------------ pre-quantized (GPTQ/AWQ) bases


def _prequantized(fmt, bits=4, group=128):
    from rankwise.advisor.model import spec_from_config
    cfg = dict(SPEC.config)
    cfg["quantization_config"] = {"quant_method": fmt, "bits": bits, "group_size": group}
    return spec_from_config(SPEC.name, "catalog", cfg)


@pytest.mark.parametrize("fmt,bits,group", [("gptq", 4, 128), ("gptq", 8, -1), ("awq", 4, 64)])
def test_a_prequantized_base_is_estimated_in_its_shipped_storage(fmt, bits, group):
    spec = _prequantized(fmt, bits, group)
    lin = [l for l in spec.linears if l.family != "lm_head"]
    est = estimate(spec, Plan(LORA))
    packed = sum(l.count * l.d_in * l.d_out for l in lin) * bits // 8
    consts = 0
    for l in lin:  # fp16 scale + bits-wide zero per (group, output); GPTQ's int32 g_idx per input
        groups = 1 if group < 0 else l.d_in // group
        consts += l.count * (groups * l.d_out * (16 + bits) // 8 + (4 * l.d_in if fmt == "gptq" else 0))
    assert est.components["base_weights"] == packed
    assert est.components["quant_constants"] == consts
    assert est.components["unquantized_weights"] == 2 * (spec.total_params - sum(l.count * l.d_in * l.d_out for l in lin))
    assert est.peak_bytes < estimate(SPEC, Plan(LORA)).peak_bytes
    assert est.assumptions[0].startswith(f"pre-quantized {fmt.upper()} {bits}-bit")


@pytest.mark.parametrize("books,nbits,group", [(1, 16, 8), (2, 8, 8), (1, 16, 16)])
def test_an_aqlm_base_is_its_codes_codebooks_and_scales(books, nbits, group):
    """aqlm's QuantizedLinear: codes (outputs x inputs/group x codebooks, int8 up to 8 bits else int16), fp16
    codebooks (codebooks x 2^bits x group) and one fp16 scale per output, per linear."""
    from rankwise.advisor.model import spec_from_config
    cfg = {**SPEC.config, "quantization_config": {"quant_method": "aqlm", "num_codebooks": books,
                                                  "nbits_per_codebook": nbits, "in_group_size": group}}
    spec = spec_from_config(SPEC.name, "catalog", cfg)
    est = estimate(spec, Plan(LORA))
    lin = [l for l in spec.linears if l.family != "lm_head"]
    code = 1 if nbits <= 8 else 2
    assert est.components["base_weights"] == sum(l.count * l.d_out * (l.d_in // group) * books * code for l in lin)
    assert est.components["quant_constants"] == sum(l.count * (books * 2 ** nbits * group * 2 + 2 * l.d_out)
                                                    for l in lin)
    bits = books * nbits // group
    assert est.assumptions[0].startswith(f"pre-quantized AQLM {bits}-bit")
    # 2 bits a weight (1x16 in 8s): a quarter of the 4-bit GPTQ packing, plus ~1 MiB of codebook per linear
    if (books, nbits, group) == (1, 16, 8):
        gptq = estimate(_prequantized("gptq"), Plan(LORA)).components["base_weights"]
        assert est.components["base_weights"] * 2 == gptq


@pytest.mark.parametrize("name,expect", [
    ("TheBloke/Llama-2-7B-GPTQ", {"quant_method": "gptq", "bits": 4, "group_size": 128}),  # 7B is no bit count
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8", {"quant_method": "gptq", "bits": 8, "group_size": 128}),
    ("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", {"quant_method": "awq", "bits": 4, "group_size": 128}),
    ("someone/model-GPTQ-4bit-32g", {"quant_method": "gptq", "bits": 4, "group_size": 32}),
    ("ISTA-DASLab/Meta-Llama-3-8B-Instruct-AQLM-2Bit-1x16",
     {"quant_method": "aqlm", "num_codebooks": 1, "nbits_per_codebook": 16, "in_group_size": 8}),
    ("ISTA-DASLab/Llama-2-7b-AQLM-2Bit-2x8-hf",
     {"quant_method": "aqlm", "num_codebooks": 2, "nbits_per_codebook": 8, "in_group_size": 8}),
    ("meta-llama/Llama-3.1-8B", None), ("someone/hawq-tuned", None),  # "awq" inside a word is not AWQ
])
def test_a_models_name_says_its_shipped_quantization(name, expect):
    from rankwise.advisor.model import name_quantization
    got = name_quantization(name)
    assert (got if got is None else {k: got[k] for k in expect}) == expect
    if got:
        assert name in got["rankwise_inferred"]


def test_an_indexed_pre_quantized_copy_is_estimated_in_its_storage_and_its_file_says_so():
    """TheBloke/Llama-2-7B-GPTQ is indexed as Llama-2-7b's shape; its name says GPTQ: the estimate counts the
    4-bit storage (not 16-bit) and `check` on axolotl's example notes it instead of "not modelled"."""
    spec = load_model("TheBloke/Llama-2-7B-GPTQ")
    plain = load_model("meta-llama/Llama-2-7b-hf")
    est, est16 = estimate(spec, Plan(LORA)), estimate(plain, Plan(LORA))
    assert est.components["base_weights"] * 2 == sum(l.count * l.d_in * l.d_out for l in plain.linears
                                                     if l.family != "lm_head")  # 4 bits a weight
    assert est.peak_bytes < est16.peak_bytes - 8 * 2 ** 30
    assert "TheBloke/Llama-2-7B-GPTQ says GPTQ" in est.assumptions[0]


@pytest.mark.parametrize("flags,bits", [(["--load", "gptq"], 4), (["--load", "awq", "--quant-bits", "8"], 8),
                                        (["--load", "aqlm"], 2), (["--load", "aqlm", "--quant-bits", "4"], 4)])
def test_estimate_writes_down_a_pre_quantized_base(flags, bits):
    import subprocess
    import sys
    base = [sys.executable, "-m", "rankwise.tui.cli", "estimate", "--model", "llama-3.1-8b", "--gpu-mem", "24GiB", "--json"]
    out = subprocess.run(base + flags, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    lin = sum(l.count * l.d_in * l.d_out for l in SPEC.linears if l.family != "lm_head")
    assert d["component_bytes"]["base_weights"] == lin * bits // 8 and d["plan"]["method"] == LORA
    assert f"--load {flags[1]}" in d["assumptions"][0]


@pytest.mark.parametrize("flags,says", [(["--load", "gptq", "--method", QLORA], "already quantized"),
                                        (["--quant-bits", "4"], "--load gptq, awq or aqlm")])
def test_estimate_refuses_a_pre_quantized_base_under_bitsandbytes(flags, says):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "rankwise.tui.cli", "estimate", "--model", "llama-3.1-8b", *flags],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("asked,twin", [(QLORA, LORA), (QDORA, DORA), (LORA8, LORA)])
def test_bitsandbytes_methods_on_a_prequantized_base_are_their_unquantized_twin(asked, twin):
    spec = _prequantized("gptq")
    est = estimate(spec, Plan(asked, optimizer="adamw_torch"))
    assert est.plan.method == twin
    assert est.peak_bytes == estimate(spec, Plan(twin, optimizer="adamw_torch")).peak_bytes
    assert "bitsandbytes quantization does not apply" in est.assumptions[0]


def test_training_a_prequantized_base_without_its_package_is_bad_input():
    from rankwise.trainer.loading import prequantized
    import importlib.util
    if importlib.util.find_spec("gptqmodel"):
        pytest.skip("gptqmodel is installed here")
    with pytest.raises(RankwiseError) as e:
        prequantized(_prequantized("gptq"))
    assert "GPTQ" in e.value.message and "rankwise[prequantized]" in e.value.hint
    assert prequantized(SPEC) is None
    if not importlib.util.find_spec("aqlm"):
        aqlm = replace(SPEC, config={**SPEC.config, "quantization_config": {"quant_method": "aqlm"}})
        with pytest.raises(RankwiseError) as e:
            prequantized(aqlm)
        assert "AQLM" in e.value.message and "aqlm[gpu]" in e.value.hint


@pytest.mark.parametrize("prequantized", [False, True])
def test_the_oom_message_never_tells_a_prequantized_base_to_switch_to_4bit(prequantized):
    from rankwise.trainer.oom import oom_message
    cfg = RunConfig.model_validate({"method": LORA})
    est = estimate(_prequantized("gptq") if prequantized else SPEC, Plan(LORA))
    text = oom_message(est, 24 * 2 ** 30, 1, 8, 2, cfg, prequantized=prequantized)
    assert (f"method: {QLORA}" in text) is not prequantized and "max_seq_len" in text
