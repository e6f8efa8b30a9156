"""Which base weights a bitsandbytes method (QLoRA's NF4, LLM.int8) stores quantized, as the stack loads them.

Every nn.Linear but the output head, unless the stack quantizes the head too. Not transformers 5's fused MoE
experts: they are nn.Parameter tensors (3-D), which its bitsandbytes integration does not convert (measured: a
Mixtral loaded in 4-bit keeps experts.gate_up_proj and down_proj in bf16, tests/test_moe_experts.py; axolotl
docs/expert_quantization.qmd says the same), so they stay in the compute dtype. A stack whose experts were nn.Linear
modules (transformers 4.x) quantizes them: `Stack.quantizes_fused_experts`. rankwise's own 4-bit path quantizes them
as parameters unless quant.quantize_experts is off (`experts_as_parameters`).
"""
from __future__ import annotations

from .plan import Plan
from .spec import Linear, ModelSpec


def fused_experts(l: Linear) -> bool:
    return l.family == "experts" and not l.adaptable


def weights_of(linears) -> int:
    """Weights (no biases) in these linears, every copy counted."""
    return sum(l.count * l.d_in * l.d_out for l in linears)


def expert_weights(spec: ModelSpec) -> int:
    """Weights in the model's fused MoE expert tensors (0 for a dense model)."""
    return weights_of(l for l in spec.linears if fused_experts(l))


def experts_as_parameters(plan: Plan) -> bool:
    """rankwise quantizes the fused experts as parameters itself (trainer/moe_quant.py: bitsandbytes'
    replace_parameter_4bit as they load; under the 8-bit method row-wise int8, LLM.int8's weight format, behind
    rankwise's parametrization), dequantized a layer at a time in each forward: quant.quantize_experts under a 4- or
    8-bit method, on one GPU or DDP (FSDP cannot flatten that storage beside the compute-dtype weights), and not
    where LoRA adapts them (lora.target_parameters): peft 0.21's ParamWrapper fails on a quantized parameter (it sets
    requires_grad on the integer storage; tried on the CPU), so adapted experts stay 16-bit. Not a stack whose
    experts were linears (`Stack.quantizes_fused_experts`)."""
    q = plan.descriptor.quant
    return (q is not None and q.bits in (4, 8) and plan.quantize_experts and not plan.sharded
            and not plan.target_parameters and not plan.stack.quantizes_fused_experts)


def quantized(l: Linear, plan: Plan) -> bool:
    """Does the method's bitsandbytes quantization replace this weight? Not one the model's forward reads bare
    (Linear.bare: rankwise keeps it in the compute dtype, llm_int8_skip_modules)."""
    if plan.descriptor.quant is None or l.bare:
        return False
    if l.family == "lm_head":
        return plan.stack.quantize_lm_head
    return plan.stack.quantizes_fused_experts or not fused_experts(l) or experts_as_parameters(plan)


def unquantized_experts(spec: ModelSpec, plan: Plan) -> int:
    """Weights of the fused MoE experts a quantized method leaves in the compute dtype (0 for a dense model, or a
    method that quantizes nothing)."""
    if plan.descriptor.quant is None:
        return 0
    return weights_of(l for l in spec.linears if fused_experts(l) and not quantized(l, plan))
