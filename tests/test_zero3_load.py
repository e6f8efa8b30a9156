"""How transformers loads a model under rankwise's ZeRO-3 launch (bench/zero3_load_probe.py, real DeepSpeed on its
CPU accelerator): what memory._zero3_load and trainer/loading.py's quantized_device_map assume."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import RANK_VARS, adapter_shapes, bench_module, events, of_type, only_run, run_ranks, tail_log, train

from rankwise.advisor.memory import Plan, estimate
from rankwise.advisor.model import spec_from_config

pytest.importorskip("deepspeed")  # the dev extra installs it

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    out = tmp_path_factory.mktemp("z3") / "load.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "zero3_load_probe.py"), str(out)], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_launch_turns_zero3_on_before_the_model_loads(probed):
    """accelerate launch's environment for rankwise's config, TrainingArguments first (the worker's order)."""
    assert probed["zero3_enabled"] and probed["distributed_type"].endswith("DEEPSPEED")


def test_a_16_bit_base_is_partitioned_as_it_loads(probed):
    """zero.Init: each rank holds its partition only (here the one rank of one: an empty local tensor)."""
    got = probed["16bit"]
    assert got["partitioned"] and got["embed_shape"] == [0] and got["embed_full"] == [96, 64]
    assert got["proj_shape"] == [0] and got["proj_full"] == [64, 64]


def test_a_4_bit_base_is_loaded_whole_which_the_estimate_counts(probed):
    """No zero.Init for a quantized model: every rank holds all of it (packed NF4 in bf16 storage, 16-bit
    embeddings) until DeepSpeed partitions it; memory._zero3_load counts that start."""
    got = probed["4bit"]
    assert not got["partitioned"] and got["proj"] == "Linear4bit"
    assert got["proj_shape"] == [64 * 64 // 4, 1] and got["proj_dtype"] == "bfloat16"  # 4 NF4 values a bf16 element
    assert got["embed_shape"] == got["embed_full"] == [96, 64]
    spec = spec_from_config("probe", "local", bench_module("zero3_load_probe").CONFIG)
    est = estimate(spec, Plan("qlora", targets="all-linear", gpus=2, strategy="deepspeed"))
    assert any("ZeRO-3 starts from the quantized base whole" in a for a in est.assumptions)


def test_the_worker_passes_no_device_map_under_zero3_which_transformers_refuses(probed):
    assert probed["device_map"] is None
    assert "not compatible with passing a `device_map`" in probed["4bit_device_map_error"]


def test_the_worker_trains_lora_under_zero3_on_one_rank(tmp_path):
    """`rankwise train` with the environment accelerate launch gives one rank of rankwise's ZeRO-3 config: the
    worker's own path (arguments, then the model under zero.Init, DeepSpeed's engine, its checkpoints, the adapter
    gathered and saved) on the CPU."""
    from rankwise.trainer.launch import free_port

    runs = tmp_path / "runs"
    p = train(runs, preset="demo-cpu", extra_env=bench_module("zero3_load_probe").launch_env(free_port()))
    run = only_run(runs)
    assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    assert any((c / "global_step12").is_dir() for c in (run / "checkpoints").iterdir())  # DeepSpeed's own checkpoint
    shapes = adapter_shapes(run)
    assert shapes and all(0 not in s for s in shapes.values())  # gathered, not the empty local partitions
    assert all(s[0] == 16 for k, s in shapes.items() if "lora_A" in k)


@pytest.mark.parametrize("preset", ["demo-cpu", "demo-cpu-qlora"])
def test_two_zero3_ranks_partition_train_and_gather_the_adapter(tmp_path, preset):
    """Two worker ranks (torch.distributed.run, as accelerate's launcher starts them) under rankwise's ZeRO-3
    environment: both train to the end, both take part in the save (a collective under ZeRO-3), and rank 0 writes
    the whole adapter, gathered from the partitions (none empty). QLoRA: the 4-bit base loaded whole on each rank
    (no device_map), partitioned after, its checkpoints saved (with bitsandbytes' CPU repacking kept off)."""
    env = {k: v for k, v in bench_module("zero3_load_probe").launch_env(0).items() if k not in RANK_VARS}
    p, run = run_ranks(tmp_path / "runs", preset, env)
    assert p.returncode == 0, p.stderr[-2000:] + tail_log(run)
    log = (run / "train.log").read_text()
    assert "rank 1 rankwise.worker: run" in log and "finished at step 12" in log
    assert "deepspeed_shm_comm" not in log  # gloo's all-reduce, not DeepSpeed's op compiled at the start (process.py)
    assert of_type(events(run), "end")[-1]["status"] == "finished"
    shapes = adapter_shapes(run)
    assert shapes and all(0 not in s for s in shapes.values())
    assert shapes["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"] == (16, 128)
