"""The machinery every foreign tool shares: a tool's description, mapping one key at a time,
peft's target-module semantics, and the reverse map that writes a fix as the tool's keys.

A `Tool` says, for one foreign config format: which keys map to which rankwise keys (`table`,
one `Mapper` per key), the tool's own defaults where they differ from rankwise's
(`defaults`, each with its source), which keys change memory or advice in ways rankwise
does not estimate (`not_modelled`: key → what it changes), which keys it knows at all (a typo
is then told from a setting rankwise need not read), and how a rankwise key is written back
as the tool's keys (`reverse`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import config
from ..methods import METHODS

Mapper = Callable[[Any, "Out"], None]


@dataclass(frozen=True)
class Said:
    """A finding about a foreign key: code, severity, the foreign key (dotted path for nested
    layouts), message, why, fix, and the fix as the tool's keys."""

    code: str
    severity: str
    key: str
    message: str
    why: str
    fix: str
    patch: dict | None = None  # the tool's keys


@dataclass
class Out:
    """What mapping a file produces: rankwise dotted values, where each came from, notes, findings."""

    values: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # dotted rankwise key → foreign key
    notes: list[str] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    targets: tuple[Any, str, str] | None = None  # (raw value, foreign key, "regex" | "names")
    stage: str | None = None  # a preference stage (dpo, kto, orpo, ...) or None for SFT
    full: str | None = None  # the key that makes it a full fine-tune (advisor/foreign/full_ft.py), or None
    partial: Any = None  # full_ft.Freeze where only some weights train, else None
    # the precision the tool trains a full fine-tune in where it departs from the file's (LLaMA-Factory v1: fp32), used
    # for the full fine-tune only (its LoRA alternative keeps the file's); None: the file's
    full_precision: str | None = None
    eval_batch: tuple[str, int] | None = None  # (the key, the rows) of an evaluation batch the file sets
    evaluates: bool = False  # the file names an evaluation set (beside a validation split: data.val_ratio)
    loads_fp32: bool = False  # the model loads in float32 (TRL's ModelConfig dtype default)
    score_head: int = 0  # a reward model's classification outputs in place of lm_head (ModelSpec.with_score_head)
    linear_experts: bool = False  # the experts load as one nn.Linear each (ModelSpec.with_linear_experts)
    paired_rows: bool = False  # chosen and rejected answers both run (a reward model's pairs): twice the micro-batch
    reference: bool | None = None  # a full fine-tune keeps a reference copy (None: as its stage says, full_ft)
    state_dict: str | None = None  # FSDP checkpoints: "full" (rank 0 gathers them) | "sharded"; None: unset
    fsdp_version: int | None = None  # FSDP 1 or 2 where the file says (the state dict's default follows it)
    # DeepSpeed ZeRO-1/2 (judged as DDP for a LoRA run): (stage, reduce_bucket_size as written or None, overlap_comm),
    # which a full fine-tune shards by (full_ft.floor)
    zero: Any = None  # deepspeed_file.Zero12 where the file sets ZeRO-1/2
    extra: dict = field(default_factory=dict)  # what a tool's `finish` combines (axolotl batch_size)
    key: str = ""  # the foreign key being mapped

    def set(self, dotted: str, value: Any) -> None:
        self.values[dotted] = value
        self.origin[dotted] = self.key

    def default(self, dotted: str, value: Any) -> None:
        if dotted not in self.values:
            self.set(dotted, value)

    def not_modelled(self, what: str, fix: str = "", patch: dict | None = None, severity: str = "info") -> None:
        self.said.append(Said("not-modelled", severity, self.key, f"{self.key}: not modelled: {what}",
                              "rankwise's estimate and checks do not include this setting's effect",
                              fix or "read the estimate with this in mind", patch))


@dataclass(frozen=True)
class Default:
    """A tool's own default for a rankwise key, applied when the file leaves the key unset."""

    dotted: str
    value: Any
    source: str  # file:line-ish citation at the fetched commit
    unless: tuple[str, ...] = ()  # not applied when one of these rankwise keys is set (it would be ignored)
    quantized_only: bool = False  # only for a quantized base (quant.*): elsewhere the tool never reads it


@dataclass(frozen=True)
class Tool:
    kind: str  # the name `check` reports (axolotl, llama-factory)
    label: str
    layout: str  # the format's variant (flat, v1)
    table: dict[str, Mapper]
    defaults: tuple[Default, ...]
    not_modelled: dict[str, str]  # key → what it changes (reported when set to something other than off)
    known: frozenset[str]  # every key the tool accepts
    unknown_severity: str  # error: the tool refuses unknown keys; warning: it drops them
    reverse: dict[str, Callable[[Any], dict]]  # rankwise dotted key → {tool key: value}
    renames: dict[str, str] = field(default_factory=dict)  # dotted → tool key where values read the same
    finish: Callable[[Out], None] | None = None  # what needs several keys at once
    preference: dict[str, str] = field(default_factory=dict)  # stage → paired | unpaired | online
    stage_key: str = ""  # the key naming the training stage


# ------------------------------------------------------------------ mappers


def to(dotted: str, convert: Callable[[Any], Any] = lambda v: v) -> Mapper:
    def put(value, out):
        out.set(dotted, convert(value))
    put.dotted = dotted  # type: ignore[attr-defined]  # read by renames_of
    return put


# FSDP sharding strategies as the HF TrainingArguments `fsdp` option words (axolotl's fsdp list, LLaMA-Factory's
# flat `fsdp` key: transformers' FSDPOption) and fsdp_config's *_sharding_strategy, in lower case
FSDP_SHARDING = {"full_shard": "full", "shard_grad_op": "shard_grad_op", "hybrid_shard": "hybrid",
                 "no_shard": "no_shard"}


def fsdp_words(value, out: "Out") -> None:
    """`fsdp: [full_shard, auto_wrap]` / `fsdp: "no_shard offload"`: FSDP, its sharding and CPU offload."""
    if value:
        out.set("distributed.strategy", "fsdp")
        words = [str(v).lower() for v in value] if isinstance(value, list) else str(value).lower().split()
        if any("offload" in w for w in words):  # FSDP's CPUOffload: parameters, gradients and optimizer together
            out.set("distributed.offload", "params_and_optimizer")
        for w in words:
            if w in FSDP_SHARDING:
                out.set("distributed.fsdp_sharding", FSDP_SHARDING[w])


def steps(dotted: str) -> Mapper:
    """A step count where -1/0 means "unset" (both tools, after HF TrainingArguments)."""
    def put(value, out):
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            return
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, float) and 0 < value < 1 and dotted == "train.warmup_steps":
            out.set("train.warmup_ratio", value)  # HF Trainer reads a warmup_steps below 1 as a ratio
            return
        elif isinstance(value, float) and 0 < value < 1:  # save/eval/logging steps below 1: a ratio of the run
            out.notes.append(f"{out.key} {value:g} is a ratio of the total steps (HF TrainingArguments): not read")
            return
        out.set(dotted, value)
    put.dotted = dotted  # type: ignore[attr-defined]
    return put


def not_modelled(what: str) -> Mapper:
    def put(value, out):
        if value not in (False, None, "", 0, [], {}):
            out.not_modelled(what)
    return put


# HF transformers' scheduler names (both tools use them) that rankwise's three cover
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant", "constant_with_warmup": "constant",
              "cosine_with_min_lr": "cosine", "cosine_with_restarts": "cosine", "warmup_stable_decay": "constant",
              "one_cycle": "cosine", "rex": "linear", "polynomial": "linear", "inverse_sqrt": "linear",
              "reduce_lr_on_plateau": "constant"}
# optimizer names → rankwise's, by the memory their states take (fused/32-bit AdamW: two fp32 states). torchao's
# AdamW8bit (the HF Trainer's adamw_torch_8bit) keeps what bitsandbytes' does: int8 states, an fp32 scale per block of
# 256 (torchao/optim README: "block size is 256 for 8-bit"); its AdamW4bit (adamw_torch_4bit, blocks of 128) about
# half that, estimated as 8-bit (`optimizer` says so)
OPTIMS = {"adamw_torch": "adamw_torch", "adamw_torch_fused": "adamw_torch", "adamw_hf": "adamw_torch",
          "adamw_apex_fused": "adamw_torch", "paged_adamw_32bit": "adamw_torch", "adamw_torch_4bit": "adamw_8bit",
          "adamw_torch_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit", "adamw_8bit": "adamw_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
          "ademamix_8bit": "adamw_8bit", "paged_ademamix_8bit": "paged_adamw_8bit"}
OPTIMS_BACK = {"adamw_torch": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit"}


def scheduler(value, out):
    name = str(value)
    mapped = SCHEDULERS.get(name, value)
    if mapped != value and name not in config.SCHEDULERS:
        out.notes.append(f"{out.key} {value!r} checked as {mapped!r}")
    out.set("train.scheduler", mapped)


def optimizer(value, out):
    name = str(value)
    if name in OPTIMS:
        out.set("train.optimizer", OPTIMS[name])
        if name == "adamw_torch_4bit":
            out.notes.append(f"{out.key} adamw_torch_4bit: torchao's 4-bit AdamW states estimated as 8-bit ones "
                             "(about twice their size: an upper bound)")
    else:
        out.not_modelled(f"optimizer {value!r}: its state memory (AdamW's two fp32 states per trainable "
                         "weight are assumed)")


PRE_QUANTIZED_MARKS = ("gptq", "awq", "aqlm", "exl2", "bnb-4bit", "hqq", "nvfp4")


def model_name(value, out):
    """The base model's name (axolotl base_model, LLaMA-Factory and TRL model_name_or_path); a name that says
    it ships quantized is said."""
    out.set("model.name", value)
    name = str(value).lower()
    for q in PRE_QUANTIZED_MARKS:
        if q in name:
            out.not_modelled(f"a pre-quantized {q.upper()} base: its weights take ~2-4 bits, the estimate counts "
                             "them as the method's base (16-bit for LoRA)")
            break


# attention kernels that, like SDPA's flash and memory-efficient ones, keep no seq x seq scores for backward (a
# logsumexp per head and row instead): xFormers' memory-efficient attention, flex attention, FlashAttention 3 (the
# hub's kernels-community builds), paged/sdpa variants. The estimate's SDPA holds what they hold; their speed differs.
MEMORY_EFFICIENT_ATTENTION = ("xformers", "flex_attention", "flash", "sdpa", "mem_efficient")


def attention(value, out):
    """attn_implementation (axolotl, TRL's ModelConfig) → train.attention."""
    name = str(value).lower()
    if str(value) in config.ATTENTIONS:
        out.set("train.attention", str(value))
    elif any(k in name for k in MEMORY_EFFICIENT_ATTENTION):
        out.notes.append(f"{out.key} {value}: estimated as SDPA, which holds the same (no seq x seq scores); its "
                         "speed differs and rankwise trains with SDPA")
    elif name not in ("none", "false"):
        out.not_modelled(f"attention kernel {value}: activation memory and speed (the estimate assumes SDPA)")


def named_template(key: str, value: Any, own: str, out: Out) -> None:
    """A tool's named chat template: `chatml` is rankwise's built-in (model.chat_template); another name is the
    tool's own rendering (`own` describes it), said: rankwise renders chat rows with the tokenizer's own."""
    if value == "chatml":
        out.set("model.chat_template", "chatml")
        return
    out.notes.append(f"{key} {value}: {own}; rankwise renders chat rows with the tokenizer's own template (the same "
                     "format on an instruct model of that family); for a base model without one, set "
                     "model.chat_template (chatml, or a Jinja file)")


def from_adapter(value: Any, out: Out) -> None:
    """A trained adapter the run continues (axolotl lora_model_dir, LLaMA-Factory adapter_name_or_path): the tool
    loads it with peft's PeftModel.from_pretrained, taking its r and targets from the adapter's own config."""
    if not value:
        return
    if isinstance(value, str) and "," not in value:
        out.set("lora.init_from", value)
        out.notes.append(f"{out.key} {value}: lora.init_from; the tool reads the adapter's r and targets from it, "
                         "rankwise from this config, and `train` checks that they match")
    else:  # LLaMA-Factory: several, merged into the base before a new adapter trains
        out.notes.append(f"{out.key} {value}: several adapters merged into the base before a new one trains; "
                         "rankwise continues one adapter (lora.init_from)")


def liger(value, out):
    """A switch for Liger's kernels (LLaMA-Factory enable_liger_kernel, TRL use_liger_kernel) → train.kernels."""
    if value is True:
        out.set("train.kernels", "liger")


def offload_where_checkpointing(out, key: str) -> bool:
    """A tool's activation offload (TRL's activation_offloading, LLaMA-Factory's use_unsloth_gc), read in its `finish`
    once checkpointing is known: train.activation_offload where checkpointing is on (both then move the checkpointed
    inputs); False where it is off."""
    if not out.values.get("train.grad_checkpointing", True):
        return False
    out.key = key
    out.set("train.activation_offload", True)
    return True


def checkpointing_kwargs(value, out):
    """gradient_checkpointing_kwargs: {use_reentrant: ...} goes to the HF Trainer as is."""
    if isinstance(value, dict) and isinstance(value.get("use_reentrant"), bool):
        out.set("train.checkpointing_reentrant", value["use_reentrant"])


def eval_batch(value, out):
    """The evaluation batch (axolotl eval_batch_size, LLaMA-Factory per_device_eval_batch_size): judged in
    report.py against the GPU when the file evaluates (advisor/evaluation.py)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        out.eval_batch = (out.key, value)


def evaluates(value, out):
    """An evaluation dataset (axolotl test_datasets, LLaMA-Factory eval_dataset): the run evaluates."""
    if value:
        out.evaluates = True


def precision_bf16(value, out):
    if out.values.get("train.precision") == "pure_bf16":  # LLaMA-Factory's pure_bf16 names the mode either way
        return
    if value is True or value == "full":
        out.set("train.precision", "bf16")
    elif value == "auto":
        out.set("train.precision", "auto")
    elif value is not False:
        out.set("train.precision", value)  # invalid: reported at its line


DS_PARENTS = 3  # folders above the config looked in for a relative DeepSpeed path (a checkout's examples/x/y.yaml)


def _deepspeed_json(value, out) -> tuple[dict | None, str]:
    """The DeepSpeed config a `deepspeed:` value names → (its dict or None, how it was found). A dict is the
    config inline (HF TrainingArguments takes one); a path is read from the working directory, where both
    tools' trainers open it, then beside the config file. Plain JSON (deepspeed_file.load_json)."""
    from .. import deepspeed_file
    from ..errors import RankwiseError

    if isinstance(value, dict):
        return value, "inline"
    path = Path(str(value)).expanduser()
    beside = out.extra.get("config_dir")
    # the tools open it from where they run (their checkout's root, where the shipped examples' paths start:
    # axolotl's deepspeed_configs/..., LLaMA-Factory's examples/deepspeed/...): the working directory, beside the
    # config, then the config's parent folders
    above = list(Path(beside).resolve().parents)[:DS_PARENTS] if beside is not None else []
    for where in (Path.cwd(), beside, *above):
        if where is None:
            continue
        p = path if path.is_absolute() else Path(where) / path
        try:
            found = p.is_file()
        except (OSError, ValueError):  # a name too long for the file system (is_file raises ENAMETOOLONG), a NUL
            found = False
        if found:
            try:
                return deepspeed_file.load_json(p), str(p)
            except RankwiseError as e:
                return None, e.message
    return None, "not found in the working directory, beside the config or in the folders above it"


def deepspeed(value, out):
    """A DeepSpeed config (both tools take a path; HF takes a dict): ZeRO-3 is estimated as sharded (like
    FSDP), its offload from the file's offload_param / offload_optimizer; ZeRO-0/1/2 as DDP, said, since
    ZeRO-1/2 shard optimizer states (and gradients) across GPUs. A file that cannot be found is judged by its
    name (axolotl's and LLaMA-Factory's shipped names say the stage and the offload), said."""
    if not value:
        return
    data, how = _deepspeed_json(value, out)
    if data is None:
        name = str(value).lower()
        stage = 3 if ("zero3" in name or "zero_3" in name or "z3" in name) else \
            2 if ("zero2" in name or "zero_2" in name or "z2" in name) else \
            1 if ("zero1" in name or "zero_1" in name or "z1" in name) else None
        # axolotl zero3_bf16_cpuoffload_params.json offloads parameters only; its zero3_bf16_cpuoffload_all.json
        # and LLaMA-Factory's ds_z3_offload_config.json offload both
        param = "offload" in name
        optim = param and "offload_param" not in name
        out.notes.append(f"{out.key}: {value}: {how}; judged by its name as "
                         + (f"ZeRO-3{' with CPU offload' if param else ''}" if stage == 3 else "ZeRO-0/1/2"))
    else:
        zero = data.get("zero_optimization") if isinstance(data.get("zero_optimization"), dict) else {}
        try:
            stage = int(zero.get("stage", 0))
        except (TypeError, ValueError):
            stage = None
        from ..deepspeed_file import OFFLOAD_DEVICES, device

        devices = device(zero, "offload_param"), device(zero, "offload_optimizer")
        param, optim = (d in OFFLOAD_DEVICES for d in devices)
        if "nvme" in devices:
            out.not_modelled(f"{value}: NVMe offload is judged as CPU offload (the GPU side is the same; host RAM "
                             "and disk are not)")
    if stage == 3:
        out.set("distributed.strategy", "deepspeed")
        if param:
            out.set("distributed.offload", "params_and_optimizer" if optim else "params")
        elif optim:
            out.not_modelled(f"{value}: ZeRO-3 offloads the optimizer states only (offload_optimizer without "
                             "offload_param); rankwise offloads parameters too or nothing, so this is estimated "
                             "without offload: the optimizer states are counted on the GPU (an over-estimate)",
                             "distributed.offload: params_and_optimizer to estimate both in host RAM")
        if data is not None and how != "inline":  # the file: its buckets and prefetch limits, estimated and run
            out.set("distributed.deepspeed_config", str(Path(how).resolve()))
        elif data is not None:
            out.notes.append(f"{out.key}: ZeRO-3 written inline; rankwise estimates and trains it with DeepSpeed's "
                             "own bucket sizes (save it as a JSON file for distributed.deepspeed_config to use its)")
    else:
        out.set("distributed.strategy", "ddp")
        what = value if data is None else f"ZeRO stage {zero.get('stage', 0)}"
        if stage in (1, 2):  # a full fine-tune's states (and ZeRO-2's gradients) shard: full_ft.floor
            bucket = zero.get("reduce_bucket_size") if data is not None else None
            if not (bucket == "auto" or (isinstance(bucket, (int, float)) and not isinstance(bucket, bool)
                                         and bucket >= 0)):
                bucket = None  # unset or not a size: DeepSpeed's default
            from ..deepspeed_file import Zero12

            out.zero = Zero12(stage, bucket, data is not None and zero.get("overlap_comm") is True,
                              data is None or zero.get("contiguous_gradients") is not False)
        out.not_modelled(f"DeepSpeed {what}: ZeRO-0/1/2 shard at most optimizer states and gradients across "
                         "GPUs; a LoRA run is judged as DDP" + ("; on several GPUs with DeepSpeed's reduce buckets in "
                                                               "place of DDP's (zero-buckets), and a full fine-tune "
                                                               "is estimated with them sharded"
                                                               if stage in (1, 2) else ""))


def precision_fp16(value, out):
    if value is True:
        out.default("train.precision", "fp16")


def method_with(quantized: bool, bits: int) -> str | None:
    """The methods table's entry for a `bits`-bit base (LoRA for 16), or None when there is none."""
    for name, m in METHODS.items():
        if not m.peft and (m.base_bits or 16) == bits and m.quantized == quantized:
            return name
    return None


def dora_method(base: str | None) -> str | None:
    """The methods table's DoRA entry (peft use_dora) on the same base as method `base` (None: the
    16-bit one), or None when the table has none (an 8-bit DoRA)."""
    bits = METHODS[base].base_bits if isinstance(base, str) and base in METHODS else None  # a list: reported at its line
    for name, m in METHODS.items():
        if m.dora and m.base_bits == bits:
            return name
    return None


def dora(value, out: "Out") -> None:
    """peft use_dora: resolved once the method is known (the file may name it later), in `resolve_dora`."""
    if value is True:
        out.extra["use_dora"] = out.key


def resolve_dora(out: "Out") -> None:
    """use_dora → the methods table's DoRA entry for this base, or said as not modelled."""
    key = out.extra.get("use_dora")
    if not key:
        return
    out.key = key
    method = dora_method(out.values.get("method"))
    if method:
        out.set("method", method)
    else:
        out.not_modelled("DoRA: a magnitude vector per adapted linear and a weight-norm pass each step "
                         "(more activation memory and ~1.5-2x step time than LoRA)")


# peft init_lora_weights values -> lora.init (True/False: peft's default, False only for debugging)
PEFT_INITS = {"true": "default", "gaussian": "gaussian", "pissa": "pissa", "olora": "olora", "eva": "eva",
              "loftq": "loftq"}


def peft_init(value, out: "Out") -> None:
    """peft's init_lora_weights as a tool passes it through (axolotl peft_init_lora_weights): lora.init, with
    pissa_niter_N as lora.init_iters N; peft's other initialisations (corda, orthogonal, ...) are reported."""
    text = str(value).lower()
    if text.startswith("pissa_niter_") and text[len("pissa_niter_"):].isdigit():
        out.set("lora.init", "pissa")
        out.set("lora.init_iters", int(text[len("pissa_niter_"):]))
    elif text in PEFT_INITS:
        out.set("lora.init", PEFT_INITS[text])
    elif value not in (None, "", False):
        out.not_modelled(f"init_lora_weights {value}: an initialisation rankwise does not train (start-up cost "
                         "not estimated)", "use one of default, gaussian, pissa, olora, loftq, eva")


def loraplus(value, out: "Out") -> None:
    """loraplus_lr_ratio (axolotl and LLaMA-Factory, both peft's create_loraplus_optimizer)."""
    if value not in (None, "", 0):
        try:
            value = float(value) if isinstance(value, str) else value
        except ValueError:
            pass  # a string that is no number stays: reported at its line
        out.set("lora.loraplus_lr_ratio", value)


def positive_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def accumulate_to(out: Out, key: str, total: Any) -> bool:
    """A tool's total batch read as gradient accumulation over the micro-batch, when the file does not set the
    accumulation itself; True when it was. A micro-batch that is not a positive count is left for the schema
    to report (its message names the key); no accumulation is derived from it."""
    micro = out.values.get("train.micro_batch", 1)
    if not (positive_count(total) and positive_count(micro) and "train.grad_accum" not in out.values):
        return False
    out.key = key
    out.set("train.grad_accum", max(1, total // micro))
    return True


# ------------------------------------------------------------------ peft target modules

COMMON_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                  "gate_up_proj", "w1", "w2", "w3", "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h",
                  "c_attn", "c_proj", "c_fc", "fc1", "fc2", "out_proj", "Wqkv")
# The part of a decoder layer a common linear name belongs to in the architectures that use it (names used by
# more than one part, such as GPT-2's c_proj or GPT-NeoX's dense, are left out): what a name the model lacks
# meant to adapt. "mlp" covers a dense MLP and routed experts (spec.Linear.family "mlp" / "experts").
ROLE = {**dict.fromkeys(("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "c_attn",
                         "out_proj", "Wqkv"), "attention"),
        **dict.fromkeys(("gate_proj", "up_proj", "down_proj", "gate_up_proj", "w1", "w2", "w3", "dense_h_to_4h",
                         "dense_4h_to_h", "c_fc", "fc1", "fc2"), "MLP")}
ROLE_FAMILIES = {"attention": ("attn",), "MLP": ("mlp", "experts")}
# where a decoder's linears sit, in the layouts of text and vision-language models (llava, qwen2.5-vl, ...)
PATHS = ("model.layers.0.{g}.{n}", "model.language_model.layers.0.{g}.{n}", "language_model.model.layers.0.{g}.{n}",
         "model.text_model.layers.0.{g}.{n}", "model.model.layers.0.{g}.{n}", "transformer.h.0.{g}.{n}",
         "model.layers.0.{n}")
GROUPS = ("self_attn", "mlp", "attn", "attention", "feed_forward", "block_sparse_moe", "mlp.experts.0",
          "block_sparse_moe.experts.0", "self_attention")


def match_targets(raw: Any, how: str, names: list[str]) -> tuple[list[str], list[str]]:
    """peft's rule for `target_modules` over a decoder's linear leaf names → (matched, unmatched items).

    A string (`how` regex) must match a module's full name (peft: `re.fullmatch(target_modules,
    key)`); list items (`how` names) match a module whose name is the item or ends with "." + item
    (peft: `key.endswith(f".{target_key}")`), so `self_attn.q_proj` is q_proj."""
    if how == "regex":
        try:
            rx = re.compile(str(raw))
        except re.error:
            return [], [str(raw)]
        hit = [n for n in names if any(rx.fullmatch(p.format(g=g, n=n)) for p in PATHS for g in GROUPS)]
        return hit, ([] if hit else [str(raw)])
    items = [str(i).strip() for i in (raw if isinstance(raw, list) else str(raw).split(",")) if str(i).strip()]
    hit, missed = [], []
    for item in items:
        leaf = item.rsplit(".", 1)[-1]
        (hit if leaf in names else missed).append(leaf if leaf in names else item)
    return list(dict.fromkeys(hit)), missed


def targets_mapper(how: str, all_words: tuple[str, ...] = ("all", "all-linear", "all_linear")) -> Mapper:
    """A target-modules key: `all` → all-linear; otherwise peft's semantics (regex or names),
    resolved against common linear names now and against the model's own linears in `check`."""
    def put(value, out):
        if isinstance(value, str) and value.strip() in all_words:
            out.set("lora.target_modules", "all-linear")
            return
        kind = how if isinstance(value, str) else "names"
        out.targets = (value, out.key, kind)
        hit, _ = match_targets(value, kind, list(COMMON_LINEARS))
        if kind == "names":  # keep the names the user wrote (leaf of each), known or not: check says which
            hit = list(dict.fromkeys(str(i).strip().rsplit(".", 1)[-1] for i in
                                     (value if isinstance(value, list) else str(value).split(",")) if str(i).strip()))
        out.set("lora.target_modules", hit or [str(value)])
    return put


def _listed(value) -> list[str]:
    """A key's names written as a list or a comma string, each stripped, empty ones dropped."""
    return [str(i).strip() for i in (value if isinstance(value, list) else str(value or "").split(",")) if str(i).strip()]


def modules_to_save(value, out: "Out") -> None:
    """peft modules_to_save (axolotl lora_modules_to_save, LLaMA-Factory additional_target): a list or a comma
    string of module names → lora.modules_to_save."""
    names = _listed(value)
    if names:
        out.set("lora.modules_to_save", names)


def target_parameters(value, out: "Out") -> None:
    """peft target_parameters (axolotl lora_target_parameters): a list or a comma string of parameter names (a
    model's fused MoE expert tensors) → lora.target_parameters."""
    names = _listed(value)
    if names:
        out.set("lora.target_parameters", names)


target_parameters.dotted = "lora.target_parameters"  # type: ignore[attr-defined]  # one-to-one: renames_of


def added_tokens(value, out: "Out") -> None:
    """New tokens (axolotl `tokens`, LLaMA-Factory `add_tokens` / `add_special_tokens` / `new_special_tokens`): a
    list or a comma string → model.added_tokens (the keys' tokens together, in order)."""
    names = _listed(value)
    if names:
        have = out.values.get("model.added_tokens", [])
        out.set("model.added_tokens", have + [t for t in names if t not in have])


def names_for_set(kind: str) -> list[str]:
    """A named target set written as module names, for a tool with no named sets (Llama-style names)."""
    return {"minimal": ["q_proj", "v_proj"], "standard": ["q_proj", "k_proj", "v_proj", "o_proj"],
            "aggressive": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}.get(kind, [])


def renames_of(table: dict[str, Mapper]) -> dict[str, str]:
    """dotted → tool key for the keys a table maps one-to-one (the same value on both sides)."""
    out: dict[str, str] = {}
    for key, mapper in table.items():
        dotted = getattr(mapper, "dotted", None)
        if dotted and dotted not in out:
            out[dotted] = key
    return out
