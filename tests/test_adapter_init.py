"""lora.init (PiSSA, OLoRA, LoftQ, EVA) and LoRA+: estimated, refused where peft cannot start them, mapped
from axolotl / LLaMA-Factory, and trained on the CPU with the shipped tiny model."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from train_helpers import CLI, env, events, of_type, only_run, tail_log, train

from rankwise.advisor import adapter_init, fit, speeds, time as planner
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.foreign import read
from rankwise.advisor.hardware import planned
from rankwise.advisor.memory import GIB, Plan, estimate
from rankwise.advisor.model import load_model

TINY = Path(__file__).resolve().parent.parent / "presets" / "assets" / "tiny-llama"


def _est(init="default", iters=None, model="llama-3.1-8b", **kw):
    spec = load_model(model)
    return spec, estimate(spec, Plan(kw.pop("method", "lora"), init=init, init_iters=iters, **kw))


# ------------------------------------------------------------------ the estimate


def test_pissa_holds_the_largest_linears_svd_temporaries_at_start_up():
    spec, est = _est("pissa", targets="standard")
    m = n = spec.hidden_size  # q_proj / o_proj: 4096 x 4096, the largest of q, k, v, o on Llama 3.1 8B
    tmp = 12 * m * n + 4 * n * (m + n)  # fp32 W, U and Vt, B·A, W − s·B·A (peft pissa_init)
    resident = sum(est.components[k] for k in ("base_weights", "lora_params", "cuda_context"))
    assert est.transients["adapter_init"] == resident + tmp
    assert any("PiSSA start-up" in a and f"{tmp / GIB:.2f} GiB" in a for a in est.assumptions)
    assert est.init_flops == sum(l.count * (6 * max(l.d_in, l.d_out) * min(l.d_in, l.d_out) ** 2
                                            + 20 * min(l.d_in, l.d_out) ** 3)
                                 for l in spec.resolve_targets("standard"))


def test_fast_svd_and_qr_cost_less_than_the_exact_svd_and_default_costs_nothing():
    exact, fast, qr, default = (_est(i, it)[1] for i, it in (("pissa", None), ("pissa", 4), ("olora", None),
                                                            ("default", None)))
    assert fast.init_flops < qr.init_flops < exact.init_flops
    assert fast.transients["adapter_init"] < exact.transients["adapter_init"]
    assert qr.transients["adapter_init"] < exact.transients["adapter_init"]
    assert default.init_flops == 0 and default.transients["adapter_init"] == 0
    assert exact.peak_bytes == default.peak_bytes  # below the training peak here: the peak is unchanged


def test_loftq_on_a_16bit_base_rounds_in_place_and_on_a_4bit_base_reads_the_safetensors():
    spec, lora = _est("loftq")
    _, qlora = _est("loftq", method="qlora")
    m = n = spec.hidden_size
    assert lora.transients["adapter_init"] - sum(lora.components[k] for k in ("base_weights", "lora_params",
                                                                             "cuda_context")) \
        == 16 * m * n + m * n // 2 + 4 * n * (m + n)
    assert any("adapter is for the 4-bit base" in a for a in lora.assumptions)
    assert any("replace_lora_weights_loftq" in a for a in qlora.assumptions)


def test_start_up_sets_the_peak_when_it_is_above_training():
    """A short sequence without much activation: the exact SVD of the largest MLP linear sets the peak."""
    _, est = _est("pissa", targets="all-linear", seq_len=16)
    _, base = _est("default", targets="all-linear", seq_len=16)
    assert est.components["adapter_init"] > 0 and "adapter_init" not in base.components
    assert sum(est.components.values()) == est.peak_bytes == est.transients["adapter_init"]
    # max_memory_allocated over the run reads the start-up too: everything but the CUDA context
    assert est.allocated_bytes == est.transients["adapter_init"] - est.components["cuda_context"] > base.allocated_bytes


def test_the_planner_adds_the_factorisation_to_setup():
    spec = load_model("llama-3.1-8b")
    hw = planned(gpu="A100-80GB")
    times = {}
    for init in ("default", "pissa"):
        cfg = with_values(RunConfig(), {"model.name": "llama-3.1-8b", "method": "lora", "lora.init": init,
                                         "train.max_steps": 10})
        judged = fit.assess(spec, cfg, hw)
        times[init] = (planner.plan_time(spec, cfg, judged, hw), judged.estimate.init_flops)
    (base, _), (pissa, flops) = times["default"], times["pissa"]
    dev = speeds.Device.of(hw)
    extra = adapter_init.start_up_seconds(flops, dev.tflops, dev.stack.efficiency, True)
    assert extra > 0 and pissa.setup_s == pytest.approx(base.setup_s + extra)
    assert pissa.step_s == base.step_s  # training itself is unchanged
    assert any("lora.init pissa" in a for a in pissa.assumptions)


@pytest.mark.parametrize("method,init,extra,cuda,needs", [
    ("qlora", "pissa", {}, None, "refuses quantized"),
    ("lora-8bit", "pissa", {}, None, "refuses quantized"),
    ("lora-8bit", "loftq", {}, None, "not on this base"),
    ("dora", "loftq", {}, None, "not on this base"),
    ("qlora", "loftq", {}, False, "CUDA GPU"),
    ("qlora", "loftq", {"strategy": "fsdp", "gpus": 2}, True, "FSDP/ZeRO-3"),
    ("lora", "olora", {"init_iters": 4}, None, "init_iters"),
])
def test_what_peft_cannot_start_is_refused_with_the_fix(method, init, extra, cuda, needs):
    with pytest.raises(RankwiseError) as e:
        adapter_init.check(Plan(method, init=init, **extra), cuda=cuda)
    assert needs in e.value.message and e.value.hint


@pytest.mark.parametrize("method,init", [("lora", "pissa"), ("qlora", "olora"), ("qlora", "eva"), ("qlora", "loftq"),
                                         ("lora", "loftq")])
def test_what_peft_can_start_passes(method, init):
    adapter_init.check(Plan(method, init=init), cuda=True)


def test_estimate_exits_2_on_pissa_over_a_4bit_base():
    proc = subprocess.run(CLI + ["estimate", "--method", "qlora", "--init", "pissa"], capture_output=True, text=True,
                          env=env(), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = " ".join(proc.stderr.split())
    assert "lora.init pissa" in err and "lora.init: loftq" in err


def test_estimate_json_carries_the_start_up_as_a_transient_and_a_note():
    proc = subprocess.run(CLI + ["estimate", "--init", "pissa", "--init-iters", "4", "--json"], capture_output=True,
                          text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["plan"]["init"] == "pissa" and out["plan"]["init_iters"] == 4
    assert any("fast SVD (4 iterations" in a for a in out["assumptions"])
    assert any("lora.init pissa" in a for a in out["time"]["assumptions"])


# ------------------------------------------------------------------ other tools' keys


@pytest.mark.parametrize("text,init,iters,ratio", [
    ("base_model: llama-3.1-8b\nadapter: lora\npeft_init_lora_weights: pissa_niter_4\nloraplus_lr_ratio: 16\n",
     "pissa", 4, 16.0),
    ("base_model: llama-3.1-8b\nadapter: lora\npeft_init_lora_weights: olora\n", "olora", None, None),
    ("base_model: llama-3.1-8b\nadapter: qlora\nload_in_4bit: true\npeft:\n  loftq_config:\n    loftq_bits: 4\n",
     "loftq", None, None),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\npissa_init: true\n", "pissa", 16, None),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\npissa_iter: -1\npissa_init: true\n"
     "loraplus_lr_ratio: 8\n", "pissa", None, 8.0),
])
def test_other_tools_init_and_loraplus_keys_map(tmp_path, text, init, iters, ratio):
    f = tmp_path / "x.yaml"
    f.write_text(text)
    lora = read(f).cfg.lora
    assert (lora.init, lora.init_iters, lora.loraplus_lr_ratio) == (init, iters, ratio)


# ------------------------------------------------------------------ the trainer on the CPU


def test_loftq_on_the_cpu_exits_2_before_a_run_dir(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "lora.init=loftq", preset="demo-cpu-qlora")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out
    assert "lora.init loftq needs a CUDA GPU" in out and "Traceback" not in out
    assert not runs.exists() or not any(p.is_dir() and not p.name.startswith(".") for p in runs.iterdir())


@pytest.mark.slow
def test_loraplus_puts_the_b_matrices_in_a_group_at_ratio_times_the_lr(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments

    from rankwise.trainer.adapter_init import trainer_class

    cfg = with_values(RunConfig(), {"lora.loraplus_lr_ratio": 16})
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(TINY), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, use_cpu=True, report_to="none")
    opt = trainer_class(cfg)(model=model, args=args).create_optimizer()
    by_lr = {}
    for g in opt.param_groups:
        by_lr.setdefault(g["lr"], set()).update(id(p) for p in g["params"])
    names = {id(p): n for n, p in model.named_parameters()}
    def at(lr):
        return {names[i] for got, ids in by_lr.items() if got == pytest.approx(lr) for i in ids}

    assert at(16e-3) == {n for n, p in model.named_parameters() if "lora_B" in n}
    assert at(1e-3) == {n for n, p in model.named_parameters() if "lora_A" in n}


def _trains(tmp_path, *sets):
    runs = tmp_path / "runs"
    args = [a for s in sets for a in ("--set", s)]
    proc = train(runs, "--set", "train.max_steps=6", "--set", "data.max_rows=24", *args)
    run_dir = only_run(runs)
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    steps = of_type(events(run_dir), "step")
    assert len(steps) == 6 and steps[-1]["loss"] < steps[0]["loss"]
    return run_dir


def _logits(adapter: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32), str(adapter))
    with torch.no_grad():
        return model(torch.arange(1, 40).unsqueeze(0)).logits


@pytest.mark.slow
@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_pissa_and_olora_train_and_their_adapter_fits_the_original_base(tmp_path, init):
    """The saved adapter is converted (rank 2r) so that on the unchanged base it gives what training ended
    with: the last checkpoint's unconverted adapter on the residual base peft rebuilds from the same init."""
    run_dir = _trains(tmp_path, f"lora.init={init}")
    conf = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert conf["r"] == 2 * 16 and conf["init_lora_weights"] is True  # an ordinary LoRA now
    last = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    import torch
    trained, converted = _logits(last), _logits(run_dir / "adapter")
    assert torch.allclose(trained, converted, atol=1e-3), (trained - converted).abs().max()
    plain = _logits(run_dir / "adapter-init")  # the initial adapter, as a plain LoRA: B·A on the base
    assert not torch.allclose(plain, converted, atol=1e-3)
    # a kept checkpoint (train.stop_on) is converted the same way: the last one gives the final adapter
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rankwise.trainer.adapter_init import keep_checkpoint
    from rankwise.trainer.rundir import load_config

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32), str(last),
                                      is_trainable=True)
    keep_checkpoint(model, last, tmp_path / "kept", load_config(run_dir), run_dir)
    kept = json.loads((tmp_path / "kept" / "adapter_config.json").read_text())
    assert (kept["r"], kept["init_lora_weights"]) == (2 * 16, True)  # converted, not a copy of the checkpoint
    assert torch.allclose(_logits(tmp_path / "kept"), converted, atol=1e-3)


@pytest.mark.slow
def test_eva_and_loraplus_train(tmp_path):
    run_dir = _trains(tmp_path, "lora.init=eva", "lora.loraplus_lr_ratio=4")
    conf = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert conf["init_lora_weights"] == "eva" and conf["rank_pattern"]  # EVA moved ranks between layers
    assert "lora.init eva" in (run_dir / "train.log").read_text()


def test_a_loraplus_ratio_that_is_no_number_is_reported_at_its_line(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("base_model: llama-3.1-8b\nadapter: lora\nloraplus_lr_ratio: lots\n")
    proc = subprocess.run(CLI + ["check", str(f)], capture_output=True, text=True, env=env(), timeout=120)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "x.yaml:3" in out and "loraplus_lr_ratio" in out and "Traceback" not in out
