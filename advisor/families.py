"""Architecture families: one record per `model_type` the analytic reader computes.

Each record holds the facts of that family's decoder that change parameter counts or
training memory. The model reader (`model.py`) builds shapes from them and the estimator
(`memory.py`) reads the per-layer facts (norms, soft-capping) from them. A model_type with
no record here is read on the meta device (`meta.py`, imports torch) and estimated as a
Llama-style decoder (`GENERIC`). Every catalog entry's family has a record
(tests/test_families.py).

Sources: the transformers 5 modeling files named in each record (`models/<type>/modeling_<type>.py`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """What one architecture family's decoder holds, beyond its config.json sizes."""

    model_type: str
    source: str  # where the facts come from
    norms_per_layer: int = 2  # RMSNorms in one decoder layer: hidden_size weights each; each saves its fp32 input
    qkv_bias: bool = False  # q, k, v carry biases whatever config.json's attention_bias says
    tied_default: bool = False  # tie_word_embeddings when config.json does not say
    fused_qkv: str | None = None  # one linear computes q, k and v (its leaf name)
    fused_gate_up: str | None = None  # one linear computes the MLP's gate and up projections
    experts_key: str | None = None  # config.json key holding the number of experts (MoE); None: dense
    final_softcap_default: float | None = None  # final_logit_softcapping when config.json does not say

    @property
    def minimal_names(self) -> tuple[str, ...]:
        """The `minimal` target set: q and v (the LoRA paper's choice), or the fused qkv."""
        return (self.fused_qkv,) if self.fused_qkv else ("q_proj", "v_proj")

    def experts(self, cfg: dict) -> int:
        return int(cfg.get(self.experts_key) or 0) if self.experts_key else 0

    def final_softcap(self, cfg: dict) -> float | None:
        """The final logits' tanh soft-capping (Gemma 2), from config.json or the family's default."""
        value = cfg.get("final_logit_softcapping", self.final_softcap_default)
        return float(value) if value else None


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    # LlamaDecoderLayer: input_layernorm + post_attention_layernorm; attention_bias / mlp_bias from config.json
    Family("llama", "models/llama/modeling_llama.py"),
    Family("mistral", "models/mistral/modeling_mistral.py"),
    # MixtralSparseMoeBlock: a router `gate` (hidden → experts) and num_local_experts fused expert tensors
    Family("mixtral", "models/mixtral/modeling_mixtral.py", experts_key="num_local_experts"),
    # Qwen2Attention: q_proj, k_proj, v_proj with bias=True, o_proj without
    Family("qwen2", "models/qwen2/modeling_qwen2.py", qkv_bias=True),
    # Gemma2DecoderLayer: input, post_attention, pre_feedforward and post_feedforward RMSNorms;
    # Gemma2Config ties embeddings and soft-caps the final logits at 30.0 by default
    Family("gemma2", "models/gemma2/modeling_gemma2.py", norms_per_layer=4, tied_default=True,
           final_softcap_default=30.0),
    # Phi3Attention.qkv_proj and Phi3MLP.gate_up_proj: fused projections
    Family("phi3", "models/phi3/modeling_phi3.py", fused_qkv="qkv_proj", fused_gate_up="gate_up_proj"),
)}

# What the estimator assumes for an architecture with no record (read on the meta device):
# a Llama-style decoder (two RMSNorms a layer, no soft-capping). Said in the estimate's assumptions.
GENERIC = Family("generic", "a Llama-style decoder (assumed)")


def family_of(model_type: str) -> Family:
    """The record of `model_type`, or `GENERIC` when there is none."""
    return FAMILIES.get(model_type, GENERIC)


def is_analytic(model_type: str) -> bool:
    """Shapes computed from config.json alone (no torch)."""
    return model_type in FAMILIES
