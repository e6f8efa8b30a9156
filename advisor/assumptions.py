"""What a memory estimate assumes, in words: `describe` writes Estimate.assumptions for advisor/memory.py's
`estimate` (the stack, adapted modules, batch, the method's storage, checkpointing, the loss, the optimizer, the
sharding), from the same plan, so `rankwise estimate` shows under its table what the figures rest on.
"""
from __future__ import annotations

from typing import Callable

from . import allocator, liger, linear_attention, mamba, sharding
from .activations import kbit_upcast, residual_bytes, stream_bytes
from .families import is_analytic
from .methods import PreQuantized
from .plan import GIB, HF, Plan
from .spec import Linear, ModelSpec
from .storage import weights_of

ATTENTION_TEXT = {"sdpa": "SDPA (flash/memory-efficient) attention",
                  "flash_attention_2": "flash-attention 2 (no seq×seq scores kept)",
                  "eager": "eager attention (seq×seq scores kept)"}

# torch 2.13 utils/checkpoint.py. Both variants keep each checkpointed layer's inputs and recompute it once
# in backward, so the saved activations are the same. Non-reentrant: the recomputation "stops ... as soon
# as all needed intermediate activations have been recomputed" (early stop), and each recomputed tensor is
# dropped as backward unpacks it; a decoder layer's last op (the residual add) saves nothing, so its output
# is never recomputed. Reentrant (CheckpointFunction.backward): `outputs = ctx.run_function(*detached_inputs)`
# recomputes the layer "in its entirety" and holds `outputs` through `torch.autograd.backward(outputs, ...)`:
# one hidden-state tensor more at the layer's backward. Its need for an input that requires grad is met
# either way (transformers' activation_checkpointing_enable calls enable_input_require_grads). Under FSDP
# both recompute on the unit the pre-backward hook gathered (_flat_param.py keeps the views "to support
# reentrant activation checkpointing ... in the backward pass's recomputed forward"): no second gather.
# Measured with torch's profiler on the CPU (tests/test_checkpoint_variants.py): the peaks differ by that tensor.
REENTRANT_TEXT = {
    False: "non-reentrant gradient checkpointing: each layer's input kept, one layer recomputed in backward "
           "(stopping at the last tensor backward needs)",
    True: "reentrant gradient checkpointing: each layer's input kept (as non-reentrant), one layer recomputed in "
          "full in backward, its output held through that layer's backward (one hidden-state tensor more); "
          "FSDP recomputes on the unit already gathered for backward"}


def _ds_whence(plan: Plan, value) -> str:
    """Where a ZeRO-3 size came from, for the assumptions."""
    if plan.ds_config is None:
        return ", DeepSpeed's default as `accelerate config` leaves it"
    if value == "auto":
        return f", {plan.ds_config}: \"auto\", filled from hidden_size as the HF Trainer fills it"
    if value is None:
        return f", DeepSpeed's default: {plan.ds_config} leaves it unset"
    return f", from {plan.ds_config}"


def built_per_layer(plan: Plan, L: int, layer: int) -> str:
    """How much a layer's tensors built in its forward weigh and how many layers' are kept (built_expert_bytes)."""
    return f"{layer / GIB:.2f} GiB a layer, " + ("one layer at a time under checkpointing" if plan.grad_checkpointing
                                                else f"every layer's without checkpointing ({L * layer / GIB:.1f} GiB)")


def describe(spec: ModelSpec, plan: Plan, adapted: list[Linear], logits: int, recompute: int, *, adapter_bits: int,
             layer_elems: Callable[[], int], context_bytes: int) -> tuple[str, ...]:
    """What `memory.estimate` assumed, in words (Estimate.assumptions): the stack, the adapted modules, the batch,
    the method's storage, checkpointing and the transient peak, the loss, the optimizer and the sharding. The
    estimate's own figures come in: the adapter's bits, one decoder layer's elements (counted only for ZeRO-3's
    prefetch), the CUDA context."""
    st = plan.stack
    stack = (f"transformers 5 + peft 0.21 under the HF Trainer, 16-bit autocast, {ATTENTION_TEXT[plan.attention]}"
             if plan.stack == HF else f"{plan.stack.name} (memory layout of that stack, see bench/stacks.py)")
    out = [
        f"stack: {stack}",
        f"adapted modules: {', '.join(dict.fromkeys(l.name for l in adapted))}; LoRA weights, grads and AdamW "
        f"states kept in {adapter_bits}-bit" + (" (pure bf16: no autocast)" if plan.pure_bf16 else ""),
        f"per-GPU micro-batch {plan.micro_batch} x {plan.seq_len} tokens, every sequence of the batch padded to that length (no packing savings)",
    ]
    if not is_analytic(spec.model_type) and not spec.mixer_only:  # a mixer-only model's layers: the Mamba1 line below
        out.append(f"activations follow a Llama-style decoder (RMSNorm, SwiGLU MLP, SDPA); for {spec.model_type} "
                   "they are an approximation")
    if spec.linear_attention is not None:
        out.append(linear_attention.describe(spec.linear_attention, spec.num_layers, plan.seq_len, plan.dtype_bytes,
                                             plan.linear_kernel, plan.causal_conv1d, stream_bytes(plan)))
    if spec.mamba is not None:
        out.append(mamba.describe(spec.mamba, spec.num_layers, plan.seq_len, plan.dtype_bytes, plan.mamba_kernel,
                                  stream_bytes(plan), spec.hidden_size))
    if spec.mamba1 is not None:
        out.append(mamba.describe_mamba1(spec.mamba1, spec.num_layers, plan.seq_len, plan.dtype_bytes,
                                         plan.mamba_kernel, plan.causal_conv1d, stream_bytes(plan)))
    m = plan.descriptor
    if m.quant is not None:
        bare = spec.bare_names
        kept = f" and {', '.join(bare)}" if bare else ""
        out.append(f"{m.label}: every linear except lm_head{kept} in {m.quant.describe(plan.double_quant)}")
        if bare:
            out.append(f"{', '.join(bare)} of each Mamba mixer {'is' if len(bare) == 1 else 'are'} neither quantized "
                       f"nor adapted: {mamba.BARE_WEIGHTS[spec.model_type][1]} (a packed weight cannot be multiplied "
                       "there)")
        if kbit_upcast(plan):
            cast = ", ".join(("embeddings", "norms", "lm_head", *bare))
            out.append(f"prepare_model_for_kbit_training casts {cast} and biases to fp32 (peft 0.21 other.py)")
            out.append("so the residual stream and MLP activations are fp32 (4-bit linears return their input's dtype), "
                       "and the 16-bit autocast copy of the fp32 lm_head is kept for backward")
        if spec.is_moe and plan.stack.quantizes_fused_experts:  # rankwise's stack: the note in estimate() says
            out.append("MoE expert tensors assumed quantized like linears")
        if m.quant.saves_input:
            out.append("LLM.int8 linears keep their input for backward and de-quantize the weight to 16-bit in it "
                       "(bitsandbytes 0.50 MatMul8bitLt)")
    elif PreQuantized.of(spec.config) is None:  # a pre-quantized base says its storage first (estimate)
        out.append(f"{m.label}: base weights in {8 * plan.dtype_bytes}-bit")
    if plan.grad_checkpointing:
        out.append(REENTRANT_TEXT[plan.reentrant])
        if plan.activation_offload:
            inputs = plan.micro_batch * plan.seq_len * spec.num_layers * residual_bytes(spec, plan) * spec.hidden_size
            out.append(f"activation offload: the {spec.num_layers} checkpointed layer inputs ({inputs / GIB:.2f} GiB) "
                       "wait in "
                       "pinned host RAM (torch save_on_cpu); one is copied back for its layer's backward")
        which = "the loss's vocab-sized buffers" if logits >= recompute else "one layer's recompute"
        out.append(f"the transient peak is {which} ({logits / GIB:.2f} GiB logits/loss vs "
                   f"{recompute / GIB:.2f} GiB layer recompute)")
    else:
        out.append("no gradient checkpointing: every layer's activations kept until backward")
    if plan.target_parameters:
        wrapped = spec.resolve_parameters(plan.target_parameters)
        out.append(f"adapted parameters {', '.join(l.name for l in wrapped)} (lora.target_parameters): rank "
                   f"{plan.r} per expert; each forward builds the adapted tensors in full and keeps them for backward "
                   "(peft ParamWrapper): "
                   + built_per_layer(plan, spec.num_layers, weights_of(wrapped) * plan.dtype_bytes // spec.num_layers))
    if m.dora:
        out.append("DoRA: a trainable magnitude per output row of each adapted linear; each forward builds the "
                   "adapted weight in full for its row norms, and saves the base and LoRA outputs (peft dora.py)")
    if plan.added_tokens:
        out.append(f"{plan.added_tokens} added tokens: the embedding (and an untied lm_head) resized by as many rows "
                   "(at most: a vocabulary padded past its tokenizer has room), their rows trained (peft trainable "
                   "tokens); the adapter and each checkpoint hold the resized embedding and head whole")
    if plan.modules_to_save:
        out.append(f"modules_to_save {', '.join(plan.modules_to_save)}: peft trains a copy of each in full beside the "
                   "frozen original (its gradient and optimizer states too; a bitsandbytes 8-bit AdamW keeps "
                   "embeddings' states in 32-bit); the adapter checkpoint holds the copies")
    if plan.attention == "eager":
        out.append(f"eager attention: fp32 softmax + its 16-bit copy kept per layer "
                   f"({plan.micro_batch} x {spec.num_heads} heads x {plan.seq_len}² scores)")
    if plan.liger and liger.supports(spec.config.get("model_type")):
        out.append("Liger's RMSNorm keeps its input and one fp32 RMS a row (not an fp32 copy), its SwiGLU gate and up "
                   "(not act(gate)), its RoPE nothing more (advisor/liger.py)")
    if plan.loss == "fused":
        out.append("loss: fused (Liger's fused linear cross-entropy, or Cut Cross-Entropy): one chunk of logits at a "
                   "time, grad_input kept; no vocab-sized logits for the whole batch")
    elif plan.loss == "chunked":
        out.append("loss: chunked (train.loss chunked): the 16-bit logits and their 16-bit gradient, fp32 one eighth "
                   "of the rows at a time; no fp32 copy of the whole logits")
    elif plan.stack == HF:
        out.append("loss: 16-bit logits + fp32 upcast + fp32 log_softmax; backward holds 3 fp32 vocab-sized copies")
    else:
        out.append(f"loss: {st.logits_bytes(plan.dtype_bytes)} bytes per logit (token x vocab) at the loss's peak")
    out.append({"adamw_torch": "AdamW: fp32 m and v (8 bytes per trainable parameter)",
                "adamw_8bit": "8-bit AdamW: 2 bytes per trainable parameter + block constants",
                "paged_adamw_8bit": "paged 8-bit AdamW: resident on the GPU unless memory runs out (then paged to CPU)"}
               [plan.optimizer])
    if not plan.lora_dropout:
        out.append("LoRA dropout 0: no masked input copies")
    if plan.sharded:
        name = "FSDP (FULL_SHARD)" if plan.strategy == "fsdp" else "DeepSpeed ZeRO-3"
        if plan.strategy == "fsdp":
            running = "two decoder layers (running + prefetched)"
        else:
            ahead = sharding.prefetch_elems(plan, spec.hidden_size, layer_elems())
            running = (f"the running decoder layer plus a prefetch of {ahead:.3g} elements "
                       f"(stage3_prefetch_bucket_size{', capped by stage3_max_live_parameters' if plan.ds_max_live is not None else ''}{_ds_whence(plan, plan.ds_prefetch_bucket)})"
                       if ahead else "the running decoder layer, no prefetch (stage3_max_live_parameters "
                       f"{sharding.max_live(plan):.3g} elements, no more than the layer holds"
                       f"{_ds_whence(plan, plan.ds_max_live)})")
        out.append(f"{plan.gpus} GPU{'s' if plan.gpus > 1 else ''} as {name}: weights, LoRA weights, gradients and "
                   f"optimizer states sharded 1/{plan.gpus}; NF4 constants replicated; the root unit (embeddings, "
                   f"lm_head) and {running} gathered in full; per-GPU batch = micro_batch")
        if plan.strategy == "deepspeed":
            out.append(f"ZeRO-3 contiguous gradient bucket: reduce_bucket_size "
                       f"{sharding.reduce_bucket_elems(plan, spec.hidden_size):.3g} elements x {plan.dtype_bytes} "
                       f"bytes, allocated for the run{_ds_whence(plan, plan.ds_reduce_bucket)}")
        if m.quantized:
            out.append(f"FSDP+{m.label}: bnb_4bit_quant_storage = the compute dtype, model loaded in it, no fp32 upcast")
    elif plan.gpus > 1:
        out.append(f"{plan.gpus} GPUs as DDP: a full copy per GPU, plus DDP's gradient buckets; per-GPU batch = micro_batch")
    out.append(allocator.describe(plan))
    out.append(f"CUDA context {context_bytes / GIB:.2f} GiB")
    return tuple(out)
