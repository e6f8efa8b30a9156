"""Red flags: risky combinations in a run config, each with why and a concrete fix.

`check(cfg, spec, hw)` runs every rule in `RULES` over one `Context` and returns the
findings, errors first. A rule is one small function: `Context -> Finding | None`.
Severities: error (the run will crash or cannot work), warning (it will run but is likely
a mistake), info (worth knowing). A finding's `patch` holds dotted RunConfig keys whose
values apply the fix (the TUI's "apply fix" key and `--set` use the same keys).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import coupling, fit, ignored
from .architecture_flags import (linear_attention_fallback, mamba_kernel_incomplete, moe_experts_16bit,
                                 packing_linear_attention)
from .config import RunConfig
from .coupling import lr_text
from .errors import RankwiseError
from .finding import SEVERITY_ORDER, Finding  # declared apart so ignored.py can make findings too
from .machine_flags import (bf16_unsupported, ddp_wont_fit, disk_short, fp16_on_bf16_gpu, host_ram_short, too_few_gpus,
                            wont_fit)
from .fit import Fit
from .hardware import Hardware
from .lengths import DataLengths
from .memory import Estimate
from .methods import DEFAULT, METHODS
from .model import ModelSpec
from .size_bound import Bound

# Learning rates are judged against rankwise's one alpha/lr parametrisation (advisor/coupling.py):
# the rate it would set for this model size and alpha, and coupling.band() around it.
ERROR_LR = 1e-2  # at or above: diverges, whatever the model
RANK_RANGE = (1, 2048)
DROPOUT_RANGE = (0.0, 0.5)
EFFECTIVE_BATCH_RANGE = (4, 1024)
LONG_SEQ = 4096  # without gradient checkpointing, activations at this length dominate memory
UNFORCEABLE = frozenset({"distributed-setting"})  # errors `train --force` cannot start: the launcher refuses them


@dataclass(frozen=True)
class Context:
    """Everything a rule may look at, computed once."""

    cfg: RunConfig
    spec: ModelSpec | None
    hw: Hardware | None
    method: str  # lora | qlora (auto resolved)
    method_note: str
    estimate: Estimate | None  # for `method` per GPU, when the model is known
    fit: str | None  # fits | tight | wont-fit | no-gpu
    target_error: str | None  # why the target modules do not resolve on this model
    gpus: int = 1  # GPUs the run trains on (advisor.fit.run_gpus)
    judged: Fit | None = None  # the whole answer from advisor.fit, when the model is known
    bound: "Bound | None" = None  # model unknown: its peak bounded from its name's size (advisor/size_bound.py)

    @property
    def lengths(self) -> DataLengths | None:
        """The data's lengths the estimate is at (advisor/lengths.py), when given."""
        return self.judged.lengths if self.judged is not None else None

    @property
    def r(self) -> int:
        return self.cfg.lora.r

    @property
    def targets(self):
        return self.cfg.lora.target_modules

    @property
    def params(self) -> int | None:
        return self.spec.total_params if self.spec is not None else None

    def fitting_lr(self, alpha: float | None = None, rslora: bool | None = None) -> float:
        """rankwise's learning rate for this model, rank and alpha (advisor/coupling.py)."""
        lora = self.cfg.lora
        return coupling.learning_rate(self.params, self.r, lora.alpha_value if alpha is None else alpha,
                                      lora.use_rslora if rslora is None else rslora)


def _targets_all(ctx: Context) -> bool:
    """aggressive / all-linear, or a list that adapts MLP as well as attention (the model's own
    linears say which is which; without a model, a list of five or more names counts)."""
    t = ctx.targets
    if isinstance(t, str):
        return t in ("aggressive", "all-linear")
    if ctx.spec is None or ctx.target_error:
        return len(t) >= 5
    kinds = {l.family for l in ctx.spec.resolve_targets(list(t))}
    return {"attn", "mlp"} <= kinds


# ------------------------------------------------------------------------------ rules


def rank_out_of_range(ctx: Context) -> Finding | None:
    lo, hi = RANK_RANGE
    if lo <= ctx.r <= hi:
        return None
    return Finding("rank-out-of-range", "error", f"lora.r = {ctx.r} is outside {lo}–{hi}",
                   "ranks above 2048 exceed most models' hidden size: the adapter is no longer low-rank "
                   "and costs as much as full fine-tuning", "use a rank between 8 and 256", {"lora.r": 64})


def rank_above_width(ctx: Context) -> Finding | None:
    """A rank above half the hidden size: no longer low-rank on this model (ModelSpec.low_rank_limit)."""
    if ctx.spec is None or ctx.r <= ctx.spec.low_rank_limit or ctx.r > RANK_RANGE[1]:  # > 2048: rank-out-of-range
        return None
    h, cap = ctx.spec.hidden_size, ctx.spec.low_rank_cap
    return Finding("rank-above-width", "warning", f"lora.r = {ctx.r} is above half the hidden size ({h})",
                   f"at r = {h // 2} an adapter on a {h}×{h} projection already holds as many parameters as the "
                   f"projection (2·r·{h} = {h}²); a higher rank adds parameters, memory and time there, and no "
                   f"matrix's update can exceed rank {h} (B·A has rank at most min(r, d_in, d_out))",
                   f"use lora.r {cap}, or fine-tune this small a model in full", {"lora.r": cap})


def dropout_out_of_range(ctx: Context) -> Finding | None:
    d = ctx.cfg.lora.dropout
    if DROPOUT_RANGE[0] <= d <= DROPOUT_RANGE[1]:
        return None
    return Finding("dropout-out-of-range", "warning", f"lora.dropout = {d:g} is above {DROPOUT_RANGE[1]:g}",
                   "dropping more than half the adapter's input makes its updates mostly noise",
                   "use 0.05 (0.1 for under ~1k rows)", {"lora.dropout": 0.05})


def lr_out_of_range(ctx: Context) -> Finding | None:
    lr = ctx.cfg.train.lr
    fitting = ctx.fitting_lr()
    lo, hi = coupling.band(fitting)
    if lo <= lr <= hi and lr < ERROR_LR:
        return None
    severity = "error" if lr >= ERROR_LR else "warning"
    alpha = ctx.cfg.lora.alpha_value
    return Finding("lr-out-of-range", severity,
                   f"train.lr = {lr:g} is outside {lo:.2g}–{hi:.2g}, the band around {lr_text(fitting)} "
                   f"({coupling.size_text(ctx.params)}, alpha {alpha:g}{' with rsLoRA' if ctx.cfg.lora.use_rslora else ''})",
                   "too low and the adapter barely moves in the steps you pay for; too high and the loss spikes or "
                   "diverges. The learning rate that fits is set by model size and alpha (a larger alpha is a "
                   "larger step), the same for LoRA and QLoRA", f"set train.lr to {lr_text(fitting)}", {"train.lr": fitting})


def high_rank_high_dropout(ctx: Context) -> Finding | None:
    if ctx.r > 256 and ctx.cfg.lora.dropout > 0.2:
        return Finding("high-rank-high-dropout", "warning",
                       f"rank {ctx.r} with dropout {ctx.cfg.lora.dropout:g}: over-regularised",
                       "a high rank buys capacity and heavy dropout throws it away: you pay the memory "
                       "of a large adapter for the fit of a small one",
                       "lower lora.dropout to 0.05, or lower the rank if you wanted regularisation",
                       {"lora.dropout": 0.05})
    return None


def alpha_below_rank(ctx: Context) -> Finding | None:
    """The guide's rule (alpha >= r), where it differs from rankwise's fixed alpha = 32: info, because
    the published recipes train well below it (QLoRA alpha/r = 0.25, TRL alpha 16 at r = 256)."""
    alpha = ctx.cfg.lora.alpha_value
    if ctx.cfg.lora.use_rslora or alpha >= ctx.r or alpha >= coupling.ALPHA:
        return None
    fitting = ctx.fitting_lr()
    return Finding("alpha-below-rank", "info", f"lora.alpha = {alpha:g} is below lora.r = {ctx.r} (the guide: alpha ≥ r)",
                   f"the update is scaled by alpha/r = {alpha / ctx.r:.2g}; the guide calls that under-used, but "
                   "the QLoRA paper's recipe uses alpha/r = 0.25 with lr 2e-4 and TRL's LoRA-Without-Regret recipe "
                   "alpha 16 at r = 256: a smaller alpha is a smaller step that the learning rate makes up "
                   f"(rankwise's rate for alpha {alpha:g} here: {lr_text(fitting)})",
                   f"nothing, if train.lr is near {lr_text(fitting)}; or rankwise's fixed alpha {coupling.ALPHA:g} with lr "
                   f"{lr_text(ctx.fitting_lr(coupling.ALPHA))}",
                   {"lora.alpha": coupling.ALPHA, "train.lr": ctx.fitting_lr(coupling.ALPHA)})


def all_modules_low_rank(ctx: Context) -> Finding | None:
    """The guide's rule, contradicted by the LoRA paper's fixed-budget ablation (Table 5) and by
    TML's rank-1 RL: info."""
    if ctx.r < 8 and _targets_all(ctx):
        return Finding("all-modules-low-rank", "info",
                       f"rank {ctx.r} spread over every linear layer ({ctx.targets if isinstance(ctx.targets, str) else 'attention + MLP'})",
                       "the guide says a low rank over many modules spreads the capacity too thin; the LoRA paper's "
                       "fixed-budget ablation (Table 5) found more matrices at a lower rank better, and LoRA Without "
                       "Regret matched full fine-tuning in RL at rank 1 on every layer",
                       "nothing, if the rank is a budget or the task is small; raise lora.r to 8 or more if the "
                       "validation loss stalls", {"lora.r": 8})
    return None


def qlora_high_lr(ctx: Context) -> Finding | None:
    """The guide's lower QLoRA rate: info. QLoRA's own recipe set the rate by model size (2e-4 for
    7B/13B), not by quantization; lr-out-of-range judges the rate itself, the same for LoRA and QLoRA."""
    m = METHODS[ctx.method]  # a method with a learning-rate ceiling in the guide (QLoRA's 4-bit base)
    if m.max_lr is not None and m.max_lr < ctx.cfg.train.lr:
        fitting = ctx.fitting_lr()
        return Finding("qlora-high-lr", "info",
                       f"{m.label} with train.lr = {ctx.cfg.train.lr:g} (the guide: at most {m.max_lr:g})",
                       m.max_lr_why + "; the QLoRA paper itself set the rate by model size (2e-4 for 7B/13B, "
                       "1e-4 for 33B/65B), not lower for 4-bit", f"set train.lr to {lr_text(fitting)} if the loss "
                       "spikes", {"train.lr": fitting})
    return None


def seq_beyond_positions(ctx: Context) -> Finding | None:
    if not ctx.spec or not ctx.spec.max_positions:
        return None
    seq, pos = ctx.cfg.train.max_seq_len, ctx.spec.max_positions
    if seq <= pos:
        return None
    return Finding("seq-beyond-positions", "warning",
                   f"train.max_seq_len = {seq} is beyond {ctx.spec.name}'s {pos} positions",
                   "positions past the pre-trained range are untrained (or rejected): quality drops "
                   "and memory is spent on tokens the model cannot place",
                   f"set train.max_seq_len to {pos} or less", {"train.max_seq_len": pos})


def unknown_target_module(ctx: Context) -> Finding | None:
    if ctx.target_error is None:
        return None
    if ctx.target_error.startswith("lora.target_parameters"):
        fused = ctx.spec.fused_names()
        return Finding("unknown-target-module", "error", ctx.target_error,
                       "peft refuses target parameters the model does not have, so the run stops before training",
                       f"use names {ctx.spec.name} has: {', '.join(fused)}" if fused else
                       "adapt its linears with lora.target_modules instead", {"lora.target_parameters": fused})
    names = ", ".join(ctx.spec.adaptable_names())
    return Finding("unknown-target-module", "error", ctx.target_error,
                   "peft refuses target modules the model does not have, so the run stops before training",
                   f"use a named set (minimal, standard, aggressive, all-linear) or names {ctx.spec.name} has: {names}",
                   {"lora.target_modules": "standard"})


def trust_remote_code(ctx: Context) -> Finding | None:
    if ctx.cfg.model.trust_remote_code:
        return Finding("trust-remote-code", "warning", "model.trust_remote_code is on",
                       "the model folder's Python code runs with your permissions when the model loads",
                       "turn it off unless you have read that code and trust its source",
                       {"model.trust_remote_code": False})
    return None


def effective_batch_small(ctx: Context) -> Finding | None:
    eff = ctx.cfg.train.effective_batch * ctx.gpus
    if eff >= EFFECTIVE_BATCH_RANGE[0]:
        return None
    accum = -(-16 // (ctx.cfg.train.micro_batch * ctx.gpus))
    return Finding("effective-batch-small", "warning",
                   f"effective batch {eff} (micro_batch {ctx.cfg.train.micro_batch} · grad_accum "
                   f"{ctx.cfg.train.grad_accum} · {ctx.gpus} GPU{'s' if ctx.gpus > 1 else ''}) is very small",
                   "each step follows the noise of a few examples: the loss jumps around and the "
                   "learning rate must be lowered to compensate",
                   f"raise train.grad_accum to {accum} for an effective batch of ~16", {"train.grad_accum": accum})


def effective_batch_large(ctx: Context) -> Finding | None:
    eff = ctx.cfg.train.effective_batch * ctx.gpus
    if eff <= EFFECTIVE_BATCH_RANGE[1]:
        return None
    accum = max(1, 32 // (ctx.cfg.train.micro_batch * ctx.gpus))
    return Finding("effective-batch-large", "warning", f"effective batch {eff} is implausibly large",
                   "few optimizer steps per epoch: a LoRA fine-tune of a few thousand rows may take a "
                   "handful of steps and barely learn", f"lower train.grad_accum to {accum}",
                   {"train.grad_accum": accum})


RSLORA_MIN_SCALE = 0.25  # alpha/r below it at a high rank: rankwise's alpha = 32 at r = 128 is the edge


def rslora_off_high_rank(ctx: Context) -> Finding | None:
    """alpha held fixed at a high rank makes alpha/r small: rsLoRA's case (Kalajdzievski 2023). Not
    at alpha = 2r (scale 2), where rsLoRA with alpha = 2·√r gives the same scale."""
    lora = ctx.cfg.lora
    scale = lora.alpha_value / ctx.r
    if ctx.r < 128 or lora.use_rslora or scale >= RSLORA_MIN_SCALE:
        return None
    alpha = coupling.ALPHA / 4  # rsLoRA alpha 8: scale 8/√r, the fixed-alpha equivalent 8·√r (128 at r = 256)
    return Finding("rslora-off-high-rank", "info", f"rank {ctx.r} with alpha/r = {scale:.3g} and no rsLoRA",
                   "rsLoRA (Kalajdzievski 2023) finds that with alpha/r scaling a high rank learns little more than a "
                   "low one and alpha/√r keeps it learning; LoRA Without Regret found alpha fixed at 32 trains "
                   "well at every rank (the sources disagree)",
                   f"try lora.use_rslora: true with alpha {alpha:g} and lr {lr_text(ctx.fitting_lr(alpha, True))} in a sweep",
                   {"lora.use_rslora": True, "lora.alpha": alpha, "train.lr": ctx.fitting_lr(alpha, True)})


def no_grad_checkpointing_long_seq(ctx: Context) -> Finding | None:
    t = ctx.cfg.train
    if t.grad_checkpointing or t.max_seq_len < LONG_SEQ:
        return None
    return Finding("no-grad-checkpointing-long-seq", "warning",
                   f"gradient checkpointing off at max_seq_len {t.max_seq_len}",
                   "every layer's activations are kept for the backward pass; at long sequences they "
                   "dominate memory", "turn train.grad_checkpointing on (~30% slower, far less memory)",
                   {"train.grad_checkpointing": True})


def no_warmup(ctx: Context) -> Finding | None:
    t = ctx.cfg.train
    if t.warmup_ratio == 0 and not t.warmup_steps:
        return Finding("no-warmup", "info", "no learning-rate warmup",
                       "Adam's first steps use poor moment estimates; a short warmup avoids an early spike",
                       "set train.warmup_ratio to 0.03", {"train.warmup_ratio": 0.03})
    return None


FAR_ALPHA = 2 * coupling.ALPHA  # alpha above it and above 8·r: far above rankwise's fixed alpha too


def alpha_far_above_rank(ctx: Context) -> Finding | None:
    """The guide's alpha > 8·r, rank-aware: at a low rank rankwise's own alpha = 32 is over 8·r (TML's
    RL recipe: r = 1, alpha = 32), so it fires only where alpha is also over twice that."""
    alpha = ctx.cfg.lora.alpha_value
    if ctx.cfg.lora.use_rslora or alpha <= 8 * ctx.r or alpha <= FAR_ALPHA:
        return None
    return Finding("alpha-far-above-rank", "warning",
                   f"lora.alpha = {alpha:g} is over 8× lora.r = {ctx.r} and over {FAR_ALPHA:g}",
                   f"the update is scaled by {alpha / ctx.r:.3g}: like multiplying the learning rate, "
                   "it makes the run unstable", f"set lora.alpha to {coupling.ALPHA:g} (rankwise's fixed alpha) and "
                   f"train.lr to {lr_text(ctx.fitting_lr(coupling.ALPHA))}",
                   {"lora.alpha": coupling.ALPHA, "train.lr": ctx.fitting_lr(coupling.ALPHA)})


def model_unknown(ctx: Context) -> Finding | None:
    if ctx.spec is not None:
        return None
    b = ctx.bound
    if b is not None and b.decided:
        skipped = ("shape checks skipped; memory fit judged approximately from the size in its name "
                   f"({b.size.text}: {b.verdict})")
    elif b is not None and b.stand_ins and b.gpu_bytes:
        skipped = (f"memory fit and shape checks skipped (its name's size, {b.size.text}, bounds the peak at "
                   f"{b.range_text()}: undecided)")
    else:
        skipped = "memory fit and shape checks skipped"
    return Finding("checks-skipped", "info", f"model {ctx.cfg.model.name!r} is not known here: {skipped}",
                   "rankwise reads shapes from its catalog, its model index of Hugging Face ids, a local folder "
                   "or the local HF cache; nothing is downloaded unless asked",
                   "add --fetch-config to fetch just this id's config.json (no weights; kept for later runs), or "
                   "pass --model with a catalog name, an indexed HF id or a local folder of the same architecture")


def adapter_start(ctx: Context) -> Finding | None:
    """lora.init / LoRA+: an error where peft cannot start it on this method, else when it is worth it (the
    papers' results, advisor/adapter_init.py)."""
    from . import adapter_init
    from .plan import Plan

    lora = ctx.cfg.lora
    if lora.init == "default" and lora.loraplus_lr_ratio is None:
        return None
    try:
        adapter_init.check(Plan.from_config(ctx.cfg, method=ctx.method))
    except RankwiseError as e:
        return Finding("adapter-start", "error", e.message, "peft cannot start this adapter on this base",
                       e.hint or "", {"lora.init": "default", "lora.init_iters": None})
    parts = ([adapter_init.WHY[lora.init]] if lora.init != "default" else []) + \
        ([adapter_init.WHY["loraplus"]] if lora.loraplus_lr_ratio is not None else [])
    what = " and ".join(([f"lora.init {lora.init}"] if lora.init != "default" else [])
                        + ([f"LoRA+ (ratio {lora.loraplus_lr_ratio:g})"] if lora.loraplus_lr_ratio is not None else []))
    return Finding("adapter-start", "info", f"{what}: when it is worth it", "; ".join(parts),
                   "keep it if the task matches; `rankwise estimate` shows its start-up memory and time")


def distributed_setting(ctx: Context) -> Finding | None:
    """Offload, FSDP sharding or fp32 master weights the run's strategy cannot run: `rankwise train` and
    `estimate` refuse them (advisor/sharding.py), so check says it too, with the first one's fix."""
    from . import sharding
    from .plan import Plan

    if ctx.judged is not None:
        plan = ctx.judged.estimate.plan  # the strategy as advisor.fit resolved it (auto: DDP or FSDP)
    elif ctx.cfg.distributed.strategy != "auto" or ctx.gpus == 1:
        plan = Plan.from_config(ctx.cfg, method=ctx.method, gpus=ctx.gpus)
    else:
        return None  # auto over several GPUs is resolved from the model's memory, unknown here
    found = sharding.problems(plan)
    if not found:
        return None
    message, hint, patch = found[0]
    more = f" (and {len(found) - 1} more once this is fixed)" if len(found) > 1 else ""
    return Finding("distributed-setting", "error", message + more,
                   "`rankwise train` refuses to start it: the launcher has no such combination", hint, patch)


RULES: list[Callable[[Context], Finding | None]] = [
    model_unknown, rank_out_of_range, rank_above_width, dropout_out_of_range, lr_out_of_range, high_rank_high_dropout,
    alpha_below_rank, alpha_far_above_rank, all_modules_low_rank, qlora_high_lr, wont_fit, ddp_wont_fit, too_few_gpus, bf16_unsupported,
    fp16_on_bf16_gpu, seq_beyond_positions, unknown_target_module, trust_remote_code, effective_batch_small,
    effective_batch_large, rslora_off_high_rank, no_grad_checkpointing_long_seq, no_warmup, host_ram_short, disk_short,
    adapter_start, distributed_setting, moe_experts_16bit, packing_linear_attention,
    linear_attention_fallback, mamba_kernel_incomplete,
]


def context(cfg: RunConfig, spec: ModelSpec | None, hw: Hardware | None, method: str | None = None,
            lengths: DataLengths | None = None) -> Context:
    """The rules' view of `cfg`: method, GPUs and fit resolved by advisor.fit (the one answer), the peak at the data's
    `lengths` where given (forecast.data_lengths)."""
    method = method or cfg.method
    target_error = None
    if spec is not None:
        try:
            spec.resolve_targets(cfg.lora.target_modules)
            spec.resolve_parameters(cfg.lora.target_parameters)
        except RankwiseError as e:
            target_error = e.message
    if spec is None or target_error:
        note = f"method {method} as configured"
        if method == "auto":
            method, note = DEFAULT, f"method auto: {METHODS[DEFAULT].label} assumed (the model's size is unknown here)"
        return Context(cfg, spec, hw, method, note, None, None, target_error, fit.run_gpus(cfg, hw))
    judged = fit.assess(spec, cfg, hw, method=None if method == "auto" else method, lengths=lengths)
    return Context(cfg, spec, hw, judged.method, judged.method_reason, judged.estimate, judged.verdict, None,
                   judged.gpus, judged)


def check(cfg: RunConfig, spec: ModelSpec | None, hw: Hardware | None, method: str | None = None,
          lengths: DataLengths | None = None) -> list[Finding]:
    """Every red flag in `cfg` (for `spec` on `hw`), errors first; its fit at the data's `lengths` where given."""
    return run_rules(context(cfg, spec, hw, method, lengths))


def run_rules(ctx: Context) -> list[Finding]:
    found = [f for rule in RULES + ignored.RULES if (f := rule(ctx)) is not None]  # + settings left unused
    return sorted(found, key=lambda f: SEVERITY_ORDER[f.severity])
