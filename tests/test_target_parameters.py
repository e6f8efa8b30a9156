"""lora.target_parameters: LoRA on transformers 5's fused MoE expert tensors (peft ParamWrapper), estimated as peft
builds it and trained with real peft on a tiny Mixtral on the CPU."""
import json
import re

import pytest
import torch
from moe_helpers import FUSED as EXPERTS
from moe_helpers import saved_bytes, tiny_mixtral_config, tiny_mixtral_folder, tiny_mixtral_spec
from peft import LoraConfig, get_peft_model
from train_helpers import events, of_type, only_run, train
from transformers import MixtralForCausalLM

from rankwise.advisor.activations import built_expert_bytes
from rankwise.advisor.config import RunConfig
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import load_model


@pytest.mark.parametrize("r", [4, 8])
def test_the_adapted_experts_saved_for_backward_are_what_the_estimate_counts(r):
    """peft folds B·A into each expert tensor every forward and transformers' grouped_mm experts keep the built
    tensor; the expert matmuls keep their inputs. Measured as the difference the parameters make."""
    cfg = tiny_mixtral_config()
    spec = tiny_mixtral_spec(cfg)
    batch, seq = 2, 16
    ids = torch.randint(0, 262, (batch, seq), generator=torch.Generator().manual_seed(0))
    measured = {}
    for tp in ((), EXPERTS):
        torch.manual_seed(0)
        base = MixtralForCausalLM(cfg).to(torch.bfloat16)
        base.set_experts_implementation("grouped_mm")  # what from_pretrained picks (transformers 5.25)
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=["q_proj"],
                                                target_parameters=list(tp) or None))  # fp32 adapters, as trained
        measured[tp] = saved_bytes(model, lambda: model(input_ids=ids))
    plan = Plan("lora", r=r, lora_dropout=False, target_parameters=EXPERTS)
    per_token, per_layer = built_expert_bytes(spec, plan, spec.resolve_parameters(EXPERTS))
    expected = spec.num_layers * (per_layer + batch * seq * per_token)
    built = sum(p.numel() for n, p in base.named_parameters() if ".experts." in n and "lora_" not in n) * 2
    assert per_layer * spec.num_layers > built  # the built tensors, and the adapter's 16-bit copies
    assert measured[EXPERTS] - measured[()] == expected, (measured, expected)


def test_the_estimate_adds_the_adapter_the_built_weights_and_their_work():
    spec = load_model("mixtral-8x7b")
    plain, tp = (estimate(spec, Plan("lora", r=8, targets="standard", lora_dropout=False, target_parameters=t))
                 for t in ((), EXPERTS))
    experts = [l for l in spec.linears if l.name in EXPERTS]
    assert tp.trainable_params - plain.trainable_params == sum(l.count * 8 * (l.d_in + l.d_out) for l in experts)
    layer = sum(l.count * l.d_in * l.d_out for l in experts) * 2 // spec.num_layers  # one layer's experts, 16-bit
    # under checkpointing one layer's built experts sit in the recompute; without, every layer's
    no_ckpt = [estimate(spec, Plan("lora", r=8, targets="standard", lora_dropout=False, grad_checkpointing=False,
                                   target_parameters=t)) for t in ((), EXPERTS)]
    grown = no_ckpt[1].components["activations"] - no_ckpt[0].components["activations"]
    copies = sum(l.count * 8 * (l.d_in + l.d_out) for l in experts) * 2  # fp32 A and B cast to 16-bit for the fold
    inputs = 2048 * spec.num_layers * 2 * (4096 + 14336) * 2  # each token at 2 experts: gate_up's and down's inputs
    assert grown == spec.num_layers * layer + copies + inputs
    assert tp.components["activations"] + tp.components["logits_loss"] > plain.components["activations"] + layer
    assert any("lora.target_parameters" in a and "one layer at a time" in a for a in tp.assumptions)


def test_the_step_time_grows_by_the_fold_and_the_expert_weight_gradients():
    from rankwise.advisor import fit
    from rankwise.advisor.hardware import planned
    from rankwise.advisor.speeds import Device
    from rankwise.advisor.time import micro_batch_seconds

    spec, hw = load_model("mixtral-8x7b"), planned(gpu="H100", gpus=2)
    parts = []
    for tp in ([], list(EXPERTS)):
        cfg = RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, "method": "lora",
                                        "lora": {"dropout": 0.0, "target_parameters": tp}})
        judged = fit.assess(spec, cfg, hw)
        parts.append(micro_batch_seconds(spec, judged, Device.of(hw), 2048))
    assert parts[1]["memory"] > parts[0]["memory"] and parts[1]["compute"] > parts[0]["compute"]


def test_names_are_matched_as_peft_matches_them_and_a_wrong_one_is_refused():
    spec = load_model("mixtral-8x7b")
    assert [l.name for l in spec.resolve_parameters(["mlp.experts.gate_up_proj", "down_proj"])] == list(EXPERTS)
    with pytest.raises(RankwiseError) as e:
        spec.resolve_parameters(["experts.w1"])
    assert "experts.gate_up_proj" in e.value.hint
    with pytest.raises(RankwiseError) as e:
        spec.resolve_parameters(["q_proj.weight"])
    assert "lora.target_modules" in e.value.hint
    with pytest.raises(RankwiseError) as e:
        load_model("llama-3.1-8b").resolve_parameters(["experts.gate_up_proj"])
    assert "no fused expert tensors" in e.value.hint


@pytest.mark.parametrize("lora, said", [({"dropout": 0.05}, "set lora.dropout: 0"),
                                         ({"dropout": 0.0, "init": "pissa"}, "set lora.init: default")])
def test_settings_peft_refuses_are_refused_in_the_config(lora, said):
    with pytest.raises(ValueError) as e:
        RunConfig.model_validate({"lora": {"target_parameters": list(EXPERTS), **lora}})
    assert said in str(e.value)


def test_dora_on_adapted_parameters_is_refused():
    with pytest.raises(RankwiseError) as e:
        estimate(load_model("mixtral-8x7b"), Plan("dora", lora_dropout=False, target_parameters=EXPERTS))
    assert "no DoRA" in e.value.message


def test_check_names_a_parameter_the_model_lacks(tmp_path):
    from rankwise.advisor import redflags

    cfg = RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, "method": "lora",
                                    "lora": {"dropout": 0, "target_parameters": ["experts.w9"]}})
    (f,) = [f for f in redflags.check(cfg, load_model("mixtral-8x7b"), None) if f.code == "unknown-target-module"]
    assert f.severity == "error" and "experts.w9" in f.message
    assert f.patch == {"lora.target_parameters": list(EXPERTS)}


@pytest.mark.slow
@pytest.mark.parametrize("preset, checkpointing", [("demo-cpu", "false"), ("demo-cpu-qlora", "true")])
def test_train_adapts_the_experts_and_the_adapter_holds_them(tmp_path, preset, checkpointing):
    """LoRA (no checkpointing) and QLoRA (the experts stay unquantized beside 4-bit attention; checkpointing
    recomputes the fold in backward)."""
    folder = tiny_mixtral_folder(tmp_path)
    runs = tmp_path / "runs"
    p = train(runs, "--set", f"model.name={folder}", "--set", "lora.dropout=0",
              "--set", "lora.target_parameters=[experts.gate_up_proj,experts.down_proj]",
              "--set", f"train.grad_checkpointing={checkpointing}",
              "--set", "train.max_steps=6", "--set", "train.save_steps=6", preset=preset)
    assert p.returncode == 0, p.stderr
    run = only_run(runs)
    evs = events(run)
    losses = [e["loss"] for e in of_type(evs, "step") if e.get("loss") is not None]
    assert losses and all(loss == loss for loss in losses)  # finite
    spec = tiny_mixtral_spec(tiny_mixtral_config())
    expected = sum(l.count * 16 * (l.d_in + l.d_out) for l in spec.resolve_targets("all-linear")
                   + spec.resolve_parameters(EXPERTS))
    said = re.search(r"trainable params: ([\d,]+)", (run / "train.log").read_text())  # peft's own count
    assert said and int(said.group(1).replace(",", "")) == expected  # what the estimate counts is what peft trains
    adapter = json.loads(next(run.rglob("adapter_config.json")).read_text())
    assert sorted(adapter["target_parameters"]) == sorted(EXPERTS)
    from safetensors import safe_open

    with safe_open(str(run / "adapter" / "adapter_model.safetensors"), "pt") as f:
        learned = [f.get_tensor(k).abs().max().item() for k in f.keys() if "experts" in k and "lora_B" in k]
    assert len(learned) == 2 * spec.num_layers and min(learned) > 0  # each expert tensor's B moved off zero
    # peft's ParamWrapper adapters are watched with the linears': every one got its gradient
    (use,) = of_type(evs, "adapters")
    assert use["unused"] == {} and use["adapters"] == len(learned) + sum(
        l.count for l in spec.resolve_targets("all-linear"))
    if preset != "demo-cpu":
        return
    # merged: W + B·A folded into each expert tensor, the same logits as the adapter on its base
    import subprocess

    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from train_helpers import CLI, env

    merge = subprocess.run(CLI + ["merge", run.name, "--runs-dir", str(runs)], capture_output=True, text=True,
                           env=env(), timeout=300)
    assert merge.returncode == 0, merge.stderr
    ids = torch.randint(3, 262, (1, 12), generator=torch.Generator().manual_seed(1))
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), run / "adapter")
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-4)


def test_axolotl_lora_target_parameters_is_read_and_estimated(tmp_path):
    """axolotl passes lora_target_parameters to peft as target_parameters (loaders/adapter.py); its schema refuses
    dropout beside it, as rankwise does."""
    from rankwise.advisor.foreign import read

    path = tmp_path / "axolotl.yaml"
    text = ("base_model: mistralai/Mixtral-8x7B-v0.1\nadapter: lora\nlora_r: 8\nlora_alpha: 16\n"
            "lora_target_modules: [q_proj, v_proj]\nlora_target_parameters:\n  - mlp.experts.gate_up_proj\n"
            "  - mlp.experts.down_proj\nsequence_len: 1024\nmicro_batch_size: 1\n")
    path.write_text(text)
    reading = read(path)
    assert reading.cfg.lora.target_parameters == ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    assert reading.cfg.lora.dropout == 0  # axolotl's default
    assert not [s for s in reading.said if "lora_target_parameters" in s.key]  # no longer "not modelled"
    path.write_text(text + "lora_dropout: 0.05\n")
    with pytest.raises(RankwiseError) as e:
        read(path)
    assert "lora_target_parameters with lora_dropout 0.05" in e.value.message and "set lora_dropout: 0" in e.value.message


def test_sharded_strategies_are_refused_with_adapted_parameters(tmp_path):
    """FSDP v1 hands ParamWrapper flattened views (its first step fails, tried on the CPU); train refuses before
    loading, check says so, DDP is the fix."""
    from rankwise.advisor import redflags
    from rankwise.advisor.hardware import planned

    cfg = RunConfig.model_validate({"model": {"name": "mixtral-8x7b"}, "method": "lora",
                                    "lora": {"dropout": 0, "target_parameters": list(EXPERTS)},
                                    "distributed": {"gpus": 4, "strategy": "fsdp"}})
    (f,) = [f for f in redflags.check(cfg, load_model("mixtral-8x7b"), planned(gpu="H100", gpus=4))
            if f.code == "distributed-setting"]
    assert f.severity == "error" and "ParamWrapper" in f.message and f.patch == {"distributed.strategy": "ddp"}
    assert f.code in redflags.UNFORCEABLE


@pytest.mark.parametrize("gpu, gpus, adapted, said", [
    ("H200", 1, True, "the MoE's MLP weights"),  # one copy with the experts' adapter fits
    ("H100", 2, False, "would need FSDP"),  # only FSDP fits: peft's wrapper does not run there
    ("RTX4090", 1, False, "nothing fits"),
])
def test_advise_adapts_the_experts_where_they_can_train_and_says_why_not_elsewhere(gpu, gpus, adapted, said):
    from rankwise.advisor import redflags
    from rankwise.advisor.hardware import planned
    from rankwise.advisor.recommend import advise

    spec, hw = load_model("mixtral-8x7b"), planned(gpu=gpu, gpus=gpus)
    a = advise(spec, hw, "chat", dataset_rows=5000)
    assert (a.config.lora.target_parameters == list(EXPERTS)) is adapted
    assert a.config.lora.dropout == (0.0 if adapted else 0.05)  # peft allows none beside adapted parameters
    assert said in a.reasons["lora.target_parameters"]
    assert "peft-target-parameters" in a.citations["lora.target_parameters"]
    assert not [f for f in redflags.check(a.config, spec, hw) if f.code == "distributed-setting"]
    if adapted:  # the trainable count in the rank's reason includes the experts' adapter
        assert a.estimate.trainable_params == spec.lora_params("all-linear", a.config.lora.r, EXPERTS)


def test_a_budget_below_the_experts_adapter_keeps_them_frozen():
    from rankwise.advisor.hardware import planned
    from rankwise.advisor.recommend import advise

    a = advise(load_model("mixtral-8x7b"), planned(gpu="H200"), "chat", budget=3_000_000)
    assert a.config.lora.target_parameters == [] and "beyond the 3M budget" in a.reasons["lora.target_parameters"]
    assert a.estimate.trainable_params <= 3_000_000


def test_advise_shows_the_expert_tensors_by_name(capsys):
    from rankwise.tui.cli import main

    assert main(["advise", "--model", "mixtral-8x7b", "--gpu", "H200", "--task", "chat"]) == 0
    out = capsys.readouterr().out
    assert "experts.gate_up_proj," in out and "['experts" not in out  # the names, not a Python list
