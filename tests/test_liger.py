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
    from rankwise.trainer.loading import kernel_options

    cfg = RunConfig.model_validate({"train": {"kernels": "liger"}})
    with pytest.raises(RankwiseError, match="no kernels for model type phi") as e:
        kernel_options(cfg, "cuda", "phi")
    assert "train.kernels: none" in e.value.hint
    with pytest.raises(RankwiseError, match="liger-kernel package"):  # a type it has kernels for: the next check
        kernel_options(cfg, "cuda", "llama")


@pytest.mark.parametrize("flce,kernels", [(True, "liger"), (False, "liger_layers")])
def test_axolotls_liger_kernels_are_in_the_estimate_with_or_without_its_fused_loss(tmp_path, flce, kernels):
    from rankwise.advisor.foreign import read

    f = tmp_path / "axolotl.yaml"
    f.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: lora\nplugins:\n  - axolotl.integrations.liger.LigerPlugin\n"
                 f"liger_rms_norm: true\nliger_glu_activation: true\nliger_fused_linear_cross_entropy: {str(flce).lower()}\n")
    r = read(f)
    assert r.cfg.train.kernels == kernels and r.cfg.train.loss == "standard"
    assert {s.key for s in r.said if s.code == "not-modelled"} == set()


def test_axolotls_liger_layers_beside_the_cut_cross_entropy_plugin(tmp_path):
    """The common pairing: CCE for the loss, Liger for the norms and SwiGLU (axolotl's Gemma 4 / Qwen3.5 examples)."""
    from rankwise.advisor.foreign import read

    f = tmp_path / "axolotl.yaml"
    f.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: lora\nplugins:\n  - axolotl.integrations.liger.LigerPlugin\n"
                 "  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin\nliger_rms_norm: true\n"
                 "liger_glu_activation: true\n")
    r = read(f)
    assert (r.cfg.train.kernels, r.cfg.train.loss) == ("liger_layers", "cce")
    assert not [s for s in r.said if s.code == "not-modelled"]
    plan = Plan.from_config(r.cfg)
    assert plan.liger and plan.loss == "fused"  # CCE holds no logits either (plan.CONFIG_LOSS)


def test_liger_layers_keeps_the_configured_loss_and_saves_what_liger_does():
    spec = load_model("llama-3.1-8b")
    runs = {k: Plan.from_config(RunConfig.model_validate({"train": {"kernels": k, "grad_checkpointing": False}}))
            for k in ("none", "liger", "liger_layers")}
    assert (runs["liger_layers"].liger, runs["liger_layers"].loss) == (True, "standard")
    none, layers, liger = (estimate(spec, runs[k]) for k in ("none", "liger_layers", "liger"))
    assert layers.components["activations"] < none.components["activations"]  # Liger's norms and SwiGLU
    assert layers.transients["logits_loss"] == none.transients["logits_loss"] > liger.transients["logits_loss"]


def test_liger_layers_turns_off_liger_s_losses_in_the_trainer_and_goes_with_any_loss():
    from rankwise.trainer.loading import kernel_options, liger_config

    layers = RunConfig.model_validate({"train": {"kernels": "liger_layers", "loss": "cce"}})
    assert liger_config(layers) == {"fused_linear_cross_entropy": False, "cross_entropy": False}
    assert liger_config(RunConfig.model_validate({"train": {"kernels": "liger"}})) is None
    with pytest.raises(ValueError, match="train.kernels: liger_layers"):
        RunConfig.model_validate({"train": {"kernels": "liger", "loss": "cce"}})
    with pytest.raises(RankwiseError, match="train.kernels liger_layers needs"):  # GPU-only, as liger: exit 2 here
        kernel_options(RunConfig.model_validate({"train": {"kernels": "liger_layers"}}), "cpu", "llama")


def test_llamafactory_liger_outside_sft_keeps_the_logits(tmp_path):
    """model/loader.py: apply_liger_kernel(require_logits=stage not in (pt, sft))."""
    from rankwise.advisor.foreign import read

    for stage, kernels in (("sft", "liger"), ("dpo", "liger_layers")):
        f = tmp_path / f"{stage}.yaml"
        f.write_text(f"model_name_or_path: llama-3.2-1b\nfinetuning_type: lora\nstage: {stage}\nenable_liger_kernel: true\n")
        assert read(f).cfg.train.kernels == kernels


def test_liger_layers_on_a_model_liger_cannot_patch_keeps_the_cut_cross_entropy_loss():
    """Nothing of Liger runs there, but the loss is train.loss's: CCE's holds no logits either way."""
    spec = load_model("microsoft/phi-2")
    cfg = {"model": {"name": "microsoft/phi-2"}, "train": {"loss": "cce"}}
    cce, both = (estimate(spec, Plan.from_config(RunConfig.model_validate(
        {**cfg, "train": {**cfg["train"], "kernels": k}}))) for k in ("none", "liger_layers"))
    assert both.peak_bytes == cce.peak_bytes


@pytest.mark.parametrize("model, note", [("meta-llama/Llama-3.1-8B", "Liger has no LayerNorm to patch"),
                                         ("google/gemma-3-12b-it", "Liger's LayerNorm goes to the vision")])
def test_axolotls_liger_layer_norm_changes_nothing_the_estimate_counts(tmp_path, model, note):
    from rankwise.advisor.foreign import read
    from rankwise.advisor.foreign.report import judge
    from rankwise.advisor.hardware import planned

    f = tmp_path / "axolotl.yaml"
    f.write_text(f"base_model: {model}\nadapter: lora\nplugins:\n  - axolotl.integrations.liger.LigerPlugin\n"
                 "liger_layer_norm: true\n")
    reading = read(f)
    judge(reading, planned(gpu="H100"))
    assert not any(s.key == "liger_layer_norm" for s in reading.said)
    assert any(n.startswith(f"liger_layer_norm: {note}") for n in reading.notes)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["google/gemma-3-4b-it", "meta-llama/Llama-3.2-11B-Vision", "Qwen/Qwen2-VL-7B",
                                   "meta-llama/Llama-4-Scout-17B-16E", "google/gemma-4-E2B"])
def test_the_layer_norms_liger_patches_are_in_the_towers_not_the_language_model(model):
    """The note above says so: built on the meta device, every nn.LayerNorm of these model types (Liger's
    LAYER_NORM_TYPES) sits in a vision or audio tower, outside the layers the estimate counts."""
    import torch
    from transformers import AutoConfig

    from rankwise.advisor.liger import LAYER_NORM_TYPES
    from rankwise.advisor.meta import _in_tower, _model_class
    from rankwise.advisor.model_index import lookup

    cfg = {k: v for k, v in lookup(model).config.items() if k != "auto_map"}
    assert cfg["model_type"] in LAYER_NORM_TYPES
    first, fallback = _model_class(cfg)
    with torch.device("meta"):
        try:
            built = first.from_config(AutoConfig.for_model(**cfg))
        except ValueError:
            built = fallback.from_config(AutoConfig.for_model(**cfg))
    norms = [n for n, m in built.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms, "Liger's layer_norm would patch nothing here"
    assert [n for n in norms if not _in_tower(n)] == []
