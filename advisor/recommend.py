"""The recommender: model + hardware + task (+ budget, data size) → a RunConfig with reasons.

`advise(...)` takes the rank from rank.py (the task's band, the data size, the model's width; capped by a
parameter budget), LoRA or QLoRA from the memory estimator, then alpha, targets, dropout,
learning rate, schedule and batch shape. Every value it sets carries a reason; when
nothing fits it recommends nothing and says which change would make it fit, by how much.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import coupling, evidence, fit, memory, rank
from .config import RunConfig, with_values, written
from .errors import RankwiseError
from .hardware import Hardware
from .lengths import DataLengths
from .methods import LEANEST, METHODS
from .model import ModelSpec
from .plan import SHARDED
from .rank import BANDS, NEW_KNOWLEDGE
from .redflags import check
from .time import TEMPLATE_TOKENS
from .units import gib, human_count

LARGE_DATA = 10_000  # rows from which 2 epochs become 1 (the guide's epochs rule)
SMALL_DATA = 1_000  # below: SMALL_DATA_EPOCHS, the validation split picking the checkpoint
# LIMA (Zhou et al. 2023, §3) trained 1,000 rows for 15 epochs and picked a checkpoint between epochs
# 5 and 10 on a held-out set; the guide's 3 epochs stop short of that range. rankwise takes the upper
# end of LIMA's range and lets the validation split and train.stop_on keep the best checkpoint.
SMALL_DATA_EPOCHS = 10.0
TARGET_BATCH = 16  # effective batch; 16–32 is what LoRA recipes use (QLoRA paper: 16)
LARGE_BATCH = 32  # above: TML's large-batch penalty for LoRA (a note)
VAL_RATIO = 0.05  # held out for evaluation by default (train.stop_on keeps the best checkpoint)
# With the dataset's row count known, the split holds at least VAL_ROWS rows (up to VAL_RATIO_MAX of the data):
# a sweep's runs and an epoch's checkpoints a few percent apart are picked on this loss, and on
# bench/advice_quality.py's format task (500 rows, 7 December 2026) the 5% split's 25 rows picked a wrong rate
# of the advice's sweep at both seeds tried (eval loss 0.105 and 0.069 against the sweep's best 0.029 and
# 0.043), 100 rows the eval sets' best at both. The 100 is rankwise's (no source gives a floor): status unsourced.
VAL_ROWS = 100
VAL_RATIO_MAX = 0.2
EVALS_PER_EPOCH = 4  # evaluations an epoch by default (axolotl's examples most often write 4)
# Red flags of the guide's rules that the evidence contradicts, by the field advise set on that
# evidence: advise says them in that field's reason instead of flagging its own output.
GUIDE_FLAGGED = {"alpha-below-rank": "lora.alpha", "all-modules-low-rank": "lora.r", "qlora-high-lr": "train.lr"}
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
    first_lrs: list[float] = field(default_factory=list)  # a learning-rate grid for that sweep (coupling.lr_grid);
    # empty: the advised rate alone (the model is as wide as those the sources measured)
    notes: list[str] = field(default_factory=list)
    strategy: dict | None = None  # {strategy, gpus, min_gpus, peak_gib, reason} (see choose_strategy)
    citations: dict[str, list[str]] = field(default_factory=dict)  # field → claim keys (advisor/evidence.py)
    statuses: dict[str, str] = field(default_factory=dict)  # field → evidence | guide-rule | ... | derived
    lengths: DataLengths | None = None  # the dataset's: the estimates are at its longest row where that is shorter
    to_supply: list[str] = field(default_factory=list)  # fields only the user can fill that the advice says to give
    # (their reasons say what): data.val_path where a random split cannot validate new facts

    def sweep_flags(self) -> tuple[str | None, str | None]:
        """The first sweep as `rankwise sweep --ranks R --lrs L` takes it: (ranks, rates), None where the
        advice gives none (the sweep's default)."""
        return (",".join(map(str, self.first_sweep)) or None,
                coupling.lrs_text(self.first_lrs, ",") if self.first_lrs else None)

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
            "first_lrs": list(self.first_lrs),
            "notes": list(self.notes),
            "strategy": dict(self.strategy) if self.strategy else None,
            "citations": {k: list(v) for k, v in self.citations.items()},
            "statuses": dict(self.statuses),
            **({"lengths": self.lengths.to_dict()} if self.lengths else {}),
            "to_supply": list(self.to_supply),
        }


# ------------------------------------------------------------------ method and fit


def _gpu_bytes(hw: Hardware | None) -> int | None:
    return hw.gpu_bytes if hw and hw.has_gpu else None


def _side_by_side(spec: ModelSpec, cfg: RunConfig, hw: Hardware | None,
                  lengths: DataLengths | None = None) -> tuple[dict, dict]:
    judged = fit.side_by_side(spec, cfg, hw, lengths)
    return {m: f.estimate for m, f in judged.items()}, {m: f.verdict for m, f in judged.items()}


def choose_strategy(spec: ModelSpec, cfg: RunConfig, method: str, hw: Hardware | None,
                    lengths: DataLengths | None = None) -> dict:
    """How to use the GPUs: {strategy, gpus, min_gpus, peak_gib, fit, reason}.

    DDP when a full copy fits one GPU with headroom (each GPU trains on its share of the
    batch); else FSDP (weights, gradients and optimizer states sharded). `gpus` is every GPU
    planned for; `min_gpus` the fewest that fit (None when even all of them do not)."""
    f = fit.assess(spec, cfg, hw, method=method, lengths=lengths)
    minimum = fit.min_gpus(spec, cfg, method, hw, lengths)
    reason = fit.strategy_reason(spec, cfg, f, hw)
    n = f.gpus
    if n > 1 and minimum is not None and minimum < n:
        reason += f"; fits from {minimum} GPU{'s' if minimum > 1 else ''}, all {n} divide the time"
    return {"strategy": f.estimate.plan.strategy, "gpus": n, "min_gpus": minimum, "peak_gib": round(f.peak_gib, 2),
            "fit": f.verdict, "reason": reason}


# ------------------------------------------------------------------ the recommendation


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


def _dropout() -> tuple[float, str]:
    return 0.05, ("0.05 whatever the data size: no study here ties dropout to the row count; QLoRA used 0.1 up "
                  "to 13B and 0.05 above, Unsloth 0 (the validation split and keeping the best checkpoint guard "
                  "against overfitting instead)")


def _epochs(rows: int | None, task: str) -> tuple[float, str, str, tuple[str, ...]]:
    """(epochs, why, status, claim keys)."""
    guide = ("guide-dropout", "unsloth-defaults")
    if rows is None:
        return 1.0, "one pass; set max_steps or epochs once the data size is known", "guide-rule", guide
    if rows < SMALL_DATA:
        slow = task in NEW_KNOWLEDGE
        return SMALL_DATA_EPOCHS, (
            f"{rows:,} rows: {SMALL_DATA_EPOCHS:g} epochs, the validation split and train.stop_on keeping the best "
            "checkpoint — LIMA trained 1,000 rows for 15 epochs and picked a checkpoint between epochs 5 and 10 on a "
            "held-out set" + ("; new facts are learned much more slowly than what the model already knows "
                              "(Gekhman et al. 2024)" if slow else "")
            + " (the guide's 3 epochs is contradicted)"), "evidence", (
            "lima-epochs", *(("gekhman-slow",) if slow else ()), *guide)
    if rows < LARGE_DATA:
        return 2.0, f"{rows:,} rows: 2 epochs", "guide-rule", guide
    return 1.0, f"{rows:,} rows: one pass is usually enough", "guide-rule", guide


def _loss(spec: ModelSpec, cfg: RunConfig, hw: Hardware | None, why, lengths: DataLengths | None = None) -> RunConfig:
    """The chunked loss (trainer/chunked_loss.py: transformers' loss and gradients, its fp32 work a chunk at a
    time) where it is what lets the run fit, or lets a better method fit (LoRA where the standard loss leaves
    only QLoRA with headroom); otherwise the standard loss, as the config says. Judged at micro-batch 1, as the
    method is."""
    if _gpu_bytes(hw) is None or not cfg.train.standard_loss:
        return cfg
    chunked = with_values(cfg, {"train.loss": "chunked"})
    std = fit.assess(spec, with_values(cfg, {"method": "auto"}), hw, lengths=lengths)
    new = fit.assess(spec, with_values(chunked, {"method": "auto"}), hw, lengths=lengths)
    order = list(METHODS)
    rescues = std.verdict != "fits" and new.verdict == "fits"
    better = std.verdict == "fits" and new.verdict == "fits" and order.index(new.method) < order.index(std.method)
    if not (rescues or better):
        return cfg
    saved = fit.assess(spec, with_values(cfg, {"method": new.method}), hw, lengths=lengths).peak_gib - new.peak_gib
    gain = (f"{METHODS[new.method].label} fits where the standard loss leaves only {METHODS[std.method].label}"
            if better else f"it is what makes {METHODS[new.method].label} fit")
    why("train.loss", f"chunked: the same loss and gradients with its fp32 work an eighth of the logits at a time, "
        f"~{saved:.1f} GiB less at the loss's peak here; {gain}", "derived")
    return chunked


def val_ratio(dataset_rows: int | None) -> float:
    """The advised validation share: VAL_RATIO, raised (to VAL_RATIO_MAX at most) until it holds VAL_ROWS rows of a
    dataset whose row count is known."""
    if not dataset_rows:
        return VAL_RATIO
    return min(VAL_RATIO_MAX, max(VAL_RATIO, math.ceil(100 * VAL_ROWS / dataset_rows) / 100))  # up to a whole percent


def advise(spec: ModelSpec, hw: Hardware | None, task: str, budget: int | None = None,
           dataset_rows: int | None = None, seq_len: int | None = None, base: RunConfig | None = None,
           p95_chars: int | None = None, p95_tokens: int | None = None, median_chars: int | None = None,
           median_tokens: int | None = None, adapt_experts: bool = True, trained_share: float | None = None,
           lengths: DataLengths | None = None) -> Advice:
    """The recommended config with its reasons. An MoE's fused expert tensors are adapted (lora.target_parameters)
    unless that run would not fit, or would need FSDP/ZeRO-3, under which peft's wrapper does not run: then the
    advice without them, which says why (`adapt_experts` False is that second pass). `lengths`: the dataset's
    (advisor/lengths.py): every estimate at its longest row where that is shorter than the max_seq_len advised, as
    `check` and `train` judge the written preset."""
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

    cites: dict[str, list[str]] = {}
    status: dict[str, str] = {}

    def why(key: str, text: str, st: str, *claims: str) -> None:
        reasons[key], status[key], cites[key] = text, st, list(claims)

    # the sequence first: the rank's capacity check counts the trained tokens
    seq, why_seq = _seq(spec, seq_len, base, p95_chars, p95_tokens)
    epochs, why_ep, st_ep, claims_ep = _epochs(dataset_rows, task)

    # targets: every linear layer, for every task (the studies below, at matched parameter counts too)
    targets = "all-linear"
    adapted = spec.target_set(targets)
    experts = spec.fused_names() if adapt_experts else []  # fused MoE experts: adapted as parameters (peft)
    why_t = ("every linear layer, for every task: QLoRA (§4), LoRA Without Regret (even with little data and at "
             "matched parameters), Biderman et al. (Fig. 7), Raschka and Unsloth all find all-linear better than "
             "attention-only; standard (q,k,v,o) and minimal (q,v) remain memory-saving choices that cost quality "
             "(the guide's attention-only rule is contradicted)")
    if experts:
        why_t += ("; this MoE's MLP lives in fused expert tensors, which target_modules cannot reach: "
                  "lora.target_parameters adapts them")
    why("lora.target_modules", f"{targets} ({', '.join(adapted)}): {why_t}", "evidence", "qlora-all-linear",
        "tml-all-layers", "biderman-targets", "raschka-all-layers", "unsloth-targets", "peft-all-linear")
    if experts:
        why("lora.target_parameters", (
            f"{', '.join(experts)}: the MoE's MLP weights, which hold most of its parameters (the MLP matters in the "
            "studies above; attention-only is the weakest option in every one); peft adapts each fused tensor with "
            "rank r per expert and builds the adapted tensor in every forward (memory and time in the estimate)"),
            "evidence", "peft-target-parameters", "tml-all-layers", "biderman-targets")
    def without_experts(why_not: str) -> Advice:
        """The advice with the experts frozen, saying why."""
        plain = advise(spec, hw, task, budget, dataset_rows, seq_len, base, p95_chars, p95_tokens, median_chars,
                       median_tokens, adapt_experts=False, trained_share=trained_share, lengths=lengths)
        plain.reasons["lora.target_parameters"] = (
            f"none: {why_not}, so the experts ({', '.join(experts)}) stay frozen and only attention and the dense "
            "linears train — the weakest option in every study (QLoRA §4, TML, Biderman Fig. 7); a machine where "
            "one copy with the experts' adapter fits (DDP or one GPU) would allow it")
        plain.citations["lora.target_parameters"] = ["peft-target-parameters", "qlora-all-linear", "tml-all-layers",
                                                      "biderman-targets"]
        plain.statuses["lora.target_parameters"] = "evidence"
        return plain

    if experts and budget is not None and budget < spec.lora_params(targets, 1, experts):
        return without_experts(f"at r = 1 the experts' adapter takes {human_count(spec.lora_params([], 1, experts))} "
                               f"parameters (r per expert), beyond the {human_count(budget)} budget")
    row_tokens = median_tokens or ((median_chars // CHARS_PER_TOKEN) if median_chars else None)
    share = None if base is not None and base.data.train_on_inputs else trained_share  # the whole row, or its answers
    tokens, how = rank.trained_tokens(dataset_rows, seq, row_tokens, share)
    r, why_r, rank_notes = rank.choose(task, spec, targets, tokens, how, experts)
    notes.extend(rank_notes)
    per_unit = spec.lora_params(targets, 1, experts)
    arithmetic, r_max = None, None
    if budget is not None:
        r_max = budget // per_unit
        lines = [f"per rank unit: Σ over adapted linears of (d_in + d_out) = {per_unit:,} parameters"]
        for l in spec.resolve_targets(targets) + spec.resolve_parameters(experts):
            lines.append(f"  {l.name}: {l.count} × ({l.d_in} + {l.d_out}) = {l.count * (l.d_in + l.d_out):,}")
        if r_max < 1:
            raise RankwiseError(f"--budget {human_count(budget)}: even r = 1 on {targets} targets needs "
                                f"{per_unit:,} parameters", f"raise the budget to at least {human_count(per_unit)}")
        lines.append(f"largest r within {budget:,}: floor({budget:,} / {per_unit:,}) = {r_max}")
        if r > r_max:
            why_r += (f"; capped to {r_max} by the {human_count(budget)} parameter budget, kept on every linear layer: "
                      "at a fixed budget more matrices at a lower rank did better (LoRA Table 5; TML: rank 1 suffices "
                      "for RL)")
            r = r_max
        else:
            lines.append(f"the band's choice r = {r} is within the budget")
        lines.append(f"trainable at r = {r}: {r} × {per_unit:,} = {r * per_unit:,}")
        arithmetic = "\n".join(lines)
    why("lora.r", f"{why_r}; trainable {human_count(r * per_unit)} parameters",
        "guide-rule" if tokens is None and budget is None else "derived", "guide-bands", "tml-capacity",
        *(["lora-table5"] if budget is not None else []), *(["biderman-rank"] if task in NEW_KNOWLEDGE else []))
    cfg.lora.r = r
    cfg.lora.target_modules = targets
    cfg.lora.alpha = coupling.ALPHA
    why("lora.alpha", (f"{coupling.ALPHA:g} at every rank (update scale {coupling.ALPHA:g}/r = "
                       f"{coupling.ALPHA / r:.3g}): rankwise's one parametrisation — with alpha fixed the best "
                       "learning rate hardly moves with rank (LoRA Without Regret; TRL's recipe: alpha 16 at r = 256; "
                       "QLoRA: alpha 16 at r = 64). The guide's alpha = 2r"
                       + (" is the same value at r = 16" if r == 16 else f" would be {2 * r}")
                       + "; under it the learning rate must fall as rank rises (Biderman halved it at r = 256)"),
        "evidence", "tml-lr-rank", "trl-recipe", "qlora-recipe", "guide-alpha", "biderman-lr")
    cfg.lora.target_parameters = experts
    cfg.lora.dropout, text = _dropout()
    why("lora.dropout", text, "guide-rule", "guide-dropout", "qlora-recipe", "unsloth-defaults")
    if experts:
        cfg.lora.dropout = 0.0
        why("lora.dropout", "0: peft's LoRA on the expert tensors allows no dropout, and one dropout applies to every "
            "adapted module (" + text.split(": ", 1)[1] + ")", "derived", "peft-target-parameters", "unsloth-defaults")
    cfg.lora.bias = "none"
    why("lora.bias", "none keeps the adapter small and mergeable", "unsourced")
    cfg.lora.use_rslora = False

    # sequence and batch
    reasons["train.max_seq_len"] = why_seq
    cfg.train.max_seq_len = seq
    cfg.train.grad_checkpointing = True
    reasons["train.grad_checkpointing"] = "recomputing activations cuts their memory to one layer's worth (~30% slower)"
    cfg.train.micro_batch, cfg.train.grad_accum = 1, max(1, math.ceil(TARGET_BATCH / gpus))
    cfg = _loss(spec, cfg, hw, why, lengths)

    # method: compare both at micro-batch 1
    estimates, fits = _side_by_side(spec, cfg, hw, lengths)
    auto = fit.assess(spec, with_values(cfg, {"method": "auto"}), hw, lengths=lengths)  # the first that fits with headroom
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
            if mb == 1 or fit.assess(spec, trial, hw, method=method, lengths=lengths).verdict == "fits":
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
    width = {"hidden": spec.hidden_size, "model_type": spec.model_type}
    narrow = coupling.width_claims(spec.total_params, **width)  # below the measured widths: the hint's source
    cfg.train.lr = coupling.learning_rate(spec.total_params, r, cfg.lora.alpha_value)
    why("train.lr", f"{METHODS[chosen].label}: " + coupling.reason(spec.total_params, r, cfg.lora.alpha_value, **width)
        + " (QLoRA's own recipe set it by model size, not by quantization: 2e-4 for 7B/13B, 1e-4 for 33B/65B; "
          "the guide's lower QLoRA rate is contradicted)",
        "derived", "tml-lr-rank", "tinker-lr-size", *narrow, "qlora-recipe", "unsloth-defaults", "guide-qlora-lr")
    cfg.train.scheduler, cfg.train.warmup_ratio, cfg.train.warmup_steps = "cosine", 0.03, None
    why("train.scheduler", "cosine decay after a short warmup: the usual LoRA schedule (QLoRA's Guanaco runs used "
        "a constant one)", "guide-rule", "qlora-recipe")
    why("train.warmup_ratio", "3% of steps warm up so Adam's early estimates do not spike the loss", "guide-rule",
        "qlora-recipe")
    cfg.train.optimizer = "auto"
    why("train.optimizer", "auto: " + METHODS[chosen].optimizer_why, "evidence",
        *(["qlora-optimizer"] if METHODS[chosen].quantized else []))
    cfg.train.epochs = epochs
    why("train.epochs", why_ep, st_ep, *claims_ep)
    raised = False  # the advice set a split above VAL_RATIO (a split the user gave is theirs, not explained here)
    if not (cfg.data.val_path or cfg.data.val_ratio):
        cfg.data.val_ratio = val_ratio(dataset_rows)
        raised = cfg.data.val_ratio > VAL_RATIO
    if "overfitting" not in cfg.train.stop_on:
        cfg.train.stop_on = [*cfg.train.stop_on, "overfitting"]
    held_out = (f"{cfg.data.val_ratio:g} of the rows held out: the run evaluates on them and the epochs are judged "
                "on the validation loss")
    if raised:
        held_out += (f" ({cfg.data.val_ratio:g} rather than {VAL_RATIO:g}, so that ~{round(cfg.data.val_ratio * dataset_rows)} "
                     f"of the {dataset_rows:,} rows validate: on a few dozen, runs and checkpoints whose losses differ "
                     "by a few percent cannot be told apart, and the sweep and the kept checkpoint are picked on them)")
    if cfg.data.val_path:
        why("data.val_ratio", "data.val_path is given: validation comes from it", "unsourced")
    elif task == "domain":  # new facts; code and reasoning rows share what they teach with their neighbours
        why("data.val_ratio", held_out + ". Where each new fact is stated in only a row or two, a random split holds "
            "out facts no training row teaches: their loss cannot fall, it rises as the adapter learns the rest, and "
            "stop_on would keep an early checkpoint. Then set data.val_path to rows that ask about trained facts in "
            f"other words, {VAL_ROWS} or more as for a split (questions about entities whose statements are trained, as Allen-Zhu & Li test "
            "extraction: facts memorized from one phrasing can still be unanswerable)", "evidence",
            "allenzhu-extraction", "gekhman-slow")
    else:
        why("data.val_ratio", held_out, "unsourced")
    if not {"eval_steps", "evals_per_epoch"} & cfg.train.model_fields_set:
        cfg.train.evals_per_epoch = EVALS_PER_EPOCH
        why("train.evals_per_epoch", (
            f"{EVALS_PER_EPOCH} evaluations an epoch, each a forward over every validation row and followed by a "
            "checkpoint, so the best by eval loss can be kept: a share of the run that does not grow with the data "
            f"(~{EVALS_PER_EPOCH} x {VAL_RATIO:g} of an epoch's rows in forwards, about 5% of training's compute "
            "under checkpointing). At a fixed step interval it grows with the data: every 100 steps over 5% of "
            "100,000 rows at micro-batch 16 evaluates 59 times, nearly as long as the training itself "
            "(87% as planned for Llama-3.1-8B on an H100)"),
            "derived")
    why("train.stop_on", ("overfitting: when the eval loss has risen twice in a row, 2% above its best, its best an "
                          "epoch of training back (a quarter of the run at most) and the train loss falling, the run "
                          "stops and the best checkpoint by eval loss becomes the adapter (a run that finishes keeps "
                          "its last state). The patience is in training, not in evaluations: validation curves have "
                          "several local minima, and a patient criterion generalizes slightly better for more "
                          "training (Prechelt)"),
        "evidence", "prechelt-patience")
    cfg.train.precision = "auto"
    reasons["train.precision"] = ("auto: bf16 on this GPU" if hw and hw.has_gpu and hw.bf16 else
                                  "auto: fp16 (this GPU lacks bf16)" if hw and hw.has_gpu else
                                  "auto: bf16 where the GPU has it, else fp16")
    if METHODS[chosen].quantized and hw and hw.has_gpu and not hw.bf16:
        notes.append("QLoRA with fp16 compute (this GPU lacks bf16): the QLoRA README reports instabilities with "
                     "fp16 compute; keep gradient clipping on and watch for loss spikes, or use a bf16 GPU")
        cites.setdefault("train.precision", []).append("qlora-fp16")
        status["train.precision"] = "evidence"
    cfg = RunConfig.model_validate(written(cfg))  # re-validate the whole result (unset fields stay unset)

    estimates, fits = _side_by_side(spec, cfg, hw, lengths)
    if method and cfg.train.micro_batch > 1:
        reasons["method"] += (f" (at micro-batch 1; at the chosen micro-batch {cfg.train.micro_batch}: "
                              f"~{estimates[method].peak_gib:.1f} GiB)")
    suggestions = ([] if method is not None or _gpu_bytes(hw) is None
                   else fit.suggest_fixes(spec, hw, cfg, LEANEST, lengths))
    strategy = choose_strategy(spec, cfg, chosen, hw, lengths)
    if gpus > 1:
        cfg.distributed.strategy, cfg.distributed.gpus = strategy["strategy"], gpus
        reasons["distributed.strategy"] = strategy["reason"]
        reasons["distributed.gpus"] = (f"every planned GPU ({gpus})" + (f"; the fewest that fit: {strategy['min_gpus']}"
                                                                         if strategy["min_gpus"] else "; none fits yet"))
    eff = cfg.train.effective_batch * (cfg.distributed.gpus if isinstance(cfg.distributed.gpus, int) else gpus)
    if eff > LARGE_BATCH:
        notes.append(f"effective batch {eff} (> {LARGE_BATCH}): LoRA pays a larger penalty than full fine-tuning at "
                     "large batches and a higher rank does not remove it (TML 2025); fewer GPUs or a smaller "
                     "micro-batch keep it near 16–32")
        cites.setdefault("train.grad_accum", []).append("tml-batch")
    to_supply = []
    if task == "domain" and not cfg.data.val_path:  # the Advice screen has no validation field: said as a note too
        to_supply.append("data.val_path")
        notes.append("new facts: a random validation split holds out facts no training row teaches; give "
                     f"data.val_path with {VAL_ROWS} or more questions about trained facts (sources: rankwise advise ... "
                     "--why data.val_ratio)")
    for key in reasons:
        status.setdefault(key, "derived")
        cites.setdefault(key, [])
    findings = []
    for f in check(cfg, spec, hw, method=chosen, lengths=lengths):
        st, keys = evidence.rule(f.code)
        key = GUIDE_FLAGGED.get(f.code)
        if st == "guide-rule-contradicted" and key in reasons:  # chosen on the evidence: said in the reason
            reasons[key] += f"; the guide's {f.code} rule would flag it ({f.message}), but {f.why}"
            cites[key] += [k for k in keys if k not in cites[key]]
            continue
        findings.append(f)
    sharded = gpus > 1 and strategy["strategy"] in SHARDED
    if experts and (method is None or sharded):
        return without_experts(
            "with their adapter the run would need FSDP here (a full copy does not fit one GPU with headroom), where "
            "peft's LoRA on the expert tensors does not run (rankwise refuses it)" if sharded else
            "with their adapter nothing fits")
    if lengths is not None:
        lengths = lengths.limited(cfg.train.max_seq_len)
        if lengths.shorter:  # the estimates above are at it, as check and train judge the written preset
            notes.append(lengths.note)
    return Advice(method=method, config=cfg, estimate=estimates[chosen], estimates=estimates, fits=fits,
                  reasons=reasons, findings=findings, suggestions=suggestions, budget_arithmetic=arithmetic,
                  first_sweep=rank.first_sweep(task, r, r_max, spec.low_rank_cap), notes=notes, strategy=strategy,
                  first_lrs=coupling.lr_grid(spec.total_params, r, cfg.lora.alpha_value, **width),
                  citations=cites, statuses=status, lengths=lengths, to_supply=to_supply)
