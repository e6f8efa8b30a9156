"""Several processes through `accelerate launch`, on the CPU (gloo): the multi-GPU path, testable anywhere.

The slow test trains the shipped tiny model with `rankwise train --processes 2`: both ranks
train in one process group, rank 0 alone writes the event log, and the adapter reloads.
"""
from __future__ import annotations

import math
import subprocess

import pytest
import yaml

from train_helpers import CLI, env, events, of_type, only_run, train

MODEL = "presets/assets/tiny-llama"


@pytest.mark.slow
def test_two_cpu_processes_train_one_log_one_adapter(tmp_path):
    out = train(tmp_path, "--processes", "2", "--json-events", "--set", "train.max_steps=4",
                "--set", "train.micro_batch=8", "--set", "train.save_steps=2", timeout=600)
    run_dir = only_run(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:] + (run_dir / "train.log").read_text()[-3000:]
    conf = yaml.safe_load((run_dir / "accelerate.yaml").read_text())
    assert (conf["num_processes"], conf["use_cpu"]) == (2, True)

    evs = events(run_dir)
    starts = of_type(evs, "start")
    assert len(starts) == 1 and starts[0]["processes"] == 2  # one writer: rank 0
    steps = [e["step"] for e in of_type(evs, "step")]
    assert steps == [1, 2, 3, 4]  # rank 0's steps, each once
    assert len(of_type(evs, "end")) == 1 and of_type(evs, "end")[0]["status"] == "finished"
    # both ranks share the data: an epoch is ceil(rows / (micro_batch x 2 processes)) steps, not rows / 8
    rows = starts[0]["train_rows"]
    assert of_type(evs, "step")[0]["epoch"] == pytest.approx(1 / math.ceil(rows / (8 * 2)), abs=1e-3)
    assert (run_dir / "summary.json").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert all((p / ".rankwise-complete").is_file() for p in (run_dir / "checkpoints").iterdir())

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 42, 7, 99, 3]])
    base = AutoModelForCausalLM.from_pretrained(MODEL)
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL), run_dir / "adapter")(ids).logits
    assert not torch.allclose(before, tuned, atol=1e-3)


def test_print_launch_creates_the_run_and_prints_the_command(tmp_path):
    out = subprocess.run([*CLI, "train", "--preset", "demo-cpu", "--runs-dir", str(tmp_path), "--processes", "2",
                          "--nodes", "2", "--main-addr", "10.0.0.1", "--main-port", "29511", "--print-launch"],
                         capture_output=True, text=True, timeout=120, env=env(), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    run_dir = only_run(tmp_path)
    line = out.stdout.strip()
    assert line.startswith("CUDA_VISIBLE_DEVICES= accelerate launch --config_file ")
    for part in ("--num_processes 4", "--num_machines 2", "--machine_rank ${NODE_RANK}", "--main_process_ip 10.0.0.1",
                 "--main_process_port 29511", f"-m rankwise.trainer.worker {run_dir.resolve()}"):
        assert part in line, line
    assert (run_dir / "accelerate.yaml").is_file() and not (run_dir / "events.jsonl").exists()


@pytest.mark.parametrize("flags,what", [
    (["--gpus", "2"], "no GPUs visible"),
    (["--processes", "2", "--nodes", "2"], "--main-addr"),
    (["--print-launch"], "--print-launch is for runs of several processes"),
])
def test_bad_launch_flags_exit_2_before_the_run_dir(tmp_path, flags, what):
    out = subprocess.run([*CLI, "train", "--preset", "demo-cpu", "--runs-dir", str(tmp_path), *flags],
                         capture_output=True, text=True, timeout=120, env=env(CUDA_VISIBLE_DEVICES=""),
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and what in out.stderr, out.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_panel_shows_every_gpus_memory():
    from rankwise.trainer.events import Start, Step
    from rankwise.tui.panel import RunView, memory_text

    view = RunView()
    view.update(Start(device="cuda", device_total_bytes=80 * 2**30))
    view.update(Step(step=1, mem_bytes=30 * 2**30, peak_mem_bytes=31 * 2**30, gpu_mem_bytes=[31 * 2**30, 29 * 2**30]))
    text = memory_text(view).plain
    assert "per GPU 0: 31.0 GiB · 1: 29.0 GiB" in text
