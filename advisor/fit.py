"""THE one way to ask "does this config fit this hardware".

`assess(spec, cfg, hw)` resolves everything a config leaves open against the hardware —
how many GPUs the run trains on, `method: auto`, `distributed.strategy: auto` — estimates
the peak per GPU and gives the verdict. `rankwise estimate`, `check`, `advise`, `presets`,
the Advice and Presets screens, the launch plan and the sweep all ask here, so they cannot
disagree. `suggest_fixes` says what would make a plan fit, each change re-assessed here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from . import memory
from .errors import RankwiseError
from .hardware import Hardware
from .lengths import DataLengths, at_lengths
from .methods import COMPARED, DEFAULT, LEANEST, METHODS
from .units import gib, human_count

if TYPE_CHECKING:
    from .config import RunConfig
    from .model import ModelSpec

VERDICTS = ("fits", "tight", "wont-fit", "no-gpu")
# A plan "fits" when its peak stays under 90% of the GPU: the last 10% is where what the
# estimate leaves out (the allocator's block order, a long batch) turns an estimate into an OOM
# (the cached blocks it counts: allocator.py). "tight" is the last 10%.
HEADROOM = 0.9
# No GPU to judge against: LoRA for models whose 16-bit weights (≤ 6 GiB at 3B) fit a
# workstation's RAM, else QLoRA.
CPU_LORA_MAX_PARAMS = 3e9
STRATEGY_NAMES = {"ddp": "DDP", "fsdp": "FSDP", "deepspeed": "DeepSpeed ZeRO-3"}


@dataclass(frozen=True)
class Fit:
    """A config judged on hardware: what will run, what it needs per GPU, and the verdict."""

    method: str  # resolved: method auto is never left here
    method_reason: str
    gpus: int  # GPUs the run trains on (per machine)
    estimate: memory.Estimate  # per GPU, for `method` and the resolved strategy
    verdict: str  # fits | tight | wont-fit | no-gpu
    gpu_bytes: int | None  # memory of the smallest GPU; None without a GPU
    available_gpus: int  # GPUs the hardware has (0: none found or declared)
    lengths: DataLengths | None = None  # the data's lengths, when the estimate is at them (advisor/lengths.py)

    @property
    def at_data(self) -> bool:
        """Estimated at the data's longest row, shorter than max_seq_len (assess limits `lengths` to the config's)."""
        return self.lengths is not None and self.lengths.shorter

    @property
    def strategy(self) -> str:
        """single | ddp | fsdp | deepspeed"""
        plan = self.estimate.plan
        return plan.strategy if plan.gpus > 1 or plan.sharded else "single"

    @property
    def peak_gib(self) -> float:
        return self.estimate.peak_gib

    @property
    def short_of_gpus(self) -> bool:
        """The config trains on more GPUs than the hardware has."""
        return self.available_gpus > 0 and self.gpus > self.available_gpus

    def to_dict(self) -> dict:
        return {**self.estimate.to_dict(), "method": self.method, "method_reason": self.method_reason,
                "strategy": self.strategy, "gpus": self.gpus, "fit": self.verdict, "gpu_bytes": self.gpu_bytes,
                "available_gpus": self.available_gpus, **({"lengths": self.lengths.to_dict()} if self.lengths else {})}


def verdict(peak_bytes: int, gpu_bytes: int | None) -> str:
    """fits (peak ≤ 90% of the GPU), tight (≤ 100%), wont-fit, or no-gpu."""
    if gpu_bytes is None:
        return "no-gpu"
    if peak_bytes <= HEADROOM * gpu_bytes:
        return "fits"
    return "tight" if peak_bytes <= gpu_bytes else "wont-fit"


def _gpu_bytes(hw: Hardware | None) -> int | None:
    return hw.gpu_bytes if hw is not None and hw.has_gpu else None


def run_gpus(cfg: "RunConfig", hw: Hardware | None) -> int:
    """How many GPUs (per machine) the run trains on.

    `distributed.gpus` when the config sets a count; `auto` = every GPU of the hardware. Left
    unset (one plain process), a declared machine (`--gpus N`, the Setup screen's plan) means
    "plan for these N GPUs"; on a probed machine it stays 1, as `rankwise train` runs it."""
    have = hw.gpu_count if hw is not None and hw.has_gpu else 0
    want = cfg.distributed.gpus
    if want == "auto":
        return max(1, have)
    if "gpus" in cfg.distributed.model_fields_set:
        return want
    return max(1, have) if hw is not None and hw.source == "declared" else want


def _estimate(spec: "ModelSpec", cfg: "RunConfig", method: str, gpus: int, gpu_bytes: int | None) -> memory.Estimate:
    """Per-GPU estimate with `distributed.strategy: auto` resolved: DDP when a full copy fits
    one GPU with headroom (or there is one GPU, or no size to judge), else FSDP."""
    plan = memory.Plan.from_config(cfg, method=method, gpus=gpus)
    if cfg.distributed.strategy != "auto":
        return memory.estimate(spec, plan)
    ddp = memory.estimate(spec, replace(plan, strategy="ddp"))
    if gpus == 1 or gpu_bytes is None or verdict(ddp.peak_bytes, gpu_bytes) == "fits":
        return ddp
    return memory.estimate(spec, replace(plan, strategy="fsdp"))


def _method(spec: "ModelSpec", cfg: "RunConfig", gpus: int, gpu_bytes: int | None) -> tuple[str, str]:
    """method auto → (name, why): the table's first method (LoRA) if its estimate fits with
    headroom, else the leanest (QLoRA). With no GPU: by model size."""
    first, lean = METHODS[DEFAULT], METHODS[LEANEST]
    if gpu_bytes is None:
        n = spec.total_params
        big = n > CPU_LORA_MAX_PARAMS
        pick = lean if big else first
        return pick.name, (
            f"no GPU found or declared: {pick.label}, as {human_count(n)} parameters in 16-bit "
            f"({gib(2 * n):.1f} GiB) are {'large' if big else 'small'}; plan for a GPU with --gpu-mem to check fit")
    have = gib(gpu_bytes)
    est = _estimate(spec, cfg, first.name, gpus, gpu_bytes)
    v = verdict(est.peak_bytes, gpu_bytes)
    if v == "fits":
        return first.name, f"{first.label}'s {first.base} estimate (~{est.peak_gib:.1f} GiB) fits {have:.0f} GiB with headroom"
    lean_est = _estimate(spec, cfg, lean.name, gpus, gpu_bytes)
    verb = "does not fit" if v == "wont-fit" else "leaves too little headroom on"
    return lean.name, (f"{first.label} (~{est.peak_gib:.1f} GiB) {verb} {have:.0f} GiB; {lean.label}'s {lean.base} "
                       f"base needs ~{lean_est.peak_gib:.1f} GiB ({verdict(lean_est.peak_bytes, gpu_bytes)})")


def assess(spec: "ModelSpec", cfg: "RunConfig", hw: Hardware | None, method: str | None = None,
           lengths: DataLengths | None = None) -> Fit:
    """`cfg` on `hw`: GPU count, method and strategy resolved, the per-GPU estimate, the verdict.

    `method` judges the config as if it named that method (the Advice screen shows LoRA and
    QLoRA side by side). `lengths`: the data's (forecast.data_lengths): the peak at its longest
    row where that is shorter than max_seq_len. Raises RankwiseError when the config cannot be
    estimated (e.g. target modules the model lacks)."""
    if lengths is not None:
        lengths = lengths.limited(cfg.train.max_seq_len)  # what the Fit says is about this config's max_seq_len
    cfg = at_lengths(cfg, lengths)
    gpus, gpu_bytes = run_gpus(cfg, hw), _gpu_bytes(hw)
    method = method or cfg.method
    if method == "auto":
        method, why = _method(spec, cfg, gpus, gpu_bytes)
    else:
        why = f"method {method} as configured"
    est = _estimate(spec, cfg, method, gpus, gpu_bytes)
    have = hw.gpu_count if hw is not None and hw.has_gpu else 0
    return Fit(method, why, gpus, est, verdict(est.peak_bytes, gpu_bytes), gpu_bytes, have, lengths)


def side_by_side(spec: "ModelSpec", cfg: "RunConfig", hw: Hardware | None,
                 lengths: DataLengths | None = None) -> dict[str, Fit]:
    """Every method judged with the same settings (the Advice screen's bars, `advise`'s table)."""
    return {m: assess(spec, cfg, hw, method=m, lengths=lengths) for m in COMPARED}


def with_gpus(hw: Hardware, n: int) -> Hardware:
    """The same machine with `n` GPUs of its first kind (to ask "would more GPUs help")."""
    first = hw.gpus[0]
    return replace(hw, gpus=tuple(replace(first, index=i) for i in range(n)), source="declared")


def suggest_fixes(spec: "ModelSpec", hw: Hardware | None, cfg: "RunConfig", method: str,
                  lengths: DataLengths | None = None) -> list[dict]:
    """Changes that would lower the peak, each re-assessed (at the data's `lengths` where given):
    {change, patch, peak_gib, fit, saves_gib}."""
    from .config import with_values

    def judged(c: "RunConfig", m: str, h: Hardware | None = hw) -> Fit:
        return assess(spec, c, h, method=m, lengths=lengths)

    base = judged(cfg, method)
    t = cfg.train
    seq_len = base.estimate.plan.seq_len  # the data's longest row where shorter: halving max_seq_len above it saves nothing
    tries: list[tuple[str, dict]] = []  # in order of preference where several are enough alone (_fit_fix)
    if t.standard_loss:  # the chunked loss: the same loss and gradients, no cost but a little time
        tries.append(("chunked loss: fp32 an eighth of the logits at a time (the same loss and gradients)",
                      {"train.loss": "chunked"}))
    if method != LEANEST:
        tries.append((f"switch to {METHODS[LEANEST].label} ({METHODS[LEANEST].base} base)", {"method": LEANEST}))
    if not t.grad_checkpointing:
        tries.append(("turn gradient checkpointing on", {"train.grad_checkpointing": True}))
    if t.micro_batch > 1:
        tries.append((f"micro-batch 1 with grad_accum {t.grad_accum * t.micro_batch} (same effective batch)",
                      {"train.micro_batch": 1, "train.grad_accum": t.grad_accum * t.micro_batch}))
    if not t.activation_offload:  # the same training, slower steps: before anything that changes what is trained
        tries.append(("offload the checkpointed activations to host RAM (slower steps)",
                      {"train.activation_offload": True}
                      | ({} if t.grad_checkpointing else {"train.grad_checkpointing": True})))
    for seq in (seq_len // 2, seq_len // 4):
        if seq >= 256:
            tries.append((f"shorter sequences: max_seq_len {seq}", {"train.max_seq_len": seq}))
    if cfg.resolved_optimizer(method) != "paged_adamw_8bit":
        tries.append(("paged 8-bit AdamW optimizer", {"train.optimizer": "paged_adamw_8bit"}))
    if cfg.lora.r > 8:
        tries.append((f"lower rank: r {cfg.lora.r // 2}", {"lora.r": cfg.lora.r // 2, "lora.alpha": cfg.lora.r}))
    if cfg.lora.target_modules != "minimal" and spec.target_set("minimal"):
        tries.append(("fewer target modules: minimal (q, v)", {"lora.target_modules": "minimal"}))

    # how the GPUs share the run: only where it is already sharded (2+ GPUs), with the strategy made explicit
    plan = base.estimate.plan
    offload: list[tuple[str, dict]] = []
    sharing: list[tuple[str, dict]] = []
    if plan.sharded:
        name, other = STRATEGY_NAMES[plan.strategy], "deepspeed" if plan.strategy == "fsdp" else "fsdp"
        if plan.offload != "params_and_optimizer":
            own = (f"; rankwise's own ZeRO-3 settings in place of {plan.ds_config}, whose offload is "
                   f"{plan.offload}") if plan.ds_config else ""
            offload.append((f"CPU offload of weights, gradients and optimizer states ({name}; slower steps, "
                            f"much more host RAM{own})",
                            {"distributed.strategy": plan.strategy, "distributed.offload": "params_and_optimizer"}
                            | ({"distributed.deepspeed_config": None} if plan.ds_config else {})))
        if plan.strategy == "fsdp" and plan.fsdp_sharding in ("shard_grad_op", "no_shard"):
            sharing.append(("FSDP full sharding (weights gathered per layer, not held from forward to backward)",
                            {"distributed.strategy": "fsdp", "distributed.fsdp_sharding": "full"}))
        sharing.append((f"{STRATEGY_NAMES[other]} instead of {name}"
                        + (" (needs the deepspeed package)" if other == "deepspeed" else ""),
                        {"distributed.strategy": other}))

    def row(change: str, patch: dict | None, f: Fit) -> dict:
        return {"change": change, "patch": patch, "peak_gib": round(f.peak_gib, 2), "fit": f.verdict,
                "saves_gib": round(base.peak_gib - f.peak_gib, 2)}

    out = []
    for change, patch in tries + offload + sharing:
        try:
            new = with_values(cfg, patch)
        except Exception:  # a patch the schema refuses is simply not a suggestion
            continue
        try:
            f = judged(new, patch.get("method", method))
        except RankwiseError:  # a combination the estimate refuses (e.g. offload params under FSDP)
            continue
        if patch.keys() <= {"distributed.strategy"} and f.peak_gib >= base.peak_gib:
            continue  # the other strategy is a suggestion only where it is lower
        out.append(row(change, patch, f))
    if hw is not None and hw.has_gpu:
        for n in (2, 4, 8):
            if n > base.gpus:
                more, n_hw = with_values(cfg, {"distributed.gpus": n}), with_gpus(hw, max(n, hw.gpu_count))
                f = judged(more, method, n_hw)
                how = (f"{STRATEGY_NAMES[f.estimate.plan.strategy]}: weights, gradients and optimizer states sharded"
                       if f.estimate.plan.sharded else
                       "DDP: each GPU holds a full copy; per-GPU memory does not shrink")
                out.append(row(f"{n} GPUs ({how})", None, f))
                if f.verdict == "fits" or not f.estimate.plan.sharded:
                    break
                # another method may shard where this one cannot: a quantized base is loaded whole onto every GPU
                # before it is sharded (an MoE's 16-bit experts with it), a 16-bit one from rank 0's CPU
                other = next(((m, g) for m in COMPARED if m != method
                              for g in (judged(with_values(more, {"method": m}), m, n_hw),)
                              if g.verdict == "fits" and g.estimate.plan.sharded), None)
                if other is not None:
                    m, g = other
                    out.append(row(f"{n} GPUs with {METHODS[m].label} ({STRATEGY_NAMES[g.estimate.plan.strategy]}: "
                                   "its base sharded as it loads)", None, g))  # hardware, as the row above
                    break
    # everything together, and the GPU size the plan needs as it is
    combined = {k: v for _, p in tries + offload for k, v in p.items()}  # offload keeps this strategy
    if "train.max_seq_len" in combined:
        combined["train.max_seq_len"] = max(256, seq_len // 2)
    if len(tries + offload) > 1:
        try:
            f = judged(with_values(cfg, combined), combined.get("method", method))
        except RankwiseError:  # a combination the estimate refuses, as above
            f = None
        if f is not None:
            out.append(row("all of: " + ", ".join(f"{k}={v}" for k, v in combined.items()), combined, f))
    if hw is not None and hw.has_gpu:
        out.append({"change": f"a GPU with at least {math.ceil(gib(base.estimate.peak_bytes / HEADROOM))} GiB "
                              "(this plan as it is, with 10% headroom)", "patch": None,
                    "peak_gib": round(base.peak_gib, 2), "fit": "fits", "saves_gib": 0.0})
    return out


def min_gpus(spec: "ModelSpec", cfg: "RunConfig", method: str, hw: Hardware | None,
             lengths: DataLengths | None = None) -> int | None:
    """The fewest GPUs (powers of two up to the planned count) on which the plan fits, with
    the configured strategy (auto: DDP on one GPU, else as resolved); None when none does."""
    from .config import with_values

    n = run_gpus(cfg, hw)
    if hw is None or not hw.has_gpu:
        return None
    for k in sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n} | {n}):
        f = assess(spec, with_values(cfg, {"distributed.gpus": k}), with_gpus(hw, k), method=method, lengths=lengths)
        if f.verdict == "fits":
            return k
    return None


def strategy_reason(spec: "ModelSpec", cfg: "RunConfig", f: Fit, hw: Hardware | None) -> str:
    """Why the GPUs are used the way `f` uses them (the advisor's words)."""
    n, gb = f.gpus, f.gpu_bytes
    strategy = f.estimate.plan.strategy
    name = STRATEGY_NAMES[strategy]
    if n == 1:
        return "one GPU: plain training, no distribution"
    if gb is None:
        return f"{name}: no GPU size to check the fit against"
    if strategy == "ddp":
        return (f"DDP: a full copy (~{f.peak_gib:.1f} GiB per GPU) fits one {gib(gb):.0f} GiB GPU, so each of the "
                f"{n} GPUs trains on its share of the batch (no sharding traffic)")
    full = memory.estimate(spec, replace(f.estimate.plan, strategy="ddp"))
    reason = (f"{name}: a full copy needs ~{full.peak_gib:.1f} GiB, sharded over {n} GPUs "
              f"~{f.peak_gib:.1f} GiB per GPU ({f.verdict})")
    plan = f.estimate.plan
    whole = ("; that is its start-up: the whole 4-bit model is loaded onto each GPU before {} it, so more GPUs do "
             "not lower it")
    if f.estimate.components.get("zero3_load"):  # the quantized base loaded whole before DeepSpeed partitions it
        reason += whole.format("DeepSpeed partitions")
    elif f.estimate.components.get("fsdp_wrap"):  # the start-up, not a step, sets that peak (memory._wrap)
        reason += (whole.format("FSDP shards") if plan.stack.fsdp_start(plan.descriptor.quantized) == "gpu" else
                   "; that is its start-up: FSDP builds each unit on the GPU as it shards it, the root unit "
                   "(embeddings and head) whole")
    if cfg.distributed.strategy != "auto" and verdict(full.peak_bytes, gb) == "fits":
        reason = f"{name} as configured: " + reason.split(": ", 1)[1]
    return reason
