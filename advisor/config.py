"""The one schema: `RunConfig` describes a run everywhere.

Presets are YAML files of this schema; `--set lora.r=32` edits it; the TUI form shows it;
the advisor emits it; the trainer consumes it. Each field's docstring is its help text.
This module is the schema alone, with the one way to address a field by dotted key
(`get_key`, `set_key`, `with_values`, `field_help`); reading a file into it, with every
problem located at its file and line, and `--set` overrides are in `loader.py`.
"""
from __future__ import annotations

import copy
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .doctor import CODES as DOCTOR_CODES  # `train.stop_on` takes the run doctor's codes
from .methods import DEFAULT as DEFAULT_METHOD, METHODS, MethodChoice
from .spec import TARGET_SETS, TargetSet  # ModelSpec.target_set resolves the named sets

# The schema's enumerations, each declared once: the fields below are typed with them;
# argparse `choices=` and the TUI form read the tuples. Methods come from the methods table.
METHOD_CHOICES: tuple[str, ...] = get_args(MethodChoice)  # lora, qlora, ..., auto
TaskKind = Literal["classification", "format", "style", "instruction", "chat", "domain", "code", "reasoning"]
TASKS: tuple[str, ...] = get_args(TaskKind)
Optimizer = Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
OptimizerChoice = Literal[("auto",) + OPTIMIZERS]  # type: ignore[valid-type]  # auto: the method's default
OPTIMIZER_CHOICES: tuple[str, ...] = get_args(OptimizerChoice)
Strategy = Literal["ddp", "fsdp", "deepspeed"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
Offload = Literal["none", "params", "params_and_optimizer"]  # distributed.offload (advisor/sharding.py)
OFFLOADS: tuple[str, ...] = get_args(Offload)
FsdpSharding = Literal["full", "shard_grad_op", "hybrid", "no_shard"]  # distributed.fsdp_sharding (advisor/sharding.py)
FSDP_SHARDINGS: tuple[str, ...] = get_args(FsdpSharding)
StrategyChoice = Literal[("auto",) + STRATEGIES]  # type: ignore[valid-type]  # auto: DDP if it fits, else FSDP
STRATEGY_CHOICES: tuple[str, ...] = get_args(StrategyChoice)
Precision = Literal["auto", "bf16", "fp16", "fp32", "pure_bf16", "fp32_master"]
DoctorCode = Literal[tuple(DOCTOR_CODES)]  # type: ignore[valid-type]  # advisor/doctor.py's diagnoses
PRECISIONS: tuple[str, ...] = get_args(Precision)
Scheduler = Literal["cosine", "linear", "constant"]
SCHEDULERS: tuple[str, ...] = get_args(Scheduler)
LoraBias = Literal["none", "all", "lora_only"]
BIASES: tuple[str, ...] = get_args(LoraBias)
# how the adapter starts (peft init_lora_weights); advisor/adapter_init.py holds what each costs and why
LoraInit = Literal["default", "gaussian", "pissa", "olora", "loftq", "eva"]
LORA_INITS: tuple[str, ...] = get_args(LoraInit)
QuantType = Literal["nf4", "fp4"]
QUANT_TYPES: tuple[str, ...] = get_args(QuantType)
# transformers' attn_implementation values rankwise offers; auto: transformers' own choice (SDPA)
Attention = Literal["auto", "sdpa", "eager", "flash_attention_2"]
ATTENTIONS: tuple[str, ...] = get_args(Attention)
# fused training kernels; liger: the HF Trainer's Liger integration (use_liger_kernel)
Kernels = Literal["none", "liger", "liger_layers"]
KERNELS: tuple[str, ...] = get_args(Kernels)
# how the loss runs on the logits (train.loss; trainer/chunked_loss.py, trainer/cce_loss.py): standard, chunked (fp32
# one chunk at a time), or cce (Cut Cross-Entropy: the logits never held)
Loss = Literal["standard", "chunked", "cce"]
LOSS_MODES: tuple[str, ...] = get_args(Loss)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              allow_inf_nan=False)  # .inf epochs or .nan lr are mistakes, not settings


class ModelSection(Section):
    name: str = "llama-3.2-1b"
    """A catalog name (`rankwise presets`/`estimate --model` list them), a local model
    directory or config.json, or a model id already in the local Hugging Face cache."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model. Off unless you trust the source."""
    allow_unsafe_weights: bool = False
    """Also load pickled `.bin` weights when no safetensors exist (pickle can run code)."""
    added_tokens: list[str] = Field(default_factory=list)
    """New tokens for the tokenizer (e.g. ["<|tool_call|>"]): the embeddings are resized to hold them and their
    rows train with the adapter (peft trainable tokens: the input embedding, and the output head where untied);
    the adapter then holds the resized embedding and head. Empty: none."""

    chat_template: str | None = None
    """The template chat rows (and instruction rows) are rendered with: unset = the tokenizer's own; `chatml`; a
    Jinja template written inline; or a Jinja file (relative to the preset's folder). For a base model without
    one, or to train another format; chat, compare and merge use it too (advisor/chat_templates.py)."""

    @field_validator("added_tokens")
    @classmethod
    def _tokens_are_text(cls, v: list[str]) -> list[str]:
        if any(not t or t != t.strip() for t in v):
            raise ValueError("model.added_tokens: each token is a non-empty string without surrounding spaces")
        return v


class DataSection(Section):
    path: str | None = None
    """Training data: a .jsonl, .json, .csv or .parquet file, or a saved HF dataset folder.
    Relative paths are resolved against the preset's folder."""
    format: Literal["auto", "chat", "sharegpt", "instruction", "prompt_completion", "text"] = "auto"
    """Row format. auto: `messages` → chat, `conversations` → sharegpt, `instruction`/`output` →
    instruction, `prompt`/`completion` → prompt_completion, `text` → text (`chosen` + `rejected`
    is preference data: explained, not trained; see columns)."""
    columns: dict[str, str] = {}
    """Read a file's own field names as rankwise's: {rankwise field: file field}, e.g.
    {output: answer} or {messages: chosen} (SFT on a preference file's chosen conversations).
    Fields: messages, conversations, tools, instruction, input, output, system, prompt, completion, text."""
    val_path: str | None = None
    """Validation data in its own file (same formats). Overrides val_ratio."""
    val_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    """Fraction of the training rows held out for validation when val_path is unset."""
    packing: bool = False
    """Pack several short examples into each max_seq_len sequence (faster, no padding)."""
    train_on_inputs: bool = False
    """Train on the whole example, prompt included (axolotl's train_on_inputs, LLaMA-Factory's
    train_on_prompt). Off: only the responses are trained on. Validation keeps the prompt masked, so
    the eval loss still measures the answers."""
    skip_bad_rows: bool = False
    """Skip and count rows with missing fields or wrong types instead of stopping."""
    max_rows: int | None = Field(None, ge=1)
    """Use at most this many training rows (quick trials)."""

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, v: dict[str, str]) -> dict[str, str]:
        import difflib

        from .rowformat import COLUMNS  # one list of the fields rankwise reads
        for key in v:
            if key not in COLUMNS:
                near = difflib.get_close_matches(key, COLUMNS, n=1)
                raise ValueError(f"data.columns: '{key}' is not a field rankwise reads"
                                 + (f" (did you mean '{near[0]}'?)" if near else "") + f"; fields: {', '.join(COLUMNS)}")
        return v


class LoraSection(Section):
    r: int = Field(16, ge=1)
    """Rank. Higher: more capacity, memory and risk of overfitting small data."""
    alpha: float | None = Field(None, gt=0)
    """Scaling numerator (update is alpha/r · BA). Unset: 2·r."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA input. More for small datasets (0.05–0.1 typical)."""
    bias: LoraBias = "none"
    """Which biases train. none keeps the adapter mergeable and small."""
    target_modules: Union[TargetSet, list[str]] = "standard"
    """Adapted linears: a named set (minimal = q,v; standard = q,k,v,o; aggressive =
    standard + gate/up/down; all-linear) or a list of module names."""
    use_rslora: bool = False
    """Rank-stabilised scaling alpha/sqrt(r): keeps high ranks learning."""
    init: LoraInit = "default"
    """How the adapter starts (peft init_lora_weights). default: A random, B zero (Hu et al.).
    gaussian: A Gaussian. pissa: A·B from the base's top-r singular vectors, the base keeps the
    residual (an SVD of each adapted linear at start-up). olora: A·B from a QR decomposition.
    loftq: A·B fit the 4-bit quantization error (QLoRA; on a 16-bit base the weights are NF4-rounded
    in place and the adapter is for the 4-bit base; needs a CUDA GPU). eva: A from the
    SVD of the adapted layers' inputs on the first training batches."""
    init_from: str | None = None
    """A trained adapter folder (adapter_config.json + adapter_model.safetensors, e.g. an earlier run's
    adapter/) whose weights this run starts from: continued fine-tuning on new data, or a second stage. Its r,
    alpha, targets and variant must equal this config's (the estimate and the advice read them here). Unset: a
    new adapter (lora.init)."""
    init_iters: int | None = Field(None, ge=1)
    """pissa: iterations of the fast randomized SVD (peft pissa_niter_N; seconds instead of
    minutes for a 7B). Unset: the exact SVD."""
    modules_to_save: list[str] = Field(default_factory=list)
    """Modules trained in full beside the adapter (peft modules_to_save): [embed_tokens, lm_head] to teach new
    tokens or a new chat template. Each gets a trainable copy with its gradients and optimizer states (an
    8B model's embed_tokens and lm_head: ~1B parameters), and the saved adapter holds the copies. Empty: none."""
    target_parameters: list[str] = Field(default_factory=list)
    """Parameters adapted directly, not through a module (peft target_parameters; axolotl's
    lora_target_parameters): a model's fused MoE expert tensors, e.g. [experts.gate_up_proj,
    experts.down_proj], which target_modules cannot reach. Each gets rank r per expert. Each forward builds the
    adapted tensor in full (one layer's experts, 16-bit, kept for backward), and peft allows no dropout there
    (lora.dropout: 0). Empty: none."""
    loraplus_lr_ratio: float | None = Field(None, ge=1.0)
    """LoRA+: the B matrices learn at train.lr × this ratio (peft create_loraplus_optimizer; the
    paper suggests 16). Unset: one learning rate for A and B."""

    @property
    def alpha_value(self) -> float:
        return float(self.alpha) if self.alpha is not None else 2.0 * self.r


class QuantSection(Section):
    quant_type: QuantType = "nf4"
    """4-bit data type for QLoRA. NF4 is the QLoRA paper's choice."""
    double_quant: bool = True
    """Quantize the quantization constants too (saves ~0.37 bit/param)."""
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Dtype of the de-quantized matmuls. auto: bf16 where supported, else fp16 (fp32 on CPU)."""
    quantize_experts: bool = True
    """4- and 8-bit methods: quantize an MoE's fused expert tensors as they load, to NF4 (bitsandbytes' parameter
    quantization) or row-wise int8 (the 8-bit method; LLM.int8's weight format); transformers' own k-bit loading
    leaves them 16-bit, most of an MoE. Dequantized a layer at a time in each forward. false: keep them 16-bit (what
    axolotl without quantize_moe_experts, LLaMA-Factory and TRL do). One GPU or DDP only: FSDP/ZeRO-3 keeps them
    16-bit."""
    kbit_upcast: bool = True
    """Keep peft's fp32 upcast of the non-quantized weights (embeddings, norms, lm_head) of a
    4-/8-bit base (prepare_model_for_kbit_training). false: cast them back to the compute
    dtype, as axolotl does: less memory (16-bit embeddings, lm_head and residual stream)."""


class TrainSection(Section):
    lr: float = Field(2e-4, gt=0.0)
    """Peak learning rate."""
    scheduler: Scheduler = "cosine"
    """Learning-rate schedule after warmup."""
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    """Fraction of steps spent warming up (ignored when warmup_steps is set)."""
    warmup_steps: int | None = Field(None, ge=0)
    """Warmup steps; overrides warmup_ratio."""
    epochs: float = Field(1.0, gt=0.0)
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps to run; overrides epochs."""
    micro_batch: int = Field(1, ge=1)
    """Sequences per forward pass per GPU. Higher: faster, more activation memory."""
    grad_accum: int = Field(8, ge=1)
    """Micro-batches per optimizer step. Effective batch = micro_batch · grad_accum · GPUs."""
    max_seq_len: int = Field(2048, ge=8)
    """Longest sequence in tokens; longer rows are truncated and counted."""
    grad_checkpointing: bool = True
    """Recompute activations in the backward pass: much less memory, ~30% slower."""
    checkpointing_reentrant: bool = False
    """With grad_checkpointing: torch's reentrant checkpoint (use_reentrant=True, the default of axolotl
    and LLaMA-Factory) instead of the non-reentrant one. Same saved inputs; the reentrant one recomputes
    each layer in full and keeps its output through that layer's backward (one hidden-state tensor more)."""
    activation_offload: bool = False
    """With grad_checkpointing: each checkpointed layer's saved input kept in pinned host RAM and copied
    back for its backward (torch.autograd.graph.save_on_cpu; axolotl's and TRL's activation_offloading):
    the GPU holds one layer's input at a time instead of every layer's, slower steps (PCIe copies)."""
    optimizer: OptimizerChoice = "auto"
    """auto: paged 8-bit AdamW for QLoRA (paging as in QLoRA, whose paper used 32-bit states), AdamW for LoRA."""
    weight_decay: float = Field(0.0, ge=0.0)
    """AdamW weight decay on the adapter weights."""
    max_grad_norm: float = Field(1.0, ge=0.0)
    """Gradient clipping norm (0 disables)."""
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0)
    """AdamW's beta1 (HF TrainingArguments' default), for the 8-bit and LoRA+ optimizers too."""
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0)
    """AdamW's beta2 (HF's default; some recipes use 0.95 or 0.98 for stability)."""
    adam_epsilon: float = Field(1e-8, gt=0.0)
    """AdamW's epsilon (HF's default)."""
    precision: Precision = "auto"
    """Training precision. auto: bf16 where the GPU has it, else fp16; fp32 on CPU. bf16/fp16:
    16-bit weights under autocast, adapters and optimizer states fp32. pure_bf16: no autocast,
    adapters and AdamW states bf16 too (less memory, less precise updates). fp32_master (FSDP):
    weights kept fp32 in their shards, gathered and computed in bf16 (FSDP MixedPrecision)."""
    attention: Attention = "auto"
    """Attention kernel (transformers attn_implementation). auto/sdpa: PyTorch SDPA, no
    seq×seq scores kept; eager: plain matmul+softmax, keeps batch×heads×seq² scores per layer
    (much more memory at long sequences); flash_attention_2: needs the flash-attn package and
    an Ampere or newer GPU."""
    kernels: Kernels = "none"
    """Fused kernels. liger: Liger's fused linear cross-entropy (never holds the vocabulary-sized
    logits), RMSNorm, SwiGLU, RoPE (Triton, GPU only; `pip install 'rankwise[kernels]'`).
    liger_layers: Liger's RMSNorm, SwiGLU and RoPE only, beside train.loss's loss (axolotl's liger_rms_norm /
    liger_glu_activation with the Cut Cross-Entropy plugin; LLaMA-Factory's Liger outside SFT)."""
    loss: Loss = "standard"
    """How the cross-entropy runs on the vocabulary-sized logits. standard: transformers' loss, on an
    fp32 copy of all of them; chunked: the 16-bit logits cut into 8 chunks along the sequence, each
    upcast to fp32 on its own (torchtune's CEWithChunkedOutputLoss, axolotl's chunked_cross_entropy):
    the same loss and gradients, 5 bytes a logit where the standard loss holds 12 beside the
    logits, on any device; cce: Cut Cross-Entropy (Wijmans et al. 2025), the loss from the hidden
    states and the head's weight, block by block: the logits are never held (Triton, GPU only;
    `pip install 'rankwise[kernels]'`; axolotl's CutCrossEntropyPlugin). With kernels: liger the
    loss is fused already (never holds the logits): leave it standard; kernels: liger_layers takes any."""
    seed: int = 42
    """Seed for data order, dropout and LoRA init."""

    @property
    def standard_loss(self) -> bool:
        """transformers' loss runs on the whole logits: neither chunked nor Liger's fused one (which the chunked
        loss would save memory beside)."""
        return self.loss == "standard" and self.kernels == "none"
    logging_steps: int = Field(10, ge=1)
    """Steps between progress events."""
    eval_steps: int | None = Field(None, ge=1)
    """Steps between evaluations (needs validation data). Unset: at each save."""
    evals_per_epoch: int | None = Field(None, ge=1)
    """Evaluations per epoch (axolotl's key): every floor(steps an epoch / N) steps, in place of eval_steps, with
    a checkpoint at each so the best by eval loss can be kept. Evaluation is a forward over every validation row:
    at a fixed step interval its cost grows with the data, per epoch it stays a share of the run."""
    save_steps: int = Field(100, ge=1)
    """Steps between checkpoints."""
    saves_per_epoch: int | None = Field(None, ge=1)
    """Checkpoints per epoch (axolotl's key): every floor(steps an epoch / N) steps, in place of save_steps."""
    save_total_limit: int = Field(2, ge=1)
    """Checkpoints kept on disk."""
    report_to: Literal["none", "tensorboard"] = "none"
    """Also log to TensorBoard (in the run directory)."""
    stop_on: list[DoctorCode] = Field(default_factory=list)
    """Run-doctor codes that stop the run (e.g. [overfitting, loss-spikes]): a checkpoint is
    saved where one fires, training ends, and the best checkpoint by eval loss becomes the
    adapter (summary.json says which). Codes: `rankwise doctor` in the README."""
    stop_on_nan: bool = True
    """Stop at once when the loss or gradient norm turns NaN/Inf (loss-nan), keeping the best
    checkpoint from before it, rather than training on NaN weights."""
    sample_every: int | None = Field(None, ge=1)
    """Steps between samples: the model in training answers a few held-out prompts (greedy, 48
    new tokens), written as `sample` events the panel and `attach` show. Unset: off, unless
    sample_prompts is set, which samples at each evaluation."""
    sample_prompts: Union[list[str], str, None] = None
    """Prompts to sample: a list of user messages, a text file of them (one a line; relative to
    the preset), or auto = the first three validation rows' prompts (exactly as training renders
    them). Unset with sample_every set: auto."""

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum


class DistributedSection(Section):
    strategy: StrategyChoice = "auto"
    """How several GPUs share the run. auto: DDP when the model fits one GPU, else FSDP.
    ddp: a full copy per GPU. fsdp: weights, gradients and optimizer sharded across GPUs
    (also FSDP+QLoRA). deepspeed: ZeRO-3 (needs the deepspeed package)."""
    gpus: Union[Annotated[int, Field(ge=1)], Literal["auto"]] = 1
    """GPUs per machine to train on: a count, or auto for every visible GPU. More than one
    launches through `accelerate launch` (`rankwise train --gpus N` overrides it)."""
    offload: Offload = "none"
    """CPU offload under FSDP/ZeRO-3 (2+ GPUs). params: the sharded weights wait in host RAM and
    are copied in per layer (DeepSpeed only: FSDP offloads weights with their gradients and
    optimizer); params_and_optimizer: weights, gradients and optimizer states in host RAM, the
    optimizer steps on the CPU. Less GPU memory, slower steps, much more host RAM."""
    fsdp_sharding: FsdpSharding = "full"
    """FSDP sharding strategy. full: weights gathered per layer and freed (FULL_SHARD). shard_grad_op:
    weights stay gathered from forward to backward (less communication, the whole model in full on
    each GPU at the peak). hybrid: full sharding within a machine, replicas across machines. no_shard:
    a full replica per GPU, gradients all-reduced (FSDP's DDP; NO_SHARD)."""
    deepspeed_config: str | None = None
    """A DeepSpeed JSON config for distributed.strategy deepspeed (ZeRO-3), e.g. axolotl's
    deepspeed_configs/zero3_bf16.json: passed to accelerate as it is, so its bucket sizes, offload
    and prefetch limits are what runs ("auto" values filled by the HF Trainer). rankwise reads its
    offload (distributed.offload follows it) and buckets for the estimate. Relative to the preset."""

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_count(cls, v: Any) -> Any:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        raise ValueError("give a GPU count (1 or more) or auto")


class OutputSection(Section):
    dir: str = "runs"
    """Where run directories are created (relative to the current directory)."""
    name: str | None = None
    """Run name; the run id is `<name>-<timestamp>`. Unset: the preset's name."""


class RunConfig(Section):
    """A whole run: what to train, on what, how, and where the results go."""

    name: str | None = None
    """Preset name (informational)."""
    description: str | None = None
    """One line on what this preset is for."""
    model: ModelSection = Field(default_factory=ModelSection)
    task: TaskKind = "instruction"
    """What the fine-tune teaches; sets the rank band the advisor starts from."""
    data: DataSection = Field(default_factory=DataSection)
    method: MethodChoice = "auto"
    """lora: 16-bit base. qlora: 4-bit NF4 base. auto: LoRA if it fits with headroom."""
    lora: LoraSection = Field(default_factory=LoraSection)
    quant: QuantSection = Field(default_factory=QuantSection)
    train: TrainSection = Field(default_factory=TrainSection)
    output: OutputSection = Field(default_factory=OutputSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)

    @model_validator(mode="after")
    def _val_ratio_or_path(self) -> "RunConfig":
        if self.data.val_path and self.data.val_ratio:
            raise ValueError("set data.val_path or data.val_ratio, not both")
        if self.distributed.deepspeed_config and self.distributed.strategy != "deepspeed":
            raise ValueError(f"distributed.deepspeed_config is a DeepSpeed config and distributed.strategy is "
                             f"{self.distributed.strategy}; set distributed.strategy: deepspeed, or unset "
                             "distributed.deepspeed_config")
        if self.train.activation_offload and not self.train.grad_checkpointing:
            raise ValueError("train.activation_offload moves the inputs gradient checkpointing keeps, and "
                             "train.grad_checkpointing is off; set train.grad_checkpointing: true")
        if self.train.loss == "cce" and self.distributed.strategy == "deepspeed":
            raise ValueError("train.loss cce reads the output head's weight outside the head's forward, where DeepSpeed "
                             "ZeRO-3 keeps it partitioned; use distributed.strategy: fsdp, or train.loss: chunked")
        if self.lora.target_parameters and self.lora.dropout:
            raise ValueError(f"lora.target_parameters with lora.dropout {self.lora.dropout:g}: peft adapts a parameter "
                             "by building the weight, with no input to drop out (it refuses any dropout); set "
                             "lora.dropout: 0")
        if self.lora.target_parameters and self.lora.init not in ("default", "gaussian"):
            raise ValueError(f"lora.init {self.lora.init} with lora.target_parameters: peft starts adapted parameters "
                             "only from random A and zero B; set lora.init: default")
        if self.train.loss != "standard" and self.train.kernels == "liger":
            raise ValueError(f"train.loss {self.train.loss} with train.kernels liger: Liger's loss is fused already "
                             "(it never holds the logits); set train.loss: standard, or train.kernels: liger_layers "
                             "(Liger's norms, SwiGLU and RoPE beside this loss)")
        return self

    def resolved_optimizer(self, method: str | None = None) -> str:
        """train.optimizer; auto: the method's default optimizer (methods.py)."""
        method = method or self.method
        if self.train.optimizer != "auto":
            return self.train.optimizer
        return METHODS[DEFAULT_METHOD if method == "auto" else method].optimizer

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


# ---------------------------------------------------------------- dotted keys


def get_key(node: Any, key: str) -> Any:
    """The value at a dotted key (`"lora.r"`) of a RunConfig, a section, or their dict dump."""
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def set_key(data: dict, key: str, value: Any) -> dict:
    """Set a dotted key in a raw (dict) config, making the groups on the way (a group that
    holds something else becomes a mapping: validation reports what was there)."""
    *head, last = key.split(".")
    node = data
    for part in head:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value
    return data


def field_help(key: str | tuple) -> str | None:
    """A field's docstring (its help text), by dotted key or location tuple; None if no such field."""
    parts = key.split(".") if isinstance(key, str) else key
    model: Any = RunConfig
    info = None
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info.description if info else None


def written(model: BaseModel) -> dict[str, Any]:
    """The fields a config was given (loaded or assigned), as plain data; defaults left out.

    Unlike pydantic's `exclude_unset`, a section whose own fields were assigned in place
    (`cfg.lora.r = 8`) counts as given even though `cfg.lora` itself was never assigned."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            inner = written(value)
            if inner or name in model.model_fields_set:
                out[name] = inner
        elif name in model.model_fields_set:
            out[name] = copy.deepcopy(value)
    return out


def with_values(cfg: RunConfig, patch: dict[str, Any]) -> RunConfig:
    """A new RunConfig with dotted keys set (`{"lora.r": 32}`): how a red flag's fix, a TUI form
    edit or a recommender trial changes a config. Raises pydantic's ValidationError on a bad value.
    Fields the config left unset stay unset (advisor.fit and the ignored-settings pass ask which
    fields the user wrote)."""
    data = written(cfg)
    for key, value in patch.items():
        set_key(data, key, value)
    return RunConfig.model_validate(data)


def json_schema() -> dict:
    """JSON Schema of RunConfig, for editors validating presets."""
    schema = RunConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rankwise preset"
    return schema
