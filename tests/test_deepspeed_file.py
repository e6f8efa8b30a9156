"""distributed.deepspeed_config: a DeepSpeed JSON read for the estimate (its offload, bucket sizes and prefetch limit,
"auto" filled from the hidden size as the HF Trainer fills it), passed to accelerate as it is, refused where it
cannot run; and the foreign readers that name one (axolotl/LLaMA-Factory `deepspeed:`, accelerate's
deepspeed_config_file)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from train_helpers import CLI, bench_module, env, events, of_type, only_run, tail_log, train

from rankwise.advisor import deepspeed_file, sharding
from rankwise.advisor.config import RunConfig, with_values
from rankwise.advisor.errors import RankwiseError
from rankwise.advisor.fit import assess
from rankwise.advisor.hardware import planned
from rankwise.advisor.loader import load_config, read_launcher
from rankwise.advisor.memory import Plan, estimate, largest_weight_bytes, unit_bytes
from rankwise.advisor.model import load_model
from rankwise.advisor.redflags import check
from rankwise.trainer import launch

# axolotl's deepspeed_configs/zero3_bf16.json (@ axolotl main, 2026): "auto" buckets, no prefetch (max_live 0)
AXOLOTL_Z3 = {"zero_optimization": {"stage": 3, "overlap_comm": True, "contiguous_gradients": True,
                                    "sub_group_size": 0, "reduce_bucket_size": "auto",
                                    "stage3_prefetch_bucket_size": "auto",
                                    "stage3_param_persistence_threshold": "auto", "max_live_parameters": 0,
                                    "max_reuse_distance": 0, "gather_16bit_weights_on_model_save": True},
              "bf16": {"enabled": True}, "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
              "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto"}
OFFLOAD = {"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"},
                                 "offload_optimizer": {"device": "cpu"}}}


def write(folder: Path, name: str, data) -> Path:
    p = folder / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def ds_cfg(path, **more) -> RunConfig:
    return with_values(RunConfig(), {"model.name": "llama-3.1-8b", "method": "lora", "distributed.gpus": 2,
                                     "distributed.strategy": "deepspeed", "distributed.deepspeed_config": str(path),
                                     **more})


@pytest.fixture(scope="module")
def l8():
    return load_model("llama-3.1-8b")


def test_auto_buckets_are_filled_from_the_hidden_size_and_max_live_0_turns_prefetch_off(tmp_path, l8):
    own = estimate(l8, Plan("lora", gpus=2, strategy="deepspeed"))
    plan = Plan.from_config(ds_cfg(write(tmp_path, "z3.json", AXOLOTL_Z3)), gpus=2)
    assert (plan.ds_reduce_bucket, plan.ds_prefetch_bucket, plan.ds_max_live) == ("auto", "auto", 0)
    got = estimate(l8, plan)
    h = l8.hidden_size
    assert got.components["zero3_grad_bucket"] == h * h * 2  # hidden_size**2 in bf16: 32 MiB, not 5e8 x 2
    assert own.components["zero3_grad_bucket"] == sharding.DS_REDUCE_BUCKET_ELEMS * 2
    layer = unit_bytes(l8, plan)[0]
    assert got.components["gather_layers"] == layer < own.components["gather_layers"]  # the running layer only
    assert got.peak_bytes < own.peak_bytes
    text = " ".join(got.assumptions)
    assert "filled from hidden_size" in text and "no prefetch" in text


def test_sizes_written_as_numbers_are_used_as_written(tmp_path, l8):
    data = {"zero_optimization": {"stage": 3, "reduce_bucket_size": 2e8, "stage3_prefetch_bucket_size": 1e6}}
    plan = Plan.from_config(ds_cfg(write(tmp_path, "z3.json", data)), gpus=2)
    got = estimate(l8, plan)
    assert got.components["zero3_grad_bucket"] == 200_000_000 * 2
    largest = largest_weight_bytes(l8, plan)  # the one weight that crosses the bucket
    assert got.components["gather_layers"] == unit_bytes(l8, plan)[0] + 1_000_000 * 2 + largest


def test_the_file_decides_the_offload(tmp_path, l8):
    path = write(tmp_path, "off.json", OFFLOAD)
    assert Plan.from_config(ds_cfg(path), gpus=2).offload == "params_and_optimizer"
    with pytest.raises(RankwiseError, match="the file decides"):
        Plan.from_config(ds_cfg(path, **{"distributed.offload": "params"}), gpus=2)
    plain = write(tmp_path, "plain.json", AXOLOTL_Z3)
    with pytest.raises(RankwiseError, match="offloads none"):
        Plan.from_config(ds_cfg(plain, **{"distributed.offload": "params_and_optimizer"}), gpus=2)


@pytest.mark.parametrize("content,match", [
    ({"zero_optimization": {"stage": 2}}, "ZeRO stage 2"),
    ("{not json", "could not be read as JSON"),
    ("[1, 2]", "not a JSON object"),
    ({"zero_optimization": {"stage": 3, "reduce_bucket_size": "big"}}, "is not a size"),
])
def test_a_file_rankwise_cannot_run_is_exit_2_naming_it(tmp_path, content, match):
    path = write(tmp_path, "bad.json", content)
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": {"name": "llama-3.1-8b"}, "method": "lora",
                                      "distributed": {"gpus": 2, "strategy": "deepspeed",
                                                      "deepspeed_config": "bad.json"}}))
    p = subprocess.run(CLI + ["estimate", "--preset", str(preset), "--gpu-mem", "80GiB", "--gpus", "2"],
                       capture_output=True, text=True, env=env())
    out = p.stdout + p.stderr
    assert p.returncode == 2 and match in out and str(path) in out and "Traceback" not in out, out


def test_a_missing_file_and_a_strategy_other_than_deepspeed_are_refused(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": {"name": "llama-3.1-8b"}, "distributed": {
        "gpus": 2, "strategy": "deepspeed", "deepspeed_config": "nowhere.json"}}))
    cfg = load_config(preset)
    assert cfg.distributed.deepspeed_config == str(tmp_path / "nowhere.json")  # anchored to the preset's folder
    with pytest.raises(RankwiseError, match="not found"):
        Plan.from_config(cfg, gpus=2)
    with pytest.raises(Exception, match="set distributed.strategy: deepspeed"):
        with_values(cfg, {"distributed.strategy": "fsdp"})


def test_one_gpu_with_a_deepspeed_file_is_the_red_flag_train_refuses(tmp_path, l8):
    cfg = with_values(ds_cfg(write(tmp_path, "z3.json", AXOLOTL_Z3)), {"distributed.gpus": 1})
    got = {f.code: f for f in check(cfg, l8, planned("80GiB"))}
    assert got["distributed-setting"].severity == "error"
    assert got["distributed-setting"].patch == {"distributed.deepspeed_config": None}
    with pytest.raises(RankwiseError, match="one process"):
        launch.plan(cfg, l8, planned("80GiB"))


def test_the_launch_passes_the_file_and_leaves_precision_to_it(tmp_path, l8):
    path = write(tmp_path, "z3.json", AXOLOTL_Z3)
    got = launch.plan(ds_cfg(path, **{"train.precision": "bf16"}), l8, planned("80GiB", gpus=2))
    assert got.ds_config == str(path)
    acc = launch.accelerate_config(got)
    assert acc["distributed_type"] == "DEEPSPEED" and "mixed_precision" not in acc
    assert acc["deepspeed_config"] == {"deepspeed_config_file": str(path), "zero3_init_flag": True}
    with pytest.raises(RankwiseError, match="enables bf16"):  # the file says bf16, the preset fp16
        launch.plan(ds_cfg(path, **{"train.precision": "fp16"}), l8, planned("80GiB", gpus=2))


def test_the_fit_suggestions_offer_offload_by_dropping_the_file(tmp_path, l8):
    cfg = ds_cfg(write(tmp_path, "z3.json", AXOLOTL_Z3), **{"train.micro_batch": 16, "train.max_seq_len": 8192})
    from rankwise.advisor.fit import suggest_fixes

    hw = planned("24GiB", gpus=2)
    rows = suggest_fixes(l8, hw, cfg, "lora")
    off = [r for r in rows if r["patch"] and r["patch"].get("distributed.offload") == "params_and_optimizer"]
    assert off and off[0]["patch"]["distributed.deepspeed_config"] is None and "in place of" in off[0]["change"]
    assert assess(l8, with_values(cfg, off[0]["patch"]), hw).estimate.plan.offload == "params_and_optimizer"


def test_an_axolotl_file_naming_a_zero3_json_is_estimated_with_its_buckets(tmp_path):
    from rankwise.advisor.foreign import read
    from rankwise.advisor.foreign.report import judge

    write(tmp_path, "zero3_bf16.json", AXOLOTL_Z3)
    axo = tmp_path / "axo.yml"
    axo.write_text("base_model: meta-llama/Llama-3.1-8B\nadapter: lora\nlora_r: 16\nlora_alpha: 32\n"
                   "lora_target_linear: true\nsequence_len: 2048\nmicro_batch_size: 1\n"
                   "gradient_accumulation_steps: 4\nbf16: true\ndeepspeed: zero3_bf16.json\n")
    reading = read(str(axo))
    assert reading.cfg.distributed.deepspeed_config == str(tmp_path / "zero3_bf16.json")
    report = judge(reading, planned("80GiB", gpus=2))
    assert report.ctx.estimate.components["zero3_grad_bucket"] == 4096 * 4096 * 2


def test_an_accelerate_config_naming_a_json_reads_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # accelerate launch opens it from the current directory
    write(tmp_path, "off.json", OFFLOAD)
    write(tmp_path, "z2.json", {"zero_optimization": {"stage": 2}})
    for name, expect in (("off.json", {"distributed.strategy": "deepspeed", "distributed.offload":
                                       "params_and_optimizer", "distributed.deepspeed_config": str(tmp_path / "off.json")}),
                         ("z2.json", {"distributed.strategy": "ddp"})):
        acc = tmp_path / f"acc-{name}.yaml"
        acc.write_text(yaml.safe_dump({"compute_environment": "LOCAL_MACHINE", "distributed_type": "DEEPSPEED",
                                       "num_processes": 4, "deepspeed_config": {"deepspeed_config_file": name}}))
        got = read_launcher(acc)
        assert got.gpus == 4 and {k: got.values[k] for k in expect} == expect
        assert ("distributed.deepspeed_config" in got.values) == (name == "off.json")
    assert any("ZeRO-2" in n for n in read_launcher(tmp_path / "acc-z2.json.yaml").notes)


@pytest.mark.slow
def test_the_worker_runs_deepspeed_with_the_files_sizes(tmp_path):
    """One ZeRO-3 rank on the CPU with the environment `accelerate launch` gives rankwise's accelerate.yaml for a
    file (its deepspeed_config keys, the file's path, no mixed_precision): the HF Trainer accepts it, fills the
    file's "auto" values, and DeepSpeed's engine builds its gradient bucket at the file's size."""
    from rankwise.trainer.launch import Launch, accelerate_config, free_port

    data = json.loads(json.dumps(AXOLOTL_Z3))
    data["zero_optimization"]["reduce_bucket_size"] = 123457
    data["bf16"]["enabled"] = "auto"  # the CPU demo trains in fp32
    path = write(tmp_path, "z3.json", data)
    ds = accelerate_config(Launch("deepspeed", processes=2, ds_config=str(path)))["deepspeed_config"]
    probe = bench_module("zero3_load_probe").launch_env(free_port())
    extra = {k: v for k, v in probe.items() if not k.startswith("ACCELERATE_DEEPSPEED")}
    extra.update(ACCELERATE_DEEPSPEED_CONFIG_FILE=ds["deepspeed_config_file"],
                 ACCELERATE_DEEPSPEED_ZERO3_INIT=str(ds["zero3_init_flag"]).lower(),
                 ACCELERATE_CONFIG_DS_FIELDS=",".join(ds))
    runs = tmp_path / "runs"
    p = train(runs, "--set", "train.max_steps=4", preset="demo-cpu", extra_env=extra)  # one ZeRO-3 checkpoint
    run = only_run(runs)
    assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    assert "distributed: DEEPSPEED" in (run / "train.log").read_text()
    # DeepSpeed keeps the config it ran with in its checkpoint (a file the run wrote: loaded in full)
    import torch

    states = next((run / "checkpoints").glob("checkpoint-*/global_step*/*model_states.pt"))
    ran = torch.load(states, weights_only=False, map_location="cpu")["ds_config"]["zero_optimization"]
    h = load_model(str(Path(__file__).resolve().parent.parent / "presets" / "assets" / "tiny-llama")).hidden_size
    plan = Plan.from_config(ds_cfg(path), gpus=2)
    assert ran["reduce_bucket_size"] == sharding.reduce_bucket_elems(plan, h) == 123457  # as written
    assert ran["stage3_prefetch_bucket_size"] == int(0.9 * h * h)  # "auto" filled as deepspeed_file.fill says
    assert deepspeed_file.fill(plan.ds_prefetch_bucket, int(0.9 * h * h), 0) == ran["stage3_prefetch_bucket_size"]
    assert ran["max_live_parameters"] == plan.ds_max_live == 0


def test_estimate_takes_a_deepspeed_file_as_a_flag(tmp_path):
    """--deepspeed-config FILE: the same estimate as a preset naming it (strategy deepspeed implied); beside another
    --strategy, or a file that is not there, exit 2 naming it."""
    path = write(tmp_path, "z3.json", AXOLOTL_Z3)
    base = CLI + ["estimate", "--model", "llama-3.1-8b", "--method", "lora", "--gpu-mem", "80GiB", "--gpus", "2",
                  "--json"]
    got = json.loads(subprocess.run(base + ["--deepspeed-config", str(path)], capture_output=True, text=True,
                                    env=env(), check=True).stdout)
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": {"name": "llama-3.1-8b"}, "method": "lora", "distributed": {
        "gpus": 2, "strategy": "deepspeed", "deepspeed_config": "z3.json"}}))
    same = json.loads(subprocess.run(CLI + ["estimate", "--preset", str(preset), "--gpu-mem", "80GiB", "--gpus", "2",
                                            "--json"], capture_output=True, text=True, env=env(), check=True).stdout)
    assert got["peak_gib"] == same["peak_gib"] and got["plan"]["strategy"] == "deepspeed"
    assert got["components"]["zero3_grad_bucket"] < 0.1  # GiB: hidden_size**2, not 5e8 elements
    for extra, said in ((["--strategy", "fsdp"], "set distributed.strategy: deepspeed"),
                        (["--deepspeed-config", str(tmp_path / "nope.json")], "not found")):
        args = base + (["--deepspeed-config", str(path)] if "--strategy" in extra else []) + extra
        p = subprocess.run(args, capture_output=True, text=True, env=env())
        assert p.returncode == 2 and said in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_a_run_keeps_its_own_copy_of_the_file(tmp_path):
    """The run dir holds the DeepSpeed JSON it trains with: its config.yaml and accelerate.yaml name the copy, so a
    resume after the original is edited or moved runs the settings the run started with."""
    from rankwise.advisor.loader import load_config
    from rankwise.trainer import rundir

    original = write(tmp_path, "z3.json", AXOLOTL_Z3)
    run = rundir.create(tmp_path / "runs", "ds", ds_cfg(original))
    copy = run / rundir.DS_COPY
    saved = load_config(run / rundir.CONFIG)
    assert saved.distributed.deepspeed_config == str(copy.resolve()) and json.loads(copy.read_text()) == AXOLOTL_Z3
    original.write_text(json.dumps({"zero_optimization": {"stage": 2}}))  # edited after the start
    acc = yaml.safe_load(launch.write_config(launch.Launch("deepspeed", 2, ds_config=str(original)), run).read_text())
    assert acc["deepspeed_config"]["deepspeed_config_file"] == str(copy.resolve())
    assert json.loads(copy.read_text()) == AXOLOTL_Z3
    assert Plan.from_config(saved, gpus=2).ds_reduce_bucket == "auto"  # the resumed run's estimate reads the copy


def test_a_files_optimizer_section_is_the_one_estimated(l8):
    """The HF Trainer lets DeepSpeed build the optimizer a file names: QLoRA's paged 8-bit AdamW goes unused and the
    adapter's states are DeepSpeed's two fp32 moments."""
    fixtures = Path(__file__).parent / "fixtures" / "deepspeed"
    cfg = with_values(ds_cfg(fixtures / "z3-auto.json"), {"method": "qlora"})
    own = Plan.from_config(cfg, gpus=2)
    theirs = Plan.from_config(with_values(cfg, {"distributed.deepspeed_config": str(fixtures / "z3-optimizer.json")}),
                              gpus=2)
    assert own.optimizer == "paged_adamw_8bit" and theirs.optimizer == "adamw_torch"
    a, b = estimate(l8, own), estimate(l8, theirs)
    # 8 bytes a weight where 8-bit AdamW held 2 and its block constants
    assert 3.9 < b.components["optimizer_states"] / a.components["optimizer_states"] < 4
