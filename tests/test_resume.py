"""A run killed with SIGKILL and resumed ends where an uninterrupted run ends."""
from __future__ import annotations

import os
import signal

import pytest
from train_helpers import adapter_weights, events, of_type, only_run, tail_log, train, wait_for

from rankwise.trainer import rundir

STEPS = ["--set", "train.max_steps=12", "--set", "train.save_steps=4"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    ref = train(tmp_path / "ref", *STEPS)
    assert ref.returncode == 0, ref.stderr
    ref_dir = only_run(tmp_path / "ref")

    runs = tmp_path / "runs"
    # the run holds after step 9 (checkpoints 4 and 8 behind it) until a signal; SIGKILL is one no handler sees
    proc = train(runs, *STEPS, "--detach", extra_env={"RANKWISE_TEST_HOLD_IN": "training:9"})
    run_dir = runs / proc.stdout.strip().splitlines()[-1]
    evs = wait_for(run_dir, lambda evs: "test seam: holding" in tail_log(run_dir))
    os.kill(of_type(evs, "start")[0]["pid"], signal.SIGKILL)  # no handler runs: a crash
    killed_at = max(e["step"] for e in of_type(events(run_dir), "step"))
    assert not of_type(events(run_dir), "end") and killed_at == 9
    assert rundir.latest_checkpoint(run_dir)[0] == 8

    # a checkpoint without its marker (a save cut short) is never resumed from
    (run_dir / "checkpoints" / "checkpoint-8" / rundir.MARKER).unlink()
    assert rundir.latest_checkpoint(run_dir)[0] == 4
    res = train(runs, "--resume", run_dir.name, preset=None, quick=False)
    assert res.returncode == 0, res.stderr + tail_log(run_dir)
    assert "from checkpoint 4" in res.stderr
    evs = events(run_dir)
    starts = of_type(evs, "start")
    assert len(starts) == 2 and starts[1]["resumed_from_step"] == 4 and starts[1]["max_steps"] == 12
    assert of_type(evs, "end")[-1]["status"] == "finished" and of_type(evs, "end")[-1]["step"] == 12
    after = [e["step"] for e in evs[evs.index(starts[1]):] if e["type"] == "step"]
    assert after == list(range(5, 13))  # the same schedule: it continues at step 5

    got, want = adapter_weights(run_dir / "adapter"), adapter_weights(ref_dir / "adapter")
    assert got.keys() == want.keys()
    import torch

    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-5, rtol=1e-4), k
    # the loss curve after the resume is the uninterrupted run's
    ref_loss = {e["step"]: e["loss"] for e in of_type(events(ref_dir), "step")}
    for e in evs[evs.index(starts[1]):]:
        if e["type"] == "step":
            assert e["loss"] == pytest.approx(ref_loss[e["step"]], rel=1e-4)


def test_resume_refuses_a_finished_or_unknown_run(tmp_path):
    runs = tmp_path / "runs"
    res = train(runs, "--resume", "nope", preset=None, quick=False, timeout=60)
    assert res.returncode == 2 and "no runs directory" in res.stderr
    run_dir = runs / "done-1"
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_text('{"type": "start", "time": 1, "pid": 1}\n'
                                          '{"type": "end", "time": 2, "status": "finished", "step": 3}\n')
    res = train(runs, "--resume", "done-1", preset=None, quick=False, timeout=60)
    assert res.returncode == 2 and "already finished" in res.stderr
