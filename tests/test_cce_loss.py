"""train.loss: cce (trainer/cce_loss.py): the causal LM's forward with Cut Cross-Entropy's loss gives transformers'
loss and gradients; the estimate holds no logits for it; axolotl's CutCrossEntropyPlugin maps to it; a machine
without the package or a GPU is told so (exit 2); and a real run, with CCE's own definition standing in for its
Triton kernels on the CPU (the one thing this machine cannot have), trains with the standard run's losses."""
import json
import subprocess
import sys

import pytest
import torch
from peft import LoraConfig, get_peft_model
from train_helpers import events, of_type, only_run, tail_log, train
from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import read
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model
from rankwise.trainer.cce_loss import REFERENCE_ENV, reference_loss, use_cce


def _model(kind="llama", tie=False):
    torch.manual_seed(0)
    if kind == "gemma2":  # a final logit softcap: the loss must apply it
        cfg = Gemma2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=97, final_logit_softcapping=5.0)
        return Gemma2ForCausalLM(cfg)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=97, tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg)


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 97, (3, 11), generator=g)
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt's tokens, not supervised
    labels[2, -2:] = -100
    return ids, labels


def _lora(model):
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))


@pytest.mark.parametrize("kind,tie", [("llama", False), ("llama", True), ("gemma2", False)])
@pytest.mark.parametrize("items", [None, 17])
def test_the_loss_and_the_adapter_gradients_are_transformers(kind, tie, items):
    """The same model, weights and batch: the patched forward's loss and every LoRA gradient equal the standard
    forward's (loss from the logits, divided by num_items_in_batch when the Trainer passes it, else by the
    supervised tokens), and it returns no logits."""
    ids, labels = _batch()
    kwargs = {} if items is None else {"num_items_in_batch": torch.tensor(items)}
    results = []
    for cce in (False, True):
        model = _lora(_model(kind, tie))
        if cce:
            use_cce(model.get_base_model(), loss=reference_loss)
        out = model(input_ids=ids, labels=labels, **kwargs)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((out, grads))
    (std, g_std), (cce, g_cce) = results
    assert cce.logits is None and std.logits is not None
    assert cce.loss.item() == pytest.approx(std.loss.item(), rel=1e-5)
    assert g_cce.keys() == g_std.keys() and len(g_std) == 12
    for name in g_std:
        assert torch.allclose(g_cce[name], g_std[name], rtol=1e-4, atol=1e-6), name


def test_without_labels_the_model_runs_as_before():
    model = _lora(_model())
    ids, _ = _batch()
    before = model(input_ids=ids).logits
    use_cce(model.get_base_model(), loss=reference_loss)
    assert torch.equal(model(input_ids=ids).logits, before)


@pytest.mark.parametrize("lora", [dict(target_modules=["q_proj", "lm_head"]),
                                  dict(target_modules=["q_proj"], modules_to_save=["lm_head"])])
def test_a_head_that_trains_is_refused(lora):
    """CCE reads the head's weight: a LoRA on lm_head or a trained copy of it would be left out of the loss."""
    model = get_peft_model(_model(), LoraConfig(r=4, **lora))
    with pytest.raises(RankwiseError, match="lm_head"):
        use_cce(model.get_base_model(), loss=reference_loss)


def test_the_estimate_holds_no_logits_for_it_and_the_flag_writes_it_down():
    spec = load_model("llama-3.1-8b")
    cfg = RunConfig.model_validate({"model": {"name": "llama-3.1-8b"}, "train": {"loss": "cce", "max_seq_len": 8192}})
    plan = Plan.from_config(cfg)
    est, std = estimate(spec, plan), estimate(spec, Plan("lora", seq_len=8192))
    assert plan.loss == "fused" and est.components["logits_loss"] == 0
    assert est.peak_bytes < std.peak_bytes - 2 * 2 ** 30  # 8192 x 128,256 logits: several GiB not held
    base = [sys.executable, "-m", "rankwise.tui.cli", "estimate", "--model", "llama-3.1-8b", "--seq", "8192",
            "--gpu-mem", "80GiB", "--json"]
    d = json.loads(subprocess.run(base + ["--loss", "cce"], capture_output=True, text=True, timeout=120).stdout)
    assert d["plan"]["loss"] == "fused" and d["peak_bytes"] == est.peak_bytes
    with pytest.raises(ValueError, match="fused already"):
        RunConfig.model_validate({"train": {"loss": "cce", "kernels": "liger"}})
    with pytest.raises(ValueError, match="ZeRO-3 keeps it partitioned"):  # the head's weight is read directly
        RunConfig.model_validate({"train": {"loss": "cce"}, "distributed": {"gpus": 2, "strategy": "deepspeed"}})


@pytest.mark.parametrize("extra,loss", [("", "cce"), ("cut_cross_entropy: true\n", "cce"),
                                        ("cut_cross_entropy: false\n", "standard"),
                                        ("liger_fused_linear_cross_entropy: true\n", "standard"),
                                        ("deepspeed: deepspeed_configs/zero3_bf16.json\n", "standard")])
def test_axolotls_cut_cross_entropy_plugin_maps_to_it(tmp_path, extra, loss):
    """The plugin turns CCE on unless `cut_cross_entropy: false` (axolotl's CutCrossEntropyArgs default True). It was
    said as "not modelled" and estimated with the whole logits; beside Liger's fused loss, one fused loss is counted."""
    f = tmp_path / "axolotl.yaml"
    f.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: lora\nsequence_len: 4096\nbf16: true\n"
                 "plugins:\n  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin\n" + extra)
    r = read(f)
    assert r.cfg.train.loss == loss
    # said only where rankwise cannot express it (under DeepSpeed, whose ZeRO-3 partitions the head)
    assert any(s.code == "not-modelled" and "Cut Cross" in s.message for s in r.said) == ("deepspeed" in extra)
    if loss == "cce":
        assert r.origin["train.loss"] == "plugins"


def test_a_machine_without_the_package_or_a_gpu_is_told_before_anything_loads(tmp_path):
    p = train(tmp_path / "runs", "--set", "train.loss=cce")
    assert p.returncode == 2, p.stderr[-2000:]
    assert "train.loss cce" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_a_run_with_cce_trains_with_the_standard_losses(tmp_path):
    """The demo preset, seed and data: with CCE's definition in place of its kernels (REFERENCE_ENV), the run logs
    the standard run's losses, evaluates, and finishes."""
    logged = {}
    for loss in ("standard", "cce"):
        runs = tmp_path / loss
        p = train(runs, "--set", f"train.loss={loss}", extra_env={REFERENCE_ENV: "1"} if loss == "cce" else None)
        run = only_run(runs)
        assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
        evs = events(run)
        logged[loss] = [e["loss"] for e in of_type(evs, "step") if e.get("loss") is not None]
        assert of_type(evs, "end")[-1]["status"] == "finished"
        logged[loss + "-eval"] = [e["eval_loss"] for e in of_type(evs, "eval")]
    assert len(logged["cce"]) == len(logged["standard"]) >= 3
    assert logged["cce"] == pytest.approx(logged["standard"], rel=1e-3)
    assert logged["cce-eval"] and logged["cce-eval"] == pytest.approx(logged["standard-eval"], rel=1e-3)
