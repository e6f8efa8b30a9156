"""What FSDP's wrapping leaves reserved (advisor/fsdp_wrap.py): the caching allocator's rules by hand, FSDP's
request order measured on the CPU against torch itself, and what the estimate adds for a stack that wraps a
CPU-held model on the GPU."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from train_helpers import bench_module

from rankwise.advisor import fsdp_wrap, memory, sharding
from rankwise.advisor.fsdp_wrap import Allocator, Unit
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model, spec_from_config
from rankwise.advisor.plan import HF

ROOT = Path(__file__).resolve().parent.parent
MIB = 2 ** 20


# Answer.AI's fsdp_qlora (bench/stacks.py): pure bf16, every unit wrapped from rank 0's CPU
AAI = bench_module("stacks").STACKS["fsdp-qlora"]


# ---------------------------------------------------------------- the caching allocator, request by request

def test_requests_of_1_to_10_mib_share_a_20_mib_segment():
    mem = Allocator()
    mem.malloc(8 * MIB)
    mem.malloc(8 * MIB)
    assert mem.reserved == 20 * MIB and mem.allocated == 16 * MIB
    mem.malloc(8 * MIB)  # 4 MiB left: a new segment
    assert mem.reserved == 40 * MIB


def test_small_requests_never_take_large_blocks():
    mem = Allocator()
    big = mem.malloc(30 * MIB)
    mem.free(big)
    mem.malloc(100 * 1024)
    assert mem.reserved == 30 * MIB + 2 * MIB  # a 2 MiB small segment beside the cached 30 MiB block


def test_best_fit_splits_and_a_rest_of_1_mib_or_less_stays_with_the_block():
    mem = Allocator()
    a, b = mem.malloc(50 * MIB), mem.malloc(30 * MIB)
    mem.free(a)
    mem.free(b)
    c = mem.malloc(29 * MIB)  # the 30 MiB block is the best fit; its 1 MiB rest is not split off
    assert c.size == 30 * MIB and mem.reserved == 80 * MIB
    d = mem.malloc(20 * MIB)  # splits the 50 MiB block: 30 MiB stay cached
    assert d.size == 20 * MIB
    mem.malloc(30 * MIB)
    assert mem.reserved == 80 * MIB


def test_freed_neighbours_merge_but_segments_do_not():
    mem = Allocator()
    whole = mem.malloc(40 * MIB)
    mem.free(whole)
    a, b = mem.malloc(20 * MIB), mem.malloc(20 * MIB)  # both from the one segment
    assert mem.reserved == 40 * MIB
    mem.free(a)
    mem.free(b)
    mem.malloc(40 * MIB)  # merged again: no new segment
    assert mem.reserved == 40 * MIB
    other = mem.malloc(40 * MIB)
    mem.free(other)
    mem.malloc(60 * MIB)  # two free 40 MiB segments do not make one 60 MiB block
    assert mem.reserved == 140 * MIB


# ---------------------------------------------------------------- FSDP's requests

def test_broadcast_buckets_close_at_the_limit_and_one_tensor_is_a_view():
    assert fsdp_wrap._buckets((1000, 2400, 800, 600, 4000, 200, 300), 3000) == [3400, 5400, 500]
    assert fsdp_wrap._buckets((4000, 100, 50), 3000) == [0, 150]  # 4000 alone: its own view
    # two in flight: the first freed before the third is made
    assert [n for _, n in fsdp_wrap.broadcast_events((1000, 2400, 800, 600, 4000, 200, 300), 3000)] == \
        [3400, 5400, -3400, 500, -5400, -500]


def test_each_unit_moves_broadcasts_flattens_shards_then_frees_its_originals():
    got = [n for _, n in fsdp_wrap.requests((Unit((10, 20)), Unit((30,))), 2, offload=False, bucket=1000)]
    assert got == [10, 20, 30, -30, 30, 15, -30, -10, -20,  # moved, one bucket of two, flat, shard, frees
                   30, 30, 15, -30, -30]  # a one-tensor unit: its bucket is a view
    offloaded = [n for _, n in fsdp_wrap.requests((Unit((10, 20)),), 2, offload=True, broadcast=False)]
    assert offloaded == [10, 20, 30, 15, -30, -15, -10, -20]  # the shard goes to the CPU
    no_shard = [n for _, n in fsdp_wrap.requests((Unit((10, 20)),), 1, offload=False, broadcast=False)]
    assert no_shard == [10, 20, 30, -10, -20]  # NO_SHARD keeps the flat parameter
    # loaded onto the GPU before wrapping: every unit's tensors (and quant states, which stay) first
    preloaded = [n for _, n in fsdp_wrap.requests((Unit((10, 20), (5,)), Unit((30,))), 2, offload=False,
                                                  moves=False, preloaded=True, bucket=1000)]
    assert preloaded == [10, 20, 5, 30, 30, -30, 30, 15, -30, -10, -20, 30, 15, -30, -30]


def _runs_sorted(events: list[int]) -> list[int]:
    """Frees in a row sorted: the moment the originals go is fixed, the order among them is the collector's."""
    out, run = [], []
    for n in events + [0]:
        if n < 0:
            run.append(n)
            continue
        out += sorted(run) + ([n] if n else [])
        run = []
    return out


@pytest.mark.slow
def test_torch_wraps_in_the_order_replayed(tmp_path):
    """bench/fsdp_wrap_probe.py: two gloo ranks on the CPU wrap a 2-layer Llama with peft LoRA on every linear
    as fsdp_qlora / accelerate wrap it. Rank 0's allocations and frees are, tensor for tensor, what
    `requests` says for rankwise's own description of that model's units (no moves on the CPU, and
    sync_module_states needs a GPU); c10d's broadcast buckets are checked on their own."""
    out = tmp_path / "events.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "fsdp_wrap_probe.py"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    measured = json.loads(out.read_text())
    probe = bench_module("fsdp_wrap_probe")
    spec = spec_from_config("probe", "local", probe.CONFIG)
    plan = Plan("lora", r=probe.RANK, targets="all-linear", gpus=2, strategy="fsdp", stack=AAI)
    units = memory.wrap_units(spec, plan, memory._check(spec, plan))
    # on the CPU the originals are where FSDP wants them: each unit's requests without its moves (but with
    # the originals' frees, which come from FSDP letting go of them)
    expected = [n for u in units for _, n in fsdp_wrap.requests((u,), 2, offload=False, broadcast=False)[len(u.tensors):]]
    assert len(units) == probe.CONFIG["num_hidden_layers"] * (2 * 7 + 1) + 1
    assert _runs_sorted(measured["wrap"]) == _runs_sorted(expected)
    assert measured["broadcast"] == [n for _, n in fsdp_wrap.broadcast_events(probe.BROADCAST, probe.BUCKET)]


def test_an_empty_tensor_asks_for_nothing():
    """A unit with an empty tensor (a root with nothing beside its embeddings) makes no request for it: without the
    broadcast (which flattens it with the others into one bucket) its wrap is that of the unit without it."""
    empty = (fsdp_wrap.Unit((4096, 0)), fsdp_wrap.Unit((0, 2 * 2 ** 20, 2 ** 20)))
    plain = (fsdp_wrap.Unit((4096,)), fsdp_wrap.Unit((2 * 2 ** 20, 2 ** 20)))
    for shards, offload in ((2, False), (1, True), (4, True)):
        assert all(n for _, n in fsdp_wrap.requests(empty, shards, offload))
        assert fsdp_wrap.replay(empty, shards, offload).peak_allocated >= fsdp_wrap.replay(plain, shards,
                                                                                           offload).peak_allocated
        got = [n for _, n in fsdp_wrap.requests(empty, shards, offload, broadcast=False)]
        assert got == [n for _, n in fsdp_wrap.requests(plain, shards, offload, broadcast=False)]
        assert (fsdp_wrap.replay(empty, shards, offload, broadcast=False)
                == fsdp_wrap.replay(plain, shards, offload, broadcast=False))


# ---------------------------------------------------------------- the estimate

@pytest.fixture(scope="module")
def l2():
    return load_model("llama-2-7b")


def _aai(method: str, seq: int, **kw) -> Plan:
    return Plan(method, r=64, targets=("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
                micro_batch=1, seq_len=seq, gpus=2, strategy="fsdp", reentrant=True, pure_bf16=True,
                kbit_upcast=False, stack=AAI, **kw)


def test_a_short_step_leaves_wrappings_cache_reserved_but_not_in_the_peak(l2):
    plan = _aai("lora", 512)
    got = estimate(l2, plan)
    adapted = memory._check(l2, plan)
    wrap = fsdp_wrap.replay(memory.wrap_units(l2, plan, adapted), 2, False)
    reused = sum(got.components.get(k, 0) for k in memory.REUSES_WRAP_CACHE)  # the adapters' shards are small-pool
    assert got.releasable_bytes == wrap.cached - reused > 0
    assert any("max_memory_reserved reads" in a for a in got.assumptions)
    without = estimate(l2, replace(plan, stack=replace(AAI, fsdp_start_16bit="none")))
    # handed back on an OOM retry (whole free segments): max_memory_reserved shows it, the peak does not
    assert got.peak_bytes == without.peak_bytes == sum(got.components.values())
    assert got.allocated_bytes > got.transients["fsdp_wrap"]  # a step that holds more than wrapping sets it
    assert got.reserved_bytes - without.reserved_bytes == got.releasable_bytes
    assert got.allocated_bytes == without.allocated_bytes
    assert got.to_dict()["releasable_gib"] == round(got.releasable_bytes / 2 ** 30, 3)


def test_the_reserve_barely_moves_with_length_while_allocated_grows(l2):
    """Answer.AI's post: reserved 'roughly the same' at 512 and 2,048 tokens (10.24 vs 10.22 GiB) while the
    allocated peak grows (8.28 to 9.16 GiB): the longer step takes back what the shorter leaves cached."""
    short, long = estimate(l2, _aai("lora", 512)), estimate(l2, _aai("lora", 2048))
    assert long.allocated_bytes - short.allocated_bytes > 0.5 * 2 ** 30
    assert abs(long.reserved_bytes - short.reserved_bytes) < 0.02 * short.reserved_bytes
    assert short.releasable_bytes > long.releasable_bytes


def test_wrapping_sets_the_peak_when_the_step_is_smaller():
    """Llama 3.1 8B over 8 GPUs with its shards offloaded: at 512 tokens the root unit's wrapping (1 GiB
    embeddings + 1 GiB lm_head moved, then their 2 GiB flat parameter) holds more than a training step."""
    spec = load_model("llama-3.1-8b")
    got = estimate(spec, Plan("lora", gpus=8, strategy="fsdp", seq_len=512, offload="params_and_optimizer"))
    outside = got.components["cuda_context"] + got.components["nccl_buffers"]
    assert got.components["fsdp_wrap"] > 0
    assert got.peak_bytes == got.transients["fsdp_wrap"] + outside == sum(got.components.values())
    assert got.transients["fsdp_wrap"] >= 4 * spec.vocab_size * spec.hidden_size  # two 16-bit heads, twice
    assert any("(the peak)" in a for a in got.assumptions)


def test_wrapping_peaks_at_the_root_unit_and_is_counted_by_the_allocators_rules(l2):
    """QLoRA 7B on 2 GPUs: the NF4 layers shard to ~0.75 GiB; the root (embeddings + lm_head, 16-bit) is
    moved, flattened into a 500 MiB flat parameter and sharded while its originals are alive."""
    plan = _aai("qlora", 512)
    adapted = memory._check(l2, plan)
    wrap = fsdp_wrap.replay(memory.wrap_units(l2, plan, adapted), 2, False)
    head = l2.vocab_size * l2.hidden_size * 2  # 250 MiB
    assert wrap.peak_reserved - wrap.allocated >= 2 * head  # the root's moved originals and flat, cached
    est = estimate(l2, plan)
    static = sum(est.components.get(k, 0) for k in ("base_weights", "quant_constants", "unquantized_weights",
                                                    "lora_params"))
    assert abs(wrap.allocated - static) < 0.1 * static  # what wrapping leaves allocated is the sharded static part


@pytest.mark.parametrize("change", [dict(strategy="deepspeed"), dict(gpus=1, strategy="ddp"),
                                    dict(stack=replace(AAI, fsdp_start_quantized="none"))])
def test_no_wrap_cache_where_the_path_is_not_replayed(l2, change):
    """ZeRO-3 (its own partitioning), one GPU, and a stack whose start is not known."""
    plan = replace(_aai("qlora", 512), **{**change, "stack": change.get("stack", AAI)})
    got = estimate(l2, plan)
    assert got.releasable_bytes == 0 and "fsdp_wrap" not in got.transients


def test_rankwise_loads_a_quantized_base_whole_onto_each_gpu_before_fsdp_shards_it():
    """transformers 5.24 loads a 4-bit base onto the current GPU (its bitsandbytes quantizer's device_map) on
    every rank, and no longer moves it to the CPU under FSDP as 4.4x did: at start-up each GPU holds the whole
    quantized model, more than a 70B step over two GPUs holds."""
    spec = load_model("llama-3.1-70b")
    plan = Plan("qlora", gpus=2, strategy="fsdp", seq_len=2048)
    got = estimate(spec, plan)
    whole = sum(u.stored for u in memory.wrap_units(spec, plan, memory._check(spec, plan)))
    assert got.transients["fsdp_wrap"] >= whole > 35 * 2 ** 30
    assert got.allocated_bytes == got.transients["fsdp_wrap"]  # max_memory_allocated over the run reads the start-up
    assert got.components["fsdp_wrap"] > 0 and got.peak_bytes == sum(got.components.values())
    assert any("loads the quantized base whole onto every GPU" in a for a in got.assumptions)
    four_40 = estimate(spec, replace(plan, stack=bench_module("stacks").STACKS["hf-4.40"]))
    assert four_40.peak_bytes < whole  # 4.40 parked it on rank 0's CPU: FSDP moved it unit by unit
    # and the advice says why more GPUs do not help
    from rankwise.advisor.config import RunConfig, with_values
    from rankwise.advisor.fit import assess, strategy_reason
    from rankwise.advisor.hardware import planned

    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-70b", "method": "qlora", "distributed.gpus": 2,
                                    "distributed.strategy": "fsdp"})
    hw = planned("24GiB", 2)
    judged = assess(spec, cfg, hw)
    assert judged.verdict == "wont-fit"
    assert "the whole 4-bit model is loaded onto each GPU" in strategy_reason(spec, cfg, judged, hw)


def test_rankwise_wraps_a_16_bit_base_from_the_cpu(l2):
    """trainer/launch.py's cpu_ram_efficient_loading: a short 16-bit LoRA step under FSDP keeps the cache."""
    plan = Plan("lora", r=16, targets="all-linear", micro_batch=1, seq_len=256, gpus=2, strategy="fsdp")
    assert estimate(l2, plan).releasable_bytes > 0


@pytest.mark.parametrize("name", ["llama-3.1-8b", "llama-3.2-1b", "qwen2.5-7b", "gemma-2-9b", "mixtral-8x7b",
                                  "phi-3-mini"])
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_the_units_hold_what_the_estimate_gathers(name, method):
    """The replay's units add up to the estimate's own unit sizes (memory.unit_bytes), across layouts: tied
    heads, q/k/v biases, Gemma's four norms a layer, Mixtral's fused expert tensors (one a layer, every expert)."""
    spec = load_model(name)
    plan = Plan(method, targets="all-linear", gpus=2, strategy="fsdp")
    units = memory.wrap_units(spec, plan, memory._check(spec, plan))
    layer, root = memory.unit_bytes(spec, plan)
    frozen = units[len(units) // spec.num_layers - 1]  # each layer: its adapters' units, then the layer
    assert sum(frozen.tensors) == layer and sum(units[-1].tensors) == root
    assert sum(len(u.tensors) == 1 for u in units[:-1]) == 2 * sum(
        l.count for l in memory._check(spec, plan) if l.family != "lm_head")  # lora_A, lora_B per adapted linear


def test_the_replay_is_cheap_enough_for_the_fit_search(l2):
    """80 layers: a few thousand requests; cached per (units, shards, offload)."""
    spec = load_model("llama-3.1-70b")
    plan = replace(_aai("qlora", 2048), gpus=8)
    units = memory.wrap_units(spec, plan, memory._check(spec, plan))
    assert len(fsdp_wrap.requests(units, 8, False)) < 20_000
    assert fsdp_wrap.replay(units, 8, False) is fsdp_wrap.replay(units, 8, False)
    assert sharding.shards(plan) == 8
