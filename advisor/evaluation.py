"""The evaluation forward: what the HF Trainer's `evaluate()` holds on the GPU between training steps.

Evaluation runs the model under `torch.no_grad()` (Trainer.prediction_step) at `per_device_eval_batch_size`
rows, which axolotl (`eval_batch_size`) and LLaMA-Factory (`per_device_eval_batch_size`) let differ from the
training micro-batch. Resident through it: the weights (base, quantization constants, LoRA, trained copies), the
optimizer states, DDP's bucket buffers and ZeRO-3's gradient bucket, the CUDA context and NCCL's buffers; the
gradients are not (the Trainer zeroes them to None after each optimizer step) and nothing is saved for a
backward. On top: the larger of one decoder layer's forward working set (its MLP's act(gate), up and their
product) and the loss over the vocabulary-sized logits of every evaluated token (transformers 5's model returns
the logits of all positions; ForCausalLMLoss upcasts them, `Stack.loss_phases`' forward peak). With no
`compute_metrics` the Trainer keeps only the loss (evaluate passes prediction_loss_only=True), so logits do not
accumulate over eval steps. Every row is taken padded to the sequence length, as for training. No torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .allocator import MLP_LIVE
from .activations import stream_bytes

if TYPE_CHECKING:
    from .plan import Estimate, Plan
    from .spec import ModelSpec

# What stays on the GPU while the Trainer evaluates between steps (the components' names in memory.estimate)
RESIDENT = ("base_weights", "quant_constants", "unquantized_weights", "lora_params", "optimizer_states",
            "saved_modules", "saved_modules_optimizer", "ddp_buckets", "zero3_grad_bucket", "gather_layers",
            "gather_root", "offload_staging", "allocator_overhead", "cuda_context", "nccl_buffers", "lm_head_cast")


def resident_bytes(components: dict[str, int]) -> int:
    """What training leaves on the GPU while evaluation runs (RESIDENT's components)."""
    return sum(components.get(k, 0) for k in RESIDENT)


def eval_forward_bytes(spec: "ModelSpec", plan: "Plan", eval_batch: int) -> int:
    """The evaluation forward's own bytes at `eval_batch` rows: the residual stream and the larger of one layer's
    working set and the loss over the logits."""
    tokens = eval_batch * plan.seq_len
    logits = tokens * spec.logit_width * plan.stack.loss_phases(plan.dtype_bytes)[0]
    layer = MLP_LIVE * tokens * stream_bytes(plan) * spec.mlp_width
    stream = tokens * stream_bytes(plan) * spec.hidden_size  # the residual stream the next layer reads
    return stream + max(logits, layer)


def eval_peak_bytes(spec: "ModelSpec", estimate: "Estimate", eval_batch: int) -> int:
    """Peak bytes per GPU of an evaluation forward at `eval_batch` rows, beside what training leaves resident."""
    return resident_bytes(estimate.components) + eval_forward_bytes(spec, estimate.plan, eval_batch)
