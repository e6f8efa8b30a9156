"""The allocator and communication terms (advisor/allocator.py), by hand from the sourced constants:
PyTorch's caching allocator (c10/core/AllocatorConfig.h: 512 B blocks, 1 MiB small requests in 2 MiB
segments, 1-10 MiB in 20 MiB segments, larger rounded to 2 MiB) and NCCL's per-connection buffers
(4 MiB SIMPLE + LL128 120*640*8*8 + LL 8*512*8*16 bytes). Llama 3.1 8B: hidden 4096, MLP 14336,
vocabulary 128256.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from rankwise.advisor import allocator
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.advisor.plan import Stack

MIB = 2 ** 20
V, I = 128256, 14336
NCCL_CONNECTION = 4 * MIB + 120 * 640 * 8 * 8 + 8 * 512 * 8 * 16


@pytest.fixture(scope="module")
def llama8b():
    return load_model("llama-3.1-8b")


@pytest.mark.parametrize("size,block,segment", [
    (1, 512, 2 * MIB),  # the smallest block; small requests share 2 MiB segments
    (513, 1024, 2 * MIB),
    (MIB, MIB, 2 * MIB),  # kSmallSize is still small
    (MIB + 1, MIB + 512, 20 * MIB),  # 1-10 MiB: a 20 MiB kLargeBuffer segment
    (10 * MIB - 1, 10 * MIB, 20 * MIB),
    (10 * MIB, 10 * MIB, 10 * MIB),  # kMinLargeAlloc: its own segment, rounded to 2 MiB
    (11 * MIB, 11 * MIB, 12 * MIB),
])
def test_rounding_follows_the_allocator(size, block, segment):
    assert allocator.block_bytes(size) == block
    assert allocator.segment_bytes(size) == segment


# Stacks as bench/stacks.py declares them: (keeps the 16-bit logits, makes a shifted copy).
HF = Stack("hf", 4, True, False, True, True, False, 3)  # fwd 2+4+4 = 10, bwd 3*4 = 12
HF_440 = Stack("hf-4.40", 4, True, False, True, False, True, 3)  # fwd 4+4+4 = 12 (16-bit freed), bwd 12
HF_446 = Stack("hf-4.46", 4, True, False, True, True, True, 3)  # fwd 2+4+4+4 = 14, bwd 12


@pytest.mark.parametrize("stack,plan_kw,per_logit", [
    (HF, {}, 2),  # max(10, 12 + 2) - max(10, 12): the freed 16-bit block beside the 3 fp32 copies
    (HF_440, {}, 2),  # max(12 + 2, 12 + 2) - 12: freed already in forward by the rebinding
    (HF_446, {}, 0),  # max(14, 12 + 2) - 14: the forward peak, 16-bit logits alive, is the higher
    (HF, {"loss": "fused"}, 0),  # no vocab-sized logits
    (HF, {"dtype_bytes": 4}, 0),  # fp32 logits: every request the same size
])
def test_logits_hole(stack, plan_kw, per_logit):
    plan = Plan("lora", stack=stack, **plan_kw)
    assert allocator.logits_hole_bytes(plan, V) == per_logit * V


def test_loss_peak_keeps_the_hole_and_one_layers_mlp_blocks(llama8b):
    est = estimate(llama8b, Plan("lora", micro_batch=1, seq_len=2048))
    c, t = est.components, 2048
    assert c["logits_loss"] > 0  # the loss sets the transient peak here
    # freed 16-bit logits (2 bytes a logit) + act(gate), up, their product in bf16 (2 x 14336 < 2 x 128256)
    assert c["allocator_cached"] == t * 2 * V + 3 * t * 2 * I
    assert c["allocator_overhead"] == 20 * MIB + 2 * MIB  # one stream: one 20 MiB + one 2 MiB segment
    assert est.reserved_bytes == est.peak_bytes - c["cuda_context"]
    assert "nccl_buffers" not in c


def test_recompute_peak_keeps_what_the_loss_reserved_beyond_it(llama8b):
    # a 2k vocabulary: one layer's recompute outweighs the loss's buffers
    spec = replace(llama8b, vocab_size=2048)
    est = estimate(spec, Plan("lora", micro_batch=1, seq_len=2048))
    logits, recompute, t = est.transients["logits_loss"], est.transients["layer_recompute"], 2048
    assert recompute > logits and est.components["logits_loss"] == 0
    loss_set = logits + t * 2 * 2048 + 3 * t * 2 * I  # the hole, and the MLP's blocks (wider than 2 x 2048)
    assert est.components["allocator_cached"] == max(loss_set, recompute) - recompute


def test_fsdp_counts_nccl_streams_and_gradient_buffers(llama8b):
    est = estimate(llama8b, Plan("lora", gpus=2, strategy="fsdp"))
    c = est.components
    assert c["nccl_buffers"] == 32 * 1 * NCCL_CONNECTION  # NCCL's 32-channel cap x the ring's one peer
    assert c["allocator_overhead"] == 4 * (20 * MIB + 2 * MIB)  # the default stream + FSDP's three
    per_layer = est.trainable_params // 32  # one layer's LoRA weights: a unit of their own
    assert c["fsdp_grad_buffers"] == 2 * per_layer + -(-2 * per_layer // 2)  # bf16 unsharded grad + 1/2 shard
    # plus what FSDP's wrapping leaves cached (tests/test_fsdp_wrap.py): reserved, handed back when short
    assert est.reserved_bytes == est.peak_bytes - c["cuda_context"] - c["nccl_buffers"] + est.releasable_bytes


def test_one_gpu_has_no_communication(llama8b):
    c = estimate(llama8b, Plan("qlora")).components
    assert "nccl_buffers" not in c and "fsdp_grad_buffers" not in c
