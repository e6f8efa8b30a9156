"""The planner's cost of trying the trained run (`rankwise compare`), stated by hand arithmetic for
Mistral-7B QLoRA on an A100-80GB, and where it shows (estimate's line and JSON, advise JSON)."""
from __future__ import annotations

import json

import pytest

from rankwise.advisor.compare_plan import plan_compare
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.fit import assess
from rankwise.advisor.hardware import planned
from rankwise.advisor.model import load_model
from rankwise.tui.cli import main

MIB = 1024 ** 2
# Mistral-7B (v0.3) shapes: 32 layers of q,k,v,o (4096x4096, 4096x1024 twice, 4096x4096) and gate,
# up, down (4096x14336); vocab 32768; 8 KV heads of 128.
BODY = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336)  # 6,979,321,856 decoder-layer weights
HEAD = 32768 * 4096  # the output head (not quantized)
REST = 32768 * 4096 * 2 + (32 * 2 + 1) * 4096  # embeddings + head + RMSNorms: not 4-bit
LORA = 32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2)  # r 16 on q,k,v,o: 13,631,488
L, NEW, ROWS = 2048, 64, 20  # no data: a row is a full max_seq_len; compare's defaults


@pytest.fixture(scope="module")
def planned_7b():
    spec = load_model("mistral-7b")
    hw = planned(gpu="A100-80GB")
    fit = assess(spec, with_values(RunConfig(), {"model.name": "mistral-7b", "method": "qlora"}), hw)
    return fit, plan_compare(spec, fit, hw)


def test_memory_is_the_trained_storage_without_training_state(planned_7b):
    fit, cp = planned_7b
    c = cp.components
    assert fit.estimate.trainable_params == LORA
    assert c["base_weights"] == BODY // 2  # NF4: half a byte a weight, as trained
    assert c["quant_constants"] == fit.estimate.components["quant_constants"]  # the same blocks' constants
    assert c["unquantized_weights"] == REST * 2  # bf16: compare does not upcast them to fp32 as training does
    assert c["lora_params"] == LORA * 4  # one fp32 adapter (peft's autocast_adapter_dtype)
    logits = L * 32768 * (2 + 4 + 4)  # bf16 logits, their fp32 copy, fp32 log-softmax: 640 MiB
    kv = 2 * 32 * 8 * 128 * (L + NEW) * 2  # 264 MiB: smaller, so the loss pass sets the transient peak
    assert logits > kv and c["logits_loss"] == logits and "kv_cache" not in c
    assert c["allocator_overhead"] == int(0.10 * logits) and c["cuda_context"] == 500 * MIB
    assert cp.peak_bytes == sum(c.values())
    assert not {"lora_grads", "optimizer_states", "activations"} & set(c)
    assert cp.peak_bytes < fit.estimate.peak_bytes  # comparing needs less than training


def test_time_is_load_plus_loss_passes_plus_generation(planned_7b):
    from rankwise.advisor.speeds import GPU_HF, LOAD_GBS, SETUP_S

    _, cp = planned_7b
    st = GPU_HF  # the hf stack's sustained shares of the datasheet (time.py, each with its source)
    flops_s, kbit, bw = 312e12 * st.efficiency, st.kbit_factor, 2039e9 * st.bandwidth_share  # A100-80GB datasheet
    layers = 32 * st.layer_overhead_s  # fixed cost per layer per pass
    attn = 32 * 4 * 4096  # QK^T and A.V per token per attended position

    def full_pass(lora: int) -> float:  # a whole row: 4-bit weights dequantized (0.5 + 2 + 2 bytes a weight)
        return ((2 * L * (BODY + HEAD + lora) + L * attn * (L / 2)) / (flops_s * kbit)
                + (BODY * 4.5 + HEAD * 2 + 2 * 32 * 8 * 128 * L * 2) / bw + layers)

    def step(lora: int) -> float:  # one new token after L + 32 cached: gemv_4bit reads the packed weights
        ctx = L + NEW // 2
        return ((2 * (BODY + HEAD + lora) + attn * (ctx + 0.5)) / flops_s
                + (BODY * 0.5 + HEAD * 2 + 2 * 32 * 8 * 128 * (ctx + 1) * 2) / bw + layers)

    load = SETUP_S["gpu"] + (BODY // 2 + cp.components["quant_constants"] + REST * 2) / 1e9 / LOAD_GBS
    loss = ROWS * (full_pass(0) + full_pass(LORA))
    gen = ROWS * (full_pass(0) + NEW * step(0) + full_pass(LORA) + NEW * step(LORA))
    assert cp.parts_s["load"] == pytest.approx(load, rel=1e-9)
    assert cp.parts_s["loss"] == pytest.approx(loss, rel=1e-9)
    assert cp.parts_s["generation"] == pytest.approx(gen, rel=1e-9)
    assert cp.seconds == pytest.approx(load + loss + gen, rel=1e-9)
    assert 60 < cp.seconds < 100  # ~1m 15s: the weight load and 2,560 decoding steps of ~15 ms


def test_estimate_and_advise_carry_it(planned_7b, capsys):
    args = ["--model", "mistral-7b", "--gpu", "A100-80GB"]
    assert main(["estimate", *args, "--method", "qlora", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["compare"]
    assert got["rows"] == ROWS and got["new_tokens"] == NEW and got["row_tokens"] == L
    assert got["peak_bytes"] == planned_7b[1].peak_bytes and got["seconds"] == round(planned_7b[1].seconds, 1)
    assert main(["estimate", *args, "--method", "qlora"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (f"compare after training ({ROWS} held-out rows × base and adapter, {NEW} new tokens each): "
            f"peak {got['peak_gib']:.2f} GiB, ~1m") in text
    assert main(["advise", *args, "--task", "chat", "--json"]) == 0
    assert "compare" in json.loads(capsys.readouterr().out)
