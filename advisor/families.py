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
    expert_inter_key: str | None = None  # config.json key of one expert's MLP width (None: intermediate_size)
    final_softcap_default: float | None = None  # final_logit_softcapping when config.json does not say
    # RMSNorms on the queries and keys after their projection: "head" normalises each head with one
    # head_dim-wide weight shared by all heads (Qwen3, Gemma 3); "all" normalises all query heads together
    # and all key heads together (OLMo 2: weights of heads·head_dim and kv_heads·head_dim); None: no q/k norm.
    qk_norm: str | None = None

    @property
    def minimal_names(self) -> tuple[str, ...]:
        """The `minimal` target set: q and v (the LoRA paper's choice), or the fused qkv."""
        return (self.fused_qkv,) if self.fused_qkv else ("q_proj", "v_proj")

    def experts(self, cfg: dict) -> int:
        return int(cfg.get(self.experts_key) or 0) if self.experts_key else 0

    def qk_norm_params(self, heads: int, kv_heads: int, head_dim: int) -> int:
        """The q/k norms' weights in one layer."""
        if self.qk_norm == "head":
            return 2 * head_dim
        if self.qk_norm == "all":
            return (heads + kv_heads) * head_dim
        return 0

    def qk_norm_inputs(self, heads: int, kv_heads: int, head_dim: int) -> int:
        """Elements per token the q/k norms take in one layer (each keeps an fp32 copy for backward)."""
        return (heads + kv_heads) * head_dim if self.qk_norm else 0

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
    # Qwen3Attention: q_norm/k_norm = Qwen3RMSNorm(head_dim) applied to each head after q_proj/k_proj
    Family("qwen3", "models/qwen3/modeling_qwen3.py", qk_norm="head"),
    # Qwen3MoeSparseMoeBlock: a router `gate` and num_experts experts of moe_intermediate_size in every layer
    # (decoder_sparse_step 1, no mlp_only_layers: other layouts are read on the meta device); Qwen3 attention
    Family("qwen3_moe", "models/qwen3_moe/modeling_qwen3_moe.py", qk_norm="head", experts_key="num_experts",
           expert_inter_key="moe_intermediate_size"),
    # Olmo2DecoderLayer: post_attention_layernorm and post_feedforward_layernorm only; Olmo2Attention:
    # q_norm = RMSNorm(heads·head_dim), k_norm = RMSNorm(kv_heads·head_dim) over the whole projection
    Family("olmo2", "models/olmo2/modeling_olmo2.py", qk_norm="all"),
    # Gemma3DecoderLayer: Gemma 2's four RMSNorms; Gemma3Attention: q_norm/k_norm over each head;
    # Gemma3TextConfig ties embeddings and has no final soft-capping by default
    Family("gemma3_text", "models/gemma3/modeling_gemma3.py", norms_per_layer=4, tied_default=True, qk_norm="head"),
    # SmolLM3DecoderLayer: Llama's layer (input and post-attention RMSNorms, attention_bias / mlp_bias from
    # config.json; RoPE left out of some layers changes no weight); SmolLM3Config ties embeddings by default
    Family("smollm3", "models/smollm3/modeling_smollm3.py", tied_default=True),
)}


def analytic_layout(fam: Family, cfg: dict) -> bool:
    """Does config.json describe the layout the family's record covers? A MoE whose dense and sparse
    layers mix (Qwen3-MoE's mlp_only_layers / decoder_sparse_step) is read on the meta device."""
    if fam.expert_inter_key and (cfg.get("mlp_only_layers") or int(cfg.get("decoder_sparse_step") or 1) != 1):
        return False
    return True

# What the estimator assumes for an architecture with no record (read on the meta device):
# a Llama-style decoder (two RMSNorms a layer, no soft-capping). Said in the estimate's assumptions.
GENERIC = Family("generic", "a Llama-style decoder (assumed)")


def family_of(model_type: str) -> Family:
    """The record of `model_type`, or `GENERIC` when there is none."""
    return FAMILIES.get(model_type, GENERIC)


def is_analytic(model_type: str, cfg: dict | None = None) -> bool:
    """Shapes computed from config.json alone (no torch)."""
    return model_type in FAMILIES and (cfg is None or analytic_layout(FAMILIES[model_type], cfg))
