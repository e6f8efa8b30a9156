"""FSDP's hold under reentrant checkpointing around each unit (advisor/sharding.py, checkpoint_hold_bytes):
estimated only for stacks whose checkpoint call wraps the FSDP unit, and measured against torch itself."""
from __future__ import annotations

import pytest

from rankwise.advisor import sharding
from rankwise.advisor.activations import stream_bytes
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.advisor.plan import HF, Stack

# transformers 4.40's layout (bench/stacks.py "hf-4.40"): the model's forward checkpoints decoder_layer.__call__
WRAPS = Stack("hf-4.40", 4, True, False, True, False, True, 3, checkpoint_wraps_unit=True)


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


def _peak_live_bytes(layers: int, around_unit: bool, tokens, pg_file) -> int:
    """Peak live CPU bytes over one LoRA forward + backward of an fp32 Llama under FSDP (one gloo rank),
    reentrant checkpointing either around each FSDP unit (transformers 4.40's call) or inside it (transformers
    5's GradientCheckpointingLayer), from torch's profiler memory timeline after a warm-up step."""
    import torch
    import torch.distributed as dist
    import torch.utils.checkpoint as ckpt
    from peft import LoraConfig, get_peft_model
    from peft.utils.other import fsdp_auto_wrap_policy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import ShardingStrategy
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline
    from transformers import LlamaConfig, LlamaForCausalLM

    class AroundUnit(torch.nn.Module):
        def __init__(self, unit):
            super().__init__()
            self.unit = unit

        def forward(self, hidden_states, **kw):
            return ckpt.checkpoint(lambda h: self.unit(h, **kw), hidden_states, use_reentrant=True)

    cfg = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=64, max_position_embeddings=2048, use_cache=False)
    dist.init_process_group("gloo", init_method=f"file://{pg_file}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                                                 lora_dropout=0.0))
        model.train()
        if not around_unit:
            model.base_model.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
        # as transformers 4.40's Trainer wraps a LoRA model: peft's policy, LoRA linears in units of their own
        model = FSDP(model, auto_wrap_policy=fsdp_auto_wrap_policy(model), sharding_strategy=ShardingStrategy.FULL_SHARD,
                     device_id=torch.device("cpu"))
        if around_unit:
            stack = next(m for n, m in model.named_modules() if n.endswith("model.layers"))
            for i in range(len(stack)):
                stack[i] = AroundUnit(stack[i])
        for _ in range(2):  # the second step is measured (lazy initialisation out of the way)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                         with_stack=True) as prof:
                model(input_ids=tokens).logits.float().mean().backward()
        _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
        live = [sum(s) for s in sizes]
        return max(live) - live[0]
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_torch_holds_what_the_estimate_adds(tmp_path):
    """Measured: reentrant checkpointing around each FSDP unit peaks higher than inside it by the estimate's hold,
    (layers - 2) layer inputs, and not at all with two layers."""
    import torch

    tokens = torch.randint(0, 64, (2, 1024))
    hidden, one_input = 256, tokens.numel() * 256 * 4  # fp32
    plan = Plan("lora", dtype_bytes=4, gpus=2, strategy="fsdp", reentrant=True, stack=WRAPS)
    assert stream_bytes(plan) * hidden * tokens.numel() == one_input
    for layers in (2, 5):
        measured = (_peak_live_bytes(layers, True, tokens, tmp_path / f"a{layers}")
                    - _peak_live_bytes(layers, False, tokens, tmp_path / f"b{layers}"))
        expected = sharding.checkpoint_hold_bytes(plan, layers, one_input)
        assert abs(measured - expected) <= 0.02 * one_input, (layers, measured, expected)
