"""`rankwise check FILE` as data: a file read, judged on the hardware, and spoken about in its own
language. The CLI (tui/commands/check.py) only renders a `Report`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import RankwiseError
from ..evaluation import eval_forward_bytes, eval_peak_bytes, resident_bytes
from ..finding import SEVERITY_ORDER, Finding
from ..fit import verdict
from . import full_ft
from .full_ft import LORA_ONLY, Floor, HostRam, bounded_finding, full_time, gpus_needed, time_line
from .language import estimated_cfg, localize, multi_gpu, stage_findings
from .mapping import Said, match_targets
from .reading import Reading, resolve_targets, unread_notes

if TYPE_CHECKING:
    from ..hardware import Hardware
    from ..lengths import DataLengths
    from ..redflags import Context
    from ..size_bound import Bound
    from ..time import TimePlan

FIT_ANSWERS = ("fits", "tight", "wont-fit")


@dataclass
class Report:
    reading: Reading
    model: str
    ctx: "Context"
    findings: list[dict]  # localized (language.localize), errors first
    notes: list[str] = field(default_factory=list)
    unresolved: str | None = None  # why the model could not be read
    full: Floor | None = None  # a full fine-tune: estimated apart, not by the LoRA estimate (full_ft.py)
    full_time: "TimePlan | None" = None  # its time (full_ft.full_time)
    full_host: "HostRam | None" = None  # its host RAM (Floor.host_ram)

    @property
    def bound(self) -> "Bound | None":
        """An unresolved model's peak bounded from the size its name states (advisor/size_bound.py)."""
        return self.ctx.bound

    @property
    def method(self) -> str:
        """What trains: the resolved method, or `full` (a full fine-tune, full_ft.py)."""
        return "full" if self.full is not None or self.reading.full else self.ctx.method

    @property
    def method_note(self) -> str:
        if self.full is None and self.reading.full:  # a full fine-tune of a model bounded from its name
            return full_ft.PARTIAL_NOTE if self.reading.partial is not None else full_ft.NOTE
        return self.full.note if self.full is not None else self.ctx.method_note

    @property
    def fit(self) -> str | None:
        """The estimate's verdict, else a bound's when both its ends agree (approximate: `fit_basis`); a full
        fine-tune's is its own (full_ft.Floor.verdict: None when not checked)."""
        if self.full is not None:
            return self.full.verdict
        if self.ctx.fit is not None or self.bound is None:
            return self.ctx.fit
        return self.bound.verdict

    @property
    def fit_basis(self) -> str | None:
        """estimate (the model's shape) | name-size (bounded from the name) | full-floor (a full fine-tune's
        weights, gradients and optimizer states alone over the GPU) | full-estimate (a full fine-tune's whole
        estimate) | None (no answer)."""
        if self.full is not None:
            return self.full.basis if self.fit in FIT_ANSWERS else None
        if self.ctx.fit in FIT_ANSWERS:
            return "estimate"
        return "name-size" if self.bound is not None and self.bound.decided else None

    @property
    def fit_checked(self) -> bool:
        """Whether the memory fit was judged against a GPU (the gate `--require-fit` asks for): from the
        estimate, or from the name's size when the whole bounded range gives one answer."""
        return self.fit in FIT_ANSWERS

    @property
    def unchecked_reason(self) -> str | None:
        if self.fit_checked:
            return None
        if self.full is not None:
            return self.full.unchecked_reason()
        if self.unresolved and self.bound is not None and self.bound.gpu_bytes:
            return f"model {self.model} not resolved offline; {self.bound.why_undecided()}"
        if self.unresolved:
            return f"model {self.model} not resolved offline"
        if self.ctx.target_error:
            return "the target modules do not resolve on this model"
        if self.ctx.fit == "no-gpu":
            return "no GPU found or declared (--gpu NAME or --gpu-mem)"
        return "no estimate"

    @property
    def errors(self) -> int:
        return sum(f["severity"] == "error" for f in self.findings)


def _matcher(reading: Reading):
    """The file's target modules as peft would match them on a list of linear names (a stand-in's), when the
    file wrote them in its own way (a regex, dotted paths); None: the config's list says it."""
    if reading.targets is None:
        return None
    raw, _, how = reading.targets
    return lambda names: match_targets(raw, how, names)[0]


def _no_layer_norm(reading: Reading, spec) -> None:
    """axolotl's liger_layer_norm changes nothing the estimate counts: its "not modelled" becomes a note. Liger's
    apply functions take `layer_norm` only for the model types in advisor/liger.py LAYER_NORM_TYPES, and there it
    replaces the LayerNorms of the vision (or audio) tower: their language models' norms are RMSNorm (transformers'
    modeling files: nn.LayerNorm only in the Siglip / vision-encoder / audio classes). The estimate counts the
    language model's layers."""
    from .. import liger

    said = [s for s in reading.said if s.code == "not-modelled" and s.key == "liger_layer_norm"]
    if not said:
        return
    reading.said = [s for s in reading.said if s not in said]
    model_type = spec.config.get("model_type")
    if model_type in liger.LAYER_NORM_TYPES:
        reading.notes.append(f"liger_layer_norm: Liger's LayerNorm goes to the vision (or audio) tower of model type "
                             f"{model_type}, whose language model's norms are RMSNorm: no change to the estimate, "
                             "which counts the language model's layers")
    else:
        reading.notes.append(f"liger_layer_norm: Liger has no LayerNorm to patch in model type {model_type} (its "
                             "norms are RMSNorm): no effect")


# axolotl's fused LoRA kernels: its key → (activations.fused_lora_bytes kernel, what it keeps, what it drops)
FUSED_LORA = {"lora_mlp_kernel": ("mlp", "fused LoRA MLP keeps gate and up and recomputes the rest in backward",
                                  "act(gate) and down_proj's LoRA input"),
              "lora_qkv_kernel": ("qkv", "fused LoRA QKV keeps its input once for q, k and v",
                                  "each projection's own copy of its LoRA input")}


def _linear_experts(reading: Reading, spec):
    """axolotl's llama4_linearized_experts: on a Llama 4 its patched Llama4TextExperts holds one nn.Linear per expert
    (ModelSpec.with_linear_experts), so QLoRA stores them in 4 bits like every other linear and LoRA's all-linear
    reaches them; elsewhere the patch is not applied (loaders/patch_manager.py: model_config_type llama4)."""
    if not spec.model_type.startswith("llama4") or not spec.is_moe:
        reading.notes.append(f"llama4_linearized_experts: axolotl applies it to Llama 4 only; model type "
                             f"{spec.model_type} loads as it is")
        return spec
    reading.notes.append("llama4_linearized_experts: the experts load as one nn.Linear each (axolotl's linearized "
                         "Llama 4): a 4-bit method stores them in 4 bits with the other linears, and all-linear "
                         "adapts them; every expert still runs on every token (transformers' Llama 4 MoE)")
    return spec.with_linear_experts()


def _fused_kernels(reading: Reading, said: list[Said], spec, est) -> list[Said]:
    """axolotl's lora_mlp_kernel / lora_qkv_kernel, said with what they save at the peak (the estimate of the same
    plan with the kernel, activations.fused_lora_bytes) in place of "not modelled", and lora_o_kernel with what it
    keeps; the fit stays transformers' layers under peft (the estimate an upper bound for this run)."""
    from ..memory import estimate

    done = []
    for s in said:
        if s.code != "not-modelled" or s.key not in (*FUSED_LORA, "lora_o_kernel"):
            continue
        done.append(s)
        if s.key == "lora_o_kernel":  # LoRA_O saves o_proj's input, as peft's LoRA branch does its copy of it
            reading.notes.append("lora_o_kernel: axolotl's fused LoRA O keeps o_proj's input as peft's LoRA branch "
                                 "does (less only lora_B's r-wide input, bytes a token): the estimate holds")
            continue
        kernel, keeps, drops = FUSED_LORA[s.key]
        fused = estimate(spec, replace(est.plan, fused_lora=(kernel,)))
        saved = est.peak_bytes - fused.peak_bytes
        where = ("one layer's, recomputed under gradient checkpointing" if est.plan.grad_checkpointing
                 else "every layer's")
        if saved > 0:
            what = f"~{saved / 2 ** 30:.2f} GiB less at the peak ({where} {drops})"
        elif kernel == "mlp" and spec.is_moe:
            what = ("nothing estimated here (an MoE's routed experts are not the MLP it fuses; a shared expert's MLP "
                    "would save a little, not counted)")
        else:
            what = ("nothing at this run's peak (it fuses only where every projection it covers carries LoRA, and "
                    "saves only where the layer's tensors are kept at the peak)")
        reading.notes.append(f"{s.key}: axolotl's {keeps}: {what}; the fit is judged on transformers' layers, an "
                             "upper bound for this run")
    return [s for s in said if s not in done]


def _unmatched(reading: Reading, spec) -> list[Said]:
    """axolotl unfrozen_parameters patterns that match no parameter of the model as transformers names it: they
    unfreeze nothing, so what they were written for stays frozen (a name from another transformers version, or a
    pattern that does not start at the name's start)."""
    if not isinstance(reading.partial, full_ft.Unfrozen):
        return []
    missed = reading.partial.unmatched(spec)
    if not missed:
        return []
    key = reading.partial.key
    hints = [f"{p} → {hit}" for p, hit in ((p, reading.partial.closest(spec, p)) for p in missed) if hit]
    return [Said("unfrozen-unmatched", "warning", key,
                 f"{key}: {', '.join(missed)} match{'es' if len(missed) == 1 else ''} no parameter of "
                 f"{spec.name}: {'it unfreezes' if len(missed) == 1 else 'they unfreeze'} nothing",
                 "axolotl matches each pattern from the start of the parameter's name (re.match, dots literal) as "
                 "the loaded model names it (model.layers.N.mlp.experts..., model.language_model... in a "
                 "vision-language model; a head tied to the embedding is listed once, under the embedding's name)",
                 "start each pattern at the name's start" + (f" (the model's names: {'; '.join(hints)})" if hints
                                                             else "") + ", or drop it")]


def _shipped(reading: Reading, spec) -> None:
    """A pre-quantized base the estimate models (GPTQ/AWQ/AQLM, from its config.json or what its name says):
    the mappers' name-based "not modelled" for it is replaced by a note of the storage estimated."""
    from ..methods import PreQuantized

    pre = PreQuantized.of(spec.config)
    if pre is None:
        return
    said = [s for s in reading.said if s.code == "not-modelled" and "pre-quantized" in s.message]
    reading.said = [s for s in reading.said if s not in said]
    if said:
        reading.notes.append(f"estimated in its shipped storage: {pre.describe()}")


# Model types whose recurrent layers axolotl keeps packed examples apart in: its monkeypatch/models/{qwen3_next,
# qwen3_5, qwen3_5_moe, nemotron_h, granitemoehybrid, falcon_h1} patches thread cu_seqlens / seq_idx into fla or
# mamba-ssm, and Kimi Linear's own code takes them. Not Jamba or LFM2: axolotl packs those with position_ids alone
# (monkeypatch/multipack.py; its loader even refuses causal-conv1d for LFM2), so their warning stands.
AXOLOTL_BOUNDS = frozenset({"qwen3_next", "qwen3_5", "qwen3_5_moe", "nemotron_h", "granitemoehybrid", "falcon_h1",
                            "kimi_linear"})


def _axolotl_packing(f: Finding, spec) -> Finding:
    """axolotl packs with each example's bounds passed to the recurrent layers (Gated DeltaNet: cu_seqlens; Mamba2:
    seq_idx, its monkeypatch/models/{nemotron_h,granitemoehybrid,falcon_h1} patches), through their kernel packages:
    transformers' torch fallbacks take no bounds. Its run needs the package rather than unpacked rows."""
    from ..architecture_flags import INSTALL, RECURRENT_KERNELS, recurrent_layers

    _, kind = recurrent_layers(spec)
    package = RECURRENT_KERNELS[kind][0]
    return replace(f, severity="info",
                   message=f.message.split(":")[0] + f": axolotl passes each packed example's bounds to the {kind} "
                   f"layers, which needs {package}",
                   why=f"axolotl keeps packed examples apart in these layers through {package}'s kernels (its Qwen3.5 "
                   "README: without FLA training raises on packed sequences; its Mamba2 patches thread seq_idx into "
                   "mamba-ssm); rankwise's own packing restarts position_ids, which these layers do not read",
                   fix=f"{INSTALL[kind]} where it trains (or turn data.packing off)", patch=None)


def _missing_data(reading: Reading) -> list[Finding]:
    """A rankwise preset's data files (and the adapter it continues) that are not on this machine: `train` stops on
    them (exit 2) before a run starts. Info: a preset is often checked away from the server it trains on, and the
    shipped GPU presets name data/train.jsonl for the user to put there. A foreign file's data (hub names,
    dataset_info entries) is its tool's to find."""
    if reading.tool is not None:
        return []
    from pathlib import Path

    cfg = reading.cfg
    return [Finding("data-not-found", "info", f"{key} {path} is not on this machine",
                    "train reads it before the run starts and stops there (exit 2)",
                    f"put it there, or point {key} at it (a preset's relative path is read from its folder)")
            for key, path in (("data.path", cfg.data.path), ("data.val_path", cfg.data.val_path),
                              ("lora.init_from", cfg.lora.init_from))
            if path and not Path(path).expanduser().exists()]


def _data_lengths(reading: Reading, spec) -> "DataLengths | None":
    """A rankwise preset's own data on this machine: the fit judged at its longest row, as `train` judges it
    (forecast.data_lengths). Not a foreign file's: its tool finds the data, and may pad every row to the length."""
    if reading.tool is not None or spec is None:
        return None
    from ..forecast import data_lengths

    return data_lengths(reading.cfg, spec)


def judge(reading: Reading, hw: "Hardware", model: str | None = None, method: str | None = None) -> Report:
    """Read → resolved model (or, unresolved, a bound from its name's size) → red flags, ignored settings
    and the file's own findings."""
    from .. import fit, size_bound
    from ..model import load_model, load_written
    from ..redflags import context, run_rules

    name = model or reading.cfg.model.name
    spec, unresolved = None, None
    try:
        spec, note = (load_model(name), None) if model else load_written(name)  # --model: a bad flag is exit 2
    except RankwiseError as e:
        if model:
            raise
        unresolved = e.message + (f" ({e.hint})" if e.hint else "")
    else:
        if note:  # a path on the server the file was written for
            reading.notes.append(note)
        spec = spec.with_score_head(reading.score_head)  # a reward model: a score head, not the vocabulary
        if reading.linear_experts:  # axolotl's linearized Llama 4: its experts are linears
            spec = _linear_experts(reading, spec)
    cfg = reading.cfg
    if spec is not None:
        _shipped(reading, spec)
        _no_layer_norm(reading, spec)
        cfg = resolve_targets(reading, spec)
        reading.cfg = cfg
    lengths = _data_lengths(reading, spec)
    ctx = context(estimated_cfg(reading, cfg), spec, hw, method, lengths)
    if spec is None:
        auto = None if (method or cfg.method) != "auto" else size_bound.auto_method(name, ctx.cfg, hw,
                                                                                    _matcher(reading))
        if auto is not None:  # method auto resolved on the name's size, as fit.assess does on a known model's
            ctx = replace(ctx, method=auto[0], method_note=auto[1], bound=auto[2])
        else:
            ctx = replace(ctx, bound=size_bound.bound(name, ctx.cfg, hw, ctx.method, _matcher(reading)))
    if spec is None and reading.full:  # a full fine-tune of a model known by its name's size: bounded as one
        ctx = replace(ctx, bound=full_ft.bound_of(reading, name, ctx.cfg, hw))
    findings = run_rules(ctx)
    if reading.tool is not None and reading.tool.kind == "axolotl":
        findings = [_axolotl_packing(f, spec)
                    if f.code == "packing-linear-attention" and spec.model_type in AXOLOTL_BOUNDS else f
                    for f in findings]
    if reading.tool is not None and ctx.gpus == 1:  # written for several GPUs, judged on one: multi-gpu-config
        findings = [f for f in findings if f.code != "distributed-setting"]  # says so; rankwise's launcher is not theirs
    findings, said = stage_findings(reading, findings)
    said = list(reading.said) + said
    if spec is not None and ctx.judged is not None and reading.tool is not None \
            and cfg.distributed.strategy not in ("auto", "ddp") and ctx.judged.gpus == 1 and hw.has_gpu:
        from ..config import with_values

        need = fit.min_gpus(spec, with_values(cfg, {"distributed.gpus": 8}), ctx.method, hw, ctx.lengths)
        extra = multi_gpu(reading, ctx.judged, need)
        if extra:
            said.append(extra)
    full, full_plan, disk_note, ram = None, None, [], None
    if reading.full and (spec is None or ctx.judged is not None):  # the LoRA rules are not this run's
        findings = [f for f in findings if f.code not in LORA_ONLY]
        said = [s for s in said if s.code not in LORA_ONLY and not (s.code == "not-modelled" and s.key == reading.full)]
    if reading.full and spec is None and ctx.bound is not None:  # the bound is
        said.append(bounded_finding(reading.full, ctx.bound))
    if reading.full and spec is not None and ctx.judged is not None:  # nor is the LoRA estimate
        full = full_ft.of_reading(reading, spec, ctx.cfg, hw)
        said += _unmatched(reading, spec)
        more = None
        shards = cfg.distributed.strategy in ("fsdp", "deepspeed") or reading.zero is not None  # more GPUs help
        if full.verdict in ("wont-fit", "tight") and full.gpus == 1 and shards:
            more = gpus_needed(reading, spec, ctx.cfg, hw, cfg.distributed.strategy)
        said.append(full.finding(ctx.judged.peak_gib, more))
        keep = cfg.train.save_total_limit + 1 if "train.save_total_limit" in reading.origin else None  # HF: all
        host = hw.host if hw is not None and hw.source == "probe" else None  # a declared machine's disk is not here
        line, short = full.disk(keep, host.disk_free_bytes if host else None, host.disk_path if host else None)
        full_plan = full_time(spec, ctx.cfg, hw, full)
        ram = full.host_ram(spec, ctx.cfg, hw, reading.state_dict)
        disk_note = [time_line(full_plan), line] + ([ram.line()] if ram is not None else [])
        for found in (short, ram.finding() if ram is not None else None):
            if found is not None:
                findings.append(found)
    findings += _missing_data(reading)
    if spec is not None and ctx.estimate is not None:
        said += eval_said(reading, spec, ctx, full)
        if full is None:
            said = _fused_kernels(reading, said, spec, ctx.estimate)
            said = _zero_lora(reading, said, spec, ctx)
    out = [localize(f, reading) for f in findings] + [localize(s, reading) for s in said]
    out.sort(key=lambda d: SEVERITY_ORDER[d["severity"]])
    notes = reading.notes + disk_note + unread_notes(reading) + ([lengths.note] if lengths is not None else [])
    if reading.full and reading.defaulted:  # the tool's LoRA defaults play no part in a full fine-tune (resolved or not)
        prefix = f"{reading.tool.label} defaults used: "
        kept = [f"{d.dotted} {d.value}" for d in reading.defaulted.values() if not d.dotted.startswith("lora.")]
        notes = [n for n in notes if not n.startswith(prefix)] + ([prefix + ", ".join(kept)] if kept else [])
    if reading.blank:
        notes.append(f"blank (read as unset): {', '.join(reading.blank)}")
    return Report(reading, name, ctx, out, notes, unresolved, full, full_plan, ram)


def _zero_lora(reading: Reading, said: list[Said], spec, ctx) -> list[Said]:
    """A LoRA run under DeepSpeed ZeRO-1/2 (Reading.zero), judged as DDP: in DDP's gradient buckets' place,
    DeepSpeed's contiguous reduce buckets (full_ft.zero_bucket_bytes), at their full size however few weights train.
    Said with the peak they give (an error where it will not fit, as eval_said does) in place of "not modelled"."""
    est, zero = ctx.estimate, reading.zero
    if zero is None or zero.stage not in (1, 2) or est.plan.gpus < 2 or est.plan.sharded:
        return said
    if not zero.contiguous:  # no reduce buckets: DeepSpeed reduces each gradient as it is, about DDP's judged
        return said
    mine = [s for s in said if s.code == "not-modelled" and s.key == "deepspeed"]
    stage, bucket, overlap = zero.stage, zero.reduce_bucket, zero.overlap
    buckets = full_ft.zero_bucket_bytes(zero, spec.hidden_size, est.plan.dtype_bytes)
    ddp = est.components.get("ddp_buckets", 0)
    peak = est.peak_bytes - ddp + buckets
    gpu = ctx.judged.gpu_bytes if ctx.judged is not None else None
    fit = verdict(peak, gpu) if gpu else None
    size = "DeepSpeed's default 5e8" if bucket is None else "auto: hidden_size²" if bucket == "auto" else f"{bucket:g}"
    msg = (f"deepspeed: ZeRO-{stage} with LoRA: its reduce bucket{'s' if overlap else ''} ({size} elements"
           f"{', two with overlap_comm' if overlap else ''}) take {buckets / 2 ** 30:.2f} GiB per GPU where DDP's "
           f"take {ddp / 2 ** 30:.2f}: ~{peak / 2 ** 30:.1f} GiB per GPU")
    why = (f"ZeRO-{stage} partitions the trained weights' optimizer states{' and gradients' if stage == 2 else ''}, "
           "a few MB for an adapter, and allocates its reduce buckets at full size each backward (deepspeed "
           "runtime/zero/stage_1_and_2.py setup_buckets)")
    fix = "drop the DeepSpeed config for a LoRA run (plain DDP: rankwise's), or set reduce_bucket_size: auto"
    before = ctx.judged.verdict if ctx.judged is not None else None
    worse = fit != before and fit in ("wont-fit", "tight")  # the buckets move the verdict (else wont-fit says it)
    severity = {"wont-fit": "error", "tight": "warning"}.get(fit, "info") if worse else "info"
    if fit in ("wont-fit", "tight"):
        msg += f", {'over' if fit == 'wont-fit' else 'tight on'} {gpu / 2 ** 30:.1f} GiB"
    return [s for s in said if s not in mine] + [Said("zero-buckets", severity, "deepspeed", msg, why, fix)]


def eval_said(reading: Reading, spec, ctx, full: Floor | None) -> list[Said]:
    """An evaluation batch the file sets, where the run evaluates: its forward (advisor/evaluation.py) beside what
    training leaves resident, said when it sets the peak (an error when it will not fit)."""
    if reading.eval_batch is None or not (reading.cfg.data.val_ratio > 0 or reading.evaluates):
        return []
    key, rows = reading.eval_batch
    est = ctx.estimate
    if full is not None and full.peak is not None:  # its weights and states, beside the rest's resident parts
        train = full.peak
        peak = full.weights + full.states + resident_bytes(full.rest) + eval_forward_bytes(spec, est.plan, rows)
    else:
        train, peak = est.peak_bytes, eval_peak_bytes(spec, est, rows)
    if peak <= train:
        return []
    gpu = ctx.judged.gpu_bytes if ctx.judged is not None else None
    fit = verdict(peak, gpu) if gpu else None
    micro = reading.cfg.train.micro_batch
    msg = (f"{key}: {rows}: evaluation sets the peak: ~{peak / 2 ** 30:.1f} GiB per GPU ({rows} x "
           f"{est.plan.seq_len} tokens of logits beside the weights and optimizer states), above training's "
           f"~{train / 2 ** 30:.1f} GiB")
    why = ("evaluation runs between training steps with the model and optimizer states still on the GPU, and the "
           "loss over every evaluated token's vocabulary-sized logits")
    if fit == "wont-fit":
        return [Said("eval-batch", "error", key, msg + f", over {gpu / 2 ** 30:.1f} GiB: the run dies at its first "
                     "evaluation", why, f"{key}: {micro} (the training micro-batch)", {key: micro})]
    if fit == "tight":
        return [Said("eval-batch", "warning", key, msg + f", tight on {gpu / 2 ** 30:.1f} GiB", why,
                     f"{key}: {micro} (the training micro-batch)", {key: micro})]
    return [Said("eval-batch", "info", key, msg, why, "none needed", None)]
