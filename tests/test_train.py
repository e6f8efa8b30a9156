"""`rankwise train` end to end: real LoRA/QLoRA training of the shipped tiny Llama on CPU."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from train_helpers import (CLI, QUICK, env, events, has_control_chars, of_type, only_run, summary, tail_log, train,
                           wait_for, wait_for_run_dir)

from rankwise.trainer import rundir

MODEL = Path(__file__).resolve().parent.parent / "presets" / "assets" / "tiny-llama"


def _logits(model, tok):
    import torch

    batch = tok(["<|user|>\nWhat is the capital of France?</s>\n<|assistant|>\n"], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.slow
def test_lora_trains_the_loss_falls_and_the_adapter_reloads(lora_run):
    run_dir, proc, layers = lora_run  # the session's 16-step LoRA run at micro_batch 8 (conftest.py)
    # LoRA's base stays in plain full-precision linears on CPU (the 4-bit test asserts the opposite)
    assert layers and {(v["class"], v["weight"], v["quant_type"], v["dtype"]) for v in layers.values()} == {
        ("Linear", "Parameter", None, "torch.float32")}
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    assert not has_control_chars(proc.stdout + proc.stderr)  # not a terminal: plain lines only
    assert "kernels" not in proc.stdout + proc.stderr
    evs = events(run_dir)
    start, steps, end = of_type(evs, "start")[0], of_type(evs, "step"), of_type(evs, "end")[-1]
    assert (start["method"], start["device"], start["max_steps"], start["micro_batch"]) == ("lora", "cpu", 16, 8)
    assert start["estimate_peak_gib"] > 0 and start["train_rows"] + start["val_rows"] == 64
    assert start["device_name"] == "cpu" and start["planned_s"] > 0  # the time planner's seconds for the 16 steps
    assert [e["step"] for e in steps] == list(range(1, 17))
    first, last = sum(e["loss"] for e in steps[:3]) / 3, sum(e["loss"] for e in steps[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    # tokens are counted as batches are collated, which runs ahead of the steps: a step whose batch was
    # collated in an earlier window has no rate of its own; every other rate is positive
    rates = [e["tokens_per_s"] for e in steps if e["tokens_per_s"] is not None]
    assert len(rates) >= len(steps) // 2 and all(r > 0 for r in rates), [e["tokens_per_s"] for e in steps]
    assert all(e["peak_mem_bytes"] >= e["mem_bytes"] > 0 for e in steps)
    assert [e["step"] for e in of_type(evs, "checkpoint")] == [8, 16]
    assert [e["step"] for e in of_type(evs, "eval")] == [8, 16] and end["status"] == "finished" and end["exit_code"] == 0 and end["step"] == 16
    # every adapter got its gradient in the first 3 optimizer steps (the worker's AdapterUse looked once)
    assert [(e["step"], e["adapters"], e["unused"]) for e in of_type(evs, "adapters")] == [(3, len(layers), {})]
    assert not [e for e in of_type(evs, "diagnosis") if e["code"] == "adapter-unused"]
    s = summary(run_dir)
    assert s["status"] == "finished" and s["step"] == 16 and s["final_loss"] == steps[-1]["loss"]
    assert s["peak_mem_bytes"] > 0 and s["estimate_peak_gib"] > 0 and s["data"]["format"] == "chat"
    assert s["tokens_per_s"] > 0
    assert [c.name for _, c in rundir.complete_checkpoints(run_dir)] == ["checkpoint-8", "checkpoint-16"]
    assert "step 16/16" in proc.stdout  # the plain panel lines

    # the adapter reloads with peft and gives the logits of the last checkpoint, which differ from the base
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL)
    base = _logits(AutoModelForCausalLM.from_pretrained(MODEL), tok)
    final = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL), run_dir / "adapter"), tok)
    ckpt = _logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(MODEL),
                                             run_dir / "checkpoints" / "checkpoint-16"), tok)
    assert torch.allclose(final, ckpt, atol=1e-5)
    assert not torch.allclose(final, base, atol=1e-2)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_qlora_trains_in_4bit_and_the_loss_falls(qlora_run):
    run_dir, proc, layers = qlora_run  # the session's demo-cpu-qlora run at the preset's settings (conftest.py)
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    assert "kernels" not in proc.stdout + proc.stderr
    evs = events(run_dir)
    assert of_type(evs, "start")[0]["method"] == "qlora"
    steps = of_type(evs, "step")
    assert [e["step"] for e in steps] == list(range(2, 41, 2)) and steps[-1]["loss"] < 0.8 * steps[0]["loss"]
    # the model that trained: every adapted layer's base is a bitsandbytes 4-bit NF4 layer (packed uint8)
    assert len(layers) == 7 * 2  # all-linear on the tiny Llama's 2 layers: q, k, v, o, gate, up, down
    assert {(v["class"], v["weight"], v["quant_type"], v["dtype"]) for v in layers.values()} == {
        ("Linear4bit", "Params4bit", "nf4", "torch.uint8")}
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert "kernels-community" not in (run_dir / "train.log").read_text()


BAD_INPUT = {
    "missing model path": (["--set", "model.name=/nonexistent/model"], "model path not found"),
    "catalog-only model": (["--set", "model.name=llama-3.2-1b"], "has no weights on this machine"),
    "missing data": (["--set", "data.path=/nonexistent/data.jsonl"], "data.path not found"),
    "unknown key": (["--set", "lora.rank=8"], "unknown key 'lora.rank'"),
    "bad value": (["--set", "train.scheduler=sawtooth"], "train.scheduler"),
    "no such preset key group": (["--set", "nope.x=1"], "unknown key 'nope'"),
}
BAD_ROWS = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n'


def test_bad_rows_exit_2_before_the_run_dir_exists(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(BAD_ROWS)
    runs = tmp_path / "runs"
    proc = train(runs, "--set", f"data.path={data}", quick=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"{data}:2" in proc.stderr and "1 more bad row" in proc.stderr and "skip_bad_rows" in proc.stderr
    assert "Traceback" not in proc.stderr and not runs.exists()


def test_skipped_bad_rows_are_counted_in_the_data_event_and_training_goes_on(tmp_path):
    # the data event carries the first skipped rows as strings; the writer once refused them (the schema
    # checked every list field for whole numbers), so any run with a skipped row died at "data ready"
    good = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
    data = tmp_path / "some-bad.jsonl"
    data.write_text(good * 24 + "not json\n" + good * 8)
    runs = tmp_path / "runs"
    proc = train(runs, "--set", f"data.path={data}", "--set", "data.skip_bad_rows=true",
                 "--set", "train.max_steps=2", timeout=240)
    run_dir = only_run(runs)
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    ready = [e for e in of_type(events(run_dir), "data") if e.get("phase") == "ready"]
    assert ready and ready[-1]["skipped_rows"] == 1, ready
    assert ready[-1]["examples"] == [f"{data}:25: not valid JSON (Expecting value at column 1)"]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("data ready:"))  # the plain panel's line
    assert f"1 bad row skipped; e.g. {data}:25: not valid JSON" in line, line


try:
    import tensorboard  # noqa: F401
except ImportError:
    BAD_INPUT["tensorboard not installed"] = (["--set", "train.report_to=tensorboard"], "tensorboard is not installed")


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_and_creates_nothing(tmp_path, case):
    args, message = BAD_INPUT[case]
    runs = tmp_path / "runs"
    proc = train(runs, *args, quick=False, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not runs.exists()


def test_bad_preset_exits_2(tmp_path):
    proc = train(tmp_path / "runs", preset="no-such-preset", quick=False, timeout=60)
    assert proc.returncode == 2 and "unknown preset" in proc.stderr and not (tmp_path / "runs").exists()


def test_unwritable_runs_dir_exits_2_before_writing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = train(blocker / "runs", quick=False, timeout=60)
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        proc = train(ro / "runs", quick=False, timeout=60)
        assert proc.returncode == 2 and "not writable" in proc.stderr and not (ro / "runs").exists()


def test_run_ids_never_collide(tmp_path):
    from rankwise.advisor.config import RunConfig

    cfg = RunConfig()
    made = {rundir.create(tmp_path, "same/../name", cfg, now=1_800_000_000) for _ in range(5)}
    assert len(made) == 5 and all(p.parent == tmp_path and (p / "config.yaml").is_file() for p in made)
    assert all(".." not in p.name and "/" not in p.name for p in made)


@pytest.mark.slow
def test_detach_prints_the_run_id_last_and_the_run_finishes(tmp_path):
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    proc = train(runs, "--detach", "--set", "train.max_steps=6")
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip().splitlines()[-1]
    assert (runs / run_id / "config.yaml").is_file()
    assert time.monotonic() - t0 < 30  # returned without waiting for the training
    evs = wait_for(runs / run_id, lambda evs: of_type(evs, "end"))
    assert of_type(evs, "end")[0]["status"] == "finished" and (runs / run_id / "adapter").is_dir()


@pytest.mark.slow
def test_sigterm_to_the_worker_checkpoints_and_ends_interrupted(tmp_path):
    """What `rankwise stop` does: SIGTERM to the pid of the start event."""
    runs = tmp_path / "runs"
    proc = train(runs, "--detach", "--set", "train.max_steps=8", "--set", "train.save_steps=100",
                 extra_env={"RANKWISE_TEST_HOLD_IN": "training:3"})  # holds after step 3 until the signal
    run_dir = runs / proc.stdout.strip().splitlines()[-1]
    evs = wait_for(run_dir, lambda evs: "test seam: holding" in tail_log(run_dir))
    os.kill(of_type(evs, "start")[0]["pid"], signal.SIGTERM)
    evs = wait_for(run_dir, lambda evs: of_type(evs, "end"))
    end = of_type(evs, "end")[0]
    assert end["status"] == "interrupted" and end["exit_code"] == 130 and 3 <= end["step"] < 8
    assert rundir.latest_checkpoint(run_dir)[0] == end["step"]  # a complete checkpoint at the stop
    assert of_type(evs, "checkpoint")[-1]["step"] == end["step"]
    assert summary(run_dir)["status"] == "interrupted" and not (run_dir / "adapter").exists()

    # resumed in the foreground: follows the new session to its own end (the old `end` is history)
    res = train(runs, "--resume", run_dir.name, preset=None, quick=False)
    assert res.returncode == 0, res.stderr + tail_log(run_dir)
    assert f"step {end['step'] + 1}/8" in res.stdout and f"step {end['step']}/8" not in res.stdout
    assert of_type(events(run_dir), "end")[-1]["status"] == "finished" and (run_dir / "adapter").is_dir()


@pytest.mark.slow
def test_ctrl_c_in_the_foreground_stops_the_worker_cleanly_exit_130(tmp_path):
    runs = tmp_path / "runs"
    cmd = CLI + ["train", "--preset", "demo-cpu", "--runs-dir", str(runs), *QUICK, "--set", "train.save_steps=100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(RANKWISE_TEST_HOLD_IN="training:2"),  # holds after step 2 until the signal
                            stdin=subprocess.DEVNULL)
    run_dir = wait_for_run_dir(runs)
    wait_for(run_dir, lambda evs: "test seam: holding" in tail_log(run_dir))
    proc.send_signal(signal.SIGINT)  # what the terminal does on Ctrl-C (the worker is in its own session)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    end = of_type(events(run_dir), "end")[0]
    assert end["status"] == "interrupted" and rundir.latest_checkpoint(run_dir)[0] == end["step"]
    assert "Traceback" not in err and "--resume" in err and not has_control_chars(out + err)


@pytest.mark.slow
def test_ctrl_c_while_loading_exits_130_without_a_traceback(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, "--detach")
    run_dir = runs / proc.stdout.strip().splitlines()[-1]
    pid = None
    deadline = time.monotonic() + 60
    while pid is None and time.monotonic() < deadline:  # the worker is up once it logs; no start event yet
        if "loading libraries" in tail_log(run_dir):
            import psutil

            pid = next(p.pid for p in psutil.process_iter(["cmdline"])
                       if str(run_dir) in " ".join(p.info["cmdline"] or []))
        time.sleep(0.02)
    os.kill(pid, signal.SIGINT)
    evs = wait_for(run_dir, lambda evs: of_type(evs, "end"), timeout=60)
    assert of_type(evs, "end")[0]["status"] == "interrupted" and of_type(evs, "end")[0]["exit_code"] == 130
    assert not of_type(evs, "step")
    assert "Traceback" not in (run_dir / "train.log").read_text()


@pytest.mark.slow
def test_root_preset_with_json_events_prints_only_json_lines(tmp_path):
    import json

    runs = tmp_path / "runs"
    p = subprocess.run(CLI + ["--preset", "demo-cpu", "--runs-dir", str(runs), "--set", "train.max_steps=3",
                              "--set", "train.logging_steps=1"],
                       capture_output=True, text=True, env=env(), timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and "step 3/3" in p.stdout  # `rankwise --preset` is `rankwise train --preset`
    p = train(runs, "--json-events", "--set", "train.max_steps=3")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    assert "start" in [e["type"] for e in lines] and lines[-1]["type"] == "end" and lines[-1]["status"] == "finished"
