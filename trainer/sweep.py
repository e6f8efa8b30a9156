"""The rank sweep: short real runs over a grid of ranks, recorded in the sweep folder, read by advisor/knee.py.

Every trial is a real run of the same preset with `lora.r` (alpha held at the preset's value
and the learning rate moved with rank as advisor/coupling.py says: rankwise's one alpha/lr
parametrisation; with `--lrs` one trial per rank and learning rate, each rank compared at its
best), the same data, seed and number of steps, started through
trainer/start.py like any run: checked, then a worker in its own process session with its own
run directory and event log, so a trial outlives the sweep process like any run. The sweep
only reads the trial's event log: a trial clearly worse than the best finished one (`clearly_worse`)
is stopped with `request_stop` (it checkpoints and ends interrupted).

The record is the sweep folder (trainer/sweep_trials.py): `trials.json` says which rank is
queued, running where, or done, and points at each trial's run directory. So:
- re-running the same command continues the sweep: finished, pruned and failed trials are
  kept, an interrupted trial continues from its checkpoint, and only new ranks run;
- several sweep processes share one sweep folder (`--worker`, on this machine or on others
  that mount it) and claim trials under a file lock, so no trial runs twice; a trial whose
  sweep process died is taken over (its run is followed if it still runs, resumed otherwise).

Planning (ranks, steps, the trial configs) and the results files live in trainer/sweep_plan.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from rankwise.advisor import knee as kn
from rankwise.advisor.doctor import diagnose
from rankwise.advisor.errors import RankwiseError

from .events import EVENTS_FILE, Eval, Start, read_events
from .follow import Follower
from .sweep_plan import (DEFAULT_RANKS, MAX_CURVE, RECOMMENDED, RESULTS_CSV, RESULTS_JSON, SweepPlan, _downsample,
                         curve_from_events, default_steps, eval_every, fit_reason, parse_lrs, parse_ranks, phase_lr,
                         plan, read_results, recommended_yaml, sweep_id, too_short, trial_config, trial_lr,
                         write_results)
from .sweep_trials import GRACE_S, HEARTBEAT_S, TRIALS, Ledger, is_stale

__all__ = [  # the sweep's one face for the CLI and the TUI: planning and results come from sweep_plan
    "DEFAULT_RANKS", "RECOMMENDED", "RESULTS_CSV", "RESULTS_JSON", "TRIALS", "SweepPlan", "Interrupted", "clearly_worse", "curves",
    "default_steps", "enqueue", "eval_every", "fit_reason", "parse_ranks", "plan", "read_results",
    "recommended_yaml", "sweep_id", "trial_config", "validate_top_two", "work", "write_results",
    "parse_lrs", "phase_lr", "trial_lr", "too_short", "best_curves",
]

PRUNE_MARGIN = 0.10  # "clearly worse": >10% above the best finished trial's eval loss at the same step
PRUNE_AFTER = 0.5  # and only in the second half of the run (early losses of small ranks catch up)
PROGRESS_S = 10  # at most this often, a running trial's evals are written to results.json


class Interrupted(Exception):
    pass


class _Lost(Exception):
    """Another sweep process took this trial over (ours stopped beating for GRACE_S)."""


def enqueue(p: SweepPlan, ranks: list[int], phase: str = "sweep") -> list[int]:
    """Queue the ranks that have no trial yet (finished, pruned, failed, running or queued)."""
    return Ledger(p.sweep_dir).enqueue(phase, ranks)


def clearly_worse(value: float, step: int, max_steps: int | None, finished: list[dict]) -> bool:
    """Prune in the second half of a run when the eval loss is > PRUNE_MARGIN above the best
    finished trial's at the same step. Median pruning would stop half the grid: too eager for a
    sweep whose point is to compare every rank. `finished`: trial records with their `evals`."""
    if max_steps and (step < PRUNE_AFTER * max_steps or step >= max_steps):
        return False  # too early to judge, or already at the end: let it finish
    ref = [loss for t in finished for s, loss in (t.get("evals") or ()) if s == step]
    return bool(ref) and value > min(ref) * (1 + PRUNE_MARGIN)


# ------------------------------------------------------------------ running trials


def launch(p: SweepPlan, rank: int, phase: str, env: dict, resume: Path | None = None):
    """Start one trial through trainer/start.py (checked like any run); a start.Started. The trial's
    preset is also written to <sweep_dir>/trials/ so it can be run by hand."""
    from . import start
    from .rundir import write_atomic

    if resume is not None:
        prepared = start.prepare(resume=resume.name, runs_dir=resume.parent)
    else:
        cfg = trial_config(p, rank, phase)
        trials = p.sweep_dir / "trials"
        trials.mkdir(parents=True, exist_ok=True)
        write_atomic(trials / f"{phase}-r{rank}.yaml", cfg.to_yaml())
        prepared = start.prepare(cfg=cfg, runs_dir=p.runs_dir)
    return start.start(prepared, env=env)


def _takeover(run_dir: str | None) -> tuple[Path | None, Path | None]:
    """A trial that ran before (its sweep died or was stopped): (run to follow, run to resume)."""
    from .runs import run_info

    if not run_dir or not Path(run_dir).is_dir():
        return None, None
    info = run_info(run_dir)
    if info.status in ("finished", "running"):
        return Path(run_dir), None
    if info.last_checkpoint:
        return None, Path(run_dir)  # resume it from its checkpoint
    return None, None


def _last_start(run_dir: Path) -> int:
    """The byte offset of the run's latest `start` event (0: none yet): a run resumed before it was
    taken over has an earlier `end` (interrupted) that is history."""
    from .events import parse_line

    pos = last = 0
    try:
        with open(run_dir / EVENTS_FILE, "rb") as fh:
            for line in fh:
                event = parse_line(line.decode("utf-8", errors="replace"))
                if event is not None and event["type"] == "start":
                    last = pos
                pos += len(line)
    except FileNotFoundError:
        pass
    return last


def _follow(p: SweepPlan, book: Ledger, trial: dict, run_dir: Path, offset: int = 0, on_progress=None,
            stopping: threading.Event | None = None, proc: subprocess.Popen | None = None):
    """Follow the run's events until its end: prune, cap by time, heartbeat. (end, pruned, capped).
    `offset`: where this start's events begin (a resumed run's old end is history)."""
    from .runs import run_info

    phase, max_steps = trial["phase"], trial.get("max_steps")
    follower = Follower(run_dir, from_offset=offset, proc=proc, poll=0.5)
    beat = time.monotonic()
    pruned = capped = stop_sent = False
    seen: set[int] = set()
    shown = 0.0
    trained_since = None
    for events in follower:
        if stopping is not None and stopping.is_set():
            raise KeyboardInterrupt  # Ctrl-C reached the main thread: this trial thread stops the same way
        for e in events:
            if isinstance(e, Start):
                trained_since = trained_since or time.monotonic()  # the time cap counts training, not loading
            elif isinstance(e, Eval) and e.eval_loss is not None and e.step is not None and e.step not in seen:
                seen.add(e.step)
                if on_progress and time.monotonic() - shown >= PROGRESS_S:
                    on_progress()  # results.json shows the running trial's curve so far
                    shown = time.monotonic()
                if p.prune and phase == "sweep" and not stop_sent:
                    done = [t for t in book.trials(phase) if t.get("status") == "complete"]
                    if clearly_worse(e.eval_loss, e.step, max_steps, done):
                        pruned = stop_sent = _stop(run_dir)
        now = time.monotonic()
        if follower.end is None and now - beat >= HEARTBEAT_S:
            if not book.update(trial):
                raise _Lost
            beat = now
        if p.minutes and phase == "sweep" and not stop_sent and trained_since and now - trained_since > p.minutes * 60:
            capped = stop_sent = _stop(run_dir)
    if proc is not None:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    if follower.end is not None:
        return follower.end.to_dict(), pruned, capped
    info = run_info(run_dir)  # no end event: it died (killed, OOM killer, reboot) or never started
    return {"status": "failed", "note": info.note or info.error or "the run never started; see its train.log"}, \
        pruned, capped


def run_trial(p: SweepPlan, book: Ledger, trial: dict, env: dict, say, on_progress=None,
              stopping: threading.Event | None = None) -> str:
    """Run (or take over) one claimed trial to its end and record how it ended. Returns its status."""
    rank, phase = trial["rank"], trial["phase"]
    trial["max_steps"] = p.steps if phase.startswith("sweep") else p.cfg.train.max_steps
    earlier = trial.get("run_dir")
    run_dir = proc = None
    try:
        run_dir, resume = _takeover(earlier)
        offset = _last_start(run_dir) if run_dir is not None else 0  # a run taken over: from its latest start
        if run_dir is None:
            try:
                with book.beating(trial):  # checking the run may scan a large dataset: the claim stays ours
                    started = launch(p, rank, phase, env, resume)
            except RankwiseError as e:
                book.update(trial, status="failed", note=e.message)
                say(rank, "failed", None, e.message)
                return "failed"
            run_dir, proc, offset = started.run_dir, started.proc, started.offset  # a resumed run's old events are history
        book.update(trial, run_dir=str(run_dir), run_id=run_dir.name, max_steps=trial["max_steps"])
        if not earlier:
            how = None
        elif resume is not None:
            how = "resumed from its checkpoint"
        elif Path(earlier) != run_dir:
            how = f"started again ({Path(earlier).name} left no complete checkpoint)"
        else:
            how = "taken over from an earlier sweep process"
        say(rank, "running", run_dir.name, how)
        if on_progress:
            on_progress()
        end, pruned, capped = _follow(p, book, trial, run_dir, offset, on_progress, stopping, proc)
    except KeyboardInterrupt:  # Ctrl-C: stop the trial's run, queue the trial again, leave
        if run_dir is not None:
            _stop(run_dir, proc)
            _wait_end(run_dir, 120, proc)
            if proc is not None and proc.poll() is not None and not _ended(run_dir):
                record_stopped(run_dir, proc.returncode)
        book.requeue(trial, **({"run_dir": str(run_dir), "run_id": run_dir.name} if run_dir else {}))
        raise Interrupted(rank) from None
    except _Lost:
        say(rank, "elsewhere", run_dir.name, "another sweep process took this trial over")
        return "elsewhere"

    train, evals = curve_from_events(read_events(run_dir / EVENTS_FILE))
    curve = {"train": _downsample(train), "evals": evals[-MAX_CURVE:]}
    status = end.get("status")
    if pruned and status == "interrupted":
        book.update(trial, status="pruned", **curve)
        say(rank, "pruned", run_dir.name, f"eval loss {evals[-1][1]:.4f} clearly worse at step {evals[-1][0]}"
            if evals else None)
        return "pruned"
    if status == "finished" or (capped and status == "interrupted"):
        if not evals:
            book.update(trial, status="failed", note="no eval loss in the run's log (is there validation data?)", **curve)
            return "failed"
        note = f"stopped at the {p.minutes:g}-minute cap, step {evals[-1][0]}" if capped else None
        book.update(trial, status="complete", note=note, **curve)
        say(rank, "complete", run_dir.name, f"val loss {evals[-1][1]:.4f}")
        return "complete"
    errs = [e.get("message") for e in read_events(run_dir / EVENTS_FILE) if e.get("type") == "error"]
    note = errs[-1] if errs else (end.get("note") or f"run ended {status}; see {run_dir / 'train.log'}")
    book.update(trial, status="failed", note=note, **curve)
    say(rank, "failed", run_dir.name, note)
    return "failed"


def _ended(run_dir: Path) -> bool:
    return any(e.get("type") == "end" for e in read_events(run_dir / EVENTS_FILE))


def _stop(run_dir: Path, proc: subprocess.Popen | None = None) -> bool:
    from .runs import request_stop

    try:
        request_stop(run_dir)
    except RankwiseError:  # already ended (its end event follows), or its worker.pid not written yet
        if proc is not None and proc.poll() is None and not _ended(run_dir):
            try:
                proc.send_signal(signal.SIGTERM)  # the worker we started: it ends `interrupted` at once
            except ProcessLookupError:
                pass
    return True


def record_stopped(run_dir: Path, code: int | None) -> None:
    """The end of a trial stopped while its worker was still loading: SIGTERM came before the worker
    could handle it, so it left no end event (and `rankwise runs` would call it starting)."""
    from .events import EventSink

    sink = EventSink(run_dir / EVENTS_FILE)
    try:
        sink.emit("end", status="interrupted", step=0, exit_code=code)
    finally:
        sink.close()


def _wait_end(run_dir: Path, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ended(run_dir) or (proc is not None and proc.poll() is not None):
            return
        time.sleep(0.3)


def work(p: SweepPlan, phase: str, say, wait_for_others: bool = True, on_trial=None) -> list[str]:
    """Claim and run queued trials until none is left, one per slot (GPU) in parallel; then, unless
    `wait_for_others` is off, wait until other sweep processes' trials end too (taking over any
    whose process dies)."""
    book = Ledger(p.sweep_dir)
    statuses: list[str] = []
    errors: list[BaseException] = []
    stopping = threading.Event()

    def slot_loop(device: str | None) -> None:
        env = {**os.environ}
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        try:
            while not errors and not stopping.is_set():
                trial = book.claim(phase)
                if trial is None:
                    return
                statuses.append(run_trial(p, book, trial, env, say, on_trial, stopping))
                if on_trial:
                    on_trial()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    slots = p.slots if len(p.slots) > 1 else [p.slots[0]]
    if len(slots) == 1:
        slot_loop(slots[0])
    else:
        threads = [threading.Thread(target=slot_loop, args=(d,), daemon=True) for d in slots]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:  # every slot stops its run, queues its trial again, and ends
            stopping.set()
            for t in threads:
                t.join(180)
            raise Interrupted(0) from None
    if errors:
        raise errors[0]
    if wait_for_others:
        told = set()
        while left := book.waiting(phase):
            if any(t.get("status") == "queued" or is_stale(t) for t in left):
                return statuses + work(p, phase, say, wait_for_others, on_trial)
            for t in left:
                if t["rank"] not in told:
                    told.add(t["rank"])
                    say(t["rank"], "elsewhere", t.get("run_id"), f"running in another sweep process on "
                        f"{t.get('host')}; taken over if its heartbeat stops for {GRACE_S} s")
            time.sleep(1.0)
    return statuses


# ------------------------------------------------------------------ results


def curves(p: SweepPlan, phase: str = "sweep") -> tuple[list[kn.Curve], dict]:
    """One curve per rank, plus the ranks skipped for memory; and each rank's run."""
    out, runs = [], {}
    for t in Ledger(p.sweep_dir).trials(phase):
        status = {"queued": "waiting"}.get(t.get("status"), t.get("status"))
        train, evals = t.get("train"), t.get("evals")
        log = read_events(Path(t["run_dir"]) / EVENTS_FILE) if t.get("run_dir") else []
        if train is None and log:  # running (or queued again): its log so far
            train, evals = curve_from_events(log)
        codes = tuple(d.code for d in diagnose(log)) if log else None  # the verdicts `rankwise doctor` gives
        out.append(kn.Curve(t["rank"], status, tuple(map(tuple, train or ())), tuple(map(tuple, evals or ())),
                            t.get("note"), codes))
        runs[t["rank"]] = {"run_id": t.get("run_id"), "run_dir": t.get("run_dir"), "trial": t.get("seq")}
    out += [kn.Curve(r, "skipped", note=why) for r, why in p.skipped.items() if r not in runs]
    return out, runs


def best_curves(p: SweepPlan) -> tuple[list[kn.Curve], dict]:
    """One curve per rank, at that rank's best learning rate of the grid (--lrs): the lowest last eval
    loss among its finished trials. Each rank's run says which lr won and every lr's loss. Without a
    grid, `curves(p)`."""
    if len(p.lrs) <= 1:
        return curves(p)
    by_rank: dict[int, list[tuple[float, kn.Curve, dict]]] = {}
    skipped = []
    for phase in p.phases():
        lr = phase_lr(phase)
        cs, runs = curves(p, phase)
        for c in cs:
            if c.status == "skipped":
                skipped.append(c)
                continue
            by_rank.setdefault(c.rank, []).append((lr, c, runs.get(c.rank, {})))
    out, runs = [], {}
    for rank, tried in sorted(by_rank.items()):
        done = [t for t in tried if t[1].status == "complete" and t[1].evals]
        lr, curve, run = min(done, key=lambda t: t[1].evals[-1][1]) if done else tried[0]
        out.append(curve)
        runs[rank] = {**run, "lr": trial_lr(p, rank, lr),
                      "lr_losses": {f"{trial_lr(p, rank, x):g}": (c.evals[-1][1] if c.evals else None)
                                    for x, c, _ in tried}}
    seen = {c.rank for c in out}
    out += [c for c in skipped if c.rank not in seen and not seen.add(c.rank)]
    return out, runs


def validate_top_two(p: SweepPlan, analysis: kn.Analysis, say) -> dict:
    """Train the recommended rank and the best other one for the preset's full length, and compare."""
    ranks = kn.validation_pair(analysis)
    enqueue(p, ranks, "validate")
    work(p, "validate", say)
    cs, runs = curves(p, "validate")
    full = {c.rank: c for c in cs}
    rows = {}
    for r in ranks:
        c = full.get(r)
        rows[r] = {"status": c.status if c else "missing", "val_loss": c.evals[-1][1] if c and c.evals else None,
                   "best_val_loss": min(e for _, e in c.evals) if c and c.evals else None,
                   "train_loss": c.train[-1][1] if c and c.train else None, **runs.get(r, {})}
    full = {r: v["val_loss"] for r, v in rows.items() if v["val_loss"] is not None}
    winner = kn.validated_pick(analysis.recommended_rank, full, p.threshold) if full else None
    return {"ranks": ranks, "runs": {str(r): v for r, v in rows.items()}, "winner": winner}
