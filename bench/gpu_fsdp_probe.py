"""What one GPU can tell about FSDP's memory (issue 11's open rows in bench/memory_reference.csv).

    python3 bench/gpu_fsdp_probe.py [--out bench/gpu_fsdp_results.csv] [--model llama-3.2-1b] [--seq 2048]
    python3 bench/gpu_fsdp_probe.py --dry-run --out /tmp/fsdp_dry.csv   # the CPU (gloo), tiny shapes

One rank (NCCL on the GPU, gloo on the CPU; at world size 1 FSDP runs NO_SHARD, with the same hooks), a
random-weight model built from the catalog config (bf16; nothing is downloaded), peft LoRA r=16 on every
linear, wrapped as transformers' Trainer wraps a LoRA model (peft's fsdp_auto_wrap_policy: each decoder layer
a frozen unit, each LoRA linear a unit of its own). Each variant runs in a process of its own, so one's cache
does not serve the next:
- around: reentrant checkpointing around each FSDP unit (transformers 4.40's call, checkpoint(layer.__call__));
- inside: reentrant checkpointing inside each unit (transformers 5's GradientCheckpointingLayer: what rankwise runs);
- around-nonreentrant: the control (non-reentrant checkpointing recomputes without re-entering the unit);
- inside-offload: inside, with FSDP's CPU offload of the parameters (CPUOffload(offload_params=True), as
  fsdp_qlora's --use_cpu_offload): what the allocator reserves above what is allocated at the peak, in decoder
  layers and by stream (the open question of aai-l2-70b-qlora-off-b2). GPU only: offload pins host memory.
For each: memory after wrapping (allocated, reserved: what FSDP's initialisation leaves cached, the open question of
aai-l2-7b-qlora-512) and the peak of the second training step (forward + backward). The difference of `around` over
`inside` is set beside rankwise's estimate of FSDP's hold (advisor/sharding.py checkpoint_hold_bytes), measured
on the CPU by tests/test_checkpoint_hold.py with this file's `measure`. Beside each, wrap_reserved_est_mib is what
advisor/fsdp_wrap.py replays for that wrap. A fourth process, qlora-start, loads the same model in 4 bits as
rankwise's worker does under FSDP (transformers' bitsandbytes quantizer, onto the GPU) and wraps it: the most
alive at once against the replay's `preloaded` start, the claim behind "a 70B QLoRA needs ~38 GiB per GPU to
start". On the CPU the peaks come from torch's profiler memory timeline (live tensors: no reserved figure).
About two minutes on one GPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# variant -> (checkpoint around the unit, reentrant, FSDP CPU offload of the parameters)
VARIANTS = {"around": (True, True, False), "inside": (False, True, False), "around-nonreentrant": (True, False, False),
            "inside-offload": (False, True, True)}
FIELDS = ("model", "variant", "seq", "batch", "device", "wrap_allocated_mib", "wrap_reserved_mib",
          "wrap_reserved_est_mib", "static_est_mib", "peak_allocated_mib", "peak_reserved_mib", "est_hold_mib",
          "around_minus_inside_mib", "layer_mib", "reserved_by_stream", "note")
GPU_ONLY = {"inside-offload": "FSDP's CPU offload pins host memory, which needs a GPU"}
GPU_ONLY_TIMEOUT_S = 120  # each GPU-only variant's own limit (a 1B's offload run: well under a minute expected)
MIB = 2 ** 20


def model_config(name: str, dry: bool) -> dict:
    from rankwise.advisor.catalog import lookup

    found = lookup(name)
    if found is None:
        raise SystemExit(f"{name}: not a catalog entry")
    cfg = {k: v for k, v in found[1].items() if k != "architectures"}
    if dry:  # the same architecture at toy size; four layers, so the hold (layers - 2 inputs) shows
        cfg.update(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16, vocab_size=512)
    return cfg


def measure(config: dict, around: bool, reentrant: bool, tokens, pg_file: Path, dtype_name: str = "bfloat16",
            offload: bool = False) -> dict:
    """Bytes after FSDP wraps the LoRA model and at the peak of a second forward + backward (one rank).
    `tokens`: input ids (batch x seq). GPU: torch.cuda's allocated/reserved; CPU: live bytes from the profiler."""
    import torch
    import torch.distributed as dist
    import torch.utils.checkpoint as ckpt
    from peft import LoraConfig, get_peft_model
    from peft.utils.other import fsdp_auto_wrap_policy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import CPUOffload, ShardingStrategy
    from transformers import AutoConfig, AutoModelForCausalLM

    class AroundUnit(torch.nn.Module):
        """transformers 4.40's LlamaModel.forward: checkpoint(decoder_layer.__call__, hidden_states, ...)."""

        def __init__(self, unit):
            super().__init__()
            self.unit = unit

        def forward(self, hidden_states, **kw):
            return ckpt.checkpoint(lambda h: self.unit(h, **kw), hidden_states, use_reentrant=reentrant)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{pg_file}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        cfg = AutoConfig.for_model(**{**config, "use_cache": False})
        # built on the CPU: FSDP moves each unit to the GPU as it wraps it (device_id), as for rank 0 of a
        # low-memory / cpu_ram_efficient_loading start, so the wrap figures include what that leaves cached
        model = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype_name))
        model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", lora_dropout=0.0))
        model.train()
        if not around:
            model.base_model.model.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": reentrant})
        model.enable_input_require_grads()
        layer = next(m for n, m in model.named_modules() if n.endswith("layers.0"))
        layer_bytes = sum(t.numel() * t.element_size() for t in layer.parameters())
        model = FSDP(model, auto_wrap_policy=fsdp_auto_wrap_policy(model), sharding_strategy=ShardingStrategy.FULL_SHARD,
                     device_id=device, cpu_offload=CPUOffload(offload_params=True) if offload else None)
        if around:
            layers = next(m for n, m in model.named_modules() if n.endswith("model.layers"))
            for i in range(len(layers)):
                layers[i] = AroundUnit(layers[i])
        tokens = tokens.to(device)
        out = {"device": torch.cuda.get_device_name() if cuda else "cpu", "layer_bytes": layer_bytes}

        def step():
            model(input_ids=tokens).logits.float().mean().backward()

        if cuda:
            torch.cuda.synchronize()
            out["wrap_allocated"], out["wrap_reserved"] = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
            step()  # lazy initialisation out of the way; its LoRA grads stay, static as rankwise counts them
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            out["peak_allocated"] = torch.cuda.max_memory_allocated() - base
            out["peak_reserved"] = torch.cuda.max_memory_reserved()
            out["peak_allocated_total"] = torch.cuda.max_memory_allocated()
            out["streams"] = reserved_by_stream(torch.cuda.memory_snapshot())
            stats = torch.cuda.memory_stats()
            out["inactive_split_peak"] = stats.get("inactive_split_bytes.all.peak")
            out["alloc_retries"] = stats.get("num_alloc_retries")
        else:
            from torch.profiler import ProfilerActivity, profile
            from torch.profiler._memory_profiler import MemoryProfileTimeline

            step()  # as on the GPU
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                         with_stack=True) as prof:
                step()
            _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
            live = [sum(s) for s in sizes]
            out["peak_allocated"] = max(live) - live[0]
        return out
    finally:
        dist.destroy_process_group()


def reserved_by_stream(segments: list[dict]) -> dict:
    """What the caching allocator holds, by the stream each segment belongs to (a block is only reused by an
    allocation on its own stream): {stream: [reserved, allocated, segments]}. FSDP's CPU offload copies each
    unit's parameters to the GPU on its pre-unshard stream (torch/distributed/fsdp/_flat_param.py pre_unshard,
    "created on the pre-unshard stream"), apart from the compute stream's pool."""
    out: dict[str, list[int]] = {}
    for seg in segments:
        row = out.setdefault(str(seg.get("stream", 0)), [0, 0, 0])
        row[0] += seg["total_size"]
        row[1] += seg["allocated_size"]
        row[2] += 1
    return out


def measure_qlora_start(config: dict, folder: Path, pg_file: Path) -> dict:
    """A 4-bit base as rankwise's worker loads it under FSDP (transformers' bitsandbytes quantizer onto the
    rank's GPU, no device_map given), then wrapped like `measure`: what the GPU holds after loading, the most it
    held while loading and wrapping, and what wrapping leaves reserved (advisor/fsdp_wrap.py's `preloaded`
    start). Random weights written to `folder` first, as a checkpoint would be; nothing downloaded."""
    import torch
    import torch.distributed as dist
    from peft import LoraConfig, get_peft_model
    from peft.utils.other import fsdp_auto_wrap_policy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import ShardingStrategy
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(**{**config, "use_cache": False}),
                                     dtype=torch.bfloat16).save_pretrained(folder)
    os.environ.update(ACCELERATE_USE_FSDP="true", FSDP_CPU_RAM_EFFICIENT_LOADING="true")
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{pg_file}", rank=0, world_size=1)
    try:
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_storage=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb, dtype=torch.bfloat16)
        out = {"device": torch.cuda.get_device_name() if cuda else "cpu",
               "loaded_on": sorted({p.device.type for p in model.parameters()})}
        if cuda:
            torch.cuda.synchronize()
            out["load_allocated"] = torch.cuda.memory_allocated()
        model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", lora_dropout=0.0))
        model = FSDP(model, auto_wrap_policy=fsdp_auto_wrap_policy(model), sharding_strategy=ShardingStrategy.FULL_SHARD,
                     device_id=device, use_orig_params=False)
        if cuda:
            torch.cuda.synchronize()
            out["wrap_allocated"], out["wrap_reserved"] = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
            out["peak_allocated"] = torch.cuda.max_memory_allocated()
        out["wrapped"] = type(model).__name__
        return out
    finally:
        dist.destroy_process_group()


def offload_note(g: dict) -> str:
    """The offload variant's question (bench/memory_reference.csv, aai-l2-70b-qlora-off-b2): the fsdp_qlora runs
    under CPU offload reserved 8.5-10.7 decoder layers' bytes more than rankwise estimates where a layer is
    0.26-0.40 GiB. Reserved above allocated at this peak, in layers, says whether one GPU shows it."""
    if g.get("peak_reserved") is None:
        return "dry run"
    extra = g["peak_reserved"] - g["peak_allocated_total"]
    return (f"reserved above allocated at the peak: {extra / MIB:.0f} MiB = {extra / g['layer_bytes']:.1f} decoder "
            f"layers of {g['layer_bytes'] / MIB:.0f} MiB (the fsdp_qlora offload rows: 8.5-10.7 layers unexplained); "
            f"inactive split blocks at most {(g.get('inactive_split_peak') or 0) / MIB:.0f} MiB, "
            f"{g.get('alloc_retries') or 0} allocation retries; by stream in reserved_by_stream "
            "[reserved, allocated, segments]")


def expected_qlora_start(config: dict) -> tuple[int, int]:
    """(the most alive, the reserve) fsdp_wrap.py replays for `measure_qlora_start`: rankwise's stack, one rank
    (NO_SHARD), the whole 4-bit model loaded first, no broadcast."""
    from rankwise.advisor import fsdp_wrap, memory
    from rankwise.advisor.memory import Plan
    from rankwise.advisor.model import spec_from_config

    spec = spec_from_config("probe", "local", config)
    plan = Plan("qlora", r=16, targets="all-linear", gpus=2, strategy="fsdp")
    units = memory.wrap_units(spec, plan, memory._check(spec, plan))
    got = fsdp_wrap.replay(units, 1, False, moves=False, broadcast=False, preloaded=True)
    return got.peak_allocated, got.peak_reserved


def expected(config: dict, tokens: int) -> tuple[int, int, int]:
    """(the static bytes rankwise counts after wrapping: weights and LoRA weights; the hold it adds around units;
    the reserve advisor/fsdp_wrap.py replays for this wrap: one rank, so NO_SHARD, moved from the CPU, no
    broadcast, fp32 adapters as peft makes them here)."""
    from dataclasses import replace

    from rankwise.advisor import fsdp_wrap, memory, sharding
    from rankwise.advisor.activations import stream_bytes
    from rankwise.advisor.memory import Plan, estimate
    from rankwise.advisor.model import spec_from_config
    from rankwise.advisor.plan import HF

    spec = spec_from_config("probe", "local", config)
    plan = Plan("lora", r=16, targets="all-linear", micro_batch=1, seq_len=tokens)
    est = estimate(spec, plan)
    static = sum(est.components.get(k, 0) for k in ("base_weights", "unquantized_weights", "lora_params"))
    hold_plan = Plan("lora", gpus=2, strategy="fsdp", reentrant=True, stack=replace(HF, checkpoint_wraps_unit=True))
    hold = sharding.checkpoint_hold_bytes(hold_plan, spec.num_layers, tokens * stream_bytes(plan) * spec.hidden_size)
    units = memory.wrap_units(spec, plan, memory._check(spec, plan))
    wrap = fsdp_wrap.replay(units, 1, False, broadcast=False).peak_reserved
    return static, hold, wrap


def one(args) -> int:
    """--variant: measure in this process, print JSON."""
    import torch

    config = model_config(args.model, args.dry_run)
    if args.variant == "qlora-start":
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure_qlora_start(config, Path(tmp) / "model", Path(tmp) / "pg")))
        return 0
    tokens = torch.randint(0, config["vocab_size"], (args.batch, args.seq))
    around, reentrant, offload = VARIANTS[args.variant]
    with tempfile.TemporaryDirectory() as tmp:
        got = measure(config, around, reentrant, tokens, Path(tmp) / "pg", offload=offload)
    print(json.dumps(got))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "gpu_fsdp_results.csv"))
    ap.add_argument("--model", default="llama-3.2-1b")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: the code paths, no GPU figures")
    ap.add_argument("--variant", choices=sorted(VARIANTS) + ["qlora-start"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.variant:
        return one(args)
    config = model_config(args.model, args.dry_run)
    tokens = args.batch * args.seq
    static, hold, wrap = expected(config, tokens)
    got = {}
    skipped = {v: f"not run: {why}" for v, why in GPU_ONLY.items() if args.dry_run}  # variant -> its row's note
    # the established variants first; the GPU-only question last, on a clock of its own, so that it cannot cost
    # their rows (bench/gpu_device.sh gives the whole probe 270 s)
    order = [v for v in VARIANTS if v not in GPU_ONLY] + ["qlora-start"] + list(GPU_ONLY)
    for variant in [v for v in order if v not in skipped]:
        cmd = [sys.executable, __file__, "--variant", variant, "--model", args.model, "--seq", str(args.seq),
               "--batch", str(args.batch)] + (["--dry-run"] if args.dry_run else [])
        limit = GPU_ONLY_TIMEOUT_S if variant in GPU_ONLY else 600
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
        except subprocess.TimeoutExpired:
            if variant not in GPU_ONLY:
                raise
            skipped[variant] = f"failed: timed out after {limit} s"
            continue
        if p.returncode != 0:
            print(f"{variant}: failed\n{p.stderr[-3000:]}", file=sys.stderr)
            if variant in GPU_ONLY:  # the new question must not cost the established rows: said in its row
                skipped[variant] = "failed: " + ((p.stderr.strip().splitlines() or ["no output"])[-1])[:300]
                continue
            return 1
        got[variant] = json.loads(p.stdout.strip().splitlines()[-1])
    start = got.pop("qlora-start")
    alive_est, reserve_est = expected_qlora_start(config)
    diff = got["around"]["peak_allocated"] - got["inside"]["peak_allocated"]
    mib = lambda b: "" if b is None else f"{b / MIB:.1f}"  # noqa: E731
    out = Path(args.out)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        for variant, g in got.items():
            w.writerow({"model": args.model, "variant": variant, "seq": args.seq, "batch": args.batch,
                        "device": g["device"], "wrap_allocated_mib": mib(g.get("wrap_allocated")),
                        "wrap_reserved_mib": mib(g.get("wrap_reserved")), "wrap_reserved_est_mib": mib(wrap),
                        "static_est_mib": mib(static),
                        "peak_allocated_mib": mib(g["peak_allocated"]), "peak_reserved_mib": mib(g.get("peak_reserved")),
                        "est_hold_mib": mib(hold if variant == "around" else 0),
                        "around_minus_inside_mib": mib(diff) if variant == "around" else "",
                        "layer_mib": mib(g.get("layer_bytes")),
                        "reserved_by_stream": json.dumps(g["streams"]) if g.get("streams") else "",
                        "note": (offload_note(g) if variant == "inside-offload" else
                                 "step peak above the memory allocated before it" if g["device"] != "cpu" else
                                 "dry run (CPU): live-tensor peak from the profiler, no reserved figure")})
        for variant, why in skipped.items():
            w.writerow({"model": args.model, "variant": variant, "seq": args.seq, "batch": args.batch,
                        "device": got.get("inside", {}).get("device", ""), "note": why})
        w.writerow({"model": args.model, "variant": "qlora-start", "device": start["device"],
                    "wrap_allocated_mib": mib(start.get("wrap_allocated")), "wrap_reserved_mib": mib(start.get("wrap_reserved")),
                    "wrap_reserved_est_mib": mib(reserve_est), "static_est_mib": mib(alive_est),
                    "peak_allocated_mib": mib(start.get("peak_allocated")),
                    "note": f"4-bit base loaded by transformers under FSDP onto {'/'.join(start['loaded_on'])} (after "
                            f"loading {mib(start.get('load_allocated')) or '-'} MiB allocated), then wrapped; "
                            "static_est_mib: the most alive at once that fsdp_wrap.py replays (preloaded), "
                            "against peak_allocated_mib"})
    if "inside-offload" in got:
        print(f"inside-offload: {offload_note(got['inside-offload'])}")
    print(f"around - inside: {mib(diff)} MiB measured, {mib(hold)} MiB estimated (FSDP's hold); after wrapping: "
          f"{mib(got['inside'].get('wrap_reserved')) or '-'} MiB reserved ({mib(wrap)} MiB replayed), "
          f"{mib(got['inside'].get('wrap_allocated')) or '-'} allocated, {mib(static)} MiB counted static; 4-bit start: "
          f"loaded on {'/'.join(start['loaded_on'])}, {mib(start.get('peak_allocated')) or '-'} MiB at most alive "
          f"({mib(alive_est)} MiB replayed) -> {out}")
    return 0


if __name__ == "__main__":
    code = main()
    if "torch" in sys.modules:  # a variant's process: its ~2 s interpreter teardown skipped, as the worker skips it
        from rankwise.trainer.process import end_without_teardown

        end_without_teardown(code)
    raise SystemExit(code)
