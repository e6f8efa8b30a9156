"""The memory estimator: peak training memory per GPU for a LoRA/QLoRA plan.

Physics first: every component is counted from the model's shapes (`ModelSpec`) for the
stack rankwise trains with — transformers 5 + peft 0.21 + bitsandbytes under the HF
Trainer, bf16/fp16 autocast, SDPA attention, non-reentrant gradient checkpointing.
`peak_bytes` is what nvidia-smi would show at the peak (allocator peak + the allocator's
cached-but-free share + the CUDA context), because that is what decides an OOM.
`allocated_bytes` is the matching `torch.cuda.max_memory_allocated()` view.

Only two numbers are not derived from shapes, each one named constant below with its
source: the CUDA context size and the allocator's fragmentation share.

`Plan.stack` selects what a training stack's code keeps in memory: `HF` is what rankwise
trains with; bench/stacks.py declares others so bench/estimator_accuracy.py can compare against
figures published from LitGPT, torchtune, older transformers or fms-acceleration. Accuracy against those
figures: run `python3 bench/estimator_accuracy.py`.
"""
from __future__ import annotations

from .config import ATTENTIONS, OPTIMIZERS, STRATEGIES
from .errors import RankwiseError
from .families import is_analytic
from dataclasses import replace

from .methods import METHOD_NAMES, METHODS, PreQuantized, unquantized_twin
from .spec import Linear, ModelSpec

from .plan import GIB, HF, LOSSES, Estimate, Plan, Stack  # noqa: F401  (callers name them memory.Plan, memory.HF, ...)

MIB = 1024 ** 2

# CUDA context + cuBLAS/cuDNN handles and workspaces that nvidia-smi shows but the torch
# allocator does not count. PyTorch's CUDA semantics notes put the context at "hundreds of
# MB"; with lazy module loading (default since CUDA 11.7 / torch 1.13) it is ~300–500 MiB
# on A100/H100 (torch forum "CUDA context memory" threads; our own reading of nvidia-smi
# after `torch.zeros(1, device='cuda')` plus one cuBLAS matmul). One constant:
CUDA_CONTEXT_BYTES = 500 * MIB

# The caching allocator keeps freed blocks reserved; per-step tensors of changing sizes
# (activations, logits, their gradients) leave split, cached-but-free segments, so
# max_memory_reserved runs above max_memory_allocated. The share is applied to the
# per-step (dynamic) memory only: weights and optimizer states are allocated once in
# large blocks. 10% is a judgment from the allocator's design (PyTorch "CUDA semantics",
# memory management: blocks round up to 2 MiB segments, split blocks are reused only by
# requests of the same size class), not fitted per row; with it the benchmark's
# capacity rows (bench/memory_reference.csv: runs that just fit a card) land 2-3% under
# the card, as an upper bound should.
FRAGMENTATION = 0.10

# NCCL's buffers for one channel's connection to one peer, one per protocol (NVIDIA/nccl
# src/init.cc @5067397: DEFAULT_BUFFSIZE 4 MiB for SIMPLE; DEFAULT_LL128_BUFFSIZE =
# NCCL_LL128_ELEMS_PER_THREAD 120 x NCCL_LL128_MAX_NTHREADS 640 x NCCL_STEPS 8 x 8 bytes;
# DEFAULT_LL_BUFFSIZE = NCCL_LL_LINES_PER_THREAD 8 x NCCL_LL_MAX_NTHREADS 512 x NCCL_STEPS 8 x
# 16-byte lines; src/include/device.h). Said, not added: the channel and peer count is NCCL's
# topology search's (ring: one receive peer a channel, tree: up to NCCL_MAX_TREE_ARITY 3 + 1).
NCCL_CONNECTION_BYTES = (1 << 22) + 120 * 640 * 8 * 8 + 8 * 512 * 8 * 16

# bitsandbytes 8-bit optimizers (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
# Quantization"): each state is 1 byte per parameter plus one fp32 absmax per block
# (bitsandbytes 0.50 optim/optimizer.py, Optimizer8bit init_state: blocksize = 256).
OPT8_BLOCK = 256

ATTENTION_TEXT = {"sdpa": "SDPA (flash/memory-efficient) attention",
                  "flash_attention_2": "flash-attention 2 (no seq×seq scores kept)",
                  "eager": "eager attention (seq×seq scores kept)"}

# ------------------------------------------------------------------ validation


def _check(spec: ModelSpec, plan: Plan) -> list[Linear]:
    if plan.method not in METHODS:
        raise RankwiseError(f"unknown method {plan.method!r}", f"use one of {', '.join(METHOD_NAMES)}")
    if plan.r < 1:
        raise RankwiseError(f"LoRA rank must be at least 1 (got {plan.r})", "use e.g. --rank 16")
    if plan.optimizer not in OPTIMIZERS:
        raise RankwiseError(f"unknown optimizer {plan.optimizer!r}", f"use one of {', '.join(OPTIMIZERS)}")
    if plan.micro_batch < 1 or plan.seq_len < 1:
        raise RankwiseError(f"batch and sequence length must be positive (got {plan.micro_batch}, {plan.seq_len})",
                            "use e.g. --batch 1 --seq 2048")
    if plan.dtype_bytes not in (2, 4):
        raise RankwiseError(f"dtype_bytes must be 2 or 4 (got {plan.dtype_bytes})")
    if plan.gpus < 1:
        raise RankwiseError(f"gpus must be at least 1 (got {plan.gpus})")
    if plan.strategy not in STRATEGIES:
        raise RankwiseError(f"unknown strategy {plan.strategy!r}", f"use one of {', '.join(STRATEGIES)}")
    if plan.attention not in ATTENTIONS or plan.attention == "auto":
        raise RankwiseError(f"unknown attention {plan.attention!r}", f"use one of {', '.join(ATTENTIONS[1:])}")
    if plan.loss not in LOSSES:
        raise RankwiseError(f"unknown loss {plan.loss!r}", f"use one of {', '.join(LOSSES)}")
    targets = plan.targets if isinstance(plan.targets, str) else list(plan.targets)
    return spec.resolve_targets(targets)


# ------------------------------------------------------------------ static memory


def kbit_upcast(plan: Plan) -> bool:
    """Does peft's prepare_model_for_kbit_training cast the non-4-bit weights to fp32?

    Not under FSDP/ZeRO-3: FSDP flattens each unit's parameters into one tensor of one dtype,
    so the FSDP+QLoRA recipe loads the model in the 4-bit storage dtype (bf16,
    `bnb_4bit_quant_storage`) and skips the fp32 upcast (peft docs, accelerate/fsdp.md "Use PEFT
    QLoRA and FSDP"; TRL's SFTTrainer skips prepare_model_for_kbit_training for sharded QLoRA).
    Nor with `quant.kbit_upcast: false` (the worker casts them back to the compute dtype, as axolotl's
    loaders/model.py `_convert_embedding_modules_dtype` does after prepare_model_for_kbit_training)."""
    return plan.stack.kbit_upcast and plan.kbit_upcast and not plan.sharded


def _weights(spec: ModelSpec, plan: Plan) -> dict[str, int]:
    """Base weights: in the compute dtype, or (a quantized method) its quantized linears +
    their constants + the parts it leaves unquantized (methods.py describes the layout)."""
    a = plan.dtype_bytes
    pre = PreQuantized.of(spec.config)
    if pre is not None:  # the shipped format, whatever the method (bitsandbytes cannot re-quantize it)
        lin = [l for l in spec.linears if l.family != "lm_head"]
        packed = sum(l.count * pre.weight_bytes(l.d_in, l.d_out)[0] for l in lin)
        consts = sum(l.count * pre.weight_bytes(l.d_in, l.d_out)[1] for l in lin)
        rest = spec.total_params - sum(l.count * l.d_in * l.d_out for l in lin)
        return {"base_weights": packed, "quant_constants": consts, "unquantized_weights": rest * a}
    q = plan.descriptor.quant
    if q is None:
        return {"base_weights": spec.total_params * a}
    # bitsandbytes replaces every nn.Linear except the output head (transformers'
    # get_keys_to_not_convert keeps lm_head); fused expert tensors are
    # quantized like linears here (assumption noted in the estimate).
    st = plan.stack
    qlin = [l for l in spec.linears if l.family != "lm_head" or st.quantize_lm_head]
    quant = sum(l.count * l.d_in * l.d_out for l in qlin)
    rows = sum(l.count * l.d_out for l in qlin)
    if st.quantize_lm_head and spec.tied_embeddings:
        quant -= spec.vocab_size * spec.hidden_size  # a tied head is the embedding: not quantized
        rows -= spec.vocab_size
    rest = spec.total_params - quant  # embeddings, norms, lm_head, biases, routers
    rest_bytes = 4 if kbit_upcast(plan) else a
    return {"base_weights": quant * q.bits // 8, "quant_constants": q.constants_bytes(quant, plan.double_quant, rows),
            "unquantized_weights": rest * rest_bytes}


def adapter_bytes(plan: Plan) -> int:
    """Bytes per LoRA element (weights, their gradients, each AdamW state). The stack's (hf: fp32, peft
    autocast_adapter_dtype=True); pure bf16 loads the adapters with autocast_adapter_dtype=False, so they,
    their gradients and torch AdamW's exp_avg/exp_avg_sq (created like the parameter) are bf16."""
    return 2 if plan.pure_bf16 else plan.stack.adapter_bytes


def _optimizer_bytes(n: int, optimizer: str, param_bytes: int = 4) -> int:
    if optimizer == "adamw_torch":
        return 2 * param_bytes * n  # exp_avg + exp_avg_sq in the parameter's dtype (torch.optim.AdamW)
    return 2 * n + 2 * 4 * -(-n // OPT8_BLOCK)  # two uint8 states + fp32 absmax per block


# ------------------------------------------------------------------ FSDP / ZeRO-3


def layer_unit_params(spec: ModelSpec) -> int:
    """Parameters of one decoder layer (its linears and RMSNorms): one FSDP unit under
    TRANSFORMER_BASED_WRAP with the decoder layer class."""
    linears = sum(l.params for l in spec.linears if l.family != "lm_head") // spec.num_layers
    norms = spec.family.norms_per_layer * spec.hidden_size
    return linears + norms


def unit_bytes(spec: ModelSpec, plan: Plan) -> tuple[int, int]:
    """(one decoder layer, the root unit) as all-gathered in full, in bytes.

    An unquantized base: the compute dtype. A quantized one (QLoRA): the 4-bit weights are
    packed in the storage dtype (`bnb_4bit_quant_storage` = bf16: four 4-bit values per bf16
    element), so a layer gathers as many bytes as its quantized weights; its norms are bf16.
    The root unit holds what no layer holds (embeddings, final norm, lm_head), 16-bit
    (lm_head is not quantized)."""
    a = plan.dtype_bytes
    layer = layer_unit_params(spec)
    root = spec.total_params - spec.num_layers * layer
    q = plan.descriptor.quant
    if q is not None:
        quant = sum(l.count * l.d_in * l.d_out for l in spec.linears if l.family != "lm_head") // spec.num_layers
        layer_b = quant * q.bits // 8 + (layer - quant) * a
    else:
        layer_b = layer * a
    return layer_b, root * a


def _shard(spec: ModelSpec, plan: Plan, comps: dict[str, int]) -> dict[str, int]:
    """Per-GPU share of the static memory under FULL_SHARD, plus the gather buffers.

    Sharded 1/N: base and unquantized weights, LoRA weights, their gradients and optimizer
    states. Not sharded: the NF4 quantization constants (bitsandbytes keeps each module's
    quant_state as module metadata on every rank, not as an FSDP parameter). Gathered in full
    while they run: the root unit (FSDP does not reshard the root after forward: it is needed
    again in backward) and two decoder layers (the running one and the one prefetched,
    forward_prefetch / BACKWARD_PRE)."""
    n = plan.gpus
    out = {k: -(-comps[k] // n) for k in ("base_weights", "unquantized_weights", "lora_params", "lora_grads",
                                          "optimizer_states") if k in comps}
    layer, root = unit_bytes(spec, plan)
    out["gather_layers"] = 2 * layer
    out["gather_root"] = root
    return out


# ------------------------------------------------------------------ activations


def stream_bytes(plan: Plan) -> int:
    """Bytes per element of the residual stream and of what 4-bit linears return.

    With a quantized base (QLoRA) on the hf stack, prepare_model_for_kbit_training leaves the embedding in
    fp32, so the hidden states entering layer 0 are fp32; bitsandbytes' Linear4bit casts
    its output back to its input's dtype (bitsandbytes nn/modules.py Linear4bit.forward:
    `.to(inp_dtype)`) and fp32 + bf16 promotes to fp32, so the residual stream and the MLP
    stay fp32 while the matmuls run in 16-bit."""
    if plan.descriptor.quantized and kbit_upcast(plan):
        return 4
    return plan.dtype_bytes


def _lora_input_bytes(l: Linear, plan: Plan) -> int:
    """Per token: what an adapted linear's LoRA branch saves for backward.

    lora_A's matmul saves its 16-bit input: under autocast that is the cast copy (the fp32
    dropout output or the fp32 input peft's `_cast_input_dtype` makes is not kept);
    dropout keeps a bool mask; lora_B saves lora_A's r-wide output."""
    a = plan.dtype_bytes
    return a * l.d_in + (l.d_in if plan.lora_dropout else 0) + a * plan.r


def layer_saved_bytes(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> int:
    """Per token, one decoder layer: tensors autograd keeps from forward to backward.

    Frozen linears save nothing (their weight is frozen, their input is not needed);
    RMSNorm saves its fp32 upcast input; SDPA (flash/mem-efficient) saves 16-bit q, k, v,
    the output and an fp32 logsumexp per head; SwiGLU saves gate, up and act(gate) in the
    stream's dtype (fp32 for QLoRA on the hf stack, see `stream_bytes`)."""
    a = plan.dtype_bytes
    s = stream_bytes(plan)
    h, i = spec.hidden_size, spec.intermediate_size
    qd, kvd = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    total = spec.family.norms_per_layer * 4 * h  # RMSNorm keeps the fp32 copy of its input
    total += a * (qd + 2 * kvd) + a * qd  # q, k, v and the attention output
    total += _attention_saved_bytes(spec, plan)
    moe = max(1, spec.experts_per_token) if spec.is_moe else 1
    total += moe * 3 * s * i  # gate, up, act(gate) saved by act and mul
    if spec.is_moe:
        total += 4 * spec.num_experts  # router logits/softmax in fp32
    dora = plan.descriptor.dora
    for l in {l.name: l for l in adapted if l.family != "lm_head"}.values():
        total += (l.count // spec.num_layers) * _lora_input_bytes(l, plan)
        if dora:
            # peft dora.py forward: `(mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result
            # * scaling` saves base_result and lora_result (both d_out wide) for the magnitude's gradient
            total += (l.count // spec.num_layers) * 2 * a * l.d_out
    q = plan.descriptor.quant
    if q is not None and q.saves_input:
        # bnb MatMul8bitLt keeps each frozen linear's input (`ctx.tensors = (CAt, subA, A)`); new beyond
        # what is counted above: the two norm outputs (attention and MLP inputs) and down_proj's input
        total += s * (2 * h + moe * i)
    return total


def _attention_saved_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token, one layer: what attention saves beyond q, k, v and its output.

    sdpa / flash_attention_2 (flash or memory-efficient kernels): an fp32 logsumexp per head,
    no seq×seq scores. eager (transformers' eager_attention_forward): `softmax(..., dtype=float32)`
    saves its fp32 output for backward and the `.to(query.dtype)` copy is saved by the matmul with
    v: (4 + a) bytes per score, B×H×S² scores a layer, i.e. H·S per token (dropout 0 keeps no mask)."""
    if plan.attention == "eager":
        return (4 + plan.dtype_bytes) * spec.num_heads * plan.seq_len
    return 4 * spec.num_heads


def layer_backward_transient_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token: gradients alive while one layer runs backward (residual-stream grads
    in and out, the MLP's intermediate grads)."""
    out = stream_bytes(plan) * (3 * spec.hidden_size + 2 * spec.intermediate_size)
    if plan.attention == "eager":  # the scores' gradient: 16-bit from the matmul, fp32 through softmax
        out += (4 + plan.dtype_bytes) * spec.num_heads * plan.seq_len
    return out


def layer_weight_transient_bytes(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> int:
    """Bytes, not per token: the largest weight-sized temporary one linear makes while its layer runs.

    DoRA (peft tuners/lora/dora.py, `get_weight_norm` in every training forward): the adapted
    weight `weight + scaling * lora_weight` is built in full to take its row norms: the 16-bit
    lora_weight, its scaled copy and the sum (3 weight-sized 16-bit tensors), plus the de-quantized
    base weight for a quantized base (`dequantize_module_weight`). An 8-bit base (bnb
    MatMul8bitLt.backward): the whole weight de-quantized to 16-bit for the input gradient."""
    a = plan.dtype_bytes
    m = plan.descriptor
    lin = [l for l in spec.linears if l.family != "lm_head"]
    out = 0
    if m.dora and adapted:
        big = max(l.d_in * l.d_out for l in adapted if l.family != "lm_head")
        out = (3 + (1 if m.quantized else 0)) * a * big
    if m.quant is not None and m.quant.backward_dequant and lin:
        out = max(out, a * max(l.d_in * l.d_out for l in lin))
    return out


def fused_loss_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Bytes at the peak of Liger's fused linear cross-entropy (the whole micro-batch).

    liger_kernel/ops/fused_linear_cross_entropy.py (linkedin/Liger-Kernel @ead96b6,
    fused_linear_cross_entropy_forward): tokens are cut into chunks of
    `next_power_of_2(cdiv(BT, cdiv(V, H)))` rows; one chunk's logits (chunk × V, the input's
    dtype) exist at a time and the kernel overwrites them with their gradient in place;
    `grad_input` (BT × H, the input's dtype) is filled during forward and kept for backward;
    `loss_1d` is fp32 per token. The vocabulary-sized logits of the whole batch never exist."""
    bt = plan.micro_batch * plan.seq_len
    v, h = spec.vocab_size, spec.hidden_size
    inc = -(-v // h)
    chunk = 1 << max(0, (-(-bt // inc) - 1).bit_length())
    return plan.dtype_bytes * chunk * v + stream_bytes(plan) * bt * h + 4 * bt


def logits_peak_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Per token: vocab-sized buffers at the loss's peak (see `Stack.logits_bytes`).

    On the hf stack, transformers 5 `ForCausalLMLoss` upcasts the 16-bit logits with `logits.float()`, and
    cross_entropy keeps the fp32 log_softmax for backward: forward peak 16-bit logits +
    fp32 copy + fp32 log_softmax. In backward, NLL's dense fp32 gradient, the saved
    log_softmax and log_softmax's fp32 input-gradient are alive together: 3 fp32 copies,
    which is the larger of the two for 16-bit training (12 vs 10 bytes per logit)."""
    softcap = plan.dtype_bytes if spec.family.final_softcap(spec.config) else 0  # Gemma 2 keeps tanh's output
    return (plan.stack.logits_bytes(plan.dtype_bytes) + softcap) * spec.vocab_size


# ------------------------------------------------------------------ the estimate


def estimate(spec: ModelSpec, plan: Plan) -> Estimate:
    asked = plan.method
    pre = PreQuantized.of(spec.config)
    if pre is not None:
        _check(spec, plan)  # an unknown method is still refused by its own name
        plan = replace(plan, method=unquantized_twin(plan.method))  # bitsandbytes does not re-quantize it
    adapted = _check(spec, plan)
    tokens = plan.micro_batch * plan.seq_len
    trainable = sum(l.count * plan.r * (l.d_in + l.d_out) for l in adapted)
    if plan.descriptor.dora:  # one magnitude per output row of each adapted linear (peft DoraLinearLayer.weight)
        trainable += sum(l.count * l.d_out for l in adapted)

    comps: dict[str, int] = dict(_weights(spec, plan))
    ab = adapter_bytes(plan)
    comps["lora_params"] = ab * trainable  # hf: peft autocast_adapter_dtype keeps adapters in fp32
    comps["lora_grads"] = ab * trainable
    comps["optimizer_states"] = _optimizer_bytes(trainable, plan.optimizer, ab)
    if plan.descriptor.quantized and kbit_upcast(plan) and plan.dtype_bytes == 2:
        # the fp32 lm_head under 16-bit autocast: F.linear casts the weight to 16-bit and
        # autograd saves that copy to compute the input gradient in backward
        comps["lm_head_cast"] = 2 * spec.vocab_size * spec.hidden_size
    if plan.sharded:
        comps.update(_shard(spec, plan, comps))
    elif plan.gpus > 1:
        comps["ddp_buckets"] = 4 * trainable  # DDP's flat gradient buckets (one more grad copy)

    per_layer = layer_saved_bytes(spec, plan, adapted)
    L = spec.num_layers
    final_norm = 4 * spec.hidden_size
    logits = fused_loss_bytes(spec, plan) if plan.loss == "fused" else tokens * logits_peak_bytes(spec, plan)
    weight_tmp = layer_weight_transient_bytes(spec, plan, adapted)
    recompute = tokens * (per_layer + layer_backward_transient_bytes(spec, plan)) + weight_tmp
    if plan.grad_checkpointing:
        saved = tokens * (L * stream_bytes(plan) * spec.hidden_size + final_norm)  # each layer's input
        other = recompute  # backward re-runs one layer's forward, then its backward
    else:
        saved = tokens * (L * per_layer + final_norm)
        other = tokens * layer_backward_transient_bytes(spec, plan) + weight_tmp
    at_loss = logits >= other  # which transient sits on top of the saved activations at the peak
    comps["activations"] = saved + (0 if at_loss else other)
    comps["logits_loss"] = logits if at_loss else 0
    allocated = sum(comps.values())
    comps["allocator_overhead"] = int(FRAGMENTATION * (comps["activations"] + comps["logits_loss"]))
    comps["cuda_context"] = CUDA_CONTEXT_BYTES
    peak = sum(comps.values())

    notes = _assumptions(spec, plan, adapted, logits, recompute)
    if pre is not None:
        notes = (pre.describe() + (f"; {METHODS[asked].label}'s bitsandbytes quantization does not apply, estimated "
                                   f"as {plan.descriptor.label} on it" if asked != plan.method else "")
                 + "; activations as for a 16-bit base (the GPTQ/AWQ kernel's own saved tensors are not modelled)",
                 ) + notes
    return Estimate(peak_bytes=peak, components=comps, assumptions=notes,
                    plan=plan, trainable_params=trainable, allocated_bytes=allocated,
                    transients={"logits_loss": logits, "layer_recompute": recompute})


def _assumptions(spec: ModelSpec, plan: Plan, adapted: list[Linear], logits: int, recompute: int) -> tuple[str, ...]:
    st = plan.stack
    stack = (f"transformers 5 + peft 0.21 under the HF Trainer, 16-bit autocast, {ATTENTION_TEXT[plan.attention]}"
             if plan.stack == HF else f"{plan.stack.name} (memory layout of that stack, see bench/stacks.py)")
    out = [
        f"stack: {stack}",
        f"adapted modules: {', '.join(dict.fromkeys(l.name for l in adapted))}; LoRA weights, grads and AdamW "
        f"states kept in {8 * adapter_bytes(plan)}-bit" + (" (pure bf16: no autocast)" if plan.pure_bf16 else ""),
        f"per-GPU micro-batch {plan.micro_batch} x {plan.seq_len} tokens, every sequence padded to full length (no packing savings)",
    ]
    if not is_analytic(spec.model_type):
        out.append(f"activations follow a Llama-style decoder (RMSNorm, SwiGLU MLP, SDPA); for {spec.model_type} "
                   "they are an approximation")
    m = plan.descriptor
    if m.quant is not None:
        out.append(f"{m.label}: every linear except lm_head in {m.quant.describe(plan.double_quant)}")
        if kbit_upcast(plan):
            out.append("prepare_model_for_kbit_training casts embeddings, norms, lm_head and biases to fp32 (peft 0.21 other.py)")
            out.append("so the residual stream and MLP activations are fp32 (4-bit linears return their input's dtype), "
                       "and the 16-bit autocast copy of the fp32 lm_head is kept for backward")
        if spec.is_moe:
            out.append("MoE expert tensors assumed quantized like linears")
        if m.quant.saves_input:
            out.append("LLM.int8 linears keep their input for backward and de-quantize the weight to 16-bit in it "
                       "(bitsandbytes 0.50 MatMul8bitLt)")
    else:
        out.append(f"{m.label}: base weights in {8 * plan.dtype_bytes}-bit")
    if plan.grad_checkpointing:
        out.append("non-reentrant gradient checkpointing: each layer's input kept, one layer recomputed in backward")
        which = "the loss's vocab-sized buffers" if logits >= recompute else "one layer's recompute"
        out.append(f"the transient peak is {which} ({logits / GIB:.2f} GiB logits/loss vs "
                   f"{recompute / GIB:.2f} GiB layer recompute)")
    else:
        out.append("no gradient checkpointing: every layer's activations kept until backward")
    if m.dora:
        out.append("DoRA: a trainable magnitude per output row of each adapted linear; each forward builds the "
                   "adapted weight in full for its row norms, and saves the base and LoRA outputs (peft dora.py)")
    if plan.attention == "eager":
        out.append(f"eager attention: fp32 softmax + its 16-bit copy kept per layer "
                   f"({plan.micro_batch} x {spec.num_heads} heads x {plan.seq_len}² scores)")
    if plan.loss == "fused":
        out.append("loss: Liger fused linear cross-entropy: one chunk of logits at a time, grad_input kept; "
                   "no vocab-sized logits for the whole batch")
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
        name = "FSDP (FULL_SHARD)" if plan.strategy == "fsdp" else "DeepSpeed ZeRO-3 (estimated like FSDP)"
        out.append(f"{plan.gpus} GPU{'s' if plan.gpus > 1 else ''} as {name}: weights, LoRA weights, gradients and "
                   f"optimizer states sharded 1/{plan.gpus}; NF4 constants replicated; the root unit (embeddings, "
                   "lm_head) and two decoder layers (running + prefetched) gathered in full; per-GPU batch = micro_batch")
        if m.quantized:
            out.append(f"FSDP+{m.label}: bnb_4bit_quant_storage = the compute dtype, model loaded in it, no fp32 upcast")
    elif plan.gpus > 1:
        out.append(f"{plan.gpus} GPUs as DDP: a full copy per GPU, plus DDP's gradient buckets; per-GPU batch = micro_batch")
    if plan.gpus > 1:
        out.append(f"not counted: NCCL's communication buffers, {NCCL_CONNECTION_BYTES / MIB:.1f} MiB per channel and "
                   "peer connection, allocated by NCCL outside PyTorch's caching allocator (nvidia-smi shows them, "
                   "max_memory_reserved does not); how many channels and peers depends on the topology NCCL detects")
    out.append(f"CUDA context {CUDA_CONTEXT_BYTES / GIB:.2f} GiB; allocator overhead {FRAGMENTATION:.0%} of per-step memory")
    return tuple(out)
