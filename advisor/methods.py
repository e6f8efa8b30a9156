"""Fine-tuning methods as data: one descriptor per method, and nothing else compares method names.

A `Method` says how the frozen base is stored (and, when quantized, how: `FourBit`), what
training adds, which optimizer `train.optimizer: auto` means for it, its usual
learning-rate band, and the hooks the estimator (`memory.py`), the recommender, the red
flags and the worker (`trainer/worker.py`: how the model is loaded) read. The schema's
`method` values come from `METHODS` (plus "auto"), and so do the CLI's `--method` choices
and the TUI form.

Adding a method (DoRA, 8-bit LoRA, ...) is a new entry here; its estimator arithmetic
beyond the base weights (e.g. DoRA's magnitude vectors) goes in `memory.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .coupling import lr_text


@dataclass(frozen=True)
class FourBit:
    """bitsandbytes 4-bit base linears (Linear4bit), the QLoRA layout (Dettmers et al. 2023,
    "QLoRA", §3 Double Quantization; bitsandbytes Params4bit defaults): 4 bits per weight, one
    fp32 absmax per 64-weight block; with double quantization the absmax are 8-bit with one
    fp32 constant per 256 absmax. Every nn.Linear but the output head is replaced
    (transformers' get_keys_to_not_convert keeps lm_head)."""

    bits: int = 4
    block: int = 64
    dq_block: int = 256

    saves_input = False  # bnb MatMul4Bit keeps only the packed weight for backward (autograd/_functions.py)
    backward_dequant = False  # the 16-bit weight de-quantized in backward (not counted for 4-bit: it never set a peak)

    def constants_bytes(self, weights: int, double_quant: bool, rows: int = 0) -> int:
        """Bytes of quantization constants for `weights` quantized weights (`rows`: their output rows)."""
        if double_quant:
            return weights // self.block + 4 * (weights // (self.block * self.dq_block))
        return 4 * (weights // self.block)

    def describe(self, double_quant: bool) -> str:
        dq = (f"double-quantized 8-bit absmax + fp32 per {self.dq_block}" if double_quant
              else f"fp32 absmax per {self.block} weights")
        return f"NF4 ({self.bits} bits) with {dq}"

    def load_kwargs(self, quant: Any, compute_dtype: Any, sharded: bool, keep: tuple[str, ...] = ()) -> dict:
        """BitsAndBytesConfig(**these) for the base (`quant` is the config's QuantSection; `keep`: linears left in
        the compute dtype, skip_modules). FSDP/ZeRO-3 shard float tensors of one dtype: the 4-bit weights are then
        stored in the compute dtype (peft docs, accelerate/fsdp.md "Use PEFT QLoRA and FSDP")."""
        out = {"load_in_4bit": True, "bnb_4bit_quant_type": quant.quant_type,
               "bnb_4bit_use_double_quant": quant.double_quant, "bnb_4bit_compute_dtype": compute_dtype}
        if sharded:
            out["bnb_4bit_quant_storage"] = compute_dtype
        return out | skip_modules(keep)


@dataclass(frozen=True)
class EightBit:
    """bitsandbytes LLM.int8 base linears (Linear8bitLt; Dettmers et al. 2022, "LLM.int8()"):
    each weight one int8 (`Int8Params.CB`) plus one fp32 absmax per output row (`SCB`,
    bitsandbytes 0.50 functional.int8_vectorwise_quant). Outliers (activation columns above
    llm_int8_threshold, 6.0 in transformers' BitsAndBytesConfig) are decomposed at run time from
    the input: no stored outlier weights. What training adds (bitsandbytes 0.50
    autograd/_functions.py MatMul8bitLt): forward keeps the linear's input A for backward
    (`ctx.tensors = (CAt, subA, A)`), and backward de-quantizes the whole weight to the
    input's dtype (`state.CB.to(ctx.dtype_A, copy=True)`) for the input gradient."""

    bits: int = 8
    saves_input = True
    backward_dequant = True

    def constants_bytes(self, weights: int, double_quant: bool, rows: int = 0) -> int:
        return 4 * rows  # SCB: one fp32 per output row

    def describe(self, double_quant: bool) -> str:
        return "LLM.int8 (8 bits) with an fp32 absmax per output row"

    def load_kwargs(self, quant: Any, compute_dtype: Any, sharded: bool, keep: tuple[str, ...] = ()) -> dict:
        """BitsAndBytesConfig(**these). Int8Params cannot be flattened with 16-bit tensors into one
        FSDP unit (peft/accelerate document FSDP only for 4-bit with bnb_4bit_quant_storage)."""
        if sharded:
            from .errors import RankwiseError
            raise RankwiseError("an 8-bit (LLM.int8) base cannot be sharded with FSDP/ZeRO-3",
                                "use distributed.strategy: ddp, or the 4-bit method (FSDP+QLoRA)")
        return {"load_in_8bit": True} | skip_modules(keep)


def skip_modules(keep: tuple[str, ...]) -> dict:
    """BitsAndBytesConfig's llm_int8_skip_modules for linears that must stay in the compute dtype
    (ModelSpec.bare_names), or nothing. Given a list, transformers 5 skips only it (quantizers/base.py
    get_modules_to_not_convert drops its default, the output head, and matches each name as a suffix), so lm_head,
    rankwise's causal LM head, is named."""
    return {"llm_int8_skip_modules": ["lm_head", *keep]} if keep else {}


@dataclass(frozen=True)
class PreQuantized:
    """A base shipped already quantized (GPTQ, AWQ, AQLM), read from its config.json's
    `quantization_config` (or, for a model known only by name, from what its name states:
    `model.name_quantization`): its linears stay in that format whatever the method, LoRA trains
    beside them (peft's GPTQ/AWQ/AQLM layers), and bitsandbytes' 4-/8-bit cannot be applied on top.
    Storage per linear (d_in x d_out), with G = d_in / group_size groups (one when group_size is -1):
      GPTQ (gptqmodel / auto-gptq QuantLinear buffers): qweight bits/8 a weight, qzeros bits/8 and
      fp16 scales per (group, output), g_idx int32 per input row;
      AWQ (AutoAWQ WQLinear_GEMM buffers): qweight bits/8 a weight, qzeros bits/8 and fp16 scales
      per (group, output), no g_idx;
      AQLM (Egiazarian et al. 2024; aqlm's QuantizedLinear, src/aqlm/inference.py): each run of
      `group_size` inputs (in_group_size) of each output is `codebooks` codes of `codebook_bits` bits
      (an int8/int16 per code), plus per linear the fp16 codebooks (codebooks x 2^codebook_bits x
      in_group_size values) and one fp16 scale per output row (out_group_size 1). 1x16 with groups of 8:
      2 bits a weight.
    The output head stays 16-bit in all three (none quantizes lm_head by default)."""

    fmt: str  # gptq | awq | aqlm
    bits: int  # per weight (AQLM: codebooks x codebook_bits / group_size)
    group_size: int  # -1: one group per input row span (the whole d_in); AQLM: in_group_size
    codebooks: int = 0  # AQLM num_codebooks
    codebook_bits: int = 0  # AQLM nbits_per_codebook
    inferred: str = ""  # where it comes from when not config.json: the model's name, or --load

    FORMATS = ("gptq", "awq", "aqlm")
    PACKAGES = {"gptq": ("gptqmodel",), "awq": ("gptqmodel", "awq"), "aqlm": ("aqlm",)}  # any one loads it
    INSTALL = {"gptq": "rankwise[prequantized]", "awq": "rankwise[prequantized]", "aqlm": "aqlm[gpu]"}

    @classmethod
    def of(cls, config: dict) -> "PreQuantized | None":
        q = config.get("quantization_config") or {}
        fmt = str(q.get("quant_method", "")).lower()
        if fmt not in cls.FORMATS:
            return None
        why = str(q.get("rankwise_inferred") or "")
        if fmt == "aqlm":  # transformers AqlmConfig's defaults: 1 codebook of 16 bits, groups of 8 inputs
            books, nbits, group = int(q.get("num_codebooks") or 1), int(q.get("nbits_per_codebook") or 16), \
                int(q.get("in_group_size") or 8)
            return cls(fmt, max(1, books * nbits // group), group, books, nbits, why)
        return cls(fmt, int(q.get("bits") or q.get("w_bit") or 4),
                   int(q.get("group_size") or q.get("q_group_size") or 128), inferred=why)

    def weight_bytes(self, d_in: int, d_out: int) -> tuple[int, int]:
        """(packed weights, constants) of one linear, in bytes."""
        if self.fmt == "aqlm":
            code_bytes = 1 if self.codebook_bits <= 8 else 2 if self.codebook_bits <= 16 else 4
            codes = d_out * -(-d_in // self.group_size) * self.codebooks * code_bytes
            return codes, self.codebooks * 2 ** self.codebook_bits * self.group_size * 2 + 2 * d_out
        groups = 1 if self.group_size <= 0 else -(-d_in // self.group_size)
        constants = groups * d_out * (2 * 8 + self.bits) // 8 + (4 * d_in if self.fmt == "gptq" else 0)
        return d_in * d_out * self.bits // 8, constants

    def describe(self) -> str:
        where = self.inferred or "config.json quantization_config"
        if self.fmt == "aqlm":
            return (f"pre-quantized AQLM {self.bits}-bit base ({where}): {self.codebooks}x{self.codebook_bits} "
                    f"codes per {self.group_size} inputs, fp16 codebooks and an fp16 scale per output")
        group = "per input row span" if self.group_size <= 0 else f"per {self.group_size} inputs"
        return (f"pre-quantized {self.fmt.upper()} {self.bits}-bit base ({where}): "
                f"fp16 scale + {self.bits}-bit zero {group}" + (", int32 g_idx per input" if self.fmt == "gptq" else ""))


@dataclass(frozen=True)
class Method:
    name: str  # the schema's value (`method: lora`)
    label: str  # how people write it (LoRA)
    base: str  # how the frozen base weights are stored, for help and messages
    adapter: str  # what training adds to the base
    optimizer: str  # what `train.optimizer: auto` resolves to
    optimizer_why: str
    lr: float  # the recommender's learning rate
    lr_range: tuple[float, float]  # the usual band; outside WARN_LR (redflags) the run rarely learns
    lr_why: str
    max_lr: float | None = None  # above it training is likely unstable (red flag qlora-high-lr)
    max_lr_why: str = ""
    quant: FourBit | EightBit | None = None  # None: the base stays in the compute dtype (16-bit, or fp32)
    peft: dict = field(default_factory=dict)  # extra peft LoraConfig arguments (e.g. use_dora)
    compared: bool = True  # estimated side by side by `advise` and the Advice screen

    @property
    def quantized(self) -> bool:
        """The base linears are quantized by bitsandbytes (and prepared for k-bit training)."""
        return self.quant is not None

    @property
    def dora(self) -> bool:
        """peft use_dora: a magnitude vector per adapted linear and a weight-norm pass each step."""
        return bool(self.peft.get("use_dora"))

    @property
    def base_bits(self) -> int | None:
        return self.quant.bits if self.quant else None


# Learning rates: the recommender and the red flags use advisor/coupling.py (by model size and
# alpha, the same for LoRA and QLoRA: QLoRA's own recipe, Dettmers et al. 2023 Appendix B, set
# 2e-4 for 7B/13B and 1e-4 for 33B/65B, by size, not by quantization). `lr`/`lr_range` here stay
# the run doctor's fallbacks; `max_lr` is the practitioner guide's QLoRA ceiling (red flag
# qlora-high-lr, info). Optimizers: paged AdamW for 4-bit bases (Dettmers et al. 2023, §3 Paged
# Optimizers; the paper's runs used paged 32-bit AdamW, rankwise pages 8-bit states); LoRA's
# adapter states are small: AdamW.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("lora", "LoRA", "16-bit", "low-rank A·B beside each adapted linear (Hu et al. 2021)",
           optimizer="adamw_torch", optimizer_why="AdamW; the adapter's states are small",
           lr=2e-4, lr_range=(1e-4, 5e-4), lr_why=""),
    Method("qlora", "QLoRA", "4-bit NF4", "low-rank A·B beside each 4-bit linear (Dettmers et al. 2023)",
           optimizer="paged_adamw_8bit", optimizer_why="paged 8-bit AdamW: paging moves optimizer spikes to CPU memory as in QLoRA, whose "
           "paper used paged 32-bit AdamW; 8-bit states save a little more memory",
           lr=1e-4, lr_range=(5e-5, 2e-4), lr_why="the guide's lower QLoRA rate", max_lr=5e-4,
           max_lr_why="the guide keeps QLoRA lower because gradients through the 4-bit de-quantized base are "
                      "noisier (no study here measured it)",
           quant=FourBit()),
    # 8-bit base: half LoRA's weight memory, no 4-bit rounding; LLM.int8's matmul is slower than
    # 16-bit (Dettmers et al. 2022, §5: outlier decomposition). LoRA's learning rates.
    Method("lora-8bit", "8-bit LoRA", "8-bit LLM.int8", "low-rank A·B beside each 8-bit linear",
           optimizer="adamw_torch", optimizer_why="AdamW; the adapter's states are small",
           lr=2e-4, lr_range=(1e-4, 5e-4), lr_why="", quant=EightBit(), compared=False),
    # DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation"): LoRA on the weight's
    # direction plus a trainable magnitude per output row; +1-4 points over LoRA at the same rank on
    # commonsense reasoning with LLaMA 7B-13B (Table 1), most at low ranks; each step re-computes
    # the adapted weight's row norms (peft tuners/lora/dora.py), so it costs memory and time.
    Method("dora", "DoRA", "16-bit", "LoRA on the weight's direction + a trainable magnitude per output row "
           "(Liu et al. 2024)", optimizer="adamw_torch", optimizer_why="AdamW; the adapter's states are small",
           lr=2e-4, lr_range=(1e-4, 5e-4), lr_why="", peft={"use_dora": True}, compared=False),
    Method("qdora", "QDoRA", "4-bit NF4", "DoRA beside each 4-bit linear (peft use_dora on Linear4bit)",
           optimizer="paged_adamw_8bit", optimizer_why="paged 8-bit AdamW: paging moves optimizer spikes to CPU memory as in QLoRA, whose "
           "paper used paged 32-bit AdamW; 8-bit states save a little more memory",
           lr=1e-4, lr_range=(5e-5, 2e-4), lr_why="the guide's lower QLoRA rate", max_lr=5e-4,
           max_lr_why="the guide keeps QLoRA lower because gradients through the 4-bit de-quantized base are "
                      "noisier (no study here measured it)",
           quant=FourBit(), peft={"use_dora": True}, compared=False),
)}

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
MethodName = Literal[METHOD_NAMES]  # type: ignore[valid-type]  # the table's names, for the schema
MethodChoice = Literal[METHOD_NAMES + ("auto",)]  # type: ignore[valid-type]  # `method:` in a preset
COMPARED: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.compared)
# The method assumed for `method: auto` where nothing is estimated (model unknown), and the
# leanest one compared (the recommender's fallback when nothing fits).
DEFAULT = METHOD_NAMES[0]
LEANEST = min(COMPARED, key=lambda n: METHODS[n].base_bits or 16)


def unquantized_twin(name: str) -> str:
    """The entry with the same adapter (peft arguments) on an unquantized base: what a method means
    on a pre-quantized (GPTQ/AWQ) base, which bitsandbytes does not quantize again (QLoRA -> LoRA)."""
    m = METHODS[name]
    if m.quant is None:
        return name
    return next(n for n, t in METHODS.items() if t.quant is None and t.peft == m.peft)


def label(name: str) -> str:
    """LoRA for "lora": the name people write."""
    return METHODS[name].label


def lr_reason(m: Method) -> str:
    """Why the recommender sets `m.lr`."""
    lo, hi = m.lr_range
    return f"{m.label}: {lr_text(m.lr)} is typical (usual range {lr_text(lo)}–{lr_text(hi)}{'; ' + m.lr_why if m.lr_why else ''})"


def help_text() -> str:
    """`--method` help: each method and how it stores the base."""
    return "; ".join(f"{m.name}: {m.base} base" for m in METHODS.values())
