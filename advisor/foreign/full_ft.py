"""A full fine-tune in a foreign config (axolotl with no `adapter`, LLaMA-Factory `finetuning_type: full`).

rankwise trains LoRA and QLoRA. Judging a full fine-tune by the LoRA estimate of the same settings would say
"fits" where the run needs several times the memory, so `check` estimates it apart, from two parts:

The floor per GPU, plain arithmetic: every weight in the compute dtype, its gradient in the same dtype (the HF
Trainer's parameters train in the dtype they load in: axolotl and LLaMA-Factory load the model in bf16/fp16
when the config asks for it; fp32 with `fp32_master`), and the optimizer's states for every weight (torch
AdamW: exp_avg and exp_avg_sq `zeros_like` the parameter; 8-bit AdamW: one byte each plus block constants;
`memory._optimizer_bytes`). Sharded (FSDP full/hybrid, ZeRO-3) all three divide by the GPUs; FSDP
SHARD_GRAD_OP keeps the gathered weights whole through the step, so only gradients and states divide.

The rest (`rest_of`): what the same settings hold beside their parameters, taken from rankwise's estimate of a
16-bit LoRA with every linear adapted at rank 1, dropout 0 and nothing else trained (so its adapter is ~0):
activations, logits and loss, FSDP/ZeRO-3 gathered units and buckets, NCCL, the allocator's cache, the CUDA
context. Every linear's input is saved for backward either way (for the LoRA A gradient there, for the weight
gradient here), so the activations are the same but for rank-1 extras. Added for a full fine-tune: DDP's
gradient buckets (a second copy of every gradient: DistributedDataParallel's default gradient_as_bucket_view
False), and under FSDP one decoder layer's unsharded gradient while it reduce-scatters (allocator.fsdp_grad_bytes).

The peak: weights and states always; gradients and the forward (activations and logits) together when
gradients accumulate over micro-batches (the first micro-batch's gradients are alive through the next
forward), else the larger of the two (the Trainer sets gradients to None after each step, so a forward runs
without them and backward frees activations as it creates gradients). The optimizer is the HF Trainer's fused
AdamW (transformers 5's default `adamw_torch_fused`, no temporaries) or bitsandbytes' 8-bit AdamW (per-tensor
steps): no optimizer temporaries are counted. Not counted: a full fine-tune's optimizer step with the foreach
(non-fused) AdamW, whose temporaries are the size of the parameters in a group.

CPU offload, where the plan shards (FSDP/ZeRO-3 on 2+ GPUs), moves what it offloads to host RAM (said with its
size); the fit is judged on what stays on the GPU.

The verdict: wont-fit when the floor alone is over the GPU; else the estimate's (fits, tight, wont-fit),
against the same 90% headroom as LoRA's (fit.verdict). bench/gpu_full_probe.py measures it on a GPU.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..finding import Finding
from ..host_plan import CHECKPOINT_EXTRA
from ..units import gib
from .mapping import Said

if TYPE_CHECKING:
    from ..deepspeed_file import Zero12
    from ..config import RunConfig
    from .reading import Reading
    from ..size_bound import Bound
    from ..fit import Fit
    from ..time import TimePlan
    from ..hardware import Hardware
    from ..plan import Plan
    from ..spec import ModelSpec

NOTE = "no adapter: every weight trains; estimated with its gradients and optimizer states"
PARTIAL_NOTE = ("no adapter: some weights train (the rest frozen, held as loaded); estimated with the trained ones' "
                "gradients and optimizer states")

# The LoRA estimate's parts that are its adapter or its base's storage (the floor counts the weights), or
# LoRA-specific start-up peaks; everything else in it is the run's, whatever trains (`rest_of`).
NOT_REST = frozenset({"base_weights", "quant_constants", "unquantized_weights", "lora_params", "lora_grads",
                      "optimizer_states", "saved_modules", "saved_modules_grads", "saved_modules_optimizer",
                      "ddp_buckets", "fsdp_grad_buffers", "adapter_init", "lm_head_cast", "fsdp_wrap", "zero3_load"})
FORWARD = ("activations", "logits_loss")
# Preference stages whose trainer keeps a reference model. TRL's DPOTrainer and KTOTrainer, given no ref_model
# and no peft adapter, deep-copy the policy (`create_reference_model`), frozen, in its dtype, prepared (sharded)
# like it; with an adapter the reference is the base with the adapter disabled, no copy. ORPO and SimPO are
# reference-free (as is LLaMA-Factory's dpo stage with pref_loss orpo/simpo, not read here).
REFERENCE_STAGES = frozenset({"dpo", "ipo", "kto"})

# A full fine-tune's checkpoint (HF Trainer `_save_checkpoint`): the model's weights in the dtype they are held in
# (save_pretrained of the state dict; FSDP's FULL_STATE_DICT gathers the fp32 shards whole), the optimizer's state
# dict (both AdamW moments of every trained weight; ZeRO-3's files hold its fp32 master copy too), and the
# scheduler, RNG and trainer state (host_plan.CHECKPOINT_EXTRA). `save_only_model` (not read) writes the weights only.

# The key that makes a file a full fine-tune → the fix that trains an adapter instead, in the tool's words and keys
# (LLaMA-Factory's finetuning_type is the default: `{key}: lora`)
ADAPTER_FIX = {"adapter": ("adapter: lora or qlora", {"adapter": "lora"}),
               "use_peft": ("use_peft: true (and load_in_4bit: true for QLoRA)", {"use_peft": True}),
               "peft_config": ("peft_config: {name: lora} (and quant_config: {quantization_bit: 4} for QLoRA)",
                               {"peft_config": {"name": "lora"}}),
               "peft_config.name": ("peft_config.name: lora (and quant_config: {quantization_bit: 4} for QLoRA)",
                                    {"peft_config.name": "lora"})}

# Tools that cast the trainable parameters to fp32 before training (trained_bytes): LLaMA-Factory's init_adapter
# (src/llamafactory/model/adapter.py @ff6d4d1: `cast_trainable_params_to_fp32` unless pure_bf16, BAdam or ZeRO-3).
# axolotl trains them in the dtype it loads (loaders/model.py: `torch_dtype`, no cast for a full fine-tune).
UPCASTS_TRAINABLE = frozenset({"llama-factory"})


def upcaster(reading) -> str:
    """What puts the trained weights in fp32 outside accelerate's and DeepSpeed's own casts, said for the
    estimate: the tool's cast (UPCASTS_TRAINABLE), or a model loaded in float32 (TRL's ModelConfig dtype
    default); "" when neither."""
    if reading.tool is not None and reading.kind in UPCASTS_TRAINABLE:
        return f"{reading.tool.label} casts the trainable parameters to fp32"
    if reading.loads_fp32:
        return f"{reading.tool.label} loads the model in float32 (its dtype default)"
    return ""

# Rules whose answer is about the LoRA adapter or the LoRA estimate: not this run's.
LORA_ONLY = frozenset({
    "wont-fit", "ddp-wont-fit", "disk-short", "host-ram-short", "multi-gpu-config", "adapter-start",
    "all-modules-low-rank", "alpha-below-rank", "alpha-far-above-rank", "dropout-out-of-range",
    "high-rank-high-dropout", "lr-out-of-range", "qlora-high-lr", "rank-out-of-range", "rank-above-width",
    "rslora-off-high-rank", "unknown-target-module", "effective-batch-large",
})


@dataclass(frozen=True)
class Freeze:
    """LLaMA-Factory `finetuning_type: freeze` (model/adapter.py `_setup_freeze_tuning` @ff6d4d1): the decoder
    layers `freeze_trainable_layers` names train (N > 0: the last N; N < 0: the first -N; with use_llama_pro, N
    layers spread over the depth: N layers all the same), each only in `freeze_trainable_modules` (default
    "all": the whole layer; else the layer's sub-modules by name, "self_attn", "mlp", ...), plus the
    `freeze_extra_modules` outside the layers (embed_tokens, lm_head, norm); everything else is frozen. The
    defaults are LLaMA-Factory's (hparams/finetuning_args.py FreezeArguments: 2 layers, "all", none)."""

    layers: int = 2
    modules: tuple[str, ...] = ("all",)
    extra: tuple[str, ...] = ()
    spread: bool = False  # use_llama_pro: every (L / N)-th layer
    key: str = "freeze"  # the tool's word for it

    def resolve(self, spec: "ModelSpec") -> tuple[int, str]:
        """(trained parameters, what trains in LLaMA-Factory's words). A module name the model's families do not
        place (LLaMA-Factory would refuse it) counts as the whole layer: an upper bound."""
        fam, L = spec.params_by_family, spec.num_layers
        per_norm = spec.hidden_size
        layer_norms = max(0, fam.get("norm", 0) - per_norm) // L  # the final norm sits outside the layers
        per = {"attn": fam.get("attn", 0) // L,
               "mlp": (fam.get("mlp", 0) + fam.get("experts", 0) + fam.get("router", 0)) // L}
        whole = per["attn"] + per["mlp"] + layer_norms
        one = 0
        for name in self.modules:
            low = name.lower()
            if low == "all":
                one = whole
                break
            if "attn" in low or "attention" in low:
                one += per["attn"]
            elif any(w in low for w in ("mlp", "moe", "feed_forward", "ffn")):
                one += per["mlp"]
            elif "norm" in low:
                one += per_norm
            else:
                one = whole
                break
        n_layers = min(abs(self.layers), L)
        extra = 0
        for name in self.extra:
            low = name.lower()
            extra += (fam.get("embed", 0) if "embed" in low else fam.get("lm_head", 0) if "lm_head" in low
                      else per_norm if "norm" in low else 0)
        where = (f"{n_layers} layers spread over the {L}" if self.spread
                 else f"{'first' if self.layers < 0 else 'last'} {n_layers} of {L} layers")
        which = (f"freeze: {', '.join(self.modules)} of the {where}"
                 + (f", and {', '.join(self.extra)}" if self.extra else ""))
        return min(spec.total_params, n_layers * one + extra), which


def layer_name_pattern(raw: str) -> "re.Pattern[str] | None":
    """axolotl utils/freeze.py LayerNamePattern: a trailing [start:end] range dropped, every "." not followed by
    "+" made literal, matched with re.match (anchored at the name's start)."""
    base = re.match(r"^(.+)\[([0-9]*)(?::([0-9]*))?\]$", raw)
    try:
        return re.compile(re.sub(r"\.(?!\+)", "\\.", base.group(1) if base else raw))
    except re.error:
        return None


@dataclass(frozen=True)
class Unfrozen:
    """axolotl `unfrozen_parameters` in a full fine-tune (utils/freeze.py `freeze_layers_except`): every parameter
    whose name none of the patterns matches is frozen; a parameter a pattern matches trains whole (a trailing
    [start:end] range masks its gradient rows with a hook, its optimizer states stay whole). The names are the
    model's `named_parameters()`, read from the model built on the meta device (meta.parameters); `patterns` are
    compiled as axolotl compiles them (layer_name_pattern: matched from the name's start)."""

    patterns: tuple[str, ...]
    key: str = "unfrozen_parameters"

    def _named(self, spec: "ModelSpec") -> list[tuple[str, int]] | None:
        """The parameters as the tool names them; None when the model cannot be built here. Where the index holds
        a multimodal release's language model alone (its names start model.layers) and a pattern names
        model.language_model, the names are the release's: transformers' vision-language models hold the decoder
        under model.language_model (Gemma 3, Mistral 3, Qwen 3.5)."""
        from ..errors import RankwiseError
        from ..meta import parameters

        try:
            named = list(parameters(spec.name, spec.config))
        except RankwiseError:
            return None
        if any("language_model" in p for p in self.patterns) and not any("language_model" in n for n, _ in named):
            named = [("model.language_model." + n.removeprefix("model.") if n.startswith("model.") else n, k)
                     for n, k in named]
        return named

    def _compiled(self) -> list[tuple[str, "re.Pattern[str]"]]:
        return [(p, c) for p, c in ((p, layer_name_pattern(p)) for p in self.patterns) if c is not None]

    def resolve(self, spec: "ModelSpec") -> tuple[int, str]:
        """(trained parameters, what trains); every weight when the model cannot be built here (an upper bound)."""
        named = self._named(spec)
        if named is None:
            return spec.total_params, f"{self.key}: every weight (the model's parameter names are not known here)"
        compiled = [c for _, c in self._compiled()]
        trained = sum(n for name, n in named if any(c.match(name) for c in compiled))
        share = trained / max(1, sum(n for _, n in named))
        shown = ", ".join(self.patterns[:3]) + (", ..." if len(self.patterns) > 3 else "")
        return trained, f"{self.key}: {shown}: {share:.0%} of the parameters" if share >= 0.01 else \
            f"{self.key}: {shown}: {share:.2%} of the parameters"

    def closest(self, spec: "ModelSpec", pattern: str) -> str | None:
        """A parameter name holding the pattern's last plain word (embed_tokens → model.embed_tokens; a layer's
        number written N), for the fix; None when no name holds it."""
        words = [w for w in re.findall(r"[A-Za-z_]{3,}", pattern) if w not in ("weight", "bias")]
        named = self._named(spec) or []
        hit = next((n for n, _ in named if words and words[-1] in n), None)
        return re.sub(r"\.\d+\.", ".N.", hit[:hit.index(words[-1]) + len(words[-1])]) if hit else None

    def unmatched(self, spec: "ModelSpec") -> list[str]:
        """The patterns that match no parameter name: they unfreeze nothing."""
        named = self._named(spec)
        if named is None:
            return []
        return [p for p, c in self._compiled() if not any(c.match(name) for name, _ in named)]


@dataclass(frozen=True)
class Floor:
    key: str  # the foreign key that makes it a full fine-tune (adapter, finetuning_type)
    params: int
    weights: int  # bytes per GPU
    grads: int
    states: int
    gpus: int
    gpu_bytes: int | None
    host: int  # bytes CPU offload keeps in host RAM, over the machine's ranks (0: none)
    rest: dict[str, int] = field(default_factory=dict)  # the run's other memory (`rest_of`); empty: not estimated
    accumulates: bool = False  # gradients accumulate over micro-batches: alive through the next forward
    held: str = ""  # how a trained weight is held (trained_bytes)
    trained: int = 0  # parameters that train, where only some do (a freeze fine-tune: Freeze); 0: all of them
    which: str = ""  # what trains, in the tool's words, where only some does
    checkpoint: int = 0  # bytes one checkpoint writes (floor: weights and optimizer states whole)
    judged: "Fit | None" = field(default=None, compare=False, repr=False)  # the bare LoRA run `rest` came from

    @property
    def note(self) -> str:
        return PARTIAL_NOTE if self.trained else NOTE

    @property
    def what(self) -> str:
        return f"a partial fine-tune ({self.which})" if self.trained else "a full fine-tune"

    @property
    def bytes(self) -> int:
        """The floor: weights, gradients and optimizer states per GPU."""
        return self.weights + self.grads + self.states

    @property
    def peak(self) -> int | None:
        """The estimated peak per GPU (the module docstring says how), None without `rest`."""
        if not self.rest:
            return None
        forward = sum(self.rest.get(k, 0) for k in FORWARD)
        other = sum(v for k, v in self.rest.items() if k not in FORWARD)
        held = self.grads + forward if self.accumulates else max(self.grads, forward)
        return self.weights + self.states + held + other

    @property
    def components(self) -> dict[str, int]:
        """The peak's parts, as `estimate --json` names them (grads and forward both listed)."""
        return {"weights": self.weights, "grads": self.grads, "optimizer_states": self.states, **self.rest}

    @property
    def verdict(self) -> str | None:
        """wont-fit when the floor alone is over the GPU; else the estimate's verdict; None (not checked) with
        no GPU or no estimate."""
        from ..fit import verdict

        if self.gpu_bytes is None:
            return None
        if self.bytes > self.gpu_bytes:
            return "wont-fit"
        return verdict(self.peak, self.gpu_bytes) if self.peak is not None else None

    @property
    def basis(self) -> str:
        """full-floor (the floor alone decides) | full-estimate (the whole estimate does)."""
        return "full-floor" if self.gpu_bytes is not None and self.bytes > self.gpu_bytes else "full-estimate"

    def text(self) -> str:
        per = " per GPU" if self.gpus > 1 else ""
        if self.host and not self.bytes:
            floor_text = (f"the {self.params / 1e9:.1f}B weights, their gradients and optimizer states in host RAM "
                          f"({gib(self.host):.1f} GiB over the machine's ranks)")
        else:
            whose = (f"the {self.trained / 1e9:.2f}B trained ones' " if self.trained else "their ")
            floor_text = (f"{gib(self.bytes):.1f} GiB{per} for the {self.params / 1e9:.1f}B weights, {whose}"
                          f"gradients and optimizer states ({gib(self.weights):.1f} + {gib(self.grads):.1f} + "
                          f"{gib(self.states):.1f} GiB" + (f"; {self.held}" if self.held else "") + ")"
                          + (f", the weights in host RAM ({gib(self.host):.1f} GiB "
                                                             "over the machine's ranks)" if self.host else ""))
        if self.peak is None or self.basis == "full-floor":
            return f"at least {floor_text}, before activations"
        forward = gib(sum(self.rest.get(k, 0) for k in FORWARD))
        beside = ("" if not self.grads else " beside the gradients (they accumulate over micro-batches)"
                  if self.accumulates else " (held apart from the gradients)")
        return (f"~{gib(self.peak):.1f} GiB{per}: {floor_text}, with activations and logits {forward:.1f} GiB"
                f"{beside} and buffers, cache and CUDA context")

    def unchecked_reason(self) -> str:
        return f"{self.what}: {self.text()}; no GPU to check it against"

    def finding(self, lora_peak_gib: float | None, more: "Floor | None" = None) -> Said:
        """What `check` says about it, at the key that makes it one; `more`: a config written for several GPUs
        and judged on one, the same run on the fewest of them (up to 8) where it fits."""
        lora = f" (its LoRA estimate: ~{lora_peak_gib:.1f} GiB)" if lora_peak_gib is not None else ""
        adapter, patch = adapter_fix(self.key)
        fix = f"train an adapter: {adapter}{lora}, then check again"
        if more is not None:
            host = f", with {gib(more.host):.0f} GiB of host RAM for the offload" if more.host else ""
            fix += (f"; as written, for several GPUs: rankwise check FILE --gpus {more.gpus} (~{gib(more.peak):.1f} "
                    f"GiB per GPU there{host})")
        why = (("the trained weights' gradients and optimizer states are held beside every weight" if self.trained
                else "every weight trains, so its gradient and optimizer states are held too")
               + "; the LoRA estimate of these settings is not this run's")
        verdict, per = self.verdict, " per GPU" if self.gpus > 1 else ""
        if verdict == "wont-fit":
            return Said("full-finetune", "error", self.key, f"{self.key}: {self.what} will not fit: "
                        f"{self.text()}, over {gib(self.gpu_bytes):.1f} GiB{per}", why, fix, patch)
        if verdict == "tight":
            return Said("full-finetune", "warning", self.key, f"{self.key}: {self.what}, tight: {self.text()}, "
                        f"of {gib(self.gpu_bytes):.1f} GiB{per}", why + "; little headroom is left for long batches "
                        "and fragmentation", fix, patch)
        if verdict == "fits":
            return Said("full-finetune", "info", self.key, f"{self.key}: {self.what}: {self.text()}, "
                        f"of {gib(self.gpu_bytes):.1f} GiB{per}", why, "none needed", None)
        return Said("full-finetune", "warning", self.key, f"{self.key}: {self.what}, fit not checked: "
                    f"{self.text()}", why, fix, patch)

    def disk(self, keep: int | None, free: int | None, where: str | None) -> tuple[str, Finding | None]:
        """The checkpoints on disk: a line for the notes, and an error when the disk where they go is too small
        (`keep`: how many stay at once, save_total_limit + 1, None when the file keeps every one; `free`: bytes
        free there on a probed machine, None for a declared one)."""
        one = gib(self.checkpoint)
        if keep is None:
            line = (f"checkpoints: ~{one:.1f} GiB each (weights and optimizer states); save_total_limit is unset, "
                    "so every one stays on disk")
        else:
            line = f"checkpoints: ~{one:.1f} GiB each (weights and optimizer states), {keep} on disk at once: " \
                   f"~{one * keep:.1f} GiB"
        need = self.checkpoint * (keep or 1)
        if free is None or need <= free:
            return line, None
        many = "the first checkpoint" if keep is None else f"{keep} checkpoints"
        return line, Finding("disk-short", "error", f"disk: {many} of this {self.what.removeprefix('a ')} need "
                             f"~{gib(need):.1f} GiB, {gib(free):.1f} GiB free at {where}",
                             "a save on a full disk fails the run at that checkpoint, hours in",
                             "free disk or write the output elsewhere; keep fewer checkpoints (save_total_limit: 1), "
                             "or save the weights only (save_only_model: true: no resuming)")

    def host_ram(self, spec: "ModelSpec", cfg: "RunConfig", hw: "Hardware | None",
                 state_dict: str | None) -> "HostRam | None":
        """Host RAM at load, while training and at each save (`state_dict`: FSDP checkpoints "full" or "sharded",
        None: accelerate's default, FULL_STATE_DICT under FSDP1). The load is the LoRA plan's (the same 16-bit
        base read the same way: host_plan.plan_host). Training holds each process's runtime and what CPU offload
        keeps on the host (`host`). A save adds, on top of that:
        - FSDP FULL_STATE_DICT: rank 0 gathers the weights and the optimizer states whole in host RAM
          (accelerate's FullStateDictConfig / FullOptimStateDictConfig(offload_to_cpu=True, rank0_only=True);
          save_fsdp_optimizer torch.saves `FSDP.optim_state_dict` on process 0: accelerate 1.16 utils/fsdp_utils.py);
        - DeepSpeed ZeRO-3: rank 0 consolidates the 16-bit weights on the host for the weights file
          (stage3_gather_16bit_weights_on_model_save, which axolotl's, LLaMA-Factory's and rankwise's ZeRO-3
          configs turn on: `_zero3_consolidated_16bit_state_dict`); its optimizer partitions are saved a tensor at
          a time by every rank;
        - otherwise (one GPU, DDP, FSDP SHARDED_STATE_DICT): a tensor or a safetensors shard at a time (5 GB at
          most: host_plan.SHARD_BYTES).
        Read from the sources, not measured."""
        from ..host_plan import PROCESS_CPU, PROCESS_GPU, SHARD_BYTES, plan_host

        if self.judged is None:
            return None
        plan = self.judged.estimate.plan
        gpu = hw is not None and hw.has_gpu
        procs = plan.gpus if gpu else 1
        train = procs * (PROCESS_GPU if gpu else PROCESS_CPU) + self.host
        whole = self.checkpoint - CHECKPOINT_EXTRA  # the weights as held and the optimizer states, unsharded
        if plan.strategy == "fsdp" and plan.sharded and (state_dict or "full") == "full":
            save, how = whole, ("FSDP FULL_STATE_DICT: rank 0 gathers the weights and optimizer states whole"
                                + ("" if state_dict else ", accelerate's default under FSDP1"))
        elif plan.strategy == "deepspeed" and plan.sharded:
            save, how = 2 * self.params, "ZeRO-3: rank 0 gathers the 16-bit weights for the weights file"
        else:
            save, how = min(SHARD_BYTES, whole), "a safetensors shard or a tensor at a time"
        host = hw.host if hw is not None and hw.source == "probe" else None
        return HostRam(plan_host(spec, cfg, self.judged, hw).load_bytes, train, train + save, how,
                       host.ram_available_bytes if host else None)

    def to_dict(self) -> dict:
        return {"key": self.key, "params": self.params, "floor_bytes": self.bytes, "weights_bytes": self.weights,
                "grads_bytes": self.grads, "optimizer_bytes": self.states, "gpus": self.gpus,
                "offloaded": bool(self.host), "host_bytes": self.host, "fit": self.verdict, "peak_bytes": self.peak,
                "components": self.components if self.peak is not None else None,
                "grads_with_forward": self.accumulates, "held": self.held,
                "trained_params": self.trained or self.params, "trains": self.which or "every weight",
                "checkpoint_bytes": self.checkpoint}


def adapter_fix(key: str) -> tuple[str, dict]:
    """The fix that trains an adapter instead of the full fine-tune `key` makes: (the words, the tool's keys)."""
    return ADAPTER_FIX.get(key, (f"{key}: lora (and quantization_bit: 4 for QLoRA)", {key: "lora"}))


def bounded_finding(key: str, b: "Bound") -> Said:
    """What `check` says about a full fine-tune of a model it cannot read: its weights, gradients and optimizer
    states (and the rest) on indexed stand-ins of the size the name states (size_bound.full_bound), approximate."""
    adapter, patch = adapter_fix(key)
    fix = f"train an adapter: {adapter}, then check again; or give the model (--model, --fetch-config) for its shape"
    why = "every weight trains, so its gradient and optimizer states are held too; " + b.basis()
    if not b.stand_ins:
        return Said("full-finetune", "warning", key, f"{key}: a full fine-tune, fit not checked: {b.basis()}", why,
                    fix, patch)
    text = f"{key}: a full fine-tune: {b.range_text()} at its peak (approximate, from the name's size)"
    gpu = f"{gib(b.gpu_bytes):.1f} GiB" if b.gpu_bytes else ""
    verdict = b.verdict
    if verdict == "wont-fit":
        return Said("full-finetune", "error", key, f"{text}, over {gpu}: it will not fit", why, fix, patch)
    if verdict == "tight":
        return Said("full-finetune", "warning", key, f"{text}, tight on {gpu}", why, fix, patch)
    if verdict == "fits":
        return Said("full-finetune", "info", key, f"{text}, within {gpu}", why, "none needed", None)
    return Said("full-finetune", "warning", key, f"{text}: {b.why_undecided()}", why, fix, patch)


@dataclass(frozen=True)
class HostRam:
    """A full fine-tune's host RAM (Floor.host_ram), bytes over the machine's processes."""

    load: int
    train: int
    save: int
    how: str  # what a save gathers on the host
    available: int | None  # a probed machine's RAM available, None for a declared one (shown, not judged)

    @property
    def peak(self) -> int:
        return max(self.load, self.train, self.save)

    def line(self) -> str:
        return (f"host RAM: ~{gib(self.peak):.0f} GiB at its peak (load {gib(self.load):.0f}, training "
                f"{gib(self.train):.0f}, saving {gib(self.save):.0f} GiB: {self.how})")

    def finding(self) -> Finding | None:
        """host-ram-short where a probed machine has less RAM available than the peak."""
        if self.available is None or self.peak <= self.available:
            return None
        when = "saving a checkpoint" if self.peak == self.save else "loading" if self.peak == self.load else "training"
        fix = "more host RAM, or more machines (the offloaded shards and the processes split over them)"
        if "FULL_STATE_DICT" in self.how:
            fix += "; sharded checkpoints (fsdp_config state_dict_type: SHARDED_STATE_DICT) keep each rank's own"
        return Finding("host-ram-short", "error",
                       f"host RAM: ~{gib(self.peak):.0f} GiB while {when}, {gib(self.available):.0f} GiB available",
                       "the kernel's OOM killer ends the run" + (f" at its first save ({self.how})"
                                                                 if when == "saving a checkpoint" else ""), fix)

    def to_dict(self) -> dict:
        return {"peak_bytes": self.peak, "load_bytes": self.load, "train_bytes": self.train, "save_bytes": self.save,
                "save_gathers": self.how, "available_bytes": self.available}


def floor(key: str, spec: "ModelSpec", plan: "Plan", gpu_bytes: int | None, rest: dict[str, int] | None = None,
          accumulates: bool = False, stage: str | None = None, upcast: str = "",
          trains: "Freeze | Unfrozen | None" = None, reference: bool | None = None,
          zero: "Zero12 | None" = None) -> Floor:
    """A full fine-tune of `spec` under `plan` (its precision, optimizer, GPUs, strategy and offload): the floor
    per GPU, and with `rest` (`rest_of`) the estimate; a preference `stage` that keeps a reference model adds its
    copy (`reference` says so where the stage alone does not: GRPO keeps one when its beta is above 0). CPU offload
    applies where the plan shards (one GPU is plain training, as everywhere in rankwise):
    params_and_optimizer keeps weights, gradients and states in host RAM (FSDP CPUOffload(offload_params),
    ZeRO-3 offload_param + offload_optimizer), params the weights alone (ZeRO-3 offload_param). `upcast`: what
    puts the trained weights in fp32 outside accelerate's and DeepSpeed's casts (`upcaster`), else "". `zero`:
    DeepSpeed ZeRO-1/2 over the replicas (Reading.zero): ZeRO-1 partitions the optimizer states and the fp32
    master over the GPUs, ZeRO-2 the gradients too (stage_1_and_2.py), the 16-bit weights stay whole."""
    from ..memory import _optimizer_bytes

    zero_stage = zero.stage if zero and not plan.sharded else 0
    n, held = spec.total_params, trained_bytes(plan, upcast, zero_stage)
    trained, which = trains.resolve(spec) if trains is not None else (0, "")
    t = trained or n  # the frozen rest stays as loaded, in the compute dtype
    weights, grads = (n - t) * plan.dtype_bytes + t * held.weight, t * held.grad
    states = _optimizer_bytes(t, plan.optimizer, held.state) + t * held.master
    checkpoint = weights + states + CHECKPOINT_EXTRA  # whole, before the GPUs split them
    gpus = plan.gpus
    if plan.sharded and gpus > 1:
        if plan.strategy == "deepspeed" or plan.fsdp_sharding in ("full", "hybrid"):
            weights //= gpus
        if plan.fsdp_sharding != "no_shard" or plan.strategy == "deepspeed":
            grads //= gpus
            states //= gpus
    elif zero_stage and gpus > 1:
        states //= gpus
        if zero_stage == 2:
            grads //= gpus
    host = 0
    if plan.sharded and plan.offload != "none":  # what each rank keeps in host RAM, over the machine's ranks
        moved = (weights, grads, states) if plan.offload == "params_and_optimizer" else (weights,)
        host = sum(moved) * gpus
        weights, grads, states = 0, *((0, 0) if plan.offload == "params_and_optimizer" else (grads, states))
    rest = dict(rest or {})
    if rest and (stage in REFERENCE_STAGES if reference is None else reference):  # frozen, 16-bit: never upcast
        rest["reference_model"] = n * plan.dtype_bytes // (gpus if plan.sharded and gpus > 1 else 1)
    return Floor(key, n, weights, grads, states, gpus, gpu_bytes, host, rest, accumulates, held.why, trained, which,
                 checkpoint)


@dataclass(frozen=True)
class Held:
    """How one trained weight is held: its bytes, its gradient's, the dtype's bytes the optimizer keeps its states
    in, and an fp32 master copy the optimizer keeps beside a 16-bit weight (counted with the optimizer's states:
    it moves with them under offload_optimizer)."""
    weight: int
    grad: int
    state: int
    why: str
    master: int = 0


def trained_bytes(plan: "Plan", upcast: str = "", zero: int = 0) -> Held:
    """A trained weight as the stack holds it under mixed precision (autocast: bf16/fp16 compute):
    - FSDP through accelerate upcasts every trainable flat parameter to fp32 ("FSDP upcast of low precision
      parameters", accelerate 1.16 accelerator.py prepare_model for FSDP1, utils/fsdp_utils.py
      fsdp2_prepare_model for FSDP2): fp32 shards, fp32 gradients, fp32 AdamW states; the gathered units
      compute in 16-bit (MixedPrecision param_dtype), which `rest_of` counts;
    - DeepSpeed ZeRO-3 keeps the 16-bit partition and builds an fp32 copy of it for the optimizer
      (DeepSpeedZeroOptimizer_Stage3 `_create_fp32_partitions`, which accelerate's comment cites): 16-bit
      weights and gradients, fp32 master and states (the ZeRO paper's 2 + 2 + 12 bytes a parameter);
    - DeepSpeed ZeRO-1/2 (`zero`: the stage) likewise: its engine casts the module to the 16-bit dtype (engine.py
      `_configure_distributed_model`, `_cast_module_mixed_precision`, undoing any upcast) and its optimizer keeps
      an fp32 master copy of the partition it steps beside the states;
    - `upcast` (what does it, `upcaster`): the trainable parameters are fp32 before training, as LLaMA-Factory
      casts them outside ZeRO-3 and pure_bf16 (model/adapter.py init_adapter, `cast_trainable_params_to_fp32`)
      and TRL loads them (ModelConfig dtype "float32" by default);
    - otherwise the HF Trainer trains them in the dtype they load in (axolotl loads in its torch_dtype), and
      torch AdamW's states take that dtype too.
    No autocast (pure_bf16, or fp32 compute): no upcast anywhere; fp32_master: the fp32 shards it names."""
    a = plan.dtype_bytes
    if plan.fp32_master:
        return Held(4, 4, 4, "fp32 shards (train.precision fp32_master)")
    if plan.pure_bf16 or a == 4:
        return Held(a, a, a, f"{8 * a}-bit weights, gradients and optimizer states (no autocast)")
    if plan.sharded and plan.gpus > 1 and plan.strategy == "deepspeed":
        return Held(a, a, 4, f"ZeRO-3's {8 * a}-bit partition and gradients, the optimizer's fp32 master copy and "
                             "states", master=4)
    if zero and not plan.sharded:
        return Held(a, a, 4, f"DeepSpeed ZeRO-{zero}'s {8 * a}-bit weights and gradients, the optimizer's fp32 master "
                             "copy and states", master=4)
    if plan.sharded and plan.gpus > 1:
        return Held(4, 4, 4, "accelerate upcasts FSDP's trainable parameters to fp32: fp32 shards, gradients "
                             "and optimizer states")
    if upcast:
        return Held(4, 4, 4, f"{upcast}: fp32 weights, gradients and optimizer states")
    return Held(a, a, a, f"{8 * a}-bit weights, gradients and optimizer states (trained in the dtype they load in)")


def full_finetune(key: str, spec: "ModelSpec", cfg: "RunConfig", hw: "Hardware | None",
                  stage: str | None = None, upcast: str = "", trains: "Freeze | Unfrozen | None" = None,
                  reference: bool | None = None, zero: "Zero12 | None" = None) -> Floor:
    """A full fine-tune of `spec` with `cfg`'s settings on `hw`: the GPUs, strategy and offload resolved as for
    the LoRA run (fit.assess), its floor and the rest (the module docstring says how); `zero`: Reading.zero."""
    rest, judged = rest_of(spec, cfg, hw, upcast, trains, zero)
    full = floor(key, spec, judged.estimate.plan, judged.gpu_bytes, rest, cfg.train.grad_accum > 1, stage, upcast,
                 trains, reference, zero)
    return replace(full, judged=judged)  # full_time's passes are those of the same bare LoRA run


def of_reading(reading: "Reading", spec: "ModelSpec", cfg: "RunConfig", hw: "Hardware | None") -> Floor:
    """The full fine-tune a foreign reading describes: its key, preference stage, upcast, trained part, reference
    copy, ZeRO-1/2 stage and the precision the tool trains it in (the one place `check` and `estimate --preset`
    take them from)."""
    if reading.full_precision:
        from ..config import with_values

        cfg = with_values(cfg, {"train.precision": reading.full_precision})
    return full_finetune(reading.full, spec, cfg, hw, reading.stage, upcaster(reading), reading.partial,
                         reading.reference, reading.zero)


def bound_of(reading: "Reading", name: str, cfg: "RunConfig", hw: "Hardware | None") -> "Bound | None":
    """That full fine-tune of a model known only by its name's size, bounded on stand-ins (size_bound.full_bound)."""
    from ..size_bound import full_bound

    return full_bound(name, lambda spec: of_reading(reading, spec, cfg, hw), hw)


def _bare(cfg: "RunConfig") -> "RunConfig":
    """The settings with LoRA at rank 1 on every linear and nothing else trained: the run's memory and time
    beside its parameters (`rest_of`, `full_time`)."""
    from ..config import with_values

    return with_values(cfg, {"lora.target_modules": "all-linear", "lora.r": 1, "lora.dropout": 0.0,
                             "lora.modules_to_save": [], "lora.bias": "none"})


def full_time(spec: "ModelSpec", cfg: "RunConfig", hw: "Hardware | None", full: Floor,
              price: float | None = None) -> "TimePlan":
    """The fine-tune's time: the time model's passes (time.plan_time) with every trained weight's gradient GEMM
    and, once a step, the optimizer over them on the GPU (it reads the gradients, reads and writes the weights and
    the states they hold: nothing when CPU offload steps on the host, not modelled). Its cost where the steps are
    known, at `price` per GPU-hour, else the user's or the list price of the GPU (pricing.price_for)."""
    from ..fit import assess
    from ..pricing import price_for
    from ..time import plan_time

    judged = full.judged or assess(spec, _bare(cfg), hw, method="lora")
    trained = full.trained or full.params
    share = trained / full.params if full.params else 1.0
    optimizer_bytes = int(full.grads + 2 * full.states + 2 * full.weights * share)
    t = plan_time(spec, cfg, judged, hw, trained=trained, optimizer_bytes=optimizer_bytes)
    per_hour = price_for(t.device, price)[0] if hw is not None and hw.has_gpu else None
    if per_hour is None or t.total_s is None:
        return t
    return plan_time(spec, cfg, judged, hw, trained=trained, optimizer_bytes=optimizer_bytes, price=per_hour)


def time_line(t: "TimePlan") -> str:
    """The time plan as one note: per step, and the run when its steps are known."""
    from ..time import duration, per_step, rate

    run = f", the run ~{duration(t.total_s)} ({t.steps:,} steps)" if t.total_s is not None else \
        " (steps unknown: no data, no max_steps)"
    cost = f", cost ~{t.cost:,.2f} ({t.price_per_gpu_hour:g}/GPU-h x {t.gpus})" if t.cost is not None else ""
    return f"time: {per_step(t.step_s)} ({rate(t.tokens_per_s)} on {t.device}){run}{cost}"


def rest_of(spec: "ModelSpec", cfg: "RunConfig", hw: "Hardware | None", upcast: str = "",
            trains: "Freeze | Unfrozen | None" = None, zero: "Zero12 | None" = None) -> tuple[dict[str, int], "Fit"]:
    """What a full fine-tune with `cfg`'s settings holds beside its weights, gradients and optimizer states
    (the module docstring says how it is taken from a LoRA estimate), and that LoRA run's fit (its plan, its
    GPUs' bytes). Under DeepSpeed ZeRO-1/2 (`zero`) there are no DDP buckets: the gradients are reduced through
    DeepSpeed's contiguous bucket of reduce_bucket_size elements in the 16-bit dtype, two with overlap_comm
    (stage_1_and_2.py `ipg_buffer`), "auto" filled as hidden_size**2 (deepspeed_file.fill)."""
    from ..allocator import fsdp_grad_bytes
    from ..fit import assess
    from ..memory import unit_bytes

    judged = assess(spec, _bare(cfg), hw, method="lora")
    plan = judged.estimate.plan
    rest = {k: v for k, v in judged.estimate.components.items() if k not in NOT_REST}
    if plan.gpus > 1 and not plan.sharded and zero:  # DeepSpeed ZeRO-1/2: its reduce bucket
        rest["zero_buckets"] = zero_bucket_bytes(zero, spec.hidden_size, plan.dtype_bytes)
    elif plan.gpus > 1 and not plan.sharded:  # DDP: the flat gradient buckets, a second copy of every gradient
        trained = (trains.resolve(spec)[0] if trains is not None else 0) or spec.total_params
        rest["ddp_buckets"] = trained * trained_bytes(plan, upcast).grad
    elif plan.sharded and plan.strategy == "fsdp":  # one decoder layer's gradient while it reduce-scatters
        rest["fsdp_grad_buffers"] = fsdp_grad_bytes(plan, unit_bytes(spec, plan)[0] // plan.dtype_bytes)
    return rest, judged


def zero_bucket_bytes(zero: "Zero12", hidden: int, dtype_bytes: int) -> int:
    """DeepSpeed ZeRO-1/2's contiguous gradient buckets (Reading.zero: stage, reduce_bucket_size, overlap_comm,
    contiguous_gradients): with contiguous_gradients (its default) each backward allocates reduce_bucket_size elements
    of the trained weights' dtype at full size, whatever the model, and a second with overlap_comm (deepspeed 0.19
    runtime/zero/stage_1_and_2.py `setup_buckets`: `torch.empty(int(self.reduce_bucket_size), ...)`); "auto" is
    filled as hidden_size**2 (deepspeed_file.fill), unset is DeepSpeed's 5e8."""
    from .. import deepspeed_file
    from ..sharding import DS_REDUCE_BUCKET_ELEMS

    if not zero.contiguous:
        return 0
    elements = deepspeed_file.fill(zero.reduce_bucket, hidden * hidden, DS_REDUCE_BUCKET_ELEMS)
    return elements * dtype_bytes * (2 if zero.overlap else 1)


def gpus_needed(reading: "Reading", spec: "ModelSpec", cfg: "RunConfig", hw: "Hardware",
                strategy: str) -> "Floor | None":
    """The full fine-tune on the fewest GPUs (2-8) of `hw`'s kind under `strategy` on which it fits: None when
    it fits on none (or no GPU)."""
    from ..config import with_values
    from ..fit import with_gpus

    if not hw.has_gpu:
        return None
    for n in range(2, 9):
        at = of_reading(reading, spec, with_values(cfg, {"distributed.gpus": n, "distributed.strategy": strategy}),
                        with_gpus(hw, n))
        if at.verdict == "fits":
            return at
    return None
