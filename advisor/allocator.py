"""What the GPU holds beyond the tensors a step allocates: the caching allocator's cached-but-free
blocks at the peak, and the communication buffers of a multi-GPU run. memory.py adds them to the
estimate; every count below is derived from the rules of the code that allocates, cited where used.

The PyTorch caching allocator (pytorch/pytorch c10/cuda/CUDACachingAllocator.cpp, constants in
c10/core/AllocatorConfig.h):
- a request is rounded up to a multiple of kMinBlockSize (512 B) (`round_size`); requests up to
  kSmallSize (1 MiB) come from a small pool carved out of kSmallBuffer (2 MiB) segments; 1-10 MiB
  (below kMinLargeAlloc) from kLargeBuffer (20 MiB) segments; larger ones get their own segment
  rounded up to kRoundLarge (2 MiB) (`get_allocation_size`);
- a free block is reused by the smallest cached block of the same stream that fits
  (`get_free_block`: `pool.blocks.lower_bound`, `(*it)->stream != p.stream()` refuses others'), split
  when the remainder is over kSmallSize (`should_split`) and the request is under max_split_size
  (default unlimited: `max_split_size_` = SIZE_MAX); freed neighbours in one segment merge, blocks of
  different segments never do; memory goes back to CUDA only on empty_cache() or on an OOM retry.
So the cache at the peak holds blocks freed earlier in the step that the requests around the peak
cannot use: smaller than every request made there, or owned by another stream. It is counted in
the peak (`allocator_cached`): an OOM retry releases only cached blocks that are whole free segments
(`release_cached_blocks` in `malloc`'s retry), and the backward splits the loss's freed blocks.

What a training step leaves cached at its peak (`cached_bytes`), two counted terms:
1. the loss's 16-bit logits: a stack that upcasts (`Stack.loss_upcast`) frees the 16-bit logits
   (tokens x vocab x 2 bytes) before the loss's fp32 backward peak (transformers' ForCausalLMLoss
   `logits.float()`; the frozen lm_head saves its input, not its output). Every vocab-sized request
   at that peak is fp32, twice as large, so the 16-bit block stays cached and unused: up to
   a x vocab bytes a token (`logits_hole_bytes`: none where the forward peak, with the 16-bit logits
   still alive, is the higher one).
2. one layer's forward temporaries under gradient checkpointing: checkpointed, a decoder layer's
   forward frees what it computes as it goes (the saved-tensor hooks keep nothing); its largest
   working set is the MLP's `down_proj(act(gate) * up)`: act(gate), up and their product alive
   together, 3 x tokens x intermediate in the stream's dtype. Those blocks stay cached for the next
   layer and the recompute in backward, and are too small for the loss's vocab-sized requests
   (checked: the intermediate width against a x vocab; when wider, they could host them and are
   not counted).
The high-water mark of reserved memory is the larger of (a) the loss's buffers + those cached blocks
and (b) one layer's recompute and backward (which can split the loss's freed fp32 blocks: a request
under max_split_size may split any larger block). What is cached at the allocated peak is that
high-water mark minus the allocated peak: at a loss peak, terms 1 + 2; at a recompute peak, what the
loss's set exceeds the recompute by (often 0).
Plus the pool floor, which no retry releases (`allocator_overhead`): every stream that allocates
keeps one partly used kLargeBuffer segment and one kSmallBuffer segment (1-10 MiB and <= 1 MiB
requests are carved from them). FSDP (v1) allocates on three more streams
(torch/distributed/fsdp/_runtime_utils.py `_init_streams`: `_unshard_stream` for all-gathers,
`_post_backward_stream` for reduce-scatters, `_pre_unshard_stream` for mixed-precision casts); their
blocks are reused only by their own stream.

FSDP's wrapping, where rank 0 holds the model on the CPU, is replayed request by request in fsdp_wrap.py
(through the same rules); what it leaves cached is reported apart from the peak (Estimate.releasable_bytes).

Left out: the order of allocations in address space (which freed neighbours merge), the recompute's
own temporaries inside one layer, the allocator's 512 B rounding (under 512 B a tensor) and the 2
MiB segment rounding (under 2 MiB a large tensor, a few hundred of them a step: well under 1 GiB);
DeepSpeed's own streams and buffers (ZeRO-3 is counted with FSDP's);
`PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`: one segment a stream that grows by mapping
kLargeBuffer/kSmallBuffer pages (`auto segment_size = pool->is_small ? kSmallBuffer : kLargeBuffer`)
and splits at any remainder >= 512 B; the holes above stay mapped until an OOM retry or
empty_cache() unmaps their pages, so max_memory_reserved is counted the same, but a run near the
card's limit gets them back page by page where the default allocator releases only whole unsplit
segments (so this estimate is an upper bound there). No torch here.
"""
from __future__ import annotations

from .plan import Plan

MIB = 1024 ** 2

MLP_LIVE = 3  # act(gate), up, act(gate) * up: the MLP's forward working set (term 2)

# c10/core/AllocatorConfig.h (torch 2.13): kSmallBuffer 2097152, kMinBlockSize 512, kSmallSize 1048576,
# kMinLargeAlloc 10485760, kRoundLarge 2097152; kLargeBuffer 20971520 (c10/cuda/CUDACachingAllocator.h).
K_MIN_BLOCK = 512
K_SMALL_SIZE = 1 * MIB
K_SMALL_BUFFER = 2 * MIB
K_LARGE_BUFFER = 20 * MIB
K_MIN_LARGE_ALLOC = 10 * MIB
K_ROUND_LARGE = 2 * MIB

# FSDP (v1) streams beside the default one: _unshard_stream, _post_backward_stream, _pre_unshard_stream
# (torch/distributed/fsdp/_runtime_utils.py `_init_streams`).
FSDP_STREAMS = 3

# NCCL's buffers for one channel's connection to one peer, one per protocol (NVIDIA/nccl
# src/init.cc @5067397: DEFAULT_BUFFSIZE 4 MiB for SIMPLE; DEFAULT_LL128_BUFFSIZE =
# NCCL_LL128_ELEMS_PER_THREAD 120 x NCCL_LL128_MAX_NTHREADS 640 x NCCL_STEPS 8 x 8 bytes;
# DEFAULT_LL_BUFFSIZE = NCCL_LL_LINES_PER_THREAD 8 x NCCL_LL_MAX_NTHREADS 512 x NCCL_STEPS 8 x
# 16-byte lines; src/include/device.h): 9.19 MiB.
NCCL_CONNECTION_BYTES = (1 << 22) + 120 * 640 * 8 * 8 + 8 * 512 * 8 * 16
# Channels: NCCL's topology search finds as many channels as the links' bandwidth carries, then
# doubles them, capped at MAXCHANNELS (src/graph/connect.cc ncclTopoPostset: "Duplication should be
# complete now: nChannels = std::min(MAXCHANNELS, nChannels*2)"; MAXCHANNELS 32, src/include/device.h).
# The search's result depends on the links (2-4 channels on PCIe, up to the cap on NVLink/NVSwitch);
# the estimate takes the cap, an upper bound, since what matters is whether it fits.
NCCL_MAX_CHANNELS = 32
# Peers a rank receives from in one channel: the ring's previous rank; the tree (all-reduce, DDP) adds
# its parent/children, one more on a single machine's chain (src/graph/trees.cc). Buffers are set up
# when an algorithm is first used (NCCL_RUNTIME_CONNECT=1 default, src/init.cc); FSDP's all-gather and
# reduce-scatter run on rings only.
RING_PEERS, TREE_PEERS = 1, 1


def segment_bytes(size: int) -> int:
    """Bytes cudaMalloc'd for a new segment that serves a `size`-byte request (`get_allocation_size`)."""
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return -(-size // K_ROUND_LARGE) * K_ROUND_LARGE


def block_bytes(size: int) -> int:
    """A request's block size (`round_size` without roundup_power2_divisions): a multiple of 512 B."""
    return max(K_MIN_BLOCK, -(-size // K_MIN_BLOCK) * K_MIN_BLOCK)


def logits_hole_bytes(plan: Plan, vocab: int) -> int:
    """Per token: what the freed 16-bit logits block adds to the loss's reserved high-water mark (term 1).

    A stack that upcasts frees the 16-bit logits (`a` bytes a logit) before the backward peak, or already
    in forward where it rebinds `logits = logits.float()` (`Stack.keeps_16bit_logits` False); every
    vocab-sized request after that is fp32 and larger, so the block stays cached beside them. Reserved
    at the loss is then max(forward + the hole if already freed, backward + the hole), against an
    allocated peak of max(forward, backward)."""
    a = plan.dtype_bytes
    if plan.loss != "standard" or not plan.stack.loss_upcast or a >= 4:
        return 0
    fwd, bwd = plan.stack.loss_phases(a)
    return (max(fwd + (0 if plan.stack.keeps_16bit_logits else a), bwd + a) - max(fwd, bwd)) * vocab


def cached_bytes(plan: Plan, tokens: int, vocab: int, logits: int, other: int, mlp_width: int) -> int:
    """Reserved minus allocated at the step's allocated peak (terms 1 and 2).

    `logits`: the loss's vocab-sized buffers at their peak; `other`: one layer's recompute and backward
    (the transient the loss competes with); `mlp_width`: bytes per token of one MLP intermediate tensor
    (stream bytes x intermediate size x experts a token)."""
    hole = tokens * logits_hole_bytes(plan, vocab)
    fits_loss = plan.loss == "standard" and mlp_width >= plan.dtype_bytes * vocab  # a layer block could host it
    # one layer's forward, checkpointed: act(gate), up and their product alive together in the MLP
    kept = MLP_LIVE * tokens * mlp_width if plan.grad_checkpointing and not fits_loss else 0
    loss_set = logits + hole + kept if logits else 0
    return max(loss_set, other) - max(logits, other)


def pool_floor_bytes(plan: Plan) -> int:
    """One partly used kLargeBuffer and one kSmallBuffer segment per stream that allocates."""
    streams = 1 + (FSDP_STREAMS if plan.sharded and plan.strategy == "fsdp" else 0)
    return streams * (K_LARGE_BUFFER + K_SMALL_BUFFER)


def nccl_bytes(plan: Plan) -> int:
    """NCCL's buffers on each GPU of a multi-GPU run (outside PyTorch's allocator: nvidia-smi only)."""
    if plan.gpus < 2:
        return 0
    peers = RING_PEERS + (0 if plan.sharded else TREE_PEERS)  # DDP's all-reduce may pick the tree
    return NCCL_MAX_CHANNELS * peers * NCCL_CONNECTION_BYTES


def fsdp_grad_bytes(plan: Plan, unit_trainable: int) -> int:
    """FSDP's gradient buffers for one trainable unit while it reduce-scatters: the unsharded gradient
    in the compute dtype and the 1/N output it is scattered into (torch/distributed/fsdp/
    _runtime_utils.py `_get_reduce_scatter_tensors`: `padded_unsharded_grad`, `new_sharded_grad =
    torch.empty_like(chunks[0])`). PEFT's FSDP wrap puts the adapters in units of their own
    (peft utils/other.py `fsdp_auto_wrap_policy`), so a unit's trainables are one layer's LoRA weights."""
    a = plan.dtype_bytes
    return unit_trainable * a + -(-unit_trainable * a // plan.gpus)


def describe(plan: Plan) -> str:
    """The assumption line for the estimate."""
    out = ("allocator: cached-but-free blocks counted from the caching allocator's rules (best fit per stream, "
           "split only above 1 MiB, whole segments per large request): the freed 16-bit logits under an fp32 loss, "
           "one layer's freed forward blocks under checkpointing, one 20 MiB + one 2 MiB segment per stream")
    if plan.gpus > 1:
        out += (f"; NCCL buffers {NCCL_CONNECTION_BYTES / MIB:.1f} MiB per channel and peer, at NCCL's cap of "
                f"{NCCL_MAX_CHANNELS} channels (an upper bound: PCIe machines use fewer), outside PyTorch's "
                "allocator (nvidia-smi shows them, max_memory_reserved does not)")
    return out
