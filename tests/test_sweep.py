"""`rankwise sweep`: real tiny-model trials on CPU, resume, two workers on one sweep folder, bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from train_helpers import CLI, env

QUICK = ["--steps", "4", "--no-prune"]


def sweep(tmp: Path, *args, timeout: float = 400) -> subprocess.CompletedProcess:
    cmd = CLI + ["sweep", "--preset", "demo-cpu", "--runs-dir", str(tmp / "runs"),
                 "--sweep-dir", str(tmp / "sweep"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(), stdin=subprocess.DEVNULL)


def run_dirs(tmp: Path, rank: int) -> list[Path]:
    return sorted((tmp / "runs").glob(f"demo-cpu-sweep-r{rank}-*"))


# ------------------------------------------------------------------ bad input (fast)


@pytest.mark.parametrize("args, words", [
    (["--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["--preset", "demo-cpu", "--ranks", "4,eight"], "--ranks '4,eight'"),
    (["--preset", "demo-cpu", "--ranks", "0,4"], "ranks must be whole numbers >= 1"),
    (["--preset", "demo-cpu", "--steps", "0"], "--steps 0"),
    (["--preset", "demo-cpu", "--threshold", "5"], "--threshold 5"),
    (["--preset", "llama3.1-8b-instruct-lora-80gb"], "has no weights on this machine"),  # no weights here to train
    (["--preset", "llama3.1-8b-instruct-lora-80gb", "--gpu-mem", "16GiB"], "no rank in [4, 8, 16, 32, 64] fits the GPU"),
    (["--preset", "demo-cpu", "--storage", "postgresql://db/sweeps"], "--storage postgresql://db/sweeps: sweeps no longer"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, args, words):
    proc = subprocess.run(CLI + ["sweep", "--runs-dir", str(tmp_path / "runs"), *args], capture_output=True,
                          text=True, env=env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_pruner_stops_only_clearly_worse_trials_in_their_second_half():
    from rankwise.trainer.sweep import clearly_worse

    best = {"rank": 32, "status": "complete", "evals": [[2, 2.0], [4, 1.8], [6, 1.6], [8, 1.5]]}
    assert not clearly_worse(3.0, 2, 8, [best])  # first half: too early to judge
    assert clearly_worse(2.2, 4, 8, [best])  # 22% worse than 1.8 at the same step
    assert not clearly_worse(1.9, 4, 8, [best])  # 5.6% worse: not clearly
    assert not clearly_worse(3.0, 8, 8, [best])  # already at the end: let it finish
    assert not clearly_worse(3.0, 5, 8, [best])  # no finished trial has an eval at this step
    assert not clearly_worse(3.0, 4, 8, [])  # nothing finished yet: nothing to compare with


CLAIMER = """
import sys, time
from rankwise.trainer.sweep_trials import Ledger
book, got = Ledger(sys.argv[1]), []
while (t := book.claim("sweep")) is not None:
    got.append(t["rank"])
    book.update(t, status="complete")
print(",".join(map(str, got)))
"""


def test_processes_sharing_a_sweep_folder_claim_each_trial_once(tmp_path):
    """The claim is made under the folder's file lock: four processes, 24 trials, none taken twice."""
    import sys

    from rankwise.trainer.sweep_trials import Ledger

    ranks = list(range(1, 25))
    assert Ledger(tmp_path).enqueue("sweep", ranks) == ranks
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    claimed = [int(r) for p in procs for r in p.communicate(timeout=120)[0].strip().split(",") if r]
    assert sorted(claimed) == ranks  # every trial once, by one process
    assert {t["status"] for t in Ledger(tmp_path).trials("sweep")} == {"complete"}
    assert Ledger(tmp_path).enqueue("sweep", [4, 48]) == [48]  # done ranks are never queued again


def test_a_running_trial_is_claimed_again_only_when_its_owner_is_gone(tmp_path):
    import sys

    from rankwise.trainer import sweep_trials as st

    book = st.Ledger(tmp_path)
    book.enqueue("sweep", [8])
    mine = book.claim("sweep")
    assert mine["rank"] == 8 and not mine["taken_over"] and book.claim("sweep") is None  # alive, beating: ours
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with book._change() as trials:  # as if another sweep process on this machine had claimed it, then died
        trials["sweep-r8"].update(pid=int(dead.stdout), run_dir=str(tmp_path / "run"))
    again = book.claim("sweep")
    assert again["taken_over"] and again["run_dir"] == str(tmp_path / "run")  # its run dir goes with it
    assert not book.update(mine, status="complete")  # the first owner lost it: its word no longer counts
    with book._change() as trials:  # another machine's sweep process, silent for longer than the grace period
        trials["sweep-r8"].update(host="elsewhere", beat=time.time() - st.GRACE_S - 1)
    third = book.claim("sweep")
    assert third["taken_over"] and book.claim("sweep") is None
    book.requeue(third)  # Ctrl-C gives it back to the queue, with its run dir
    (t,) = book.trials()
    assert (t["status"], t["run_dir"]) == ("queued", str(tmp_path / "run"))
    assert not book.claim("sweep")["taken_over"]  # a queued trial is claimed as queued


def test_a_claim_keeps_beating_while_its_block_runs_and_learns_when_it_is_lost(tmp_path, monkeypatch):
    from rankwise.trainer import sweep_trials as st

    monkeypatch.setattr(st, "HEARTBEAT_S", 0.05)
    book = st.Ledger(tmp_path)
    book.enqueue("sweep", [8])
    mine = book.claim("sweep")
    with book.beating(mine) as lost:
        deadline = time.monotonic() + 30
        while book.trials()[0]["beat"] == mine["beat"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert book.trials()[0]["beat"] > mine["beat"]  # beating while the block (e.g. the data scan) runs
        with book._change() as trials:  # another process claims it (as if ours had gone quiet)
            trials["sweep-r8"]["token"] = "theirs"
        assert lost.wait(30)


def test_a_taken_over_run_is_followed_from_its_latest_start(tmp_path):
    from rankwise.trainer.sweep import _last_start

    assert _last_start(tmp_path) == 0  # no log yet
    first = '{"type": "start", "time": 1, "pid": 10}\n{"type": "end", "time": 2, "status": "interrupted"}\n'
    (tmp_path / "events.jsonl").write_text(first + '{"type": "start", "time": 3, "pid": 11}\n{"type": "step", "time": 4, "step": 1}\n')
    assert _last_start(tmp_path) == len(first.encode())


def test_trials_follow_the_one_alpha_lr_parametrisation(tmp_path):
    """alpha is held at every rank; the lr moves with rank only where the parametrisation says (rsLoRA:
    the update scale alpha/sqrt(r) grows with r, so the lr falls as sqrt(r0/r)... times sqrt, see coupling)."""
    from rankwise.advisor import coupling
    from rankwise.trainer import sweep as sw

    p = sw.plan("demo-cpu", [], [4, 16, 64], 4, None, None, str(tmp_path / "s"), str(tmp_path / "runs"), None)
    assert [(c.lora.alpha, c.train.lr) for c in (sw.trial_config(p, r) for r in (4, 16, 64))] == [(32, 3e-3)] * 3
    rs = sw.plan("demo-cpu", ["lora.use_rslora=true"], [4, 16, 64], 4, None, None, str(tmp_path / "s2"),
                 str(tmp_path / "runs"), None)
    lrs = [sw.trial_config(rs, r).train.lr for r in (4, 16, 64)]
    assert lrs[1] == 3e-3 and lrs[0] > lrs[1] > lrs[2]  # the preset's rank keeps its lr
    assert lrs[2] == pytest.approx(3e-3 * coupling.learning_rate(None, 64, 32, True)
                                   / coupling.learning_rate(None, 16, 32, True), rel=1e-2)
    grid = sw.plan("demo-cpu", [], [4, 8], 4, None, None, str(tmp_path / "s3"), str(tmp_path / "runs"), None,
                   lrs=sw.parse_lrs("1e-4,4e-4"))
    assert grid.phases() == ["sweep-lr0.0001", "sweep-lr0.0004"]
    assert sw.trial_config(grid, 8, "sweep-lr0.0004").train.lr == 4e-4
    assert any("too short to separate ranks" in n for n in p.notes)  # 4 steps x 8 x 128 tokens: far under capacity
    with pytest.raises(Exception, match="--lrs"):
        sw.parse_lrs("1e-4,fast")


# ------------------------------------------------------------------ real sweeps (slow)


def test_the_default_grid_keeps_within_the_models_width_and_given_ranks_are_kept_with_a_note(tmp_path):
    """Without --ranks, ranks above half the hidden size (where an adapter is no longer low-rank, the bound
    advise and check's rank-above-width keep to) are left out, named; --ranks above it runs, with a note."""
    from rankwise.advisor.model import load_model
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer import sweep as sw

    limit = load_model(load_config(resolve_preset("demo-cpu")).model.name).low_rank_limit
    assert limit < max(sw.DEFAULT_RANKS)  # the demo model is narrow enough to cut the grid
    runs = str(tmp_path / "runs")
    p = sw.plan("demo-cpu", [], None, 4, None, None, None, runs, None)
    assert p.ranks == [r for r in sw.DEFAULT_RANKS if r <= limit]
    cut = [r for r in sw.DEFAULT_RANKS if r > limit]
    assert any(f"r={', '.join(map(str, cut))} left out of the default grid" in n and "--ranks" in n for n in p.notes)
    given = sw.plan("demo-cpu", [], [8, 64], 4, None, None, None, runs, None)
    assert given.ranks == [8, 64]
    assert any(n.startswith("r=64 is above half") for n in given.notes)
    assert not any("half" in n for n in sw.plan("demo-cpu", [], [8, 16], 4, None, None, None, runs, None).notes)
    wide = sw.plan("llama3.1-8b-instruct-lora-80gb", [], None, 4, None, None, None, runs, None)
    assert wide.ranks == list(sw.DEFAULT_RANKS) and not any("half" in n for n in wide.notes)


@pytest.mark.slow
def test_a_learning_rate_grid_compares_each_rank_at_its_best(tmp_path):
    proc = sweep(tmp_path, "--ranks", "2,8", "--lrs", "3e-4,3e-3", *QUICK, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["lrs"] == [3e-4, 3e-3] and out["alpha"] == 32
    assert "learning rates 0.0003, 0.003 at each rank" in " ".join(proc.stderr.split())
    for t in out["trials"]:
        losses = {float(k): v for k, v in t["lr_losses"].items()}
        assert set(losses) == {3e-4, 3e-3} and all(v > 0 for v in losses.values())
        assert t["lr"] == min(losses, key=losses.get)  # the rank at its best learning rate
        assert t["val_loss"] == losses[t["lr"]]
    for r in (2, 8):  # one real run per rank and learning rate
        assert len(sorted((tmp_path / "runs").glob(f"demo-cpu-sweep-lr*-r{r}-*"))) == 2
    from rankwise.advisor.loader import load_config

    rec = load_config(tmp_path / "sweep" / "recommended.yaml")
    best = next(t for t in out["trials"] if t["rank"] == out["recommended_rank"])
    assert rec.train.lr == best["lr"] and rec.lora.alpha == 32


@pytest.mark.slow
def test_three_rank_sweep_recommends_a_rank_and_resumes_with_one_more(tmp_path):
    from rankwise.advisor.loader import load_config

    proc = sweep(tmp_path, "--ranks", "2,8,32", *QUICK, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [t["rank"] for t in out["trials"]] == [2, 8, 32]
    assert all(t["status"] == "complete" and t["val_loss"] > 0 and t["train_loss"] > 0 for t in out["trials"])
    assert out["recommended_rank"] in (2, 8, 32) and out["reason"]
    assert out["knee_rank"] in (None, 2, 8, 32)
    assert out["common_step"] == 4
    sweep_dir = tmp_path / "sweep"
    assert (sweep_dir / "trials.json").is_file() and (sweep_dir / "results.csv").read_text().startswith("rank,status")
    assert json.loads((sweep_dir / "results.json").read_text())["recommended_rank"] == out["recommended_rank"]
    rec = load_config(sweep_dir / "recommended.yaml")
    # alpha held at the preset's value (r 16, alpha unset: 32) at every rank, lr unchanged (advisor/coupling.py)
    assert rec.lora.r == out["recommended_rank"] and rec.lora.alpha == 32 and rec.train.lr == 3e-3
    assert rec.train.max_steps == 60  # the preset's own length, not the sweep's
    for r in (2, 8, 32):  # each trial is a real run with its own event log, same seed and steps
        (d,) = run_dirs(tmp_path, r)
        cfg = load_config(d / "config.yaml")
        assert (cfg.lora.r, cfg.lora.alpha, cfg.train.lr, cfg.train.max_steps, cfg.train.seed) == (r, 32, 3e-3, 4, 42)
        assert '"type": "end"' in (d / "events.jsonl").read_text()

    again = sweep(tmp_path, "--ranks", "2,8,16,32", *QUICK)  # the same sweep with one more rank
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming: r=2, 8, 32 already have a trial" in again.stderr
    assert [len(run_dirs(tmp_path, r)) for r in (2, 8, 16, 32)] == [1, 1, 1, 1]  # only r=16 ran
    assert "recommended rank: r=" in again.stdout and "rank (log2 axis)" in again.stdout


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_without_redoing_finished_trials(tmp_path):
    cmd = CLI + ["sweep", "--preset", "demo-cpu", "--runs-dir", str(tmp_path / "runs"), "--sweep-dir",
                 str(tmp_path / "sweep"), "--ranks", "4,16", "--steps", "6", "--no-prune",
                 "--set", "train.max_steps=8", "--set", "train.eval_steps=4"]  # a short "full length" for --validate
    # r=4's trial holds after its step 2 until the stop's signal: on a busy machine it could otherwise
    # finish before the Ctrl-C lands (the sweep then ends 0, with nothing to resume)
    held = {**env(), "RANKWISE_TEST_HOLD_IN": "training:2@-sweep-r4-"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=held)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # r=16 runs first (largest first); wait until r=4 is held in training
        r4 = run_dirs(tmp_path, 4)
        if r4 and "test seam: holding" in ((r4[0] / "train.log").read_text() if (r4[0] / "train.log").exists() else ""):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    assert "re-run the same command" in err
    assert len(run_dirs(tmp_path, 16)) == 1

    again = subprocess.run(cmd + ["--json", "--validate"], capture_output=True, text=True, env=env(), timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "r=16    running   demo-cpu-sweep" not in again.stderr  # the finished trial was not redone
    (r16,) = run_dirs(tmp_path, 16)
    starts = lambda d: (d / "events.jsonl").read_text().count('"type": "start"')
    assert starts(r16) == 1
    # the interrupted r=4 continues from its checkpoint in its own run dir (or, when the stop landed
    # after its last step, its finished run is taken over as it is): either way no second r=4 run
    (r4,) = run_dirs(tmp_path, 4)
    if "resumed from its checkpoint" in again.stderr:
        assert starts(r4) == 2
    else:
        assert "taken over from an earlier sweep process" in again.stderr and starts(r4) == 1
    out = json.loads(again.stdout)
    assert {t["rank"]: t["status"] for t in out["trials"]} == {4: "complete", 16: "complete"}
    v = out["validation"]  # the top two trained again at the preset's full length (8 steps)
    assert v["ranks"] == [4, 16] and v["winner"] in (4, 16) and out["recommended_rank"] == v["winner"]
    assert all(row["status"] == "complete" and row["val_loss"] > 0 for row in v["runs"].values())
    assert "at the preset's full length validation loss was" in out["reason"]
    for r in (4, 16):
        (d,) = sorted((tmp_path / "runs").glob(f"demo-cpu-validate-r{r}-*"))
        assert '"max_steps": 8' in (d / "events.jsonl").read_text()


@pytest.mark.slow
def test_a_trial_outlives_its_killed_sweep_and_the_next_sweep_takes_it_over(tmp_path):
    """Each trial is a worker in its own session: SIGKILL of the sweep leaves it training, and the
    same command, run again, follows that run to its end instead of training the rank again."""
    from rankwise.trainer.runs import run_info

    cmd = CLI + ["sweep", "--preset", "demo-cpu", "--runs-dir", str(tmp_path / "runs"), "--sweep-dir",
                 str(tmp_path / "sweep"), "--ranks", "8", "--steps", "120", "--no-prune", "--set", "train.micro_batch=1"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait for the trial's first step
        found = run_dirs(tmp_path, 8)
        if found and '"type": "step"' in ((found[0] / "events.jsonl").read_text()
                                          if (found[0] / "events.jsonl").exists() else ""):
            break
        assert first.poll() is None, first.communicate()
        time.sleep(0.2)
    first.kill()
    first.communicate(timeout=60)
    (run,) = run_dirs(tmp_path, 8)
    assert run_info(run).status == "running"  # the sweep died; its trial did not

    again = subprocess.run(cmd + ["--json"], capture_output=True, text=True, env=env(), timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "taken over from an earlier sweep process" in again.stderr
    assert run_dirs(tmp_path, 8) == [run] and (run / "events.jsonl").read_text().count('"type": "start"') == 1
    assert [t["status"] for t in json.loads(again.stdout)["trials"]] == ["complete"]


@pytest.mark.slow
def test_two_workers_share_one_sweep_folder_without_running_a_trial_twice(tmp_path):
    base = CLI + ["sweep", "--preset", "demo-cpu", "--runs-dir", str(tmp_path / "runs"), "--sweep-dir",
                  str(tmp_path / "sweep"), "--ranks", "4,16", *QUICK]
    first = subprocess.Popen(base + ["--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    worker = subprocess.Popen(base + ["--worker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    w_out, w_err = worker.communicate(timeout=400)
    f_out, f_err = first.communicate(timeout=400)
    assert worker.returncode == 0, w_err[-3000:]
    assert first.returncode == 0, f_err[-3000:]
    assert [len(run_dirs(tmp_path, r)) for r in (4, 16)] == [1, 1]
    ran = lambda err: {int(l.split()[0][2:]) for l in err.splitlines() if " complete " in l and l.strip().startswith("r=")}
    assert ran(f_err) | ran(w_err) == {4, 16} and not ran(f_err) & ran(w_err), (f_err, w_err)
    assert json.loads(f_out)["recommended_rank"] in (4, 16)

    from rankwise.trainer.sweep_trials import Ledger

    trials = Ledger(tmp_path / "sweep").trials("sweep")
    assert sorted((t["rank"], t["status"]) for t in trials) == [(4, "complete"), (16, "complete")]
    assert {t["run_dir"] for t in trials} == {str(run_dirs(tmp_path, r)[0]) for r in (4, 16)}


def test_one_trial_per_gpu_and_sequential_on_cpu():
    from rankwise.advisor.hardware import Gpu, Hardware
    from rankwise.tui.commands.sweep import slots_for

    gib = 1024 ** 3
    assert slots_for(Hardware(gpus=())) == [None]
    assert slots_for(Hardware(gpus=(Gpu(0, "H100", 80 * gib),))) == [None]
    assert slots_for(Hardware(gpus=tuple(Gpu(i, "H100", 80 * gib) for i in range(4)))) == ["0", "1", "2", "3"]


def test_ranks_that_would_not_fit_the_planned_gpu_are_skipped_with_the_reason(tmp_path):
    from rankwise.advisor.loader import load_config
    from rankwise.advisor.hardware import planned
    from rankwise.advisor.presets import resolve_preset
    from rankwise.trainer.sweep import fit_reason

    cfg = load_config(resolve_preset("llama3.1-8b-instruct-lora-80gb"))
    small = planned(gpu_mem="16GiB")
    assert fit_reason(cfg, 8, None) is None  # no GPU to judge: nothing skipped
    why = fit_reason(cfg, 8, small)
    assert why and "estimated peak" in why and "> 16.0 GiB GPU" in why
    assert fit_reason(cfg, 8, planned(gpu="A100-80GB")) is None


@pytest.mark.slow
def test_parallel_slots_run_one_trial_each_and_ctrl_c_stops_and_requeues_them_all(tmp_path, monkeypatch):
    """The one-trial-per-GPU path on CPU: two slots with CUDA_VISIBLE_DEVICES="" (harmless without CUDA)."""
    import os
    import threading

    from rankwise.advisor.hardware import Hardware
    from rankwise.trainer import sweep as sw

    monkeypatch.chdir(tmp_path)
    for k, v in env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RANKWISE_TEST_HOLD_IN", "training:2")  # each trial holds there until the Ctrl-C's stop
    p = sw.plan("demo-cpu", [], [4, 16], 6, None, Hardware(gpus=()), "sweep", "runs", None, prune=False,
                slots=["", ""])
    sw.enqueue(p, p.ranks)
    said = []

    def ctrl_c_once_both_train():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            logs = list((tmp_path / "runs").glob("*/train.log"))
            if len(logs) == 2 and all("test seam: holding" in f.read_text() for f in logs):  # both held mid-training
                break
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_both_train, daemon=True).start()
    with pytest.raises(sw.Interrupted):
        sw.work(p, "sweep", lambda *a: said.append(a))
    assert {a[0] for a in said if a[1] == "running"} == {4, 16}  # both ran at once, one per slot
    monkeypatch.delenv("RANKWISE_TEST_HOLD_IN")  # the resumed trials run through
    again = sw.work(p, "sweep", lambda *a: said.append(a))  # the interrupted ones (a trial may have just finished)
    assert again and set(again) == {"complete"}
    cs, _ = sw.curves(p)
    assert {c.rank: c.status for c in cs} == {4: "complete", 16: "complete"}
    assert len(list((tmp_path / "runs").glob("demo-cpu-sweep-r*"))) == 2  # each continued in its own run dir
