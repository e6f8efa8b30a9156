"""train.kernels liger as the HF Trainer applies it (advisor/liger.py): on a model type Liger has kernels for, its
RMSNorm and SwiGLU save less and its loss is fused; on one it has none for, the Trainer patches nothing, so the
estimate is transformers' and `rankwise train` refuses the option before anything loads."""
import pytest

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.liger import MODEL_TYPES
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model


def test_liger_saves_the_norms_fp32_copies_and_one_swiglu_tensor_per_layer():
    """Llama-3.1-8B LoRA (bf16 stream) without checkpointing, 1 x 1024 tokens: per layer and token, two RMSNorms
    keep their 2-byte input and a 4-byte RMS instead of a 4-byte copy (2 x (4h - 2h - 4)), and SwiGLU keeps gate and
    up, not act(gate) (2 x 14,336); the loss is the fused one either way."""
    spec = load_model("llama-3.1-8b")
    base = dict(seq_len=1024, grad_checkpointing=False, loss="fused")
    liger, fused = estimate(spec, Plan("lora", liger=True, **base)), estimate(spec, Plan("lora", **base))
    h, per_layer = spec.hidden_size, 2 * (4 * spec.hidden_size - (2 * spec.hidden_size + 4)) + 2 * 14336
    assert fused.components["activations"] - liger.components["activations"] == 1024 * 32 * per_layer
    assert liger.transients["logits_loss"] == fused.transients["logits_loss"] > 0


def test_a_model_type_liger_has_no_kernels_for_is_estimated_as_transformers_and_said():
    spec = load_model("microsoft/phi-2")
    assert spec.config["model_type"] not in MODEL_TYPES
    cfg = RunConfig.model_validate({"model": {"name": "microsoft/phi-2"}, "train": {"kernels": "liger"}})
    est, std = estimate(spec, Plan.from_config(cfg)), estimate(spec, Plan("lora"))
    assert est.peak_bytes == std.peak_bytes and est.components["logits_loss"] > 0
    assert any("Liger has no kernels for model type phi" in a for a in est.assumptions)


def test_train_refuses_liger_on_such_a_model_before_the_package_check():
    from rankwise.trainer.worker import kernel_options

    cfg = RunConfig.model_validate({"train": {"kernels": "liger"}})
    with pytest.raises(RankwiseError, match="no kernels for model type phi") as e:
        kernel_options(cfg, "cuda", "phi")
    assert "train.kernels: none" in e.value.hint
    with pytest.raises(RankwiseError, match="liger-kernel package"):  # a type it has kernels for: the next check
        kernel_options(cfg, "cuda", "llama")


@pytest.mark.parametrize("flce,said", [(True, set()), (False, {"plugins", "liger_rms_norm", "liger_glu_activation"})])
def test_axolotls_liger_kernels_are_in_the_estimate_once_its_fused_loss_is(tmp_path, flce, said):
    from rankwise.advisor.foreign import read

    f = tmp_path / "axolotl.yaml"
    f.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: lora\nplugins:\n  - axolotl.integrations.liger.LigerPlugin\n"
                 f"liger_rms_norm: true\nliger_glu_activation: true\nliger_fused_linear_cross_entropy: {str(flce).lower()}\n")
    r = read(f)
    assert r.cfg.train.kernels == ("liger" if flce else "none")
    assert {s.key for s in r.said if s.code == "not-modelled"} == said
