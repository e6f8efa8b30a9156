"""The memory estimator: peak training memory per GPU for a LoRA/QLoRA plan.

Physics first: every component is counted from the model's shapes (`ModelSpec`) for the
stack rankwise trains with — transformers 5 + peft 0.21 + bitsandbytes under the HF
Trainer, bf16/fp16 autocast, SDPA attention, non-reentrant gradient checkpointing.
`peak_bytes` is what nvidia-smi would show at the peak (allocator peak + the allocator's
cached-but-free blocks + NCCL's buffers + the CUDA context), because that is what decides an OOM.
`allocated_bytes` is the matching `torch.cuda.max_memory_allocated()` view. The cached blocks and
NCCL's buffers are counted from the allocator's and NCCL's own rules in allocator.py.

One number is not derived from shapes or source code, a named constant below with its source:
the CUDA context size.

`Plan.stack` selects what a training stack's code keeps in memory: `HF` is what rankwise
trains with; bench/stacks.py declares others so bench/estimator_accuracy.py can compare against
figures published from LitGPT, torchtune, older transformers or fms-acceleration. Accuracy against those
figures: run `python3 bench/estimator_accuracy.py`.
"""
from __future__ import annotations

from .config import ATTENTIONS, OPTIMIZERS, STRATEGIES
from .errors import RankwiseError
from dataclasses import replace

from .methods import METHOD_NAMES, METHODS, PreQuantized, unquantized_twin
from .spec import Linear, ModelSpec

from . import allocator, assumptions, fsdp_wrap, liger, sharding
from .storage import expert_weights, experts_as_parameters, quantized, unquantized_experts, weights_of
from .adapter_init import start_up
from .activations import (chunked_loss_bytes, fused_loss_bytes, kbit_upcast, layer_backward_transient_bytes,
                          layer_saved_bytes, layer_weight_transient_bytes, logits_peak_bytes, built_expert_bytes,
                          residual_bytes, stream_bytes)
from .plan import GIB, HF, LOSSES, OUTSIDE_ALLOCATOR, Estimate, Plan, Stack  # noqa: F401  (callers name them memory.Plan, memory.HF, ...)

MIB = 1024 ** 2

# CUDA context + cuBLAS/cuDNN handles and workspaces that nvidia-smi shows but the torch
# allocator does not count. PyTorch's CUDA semantics notes put the context at "hundreds of
# MB"; with lazy module loading (default since CUDA 11.7 / torch 1.13) it is ~300–500 MiB
# on A100/H100 (torch forum "CUDA context memory" threads; our own reading of nvidia-smi
# after `torch.zeros(1, device='cuda')` plus one cuBLAS matmul). One constant:
CUDA_CONTEXT_BYTES = 500 * MIB

# compare_plan's inference estimate only (training counts the allocator in allocator.py): a judgment
# from the allocator's design, 10% of the loss pass's buffers, not fitted per row.
FRAGMENTATION = 0.10

# bitsandbytes 8-bit optimizers (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
# Quantization"): each state is 1 byte per parameter plus one fp32 absmax per block
# (bitsandbytes 0.50 optim/optimizer.py, Optimizer8bit init_state: blocksize = 256).
OPT8_BLOCK = 256

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
    if plan.modules_to_save and plan.descriptor.quantized:
        frozen = [n for n, _, emb in spec.saved_modules(plan.modules_to_save)
                  if not emb and n not in ("lm_head", "embed_out")]
        if frozen:
            raise RankwiseError(f"lora.modules_to_save: {', '.join(frozen)} are {plan.descriptor.label}'s "
                                f"{plan.descriptor.base} linears, which cannot train in full",
                                "keep embed_tokens / lm_head there (they stay 16-bit), or use method: lora")
    if plan.target_parameters and plan.descriptor.dora:
        raise RankwiseError(f"lora.target_parameters under {plan.descriptor.label}: peft has no DoRA for adapted "
                            "parameters", "use method lora or qlora, or drop lora.target_parameters")
    targets = plan.targets if isinstance(plan.targets, str) else list(plan.targets)
    return spec.resolve_targets(targets)


# ------------------------------------------------------------------ static memory


def _weights(spec: ModelSpec, plan: Plan) -> dict[str, int]:
    """Base weights: in the compute dtype, or (a quantized method) its quantized linears +
    their constants + the parts it leaves unquantized (methods.py describes the layout)."""
    a = plan.dtype_bytes
    pre = PreQuantized.of(spec.config)
    if pre is not None:  # the shipped format, whatever the method (bitsandbytes cannot re-quantize it)
        lin = [l for l in spec.linears if l.family != "lm_head"]
        packed = sum(l.count * pre.weight_bytes(l.d_in, l.d_out)[0] for l in lin)
        consts = sum(l.count * pre.weight_bytes(l.d_in, l.d_out)[1] for l in lin)
        rest = spec.total_params - weights_of(lin)
        return {"base_weights": packed, "quant_constants": consts, "unquantized_weights": rest * a}
    q = plan.descriptor.quant
    if q is None:
        return {"base_weights": spec.total_params * a}
    # bitsandbytes replaces every nn.Linear except the output head (transformers'
    # get_keys_to_not_convert keeps lm_head); not transformers 5's fused MoE experts (`quantized`): those stay in
    # the compute dtype, counted with the base weights (rankwise's worker casts them back after peft's fp32 upcast)
    st = plan.stack
    qlin = [l for l in spec.linears if quantized(l, plan)]
    quant = weights_of(qlin)
    rows = sum(l.count * l.d_out for l in qlin)
    if st.quantize_lm_head and spec.tied_embeddings:
        quant -= spec.vocab_size * spec.hidden_size  # a tied head is the embedding: not quantized
        rows -= spec.vocab_size
    experts = unquantized_experts(spec, plan)
    rest = spec.total_params - quant - experts  # embeddings, norms, lm_head, biases, routers
    rest_bytes = 4 if kbit_upcast(plan) else a
    return {"base_weights": quant * q.bits // 8 + experts * a,
            "quant_constants": q.constants_bytes(quant, plan.double_quant, rows), "unquantized_weights": rest * rest_bytes}


def saved_module_bytes(spec: ModelSpec, plan: Plan) -> tuple[dict[str, int], int]:
    """lora.modules_to_save: ({component: bytes}, parameters). peft's ModulesToSaveWrapper deep-copies each
    module into a trainable copy beside the frozen original (which the base weights already count), so the copy,
    its gradient and its optimizer states are added, in the module's dtype: the compute dtype, or fp32 for the
    embeddings and lm_head that prepare_model_for_kbit_training upcasts on a 4-/8-bit base (kbit_upcast), or fp32
    training. Optimizer states: torch AdamW's two in the parameter's dtype; a bitsandbytes 8-bit AdamW keeps
    embeddings in 32-bit (transformers' Trainer.create_optimizer registers `optim_bits: 32` for every nn.Embedding,
    the trainable copy included: two fp32 states) and the rest in 8 bits."""
    saved = spec.saved_modules(plan.modules_to_save)
    if not saved:
        return {}, 0
    wb = 4 if plan.dtype_bytes == 4 or (plan.descriptor.quantized and kbit_upcast(plan)) else plan.dtype_bytes
    n = sum(p for _, p, _ in saved)
    emb = sum(p for _, p, is_emb in saved if is_emb)
    if plan.optimizer == "adamw_torch":
        states = _optimizer_bytes(n, plan.optimizer, wb)
    else:
        states = 2 * 4 * emb + _optimizer_bytes(n - emb, plan.optimizer, wb)
    return {"saved_modules": n * wb, "saved_modules_grads": n * wb, "saved_modules_optimizer": states}, n


def adapter_bytes(plan: Plan) -> int:
    """Bytes per LoRA element (weights, their gradients, each AdamW state): `Plan.adapter_bytes`."""
    return plan.adapter_bytes


def _optimizer_bytes(n: int, optimizer: str, param_bytes: int = 4) -> int:
    if optimizer == "adamw_torch":
        return 2 * param_bytes * n  # exp_avg + exp_avg_sq in the parameter's dtype (torch.optim.AdamW)
    return 2 * n + 2 * 4 * -(-n // OPT8_BLOCK)  # two uint8 states + fp32 absmax per block


# ------------------------------------------------------------------ FSDP / ZeRO-3


def layer_unit_params(spec: ModelSpec) -> int:
    """Parameters of one decoder layer (its linears and RMSNorms): one FSDP unit under
    TRANSFORMER_BASED_WRAP with the decoder layer class."""
    linears = sum(l.params for l in spec.linears if l.family != "lm_head") // spec.num_layers
    norms = spec.norms_per_layer * spec.hidden_size
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
        quant = weights_of(l for l in spec.linears if l.family != "lm_head" and quantized(l, plan)) // spec.num_layers
        layer_b = quant * q.bits // 8 + (layer - quant) * a
    else:
        layer_b = layer * a
    return layer_b, root * a


def largest_weight_bytes(spec: ModelSpec, plan: Plan) -> int:
    """Bytes of the largest single weight of a decoder layer as stored: 4-bit packed under a quantized method
    (as unit_bytes counts it), else the compute dtype. (A fused expert tensor is counted per expert.)"""
    q = plan.descriptor.quant
    return max((l.d_in * l.d_out * q.bits // 8 if quantized(l, plan) else l.d_in * l.d_out * plan.dtype_bytes
                for l in spec.linears if l.family != "lm_head"), default=0)


SAVED_MODULES = ("saved_modules", "saved_modules_grads", "saved_modules_optimizer")  # saved_module_bytes


def _shard(plan: Plan, comps: dict[str, int], layer: int, root: int) -> dict[str, int]:
    """Per-GPU share of the static memory under FULL_SHARD, plus the gather buffers.

    Sharded 1/N: base and unquantized weights, LoRA weights, their gradients and optimizer
    states. Not sharded: the NF4 quantization constants (bitsandbytes keeps each module's
    quant_state as module metadata on every rank, not as an FSDP parameter). Gathered in full
    while they run: the root unit (FSDP does not reshard the root after forward: it is needed
    again in backward) and two decoder layers (the running one and the one prefetched,
    forward_prefetch / BACKWARD_PRE). `layer`, `root`: the gathered units' bytes (unit_bytes)."""
    n = sharding.shards(plan)
    out = {k: -(-comps[k] // n) for k in ("base_weights", "unquantized_weights", "lora_params", "lora_grads",
                                          "optimizer_states", *SAVED_MODULES) if k in comps}
    out["gather_layers"] = 2 * layer
    out["gather_root"] = root
    return out


# ------------------------------------------------------------------ the estimate


def estimate(spec: ModelSpec, plan: Plan) -> Estimate:
    asked = plan.method
    pre = PreQuantized.of(spec.config)
    if pre is not None:
        _check(spec, plan)  # an unknown method is still refused by its own name
        plan = replace(plan, method=unquantized_twin(plan.method))  # bitsandbytes does not re-quantize it
    spec = spec.with_added_tokens(plan.added_tokens)  # the resized vocabulary: embeddings, head and logits
    unpatched = plan.liger and not liger.supports(spec.config.get("model_type"))
    if unpatched:  # the Trainer's Liger integration patches nothing here: transformers' loss and layers
        plan = replace(plan, liger=False, loss="standard" if plan.liger_loss else plan.loss)
    adapted = _check(spec, plan)
    wrapped = spec.resolve_parameters(plan.target_parameters)  # fused expert tensors LoRA adapts as parameters
    tokens = plan.micro_batch * plan.seq_len
    trainable = sum(l.count * plan.r * (l.d_in + l.d_out) for l in adapted + wrapped)
    if plan.added_tokens:  # peft trainable tokens: the new rows of the embedding, and of an untied head
        trainable += plan.added_tokens * spec.hidden_size * (1 + bool(spec.params_by_family.get("lm_head")))
    if plan.descriptor.dora:  # one magnitude per output row of each adapted linear (peft DoraLinearLayer.weight)
        trainable += sum(l.count * l.d_out for l in adapted)

    comps: dict[str, int] = dict(_weights(spec, plan))
    ab = adapter_bytes(plan)
    comps["lora_params"] = ab * trainable  # hf: peft autocast_adapter_dtype keeps adapters in fp32
    comps["lora_grads"] = ab * trainable
    comps["optimizer_states"] = _optimizer_bytes(trainable, plan.optimizer, ab)
    saved, saved_params = saved_module_bytes(spec, plan)
    comps.update(saved)
    if plan.descriptor.quantized and kbit_upcast(plan) and plan.dtype_bytes == 2:
        # the fp32 lm_head under 16-bit autocast: F.linear casts the weight to 16-bit and
        # autograd saves that copy to compute the input gradient in backward
        comps["lm_head_cast"] = 2 * spec.logit_width * spec.hidden_size
    offloaded = 0
    layer_unit, root_unit = unit_bytes(spec, plan) if plan.sharded else (0, 0)  # the gathered units' bytes
    if plan.sharded:
        offloaded = sharding.host_bytes(plan, comps)  # the unsharded totals, before _shard splits them
        comps.update(_shard(plan, comps, layer_unit, root_unit))
        comps.update(sharding.adjust(plan, comps, layer_unit, spec.num_layers, largest_weight_bytes(spec, plan),
                                     spec.hidden_size))
    elif plan.gpus > 1:
        comps["ddp_buckets"] = 4 * trainable + saved.get("saved_modules_grads", 0)  # DDP's flat gradient buckets (one more grad copy)

    param_token, param_layer = built_expert_bytes(spec, plan, wrapped)  # expert tensors built in each forward
    per_layer = layer_saved_bytes(spec, plan, adapted) + param_token
    largest_layer = layer_saved_bytes(spec, plan, adapted, largest=True) + param_token  # a hybrid's larger kind
    L = spec.num_layers
    final_norm = 4 * spec.hidden_size
    if plan.loss == "fused":  # the whole micro-batch's, not per token
        logits = fused_loss_bytes(spec, plan)
    else:
        logits = tokens * (chunked_loss_bytes if plan.loss == "chunked" else logits_peak_bytes)(spec, plan)
    weight_tmp = layer_weight_transient_bytes(spec, plan, adapted)
    layer_input = tokens * residual_bytes(spec, plan) * spec.hidden_size  # a hidden-state tensor: a checkpointed input
    recompute = tokens * (largest_layer + layer_backward_transient_bytes(spec, plan)) + weight_tmp + param_layer
    if plan.reentrant and plan.grad_checkpointing:  # the recomputed layer's output, alive through its backward (_assumptions says why)
        recompute += layer_input
    held = tokens * plan.stack.held_logit_bytes(plan.dtype_bytes) * spec.logit_width  # the loop's output, through backward
    recompute += held
    offloaded_inputs = 0
    if plan.grad_checkpointing:
        saved = L * layer_input + tokens * final_norm  # each layer's input
        if plan.activation_offload:  # save_on_cpu: the inputs go to host RAM; backward copies back one at a time
            offloaded_inputs = L * layer_input
            saved -= offloaded_inputs - layer_input
        other = recompute  # backward re-runs one layer's forward, then its backward
    else:
        saved = tokens * (L * per_layer + final_norm) + L * param_layer
        other = tokens * layer_backward_transient_bytes(spec, plan) + weight_tmp + held
    at_loss = logits >= other  # which transient sits on top of the saved activations at the peak
    comps["activations"] = saved + (0 if at_loss else other)
    comps["logits_loss"] = logits if at_loss else 0
    hold = sharding.checkpoint_hold_bytes(plan, L, layer_input)
    if hold and hold + recompute > max(logits, other):  # the end of backward: first layer's recompute + the hold
        comps["activations"] = saved + recompute
        comps["logits_loss"] = 0
        comps["fsdp_checkpoint_hold"] = hold
    if plan.sharded and plan.strategy == "fsdp":  # one LoRA unit's gradient while it reduce-scatters
        comps["fsdp_grad_buffers"] = allocator.fsdp_grad_bytes(plan, trainable // L)
    allocated = sum(comps.values())
    comps["allocator_overhead"] = allocator.pool_floor_bytes(plan)
    comps["allocator_cached"] = allocator.cached_bytes(plan, tokens, spec.logit_width, logits, other,
                                                       stream_bytes(plan) * spec.mlp_width)
    wrap = _wrap(spec, plan, adapted)
    if plan.sharded and plan.offload != "none":  # reserved by FSDP's pre-unshard stream, not allocated
        comps["offload_staging"] = sharding.offload_staging_bytes(plan, layer_unit, root_unit)
    comps["cuda_context"] = CUDA_CONTEXT_BYTES
    if plan.gpus > 1:
        comps["nccl_buffers"] = allocator.nccl_bytes(plan)
    peak = sum(comps.values())
    init = start_up(spec, plan, adapted)
    init_peak = 0
    if init.transient_bytes and not plan.sharded:  # sharded: rank 0 initialises on the CPU before FSDP wraps
        resident = sum(comps.get(k, 0) for k in ("base_weights", "quant_constants", "unquantized_weights",
                                                  "lora_params", "cuda_context"))
        init_peak = resident + init.transient_bytes
        if init_peak > peak:  # the start-up, not training, sets the peak
            comps["adapter_init"] = init_peak - peak
            peak = init_peak
        # max_memory_allocated is over the whole run: a start-up above the step is what it reads
        allocated = max(allocated, init_peak - comps["cuda_context"])
    releasable = 0
    if wrap is not None:
        outside = sum(comps.get(k, 0) for k in OUTSIDE_ALLOCATOR)
        train_reserved = peak - outside
        # the step's default-stream requests over 1 MiB reuse wrapping's cached blocks; the rest stay cached
        reused = sum(comps.get(k, 0) for k in REUSES_WRAP_CACHE)
        reused += int(comps.get("optimizer_states", 0) * fsdp_wrap.large_pool_share(plan, adapted, adapter_bytes(plan),
                                                                                     _wrap_shards(plan)))
        wrap_peak = wrap.peak_allocated + outside  # wrapping's own high-water mark: tensors alive, not cached
        allocated = max(allocated, wrap.peak_allocated)
        if wrap_peak > peak:
            comps["fsdp_wrap"] = wrap_peak - peak
            peak = wrap_peak
        releasable = max(train_reserved + max(0, wrap.cached - reused), wrap.peak_reserved) - (peak - outside)
        releasable = max(0, releasable)

    load = _zero3_load(spec, plan, adapted)
    allocated = max(allocated, load)
    if load:
        load += sum(comps.get(k, 0) for k in OUTSIDE_ALLOCATOR)
        if load > peak:
            comps["zero3_load"] = load - peak
            peak = load

    notes = assumptions.describe(spec, plan, adapted, logits, recompute, adapter_bits=8 * adapter_bytes(plan),
                                 layer_elems=lambda: _layer_elems(spec, plan), context_bytes=CUDA_CONTEXT_BYTES)
    notes += sharding.notes(plan, offloaded) if plan.sharded else ()
    if unpatched:
        notes += (liger.unsupported(spec.config.get("model_type")) + ": estimated with transformers' loss and layers",)
    if experts_as_parameters(plan) and spec.fused_names():
        to = ("NF4 as they load (bitsandbytes' parameter quantization" if plan.descriptor.quant.bits == 4 else
              "row-wise int8 as they load (LLM.int8's weight format, one fp32 absmax a row")
        notes += (f"MoE experts quantized to {to}, quant.quantize_experts), dequantized in each forward and kept "
                  "for backward: "
                  + assumptions.built_per_layer(plan, L, expert_weights(spec) * plan.dtype_bytes // L),)
    kept = unquantized_experts(spec, plan)
    if kept:
        notes += (f"MoE experts: transformers 5 holds them as fused tensors, which its bitsandbytes integration does "
                  f"not quantize: {kept * plan.dtype_bytes / GIB:.1f} GiB of experts stay {8 * plan.dtype_bytes}-bit "
                  f"under {plan.descriptor.label} (only attention and dense linears are quantized)",)
    if load:
        notes += (f"ZeRO-3 starts from the quantized base whole on each GPU ({load / GIB:.2f} GiB with the CUDA "
                  "context): transformers does not partition a quantized model as it loads (no zero.Init) and its "
                  "bitsandbytes quantizer puts it on the GPU; DeepSpeed then partitions it"
                  + (" (the peak; more GPUs do not lower it)" if comps.get("zero3_load") else ""),)
    if wrap is not None:
        where = ("rank 0 holds the model on the CPU; each unit moved, broadcast, flattened and sharded there"
                 if plan.stack.fsdp_start(plan.descriptor.quantized) == "cpu" else
                 "transformers loads the quantized base whole onto every GPU first (its bitsandbytes quantizer's "
                 "device_map); then each unit is broadcast, flattened and sharded there")
        notes += (f"FSDP wraps on the GPU ({where}): {wrap.peak_allocated / GIB:.2f} GiB alive at its height"
                  + (" (the peak)" if comps.get("fsdp_wrap") else "")
                  + (f"; the blocks it frees stay cached and the step reuses only part of them: max_memory_reserved "
                     f"reads {releasable / GIB:.2f} GiB more, handed back if memory runs short" if releasable else ""),)
    if comps.get("fsdp_checkpoint_hold"):
        notes += ("reentrant checkpointing around each FSDP unit (this stack's checkpoint call): FSDP's reshard "
                  "hooks keep every layer's input and its gradient to the end of backward, where the peak is "
                  f"(+{comps['fsdp_checkpoint_hold'] / GIB:.2f} GiB)",)
    if init.note:
        notes += (init.note + (f"; start-up peak {init_peak / GIB:.2f} GiB" if init_peak else
                               "; run on the CPU before FSDP/ZeRO-3 shards the model" if plan.sharded else ""),)
    if pre is not None:
        notes = (pre.describe() + (f"; {METHODS[asked].label}'s bitsandbytes quantization does not apply, estimated "
                                   f"as {plan.descriptor.label} on it" if asked != plan.method else "")
                 + f"; activations as for a 16-bit base (the {pre.fmt.upper()} kernel's own saved tensors are not modelled)",
                 ) + notes
    return Estimate(peak_bytes=peak, components=comps, assumptions=notes,
                    plan=plan, trainable_params=trainable + saved_params, allocated_bytes=allocated,
                    transients={"logits_loss": logits, "layer_recompute": recompute, "adapter_init": init_peak}
                    | ({"fsdp_wrap": wrap.peak_allocated} if wrap is not None else {}),
                    init_flops=init.flops, host_offload_bytes=offloaded, releasable_bytes=releasable,
                    host_activation_bytes=offloaded_inputs * plan.gpus)  # one process a GPU, each its own


# Training's default-stream requests above 1 MiB, which can split wrapping's cached blocks (fsdp_wrap.py).
# The optimizer states join them where the adapters' shards are large-pool requests. What stays cached is
# releasable (whole free segments, handed back on an OOM retry): Estimate.releasable_bytes, not the peak.
REUSES_WRAP_CACHE = ("activations", "logits_loss", "allocator_cached", "fsdp_checkpoint_hold", "fsdp_grad_buffers")


def _zero3_load(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> int:
    """Bytes alive on each GPU when DeepSpeed ZeRO-3 starts from a quantized base the stack loaded whole onto every
    GPU (Stack.zero3_start_quantized "gpu"): every stored tensor, the NF4 constants and the adapters (peft wraps it
    before DeepSpeed partitions it); 0 where the stack partitions as it loads. DeepSpeed's Init(module=) partitions
    parameter by parameter (deepspeed runtime/zero/parameter_offload.py _convert_to_zero_parameters), and its
    stage-3 optimizer's defragment() empties the cache afterwards (runtime/zero/utils.py): nothing releasable."""
    if not (plan.sharded and plan.strategy == "deepspeed" and plan.descriptor.quantized
            and plan.stack.zero3_start_quantized == "gpu"):
        return 0
    return sum(u.stored for u in wrap_units(spec, plan, adapted))


def _wrap_shards(plan: Plan) -> int:
    return 1 if plan.fsdp_sharding == "no_shard" else sharding.shards(plan)


def _per_layer(count: int, layers: int) -> tuple[float, ...]:
    """How many of `count` modules an average decoder layer holds, one share a module: whole ones, then the
    share of one that is left (1 module over 47 layers: (1/47,))."""
    whole, part = divmod(count, layers)
    return (1.0,) * whole + ((part / layers,) if part else ())


def wrap_units(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> tuple[fsdp_wrap.Unit, ...]:
    """The FSDP units in wrapping order, as fsdp_wrap.py replays them (the auto-wrap recursion wraps children
    first): per decoder layer its adapters' units (each lora_A / lora_B a unit of its own: peft's and
    fsdp_qlora's lambda policy on leaves whose weight requires grad), then the layer (its linears as stored, a
    fused expert tensor holding every expert of its layer, its norms); the root last (embeddings, what no layer
    holds, an untied lm_head). The layer and the root add up to unit_bytes."""
    a = 4 if plan.fp32_master else plan.dtype_bytes
    ab = adapter_bytes(plan)
    q = plan.descriptor.quant
    L = spec.num_layers
    layer: list[int] = []
    kept: list[int] = []
    for lin in spec.linears:
        if lin.family == "lm_head":
            continue
        # a fused expert tensor holds every expert of its layer; a module in only some of the layers (a dense
        # first layer, another attention kind) is an average layer's share of one
        shares = _per_layer(lin.count, L) if lin.adaptable else (lin.count / L,)
        for share in shares:
            w, d_out = int(share * lin.d_in * lin.d_out), int(share * lin.d_out)
            layer.append(w * q.bits // 8 if quantized(lin, plan) else w * a)
            if quantized(lin, plan):  # bitsandbytes' quant_state tensors move with the weight and stay
                kept.append(q.constants_bytes(w, plan.double_quant, d_out))
            if lin.bias:
                layer.append(d_out * a)
    layer += [spec.hidden_size * a] * spec.norms_per_layer

    def a_b(lin: Linear, share: float) -> tuple[int, int]:  # lora_A, lora_B of one adapted linear
        return int(share * plan.r * lin.d_in) * ab, int(share * lin.d_out * plan.r) * ab

    lora = tuple(t for lin in adapted if lin.family != "lm_head" for share in _per_layer(lin.count, L)
                 for t in a_b(lin, share))
    embed = spec.vocab_size * spec.hidden_size
    head = 0 if spec.tied_embeddings else spec.logit_width * spec.hidden_size  # an untied head (or a score head)
    # final norm, routers, ...; never below 0 (a generic architecture's norms a layer are an assumption)
    rest = max(0, spec.total_params - L * layer_unit_params(spec) - embed - head)
    root = [embed * a, rest * a] + ([head * a] if head else [])
    head_lora = tuple(t for lin in adapted if lin.family == "lm_head" for t in a_b(lin, 1))
    per = tuple(fsdp_wrap.Unit((t,)) for t in lora) + (fsdp_wrap.Unit(tuple(layer), tuple(kept)),)
    return per * L + tuple(fsdp_wrap.Unit((t,)) for t in head_lora) + (fsdp_wrap.Unit(tuple(root)),)


def _wrap(spec: ModelSpec, plan: Plan, adapted: list[Linear]) -> fsdp_wrap.WrapReserve | None:
    """Rank 0's wrapping replayed, where the stack says where the base is when FSDP wraps it (Stack.fsdp_start)."""
    start = plan.stack.fsdp_start(plan.descriptor.quantized)
    if not (plan.sharded and plan.strategy == "fsdp") or start == "none":
        return None
    units = wrap_units(spec, plan, adapted)
    return fsdp_wrap.replay(units, _wrap_shards(plan), plan.offload != "none", moves=start == "cpu",
                            preloaded=start == "gpu")


def _layer_elems(spec: ModelSpec, plan: Plan) -> int:
    """Elements of one gathered decoder layer as stored (ZeRO-3 counts parameters in elements)."""
    return unit_bytes(spec, plan)[0] // plan.dtype_bytes
