"""Faults on real processes: rankwise's workers and terminals killed, hung up, interrupted and
starved of disk, with nothing mocked but what a CPU machine cannot have (a CUDA OOM, through
the RANKWISE_TEST_OOM_* seams). Every test starts real `rankwise` processes on the shipped
tiny model; the figures (kills survived, resumes identical, ...) go to tests/faults/figures.json.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

import pytest
from fault_helpers import (CLI, FIGURES, PtyProc, adapter_close, alive, big_chat_data, detached, events_since,
                           log_has, n_events, poll, popen, record, steps_args, wait_gone, write_figures)
from train_helpers import adapter_weights, env, events, of_type, summary, tail_log, train

from rankwise.trainer import rundir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _figures():
    yield
    write_figures()


def _step_losses(evs: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in evs if e["type"] == "step"}


def _no_traceback(*texts: str) -> bool:
    return not any("Traceback" in t for t in texts)


# ------------------------------------------------------------------------------ SIGKILL x 10

CHAIN_STEPS = 20
CHAIN_ARGS = steps_args(max_steps=CHAIN_STEPS, save_steps=4)
_SAVES = [4, 8, 12, 16]  # kill as checkpoint-N appears: HF is writing it, the marker is not there
_BETWEEN = sorted(random.Random(20261129).sample([s for s in range(2, CHAIN_STEPS) if s % 4], 6))  # 2 5 7 10 15 19
KILL_POINTS = sorted([(s, "step") for s in _BETWEEN] + [(c, "save") for c in _SAVES])
# the ten points in three chains, one run and one test each, so pytest-xdist runs them side by side (as one
# chain of ten it was the suite's longest test, 226 s): before and during the first checkpoint; around the
# second; the last two checkpoints and after the last
CHAINS = {"early": KILL_POINTS[:3], "middle": KILL_POINTS[3:6], "late": KILL_POINTS[6:]}
assert sorted(p for c in CHAINS.values() for p in c) == KILL_POINTS


@pytest.fixture(scope="session")
def chain_reference(tmp_path_factory):
    """The uninterrupted run the chains are compared with, trained once per test session: a function that
    returns (run folder, {step: loss}). Under pytest-xdist its folder is in the session's temp folder that
    all workers share, named by the run's arguments; the first worker to ask trains it, the others wait on
    a file lock. A chain asks after its kills, so the reference trains while other tests run."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # one per session, shared by the workers (pytest-xdist's documented pattern)
    key = hashlib.sha256(json.dumps(CHAIN_ARGS).encode()).hexdigest()[:12]
    folder = base / f"sigkill-reference-{key}"
    folder.mkdir(exist_ok=True)

    def get():
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / "done").exists():
                shutil.rmtree(folder / "ref", ignore_errors=True)  # a failed try of another worker
                ref = train(folder / "ref", *CHAIN_ARGS, quick=False)
                assert ref.returncode == 0, ref.stderr
                (folder / "done").touch()
        (ref_dir,) = (folder / "ref").iterdir()
        ref_loss = _step_losses(events(ref_dir))
        assert sorted(ref_loss) == list(range(1, CHAIN_STEPS + 1))
        return ref_dir, ref_loss
    return get


def _repeats(seg: list[dict], ref_loss: dict[int, float]) -> bool:
    return all(abs(loss - ref_loss[s]) <= 1e-4 * abs(ref_loss[s]) for s, loss in _step_losses(seg).items())


@pytest.mark.parametrize("chain", list(CHAINS))
def test_sigkill_at_ten_points_then_resume_matches_an_uninterrupted_run(tmp_path, chain, chain_reference):
    """Ten kills at seeded points (6 between checkpoints, 4 while a checkpoint is being written), in three
    chains of 3 or 4: a chain's run is killed at each of its points and resumed after each kill; every
    stretch, the first included, repeats the uninterrupted run's losses, and the chain's final adapter
    equals its adapter. Where a chain ends with two complete checkpoints, the newest is then torn by hand
    (a truncated file, no marker): the last resume uses the one before it."""
    points = CHAINS[chain]
    saves = [at for at, kind in points if kind == "save"]
    # RANKWISE_TEST_SAVE_DELAY holds the saved-but-unmarked window open for 0.2 s: the kill lands
    # in it (or earlier, mid-file) every time, not by luck
    slow = {"RANKWISE_TEST_STEP_DELAY": "0.1", "RANKWISE_TEST_SAVE_DELAY": "0.2"}
    runs = tmp_path / "runs"
    caught_unmarked = caught_mid_files = 0
    stretches = []  # (resumed, it began where it should and never ended, its events), per kill
    run_id = run_dir = None
    for i, (at, kind) in enumerate(points):
        n0 = n_events(run_dir) if run_dir else 0
        before = rundir.latest_checkpoint(run_dir) if run_dir else None
        if run_id is None:
            run_id, pid = detached(runs, *CHAIN_ARGS, extra_env=slow)
            run_dir = runs / run_id
        else:
            _, pid = detached(runs, "--resume", run_id, extra_env=slow, preset=None)
        if kind == "step":
            poll(lambda: any(e["type"] == "step" and e["step"] >= at for e in events_since(run_dir, n0)),
                 what=f"step {at}; log: {tail_log(run_dir)}")
        else:
            ck = run_dir / "checkpoints" / f"checkpoint-{at}"
            poll(ck.exists, every=0.002, what=f"{ck.name}; log: {tail_log(run_dir)}")
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        if kind == "save":
            caught_unmarked += not (ck / rundir.MARKER).exists()
            caught_mid_files += not (ck / "trainer_state.json").exists()
        # this stretch (a fresh start, or the resume after the kill before) started at the newest complete
        # checkpoint and trained until the kill
        seg = events_since(run_dir, n0)
        starts = of_type(seg, "start")
        ok = not of_type(seg, "end") and len(starts) == 1 and (
            starts[0]["resumed_from_step"] == (before[0] if before else None))
        stretches.append((bool(i), ok, seg))

    # a checkpoint caught half-written, made by hand: truncate a file, drop the marker
    found = rundir.complete_checkpoints(run_dir)
    assert found, "every chain passes checkpoint-4 before its last kill"
    torn = None
    if len(found) >= 2:
        (newest, newest_dir), (prev, _) = found[-1], found[-2]
        weights = newest_dir / "adapter_model.safetensors"
        with open(weights, "r+b") as fh:
            fh.truncate(weights.stat().st_size // 2)
        (newest_dir / rundir.MARKER).unlink()
        torn = f"checkpoint-{newest} torn -> resumed from {prev}"
    else:
        prev = found[-1][0]
    n0 = n_events(run_dir)
    res = train(runs, "--resume", run_id, preset=None, quick=False)
    assert res.returncode == 0, res.stderr + tail_log(run_dir)
    assert f"from checkpoint {prev}" in res.stderr
    seg = events_since(run_dir, n0)
    assert of_type(seg, "start")[0]["resumed_from_step"] == prev
    assert sorted(_step_losses(seg)) == list(range(prev + 1, CHAIN_STEPS + 1))
    # the last kill: survived when the final resume finished (from the fallback where one was torn)
    stretches.append((True, of_type(seg, "end")[-1]["status"] == "finished", seg))

    ref_dir, ref_loss = chain_reference()
    same = adapter_close(adapter_weights(run_dir / "adapter"), adapter_weights(ref_dir / "adapter"))
    survived = sum(ok for resumed, ok, _ in stretches if resumed)
    identical = sum(ok and _repeats(seg, ref_loss) for resumed, ok, seg in stretches if resumed)
    first_ok, first_identical = stretches[0][1], _repeats(stretches[0][2], ref_loss)
    FIGURES.setdefault("sigkill", {})[chain] = {
        "kills_tried": len(points), "kills_survived": survived, "kill_points": [f"{k}@{s}" for s, k in points],
        "save_kills_caught_unmarked": f"{caught_unmarked}/{len(saves)}",
        "save_kills_caught_before_all_files_written": f"{caught_mid_files}/{len(saves)}",
        "resumes_tried": len(points), "resumes_identical": identical,
        "first_stretch_identical": first_ok and first_identical, "torn_checkpoint_fallback": torn,
        "final_adapter_matches_reference_atol_1e-5": same}
    assert caught_unmarked == len(saves)
    assert first_ok and first_identical and same and survived == identical == len(points), FIGURES["sigkill"][chain]


def test_sigkill_after_rotation_with_save_total_limit_1_keeps_a_complete_checkpoint(tmp_path):
    """HF deletes checkpoints past save_total_limit before our marker lands on the new one: with a
    limit of 1, a crash between the two used to leave no complete checkpoint (resume from step 0).
    Now the old one goes only after the new one is marked, and the limit still holds at the end."""
    runs = tmp_path / "runs"
    args = steps_args(max_steps=12, save_steps=4, limit=1)
    run_id, pid = detached(runs, *args, extra_env={"RANKWISE_TEST_SAVE_DELAY": "1.0"})
    run_dir = runs / run_id
    ck8 = run_dir / "checkpoints" / "checkpoint-8"
    poll(lambda: (ck8 / "trainer_state.json").exists(), every=0.005, what="checkpoint-8 written")
    time.sleep(0.2)  # HF has rotated; the marker waits for RANKWISE_TEST_SAVE_DELAY
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    kept = [s for s, _ in rundir.complete_checkpoints(run_dir)]
    res = train(runs, "--resume", run_id, preset=None, quick=False)
    left = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    record("rotation_limit_1", {"complete_after_kill": kept, "resume_exit": res.returncode, "left_at_end": left})
    assert kept == [4] and not (ck8 / rundir.MARKER).exists()
    assert res.returncode == 0 and "from checkpoint 4" in res.stderr, res.stderr + tail_log(run_dir)
    assert left == ["checkpoint-12"]


# ------------------------------------------------------------------------------ SIGHUP


def test_sighup_of_attach_tui_and_foreground_train_leaves_the_runs_going(tmp_path):
    """Closing a terminal (SIGHUP to its process group) showing `rankwise attach`, the TUI, or a
    foreground `rankwise train`: the runs go on and finish; a new attach sees them finished."""
    runs = tmp_path / "runs"
    slow = {"RANKWISE_TEST_STEP_DELAY": "0.4"}
    fg = PtyProc(CLI + ["train", "--preset", "demo-cpu", "--runs-dir", str(runs), *steps_args(max_steps=16)],
                 extra_env=slow)
    run_a, pid_a = detached(runs, *steps_args(max_steps=16), extra_env=slow)
    dir_a = runs / run_a
    poll(lambda: any(e["type"] == "step" for e in events(dir_a)) if (dir_a / "events.jsonl").exists() else False,
         what="run A's first step")
    att = PtyProc(CLI + ["attach", run_a, "--runs-dir", str(runs)])
    tui = PtyProc(CLI + ["--runs-dir", str(runs)], cwd=tmp_path)
    dir_b = poll(lambda: [p for p in runs.iterdir() if p.name != run_a], what="run B's dir")[0]
    poll(lambda: any(e["type"] == "step" for e in events(dir_b)) if (dir_b / "events.jsonl").exists() else False,
         what="run B's first step")
    pid_b = of_type(events(dir_b), "start")[0]["pid"]
    # hang up once each front end shows what it is there for: attach and the foreground train their run's
    # progress past step 0, the TUI its first full screen (the key bar is its last line)
    past_step_0 = re.compile(r"step\s+\S*\s+[1-9]\d*/16 ")
    poll(lambda: past_step_0.search(att.text()) and past_step_0.search(fg.text()) and "^q Quit" in tui.text(),
         timeout=120, what="attach and the foreground train to show a step, and the TUI its key bar")
    outcome = {}
    try:
        for name, p in (("attach", att), ("tui", tui), ("foreground_train", fg)):
            p.hangup()
        for name, p in (("attach", att), ("tui", tui), ("foreground_train", fg)):
            rc = p.wait(20)
            outcome[name] = {"front_end_exit": rc if rc is not None else "still running after 20 s"}
        workers_alive = alive(pid_a) and alive(pid_b)
        for name, d in (("attach", dir_a), ("foreground_train", dir_b)):
            end = poll(lambda: of_type(events(d), "end"), timeout=120, what=f"{d.name} to end")[-1]
            new = subprocess.run(CLI + ["attach", d.name, "--runs-dir", str(runs)], capture_output=True, text=True,
                                 timeout=60, env=env(), stdin=subprocess.DEVNULL)
            outcome[name].update(run_status=end["status"], run_step=end["step"], new_attach_exit=new.returncode)
        outcome["tui"].update(outcome["attach"] and {k: outcome["attach"][k]
                                                      for k in ("run_status", "run_step", "new_attach_exit")})
    finally:
        for p in (att, tui, fg):
            p.kill()
    record("sighup", {**outcome, "workers_alive_after_hangup": workers_alive})
    assert workers_alive
    for name in ("attach", "tui", "foreground_train"):
        o = outcome[name]
        assert o["front_end_exit"] != "still running after 20 s", (name, o)
        assert (o["run_status"], o["run_step"], o["new_attach_exit"]) == ("finished", 16, 0), (name, o)


# ------------------------------------------------------------------------------ disk full


@pytest.fixture
def small_fs(tmp_path):
    """A 700 KiB tmpfs: the run's files and its first checkpoint fit, the second does not."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.environ.get("RANKWISE_FAULTS_NO_MOUNT"):
        yield None
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:  # not root (CI): the RLIMIT_FSIZE stand-in below
        yield None
        return
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _file_size_limit(limit: int):
    def preexec():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), no signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def _disk_full_fallback(tmp_path):
    """Without a mountable file system: RLIMIT_FSIZE (inherited by the worker) makes any write
    past 200 kB fail with EFBIG. It approximates ENOSPC per file: the first checkpoint's
    optimizer.pt (~280 kB) cannot be written, small files still can."""
    runs = tmp_path / "runs"
    proc = popen(runs, *steps_args(max_steps=8, save_steps=4), preexec_fn=_file_size_limit(200_000))
    out, err = proc.communicate(timeout=180)
    (run_dir,) = runs.iterdir()
    evs = events(run_dir)
    outcome = {"kind": "RLIMIT_FSIZE stand-in (no tmpfs mount)", "exit": proc.returncode,
               "traceback_on_terminal": not _no_traceback(out, err),
               "error": (of_type(evs, "error") or [{}])[-1].get("message"),
               "complete_checkpoints": [s for s, _ in rundir.complete_checkpoints(run_dir)],
               "left_behind": [p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")]}
    res = train(runs, "--resume", run_dir.name, preset=None, quick=False)
    outcome.update(resume_exit=res.returncode, final=of_type(events(run_dir), "end")[-1]["status"])
    record("disk_full", outcome)
    assert proc.returncode == 1 and not outcome["traceback_on_terminal"] and outcome["error"], outcome
    assert outcome["error"].startswith("disk full while writing"), outcome  # not torch's serializer message
    assert outcome["left_behind"] == [], "the half-written checkpoint is removed"
    assert outcome["complete_checkpoints"] == [] and res.returncode == 0 and outcome["final"] == "finished", outcome


def test_disk_full_while_checkpointing(tmp_path, small_fs):
    if small_fs is None:
        return _disk_full_fallback(tmp_path)
    runs = small_fs / "runs"
    proc = popen(runs, *steps_args(max_steps=12, save_steps=4))
    out, err = proc.communicate(timeout=180)
    (run_dir,) = runs.iterdir()
    marked = rundir.complete_checkpoints(run_dir)
    log_tail = tail_log(run_dir, 60)
    outcome = {"exit": proc.returncode, "traceback_on_terminal": not _no_traceback(out, err),
               "terminal_message": next((l for l in (out + err).splitlines() if "disk full" in l or "No space" in l
                                         or "without an end event" in l), "")[:300],
               "complete_checkpoints": [s for s, _ in marked],
               "unmarked_checkpoints": sorted(p.name for p in (run_dir / "checkpoints").iterdir()
                                              if not (p / rundir.MARKER).exists()),
               "end_event": bool(of_type(events(run_dir), "end"))}
    # the last good checkpoint is intact: its tensors load
    intact = bool(marked) and bool(adapter_weights(marked[-1][1]))
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)  # space returns
    res = train(runs, "--resume", run_dir.name, preset=None, quick=False)
    evs = events(run_dir)
    outcome.update(last_good_checkpoint_intact=intact, resume_exit=res.returncode,
                   resumed_from=of_type(evs, "start")[-1]["resumed_from_step"],
                   final=of_type(evs, "end")[-1]["status"] if of_type(evs, "end") else None)
    record("disk_full", outcome)
    assert marked and marked[-1][0] == 4 and intact, outcome
    assert res.returncode == 0 and outcome["final"] == "finished", res.stderr + tail_log(run_dir)
    assert outcome["resumed_from"] == 4
    assert proc.returncode == 1 and not outcome["traceback_on_terminal"], (outcome, log_tail)
    shown = out + err  # the panel prints events on stdout, the closing line on stderr
    assert outcome["end_event"] and "disk full: checkpoint-8 needs about" in shown, (shown, log_tail)
    assert f"--resume {run_dir.name}` continues from checkpoint 4" in shown


# ------------------------------------------------------------------------------ same name, same time


def test_two_runs_with_the_same_name_started_at_once(tmp_path):
    runs = tmp_path / "runs"
    procs = [popen(runs, *steps_args(max_steps=8), "--detach") for _ in range(2)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.strip().splitlines()[-1])
    assert len(set(ids)) == 2, ids
    adapters = []
    for rid in ids:
        d = runs / rid
        poll(lambda: of_type(events(d), "end"), timeout=180, what=f"{rid} to end")
        evs = events(d)
        assert len(of_type(evs, "start")) == 1 and len(of_type(evs, "end")) == 1, [e["type"] for e in evs]
        assert of_type(evs, "end")[0]["status"] == "finished"
        assert {e["step"] for e in of_type(evs, "step")} == set(range(1, 9))
        assert json.loads((d / "adapter" / "adapter_config.json").read_text())["peft_type"] == "LORA"
        adapters.append(adapter_weights(d / "adapter"))
    same = adapter_close(*adapters)  # the same preset and seed: the same adapter, computed twice
    record("same_name_concurrent", {"runs": ids, "both_finished": True, "adapters_load": True,
                                    "adapters_equal": same})
    assert same


# ------------------------------------------------------------------------------ CUDA OOM (seam)


def test_oom_at_first_step_mid_run_and_in_evaluation(tmp_path):
    runs = tmp_path / "runs"
    proc = train(runs, *steps_args(max_steps=12, save_steps=4, micro=8),
                 extra_env={"RANKWISE_TEST_OOM_AT_STEPS": "1,6", "RANKWISE_TEST_OOM_AT_EVAL": "8"}, quick=False)
    (run_dir,) = runs.iterdir()
    assert proc.returncode == 0, proc.stderr + tail_log(run_dir)
    evs = events(run_dir)
    retries = of_type(evs, "retry")
    got = [(r["attempt"], r["micro_batch"], r["grad_accum"], r["from_step"]) for r in retries]
    record("oom", {"first_step": got[0] if got else None, "mid_run": got[1:2], "evaluation": got[2:3],
                   "final": of_type(evs, "end")[-1]["status"], "final_step": of_type(evs, "end")[-1]["step"],
                   "give_up_message": "covered by tests/test_oom.py (exit 1, 'out of memory at micro_batch 1')"})
    assert got == [(1, 4, 2, 0), (2, 2, 4, 4), (3, 1, 8, 4)]
    assert "step 1" in retries[0]["reason"] and "step 6" in retries[1]["reason"]
    assert "evaluation" in retries[2]["reason"]
    # nothing from earlier attempts is lost: their step events stay, checkpoint-4 stays complete
    steps = [e["step"] for e in of_type(evs, "step")]
    assert steps == [1, 2, 3, 4, 5] + [5, 6, 7, 8] + list(range(5, 13)), steps
    assert [s for s, _ in rundir.complete_checkpoints(run_dir)][:1] == [4]
    assert of_type(evs, "end")[-1]["step"] == 12 and summary(run_dir)["oom_retries"] == 3


# ------------------------------------------------------------------------------ Ctrl-C per phase


def _ctrl_c(tmp_path, phase: str, args: list[str], extra_env: dict, when) -> dict:
    """Start a foreground `rankwise train` in its own process group, wait for `when(run_dir)`,
    send SIGINT to the group (what a terminal does on Ctrl-C), and report what happened."""
    runs = tmp_path / phase
    proc = popen(runs, *args, extra_env=extra_env, start_new_session=True)

    def running(found):  # what we wait for, or the reason it will never come
        if not found and proc.poll() is not None:
            raise AssertionError(f"{phase}: rankwise train exited {proc.returncode} first: {proc.stderr.read()}")
        return found

    try:
        run_dir = poll(lambda: running(next(iter(runs.iterdir()), None) if runs.is_dir() else None), timeout=120,
                       what="the run dir")
        seen = poll(lambda: running(when(run_dir)), timeout=120, every=0.005, what=f"phase {phase}")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    evs = events(run_dir)
    log = (run_dir / "train.log").read_text(errors="replace")
    o = {"exit": proc.returncode, "no_traceback": _no_traceback(out, err, log),
         "status": of_type(evs, "end")[-1]["status"] if of_type(evs, "end") else None,
         "checkpoint": (rundir.latest_checkpoint(run_dir) or (None,))[0], "phase_hit": bool(seen)}
    if o["checkpoint"] is not None:
        res = train(runs, "--resume", run_dir.name, preset=None, quick=False)
        o["resume_exit"] = res.returncode
        o["resume_final_step"] = of_type(events(run_dir), "end")[-1]["step"]
    o["_run_dir"] = run_dir
    o["_tails"] = {"train.log": log[-3000:], "stderr": err[-1500:]}  # said only when the phase fails
    return o


def _held_in(phase: str):
    """The run says (train.log) that the RANKWISE_TEST_HOLD_IN seam holds it in `phase` until a signal."""
    return lambda run_dir: log_has(run_dir, f"test seam: holding in {phase}")


def _preparing_data(run_dir):
    return log_has(run_dir, "estimated peak") and not log_has(run_dir, "data: {")


@pytest.mark.parametrize("phase", ["loading", "data_preparation", "training", "evaluation", "saving"])
def test_ctrl_c_in_each_phase(tmp_path, phase):
    """Ctrl-C in each phase, each signal sent when the run's own log says it is in that phase (never
    after a delay): training, evaluation and saving hold there until the signal (RANKWISE_TEST_HOLD_IN);
    loading and data preparation are seconds long and end with a log line of their own. One test a phase,
    so the suite's processes share them."""
    args = steps_args(max_steps=8, save_steps=4)
    hold = "RANKWISE_TEST_HOLD_IN"
    if phase == "data_preparation":
        args = args + ["--set", f"data.path={big_chat_data(tmp_path / 'big.jsonl', 40000)}"]
    env, when = {
        "loading": ({}, lambda d: log_has(d, "loading libraries")),
        "data_preparation": ({}, _preparing_data),
        "training": ({hold: "training:5"}, _held_in("training")),
        "evaluation": ({hold: "evaluation"}, _held_in("evaluation")),
        "saving": ({hold: "saving"}, _held_in("saving")),
    }[phase]
    o = _ctrl_c(tmp_path, phase, args, env, when)
    # where the interrupt landed, read back from train.log: loading = still importing the
    # libraries (before the advisor check); data preparation = after it, before the data report
    if phase == "loading":
        o["phase_hit"] = not log_has(o["_run_dir"], "estimated peak")
    if phase == "data_preparation":
        o["phase_hit"] = not log_has(o["_run_dir"], "data: {")
    tails = o.pop("_tails")
    o.pop("_run_dir")
    record(f"ctrl_c_{phase}", o)
    assert (o["exit"], o["status"], o["no_traceback"], o["phase_hit"]) == (130, "interrupted", True, True), (
        phase, o, tails)
    if phase in ("training", "evaluation", "saving"):
        # the stop finishes the step it lands in and saves there: held after step 5 -> 6; in step 4's
        # evaluation or save -> step 5
        assert (o["checkpoint"], o.get("resume_exit"), o.get("resume_final_step")) == (
            {"training": 6, "evaluation": 5, "saving": 5}[phase], 0, 8), (phase, o)


@pytest.mark.parametrize("landing, said", [
    ("data-finaliser", "the signal landed where it cannot stop the run"),
    ("data-library", "interrupted before training started (the signal surfaced as ModuleNotFoundError"),
])
def test_a_ctrl_c_that_lands_where_it_is_lost_still_stops_the_run(tmp_path, landing, said):
    """Before training, a Ctrl-C is a KeyboardInterrupt raised wherever the worker happens to be, and two
    landings lose it (trainer/process.py `Stop.raised`): a finaliser, where Python reports it and goes on
    (the run trained to its end and exited 0), and library code that re-raises it as its own exception
    (a Ctrl-C in data preparation exited 1 with a traceback on CI). The seam holds the worker in each
    landing until the signal: the run still ends interrupted (130), before training, with no traceback."""
    o = _ctrl_c(tmp_path, landing, steps_args(max_steps=8, save_steps=4), {"RANKWISE_TEST_HOLD_IN": landing},
                _held_in(landing))
    log = o.pop("_tails")["train.log"]
    run_dir = o.pop("_run_dir")
    assert (o["exit"], o["status"], o["no_traceback"], o["checkpoint"]) == (130, "interrupted", True, None), (o, log)
    assert said in log and not of_type(events(run_dir), "step"), log
