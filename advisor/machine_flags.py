"""Red flags about the machine a run meets: GPU memory (the fit), GPU count and strategy, the GPU's
number formats, host RAM and disk. Rules over redflags.Context like the others in advisor/redflags.py
(which lists them in RULES); apart because they judge the hardware, not the LoRA settings.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import fit
from .config import with_values
from .finding import Finding
from .methods import LEANEST, METHODS
from .units import gib

if TYPE_CHECKING:  # only for the annotations: redflags imports these rules
    from .redflags import Context


def wont_fit(ctx: Context) -> Finding | None:
    if ctx.estimate is None:
        return _bounded_wont_fit(ctx)
    peak = ctx.estimate.peak_gib
    if ctx.fit == "no-gpu":
        return Finding("wont-fit", "info", f"no GPU to fit against: {METHODS[ctx.method].label} needs ~{peak:.1f} GiB",
                       "no GPU was found or declared, so fit cannot be checked",
                       "plan for a GPU with --gpu-mem 24GiB or --gpu A100-80GB")
    if ctx.fit == "fits":
        return None
    have = gib(ctx.hw.gpu_bytes)
    fix, patch = _fit_fix(ctx)
    need = f"{peak:.1f} GiB" + (f" (at the data's longest row, ~{ctx.lengths.longest:,} tokens)"  # not max_seq_len
                                if ctx.judged.at_data else "")
    if ctx.fit == "tight":
        return Finding("wont-fit", "warning", f"tight: ~{need} of {have:.1f} GiB per GPU",
                       "little headroom is left for the CUDA context, fragmentation and long batches: "
                       "an out-of-memory crash mid-run is likely", fix, patch)
    return Finding("wont-fit", "error", f"will not fit: ~{need} needed, {have:.1f} GiB per GPU",
                   f"the {METHODS[ctx.method].label} estimate exceeds the GPU's memory: the run would crash "
                   "with CUDA out of memory", fix, patch)


def _bounded_wont_fit(ctx: Context) -> Finding | None:
    """An unknown model whose name's size decides the fit (advisor/size_bound.py): tight or won't fit at both
    ends of the stand-ins' range."""
    from .size_bound import finding_text

    b = ctx.bound
    if b is None or b.verdict not in ("tight", "wont-fit"):
        return None
    lean = "" if ctx.method == LEANEST else f" or {METHODS[LEANEST].label}"
    fix = (f"use a larger GPU, more GPUs (--gpus N with FSDP){lean}; --fetch-config reads the model's config.json "
           "for an exact estimate and the changes that would make it fit")
    if b.verdict == "tight":
        return Finding("wont-fit", "warning", f"tight (approximate): {finding_text(b)}",
                       "little headroom is left for the CUDA context, fragmentation and long batches: "
                       "an out-of-memory crash mid-run is likely", fix)
    return Finding("wont-fit", "error", f"will not fit (approximate): {finding_text(b)}",
                   f"even the lowest {METHODS[ctx.method].label} estimate among models of this size exceeds the "
                   "GPU's memory: the run would crash with CUDA out of memory", fix)


def _fit_fix(ctx: Context) -> tuple[str, dict | None]:
    sugg = fit.suggest_fixes(ctx.spec, ctx.hw, ctx.cfg, ctx.method, ctx.lengths)
    changes = [s for s in sugg if s["patch"]]
    gpu = [s["change"] for s in sugg if not s["patch"] and s["change"].startswith("a GPU")]
    for level in ("fits", "tight"):
        good = [s for s in changes if s["fit"] == level]
        if good:
            best = min(good, key=lambda s: len(s["patch"]))  # the smallest change that is enough
            return f"{best['change']} (~{best['peak_gib']:.1f} GiB, {level})", best["patch"]
    tail = "; or " + gpu[0] if gpu else ""
    if changes:
        lowest = min(changes, key=lambda s: s["peak_gib"])
        return f"no config change is enough: {lowest['change']} still needs ~{lowest['peak_gib']:.1f} GiB{tail}", None
    return "use a larger GPU" + tail, None


def ddp_wont_fit(ctx: Context) -> Finding | None:
    """DDP keeps a full copy per GPU: more GPUs do not help a model that does not fit one."""
    if ctx.gpus < 2 or ctx.cfg.distributed.strategy != "ddp" or ctx.fit != "wont-fit":
        return None
    sharded = fit.assess(ctx.spec, with_values(ctx.cfg, {"distributed.strategy": "fsdp"}), ctx.hw, method=ctx.method,
                         lengths=ctx.lengths)
    if sharded.verdict != "fits":
        return None  # sharding does not rescue it either: wont-fit says what would
    return Finding("ddp-wont-fit", "error",
                   f"DDP on {ctx.gpus} GPUs: each holds a full copy (~{ctx.estimate.peak_gib:.1f} GiB), more than "
                   f"{gib(ctx.hw.gpu_bytes):.1f} GiB per GPU",
                   "DDP replicates the model on every GPU, so adding GPUs does not lower per-GPU memory; FSDP "
                   f"shards weights, gradients and optimizer states: ~{sharded.peak_gib:.1f} GiB per GPU here",
                   "set distributed.strategy to fsdp (or auto)", {"distributed.strategy": "fsdp"})


def too_few_gpus(ctx: Context) -> Finding | None:
    """The config trains on more GPUs than the machine has (detected or declared)."""
    j = ctx.judged
    if j is None or not j.short_of_gpus:
        return None
    return Finding("too-few-gpus", "error",
                   f"distributed.gpus = {j.gpus}, but the machine has {j.available_gpus} GPU"
                   f"{'s' if j.available_gpus != 1 else ''}",
                   "`rankwise train` refuses to start a run on GPUs that are not there; the estimate above is "
                   f"per GPU for {j.gpus} GPUs", "set distributed.gpus to auto (every GPU here), or plan for the "
                   "machine it will run on (--gpus N)", {"distributed.gpus": "auto"})


def bf16_unsupported(ctx: Context) -> Finding | None:
    if not (ctx.hw and ctx.hw.has_gpu) or ctx.hw.bf16:
        return None
    wants = [k for k, v in (("train.precision", ctx.cfg.train.precision),
                            ("quant.compute_dtype", ctx.cfg.quant.compute_dtype)) if v in ("bf16", "bfloat16")]
    if not wants:
        return None
    patch = {"train.precision": "fp16"} if "train.precision" in wants else {}
    if "quant.compute_dtype" in wants:
        patch["quant.compute_dtype"] = "float16"
    return Finding("bf16-unsupported", "error", f"{' and '.join(wants)} asks for bf16, which this GPU lacks",
                   "bf16 needs compute capability 8.0 or newer (Ampere); on older GPUs training fails "
                   "or falls back to slow emulation", "use fp16 (or auto, which picks it)", patch)


def fp16_on_bf16_gpu(ctx: Context) -> Finding | None:
    if ctx.cfg.train.precision == "fp16" and ctx.hw and ctx.hw.has_gpu and ctx.hw.bf16:
        return Finding("fp16-on-bf16-gpu", "info", "fp16 on a GPU that has bf16",
                       "bf16 has fp32's exponent range: no loss scaling, fewer overflow spikes",
                       "set train.precision to bf16 (or auto)", {"train.precision": "auto"})
    return None


def _host(ctx: Context):
    """The host plan (advisor/host_plan.py) when there is a model and a GPU machine's host to judge
    against. Without a GPU nothing is judged, as with the fit: the config is being planned for a
    GPU machine elsewhere (a CPU run's RAM is the estimate's peak, shown by `estimate`)."""
    if ctx.judged is None or ctx.spec is None or ctx.hw is None or ctx.hw.host is None or not ctx.hw.has_gpu:
        return None
    from .host_plan import plan_host

    return plan_host(ctx.spec, ctx.cfg, ctx.judged, ctx.hw)


def host_ram_short(ctx: Context) -> Finding | None:
    h = _host(ctx)
    if h is None or not (h.ram_short or h.merge_ram_short):
        return None
    have = gib(h.ram_available)
    if h.ram_short:
        worst = max(("loading", h.load_bytes), ("training", h.train_bytes), ("saving a checkpoint", h.save_bytes),
                    key=lambda kv: kv[1])
        fix = ("train with distributed.strategy ddp on a model that fits one GPU (FSDP gathers the full model to "
               "save), or use a machine with more RAM" if ctx.judged.estimate.plan.sharded else
               f"free host RAM or use a machine with at least {gib(h.ram_bytes):.0f} GiB; QLoRA or a smaller model "
               "lowers it")
        return Finding("host-ram-short", "error", f"host RAM: {worst[0]} needs ~{gib(worst[1]):.1f} GiB, "
                       f"{have:.1f} GiB available", "the kernel's OOM killer ends the run (no traceback, no end event)",
                       fix)
    return Finding("host-ram-short", "warning", f"host RAM: `rankwise merge` needs ~{gib(h.merge_bytes):.1f} GiB "
                   f"(the base in 16-bit on the CPU), {have:.1f} GiB available",
                   "training fits, but merging the adapter into the base here would be killed",
                   "keep the adapter (it loads on the base with peft) or merge on a machine with more RAM")


def disk_short(ctx: Context) -> Finding | None:
    h = _host(ctx)
    if h is None or not (h.disk_short or h.merged_disk_short):
        return None
    free = gib(h.disk_free)
    if h.disk_short:
        return Finding("disk-short", "error",
                       f"disk: {h.checkpoints} checkpoints of ~{gib(h.checkpoint_bytes):.2f} GiB and the adapter "
                       f"need ~{gib(h.disk_bytes):.1f} GiB, {free:.1f} GiB free at {h.disk_path}",
                       "a save on a full disk fails the run at that checkpoint",
                       "free disk, write runs elsewhere (output.dir), or keep fewer checkpoints "
                       "(train.save_total_limit 1)",
                       {"train.save_total_limit": 1} if ctx.cfg.train.save_total_limit > 1 else None)
    return Finding("disk-short", "warning", f"disk: a merged model needs ~{gib(h.merged_bytes):.1f} GiB more than "
                   f"the run's ~{gib(h.disk_bytes):.1f} GiB; {free:.1f} GiB free at {h.disk_path}",
                   "training fits, but `rankwise merge` would fill the disk",
                   "keep the adapter only, or merge to another disk")
