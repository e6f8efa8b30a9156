"""What an estimate is about and what it returns: the training stack's memory layout
(`Stack`, `HF`), the plan (`Plan`: method, rank, targets, batch, sequence, optimizer, GPUs)
and the result (`Estimate`: peak and its components). The arithmetic is in memory.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from . import linear_attention, mamba
from .methods import DEFAULT as DEFAULT_METHOD, METHODS, Method

if TYPE_CHECKING:  # only for the annotation
    from .config import RunConfig

GIB = 1024 ** 3
# Components PyTorch's caching allocator does not hold: nvidia-smi shows them, max_memory_reserved does not.
OUTSIDE_ALLOCATOR = ("cuda_context", "nccl_buffers")
# Components that are a start-up's excess over the training step (memory.estimate adds one only where the start-up
# sets the peak): adapter initialisation, FSDP wrapping on the GPU, ZeRO-3 loading a quantized base whole.
STARTUPS = ("adapter_init", "fsdp_wrap", "zero3_load")

# How several GPUs share a run. "ddp": each GPU holds a full copy (DistributedDataParallel).
# "fsdp" (FullyShardedDataParallel, FULL_SHARD) and "deepspeed" (ZeRO stage 3): parameters,
# gradients and optimizer states sharded 1/N, each wrapped unit all-gathered in full while it
# runs. ZeRO-3 is estimated with FSDP's arithmetic (its prefetch buckets play the part of the
# prefetched layer): an approximation, said in the assumptions. (The names: config.STRATEGIES.)
SHARDED = ("fsdp", "deepspeed")

# How the loss is computed, as far as memory cares. standard: the lm_head's vocab-sized logits
# are materialised and the loss runs on them (Stack.logits_bytes). fused: the lm_head matmul and
# cross-entropy run chunk by chunk (Liger's fused linear cross-entropy; `memory.fused_loss_bytes`).
# chunked: the 16-bit logits are materialised, the fp32 loss runs one chunk at a time
# (train.loss chunked; `activations.chunked_loss_bytes`).
LOSSES = ("standard", "fused", "chunked")
KERNEL_LOSS = {"none": "standard", "liger": "fused", "liger_layers": "standard"}  # train.kernels -> the loss it computes
# train.loss -> the loss it computes where not the kernels' (Cut Cross-Entropy holds no logits either: fused)
CONFIG_LOSS = {"chunked": "chunked", "cce": "fused"}


@dataclass(frozen=True)
class Stack:
    """What a training stack's code does that changes memory (facts, not tuning knobs)."""

    name: str
    adapter_bytes: int  # LoRA weights (and their grads, and each AdamW state) per element
    kbit_upcast: bool  # non-4-bit params cast to fp32 before training (peft prepare_model_for_kbit_training)
    quantize_lm_head: bool  # the output head is 4-bit too
    loss_upcast: bool  # the loss runs on an fp32 copy of the logits
    keeps_16bit_logits: bool  # the 16-bit logits stay alive beside that fp32 copy
    shift_copy: bool  # the loss makes a shifted contiguous copy of the logits
    bwd_copies: int  # vocab-sized tensors (in the loss dtype) alive at the loss's backward peak
    # the model's forward calls checkpoint(decoder_layer.__call__, ...) around the layer, so under FSDP the
    # checkpoint wraps the FSDP unit (transformers before GradientCheckpointingLayer; sharding.checkpoint_hold_bytes)
    checkpoint_wraps_unit: bool = False
    # where a base is when FSDP (v1) wraps it (device_id + sync_module_states), 16-bit and quantized: "cpu" (rank 0
    # holds it on the CPU; FSDP moves, broadcasts, flattens and shards each unit on the GPU), "gpu" (loaded onto
    # every GPU first, then flattened and sharded there) or "none" (not replayed); fsdp_wrap.py replays it
    fsdp_start_16bit: str = "none"
    fsdp_start_quantized: str = "none"
    # where a quantized base is when DeepSpeed ZeRO-3 partitions it: "gpu" (loaded whole onto every GPU first:
    # transformers builds a quantized model without zero.Init) or "none" (not modelled)
    zero3_start_quantized: str = "none"
    # the training loop holds the model's output (its loss-dtype logits) until backward has finished, so the logits
    # stay alive beside each layer's recompute too, not only at the loss (Answer.AI's fsdp_qlora sets `output = None`
    # after `loss.backward()`; the HF Trainer's compute_loss returns the loss alone, so its outputs are freed first)
    keeps_output_in_backward: bool = False
    # MoE experts are nn.Linear modules bitsandbytes quantizes (transformers before 5); transformers 5 fuses them into
    # nn.Parameter tensors it leaves in the compute dtype (storage.quantized)
    quantizes_fused_experts: bool = False

    def fsdp_start(self, quantized: bool) -> str:
        return self.fsdp_start_quantized if quantized else self.fsdp_start_16bit

    def loss_phases(self, a: int) -> tuple[int, int]:
        """Bytes per logit (token x vocab entry) alive at the loss's forward and backward peaks."""
        ld = 4 if self.loss_upcast else a
        fwd = (a if self.keeps_16bit_logits and ld != a else 0) + ld + (ld if self.shift_copy else 0) + ld
        return fwd, self.bwd_copies * ld

    def held_logit_bytes(self, a: int) -> int:
        """Bytes per logit the training loop keeps through the layers' backward (0 where it frees its outputs)."""
        return (4 if self.loss_upcast else a) if self.keeps_output_in_backward else 0

    def logits_bytes(self, a: int) -> int:
        """Bytes per logit (token x vocab entry) at the loss's peak, for compute dtype `a`."""
        return max(self.loss_phases(a))


# transformers >= 4.50 (and 5.x) + peft under the HF Trainer: what rankwise runs.
# ForCausalLMLoss (transformers/loss/loss_utils.py): `logits.float()` beside the 16-bit
# logits, then cross_entropy keeps the fp32 log_softmax; in backward NLL's dense grad,
# the saved log_softmax and log_softmax's input-grad are alive together (3 fp32).
# peft autocast_adapter_dtype=True keeps adapters in fp32; transformers' bnb quantizer
# keeps lm_head unquantized (get_keys_to_not_convert). Other stacks' layouts, for comparing
# against figures published from them, live in bench/stacks.py.
# Under FSDP, trainer/launch.py sets accelerate's cpu_ram_efficient_loading + sync_module_states: a 16-bit
# base is loaded on the CPU (by every rank in transformers 5.24: tests/test_host_load.py) and FSDP puts it
# on the GPU as it wraps. A 4-bit
# base is loaded quantized onto every rank's GPU: transformers 5.24's bitsandbytes quantizer sets
# device_map to the current GPU (quantizers/auto.py update_device_map) and its loader no longer moves
# quantized weights to the CPU under FSDP as 4.40-4.4x did (modeling_utils `_load_state_dict_into_meta_model`:
# "quantize the parameter on the GPU and then cast it to CPU"); read, not yet measured on a GPU.
# Under ZeRO-3 the same holds for a quantized base, and has since transformers 4.3x: it is built without
# deepspeed.zero.Init (`needs_zero3_init = is_deepspeed_zero3_enabled() and not _is_quantized ...` in 5.24's
# modeling_utils), so it loads whole onto each GPU and DeepSpeed partitions it after.
HF = Stack("hf", 4, True, False, True, True, False, 3, fsdp_start_16bit="cpu", fsdp_start_quantized="gpu",
           zero3_start_quantized="gpu")


@dataclass(frozen=True)
class Plan:
    """What will be trained, as far as memory cares."""

    method: str  # a name in methods.METHODS (how the base is stored: see `Plan.descriptor`)
    r: int = 16
    targets: str | tuple[str, ...] = "standard"  # named set or module names
    micro_batch: int = 1
    seq_len: int = 2048
    grad_checkpointing: bool = True
    reentrant: bool = False  # train.checkpointing_reentrant: torch's reentrant checkpoint (use_reentrant=True)
    optimizer: str = "adamw_torch"  # adamw_torch | adamw_8bit | paged_adamw_8bit
    double_quant: bool = True
    dtype_bytes: int = 2  # 16-bit compute; 4 for fp32
    gpus: int = 1
    lora_dropout: bool = True  # dropout > 0 keeps a masked copy of each adapted input
    stack: Stack = HF  # which training stack's memory layout; rankwise trains with HF (bench/stacks.py has others)
    strategy: str = "ddp"  # ddp | fsdp | deepspeed (see STRATEGIES); with gpus=1 ddp is plain one-GPU training
    attention: str = "sdpa"  # sdpa | eager | flash_attention_2 (config.ATTENTIONS; auto is sdpa)
    pure_bf16: bool = False  # train.precision pure_bf16: no autocast, bf16 adapters and optimizer states
    kbit_upcast: bool = True  # quant.kbit_upcast: keep peft's fp32 upcast of a quantized base's other weights
    loss: str = "standard"  # standard: vocab-sized logits; fused: Liger's fused linear cross-entropy; chunked (LOSSES)
    init: str = "default"  # lora.init: how the adapter starts (config.LORA_INITS; adapter_init.py costs it)
    init_iters: int | None = None  # lora.init_iters: PiSSA's fast-SVD iterations (None: the exact SVD)
    offload: str = "none"  # distributed.offload: none | params | params_and_optimizer (sharding.py)
    fsdp_sharding: str = "full"  # distributed.fsdp_sharding: full | shard_grad_op | hybrid | no_shard (sharding.py)
    fp32_master: bool = False  # train.precision fp32_master: fp32 shards, bf16 gathered compute (FSDP)
    modules_to_save: tuple[str, ...] = ()  # lora.modules_to_save: modules trained in full (memory.saved_modules)
    target_parameters: tuple[str, ...] = ()  # lora.target_parameters: fused expert tensors adapted (peft ParamWrapper)
    quantize_experts: bool = True  # quant.quantize_experts: a 4-bit method's fused experts quantized too (storage.py)
    added_tokens: int = 0  # len(model.added_tokens): rows added to the embedding (and an untied head), trained
    activation_offload: bool = False  # train.activation_offload: the checkpointed inputs wait in host RAM (memory.py)
    liger: bool = False  # train.kernels liger/liger_layers: Liger's RMSNorm and SwiGLU save less (advisor/liger.py)
    # the Gated DeltaNet layers' delta rule (linear_attention.py): "fla" (flash-linear-attention, installed here)
    # or transformers' torch fallback; causal_conv1d: the causal-conv1d package runs their conv1d
    linear_kernel: str = "torch"
    causal_conv1d: bool = False
    mamba_kernel: str = "torch"  # the Mamba2 layers' scan (mamba.py): "mamba_ssm" (installed here) or the fallback
    liger_loss: bool = True  # with liger: the fused loss is Liger's (train.kernels liger), not liger_layers' train.loss
    # axolotl's fused LoRA kernels ("mlp": lora_mlp_kernel, "qkv": lora_qkv_kernel; activations.fused_lora_bytes): a
    # foreign config's, for `check` to say what they save; rankwise's trainer has no such kernels, so no preset sets
    # them
    fused_lora: tuple[str, ...] = ()
    # distributed.deepspeed_config (advisor/deepspeed_file.py): its path, and the ZeRO-3 sizes it sets, in elements
    # ("auto": from the hidden size; None: DeepSpeed's default)
    ds_config: str | None = None
    ds_reduce_bucket: int | str | None = None
    ds_prefetch_bucket: int | str | None = None
    ds_max_live: int | None = None

    @property
    def descriptor(self) -> Method:
        """The method's descriptor (methods.py)."""
        return METHODS[self.method]

    @property
    def adapter_bytes(self) -> int:
        """Bytes per LoRA element (weights, their gradients, each AdamW state). The stack's (hf: fp32, peft
        autocast_adapter_dtype=True); pure bf16 loads the adapters with autocast_adapter_dtype=False, so they,
        their gradients and torch AdamW's exp_avg/exp_avg_sq (created like the parameter) are bf16."""
        return 2 if self.pure_bf16 else self.stack.adapter_bytes

    @property
    def sharded(self) -> bool:
        """Weights, gradients and optimizer states split over the GPUs (FSDP / ZeRO-3)."""
        return self.strategy in SHARDED

    @classmethod
    def from_config(cls, cfg: "RunConfig", method: str | None = None, gpus: int = 1,
                    strategy: str | None = None) -> "Plan":
        """`strategy` None takes cfg.distributed.strategy; "auto" stays ddp here: advisor.fit
        resolves it against the hardware. One GPU is plain training whatever the strategy says: the
        launcher runs one process without FSDP or DeepSpeed (trainer/launch.py `resolve`)."""
        strategy = strategy or cfg.distributed.strategy
        if gpus == 1:
            strategy = "ddp"
        method = method or cfg.method
        if method == "auto":
            method = DEFAULT_METHOD
        targets = cfg.lora.target_modules
        offload, ds = cfg.distributed.offload, {}
        optimizer = cfg.resolved_optimizer(method)
        if cfg.distributed.deepspeed_config:
            from . import deepspeed_file

            f = deepspeed_file.read(cfg.distributed.deepspeed_config)
            offload = deepspeed_file.offload(f, offload)
            ds = {"ds_config": f.path, "ds_reduce_bucket": f.reduce_bucket, "ds_prefetch_bucket": f.prefetch_bucket,
                  "ds_max_live": f.max_live}
            if f.optimizer:  # DeepSpeed's optimizer from the file: Adam/AdamW's two fp32 moments
                optimizer = "adamw_torch"
        return cls(
            method=method, r=cfg.lora.r,
            targets=targets if isinstance(targets, str) else tuple(targets),
            micro_batch=cfg.train.micro_batch, seq_len=cfg.train.max_seq_len,
            grad_checkpointing=cfg.train.grad_checkpointing, reentrant=cfg.train.checkpointing_reentrant,
            optimizer=optimizer,
            double_quant=cfg.quant.double_quant, dtype_bytes=4 if cfg.train.precision == "fp32" else 2,
            gpus=gpus, lora_dropout=cfg.lora.dropout > 0, strategy="ddp" if strategy == "auto" else strategy,
            attention="sdpa" if cfg.train.attention == "auto" else cfg.train.attention,
            loss=CONFIG_LOSS.get(cfg.train.loss) or KERNEL_LOSS[cfg.train.kernels],
            kbit_upcast=cfg.quant.kbit_upcast,
            pure_bf16=cfg.train.precision == "pure_bf16", init=cfg.lora.init, init_iters=cfg.lora.init_iters,
            offload=offload, fsdp_sharding=cfg.distributed.fsdp_sharding,
            fp32_master=cfg.train.precision == "fp32_master", modules_to_save=tuple(cfg.lora.modules_to_save),
            target_parameters=tuple(cfg.lora.target_parameters), quantize_experts=cfg.quant.quantize_experts,
            added_tokens=len(cfg.model.added_tokens), activation_offload=cfg.train.activation_offload,
            liger=cfg.train.kernels in ("liger", "liger_layers"), liger_loss=cfg.train.kernels == "liger",
            linear_kernel=linear_attention.installed_kernel(), causal_conv1d=linear_attention.conv_kernel_installed(),
            mamba_kernel=mamba.installed_kernel(),
            **ds,
        )


@dataclass(frozen=True)
class Estimate:
    peak_bytes: int
    components: dict[str, int]  # name -> bytes; they sum to peak_bytes
    assumptions: tuple[str, ...]
    plan: Plan
    trainable_params: int
    # the torch.cuda.max_memory_allocated() view over the run (no context, no fragmentation): the step's tensors,
    # or a start-up's (adapter init, FSDP wrapping, ZeRO-3's quantized load) where that holds more
    allocated_bytes: int = 0
    transients: dict[str, int] = field(default_factory=dict)  # the candidate peaks compared
    init_flops: float = 0.0  # the adapter initialisation's factorisation FLOPs (adapter_init.py), for the planner
    host_offload_bytes: int = 0  # distributed.offload: the shards held in host RAM over the machine's ranks
    host_activation_bytes: int = 0  # train.activation_offload: the checkpointed inputs in pinned host RAM, all ranks
    # cached-but-free blocks max_memory_reserved counts (and nvidia-smi shows while the card has room) that the
    # allocator hands back when memory runs short (an OOM retry releases whole free segments): not in the peak
    # (FSDP's wrapping leaves them: fsdp_wrap.py)
    releasable_bytes: int = 0

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    @property
    def allocated_gib(self) -> float:
        return self.allocated_bytes / GIB

    @property
    def reserved_bytes(self) -> int:
        """The torch.cuda.max_memory_reserved() view: peak without what PyTorch's allocator does not hold
        (the CUDA context, NCCL's buffers), with the releasable cached blocks."""
        return self.peak_bytes - sum(self.components.get(k, 0) for k in OUTSIDE_ALLOCATOR) + self.releasable_bytes

    def to_dict(self) -> dict:
        return {
            "peak_gib": round(self.peak_gib, 3),
            "allocated_gib": round(self.allocated_gib, 3),
            "reserved_gib": round(self.reserved_bytes / GIB, 3),
            "releasable_gib": round(self.releasable_bytes / GIB, 3),
            "peak_bytes": self.peak_bytes,
            "components": {k: round(v / GIB, 4) for k, v in self.components.items()},
            "component_bytes": dict(self.components),
            "assumptions": list(self.assumptions),
            "method": self.plan.method,
            "strategy": self.plan.strategy if self.plan.gpus > 1 or self.plan.sharded else "single",
            "gpus": self.plan.gpus,
            "trainable_params": self.trainable_params,
            "plan": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.plan).items()}
            | {"stack": self.plan.stack.name},
        }
