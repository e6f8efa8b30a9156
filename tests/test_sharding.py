"""FSDP / ZeRO-3 variants: CPU offload, the FSDP sharding strategy and fp32 master weights — per-GPU memory,
the accelerate config the trainer launches with, and exit 2 where they cannot run."""
from __future__ import annotations

import subprocess

import pytest
from train_helpers import CLI, env, train

from rankwise.advisor import sharding
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.hardware import planned
from rankwise.advisor.memory import Plan, estimate, unit_bytes
from rankwise.advisor.model import load_model
from rankwise.trainer import launch


@pytest.fixture(scope="module")
def l70():
    return load_model("llama-3.1-70b")


def _est(spec, **kw):
    return estimate(spec, Plan(kw.pop("method", "lora"), gpus=kw.pop("gpus", 8), strategy=kw.pop("strategy", "fsdp"), **kw))


def test_shard_grad_op_keeps_every_layer_gathered_until_backward(l70):
    full, sgo = _est(l70), _est(l70, fsdp_sharding="shard_grad_op")
    layer = unit_bytes(l70, Plan("lora"))[0]
    assert full.components["gather_layers"] == 2 * layer
    assert sgo.components["gather_layers"] == l70.num_layers * layer
    assert sgo.peak_bytes - full.peak_bytes == (l70.num_layers - 2) * layer
    assert _est(l70, fsdp_sharding="hybrid").peak_bytes == full.peak_bytes  # one machine: FULL_SHARD


@pytest.mark.parametrize("strategy,offload,gone,kept", [
    ("fsdp", "params_and_optimizer", ("base_weights", "lora_params", "lora_grads", "optimizer_states"), ()),
    ("deepspeed", "params", ("base_weights", "lora_params"), ("lora_grads", "optimizer_states")),
    ("deepspeed", "params_and_optimizer", ("base_weights", "lora_params", "lora_grads", "optimizer_states"), ()),
])
def test_offload_moves_the_shards_to_host_ram(l70, strategy, offload, gone, kept):
    base, off = _est(l70, strategy=strategy), _est(l70, strategy=strategy, offload=offload)
    for k in gone:
        assert base.components[k] > 0 and off.components[k] == 0, k
    for k in kept:
        assert off.components[k] == base.components[k], k
    assert off.components["gather_layers"] == base.components["gather_layers"]  # units still gathered on the GPU
    staged = off.components.get("offload_staging", 0)  # FSDP's shard copy cached on the pre-unshard stream
    assert off.peak_bytes == base.peak_bytes - sum(base.components[k] for k in gone) + staged
    host = sum(8 * base.components[k] for k in gone if k != "base_weights") + 2 * l70.total_params
    note = next(a for a in off.assumptions if a.startswith("CPU offload"))
    assert f"{host / 2**30:.0f}" in note or f"{host / 2**30:.1f}" in note  # the unsharded totals, ~the 16-bit model


def test_fp32_master_stores_fp32_shards_and_gathers_bf16(l70):
    bf16, master = _est(l70), _est(l70, fp32_master=True)
    layer = unit_bytes(l70, Plan("lora"))[0]
    assert master.components["base_weights"] == 2 * bf16.components["base_weights"]
    assert master.components["gather_layers"] == 2 * layer + 2 * -(-layer // 8)  # + the bf16 copy of each local shard
    assert master.components["gather_root"] == bf16.components["gather_root"]  # gathered in bf16
    assert master.components["activations"] == bf16.components["activations"]  # bf16 compute


@pytest.mark.parametrize("kw,needs", [
    ({"strategy": "ddp", "offload": "params_and_optimizer"}, "needs FSDP or DeepSpeed"),
    ({"offload": "params"}, "no parameters-only offload"),
    ({"strategy": "deepspeed", "fsdp_sharding": "shard_grad_op"}, "is an FSDP strategy"),
    ({"strategy": "ddp", "fp32_master": True}, "FSDP mixed precision"),
    ({"method": "qlora", "fp32_master": True}, "bnb_4bit_quant_storage"),
])
def test_what_the_strategy_cannot_run_is_refused(kw, needs):
    with pytest.raises(RankwiseError) as e:
        sharding.check(Plan(kw.pop("method", "lora"), gpus=2, strategy=kw.pop("strategy", "fsdp"), **kw))
    assert needs in e.value.message and e.value.hint


@pytest.mark.parametrize("strategy,offload,sharding_,expect", [
    ("fsdp", "params_and_optimizer", "shard_grad_op", {"fsdp_offload_params": True, "fsdp_sharding_strategy": "SHARD_GRAD_OP"}),
    ("fsdp", "none", "hybrid", {"fsdp_offload_params": False, "fsdp_sharding_strategy": "HYBRID_SHARD"}),
])
def test_accelerate_config_carries_offload_and_sharding(strategy, offload, sharding_, expect):
    conf = launch.accelerate_config(launch.Launch(strategy, 2, offload=offload, sharding=sharding_))
    assert {k: conf["fsdp_config"][k] for k in expect} == expect


@pytest.mark.parametrize("offload,param,optim", [("params", "cpu", "none"), ("params_and_optimizer", "cpu", "cpu"),
                                                 ("none", "none", "none")])
def test_deepspeed_offload_devices(offload, param, optim, monkeypatch):
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: object())  # deepspeed "installed" (config only)
    ds = launch.accelerate_config(launch.Launch("deepspeed", 2, offload=offload))["deepspeed_config"]
    assert (ds["offload_param_device"], ds["offload_optimizer_device"]) == (param, optim)


def test_fp32_master_launches_fsdp_with_bf16_mixed_precision():
    assert launch.mixed_precision("fp32_master", bf16=False) == "bf16"
    spec = load_model("llama-3.1-8b")
    hw = planned(gpu="A100-80GB", gpus=2)
    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-8b", "method": "lora", "train.precision": "fp32_master",
                                     "distributed.strategy": "fsdp", "distributed.gpus": 2})
    got = launch.plan(cfg, spec, hw)
    assert got.strategy == "fsdp" and launch.accelerate_config(got)["mixed_precision"] == "bf16"
    with pytest.raises(RankwiseError, match="FSDP mixed precision"):
        launch.plan(with_values(cfg, {"distributed.strategy": "ddp"}), spec, hw)


@pytest.mark.parametrize("key,value", [("distributed.offload", "params_and_optimizer"),
                                       ("distributed.fsdp_sharding", "shard_grad_op"),
                                       ("train.precision", "fp32_master")])
def test_a_one_process_run_refuses_the_sharded_options(key, value):
    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-8b", key: value})
    with pytest.raises(RankwiseError, match="one process"):
        launch.plan(cfg, load_model("llama-3.1-8b"), planned(gpu="A100-80GB"))


def test_train_on_the_cpu_exits_2_before_a_run_dir(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "distributed.offload=params_and_optimizer")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2 and "one plain process" in out and "Traceback" not in out, out
    assert "--force" not in out  # the launcher has no such run: forcing the red flag would not start it
    assert not runs.exists() or not any(p.is_dir() and not p.name.startswith(".") for p in runs.iterdir())


def test_estimate_flags(l70):
    ok = subprocess.run(CLI + ["estimate", "--model", "llama-3.1-70b", "--gpus", "8", "--gpu-mem", "80GiB", "--strategy",
                               "fsdp", "--precision", "fp32-master", "--offload", "params-and-optimizer",
                               "--fsdp-sharding", "full", "--json"], capture_output=True, text=True, env=env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    import json
    plan = json.loads(ok.stdout)["plan"]
    assert (plan["fp32_master"], plan["offload"], plan["fsdp_sharding"]) == (True, "params_and_optimizer", "full")
    bad = subprocess.run(CLI + ["estimate", "--model", "llama-3.1-70b", "--gpus", "8", "--gpu-mem", "80GiB", "--strategy",
                                "ddp", "--offload", "params_and_optimizer"], capture_output=True, text=True, env=env(),
                         timeout=120)
    assert bad.returncode == 2 and "distributed.offload" in " ".join(bad.stderr.split())


@pytest.mark.parametrize("text,strategy,offload,sharding_", [
    ("base_model: llama-3.1-8b\nadapter: lora\nfsdp: [full_shard, auto_wrap, offload]\n", "fsdp",
     "params_and_optimizer", "full"),
    ("base_model: llama-3.1-8b\nadapter: lora\nfsdp_config:\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n", "fsdp", "none",
     "shard_grad_op"),
    ("base_model: llama-3.1-8b\nadapter: lora\nfsdp_config:\n  reshard_after_forward: false\n  offload_params: true\n",
     "fsdp", "params_and_optimizer", "shard_grad_op"),
    ("base_model: llama-3.1-8b\nadapter: lora\ndeepspeed: deepspeed_configs/zero3_bf16_cpuoffload_params.json\n",
     "deepspeed", "params", "full"),
    ("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\n"
     "deepspeed: examples/deepspeed/ds_z3_offload_config.json\n", "deepspeed", "params_and_optimizer", "full"),
])
def test_other_tools_offload_and_sharding_keys_map(tmp_path, text, strategy, offload, sharding_):
    from rankwise.advisor.foreign import read

    f = tmp_path / "x.yaml"
    f.write_text(text)
    d = read(f).cfg.distributed
    assert (d.strategy, d.offload, d.fsdp_sharding) == (strategy, offload, sharding_)


ZERO3_ALL = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "pin_memory": True},
                                   "offload_param": {"device": "cpu", "pin_memory": True},
                                   "reduce_bucket_size": "auto"}, "bf16": {"enabled": "auto"}}


@pytest.mark.parametrize("ds,strategy,offload,said", [
    (ZERO3_ALL, "deepspeed", "params_and_optimizer", None),  # a name that says nothing: the content decides
    ({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}}, "deepspeed", "params", None),
    ({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}, "deepspeed", "none",
     "optimizer states only"),
    ({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}, "offload_optimizer": {"device": "nvme"}}},
     "deepspeed", "params_and_optimizer", "NVMe offload"),
    ({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}, "ddp", "none", "ZeRO stage 2"),
    ({"zero_optimization": {"stage": 3, "offload_param": {"device": "none"}}}, "deepspeed", "none", None),
])
@pytest.mark.parametrize("tool", ["axolotl", "llama-factory"])
def test_a_deepspeed_json_is_read_for_its_stage_and_offload(tmp_path, ds, strategy, offload, said, tool):
    """The file the config names, found beside it (not in the working directory), decides the stage and the offload,
    whatever its name; what rankwise cannot express is said."""
    import json

    from rankwise.advisor.foreign import read

    (tmp_path / "zero3_offload_misleading_name.json").write_text(json.dumps(ds))
    head = ("base_model: llama-3.1-8b\nadapter: lora\n" if tool == "axolotl" else
            "model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\n")
    f = tmp_path / "x.yaml"
    f.write_text(head + "deepspeed: zero3_offload_misleading_name.json\n")
    r = read(f)
    d = r.cfg.distributed
    assert (d.strategy, d.offload) == (strategy, offload)
    assert r.kind == tool
    messages = " ".join(s.message for s in r.said)
    if said:
        assert said in messages
    else:
        assert "deepspeed" not in messages.lower()
    if strategy == "deepspeed":  # the file itself is the run's: its buckets estimated and passed to accelerate
        assert d.deepspeed_config == str(tmp_path / "zero3_offload_misleading_name.json")
    else:
        assert d.deepspeed_config is None


@pytest.mark.parametrize("content,why", [("{not json", "could not be read as JSON"), ("[3]", "not a JSON object"),
                                         (None, "not found")])
def test_a_deepspeed_file_that_cannot_be_read_is_judged_by_its_name(tmp_path, content, why):
    from rankwise.advisor.foreign import read

    if content is not None:
        (tmp_path / "zero3_bf16_cpuoffload_all.json").write_text(content)
    f = tmp_path / "x.yaml"
    f.write_text("base_model: llama-3.1-8b\nadapter: lora\ndeepspeed: zero3_bf16_cpuoffload_all.json\n")
    r = read(f)
    assert (r.cfg.distributed.strategy, r.cfg.distributed.offload) == ("deepspeed", "params_and_optimizer")
    assert any(why in n and "judged by its name as ZeRO-3 with CPU offload" in n for n in r.notes)


def test_offload_costs_the_shards_copy_over_pcie_each_pass(l70):
    """70B LoRA over 8 GPUs with checkpointing: 3 passes each copy 1/8 of the 16-bit weights over PCIe 4.0 x16."""
    from rankwise.advisor import fit as fitting
    from rankwise.advisor.speeds import GPU_HF, PCIE_GBS, Device
    from rankwise.advisor.time import micro_batch_seconds

    hw = planned(gpu="A100-80GB", gpus=8)
    parts = {}
    for offload in ("none", "params_and_optimizer"):
        cfg = with_values(RunConfig(), {"model.name": "llama-3.1-70b", "method": "lora", "distributed.gpus": 8,
                                         "distributed.strategy": "fsdp", "distributed.offload": offload})
        parts[offload] = micro_batch_seconds(l70, fitting.assess(l70, cfg, hw), Device.of(hw), 2048)
    stored = 2 * sum(l.params for l in l70.linears)  # body + head, 16-bit
    assert "offload" not in parts["none"]
    assert parts["params_and_optimizer"]["offload"] == pytest.approx(3 * stored / 8 / (PCIE_GBS * 1e9 * GPU_HF.bandwidth_share))


def test_offloaded_shards_count_in_host_ram_while_training(l70):
    from rankwise.advisor import fit as fitting
    from rankwise.advisor.host_plan import plan_host

    hw = planned(gpu="A100-80GB", gpus=8)
    train = {}
    for offload in ("none", "params_and_optimizer"):
        cfg = with_values(RunConfig(), {"model.name": "llama-3.1-70b", "method": "lora", "distributed.gpus": 8,
                                         "distributed.strategy": "fsdp", "distributed.offload": offload})
        judged = fitting.assess(l70, cfg, hw)
        train[offload] = (plan_host(l70, cfg, judged, hw).train_bytes, judged.estimate.host_offload_bytes)
    assert train["none"][1] == 0
    assert train["params_and_optimizer"][0] - train["none"][0] == train["params_and_optimizer"][1] > 2 * l70.total_params


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_zero3_holds_its_gradient_bucket_and_prefetches_a_bucket_not_a_unit(l70, method):
    """ZeRO-3 at DeepSpeed's defaults (as `accelerate config` leaves them): the contiguous gradient bucket of
    reduce_bucket_size 16-bit elements for the run, and the running layer plus a prefetch of
    stage3_prefetch_bucket_size elements (plus the weight that crosses it) where FSDP gathers a whole next unit."""
    from dataclasses import replace

    from rankwise.advisor.memory import HF
    steps = replace(HF, zero3_start_quantized="none", fsdp_start_quantized="none")  # the steps: no 4-bit start-up
    ds, fsdp = (_est(l70, method=method, gpus=2, strategy="deepspeed", stack=steps),
                _est(l70, method=method, gpus=2, stack=steps))
    plan = Plan(method)
    layer = unit_bytes(l70, plan)[0]
    largest = 8192 * 28672 * 2 if method == "lora" else 8192 * 28672 // 2  # the MLP's weight: bf16, or NF4 packed
    assert ds.components["zero3_grad_bucket"] == 500_000_000 * 2  # deepspeed config.py: reduce_bucket_size 5e8
    assert "zero3_grad_bucket" not in fsdp.components
    assert ds.components["gather_layers"] == layer + min(layer, 50_000_000 * 2 + largest) < 2 * layer
    assert fsdp.components["gather_layers"] == 2 * layer
    assert any(a.startswith("ZeRO-3 contiguous gradient bucket") for a in ds.assumptions)
    assert ds.allocated_bytes - fsdp.allocated_bytes == (
        ds.components["zero3_grad_bucket"] + ds.components["gather_layers"] - fsdp.components["gather_layers"]
        - fsdp.components["fsdp_grad_buffers"])


def test_zero3_bucket_stays_on_the_gpu_under_offload(l70):
    got = _est(l70, gpus=2, strategy="deepspeed", offload="params_and_optimizer")
    assert got.components["zero3_grad_bucket"] == sharding.DS_REDUCE_BUCKET_ELEMS * 2  # torch.empty on the device


def test_fsdp_offload_keeps_the_largest_shard_copy_cached_in_the_pre_unshard_stream(l70):
    """FSDP's pre_unshard copies an offloaded unit's shard to the GPU on the pre-unshard stream; the block stays in
    that stream's pool: reserved (and nvidia-smi) memory, not allocated."""
    on = _est(l70, method="qlora", gpus=2, offload="params_and_optimizer")
    off = _est(l70, method="qlora", gpus=2)
    layer, root = unit_bytes(l70, Plan("qlora"))
    assert on.components["offload_staging"] == -(-max(layer, root) // 2) == sharding.offload_staging_bytes(
        Plan("qlora", gpus=2, strategy="fsdp", offload="params_and_optimizer"), layer, root)
    assert "offload_staging" not in off.components
    assert on.reserved_bytes - on.allocated_bytes >= on.components["offload_staging"]
    ds = _est(l70, method="qlora", gpus=2, strategy="deepspeed", offload="params_and_optimizer")
    assert ds.components["offload_staging"] == 0  # DeepSpeed stages through its own buffers (not counted)


def test_zero3_starts_from_the_quantized_base_whole_on_each_gpu(l70):
    """transformers builds a quantized model without zero.Init, so each rank loads it whole onto its GPU and
    DeepSpeed partitions it after: the start-up holds every stored tensor, whatever the GPU count or offload."""
    from rankwise.advisor import memory

    plan = Plan("qlora", gpus=2, strategy="deepspeed", seq_len=2048)
    whole = sum(u.stored for u in memory.wrap_units(l70, plan, memory._check(l70, plan)))
    assert whole > 35 * 2 ** 30  # 70B in NF4 with its constants, embeddings and head
    for kw in ({}, {"offload": "params_and_optimizer"}, {"gpus": 8}):
        got = _est(l70, method="qlora", gpus=kw.pop("gpus", 2), strategy="deepspeed", seq_len=2048, **kw)
        outside = got.components["cuda_context"] + got.components["nccl_buffers"]
        assert got.peak_bytes == whole + outside == sum(got.components.values())
        assert got.components["zero3_load"] > 0 and got.releasable_bytes == 0
        assert got.allocated_bytes == whole  # max_memory_allocated over the run reads the start-up
        assert any("ZeRO-3 starts from the quantized base whole" in a for a in got.assumptions)
    # the step alone, as before: a 16-bit base is not loaded whole onto the GPU, FSDP has its own start
    assert "zero3_load" not in _est(l70, gpus=2, strategy="deepspeed").components
    assert "zero3_load" not in _est(l70, method="qlora", gpus=2).components
    from dataclasses import replace

    from rankwise.advisor.memory import HF
    unknown = _est(l70, method="qlora", gpus=2, strategy="deepspeed", stack=replace(HF, zero3_start_quantized="none"))
    assert "zero3_load" not in unknown.components and unknown.peak_bytes < whole


def test_a_small_quantized_model_under_zero3_is_set_by_its_step(l70):
    """The start-up only sets the peak when the whole 4-bit model outweighs a step: an 8B's does not."""
    spec = load_model("llama-3.1-8b")
    got = estimate(spec, Plan("qlora", gpus=2, strategy="deepspeed", micro_batch=2, seq_len=2048))
    assert "zero3_load" not in got.components
    assert any("ZeRO-3 starts from the quantized base whole" in a and "the peak" not in a for a in got.assumptions)


def test_advice_says_zero3_offload_does_not_lower_a_quantized_start(l70):
    from rankwise.advisor.fit import assess, strategy_reason

    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-70b", "method": "qlora", "distributed.gpus": 2,
                                    "distributed.strategy": "deepspeed", "distributed.offload": "params_and_optimizer"})
    hw = planned("24GiB", 2)
    judged = assess(l70, cfg, hw)
    assert judged.verdict == "wont-fit"
    assert "loaded onto each GPU before DeepSpeed partitions it" in strategy_reason(l70, cfg, judged, hw)


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_one_gpu_is_estimated_as_it_runs_plain_whatever_the_strategy(strategy):
    """The launcher runs one GPU as one plain process (trainer/launch.py resolve: no FSDP, no DeepSpeed), so the
    estimate of one GPU is the plain one: no gathered units, the 4-bit base's fp32 upcast kept, the same peak."""
    from rankwise.advisor import fit

    spec = load_model("llama-3.1-8b")
    base = {"model.name": "llama-3.1-8b", "method": "qlora", "distributed.gpus": 1}
    hw = planned("80GiB", 1)
    plain = fit.assess(spec, with_values(RunConfig(), base), hw)
    named = fit.assess(spec, with_values(RunConfig(), {**base, "distributed.strategy": strategy}), hw)
    assert not named.estimate.plan.sharded and "gather_root" not in named.estimate.components
    assert named.peak_gib == plain.peak_gib
    assert Plan.from_config(with_values(RunConfig(), {**base, "distributed.strategy": strategy}), gpus=2).strategy == strategy
    # and an option only sharding runs have is refused saying why, not that the strategy is DDP
    offloaded = with_values(RunConfig(), {**base, "distributed.strategy": strategy,
                                          "distributed.offload": "params_and_optimizer"})
    with pytest.raises(RankwiseError, match="one GPU runs as one plain process"):
        sharding.check(Plan.from_config(offloaded, gpus=1))


def test_the_commands_name_zero3_as_the_advice_does():
    """estimate's title and advise's strategy line say "DeepSpeed ZeRO-3" (fit.STRATEGY_NAMES), and the ZeRO-3 start
    of a 4-bit 70B shows as its own row."""
    est = subprocess.run(CLI + ["estimate", "--model", "llama-3.1-70b", "--method", "qlora", "--gpus", "2", "--gpu-mem",
                                "80GiB", "--strategy", "deepspeed"], capture_output=True, text=True, env=env(),
                         timeout=120)
    adv = subprocess.run(CLI + ["advise", "--model", "llama-3.1-70b", "--task", "chat", "--gpus", "2", "--gpu-mem",
                                "80GiB", "--strategy", "deepspeed"], capture_output=True, text=True, env=env(),
                         timeout=120)
    assert est.returncode == 0 and adv.returncode == 0, est.stderr + adv.stderr
    out = " ".join(est.stdout.split())
    assert "2 GPUs DeepSpeed ZeRO-3 (per GPU)" in out and "ZeRO-3 start-up: the 4-bit base whole on the GPU" in out
    line = " ".join(adv.stdout.split())
    assert "2 GPUs as DeepSpeed ZeRO-3: a full copy needs" in line and "DEEPSPEED" not in adv.stdout + est.stdout
    assert "ZeRO-3 — " not in line and "ZeRO-3: DeepSpeed" not in line  # the name once, not again in the reason
    # a sharded strategy chosen where a full copy would fit says it was the config's choice
    small = subprocess.run(CLI + ["advise", "--model", "llama-3.1-8b", "--task", "chat", "--gpus", "2", "--gpu-mem",
                                  "80GiB", "--strategy", "fsdp"], capture_output=True, text=True, env=env(), timeout=120)
    assert small.returncode == 0, small.stderr
    assert "2 GPUs as FSDP (as configured): a full copy needs" in " ".join(small.stdout.split())


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_suggestions_offer_offload_and_the_other_strategy_where_they_are_lower(l70, strategy):
    """A 16-bit 70B LoRA on 2 x 80 GiB does not fit sharded; with weights, gradients and optimizer states in host
    RAM it does. Each row is the estimate of its own patch; the other strategy is offered only where it is lower."""
    from rankwise.advisor.fit import assess, suggest_fixes

    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-70b", "method": "lora", "distributed.gpus": 2,
                                    "distributed.strategy": strategy})
    hw = planned("80GiB", 2)
    base = assess(l70, cfg, hw)
    assert base.verdict == "wont-fit"
    rows = suggest_fixes(l70, hw, cfg, "lora")
    off = [s for s in rows if s["patch"] and s["patch"].get("distributed.offload") == "params_and_optimizer"
           and len(s["patch"]) == 2]
    assert len(off) == 1 and off[0]["fit"] == "fits" and off[0]["patch"]["distributed.strategy"] == strategy
    assert off[0]["peak_gib"] == round(assess(l70, with_values(cfg, off[0]["patch"]), hw).peak_gib, 2)
    other = "deepspeed" if strategy == "fsdp" else "fsdp"
    swap = [s for s in rows if s["patch"] == {"distributed.strategy": other}]
    lower = assess(l70, with_values(cfg, {"distributed.strategy": other}), hw).peak_gib < base.peak_gib
    assert len(swap) == lower
    assert all(s["peak_gib"] < base.peak_gib for s in swap)
    together = [s for s in rows if s["change"].startswith("all of:")][0]
    assert together["patch"]["distributed.offload"] == "params_and_optimizer"
    assert together["patch"]["distributed.strategy"] == strategy  # offload keeps the strategy; no swap mixed in


def test_a_plain_run_gets_no_sharing_suggestions(l70):
    """One GPU: offload and the strategies need 2+ GPUs (sharding.check), so they are not offered as changes."""
    from rankwise.advisor.fit import suggest_fixes

    cfg = with_values(RunConfig(), {"model.name": "llama-3.1-70b", "method": "lora"})
    rows = suggest_fixes(l70, planned("80GiB"), cfg, "lora")
    assert rows and not any(s["patch"] and any(k.startswith("distributed.") for k in s["patch"]) for s in rows)


def test_a_deepspeed_path_is_found_from_the_tools_checkout_root(tmp_path, monkeypatch):
    """LLaMA-Factory's and axolotl's examples name their DeepSpeed files from the checkout's root
    (examples/deepspeed/ds_z3_config.json, deepspeed_configs/zero3_bf16.json): checked from elsewhere, the file is
    found in the folders above the config."""
    import json

    from rankwise.advisor.foreign import read

    monkeypatch.chdir(tmp_path)  # not the checkout
    root = tmp_path / "LLaMA-Factory"
    (root / "examples" / "deepspeed").mkdir(parents=True)
    (root / "examples" / "deepspeed" / "ds_z3_offload_config.json").write_text(json.dumps(ZERO3_ALL))
    cfg = root / "examples" / "train_lora" / "x.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("model_name_or_path: llama-3.1-8b\nfinetuning_type: lora\nstage: sft\n"
                   "deepspeed: examples/deepspeed/ds_z3_offload_config.json\n")
    d = read(cfg).cfg.distributed
    assert d.deepspeed_config == str(root / "examples" / "deepspeed" / "ds_z3_offload_config.json")
    assert (d.strategy, d.offload) == ("deepspeed", "params_and_optimizer")
