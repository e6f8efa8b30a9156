"""Which base weights a bitsandbytes method (QLoRA's NF4, LLM.int8) stores quantized, as the stack loads them.

Every nn.Linear but the output head, unless the stack quantizes the head too. Not transformers 5's fused MoE
experts: they are nn.Parameter tensors (3-D), which its bitsandbytes integration does not convert (measured: a
Mixtral loaded in 4-bit keeps experts.gate_up_proj and down_proj in bf16, tests/test_moe_experts.py; axolotl
docs/expert_quantization.qmd says the same), so they stay in the compute dtype. A stack whose experts were nn.Linear
modules (transformers 4.x) quantizes them: `Stack.quantizes_fused_experts`.
"""
from __future__ import annotations

from .plan import Plan
from .spec import Linear, ModelSpec


def fused_experts(l: Linear) -> bool:
    return l.family == "experts" and not l.adaptable


def quantized(l: Linear, plan: Plan) -> bool:
    """Does the method's bitsandbytes quantization replace this weight?"""
    if plan.descriptor.quant is None:
        return False
    if l.family == "lm_head":
        return plan.stack.quantize_lm_head
    return plan.stack.quantizes_fused_experts or not fused_experts(l)


def unquantized_experts(spec: ModelSpec, plan: Plan) -> int:
    """Weights of the fused MoE experts a quantized method leaves in the compute dtype (0 for a dense model, or a
    method that quantizes nothing)."""
    if plan.descriptor.quant is None:
        return 0
    return sum(l.count * l.d_in * l.d_out for l in spec.linears if fused_experts(l) and not quantized(l, plan))
