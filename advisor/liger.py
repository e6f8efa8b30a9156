"""What Liger's kernels (train.kernels: liger; the HF Trainer's use_liger_kernel) change, as data.

The HF Trainer patches a model through liger_kernel.transformers `_apply_liger_kernel_to_instance`, which looks the
config's model_type up in MODEL_TYPE_TO_APPLY_LIGER_FN and, for a type not there, logs "There are currently no Liger
kernels supported for model type" and patches nothing (linkedin/Liger-Kernel @ead96b6,
src/liger_kernel/transformers/monkey_patch.py). The types below are that table's keys.

Per decoder layer, with the defaults of those apply functions (rms_norm, swiglu, rope and
fused_linear_cross_entropy on): LigerRMSNormFunction saves its input (a view, in the stream's dtype) and one fp32
reciprocal RMS per row (`ctx.save_for_backward(X, W, RSTD)`, ops/rms_norm.py), where transformers' RMSNorm keeps an
fp32 copy of its input; LigerSiLUMulFunction saves the gate and up projections only (`ctx.save_for_backward(a, b)`,
ops/swiglu.py) and recomputes SiLU in backward, where transformers' act(gate) * up also keeps act(gate). RoPE's
kernel saves nothing beyond what the attention saves either way. The loss is the fused linear cross-entropy
(activations.fused_loss_bytes).
"""
from __future__ import annotations

MODEL_TYPES = frozenset({
    "deepseek_v4", "gemma", "gemma2", "gemma3_text", "gemma3", "gemma4_text", "gemma4", "glm4", "glm4v", "glm4v_moe",
    "gpt_oss", "internvl", "llama", "llama4_text", "llama4", "llava", "granite", "mllama", "mllama_text_model",
    "ministral", "mistral", "mixtral", "nemotron", "olmo2", "pixtral", "olmo3", "qwen2", "qwen3", "qwen3_moe",
    "qwen2_vl", "qwen2_vl_text", "qwen2_5_vl", "qwen2_5_vl_text", "qwen3_next", "qwen3_5", "qwen3_5_text",
    "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_vl", "qwen3_vl_text", "qwen3_vl_moe", "qwen3_vl_moe_text", "smollm3",
    "phi3", "paligemma", "falcon_h1", "smolvlm", "hunyuan_v1_dense", "hunyuan_v1_moe", "exaone4",
})


# the model types whose apply function takes `layer_norm` (Liger's LayerNorm: vision towers, Llama 4, Gemma 3/4,
# ...; monkey_patch.py @ead96b6): axolotl's LigerPlugin passes liger_layer_norm only to those, so elsewhere it does
# nothing (their decoders' norms are RMSNorm)
LAYER_NORM_TYPES = frozenset({
    "gemma3", "gemma4", "internvl", "llama4_text", "llama4", "mllama", "mllama_text_model", "qwen2_vl", "qwen2_vl_text",
    "paligemma", "smolvlm",
})


def supports(model_type: str | None) -> bool:
    return model_type in MODEL_TYPES


def unsupported(model_type: str | None) -> str:
    """Why train.kernels liger does nothing for this model (said by estimate, refused by train)."""
    return (f"Liger has no kernels for model type {model_type or '(none)'}: the HF Trainer's integration leaves it "
            "unpatched (liger_kernel MODEL_TYPE_TO_APPLY_LIGER_FN)")
