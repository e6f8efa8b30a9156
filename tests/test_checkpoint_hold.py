"""FSDP's hold under reentrant checkpointing around each unit (advisor/sharding.py, checkpoint_hold_bytes):
estimated only for stacks whose checkpoint call wraps the FSDP unit, and measured against torch itself."""
from __future__ import annotations

import pytest
from train_helpers import bench_module

from rankwise.advisor import sharding
from rankwise.advisor.activations import stream_bytes
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.advisor.plan import HF


# the benchmark's transformers 4.40 layout: the model's forward checkpoints decoder_layer.__call__
WRAPS = bench_module("stacks").STACKS["hf-4.40"]


@pytest.fixture(scope="module")
def l8():
    return load_model("llama-3.1-8b")


def _fsdp(method="qlora", **kw):
    # a fused loss (no vocabulary-sized logits), so the end of backward, not the loss, is the peak
    base = dict(micro_batch=2, seq_len=4096, gpus=2, strategy="fsdp", reentrant=True, stack=WRAPS, loss="fused")
    return Plan(method, **{**base, **kw})


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_the_hold_is_every_layers_input_gradient_but_the_two_the_first_layer_holds_anyway(l8, method):
    plan = _fsdp(method)
    got = estimate(l8, plan)
    tokens = plan.micro_batch * plan.seq_len
    one_input = tokens * stream_bytes(plan) * l8.hidden_size
    assert got.components["fsdp_checkpoint_hold"] == (l8.num_layers - 2) * one_input
    # the peak is at the end of backward: the saved inputs, the first layer's recompute and the hold; no loss
    saved = tokens * (l8.num_layers * stream_bytes(plan) * l8.hidden_size + 4 * l8.hidden_size)
    assert got.components["activations"] == saved + got.transients["layer_recompute"]
    assert got.components["logits_loss"] == 0
    assert any("FSDP's reshard hooks keep every layer's input" in a for a in got.assumptions)
    without = estimate(l8, _fsdp(method, stack=HF))
    assert got.peak_bytes > without.peak_bytes


@pytest.mark.parametrize("change", [dict(stack=HF), dict(reentrant=False), dict(strategy="deepspeed"),
                                    dict(grad_checkpointing=False), dict(gpus=1, strategy="ddp")])
def test_no_hold_where_the_mechanism_is_absent(l8, change):
    """rankwise's own stack (transformers 5 checkpoints inside each unit), non-reentrant checkpointing,
    ZeRO-3 (its own hooks), no checkpointing, one GPU."""
    got = estimate(l8, _fsdp(**change))
    assert "fsdp_checkpoint_hold" not in got.components
    assert not any("reshard hooks" in a for a in got.assumptions)


def test_a_loss_larger_than_the_hold_keeps_the_loss_peak(l8):
    """Llama 3.1's 128k-vocabulary loss at 2 x 4096 tokens outweighs the hold: the peak stays the loss's."""
    standard = _fsdp("lora", loss="standard")
    got, hf = estimate(l8, standard), estimate(l8, _fsdp("lora", loss="standard", stack=HF))
    assert "fsdp_checkpoint_hold" not in got.components and got.components["logits_loss"] > 0
    tokens = standard.micro_batch * standard.seq_len
    hold = sharding.checkpoint_hold_bytes(standard, l8.num_layers, tokens * stream_bytes(standard) * l8.hidden_size)
    assert 0 < hold + got.transients["layer_recompute"] < got.transients["logits_loss"]


def test_two_layers_hold_nothing_more(l8):
    """The first layer's backward holds the incoming and the outgoing gradient anyway."""
    plan = _fsdp()
    assert sharding.checkpoint_hold_bytes(plan, 2, 10**6) == 0
    assert sharding.checkpoint_hold_bytes(plan, 3, 10**6) == 10**6


@pytest.mark.slow
def test_torch_holds_what_the_estimate_adds(tmp_path):
    """Measured (bench/gpu_fsdp_probe.py's `measure`: one gloo rank, torch's profiler): reentrant checkpointing
    around each FSDP unit peaks higher than inside it by the estimate's hold, (layers - 2) layer inputs, and not
    at all with two layers. An fp32 Llama with a 64-token vocabulary, so the layers, not the loss, set the peak."""
    import torch

    measure = bench_module("gpu_fsdp_probe").measure
    tokens = torch.randint(0, 64, (2, 1024))
    hidden, one_input = 256, tokens.numel() * 256 * 4  # fp32
    plan = Plan("lora", dtype_bytes=4, gpus=2, strategy="fsdp", reentrant=True, stack=WRAPS)
    assert stream_bytes(plan) * hidden * tokens.numel() == one_input
    for layers in (2, 5):
        config = dict(model_type="llama", hidden_size=hidden, intermediate_size=688, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, vocab_size=64, max_position_embeddings=2048)
        around, inside = (measure(config, wraps, True, tokens, tmp_path / f"{wraps}{layers}", dtype_name="float32")
                          for wraps in (True, False))
        measured = around["peak_allocated"] - inside["peak_allocated"]
        expected = sharding.checkpoint_hold_bytes(plan, layers, one_input)
        assert abs(measured - expected) <= 0.02 * one_input, (layers, measured, expected)
