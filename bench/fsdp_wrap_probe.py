"""What rank 0 allocates and frees while FSDP (v1) wraps a peft LoRA model, request by request: the CPU check of
advisor/fsdp_wrap.py's `requests` (tests/test_fsdp_wrap.py compares the two).

    python3 bench/fsdp_wrap_probe.py OUT.json

Two gloo ranks on the CPU, this torch and peft. (a) A random-weight 2-layer Llama (bf16, LoRA r=4 on every linear,
bf16 adapters) built inside torch's profiler and wrapped as fsdp_qlora and accelerate wrap a peft model (peft's
fsdp_auto_wrap_policy: each LoRA linear and each decoder layer a unit; FULL_SHARD; use_orig_params False). On the
CPU the model is already on its device and sync_module_states needs a GPU, so steps 1-2 of fsdp_wrap.py (the
moves and the broadcast) do not run here. (b) c10d's `_broadcast_coalesced` on its own, with a small bucket, for
step 2, over torch's "fake" process group: the buckets are comm.cpp's whatever the backend, but gloo's worker
thread may drop the last reference to a bucket, and the profiler records allocator events only on threads that
carry its state, so over gloo about one run in 30 misses a bucket's free. Each writes rank 0's allocator events
(+bytes / -bytes, in order) from the profiler. About 20 s.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

CONFIG = dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=96, max_position_embeddings=128, tie_word_embeddings=False)
RANK = 4
BUCKET = 3000  # bytes: the broadcast check's bucket limit
BROADCAST = (1000, 2400, 800, 600, 4000, 200)  # bytes of the tensors broadcast together (uint8)


MARK = 777_777  # bytes of the marker tensors that open and close each measured section


def _sections(prof) -> list[list[int]]:
    """+bytes for each tensor storage created, -bytes for each destroyed, in order, per section between two
    marker tensors (the profiler's memory timeline)."""
    from torch.profiler._memory_profiler import Action, MemoryProfileTimeline

    sign = {Action.CREATE: 1, Action.DESTROY: -1}
    out: list[list[int]] = []
    inside = False
    for _, action, _, size in MemoryProfileTimeline(prof._memory_profile()).timeline:
        if action is Action.CREATE and size == MARK:
            inside = not inside
            if inside:
                out.append([])
        elif inside and action in sign and size != MARK:
            out[-1].append(sign[action] * size)
    return out


def worker(rank: int, world: int, pg: str, out: str) -> None:
    import torch
    import torch.distributed as dist
    from peft import LoraConfig, get_peft_model
    from peft.utils.other import fsdp_auto_wrap_policy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import ShardingStrategy
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoConfig, AutoModelForCausalLM

    dist.init_process_group("gloo", init_method=f"file://{pg}", rank=rank, world_size=world)
    fake = dist.new_group(backend="fake")  # collectives on the calling thread: every free is recorded
    try:
        torch.manual_seed(0)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**CONFIG), dtype=torch.bfloat16)
            model = get_peft_model(model, LoraConfig(r=RANK, target_modules="all-linear", lora_dropout=0.0),
                                   autocast_adapter_dtype=False)
            marks = [torch.empty(MARK, dtype=torch.uint8)]
            FSDP(model, auto_wrap_policy=fsdp_auto_wrap_policy(model), sharding_strategy=ShardingStrategy.FULL_SHARD,
                 device_id=torch.device("cpu"), use_orig_params=False)
            marks.append(torch.empty(MARK, dtype=torch.uint8))
            tensors = [torch.zeros(n, dtype=torch.uint8) for n in BROADCAST]
            marks.append(torch.empty(MARK, dtype=torch.uint8))
            dist._broadcast_coalesced(fake, tensors, BUCKET, 0)
            marks.append(torch.empty(MARK, dtype=torch.uint8))
        if rank == 0:
            wrap, broadcast = _sections(prof)
            with open(out, "w", encoding="utf-8") as fh:
                json.dump({"wrap": wrap, "broadcast": broadcast}, fh)
    finally:
        dist.destroy_process_group()


def main(argv: list[str]) -> int:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:
        mp.spawn(worker, args=(2, os.path.join(d, "pg"), argv[0]), nprocs=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
