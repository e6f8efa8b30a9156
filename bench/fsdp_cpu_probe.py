"""Does FSDP (v1) hold more per token than one process does? A CPU probe for the FSDP/ZeRO-3 excess of
bench/memory_reference.csv (the open rows' notes).

    python3 bench/fsdp_cpu_probe.py [--fsdp] [--non-reentrant] [--autocast] [--mixed-precision] [--orig-params]

Two ranks on the CPU (gloo, this torch): a random-weight 4-layer Llama (hidden 256) with peft LoRA on every
linear, transformers' gradient checkpointing (reentrant unless --non-reentrant), wrapped like accelerate wraps a
peft model (peft's fsdp_auto_wrap_policy: decoder layers and each LoRA linear their own units, FULL_SHARD,
BACKWARD_PRE, limit_all_gathers). It prints rank 0's peak live bytes over one step (torch's profiler memory
timeline, after a warm-up step) at 512 and 1,024 tokens a sequence and the slope per token; run it with and
without --fsdp and compare the slopes. On torch 2.13 (CPU) they are equal here, because transformers 5 checkpoints
inside each FSDP unit (GradientCheckpointingLayer). The published runs' excess came from transformers 4.40, whose
model forward checkpoints around each unit: FSDP's reshard-only hook then holds every layer's input and its
gradient to the end of backward (advisor/sharding.py, checkpoint_hold_bytes). tests/test_checkpoint_hold.py
measures that layout; this probe does not build it. A bench script, not a test (~1 min).
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

VOCAB = 4000
PORT = "29533"


def build(args):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=VOCAB, max_position_embeddings=4096, use_cache=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", lora_dropout=0.0),
                           autocast_adapter_dtype=args.autocast)  # fp32 adapters under autocast, as the HF stack
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": not args.non_reentrant})
    model.enable_input_require_grads()
    if args.fsdp:
        from peft.utils.other import fsdp_auto_wrap_policy
        from torch.distributed.fsdp import BackwardPrefetch, MixedPrecision, ShardingStrategy
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        bf16 = torch.bfloat16
        model = FSDP(model, auto_wrap_policy=fsdp_auto_wrap_policy(model), sharding_strategy=ShardingStrategy.FULL_SHARD,
                     device_id=torch.device("cpu"), backward_prefetch=BackwardPrefetch.BACKWARD_PRE,
                     use_orig_params=args.orig_params, limit_all_gathers=True,
                     mixed_precision=MixedPrecision(bf16, bf16, bf16) if args.mixed_precision else None)
    return model


def step(model, tokens, autocast: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=tokens, labels=tokens).loss
    loss.backward()


def peak_bytes(model, seq: int, autocast: bool) -> int:
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    tokens = torch.randint(0, VOCAB, (2, seq))
    step(model, tokens, autocast)  # warm-up: lazy init, optimizer-free
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step(model, tokens, autocast)
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    live = [sum(s) for s in sizes]
    return max(live) - live[0]


def worker(rank: int, world: int, args) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", PORT)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    peaks = {seq: peak_bytes(build(args), seq, args.autocast) for seq in (512, 1024)}
    if rank == 0:
        slope = (peaks[1024] - peaks[512]) / (2 * 512)
        print(f"fsdp={args.fsdp} reentrant={not args.non_reentrant} autocast={args.autocast} "
              f"mixed_precision={args.mixed_precision} orig_params={args.orig_params}: "
              f"peak {peaks[512]:,} B at 2x512, {peaks[1024]:,} B at 2x1024; {slope:,.0f} B a token", flush=True)
    dist.destroy_process_group()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag in ("--fsdp", "--non-reentrant", "--autocast", "--mixed-precision", "--orig-params"):
        ap.add_argument(flag, action="store_true")
    args = ap.parse_args()
    mp.spawn(worker, args=(2, args), nprocs=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
