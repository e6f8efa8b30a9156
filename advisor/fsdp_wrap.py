"""What FSDP (v1) leaves reserved on the GPU from wrapping a model that rank 0 holds on the CPU.

A stack that loads the model on rank 0's CPU and lets FSDP put it on the GPU (`FSDP(..., device_id=...,
sync_module_states=True)`: Answer.AI's fsdp_qlora with its default `--low_memory`, accelerate's
`cpu_ram_efficient_loading`) runs, for every FSDP unit in wrapping order (each decoder layer's adapters,
then the layer, ..., the root last), in torch 2.2-2.13 FSDP1 (distributed/fsdp/_init_utils.py
`_init_param_handle_from_module`, _flat_param.py):
1. `_move_module_to_device`: each parameter the unit manages is copied to the GPU, one request a tensor
   (`param.data = param.to(device)`); a bitsandbytes 4-bit parameter brings its quant_state along, which
   stays there (module metadata, never flattened);
2. `_sync_module_params_and_buffers`: `dist._broadcast_coalesced` with PARAM_BROADCAST_BUCKET_SIZE
   (250 MiB): the tensors are packed into buckets, a bucket closing once it holds at least that much
   (c10d `compute_bucket_assignment_by_size`), each bucket flattened into a new tensor, at most two in
   flight (`max_in_flight = 2` in c10d comm.cpp `broadcast_coalesced`: the older one finishes, its
   flat tensor freed, before a third is made);
3. `FlatParamHandle.flatten_tensors`: `torch.cat` of the unit's tensors into one flat parameter, the
   originals still alive;
4. `shard()`: rank 0's chunk `.clone()`d (`_get_shard`) and the unsharded storage resized to 0
   (NO_SHARD keeps the flat parameter whole); with CPU offload the shard then moves to the CPU
   (`flat_param_to(cpu)`), its GPU block freed;
5. the originals are freed last, when `_init_param_handle_from_module` returns and drops its
   `managed_params` list (measured: `requests`).
Nothing calls `empty_cache()` between wrapping and training, so the freed blocks stay reserved on the
default stream (and `reset_peak_memory_stats` starts the peak from that reserve). Training's
default-stream tensors can reuse them (a large request splits any larger free block); the gathered
units (the unshard stream) and the reduce-scattered gradients (the post-backward stream) cannot, and
neither can requests of 1 MiB or less (the small pool). The caching allocator's rules are
allocator.py's; `Allocator` below replays them request by request.

Left out: the other ranks (in fsdp_qlora they materialise empty tensors on the GPU, `param_init_fn`/
`to_empty`, then receive the broadcast: no moved copies; under transformers 5 they read the weights too and
move them as rank 0 does; rank 0 is the one the published figures log, and never lower);
the CPU side; buffers (rotary inv_freq: bytes). No torch here.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field
from functools import lru_cache

from . import allocator
from .allocator import K_MIN_BLOCK, K_SMALL_SIZE

BROADCAST_BUCKET = 250 * 1024 * 1024  # torch/distributed/fsdp/_init_utils.py PARAM_BROADCAST_BUCKET_SIZE
BROADCAST_IN_FLIGHT = 2  # torch/csrc/distributed/c10d/comm.cpp broadcast_coalesced: max_in_flight


@dataclass
class _Block:
    segment: int
    offset: int
    size: int
    small: bool
    free: bool = False


@dataclass
class Allocator:
    """The caching allocator of one stream (CUDACachingAllocator.cpp), request by request: best fit among
    the cached free blocks of the same pool (`get_free_block`: the pool's blocks ordered by size, then
    address), split when the rest is worth keeping (`should_split`), else a new segment
    (`get_allocation_size`); a freed block merges with the free neighbours of its segment."""

    reserved: int = 0
    allocated: int = 0
    peak_reserved: int = 0
    peak_allocated: int = 0
    _segments: list[list[_Block]] = field(default_factory=list)
    _free: dict[bool, list[tuple[int, int, int]]] = field(default_factory=lambda: {True: [], False: []})
    _by_key: dict[tuple[int, int], _Block] = field(default_factory=dict)

    def _cache(self, block: _Block) -> None:
        block.free = True
        insort(self._free[block.small], (block.size, block.segment, block.offset))
        self._by_key[block.segment, block.offset] = block

    def _uncache(self, block: _Block) -> None:
        pool = self._free[block.small]
        del pool[bisect_left(pool, (block.size, block.segment, block.offset))]
        del self._by_key[block.segment, block.offset]
        block.free = False

    def malloc(self, size: int) -> _Block:
        size = allocator.block_bytes(size)
        small = size <= K_SMALL_SIZE
        pool = self._free[small]
        i = bisect_left(pool, (size, -1, -1))
        if i < len(pool):
            block = self._by_key[pool[i][1], pool[i][2]]
            self._uncache(block)
        else:
            seg = allocator.segment_bytes(size)
            block = _Block(len(self._segments), 0, seg, small)
            self._segments.append([block])
            self.reserved += seg
            self.peak_reserved = max(self.peak_reserved, self.reserved)
        rest = block.size - size
        split = rest >= K_MIN_BLOCK if small else rest > K_SMALL_SIZE  # should_split, max_split_size unlimited
        if split:
            seg = self._segments[block.segment]
            tail = _Block(block.segment, block.offset + size, rest, small)
            seg.insert(seg.index(block) + 1, tail)
            self._cache(tail)
            block.size = size
        self.allocated += block.size
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        return block

    def free(self, block: _Block) -> None:
        self.allocated -= block.size
        seg = self._segments[block.segment]
        i = seg.index(block)
        if i + 1 < len(seg) and seg[i + 1].free:  # merge with the free neighbours (try_merge_blocks)
            after = seg.pop(i + 1)
            self._uncache(after)
            block.size += after.size
        if i > 0 and seg[i - 1].free:
            before = seg[i - 1]
            self._uncache(before)
            before.size += seg.pop(i).size
            block = before
        self._cache(block)


@dataclass(frozen=True)
class Unit:
    """One FSDP unit as rank 0 wraps it: its parameters' bytes in order, and the bytes that move with
    them and stay (bitsandbytes quant_state tensors)."""

    tensors: tuple[int, ...]
    kept: tuple[int, ...] = ()

    @property
    def stored(self) -> int:
        """Every byte of the unit as stored: its parameters and the tensors kept beside them."""
        return sum(self.tensors) + sum(self.kept)


@dataclass(frozen=True)
class WrapReserve:
    peak_reserved: int  # the default stream's reserved high-water mark during wrapping
    allocated: int  # what wrapping leaves allocated (shards, quant states)
    peak_allocated: int  # the most alive at once while wrapping (the root unit's originals and flat parameter)

    @property
    def cached(self) -> int:
        """Reserved but free when training starts: blocks training's default-stream tensors may reuse."""
        return self.peak_reserved - self.allocated


def _buckets(tensors: tuple[int, ...], limit: int = BROADCAST_BUCKET) -> list[int]:
    """The flat tensors broadcast_coalesced makes, in bytes: a bucket closes once it holds at least `limit`
    bytes; a bucket of one tensor is that tensor's view (`flatten_dense_tensors`), 0 new bytes."""
    out, size, count = [], 0, 0
    for t in tensors:
        size, count = size + t, count + 1
        if size >= limit:
            out.append(size if count > 1 else 0)
            size, count = 0, 0
    return out + ([size if count > 1 else 0] if count else [])


Event = tuple[int, int]  # (request id, +bytes allocated | -bytes freed)


def broadcast_events(tensors: tuple[int, ...], bucket: int = BROADCAST_BUCKET, first_id: int = 0) -> list[Event]:
    """c10d broadcast_coalesced's requests for `tensors` (step 2): each bucket's flat tensor, at most
    BROADCAST_IN_FLIGHT alive; a one-tensor bucket is a view (no request)."""
    out: list[Event] = []
    in_flight: list[Event] = []
    for i, size in enumerate(_buckets(tensors, bucket), first_id):
        if len(in_flight) >= BROADCAST_IN_FLIGHT:
            j, n = in_flight.pop(0)
            if n:
                out.append((j, -n))
        if size:
            out.append((i, size))
        in_flight.append((i, size))
    return out + [(j, -n) for j, n in in_flight if n]


def requests(units: tuple[Unit, ...], shards: int, offload: bool, *, moves: bool = True, broadcast: bool = True,
             preloaded: bool = False, bucket: int = BROADCAST_BUCKET) -> list[Event]:
    """Rank 0's requests while FSDP wraps `units` (in wrapping order) over `shards` ranks, in order.
    `moves` False: the model is already on its device (no step 1); `preloaded`: it was loaded there before
    wrapping (every unit's tensors allocated first, as a loader that puts the model on the GPU does);
    `broadcast` False: sync_module_states off (no step 2).

    The originals are freed last: `_init_param_handle_from_module` keeps them in its `managed_params` list
    until it returns, after the shard is cut and the unsharded flat parameter freed (measured on the CPU:
    bench/fsdp_wrap_probe.py, tests/test_fsdp_wrap.py)."""
    out: list[Event] = []
    n = 0

    def malloc(size: int) -> int:
        nonlocal n
        n += 1
        if size:  # an empty tensor asks the allocator for nothing
            out.append((n, size))
        return n

    loaded = [[malloc(t) for t in u.tensors] + [malloc(t) for t in u.kept] for u in units] if preloaded else None
    for k, unit in enumerate(units):
        if loaded is not None:
            originals = loaded[k][:len(unit.tensors)]  # the quant states after them stay
        else:
            originals = [malloc(t) for t in unit.tensors] if moves else []
            if moves:
                for t in unit.kept:  # the quant states: they stay
                    malloc(t)
        if broadcast:
            out += broadcast_events(unit.tensors, bucket, n + 1)
            n += len(_buckets(unit.tensors, bucket))
        total = sum(unit.tensors)
        flat = malloc(total)
        if shards > 1:
            size = -(-total // shards)
            shard = malloc(size)  # rank 0's chunk, cloned
            out.append((flat, -total))
            if offload:
                out.append((shard, -size))
        elif offload:
            out.append((flat, -total))
        out += [(i, -t) for i, t in zip(originals, unit.tensors) if t]
    return [e for e in out if e[1]]  # nothing for an empty unit's flat parameter or shard


@lru_cache(maxsize=256)
def replay(units: tuple[Unit, ...], shards: int, offload: bool, *, moves: bool = True,
           broadcast: bool = True, preloaded: bool = False) -> WrapReserve:
    """The default stream's reserve after rank 0 wraps `units` over `shards` ranks (`requests`)."""
    mem = Allocator()
    blocks: dict[int, _Block] = {}
    for i, size in requests(units, shards, offload, moves=moves, broadcast=broadcast, preloaded=preloaded):
        if size > 0:
            blocks[i] = mem.malloc(size)
        else:
            mem.free(blocks.pop(i))
    return WrapReserve(mem.peak_reserved, mem.allocated, mem.peak_allocated)


def large_pool_share(plan, adapted, adapter_bytes: int, shards: int) -> float:
    """The share of the adapters' bytes whose per-rank shard is over 1 MiB (large-pool requests, which can
    reuse wrapping's cached blocks); the rest, and their optimizer states, come from the small pool."""
    sizes = [t for lin in adapted for t in (plan.r * lin.d_in, lin.d_out * plan.r)]
    total = sum(sizes)
    return sum(t for t in sizes if t * adapter_bytes / shards > K_SMALL_SIZE) / total if total else 0.0
