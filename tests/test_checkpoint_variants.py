"""Reentrant vs non-reentrant gradient checkpointing (train.checkpointing_reentrant) and FSDP NO_SHARD
(distributed.fsdp_sharding: no_shard): estimated, launched, mapped from axolotl / LLaMA-Factory, trained."""
from __future__ import annotations

import json
import subprocess

import pytest
from train_helpers import CLI, env, events, of_type, only_run, train

from rankwise.advisor import sharding
from rankwise.advisor.activations import stream_bytes
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.memory import Plan, estimate, unit_bytes
from rankwise.advisor.model import load_model
from rankwise.trainer import launch


@pytest.fixture(scope="module")
def l8():
    return load_model("llama-3.1-8b")


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_reentrant_holds_the_recomputed_layers_output_through_its_backward(l8, method):
    plan = Plan(method, micro_batch=2, seq_len=1024)
    plain, reent = estimate(l8, plan), estimate(l8, Plan(method, micro_batch=2, seq_len=1024, reentrant=True))
    extra = 2 * 1024 * stream_bytes(plan) * l8.hidden_size
    assert reent.transients["layer_recompute"] - plain.transients["layer_recompute"] == extra
    assert reent.components["activations"] == plain.components["activations"]  # the same saved inputs
    assert any(a.startswith("reentrant gradient checkpointing") for a in reent.assumptions)
    assert any(a.startswith("non-reentrant gradient checkpointing") for a in plain.assumptions)


def test_reentrant_changes_nothing_without_checkpointing(l8):
    off = Plan("lora", grad_checkpointing=False)
    assert estimate(l8, off).components == estimate(l8, Plan("lora", grad_checkpointing=False, reentrant=True)).components


def test_no_shard_holds_a_full_replica_without_gathers_or_ddp_buckets(l8):
    one = estimate(l8, Plan("lora"))
    fsdp = estimate(l8, Plan("lora", gpus=4, strategy="fsdp", fsdp_sharding="no_shard"))
    ddp = estimate(l8, Plan("lora", gpus=4, strategy="ddp"))
    for k in ("base_weights", "lora_params", "lora_grads", "optimizer_states"):
        assert fsdp.components[k] == one.components[k] == ddp.components[k], k
    assert fsdp.components["gather_layers"] == fsdp.components["gather_root"] == 0
    assert "ddp_buckets" in ddp.components and "ddp_buckets" not in fsdp.components
    assert any(a.startswith("FSDP NO_SHARD") for a in fsdp.assumptions)


def test_no_shard_under_fp32_master_computes_on_bf16_copies_of_the_running_units(l8):
    got = estimate(l8, Plan("lora", gpus=2, strategy="fsdp", fsdp_sharding="no_shard", fp32_master=True))
    layer, root = unit_bytes(l8, Plan("lora"))
    assert got.components["base_weights"] == 2 * estimate(l8, Plan("lora")).components["base_weights"]
    assert (got.components["gather_layers"], got.components["gather_root"]) == (2 * layer, root)


def test_no_shard_offload_holds_a_replica_per_rank_in_host_ram(l8):
    full = estimate(l8, Plan("lora", gpus=2, strategy="fsdp", offload="params_and_optimizer"))
    none = estimate(l8, Plan("lora", gpus=2, strategy="fsdp", offload="params_and_optimizer", fsdp_sharding="no_shard"))
    assert none.host_offload_bytes == 2 * full.host_offload_bytes


def test_no_shard_is_an_fsdp_strategy_and_launches_as_no_shard():
    with pytest.raises(RankwiseError, match="is an FSDP strategy"):
        sharding.check(Plan("lora", gpus=2, strategy="ddp", fsdp_sharding="no_shard"))
    conf = launch.accelerate_config(launch.Launch("fsdp", 2, sharding="no_shard"))
    assert conf["fsdp_config"]["fsdp_sharding_strategy"] == "NO_SHARD"


def test_estimate_flags():
    base = ["estimate", "--model", "llama-3.1-8b", "--gpus", "2", "--gpu-mem", "80GiB", "--strategy", "fsdp", "--json"]
    runs = {flags: subprocess.run(CLI + base + list(flags), capture_output=True, text=True, env=env(), timeout=120)
            for flags in [(), ("--reentrant", "--fsdp-sharding", "no-shard"), ("--no-reentrant",)]}
    got = {flags: json.loads(p.stdout) for flags, p in runs.items() if p.returncode == 0}
    assert len(got) == 3, [p.stderr for p in runs.values()]
    new = got[("--reentrant", "--fsdp-sharding", "no-shard")]
    assert (new["plan"]["reentrant"], new["plan"]["fsdp_sharding"]) == (True, "no_shard")
    assert got[()]["plan"]["reentrant"] is False and got[("--no-reentrant",)]["plan"]["reentrant"] is False
    assert set(got[()]) <= set(new)  # --json keeps its keys
    bad = subprocess.run(CLI + ["estimate", "--model", "llama-3.1-8b", "--gpus", "2", "--gpu-mem", "80GiB",
                                "--strategy", "ddp", "--fsdp-sharding", "no_shard"],
                         capture_output=True, text=True, env=env(), timeout=120)
    assert bad.returncode == 2 and "is an FSDP strategy" in " ".join(bad.stderr.split())


@pytest.mark.parametrize("text,reentrant,sharding_", [
    ("base_model: llama-3.1-8b\nadapter: lora\ngradient_checkpointing: true\n", True, "full"),  # normalize_config
    ("base_model: llama-3.1-8b\nadapter: lora\ngradient_checkpointing: true\nrl: dpo\n", False, "full"),
    ("base_model: llama-3.1-8b\nadapter: lora\ngradient_checkpointing: true\n"
     "gradient_checkpointing_kwargs:\n  use_reentrant: false\nfsdp: [no_shard, auto_wrap]\n", False, "no_shard"),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\n", True, "full"),  # use_reentrant_gc
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\nuse_reentrant_gc: false\n"
     "fsdp: no_shard auto_wrap\n", False, "no_shard"),
])
def test_other_tools_checkpointing_and_no_shard_keys_map(tmp_path, text, reentrant, sharding_):
    from rankwise.advisor.foreign import read

    f = tmp_path / "x.yaml"
    f.write_text(text)
    cfg = read(f).cfg
    assert (cfg.train.checkpointing_reentrant, cfg.distributed.fsdp_sharding) == (reentrant, sharding_)


@pytest.mark.slow
@pytest.mark.parametrize("reentrant", [False, True])
def test_the_variant_reaches_the_models_checkpoint_function(tmp_path, reentrant):
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "train.grad_checkpointing=true", "--set",
                 f"train.checkpointing_reentrant={str(reentrant).lower()}", "--set", "train.max_steps=4",
                 "--set", "train.save_steps=4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evs = events(only_run(runs))
    said = [e["message"] for e in of_type(evs, "log") if e["message"].startswith("gradient checkpointing:")]
    assert said == [f"gradient checkpointing: {'reentrant' if reentrant else 'non-reentrant'} "
                    f"(use_reentrant={reentrant})"], said
    steps = of_type(evs, "step")
    assert steps and all(s["grad_norm"] > 0 for s in steps)  # the LoRA weights inside the checkpoints get gradients


def _peak_live_bytes(reentrant: bool, cfg, tokens) -> int:
    """The most bytes of CPU tensors alive at once over one LoRA forward + backward with checkpointing, from
    torch's profiler memory timeline (every allocation and free, in order)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                                             lora_dropout=0.0))
    model.train()
    model.base_model.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        loss = model(input_ids=tokens).logits.float().mean()
        loss.backward()
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    return max(sum(s) for s in sizes)


@pytest.mark.slow
def test_reentrant_costs_what_torch_measures_one_hidden_state():
    """The estimate's reentrant term against torch itself: an fp32 Llama on the CPU, peak live bytes per variant."""
    import torch
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=64, max_position_embeddings=2048)
    tokens = torch.randint(0, 64, (2, 1024))
    measured = _peak_live_bytes(True, cfg, tokens) - _peak_live_bytes(False, cfg, tokens)
    fp32 = Plan("lora", dtype_bytes=4)
    term = tokens.numel() * stream_bytes(fp32) * cfg.hidden_size  # what memory.estimate adds under reentrant
    assert abs(measured - term) <= 0.02 * term, (measured, term)
