"""FSDP / ZeRO-3 variants per GPU: CPU offload (`distributed.offload`), the FSDP sharding strategy
(`distributed.fsdp_sharding`) and fp32 master weights (`train.precision: fp32_master`). memory.py's
`_shard` counts FULL_SHARD in the compute dtype; this module changes what that leaves on the GPU.

- FSDP ShardingStrategy (PyTorch docs, torch.distributed.fsdp.ShardingStrategy): FULL_SHARD gathers
  each unit for its forward and again for its backward and frees it after; SHARD_GRAD_OP "does not
  reshard [parameters] after the forward, and only reshards them after the backward computation", so
  at the start of backward every decoder layer is gathered in full; HYBRID_SHARD is FULL_SHARD within
  a machine and replication across machines (the estimate is for one machine: the same as FULL_SHARD).
  NO_SHARD keeps the whole flat parameter on every rank: unshard is "a no-op" (FlatParamHandle.unshard)
  and the gradient is all-reduced in place on `flat_param.grad` (_runtime_utils.py `_reduce_grad_no_shard`),
  so each GPU holds the full weights, LoRA weights, gradients and optimizer states like DDP, without DDP's
  gradient buckets and with no gathered copies. Under parameter mixed precision (fp32_master) the bf16
  `_mp_shard` is the unsharded parameter a unit computes with, freed at its reshard (_flat_param.py
  `post_reshard`: "For NO_SHARD, _mp_shard is not freed in the post-unshard ...
  we delay the free until the reshard"): bf16 copies of the running units, where FULL_SHARD gathers.
- CPU offload: FSDP's `CPUOffload(offload_params=True)` keeps the sharded parameters and their
  gradients on the CPU and the optimizer steps there (its states are created beside the CPU
  parameters); FSDP has no parameters-only offload. DeepSpeed ZeRO-3 offloads parameters
  (`offload_param`) and optimizer states (`offload_optimizer`, with the fp32 gradients it steps on)
  separately. Each unit is still gathered on the GPU while it runs.
- fp32 master weights: the model loaded in fp32, FSDP MixedPrecision(param_dtype=bf16): each rank keeps
  its fp32 shard, casts it to a bf16 shard (`_mp_shard`) and all-gathers bf16 (FSDP
  _flat_param.py `_use_low_precision_shard`), so compute and the gathered units are bf16 while the
  stored shards are 4 bytes a weight. (accelerate's FSDP preparation upcasts trainable low-precision
  flat parameters to fp32 in any case: accelerator.py "FSDP upcast of low precision parameters".)
- DeepSpeed ZeRO-3 holds what FSDP does not (`zero3_adjust`): the contiguous gradient bucket of
  reduce_bucket_size elements, allocated when the optimizer is built and kept, and a parameter prefetch
  of stage3_prefetch_bucket_size elements instead of FSDP's whole next unit. The values are DeepSpeed's
  defaults wherever the config comes from `accelerate config` (no JSON file): accelerate's DeepSpeedPlugin
  writes only stage, offload_optimizer/offload_param and stage3_gather_16bit_weights_on_model_save into
  zero_optimization (accelerate v0.28.0 src/accelerate/utils/dataclasses.py, DeepSpeedPlugin.__post_init__),
  and the hidden_size**2 bucket fills of accelerator._prepare_deepspeed (and transformers'
  trainer_config_finalize) replace only values written as "auto" (`fill_match`: `if config.get(ds_key) ==
  "auto"`). A JSON config (distributed.deepspeed_config) sets its own, "auto" filled from the hidden size
  (advisor/deepspeed_file.py).
- Reentrant checkpointing around an FSDP unit (`checkpoint_hold_bytes`): FSDP (v1) reshards a unit whose
  flat parameter is frozen (a decoder layer's base weights, LoRA wrapped in units of its own) from a hook on
  the unit's inputs, registered in its pre-forward when grad is enabled (_runtime_utils.py
  `_register_post_backward_reshard_only_hook`: `register_multi_grad_hook(inp_tensors, ...)`, kept in
  `_post_backward_hook_state` until `_finalize_params` at the end of backward). register_multi_grad_hook keeps
  each input's grad_fn, for a leaf its AccumulateGrad (autograd/graph.py `grad_fns =
  list(map(_get_grad_fn_or_grad_acc, tensors))`, read again inside the hook), and an AccumulateGrad keeps its
  tensor and so the tensor's .grad. Where the checkpoint wraps the unit (transformers' models called
  `self._gradient_checkpointing_func(decoder_layer.__call__, ...)` until GradientCheckpointingLayer,
  huggingface/transformers#37223 for Llama-family models, #38913 for the rest, 4.52-4.53), the unit's
  pre-forward runs with grad only in the reentrant recompute, on the leaves `detach_variable` made of the
  saved inputs: every layer's input and its gradient stay alive to the end of backward, where they would
  be freed layer by layer. The same code in torch 2.3.1 and 2.13. Non-reentrant checkpointing recomputes
  without re-entering the unit's forward, and transformers 5's layers checkpoint inside the unit
  (FSDP(checkpoint(layer))): no hold. tests/test_checkpoint_hold.py measures it with torch's profiler.
No torch here.
"""
from __future__ import annotations

from . import deepspeed_file
from .errors import RankwiseError
from .plan import Plan

OFFLOADED = {"params": ("base_weights", "unquantized_weights", "lora_params", "saved_modules"),
             "params_and_optimizer": ("base_weights", "unquantized_weights", "lora_params", "lora_grads",
                                      "optimizer_states", "saved_modules", "saved_modules_grads",
                                      "saved_modules_optimizer")}


# DeepSpeed v0.14.0 (microsoft/DeepSpeed @ce78a632ac82a535588520e3712b35e996b46865), deepspeed/runtime/zero/config.py:
# `reduce_bucket_size: int = Field(pp_int(5e8))` (L105), `prefetch_bucket_size: int = Field(pp_int(5e7),
# alias="stage3_prefetch_bucket_size")` (L194), `contiguous_gradients: bool = True` (L94). Elements, not bytes.
# The same in DeepSpeed 0.19.8 (config.py L113, L222; stage3.py L780-784 allocates the bucket with torch.empty per
# communication dtype), the version tests/test_zero3_load.py trains with.
DS_REDUCE_BUCKET_ELEMS = 500_000_000
DS_PREFETCH_BUCKET_ELEMS = 50_000_000


def _runs_as(plan: Plan) -> str:
    """How the plan runs, for a message (one GPU is one plain process whatever the strategy: Plan.from_config)."""
    return "one GPU runs as one plain process" if plan.gpus == 1 else f"strategy is {plan.strategy}, {plan.gpus} processes"


def problems(plan: Plan) -> list[tuple[str, str, dict]]:
    """Combinations the trainer cannot run: (what, how to fix it, the config patch that does), in the order
    `check` reports them. `rankwise check` and the Advice screen show them as the red flag distributed-setting."""
    out = []
    if plan.offload != "none" and not plan.sharded:
        out.append((f"distributed.offload {plan.offload} needs FSDP or DeepSpeed ZeRO-3 over 2+ GPUs "
                    f"({_runs_as(plan)})",
                    "set distributed.strategy: fsdp (or deepspeed) with --gpus N, or distributed.offload: none",
                    {"distributed.offload": "none"}))
    if plan.offload == "params" and plan.strategy == "fsdp":
        out.append(("distributed.offload params with FSDP: FSDP offloads the parameters with their gradients "
                    "and optimizer states (CPUOffload(offload_params=True)); it has no parameters-only offload",
                    "use distributed.offload: params_and_optimizer, or distributed.strategy: deepspeed",
                    {"distributed.offload": "params_and_optimizer"}))
    if plan.fsdp_sharding != "full" and plan.strategy != "fsdp":
        out.append((f"distributed.fsdp_sharding {plan.fsdp_sharding} is an FSDP strategy ({_runs_as(plan)})",
                    "set distributed.strategy: fsdp with --gpus N, or distributed.fsdp_sharding: full",
                    {"distributed.fsdp_sharding": "full"}))
    if plan.ds_config and plan.strategy != "deepspeed":
        out.append((f"distributed.deepspeed_config {plan.ds_config} is a ZeRO-3 config and {_runs_as(plan)}",
                    "train on --gpus 2 or more with distributed.strategy: deepspeed, or unset "
                    "distributed.deepspeed_config", {"distributed.deepspeed_config": None}))
    if plan.fp32_master and plan.strategy != "fsdp":
        out.append(("train.precision fp32_master is FSDP mixed precision (fp32 shards, bf16 compute) "
                    f"and {_runs_as(plan)}",
                    "set distributed.strategy: fsdp with --gpus N, or train.precision: bf16",
                    {"train.precision": "bf16"}))
    if plan.target_parameters and plan.sharded:
        # peft 0.21's ParamWrapper reshapes lora_A/B and parametrizes the expert tensor in each forward; FSDP v1
        # (rankwise's launcher) hands it flattened views, and the first step fails with use_orig_params false
        # ("shape '[4, -1, 1024]' is invalid") and true (a view modified in place): tried on the CPU with gloo, a tiny
        # Mixtral, torch 2.13. DeepSpeed ZeRO-3 partitions the tensors whose shape ParamWrapper reads at wrap time.
        out.append((f"lora.target_parameters under {'FSDP' if plan.strategy == 'fsdp' else 'DeepSpeed ZeRO-3'}: "
                    "peft's ParamWrapper does not run on sharded expert tensors",
                    "use distributed.strategy: ddp (a full copy per GPU) or one GPU, or drop lora.target_parameters",
                    {"distributed.strategy": "ddp"}))
    if plan.fp32_master and plan.descriptor.quantized:
        out.append((f"train.precision fp32_master with {plan.descriptor.label}: the sharded 4-/8-bit recipe "
                    "stores the packed weights in the compute dtype (bnb_4bit_quant_storage)",
                    "use method: lora for fp32 master weights, or train.precision: bf16",
                    {"train.precision": "bf16"}))
    return out


def check(plan: Plan) -> None:
    """The first of `problems` as exit 2, naming the fix."""
    for message, hint, _patch in problems(plan)[:1]:
        raise RankwiseError(message, hint)


def shards(plan: Plan) -> int:
    """How many ways the weights, gradients and optimizer states are split (NO_SHARD: not at all)."""
    return 1 if plan.fsdp_sharding == "no_shard" else plan.gpus


def reduce_bucket_elems(plan: Plan, hidden: int) -> int:
    """reduce_bucket_size in elements: distributed.deepspeed_config's, "auto" filled as hidden_size**2
    (advisor/deepspeed_file.py), or DeepSpeed's default."""
    return deepspeed_file.fill(plan.ds_reduce_bucket, hidden * hidden, DS_REDUCE_BUCKET_ELEMS)


def prefetch_elems(plan: Plan, hidden: int, layer_elems: int) -> int:
    """How many elements ZeRO-3 prefetches beyond the running layer: stage3_prefetch_bucket_size ("auto":
    int(0.9 * hidden_size**2)), no more than stage3_max_live_parameters leaves beside what is gathered
    (the running layer's `layer_elems`)."""
    bucket = deepspeed_file.fill(plan.ds_prefetch_bucket, int(0.9 * hidden * hidden), DS_PREFETCH_BUCKET_ELEMS)
    return max(0, min(bucket, max_live(plan) - layer_elems))


def max_live(plan: Plan) -> int:
    """stage3_max_live_parameters: distributed.deepspeed_config's, or DeepSpeed's default."""
    return deepspeed_file.DS_MAX_LIVE if plan.ds_max_live is None else plan.ds_max_live


def zero3_grad_bucket_bytes(plan: Plan, hidden: int) -> int:
    """ZeRO-3's contiguous gradient bucket: with contiguous_gradients, stage3.py (v0.14.0 L489-492) allocates
    `torch.empty(self.reduce_bucket_size, dtype=self.dtype, device=...)` when the optimizer is built and keeps it
    for the run (freed only in `destroy`); `self.dtype` is the first trainable parameter's dtype (L149), the 16-bit
    compute dtype under DeepSpeed's bf16/fp16 (the engine casts the module to it)."""
    return reduce_bucket_elems(plan, hidden) * plan.dtype_bytes


def zero3_gathered_bytes(plan: Plan, layer: int, largest: int, hidden: int) -> int:
    """The decoder-layer parameters ZeRO-3 holds gathered at once: the running layer, and what the prefetcher
    fetches ahead of it. partitioned_param_coordinator.py (v0.14.0 L353-372) prefetches trace parameters
    `while ... numel_prefetching < max_params_to_prefetch` (= min(max_live_parameters - available,
    prefetch_bucket_size)): up to the bucket plus the one parameter that crosses it (`largest`: bytes of the
    largest weight in a layer), never more than a layer; nothing when the budget is 0."""
    budget = prefetch_elems(plan, hidden, layer // plan.dtype_bytes)
    return layer + (min(layer, budget * plan.dtype_bytes + largest) if budget else 0)


def adjust(plan: Plan, comps: dict[str, int], layer: int, layers: int, largest: int = 0,
           hidden: int = 0) -> dict[str, int]:
    """The per-GPU components after FULL_SHARD (memory._shard) changed for `plan`'s variants. `layer`:
    bytes of one gathered decoder layer; `layers`: how many decoder layers the model has; `largest`: bytes of
    the largest single weight of a layer as stored (ZeRO-3's prefetch); `hidden`: the model's hidden size
    (ZeRO-3's "auto" sizes)."""
    out = dict(comps)
    if plan.strategy == "deepspeed":
        out["gather_layers"] = zero3_gathered_bytes(plan, layer, largest, hidden)
        out["zero3_grad_bucket"] = zero3_grad_bucket_bytes(plan, hidden)
    if plan.fp32_master:
        for k in ("base_weights", "unquantized_weights"):  # fp32 shards where the compute-dtype ones were
            if k in out:
                out[k] = out[k] * 4 // plan.dtype_bytes
        if plan.fsdp_sharding != "no_shard":  # NO_SHARD: that bf16 copy is the gathered unit itself
            out["gather_layers"] += 2 * -(-layer // plan.gpus)  # the bf16 copy of the local shard of each gathered unit
    if plan.fsdp_sharding == "no_shard" and not plan.fp32_master:
        out["gather_layers"] = out["gather_root"] = 0  # the local flat parameter is the full one: nothing gathered
    if plan.fsdp_sharding == "shard_grad_op":
        out["gather_layers"] = layers * layer  # every layer stays gathered from its forward to its backward
    for k in OFFLOADED.get(plan.offload, ()):
        if k in out:
            out[k] = 0
    return out


def _stages_offload(plan: Plan) -> bool:
    """Whether FSDP copies offloaded shards to the GPU on its pre-unshard stream (offload_staging_bytes)."""
    return plan.offload != "none" and plan.strategy == "fsdp" and plan.fsdp_sharding != "no_shard"


def offload_staging_bytes(plan: Plan, layer: int, root: int) -> int:
    """FSDP CPU offload: the device copy of a unit's shard before its all-gather, cached in the pre-unshard
    stream's pool. `_unshard` runs `handle.pre_unshard()` under `pre_unshard_stream` (torch
    distributed/fsdp/_runtime_utils.py), which for offloaded parameters calls `flat_param_to(self.device,
    non_blocking=True)` ("This creates a new tensor distinct from any attributes", _flat_param.py
    `pre_unshard`): the 1/N shard copied to the GPU, all-gathered from and dropped. The block is freed into
    that stream's pool, which only that stream reuses (allocator.py: `get_free_block` refuses other streams'
    blocks), so it stays reserved at the size of the largest unit's shard (the root's, or a layer's): one copy
    at a time, a lower bound where copies overlap. Reserved, not allocated at the compute peak (each copy is
    dropped once its all-gather is done). DeepSpeed's parameter offload stages through its own buffers (not
    counted)."""
    return -(-max(layer, root) // plan.gpus) if _stages_offload(plan) else 0


def checkpoint_hold_bytes(plan: Plan, layers: int, layer_input_bytes: int) -> int:
    """What FSDP's reshard hooks keep alive at the end of backward, beyond what the recompute of the first
    layer holds, when reentrant checkpointing wraps each FSDP unit (see the module's docstring): every layer's
    input and its gradient. `layer_input_bytes`: one layer's checkpointed input. Returns the gradients held,
    less the two the first layer's backward holds anyway (the incoming and the outgoing one): the inputs are
    the saved activations, already counted."""
    if not (plan.sharded and plan.strategy == "fsdp" and plan.grad_checkpointing and plan.reentrant
            and plan.stack.checkpoint_wraps_unit):
        return 0
    return max(0, layers - 2) * layer_input_bytes


def host_bytes(plan: Plan, full: dict[str, int]) -> int:
    """Host RAM the offload holds on this machine (every rank's shards: the full unsharded totals)."""
    copies = plan.gpus if plan.fsdp_sharding == "no_shard" else 1  # NO_SHARD: every rank offloads a full replica
    return sum(full.get(k, 0) for k in OFFLOADED.get(plan.offload, ())) * (2 if plan.fp32_master else 1) * copies


def notes(plan: Plan, offloaded: int) -> tuple[str, ...]:
    out = []
    if plan.fsdp_sharding == "shard_grad_op":
        out.append("FSDP SHARD_GRAD_OP: weights stay gathered from forward to backward: every decoder layer in full "
                   "at the start of backward (less communication than FULL_SHARD)")
    elif plan.fsdp_sharding == "no_shard":
        out.append("FSDP NO_SHARD: a full replica of the weights, LoRA weights, gradients and optimizer states per "
                   "GPU (nothing sharded or gathered), gradients all-reduced in place (no DDP buckets)"
                   + ("; the bf16 copy of each running unit under fp32 master weights" if plan.fp32_master else ""))
    elif plan.fsdp_sharding == "hybrid":
        out.append("FSDP HYBRID_SHARD: sharded within a machine, replicated across machines; estimated for one "
                   "machine (the same as FULL_SHARD there)")
    if plan.offload != "none":
        what = ("weights, LoRA weights, gradients and optimizer states" if plan.offload == "params_and_optimizer"
                else "weights and LoRA weights")
        out.append(f"CPU offload ({plan.offload}): {what} held in host RAM ({offloaded / 2**30:.1f} GiB over the "
                   "machine's ranks), copied in per unit; the gathered units stay on the GPU; slower steps"
                   + ("; the device copy of the largest unit's shard stays cached in FSDP's pre-unshard stream"
                      if _stages_offload(plan) else ""))
    if plan.fp32_master:
        out.append("fp32 master weights (FSDP MixedPrecision param_dtype bf16): shards stored fp32, each gathered "
                   "unit and the compute in bf16, plus a bf16 copy of the local shard per gathered unit")
    return tuple(out)
