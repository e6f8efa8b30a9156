"""The recommender: model + hardware + task (+ budget, data size) → a RunConfig with reasons.

`advise(...)` picks the rank from the task's band and the data size (capped by a
parameter budget), LoRA or QLoRA from the memory estimator, then alpha, targets, dropout,
learning rate, schedule and batch shape. Every value it sets carries a reason; when
nothing fits it recommends nothing and says which change would make it fit, by how much.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import fit, memory
from .config import RunConfig, with_values, written
from .errors import RankwiseError
from .hardware import Hardware
from .methods import LEANEST, METHODS, lr_reason
from .model import ModelSpec
from .redflags import check
from .time import TEMPLATE_TOKENS
from .units import gib, human_count

# Rank bands by how far the task moves the model's behaviour. The LoRA paper (Hu et al.
# 2021, §7.2) found r = 1–8 enough for GLUE-style adaptation; QLoRA (Dettmers et al. 2023)
# used r = 64 on all linears for instruction tuning; code/maths/domain continued training
# needs the higher ranks (Biderman et al. 2024, "LoRA Learns Less and Forgets Less").
BANDS: dict[str, tuple[int, int]] = {
    "classification": (4, 8), "format": (4, 8), "style": (4, 8),
    "instruction": (16, 32), "chat": (16, 32),
    "domain": (64, 128), "code": (64, 128), "reasoning": (64, 128),
}
NEW_KNOWLEDGE = ("domain", "code", "reasoning")
LARGE_DATA = 10_000  # rows from which the upper end of the band pays off
SMALL_DATA = 1_000  # below: more dropout, more epochs
HUGE_DATA = 50_000  # above: dropout can go to 0
TARGET_BATCH = 16  # effective batch; 16–32 is what LoRA recipes use (QLoRA paper: 16)
MICRO_BATCHES = (16, 8, 4, 2, 1)
CHARS_PER_TOKEN = 4  # rough English average for BPE tokenizers (OpenAI tokenizer docs)


@dataclass(frozen=True)
class Advice:
    method: str | None  # lora | qlora | None when nothing fits
    config: RunConfig
    estimate: memory.Estimate | None  # for the chosen method (for QLoRA when nothing fits)
    estimates: dict[str, memory.Estimate]  # lora and qlora side by side, same settings
    fits: dict[str, str]  # method → fits | tight | wont-fit | no-gpu
    reasons: dict[str, str]  # dotted RunConfig field → why this value
    findings: list = field(default_factory=list)  # redflags.Finding
    suggestions: list[dict] = field(default_factory=list)  # what would make it fit
    budget_arithmetic: str | None = None
    first_sweep: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    strategy: dict | None = None  # {strategy, gpus, min_gpus, peak_gib, reason} (see choose_strategy)

    def to_dict(self) -> dict:
        est = dict(self.estimate.to_dict(), fit=self.fits.get(self.estimate.plan.method)) if self.estimate else None
        return {
            "method": self.method,
            "config": self.config.model_dump(mode="json"),
            "estimate": est,
            "estimates": {m: dict(e.to_dict(), fit=self.fits[m]) for m, e in self.estimates.items()},
            "reasons": dict(self.reasons),
            "findings": [f.to_dict() for f in self.findings],
            "suggestions": list(self.suggestions),
            "budget_arithmetic": self.budget_arithmetic,
            "first_sweep": list(self.first_sweep),
            "notes": list(self.notes),
            "strategy": dict(self.strategy) if self.strategy else None,
        }


# ------------------------------------------------------------------ method and fit


def _gpu_bytes(hw: Hardware | None) -> int | None:
    return hw.gpu_bytes if hw and hw.has_gpu else None


def _side_by_side(spec: ModelSpec, cfg: RunConfig, hw: Hardware | None) -> tuple[dict, dict]:
    judged = fit.side_by_side(spec, cfg, hw)
    return {m: f.estimate for m, f in judged.items()}, {m: f.verdict for m, f in judged.items()}


def choose_strategy(spec: ModelSpec, cfg: RunConfig, method: str, hw: Hardware | None) -> dict:
    """How to use the GPUs: {strategy, gpus, min_gpus, peak_gib, fit, reason}.

    DDP when a full copy fits one GPU with headroom (each GPU trains on its share of the
    batch); else FSDP (weights, gradients and optimizer states sharded). `gpus` is every GPU
    planned for; `min_gpus` the fewest that fit (None when even all of them do not)."""
    f = fit.assess(spec, cfg, hw, method=method)
    minimum = fit.min_gpus(spec, cfg, method, hw)
    reason = fit.strategy_reason(spec, cfg, f, hw)
    n = f.gpus
    if n > 1 and minimum is not None and minimum < n:
        reason += f"; fits from {minimum} GPU{'s' if minimum > 1 else ''}, all {n} divide the time"
    return {"strategy": f.estimate.plan.strategy, "gpus": n, "min_gpus": minimum, "peak_gib": round(f.peak_gib, 2),
            "fit": f.verdict, "reason": reason}


# ------------------------------------------------------------------ the recommendation


def _rank(task: str, rows: int | None) -> tuple[int, str]:
    lo, hi = BANDS[task]
    band = f"{task} sits in the {lo}–{hi} rank band"
    if rows is None:
        return lo, f"{band}; no data size given, so the lower end (pass --dataset or --samples to refine)"
    if rows >= LARGE_DATA:
        return hi, f"{band}; {rows:,} rows can use the upper end"
    return lo, f"{band}; {rows:,} rows (< {LARGE_DATA:,}) favour the lower end to avoid overfitting"


def _sweep(task: str, r: int, r_max: int | None) -> list[int]:
    lo, hi = BANDS[task]
    ranks = {max(1, lo // 2), lo, hi, hi * 2, r}
    return sorted(x for x in ranks if r_max is None or x <= r_max)


def _seq(spec: ModelSpec, seq_len: int | None, base: RunConfig | None, p95_chars: int | None,
         p95_tokens: int | None = None) -> tuple[int, str]:
    pos = spec.max_positions or 2048
    if seq_len:
        if seq_len > pos:
            return pos, f"--seq {seq_len} is beyond the model's {pos} positions: capped"
        return seq_len, f"--seq {seq_len}"
    if p95_tokens:  # counted by the model's own tokenizer (advisor/tokens.py), + the template's tokens
        need = max(256, 2 ** math.ceil(math.log2(p95_tokens + TEMPLATE_TOKENS)))
        need = min(need, pos, 8192)
        return need, (f"95% of rows are ≤ {p95_tokens:,} tokens (counted by the model's tokenizer, + "
                      f"{TEMPLATE_TOKENS} template tokens): {need} covers them")
    if p95_chars:
        need = max(256, 2 ** math.ceil(math.log2(max(1, p95_chars // CHARS_PER_TOKEN))))
        need = min(need, pos, 8192)
        return need, (f"95% of rows are ≤ {p95_chars:,} characters (~{p95_chars // CHARS_PER_TOKEN:,} tokens at "
                      f"~{CHARS_PER_TOKEN} chars/token): {need} covers them")
    if base is not None and "max_seq_len" in base.train.model_fields_set:
        return min(base.train.max_seq_len, pos), "from the base config"
    return min(2048, pos), "2048 tokens covers most instruction/chat rows; pass --seq or --dataset to size it"


def _dropout(rows: int | None) -> tuple[float, str]:
    if rows is None:
        return 0.05, "0.05 is the usual value (no data size given)"
    if rows < SMALL_DATA:
        return 0.1, f"{rows:,} rows is small data: 0.1 regularises against memorising it"
    if rows >= HUGE_DATA:
        return 0.0, f"{rows:,} rows is plenty: dropout adds little (0.0–0.05)"
    return 0.05, f"{rows:,} rows: the usual 0.05"


def _epochs(rows: int | None) -> tuple[float, str]:
    if rows is None:
        return 1.0, "one pass; set max_steps or epochs once the data size is known"
    if rows < SMALL_DATA:
        return 3.0, f"{rows:,} rows: 3 epochs (watch the validation loss for overfitting)"
    if rows < LARGE_DATA:
        return 2.0, f"{rows:,} rows: 2 epochs"
    return 1.0, f"{rows:,} rows: one pass is usually enough"


def advise(spec: ModelSpec, hw: Hardware | None, task: str, budget: int | None = None,
           dataset_rows: int | None = None, seq_len: int | None = None, base: RunConfig | None = None,
           p95_chars: int | None = None, p95_tokens: int | None = None) -> Advice:
    if task not in BANDS:
        raise RankwiseError(f"unknown task {task!r}", f"use one of: {', '.join(BANDS)}")
    reasons: dict[str, str] = {}
    notes: list[str] = []
    gpus = hw.gpu_count if hw and hw.has_gpu else 1  # advice plans for every GPU of the machine
    cfg = (base or RunConfig()).model_copy(deep=True)
    if gpus > 1:
        cfg.distributed.gpus = gpus
    cfg.model.name = spec.name if base is None or not base.model.name else cfg.model.name
    cfg.task = task

    # targets and rank
    targets = "aggressive" if task in NEW_KNOWLEDGE else "standard"
    if not spec.target_set(targets):
        targets = "all-linear"
    if task not in NEW_KNOWLEDGE:
        why_t = ("attention projections are enough to change behaviour and format; minimal = q,v is cheaper, "
                 "aggressive adds the MLP for new knowledge")
    elif spec.target_set("aggressive") == spec.target_set("standard"):
        why_t = ("the task must learn new facts/skills, but this model's MLP experts are fused tensors LoRA "
                 "cannot wrap: only the attention projections are adaptable")
    else:
        why_t = "the task must learn new facts/skills, so the MLP projections (where knowledge sits) are adapted too"
    reasons["lora.target_modules"] = f"{targets} ({', '.join(spec.target_set(targets))}): {why_t}"
    r, why_r = _rank(task, dataset_rows)
    per_unit = spec.lora_params(targets, 1)
    arithmetic, r_max = None, None
    if budget is not None:
        r_max = budget // per_unit
        lines = [f"per rank unit: Σ over adapted linears of (d_in + d_out) = {per_unit:,} parameters"]
        for l in spec.resolve_targets(targets):
            lines.append(f"  {l.name}: {l.count} × ({l.d_in} + {l.d_out}) = {l.count * (l.d_in + l.d_out):,}")
        if r_max < 1:
            raise RankwiseError(f"--budget {human_count(budget)}: even r = 1 on {targets} targets needs "
                                f"{per_unit:,} parameters", f"raise the budget to at least {human_count(per_unit)}")
        lines.append(f"largest r within {budget:,}: floor({budget:,} / {per_unit:,}) = {r_max}")
        if r > r_max:
            why_r += f"; capped to {r_max} by the {human_count(budget)} parameter budget"
            r = r_max
        else:
            lines.append(f"the band's choice r = {r} is within the budget")
        lines.append(f"trainable at r = {r}: {r} × {per_unit:,} = {r * per_unit:,}")
        arithmetic = "\n".join(lines)
    reasons["lora.r"] = f"{why_r}; trainable {human_count(r * per_unit)} parameters"
    cfg.lora.r = r
    cfg.lora.target_modules = targets
    cfg.lora.alpha = float(2 * r)
    reasons["lora.alpha"] = ("2·r, the common choice (update scale alpha/r = 2); alpha = r is the conservative "
                             "alternative" + ("; for ranks ≥ 128 rsLoRA (alpha/√r) keeps high ranks learning"
                                              if r >= 128 else ""))
    cfg.lora.dropout, reasons["lora.dropout"] = _dropout(dataset_rows)
    cfg.lora.bias = "none"
    reasons["lora.bias"] = "none keeps the adapter small and mergeable"
    cfg.lora.use_rslora = False

    # sequence and batch
    seq, reasons["train.max_seq_len"] = _seq(spec, seq_len, base, p95_chars, p95_tokens)
    cfg.train.max_seq_len = seq
    cfg.train.grad_checkpointing = True
    reasons["train.grad_checkpointing"] = "recomputing activations cuts their memory to one layer's worth (~30% slower)"
    cfg.train.micro_batch, cfg.train.grad_accum = 1, max(1, math.ceil(TARGET_BATCH / gpus))

    # method: compare both at micro-batch 1
    estimates, fits = _side_by_side(spec, cfg, hw)
    auto = fit.assess(spec, with_values(cfg, {"method": "auto"}), hw)  # the first method that fits with headroom
    method, why_m = auto.method, auto.method_reason
    if _gpu_bytes(hw) is None:
        notes.append("no GPU found or declared: fit is not checked (info); plan with --gpu-mem 24GiB or --gpu NAME")
    elif fits[method] == "tight":
        why_m += "; tight: keep micro-batch 1 and watch memory"
    elif fits[method] != "fits":
        method = None
        needs = ", ".join(f"{METHODS[m].label} {'needs ' if i == 0 else ''}~{e.peak_gib:.1f} GiB"
                          for i, (m, e) in enumerate(estimates.items()))
        why_m = (f"{'neither' if len(estimates) == 2 else 'none'} fits {gib(hw.gpu_bytes):.0f} GiB per GPU: {needs} "
                 "— see the suggestions instead of a config that crashes")
    reasons["method"] = why_m
    cfg.method = method or LEANEST

    if method is not None and _gpu_bytes(hw) is not None:
        for mb in MICRO_BATCHES:
            if mb > TARGET_BATCH // gpus and mb > 1:
                continue
            trial = with_values(cfg, {"train.micro_batch": mb})
            if mb == 1 or fit.assess(spec, trial, hw, method=method).verdict == "fits":
                cfg.train.micro_batch = mb
                break
        why_mb = (f"largest micro-batch whose estimate fits with headroom (tried {', '.join(map(str, MICRO_BATCHES))})")
    else:
        why_mb = "1: no GPU to size it against" if method else "1: the most frugal setting (nothing fits yet)"
    cfg.train.grad_accum = max(1, math.ceil(TARGET_BATCH / (cfg.train.micro_batch * gpus)))
    eff = cfg.train.micro_batch * cfg.train.grad_accum * gpus
    reasons["train.micro_batch"] = why_mb
    reasons["train.grad_accum"] = (f"effective batch = {cfg.train.micro_batch} × {cfg.train.grad_accum} × {gpus} GPU"
                                   f"{'s' if gpus > 1 else ''} = {eff} (LoRA recipes use 16–32)")

    # optimisation
    chosen = method or LEANEST
    cfg.train.lr = METHODS[chosen].lr
    reasons["train.lr"] = lr_reason(METHODS[chosen])
    cfg.train.scheduler, cfg.train.warmup_ratio, cfg.train.warmup_steps = "cosine", 0.03, None
    reasons["train.scheduler"] = "cosine decay after a short warmup: the usual LoRA schedule"
    reasons["train.warmup_ratio"] = "3% of steps warm up so Adam's early estimates do not spike the loss"
    cfg.train.optimizer = "auto"
    reasons["train.optimizer"] = "auto: " + METHODS[chosen].optimizer_why
    cfg.train.epochs, reasons["train.epochs"] = _epochs(dataset_rows)
    cfg.train.precision = "auto"
    reasons["train.precision"] = ("auto: bf16 on this GPU" if hw and hw.has_gpu and hw.bf16 else
                                  "auto: fp16 (this GPU lacks bf16)" if hw and hw.has_gpu else
                                  "auto: bf16 where the GPU has it, else fp16")
    cfg = RunConfig.model_validate(written(cfg))  # re-validate the whole result (unset fields stay unset)

    estimates, fits = _side_by_side(spec, cfg, hw)
    if method and cfg.train.micro_batch > 1:
        reasons["method"] += (f" (at micro-batch 1; at the chosen micro-batch {cfg.train.micro_batch}: "
                              f"~{estimates[method].peak_gib:.1f} GiB)")
    suggestions = [] if method is not None or _gpu_bytes(hw) is None else fit.suggest_fixes(spec, hw, cfg, LEANEST)
    strategy = choose_strategy(spec, cfg, chosen, hw)
    if gpus > 1:
        cfg.distributed.strategy, cfg.distributed.gpus = strategy["strategy"], gpus
        reasons["distributed.strategy"] = strategy["reason"]
        reasons["distributed.gpus"] = (f"every planned GPU ({gpus})" + (f"; the fewest that fit: {strategy['min_gpus']}"
                                                                         if strategy["min_gpus"] else "; none fits yet"))
    findings = check(cfg, spec, hw, method=chosen)
    return Advice(method=method, config=cfg, estimate=estimates[chosen], estimates=estimates, fits=fits,
                  reasons=reasons, findings=findings, suggestions=suggestions, budget_arithmetic=arithmetic,
                  first_sweep=_sweep(task, r, r_max), notes=notes, strategy=strategy)
