"""The CUDA OOM retry: halve the micro-batch, double accumulation, resume from the last complete
checkpoint; give up after 3 retries. The OOM itself is faked on CPU at the narrowest seam
(RANKWISE_TEST_OOM_AT_STEPS raises torch.OutOfMemoryError as a step begins); the retry is real."""
from __future__ import annotations

import pytest
import yaml
from train_helpers import events, of_type, only_run, summary, tail_log, train

OOM = "RANKWISE_TEST_OOM_AT_STEPS"


@pytest.mark.slow
def test_oom_retries_with_half_the_micro_batch_from_the_last_checkpoint(demo_training):
    """The session's demo run (conftest.py): micro_batch 4, grad_accum 1, a checkpoint every 4 steps and
    an OOM as step 6 begins."""
    run_dir, proc = demo_training
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    evs = events(run_dir)
    (retry,) = of_type(evs, "retry")
    assert (retry["attempt"], retry["micro_batch"], retry["grad_accum"], retry["from_step"]) == (1, 2, 2, 4)
    assert "out of memory" in retry["reason"]
    after = [e["step"] for e in evs[evs.index(retry):] if e["type"] == "step"]
    assert after == list(range(5, 13))  # resumed at the checkpoint, same schedule to the same end
    end = of_type(evs, "end")[-1]
    assert end["status"] == "finished" and end["step"] == 12
    s = summary(run_dir)
    assert (s["micro_batch"], s["grad_accum"], s["oom_retries"]) == (2, 2, 1)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())  # a later --resume starts with what fitted
    assert (cfg["train"]["micro_batch"], cfg["train"]["grad_accum"]) == (2, 2)
    assert "retry 1: " in proc.stdout and "micro_batch 2, grad_accum 2, from step 4" in proc.stdout  # the panel says it


@pytest.mark.slow
def test_oom_gives_up_after_three_retries_naming_the_estimate_and_fixes(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "train.micro_batch=8", "--set", "train.grad_accum=1", extra_env={OOM: "2,3,4,5"})
    run_dir = only_run(runs)
    assert proc.returncode == 1, proc.stderr + tail_log(run_dir)
    evs = events(run_dir)
    assert [(r["attempt"], r["micro_batch"], r["grad_accum"]) for r in of_type(evs, "retry")] == [
        (1, 4, 2), (2, 2, 4), (3, 1, 8)]
    (err,) = of_type(evs, "error")
    assert "out of memory at micro_batch 1" in err["message"] and "estimated peak" in err["message"]
    assert "qlora" in err["hint"] and "max_seq_len" in err["hint"]
    end = of_type(evs, "end")[-1]
    assert (end["status"], end["exit_code"]) == ("failed", 1)
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_oom_at_micro_batch_1_fails_at_once(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, "--set", "train.micro_batch=1", "--set", "train.max_steps=4", extra_env={OOM: "2"})
    run_dir = only_run(runs)
    assert proc.returncode == 1
    evs = events(run_dir)
    assert not of_type(evs, "retry")
    assert "micro_batch 1" in of_type(evs, "error")[0]["message"]
    assert summary(run_dir)["status"] == "failed" and summary(run_dir)["exit_code"] == 1
